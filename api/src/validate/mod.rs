//! One validator for the operator and the runtime: it turns routes and settings into their
//! compiled form, or into a list of every problem found, each with its field path
//! (`spec.mqttToKafka[2].kafka.key: unknown placeholder ${topc} at column 3`).

mod routes;
mod settings;

use std::fmt;

#[cfg(feature = "k8s")]
pub(crate) use routes::is_dns_label;
pub use routes::{compile_routes, RouteContext, DEFAULT_PAYLOAD_TEMPLATE};
pub use settings::{
    check_client_id_prefix, check_delivery, check_kafka_connection, check_kafka_topic_name,
    check_mqtt_settings, KafkaConnectionRef, SecretRef, SecretUse,
};

/// One problem, at one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Where, e.g. `mqttToKafka[2].kafka.key`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Every problem found in a configuration or a spec.
#[derive(Debug, Clone, Default, PartialEq, Eq, thiserror::Error)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl ValidationErrors {
    pub fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            path: path.into(),
            message: message.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &FieldError> {
        self.0.iter()
    }

    /// `Ok(value)` when nothing was found, else these errors.
    pub fn into_result<T>(self, value: T) -> Result<T, Self> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

/// Joins a field path: `join("spec", "mqtt")` = `spec.mqtt`; `join("", "mqtt")` = `mqtt`.
pub fn join(base: &str, field: &str) -> String {
    if base.is_empty() {
        field.to_owned()
    } else {
        format!("{base}.{field}")
    }
}

/// `index("spec.mqttToKafka", 2)` = `spec.mqttToKafka[2]`.
pub fn index(base: &str, i: usize) -> String {
    format!("{base}[{i}]")
}
