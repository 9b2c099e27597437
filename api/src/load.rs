//! Loading the runtime configuration from YAML: every problem is reported, with its field
//! path, not only the first. Each top-level section and each route is read on its own, so a
//! mistake in one does not hide mistakes in the others.

use serde::de::DeserializeOwned;
use serde_yaml::{Mapping, Value};

use crate::compiled::{CompiledKafkaToMqtt, CompiledMqttToKafka, MqttEndpoint};
use crate::config::RuntimeConfig;
use crate::validate::{
    check_client_id_prefix, check_delivery, check_kafka_connection, check_mqtt_settings,
    compile_routes, index, join, KafkaConnectionRef, RouteContext, ValidationErrors,
};

/// A runtime configuration that passed validation, with its routes compiled.
#[derive(Debug, Clone)]
pub struct ValidConfig {
    pub config: RuntimeConfig,
    pub mqtt_endpoint: MqttEndpoint,
    /// `mqtt.clientIdPrefix`, defaulted to the bridge name.
    pub client_id_prefix: String,
    pub mqtt_to_kafka: Vec<CompiledMqttToKafka>,
    pub kafka_to_mqtt: Vec<CompiledKafkaToMqtt>,
}

/// The top-level fields of [`RuntimeConfig`], in its field order.
pub(crate) const TOP_LEVEL_FIELDS: [&str; 9] = [
    "bridgeName",
    "ordinal",
    "mqtt",
    "kafka",
    "mqttToKafka",
    "kafkaToMqtt",
    "delivery",
    "http",
    "logging",
];

/// Parses and validates a runtime configuration file's text.
pub fn load_runtime_config(yaml: &str) -> Result<ValidConfig, ValidationErrors> {
    let config = parse_runtime_config(yaml)?;
    validate_runtime_config(config)
}

/// Parses YAML into a [`RuntimeConfig`], reporting every structural error found.
pub fn parse_runtime_config(yaml: &str) -> Result<RuntimeConfig, ValidationErrors> {
    let mut errors = ValidationErrors::default();
    let root: Value = match serde_yaml::from_str(yaml) {
        Ok(v) => v,
        Err(e) => {
            errors.push("", format!("not valid YAML: {e}"));
            return Err(errors);
        }
    };
    let Value::Mapping(map) = root else {
        errors.push(
            "",
            "the configuration must be a YAML mapping of fields (bridgeName, mqtt, kafka, ...)",
        );
        return Err(errors);
    };
    for key in map.keys() {
        match key.as_str() {
            Some(k) if TOP_LEVEL_FIELDS.contains(&k) => {}
            _ => errors.push(
                yaml_key(key),
                format!(
                    "unknown field; expected one of {}",
                    TOP_LEVEL_FIELDS.join(", ")
                ),
            ),
        }
    }
    let mut reader = SectionReader {
        map: &map,
        errors: &mut errors,
    };
    let bridge_name = reader.required("bridgeName");
    let ordinal = reader.optional("ordinal");
    let mqtt = reader.required("mqtt");
    let kafka = reader.required("kafka");
    let mqtt_to_kafka = reader.list("mqttToKafka");
    let kafka_to_mqtt = reader.list("kafkaToMqtt");
    let delivery = reader.optional("delivery");
    let http = reader.optional("http");
    let logging = reader.optional("logging");
    match (
        bridge_name,
        ordinal,
        mqtt,
        kafka,
        mqtt_to_kafka,
        kafka_to_mqtt,
        delivery,
        http,
        logging,
    ) {
        (
            Some(bridge_name),
            Some(ordinal),
            Some(mqtt),
            Some(kafka),
            Some(up),
            Some(down),
            Some(delivery),
            Some(http),
            Some(logging),
        ) if errors.is_empty() => Ok(RuntimeConfig {
            bridge_name,
            ordinal,
            mqtt,
            kafka,
            mqtt_to_kafka: up,
            kafka_to_mqtt: down,
            delivery: delivery.unwrap_or_default(),
            http: http.unwrap_or_default(),
            logging: logging.unwrap_or_default(),
        }),
        _ => Err(errors),
    }
}

