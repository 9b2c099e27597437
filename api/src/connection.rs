//! Connection and client settings shared by the custom resource and the runtime configuration.
//!
//! The types that carry credentials are generic over `S`, the way a secret is referenced: a
//! Kubernetes Secret key in the custom resource, a file or environment variable in the runtime
//! configuration. Secret values never appear in either.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

fn yes() -> bool {
    true
}

/// MQTT protocol version.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MqttVersion {
    #[serde(rename = "3.1.1")]
    V311,
    #[default]
    #[serde(rename = "5")]
    V5,
}

/// How the bridge connects to the MQTT broker.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(
    rename_all = "camelCase",
    deny_unknown_fields,
    bound(deserialize = "S: Deserialize<'de>")
)]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "!has(self.tls) || self.url.startsWith('mqtts://')",
    "message": "tls requires an mqtts:// url"
}]))]
pub struct MqttSettings<S> {
    /// Broker URL: `mqtt://host:port` (plain TCP, default port 1883) or `mqtts://host:port`
    /// (TLS, default port 8883).
    #[schemars(length(min = 1, max = 2048))]
    pub url: String,
    /// MQTT protocol version: "3.1.1" or "5". Version 5 adds user properties (forwarded as
    /// Kafka headers), session expiry and exact routing of overlapping subscriptions.
    #[serde(default)]
    pub protocol_version: MqttVersion,
    /// Prefix of the MQTT client ids. Replica N subscribes as `<prefix>-<N>` and publishes as
    /// `<prefix>-<N>-pub`; stable ids let the broker keep each replica's session across
    /// restarts. Defaults to the bridge name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 100))]
    pub client_id_prefix: Option<String>,
    /// Keep-alive interval in seconds.
    #[serde(default = "default_keep_alive")]
    #[schemars(range(min = 5, max = 65535))]
    pub keep_alive_seconds: u32,
    /// Start a fresh session on every connect. Leave false: a persistent session is what lets
    /// the broker keep messages for a replica while it restarts.
    #[serde(default)]
    pub clean_session: bool,
    /// MQTT 5 session expiry interval in seconds: how long the broker keeps the subscriber's
    /// session (and queues its messages) after it disconnects. Default 3600. MQTT 3.1.1 has no
    /// such setting (the broker's own settings decide), so it is refused there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 4294967295u32))]
    pub session_expiry_seconds: Option<u32>,
    /// Most unacknowledged QoS 1/2 messages in flight per connection, each way (MQTT 5
    /// receive maximum, and the publisher's in-flight window).
    #[serde(default = "default_max_inflight")]
    #[schemars(range(min = 1, max = 65535))]
    pub max_inflight: u32,
    /// Username and password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<MqttAuth<S>>,
    /// TLS settings for `mqtts://` URLs. Without them the system's root certificates verify
    /// the broker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSettings<S>>,
}

fn default_keep_alive() -> u32 {
    30
}
/// The session expiry when none is set (MQTT 5).
pub const DEFAULT_SESSION_EXPIRY_SECONDS: u32 = 3600;
fn default_max_inflight() -> u32 {
    1000
}

/// MQTT username and password.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(
    rename_all = "camelCase",
    deny_unknown_fields,
    bound(deserialize = "S: Deserialize<'de>")
)]
pub struct MqttAuth<S> {
    /// Username.
    #[schemars(length(min = 1, max = 65535))]
    pub username: String,
    /// Where the password comes from.
    pub password: S,
}

