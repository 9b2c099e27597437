//! MQTT → Kafka against the test bed's Mosquitto and Kafka: the smart-lock story, routing
//! features, dead letters, metrics, SIGTERM and kill -9.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use testbed::bridge::Bridge;
use testbed::kafka::{self, Record};
use testbed::mqtt::Publisher;
use testbed::unique;

/// 10,000 QoS 1 messages from 100 locks land in `lock-state` exactly once each, keyed by
/// device id, each device's messages in publish order; /metrics agrees.
#[tokio::test(flavor = "multi_thread")]
async fn smart_locks_every_message_exactly_once_keyed_and_in_order() {
    let ns = unique("locks");
    let topic = format!("{ns}-lock-state");
    kafka::create_topic(&topic, 6).await;
    let config = format!(
        "{}mqttToKafka:\n  - name: lock-state\n    mqtt:\n      topicFilters: [\"{ns}/devices/+/state\"]\n      qos: 1\n    kafka:\n      topic: {topic}\n      key: \"${{topic[2]}}\"\n",
        base_config(&ns, protocol(), None)
    );
    let mut bridge = Bridge::start(&ns, &config);
    bridge.wait_ready(SHORT);

    let publisher = Publisher::connect(&unique("locks-pub")).await;
    publish_lock_states(&publisher, &ns, 100, 100 * 100).await;
    publisher.wait_acked(10_000, LONG).await;

    let records = kafka::wait_for_records(&topic, 10_000, LONG).await;
    assert_eq!(
        records.len(),
        10_000,
        "a clean run delivers each message exactly once"
    );
    let (distinct, duplicates) = distinct_and_duplicates(&records);
    assert_eq!((distinct, duplicates), (10_000, 0));
    let mut last_seq: HashMap<String, (i32, u64)> = HashMap::new();
    for r in &records {
        let (device, seq) = device_seq(r);
        assert_eq!(r.key_str(), device, "keyed by device id");
        // Records are sorted by (partition, offset): per device, seq must increase.
        if let Some((partition, previous)) = last_seq.get(&device) {
            assert_eq!(*partition, r.partition, "one device, one partition");
            assert!(seq > *previous, "{device}: seq {seq} after {previous}");
        }
        last_seq.insert(device, (r.partition, seq));
    }
    assert_eq!(last_seq.len(), 100);

    // Kafka shows a record before the producer's delivery report arrives: wait for the count.
    assert_eq!(
        bridge.wait_counter("delivered", "lock-state", 10_000, SHORT),
        10_000
    );
    let metrics = bridge.metrics();
    assert_eq!(metrics.route_counter("received", "lock-state"), 10_000);
    assert_eq!(metrics.route_counter("dead_lettered", "lock-state"), 0);
    assert_eq!(
        metrics.value("mkb_in_flight_messages", &[("route", "lock-state")]),
        Some(0.0)
    );
    assert_eq!(
        metrics.value("mkb_connection_up", &[("side", "mqtt")]),
        Some(1.0)
    );
}

fn by_topic(records: &[Record]) -> Vec<(String, String)> {
    let mut v: Vec<_> = records
        .iter()
        .map(|r| (r.topic.clone(), r.value_str().to_owned()))
        .collect();
    v.sort();
    v
}