fn yaml_key(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        other => serde_yaml::to_string(other).map_or_else(|_| "?".into(), |s| s.trim().to_owned()),
    }
}

/// Reads top-level sections one at a time, recording errors with their paths.
struct SectionReader<'a> {
    map: &'a Mapping,
    errors: &'a mut ValidationErrors,
}

impl SectionReader<'_> {
    fn read<T: DeserializeOwned>(&mut self, value: &Value, path: &str) -> Option<T> {
        match serde_path_to_error::deserialize::<_, T>(value.clone()) {
            Ok(v) => Some(v),
            Err(e) => {
                let inner = e.path().to_string();
                let full = match inner.as_str() {
                    "." => path.to_owned(),
                    p if p.starts_with('[') => format!("{path}{p}"),
                    p => join(path, p),
                };
                self.errors.push(full, e.into_inner().to_string());
                None
            }
        }
    }

    fn required<T: DeserializeOwned>(&mut self, field: &str) -> Option<T> {
        match self.map.get(field) {
            Some(value) => self.read(value, field),
            None => {
                self.errors.push(field, "missing required field");
                None
            }
        }
    }

    /// `Some(None)` when absent, `None` when present but invalid.
    fn optional<T: DeserializeOwned>(&mut self, field: &str) -> Option<Option<T>> {
        match self.map.get(field) {
            None | Some(Value::Null) => Some(None),
            Some(value) => self.read(value, field).map(Some),
        }
    }

    /// A list read item by item, so that every bad item is reported.
    fn list<T: DeserializeOwned>(&mut self, field: &str) -> Option<Vec<T>> {
        match self.map.get(field) {
            None | Some(Value::Null) => Some(Vec::new()),
            Some(Value::Sequence(items)) => {
                let read: Vec<Option<T>> = items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| self.read(item, &index(field, i)))
                    .collect();
                read.into_iter().collect()
            }
            Some(_) => {
                self.errors.push(field, "must be a list of routes");
                None
            }
        }
    }
}

/// Validates a parsed configuration and compiles its routes.
pub fn validate_runtime_config(config: RuntimeConfig) -> Result<ValidConfig, ValidationErrors> {
    let mut errors = ValidationErrors::default();
    check_client_id_prefix(&config.bridge_name, "bridgeName", &mut errors);
    let endpoint = check_mqtt_settings(&config.mqtt, "mqtt", &mut errors);
    let kafka = &config.kafka;
    let connection = KafkaConnectionRef {
        bootstrap_servers: &kafka.bootstrap_servers,
        tls: kafka.tls.as_ref(),
        sasl: kafka.sasl.as_ref(),
        producer: &kafka.producer,
        dead_letter_topic: kafka.dead_letter_topic.as_deref(),
    };
    check_kafka_connection(connection, "kafka", &mut errors);
    check_delivery(&config.delivery, "delivery", &mut errors);
    if config.http.listen.parse::<std::net::SocketAddr>().is_err() {
        errors.push(
            "http.listen",
            format!(
                "{:?} is not an address like 0.0.0.0:9090",
                config.http.listen
            ),
        );
    }
    let ctx = RouteContext {
        bridge_name: &config.bridge_name,
        protocol: config.mqtt.protocol_version,
        default_offset_reset: kafka.consumer.auto_offset_reset,
    };
    let (up, down) = compile_routes(
        &ctx,
        &config.mqtt_to_kafka,
        &config.kafka_to_mqtt,
        "",
        &mut errors,
    );
    let client_id_prefix = config
        .mqtt
        .client_id_prefix
        .clone()
        .unwrap_or_else(|| config.bridge_name.clone());
    match endpoint {
        Some(mqtt_endpoint) if errors.is_empty() => Ok(ValidConfig {
            config,
            mqtt_endpoint,
            client_id_prefix,
            mqtt_to_kafka: up,
            kafka_to_mqtt: down,
        }),
        _ => Err(errors),
    }
}

#[cfg(test)]
mod tests;
