//! Routes: what moves where. The same types appear in the custom resource
//! (`spec.mqttToKafka`, `spec.kafkaToMqtt`) and in the runtime configuration, so a route is
//! validated by the same code in the operator and in the runtime.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::connection::OffsetReset;

fn qos_one() -> u8 {
    1
}
fn yes() -> bool {
    true
}

/// A route from MQTT topic filters to a Kafka topic.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MqttToKafkaRoute {
    /// Name of the route, unique among all routes of the bridge: lowercase letters, digits
    /// and '-'. Appears in metrics, logs, dead-letter headers and default group names.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// The MQTT subscription.
    pub mqtt: MqttSource,
    /// How each message becomes a Kafka record.
    pub kafka: KafkaSink,
}

/// The MQTT side of an MQTT → Kafka route.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "!has(self.shareGroup) || self.shared",
    "message": "shareGroup requires shared: true"
}]))]
pub struct MqttSource {
    /// MQTT topic filters to subscribe to, e.g. `devices/+/state` or `cars/+/can/#`. Write
    /// plain filters; set `shared` rather than writing `$share/...`.
    #[schemars(length(min = 1, max = 100), inner(length(min = 1, max = 65535)))]
    pub topic_filters: Vec<String>,
    /// QoS of the subscription: 0, 1 (the default) or 2. QoS 1 and 2 messages are
    /// acknowledged to the broker (PUBACK, PUBREC) only after Kafka has them; QoS 0 messages
    /// can be lost by the broker anyway. QoS 2 ends the MQTT side exactly once, but the write
    /// into Kafka is at least once either way: a message whose PUBREC was lost with the
    /// connection comes again.
    #[serde(default = "qos_one")]
    #[schemars(range(min = 0, max = 2))]
    pub qos: u8,
    /// Subscribe as a shared subscription (`$share/<group>/<filter>`), so that each message
    /// goes to one replica of the bridge. Required when the bridge has more than one replica.
    #[serde(default = "yes")]
    pub shared: bool,
    /// Share group of the shared subscription. Defaults to `<bridge>.<route>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 200), regex(pattern = r"^[^/+#]+$"))]
    pub share_group: Option<String>,
}

/// The Kafka side of an MQTT → Kafka route.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KafkaSink {
    /// Kafka topic: a name (`lock-state`) or a template (`telemetry-${topic[1]}`). A message
    /// whose topic cannot be rendered goes to the dead-letter topic.
    #[schemars(length(min = 1, max = 1000))]
    pub topic: String,
    /// Record key template, e.g. `${topic[1]}` to key by device id so each device's messages
    /// stay in order in one partition. Absent: records have no key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1000))]
    pub key: Option<String>,
    /// Record value.
    #[serde(default)]
    pub value: ValueSpec,
    /// Extra record headers: header name to value template.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Forward MQTT 5 user properties as Kafka headers. Default: on with MQTT 5; MQTT 3.1.1
    /// has no user properties, so `true` is refused there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward_user_properties: Option<bool>,
    /// How records are spread over partitions: byKey (default; records without a key are
    /// spread at random), random or roundRobin.
    #[serde(default)]
    pub partitioner: Partitioner,
}

/// The format of the record value.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum ValueFormat {
    /// The MQTT payload, byte for byte.
    #[default]
    Raw,
    /// A JSON object: topic, payload (UTF-8 text, or base64 with `encoding: base64`), qos,
    /// retain, timestamp and userProperties.
    Envelope,
    /// The rendered `template`.
    Template,
}

/// The record value of an MQTT → Kafka route.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "self.format == 'template' ? has(self.template) : !has(self.template)",
    "message": "template is required when format is template, and allowed only then"
}]))]
pub struct ValueSpec {
    /// raw (default), envelope or template.
    #[serde(default)]
    pub format: ValueFormat,
    /// Value template, e.g. `{"device":"${topic[1]}","celsius":${payload.temp}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 65536))]
    pub template: Option<String>,
}

/// How records are assigned to partitions.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum Partitioner {
    /// Hash of the key (murmur2, as the Java client), so one key stays in one partition.
    #[default]
    ByKey,
    /// A random partition per record.
    Random,
    /// Partitions in turn.
    RoundRobin,
}

/// A route from Kafka topics to MQTT.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KafkaToMqttRoute {
    /// Name of the route, unique among all routes of the bridge: lowercase letters, digits
    /// and '-'.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// The Kafka subscription.
    pub kafka: KafkaSource,
    /// How each record becomes an MQTT message.
    pub mqtt: MqttSink,
}

/// The Kafka side of a Kafka → MQTT route.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.topicPattern) != (has(self.topics) && size(self.topics) > 0)",
    "message": "set exactly one of topics and topicPattern"
}]))]
pub struct KafkaSource {
    /// Kafka topics to consume.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100), inner(length(min = 1, max = 249)))]
    pub topics: Vec<String>,
    /// A regular expression of topic names to consume instead of a list, e.g.
    /// `^commands\..*` (anchored with `^`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1000))]
    pub topic_pattern: Option<String>,
    /// Consumer group. Defaults to `<bridge>.<route>`. Replicas share the group, so each
    /// partition is read by one replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 249))]
    pub group_id: Option<String>,
    /// Where a new group starts: earliest or latest. Defaults to kafka.consumer.autoOffsetReset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_offset_reset: Option<OffsetReset>,
}

/// The MQTT side of a Kafka → MQTT route.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MqttSink {
    /// MQTT topic template, e.g. `devices/${.key}/command`. A record whose topic cannot be
    /// rendered (a missing header or field) goes to the dead-letter topic.
    #[schemars(length(min = 1, max = 65535))]
    pub topic: String,
    /// Payload template. Defaults to `${.value}`, the record value byte for byte.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 65536))]
    pub payload: Option<String>,
    /// QoS of the publish: 0, 1 or 2. An offset is committed only after the broker confirmed
    /// every record up to it (PUBACK for 1, PUBCOMP for 2).
    #[serde(default = "qos_one")]
    #[schemars(range(min = 0, max = 2))]
    pub qos: u8,
    /// Publish as retained messages.
    #[serde(default)]
    pub retain: bool,
    /// Forward Kafka headers as MQTT 5 user properties. Default: on with MQTT 5; MQTT 3.1.1
    /// has no user properties, so `true` is refused there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward_headers: Option<bool>,
}
