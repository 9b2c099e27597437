//! The reliability suite: a bridge-runtime under sustained QoS 1 load in both directions,
//! with one fault at a time between it and the brokers; for each fault, per direction, what
//! was sent, delivered, lost and duplicated, and how long the bridge took to catch up.
//! `make reliability` runs [`Plan::full`]; `make test` runs [`Plan::short`].

mod brokers;
mod faults;
mod load;
mod report;
mod tally;
mod topics;
pub mod toxiproxy;

use std::time::{Duration, Instant};

pub use brokers::Brokers;
pub use faults::Fault;
pub use report::{markdown, to_json, Row};

use crate::bridge::Bridge;
use crate::unique;
use load::{KafkaReceiver, KafkaSender, MqttReceiver, MqttSender};

/// How hard and how long.
#[derive(Debug, Clone)]
pub struct Plan {
    pub name: &'static str,
    /// Messages per second in each direction.
    pub rate: u32,
    pub kills: u32,
    pub cut: Duration,
    /// How long latency and the throttle last.
    pub degraded: Duration,
    pub latency_ms: u32,
    pub slow_kafka_kib: u32,
    pub pause: Duration,
    /// How long the producer is kept stuck: longer than the watchdog takes to replace it.
    pub stuck: Duration,
    /// How long a killed Kafka cluster node stays down.
    pub node_down: Duration,
    /// How long the dead-letter topic stays under its minimum of in-sync replicas: longer
    /// than the 15 s in which the bridge expects a letter confirmed.
    pub dead_letter_down: Duration,
    /// Load before and after each fault.
    pub settle: Duration,
}

/// The stuck-producer row's MQTT → Kafka load: few, large, incompressible messages, so no
/// produce request fits in the 64 KiB the proxy lets up a connection (see
/// [`Fault::StuckProducer`]).
pub const STUCK_RATE: u32 = 5;
pub const STUCK_PADDING: usize = 100 * 1024;

/// In the dead-letter row, 1 message in this many each way needs the dead-letter topic.
pub const POISON_EVERY: u64 = 50;

impl Plan {
    /// What `make reliability` runs (about 15 minutes).
    pub fn full() -> Self {
        Self {
            name: "full",
            rate: 500,
            kills: 5,
            cut: Duration::from_secs(30),
            degraded: Duration::from_secs(20),
            latency_ms: 200,
            slow_kafka_kib: 8,
            pause: Duration::from_secs(20),
            stuck: Duration::from_secs(60),
            node_down: Duration::from_secs(30),
            dead_letter_down: Duration::from_secs(60),
            settle: Duration::from_secs(5),
        }
    }

    /// One of each, smaller and shorter, for `make test` (about 7 minutes).
    pub fn short() -> Self {
        Self {
            name: "short",
            rate: 100,
            kills: 1,
            cut: Duration::from_secs(5),
            degraded: Duration::from_secs(5),
            latency_ms: 200,
            slow_kafka_kib: 2,
            pause: Duration::from_secs(5),
            stuck: Duration::from_secs(60),
            node_down: Duration::from_secs(10),
            dead_letter_down: Duration::from_secs(30),
            settle: Duration::from_secs(3),
        }
    }
}

/// Runs the faults in turn, each against a new bridge and new topics.
pub async fn run(plan: &Plan, faults: &[Fault]) -> Vec<Row> {
    let mut rows = Vec::new();
    for &fault in faults {
        let started = Instant::now();
        let found = scenario(plan, fault).await;
        eprintln!(
            "[reliability] {} done in {:.0} s",
            fault.describe(plan),
            started.elapsed().as_secs_f64()
        );
        rows.extend(found);
    }
    rows
}

/// How long the receivers may take to catch up once the load has stopped.
const DRAIN: Duration = Duration::from_secs(180);

