//! What a Kafka error means for the record and for the bridge.

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// How the bridge reacts to a failed produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Brokers down, leader elections, timeouts, full queues: try again.
    Transient,
    /// This record will fail again wherever it goes (too large, invalid, an unknown or invalid
    /// topic rendered from it): it goes to the dead-letter topic.
    Poison,
    /// Every record for this topic fails until an operator acts (not authorised): retried
    /// with backoff, and the route reports not ready with the reason. Nothing is
    /// dead-lettered for an ACL that is being fixed.
    Blocked,
    /// The client can never produce again (fenced, cluster authorisation for the idempotent
    /// producer, librdkafka's fatal error): the process fails and is restarted.
    Fatal,
}

pub fn classify(error: &KafkaError) -> ErrorClass {
    let Some(code) = error.rdkafka_error_code() else {
        return ErrorClass::Transient;
    };
    use RDKafkaErrorCode as C;
    match code {
        C::MessageSizeTooLarge
        | C::InvalidMessage
        | C::InvalidMessageSize
        | C::InvalidRecord
        | C::InvalidTopic
        | C::UnknownTopic
        | C::UnknownPartition => ErrorClass::Poison,
        C::TopicAuthorizationFailed => ErrorClass::Blocked,
        C::Fatal
        | C::ClusterAuthorizationFailed
        | C::ProducerFenced
        | C::InvalidProducerEpoch
        | C::InvalidRequiredAcks
        | C::TransactionalIdAuthorizationFailed => ErrorClass::Fatal,
        _ => ErrorClass::Transient,
    }
}

/// A record that will fail again: it goes to the dead-letter topic.
pub fn is_permanent(error: &KafkaError) -> bool {
    classify(error) == ErrorClass::Poison
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(code: RDKafkaErrorCode) -> ErrorClass {
        classify(&KafkaError::MessageProduction(code))
    }

    #[test]
    fn records_that_fail_anywhere_are_poison() {
        assert_eq!(
            class(RDKafkaErrorCode::MessageSizeTooLarge),
            ErrorClass::Poison
        );
        assert_eq!(class(RDKafkaErrorCode::UnknownTopic), ErrorClass::Poison);
        assert_eq!(class(RDKafkaErrorCode::InvalidRecord), ErrorClass::Poison);
    }

    #[test]
    fn outages_are_transient() {
        assert_eq!(
            class(RDKafkaErrorCode::AllBrokersDown),
            ErrorClass::Transient
        );
        assert_eq!(
            class(RDKafkaErrorCode::MessageTimedOut),
            ErrorClass::Transient
        );
        assert_eq!(
            class(RDKafkaErrorCode::NotLeaderForPartition),
            ErrorClass::Transient
        );
        assert_eq!(classify(&KafkaError::Canceled), ErrorClass::Transient);
    }

    #[test]
    fn a_missing_acl_blocks_and_a_dead_client_is_fatal() {
        assert_eq!(
            class(RDKafkaErrorCode::TopicAuthorizationFailed),
            ErrorClass::Blocked
        );
        assert_eq!(
            class(RDKafkaErrorCode::ClusterAuthorizationFailed),
            ErrorClass::Fatal
        );
        assert_eq!(class(RDKafkaErrorCode::ProducerFenced), ErrorClass::Fatal);
        assert_eq!(class(RDKafkaErrorCode::Fatal), ErrorClass::Fatal);
    }
}
