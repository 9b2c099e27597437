//! Kafka → MQTT against the test bed's Kafka and Mosquitto: commands reach devices in order,
//! the `${.}` record document, kill -9, two replicas in one consumer group, dead letters.

mod common;

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use testbed::bridge::Bridge;
use testbed::kafka::{self, Outgoing};
use testbed::mqtt::Subscriber;
use testbed::unique;

/// 10,000 commands keyed by 100 device ids arrive on `devices/<id>/command`, byte for byte,
/// at QoS 1, each device's commands in order.
#[tokio::test(flavor = "multi_thread")]
async fn smart_lock_commands_arrive_in_order_byte_for_byte() {
    let ns = unique("cmds");
    let topic = format!("{ns}-lock-command");
    kafka::create_topic(&topic, 6).await;
    let subscriber = Subscriber::connect(
        &unique("cmds-sub"),
        &[&format!("{ns}/devices/+/command")],
        1,
    )
    .await;
    let mut bridge = Bridge::start(&ns, &commands_config(&ns, &topic, protocol(), None));
    bridge.wait_ready(SHORT);
    produce_commands(&topic, 100, 0, 10_000).await;

    let got = subscriber.wait_for(10_000, LONG).await;
    assert_eq!(got.len(), 10_000, "a clean run publishes each command once");
    let mut next: HashMap<String, u32> = HashMap::new();
    for m in &got {
        let (device, seq) = parse_command(&m.payload);
        assert_eq!(m.topic, format!("{ns}/devices/{device}/command"));
        assert_eq!(
            m.payload,
            command_payload(&device, seq),
            "byte-identical payload"
        );
        assert_eq!(m.qos, 1);
        let expected = next.entry(device.clone()).or_default();
        assert_eq!(seq, *expected, "{device}: commands in order");
        *expected += 1;
    }
    assert_eq!(next.len(), 100);
    assert_eq!(
        bridge.wait_counter("delivered", "commands", 10_000, SHORT),
        10_000
    );
    assert_eq!(
        bridge.metrics().route_counter("received", "commands"),
        10_000
    );
}

/// `${.}` renders the record as JSON with the documented fields and the produced values.
#[tokio::test(flavor = "multi_thread")]
async fn whole_record_document_has_the_produced_values() {
    let ns = unique("record");
    let topic = format!("{ns}-in");
    kafka::create_topic(&topic, 3).await;
    let config = format!(
        "{}kafkaToMqtt:\n  - name: records\n    kafka: {{topics: [{topic}], autoOffsetReset: earliest}}\n    mqtt: {{topic: \"{ns}/records\", payload: \"${{.}}\"}}\n",
        // MQTT 5: the headers also become user properties, which 3.1.1 does not have.
        base_config(&ns, "5", None)
    );
    let subscriber =
        Subscriber::connect(&unique("record-sub"), &[&format!("{ns}/records")], 1).await;
    let mut bridge = Bridge::start(&ns, &config);
    bridge.wait_ready(SHORT);
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let positions = kafka::produce(
        &topic,
        [Outgoing {
            key: Some(b"lock-7"),
            value: b"{\"cmd\":\"unlock\"}",
            headers: vec![("trace", b"t-1"), ("origin", b"app")],
        }],
    )
    .await;
    let after = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let got = subscriber.wait_for(1, SHORT).await;
    assert_eq!(got.len(), 1, "exactly one command");
    let doc: serde_json::Value = serde_json::from_slice(&got[0].payload).expect("JSON");
    let (partition, offset) = positions[0];
    assert_eq!(doc["topic"], topic.as_str());
    assert_eq!(doc["partition"], partition);
    assert_eq!(doc["offset"], offset);
    assert_eq!(doc["key"], "lock-7");
    assert_eq!(doc["value"], "{\"cmd\":\"unlock\"}");
    assert_eq!(
        doc["headers"],
        serde_json::json!({"trace": "t-1", "origin": "app"})
    );
    assert_eq!(doc["ts_type"], "create");
    let ts = doc["ts"].as_i64().expect("ts");
    assert!(
        (before..=after).contains(&ts),
        "ts {ts} is the producer's create time"
    );
    // Headers are forwarded as MQTT 5 user properties.
    assert!(got[0]
        .user_properties
        .contains(&("trace".to_owned(), "t-1".to_owned())));
}

