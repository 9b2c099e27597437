//! Inputs at the edges of the protocols: an MQTT topic of 65,535 bytes (MQTT's limit), Kafka
//! records with a null value (a tombstone) or a null key, and Kafka headers whose values are
//! not UTF-8. Each is delivered or dead-lettered with its reason, and the next message
//! arrives.

mod common;

use common::*;
use testbed::bridge::Bridge;
use testbed::kafka::{self, Outgoing};
use testbed::mqtt::{Publisher, Subscriber};
use testbed::unique;

#[tokio::test(flavor = "multi_thread")]
async fn an_mqtt_topic_of_65535_bytes_reaches_kafka_whole() {
    let ns = unique("edge-long");
    let topic = format!("{ns}-state");
    kafka::create_topic(&topic, 1).await;
    let config = format!(
        "{}mqttToKafka:\n  - name: state\n    mqtt: {{topicFilters: [\"{ns}/long/#\"]}}\n    kafka: {{topic: {topic}, key: \"${{topic[1]}}\", headers: {{mqtt-topic: \"${{topic}}\"}}}}\n",
        base_config(&ns, protocol(), None)
    );
    let mut bridge = Bridge::start(&ns, &config);
    bridge.wait_ready(SHORT);
    let prefix = format!("{ns}/long/");
    let longest = format!("{prefix}{}", "x".repeat(65_535 - prefix.len()));
    assert_eq!(longest.len(), 65_535);
    let publisher = Publisher::connect(&unique("edge-long-pub")).await;
    publisher.publish(&longest, 1, "at the limit").await;
    publisher
        .publish(&format!("{prefix}next"), 1, "after")
        .await;
    let records = kafka::wait_for_records(&topic, 2, LONG).await;
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].value_str(), "at the limit");
    assert_eq!(
        records[0].header("mqtt-topic").map(<[u8]>::len),
        Some(65_535),
        "the whole topic"
    );
    assert_eq!(records[0].key_str(), "long");
    assert_eq!(records[1].value_str(), "after");
}

#[tokio::test(flavor = "multi_thread")]
async fn null_values_null_keys_and_binary_headers_from_kafka() {
    let ns = unique("edge-k2m");
    let (topic, dead_letters) = (format!("{ns}-cmd"), format!("{ns}-dlq"));
    kafka::create_topic(&topic, 1).await;
    kafka::create_topic(&dead_letters, 1).await;
    let subscriber = Subscriber::connect(
        &unique("edge-sub"),
        &[&format!("{ns}/devices/+/command")],
        1,
    )
    .await;
    let mut bridge = Bridge::start(
        &ns,
        // MQTT 5: the headers become user properties, which 3.1.1 does not have.
        &commands_config(&ns, &topic, "5", Some(&dead_letters)),
    );
    bridge.wait_ready(SHORT);

    kafka::produce_tombstone(&topic, b"lock-1").await;
    let binary = [0xff, 0xfe, b'a'];
    kafka::produce(
        &topic,
        [
            // The topic template needs the key: no key, no topic.
            Outgoing {
                key: None,
                value: b"no key",
                headers: vec![],
            },
            Outgoing {
                key: Some(b"lock-3"),
                value: b"binary header",
                headers: vec![("trace", &binary)],
            },
            Outgoing {
                key: Some(b"lock-4"),
                value: b"after",
                headers: vec![],
            },
        ],
    )
    .await;

    let got = subscriber.wait_for(3, LONG).await;
    let at = |device: &str| {
        got.iter()
            .find(|m| m.topic == format!("{ns}/devices/{device}/command"))
            .unwrap_or_else(|| panic!("nothing for {device}: {got:?}"))
    };
    assert!(
        at("lock-1").payload.is_empty(),
        "a null value is an empty payload"
    );
    let with_header = at("lock-3");
    assert_eq!(with_header.payload, b"binary header");
    assert_eq!(
        with_header.user_properties,
        [("trace".to_owned(), "\u{fffd}\u{fffd}a".to_owned())],
        "a header value that is not UTF-8 becomes a user property with replacement characters"
    );
    assert_eq!(at("lock-4").payload, b"after");
    assert_eq!(got.len(), 3, "{got:?}");

    let dead = kafka::wait_for_records(&dead_letters, 1, LONG).await;
    assert_eq!(dead[0].value_str(), "no key");
    let reason = dead[0].header_str("mkb.reason");
    eprintln!("dead-lettered: {reason}");
    assert!(reason.contains("key"), "the reason names the key: {reason}");
}
