//! The dead-letter topic: where a message goes when it can never be delivered, with the
//! reason in its headers, so that one bad message never blocks a route.

use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tracing::{error, warn};

use super::{is_permanent, BridgeContext};

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
}

impl DeadLetters {
    pub fn new(producer: FutureProducer<BridgeContext>, topic: String) -> Self {
        Self { producer, topic }
    }

    /// Writes `letter`, retrying while Kafka is unavailable. When the topic refuses the
    /// payload, writes the letter without it (its size in a header) rather than lose the trace.
    pub async fn write(&self, letter: &DeadLetter) -> Outcome {
        if self.send_until_done(letter, true).await {
            return Outcome::Written;
        }
        error!(route = %letter.route, topic = %self.topic, size = letter.payload.len(),
            "the dead-letter topic refused the message; writing it without its payload");
        self.send_until_done(letter, false).await;
        Outcome::WrittenWithoutPayload
    }

    /// `true` when written; `false` when Kafka refused it permanently.
    async fn send_until_done(&self, letter: &DeadLetter, with_payload: bool) -> bool {
        let mut backoff = Duration::from_millis(200);
        loop {
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
            if result.is_ok() {
                return true;
            }
            if let Err(e) = result {
                if is_permanent(&e) {
                    if !with_payload {
                        error!(route = %letter.route, topic = %self.topic, error = %e,
                            "the dead-letter topic refused even the payload-less letter; retrying");
                    } else {
                        return false;
                    }
                } else {
                    warn!(route = %letter.route, topic = %self.topic, error = %e, "dead-letter write failed; retrying");
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }
}