/// kill -9 mid-stream, then restart: no command missing at the subscriber.
#[tokio::test(flavor = "multi_thread")]
async fn kill_9_mid_stream_misses_no_command() {
    let ns = unique("down-kill");
    let topic = format!("{ns}-cmd");
    kafka::create_topic(&topic, 4).await;
    let subscriber = Subscriber::connect(
        &unique("down-kill-sub"),
        &[&format!("{ns}/devices/+/command")],
        1,
    )
    .await;
    let mut bridge = Bridge::start(
        &format!("{ns}-run1"),
        &commands_config(&ns, &topic, "3.1.1", None),
    );
    bridge.wait_ready(SHORT);
    let total = 10_000u32;
    produce_commands(&topic, 50, 0, total).await;
    subscriber.wait_for(2_500, LONG).await;
    bridge.kill9();
    eprintln!(
        "killed bridge-runtime after {} commands",
        subscriber.received().len()
    );
    bridge.restart(&format!("{ns}-run2"));
    let got = wait_for_distinct_commands(&subscriber, total as usize, LONG).await;
    let (distinct, duplicates) = distinct_commands(&got);
    eprintln!("kafka -> mqtt kill -9: {distinct} distinct of {total}, {duplicates} duplicates");
    assert_eq!(distinct, total as usize);
}

/// Two bridge processes in one consumer group split the partitions; after kill -9 of one,
/// the other takes its partitions and nothing is missing.
#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_share_partitions_and_survive_losing_one() {
    let ns = unique("group");
    let topic = format!("{ns}-cmd");
    kafka::create_topic(&topic, 4).await;
    let subscriber = Subscriber::connect(
        &unique("group-sub"),
        &[&format!("{ns}/devices/+/command")],
        1,
    )
    .await;
    let config = commands_config(&ns, &topic, protocol(), None);
    let mut first = Bridge::start(&format!("{ns}-0"), &format!("{config}ordinal: 0\n"));
    let mut second = Bridge::start(&format!("{ns}-1"), &format!("{config}ordinal: 1\n"));
    first.wait_ready(SHORT);
    second.wait_ready(SHORT);
    // Both must hold partitions before the test goes on.
    testbed::wait_until("both replicas to have partitions", LONG, || {
        let assigned = |b: &Bridge| b.process.log_text().contains("partitions assigned");
        (assigned(&first) && assigned(&second)).then_some(())
    });
    produce_commands(&topic, 40, 0, 4_000).await;
    subscriber.wait_for(4_000, LONG).await;
    // `received` counts a record before it is published, so it is complete by now.
    let (a, b) = (
        first.metrics().route_counter("received", "commands"),
        second.metrics().route_counter("received", "commands"),
    );
    eprintln!("split: replica 0 took {a} records, replica 1 took {b}");
    assert!(a > 0 && b > 0, "both replicas take records: {a} and {b}");
    assert_eq!(a + b, 4_000, "no partition read twice");

    first.kill9();
    produce_commands(&topic, 40, 100, 4_000).await;
    let got = wait_for_distinct_commands(&subscriber, 8_000, LONG).await;
    let (distinct, duplicates) = distinct_commands(&got);
    eprintln!("after losing replica 0: {distinct} distinct of 8000, {duplicates} duplicates");
    assert_eq!(distinct, 8_000);
    // The survivor took over replica 0's partitions: it received every later command, plus
    // replica 0's uncommitted records again (those are the duplicates the subscriber saw).
    let received = second.metrics().route_counter("received", "commands");
    let delivered = second.wait_counter("delivered", "commands", received, SHORT);
    assert_eq!(
        delivered, received,
        "nothing stuck in flight on the survivor"
    );
    assert!(
        received - b >= 4_000 + duplicates as u64,
        "the survivor received {} records after the kill: the 4000 new ones and at least the {duplicates} replayed",
        received - b
    );
}

