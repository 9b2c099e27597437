//! The dead-letter topic: where a message goes when it can never be delivered, with the
//! reason in its headers, so that one bad message never blocks a route.
//!
//! The topic is checked at start and every [`CHECK_INTERVAL`]: when it is missing or not
//! writable, the bridge is not ready (the reason is in `/readyz`) and writes fail at once
//! instead of waiting, so a message that needs the topic is held back without blocking the
//! healthy ones. Writes report what the check cannot see (see `dead_letter_state.rs`): a
//! letter Kafka refuses even without its payload and headers, or one not confirmed within
//! [`WRITE_TIMEOUT`]. The producer never creates the topic: a dead-letter topic is created on
//! purpose, with the retention and size it needs (the operator does, from spec.kafka.topics).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::dead_letter_state::TopicState;
use super::topic_presence::ask;
use super::{is_permanent, BridgeContext};
use crate::health::Readiness;
use crate::metrics::DeadLetterFailureLabels;

/// How often the dead-letter topic is checked.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(10);

/// How long a letter may wait for Kafka's confirmation (the dead-letter producer's
/// `message.timeout.ms`): a partition without a leader, or with fewer in-sync replicas than
/// `min.insync.replicas`, never confirms, and what waits behind the letter must not wait
/// forever.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(15);

/// Header names of a dead letter.
pub mod headers {
    pub const REASON: &str = "mkb.reason";
    pub const ROUTE: &str = "mkb.route";
    pub const DIRECTION: &str = "mkb.direction";
    pub const SOURCE_TOPIC: &str = "mkb.source.topic";
    /// Set when the original payload could not be written either; holds its size in bytes.
    pub const PAYLOAD_DROPPED: &str = "mkb.payload.dropped.bytes";
    /// Set when the original headers could not be written either; holds how many there were.
    pub const HEADERS_DROPPED: &str = "mkb.headers.dropped";
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
    Refused(KafkaError),
    /// The topic takes no records at all (missing, not authorised).
    Unusable(String),
    /// Not confirmed within [`WRITE_TIMEOUT`].
    TimedOut(KafkaError),
}

/// A header the bridge adds (`mkb.*`), kept in every attempt.
fn is_own(key: &str) -> bool {
    key.starts_with("mkb.")
}

/// Which parts of a letter an attempt carries.
#[derive(Clone, Copy)]
struct Parts {
    payload: bool,
    headers: bool,
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
    /// Written without its payload and its original headers (together too large).
    WrittenWithoutPayloadOrHeaders,
}

/// Writes dead letters, with a producer allowed to send records as large as the broker
/// accepts (the topic's max.message.bytes decides).
pub struct DeadLetters {
    producer: FutureProducer<BridgeContext>,
    topic: String,
    state: Mutex<TopicState>,
    /// `/readyz`: not ready while either source reports a problem.
    ready: Readiness,
    /// `mkb_dead_letter_write_failures_total`, by reason.
    failures: Family<DeadLetterFailureLabels, Counter>,
}

impl DeadLetters {
    pub fn new(
        producer: FutureProducer<BridgeContext>,
        topic: String,
        ready: Readiness,
        failures: Family<DeadLetterFailureLabels, Counter>,
    ) -> Self {
        Self {
            producer,
            topic,
            state: Mutex::new(TopicState::default()),
            ready,
            failures,
        }
    }

