//! Shared pieces of the runtime's integration tests.
#![allow(dead_code)]

pub mod brokers;
pub mod proxy;

use std::collections::HashMap;
use std::time::Duration;

use testbed::env;
use testbed::kafka::{self, Record};

/// An MQTT protocol version the bridge speaks (`mqtt.protocolVersion`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Mqtt5,
    Mqtt311,
}

impl Protocol {
    /// Its `mqtt.protocolVersion` value.
    pub fn version(self) -> &'static str {
        match self {
            Protocol::Mqtt5 => "5",
            Protocol::Mqtt311 => "3.1.1",
        }
    }
}

/// The `mqtt.protocolVersion` of the tests that do not depend on it: `MKB_TEST_MQTT_PROTOCOL`
/// ("5", the default, or "3.1.1"), so the whole suite can run on either (docs/testbed.md).
pub fn protocol() -> &'static str {
    match std::env::var("MKB_TEST_MQTT_PROTOCOL").as_deref() {
        Err(_) | Ok("") | Ok("5") => Protocol::Mqtt5.version(),
        Ok("3.1.1") => Protocol::Mqtt311.version(),
        Ok(other) => panic!("MKB_TEST_MQTT_PROTOCOL={other:?}: expected \"5\" or \"3.1.1\""),
    }
}

/// The `bridgeName`, `mqtt` and `kafka` sections of a configuration against the test bed.
pub fn base_config(bridge: &str, protocol: &str, dead_letter_topic: Option<&str>) -> String {
    let env = env();
    let dlq = dead_letter_topic
        .map(|t| format!("\n  deadLetterTopic: {t}"))
        .unwrap_or_default();
    format!(
        "bridgeName: {bridge}\nmqtt:\n  url: {}\n  protocolVersion: \"{protocol}\"\nkafka:\n  bootstrapServers: {}{dlq}\ndelivery:\n  shutdownGracePeriodSeconds: 10\n",
        env.mqtt_url, env.kafka_bootstrap
    )
}

/// A bridge with one route, `state`, from `<ns>/devices/+/state` to `topic`, keyed by the
/// device id.
pub fn device_state_config(ns: &str, topic: &str, protocol: &str) -> String {
    format!(
        "{}mqttToKafka:\n  - name: state\n    mqtt: {{topicFilters: [\"{ns}/devices/+/state\"]}}\n    kafka: {{topic: {topic}, key: \"${{topic[2]}}\"}}\n",
        base_config(ns, protocol, None)
    )
}

/// Writes `secret` to `<ns>.<what>` beside the test logs; returns the `{file: ...}` reference
/// a configuration reads it through.
pub fn secret_file(ns: &str, what: &str, secret: &str) -> String {
    let file = testbed::process::test_log_dir().join(format!("{ns}.{what}"));
    std::fs::write(&file, secret).expect("write the secret file");
    format!("{{file: {}}}", file.display())
}

pub const LONG: Duration = Duration::from_secs(120);
pub const SHORT: Duration = Duration::from_secs(30);

/// `{"device":"<id>","seq":<n>}`, what the smart-lock devices of the tests publish.
pub fn lock_state(device: &str, seq: u32) -> String {
    format!("{{\"device\":\"{device}\",\"seq\":{seq}}}")
}

/// Publishes `count` smart-lock states at QoS 1 on `<ns>/devices/lock-<d>/state`, for
/// `devices` devices in turn, each device's seq counting up from 0.
pub async fn publish_lock_states(
    publisher: &testbed::mqtt::Publisher,
    ns: &str,
    devices: u32,
    count: u32,
) {
    publish_lock_states_from(publisher, ns, devices, 0, count).await;
}

/// As [`publish_lock_states`], the states `first..first+count` of that sequence.
pub async fn publish_lock_states_from(
    publisher: &testbed::mqtt::Publisher,
    ns: &str,
    devices: u32,
    first: u32,
    count: u32,
) {
    publish_lock_states_at(publisher, ns, devices, first, count, 1).await;
}

/// As [`publish_lock_states_from`], at `qos`.
pub async fn publish_lock_states_at(
    publisher: &testbed::mqtt::Publisher,
    ns: &str,
    devices: u32,
    first: u32,
    count: u32,
    qos: u8,
) {
    for i in first..first + count {
        let (device, seq) = (format!("lock-{}", i % devices), i / devices);
        publisher
            .publish(
                &format!("{ns}/devices/{device}/state"),
                qos,
                lock_state(&device, seq),
            )
            .await;
    }
}

/// (device, seq) of a smart-lock record.
pub fn device_seq(record: &Record) -> (String, u64) {
    let v: serde_json::Value =
        serde_json::from_slice(record.value.as_deref().unwrap_or_default()).expect("JSON value");
    (
        v["device"].as_str().unwrap_or_default().to_owned(),
        v["seq"].as_u64().unwrap_or(u64::MAX),
    )
}

/// Counts each (device, seq) and returns (distinct, duplicates).
pub fn distinct_and_duplicates(records: &[Record]) -> (usize, usize) {
    let mut seen: HashMap<(String, u64), usize> = HashMap::new();
    for r in records {
        *seen.entry(device_seq(r)).or_default() += 1;
    }
    let duplicates = seen.values().map(|n| n - 1).sum();
    (seen.len(), duplicates)
}