/// Fan-in, fan-out, a topic templated from a topic level, user properties as headers, and the
/// envelope's fields.
#[tokio::test(flavor = "multi_thread")]
async fn fan_in_fan_out_templated_topics_headers_and_envelope() {
    let ns = unique("routing");
    for t in [
        "gps",
        "alerts-a",
        "alerts-b",
        "tele-temp",
        "tele-humidity",
        "env",
    ] {
        kafka::create_topic(&format!("{ns}-{t}"), 1).await;
    }
    let config = format!(
        r#"{base}mqttToKafka:
  - name: fan-in
    mqtt: {{topicFilters: ["{ns}/cars/+/gps", "{ns}/trucks/+/gps"]}}
    kafka: {{topic: {ns}-gps, key: "${{topic[2]}}"}}
  - name: fan-out-a
    mqtt: {{topicFilters: ["{ns}/alerts/#"]}}
    kafka: {{topic: {ns}-alerts-a}}
  - name: fan-out-b
    mqtt: {{topicFilters: ["{ns}/alerts/#"]}}
    kafka: {{topic: {ns}-alerts-b}}
  - name: templated
    mqtt: {{topicFilters: ["{ns}/telemetry/+/+"]}}
    kafka:
      topic: "{ns}-tele-${{topic[3]}}"
      headers: {{device: "${{topic[2]}}"}}
  - name: envelope
    mqtt: {{topicFilters: ["{ns}/env/+"]}}
    kafka: {{topic: {ns}-env, value: {{format: envelope}}}}
"#,
        base = base_config(&ns, "5", None)
    );
    let mut bridge = Bridge::start(&ns, &config);
    bridge.wait_ready(SHORT);
    let p = Publisher::connect(&unique("routing-pub")).await;
    p.publish(&format!("{ns}/cars/c1/gps"), 1, "car").await;
    p.publish(&format!("{ns}/trucks/t1/gps"), 1, "truck").await;
    p.publish(&format!("{ns}/alerts/fire"), 1, "alert").await;
    p.publish_with_properties(
        &format!("{ns}/telemetry/s1/temp"),
        1,
        "21.5",
        vec![("site".into(), "berlin".into())],
    )
    .await;
    p.publish(&format!("{ns}/telemetry/s1/humidity"), 1, "40")
        .await;
    p.publish_with_properties(
        &format!("{ns}/env/e1"),
        1,
        "{\"on\":true}",
        vec![("unit".into(), "c".into())],
    )
    .await;
    p.wait_acked(6, SHORT).await;

    let gps = kafka::wait_for_records(&format!("{ns}-gps"), 2, SHORT).await;
    assert_eq!(
        by_topic(&gps),
        [
            (format!("{ns}-gps"), "car".to_owned()),
            (format!("{ns}-gps"), "truck".to_owned())
        ]
    );
    let mut keys: Vec<&str> = gps.iter().map(Record::key_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["c1", "t1"]);
    for side in ["a", "b"] {
        let alerts = kafka::wait_for_records(&format!("{ns}-alerts-{side}"), 1, SHORT).await;
        assert_eq!(alerts.len(), 1, "fan-out: each route gets the message once");
        assert_eq!(alerts[0].value_str(), "alert");
    }
    let temp = kafka::wait_for_records(&format!("{ns}-tele-temp"), 1, SHORT).await;
    assert_eq!(temp[0].value_str(), "21.5");
    assert_eq!(temp[0].header("device"), Some(&b"s1"[..]));
    assert_eq!(
        temp[0].header("site"),
        Some(&b"berlin"[..]),
        "MQTT 5 user property as a Kafka header"
    );
    let humidity = kafka::wait_for_records(&format!("{ns}-tele-humidity"), 1, SHORT).await;
    assert_eq!(humidity[0].value_str(), "40");

    let env = kafka::wait_for_records(&format!("{ns}-env"), 1, SHORT).await;
    let envelope: serde_json::Value =
        serde_json::from_slice(env[0].value.as_deref().unwrap_or_default()).expect("JSON");
    assert_eq!(envelope["topic"], format!("{ns}/env/e1"));
    assert_eq!(envelope["payload"], "{\"on\":true}");
    assert_eq!(envelope["qos"], 1);
    assert_eq!(envelope["retain"], false);
    assert_eq!(envelope["userProperties"], serde_json::json!({"unit": "c"}));
    let ts = envelope["timestamp"].as_i64().expect("timestamp");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    assert!(
        (now - 120_000..=now).contains(&ts),
        "timestamp {ts} is the receive time"
    );

    for (route, n) in [
        ("fan-in", 2),
        ("fan-out-a", 1),
        ("fan-out-b", 1),
        ("templated", 2),
        ("envelope", 1),
    ] {
        assert_eq!(
            bridge.wait_counter("delivered", route, n, SHORT),
            n,
            "route {route}"
        );
    }
}