async fn scenario(plan: &Plan, fault: Fault) -> [Row; 2] {
    toxiproxy::reset();
    let ns = unique(&format!("rel-{}", fault.slug()));
    let (up_topic, down_topic) = (format!("{ns}-up"), format!("{ns}-down"));
    let brokers = fault.brokers();
    let dead_letters = (fault == Fault::DeadLetterUnderMinIsr).then(|| format!("{ns}-dlq"));
    let mut wanted = vec![
        topics::Topic {
            name: &up_topic,
            partitions: 3,
            config: &[],
        },
        topics::Topic {
            name: &down_topic,
            partitions: 3,
            config: &[],
        },
    ];
    if let Some(dlq) = &dead_letters {
        // Every replica must be in sync: one node down puts it under its minimum.
        wanted.push(topics::Topic {
            name: dlq,
            partitions: 1,
            config: &[("min.insync.replicas", "3")],
        });
    }
    topics::create(&ns, &brokers, &wanted).await;
    let config = bridge_config(
        &ns,
        &brokers,
        fault.shared_subscription(),
        dead_letters.as_deref(),
    );
    let mut bridge = Bridge::start(&ns, &config);
    faults::wait_ready(&mut bridge);

    let up_received = KafkaReceiver::start(&ns, &up_topic, &brokers);
    let down_received = MqttReceiver::start(&ns, &format!("{ns}/down/#"), &brokers).await;
    // The letters count as delivered (the promise: the topic or the dead-letter topic).
    let letters = dead_letters.as_deref().map(|dlq| {
        let (up, down) = (up_received.tally.clone(), down_received.tally.clone());
        KafkaReceiver::start_with(&format!("{ns}-dlq"), dlq, &brokers, move |value, at| {
            if let Some(seq) = load::poison_seq(value) {
                up.record(seq, at);
            } else if let Some(seq) = tally::seq_of(value) {
                down.record(seq, at);
            }
        })
    });
    let poison_every = if dead_letters.is_some() {
        POISON_EVERY
    } else {
        0
    };
    let mut up_sent = if fault == Fault::StuckProducer {
        MqttSender::start(&ns, &brokers, STUCK_RATE, STUCK_PADDING, 0)
    } else {
        MqttSender::start(&ns, &brokers, plan.rate, 0, poison_every)
    };
    let mut down_sent = KafkaSender::start(&down_topic, &brokers, plan.rate, poison_every);

    tokio::time::sleep(plan.settle).await;
    let fault_started = Instant::now();
    let injected = fault.inject(plan, &mut bridge, &ns).await;
    let cleared = Instant::now();
    let (up_before, down_before) = (up_sent.counts.sent(), down_sent.counts.sent());
    tokio::time::sleep(plan.settle).await;

    // Both stop at once, then wait for their brokers' confirmations.
    let load_stopped = Instant::now();
    up_sent.stop();
    down_sent.stop();
    up_sent.finish(Duration::from_secs(60)).await;
    tokio::task::block_in_place(|| down_sent.finish());
    let (up_total, down_total) = (up_sent.counts.sent(), down_sent.counts.sent());
    let deadline = Instant::now() + DRAIN;
    while (up_received.tally.distinct() < up_total || down_received.tally.distinct() < down_total)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    toxiproxy::reset();
    let producers_replaced = (fault == Fault::StuckProducer)
        .then(|| bridge.metrics().sum("mkb_kafka_producers_replaced_total") as u64);
    let dead_letter_failures = dead_letters
        .is_some()
        .then(|| bridge.metrics().sum("mkb_dead_letter_write_failures_total") as u64);

    let description = fault.describe(plan);
    let row = |direction: &str, sent: u64, confirmed: u64, tally: &tally::Tally, before: u64| {
        let missing = tally.missing(sent);
        if !missing.is_empty() {
            eprintln!(
                "[reliability] {description}, {direction}: {} of {sent} never arrived, first {:?} (bridge log: {})",
                missing.len(),
                &missing[..missing.len().min(20)],
                bridge.process.log_path().display()
            );
            bridge.print_metrics();
        }
        Row {
            fault: description.clone(),
            direction: direction.to_owned(),
            sent,
            confirmed,
            delivered: tally.distinct(),
            lost: missing.len() as u64,
            duplicated: tally.total().saturating_sub(tally.distinct()),
            fault_seconds: cleared.duration_since(fault_started).as_secs_f64(),
            recovery_seconds: tally.caught_up_after(before, cleared),
            in_flight_at_kills: injected.in_flight_at_kills.clone(),
            producers_replaced,
            dead_letters: dead_letter_failures.map(|failures| (sent / poison_every, failures)),
            nodes_killed: injected.nodes.clone(),
            longest_pause_seconds: fault
                .broker_fault()
                .then(|| tally.longest_pause(fault_started, load_stopped)),
        }
    };
    let rows = [
        row(
            "MQTT → Kafka",
            up_total,
            up_sent.counts.confirmed(),
            &up_received.tally,
            up_before,
        ),
        row(
            "Kafka → MQTT",
            down_total,
            down_sent.counts.confirmed(),
            &down_received.tally,
            down_before,
        ),
    ];
    drop((bridge, up_received, down_received, letters));
    let mut made = vec![up_topic.as_str(), down_topic.as_str()];
    made.extend(dead_letters.as_deref());
    topics::delete(&brokers, &made).await;
    rows
}

/// One route each way, to `brokers` as the bridge reaches them. With a dead-letter topic, the
/// MQTT → Kafka key comes from the payload's `device` field, so a payload that is not JSON
/// (the load's poison) needs the dead-letter topic.
fn bridge_config(ns: &str, brokers: &Brokers, shared: bool, dead_letters: Option<&str>) -> String {
    let (dlq, key) = match dead_letters {
        Some(topic) => (format!("\n  deadLetterTopic: {topic}"), "${payload.device}"),
        None => (String::new(), "${topic[2]}"),
    };
    format!(
        "bridgeName: {ns}
mqtt:
  url: mqtt://127.0.0.1:{mqtt_port}
  protocolVersion: \"5\"
  keepAliveSeconds: 10
kafka:
  bootstrapServers: {kafka}{dlq}
delivery:
  shutdownGracePeriodSeconds: 10
mqttToKafka:
  - name: up
    mqtt: {{topicFilters: [\"{ns}/up/+\"], shared: {shared}}}
    kafka: {{topic: {ns}-up, key: \"{key}\"}}
kafkaToMqtt:
  - name: down
    kafka: {{topics: [{ns}-down], autoOffsetReset: earliest}}
    mqtt: {{topic: \"{ns}/down/${{.key}}\", qos: 1}}
",
        mqtt_port = brokers.bridge_mqtt_port,
        kafka = brokers.bridge_kafka_bootstrap,
    )
}
