//! Retained messages and restarts of a route with `shared: false` (issue 29, path 8). A
//! retained message is produced when the route first subscribes. After a restart the bridge
//! subscribes again (its configuration may have changed). MQTT 5 asks the broker to send
//! retained messages only for subscriptions the session did not have (Retain Handling 1), so
//! nothing is produced twice; MQTT 3.1.1 has no such option and the broker sends them again,
//! which docs/runtime.md states.

mod common;

use common::*;
use testbed::bridge::Bridge;
use testbed::kafka;
use testbed::mqtt::Publisher;
use testbed::unique;

/// Runs the scenario and returns how many times the retained state reached Kafka.
async fn retained_state_records_after_a_restart(protocol: &str) -> usize {
    let ns = unique("retained");
    let topic = format!("{ns}-state");
    kafka::create_topic(&topic, 1).await;
    let config = format!(
        "{}mqttToKafka:\n  - name: state\n    mqtt: {{topicFilters: [\"{ns}/devices/+/state\"], shared: false}}\n    kafka: {{topic: {topic}, headers: {{mqtt.retain: \"${{retain}}\"}}}}\n",
        base_config(&ns, protocol, None)
    );
    let device = format!("{ns}/devices/lock-1/state");
    let publisher = Publisher::connect(&unique("retained-pub")).await;
    // Kept by the broker before the bridge ever subscribed: the first subscription gets it.
    publisher.publish_retained(&device, 1, "locked").await;
    publisher.wait_acked(1, SHORT).await;

    let mut bridge = Bridge::start(&ns, &config);
    bridge.wait_ready(SHORT);
    let first = kafka::wait_for_records(&topic, 1, LONG).await;
    assert_eq!(
        first[0].value_str(),
        "locked",
        "the first subscription gets the retained state"
    );

    assert!(bridge.terminate(SHORT).success(), "SIGTERM: exit 0");
    bridge.restart(&ns);
    bridge.wait_ready(SHORT);
    publisher.publish(&device, 1, "unlocked").await;
    publisher.wait_acked(2, SHORT).await;
    // Everything the broker sent after the restart is in Kafka once the live message is (one
    // partition, produced in order).
    testbed::wait_until_async("the live message after the restart", LONG, || async {
        let records = kafka::read_all(&topic).await;
        records
            .iter()
            .any(|r| r.value_str() == "unlocked")
            .then_some(())
    })
    .await;
    // The retained message is removed from the broker, so no later test sees it.
    publisher.publish_retained(&device, 1, "").await;
    publisher.wait_acked(3, SHORT).await;
    let all = kafka::read_all(&topic).await;
    let values: Vec<&str> = all.iter().map(|r| r.value_str()).collect();
    assert_eq!(
        values.iter().filter(|v| **v == "unlocked").count(),
        1,
        "{values:?}"
    );
    // The documented way to tell the replays apart: the `${retain}` header.
    for r in &all {
        let expected = if r.value_str() == "locked" {
            "true"
        } else {
            "false"
        };
        assert_eq!(r.header_str("mqtt.retain"), expected, "{}", r.value_str());
    }
    values.iter().filter(|v| **v == "locked").count()
}

#[tokio::test(flavor = "multi_thread")]
async fn mqtt5_a_restart_does_not_produce_retained_messages_again() {
    assert_eq!(retained_state_records_after_a_restart("5").await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn mqtt311_a_restart_produces_retained_messages_again_as_documented() {
    assert_eq!(retained_state_records_after_a_restart("3.1.1").await, 2);
}
