//! Kafka clients from the configuration: connection and security settings, a context that
//! reports whether any broker is reachable, and error classification.

mod dead_letter;
mod errors;

use mkb_api::config::KafkaConnection;
use mkb_api::kafka_properties::{security_properties, TlsMaterial};
use prometheus_client::metrics::gauge::Gauge;
use rdkafka::client::ClientContext;
use rdkafka::ClientConfig;

use crate::health::Readiness;
use crate::secrets;

pub use dead_letter::{DeadLetter, DeadLetters};
pub use errors::is_permanent;

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

/// A client context that turns librdkafka's statistics into "is any broker up".
pub struct BridgeContext {
    pub up: Gauge,
    pub ready: Readiness,
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
}
