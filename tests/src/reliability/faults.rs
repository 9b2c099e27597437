//! The faults, injected one at a time into a bridge under load.

use std::process::Command;
use std::time::{Duration, Instant};

use rand::Rng;

use super::{toxiproxy, Brokers, Plan};
use crate::bridge::Bridge;
use crate::{env, kafka_cluster};

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
    /// kill -9 of the Kafka cluster node that leads partition 0 of the bridge's MQTT → Kafka
    /// topic (usually a partition of the Kafka → MQTT topic too: the notes say which);
    /// started again after a while.
    ClusterLeaderKill,
    /// Each node of the cluster stopped (SIGTERM, a controlled shutdown) and started in turn,
    /// the next only once every partition is fully replicated again, as Strimzi rolls a
    /// cluster.
    ClusterRollingRestart,
    /// kill -9 of the node that is the active KRaft controller; started again after a while.
    ClusterControllerKill,
    /// The dead-letter topic under its `min.insync.replicas` (replication factor 3,
    /// `min.insync.replicas=3`, one node of the cluster killed) while both directions carry
    /// poison messages (1 in 50) that need it, on the Kafka cluster: its letters are not
    /// confirmed, the bridge holds those messages back and writes them once the node is back;
    /// healthy messages keep flowing.
    DeadLetterUnderMinIsr,
    /// A HiveMQ CE restart (persistence on), plain subscription.
    HivemqRestart,
    /// The same with a shared subscription.
    HivemqRestartShared,
}

impl Fault {
    pub const ALL: [Fault; 15] = [
        Fault::KillRuntime,
        Fault::KafkaRestart,
        Fault::MosquittoRestart,
        Fault::CutMqtt,
        Fault::CutKafka,
        Fault::Latency,
        Fault::SlowKafka,
        Fault::FrozenRuntime,
        Fault::StuckProducer,
        Fault::ClusterLeaderKill,
        Fault::ClusterRollingRestart,
        Fault::ClusterControllerKill,
        Fault::DeadLetterUnderMinIsr,
        Fault::HivemqRestart,
        Fault::HivemqRestartShared,
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
        !matches!(self, Fault::MosquittoRestart | Fault::HivemqRestart)
    }

    /// Whether the fault is a broker's restart or fail-over (the table then gives the longest
    /// pause in delivery).
    pub fn broker_fault(self) -> bool {
        matches!(
            self,
            Fault::KafkaRestart
                | Fault::MosquittoRestart
                | Fault::MosquittoRestartShared
                | Fault::ClusterLeaderKill
                | Fault::ClusterRollingRestart
                | Fault::ClusterControllerKill
                | Fault::DeadLetterUnderMinIsr
                | Fault::HivemqRestart
                | Fault::HivemqRestartShared
        )
    }

