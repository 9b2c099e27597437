//! The faults, injected one at a time into a bridge under load.

use std::process::Command;
use std::time::{Duration, Instant};

use rand::Rng;

use super::{toxiproxy, Plan};
use crate::bridge::Bridge;
use crate::env;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// kill -9 of the runtime at random points, each followed by a restart.
    KillRuntime,
    KafkaRestart,
    /// A Mosquitto restart, the bridge's MQTT → Kafka route on a plain subscription.
    MosquittoRestart,
    /// The same with a shared subscription (the default): Mosquitto 2.0 does not keep shared
    /// subscriptions over its restart, and drops what is published before the bridge
    /// subscribes again. Not in [`Fault::ALL`]: a broker limitation, run with `--only`.
    MosquittoRestartShared,
    /// Connections between the runtime and a broker closed, new ones refused.
    CutMqtt,
    CutKafka,
    /// Added latency on everything both brokers send to the runtime.
    Latency,
    /// Kafka reachable, but throttled far below the load.
    SlowKafka,
    /// The runtime frozen (SIGSTOP) while the load goes on: Mosquitto queues for its session
    /// and the commands wait in Kafka; then it resumes (SIGCONT) and must drain both.
    FrozenRuntime,
    /// The MQTT → Kafka producer stuck while the brokers answer metadata (what librdkafka
    /// #5430 looks like from outside): toxiproxy closes every Kafka connection once 64 KiB
    /// have gone up it, and this row's MQTT → Kafka messages are 100 KiB each, so no produce
    /// request gets through while metadata requests do. The
    /// watchdog replaces the producer; the records go through once the toxic is removed.
    StuckProducer,
}

impl Fault {
    pub const ALL: [Fault; 9] = [
        Fault::KillRuntime,
        Fault::KafkaRestart,
        Fault::MosquittoRestart,
        Fault::CutMqtt,
        Fault::CutKafka,
        Fault::Latency,
        Fault::SlowKafka,
        Fault::FrozenRuntime,
        Fault::StuckProducer,
    ];

    /// The fault with this short name (those of [`Fault::ALL`] and the shared-subscription
    /// Mosquitto restart).
    pub fn from_slug(slug: &str) -> Option<Fault> {
        Fault::ALL
            .into_iter()
            .chain([Fault::MosquittoRestartShared])
            .find(|f| f.slug() == slug)
    }

    /// Whether the bridge's MQTT → Kafka route subscribes with a shared subscription.
    pub fn shared_subscription(self) -> bool {
        self != Fault::MosquittoRestart
    }

