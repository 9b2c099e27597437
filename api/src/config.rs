//! The runtime configuration: the YAML file `bridge-runtime --config` loads, and what the
//! operator renders into a ConfigMap. Secrets appear only as file paths or environment
//! variable names ([`SecretSource`]), never as values.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::connection::{
    ConsumerSettings, DeliverySettings, LoggingSettings, MqttSettings, ProducerSettings,
    SaslSettings, TlsSettings,
};
use crate::routes::{KafkaToMqttRoute, MqttToKafkaRoute};

/// The whole runtime configuration.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Name of the bridge: the default client-id prefix, share-group and consumer-group
    /// prefix, and a label on every metric.
    pub bridge_name: String,
    /// This replica's ordinal N (client id `<prefix>-<N>`). Absent: taken from the
    /// `BRIDGE_ORDINAL` environment variable, else from the trailing `-<N>` of `POD_NAME` or
    /// the host name (StatefulSet pods are named `<name>-<N>`), else 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ordinal: Option<u32>,
    /// The MQTT broker.
    pub mqtt: MqttSettings<SecretSource>,
    /// The Kafka cluster.
    pub kafka: KafkaConnection,
    /// Routes from MQTT to Kafka.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mqtt_to_kafka: Vec<MqttToKafkaRoute>,
    /// Routes from Kafka to MQTT.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kafka_to_mqtt: Vec<KafkaToMqttRoute>,
    /// In-flight window and shutdown grace period.
    #[serde(default)]
    pub delivery: DeliverySettings,
    /// The HTTP endpoint with /metrics, /healthz and /readyz.
    #[serde(default)]
    pub http: HttpSettings,
    /// Log format and filter.
    #[serde(default)]
    pub logging: LoggingSettings,
}

/// Where a secret value (a password, a certificate, a key) is read from. Exactly one of
/// `file` and `env`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretSource {
    /// Path of a file holding the value (trailing newlines of passwords are ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Name of an environment variable holding the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
}

/// The Kafka cluster, as the runtime connects to it.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KafkaConnection {
    /// Comma-separated `host:port` list of bootstrap brokers.
    pub bootstrap_servers: String,
    /// TLS to the brokers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSettings<SecretSource>>,
    /// SASL authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sasl: Option<SaslSettings<SecretSource>>,
    /// Producer settings (MQTT → Kafka).
    #[serde(default)]
    pub producer: ProducerSettings,
    /// Consumer settings (Kafka → MQTT).
    #[serde(default)]
    pub consumer: ConsumerSettings,
    /// Topic for messages that can never be delivered (too large, template fails), with the
    /// reason in headers. Absent: such messages are logged, counted and dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_topic: Option<String>,
}

/// The runtime's HTTP endpoint.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpSettings {
    /// Address to listen on, `host:port`.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Serve `/metrics` (the health endpoints are served either way).
    #[serde(default = "yes")]
    pub metrics: bool,
}

fn yes() -> bool {
    true
}

fn default_listen() -> String {
    "0.0.0.0:9090".to_owned()
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            metrics: true,
        }
    }
}
