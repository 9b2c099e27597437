//! Kafka stopped while devices keep publishing: the bridge holds back acknowledgements, stops
//! reading once its in-flight window is full, the broker queues the rest, the runtime's memory
//! stays flat, and when Kafka returns everything is delivered by the same process. In a
//! file of its own: stopping Kafka would disturb tests running beside it.

mod common;

use std::time::Duration;

use common::*;
use testbed::bridge::Bridge;
use testbed::kafka;
use testbed::mqtt::Publisher;
use testbed::{env, unique};

#[tokio::test(flavor = "multi_thread")]
async fn kafka_down_for_20s_loses_nothing() {
    let ns = unique("outage");
    let topic = format!("{ns}-state");
    kafka::create_topic(&topic, 3).await;
    // A window well below what devices publish during the outage, so the broker must queue.
    let window = 500u64;
    let config = device_state_config(&ns, &topic, "5").replace(
        "delivery:\n",
        &format!("delivery:\n  maxInFlight: {window}\n"),
    );
    let mut bridge = Bridge::start(&ns, &config);
    bridge.wait_ready(SHORT);
    let publisher = Publisher::connect(&unique("outage-pub")).await;
    let mut seq = 0u32;
    let mut publish_batch = |n: u32| {
        let batch: Vec<(String, String)> = (0..n)
            .map(|i| {
                let device = format!("lock-{}", i % 20);
                let s = seq + i;
                (
                    format!("{ns}/devices/{device}/state"),
                    lock_state(&device, s),
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
    // Devices keep publishing for 20 s while Kafka is down.
    while stopped.elapsed() < Duration::from_secs(20) {
        for (t, p) in publish_batch(150) {
            publisher.publish(&t, 1, p).await;
        }
        tokio::time::sleep(Duration::from_millis(1000)).await;
    }
    let total = seq;
    let published_during = u64::from(total) - 2_000;
    // Backpressure: the bridge took no more than its window while Kafka was away; the broker
    // held the rest.
    let received = bridge.metrics().route_counter("received", "state");
    let held_by_bridge = received - delivered_before;
    let rss_during = rss_kib(bridge.process.pid());
    eprintln!(
        "Kafka outage: {published_during} published while down, {held_by_bridge} taken by the bridge (window {window}), RSS {rss_before} -> {rss_during} KiB"
    );
    assert!(
        held_by_bridge <= window,
        "the bridge read {held_by_bridge} messages with a window of {window}"
    );
    assert!(
        published_during - held_by_bridge >= 2_000,
        "the broker queued the rest: {published_during} published, {held_by_bridge} in the bridge"
    );
    assert!(
        rss_during < rss_before + 32 * 1024,
        "memory stayed flat: {rss_before} -> {rss_during} KiB"
    );
    env().service("start", "kafka");

    publisher.wait_acked(u64::from(total), LONG).await;
    let records = wait_for_distinct(&topic, total as usize, LONG).await;
    let (distinct, duplicates) = distinct_and_duplicates(&records);
    eprintln!("Kafka outage: {distinct} distinct of {total}, {duplicates} duplicates");
    assert_eq!(distinct, total as usize, "nothing lost");
    assert!(
        bridge.process.exit_status().is_none(),
        "the same bridge-runtime process ran throughout"
    );
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
