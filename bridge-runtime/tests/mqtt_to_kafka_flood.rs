//! MQTT → Kafka when the broker floods the bridge: a persistent session with tens of thousands
//! of queued messages, sent at once when the bridge reconnects (Mosquitto 2.0 does not hold
//! queued messages back to the receive maximum). Acknowledgements pile up faster than they
//! can be written; none may be dropped, or the broker's in-flight window fills with messages
//! that are never acknowledged and it stops sending: a stall until some later reconnect.
//!
//! The QoS 2 flood runs past the 65,535 packet ids. (`make bench`'s QoS 2 drain of 200,000
//! messages into a live, paused session also made Mosquitto reuse the id of a message whose
//! QoS 2 flow was still open; the bridge lost such messages until it stopped treating them as
//! resends. This test's session does not get there: the bench is what shows that fix.)

mod common;

use common::*;
use testbed::bridge::Bridge;
use testbed::kafka;
use testbed::mqtt::Publisher;
use testbed::unique;

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_queued_messages_is_acknowledged_without_dropping_acks() {
    flood("5", 1, 40_000).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_is_acknowledged_without_dropping_acks_with_mqtt_3_1_1() {
    flood("3.1.1", 1, 40_000).await;
}

/// More messages than there are packet ids, at QoS 2 end to end, queued for a session that
/// is away.
#[tokio::test(flavor = "multi_thread")]
async fn a_qos_2_flood_beyond_65535_packet_ids_arrives_complete() {
    flood("5", 2, 70_000).await;
}

async fn flood(protocol: &str, qos: u8, total: u32) {
    let ns = unique("flood");
    let topic = format!("{ns}-state");
    kafka::create_topic(&topic, 3).await;
    // A small window, and tens of thousands of messages: most acknowledgements wait in the
    // bridge's own queue.
    let config = format!(
        "{}  maxInFlight: 100\nmqttToKafka:\n  - name: state\n    mqtt: {{topicFilters: [\"{ns}/devices/+/state\"], qos: {qos}}}\n    kafka: {{topic: {topic}, key: \"${{topic[2]}}\"}}\n",
        base_config(&ns, protocol, None)
    );
    let mut bridge = Bridge::start(&format!("{ns}-run1"), &config);
    bridge.wait_ready(SHORT);
    let status = bridge.terminate(std::time::Duration::from_secs(20));
    assert!(status.success(), "{status}");

    // Queued by the broker for the bridge's session while it is away.
    let publisher = Publisher::connect(&unique("flood-pub")).await;
    for i in 0..total {
        let (device, seq) = (format!("lock-{}", i % 20), i / 20);
        let topic = format!("{ns}/devices/{device}/state");
        publisher
            .publish(&topic, qos, lock_state(&device, seq))
            .await;
    }
    publisher.wait_acked(u64::from(total), LONG).await;

    bridge.restart(&format!("{ns}-run2"));
    let records = wait_for_distinct(&topic, total as usize, LONG).await;
    let (distinct, duplicates) = distinct_and_duplicates(&records);
    eprintln!("flood (MQTT {protocol}, QoS {qos}): {distinct} distinct of {total}, {duplicates} duplicates");
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
