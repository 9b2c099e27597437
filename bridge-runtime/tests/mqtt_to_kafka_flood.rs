//! MQTT → Kafka when the broker floods the bridge: a persistent session with tens of thousands
//! of queued messages, sent at once when the bridge reconnects (Mosquitto 2.0 does not hold
//! queued messages back to the receive maximum). Acknowledgements pile up faster than rumqttc
//! sends them; none may be dropped, or the broker's in-flight window fills with messages that
//! are never acknowledged and it stops sending: a stall until some later reconnect. With
//! MQTT 5 they wait for room in rumqttc's request channel; with MQTT 3.1.1 the connection task
//! writes them itself, in batches, between two polls.

mod common;

use common::*;
use testbed::bridge::Bridge;
use testbed::kafka;
use testbed::mqtt::Publisher;
use testbed::unique;

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_queued_messages_is_acknowledged_without_dropping_acks() {
    flood("5").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_is_acknowledged_without_dropping_acks_with_mqtt_3_1_1() {
    flood("3.1.1").await;
}

async fn flood(protocol: &str) {
    let ns = unique("flood");
    let topic = format!("{ns}-state");
    kafka::create_topic(&topic, 3).await;
    // A small window, and 40,000 messages: ten times rumqttc's request channel (4,096), so
    // most acknowledgements wait in the bridge's own queue.
    let config = format!(
        "{}  maxInFlight: 100\nmqttToKafka:\n  - name: state\n    mqtt: {{topicFilters: [\"{ns}/devices/+/state\"]}}\n    kafka: {{topic: {topic}, key: \"${{topic[2]}}\"}}\n",
        base_config(&ns, protocol, None)
    );
    let mut bridge = Bridge::start(&format!("{ns}-run1"), &config);
    bridge.wait_ready(SHORT);
    let status = bridge.terminate(std::time::Duration::from_secs(20));
    assert!(status.success(), "{status}");

    // Queued by the broker for the bridge's session while it is away.
    let total = 40_000u32;
    let publisher = Publisher::connect(&unique("flood-pub")).await;
    publish_lock_states(&publisher, &ns, 20, total).await;
    publisher.wait_acked(u64::from(total), LONG).await;

    bridge.restart(&format!("{ns}-run2"));
    let records = wait_for_distinct(&topic, total as usize, LONG).await;
    let (distinct, duplicates) = distinct_and_duplicates(&records);
    eprintln!("flood (MQTT {protocol}): {distinct} distinct of {total}, {duplicates} duplicates");
    assert_eq!(
        distinct, total as usize,
        "every queued message reaches Kafka"
    );
    let metrics = bridge.metrics();
    assert_eq!(
        metrics.value("mkb_mqtt_acks_dropped_total", &[]),
        Some(0.0),
        "no acknowledgement was dropped"
    );
    assert_eq!(duplicates, 0, "nothing was redelivered, so nothing twice");
}
