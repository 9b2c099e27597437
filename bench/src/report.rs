//! The results of one `make bench`: every sample in JSON, and the summary as a markdown table
//! with the ratios to the ceiling and to the peer computed from this run alone.

use std::fmt::Write as _;

use serde::Serialize;

use crate::latency::Percentiles;
use crate::latency_runs::{Legs, Run};
use crate::operator_runs::OperatorRun;
use crate::throughput::{KafkaBaseline, Sample};

#[derive(Debug, Clone, Serialize)]
pub struct ThroughputCase {
    pub direction: &'static str,
    pub qos: u8,
    pub size: usize,
    pub subject: &'static str,
    pub samples: Vec<Sample>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LatencyCase {
    pub path: String,
    pub load: &'static str,
    pub rate: f64,
    pub samples: Vec<Run>,
}

/// The rate bridge-runtime sustains with the load generator on the same cores, which the
/// latency loads are fractions of.
#[derive(Debug, Clone, Serialize)]
pub struct LiveMaximum {
    pub direction: &'static str,
    pub offered: f64,
    pub delivered: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct IdleMemory {
    pub system: &'static str,
    pub rss_mib: f64,
}

#[derive(Debug, Default, Serialize)]
pub struct Results {
    pub machine: String,
    pub messages_per_sample: u64,
    pub samples: usize,
    pub latency_samples: usize,
    pub throughput: Vec<ThroughputCase>,
    pub kafka_baseline: Vec<(usize, KafkaBaseline)>,
    pub live_maximum: Vec<LiveMaximum>,
    pub latency: Vec<LatencyCase>,
    pub idle: Vec<IdleMemory>,
    pub operator: Vec<OperatorRun>,
}

/// The subject name of bridge-runtime over MQTT 5.
const MQTT5: &str = "bridge-runtime-mqtt5";

/// Median, smallest and largest of some figures.
pub fn spread(values: &[f64]) -> (f64, f64, f64) {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    let median = if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    };
    (median, v[0], v[v.len() - 1])
}

fn rate_of(case: &ThroughputCase) -> (f64, f64, f64) {
    spread(
        &case
            .samples
            .iter()
            .map(|s| s.messages_per_s)
            .collect::<Vec<_>>(),
    )
}

/// A figure with `decimals` places; "–" for one not measured (a subject left out of the run).
fn figure(value: f64, decimals: usize) -> String {
    if value.is_nan() {
        "–".to_owned()
    } else {
        format!("{value:.decimals$}")
    }
}

fn fmt_rate((median, min, max): (f64, f64, f64)) -> String {
    format!("{median:.0} ({min:.0}–{max:.0})")
}

impl Results {
    fn case(
        &self,
        direction: &str,
        qos: u8,
        size: usize,
        subject: &str,
    ) -> Option<&ThroughputCase> {
        self.throughput.iter().find(|c| {
            c.direction == direction && c.qos == qos && c.size == size && c.subject == subject
        })
    }

    /// Direction, QoS and payload size of each measured case, in the order measured.
    fn case_keys(&self) -> Vec<(&'static str, u8, usize)> {
        let mut keys: Vec<_> = self
            .throughput
            .iter()
            .map(|c| (c.direction, c.qos, c.size))
            .collect();
        keys.dedup();
        keys
    }

    /// The median of one figure of a subject's samples in a case (NaN when not measured).
    fn median_of(&self, d: &str, q: u8, size: usize, who: &str, f: fn(&Sample) -> f64) -> f64 {
        self.case(d, q, size, who).map_or(f64::NAN, |c| {
            spread(&c.samples.iter().map(f).collect::<Vec<_>>()).0
        })
    }