/// A 2 MB payload (above the producer's 1 MB limit) and a non-JSON payload on a JSON-path
/// route go to the dead-letter topic with a reason; the messages after them are delivered.
#[tokio::test(flavor = "multi_thread")]
async fn undeliverable_messages_go_to_the_dead_letter_topic_and_later_ones_flow() {
    let ns = unique("dlq");
    let dlq = format!("{ns}-dead-letters");
    kafka::create_topic_with_config(&dlq, 1, &[("max.message.bytes", "10485760")]).await;
    kafka::create_topic(&format!("{ns}-raw"), 1).await;
    kafka::create_topic(&format!("{ns}-celsius"), 1).await;
    let config = format!(
        r#"{base}mqttToKafka:
  - name: raw
    mqtt: {{topicFilters: ["{ns}/raw/+"]}}
    kafka: {{topic: {ns}-raw}}
  - name: celsius
    mqtt: {{topicFilters: ["{ns}/temp/+"]}}
    kafka:
      topic: {ns}-celsius
      value: {{format: template, template: "${{payload.celsius}}"}}
"#,
        base = base_config(&ns, protocol(), Some(&dlq))
    );
    let mut bridge = Bridge::start(&ns, &config);
    bridge.wait_ready(SHORT);
    let p = Publisher::connect(&unique("dlq-pub")).await;
    let big = vec![b'x'; 2 * 1024 * 1024];
    p.publish(&format!("{ns}/raw/big"), 1, big.clone()).await;
    p.publish(&format!("{ns}/raw/small"), 1, "after the big one")
        .await;
    p.publish(&format!("{ns}/temp/t1"), 1, "twenty degrees")
        .await;
    p.publish(&format!("{ns}/temp/t1"), 1, "{\"celsius\":20}")
        .await;
    p.wait_acked(4, SHORT).await;

    let raw = kafka::wait_for_records(&format!("{ns}-raw"), 1, SHORT).await;
    assert_eq!(
        raw.iter().map(Record::value_str).collect::<Vec<_>>(),
        ["after the big one"]
    );
    let celsius = kafka::wait_for_records(&format!("{ns}-celsius"), 1, SHORT).await;
    assert_eq!(
        celsius.iter().map(Record::value_str).collect::<Vec<_>>(),
        ["20"]
    );

    let letters = kafka::wait_for_records(&dlq, 2, SHORT).await;
    assert_eq!(letters.len(), 2);
    let big_letter = letters
        .iter()
        .find(|r| r.header("mkb.route") == Some(&b"raw"[..]))
        .expect("the big message");
    assert_eq!(
        big_letter.value.as_deref(),
        Some(&big[..]),
        "the payload is kept"
    );
    let reason = big_letter.header_str("mkb.reason");
    assert!(
        reason.contains("Message size too large") || reason.contains("MessageSizeTooLarge"),
        "{reason}"
    );
    assert_eq!(
        big_letter.header("mkb.source.topic"),
        Some(format!("{ns}/raw/big").as_bytes())
    );
    let json_letter = letters
        .iter()
        .find(|r| r.header("mkb.route") == Some(&b"celsius"[..]))
        .expect("the text message");
    assert_eq!(json_letter.value_str(), "twenty degrees");
    let reason = json_letter.header_str("mkb.reason");
    assert_eq!(reason, "kafka.value.template: ${payload.celsius} needs a JSON payload, but the payload is not valid JSON");

    assert_eq!(bridge.wait_counter("dead_lettered", "raw", 1, SHORT), 1);
    assert_eq!(bridge.wait_counter("dead_lettered", "celsius", 1, SHORT), 1);
    assert_eq!(bridge.wait_counter("delivered", "raw", 1, SHORT), 1);
    assert_eq!(bridge.metrics().route_counter("received", "celsius"), 2);
}

/// kill -9 in the middle of 20,000 QoS 1 messages, then a restart: every message is in Kafka.
#[tokio::test(flavor = "multi_thread")]
async fn kill_9_mid_stream_loses_nothing() {
    let ns = unique("kill9");
    let topic = format!("{ns}-state");
    kafka::create_topic(&topic, 4).await;
    let config = device_state_config(&ns, &topic, protocol());
    let mut bridge = Bridge::start(&format!("{ns}-run1"), &config);
    bridge.wait_ready(SHORT);
    let publisher = Publisher::connect(&unique("kill9-pub")).await;
    let total = 20_000u32;
    let publishing = {
        let ns = ns.clone();
        tokio::spawn(async move {
            publish_lock_states(&publisher, &ns, 50, total).await;
            publisher.wait_acked(u64::from(total), LONG).await;
        })
    };
    testbed::wait_until("a quarter of the messages in Kafka", LONG, || {
        kafka::record_count(&topic).filter(|n| *n >= i64::from(total / 4))
    });
    // Kill while the bridge holds messages it has received but not yet acknowledged.
    let in_flight = testbed::wait_until("messages in flight", LONG, || {
        let m = bridge.metrics();
        m.value("mkb_in_flight_messages", &[("route", "state")])
            .filter(|n| *n > 0.0)
    });
    bridge.kill9();
    let in_kafka = kafka::record_count(&topic).unwrap_or(0);
    eprintln!(
        "killed bridge-runtime with {in_flight} messages in flight, {in_kafka} records in Kafka"
    );
    assert!(
        in_kafka < i64::from(total),
        "killed mid-stream, not after it"
    );
    bridge.restart(&format!("{ns}-run2"));
    publishing.await.expect("publisher");
    bridge.wait_ready(SHORT);

    let records = wait_for_distinct(&topic, total as usize, LONG).await;
    let (distinct, duplicates) = distinct_and_duplicates(&records);
    eprintln!(
        "kill -9: {} records, {distinct} distinct of {total}, {duplicates} duplicates",
        records.len()
    );
    assert_eq!(distinct, total as usize, "every message is in Kafka");
}