    /// A short name (for topics, logs and `--only`).
    pub fn slug(self) -> &'static str {
        match self {
            Fault::KillRuntime => "kill9",
            Fault::KafkaRestart => "kafka-restart",
            Fault::MosquittoRestart => "mqtt-restart",
            Fault::MosquittoRestartShared => "mqtt-restart-shared",
            Fault::CutMqtt => "cut-mqtt",
            Fault::CutKafka => "cut-kafka",
            Fault::Latency => "latency",
            Fault::SlowKafka => "slow-kafka",
            Fault::FrozenRuntime => "frozen",
            Fault::StuckProducer => "stuck-producer",
        }
    }

    /// What the table says.
    pub fn describe(self, plan: &Plan) -> String {
        let secs = |d: Duration| d.as_secs();
        match self {
            Fault::KillRuntime => format!("kill -9 of the runtime, {} times", plan.kills),
            Fault::KafkaRestart => "Kafka restart".to_owned(),
            Fault::MosquittoRestart => "Mosquitto restart (plain subscription)".to_owned(),
            Fault::MosquittoRestartShared => "Mosquitto restart (shared subscription)".to_owned(),
            Fault::CutMqtt => format!("network cut runtime ⇄ Mosquitto, {} s", secs(plan.cut)),
            Fault::CutKafka => format!("network cut runtime ⇄ Kafka, {} s", secs(plan.cut)),
            Fault::Latency => format!(
                "+{} ms latency from both brokers, {} s",
                plan.latency_ms,
                secs(plan.degraded)
            ),
            Fault::SlowKafka => format!(
                "slow Kafka ({} KiB/s each way), {} s",
                plan.slow_kafka_kib,
                secs(plan.degraded)
            ),
            Fault::FrozenRuntime => {
                format!("runtime frozen {} s (broker queues fill)", secs(plan.pause))
            }
            Fault::StuckProducer => format!(
                "stuck producer, {} s (Kafka connections cut after 64 KiB up; MQTT → Kafka {} KiB × {}/s)",
                secs(plan.stuck),
                super::STUCK_PADDING / 1024,
                super::STUCK_RATE
            ),
        }
    }

    /// Injects the fault and clears it; returns, for kills, the messages in flight at each.
    pub async fn inject(self, plan: &Plan, bridge: &mut Bridge, name: &str) -> Vec<u64> {
        match self {
            Fault::KillRuntime => return kill_repeatedly(plan, bridge, name).await,
            Fault::KafkaRestart => {
                blocking(|| env().service("restart", "kafka")).await;
            }
            Fault::MosquittoRestart | Fault::MosquittoRestartShared => {
                blocking(|| env().service("restart", "mosquitto")).await;
            }
            Fault::CutMqtt | Fault::CutKafka => {
                let proxy = if self == Fault::CutMqtt {
                    toxiproxy::MQTT
                } else {
                    toxiproxy::KAFKA
                };
                toxiproxy::set_enabled(proxy, false);
                tokio::time::sleep(plan.cut).await;
                toxiproxy::set_enabled(proxy, true);
            }
            Fault::Latency => {
                toxiproxy::add_latency(toxiproxy::MQTT, plan.latency_ms);
                toxiproxy::add_latency(toxiproxy::KAFKA, plan.latency_ms);
                tokio::time::sleep(plan.degraded).await;
                toxiproxy::reset();
            }
            Fault::SlowKafka => {
                toxiproxy::add_bandwidth(toxiproxy::KAFKA, plan.slow_kafka_kib);
                tokio::time::sleep(plan.degraded).await;
                toxiproxy::reset();
            }
            Fault::StuckProducer => {
                toxiproxy::add_upstream_limit(toxiproxy::KAFKA, 64 * 1024);
                tokio::time::sleep(plan.stuck).await;
                toxiproxy::reset();
            }
            Fault::FrozenRuntime => {
                let pid = bridge.process.pid().to_string();
                signal("STOP", &pid);
                tokio::time::sleep(plan.pause).await;
                signal("CONT", &pid);
            }
        }
        Vec::new()
    }
}

/// Kills the runtime `plan.kills` times, each at a random point 0.5–3 s into a run (the first
/// moment after it with messages in flight), and restarts it; returns how many messages it had
/// in flight just before each kill.
async fn kill_repeatedly(plan: &Plan, bridge: &mut Bridge, name: &str) -> Vec<u64> {
    let mut in_flight = Vec::new();
    for _ in 0..plan.kills {
        let wait = rand::rng().random_range(500..3000);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        // Then the first moment the bridge has messages in hand (at most 2 s more).
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut taken = in_flight_messages(bridge);
        while taken == 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
            taken = in_flight_messages(bridge);
        }
        in_flight.push(taken);
        bridge.kill9();
        bridge.restart(name);
        wait_ready(bridge);
    }
    in_flight
}

/// Messages the bridge has taken and not yet finished, both directions.
fn in_flight_messages(bridge: &Bridge) -> u64 {
    bridge.metrics().sum("mkb_in_flight_messages") as u64
}

/// Waits until the bridge is ready, off the load's tasks (`wait_ready` sleeps between polls).
pub(super) fn wait_ready(bridge: &mut Bridge) {
    tokio::task::block_in_place(|| bridge.wait_ready(Duration::from_secs(60)));
}

async fn blocking(f: impl FnOnce() + Send + 'static) {
    tokio::task::spawn_blocking(f)
        .await
        .expect("fault injection task");
}

fn signal(which: &str, pid: &str) {
    let status = Command::new("kill")
        .args([&format!("-{which}"), pid])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{which} {pid}: {status}");
}
