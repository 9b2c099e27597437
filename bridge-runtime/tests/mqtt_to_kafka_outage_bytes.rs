//! The in-flight window is bounded in bytes as well as in messages: with Kafka stopped and
//! 256 KiB messages arriving, the bridge takes no more than `delivery.maxInFlightMiB` of
//! payload and the broker keeps the rest. In a file of its own: stopping Kafka would disturb
//! tests running beside it.

mod common;

use std::time::Duration;

use common::*;
use testbed::bridge::Bridge;
use testbed::kafka;
use testbed::mqtt::Publisher;
use testbed::{env, unique};

#[tokio::test(flavor = "multi_thread")]
async fn large_messages_fill_the_byte_window_not_the_memory() {
    let ns = unique("outage-bytes");
    let topic = format!("{ns}-blobs");
    kafka::create_topic(&topic, 1).await;
    let config = format!(
        "{}  maxInFlightMiB: 2\nmqttToKafka:\n  - name: blobs\n    mqtt: {{topicFilters: [\"{ns}/blobs/+\"]}}\n    kafka: {{topic: {topic}}}\n",
        base_config(&ns, protocol(), None)
    );
    let mut bridge = Bridge::start(&ns, &config);
    bridge.wait_ready(SHORT);
    let publisher = Publisher::connect(&unique("outage-bytes-pub")).await;

    env().service("stop", "kafka");
    let blob = |i: u32| {
        let mut b = vec![b'.'; 256 * 1024];
        b[..8].copy_from_slice(format!("{i:08}").as_bytes());
        b
    };
    for i in 0..100 {
        publisher
            .publish(&format!("{ns}/blobs/b{i}"), 1, blob(i))
            .await;
    }
    publisher.wait_acked(100, LONG).await;
    // The bridge takes what fits in 2 MiB (8 messages of 256 KiB) and then waits.
    let received = testbed::wait_until("the bridge to take what fits", SHORT, || {
        let n = bridge.metrics().route_counter("received", "blobs");
        (n >= 8).then_some(n)
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    let received_later = bridge.metrics().route_counter("received", "blobs");
    eprintln!(
        "byte window: {received} then {received_later} of 100 messages of 256 KiB taken with 2 MiB"
    );
    assert_eq!(
        received_later, 8,
        "2 MiB of 256 KiB messages is 8 messages; the broker keeps the rest"
    );
    env().service("start", "kafka");

    let records = kafka::wait_for_records(&topic, 100, LONG).await;
    let mut seen: Vec<u32> = records
        .iter()
        .map(|r| {
            let v = r.value.as_deref().unwrap_or_default();
            assert_eq!(v.len(), 256 * 1024);
            String::from_utf8_lossy(&v[..8]).parse().unwrap_or(u32::MAX)
        })
        .collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen, (0..100).collect::<Vec<_>>(), "every blob, none lost");
    bridge.wait_ready(SHORT);
}
