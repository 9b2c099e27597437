//! Which topics a bridge needs and what to do about each one (pure: no client, no I/O).

use std::collections::BTreeMap;

use mkb_api::crd::MqttKafkaBridgeSpec;
use mkb_api::template::{Scope, Template};

/// A topic the bridge needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredTopic {
    pub name: String,
    /// The field of the spec that asks for it, for messages.
    pub path: String,
    /// Partitions at creation and the floor afterwards; `None`: the cluster's default.
    pub partitions: Option<i32>,
    /// At creation; -1: the cluster's default.
    pub replication_factor: i32,
    /// Keys the operator sets (by incremental alter once the topic exists).
    pub config: BTreeMap<String, String>,
    /// Listed in `spec.kafka.topics`: its settings are managed. The other topics (literal route
    /// topics, the dead-letter topic) are only created when missing, with the defaults.
    pub listed: bool,
}

/// Every topic the bridge needs, by name: the listed topics first (their settings win), then
/// the dead-letter topic and every literal topic of a route. Templated topics are the user's
/// to create: their names are only known per message.
pub fn desired_topics(spec: &MqttKafkaBridgeSpec) -> Vec<DesiredTopic> {
    let mut topics: BTreeMap<String, DesiredTopic> = BTreeMap::new();
    for (i, t) in spec.kafka.topics.iter().enumerate() {
        topics.entry(t.name.clone()).or_insert(DesiredTopic {
            name: t.name.clone(),
            path: format!("spec.kafka.topics[{i}]"),
            partitions: t.partitions,
            replication_factor: t.replication_factor,
            config: t.config.clone(),
            listed: true,
        });
    }
    let mut implied = |name: &str, path: String| {
        topics.entry(name.to_owned()).or_insert(DesiredTopic {
            name: name.to_owned(),
            path,
            partitions: None,
            replication_factor: -1,
            config: BTreeMap::new(),
            listed: false,
        });
    };
    if let Some(dlt) = &spec.kafka.dead_letter_topic {
        implied(dlt, "spec.kafka.deadLetterTopic".to_owned());
    }
    for (i, route) in spec.mqtt_to_kafka.iter().enumerate() {
        let literal = Template::parse(&route.kafka.topic, Scope::MqttMessage)
            .ok()
            .and_then(|t| t.as_literal().map(str::to_owned));
        if let Some(name) = literal.filter(|n| !n.is_empty()) {
            implied(&name, format!("spec.mqttToKafka[{i}].kafka.topic"));
        }
    }
    for (i, route) in spec.kafka_to_mqtt.iter().enumerate() {
        for (j, name) in route.kafka.topics.iter().enumerate() {
            implied(name, format!("spec.kafkaToMqtt[{i}].kafka.topics[{j}]"));
        }
    }
    topics.into_values().collect()
}

/// What Kafka has of a topic.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ObservedTopic {
    pub partitions: i32,
    pub replication_factor: i32,
    /// The current values of the keys the spec sets (absent: Kafka does not know the key).
    pub config: BTreeMap<String, String>,
}

/// One change to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Create,
    /// Grow to this many partitions.
    Grow(i32),
    /// Set these keys (incremental alter).
    Alter(BTreeMap<String, String>),
}

/// The changes for one topic, and what the spec asks that cannot or must not be done.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    pub steps: Vec<Step>,
    pub problems: Vec<String>,
}

/// Plans one topic. `manages_settings` is false when another bridge's spec manages the
/// settings of a shared topic; `brokers` is the number of brokers in the cluster.
pub fn plan(
    desired: &DesiredTopic,
    observed: Option<&ObservedTopic>,
    manages_settings: bool,
    brokers: usize,
) -> Plan {
    let mut plan = Plan::default();
    let Some(observed) = observed else {
        let rf = desired.replication_factor;
        if rf > 0 && rf as usize > brokers {
            plan.problems.push(format!(
                "{}.replicationFactor: topic {} cannot have {rf} replicas: the cluster has {brokers} broker{}",
                desired.path,
                desired.name,
                if brokers == 1 { "" } else { "s" }
            ));
        } else {
            plan.steps.push(Step::Create);
        }
        return plan;
    };
    if !desired.listed || !manages_settings {
        return plan;
    }
    if let Some(want) = desired.partitions {
        let have = observed.partitions;
        if want > have {
            plan.steps.push(Step::Grow(want));
        } else if want < have {
            plan.problems.push(format!(
                "{}.partitions: topic {} has {have} partitions and Kafka cannot remove partitions; it keeps {have} (set partitions to {have} or more)",
                desired.path, desired.name
            ));
        }
    }
    let rf = desired.replication_factor;
    if rf > 0 && rf != observed.replication_factor {
        plan.problems.push(format!(
            "{}.replicationFactor: topic {} has {} replicas; the operator does not change the replication factor of an existing topic (that needs a partition reassignment)",
            desired.path, desired.name, observed.replication_factor
        ));
    }
    let changed: BTreeMap<String, String> = desired
        .config
        .iter()
        .filter(|(k, v)| observed.config.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !changed.is_empty() {
        plan.steps.push(Step::Alter(changed));
    }
    plan
}

#[cfg(test)]
mod tests;
