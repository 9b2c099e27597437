//! `make bench`: bridge-runtime against the brokers' own ceilings and Redpanda Connect, on one
//! machine, in one run; ratios come from figures taken in the same run. See docs/performance.md.

mod broker;
mod kafka_load;
mod latency;
mod latency_runs;
mod mqtt_load;
mod operator_runs;
mod payload;
mod procstat;
mod report;
mod systems;
mod throughput;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;

use latency_runs::Path;
use report::{IdleMemory, LatencyCase, Results, ThroughputCase};
use systems::{Route, Running, Setup, System};
use throughput::Subject;

#[derive(Parser)]
#[command(about = "Benchmarks bridge-runtime against the broker ceilings and Redpanda Connect")]
struct Args {
    /// Where results.json and results.md go.
    #[arg(long, default_value = "bench/results")]
    out: PathBuf,
    /// The Redpanda Connect binary (bench/build-peer.sh builds it).
    #[arg(long)]
    peer: PathBuf,
    /// Messages per throughput sample.
    #[arg(long, default_value_t = 200_000)]
    messages: u64,
    /// Samples per throughput figure. Single samples of one binary vary by ±15 % on two
    /// shared cores; five keep a median's chance drift well inside the 10 % the MQTT 5 / 3.1.1
    /// comparison allows.
    #[arg(long, default_value_t = 5)]
    samples: usize,
    /// Samples per latency figure (each is 2 s of warm-up and --latency-seconds measured).
    #[arg(long, default_value_t = 3)]
    latency_samples: usize,
    /// Seconds measured per latency sample (after 2 s of warm-up).
    #[arg(long, default_value_t = 8.0)]
    latency_seconds: f64,
    /// Parts to run: throughput, latency, idle, operator.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "throughput,latency,idle,operator"
    )]
    only: Vec<String>,
    /// Throughput cases to run, as direction:qos:payload-bytes (e.g.
    /// kafka-to-mqtt:1:100); default all ten.
    #[arg(long, value_delimiter = ',', value_parser = parse_case)]
    cases: Vec<(&'static str, u8, usize)>,
    /// Subjects to run: ceiling, bridge-runtime (MQTT 3.1.1), bridge-runtime-mqtt5,
    /// redpanda-connect; default all four (a ratio needs both of its subjects). The latency
    /// part leaves out the paths of the systems left out here.
    #[arg(long, value_delimiter = ',', value_parser = parse_subject)]
    subjects: Vec<Subject>,
    /// Bridge counts for the operator part.
    #[arg(long, value_delimiter = ',', default_value = "1,100,500")]
    bridges: Vec<usize>,
}

const SYSTEMS: [System; 2] = [System::BridgeRuntime, System::RedpandaConnect];
const SUBJECTS: [Subject; 4] = [
    Subject::Ceiling,
    Subject::System(System::BridgeRuntime),
    Subject::System(System::BridgeRuntimeMqtt5),
    Subject::System(System::RedpandaConnect),
];

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()?
                .split_whitespace()
                .nth(1)?
                .parse::<f64>()
                .ok()
        })
        .map_or(0.0, |kib| kib / 1048576.0);
    format!("{cpus} CPUs, {mem:.0} GiB; Mosquitto, Kafka, the subject and the load generator share them")
}

