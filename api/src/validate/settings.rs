//! Checks of connection settings that the custom resource and the runtime configuration share.

use super::{join, ValidationErrors};
use crate::compiled::MqttEndpoint;
use crate::config::SecretSource;
use crate::connection::{
    Acks, DeliverySettings, MqttSettings, MqttVersion, ProducerSettings, SaslSettings, TlsSettings,
};

/// What a secret is used for; TLS material must be a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretUse {
    Password,
    TlsMaterial,
}

/// A reference to a secret value: a Secret key in the custom resource, a file or environment
/// variable in the runtime configuration.
pub trait SecretRef {
    fn check(&self, path: &str, usage: SecretUse, errors: &mut ValidationErrors);
}

impl SecretRef for SecretSource {
    fn check(&self, path: &str, usage: SecretUse, errors: &mut ValidationErrors) {
        if usage == SecretUse::TlsMaterial && self.env.is_some() {
            errors.push(
                join(path, "env"),
                "TLS material must be read from a file; use file",
            );
            return;
        }
        match (&self.file, &self.env) {
            (Some(_), Some(_)) => errors.push(path, "set only one of file and env"),
            (None, None) => errors.push(path, "set file or env"),
            (Some(file), None) if file.is_empty() => {
                errors.push(join(path, "file"), "must not be empty")
            }
            (None, Some(env)) if env.is_empty() => {
                errors.push(join(path, "env"), "must not be empty")
            }
            _ => {}
        }
    }
}

/// Checks TLS settings.
pub fn check_tls<S: SecretRef>(tls: &TlsSettings<S>, path: &str, errors: &mut ValidationErrors) {
    for (field, secret) in [
        ("ca", &tls.ca),
        ("clientCertificate", &tls.client_certificate),
        ("clientKey", &tls.client_key),
    ] {
        if let Some(secret) = secret {
            secret.check(&join(path, field), SecretUse::TlsMaterial, errors);
        }
    }
    if tls.client_certificate.is_some() != tls.client_key.is_some() {
        errors.push(
            path,
            "clientCertificate and clientKey go together: set both or neither",
        );
    }
}

/// Checks SASL settings.
pub fn check_sasl<S: SecretRef>(sasl: &SaslSettings<S>, path: &str, errors: &mut ValidationErrors) {
    if sasl.username.is_empty() {
        errors.push(join(path, "username"), "must not be empty");
    }
    sasl.password
        .check(&join(path, "password"), SecretUse::Password, errors);
}

/// Checks the MQTT settings; returns the parsed endpoint when the URL is valid.
pub fn check_mqtt_settings<S: SecretRef>(
    mqtt: &MqttSettings<S>,
    path: &str,
    errors: &mut ValidationErrors,
) -> Option<MqttEndpoint> {
    let endpoint = match MqttEndpoint::parse(&mqtt.url) {
        Ok(endpoint) => Some(endpoint),
        Err(why) => {
            errors.push(join(path, "url"), why);
            None
        }
    };
    if let Some(prefix) = &mqtt.client_id_prefix {
        check_client_id_prefix(prefix, &join(path, "clientIdPrefix"), errors);
    }
    if !(5..=65535).contains(&mqtt.keep_alive_seconds) {
        errors.push(
            join(path, "keepAliveSeconds"),
            format!(
                "{} is out of range: use 5 to 65535 seconds",
                mqtt.keep_alive_seconds
            ),
        );
    }
    if mqtt.protocol_version == MqttVersion::V311 && mqtt.session_expiry_seconds.is_some() {
        errors.push(
            join(path, "sessionExpirySeconds"),
            "MQTT 3.1.1 has no session expiry, so this would do nothing (the broker's own settings decide how long it keeps the session, e.g. Mosquitto's persistent_client_expiration): set protocolVersion to \"5\" or remove it",
        );
    }
    if !(1..=65535).contains(&mqtt.max_inflight) {
        errors.push(
            join(path, "maxInflight"),
            format!("{} is out of range: use 1 to 65535", mqtt.max_inflight),
        );
    }
    if let Some(auth) = &mqtt.auth {
        if auth.username.is_empty() {
            errors.push(join(path, "auth.username"), "must not be empty");
        }
        auth.password
            .check(&join(path, "auth.password"), SecretUse::Password, errors);
    }
    if let Some(tls) = &mqtt.tls {
        if matches!(&endpoint, Some(e) if !e.tls) {
            errors.push(join(path, "tls"), "TLS settings need an mqtts:// url");
        }
        check_tls(tls, &join(path, "tls"), errors);
    }
    endpoint
}

