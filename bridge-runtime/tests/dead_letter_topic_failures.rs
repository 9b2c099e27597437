//! Dead-letter topics that exist but cannot take a letter, which the topic check cannot see
//! (issue 29, path 2): one that refuses every letter (compacted: MQTT → Kafka letters have no
//! key) and one that never confirms a letter. In a file of its own: the proxy is shared. The bridge says so in `/readyz` and a metric, keeps healthy
//! messages flowing and acknowledged, holds the undeliverable one back without retrying every
//! few seconds, and writes it once the topic is fixed.

mod common;

use common::*;
use rand::Rng;
use testbed::bridge::Bridge;
use testbed::kafka;
use testbed::mqtt::Publisher;
use testbed::reliability::toxiproxy;
use testbed::unique;

/// A bridge with a route `celsius` from `<ns>/temp/+` whose value template needs a JSON
/// payload: "twenty degrees" needs the dead-letter topic.
fn celsius_config(ns: &str, celsius: &str, dlq: &str) -> String {
    let env = testbed::env();
    format!(
        "bridgeName: {ns}\nmqtt:\n  url: {}\n  keepAliveSeconds: 5\nkafka:\n  bootstrapServers: {}\n  deadLetterTopic: {dlq}\nmqttToKafka:\n  - name: celsius\n    mqtt: {{topicFilters: [\"{ns}/temp/+\"]}}\n    kafka:\n      topic: {celsius}\n      value: {{format: template, template: \"${{payload.celsius}}\"}}\n",
        env.mqtt_url, env.kafka_bootstrap
    )
}

async fn publish_poison_then_healthy(p: &Publisher, ns: &str) {
    p.publish(&format!("{ns}/temp/t1"), 1, "twenty degrees")
        .await;
    for c in 0..100 {
        p.publish(&format!("{ns}/temp/t1"), 1, format!("{{\"celsius\":{c}}}"))
            .await;
    }
}

fn renewals(bridge: &Bridge) -> usize {
    bridge
        .process
        .log_text()
        .matches("renewing the MQTT connection so the broker sends the held-back messages again")
        .count()
}

