//! MQTT over TLS against a private Mosquitto with the test bed's certificates: mutual TLS
//! moves messages both ways; a server-name override is honoured; a wrong CA, a wrong server
//! name, an expired server certificate or a missing client certificate keep the bridge not
//! ready, with the endpoint and the cause in its log, retrying without exiting;
//! `insecureSkipVerify` accepts the untrusted certificate, with a warning in the log.

mod common;

use std::time::Duration;

use common::*;
use testbed::bridge::{http_get, Bridge};
use testbed::kafka;
use testbed::mosquitto::{Broker, TlsListener};
use testbed::mqtt::{Publisher, Subscriber};
use testbed::unique;

/// A bridge both ways (`state` up, `commands` down) through `url` with `tls` (YAML lines
/// under `mqtt.tls`, indented by four spaces).
fn tls_config(ns: &str, url: &str, tls: &str) -> String {
    let env = testbed::env();
    format!(
        "bridgeName: {ns}\nmqtt:\n  url: {url}\n  protocolVersion: \"{protocol}\"\n  tls:\n{tls}kafka:\n  bootstrapServers: {}\ndelivery:\n  shutdownGracePeriodSeconds: 10\nmqttToKafka:\n  - name: state\n    mqtt: {{topicFilters: [\"{ns}/devices/+/state\"]}}\n    kafka: {{topic: {ns}-state, key: \"${{topic[2]}}\"}}\nkafkaToMqtt:\n  - name: commands\n    kafka: {{topics: [{ns}-cmd], autoOffsetReset: earliest}}\n    mqtt: {{topic: \"{ns}/devices/${{.key}}/command\", qos: 1}}\n",
        env.kafka_bootstrap,
        protocol = protocol(),
    )
}

/// `mqtt.tls` lines with the CA file `ca` (relative to the test bed's TLS directory) and,
/// when `client`, the client certificate and key.
fn tls_lines(ca: &str, client: bool, server_name: Option<&str>) -> String {
    let dir = testbed::env().tls_dir.display().to_string();
    let mut lines = format!("    ca: {{file: {dir}/{ca}}}\n");
    if client {
        lines.push_str(&format!(
            "    clientCertificate: {{file: {dir}/client.crt}}\n    clientKey: {{file: {dir}/client.key}}\n"
        ));
    }
    if let Some(name) = server_name {
        lines.push_str(&format!("    serverName: {name}\n"));
    }
    lines
}

