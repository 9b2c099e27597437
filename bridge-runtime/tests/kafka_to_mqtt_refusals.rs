//! Kafka → MQTT against brokers that refuse: a private Mosquitto with an ACL (MQTT 5 reason
//! code 0x87 in PUBACK / PUBREC), one with a maximum packet size, and one that allows QoS 1 at
//! most and no retained messages. A refused publish is never committed as delivered: it goes
//! to the dead-letter topic with the reason, and the partition moves on.

mod common;

use common::*;
use testbed::bridge::Bridge;
use testbed::kafka::{self, Outgoing};
use testbed::mosquitto::Broker;
use testbed::mqtt::Subscriber;
use testbed::unique;

/// A bridge named `ns` with one route `commands` from `topic` to `<ns>/devices/${.key}/command`
/// on the broker at `url`, dead letters to `<ns>-dead-letters`.
fn refusing_broker_config(ns: &str, url: &str, topic: &str, protocol: &str, qos: u8) -> String {
    format!(
        "bridgeName: {ns}\nmqtt:\n  url: {url}\n  protocolVersion: \"{protocol}\"\nkafka:\n  bootstrapServers: {kafka}\n  deadLetterTopic: {ns}-dead-letters\ndelivery:\n  shutdownGracePeriodSeconds: 10\nkafkaToMqtt:\n  - name: commands\n    kafka: {{topics: [{topic}], autoOffsetReset: earliest}}\n    mqtt: {{topic: \"{ns}/devices/${{.key}}/command\", qos: {qos}}}\n",
        kafka = testbed::env().kafka_bootstrap
    )
}

