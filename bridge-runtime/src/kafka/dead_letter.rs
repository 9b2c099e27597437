//! The dead-letter topic: where a message goes when it can never be delivered, with the
//! reason in its headers, so that one bad message never blocks a route.
//!
//! The topic is checked at start and every [`CHECK_INTERVAL`]: when it is missing or not
//! writable, the bridge is not ready (the reason is in `/readyz`) and writes fail at once
//! instead of waiting, so a message that needs the topic is held back without blocking the
//! healthy ones. The producer never creates the topic: a dead-letter topic is created on
//! purpose, with the retention and size it needs (the operator does, from spec.kafka.topics).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::{is_permanent, BridgeContext};
use crate::health::Readiness;

/// How often the dead-letter topic is checked.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(10);

/// Header names of a dead letter.
pub mod headers {
    pub const REASON: &str = "mkb.reason";
    pub const ROUTE: &str = "mkb.route";
    pub const DIRECTION: &str = "mkb.direction";
    pub const SOURCE_TOPIC: &str = "mkb.source.topic";
    /// Set when the original payload could not be written either; holds its size in bytes.
    pub const PAYLOAD_DROPPED: &str = "mkb.payload.dropped.bytes";
}

/// A message that cannot be delivered.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub route: String,
    pub direction: &'static str,
    pub reason: String,
    /// The MQTT topic or Kafka topic the message came from.
    pub source_topic: String,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    /// More context: the source partition and offset, QoS, original headers.
    pub extra_headers: Vec<(String, Vec<u8>)>,
}

/// How one attempt to send a letter ended.
enum Sent {
    Written,
    /// Kafka refused this record for good (e.g. too large for the topic).
    Refused(String),
    /// The topic takes no records at all (missing, not authorised).
    Unusable(String),
}

/// Errors that are about the topic, not the record.
fn is_unusable(e: &rdkafka::error::KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::UnknownTopic
                | RDKafkaErrorCode::UnknownTopicOrPartition
                | RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::UnknownPartition
        )
    )
}

/// What happened to a dead letter.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Written,
    /// Written without its payload, which the dead-letter topic refused (too large).
    WrittenWithoutPayload,
}

/// Writes dead letters, with a producer allowed to send records as large as the broker
/// accepts (the topic's max.message.bytes decides).
pub struct DeadLetters {
    producer: FutureProducer<BridgeContext>,
    topic: String,
    /// Why the last check found the topic missing or not writable; `None` while usable.
    problem: Mutex<Option<String>>,
}

impl DeadLetters {
    pub fn new(producer: FutureProducer<BridgeContext>, topic: String) -> Self {
        Self {
            producer,
            topic,
            problem: Mutex::new(None),
        }
    }

    /// Writes `letter`, retrying while Kafka is unavailable. When the topic refuses the
    /// payload, writes the letter without it (its size in a header) rather than lose the trace.
    /// `Err` when the topic cannot take letters at all (missing, not authorised): the caller
    /// must keep the message, not acknowledge it.
    pub async fn write(&self, letter: &DeadLetter) -> Result<Outcome, String> {
        self.check_usable()?;
        match self.send_until_done(letter, true).await {
            Sent::Written => return Ok(Outcome::Written),
            Sent::Refused(_) => {}
            Sent::Unusable(reason) => return Err(reason),
        }
        error!(route = %letter.route, topic = %self.topic, size = letter.payload.len(),
            "the dead-letter topic refused the message; writing it without its payload");
        match self.send_until_done(letter, false).await {
            Sent::Written => Ok(Outcome::WrittenWithoutPayload),
            Sent::Refused(reason) | Sent::Unusable(reason) => Err(reason),
        }
    }

    /// Whether the last check found the topic usable.
    pub fn usable(&self) -> bool {
        self.check_usable().is_ok()
    }

    fn check_usable(&self) -> Result<(), String> {
        match self.problem.lock() {
            Ok(problem) => problem.clone().map_or(Ok(()), Err),
            Err(_) => Err(format!("dead-letter topic {}: state poisoned", self.topic)),
        }
    }

    /// Records the last check's result; the previous problem, if there was one.
    fn set_problem(&self, problem: Option<String>) -> Option<String> {
        self.problem
            .lock()
            .map(|mut p| std::mem::replace(&mut *p, problem))
            .unwrap_or_default()
    }