    /// Writes `letter`. When the topic refuses the payload, writes the letter without it (its
    /// size in a header), then also without the original headers, rather than lose the trace.
    /// `Err` when the topic cannot take it (missing, not authorised, refusing even the bare
    /// letter, not confirming within [`WRITE_TIMEOUT`]): the caller must keep the message,
    /// not acknowledge it; it is tried again once [`DeadLetters::usable`] says so.
    pub async fn write(&self, letter: &DeadLetter) -> Result<Outcome, String> {
        self.check_usable()?;
        let started = Instant::now();
        let attempts = [
            (
                Parts {
                    payload: true,
                    headers: true,
                },
                Outcome::Written,
            ),
            (
                Parts {
                    payload: false,
                    headers: true,
                },
                Outcome::WrittenWithoutPayload,
            ),
            (
                Parts {
                    payload: false,
                    headers: false,
                },
                Outcome::WrittenWithoutPayloadOrHeaders,
            ),
        ];
        let mut refusal = None;
        for (parts, outcome) in attempts {
            if !parts.headers && !letter.extra_headers.iter().any(|(k, _)| !is_own(k)) {
                continue;
            }
            match self.send(letter, parts).await {
                Sent::Written => {
                    if let Some(problem) = self.with_state(|s| s.write_succeeded(started)).flatten()
                    {
                        info!(topic = %self.topic, %problem, "the dead-letter topic takes letters again");
                    }
                    self.refresh_readiness();
                    return Ok(outcome);
                }
                Sent::Refused(e) => {
                    error!(route = %letter.route, topic = %self.topic, size = letter.payload.len(),
                        headers = letter.extra_headers.len(), error = %e,
                        "the dead-letter topic refused the letter; trying again with less of the message");
                    refusal = Some(e);
                }
                Sent::Unusable(reason) => {
                    return Err(self.write_failed("unusable", reason, started))
                }
                Sent::TimedOut(e) => {
                    let reason = format!(
                        "dead-letter topic {} did not confirm a letter within {}s ({e}): {}",
                        self.topic,
                        WRITE_TIMEOUT.as_secs(),
                        self.describe_partitions().await
                    );
                    return Err(self.write_failed("timed_out", reason, started));
                }
            }
        }
        let e = refusal
            .as_ref()
            .map_or_else(|| "refused".to_owned(), ToString::to_string);
        let hint = if letter.key.is_none()
            && refusal.is_some_and(|e| {
                matches!(
                    e.rdkafka_error_code(),
                    // Older brokers say CORRUPT_MESSAGE (InvalidMessage here).
                    Some(RDKafkaErrorCode::InvalidRecord | RDKafkaErrorCode::InvalidMessage)
                )
            }) {
            " (a compacted topic refuses records without a key: give the dead-letter topic cleanup.policy=delete)"
        } else {
            ""
        };
        let reason = format!(
            "dead-letter topic {} refuses letters even without their payload and headers: {e}{hint}",
            self.topic
        );
        Err(self.write_failed("refused", reason, started))
    }

    /// Whether a held-back message may be tried again now.
    pub fn usable(&self) -> bool {
        self.check_usable().is_ok()
    }

    fn check_usable(&self) -> Result<(), String> {
        self.with_state(|s| s.usable(Instant::now()))
            .unwrap_or_else(|| Err(format!("dead-letter topic {}: state poisoned", self.topic)))
    }

    fn with_state<R>(&self, f: impl FnOnce(&mut TopicState) -> R) -> Option<R> {
        self.state.lock().ok().map(|mut s| f(&mut s))
    }

    /// Records a failed write (logged, counted, not ready); returns the reason.
    fn write_failed(&self, kind: &str, reason: String, started: Instant) -> String {
        let retry_in = self.with_state(|s| s.write_failed(reason.clone(), started, Instant::now()));
        error!(topic = %self.topic, %reason, ?retry_in,
            "the dead-letter topic cannot take a letter; messages that need it are held back");
        self.failures
            .get_or_create(&DeadLetterFailureLabels {
                reason: kind.to_owned(),
            })
            .inc();
        self.refresh_readiness();
        reason
    }

    fn refresh_readiness(&self) {
        match self.with_state(|s| s.ready(Instant::now())) {
            Some(Ok(())) => self.ready.set(true),
            Some(Err(problem)) => self.ready.not_ready(problem),
            None => self.ready.not_ready("dead-letter topic state poisoned"),
        }
    }

    /// Checks the topic now and then every [`CHECK_INTERVAL`] until `stop`.
    pub async fn watch(self: Arc<Self>, stop: CancellationToken) {
        loop {
            // `None`: Kafka unreachable; the connection's own readiness says so.
            if let Some(result) = self.probe().await {
                let problem = result.err();
                let before = self.with_state(|s| s.checked(problem.clone())).flatten();
                match (&before, &problem) {
                    (Some(_), None) => {
                        info!(topic = %self.topic, "the dead-letter topic is usable again")
                    }
                    (None, Some(problem)) => {
                        error!(topic = %self.topic, %problem, "the dead-letter topic is not usable; messages that need it are held back")
                    }
                    _ => {}
                }
                self.refresh_readiness();
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(CHECK_INTERVAL) => {}
            }
        }
    }