fn failures(bridge: &Bridge, reason: &str) -> f64 {
    bridge
        .metrics()
        .value(
            "mkb_dead_letter_write_failures_total",
            &[("reason", reason)],
        )
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_letter_topic_that_refuses_every_letter_is_reported_not_retried_every_few_seconds() {
    let ns = unique("dlq-compact");
    let (dlq, celsius) = (format!("{ns}-dead-letters"), format!("{ns}-celsius"));
    kafka::create_topic(&celsius, 1).await;
    kafka::create_topic_with_config(&dlq, 1, &[("cleanup.policy", "compact")]).await;
    let mut bridge = Bridge::start(&ns, &celsius_config(&ns, &celsius, &dlq));
    bridge.wait_ready(SHORT);
    let p = Publisher::connect(&unique("dlq-compact-pub")).await;
    publish_poison_then_healthy(&p, &ns).await;

    let records = kafka::wait_for_records(&celsius, 100, SHORT).await;
    assert_eq!(records.len(), 100, "healthy messages flow");
    let body = wait_readyz(&bridge, 503, "refuses letters");
    assert!(
        body.contains("cleanup.policy=delete"),
        "names the cause: {body}"
    );
    assert!(failures(&bridge, "refused") >= 1.0);
    // It used to renew the MQTT connection every 5 s (each renewal drops every in-flight
    // acknowledgement); now the first retry comes after 30 s.
    let before = renewals(&bridge);
    tokio::time::sleep(std::time::Duration::from_secs(20)).await;
    assert_eq!(
        renewals(&bridge),
        before,
        "no renewal within 20 s of the refusal"
    );

    kafka::set_topic_config(&dlq, "cleanup.policy", "delete").await;
    let letters = kafka::wait_for_records(&dlq, 1, LONG).await;
    assert_eq!(letters[0].value_str(), "twenty degrees");
    wait_readyz(&bridge, 200, "ready");
    assert_eq!(
        kafka::read_all(&celsius).await.len(),
        100,
        "nothing healthy sent twice"
    );
}

/// A letter Kafka never confirms (what a dead-letter partition without a leader, or under
/// `min.insync.replicas`, does; neither can be made on the test bed's single broker, whose
/// effective minimum ISR is capped at the replication factor): toxiproxy closes every Kafka
/// connection once 64 KiB have gone up it, so the 100 KiB letter never arrives while the small
/// healthy records do. The letter used to wait forever, and the acknowledgements of
/// every later message waited behind it: after a restart they all came again.
#[tokio::test(flavor = "multi_thread")]
async fn a_letter_kafka_never_confirms_does_not_hold_up_acknowledgements() {
    let ns = unique("dlq-stuck");
    let (dlq, celsius) = (format!("{ns}-dead-letters"), format!("{ns}-celsius"));
    kafka::create_topic(&celsius, 1).await;
    kafka::create_topic(&dlq, 1).await;
    let env = testbed::env();
    let config = celsius_config(&ns, &celsius, &dlq)
        .replace(&env.kafka_bootstrap, &env.kafka_proxied_bootstrap);
    let _reset = toxiproxy::ResetOnDrop;
    toxiproxy::reset();
    let mut bridge = Bridge::start(&ns, &config);
    bridge.wait_ready(SHORT);
    toxiproxy::add_upstream_limit(toxiproxy::KAFKA, 64 * 1024);
    let p = Publisher::connect(&unique("dlq-stuck-pub")).await;
    // Not JSON, and random, so compression cannot bring the letter under the limit.
    let mut poison = vec![0u8; 100 * 1024];
    rand::rng().fill(&mut poison[..]);
    poison[0] = b'!';
    p.publish(&format!("{ns}/temp/t1"), 1, poison.clone()).await;
    for c in 0..100 {
        p.publish(&format!("{ns}/temp/t1"), 1, format!("{{\"celsius\":{c}}}"))
            .await;
    }

    assert_eq!(
        kafka::wait_for_records(&celsius, 100, SHORT).await.len(),
        100
    );
    let body = wait_readyz(&bridge, 503, "did not confirm a letter");
    assert!(
        body.contains("1 of 1 replicas in sync"),
        "says what the brokers say: {body}"
    );
    assert!(failures(&bridge, "timed_out") >= 1.0);

    // The healthy messages were acknowledged: a restart brings back only the held one.
    assert!(bridge.terminate(SHORT).success());
    toxiproxy::reset();
    bridge.restart(&ns);
    let letters = kafka::wait_for_records(&dlq, 1, LONG).await;
    assert_eq!(letters[0].value.as_deref(), Some(poison.as_slice()));
    wait_readyz(&bridge, 200, "ready");
    assert_eq!(
        kafka::read_all(&celsius).await.len(),
        100,
        "nothing healthy came again"
    );
}

/// A Kafka → MQTT letter whose original headers alone exceed the dead-letter topic's
/// `max.message.bytes`: it used to be retried forever (its partition's commits frozen); it is
/// written without the payload and those headers, saying how many were dropped, and keeping
/// the bridge's own coordinates.
#[tokio::test(flavor = "multi_thread")]
async fn a_letter_too_large_even_without_its_payload_is_written_without_its_headers() {
    let ns = unique("dlq-headers");
    let (dlq, topic) = (format!("{ns}-dead-letters"), format!("{ns}-lock-command"));
    kafka::create_topic(&topic, 1).await;
    kafka::create_topic_with_config(&dlq, 1, &[("max.message.bytes", "4096")]).await;
    let mut bridge = Bridge::start(&ns, &commands_config(&ns, &topic, protocol(), Some(&dlq)));
    bridge.wait_ready(SHORT);
    let big = vec![b'h'; 8_000];
    // No key: the MQTT topic `<ns>/devices/${.key}/command` cannot be rendered.
    kafka::produce(
        &topic,
        [kafka::Outgoing {
            key: None,
            value: b"open",
            headers: vec![("trace", big.as_slice()), ("tenant", b"acme")],
        }],
    )
    .await;
    let letters = kafka::wait_for_records(&dlq, 1, LONG).await;
    let letter = &letters[0];
    assert_eq!(letter.header_str("mkb.headers.dropped"), "2");
    assert_eq!(letter.header_str("mkb.payload.dropped.bytes"), "4");
    assert_eq!(letter.header_str("mkb.source.offset"), "0");
    assert!(letter.header("trace").is_none());
    assert!(
        letter.header_str("mkb.reason").contains("mqtt.topic"),
        "{}",
        letter.header_str("mkb.reason")
    );
    // Written, so the partition's offset is committed past it (the topic's one record).
    wait_all_committed_within(&format!("{ns}.commands"), &topic, SHORT).await;
}
