//! What the broker says about a publish: MQTT 5 refusals in PUBACK / PUBREC, and the size a
//! PUBLISH takes on the wire (to compare with the broker's Maximum Packet Size).

use rumqttc::v5::mqttbytes::v5 as v5b;

/// Why the broker refused a publish (an MQTT 5 reason code), and whether trying again later
/// can succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The reason code as `0x..`.
    pub code: String,
    pub reason: String,
    pub transient: bool,
}

/// A refusal from an MQTT 5 reason code; `None` for success. Quota and unspecified or
/// implementation-specific errors may pass later; the others will not.
fn refusal(code: u8, name: &str, transient: bool) -> Option<Refusal> {
    Some(Refusal {
        code: format!("0x{code:02x}"),
        reason: format!("the MQTT broker refused the publish: reason code 0x{code:02x} ({name})"),
        transient,
    })
}

/// The refusal in a PUBACK's or PUBREC's reason (rumqttc has one identical enum for each).
macro_rules! refusal_of {
    ($reason:expr, $kind:ident) => {{
        use v5b::$kind as R;
        match $reason {
            R::Success | R::NoMatchingSubscribers => None,
            R::UnspecifiedError => refusal(0x80, "unspecified error", true),
            R::ImplementationSpecificError => refusal(0x83, "implementation specific error", true),
            R::NotAuthorized => refusal(0x87, "not authorized", false),
            R::TopicNameInvalid => refusal(0x90, "topic name invalid", false),
            R::PacketIdentifierInUse => refusal(0x91, "packet identifier in use", true),
            R::QuotaExceeded => refusal(0x97, "quota exceeded", true),
            R::PayloadFormatInvalid => refusal(0x99, "payload format invalid", false),
        }
    }};
}

pub(super) fn puback_refusal(reason: &v5b::PubAckReason) -> Option<Refusal> {
    refusal_of!(reason, PubAckReason)
}

pub(super) fn pubrec_refusal(reason: &v5b::PubRecReason) -> Option<Refusal> {
    refusal_of!(reason, PubRecReason)
}

/// Bytes a PUBLISH packet takes on the wire, to compare with the broker's Maximum Packet Size.
pub fn publish_packet_size(
    v5: bool,
    topic: &str,
    qos: u8,
    payload: usize,
    user_properties: &[(String, String)],
) -> usize {
    fn varint_len(n: usize) -> usize {
        match n {
            0..=127 => 1,
            128..=16_383 => 2,
            16_384..=2_097_151 => 3,
            _ => 4,
        }
    }
    let mut remaining = 2 + topic.len() + payload;
    if qos > 0 {
        remaining += 2;
    }
    if v5 {
        let properties: usize = user_properties
            .iter()
            .map(|(k, v)| 1 + 2 + k.len() + 2 + v.len())
            .sum();
        remaining += varint_len(properties) + properties;
    }
    1 + varint_len(remaining) + remaining
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_and_no_subscribers_are_confirmations() {
        assert_eq!(puback_refusal(&v5b::PubAckReason::Success), None);
        assert_eq!(
            puback_refusal(&v5b::PubAckReason::NoMatchingSubscribers),
            None
        );
        assert_eq!(
            pubrec_refusal(&v5b::PubRecReason::NoMatchingSubscribers),
            None
        );
    }

    #[test]
    fn refusals_say_the_code_and_whether_to_retry() {
        let denied = puback_refusal(&v5b::PubAckReason::NotAuthorized).expect("a refusal");
        assert!(!denied.transient);
        assert!(
            denied.reason.contains("0x87 (not authorized)"),
            "{}",
            denied.reason
        );
        let quota = pubrec_refusal(&v5b::PubRecReason::QuotaExceeded).expect("a refusal");
        assert!(quota.transient);
        assert!(quota.reason.contains("0x97"));
    }

    #[test]
    fn packet_sizes_match_the_encoding() {
        // 1 fixed header + 1 remaining length + (2 + 3 topic + 2 pkid + 5 payload).
        assert_eq!(publish_packet_size(false, "a/b", 1, 5, &[]), 14);
        // MQTT 5 adds the property length (1) and each user property (1 + 2+1 + 2+1).
        let props = [("k".to_owned(), "v".to_owned())];
        assert_eq!(publish_packet_size(true, "a/b", 1, 5, &props), 14 + 1 + 7);
        // A 200-byte payload needs a two-byte remaining length.
        assert_eq!(
            publish_packet_size(false, "t", 0, 200, &[]),
            1 + 2 + 2 + 1 + 200
        );
    }
}