/// Waits until the topic holds every one of `total` distinct smart-lock messages (duplicates
/// do not count), then returns all its records. Fails after `timeout` with what is missing.
pub async fn wait_for_distinct(topic: &str, total: usize, timeout: Duration) -> Vec<Record> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let records = kafka::wait_for_records(topic, total as i64, timeout).await;
        let (distinct, _) = distinct_and_duplicates(&records);
        if distinct >= total || std::time::Instant::now() >= deadline {
            return records;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A command payload: `<device>|<seq>|` and two bytes that are not UTF-8, so byte-for-byte
/// delivery is checked too.
pub fn command_payload(device: &str, seq: u32) -> Vec<u8> {
    let mut p = format!("{device}|{seq}|").into_bytes();
    p.extend_from_slice(&[0xff, 0x00]);
    p
}

/// (device, seq) of a command payload.
pub fn parse_command(payload: &[u8]) -> (String, u32) {
    let text = String::from_utf8_lossy(payload);
    let mut parts = text.split('|');
    let device = parts.next().unwrap_or_default().to_owned();
    let seq = parts
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(u32::MAX);
    (device, seq)
}

/// A bridge with one Kafka → MQTT route, `commands`, from `topic` to
/// `<ns>/devices/${.key}/command` at QoS 1, reading new groups from the earliest offset.
pub fn commands_config(
    ns: &str,
    topic: &str,
    protocol: &str,
    dead_letter_topic: Option<&str>,
) -> String {
    format!(
        "{}kafkaToMqtt:\n  - name: commands\n    kafka: {{topics: [{topic}], autoOffsetReset: earliest}}\n    mqtt: {{topic: \"{ns}/devices/${{.key}}/command\", qos: 1}}\n",
        base_config(ns, protocol, dead_letter_topic)
    )
}

/// Produces `count` commands for `devices` devices (key = device id), seq 0.. per device,
/// starting at `first_seq`.
pub async fn produce_commands(topic: &str, devices: u32, first_seq: u32, count: u32) {
    let records: Vec<(String, Vec<u8>)> = (0..count)
        .map(|i| {
            let device = format!("lock-{}", i % devices);
            let payload = command_payload(&device, first_seq + i / devices);
            (device, payload)
        })
        .collect();
    kafka::produce(
        topic,
        records.iter().map(|(k, v)| kafka::Outgoing {
            key: Some(k.as_bytes()),
            value: v,
            headers: vec![],
        }),
    )
    .await;
}

/// Distinct (device, seq) commands among `messages`, and the number of duplicates.
pub fn distinct_commands(messages: &[testbed::mqtt::Received]) -> (usize, usize) {
    let mut seen = std::collections::HashSet::new();
    let mut duplicates = 0;
    for m in messages {
        if !seen.insert(parse_command(&m.payload)) {
            duplicates += 1;
        }
    }
    (seen.len(), duplicates)
}

/// Waits until the subscriber has every one of `total` distinct commands.
pub async fn wait_for_distinct_commands(
    subscriber: &testbed::mqtt::Subscriber,
    total: usize,
    timeout: Duration,
) -> Vec<testbed::mqtt::Received> {
    testbed::wait_until_async(
        &format!("{total} distinct commands over MQTT"),
        timeout,
        || async {
            let got = subscriber.received();
            (distinct_commands(&got).0 >= total).then_some(got)
        },
    )
    .await
}

/// Waits until the consumer group `group` has committed every record of `topic`.
pub async fn wait_all_committed(group: &str, topic: &str) {
    wait_all_committed_within(group, topic, LONG).await;
}

/// As `wait_all_committed`, for at most `timeout`.
pub async fn wait_all_committed_within(group: &str, topic: &str, timeout: Duration) {
    testbed::wait_until_async(
        &format!("{group} to commit every record of {topic}"),
        timeout,
        || async {
            let offsets = kafka::committed_and_end(group, topic).await;
            offsets
                .iter()
                .all(|(_, committed, end)| *committed == Some(*end))
                .then_some(())
        },
    )
    .await;
}

/// Runs `bridge-runtime --config <config> --retire-ordinal <ordinal>`; returns its stdout.
pub fn retire_ordinal(config: &std::path::Path, ordinal: u32) -> String {
    retire_ordinal_with(config, ordinal, &[])
}

/// As `retire_ordinal`, with extra arguments.
pub fn retire_ordinal_with(config: &std::path::Path, ordinal: u32, extra: &[&str]) -> String {
    let output = std::process::Command::new(testbed::process::workspace_binary("bridge-runtime"))
        .arg("--config")
        .arg(config)
        .args(["--retire-ordinal", &ordinal.to_string()])
        .args(extra)
        .output()
        .expect("run bridge-runtime --retire-ordinal");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The count in "retired the MQTT session <id>: <n> message(s) delivered to Kafka".
pub fn drained(stdout: &str) -> u64 {
    stdout
        .split(": ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {stdout:?}"))
}

/// Waits until `/readyz` answers `code` with a body containing `text`.
pub fn wait_readyz(bridge: &testbed::bridge::Bridge, code: u16, text: &str) -> String {
    testbed::wait_until(
        &format!("/readyz to answer {code} with {text:?}"),
        SHORT,
        || {
            testbed::bridge::http_get(bridge.http, "/readyz")
                .filter(|(c, body)| *c == code && body.contains(text))
        },
    )
    .1
}
