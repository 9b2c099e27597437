//! The status of a bridge, written by the operator.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Condition types and reasons the operator sets (kstatus-compatible).
pub mod conditions {
    /// True when the current generation is fully rolled out and every replica is ready.
    pub const READY: &str = "Ready";
    /// True while a rollout or scaling is under way.
    pub const PROGRESSING: &str = "Progressing";
    /// True when the bridge cannot reach its desired state (invalid spec, failed apply).
    pub const DEGRADED: &str = "Degraded";
    /// True when every topic the bridge manages exists as its spec asks.
    pub const TOPICS_READY: &str = "TopicsReady";
    /// True when no MQTT session beyond the replicas may hold messages: the sessions of
    /// replicas removed by a scale-down have been drained into Kafka and ended.
    pub const SESSIONS_RETIRED: &str = "SessionsRetired";
    /// Present (True) only while a TLS connection of the bridge skips certificate
    /// verification (`insecureSkipVerify`); it does not keep the bridge from Ready.
    pub const INSECURE_TLS: &str = "InsecureTls";

    pub const REASON_INVALID_SPEC: &str = "InvalidSpec";
    pub const REASON_ROLLED_OUT: &str = "RolledOut";
    pub const REASON_ROLLING_OUT: &str = "RollingOut";
    pub const REASON_APPLY_FAILED: &str = "ApplyFailed";
    pub const REASON_AS_EXPECTED: &str = "AsExpected";
    /// The Kafka cluster cannot be reached (or refuses the connection).
    pub const REASON_KAFKA_UNAVAILABLE: &str = "KafkaUnavailable";
    /// A topic differs from its spec in a way the operator cannot or must not fix.
    pub const REASON_TOPIC_ERROR: &str = "TopicError";
    /// Sessions of removed replicas are being drained and ended.
    pub const REASON_RETIRING: &str = "Retiring";
    /// A retirement Job gave up; it is kept for its logs.
    pub const REASON_RETIRE_FAILED: &str = "RetireFailed";
    /// Zero replicas: every session is kept, so the broker queues for it.
    pub const REASON_PAUSED: &str = "Paused";
    /// `insecureSkipVerify` is set on the MQTT or Kafka connection.
    pub const REASON_INSECURE_SKIP_VERIFY: &str = "InsecureSkipVerify";
}

/// Observed state of a bridge.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MqttKafkaBridgeStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Progressing and Degraded, each with the generation it was computed for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Pods of the bridge's StatefulSet (the scale subresource reads it).
    #[serde(default)]
    pub replicas: i32,
    /// Pods that are ready.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Label selector of the pods, for the scale subresource (HorizontalPodAutoscaler).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<String>,
    /// Number of routes, both directions.
    #[serde(default)]
    pub routes: i32,
    /// Hash of the runtime configuration and referenced Secrets that the pods run with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_hash: Option<String>,
    /// Id of the Kafka cluster the topics were last managed in (tells bridges that share a
    /// cluster apart from bridges that merely share topic names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka_cluster_id: Option<String>,
    /// The replica ordinals 0…n-1 whose persistent MQTT sessions may exist at the broker:
    /// the most replicas run since the sessions of removed ones were last retired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mqtt_sessions: Option<i32>,
    /// State of each managed Kafka topic.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub topics: Vec<TopicStatus>,
}

/// State of one managed Kafka topic.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TopicStatus {
    /// Topic name.
    pub name: String,
    /// Ready, Pending or Failed.
    pub state: TopicState,
    /// Partitions the topic has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<i32>,
    /// Replicas of each partition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_factor: Option<i32>,
    /// This bridge created the topic: with `topicDeletionPolicy: Delete` it is deleted with
    /// the bridge.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub created: bool,
    /// Why the topic is not ready, or that other bridges share it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// State of a managed topic.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TopicState {
    /// The topic exists as the spec asks.
    Ready,
    /// Not known yet: Kafka could not be reached.
    Pending,
    /// The topic is missing or differs from the spec; the message says how.
    Failed,
}
