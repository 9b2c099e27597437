//! MQTT username / password against a Mosquitto listener that requires them: the right
//! password moves messages; a wrong one keeps the bridge not ready with the broker's answer,
//! and the password is in no log line (the bridges log at trace level).

mod common;

use std::time::Duration;

use common::*;
use testbed::bridge::{http_get, Bridge};
use testbed::kafka;
use testbed::mosquitto::Broker;
use testbed::mqtt::Publisher;
use testbed::secrets::{assert_none_in_trace_log, Secret};
use testbed::unique;

const PASSWORD: &str = "s3cret-Pa55word-7f2e";

/// Fails when `bridge`'s trace-level log holds the password or one of `others`.
fn assert_no_password_in_log(bridge: &Bridge, other: Option<Secret>) {
    let mut secrets = vec![Secret::value("the password", PASSWORD)];
    secrets.extend(other);
    assert_none_in_trace_log(&bridge.process, &secrets);
}

/// A bridge with one route up through the password listener, reading the password from a file.
fn password_config(ns: &str, port: u16, password: &str) -> String {
    format!(
        "bridgeName: {ns}\nmqtt:\n  url: mqtt://127.0.0.1:{port}\n  protocolVersion: \"{protocol}\"\n  auth:\n    username: bridge\n    password: {}\nkafka:\n  bootstrapServers: {}\nmqttToKafka:\n  - name: state\n    mqtt: {{topicFilters: [\"{ns}/devices/+/state\"]}}\n    kafka: {{topic: {ns}-state, key: \"${{topic[2]}}\"}}\n",
        secret_file(ns, "password", password),
        testbed::env().kafka_bootstrap,
        protocol = protocol(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_right_password_moves_messages_and_is_never_logged() {
    let ns = unique("mqtt-pass");
    kafka::create_topic(&format!("{ns}-state"), 1).await;
    let broker = Broker::start_with_password(&ns, "bridge", PASSWORD);
    let port = broker.auth_port.unwrap_or_default();
    let mut bridge = Bridge::start_traced(&ns, &password_config(&ns, port, PASSWORD));
    bridge.wait_ready(SHORT);
    let publisher = Publisher::connect_at(broker.port, &unique("mqtt-pass-pub")).await;
    publish_lock_states(&publisher, &ns, 5, 200).await;
    let records = wait_for_distinct(&format!("{ns}-state"), 200, LONG).await;
    assert_eq!(distinct_and_duplicates(&records), (200, 0));
    assert_no_password_in_log(&bridge, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_password_keeps_the_bridge_not_ready_with_the_brokers_answer() {
    let ns = unique("mqtt-badpass");
    let broker = Broker::start_with_password(&ns, "bridge", PASSWORD);
    let port = broker.auth_port.unwrap_or_default();
    let wrong = "wrong-Pa55word-19ab";
    let mut bridge = Bridge::start_traced(&ns, &password_config(&ns, port, wrong));
    let endpoint = format!("mqtt://127.0.0.1:{port}");
    let line = testbed::wait_until("the bridge to log the refusal", SHORT, || {
        let log = bridge.process.log_text();
        log.lines()
            .find(|l| l.contains("cannot connect to") && l.contains(&endpoint))
            .map(str::to_owned)
    });
    assert!(
        line.contains("not authorized") || line.contains("bad user name or password"),
        "{line}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (code, body) = http_get(bridge.http, "/readyz").expect("/readyz answers");
    assert_eq!(code, 503);
    assert!(
        body.contains(&format!("cannot connect to {endpoint}")),
        "{body}"
    );
    assert!(
        bridge.process.exit_status().is_none(),
        "retrying, not exiting"
    );
    assert_no_password_in_log(&bridge, Some(Secret::value("the wrong password", wrong)));
}
