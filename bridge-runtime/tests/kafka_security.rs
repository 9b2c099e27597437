//! Kafka over TLS and SASL against the test bed's secured listeners: SCRAM-SHA-512 with MQTT
//! mutual TLS, and Kafka mutual TLS with an MQTT password, move messages both ways with exact
//! counts; PLAIN and SCRAM-SHA-256 logins work; a wrong password, a mechanism the listener
//! does not offer, a wrong CA and an expired client certificate keep the bridge not ready
//! with one warning naming the bootstrap servers and the cause, retrying without exiting.
//! Every bridge here logs at trace level, and no password or private key shows in its log.

mod common;

use std::time::Duration;

use common::*;
use testbed::bridge::{http_get, Bridge};
use testbed::kafka;
use testbed::mosquitto::{Broker, TlsListener};
use testbed::mqtt::{Publisher, Subscriber};
use testbed::secrets::{assert_none_in_trace_log, Secret};
use testbed::{env, unique};

/// The MQTT password of the private Mosquitto in these tests.
const MQTT_PASSWORD: &str = "mqtt-Pa55word-kafka-security";
/// A password Kafka refuses.
const WRONG_KAFKA_PASSWORD: &str = "wrong-Pa55word-kafka-security";

/// Fails when `bridge`'s log holds a password or a private key of these tests.
fn assert_no_secret_in_log(bridge: &Bridge) {
    let tls = &env().tls_dir;
    let secrets = [
        Secret::value("the Kafka password", &env().kafka_sasl_password),
        Secret::value("the wrong Kafka password", WRONG_KAFKA_PASSWORD),
        Secret::value("the MQTT password", MQTT_PASSWORD),
        Secret::private_key("client.key", &tls.join("client.key")),
        Secret::private_key("expired/client.key", &tls.join("expired/client.key")),
    ];
    assert_none_in_trace_log(&bridge.process, &secrets);
}

fn tls_file(name: &str) -> String {
    format!("{{file: {}}}", env().tls_dir.join(name).display())
}

/// `kafka:` lines for SASL_SSL with `mechanism` at `bootstrap`, logging in with `password`.
fn kafka_sasl(ns: &str, bootstrap: &str, mechanism: &str, password: &str) -> String {
    format!(
        "kafka:\n  bootstrapServers: {bootstrap}\n  tls:\n    ca: {ca}\n  sasl:\n    mechanism: {mechanism}\n    username: {user}\n    password: {password}\n",
        ca = tls_file("ca.crt"),
        user = env().kafka_sasl_username,
        password = secret_file(ns, "kafka-password", password),
    )
}

/// `kafka:` lines for SSL with the CA `ca` and the client certificate `<client>.crt/.key`.
fn kafka_mtls(ca: &str, client: &str) -> String {
    format!(
        "kafka:\n  bootstrapServers: {}\n  tls:\n    ca: {}\n    clientCertificate: {}\n    clientKey: {}\n",
        env().kafka_ssl_bootstrap,
        tls_file(ca),
        tls_file(&format!("{client}.crt")),
        tls_file(&format!("{client}.key")),
    )
}

/// A configuration with `mqtt` (plus the suite's protocol version) and `kafka` sections as
/// given, the `state` route up and, when `commands`, the `commands` route down.
fn config(ns: &str, mqtt: &str, kafka: &str, commands: bool) -> String {
    let protocol = protocol();
    let mut yaml = format!(
        "bridgeName: {ns}\n{mqtt}  protocolVersion: \"{protocol}\"\n{kafka}delivery:\n  shutdownGracePeriodSeconds: 10\nmqttToKafka:\n  - name: state\n    mqtt: {{topicFilters: [\"{ns}/devices/+/state\"]}}\n    kafka: {{topic: {ns}-state, key: \"${{topic[2]}}\"}}\n"
    );
    if commands {
        yaml.push_str(&format!("kafkaToMqtt:\n  - name: commands\n    kafka: {{topics: [{ns}-cmd], autoOffsetReset: earliest}}\n    mqtt: {{topic: \"{ns}/devices/${{.key}}/command\", qos: 1}}\n"));
    }
    yaml
}

/// Runs a bridge both ways through `broker` (plain port for the test's own clients) and
/// asserts exact counts each way.
async fn moves_both_ways(ns: &str, broker: &Broker, mqtt: &str, kafka_lines: &str) {
    kafka::create_topic(&format!("{ns}-state"), 2).await;
    kafka::create_topic(&format!("{ns}-cmd"), 2).await;
    let mut bridge = Bridge::start_traced(ns, &config(ns, mqtt, kafka_lines, true));
    bridge.wait_ready(SHORT);
    let subscriber = Subscriber::connect_at(
        broker.port,
        &unique("sec-sub"),
        &[&format!("{ns}/devices/+/command")],
        1,
    )
    .await;
    let publisher = Publisher::connect_at(broker.port, &unique("sec-pub")).await;
    publish_lock_states(&publisher, ns, 10, 500).await;
    produce_commands(&format!("{ns}-cmd"), 10, 0, 500).await;
    let records = wait_for_distinct(&format!("{ns}-state"), 500, LONG).await;
    assert_eq!(distinct_and_duplicates(&records), (500, 0), "MQTT → Kafka");
    let commands = wait_for_distinct_commands(&subscriber, 500, LONG).await;
    assert_eq!(distinct_commands(&commands), (500, 0), "Kafka → MQTT");
    assert_no_secret_in_log(&bridge);
}

