//! The runtime configuration a bridge's pods load, rendered from the spec. Secrets appear only
//! as environment variable names and file paths.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use mkb_api::config::{HttpSettings, KafkaConnection, RuntimeConfig, SecretSource};
use mkb_api::connection::{MqttAuth, MqttSettings, SaslSettings};
use mkb_api::crd::MqttKafkaBridgeSpec;

use super::secrets::{tls_files, ENV_KAFKA_SASL_PASSWORD, ENV_MQTT_PASSWORD};
use super::BridgeInput;

/// The key of the configuration in the ConfigMap; mounted at `/etc/bridge/config.yaml`.
pub const CONFIG_KEY: &str = "config.yaml";

fn env(var: &str) -> SecretSource {
    SecretSource {
        file: None,
        env: Some(var.to_owned()),
    }
}

/// The runtime configuration of bridge `name`. The ordinal is left out: each pod takes it from
/// its name.
pub fn runtime_config(name: &str, spec: &MqttKafkaBridgeSpec) -> RuntimeConfig {
    let m = &spec.mqtt;
    let mqtt = MqttSettings {
        url: m.url.clone(),
        protocol_version: m.protocol_version,
        client_id_prefix: m.client_id_prefix.clone(),
        keep_alive_seconds: m.keep_alive_seconds,
        clean_session: m.clean_session,
        session_expiry_seconds: m.session_expiry_seconds,
        max_inflight: m.max_inflight,
        auth: m.auth.as_ref().map(|a| MqttAuth {
            username: a.username.clone(),
            password: env(ENV_MQTT_PASSWORD),
        }),
        tls: m.tls.as_ref().map(|t| tls_files(t, "mqtt-tls")),
    };
    let k = &spec.kafka;
    let kafka = KafkaConnection {
        bootstrap_servers: k.bootstrap_servers.clone(),
        tls: k.tls.as_ref().map(|t| tls_files(t, "kafka-tls")),
        sasl: k.sasl.as_ref().map(|s| SaslSettings {
            mechanism: s.mechanism,
            username: s.username.clone(),
            password: env(ENV_KAFKA_SASL_PASSWORD),
        }),
        producer: k.producer.clone(),
        consumer: k.consumer.clone(),
        dead_letter_topic: k.dead_letter_topic.clone(),
    };
    RuntimeConfig {
        bridge_name: name.to_owned(),
        ordinal: None,
        mqtt,
        kafka,
        mqtt_to_kafka: spec.mqtt_to_kafka.clone(),
        kafka_to_mqtt: spec.kafka_to_mqtt.clone(),
        delivery: spec.delivery.clone(),
        http: HttpSettings {
            listen: format!("0.0.0.0:{}", spec.metrics.port),
            metrics: spec.metrics.enabled,
        },
        logging: spec.logging.clone(),
    }
}

/// The configuration as the YAML file the runtime reads.
pub fn render_config(name: &str, spec: &MqttKafkaBridgeSpec) -> Result<String, serde_yaml::Error> {
    let header = format!(
        "# bridge-runtime configuration of MqttKafkaBridge {name}, written by mkb-operator.\n"
    );
    Ok(header + &serde_yaml::to_string(&runtime_config(name, spec))?)
}

/// The runtime configuration as text (the config hash covers it) and the ConfigMap that
/// carries it to the pods.
pub struct Configuration {
    pub text: String,
    pub config_map: ConfigMap,
}

pub fn configuration(input: &BridgeInput<'_>) -> Result<Configuration, serde_yaml::Error> {
    let text = render_config(input.name, input.spec)?;
    let config_map = ConfigMap {
        metadata: input.child_meta(input.config_map_name()),
        data: Some(BTreeMap::from([(CONFIG_KEY.to_owned(), text.clone())])),
        ..ConfigMap::default()
    };
    Ok(Configuration { text, config_map })
}
