//! Payloads at the edges, both ways: empty, not UTF-8, 1 MB and 10 MB. Each is delivered byte
//! for byte or, above what Kafka is configured to take, dead-lettered with the reason; the
//! message after them always arrives (no stall).

mod common;

use common::*;
use testbed::bridge::Bridge;
use testbed::kafka::{self, Outgoing, Record};
use testbed::mqtt::{Publisher, Subscriber};
use testbed::unique;

const MB: usize = 1024 * 1024;

/// Payloads of the given size whose first bytes say which one it is.
fn payload(tag: &str, size: usize) -> Vec<u8> {
    let mut p = vec![0xa5u8; size];
    p[..tag.len()].copy_from_slice(tag.as_bytes());
    p
}

fn value(r: &Record) -> &[u8] {
    r.value.as_deref().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn mqtt_to_kafka_delivers_or_dead_letters_every_payload_size() {
    let ns = unique("payloads-up");
    let (topic, dlq) = (format!("{ns}-raw"), format!("{ns}-dead-letters"));
    let twelve_mb = [("max.message.bytes", "12582912")];
    kafka::create_topic_with_config(&topic, 1, &twelve_mb).await;
    kafka::create_topic_with_config(&dlq, 1, &[("max.message.bytes", "16777216")]).await;
    // The producer takes records up to 12 MiB; the 13 MiB one is dead-lettered.
    let config = format!(
        "{}mqttToKafka:\n  - name: raw\n    mqtt: {{topicFilters: [\"{ns}/raw/+\"]}}\n    kafka: {{topic: {topic}}}\n",
        base_config(&ns, protocol(), Some(&dlq)).replace(
            &format!("  deadLetterTopic: {dlq}\n"),
            &format!("  deadLetterTopic: {dlq}\n  producer: {{maxMessageBytes: 12582912}}\n"),
        )
    );
    let mut bridge = Bridge::start(&ns, &config);
    bridge.wait_ready(SHORT);
    let non_utf8 = vec![0xff, 0xfe, 0x00, 0xc3, 0x28];
    let one_mb = payload("one-mb", MB);
    let ten_mb = payload("ten-mb", 10 * MB);
    let too_big = payload("too-big", 13 * MB);
    let p = Publisher::connect(&unique("payloads-pub")).await;
    p.publish(&format!("{ns}/raw/empty"), 1, Vec::new()).await;
    p.publish(&format!("{ns}/raw/binary"), 1, non_utf8.clone())
        .await;
    p.publish(&format!("{ns}/raw/one"), 1, one_mb.clone()).await;
    p.publish(&format!("{ns}/raw/ten"), 1, ten_mb.clone()).await;
    p.publish(&format!("{ns}/raw/big"), 1, too_big.clone())
        .await;
    p.publish(&format!("{ns}/raw/after"), 1, "after").await;
    p.wait_acked(6, LONG).await;

    let records = kafka::wait_for_records(&topic, 5, LONG).await;
    let values: Vec<&[u8]> = records.iter().map(value).collect();
    assert_eq!(values.len(), 5);
    assert!(values[0].is_empty(), "the empty payload stays empty");
    assert_eq!(
        values[1],
        &non_utf8[..],
        "bytes that are not UTF-8 pass untouched"
    );
    assert!(values[2] == &one_mb[..], "1 MiB byte for byte");
    assert!(values[3] == &ten_mb[..], "10 MiB byte for byte");
    assert_eq!(values[4], b"after");

    let letters = kafka::wait_for_records(&dlq, 1, LONG).await;
    assert_eq!(letters.len(), 1);
    assert!(
        value(&letters[0]) == &too_big[..],
        "the letter keeps the payload"
    );
    let reason = letters[0].header_str("mkb.reason");
    assert!(
        reason.contains("Message size too large") || reason.contains("MessageSizeTooLarge"),
        "{reason}"
    );
    assert_eq!(bridge.wait_counter("delivered", "raw", 5, SHORT), 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn kafka_to_mqtt_publishes_every_payload_size_byte_for_byte() {
    let ns = unique("payloads-down");
    let topic = format!("{ns}-lock-command");
    kafka::create_topic_with_config(&topic, 1, &[("max.message.bytes", "12582912")]).await;
    let subscriber = Subscriber::connect(
        &unique("payloads-sub"),
        &[&format!("{ns}/devices/+/command")],
        1,
    )
    .await;
    let mut bridge = Bridge::start(&ns, &commands_config(&ns, &topic, protocol(), None));
    bridge.wait_ready(SHORT);
    let non_utf8 = vec![0xff, 0xfe, 0x00, 0xc3, 0x28];
    let one_mb = payload("one-mb", MB);
    let ten_mb = payload("ten-mb", 10 * MB);
    let sent: Vec<(&[u8], &[u8])> = vec![
        (b"empty", b""),
        (b"binary", &non_utf8),
        (b"one", &one_mb),
        (b"ten", &ten_mb),
        (b"after", b"after"),
    ];
    kafka::produce(
        &topic,
        sent.iter().map(|(k, v)| Outgoing {
            key: Some(k),
            value: v,
            headers: vec![],
        }),
    )
    .await;

    let got = subscriber.wait_for(5, LONG).await;
    assert_eq!(got.len(), 5, "each once, nothing else");
    for (m, (key, value)) in got.iter().zip(&sent) {
        let key = String::from_utf8_lossy(key);
        assert_eq!(m.topic, format!("{ns}/devices/{key}/command"));
        assert!(
            m.payload == *value,
            "{key}: byte for byte ({} bytes)",
            m.payload.len()
        );
    }
    assert_eq!(bridge.wait_counter("delivered", "commands", 5, SHORT), 5);
    wait_all_committed(&format!("{ns}.commands"), &topic).await;
}