/// SIGTERM: in-flight messages are finished and acknowledged, the process exits 0, and a
/// restarted bridge finds nothing missing.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_and_exits_zero() {
    let ns = unique("sigterm");
    let topic = format!("{ns}-state");
    kafka::create_topic(&topic, 2).await;
    let config = device_state_config(&ns, &topic, "3.1.1");
    let mut bridge = Bridge::start(&format!("{ns}-run1"), &config);
    bridge.wait_ready(SHORT);
    let publisher = Publisher::connect(&unique("sigterm-pub")).await;
    let total = 5_000u32;
    publish_lock_states(&publisher, &ns, 10, total).await;
    testbed::wait_until("some messages in Kafka", LONG, || {
        kafka::record_count(&topic).filter(|n| *n > 0)
    });
    let status = bridge.terminate(Duration::from_secs(20));
    assert!(status.success(), "exit status after SIGTERM: {status}");
    let log = bridge.process.log_text();
    assert!(log.contains("bridge-runtime stopped"), "{log}");
    publisher.wait_acked(u64::from(total), LONG).await;

    bridge.restart(&format!("{ns}-run2"));
    bridge.wait_ready(SHORT);
    let records = wait_for_distinct(&topic, total as usize, LONG).await;
    let (distinct, duplicates) = distinct_and_duplicates(&records);
    eprintln!("SIGTERM: {distinct} distinct of {total}, {duplicates} duplicates");
    assert_eq!(
        (distinct, duplicates),
        (total as usize, 0),
        "a drained shutdown acknowledges what it delivered: nothing is sent twice"
    );
}

/// `logging.format: json` writes one JSON object per line, with level and message.
#[tokio::test(flavor = "multi_thread")]
async fn json_logs_are_one_object_per_line() {
    let ns = unique("jsonlog");
    let topic = format!("{ns}-state");
    let config = format!(
        "{}logging:\n  format: json\n",
        device_state_config(&ns, &topic, protocol())
    );
    let mut bridge = Bridge::start(&ns, &config);
    bridge.wait_ready(SHORT);
    let status = bridge.terminate(Duration::from_secs(20));
    assert!(status.success());
    let log = bridge.process.log_text();
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() >= 3, "{log}");
    for line in lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v["level"].is_string() && v["message"].is_string(), "{line}");
    }
    assert!(
        log.contains("\"message\":\"bridge-runtime started\""),
        "{log}"
    );
}

