//! The producer watchdog: records that wait while the brokers name a leader for their
//! partition make the route not ready, and the producer is replaced; its records are produced
//! again by the new one and none is lost.
//!
//! librdkafka's own stall (#5430) cannot be provoked at will, so the test bed's toxiproxy
//! makes one that looks the same from outside: the bridge reaches Kafka through the proxy,
//! which closes any connection once the client has sent 64 KiB on it. Every produce request
//! carrying a 100 KiB record is cut; metadata requests get through. Before that, Kafka is
//! away for a while, as in a restart. Messages keep coming while the producer is stuck and
//! replaced: the records it gave up are produced again before any later one (issue 29,
//! path 4: they were produced again 500 ms later, behind the records that came meanwhile).
//! In a file of its own: the proxy is shared.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use rand::Rng;
use testbed::bridge::{http_get, Bridge};
use testbed::mqtt::Publisher;
use testbed::reliability::toxiproxy;
use testbed::{env, kafka, unique, wait_until};

/// Messages published before the producer gets stuck; more follow while it is.
const FIRST_MESSAGES: u32 = 10;

/// A numbered 100 KiB message of random bytes, so compression cannot bring a record under
/// the proxy's limit.
fn numbered_payload(i: u32) -> Vec<u8> {
    let mut payload = vec![0u8; 100 * 1024];
    rand::rng().fill(&mut payload[..]);
    payload[..8].copy_from_slice(format!("{i:08}").as_bytes());
    payload
}

#[tokio::test(flavor = "multi_thread")]
async fn records_waiting_while_a_leader_is_named_replace_the_producer_and_none_is_lost() {
    let ns = unique("stuck");
    let topic = format!("{ns}-held");
    kafka::create_topic(&topic, 1).await;
    let env = env();
    let config = format!(
        "{}mqttToKafka:\n  - name: held\n    mqtt: {{topicFilters: [\"{ns}/held/+\"]}}\n    kafka: {{topic: {topic}}}\n",
        base_config(&ns, protocol(), None).replace(&env.kafka_bootstrap, &env.kafka_proxied_bootstrap)
    );
    let _reset = toxiproxy::ResetOnDrop;
    toxiproxy::reset();
    let mut bridge = Bridge::start(&ns, &config);
    bridge.wait_ready(SHORT);
    // First Kafka is away, as in a restart: the watchdog starts asking while nobody answers.
    toxiproxy::set_enabled(toxiproxy::KAFKA, false);

    let publisher = Arc::new(Publisher::connect(&unique("stuck-pub")).await);
    for i in 0..FIRST_MESSAGES {
        publisher
            .publish(&format!("{ns}/held/m{i}"), 1, numbered_payload(i))
            .await;
    }
    publisher.wait_acked(u64::from(FIRST_MESSAGES), SHORT).await;
    tokio::time::sleep(Duration::from_secs(12)).await;
    toxiproxy::add_upstream_limit(toxiproxy::KAFKA, 64 * 1024);
    toxiproxy::set_enabled(toxiproxy::KAFKA, true);
    // One more message every 250 ms until the producer has been replaced.
    let published = Arc::new(AtomicU32::new(FIRST_MESSAGES));
    let stop = Arc::new(AtomicBool::new(false));
    let more = {
        let (publisher, published, stop, ns) = (
            publisher.clone(),
            published.clone(),
            stop.clone(),
            ns.clone(),
        );
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let i = published.load(Ordering::SeqCst);
                publisher
                    .publish(&format!("{ns}/held/m{i}"), 1, numbered_payload(i))
                    .await;
                published.store(i + 1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };

    let reason = wait_until("/readyz to say a record waits", LONG, || {
        let (code, body) = http_get(bridge.http, "/readyz")?;
        (code == 503 && body.contains("has waited")).then_some(body)
    });
    assert!(
        reason.contains(&topic) && reason.contains("leader"),
        "the reason names the topic and what the brokers say: {reason}"
    );
    let replaced = wait_until("the producer to be replaced", LONG, || {
        let n = bridge.metrics().sum("mkb_kafka_producers_replaced_total");
        (n >= 1.0).then_some(n)
    });
    // Messages that came while the given-up records waited to be produced again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::SeqCst);
    more.await.expect("the publishing task");
    let messages = published.load(Ordering::SeqCst);
    publisher.wait_acked(u64::from(messages), SHORT).await;
    assert_eq!(kafka::record_count(&topic), Some(0), "nothing got through");

    toxiproxy::reset();
    let records = kafka::wait_for_records(&topic, i64::from(messages), LONG).await;
    let in_kafka: Vec<u32> = records
        .iter()
        .map(|r| {
            let v = r.value.as_deref().unwrap_or_default();
            String::from_utf8_lossy(&v[..8]).parse().unwrap_or(u32::MAX)
        })
        .collect();
    // A message written twice (at least once) counts where it was first written.
    let mut first_seen = Vec::new();
    for n in &in_kafka {
        if !first_seen.contains(n) {
            first_seen.push(*n);
        }
    }
    assert_eq!(
        first_seen,
        (0..messages).collect::<Vec<_>>(),
        "every message, none lost, in the order published (the topic has one partition): {in_kafka:?}"
    );
    bridge.wait_ready(SHORT);
    eprintln!(
        "producer replaced {replaced} time(s); {} records for {messages} messages",
        records.len()
    );
    assert!(
        bridge
            .process
            .log_text()
            .contains("the Kafka producer stopped delivering; replacing it"),
        "the replacement is logged"
    );
}
