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
}

impl Fault {
    pub const ALL: [Fault; 8] = [
        Fault::KillRuntime,
        Fault::KafkaRestart,
        Fault::MosquittoRestart,
        Fault::CutMqtt,
        Fault::CutKafka,
        Fault::Latency,
        Fault::SlowKafka,
        Fault::FrozenRuntime,
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
        }
    }

    /// Injects the fault and clears it; returns when it was cleared and notes for the table.
    pub async fn inject(self, plan: &Plan, bridge: &mut Bridge, name: &str) -> (Instant, String) {
        match self {
            Fault::KillRuntime => kill_repeatedly(plan, bridge, name).await,
            Fault::KafkaRestart => {
                blocking(|| env().service("restart", "kafka")).await;
                (Instant::now(), String::new())
            }
            Fault::MosquittoRestart | Fault::MosquittoRestartShared => {
                blocking(|| env().service("restart", "mosquitto")).await;
                (Instant::now(), String::new())
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
                (Instant::now(), String::new())
            }
            Fault::Latency => {
                toxiproxy::add_latency(toxiproxy::MQTT, plan.latency_ms);
                toxiproxy::add_latency(toxiproxy::KAFKA, plan.latency_ms);
                tokio::time::sleep(plan.degraded).await;
                toxiproxy::reset();
                (Instant::now(), String::new())
            }
            Fault::SlowKafka => {
                toxiproxy::add_bandwidth(toxiproxy::KAFKA, plan.slow_kafka_kib);
                tokio::time::sleep(plan.degraded).await;
                toxiproxy::reset();
                (Instant::now(), String::new())
            }
            Fault::FrozenRuntime => {
                let pid = bridge.process.pid().to_string();
                signal("STOP", &pid);
                tokio::time::sleep(plan.pause).await;
                signal("CONT", &pid);
                (Instant::now(), String::new())
            }
        }
    }
}

/// Kills the runtime `plan.kills` times, each at a random point 0.5–3 s into a run (the first
/// moment after it with messages in flight), and restarts it; notes how many messages it had in flight just before each kill.
async fn kill_repeatedly(plan: &Plan, bridge: &mut Bridge, name: &str) -> (Instant, String) {
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
        let ready_wait = blocking_ready(bridge);
        ready_wait.await;
    }
    let list: Vec<String> = in_flight.iter().map(u64::to_string).collect();
    (
        Instant::now(),
        format!("in flight at the kills: {}", list.join(", ")),
    )
}

/// Messages the bridge has taken and not yet finished, both directions.
pub fn in_flight_messages(bridge: &Bridge) -> u64 {
    bridge
        .metrics()
        .0
        .lines()
        .filter(|l| l.starts_with("mkb_in_flight_messages"))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum::<f64>() as u64
}

async fn blocking_ready(bridge: &mut Bridge) {
    // wait_ready polls with sleeps; keep it off the load's tasks.
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
