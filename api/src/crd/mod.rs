//! The `MqttKafkaBridge` custom resource (group `mqttkafka.io`, version `v1alpha1`).

mod generate;
mod status;
mod validate;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, LocalObjectReference, ResourceRequirements, Toleration, TopologySpreadConstraint,
};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::connection::{
    ConsumerSettings, DeliverySettings, LoggingSettings, MqttSettings, ProducerSettings,
    SaslSettings, TlsSettings,
};
use crate::routes::{KafkaToMqttRoute, MqttToKafkaRoute};
pub use generate::{crd_yaml, CRD_PATH};
pub use status::{conditions, MqttKafkaBridgeStatus, TopicState, TopicStatus};
pub use validate::{validate_spec, MAX_NAME_LENGTH};

fn one() -> i32 {
    1
}
fn yes() -> bool {
    true
}

/// An MQTT ⇄ Kafka bridge: a StatefulSet of bridge-runtime pods that move device data from
/// MQTT topic filters into Kafka topics, and commands from Kafka topics back to MQTT, with
/// at-least-once delivery in both directions.
// Each printcolumn(...) repeats the same keys, which clippy mistakes for duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[kube(
    group = "mqttkafka.io",
    version = "v1alpha1",
    kind = "MqttKafkaBridge",
    plural = "mqttkafkabridges",
    shortname = "mkb",
    namespaced,
    status = "MqttKafkaBridgeStatus",
    derive = "PartialEq",
    doc = "An MQTT ⇄ Kafka bridge, run as a StatefulSet of bridge-runtime pods.",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.labelSelector"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Replicas", type_ = "integer", json_path = ".spec.replicas"),
    printcolumn(name = "Routes", type_ = "integer", json_path = ".status.routes"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason",
        priority = 1
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.replicas <= 1 || !has(self.mqttToKafka) || self.mqttToKafka.all(r, r.mqtt.shared)",
        "message": "replicas > 1 requires mqtt.shared: true on every mqttToKafka route; otherwise every replica receives, and writes, every message",
        "fieldPath": ".replicas"
    },
    {
        "rule": "!has(self.mqttToKafka) || !has(self.kafkaToMqtt) || self.mqttToKafka.all(a, self.kafkaToMqtt.all(b, a.name != b.name))",
        "message": "route names must be unique across mqttToKafka and kafkaToMqtt"
    },
    {
        "rule": "(has(self.mqttToKafka) && size(self.mqttToKafka) > 0) || (has(self.kafkaToMqtt) && size(self.kafkaToMqtt) > 0)",
        "message": "the bridge has no routes: add a mqttToKafka or kafkaToMqtt route"
    }
]))]
pub struct MqttKafkaBridgeSpec {
    /// Number of bridge-runtime pods. MQTT → Kafka routes share messages between them through
    /// shared subscriptions, Kafka → MQTT routes share partitions through consumer groups.
    #[serde(default = "one")]
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: i32,
    /// The MQTT broker.
    pub mqtt: MqttSettings<SecretKeyRef>,
    /// The Kafka cluster.
    pub kafka: KafkaSpec,
    /// Routes from MQTT topic filters to Kafka topics.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub mqtt_to_kafka: Vec<MqttToKafkaRoute>,
    /// Routes from Kafka topics to MQTT topics.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub kafka_to_mqtt: Vec<KafkaToMqttRoute>,
    /// In-flight window and shutdown grace period of every pod.
    #[serde(default)]
    pub delivery: DeliverySettings,
    /// Log format and filter of the pods.
    #[serde(default)]
    pub logging: LoggingSettings,
    /// The Prometheus endpoint of the pods.
    #[serde(default)]
    pub metrics: MetricsSpec,
    /// Container image of bridge-runtime. Defaults to the image the operator was installed with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1000))]
    pub image: Option<String>,
    /// Image pull policy: Always, IfNotPresent or Never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<PullPolicy>,
    /// CPU and memory requests and limits of the bridge-runtime container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Overrides of the pod template.
    #[serde(default)]
    pub pod: PodOverrides,
}

/// A key of a Secret in the bridge's namespace.
#[derive(
    Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key within the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// The Kafka cluster and the topics the operator manages.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KafkaSpec {
    /// Comma-separated `host:port` list of bootstrap brokers.
    #[schemars(length(min = 1, max = 4096))]
    pub bootstrap_servers: String,
    /// TLS to the brokers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSettings<SecretKeyRef>>,
    /// SASL authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sasl: Option<SaslSettings<SecretKeyRef>>,
    /// Producer settings (MQTT → Kafka).
    #[serde(default)]
    pub producer: ProducerSettings,
    /// Consumer settings (Kafka → MQTT).
    #[serde(default)]
    pub consumer: ConsumerSettings,
    /// Topic for messages that can never be delivered (too large, template fails), with the
    /// reason in headers. Absent: such messages are logged, counted and dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 249))]
    pub dead_letter_topic: Option<String>,
    /// Topics the operator manages through the Kafka Admin API: created when missing,
    /// partitions grown, configuration set by incremental alter. The literal topics of the
    /// routes and the dead-letter topic are created too (with the cluster's defaults) unless
    /// listed here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 200), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub topics: Vec<KafkaTopicSpec>,
    /// What happens to the topics this bridge created when the bridge is deleted: Retain
    /// (default) keeps them and their data; Delete removes them, unless another bridge still
    /// uses them.
    #[serde(default)]
    pub topic_deletion_policy: TopicDeletionPolicy,
}

/// A Kafka topic the operator manages.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KafkaTopicSpec {
    /// Topic name.
    #[schemars(length(min = 1, max = 249))]
    pub name: String,
    /// Number of partitions. Absent: the cluster's default (`num.partitions`) at creation.
    /// Raising it adds partitions; Kafka cannot remove partitions, so a lower number is
    /// reported (Degraded) and the topic keeps what it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100000))]
    pub partitions: Option<i32>,
    /// Replication factor at creation; -1 uses the cluster's default. It is not changed for an
    /// existing topic (that needs a partition reassignment): a difference is reported.
    #[serde(default = "default_replication")]
    #[schemars(range(min = -1, max = 32767))]
    pub replication_factor: i32,
    /// Topic configuration, e.g. `retention.ms: "604800000"`. Keys listed here are set;
    /// other keys of the topic are left as they are.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
}

fn default_replication() -> i32 {
    -1
}

/// What happens to managed topics when the bridge is deleted.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TopicDeletionPolicy {
    /// Keep the topics and their data.
    #[default]
    Retain,
    /// Delete the topics.
    Delete,
}

/// The Prometheus endpoint of the pods.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MetricsSpec {
    /// Serve /metrics (the health probes are served either way).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Port of /metrics, /healthz and /readyz.
    #[serde(default = "default_metrics_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
}

fn default_metrics_port() -> i32 {
    9090
}

impl Default for MetricsSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            port: default_metrics_port(),
        }
    }
}

/// Image pull policy.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

impl PullPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        }
    }
}

/// Overrides of the pods' template.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodOverrides {
    /// Extra labels of the pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Extra annotations of the pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Node selector of the pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Tolerations of the pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Affinity of the pods. Replaces the default, which prefers spreading replicas over nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// How the pods spread over zones or nodes (added to the default anti-affinity, or to
    /// `affinity`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topology_spread_constraints: Vec<TopologySpreadConstraint>,
    /// Priority class of the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
    /// Service account of the pods (the runtime does not call the Kubernetes API; its token
    /// is not mounted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// Secrets for pulling the image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,
}

#[cfg(test)]
mod tests;
