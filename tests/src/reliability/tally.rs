//! What a receiver saw: when each sequence number first arrived, and how many arrived in all.

use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Shared between a receiver (which records) and the scenario (which reads).
#[derive(Clone, Default)]
pub struct Tally(Arc<Mutex<Seen>>);

#[derive(Default)]
struct Seen {
    first: Vec<Option<Instant>>,
    distinct: u64,
    total: u64,
}

impl Tally {
    pub fn record(&self, seq: u64, at: Instant) {
        let mut seen = self.0.lock().expect("tally lock");
        seen.total += 1;
        let i = seq as usize;
        if seen.first.len() <= i {
            seen.first.resize(i + 1, None);
        }
        if seen.first[i].is_none() {
            seen.first[i] = Some(at);
            seen.distinct += 1;
        }
    }

    /// Distinct sequence numbers seen.
    pub fn distinct(&self) -> u64 {
        self.0.lock().expect("tally lock").distinct
    }

    /// Everything that arrived, duplicates included.
    pub fn total(&self) -> u64 {
        self.0.lock().expect("tally lock").total
    }

    /// The sequence numbers below `sent` that never arrived.
    pub fn missing(&self, sent: u64) -> Vec<u64> {
        let seen = self.0.lock().expect("tally lock");
        (0..sent)
            .filter(|&s| seen.first.get(s as usize).copied().flatten().is_none())
            .collect()
    }

    /// How long after `since` the last of the messages `0..upto` arrived (0 when all had
    /// arrived by then): the time the bridge took to catch up with what was sent before
    /// `since`.
    pub fn caught_up_after(&self, upto: u64, since: Instant) -> f64 {
        let seen = self.0.lock().expect("tally lock");
        seen.first
            .iter()
            .take(upto as usize)
            .flatten()
            .map(|at| at.saturating_duration_since(since).as_secs_f64())
            .fold(0.0, f64::max)
    }

    /// The longest time between `from` and `to` in which no new message arrived (first
    /// arrivals only): how long delivery stopped, for a failover.
    pub fn longest_pause(&self, from: Instant, to: Instant) -> f64 {
        let seen = self.0.lock().expect("tally lock");
        let mut arrivals: Vec<Instant> = seen
            .first
            .iter()
            .flatten()
            .copied()
            .filter(|&at| at > from && at < to)
            .collect();
        arrivals.sort();
        let mut last = from;
        let mut longest = 0.0f64;
        for at in arrivals.into_iter().chain([to]) {
            longest = longest.max(at.duration_since(last).as_secs_f64());
            last = at;
        }
        longest
    }
}

/// The `seq` field of a load message (`{"seq":N,...}`).
pub fn seq_of(payload: &[u8]) -> Option<u64> {
    let value: serde_json::Value = serde_json::from_slice(payload).ok()?;
    value.get("seq")?.as_u64()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn counts_duplicates_once_and_finds_the_gaps() {
        let t = Tally::default();
        let start = Instant::now();
        for s in [0, 1, 1, 3] {
            t.record(s, start);
        }
        assert_eq!((t.distinct(), t.total()), (3, 4));
        assert_eq!(t.missing(5), vec![2, 4]);
    }

    #[test]
    fn catching_up_is_measured_from_the_last_early_message() {
        let t = Tally::default();
        let start = Instant::now();
        t.record(0, start + Duration::from_secs(1));
        t.record(1, start + Duration::from_secs(4));
        t.record(2, start + Duration::from_secs(9));
        let caught = t.caught_up_after(2, start + Duration::from_secs(2));
        assert!((caught - 2.0).abs() < 1e-6, "{caught}");
        assert_eq!(t.caught_up_after(1, start + Duration::from_secs(2)), 0.0);
    }

    #[test]
    fn the_longest_pause_is_between_arrivals_or_the_window_ends() {
        let t = Tally::default();
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        for (seq, s) in [(0, 1), (1, 2), (2, 7), (3, 8)] {
            t.record(seq, at(s));
        }
        t.record(1, at(20));
        assert!((t.longest_pause(at(0), at(9)) - 5.0).abs() < 1e-6);
        assert!((t.longest_pause(at(0), at(15)) - 7.0).abs() < 1e-6);
        assert!((t.longest_pause(at(3), at(5)) - 2.0).abs() < 1e-6);
    }

    #[test]
    fn reads_the_sequence_number() {
        assert_eq!(seq_of(br#"{"seq":42,"sent":1}"#), Some(42));
        assert_eq!(seq_of(b"not json"), None);
    }
}
