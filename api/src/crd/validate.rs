//! Validation of a bridge's spec: the checks the runtime makes on its configuration (same
//! code), plus the rules that only exist in Kubernetes (replicas, Secret references, names).

use std::collections::HashSet;

use super::{MqttKafkaBridgeSpec, SecretKeyRef};
use crate::validate::{
    check_delivery, check_kafka_connection, check_kafka_topic_name, check_mqtt_settings,
    compile_routes, index, join, KafkaConnectionRef, RouteContext, SecretRef, SecretUse,
    ValidationErrors,
};

/// Longest bridge name: StatefulSet pods add `-<ordinal>` and a controller-revision-hash label
/// that must fit in 63 characters.
pub const MAX_NAME_LENGTH: usize = 52;

impl SecretRef for SecretKeyRef {
    fn check(&self, path: &str, _usage: SecretUse, errors: &mut ValidationErrors) {
        if !is_dns_subdomain(&self.name) {
            errors.push(
                join(path, "name"),
                format!("{:?} is not a valid Secret name", self.name),
            );
        }
        let key_ok = !self.key.is_empty()
            && self.key.len() <= 253
            && self
                .key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !key_ok {
            errors.push(
                join(path, "key"),
                format!(
                    "{:?} is not a valid Secret key (letters, digits, '-', '_', '.')",
                    self.key
                ),
            );
        }
    }
}

fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty() && name.len() <= 253 && name.split('.').all(crate::validate::is_dns_label)
}

/// Validates a bridge named `name`; every problem is reported with its path under `spec`.
pub fn validate_spec(name: &str, spec: &MqttKafkaBridgeSpec) -> Result<(), ValidationErrors> {
    let mut errors = ValidationErrors::default();
    if name.len() > MAX_NAME_LENGTH {
        errors.push(
            "metadata.name",
            format!(
                "is {} characters long; a bridge name can have at most {MAX_NAME_LENGTH}",
                name.len()
            ),
        );
    }
    if !(0..=1000).contains(&spec.replicas) {
        errors.push(
            "spec.replicas",
            format!("{} is out of range 0-1000", spec.replicas),
        );
    }
    if spec.replicas > 1 {
        for (i, route) in spec.mqtt_to_kafka.iter().enumerate() {
            if !route.mqtt.shared {
                errors.push(
                    join(&index("spec.mqttToKafka", i), "mqtt.shared"),
                    format!(
                        "must be true when replicas is {}: without a shared subscription every replica receives, and writes, every message",
                        spec.replicas
                    ),
                );
            }
        }
    }
    check_mqtt_settings(&spec.mqtt, "spec.mqtt", &mut errors);
    let kafka = &spec.kafka;
    let connection = KafkaConnectionRef {
        bootstrap_servers: &kafka.bootstrap_servers,
        tls: kafka.tls.as_ref(),
        sasl: kafka.sasl.as_ref(),
        producer: &kafka.producer,
        dead_letter_topic: kafka.dead_letter_topic.as_deref(),
    };
    check_kafka_connection(connection, "spec.kafka", &mut errors);
    let mut topic_names = HashSet::new();
    for (i, topic) in kafka.topics.iter().enumerate() {
        let path = index("spec.kafka.topics", i);
        check_kafka_topic_name(&topic.name, &join(&path, "name"), &mut errors);
        if !topic_names.insert(topic.name.as_str()) {
            errors.push(
                join(&path, "name"),
                format!("topic {:?} is listed twice", topic.name),
            );
        }
        if let Some(partitions) = topic.partitions {
            if !(1..=100_000).contains(&partitions) {
                errors.push(
                    join(&path, "partitions"),
                    format!("{partitions} is out of range 1-100000"),
                );
            }
        }
        for key in topic.config.keys() {
            let key_ok = !key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
            if !key_ok {
                errors.push(
                    format!("{}[{key:?}]", join(&path, "config")),
                    "is not a Kafka configuration name (letters, digits, '.', '_', '-')",
                );
            }
        }
        if topic.replication_factor == 0 || topic.replication_factor < -1 {
            errors.push(
                join(&path, "replicationFactor"),
                "must be at least 1, or -1 for the cluster default",
            );
        }
    }
    if !(1..=65535).contains(&spec.metrics.port) {
        errors.push(
            "spec.metrics.port",
            format!("{} is not a port (1-65535)", spec.metrics.port),
        );
    }
    check_delivery(&spec.delivery, "spec.delivery", &mut errors);
    let ctx = RouteContext {
        bridge_name: name,
        protocol: spec.mqtt.protocol_version,
        default_offset_reset: kafka.consumer.auto_offset_reset,
    };
    compile_routes(
        &ctx,
        &spec.mqtt_to_kafka,
        &spec.kafka_to_mqtt,
        "spec",
        &mut errors,
    );
    errors.into_result(())
}
