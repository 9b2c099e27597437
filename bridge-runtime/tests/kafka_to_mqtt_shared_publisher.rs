//! Issue 28, finding 1: a QoS 2 and a QoS 1 route share the publisher connection, and the
//! broker's receive maximum is small (Mosquitto's default `max_inflight_messages`, 20). The
//! MQTT client the bridge used before freed a QoS 2 publish's packet id at PUBREC, while the
//! bridge still waited for its PUBCOMP; a QoS 1 publish then took the id, and the answers
//! confirmed the wrong records: a partition's commits froze and a refusal went unrecorded.
//! Both protocol versions; with an ACL refusing the QoS 1 route's topic, every one of its
//! records is dead-lettered while the QoS 2 route delivers.

mod common;

use common::*;
use testbed::bridge::Bridge;
use testbed::kafka::{self, Outgoing};
use testbed::mosquitto::Broker;
use testbed::unique;

const RECORDS: usize = 20_000;

fn config(ns: &str, url: &str, protocol: &str) -> String {
    format!(
        "bridgeName: {ns}\nmqtt:\n  url: {url}\n  protocolVersion: \"{protocol}\"\nkafka:\n  bootstrapServers: {kafka}\n  deadLetterTopic: {ns}-dead-letters\ndelivery:\n  shutdownGracePeriodSeconds: 10\nkafkaToMqtt:\n  - name: q2\n    kafka: {{topics: [{ns}-q2], autoOffsetReset: earliest}}\n    mqtt: {{topic: \"{ns}/q2/${{.key}}\", qos: 2}}\n  - name: q1\n    kafka: {{topics: [{ns}-q1], autoOffsetReset: earliest}}\n    mqtt: {{topic: \"{ns}/q1/${{.key}}\", qos: 1}}\n",
        kafka = testbed::env().kafka_bootstrap
    )
}

async fn produce(topic: &str) {
    let values: Vec<(String, Vec<u8>)> = (0..RECORDS)
        .map(|i| (format!("dev-{}", i % 50), format!("cmd-{i}").into_bytes()))
        .collect();
    kafka::produce(
        topic,
        values.iter().map(|(k, v)| Outgoing {
            key: Some(k.as_bytes()),
            value: v,
            headers: vec![],
        }),
    )
    .await;
}

/// Both routes drain completely: every offset committed, nothing left in flight; with
/// `deny_q1`, the QoS 1 route's records are all dead-lettered (Mosquitto refuses them with
/// 0x87 on MQTT 5 and drops them silently on 3.1.1, where a PUBACK carries no reason: there
/// they count as delivered).
async fn shared_publisher(protocol: &str, deny_q1: bool) {
    let ns = unique("shared-pub");
    for topic in ["q1", "q2", "dead-letters"] {
        kafka::create_topic(&format!("{ns}-{topic}"), 3).await;
    }
    let acl = deny_q1.then(|| format!("topic deny {ns}/q1/#\ntopic readwrite #\n"));
    let broker = Broker::start(&ns, "max_inflight_messages 20", acl.as_deref());
    produce(&format!("{ns}-q2")).await;
    produce(&format!("{ns}-q1")).await;
    let mut bridge = Bridge::start(&ns, &config(&ns, &broker.url(), protocol));
    bridge.wait_ready(SHORT);

    wait_all_committed(&format!("{ns}.q2"), &format!("{ns}-q2")).await;
    wait_all_committed(&format!("{ns}.q1"), &format!("{ns}-q1")).await;
    let metrics = bridge.metrics();
    for route in ["q1", "q2"] {
        assert_eq!(
            metrics.value("mkb_in_flight_messages", &[("route", route)]),
            Some(0.0),
            "{protocol}: route {route} has nothing left in flight"
        );
    }
    assert_eq!(metrics.route_counter("delivered", "q2"), RECORDS as u64);
    let refused_by_reason = deny_q1 && protocol == "5";
    if refused_by_reason {
        let letters =
            kafka::wait_for_records(&format!("{ns}-dead-letters"), RECORDS as i64, LONG).await;
        assert_eq!(letters.len(), RECORDS, "dead letters equal records");
        assert!(letters
            .iter()
            .all(|l| l.header_str("mkb.reason").contains("0x87 (not authorized)")));
        assert_eq!(metrics.route_counter("dead_lettered", "q1"), RECORDS as u64);
        assert_eq!(metrics.route_counter("delivered", "q1"), 0);
    } else {
        assert_eq!(metrics.route_counter("delivered", "q1"), RECORDS as u64);
        assert_eq!(metrics.route_counter("dead_lettered", "q1"), 0);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn qos_1_and_2_share_the_publisher_under_receive_maximum_20() {
    shared_publisher("5", false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn qos_1_and_2_share_the_publisher_under_receive_maximum_20_with_mqtt_3_1_1() {
    shared_publisher("3.1.1", false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_of_the_qos_1_route_are_all_dead_lettered_beside_qos_2() {
    shared_publisher("5", true).await;
}
