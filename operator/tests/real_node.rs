//! The real node: the smart-lock example bridge, rolled out by the operator onto the test bed's
//! kubelet + containerd node, runs two bridge-runtime pods from the image `make images` built.
//! They become Ready by the runtime's own probe, move messages both ways with exact counts,
//! come back under the same name after `kubectl delete pod` without losing a message, and
//! `kubectl logs` shows the runtime's log. A pod that cannot connect says why in the bridge's
//! status.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{json, Value};
use testbed::env::RealNode;
use testbed::kubectl::kubectl_ok;
use testbed::mqtt::{Publisher, Subscriber};
use testbed::operator::{setup, Setup, WAIT};
use testbed::{env, kafka, unique, wait_until_seen};

const BRIDGE: &str = "smart-locks";
const DEVICES: u32 = 10;

fn real_node() -> RealNode {
    env()
        .real_node
        .clone()
        .expect("the test bed runs no real node: `make testbed` (as root) starts one")
}

/// `examples/smart-locks.yaml` as pods of the real node reach the test bed's brokers: topics
/// and MQTT topics prefixed with `id` (the brokers are shared), two replicas (so shared
/// subscriptions), the image `make images` built, and the real node's selector and toleration.
fn smart_locks_on(node: &RealNode, id: &str) -> Value {
    let path = testbed::repo_root().join("examples/smart-locks.yaml");
    let text = std::fs::read_to_string(&path).expect("read examples/smart-locks.yaml");
    let mut bridge: Value = serde_yaml::from_str(&text).expect("the example is YAML");
    let spec = &mut bridge["spec"];
    spec["replicas"] = json!(2);
    spec["mqtt"]["url"] = json!(node.mqtt_url);
    spec["kafka"]["bootstrapServers"] = json!(node.kafka_bootstrap);
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
    up["kafka"]["topic"] = json!(format!("{id}-lock-state"));
    up["kafka"]["key"] = json!("${topic[2]}");
    let down = &mut spec["kafkaToMqtt"][0];
    down["kafka"]["topics"] = json!([format!("{id}-lock-command")]);
    down["mqtt"]["topic"] = json!(format!("{id}/devices/${{.key}}/command"));
    spec["image"] = json!(format!(
        "ghcr.io/mqtt-kafka-bridge/bridge-runtime:{}",
        env!("CARGO_PKG_VERSION")
    ));
    spec["imagePullPolicy"] = json!("IfNotPresent");
    spec["pod"] = json!({
        "nodeSelector": {"mqttkafka.io/node": "real"},
        "tolerations": [{"key": "mqttkafka.io/real-node", "operator": "Exists", "effect": "NoSchedule"}],
    });
    bridge
}