    /// The brokers the scenario runs against.
    pub fn brokers(self) -> Brokers {
        match self {
            Fault::ClusterLeaderKill
            | Fault::ClusterRollingRestart
            | Fault::ClusterControllerKill
            | Fault::DeadLetterUnderMinIsr => Brokers::kafka_cluster(),
            Fault::HivemqRestart | Fault::HivemqRestartShared => Brokers::hivemq(),
            _ => Brokers::proxied(),
        }
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
            Fault::ClusterLeaderKill => "cluster-leader-kill9",
            Fault::ClusterRollingRestart => "cluster-rolling-restart",
            Fault::ClusterControllerKill => "cluster-controller-kill9",
            Fault::DeadLetterUnderMinIsr => "dead-letter-min-isr",
            Fault::HivemqRestart => "hivemq-restart",
            Fault::HivemqRestartShared => "hivemq-restart-shared",
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
            Fault::ClusterLeaderKill => format!(
                "Kafka cluster: kill -9 of a partition leader, down {} s",
                secs(plan.node_down)
            ),
            Fault::ClusterRollingRestart => "Kafka cluster: rolling restart of all three brokers".to_owned(),
            Fault::ClusterControllerKill => format!(
                "Kafka cluster: kill -9 of the active controller, down {} s",
                secs(plan.node_down)
            ),
            Fault::DeadLetterUnderMinIsr => format!(
                "Kafka cluster: dead-letter topic under min.insync.replicas {} s (1 in {} messages needs it)",
                secs(plan.dead_letter_down),
                super::POISON_EVERY
            ),
            Fault::HivemqRestart => "HiveMQ restart (plain subscription)".to_owned(),
            Fault::HivemqRestartShared => "HiveMQ restart (shared subscription)".to_owned(),
        }
    }

    /// Injects the fault and clears it; says what it hit.
    pub async fn inject(self, plan: &Plan, bridge: &mut Bridge, name: &str) -> Injected {
        match self {
            Fault::KillRuntime => {
                return Injected {
                    in_flight_at_kills: kill_repeatedly(plan, bridge, name).await,
                    nodes: Vec::new(),
                }
            }
            Fault::ClusterLeaderKill => {
                let up_topic = format!("{name}-up");
                let down_topic = format!("{name}-down");
                // Metadata requests block: off the load's tasks.
                let (leader, down_led) = blocking(move || {
                    let leader = kafka_cluster::leader_of(&up_topic, 0)
                        .unwrap_or_else(|| panic!("{up_topic} partition 0 has no leader"));
                    let down_led: Vec<String> = (0..3)
                        .filter(|&p| kafka_cluster::leader_of(&down_topic, p) == Some(leader))
                        .map(|p| p.to_string())
                        .collect();
                    (leader, down_led)
                })
                .await;
                let note = format!(
                    "node {leader} killed (led MQTT → Kafka partition 0, Kafka → MQTT partition(s) {})",
                    if down_led.is_empty() { "none".to_owned() } else { down_led.join(", ") }
                );
                kill_and_restart_node(leader, plan.node_down).await;
                return Injected::nodes(vec![note]);
            }
            Fault::ClusterControllerKill => {
                let controller = blocking(kafka_cluster::active_controller).await;
                kill_and_restart_node(controller, plan.node_down).await;
                return Injected::nodes(vec![format!(
                    "node {controller} (the active controller) killed"
                )]);
            }
            Fault::DeadLetterUnderMinIsr => {
                // A node that does not lead the dead-letter partition: the topic keeps its
                // leader and is only short of in-sync replicas.
                let dead_letters = format!("{name}-dlq");
                let leader = blocking(move || kafka_cluster::leader_of(&dead_letters, 0)).await;
                let node = (1..=3).find(|&n| Some(n) != leader).unwrap_or(1);
                kill_and_restart_node(node, plan.dead_letter_down).await;
                return Injected::nodes(vec![format!(
                    "node {node} killed (a follower of the dead-letter partition)"
                )]);
            }
            Fault::ClusterRollingRestart => {
                for node in 1..=3 {
                    blocking(move || {
                        env().service("restart", &format!("kafka-cluster/{node}"));
                        kafka_cluster::wait_fully_replicated(Duration::from_secs(120));
                    })
                    .await;
                }
                return Injected::nodes(vec!["nodes 1, 2, 3 restarted in turn".to_owned()]);
            }
            Fault::KafkaRestart => {
                blocking(|| env().service("restart", "kafka")).await;
            }
            Fault::MosquittoRestart | Fault::MosquittoRestartShared => {
                blocking(|| env().service("restart", "mosquitto")).await;
            }
            Fault::HivemqRestart | Fault::HivemqRestartShared => {
                blocking(|| env().service("restart", "hivemq")).await;
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
        Injected::default()
    }
}

/// What a fault hit: for the runtime's kills, the messages in flight at each; for the Kafka
/// cluster's faults, the nodes.
#[derive(Debug, Default)]
pub struct Injected {
    pub in_flight_at_kills: Vec<u64>,
    pub nodes: Vec<String>,
}

impl Injected {
    fn nodes(nodes: Vec<String>) -> Self {
        Self {
            in_flight_at_kills: Vec::new(),
            nodes,
        }
    }
}

/// kill -9 of one cluster node, `down` without it, then started again; returns once every
/// partition is fully replicated (so the next scenario starts on a whole cluster).
async fn kill_and_restart_node(node: i32, down: Duration) {
    let target = format!("kafka-cluster/{node}");
    let killed = target.clone();
    blocking(move || env().service("kill", &killed)).await;
    tokio::time::sleep(down).await;
    blocking(move || {
        env().service("start", &target);
        kafka_cluster::wait_fully_replicated(Duration::from_secs(120));
    })
    .await;
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

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .expect("fault injection task")
}

fn signal(which: &str, pid: &str) {
    let status = Command::new("kill")
        .args([&format!("-{which}"), pid])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{which} {pid}: {status}");
}