async fn moves_both_ways(url_host: &str, server_name: Option<&str>) {
    let ns = unique("mtls");
    kafka::create_topic(&format!("{ns}-state"), 2).await;
    kafka::create_topic(&format!("{ns}-cmd"), 2).await;
    let broker = Broker::start_tls(
        &ns,
        TlsListener {
            require_client_certificate: true,
            ..TlsListener::default()
        },
    );
    let url = format!("mqtts://{url_host}:{}", broker.tls_port.unwrap_or_default());
    let mut bridge = Bridge::start(
        &ns,
        &tls_config(&ns, &url, &tls_lines("ca.crt", true, server_name)),
    );
    bridge.wait_ready(SHORT);
    let subscriber = Subscriber::connect_at(
        broker.port,
        &unique("mtls-sub"),
        &[&format!("{ns}/devices/+/command")],
        1,
    )
    .await;
    let publisher = Publisher::connect_at(broker.port, &unique("mtls-pub")).await;
    publish_lock_states(&publisher, &ns, 10, 500).await;
    produce_commands(&format!("{ns}-cmd"), 10, 0, 500).await;
    let records = wait_for_distinct(&format!("{ns}-state"), 500, LONG).await;
    assert_eq!(
        distinct_and_duplicates(&records),
        (500, 0),
        "MQTT → Kafka over mTLS"
    );
    let commands = wait_for_distinct_commands(&subscriber, 500, LONG).await;
    assert_eq!(
        distinct_commands(&commands),
        (500, 0),
        "Kafka → MQTT over mTLS"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn mutual_tls_moves_messages_both_ways() {
    moves_both_ways("localhost", None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_name_override_is_what_the_certificate_must_carry() {
    moves_both_ways("127.0.0.1", Some("tls.testbed.local")).await;
}

/// Starts a bridge that cannot connect; asserts it stays running and not ready, and that its
/// log names the endpoint and contains `cause`.
async fn stays_not_ready(tls: TlsListener, lines: String, cause: &str) {
    let ns = unique("tls-bad");
    let broker = Broker::start_tls(&ns, tls);
    let port = broker.tls_port.unwrap_or_default();
    let bridge = Bridge::start(
        &ns,
        &tls_config(&ns, &format!("mqtts://localhost:{port}"), &lines),
    );
    let log = testbed::wait_until(&format!("the bridge to log {cause:?}"), SHORT, || {
        let log = bridge.process.log_text();
        log.contains(cause).then_some(log)
    });
    let line = log.lines().find(|l| l.contains(cause)).unwrap_or_default();
    assert!(
        line.contains(&format!("localhost:{port}")),
        "the endpoint is named: {line}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (code, body) = http_get(bridge.http, "/readyz").expect("/readyz answers");
    assert_eq!(code, 503, "{body}");
    assert!(
        body.contains(&format!("cannot connect to mqtts://localhost:{port}"))
            && body.contains(cause),
        "the cause is the readiness reason: {body}"
    );
    let mut bridge = bridge;
    assert!(
        bridge.process.exit_status().is_none(),
        "retrying, not exiting"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_certificate_from_an_untrusted_ca_is_refused() {
    stays_not_ready(
        TlsListener {
            require_client_certificate: false,
            ..TlsListener::default()
        },
        tls_lines("other/ca.crt", false, None),
        "UnknownIssuer",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_certificate_for_another_name_is_refused() {
    stays_not_ready(
        TlsListener {
            require_client_certificate: false,
            ..TlsListener::default()
        },
        tls_lines("ca.crt", false, Some("not.the.server")),
        "certificate not valid for name \"not.the.server\"",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broker_that_requires_a_client_certificate_refuses_a_bridge_without_one() {
    stays_not_ready(
        TlsListener {
            require_client_certificate: true,
            ..TlsListener::default()
        },
        tls_lines("ca.crt", false, None),
        "CertificateRequired",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_server_certificate_is_refused() {
    stays_not_ready(
        TlsListener {
            expired_server_certificate: true,
            ..TlsListener::default()
        },
        tls_lines("ca.crt", false, None),
        "certificate expired",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn insecure_skip_verify_accepts_an_untrusted_certificate_and_warns() {
    let ns = unique("tls-insecure");
    kafka::create_topic(&format!("{ns}-state"), 1).await;
    kafka::create_topic(&format!("{ns}-cmd"), 1).await;
    let broker = Broker::start_tls(&ns, TlsListener::default());
    let url = format!("mqtts://localhost:{}", broker.tls_port.unwrap_or_default());
    // The CA that refuses this server in the test above, and the opt-out.
    let lines = format!(
        "{}    insecureSkipVerify: true\n",
        tls_lines("other/ca.crt", false, None)
    );
    let mut bridge = Bridge::start(&ns, &tls_config(&ns, &url, &lines));
    bridge.wait_ready(SHORT);
    let publisher = Publisher::connect_at(broker.port, &unique("insecure-pub")).await;
    publish_lock_states(&publisher, &ns, 2, 50).await;
    let records = wait_for_distinct(&format!("{ns}-state"), 50, LONG).await;
    assert_eq!(distinct_and_duplicates(&records), (50, 0));
    let log = bridge.process.log_text();
    let warning = log
        .lines()
        .find(|l| l.contains("insecureSkipVerify"))
        .unwrap_or_default();
    assert!(
        warning.contains(" WARN ")
            && warning.contains(
                "mqtt.tls.insecureSkipVerify is set: the broker's certificate is not verified"
            ),
        "one warning at start: {warning:?}"
    );
}
