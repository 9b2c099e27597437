//! Kafka topic management, the way Strimzi's topic operator does it but from the bridge's own
//! spec: create the topics a bridge needs, grow their partitions, set their configuration by
//! incremental alter, report each in the status, and delete the ones the bridge created when
//! it goes (policy Delete). Kafka being unreachable never stops the rest of a reconciliation.

mod admin;
mod native;
mod plan;
mod requests;
mod sharing;

use mkb_api::crd::conditions::{REASON_AS_EXPECTED, REASON_KAFKA_UNAVAILABLE, REASON_TOPIC_ERROR};
use mkb_api::crd::{MqttKafkaBridgeSpec, MqttKafkaBridgeStatus, TopicState, TopicStatus};
use rdkafka::types::RDKafkaErrorCode;

pub use admin::AdminClients;
pub use sharing::{created_at, BridgeTopics, Sharing};

use crate::metrics::Metrics;
use crate::secret_refs::SecretValues;
use admin::{Connection, CONNECT_TIMEOUT};
use plan::{DesiredTopic, ObservedTopic, Step};
use requests::{alter, cause, create, describe, explain, grow, observe, options};

/// The outcome of managing a bridge's topics, for its status.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicsReport {
    pub topics: Vec<TopicStatus>,
    pub cluster_id: Option<String>,
    pub ready: bool,
    pub reason: &'static str,
    pub message: String,
    /// What was changed in Kafka, one sentence each (for Events).
    pub changes: Vec<String>,
}

/// What managing a bridge's topics needs.
pub struct Request<'a, Others> {
    pub spec: &'a MqttKafkaBridgeSpec,
    pub secrets: &'a SecretValues,
    pub previous: &'a MqttKafkaBridgeStatus,
    /// `namespace/name` and creation time of this bridge, for sharing decisions.
    pub key: String,
    pub created_at: String,
    /// The bridges the operator watches; read only when Kafka answered and there are topics
    /// to decide about.
    pub others: Others,
}

