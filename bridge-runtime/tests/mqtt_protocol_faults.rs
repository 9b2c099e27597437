//! Issue 28: broker behaviour the MQTT client the bridge used before could not survive, made
//! to happen by a proxy between the bridge and the test bed's Mosquitto (tests/common/proxy.rs),
//! on both protocol versions.
//! - Two PUBACKs in reverse order, then a reset: publishing must resume and every command
//!   arrive. (The packet-id collision rumqttc could leave set across a reconnect is gone with
//!   its state: the bridge's connection keeps no state from one connection to the next. This
//!   scenario did not make the old client stall either; it guards the new one.)
//! - A QoS 2 subscription whose PUBREL is lost with the connection: the broker sends it again
//!   to the resumed session, and rumqttc disconnected on a PUBREL it did not know, after every
//!   reconnect (a loop). The bridge answers PUBCOMP and stays connected.

mod common;

use std::time::Duration;

use common::proxy::{Proxy, Tamper};
use common::*;
use testbed::bridge::Bridge;
use testbed::mqtt::{Publisher, Subscriber};
use testbed::{env, kafka, unique};

/// Two publishes in flight at most, so that the next packet id comes round to one still in
/// flight when the second's PUBACK comes first.
async fn publishing_resumes_after_reordered_acks_and_a_reset(protocol: &str) {
    let ns = unique("reorder");
    let topic = format!("{ns}-cmd");
    kafka::create_topic(&topic, 3).await;
    let proxy = Proxy::start(env().mqtt_port, Tamper::SwapTwoPubAcksThenReset).await;
    let subscriber = Subscriber::connect(
        &unique("reorder-sub"),
        &[&format!("{ns}/devices/+/command")],
        1,
    )
    .await;
    let config = format!(
        "bridgeName: {ns}\nmqtt:\n  url: {url}\n  protocolVersion: \"{protocol}\"\n  maxInflight: 2\nkafka:\n  bootstrapServers: {kafka}\ndelivery:\n  shutdownGracePeriodSeconds: 10\nkafkaToMqtt:\n  - name: commands\n    kafka: {{topics: [{topic}], autoOffsetReset: earliest}}\n    mqtt: {{topic: \"{ns}/devices/${{.key}}/command\", qos: 1}}\n",
        url = proxy.url(),
        kafka = env().kafka_bootstrap
    );
    let mut bridge = Bridge::start(&ns, &config);
    bridge.wait_ready(SHORT);
    produce_commands(&topic, 10, 0, 2_000).await;
    let commands = wait_for_distinct_commands(&subscriber, 2_000, SHORT).await;
    assert_eq!(distinct_commands(&commands).0, 2_000, "{protocol}");
    assert!(proxy.has_tampered(), "the proxy swapped two PUBACKs");
    assert!(proxy.connections() >= 2, "the bridge reconnected");
    wait_all_committed(&format!("{ns}.commands"), &topic).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn publishing_resumes_after_reordered_pubacks_and_a_reset() {
    publishing_resumes_after_reordered_acks_and_a_reset("5").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn publishing_resumes_after_reordered_pubacks_and_a_reset_with_mqtt_3_1_1() {
    publishing_resumes_after_reordered_acks_and_a_reset("3.1.1").await;
}

async fn a_lost_pubrel_comes_again_without_a_disconnect_loop(protocol: &str) {
    let ns = unique("pubrel");
    let topic = format!("{ns}-state");
    kafka::create_topic(&topic, 3).await;
    let proxy = Proxy::start(env().mqtt_port, Tamper::DropPubRelThenReset).await;
    let config = format!(
        "bridgeName: {ns}\nmqtt:\n  url: {url}\n  protocolVersion: \"{protocol}\"\nkafka:\n  bootstrapServers: {kafka}\ndelivery:\n  shutdownGracePeriodSeconds: 10\nmqttToKafka:\n  - name: state\n    mqtt: {{topicFilters: [\"{ns}/devices/+/state\"], qos: 2}}\n    kafka: {{topic: {topic}, key: \"${{topic[2]}}\"}}\n",
        url = proxy.url(),
        kafka = env().kafka_bootstrap
    );
    let mut bridge = Bridge::start(&ns, &config);
    bridge.wait_ready(SHORT);
    let publisher = Publisher::connect(&unique("pubrel-pub")).await;
    publish_lock_states_at(&publisher, &ns, 10, 0, 200, 2).await;
    publisher.wait_acked(200, SHORT).await;
    let records = wait_for_distinct(&topic, 200, LONG).await;
    assert_eq!(distinct_and_duplicates(&records).0, 200, "{protocol}");
    assert!(proxy.has_tampered(), "the proxy dropped a PUBREL");
    // Connected again, and staying connected: one reconnect, not one per resent PUBREL.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(proxy.connections(), 2, "{protocol}: one reconnect, no loop");
    publish_lock_states_at(&publisher, &ns, 10, 200, 100, 2).await;
    let records = wait_for_distinct(&topic, 300, LONG).await;
    assert_eq!(distinct_and_duplicates(&records).0, 300, "{protocol}");
    assert_eq!(proxy.connections(), 2, "{protocol}: no reconnect since");
    assert!(
        bridge
            .metrics()
            .value("mkb_connection_up", &[("side", "mqtt")])
            == Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pubrel_sent_again_after_a_reset_is_answered_without_a_disconnect_loop() {
    a_lost_pubrel_comes_again_without_a_disconnect_loop("5").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pubrel_sent_again_after_a_reset_is_answered_without_a_disconnect_loop_with_mqtt_3_1_1() {
    a_lost_pubrel_comes_again_without_a_disconnect_loop("3.1.1").await;
}
