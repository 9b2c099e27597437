//! Kafka clients from the configuration: connection and security settings, a context that
//! reports whether any broker is reachable, and error classification.

mod connection;
mod dead_letter;
mod dead_letter_state;
mod errors;
mod topic_presence;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use mkb_api::config::KafkaConnection;
use mkb_api::kafka_properties::{security_properties, TlsMaterial};
use prometheus_client::metrics::gauge::Gauge;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::ClientConfig;

use crate::health::{Failure, Readiness};
use crate::secrets;

use connection::ConnectionStatus;
pub use dead_letter::{DeadLetter, DeadLetters, WRITE_TIMEOUT as DEAD_LETTER_WRITE_TIMEOUT};
pub use errors::{classify, is_permanent, ErrorClass};
pub use topic_presence::{
    is_missing_topic, topic_leaders, topic_presence, TopicLeaders, TopicPresence,
};

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

/// A client context that turns librdkafka's statistics into "is any broker up", the errors
/// that keep it out into a warning and its readiness reason, and its fatal errors into the
/// process's failure.
pub struct BridgeContext {
    connection: ConnectionStatus,
    failure: Failure,
    /// Set once the client has been replaced: what it still reports concerns nobody.
    retired: Arc<AtomicBool>,
}

impl BridgeContext {
    /// `client` names it in logs (`producer`, `consumer of route x`), `bootstrap` is what it
    /// connects to, `up` its connection gauge and `ready` its readiness.
    pub fn new(
        client: &str,
        bootstrap: &str,
        up: Gauge,
        ready: Readiness,
        failure: Failure,
    ) -> Self {
        Self {
            connection: ConnectionStatus::new(client, bootstrap, up, ready),
            failure,
            retired: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The switch that silences this context once its client is replaced: its statistics
    /// and errors no longer touch readiness or the process, its log lines go to debug.
    pub fn retired_flag(&self) -> Arc<AtomicBool> {
        self.retired.clone()
    }

    fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Relaxed)
    }
}

impl ClientContext for BridgeContext {
    fn stats_raw(&self, statistics: &[u8]) {
        if self.is_retired() {
            return;
        }
        let Ok(stats) = serde_json::from_slice::<serde_json::Value>(statistics) else {
            return;
        };
        let up = stats["brokers"].as_object().is_some_and(|brokers| {
            brokers
                .values()
                .any(|b| b["nodeid"].as_i64().is_some_and(|id| id >= 0) && b["state"] == "UP")
        });
        self.connection.observed(up);
    }

    /// librdkafka's own log lines. Its connection failures (`FAIL`, one per attempt) go to
    /// debug: the connection status warns once per cause instead. So does everything a
    /// replaced client says.
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        use RDKafkaLogLevel as L;
        match level {
            _ if facility == "FAIL" || self.is_retired() => {
                tracing::debug!(target: "librdkafka", "{facility} {message}")
            }
            L::Emerg | L::Alert | L::Critical | L::Error => {
                tracing::error!(target: "librdkafka", "{facility} {message}")
            }
            L::Warning => tracing::warn!(target: "librdkafka", "{facility} {message}"),
            L::Notice | L::Info => tracing::info!(target: "librdkafka", "{facility} {message}"),
            L::Debug => tracing::debug!(target: "librdkafka", "{facility} {message}"),
        }
    }

    /// librdkafka's global errors: a fatal one ends the process (the client is dead); the
    /// rest go to the connection's status.
    fn error(&self, error: KafkaError, reason: &str) {
        if self.is_retired() {
            tracing::debug!(%error, %reason, "librdkafka (a replaced client)");
        } else if classify(&error) == ErrorClass::Fatal {
            self.failure
                .fail(&format!("fatal Kafka client error: {error}: {reason}"));
        } else if let Some(code) = error.rdkafka_error_code() {
            self.connection.error(code, reason);
        } else {
            tracing::debug!(%error, %reason, "librdkafka");
        }
    }
}

/// The context of a helper client whose troubles are its main client's troubles, said there:
/// everything it reports goes to debug.
pub struct QuietContext {
    /// Names it in the debug lines.
    pub client: &'static str,
}

impl ClientContext for QuietContext {
    fn log(&self, _level: RDKafkaLogLevel, facility: &str, message: &str) {
        tracing::debug!(target: "librdkafka", client = self.client, "{facility} {message}");
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(client = self.client, %error, %reason, "librdkafka");
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
        let context = BridgeContext::new(
            "producer",
            "k:9092",
            Gauge::default(),
            health.component("kafka producer connected"),
            Failure::new(health.clone(), stop.clone()),
        );
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
