//! The MqttKafkaBridge API, shared by the operator and the runtime: the runtime
//! configuration, the routes and connection settings, their one validator, MQTT topic
//! filters and `${...}` templates. With the `k8s` feature, also the custom resource.

pub mod compiled;
pub mod config;
pub mod connection;
#[cfg(feature = "k8s")]
pub mod crd;
pub mod kafka_properties;
pub mod load;
pub mod routes;
pub mod template;
pub mod topic;
pub mod validate;

pub use load::{load_runtime_config, ValidConfig};