fn save(args: &Args, results: &Results) -> Result<()> {
    std::fs::create_dir_all(&args.out)?;
    std::fs::write(
        args.out.join("results.json"),
        serde_json::to_string_pretty(results)?,
    )?;
    std::fs::write(args.out.join("results.md"), results.markdown())?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let wants = |part: &str| args.only.iter().any(|p| p == part);
    let work = args.out.join("work");
    let broker = broker::Mosquitto::start(&work).context("the benchmark's Mosquitto")?;
    let kafka = testbed::env().kafka_bootstrap.clone();
    let kafka_pid = std::fs::read_to_string(testbed::env().dir.join("pids/kafka.pid"))
        .ok()
        .and_then(|p| p.trim().parse().ok())
        .context("the test bed's Kafka pid (target/testbed/pids/kafka.pid)")?;
    let setup = Setup {
        dir: &work,
        peer: &args.peer,
        mqtt_port: broker.port,
        kafka: &kafka,
        brokers: [broker.pid(), kafka_pid],
    };
    let mut results = Results {
        machine: machine(),
        messages_per_sample: args.messages,
        samples: args.samples,
        latency_samples: args.latency_samples,
        ..Results::default()
    };

    if wants("throughput") {
        let subjects = chosen_subjects(&args);
        eprintln!("bench: warm-up");
        for &who in &subjects {
            throughput::mqtt_to_kafka(&setup, who, 1, 100, args.messages / 10).await?;
        }
        let chosen = if args.cases.is_empty() {
            cases()
        } else {
            args.cases.clone()
        };
        for (direction, qos, size) in chosen {
            let mut cases: Vec<ThroughputCase> = subjects
                .iter()
                .map(|who| ThroughputCase {
                    direction,
                    qos,
                    size,
                    subject: who.name(),
                    samples: vec![],
                })
                .collect();
            for i in 0..args.samples {
                // Each sample starts with the next subject, so none always runs right after
                // another (Kafka deletes the previous topic's logs, the JIT warms up, the page
                // cache fills): a drift spreads over all subjects instead of biasing a ratio.
                let mut order: Vec<_> = subjects.iter().zip(cases.iter_mut()).collect();
                let first = i % order.len().max(1);
                order.rotate_left(first);
                for (who, case) in order {
                    let sample = if direction == "mqtt-to-kafka" {
                        throughput::mqtt_to_kafka(&setup, *who, qos, size, args.messages).await
                    } else {
                        throughput::kafka_to_mqtt(&setup, *who, qos, size, args.messages)
                            .await
                            .map(|(s, baseline)| {
                                if let Some(b) = baseline {
                                    results.kafka_baseline.push((size, b));
                                }
                                s
                            })
                    }
                    .with_context(|| {
                        format!("{direction} QoS {qos} {size} B, {} sample {i}", who.name())
                    })?;
                    eprintln!(
                        "bench: {direction} QoS {qos} {size} B {}: {:.0} msg/s ({} delivered)",
                        who.name(),
                        sample.messages_per_s,
                        sample.delivered
                    );
                    case.samples.push(sample);
                }
            }
            results.throughput.extend(cases);
            save(&args, &results)?;
        }
    }

    if wants("latency") {
        latency_part(&args, &setup, &mut results).await?;
        save(&args, &results)?;
    }

    if wants("idle") {
        for system in SYSTEMS {
            let name = testbed::unique("idle");
            let route = Route::MqttToKafka {
                prefix: name.clone(),
                qos: 1,
                topic: name.clone(),
            };
            testbed::kafka::create_topic(&name, 6).await;
            let mut running = Running::start(system, &name, &route, &setup)?;
            running.wait_ready(Duration::from_secs(60))?;
            tokio::time::sleep(Duration::from_secs(5)).await;
            results.idle.push(IdleMemory {
                system: system.name(),
                rss_mib: running.rss_mib(),
            });
            drop(running);
            kafka_load::delete_topic(&kafka, &name).await?;
        }
        save(&args, &results)?;
    }

    if wants("operator") {
        for &n in &args.bridges {
            let run = operator_runs::bridges_ready(n)?;
            eprintln!(
                "bench: operator, {} of {n} bridges Ready after {:.1} s, peak RSS {:.1} MiB",
                run.ready, run.ready_s, run.peak_rss_mib
            );
            results.operator.push(run);
            save(&args, &results)?;
        }
    }
    save(&args, &results)?;
    println!("{}", results.markdown());
    Ok(())
}

/// The subjects of this run: `--subjects`, or all of them.
fn chosen_subjects(args: &Args) -> Vec<Subject> {
    if args.subjects.is_empty() {
        SUBJECTS.to_vec()
    } else {
        args.subjects.clone()
    }
}

/// One of [`SUBJECTS`], by name.
fn parse_subject(text: &str) -> Result<Subject, String> {
    SUBJECTS
        .into_iter()
        .find(|s| s.name() == text)
        .ok_or_else(|| {
            let all: Vec<&str> = SUBJECTS.iter().map(|s| s.name()).collect();
            format!(
                "{text:?} is not a subject; the subjects are {}",
                all.join(", ")
            )
        })
}

/// One of [`cases`], written direction:qos:payload-bytes.
fn parse_case(text: &str) -> Result<(&'static str, u8, usize), String> {
    cases()
        .into_iter()
        .find(|(direction, qos, size)| format!("{direction}:{qos}:{size}") == text)
        .ok_or_else(|| {
            let all: Vec<String> = cases()
                .iter()
                .map(|(d, q, s)| format!("{d}:{q}:{s}"))
                .collect();
            format!("{text:?} is not a case; the cases are {}", all.join(", "))
        })
}

fn cases() -> Vec<(&'static str, u8, usize)> {
    let mut v = Vec::new();
    for direction in ["mqtt-to-kafka", "kafka-to-mqtt"] {
        for qos in [0, 1] {
            for size in [100, 1024] {
                v.push((direction, qos, size));
            }
        }
        v.push((direction, 2, 100));
    }
    v
}