/// Brings the bridge's topics to what its spec asks, as far as Kafka allows.
pub async fn ensure<Others>(
    clients: &AdminClients,
    metrics: &Metrics,
    req: Request<'_, Others>,
) -> TopicsReport
where
    Others: FnOnce() -> Vec<std::sync::Arc<BridgeTopics>>,
{
    let desired = plan::desired_topics(req.spec);
    if desired.is_empty() {
        return TopicsReport {
            topics: Vec::new(),
            cluster_id: req.previous.kafka_cluster_id.clone(),
            ready: true,
            reason: REASON_AS_EXPECTED,
            message: "no topics to manage (templated topics are created by you)".to_owned(),
            changes: Vec::new(),
        };
    }
    let Connection { admin, config } = match clients.get(&req.spec.kafka, req.secrets) {
        Ok(connection) => connection,
        Err(message) => return failed_without_kafka(&desired, req.previous, message),
    };
    let names: Vec<String> = desired.iter().map(|t| t.name.clone()).collect();
    let observation = match observe(admin.clone(), names).await {
        Ok(o) => o,
        Err(why) => {
            let why = explain(config, why).await;
            return unavailable(
                &desired,
                req.previous,
                &req.spec.kafka.bootstrap_servers,
                why,
            );
        }
    };
    let me = BridgeTopics::with_topics(
        req.key,
        req.created_at,
        false,
        req.spec,
        &desired,
        Some(observation.cluster_id.clone()),
    );
    let sharing = Sharing::new(me, (req.others)());
    let mut results = Vec::with_capacity(desired.len());
    let mut to_create = Vec::new();
    for topic in &desired {
        let mut result = TopicResult::new(topic, req.previous);
        match observation.topics.get(&topic.name) {
            Some(Err(message)) => result.problems.push(format!("{}: {message}", topic.path)),
            Some(Ok(observed)) => {
                let mut observed = observed.clone();
                if let Some(o) = observed.as_mut() {
                    result.observed(o);
                    if topic.listed && !topic.config.is_empty() {
                        match describe(&admin, &topic.name, metrics).await {
                            Ok(config) => o.config = config,
                            Err(message) => result
                                .problems
                                .push(format!("{}.config: {message}", topic.path)),
                        }
                    }
                }
                let manages = sharing.manages_settings(&topic.name);
                let plan = plan::plan(topic, observed.as_ref(), manages, observation.brokers);
                result.problems.extend(plan.problems);
                for step in plan.steps {
                    match step {
                        Step::Create => to_create.push(topic.clone()),
                        Step::Grow(n) => {
                            let change =
                                format!("Grew Kafka topic {} to {n} partitions", topic.name);
                            result.after(grow(&admin, topic, n, metrics).await, change);
                        }
                        Step::Alter(config) => {
                            let keys: Vec<&str> = config.keys().map(String::as_str).collect();
                            let change =
                                format!("Set {} of Kafka topic {}", keys.join(", "), topic.name);
                            result.after(alter(&admin, topic, config, metrics).await, change);
                        }
                    }
                }
            }
            None => result
                .problems
                .push(format!("{}: not in Kafka's answer", topic.path)),
        }
        result.note = sharing.note(&topic.name);
        results.push(result);
    }
    if !to_create.is_empty() {
        let outcomes = create(&admin, &to_create, metrics).await;
        for result in results.iter_mut() {
            if let Some(outcome) = outcomes.get(&result.name) {
                match outcome {
                    Ok(created) => {
                        if *created {
                            result.created = true;
                            result
                                .changes
                                .push(format!("Created Kafka topic {}", result.name));
                        }
                        result.changed = true;
                    }
                    Err(message) => result.problems.push(message.clone()),
                }
            }
        }
    }
    // Report what Kafka has after the changes.
    let changed: Vec<String> = results
        .iter()
        .filter(|r| r.changed)
        .map(|r| r.name.clone())
        .collect();
    if !changed.is_empty() {
        if let Ok(after) = observe(admin, changed).await {
            for result in results.iter_mut().filter(|r| r.changed) {
                if let Some(Ok(Some(o))) = after.topics.get(&result.name) {
                    result.observed(o);
                }
            }
        }
    }
    let changes = results
        .iter_mut()
        .flat_map(|r| std::mem::take(&mut r.changes))
        .collect();
    let topics: Vec<TopicStatus> = results.into_iter().map(TopicResult::into_status).collect();
    let failed: Vec<&TopicStatus> = topics
        .iter()
        .filter(|t| t.state != TopicState::Ready)
        .collect();
    let (ready, reason, message) = if failed.is_empty() {
        (
            true,
            REASON_AS_EXPECTED,
            format!("{} topics ready", topics.len()),
        )
    } else {
        let messages: Vec<&str> = failed.iter().filter_map(|t| t.message.as_deref()).collect();
        (false, REASON_TOPIC_ERROR, messages.join("; "))
    };
    TopicsReport {
        topics,
        cluster_id: Some(observation.cluster_id),
        ready,
        reason,
        message,
        changes,
    }
}

/// Deletes the topics this bridge created (per its status) that no other bridge uses.
/// Returns the deleted topics and those kept because others use them.
pub async fn delete_created(
    clients: &AdminClients,
    metrics: &Metrics,
    spec: &MqttKafkaBridgeSpec,
    secrets: &SecretValues,
    status: &MqttKafkaBridgeStatus,
    sharing: &Sharing,
) -> Result<(Vec<String>, Vec<String>), String> {
    let (mine, shared): (Vec<&TopicStatus>, Vec<&TopicStatus>) = status
        .topics
        .iter()
        .filter(|t| t.created)
        .partition(|t| sharing.users(&t.name).is_empty());
    let kept = shared.iter().map(|t| t.name.clone()).collect();
    if mine.is_empty() {
        return Ok((Vec::new(), kept));
    }
    let Connection { admin, config } = clients.get(&spec.kafka, secrets)?;
    let probe = admin.clone();
    let reachable =
        tokio::task::spawn_blocking(move || probe.inner().fetch_cluster_id(CONNECT_TIMEOUT))
            .await
            .ok()
            .flatten();
    if reachable.is_none() {
        return Err(format!(
            "Kafka at {} cannot be reached{}",
            spec.kafka.bootstrap_servers,
            cause(explain(config, None).await)
        ));
    }
    let names: Vec<&str> = mine.iter().map(|t| t.name.as_str()).collect();
    let results = admin
        .delete_topics(&names, &options())
        .await
        .map_err(|e| format!("cannot delete topics {}: {e}", names.join(", ")))?;
    let mut deleted = Vec::new();
    let mut errors = Vec::new();
    for result in results {
        match result {
            Ok(name) | Err((name, RDKafkaErrorCode::UnknownTopicOrPartition)) => {
                metrics.topic_operation("delete", "ok");
                deleted.push(name);
            }
            Err((name, code)) => {
                metrics.topic_operation("delete", "error");
                errors.push(format!("topic {name}: {code}"));
            }
        }
    }
    if errors.is_empty() {
        Ok((deleted, kept))
    } else {
        Err(format!("cannot delete {}", errors.join("; ")))
    }
}