/// Commands for lock-0, lock-denied and lock-1 in turn; the ACL denies lock-denied's topic.
/// MQTT 5: Mosquitto answers PUBACK (QoS 1) or PUBREC (QoS 2) with 0x87. The other commands
/// arrive, the denied ones are dead-lettered with the reason code, and every offset is
/// committed: nothing counted as delivered that the broker refused, and no stall.
async fn acl_refusals_are_dead_lettered(qos: u8) {
    let ns = unique(&format!("acl-q{qos}"));
    let topic = format!("{ns}-lock-command");
    kafka::create_topic(&topic, 1).await;
    kafka::create_topic(&format!("{ns}-dead-letters"), 1).await;
    let broker = Broker::start(
        &ns,
        "",
        Some(&format!(
            "topic deny {ns}/devices/lock-denied/command\ntopic readwrite #\n"
        )),
    );
    let subscriber = Subscriber::connect_at(
        broker.port,
        &unique("acl-sub"),
        &[&format!("{ns}/devices/+/command")],
        qos,
    )
    .await;
    let mut bridge = Bridge::start(
        &ns,
        &refusing_broker_config(&ns, &broker.url(), &topic, "5", qos),
    );
    bridge.wait_ready(SHORT);
    let keys = ["lock-0", "lock-denied", "lock-1"];
    let payloads: Vec<(String, Vec<u8>)> = (0..60)
        .map(|i| {
            let device = keys[i % 3];
            (device.to_owned(), command_payload(device, (i / 3) as u32))
        })
        .collect();
    kafka::produce(
        &topic,
        payloads.iter().map(|(k, v)| Outgoing {
            key: Some(k.as_bytes()),
            value: v,
            headers: vec![],
        }),
    )
    .await;

    let letters = kafka::wait_for_records(&format!("{ns}-dead-letters"), 20, LONG).await;
    assert_eq!(
        letters.len(),
        20,
        "every denied command is dead-lettered once"
    );
    for letter in &letters {
        assert_eq!(letter.key_str(), "lock-denied");
        assert!(
            letter
                .header_str("mkb.reason")
                .contains("reason code 0x87 (not authorized)"),
            "{}",
            letter.header_str("mkb.reason")
        );
    }
    let got = wait_for_distinct_commands(&subscriber, 40, SHORT).await;
    assert!(
        got.iter().all(|m| !m.topic.contains("lock-denied")),
        "the broker delivered nothing it refused"
    );
    wait_all_committed(&format!("{ns}.commands"), &topic).await;
    let metrics = bridge.metrics();
    assert_eq!(metrics.route_counter("dead_lettered", "commands"), 20);
    assert_eq!(metrics.route_counter("delivered", "commands"), 40);
    assert_eq!(
        metrics.value(
            "mkb_mqtt_publishes_refused_total",
            &[("code", "0x87"), ("action", "give_up")]
        ),
        Some(20.0)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn acl_refusals_in_puback_are_dead_lettered() {
    acl_refusals_are_dead_lettered(1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn acl_refusals_in_pubrec_are_dead_lettered_without_stalling_qos_2() {
    acl_refusals_are_dead_lettered(2).await;
}

/// A record above the broker's maximum packet size between small ones: MQTT 5 learns the
/// limit from CONNACK and refuses the publish before sending it; MQTT 3.1.1 cannot know it,
/// Mosquitto cuts the connection, and after a few cuts the publish is given up. Either way the
/// record is dead-lettered, the small ones arrive and the partition is committed to its end.
async fn oversized_records_are_dead_lettered(protocol: &str, expected_reason: &str) {
    let ns = unique("max-packet");
    let topic = format!("{ns}-lock-command");
    kafka::create_topic(&topic, 1).await;
    kafka::create_topic(&format!("{ns}-dead-letters"), 1).await;
    let broker = Broker::start(&ns, "max_packet_size 20000", None);
    let subscriber = Subscriber::connect_at(
        broker.port,
        &unique("max-packet-sub"),
        &[&format!("{ns}/devices/+/command")],
        1,
    )
    .await;
    let mut bridge = Bridge::start(
        &ns,
        &refusing_broker_config(&ns, &broker.url(), &topic, protocol, 1),
    );
    bridge.wait_ready(SHORT);
    let small: Vec<Vec<u8>> = (0..10).map(|i| command_payload("lock-0", i)).collect();
    let big = vec![b'x'; 50_000];
    let mut records: Vec<(&[u8], &[u8])> = Vec::new();
    for (i, payload) in small.iter().enumerate() {
        records.push((b"lock-0".as_slice(), payload));
        if i == 4 {
            records.push((b"lock-big".as_slice(), &big));
        }
    }
    kafka::produce(
        &topic,
        records.iter().map(|(k, v)| Outgoing {
            key: Some(k),
            value: v,
            headers: vec![],
        }),
    )
    .await;

    let letters = kafka::wait_for_records(&format!("{ns}-dead-letters"), 1, LONG).await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].key_str(), "lock-big");
    assert_eq!(letters[0].value.as_deref().map(<[u8]>::len), Some(50_000));
    assert!(
        letters[0]
            .header_str("mkb.reason")
            .contains(expected_reason),
        "{}",
        letters[0].header_str("mkb.reason")
    );
    let got = wait_for_distinct_commands(&subscriber, 10, SHORT).await;
    assert!(got.iter().all(|m| m.payload.len() < 100));
    wait_all_committed(&format!("{ns}.commands"), &topic).await;
    assert_eq!(
        bridge.metrics().route_counter("dead_lettered", "commands"),
        1
    );
    // The bridge is still connected and publishing.
    produce_commands(&topic, 1, 10, 1).await;
    wait_for_distinct_commands(&subscriber, 11, SHORT).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mqtt5_records_above_the_maximum_packet_size_are_dead_lettered() {
    oversized_records_are_dead_lettered(
        "5",
        "above the MQTT broker's maximum packet size of 20000 bytes",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mqtt311_records_the_broker_disconnects_on_are_dead_lettered() {
    oversized_records_are_dead_lettered(
        "3.1.1",
        "the MQTT broker cut the connection each of the 3 times this publish (50000 payload bytes",
    )
    .await;
}

/// A broker that announces Maximum QoS 1 and Retain Available 0 in its CONNACK (MQTT 5), and
/// disconnects a client that publishes above them: a QoS 2 route and a retained route are
/// dead-lettered without being sent, each record with the reason, and counted; a plain QoS 1
/// route on the same connection delivers, and the connection is never cut.
#[tokio::test(flavor = "multi_thread")]
async fn mqtt5_publishes_the_brokers_connack_rules_out_are_dead_lettered() {
    let ns = unique("connack-limits");
    let dead_letters = format!("{ns}-dead-letters");
    for topic in ["q2", "retained", "plain"] {
        kafka::create_topic(&format!("{ns}-{topic}"), 1).await;
    }
    kafka::create_topic(&dead_letters, 1).await;
    let broker = Broker::start(&ns, "max_qos 1\nretain_available false", None);
    let subscriber = Subscriber::connect_at(
        broker.port,
        &unique("connack-limits-sub"),
        &[&format!("{ns}/#")],
        1,
    )
    .await;
    let config = format!(
        "bridgeName: {ns}\nmqtt:\n  url: {url}\n  protocolVersion: \"5\"\nkafka:\n  bootstrapServers: {kafka}\n  deadLetterTopic: {dead_letters}\ndelivery:\n  shutdownGracePeriodSeconds: 10\nkafkaToMqtt:\n  - name: q2\n    kafka: {{topics: [{ns}-q2], autoOffsetReset: earliest}}\n    mqtt: {{topic: \"{ns}/q2/${{.key}}\", qos: 2}}\n  - name: retained\n    kafka: {{topics: [{ns}-retained], autoOffsetReset: earliest}}\n    mqtt: {{topic: \"{ns}/retained/${{.key}}\", qos: 1, retain: true}}\n  - name: plain\n    kafka: {{topics: [{ns}-plain], autoOffsetReset: earliest}}\n    mqtt: {{topic: \"{ns}/plain/${{.key}}\", qos: 1}}\n",
        url = broker.url(),
        kafka = testbed::env().kafka_bootstrap
    );
    let mut bridge = Bridge::start(&ns, &config);
    bridge.wait_ready(SHORT);
    for topic in ["q2", "retained", "plain"] {
        produce_commands(&format!("{ns}-{topic}"), 5, 0, 20).await;
    }

    let letters = kafka::wait_for_records(&dead_letters, 40, LONG).await;
    let reasons = |route: &str| -> Vec<String> {
        letters
            .iter()
            .filter(|l| l.header_str("mkb.route") == route)
            .map(|l| l.header_str("mkb.reason").to_owned())
            .collect()
    };
    let (q2, retained) = (reasons("q2"), reasons("retained"));
    assert_eq!((q2.len(), retained.len(), letters.len()), (20, 20, 40));
    assert!(
        q2.iter().all(|r| r
            .contains("the route publishes at QoS 2, and the MQTT broker accepts at most QoS 1")),
        "{q2:?}"
    );
    assert!(
        retained
            .iter()
            .all(|r| r.contains("the MQTT broker does not support retained messages")),
        "{retained:?}"
    );
    let got = wait_for_distinct_commands(&subscriber, 20, SHORT).await;
    assert!(
        got.iter().all(|m| m.topic.contains("/plain/")),
        "only the plain route reaches the broker"
    );
    for topic in ["q2", "retained", "plain"] {
        wait_all_committed(&format!("{ns}.{topic}"), &format!("{ns}-{topic}")).await;
    }
    let metrics = bridge.metrics();
    for (code, expected) in [("qos_not_supported", 20.0), ("retain_not_supported", 20.0)] {
        assert_eq!(
            metrics.value(
                "mkb_mqtt_publishes_refused_total",
                &[("code", code), ("action", "give_up")]
            ),
            Some(expected),
            "{code}"
        );
    }
    assert!(
        !bridge.process.log_text().contains("lost the connection to"),
        "the broker never cut the connection"
    );
}
