//! Kafka clients from the configuration: connection and security settings, a context that
//! reports whether any broker is reachable, and error classification.

mod dead_letter;
mod errors;

use mkb_api::config::KafkaConnection;
use mkb_api::kafka_properties::{security_properties, TlsMaterial};
use prometheus_client::metrics::gauge::Gauge;
use rdkafka::client::ClientContext;
use rdkafka::error::KafkaError;
use rdkafka::ClientConfig;

use crate::health::{Failure, Readiness};
use crate::secrets;

pub use dead_letter::{DeadLetter, DeadLetters};
pub use errors::{classify, is_permanent, ErrorClass};

/// Connection and security settings every client of the bridge shares.
pub fn client_config(kafka: &KafkaConnection, client_id: &str) -> Result<ClientConfig, String> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &kafka.bootstrap_servers)
        .set("client.id", client_id)
        .set("reconnect.backoff.ms", "100")
        .set("reconnect.backoff.max.ms", "10000")
        // Statistics tell whether a broker is up (readiness, the connection_up metric).
        .set("statistics.interval.ms", "1000");
    let properties = security_properties(
        kafka.tls.as_ref(),
        kafka.sasl.as_ref(),
        |secret, field| {
            secrets::file_path(secret, &format!("kafka.{field}"))
                .map(|path| TlsMaterial::Path(path.to_owned()))
        },
        |secret, field| secrets::read(secret, &format!("kafka.{field}")),
    )?;
    for (key, value) in properties {
        c.set(key, value);
    }
    Ok(c)
}

/// A client context that turns librdkafka's statistics into "is any broker up", and its
/// fatal errors into the process's failure.
pub struct BridgeContext {
    pub up: Gauge,
    pub ready: Readiness,
    pub failure: Failure,
}

impl ClientContext for BridgeContext {
    fn stats_raw(&self, statistics: &[u8]) {
        let Ok(stats) = serde_json::from_slice::<serde_json::Value>(statistics) else {
            return;
        };
        let up = stats["brokers"].as_object().is_some_and(|brokers| {
            brokers
                .values()
                .any(|b| b["nodeid"].as_i64().is_some_and(|id| id >= 0) && b["state"] == "UP")
        });
        self.up.set(i64::from(up));
        self.ready.set(up);
    }

    /// librdkafka's global errors: brokers going down is logged at debug (the connection
    /// metric and readiness show it); a fatal error ends the process (the client is dead).
    fn error(&self, error: KafkaError, reason: &str) {
        if classify(&error) == ErrorClass::Fatal {
            self.failure
                .fail(&format!("fatal Kafka client error: {error}: {reason}"));
        } else {
            tracing::debug!(%error, %reason, "librdkafka");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rdkafka::error::RDKafkaErrorCode;
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::health::Health;

    fn context() -> (BridgeContext, Arc<Health>, CancellationToken) {
        let (health, stop) = (Arc::new(Health::default()), CancellationToken::new());
        let context = BridgeContext {
            up: Gauge::default(),
            ready: health.component("kafka producer connected"),
            failure: Failure::new(health.clone(), stop.clone()),
        };
        (context, health, stop)
    }

    #[test]
    fn a_fatal_client_error_fails_the_process_with_librdkafkas_reason() {
        let (context, health, stop) = context();
        context.error(
            KafkaError::Global(RDKafkaErrorCode::Fatal),
            "Producer fenced by newer instance",
        );
        assert!(stop.is_cancelled());
        let failure = health.liveness().expect_err("failed");
        assert!(
            failure.contains("Producer fenced by newer instance"),
            "{failure}"
        );
    }

    #[test]
    fn brokers_going_down_is_not_a_failure() {
        let (context, health, stop) = context();
        context.error(
            KafkaError::Global(RDKafkaErrorCode::AllBrokersDown),
            "1/1 brokers are down",
        );
        assert!(!stop.is_cancelled());
        assert_eq!(health.liveness(), Ok(()));
    }
}
