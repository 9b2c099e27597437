//! Shared pieces of the runtime's integration tests.
#![allow(dead_code)]

use std::collections::HashMap;
use std::time::Duration;

use testbed::env;
use testbed::kafka::{self, Record};

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

pub const LONG: Duration = Duration::from_secs(120);
pub const SHORT: Duration = Duration::from_secs(30);

/// `{"device":"<id>","seq":<n>}`, what the smart-lock devices of the tests publish.
pub fn lock_state(device: &str, seq: u32) -> String {
    format!("{{\"device\":\"{device}\",\"seq\":{seq}}}")
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
