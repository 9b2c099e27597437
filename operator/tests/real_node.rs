//! The real node: the smart-lock example bridge, rolled out by the operator (installed by its
//! chart, as a pod) onto the test bed's kubelet + containerd node, runs two bridge-runtime pods
//! from the image `make images` built.
//! They become Ready by the runtime's own probe, move messages both ways with exact counts,
//! come back under the same name after `kubectl delete pod` without losing a message, and
//! `kubectl logs` shows the runtime's log. A pod that cannot connect says why in the bridge's
//! status.

use std::time::Duration;

use serde_json::{json, Value};
use testbed::in_cluster::ChartOperator;
use testbed::kubectl::kubectl_ok;
use testbed::mqtt::{Publisher, Subscriber};
use testbed::operator::WAIT;
use testbed::real_node::*;
use testbed::{env, unique};

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
    let s = ChartOperator::install("real-node", &[]);
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

    // Both ways at once, a steady stream each way: every message once (duplicates 0).
    let subscriber =
        Subscriber::connect(&unique("rn-sub"), &[&format!("{id}/devices/+/command")], 1).await;
    let publisher = Publisher::connect(&unique("rn-pub")).await;
    let commands = async {
        for batch in 0..10 {
            produce_commands(&id, batch * 100, 100).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    };
    tokio::join!(
        publish_states(&publisher, &id, 0, 1000, Duration::from_millis(3)),
        commands
    );
    let states = format!("{id}-lock-state");
    wait_distinct_records(&states, 1000).await;
    wait_distinct_commands(&subscriber, 1000).await;
    // A late duplicate would come with a redelivery: give it time to show.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let records = testbed::kafka::read_all(&states).await.len();
    let received = subscriber.received().len();
    eprintln!("steady state, 2 replicas: {records} records for 1000 states, {received} messages for 1000 commands");
    assert_eq!(
        (records, received),
        (1000, 1000),
        "duplicates in steady state"
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
            publish_states(&publisher, &id, 1000, 1000, Duration::from_millis(10)).await;
            publisher.wait_acked(1000, WAIT).await;
        })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    kubectl_ok(&["delete", "pod", "smart-locks-1", "-n", &s.0], None);
    let again = wait_pod_ready(&s, "smart-locks-1", &node.name, &old_uid);
    assert_eq!(again["metadata"]["name"], "smart-locks-1");
    produce_commands(&id, 1000, 500).await;
    stream.await.expect("the publishing task");
    let records = wait_distinct_records(&states, 2000).await;
    let commands = wait_distinct_commands(&subscriber, 1500).await;
    eprintln!("after the deletion: {records} records for 2000 states, {commands} messages for 1500 commands");
    s.wait_ready(BRIDGE);

    let logs = kubectl_ok(&["logs", "smart-locks-0", "-n", &s.0], None);
    assert!(
        logs.contains("bridge-runtime started") && logs.contains(BRIDGE),
        "kubectl logs shows the runtime's log:\n{logs}"
    );
}

#[test]
fn a_pod_that_cannot_connect_says_why_in_the_bridge_status() {
    let node = real_node();
    let s = ChartOperator::install("real-node-refused", &[]);
    let id = unique("rr");
    let ca = env().tls_dir.join("ca.crt");
    kubectl_ok(
        &[
            "create",
            "secret",
            "generic",
            "mqtt-ca",
            "-n",
            &s.0,
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