/// Client ids are sent to every broker; keep them to characters all brokers accept.
pub fn check_client_id_prefix(prefix: &str, path: &str, errors: &mut ValidationErrors) {
    let ok = !prefix.is_empty()
        && prefix.len() <= 100
        && prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok {
        errors.push(
            path,
            format!("{prefix:?} must be 1-100 characters of letters, digits, '-', '_' or '.'"),
        );
    }
}

/// A comma-separated list of `host:port`.
pub fn check_bootstrap_servers(servers: &str, path: &str, errors: &mut ValidationErrors) {
    if servers.trim().is_empty() {
        errors.push(path, "must list at least one host:port");
        return;
    }
    for server in servers.split(',').map(str::trim) {
        let valid = server.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
        });
        if !valid {
            errors.push(path, format!("{server:?} is not host:port"));
        }
    }
}

/// Kafka's rules for topic names: 1-249 of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn check_kafka_topic_name(name: &str, path: &str, errors: &mut ValidationErrors) {
    let chars_ok = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if name.is_empty() || name.len() > 249 || !chars_ok || name == "." || name == ".." {
        errors.push(
            path,
            format!("{name:?} is not a valid Kafka topic name (1-249 characters of a-z, A-Z, 0-9, '.', '_', '-')"),
        );
    }
}

pub fn check_producer_settings(
    producer: &ProducerSettings,
    path: &str,
    errors: &mut ValidationErrors,
) {
    if producer.acks == Acks::None {
        errors.push(
            join(path, "acks"),
            "\"0\" means Kafka confirms no write, so the bridge would acknowledge MQTT messages Kafka may never have: use \"all\" (or \"1\")",
        );
    } else if producer.idempotence && producer.acks != Acks::All {
        errors.push(
            join(path, "idempotence"),
            "the idempotent producer requires acks \"all\"; set acks to \"all\" or idempotence to false",
        );
    }
    if producer.linger_ms > 900_000 {
        errors.push(join(path, "lingerMs"), "must be at most 900000");
    }
    if producer.batch_size_bytes == 0 || producer.batch_size_bytes > i32::MAX as u32 {
        errors.push(
            join(path, "batchSizeBytes"),
            "must be between 1 and 2147483647",
        );
    }
    if !(1000..=1_000_000_000).contains(&producer.max_message_bytes) {
        errors.push(
            join(path, "maxMessageBytes"),
            "must be between 1000 and 1000000000",
        );
    }
}

/// The Kafka connection as both the custom resource and the runtime configuration have it.
pub struct KafkaConnectionRef<'a, S> {
    pub bootstrap_servers: &'a str,
    pub tls: Option<&'a TlsSettings<S>>,
    pub sasl: Option<&'a SaslSettings<S>>,
    pub producer: &'a ProducerSettings,
    pub dead_letter_topic: Option<&'a str>,
}

/// Checks the Kafka connection settings under `path` (`kafka` or `spec.kafka`).
pub fn check_kafka_connection<S: SecretRef>(
    kafka: KafkaConnectionRef<'_, S>,
    path: &str,
    errors: &mut ValidationErrors,
) {
    check_bootstrap_servers(
        kafka.bootstrap_servers,
        &join(path, "bootstrapServers"),
        errors,
    );
    if let Some(tls) = kafka.tls {
        check_tls(tls, &join(path, "tls"), errors);
        if tls.server_name.is_some() {
            errors.push(
                join(path, "tls.serverName"),
                "is not supported for Kafka: librdkafka verifies the host name each broker advertises",
            );
        }
    }
    if let Some(sasl) = kafka.sasl {
        check_sasl(sasl, &join(path, "sasl"), errors);
    }
    check_producer_settings(kafka.producer, &join(path, "producer"), errors);
    if let Some(topic) = kafka.dead_letter_topic {
        check_kafka_topic_name(topic, &join(path, "deadLetterTopic"), errors);
    }
}

pub fn check_delivery(delivery: &DeliverySettings, path: &str, errors: &mut ValidationErrors) {
    if delivery.max_in_flight == 0 {
        errors.push(join(path, "maxInFlight"), "must be at least 1");
    }
    if !(1..=4096).contains(&delivery.max_in_flight_mib) {
        errors.push(
            join(path, "maxInFlightMiB"),
            format!("{} is outside 1 to 4096", delivery.max_in_flight_mib),
        );
    }
    if delivery.shutdown_grace_period_seconds == 0 {
        errors.push(
            join(path, "shutdownGracePeriodSeconds"),
            "must be at least 1",
        );
    }
}