/// A record whose MQTT topic cannot be rendered (a missing header) goes to the dead-letter
/// topic with the reason; the records after it flow.
#[tokio::test(flavor = "multi_thread")]
async fn unrenderable_topic_goes_to_the_dead_letter_topic() {
    let ns = unique("down-dlq");
    let topic = format!("{ns}-cmd");
    let dlq = format!("{ns}-dead-letters");
    kafka::create_topic(&topic, 1).await;
    kafka::create_topic(&dlq, 1).await;
    let config = format!(
        "{}kafkaToMqtt:\n  - name: by-header\n    kafka: {{topics: [{topic}], autoOffsetReset: earliest}}\n    mqtt: {{topic: \"{ns}/devices/${{.headers.device}}/command\"}}\n",
        base_config(&ns, protocol(), Some(&dlq))
    );
    let subscriber = Subscriber::connect(
        &unique("down-dlq-sub"),
        &[&format!("{ns}/devices/+/command")],
        1,
    )
    .await;
    let mut bridge = Bridge::start(&ns, &config);
    bridge.wait_ready(SHORT);
    kafka::produce(
        &topic,
        [
            Outgoing {
                key: Some(b"k"),
                value: b"no header",
                headers: vec![],
            },
            Outgoing {
                key: None,
                value: b"open",
                headers: vec![("device", b"lock-1")],
            },
        ],
    )
    .await;
    let got = subscriber.wait_for(1, SHORT).await;
    assert_eq!(got.len(), 1, "the renderable record only");
    assert_eq!(got[0].topic, format!("{ns}/devices/lock-1/command"));
    assert_eq!(got[0].payload, b"open");
    let letters = kafka::wait_for_records(&dlq, 1, SHORT).await;
    assert_eq!(letters[0].value_str(), "no header");
    assert_eq!(letters[0].key_str(), "k");
    assert_eq!(letters[0].header("mkb.route"), Some(&b"by-header"[..]));
    assert_eq!(
        letters[0].header("mkb.source.topic"),
        Some(topic.as_bytes())
    );
    assert_eq!(letters[0].header("mkb.source.offset"), Some(&b"0"[..]));
    let reason = letters[0].header_str("mkb.reason");
    assert_eq!(
        reason,
        "mqtt.topic: ${.headers.device} has no value for this message"
    );
    assert_eq!(
        bridge.wait_counter("dead_lettered", "by-header", 1, SHORT),
        1
    );
}