#[tokio::test(flavor = "multi_thread")]
async fn mqtt_mutual_tls_and_kafka_scram_sha_512_move_messages_both_ways() {
    let ns = unique("scram512");
    let broker = Broker::start_tls(
        &ns,
        TlsListener {
            require_client_certificate: true,
            ..TlsListener::default()
        },
    );
    let mqtt = format!(
        "mqtt:\n  url: mqtts://localhost:{}\n  tls:\n    ca: {}\n    clientCertificate: {}\n    clientKey: {}\n",
        broker.tls_port.unwrap_or_default(),
        tls_file("ca.crt"),
        tls_file("client.crt"),
        tls_file("client.key"),
    );
    let kafka_lines = kafka_sasl(
        &ns,
        &env().kafka_sasl_bootstrap,
        "SCRAM-SHA-512",
        &env().kafka_sasl_password,
    );
    moves_both_ways(&ns, &broker, &mqtt, &kafka_lines).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kafka_mutual_tls_and_an_mqtt_password_move_messages_both_ways() {
    let ns = unique("kafka-mtls");
    let broker = Broker::start_with_password(&ns, "bridge", MQTT_PASSWORD);
    let mqtt = format!(
        "mqtt:\n  url: mqtt://127.0.0.1:{}\n  auth:\n    username: bridge\n    password: {}\n",
        broker.auth_port.unwrap_or_default(),
        secret_file(&ns, "mqtt-password", MQTT_PASSWORD),
    );
    moves_both_ways(&ns, &broker, &mqtt, &kafka_mtls("ca.crt", "client")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_and_scram_sha_256_logins_move_messages() {
    for mechanism in ["PLAIN", "SCRAM-SHA-256"] {
        let ns = unique(&mechanism.to_lowercase());
        kafka::create_topic(&format!("{ns}-state"), 1).await;
        let mqtt = format!("mqtt:\n  url: {}\n", env().mqtt_url);
        let kafka_lines = kafka_sasl(
            &ns,
            &env().kafka_sasl_bootstrap,
            mechanism,
            &env().kafka_sasl_password,
        );
        let mut bridge = Bridge::start(&ns, &config(&ns, &mqtt, &kafka_lines, false));
        bridge.wait_ready(SHORT);
        let publisher = Publisher::connect(&unique("sec-pub")).await;
        publish_lock_states(&publisher, &ns, 5, 100).await;
        let records = wait_for_distinct(&format!("{ns}-state"), 100, LONG).await;
        assert_eq!(distinct_and_duplicates(&records), (100, 0), "{mechanism}");
    }
}

/// Starts a bridge (one route up) whose Kafka settings are `kafka_lines`; asserts it stays
/// running and not ready, with one warning naming `bootstrap` and containing `cause`, and the
/// cause as its readiness reason.
async fn stays_not_ready(ns: &str, kafka_lines: &str, bootstrap: &str, cause: &str) {
    let mqtt = format!("mqtt:\n  url: {}\n", env().mqtt_url);
    let mut bridge = Bridge::start_traced(ns, &config(ns, &mqtt, kafka_lines, false));
    let warning = |log: &str| {
        log.lines()
            .filter(|l| l.contains("WARN") && l.contains("Kafka producer cannot connect to"))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let first = testbed::wait_until(&format!("a warning with {cause:?}"), SHORT, || {
        warning(&bridge.process.log_text()).into_iter().next()
    });
    assert!(
        first.contains(bootstrap) && first.contains(cause),
        "the warning names the endpoint and the cause: {first}"
    );
    // librdkafka retries (backoff up to 10 s): more attempts, no more warnings, no exit.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let log = bridge.process.log_text();
    assert_eq!(warning(&log).len(), 1, "one warning:\n{log}");
    let (code, body) = http_get(bridge.http, "/readyz").expect("/readyz answers");
    assert_eq!(code, 503, "{body}");
    assert!(
        body.contains(&format!("cannot connect to Kafka at {bootstrap}")) && body.contains(cause),
        "the cause is the readiness reason: {body}"
    );
    assert!(
        bridge.process.exit_status().is_none(),
        "retrying, not exiting"
    );
    assert_no_secret_in_log(&bridge);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_kafka_password_keeps_the_bridge_not_ready() {
    let ns = unique("kafka-badpass");
    let bootstrap = &env().kafka_sasl_bootstrap;
    let lines = kafka_sasl(&ns, bootstrap, "SCRAM-SHA-512", WRONG_KAFKA_PASSWORD);
    stays_not_ready(&ns, &lines, bootstrap, "Authentication failed").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mechanism_the_listener_does_not_offer_keeps_the_bridge_not_ready() {
    let ns = unique("kafka-badmech");
    let bootstrap = &env().kafka_scram512_bootstrap;
    let lines = kafka_sasl(&ns, bootstrap, "PLAIN", &env().kafka_sasl_password);
    stays_not_ready(&ns, &lines, bootstrap, "Unsupported SASL mechanism").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kafka_certificate_from_an_untrusted_ca_is_refused() {
    let ns = unique("kafka-badca");
    let lines = kafka_mtls("other/ca.crt", "client");
    stays_not_ready(
        &ns,
        &lines,
        &env().kafka_ssl_bootstrap,
        "certificate verify failed",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_client_certificate_is_refused_by_kafka() {
    let ns = unique("kafka-expired");
    let lines = kafka_mtls("ca.crt", "expired/client");
    // The broker only answers with a TLS alert; its own log says the certificate expired.
    stays_not_ready(
        &ns,
        &lines,
        &env().kafka_ssl_bootstrap,
        "alert certificate unknown",
    )
    .await;
}