/// TLS material and options.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(
    rename_all = "camelCase",
    deny_unknown_fields,
    bound(deserialize = "S: Deserialize<'de>")
)]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.clientCertificate) == has(self.clientKey)",
    "message": "clientCertificate and clientKey go together"
}]))]
pub struct TlsSettings<S> {
    /// PEM bundle of the certificate authorities that sign the server's certificate. Absent:
    /// the system's root certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<S>,
    /// PEM client certificate, for mutual TLS. Requires `clientKey`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<S>,
    /// PEM private key of the client certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key: Option<S>,
    /// Name to verify the server's certificate against, when it differs from the URL's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// Do not verify the server's certificate. For tests only: it allows anyone in the path
    /// to read and change the traffic.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// The warning for TLS settings that skip certificate verification, naming each field that
/// does (`prefix` comes before `mqtt.` and `kafka.`: "spec." in the custom resource, "" in
/// the runtime configuration); `None` when every side verifies.
pub fn insecure_tls_warning<S, T>(
    prefix: &str,
    mqtt: Option<&TlsSettings<S>>,
    kafka: Option<&TlsSettings<T>>,
) -> Option<String> {
    let fields: Vec<String> = [
        ("mqtt", mqtt.is_some_and(|t| t.insecure_skip_verify)),
        ("kafka", kafka.is_some_and(|t| t.insecure_skip_verify)),
    ]
    .into_iter()
    .filter(|(_, insecure)| *insecure)
    .map(|(side, _)| format!("{prefix}{side}.tls.insecureSkipVerify"))
    .collect();
    let verb = if fields.len() == 1 { "is" } else { "are" };
    (!fields.is_empty()).then(|| {
        format!(
            "{} {verb} set: the broker's certificate is not verified, so anyone between the bridge and the broker can read and change the traffic; use it only with test brokers",
            fields.join(" and ")
        )
    })
}

/// Kafka SASL mechanism.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaslMechanism {
    #[serde(rename = "PLAIN")]
    Plain,
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

impl SaslMechanism {
    /// The name librdkafka and Kafka use.
    pub fn as_kafka_str(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// Kafka SASL authentication.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(
    rename_all = "camelCase",
    deny_unknown_fields,
    bound(deserialize = "S: Deserialize<'de>")
)]
pub struct SaslSettings<S> {
    /// SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
    pub mechanism: SaslMechanism,
    /// Username.
    #[schemars(length(min = 1))]
    pub username: String,
    /// Where the password comes from.
    pub password: S,
}

/// Which replicas must have a record before the producer counts it as written.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Acks {
    /// All in-sync replicas (required for the no-loss promise and for idempotence).
    #[default]
    #[serde(rename = "all")]
    All,
    /// The partition leader only.
    #[serde(rename = "1")]
    Leader,
    /// Nobody: fire and forget.
    #[serde(rename = "0")]
    None,
}

impl Acks {
    pub fn as_kafka_str(self) -> &'static str {
        match self {
            Acks::All => "all",
            Acks::Leader => "1",
            Acks::None => "0",
        }
    }
}

/// Compression codec of produced batches.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    pub fn as_kafka_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

/// Kafka producer settings (MQTT → Kafka).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProducerSettings {
    /// Acknowledgements the producer waits for: "all" (default) or "1". Only "all" keeps the
    /// no-loss promise; "0" is refused (Kafka would confirm nothing, so the bridge would
    /// acknowledge MQTT messages Kafka may never have).
    #[serde(default)]
    pub acks: Acks,
    /// Compression codec: none, gzip, snappy, lz4 or zstd.
    #[serde(default)]
    pub compression: Compression,
    /// How long the producer waits to fill a batch, in milliseconds.
    #[serde(default = "default_linger_ms")]
    #[schemars(range(max = 900000))]
    pub linger_ms: u32,
    /// Largest batch of records per partition, in bytes.
    #[serde(default = "default_batch_size")]
    #[schemars(range(min = 1, max = 2147483647))]
    pub batch_size_bytes: u32,
    /// Largest record the producer sends, in bytes; larger ones go to the dead-letter topic.
    /// Keep it at or below the topic's `max.message.bytes`.
    #[serde(default = "default_max_message_bytes")]
    #[schemars(range(min = 1000, max = 1000000000))]
    pub max_message_bytes: u32,
    /// Idempotent producer: no duplicates from producer retries, and per-partition order kept.
    /// Requires acks "all".
    #[serde(default = "yes")]
    pub idempotence: bool,
}

fn default_linger_ms() -> u32 {
    5
}
fn default_batch_size() -> u32 {
    1_000_000
}
fn default_max_message_bytes() -> u32 {
    1_000_000
}