/// A topic pattern, QoS 2 and QoS 0 publishes, retained messages, and SIGTERM: the drain
/// commits what the broker confirmed, so a restarted bridge publishes nothing twice.
#[tokio::test(flavor = "multi_thread")]
async fn patterns_qos_retain_and_a_clean_drain() {
    let ns = unique("k2m-more");
    for t in ["cmd-a", "cmd-b", "q0", "ret"] {
        kafka::create_topic(&format!("{ns}-{t}"), 2).await;
    }
    let config = format!(
        r#"{base}kafkaToMqtt:
  - name: by-pattern
    kafka: {{topicPattern: "^{ns}-cmd-.*", autoOffsetReset: earliest}}
    mqtt: {{topic: "{ns}/q2/${{.topic}}/${{.key}}", qos: 2}}
  - name: fire-and-forget
    kafka: {{topics: [{ns}-q0], autoOffsetReset: earliest}}
    mqtt: {{topic: "{ns}/q0/${{.key}}", qos: 0}}
  - name: retained
    kafka: {{topics: [{ns}-ret], autoOffsetReset: earliest}}
    mqtt: {{topic: "{ns}/ret/${{.key}}", retain: true, payload: "${{.value.state}}"}}
"#,
        base = base_config(&ns, protocol(), None)
    );
    let q2 = Subscriber::connect(&unique("q2-sub"), &[&format!("{ns}/q2/#")], 2).await;
    let q0 = Subscriber::connect(&unique("q0-sub"), &[&format!("{ns}/q0/#")], 1).await;
    let mut bridge = Bridge::start(&format!("{ns}-run1"), &config);
    bridge.wait_ready(SHORT);
    for t in ["cmd-a", "cmd-b"] {
        produce_commands(&format!("{ns}-{t}"), 10, 0, 200).await;
    }
    produce_commands(&format!("{ns}-q0"), 5, 0, 50).await;
    kafka::produce(
        &format!("{ns}-ret"),
        [Outgoing {
            key: Some(b"lock-9"),
            value: b"{\"state\":\"locked\"}",
            headers: vec![],
        }],
    )
    .await;

    let got = q2.wait_for(400, SHORT).await;
    assert!(got.iter().all(|m| m.qos == 2), "QoS 2 end to end");
    assert_eq!(
        got.iter()
            .filter(|m| m.topic.contains(&format!("/{ns}-cmd-a/")))
            .count(),
        200,
        "the pattern covers both topics"
    );
    let got = q0.wait_for(50, SHORT).await;
    assert!(got.iter().all(|m| m.qos == 0));
    assert_eq!(bridge.wait_counter("delivered", "retained", 1, SHORT), 1);
    // A device that subscribes later still gets the last state: it was retained.
    let late = Subscriber::connect(&unique("late-sub"), &[&format!("{ns}/ret/+")], 1).await;
    let retained = late.wait_for(1, SHORT).await;
    assert_eq!(
        (
            retained[0].topic.as_str(),
            retained[0].payload.as_slice(),
            retained[0].retain
        ),
        (format!("{ns}/ret/lock-9").as_str(), &b"locked"[..], true)
    );

    // SIGTERM: drain and commit; a restart publishes only what is new.
    assert_eq!(
        bridge.wait_counter("delivered", "by-pattern", 400, SHORT),
        400
    );
    let status = bridge.terminate(Duration::from_secs(20));
    assert!(status.success(), "{status}");
    for t in ["cmd-a", "cmd-b"] {
        for (partition, committed, end) in
            kafka::committed_and_end(&format!("{ns}.by-pattern"), &format!("{ns}-{t}")).await
        {
            assert_eq!(
                committed,
                Some(end),
                "{t}[{partition}]: the drain committed every published record"
            );
        }
    }
    bridge.restart(&format!("{ns}-run2"));
    bridge.wait_ready(SHORT);
    produce_commands(&format!("{ns}-cmd-a"), 10, 100, 10).await;
    let got = q2.wait_for(410, SHORT).await;
    // cmd-a and cmd-b carry the same payloads: a message is its topic and payload.
    let distinct: std::collections::HashSet<(&str, &[u8])> = got
        .iter()
        .map(|m| (m.topic.as_str(), m.payload.as_slice()))
        .collect();
    assert_eq!(
        (distinct.len(), got.len()),
        (410, 410),
        "nothing published twice after a clean drain"
    );
}

/// Issue 29, path 3: an offset counts as committed only once Kafka has said so. Once the
/// records are delivered and the partition is idle, the periodic commit has been answered, so
/// SIGTERM has nothing left to commit, and the group's committed offset is the end.
#[tokio::test(flavor = "multi_thread")]
async fn an_idle_partition_is_committed_and_confirmed_before_shutdown() {
    let ns = unique("idle-commit");
    let topic = format!("{ns}-lock-command");
    kafka::create_topic(&topic, 1).await;
    let subscriber = Subscriber::connect(
        &unique("idle-commit-sub"),
        &[&format!("{ns}/devices/+/command")],
        1,
    )
    .await;
    let mut bridge = Bridge::start(&ns, &commands_config(&ns, &topic, protocol(), None));
    bridge.wait_ready(SHORT);
    produce_commands(&topic, 5, 0, 50).await;
    assert_eq!(subscriber.wait_for(50, LONG).await.len(), 50);
    wait_all_committed_within(&format!("{ns}.commands"), &topic, SHORT).await;
    // Two commit intervals more: Kafka's answer is in.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(bridge.terminate(SHORT).success());
    let log = bridge.process.log_text();
    assert!(log.contains("consumer stopped"), "{log}");
    assert!(
        !log.contains("final offsets committed"),
        "the periodic commit was confirmed, so nothing was left for shutdown"
    );
}
