//! Where a scenario's bridge and its load connect: Mosquitto and the single Kafka broker
//! behind toxiproxy (the network faults), the three-broker Kafka cluster (failover), or HiveMQ.

use crate::env;

#[derive(Debug, Clone)]
pub struct Brokers {
    /// The MQTT broker as the load's clients reach it (never through a proxy).
    pub mqtt_host: String,
    pub mqtt_port: u16,
    /// The MQTT port the bridge connects to (toxiproxy's, for the network faults).
    pub bridge_mqtt_port: u16,
    /// Kafka as the load's clients (and the topic set-up) reach it.
    pub kafka_bootstrap: String,
    pub bridge_kafka_bootstrap: String,
    /// The bridge's topics' replication factor.
    pub replicas: i32,
    /// Whether the operator creates the topics (see `topics.rs`), rather than the harness.
    pub topics_by_operator: bool,
}

impl Brokers {
    /// Mosquitto and the single broker; the bridge behind toxiproxy.
    pub fn proxied() -> Self {
        let env = env();
        Self {
            mqtt_host: env.mqtt_host.clone(),
            mqtt_port: env.mqtt_port,
            bridge_mqtt_port: env.mqtt_proxied_port,
            kafka_bootstrap: env.kafka_bootstrap.clone(),
            bridge_kafka_bootstrap: env.kafka_proxied_bootstrap.clone(),
            replicas: 1,
            topics_by_operator: false,
        }
    }

    /// Mosquitto and the three-broker cluster, topics replicated three times
    /// (`min.insync.replicas=2`, the cluster's default).
    pub fn kafka_cluster() -> Self {
        let env = env();
        Self {
            mqtt_host: env.mqtt_host.clone(),
            mqtt_port: env.mqtt_port,
            bridge_mqtt_port: env.mqtt_port,
            kafka_bootstrap: env.kafka_cluster_bootstrap.clone(),
            bridge_kafka_bootstrap: env.kafka_cluster_bootstrap.clone(),
            replicas: 3,
            topics_by_operator: true,
        }
    }

    /// HiveMQ CE and the single Kafka broker.
    pub fn hivemq() -> Self {
        let env = env();
        Self {
            mqtt_host: "127.0.0.1".to_owned(),
            mqtt_port: env.hivemq_port,
            bridge_mqtt_port: env.hivemq_port,
            kafka_bootstrap: env.kafka_bootstrap.clone(),
            bridge_kafka_bootstrap: env.kafka_bootstrap.clone(),
            replicas: 1,
            topics_by_operator: false,
        }
    }
}
