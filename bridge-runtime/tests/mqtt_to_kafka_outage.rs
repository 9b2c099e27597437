//! Kafka stopped while devices keep publishing: the bridge holds back acknowledgements, stops
//! reading once its in-flight window is full, the broker queues the rest, the runtime's memory
//! stays bounded, and when Kafka returns everything is delivered by the same process. In a
//! file of its own: stopping Kafka would disturb tests running beside it.

mod common;

use std::time::Duration;

use common::*;
use testbed::bridge::Bridge;
use testbed::kafka;
use testbed::mqtt::Publisher;
use testbed::{env, unique};

/// The bound `docs/runtime.md` states for the runtime's memory while Kafka is down, with the
/// default window (5,000 messages, 32 MiB) and 1 KiB messages.
const OUTAGE_RSS_BOUND_KIB: u64 = 64 * 1024;

/// A smart-lock state padded to 1 KiB.
fn padded_state(device: &str, seq: u32) -> String {
    let state = lock_state(device, seq);
    let pad = 1024 - state.len() - 10;
    format!(
        "{},\"pad\":\"{}\"}}",
        &state[..state.len() - 1],
        "x".repeat(pad)
    )
}

/// Kafka stopped for 60 s while devices publish 5,000 msg/s of 1 KiB at QoS 1, with the
/// default settings: the bridge takes no more than its window, the broker queues the rest
/// (about 300,000 messages), the runtime's memory stays under the documented bound, and when
/// Kafka returns the same process delivers every message.
#[tokio::test(flavor = "multi_thread")]
async fn kafka_down_for_60s_under_5000_msgs_per_s_stays_bounded_and_loses_nothing() {
    let ns = unique("outage");
    let topic = format!("{ns}-state");
    kafka::create_topic(&topic, 3).await;
    let window = 5_000u64;
    let mut bridge = Bridge::start(&ns, &device_state_config(&ns, &topic, protocol()));
    bridge.wait_ready(SHORT);
    let publisher = Publisher::connect(&unique("outage-pub")).await;
    let mut seq = 0u32;
    let mut publish_batch = |n: u32| {
        let batch: Vec<(String, String)> = (0..n)
            .map(|i| {
                let device = format!("lock-{}", (seq + i) % 20);
                (
                    format!("{ns}/devices/{device}/state"),
                    padded_state(&device, seq + i),
                )
            })
            .collect();
        seq += n;
        batch
    };
    for (t, p) in publish_batch(2_000) {
        publisher.publish(&t, 1, p).await;
    }
    kafka::wait_for_records(&topic, 2_000, LONG).await;
    let delivered_before = bridge.wait_counter("delivered", "state", 2_000, SHORT);
    let rss_before = rss_kib(bridge.process.pid());

    env().service("stop", "kafka");
    let stopped = std::time::Instant::now();
    let mut rss_max = rss_before;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    // 500 messages every 100 ms for 60 s.
    for i in 0..600u32 {
        tick.tick().await;
        for (t, p) in publish_batch(500) {
            publisher.publish(&t, 1, p).await;
        }
        if i % 10 == 0 {
            rss_max = rss_max.max(rss_kib(bridge.process.pid()));
        }
    }
    let elapsed = stopped.elapsed();
    let total = seq;
    let published_during = u64::from(total) - 2_000;
    publisher.wait_acked(u64::from(total), LONG).await;
    // Backpressure: the bridge took no more than its window while Kafka was away; the broker
    // held the rest.
    let received = bridge.metrics().route_counter("received", "state");
    let held_by_bridge = received - delivered_before;
    rss_max = rss_max.max(rss_kib(bridge.process.pid()));
    eprintln!(
        "Kafka outage: {published_during} published in {elapsed:?} while down ({:.0} msg/s), {held_by_bridge} taken by the bridge (window {window}), RSS {rss_before} KiB before, {rss_max} KiB at most",
        published_during as f64 / elapsed.as_secs_f64()
    );
    assert!(
        held_by_bridge <= window,
        "the bridge read {held_by_bridge} messages with a window of {window}"
    );
    assert!(
        published_during - held_by_bridge >= 250_000,
        "the broker queued the rest: {published_during} published, {held_by_bridge} in the bridge"
    );
    assert!(
        rss_max < OUTAGE_RSS_BOUND_KIB,
        "RSS {rss_max} KiB is above the documented bound of {OUTAGE_RSS_BOUND_KIB} KiB"
    );
    env().service("start", "kafka");

    let records = wait_for_distinct(&topic, total as usize, LONG).await;
    let (distinct, duplicates) = distinct_and_duplicates(&records);
    eprintln!("Kafka outage: {distinct} distinct of {total}, {duplicates} duplicates");
    assert_eq!(distinct, total as usize, "nothing lost");
    assert_eq!(
        bridge.starts(),
        1,
        "the same process throughout: it never restarted"
    );
    bridge.wait_ready(SHORT);
}

/// Resident memory of a process, from /proc.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or_else(|| panic!("no VmRSS for process {pid}"))
}