    /// Checks the topic now and then every [`CHECK_INTERVAL`] until `stop`, reporting the
    /// result in `ready`.
    pub async fn watch(self: Arc<Self>, ready: Readiness, stop: CancellationToken) {
        loop {
            match self.probe().await {
                Some(Ok(())) => {
                    if self.set_problem(None).is_some() {
                        info!(topic = %self.topic, "the dead-letter topic is usable again");
                    }
                    ready.set(true);
                }
                Some(Err(problem)) => {
                    if self.set_problem(Some(problem.clone())).is_none() {
                        error!(topic = %self.topic, %problem, "the dead-letter topic is not usable; messages that need it are held back");
                    }
                    ready.not_ready(problem);
                }
                // Kafka unreachable: the connection's own readiness says so.
                None => {}
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(CHECK_INTERVAL) => {}
            }
        }
    }

    /// `None` when Kafka cannot be asked; else whether the topic exists and may be written.
    async fn probe(&self) -> Option<Result<(), String>> {
        let producer = self.producer.clone();
        let topic = self.topic.clone();
        tokio::task::spawn_blocking(move || {
            let meta = producer
                .client()
                .fetch_metadata(Some(&topic), Duration::from_secs(5))
                .ok()?;
            let t = meta.topics().iter().find(|t| t.name() == topic)?;
            Some(match t.error().map(RDKafkaErrorCode::from) {
                None if !t.partitions().is_empty() => Ok(()),
                None | Some(RDKafkaErrorCode::UnknownTopicOrPartition) => Err(format!(
                    "dead-letter topic {topic} does not exist; create it (the operator does when it is in spec.kafka.topics)"
                )),
                Some(RDKafkaErrorCode::TopicAuthorizationFailed) => Err(format!(
                    "not authorised to write to dead-letter topic {topic}"
                )),
                Some(code) => Err(format!("dead-letter topic {topic}: {code}")),
            })
        })
        .await
        .ok()
        .flatten()
    }

    async fn send_until_done(&self, letter: &DeadLetter, with_payload: bool) -> Sent {
        let mut backoff = Duration::from_millis(200);
        loop {
            if let Err(reason) = self.check_usable() {
                return Sent::Unusable(reason);
            }
            let size = letter.payload.len().to_string();
            let mut headers = OwnedHeaders::new()
                .insert(Header {
                    key: headers::REASON,
                    value: Some(letter.reason.as_bytes()),
                })
                .insert(Header {
                    key: headers::ROUTE,
                    value: Some(letter.route.as_bytes()),
                })
                .insert(Header {
                    key: headers::DIRECTION,
                    value: Some(letter.direction.as_bytes()),
                })
                .insert(Header {
                    key: headers::SOURCE_TOPIC,
                    value: Some(letter.source_topic.as_bytes()),
                });
            for (k, v) in &letter.extra_headers {
                headers = headers.insert(Header {
                    key: k,
                    value: Some(v.as_slice()),
                });
            }
            let payload: &[u8] = if with_payload { &letter.payload } else { &[] };
            if !with_payload {
                headers = headers.insert(Header {
                    key: headers::PAYLOAD_DROPPED,
                    value: Some(size.as_bytes()),
                });
            }
            let mut record = FutureRecord::<[u8], [u8]>::to(&self.topic)
                .payload(payload)
                .headers(headers);
            if let Some(key) = &letter.key {
                record = record.key(key.as_slice());
            }
            let result: Result<(), rdkafka::error::KafkaError> =
                match self.producer.send_result(record) {
                    Ok(delivery) => match delivery.await {
                        Ok(Ok(_)) => Ok(()),
                        Ok(Err((e, _))) => Err(e),
                        Err(_) => Err(rdkafka::error::KafkaError::Canceled),
                    },
                    Err((e, _)) => Err(e),
                };
            match result {
                Ok(()) => return Sent::Written,
                Err(e) if is_unusable(&e) => {
                    return Sent::Unusable(format!("dead-letter topic {}: {e}", self.topic))
                }
                Err(e) if is_permanent(&e) => {
                    return Sent::Refused(format!("dead-letter topic {}: {e}", self.topic))
                }
                Err(e) => {
                    warn!(route = %letter.route, topic = %self.topic, error = %e, "dead-letter write failed; retrying");
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }
}
