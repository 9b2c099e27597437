//! End-to-end latency of a run: a histogram of (arrival - send stamp) for the messages after
//! the warm-up.

use std::time::Instant;

use hdrhistogram::Histogram;
use serde::Serialize;

pub struct Latencies {
    histogram: Histogram<u64>,
    /// Messages that arrived, warm-up included.
    pub seen: u64,
    /// When the first and the last of them arrived.
    arrivals: Option<(Instant, Instant)>,
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

impl Default for Latencies {
    fn default() -> Self {
        Self::new()
    }
}

impl Latencies {
    pub fn new() -> Self {
        // 1 µs to 10 minutes at three significant digits: the bounds are constants that hold.
        let histogram = Histogram::new_with_bounds(1_000, 600_000_000_000, 3)
            .expect("constant histogram bounds are valid");
        Self {
            histogram,
            seen: 0,
            arrivals: None,
        }
    }

    /// Counts a message; measures it unless it belongs to the warm-up.
    pub fn record(&mut self, measured: bool, nanos: u64) {
        self.seen += 1;
        let now = Instant::now();
        self.arrivals = Some((self.arrivals.map_or(now, |(first, _)| first), now));
        if measured {
            self.histogram.saturating_record(nanos.max(1_000));
        }
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
        let ms = |q: f64| self.histogram.value_at_quantile(q) as f64 / 1e6;
        Percentiles {
            p50: ms(0.5),
            p99: ms(0.99),
            p999: ms(0.999),
            max: self.histogram.max() as f64 / 1e6,
            measured: self.histogram.len(),
        }
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
        let mut l = Latencies::new();
        l.record(false, 900_000_000);
        for i in 1..=1000u64 {
            l.record(true, i * 1_000_000);
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
}
