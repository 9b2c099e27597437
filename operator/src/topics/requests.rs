//! The admin requests topic management makes of Kafka: read the cluster and the topics,
//! describe a topic's configuration, create, add partitions, alter the configuration. Each
//! runs on a blocking thread with a timeout, and says in its error which field and topic it
//! concerns.

use std::collections::BTreeMap;
use std::sync::Arc;

use rdkafka::admin::{AdminOptions, NewPartitions, ResourceSpecifier};
use rdkafka::types::RDKafkaErrorCode;

use super::admin::{self, Admin, CONNECT_TIMEOUT, REQUEST_TIMEOUT};
use super::native;
use super::plan::{DesiredTopic, ObservedTopic};
use crate::metrics::Metrics;

/// What Kafka has: its cluster id, broker count, and each topic (`None`: it does not exist).
pub(super) struct Observation {
    pub cluster_id: String,
    pub brokers: usize,
    pub topics: BTreeMap<String, Result<Option<ObservedTopic>, String>>,
}

/// Reads the cluster id and the topics' metadata; `Err` (with the cause) when Kafka does
/// not answer.
pub(super) async fn observe(
    admin: Arc<Admin>,
    names: Vec<String>,
) -> Result<Observation, Option<String>> {
    let handle = tokio::task::spawn_blocking(move || {
        let client = admin.inner();
        let Some(cluster_id) = client.fetch_cluster_id(CONNECT_TIMEOUT) else {
            return Err(None);
        };
        let mut observation = Observation {
            cluster_id,
            brokers: 0,
            topics: BTreeMap::new(),
        };
        for name in names {
            let metadata = client
                .fetch_metadata(Some(&name), CONNECT_TIMEOUT)
                .map_err(|e| Some(e.to_string()))?;
            observation.brokers = metadata.brokers().len();
            let topic = metadata.topics().iter().find(|t| t.name() == name);
            let state = match topic {
                None => Ok(None),
                Some(t) => match t.error().map(RDKafkaErrorCode::from) {
                    Some(RDKafkaErrorCode::UnknownTopicOrPartition) => Ok(None),
                    None | Some(RDKafkaErrorCode::LeaderNotAvailable) => Ok(Some(ObservedTopic {
                        partitions: t.partitions().len() as i32,
                        replication_factor: t
                            .partitions()
                            .first()
                            .map_or(0, |p| p.replicas().len() as i32),
                        config: BTreeMap::new(),
                    })),
                    Some(code) => Err(format!("Kafka reports topic {name}: {code}")),
                },
            };
            observation.topics.insert(name, state);
        }
        Ok(observation)
    });
    handle
        .await
        .map_err(|e| Some(format!("the metadata task failed: {e}")))?
}

pub(super) fn options() -> AdminOptions {
    AdminOptions::new()
        .request_timeout(Some(REQUEST_TIMEOUT))
        .operation_timeout(Some(REQUEST_TIMEOUT))
}

/// The topic's current values of every key (Kafka's own defaults included).
pub(super) async fn describe(
    admin: &Admin,
    name: &str,
    metrics: &Metrics,
) -> Result<BTreeMap<String, String>, String> {
    let results = admin
        .describe_configs(&[ResourceSpecifier::Topic(name)], &options())
        .await
        .map_err(|e| format!("cannot read the configuration of topic {name}: {e}"));
    let resource = match results.map(|mut r| r.pop()) {
        Ok(Some(Ok(resource))) => resource,
        Ok(Some(Err(code))) => Err(format!(
            "cannot read the configuration of topic {name}: {code}"
        ))?,
        Ok(None) => Err(format!("Kafka returned no configuration for topic {name}"))?,
        Err(message) => Err(message)?,
    };
    metrics.topic_operation("describe", "ok");
    Ok(resource
        .entries
        .into_iter()
        .filter_map(|e| e.value.map(|v| (e.name, v)))
        .collect())
}