    /// The median rate of a subject in a case (NaN when it was not measured).
    pub fn median_rate(&self, direction: &str, qos: u8, size: usize, subject: &str) -> f64 {
        self.case(direction, qos, size, subject)
            .map_or(f64::NAN, |c| rate_of(c).0)
    }

    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(
            md,
            "# make bench results\n\n{}; {} messages per throughput sample, {} samples per throughput figure, {} per latency figure; \
             figures are medians with (min–max).\n",
            self.machine, self.messages_per_sample, self.samples, self.latency_samples
        );
        if !self.throughput.is_empty() {
            md.push_str("## Throughput (msg/s)\n\n`bridge-runtime` runs MQTT 3.1.1 like the ceiling and the peer; `bridge-runtime MQTT 5` is the same binary with its default protocol, MQTT 5.\n\n| direction | QoS | payload | ceiling | bridge-runtime | bridge-runtime MQTT 5 | Redpanda Connect | bridge / ceiling | MQTT 5 / 3.1.1 | bridge / Redpanda Connect | bridge MB/s | bridge CPU s per million | MQTT 5 CPU s per million | bridge peak RSS MiB | Redpanda Connect CPU s per million | Redpanda Connect peak RSS MiB |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
            for (d, q, size) in self.case_keys() {
                let cell = |who: &str| {
                    self.case(d, q, size, who)
                        .map_or("–".to_owned(), |c| fmt_rate(rate_of(c)))
                };
                let median = |who: &str, f: fn(&Sample) -> f64| self.median_of(d, q, size, who, f);
                let bridge = self.median_rate(d, q, size, "bridge-runtime");
                let mqtt5 = self.median_rate(d, q, size, MQTT5);
                let _ = writeln!(
                    md,
                    "| {d} | {q} | {size} B | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    cell("ceiling"),
                    cell("bridge-runtime"),
                    cell(MQTT5),
                    cell("redpanda-connect"),
                    figure(bridge / self.median_rate(d, q, size, "ceiling"), 2),
                    figure(mqtt5 / bridge, 2),
                    figure(bridge / self.median_rate(d, q, size, "redpanda-connect"), 2),
                    figure(median("bridge-runtime", |s| s.mb_per_s), 1),
                    figure(median("bridge-runtime", |s| s.cpu_s_per_million), 2),
                    figure(median(MQTT5, |s| s.cpu_s_per_million), 2),
                    figure(median("bridge-runtime", |s| s.peak_rss_mib), 1),
                    figure(median("redpanda-connect", |s| s.cpu_s_per_million), 2),
                    figure(median("redpanda-connect", |s| s.peak_rss_mib), 1),
                );
            }
        }
        if !self.throughput.is_empty() {
            md.push_str("\n## CPU seconds per million messages (subject; Mosquitto + Kafka during its run)\n\n| direction | QoS | payload | bridge-runtime | brokers with bridge-runtime | bridge-runtime MQTT 5 | brokers with MQTT 5 | Redpanda Connect | brokers with Redpanda Connect |\n|---|---|---|---|---|---|---|---|---|\n");
            for (d, q, size) in self.case_keys() {
                let median = |who: &str, f: fn(&Sample) -> f64| self.median_of(d, q, size, who, f);
                let _ = writeln!(
                    md,
                    "| {d} | {q} | {size} B | {} | {} | {} | {} | {} | {} |",
                    figure(median("bridge-runtime", |s| s.cpu_s_per_million), 2),
                    figure(median("bridge-runtime", |s| s.brokers_cpu_s_per_million), 2),
                    figure(median(MQTT5, |s| s.cpu_s_per_million), 2),
                    figure(median(MQTT5, |s| s.brokers_cpu_s_per_million), 2),
                    figure(median("redpanda-connect", |s| s.cpu_s_per_million), 2),
                    figure(
                        median("redpanda-connect", |s| s.brokers_cpu_s_per_million),
                        2
                    ),
                );
            }
        }
        if !self.kafka_baseline.is_empty() {
            md.push_str("\n## Bare Kafka (msg/s)\n\n| payload | produce (acks=all, lz4, linger 5 ms) | consume |\n|---|---|---|\n");
            let mut sizes: Vec<usize> = self.kafka_baseline.iter().map(|(s, _)| *s).collect();
            sizes.sort_unstable();
            sizes.dedup();
            for size in sizes {
                let of = |f: fn(&KafkaBaseline) -> f64| {
                    fmt_rate(spread(
                        &self
                            .kafka_baseline
                            .iter()
                            .filter(|(s, _)| *s == size)
                            .map(|(_, b)| f(b))
                            .collect::<Vec<_>>(),
                    ))
                };
                let _ = writeln!(
                    md,
                    "| {size} B | {} | {} |",
                    of(|b| b.produce.messages_per_s),
                    of(|b| b.consume.messages_per_s)
                );
            }
        }
        if !self.live_maximum.is_empty() {
            md.push_str("\n## Live maximum (bridge-runtime, QoS 1, 100 B, the load generator on the same cores)\n\n| direction | offered msg/s | delivered msg/s |\n|---|---|---|\n");
            for m in &self.live_maximum {
                let _ = writeln!(
                    md,
                    "| {} | {:.0} | {:.0} |",
                    m.direction, m.offered, m.delivered
                );
            }
        }
        if !self.latency.is_empty() {
            md.push_str("\n## End-to-end latency (ms), QoS 1, 100 B, at 50 % and 90 % of the live maximum\n\n| path | load | rate msg/s | p50 | p99 | p99.9 | max | arrived / sent |\n|---|---|---|---|---|---|---|---|\n");
            for c in self.latency.iter().filter(|c| !c.times_legs()) {
                let of = |f: fn(&Run) -> f64| {
                    let (m, lo, hi) = spread(&c.samples.iter().map(f).collect::<Vec<_>>());
                    format!("{m:.2} ({lo:.2}–{hi:.2})")
                };
                let arrived: u64 = c.samples.iter().map(|r| r.arrived).sum();
                let sent: u64 = c.samples.iter().map(|r| r.sent).sum();
                let _ = writeln!(
                    md,
                    "| {} | {} | {:.0} | {} | {} | {} | {} | {arrived} / {sent} |",
                    c.path,
                    c.load,
                    c.rate,
                    of(|r| r.percentiles.p50),
                    of(|r| r.percentiles.p99),
                    of(|r| r.percentiles.p999),
                    of(|r| r.percentiles.max),
                );
            }
        }
        self.legs_table(&mut md);
        if !self.idle.is_empty() {
            md.push_str("\n## Idle memory (one MQTT -> Kafka route, connected and ready, no load)\n\n| system | RSS MiB |\n|---|---|\n");
            for i in &self.idle {
                let _ = writeln!(md, "| {} | {:.1} |", i.system, i.rss_mib);
            }
        }
        if !self.operator.is_empty() {
            md.push_str("\n## Operator (release build, KWOK nodes)\n\n| bridges | Ready | all Ready after s | reconciliations | mean reconcile s | peak RSS MiB | RSS at the end MiB |\n|---|---|---|---|---|---|---|\n");
            for o in &self.operator {
                let _ = writeln!(
                    md,
                    "| {} | {} | {:.1} | {:.0} | {:.2} | {:.1} | {:.1} |",
                    o.bridges,
                    o.ready,
                    o.ready_s,
                    o.reconciles,
                    o.mean_reconcile_s,
                    o.peak_rss_mib,
                    o.rss_when_ready_mib
                );
            }
        }
        md
    }
}

impl Results {
    /// The runs that time legs (see [`Legs`]): where bridge-runtime's time goes.
    fn legs_table(&self, md: &mut String) {
        let timed: Vec<&LatencyCase> = self.latency.iter().filter(|c| c.times_legs()).collect();
        if timed.is_empty() {
            return;
        }
        md.push_str(
            "\n## Where the time goes (ms, p50 / p99), QoS 1, 100 B\n\n\
             A bridge path with an observer alongside that sees the same messages where the first leg ends \
             (a bare subscriber on the MQTT topics the bridge reads, or a bare consumer of the Kafka topic it reads); \
             the bridge and its second leg is, per message, the arrival at the end minus the arrival at the observer. \
             The bare legs at once: each timed while the other loads the machine, as a bridge path loads it.\n\n\
             | path | load | end to end | MQTT leg | Kafka leg | the bridge and its second leg |\n|---|---|---|---|---|---|\n",
        );
        for c in timed {
            let pair = |pick: &dyn Fn(&Run) -> Option<Percentiles>| {
                let of = |q: fn(&Percentiles) -> f64| {
                    spread(
                        &c.samples
                            .iter()
                            .filter_map(pick)
                            .map(|p| q(&p))
                            .collect::<Vec<_>>(),
                    )
                    .0
                };
                let (p50, p99) = (of(|p| p.p50), of(|p| p.p99));
                if p50.is_nan() {
                    "–".to_owned()
                } else {
                    format!("{p50:.2} / {p99:.2}")
                }
            };
            let legs = |pick: fn(&Legs) -> Option<Percentiles>| {
                move |r: &Run| r.legs.as_ref().and_then(pick)
            };
            // Only a path through a system has an end to end of its own; both bare legs at
            // once do not (their run carries the Kafka leg's figures).
            let end_to_end = pair(&|r| {
                r.legs
                    .as_ref()
                    .and_then(|l| l.system_and_second_leg)
                    .map(|_| r.percentiles)
            });
            let _ = writeln!(
                md,
                "| {} | {} | {end_to_end} | {} | {} | {} |",
                c.path,
                c.load,
                pair(&legs(|l| l.mqtt)),
                pair(&legs(|l| l.kafka)),
                pair(&legs(|l| l.system_and_second_leg)),
            );
        }
    }
}

impl LatencyCase {
    /// A run that times legs (see [`Legs`]); the end-to-end table leaves it out.
    fn times_legs(&self) -> bool {
        self.samples.iter().any(|r| r.legs.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::latency_runs::Path;
    use crate::systems::System;

    #[test]
    fn spread_is_median_min_max() {
        assert_eq!(spread(&[3.0, 1.0, 2.0]), (2.0, 1.0, 3.0));
        assert_eq!(spread(&[4.0, 1.0, 2.0, 3.0]), (2.5, 1.0, 4.0));
        assert!(spread(&[]).0.is_nan());
    }

    #[test]
    fn legs_are_tabled_apart_from_end_to_end_latency() {
        let ms = |p50: f64| Percentiles {
            p50,
            p99: p50 * 10.0,
            ..Percentiles::default()
        };
        let run = |end_to_end: f64, legs: Option<Legs>| Run {
            percentiles: ms(end_to_end),
            arrived: 10,
            sent: 10,
            arrival_rate: 1.0,
            cdf: vec![],
            legs,
        };
        let case = |path: String, samples: Vec<Run>| LatencyCase {
            path,
            load: "50 %",
            rate: 100.0,
            samples,
        };
        let observed = |e2e: f64, mqtt: f64, rest: f64| {
            let legs = Legs {
                mqtt: Some(ms(mqtt)),
                kafka: None,
                system_and_second_leg: Some(ms(rest)),
            };
            run(e2e, Some(legs))
        };
        let at_once = Legs {
            mqtt: Some(ms(0.5)),
            kafka: Some(ms(4.0)),
            system_and_second_leg: None,
        };
        let r = Results {
            latency: vec![
                case(
                    Path::MqttToKafka(System::BridgeRuntime, false).name(),
                    vec![run(6.0, None)],
                ),
                case(Path::BareLegsAtOnce.name(), vec![run(4.0, Some(at_once))]),
                case(
                    Path::MqttToKafka(System::BridgeRuntime, true).name(),
                    vec![observed(6.0, 1.0, 5.0), observed(8.0, 3.0, 5.5)],
                ),
            ],
            ..Results::default()
        };
        let md = r.markdown();
        assert!(
            md.contains("| bridge-runtime MQTT -> Kafka, observed | 50 % | 7.00 / 70.00 | 2.00 / 20.00 | – | 5.25 / 52.50 |"),
            "{md}"
        );
        assert!(
            md.contains(
                "| bare MQTT and bare Kafka at once | 50 % | – | 0.50 / 5.00 | 4.00 / 40.00 | – |"
            ),
            "{md}"
        );
        // The end-to-end table keeps the plain run only.
        assert!(
            md.contains("| bridge-runtime MQTT -> Kafka | 50 % | 100 | 6.00 (6.00–6.00)"),
            "{md}"
        );
        assert_eq!(md.matches("at once | 50 %").count(), 1, "{md}");
        assert_eq!(md.matches("observed | 50 %").count(), 1, "{md}");
    }

    #[test]
    fn ratios_come_from_the_same_run() {
        let sample = |r: f64| Sample {
            messages_per_s: r,
            mb_per_s: 0.0,
            delivered: 1,
            cpu_s_per_million: 0.0,
            brokers_cpu_s_per_million: 0.0,
            peak_rss_mib: 0.0,
        };
        let case = |subject, rates: &[f64]| ThroughputCase {
            direction: "mqtt-to-kafka",
            qos: 1,
            size: 100,
            subject,
            samples: rates.iter().map(|&r| sample(r)).collect(),
        };
        let r = Results {
            throughput: vec![
                case("ceiling", &[100.0, 120.0, 110.0]),
                case("bridge-runtime", &[99.0, 90.0, 95.0]),
                case("bridge-runtime-mqtt5", &[90.0, 92.0, 85.5]),
                case("redpanda-connect", &[30.0, 31.0, 32.0]),
            ],
            ..Results::default()
        };
        let md = r.markdown();
        assert!(md.contains("| mqtt-to-kafka | 1 | 100 B | 110 (100–120) | 95 (90–99) | 90 (86–92) | 31 (30–32) | 0.86 | 0.95 | 3.06 |"), "{md}");

        // A run without the peer (--subjects ceiling,bridge-runtime) leaves its cells blank.
        let r = Results {
            throughput: vec![
                case("ceiling", &[100.0, 120.0, 110.0]),
                case("bridge-runtime", &[99.0, 90.0, 95.0]),
            ],
            ..Results::default()
        };
        let md = r.markdown();
        assert!(
            md.contains("| 110 (100–120) | 95 (90–99) | – | – | 0.86 | – | – |"),
            "{md}"
        );
        assert!(!md.contains("NaN"), "{md}");
    }
}
