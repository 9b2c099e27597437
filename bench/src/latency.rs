//! End-to-end latency of a run: a histogram of (arrival - send stamp) for the messages after
//! the warm-up, and when each message arrived, so that two sinks watching the same messages at
//! different points of a path tell how long the part between them took.

use std::time::Instant;

use hdrhistogram::Histogram;
use serde::Serialize;

pub struct Latencies {
    histogram: Histogram<u64>,
    /// Messages that arrived, warm-up included.
    pub seen: u64,
    /// When the first and the last of them arrived.
    arrivals: Option<(Instant, Instant)>,
    /// Messages numbered below this belong to the warm-up: counted, not measured.
    first_measured: u64,
    /// Arrival time of each measured message (ns since the epoch; 0 while it has not
    /// arrived), by sequence number from `first_measured`.
    arrived_at: Vec<u64>,
}

/// Percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub measured: u64,
}

fn histogram() -> Histogram<u64> {
    // 1 µs to 10 minutes at three significant digits: the bounds are constants that hold.
    Histogram::new_with_bounds(1_000, 600_000_000_000, 3)
        .expect("constant histogram bounds are valid")
}

fn percentiles(histogram: &Histogram<u64>) -> Percentiles {
    let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1e6;
    Percentiles {
        p50: ms(0.5),
        p99: ms(0.99),
        p999: ms(0.999),
        max: histogram.max() as f64 / 1e6,
        measured: histogram.len(),
    }
}

impl Latencies {
    /// For messages numbered 0 to `total - 1`, of which those from `first_measured` on are
    /// measured.
    pub fn new(first_measured: u64, total: u64) -> Self {
        Self {
            histogram: histogram(),
            seen: 0,
            arrivals: None,
            first_measured,
            arrived_at: vec![0; total.saturating_sub(first_measured) as usize],
        }
    }

    /// Counts message `seq`, sent at `sent_ns` and here at `now_ns` (ns since the epoch);
    /// measures it unless it belongs to the warm-up.
    pub fn record(&mut self, seq: u64, sent_ns: u64, now_ns: u64) {
        self.seen += 1;
        let now = Instant::now();
        self.arrivals = Some((self.arrivals.map_or(now, |(first, _)| first), now));
        if let Some(slot) = seq
            .checked_sub(self.first_measured)
            .and_then(|i| self.arrived_at.get_mut(i as usize))
        {
            self.histogram
                .saturating_record(now_ns.saturating_sub(sent_ns).max(1_000));
            *slot = now_ns;
        }
    }

    /// Per measured message that arrived at both, how much later it arrived here than at
    /// `earlier` (a sink further up the same path): the time the part in between took.
    pub fn after(&self, earlier: &Latencies) -> Percentiles {
        let mut gaps = histogram();
        for (&here, &there) in self.arrived_at.iter().zip(&earlier.arrived_at) {
            if here > 0 && there > 0 {
                gaps.saturating_record(here.saturating_sub(there).max(1_000));
            }
        }
        percentiles(&gaps)
    }

    /// Messages per second between the first and the last arrival: what the path delivered.
    pub fn arrival_rate(&self) -> f64 {
        match self.arrivals {
            Some((first, last)) if last > first => {
                (self.seen - 1) as f64 / (last - first).as_secs_f64()
            }
            _ => f64::NAN,
        }
    }

    pub fn percentiles(&self) -> Percentiles {
        percentiles(&self.histogram)
    }

    /// The cumulative distribution as (latency ms, fraction at or below), for the plots.
    pub fn cdf(&self) -> Vec<(f64, f64)> {
        let total = self.histogram.len().max(1) as f64;
        let mut at_or_below = 0u64;
        self.histogram
            .iter_log(10_000, 1.25)
            .map(|v| {
                at_or_below += v.count_since_last_iteration();
                (
                    v.value_iterated_to() as f64 / 1e6,
                    at_or_below as f64 / total,
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warm_up_is_counted_not_measured_and_percentiles_are_in_ms() {
        let mut l = Latencies::new(1, 1001);
        l.record(0, 0, 900_000_000);
        for i in 1..=1000u64 {
            l.record(i, 5, 5 + i * 1_000_000);
        }
        let p = l.percentiles();
        assert_eq!(l.seen, 1001);
        assert_eq!(p.measured, 1000);
        assert!((p.p50 - 500.0).abs() < 1.0, "{p:?}");
        assert!((p.p99 - 990.0).abs() < 1.0, "{p:?}");
        assert!(p.max < 1001.0);
        let cdf = l.cdf();
        assert!((cdf.last().unwrap().1 - 1.0).abs() < 1e-9);
        assert!(cdf.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1));
    }

    #[test]
    fn the_part_between_two_sinks_is_timed_per_message() {
        // Message i reaches the first sink after 1 ms and the second i ms later still.
        let (mut first, mut second) = (Latencies::new(1, 101), Latencies::new(1, 101));
        for i in 0..=100u64 {
            let sent = 1_000_000_000 + i;
            first.record(i, sent, sent + 1_000_000);
            if i != 50 {
                second.record(i, sent, sent + 1_000_000 + i * 1_000_000);
            }
        }
        let between = second.after(&first);
        assert_eq!(
            between.measured, 99,
            "warm-up and the missing message are left out"
        );
        assert!((between.p50 - 51.0).abs() < 0.1, "{between:?}");
        assert!((between.max - 100.0).abs() < 0.1, "{between:?}");
        // A message seen by the later sink first counts as no time, not as a huge one.
        assert!(first.after(&second).max < 0.01);
    }
}
