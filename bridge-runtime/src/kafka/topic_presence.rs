//! Whether a topic exists, from a fresh metadata request. A produce that fails with an unknown
//! topic or partition is checked here before the record is given up: librdkafka reports
//! these from its cached metadata, which a restarting broker can leave briefly wrong.

use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, Producer};
use rdkafka::types::RDKafkaRespErr;

use super::BridgeContext;

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
    let producer = producer.clone();
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        match producer
            .client()
            .fetch_metadata(Some(&topic), Duration::from_secs(5))
        {
            Ok(meta) => match meta.topics().first() {
                None => TopicPresence::Missing,
                Some(t) => presence(t.error(), t.partitions().len()),
            },
            Err(_) => TopicPresence::Unknown,
        }
    })
    .await
    .unwrap_or(TopicPresence::Unknown)
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