impl Default for ProducerSettings {
    fn default() -> Self {
        Self {
            acks: Acks::default(),
            compression: Compression::default(),
            linger_ms: default_linger_ms(),
            batch_size_bytes: default_batch_size(),
            max_message_bytes: default_max_message_bytes(),
            idempotence: true,
        }
    }
}

/// Where a consumer group without committed offsets starts reading.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OffsetReset {
    /// The oldest record still in the topic.
    Earliest,
    /// Only records produced from now on.
    #[default]
    Latest,
}

impl OffsetReset {
    pub fn as_kafka_str(self) -> &'static str {
        match self {
            OffsetReset::Earliest => "earliest",
            OffsetReset::Latest => "latest",
        }
    }
}

/// Kafka consumer settings (Kafka → MQTT), defaults for every route.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConsumerSettings {
    /// Where a new consumer group starts: "earliest" or "latest" (default).
    #[serde(default)]
    pub auto_offset_reset: OffsetReset,
}

/// Delivery tuning shared by both directions.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeliverySettings {
    /// Most messages per route that are received but not yet confirmed by the other side.
    /// When the window is full the bridge stops reading, so the broker (or Kafka) buffers:
    /// backpressure instead of memory growth.
    #[serde(default = "default_window")]
    #[schemars(range(min = 1, max = 1000000))]
    pub max_in_flight: u32,
    /// Most payload bytes, in MiB, received but not yet confirmed by the other side: by the
    /// MQTT subscriber (MQTT → Kafka) and by each Kafka → MQTT route, whose consumer also
    /// prefetches at most half of it. Whichever of this and maxInFlight is reached first
    /// stops reading. A single larger message is still taken, alone.
    #[serde(default = "default_window_mib", rename = "maxInFlightMiB")]
    #[schemars(range(min = 1, max = 4096))]
    pub max_in_flight_mib: u32,
    /// On SIGTERM, how long to finish in-flight messages before exiting anyway.
    #[serde(default = "default_grace")]
    #[schemars(range(min = 1, max = 3600))]
    pub shutdown_grace_period_seconds: u32,
}

fn default_window() -> u32 {
    5_000
}
fn default_window_mib() -> u32 {
    32
}
fn default_grace() -> u32 {
    30
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            max_in_flight: default_window(),
            max_in_flight_mib: default_window_mib(),
            shutdown_grace_period_seconds: default_grace(),
        }
    }
}

/// Log output format.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Logging of the runtime.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoggingSettings {
    /// Log format: text or json.
    #[serde(default)]
    pub format: LogFormat,
    /// Log filter in `tracing` syntax, e.g. "info" or "info,bridge_runtime=debug".
    #[serde(default = "default_log_level")]
    #[schemars(length(min = 1, max = 1000))]
    pub level: String,
}

fn default_log_level() -> String {
    "info".to_owned()
}

impl Default for LoggingSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::default(),
            level: default_log_level(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls(insecure: bool) -> TlsSettings<String> {
        TlsSettings {
            ca: None,
            client_certificate: None,
            client_key: None,
            server_name: None,
            insecure_skip_verify: insecure,
        }
    }

    #[test]
    fn the_insecure_tls_warning_names_each_side_that_skips_verification() {
        let (on, off) = (tls(true), tls(false));
        assert_eq!(
            insecure_tls_warning::<String, String>("spec.", None, None),
            None
        );
        assert_eq!(insecure_tls_warning("spec.", Some(&off), Some(&off)), None);
        let mqtt = insecure_tls_warning("spec.", Some(&on), Some(&off)).unwrap_or_default();
        assert!(
            mqtt.starts_with(
                "spec.mqtt.tls.insecureSkipVerify is set: the broker's certificate is not verified"
            ),
            "{mqtt}"
        );
        let both = insecure_tls_warning("", Some(&on), Some(&on)).unwrap_or_default();
        assert!(
            both.starts_with(
                "mqtt.tls.insecureSkipVerify and kafka.tls.insecureSkipVerify are set:"
            ),
            "{both}"
        );
    }
}