/// The roundRobin and random partitioners spread keyless records over every partition, and
/// compressed batches (zstd, lz4) read back unchanged.
#[tokio::test(flavor = "multi_thread")]
async fn partitioners_and_compression() {
    let ns = unique("parts");
    for t in ["rr", "rand"] {
        kafka::create_topic(&format!("{ns}-{t}"), 4).await;
    }
    let route = |name: &str, topic: &str, partitioner: &str| {
        format!("  - name: {name}\n    mqtt: {{topicFilters: [\"{ns}/{name}/+\"]}}\n    kafka: {{topic: {ns}-{topic}, partitioner: {partitioner}}}\n")
    };
    for (compression, bridge_name) in [("zstd", format!("{ns}-z")), ("lz4", format!("{ns}-l"))] {
        let config = format!(
            "{}mqttToKafka:\n{}{}",
            base_config(&bridge_name, protocol(), None).replace(
                "  bootstrapServers:",
                &format!("  producer: {{compression: {compression}}}\n  bootstrapServers:")
            ),
            route("rr", "rr", "roundRobin"),
            route("rand", "rand", "random"),
        );
        let mut bridge = Bridge::start(&bridge_name, &config);
        bridge.wait_ready(SHORT);
        let p = Publisher::connect(&unique("parts-pub")).await;
        for i in 0..100 {
            p.publish(&format!("{ns}/rr/d"), 1, format!("{compression}-rr-{i}"))
                .await;
            p.publish(
                &format!("{ns}/rand/d"),
                1,
                format!("{compression}-rand-{i}"),
            )
            .await;
        }
        p.wait_acked(200, SHORT).await;
        assert_eq!(bridge.wait_counter("delivered", "rr", 100, SHORT), 100);
        assert_eq!(bridge.wait_counter("delivered", "rand", 100, SHORT), 100);
        bridge.terminate(Duration::from_secs(20));
    }
    let rr = kafka::wait_for_records(&format!("{ns}-rr"), 200, SHORT).await;
    let mut per_partition = [0usize; 4];
    for r in &rr {
        per_partition[r.partition as usize] += 1;
    }
    assert_eq!(per_partition, [50, 50, 50, 50], "round robin: equal shares");
    let random = kafka::wait_for_records(&format!("{ns}-rand"), 200, SHORT).await;
    let used: std::collections::HashSet<i32> = random.iter().map(|r| r.partition).collect();
    assert_eq!(used.len(), 4, "random: every partition used");
    let values: std::collections::HashSet<&str> =
        rr.iter().chain(&random).map(Record::value_str).collect();
    assert!(
        values.contains("zstd-rr-42") && values.contains("lz4-rand-99"),
        "compressed batches read back unchanged"
    );
    assert_eq!(values.len(), 400);
}

/// Partitions added to a topic while the bridge runs get records: the roundRobin and random
/// partitioners read the partition count again (every 10 s), not once.
#[tokio::test(flavor = "multi_thread")]
async fn partitioners_follow_partitions_added_while_running() {
    let ns = unique("grow");
    let (rr, rand) = (format!("{ns}-rr"), format!("{ns}-rand"));
    for t in [&rr, &rand] {
        kafka::create_topic(t, 2).await;
    }
    let config = format!(
        "{}mqttToKafka:\n  - name: rr\n    mqtt: {{topicFilters: [\"{ns}/rr/+\"]}}\n    kafka: {{topic: {rr}, partitioner: roundRobin}}\n  - name: rand\n    mqtt: {{topicFilters: [\"{ns}/rand/+\"]}}\n    kafka: {{topic: {rand}, partitioner: random}}\n",
        base_config(&ns, protocol(), None)
    );
    let mut bridge = Bridge::start(&ns, &config);
    bridge.wait_ready(SHORT);
    let p = Publisher::connect(&unique("grow-pub")).await;
    let mut sent = 0u64;
    let mut publish = |n: u64| {
        let batch: Vec<(String, String)> = (sent..sent + n)
            .flat_map(|i| {
                [
                    (format!("{ns}/rr/d"), format!("rr-{i}")),
                    (format!("{ns}/rand/d"), format!("rand-{i}")),
                ]
            })
            .collect();
        sent += n;
        batch
    };
    for (t, m) in publish(40) {
        p.publish(&t, 1, m).await;
    }
    bridge.wait_counter("delivered", "rr", 40, SHORT);
    bridge.wait_counter("delivered", "rand", 40, SHORT);
    for t in [&rr, &rand] {
        kafka::grow_partitions(t, 4).await;
    }
    // Past the refresh period of the partition counts.
    tokio::time::sleep(Duration::from_secs(11)).await;
    for (t, m) in publish(80) {
        p.publish(&t, 1, m).await;
    }
    p.wait_acked(240, SHORT).await;
    bridge.wait_counter("delivered", "rr", 120, SHORT);
    bridge.wait_counter("delivered", "rand", 120, SHORT);
    for (topic, what) in [(&rr, "roundRobin"), (&rand, "random")] {
        let records = kafka::wait_for_records(topic, 120, SHORT).await;
        let late: std::collections::HashSet<i32> = records
            .iter()
            .filter(|r| {
                r.offset >= 0
                    && r.value_str()
                        .rsplit('-')
                        .next()
                        .and_then(|n| n.parse::<u64>().ok())
                        >= Some(40)
            })
            .map(|r| r.partition)
            .collect();
        assert!(
            late.contains(&2) && late.contains(&3),
            "{what}: records after the growth reach the new partitions, got {late:?}"
        );
    }
}