/// Creates the topics in one request; for each: `Ok(true)` created, `Ok(false)` someone else
/// created it meanwhile, `Err` why not.
pub(super) async fn create(
    admin: &Arc<Admin>,
    topics: &[DesiredTopic],
    metrics: &Metrics,
) -> BTreeMap<String, Result<bool, String>> {
    let admin = admin.clone();
    let owned = topics.to_vec();
    let outcome = tokio::task::spawn_blocking(move || {
        let requests: Vec<native::NewTopic<'_>> = owned
            .iter()
            .map(|t| native::NewTopic {
                name: &t.name,
                partitions: t.partitions.unwrap_or(-1),
                replication_factor: t.replication_factor,
                config: &t.config,
            })
            .collect();
        native::create_topics(admin.inner().native_ptr(), &requests, REQUEST_TIMEOUT)
    })
    .await
    .unwrap_or_else(|e| {
        Err(native::Refusal {
            code: RDKafkaErrorCode::Fail,
            message: e.to_string(),
        })
    });
    let mut out = BTreeMap::new();
    match outcome {
        Err(refusal) => {
            for t in topics {
                metrics.topic_operation("create", "error");
                out.insert(
                    t.name.clone(),
                    Err(format!(
                        "{}: cannot create topic {}: {refusal}",
                        t.path, t.name
                    )),
                );
            }
        }
        Ok(results) => {
            for (name, result) in results {
                let Some(t) = topics.iter().find(|t| t.name == name) else {
                    continue;
                };
                let entry = match result {
                    Ok(()) => {
                        metrics.topic_operation("create", "ok");
                        Ok(true)
                    }
                    Err(r) if r.code == RDKafkaErrorCode::TopicAlreadyExists => Ok(false),
                    Err(r) => {
                        metrics.topic_operation("create", "error");
                        let field = match r.code {
                            RDKafkaErrorCode::InvalidConfig => ".config",
                            RDKafkaErrorCode::InvalidReplicationFactor => ".replicationFactor",
                            RDKafkaErrorCode::InvalidPartitions => ".partitions",
                            _ => "",
                        };
                        Err(format!(
                            "{}{field}: Kafka refused to create topic {name}: {r}",
                            t.path
                        ))
                    }
                };
                out.insert(name, entry);
            }
        }
    }
    out
}

pub(super) async fn grow(
    admin: &Admin,
    topic: &DesiredTopic,
    to: i32,
    metrics: &Metrics,
) -> Result<(), String> {
    let request = NewPartitions::new(&topic.name, to.max(1) as usize);
    let result = admin.create_partitions(&[request], &options()).await;
    let outcome = match result.map(|mut r| r.pop()) {
        Ok(Some(Ok(_))) => Ok(()),
        Ok(Some(Err((_, code)))) => Err(code.to_string()),
        Ok(None) => Err("no answer for the topic".to_owned()),
        Err(e) => Err(e.to_string()),
    };
    metrics.topic_operation("grow", if outcome.is_ok() { "ok" } else { "error" });
    outcome.map_err(|e| {
        format!(
            "{}.partitions: cannot grow topic {} to {to} partitions: {e}",
            topic.path, topic.name
        )
    })
}

pub(super) async fn alter(
    admin: &Arc<Admin>,
    topic: &DesiredTopic,
    config: BTreeMap<String, String>,
    metrics: &Metrics,
) -> Result<(), String> {
    let admin = admin.clone();
    let name = topic.name.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        native::incremental_alter_topic(admin.inner().native_ptr(), &name, &config, REQUEST_TIMEOUT)
    })
    .await
    .unwrap_or_else(|e| {
        Err(native::Refusal {
            code: RDKafkaErrorCode::Fail,
            message: e.to_string(),
        })
    });
    metrics.topic_operation("alter", if outcome.is_ok() { "ok" } else { "error" });
    outcome.map_err(|r| {
        format!(
            "{}.config: Kafka refused the configuration of topic {}: {r}",
            topic.path, topic.name
        )
    })
}

/// Why Kafka did not answer: librdkafka's report of the failed connection (refused, TLS,
/// SASL) when a probe gets one, else what the request said.
pub(super) async fn explain(
    config: rdkafka::ClientConfig,
    fallback: Option<String>,
) -> Option<String> {
    tokio::task::spawn_blocking(move || admin::why_unreachable(&config, CONNECT_TIMEOUT))
        .await
        .ok()
        .flatten()
        .or(fallback)
}

pub(super) fn cause(last_error: Option<String>) -> String {
    last_error.map(|e| format!(" ({e})")).unwrap_or_default()
}