/// Latency at 50 % and 90 % of the rate bridge-runtime sustains live (QoS 1, 100 B), the same
/// absolute load for every path, so the paths compare at equal load. The live maximum is lower
/// than the drain rate: the load generator and the sinks share the two cores.
async fn latency_part(args: &Args, setup: &Setup<'_>, results: &mut Results) -> Result<()> {
    let subjects = chosen_subjects(args);
    let mut live = Vec::new();
    for direction in ["mqtt-to-kafka", "kafka-to-mqtt"] {
        // Offered: the drain maximum of this run (or a generous stand-in without one).
        let drain = results.median_rate(direction, 1, latency_runs::SIZE, "bridge-runtime");
        let offered = if drain.is_finite() { drain } else { 150_000.0 };
        let probe = latency_runs::Pace {
            rate: offered,
            warm_up_s: 1.0,
            measured_s: 4.0,
        };
        let path = if direction == "mqtt-to-kafka" {
            Path::MqttToKafka(System::BridgeRuntime, false)
        } else {
            Path::KafkaToMqtt(System::BridgeRuntime, false)
        };
        let run = path
            .run(setup, probe)
            .await
            .with_context(|| format!("the live maximum, {direction}"))?;
        let delivered = run.arrival_rate.min(offered);
        eprintln!("bench: live maximum {direction}: {delivered:.0} msg/s of {offered:.0} offered");
        results.live_maximum.push(report::LiveMaximum {
            direction,
            offered,
            delivered,
        });
        live.push(delivered);
    }
    let (max_m2k, max_k2m) = (live[0], live[1]);
    for (load, fraction) in [("50 %", 0.5), ("90 %", 0.9)] {
        let mut paths = vec![
            Path::BareMqtt,
            Path::BareKafka,
            Path::MqttToKafka(System::BridgeRuntime, false),
            Path::MqttToKafka(System::RedpandaConnect, false),
            Path::KafkaToMqtt(System::BridgeRuntime, false),
            Path::KafkaToMqtt(System::RedpandaConnect, false),
        ];
        if fraction == 0.5 {
            // bridge-runtime's default protocol, at the load the latency target is set for.
            paths.push(Path::MqttToKafka(System::BridgeRuntimeMqtt5, false));
            paths.push(Path::KafkaToMqtt(System::BridgeRuntimeMqtt5, false));
            // Where bridge-runtime's time goes, at the same load.
            paths.push(Path::BareLegsAtOnce);
            paths.push(Path::MqttToKafka(System::BridgeRuntime, true));
            paths.push(Path::KafkaToMqtt(System::BridgeRuntime, true));
        }
        // Subjects left out with --subjects are left out here too (their rows read –).
        let chosen = |path: &Path| match path.system() {
            Some(system) => subjects.contains(&Subject::System(system)),
            None => true,
        };
        let mut cases: Vec<(Path, latency_runs::Pace, LatencyCase)> = paths
            .into_iter()
            .filter(chosen)
            .map(|path| {
                let max = if path.is_kafka_to_mqtt() {
                    max_k2m
                } else {
                    max_m2k
                };
                let pace = latency_runs::Pace {
                    rate: max * fraction,
                    warm_up_s: 2.0,
                    measured_s: args.latency_seconds,
                };
                let case = LatencyCase {
                    path: path.name(),
                    load,
                    rate: pace.rate,
                    samples: vec![],
                };
                (path, pace, case)
            })
            .collect();
        // Sample by sample across the paths, as the throughput part does, so a drift of the
        // machine over the minutes this takes spreads over every path.
        for _ in 0..args.latency_samples {
            for (path, p, case) in &mut cases {
                let name = &case.path;
                let run = path
                    .run(setup, *p)
                    .await
                    .with_context(|| format!("latency, {name} at {load}"))?;
                eprintln!(
                    "bench: latency {name} at {load} ({:.0} msg/s): p50 {:.2} p99 {:.2} p99.9 {:.2} ms, {}/{} arrived",
                    p.rate, run.percentiles.p50, run.percentiles.p99, run.percentiles.p999, run.arrived, run.sent
                );
                case.samples.push(run);
            }
        }
        results
            .latency
            .extend(cases.into_iter().map(|(_, _, case)| case));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn cases_are_named_direction_qos_bytes() {
        assert_eq!(
            super::parse_case("kafka-to-mqtt:1:100"),
            Ok(("kafka-to-mqtt", 1, 100))
        );
        let refused = super::parse_case("kafka-to-mqtt:2:1024").unwrap_err();
        assert!(
            refused.contains("is not a case") && refused.contains("mqtt-to-kafka:0:100"),
            "{refused}"
        );
    }

    #[test]
    fn subjects_are_named() {
        assert_eq!(super::parse_subject("ceiling"), Ok(super::Subject::Ceiling));
        let refused = super::parse_subject("kafka-connect").unwrap_err();
        assert!(
            refused.contains("bridge-runtime, bridge-runtime-mqtt5, redpanda-connect"),
            "{refused}"
        );
    }
}
