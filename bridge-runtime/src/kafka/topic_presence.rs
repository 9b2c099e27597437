//! Whether a topic exists, from a fresh metadata request. A produce that fails with an unknown
//! topic or partition is checked here before the record is given up: librdkafka reports
//! these from its cached metadata, which a restarting broker can leave briefly wrong.

use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::metadata::MetadataTopic;
use rdkafka::producer::{FutureProducer, Producer};
use rdkafka::types::RDKafkaRespErr;

use super::{BridgeContext, QuietContext};

/// What a metadata request says of one topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicPresence {
    /// It exists, with this many partitions.
    Present(i32),
    /// A broker answered: no such topic.
    Missing,
    /// No answer (brokers unreachable, a timeout, the topic's metadata in error).
    Unknown,
}

/// Errors that say the topic or partition does not exist — worth a check before the record
/// is dead-lettered.
pub fn is_missing_topic(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::UnknownTopic
                | RDKafkaErrorCode::UnknownPartition
                | RDKafkaErrorCode::UnknownTopicOrPartition
        )
    )
}

/// Asks the brokers about `topic` (blocking work on tokio's blocking pool).
pub async fn topic_presence(
    producer: &FutureProducer<BridgeContext>,
    topic: &str,
) -> TopicPresence {
    ask(producer, topic, |t| match t {
        None => TopicPresence::Missing,
        Some(t) => presence(t.error(), t.partitions().len()),
    })
    .await
    .unwrap_or(TopicPresence::Unknown)
}

/// Whether the brokers name a leader for each partition of a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicLeaders {
    /// Every partition (this many) has a leader.
    All(usize),
    /// These partitions have none.
    Missing(Vec<i32>),
    /// No answer, or the topic's metadata in error.
    Unknown,
}

/// Asks the brokers for the leaders of `topic`'s partitions, through `probe`: a client of its
/// own, so the answer does not depend on the connections of the producer in question.
pub async fn topic_leaders(probe: &FutureProducer<QuietContext>, topic: &str) -> TopicLeaders {
    ask(probe, topic, |t| match t {
        Some(t) if t.error().is_none() && !t.partitions().is_empty() => {
            leaders(t.partitions().iter().map(|p| (p.id(), p.leader())))
        }
        _ => TopicLeaders::Unknown,
    })
    .await
    .unwrap_or(TopicLeaders::Unknown)
}

/// A fresh metadata request for `topic` on the blocking pool; `None` without an answer.
pub(super) async fn ask<C: ClientContext + 'static, T: Send + 'static>(
    producer: &FutureProducer<C>,
    topic: &str,
    read: impl FnOnce(Option<&MetadataTopic>) -> T + Send + 'static,
) -> Option<T> {
    let producer = producer.clone();
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        producer
            .client()
            .fetch_metadata(Some(&topic), Duration::from_secs(5))
            .ok()
            .map(|meta| read(meta.topics().first()))
    })
    .await
    .ok()
    .flatten()
}

/// From (partition, leader) pairs; a leader of -1 means none.
fn leaders(partitions: impl Iterator<Item = (i32, i32)>) -> TopicLeaders {
    let (mut count, mut missing) = (0, Vec::new());
    for (id, leader) in partitions {
        count += 1;
        if leader < 0 {
            missing.push(id);
        }
    }
    if missing.is_empty() {
        TopicLeaders::All(count)
    } else {
        TopicLeaders::Missing(missing)
    }
}

/// Reads a topic's metadata entry: its error code (the raw protocol value) and partitions.
fn presence(error: Option<RDKafkaRespErr>, partitions: usize) -> TopicPresence {
    match error.map(RDKafkaErrorCode::from) {
        None if partitions > 0 => TopicPresence::Present(partitions as i32),
        Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic) => {
            TopicPresence::Missing
        }
        _ => TopicPresence::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::types::RDKafkaRespErr as E;

    #[test]
    fn a_topic_entry_without_error_and_with_partitions_is_present() {
        assert_eq!(presence(None, 3), TopicPresence::Present(3));
    }

    #[test]
    fn a_partition_with_leader_minus_one_has_none() {
        assert_eq!(leaders([(0, 1), (1, 2)].into_iter()), TopicLeaders::All(2));
        assert_eq!(
            leaders([(0, 1), (1, -1), (2, -1)].into_iter()),
            TopicLeaders::Missing(vec![1, 2])
        );
    }

    #[test]
    fn only_an_unknown_topic_answer_means_missing() {
        assert_eq!(
            presence(Some(E::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART), 0),
            TopicPresence::Missing
        );
        assert_eq!(
            presence(Some(E::RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE), 1),
            TopicPresence::Unknown
        );
        assert_eq!(presence(None, 0), TopicPresence::Unknown);
    }

    #[test]
    fn unknown_topics_and_partitions_are_checked_before_they_are_given_up() {
        for code in [
            RDKafkaErrorCode::UnknownTopic,
            RDKafkaErrorCode::UnknownPartition,
            RDKafkaErrorCode::UnknownTopicOrPartition,
        ] {
            assert!(is_missing_topic(&KafkaError::MessageProduction(code)));
        }
        assert!(!is_missing_topic(&KafkaError::MessageProduction(
            RDKafkaErrorCode::MessageSizeTooLarge
        )));
    }
}
