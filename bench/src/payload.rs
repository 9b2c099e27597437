//! The load's payload: a sequence number and the send time up front, padding after, so every
//! sink can tell which message it got and how long it took, whatever system carried it. The
//! padding is pseudo-random: a constant would compress a hundredfold in Kafka and flatter
//! every figure that depends on bytes.

use std::time::{SystemTime, UNIX_EPOCH};

/// The bytes the stamp takes (sequence number, send time); payloads are never smaller.
pub const STAMP_LEN: usize = 16;

/// Nanoseconds since the Unix epoch (the clock every process on this machine shares).
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// A payload of `size` bytes (at least [`STAMP_LEN`]) stamped with `seq` and the time now.
pub fn stamped(seq: u64, size: usize) -> Vec<u8> {
    let mut payload = Vec::with_capacity(size.max(STAMP_LEN));
    payload.extend_from_slice(&seq.to_be_bytes());
    payload.extend_from_slice(&now_ns().to_be_bytes());
    // xorshift64, seeded by the sequence number: cheap, and incompressible enough.
    let mut x = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while payload.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let take = (size - payload.len()).min(8);
        payload.extend_from_slice(&x.to_le_bytes()[..take]);
    }
    payload
}

/// The sequence number and send time of a stamped payload.
pub fn read_stamp(payload: &[u8]) -> Option<(u64, u64)> {
    let seq = u64::from_be_bytes(payload.get(0..8)?.try_into().ok()?);
    let sent = u64::from_be_bytes(payload.get(8..16)?.try_into().ok()?);
    Some((seq, sent))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_reads_back_and_the_size_holds() {
        let before = now_ns();
        let p = stamped(42, 100);
        assert_eq!(p.len(), 100);
        let (seq, sent) = read_stamp(&p).unwrap();
        assert_eq!(seq, 42);
        assert!(sent >= before && sent <= now_ns());
        assert_eq!(stamped(1, 3).len(), STAMP_LEN);
        assert_eq!(stamped(7, 1021).len(), 1021);
        // Padding that is not one repeated byte.
        let padding = &p[STAMP_LEN..];
        assert!(padding.iter().any(|&b| b != padding[0]));
        assert_eq!(read_stamp(b"short"), None);
    }
}