/// One topic's status in the making.
struct TopicResult {
    name: String,
    partitions: Option<i32>,
    replication_factor: Option<i32>,
    created: bool,
    changed: bool,
    changes: Vec<String>,
    problems: Vec<String>,
    note: Option<String>,
}

impl TopicResult {
    fn new(topic: &DesiredTopic, previous: &MqttKafkaBridgeStatus) -> Self {
        let before = previous.topics.iter().find(|t| t.name == topic.name);
        Self {
            name: topic.name.clone(),
            partitions: None,
            replication_factor: None,
            created: before.is_some_and(|t| t.created),
            changed: false,
            changes: Vec::new(),
            problems: Vec::new(),
            note: None,
        }
    }

    fn observed(&mut self, o: &ObservedTopic) {
        self.partitions = Some(o.partitions);
        self.replication_factor = Some(o.replication_factor);
    }

    fn after(&mut self, outcome: Result<(), String>, change: String) {
        match outcome {
            Ok(()) => {
                self.changed = true;
                self.changes.push(change);
            }
            Err(message) => self.problems.push(message),
        }
    }

    fn into_status(self) -> TopicStatus {
        let ready = self.problems.is_empty();
        let message = self
            .problems
            .into_iter()
            .chain(self.note)
            .collect::<Vec<_>>()
            .join("; ");
        TopicStatus {
            name: self.name,
            state: if ready {
                TopicState::Ready
            } else {
                TopicState::Failed
            },
            partitions: self.partitions,
            replication_factor: self.replication_factor,
            created: self.created,
            message: (!message.is_empty()).then_some(message),
        }
    }
}

/// Kafka did not answer: the topics are Pending, with what was known before.
fn unavailable(
    desired: &[DesiredTopic],
    previous: &MqttKafkaBridgeStatus,
    bootstrap: &str,
    why: Option<String>,
) -> TopicsReport {
    let message = format!(
        "Kafka at {bootstrap} cannot be reached{}; the topics are checked again with backoff",
        cause(why)
    );
    not_asked(
        desired,
        previous,
        TopicState::Pending,
        "Kafka cannot be reached",
        REASON_KAFKA_UNAVAILABLE,
        message,
    )
}

/// No admin client could be made (unreadable TLS material): every topic Failed with why.
fn failed_without_kafka(
    desired: &[DesiredTopic],
    previous: &MqttKafkaBridgeStatus,
    message: String,
) -> TopicsReport {
    let topic_message = message.clone();
    not_asked(
        desired,
        previous,
        TopicState::Failed,
        &topic_message,
        REASON_TOPIC_ERROR,
        message,
    )
}

/// A report for topics Kafka was not asked about: each in `state` with `topic_message`,
/// keeping what the previous status knew of it.
fn not_asked(
    desired: &[DesiredTopic],
    previous: &MqttKafkaBridgeStatus,
    state: TopicState,
    topic_message: &str,
    reason: &'static str,
    message: String,
) -> TopicsReport {
    let topics = desired
        .iter()
        .map(|t| {
            let before = previous.topics.iter().find(|p| p.name == t.name);
            TopicStatus {
                name: t.name.clone(),
                state,
                partitions: before.and_then(|b| b.partitions),
                replication_factor: before.and_then(|b| b.replication_factor),
                created: before.is_some_and(|b| b.created),
                message: Some(topic_message.to_owned()),
            }
        })
        .collect();
    TopicsReport {
        topics,
        cluster_id: previous.kafka_cluster_id.clone(),
        ready: false,
        reason,
        message,
        changes: Vec::new(),
    }
}
