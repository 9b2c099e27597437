//! What the broker says about a publish (an MQTT 5 refusal in PUBACK or PUBREC), and the size
//! a PUBLISH takes on the wire (to compare with the broker's Maximum Packet Size).

/// Why the broker refused a publish (an MQTT 5 reason code), and whether trying again later
/// can succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The reason code as `0x..`.
    pub code: String,
    pub reason: String,
    pub transient: bool,
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
