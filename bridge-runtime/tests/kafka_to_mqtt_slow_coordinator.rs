//! Issue 29, path 5: librdkafka calls the rebalance callback on the thread that polls the
//! consumer, an async worker; the synchronous commit of the revoked partitions in it waited
//! for the group coordinator there. With one worker (a 1-CPU pod) the whole runtime stopped
//! for as long as the coordinator took to answer: `/healthz`, MQTT keep-alive, the other
//! routes. Here the coordinator answers 4 s late (toxiproxy) while a second member joins the
//! route's group; `/healthz` must keep answering, and every command still arrives.
//! In a file of its own: the proxies are shared.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;
use testbed::bridge::{http_get, Bridge};
use testbed::mqtt::Subscriber;
use testbed::reliability::toxiproxy;
use testbed::{env, kafka, unique};

const COMMANDS: u32 = 3_000;
const COORDINATOR_LATENCY_MS: u32 = 4_000;

/// A consumer of `group` that polls (and commits nothing) until dropped: joining makes the
/// group rebalance, and the bridge's partitions are revoked.
struct Joiner {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Joiner {
    fn join(group: &str, topic: &str) -> Self {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &env().kafka_bootstrap)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("session.timeout.ms", "10000")
            .create()
            .expect("create the joining consumer");
        consumer.subscribe(&[topic]).expect("subscribe");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                let _ = consumer.poll(Duration::from_millis(100));
            }
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Joiner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_coordinator_in_a_rebalance_does_not_stall_a_one_worker_runtime() {
    let ns = unique("slowcoord");
    let topic = format!("{ns}-commands");
    let group = format!("{ns}-group");
    kafka::create_topic(&topic, 2).await;
    produce_commands(&topic, 10, 0, COMMANDS).await;
    let subscriber = Subscriber::connect(
        &unique("slowcoord-sub"),
        &[&format!("{ns}/devices/+/command")],
        1,
    )
    .await;
    let env = env();
    let config = format!(
        "{}kafkaToMqtt:\n  - name: commands\n    kafka: {{topics: [{topic}], groupId: {group}, autoOffsetReset: earliest}}\n    mqtt: {{topic: \"{ns}/devices/${{.key}}/command\", qos: 1}}\n",
        base_config(&ns, protocol(), None)
            .replace(&env.kafka_bootstrap, &env.kafka_proxied_bootstrap)
            .replace(&env.mqtt_url, &format!("mqtt://127.0.0.1:{}", env.mqtt_proxied_port))
    );
    let _reset = toxiproxy::ResetOnDrop;
    toxiproxy::reset();
    // MQTT slowed down, so publishes are confirmed one after another the whole time and the
    // partitions always have a position to commit when they are revoked.
    toxiproxy::add_bandwidth(toxiproxy::MQTT, 8);
    let mut bridge = Bridge::start_env(&ns, &config, &[("TOKIO_WORKER_THREADS", "1")]);
    bridge.wait_ready(SHORT);
    subscriber.wait_for(50, LONG).await;

    toxiproxy::add_latency(toxiproxy::KAFKA, COORDINATOR_LATENCY_MS);
    let joiner = Joiner::join(&group, &topic);
    let revoked_before = revocations(&bridge);
    // The join reaches the bridge with a heartbeat's answer (3 s apart, each 4 s late), then
    // the revocation's commit waits 4 s for its answer: 30 s of probes cover it.
    let mut slowest = Duration::ZERO;
    let until = Instant::now() + Duration::from_secs(30);
    while Instant::now() < until {
        let asked = Instant::now();
        let answer = http_get(bridge.http, "/healthz");
        slowest = slowest.max(asked.elapsed());
        assert!(
            answer.as_ref().is_some_and(|(code, _)| *code == 200),
            "/healthz during the rebalance answered {answer:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(
        revocations(&bridge) > revoked_before,
        "the second member's join revoked the bridge's partitions"
    );
    assert!(
        slowest < Duration::from_secs(2),
        "/healthz waited {slowest:?} while the coordinator answered {COORDINATOR_LATENCY_MS} ms late: the runtime stalled"
    );

    drop(joiner);
    toxiproxy::reset();
    let got = subscriber.wait_for(COMMANDS as usize, LONG).await;
    let (distinct, duplicates) = distinct_commands(&got);
    println!("{distinct} distinct commands, {duplicates} duplicates, slowest /healthz {slowest:?}");
    assert_eq!(distinct, COMMANDS as usize, "every command arrived");
}

fn revocations(bridge: &Bridge) -> usize {
    bridge
        .process
        .log_text()
        .matches("partitions revoked")
        .count()
}
