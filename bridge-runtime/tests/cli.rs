//! The command line as a user meets it: a valid file passes `--check`; a bad one exits
//! non-zero and prints every problem with its field path.

use std::process::Command;

fn run(args: &[&str], config: &str) -> (i32, String, String) {
    let dir = std::env::temp_dir().join(format!(
        "bridge-runtime-cli-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("config.yaml");
    std::fs::write(&path, config).expect("write config");
    let out = Command::new(env!("CARGO_BIN_EXE_bridge-runtime"))
        .args(args)
        .arg("--config")
        .arg(&path)
        .output()
        .expect("run bridge-runtime");
    let _ = std::fs::remove_dir_all(&dir);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn rand_suffix() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

const VALID: &str = "
bridgeName: smart-locks
mqtt: {url: 'mqtt://127.0.0.1:1883'}
kafka: {bootstrapServers: '127.0.0.1:9092'}
mqttToKafka:
  - name: lock-state
    mqtt: {topicFilters: ['devices/+/state']}
    kafka: {topic: lock-state, key: '${topic[1]}'}
";

#[test]
fn check_accepts_a_valid_file() {
    let (code, stdout, stderr) = run(&["--check"], VALID);
    assert_eq!(code, 0, "stderr: {stderr}");
    assert!(
        stdout.contains("valid (1 MQTT → Kafka, 0 Kafka → MQTT routes)"),
        "{stdout}"
    );
}

#[test]
fn check_prints_every_error_with_its_path_and_exits_2() {
    let bad = VALID
        .replace("mqtt://127.0.0.1:1883", "tcp://127.0.0.1")
        .replace("${topic[1]}", "${topc}")
        .replace("devices/+/state", "devices/#/state");
    let (code, stdout, stderr) = run(&["--check"], &bad);
    assert_eq!(code, 2);
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("(3 problems)"), "{stderr}");
    for line in [
        "  mqtt.url: \"tcp://127.0.0.1\" must start with mqtt:// or mqtts://",
        "  mqttToKafka[0].mqtt.topicFilters[0]: \"devices/#/state\": '#' must be the last level",
        "  mqttToKafka[0].kafka.key: unknown placeholder ${topc} at column 1",
    ] {
        assert!(stderr.contains(line), "missing {line:?} in:\n{stderr}");
    }
}

#[test]
fn missing_file_is_a_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_bridge-runtime"))
        .args(["--check", "--config", "/nonexistent/bridge.yaml"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read /nonexistent/bridge.yaml"));
}

/// Settings that would silently do nothing, or break, are refused, each with its field: MQTT
/// 5-only ones on an MQTT 3.1.1 connection, acks "0" (contradicts at-least-once delivery), and
/// QoS 2 subscriptions (a reconnect loop after restarts).
#[test]
fn settings_that_would_do_nothing_are_refused() {
    let config = "
bridgeName: smart-locks
mqtt: {url: 'mqtt://127.0.0.1:1883', protocolVersion: '3.1.1', sessionExpirySeconds: 600}
kafka:
  bootstrapServers: '127.0.0.1:9092'
  producer: {acks: '0', idempotence: false}
mqttToKafka:
  - name: lock-state
    mqtt: {topicFilters: ['devices/+/state'], qos: 3}
    kafka: {topic: lock-state, forwardUserProperties: true}
kafkaToMqtt:
  - name: lock-command
    kafka: {topics: [lock-command]}
    mqtt: {topic: 'devices/${.key}/command', forwardHeaders: true}
";
    let (code, _, stderr) = run(&["--check"], config);
    assert_eq!(code, 2, "stderr: {stderr}");
    for field in [
        "mqtt.sessionExpirySeconds: MQTT 3.1.1 has no session expiry",
        "kafka.producer.acks: \"0\" means Kafka confirms no write",
        "mqttToKafka[0].kafka.forwardUserProperties: MQTT 3.1.1 has no user properties",
        "kafkaToMqtt[0].mqtt.forwardHeaders: MQTT 3.1.1 has no user properties",
        "mqttToKafka[0].mqtt.qos: 3 is not a QoS level",
    ] {
        assert!(stderr.contains(field), "{field:?} not in:\n{stderr}");
    }
    // Without them, the same 3.1.1 bridge is fine: nothing is forwarded, by default.
    let fine = config
        .replace(", sessionExpirySeconds: 600", "")
        .replace("acks: '0', idempotence: false", "acks: all")
        .replace(", forwardUserProperties: true", "")
        .replace(", forwardHeaders: true", "")
        .replace(", qos: 3", "");
    let (code, _, stderr) = run(&["--check"], &fine);
    assert_eq!(code, 0, "stderr: {stderr}");
}
