//! A dead-letter topic that does not exist: the bridge says so in `/readyz` from the start,
//! healthy messages keep flowing, the undeliverable ones are held back (MQTT: left
//! unacknowledged; Kafka: left uncommitted) and reach the dead-letter topic once it exists.

mod common;

use common::*;
use testbed::bridge::Bridge;
use testbed::kafka;
use testbed::mqtt::{Publisher, Subscriber};
use testbed::unique;

#[tokio::test(flavor = "multi_thread")]
async fn mqtt_to_kafka_holds_back_what_needs_a_missing_dead_letter_topic() {
    let ns = unique("dlq-missing-up");
    let dlq = format!("{ns}-dead-letters");
    let celsius = format!("{ns}-celsius");
    kafka::create_topic(&celsius, 1).await;
    // A short keep-alive: the bridge renews its connection after the next packet.
    let env = testbed::env();
    let config = format!(
        "bridgeName: {ns}\nmqtt:\n  url: {}\n  keepAliveSeconds: 5\nkafka:\n  bootstrapServers: {}\n  deadLetterTopic: {dlq}\nmqttToKafka:\n  - name: celsius\n    mqtt: {{topicFilters: [\"{ns}/temp/+\"]}}\n    kafka:\n      topic: {celsius}\n      value: {{format: template, template: \"${{payload.celsius}}\"}}\n",
        env.mqtt_url, env.kafka_bootstrap
    );
    let bridge = Bridge::start(&ns, &config);
    let body = wait_readyz(&bridge, 503, "does not exist");
    assert!(
        body.contains(&format!("dead-letter topic {dlq} does not exist")),
        "{body}"
    );

    let p = Publisher::connect(&unique("dlq-missing-pub")).await;
    p.publish(&format!("{ns}/temp/t1"), 1, "twenty degrees")
        .await;
    for c in 0..100 {
        p.publish(&format!("{ns}/temp/t1"), 1, format!("{{\"celsius\":{c}}}"))
            .await;
    }
    // The healthy messages are not blocked by the one that needs the dead-letter topic.
    let records = kafka::wait_for_records(&celsius, 100, SHORT).await;
    assert_eq!(records.len(), 100);
    assert_eq!(
        kafka::describe_topic(&dlq),
        None,
        "the bridge did not create it"
    );

    kafka::create_topic(&dlq, 1).await;
    let letters = kafka::wait_for_records(&dlq, 1, LONG).await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].value_str(), "twenty degrees");
    assert!(
        letters[0]
            .header_str("mkb.reason")
            .contains("needs a JSON payload"),
        "{}",
        letters[0].header_str("mkb.reason")
    );
    wait_readyz(&bridge, 200, "ready");
    assert_eq!(
        kafka::read_all(&celsius).await.len(),
        100,
        "nothing healthy was sent twice"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn kafka_to_mqtt_keeps_uncommitted_what_needs_a_missing_dead_letter_topic() {
    let ns = unique("dlq-missing-down");
    let dlq = format!("{ns}-dead-letters");
    let topic = format!("{ns}-lock-command");
    kafka::create_topic(&topic, 1).await;
    let subscriber = Subscriber::connect(
        &unique("dlq-down-sub"),
        &[&format!("{ns}/devices/+/command")],
        1,
    )
    .await;
    let bridge = Bridge::start(&ns, &commands_config(&ns, &topic, protocol(), Some(&dlq)));
    wait_readyz(
        &bridge,
        503,
        &format!("dead-letter topic {dlq} does not exist"),
    );

    // A record without a key cannot render `<ns>/devices/${.key}/command`.
    kafka::produce(
        &topic,
        [kafka::Outgoing {
            key: None,
            value: b"no key",
            headers: vec![],
        }],
    )
    .await;
    produce_commands(&topic, 5, 0, 50).await;
    wait_for_distinct_commands(&subscriber, 50, SHORT).await;
    let offsets = kafka::committed_and_end(&format!("{ns}.commands"), &topic).await;
    assert!(
        offsets
            .iter()
            .all(|(_, committed, _)| committed.unwrap_or(0) == 0),
        "nothing is committed past the held-back record: {offsets:?}"
    );

    kafka::create_topic(&dlq, 1).await;
    let letters = kafka::wait_for_records(&dlq, 1, LONG).await;
    assert_eq!(letters[0].value_str(), "no key");
    wait_all_committed(&format!("{ns}.commands"), &topic).await;
    wait_readyz(&bridge, 200, "ready");
}
