//! The smart-lock example bridge on the test bed's real node, and what its end-to-end tests
//! measure: states published to MQTT and found in Kafka, commands produced to Kafka and
//! received over MQTT, counted by distinct content (duplicates show as the difference).

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{json, Value};

use crate::env::RealNode;
use crate::kubectl::Namespace;
use crate::mqtt::{Publisher, Subscriber};
use crate::operator::WAIT;
use crate::{env, kafka, wait_until_seen, wait_until_seen_async};

/// The example's name.
pub const BRIDGE: &str = "smart-locks";
/// States and commands go to this many devices, round robin.
pub const DEVICES: u32 = 10;

/// The test bed's real node; fails the test, saying how to get one, when there is none.
pub fn real_node() -> RealNode {
    env()
        .real_node
        .clone()
        .expect("the test bed runs no real node: `make testbed` (as root) starts one")
}

/// `examples/smart-locks.yaml` on the real node: its brokers as the example names them (the
/// test bed's Services), topics, MQTT topics and client ids prefixed with `id` (the brokers
/// are shared), two replicas (so shared subscriptions), the image `make images` built, and
/// the placement of `examples/testbed/real-node-patch.yaml`.
pub fn smart_locks_on(node: &RealNode, id: &str) -> Value {
    let path = crate::repo_root().join("examples/smart-locks.yaml");
    let text = std::fs::read_to_string(&path).expect("read examples/smart-locks.yaml");
    let mut bridge: Value = serde_yaml::from_str(&text).expect("the example is YAML");
    let spec = &mut bridge["spec"];
    spec["replicas"] = json!(2);
    // The example's brokers are the test bed's Services, as pods reach them.
    assert_eq!(
        spec["mqtt"]["url"],
        json!(node.mqtt_url),
        "the example's MQTT URL"
    );
    assert_eq!(
        spec["kafka"]["bootstrapServers"],
        json!(node.kafka_bootstrap),
        "the example's Kafka bootstrap servers"
    );
    // Client ids, share groups and consumer groups default to names made of the bridge's
    // name: tests running the example at the same time, in other namespaces, would take over
    // each other's sessions and join each other's consumer group (each join and leave
    // rebalances the other test's bridge mid-stream).
    spec["mqtt"]["clientIdPrefix"] = json!(id);
    spec["kafka"]["deadLetterTopic"] = json!(format!("{id}.dead-letter"));
    for topic in spec["kafka"]["topics"].as_array_mut().into_iter().flatten() {
        topic["name"] = json!(format!(
            "{id}-{}",
            topic["name"].as_str().unwrap_or_default()
        ));
    }
    let up = &mut spec["mqttToKafka"][0];
    up["mqtt"]["topicFilters"] = json!([format!("{id}/devices/+/state")]);
    up["mqtt"]["shared"] = json!(true);
    up["mqtt"]["shareGroup"] = json!(format!("{id}.lock-state"));
    up["kafka"]["topic"] = json!(format!("{id}-lock-state"));
    up["kafka"]["key"] = json!("${topic[2]}");
    let down = &mut spec["kafkaToMqtt"][0];
    down["kafka"]["topics"] = json!([format!("{id}-lock-command")]);
    down["kafka"]["groupId"] = json!(format!("{id}.lock-command"));
    down["mqtt"]["topic"] = json!(format!("{id}/devices/${{.key}}/command"));
    spec["image"] = json!(format!(
        "ghcr.io/mqtt-kafka-bridge/bridge-runtime:{}",
        env!("CARGO_PKG_VERSION")
    ));
    spec["imagePullPolicy"] = json!("IfNotPresent");
    let patch = crate::repo_root().join("examples/testbed/real-node-patch.yaml");
    let patch: Value = serde_yaml::from_str(
        &std::fs::read_to_string(&patch).expect("read examples/testbed/real-node-patch.yaml"),
    )
    .expect("the placement patch is YAML");
    spec["pod"] = patch["spec"]["pod"].clone();
    bridge
}

/// Waits until pod `name` runs on `node`, Ready, with a uid other than `not_uid`; returns it.
pub fn wait_pod_ready(s: &Namespace, name: &str, node: &str, not_uid: &str) -> Value {
    wait_until_seen(&format!("pod {name} Ready on {node}"), WAIT, || {
        let pod = s.get(&format!("pod/{name}")).unwrap_or(Value::Null);
        let ready = pod["status"]["containerStatuses"][0]["ready"] == true;
        if pod["spec"]["nodeName"] == node
            && pod["status"]["phase"] == "Running"
            && ready
            && pod["metadata"]["uid"] != not_uid
        {
            Ok(pod)
        } else {
            Err(format!("{} {}", pod["spec"]["nodeName"], pod["status"]))
        }
    })
}

/// Publishes `count` lock states, `first_seq` on, spread over the devices, `pause` apart.
pub async fn publish_states(
    publisher: &Publisher,
    id: &str,
    first_seq: u32,
    count: u32,
    pause: Duration,
) {
    for seq in first_seq..first_seq + count {
        let device = seq % DEVICES;
        let topic = format!("{id}/devices/lock-{device}/state");
        publisher
            .publish(&topic, 1, format!("{{\"seq\":{seq}}}"))
            .await;
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
}

/// Produces `count` commands, `first_seq` on, to `<id>-lock-command`.
pub async fn produce_commands(id: &str, first_seq: u32, count: u32) {
    let values: Vec<(String, String)> = (first_seq..first_seq + count)
        .map(|seq| {
            (
                format!("lock-{}", seq % DEVICES),
                format!("{{\"cmd\":{seq}}}"),
            )
        })
        .collect();
    kafka::produce(
        &format!("{id}-lock-command"),
        values.iter().map(|(key, value)| kafka::Outgoing {
            key: Some(key.as_bytes()),
            value: value.as_bytes(),
            headers: vec![],
        }),
    )
    .await;
}

/// Waits until `topic` holds `distinct` different (key, value) records; returns how many
/// records it holds in all.
pub async fn wait_distinct_records(topic: &str, distinct: usize) -> usize {
    let what = format!("{distinct} distinct records in {topic}");
    wait_until_seen_async(&what, WAIT, || async {
        let records = kafka::read_all(topic).await;
        let seen: BTreeSet<(&str, &str)> = records
            .iter()
            .map(|r| (r.key_str(), r.value_str()))
            .collect();
        if seen.len() >= distinct {
            Ok(records.len())
        } else {
            Err(format!("{} distinct", seen.len()))
        }
    })
    .await
}

/// Waits until `subscriber` has `distinct` different commands; returns how many it has in all.
pub async fn wait_distinct_commands(subscriber: &Subscriber, distinct: usize) -> usize {
    let what = format!("{distinct} distinct commands over MQTT");
    wait_until_seen_async(&what, WAIT, || async {
        let received = subscriber.received();
        let seen: BTreeSet<(&str, &[u8])> = received
            .iter()
            .map(|m| (m.topic.as_str(), m.payload.as_slice()))
            .collect();
        if seen.len() >= distinct {
            Ok(received.len())
        } else {
            Err(format!("{} distinct", seen.len()))
        }
    })
    .await
}