    /// `None` when Kafka cannot be asked; else whether the topic exists and may be written.
    async fn probe(&self) -> Option<Result<(), String>> {
        let topic = self.topic.clone();
        ask(&self.producer, &self.topic, move |t| {
            let t = t?;
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
        .flatten()
    }

    /// What the brokers say of the topic's partitions, for the reason of a write that was
    /// not confirmed.
    async fn describe_partitions(&self) -> String {
        let described = ask(&self.producer, &self.topic, |t| {
            let parts: Vec<String> = t?
                .partitions()
                .iter()
                .map(|p| match p.leader() {
                    -1 => format!("partition {} has no leader", p.id()),
                    leader => format!(
                        "partition {}: leader {leader}, {} of {} replicas in sync",
                        p.id(),
                        p.isr().len(),
                        p.replicas().len()
                    ),
                })
                .collect();
            Some(parts.join("; "))
        })
        .await
        .flatten();
        let hint = "a partition without a leader, fewer in-sync replicas than the topic's min.insync.replicas, or Kafka unreachable";
        match described {
            Some(parts) => format!("{hint}; the brokers say {parts}"),
            None => hint.to_owned(),
        }
    }

    /// One attempt: written, refused, unusable, or not confirmed within [`WRITE_TIMEOUT`]
    /// (other errors are tried again until then).
    async fn send(&self, letter: &DeadLetter, parts: Parts) -> Sent {
        let mut backoff = Duration::from_millis(200);
        let started = Instant::now();
        loop {
            let record_headers = self.headers(letter, parts);
            let payload: &[u8] = if parts.payload { &letter.payload } else { &[] };
            let mut record = FutureRecord::<[u8], [u8]>::to(&self.topic)
                .payload(payload)
                .headers(record_headers);
            if let Some(key) = &letter.key {
                record = record.key(key.as_slice());
            }
            let result = match self.producer.send_result(record) {
                Ok(delivery) => match delivery.await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err((e, _))) => Err(e),
                    Err(_) => Err(KafkaError::Canceled),
                },
                Err((e, _)) => Err(e),
            };
            let e = match result {
                Ok(()) => return Sent::Written,
                Err(e) if is_unusable(&e) => {
                    return Sent::Unusable(format!("dead-letter topic {}: {e}", self.topic))
                }
                Err(e) if is_permanent(&e) => return Sent::Refused(e),
                Err(e) => e,
            };
            // Not confirmed within message.timeout.ms; other errors are tried again until
            // as long has passed.
            let timed_out = e.rdkafka_error_code() == Some(RDKafkaErrorCode::MessageTimedOut);
            if timed_out || started.elapsed() >= WRITE_TIMEOUT {
                return Sent::TimedOut(e);
            }
            warn!(route = %letter.route, topic = %self.topic, error = %e, "dead-letter write failed; retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    /// The letter's headers: the reason and its origin, and (when `parts.headers`) the
    /// message's own; the bridge's `mkb.*` coordinates (partition, offset, QoS) always.
    fn headers(&self, letter: &DeadLetter, parts: Parts) -> OwnedHeaders {
        let mut out = OwnedHeaders::new();
        let own = [
            (headers::REASON, letter.reason.as_bytes()),
            (headers::ROUTE, letter.route.as_bytes()),
            (headers::DIRECTION, letter.direction.as_bytes()),
            (headers::SOURCE_TOPIC, letter.source_topic.as_bytes()),
        ];
        for (key, value) in own {
            out = out.insert(Header {
                key,
                value: Some(value),
            });
        }
        let mut dropped = 0;
        for (k, v) in &letter.extra_headers {
            if parts.headers || is_own(k) {
                out = out.insert(Header {
                    key: k,
                    value: Some(v.as_slice()),
                });
            } else {
                dropped += 1;
            }
        }
        if !parts.headers {
            out = out.insert(Header {
                key: headers::HEADERS_DROPPED,
                value: Some(dropped.to_string().as_bytes()),
            });
        }
        if !parts.payload {
            out = out.insert(Header {
                key: headers::PAYLOAD_DROPPED,
                value: Some(letter.payload.len().to_string().as_bytes()),
            });
        }
        out
    }
}