/// Waits until pod `name` runs on `node`, Ready, with a uid other than `not_uid`; returns it.
fn wait_pod_ready(s: &Setup, name: &str, node: &str, not_uid: &str) -> Value {
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
async fn publish_states(
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

async fn produce_commands(id: &str, first_seq: u32, count: u32) {
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
async fn wait_distinct_records(topic: &str, distinct: usize) -> usize {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let records = kafka::read_all(topic).await;
        let seen: BTreeSet<(String, String)> = records
            .iter()
            .map(|r| (r.key_str().to_owned(), r.value_str().to_owned()))
            .collect();
        if seen.len() >= distinct {
            return records.len();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{topic}: {} of {distinct} distinct records after {WAIT:?}",
            seen.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Waits until `subscriber` has `distinct` different commands; returns how many it has in all.
async fn wait_distinct_commands(subscriber: &Subscriber, distinct: usize) -> usize {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let received = subscriber.received();
        let seen: BTreeSet<(&str, &[u8])> = received
            .iter()
            .map(|m| (m.topic.as_str(), m.payload.as_slice()))
            .collect();
        if seen.len() >= distinct {
            return received.len();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {distinct} distinct commands after {WAIT:?}",
            seen.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_smart_lock_bridge_runs_on_the_real_node_and_survives_a_pod_deletion() {
    let node = real_node();
    let listed = kubectl_ok(&["get", "nodes", "-o", "wide"], None);
    let line = listed
        .lines()
        .find(|l| l.starts_with(&node.name))
        .unwrap_or_default();
    assert!(
        line.split_whitespace().nth(1) == Some("Ready") && line.contains("containerd://2."),
        "kubectl get nodes shows the real node Ready with its runtime:\n{listed}"
    );
    let s = setup("real-node");
    let id = unique("rn");
    let manifest = smart_locks_on(&node, &id).to_string();
    s.apply(&manifest);
    s.wait_ready(BRIDGE);
    let pods: Vec<Value> = ["smart-locks-0", "smart-locks-1"]
        .iter()
        .map(|pod| wait_pod_ready(&s, pod, &node.name, ""))
        .collect();
    let probe = &pods[0]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["path"];
    assert_eq!(probe, "/readyz", "readiness is the runtime's own probe");

    // Both ways, exact counts.
    let subscriber =
        Subscriber::connect(&unique("rn-sub"), &[&format!("{id}/devices/+/command")], 1).await;
    let publisher = Publisher::connect(&unique("rn-pub")).await;
    publish_states(&publisher, &id, 0, 500, Duration::ZERO).await;
    produce_commands(&id, 0, 500).await;
    let states = format!("{id}-lock-state");
    assert_eq!(
        wait_distinct_records(&states, 500).await,
        500,
        "MQTT → Kafka"
    );
    assert_eq!(
        wait_distinct_commands(&subscriber, 500).await,
        500,
        "Kafka → MQTT"
    );

    // One pod deleted while states keep coming: it comes back as itself, nothing is lost.
    let old_uid = pods[1]["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let stream = {
        let id = id.clone();
        tokio::spawn(async move {
            let publisher = Publisher::connect(&unique("rn-stream")).await;
            publish_states(&publisher, &id, 500, 1000, Duration::from_millis(10)).await;
            publisher.wait_acked(1000, WAIT).await;
        })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    kubectl_ok(&["delete", "pod", "smart-locks-1", "-n", &s.ns.0], None);
    let again = wait_pod_ready(&s, "smart-locks-1", &node.name, &old_uid);
    assert_eq!(again["metadata"]["name"], "smart-locks-1");
    produce_commands(&id, 500, 500).await;
    stream.await.expect("the publishing task");
    let records = wait_distinct_records(&states, 1500).await;
    let commands = wait_distinct_commands(&subscriber, 1000).await;
    eprintln!("after the deletion: {records} records for 1500 states, {commands} messages for 1000 commands");
    s.wait_ready(BRIDGE);

    let logs = kubectl_ok(&["logs", "smart-locks-0", "-n", &s.ns.0], None);
    assert!(
        logs.contains("bridge-runtime started") && logs.contains(BRIDGE),
        "kubectl logs shows the runtime's log:\n{logs}"
    );
}

#[test]
fn a_pod_that_cannot_connect_says_why_in_the_bridge_status() {
    let node = real_node();
    let s = setup("real-node-refused");
    let id = unique("rr");
    let ca = env().tls_dir.join("ca.crt");
    kubectl_ok(
        &[
            "create",
            "secret",
            "generic",
            "mqtt-ca",
            "-n",
            &s.ns.0,
            &format!("--from-file=ca.crt={}", ca.display()),
        ],
        None,
    );
    // TLS to the plaintext listener: the handshake fails inside the pod.
    let mut bridge = smart_locks_on(&node, &id);
    let url = node.mqtt_url.replace("mqtt://", "mqtts://");
    bridge["spec"]["replicas"] = json!(1);
    bridge["spec"]["mqtt"]["url"] = json!(url);
    bridge["spec"]["mqtt"]["tls"] = json!({"ca": {"name": "mqtt-ca", "key": "ca.crt"}});
    s.apply(&bridge.to_string());
    let ready = s.wait_condition(BRIDGE, "Ready", |c| {
        c["message"]
            .as_str()
            .is_some_and(|m| m.contains(&format!("cannot connect to {url}")))
    });
    let message = ready["message"].as_str().unwrap_or_default();
    eprintln!("Ready: {message}");
    assert_eq!(ready["status"], "False");
    assert!(
        message.starts_with("0/1 replicas ready") && message.contains("; smart-locks-0: "),
        "the pod and the runtime's reason: {message}"
    );
}
