//! The install path users take, all inside the cluster: `helm install` puts the operator's pods
//! on the real node (from the image `make images` built), they reach the API server through
//! the Service `kubernetes`, elect a leader and run `examples/smart-locks.yaml` as it is (placed
//! on the real node by `examples/testbed/real-node-patch.yaml`), whose pods find the brokers by
//! their Service names. Then: 1,000 messages each way with exact counts; the leader pod deleted
//! and another replica taking over within the lease time and reconciling a spec change; `helm upgrade` rolling the
//! operator; `helm uninstall` leaving the bridge running. Both namespaces enforce the
//! restricted Pod Security Standard. And what a user sees when the install goes wrong: an
//! image that cannot be pulled, a service account without the permissions it needs.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use testbed::helm::helm_ok;
use testbed::in_cluster::{ChartOperator, FULLNAME, RELEASE};
use testbed::kubectl::kubectl_ok;
use testbed::mqtt::{Publisher, Subscriber};
use testbed::real_node::*;
use testbed::{unique, wait_until_seen};

/// The chart's default leaderElection.leaseSeconds.
const LEASE_SECONDS: u64 = 15;
const WAIT: Duration = Duration::from_secs(120);

fn pod_names(op: &ChartOperator) -> BTreeSet<String> {
    op.pods()
        .iter()
        .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_owned))
        .collect()
}

/// Waits until the Lease is held by one of `candidates`; returns the holder.
fn wait_leader_among(op: &ChartOperator, candidates: &BTreeSet<String>) -> String {
    wait_until_seen("an operator pod to lead", WAIT, || match op.leader() {
        Some(h) if candidates.contains(&h) => Ok(h),
        other => Err(format!("holder {other:?}, pods {candidates:?}")),
    })
}

/// Sends `count` states (from `first`) and `count` commands; waits until Kafka holds
/// `first + count` distinct states and the subscriber `first + count` distinct commands, and
/// returns the totals (duplicates make them larger).
async fn both_ways(id: &str, subscriber: &Subscriber, first: u32, count: u32) -> (usize, usize) {
    let publisher = Publisher::connect(&unique("ic-pub")).await;
    let commands = async {
        for batch in 0..count / 100 {
            produce_commands(id, first + batch * 100, 100).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    tokio::join!(
        publish_states(&publisher, id, first, count, Duration::from_millis(2)),
        commands
    );
    let total = (first + count) as usize;
    let states = format!("{id}-lock-state");
    wait_distinct_records(&states, total).await;
    wait_distinct_commands(subscriber, total).await;
    // A late duplicate would come with a redelivery: give it time to show.
    tokio::time::sleep(Duration::from_secs(2)).await;
    (
        testbed::kafka::read_all(&states).await.len(),
        subscriber.received().len(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn helm_install_runs_the_operator_in_the_cluster_through_handover_upgrade_and_uninstall() {
    let node = real_node();
    let mut op = ChartOperator::install("in-cluster", &["--set", "replicaCount=2"]);

    // Two operator pods on the real node, Ready by their own /readyz.
    let pods = op.pods();
    assert_eq!(pods.len(), 2, "two replicas: {}", op.pod_summary());
    for pod in &pods {
        assert_eq!(pod["spec"]["nodeName"], json!(node.name), "{pod}");
        let probe = &pod["spec"]["containers"][0]["readinessProbe"]["httpGet"]["path"];
        assert_eq!(probe, "/readyz", "the operator's readiness is its own");
    }
    let first_pods = pod_names(&op);
    let leader = wait_leader_among(&op, &first_pods);
    eprintln!("operator pods {first_pods:?}, leader {leader}");

    // The example, placed on the real node: Ready with real pods, by the in-cluster operator.
    let id = unique("ic");
    op.apply(&smart_locks_on(&node, &id).to_string());
    op.wait_ready(BRIDGE);
    let bridge_pods: Vec<Value> = ["smart-locks-0", "smart-locks-1"]
        .iter()
        .map(|pod| wait_pod_ready(&op, pod, &node.name, ""))
        .collect();
    let subscriber =
        Subscriber::connect(&unique("ic-sub"), &[&format!("{id}/devices/+/command")], 1).await;
    let counts = both_ways(&id, &subscriber, 0, 1000).await;
    eprintln!(
        "1,000 each way: {} records for 1000 states, {} messages for 1000 commands",
        counts.0, counts.1
    );
    assert_eq!(counts, (1000, 1000), "every message once, each way");

    // The leader pod deleted: it releases the Lease, another replica leads and reconciles a
    // spec change. Which one is a race, as with client-go's leader election: the standby polls
    // the Lease every lease/7 s, and the Deployment's replacement pod tries as soon as it
    // starts (about a second after the deletion).
    let deleted_at = Instant::now();
    kubectl_ok(
        &["delete", "pod", &leader, "-n", &op.0, "--wait=false"],
        None,
    );
    let new_leader = wait_until_seen("another operator pod to lead", WAIT, || {
        let live = pod_names(&op);
        match op.leader() {
            Some(h) if h != leader && live.contains(&h) => Ok(h),
            other => Err(format!("holder {other:?}, pods {live:?}")),
        }
    });
    let handover = deleted_at.elapsed();
    let role = if first_pods.contains(&new_leader) {
        "the standby"
    } else {
        "the replacement pod"
    };
    let patch = json!({"spec": {"pod": {"annotations": {"e2e.mqttkafka.io/changed": id}}}});
    kubectl_ok(
        &[
            "patch",
            "mkb",
            BRIDGE,
            "-n",
            &op.0,
            "--type",
            "merge",
            "-p",
            &patch.to_string(),
        ],
        None,
    );
    wait_until_seen("the new leader to reconcile the change", WAIT, || {
        let sts = op
            .get(&format!("statefulset/{BRIDGE}"))
            .unwrap_or(Value::Null);
        let seen = &sts["spec"]["template"]["metadata"]["annotations"]["e2e.mqttkafka.io/changed"];
        if *seen == json!(id) {
            Ok(())
        } else {
            Err(format!("StatefulSet template annotation {seen}"))
        }
    });
    let reconciled = deleted_at.elapsed();
    let figure = format!(
        "leader {leader} deleted: {new_leader} ({role}) led after {handover:.1?}, reconciled the change after {reconciled:.1?}"
    );
    eprintln!("{figure}");
    // Kept for the run's record (a passing test's output is not shown).
    let _ = std::fs::write(
        testbed::process::test_log_dir().join("in-cluster-handover.txt"),
        format!("{figure}\n"),
    );
    assert!(
        handover < Duration::from_secs(LEASE_SECONDS),
        "a deleted leader releases the Lease: the standby leads within the lease time ({LEASE_SECONDS} s), not after {handover:?}"
    );
    op.wait_ready(BRIDGE);

    // helm upgrade to a changed value rolls the operator.
    op.wait_rolled_out();
    let before_upgrade = pod_names(&op);
    op.upgrade(&["--set", "replicaCount=2", "--set", "resyncSeconds=5"]);
    let after_upgrade = pod_names(&op);
    assert!(
        after_upgrade.is_disjoint(&before_upgrade),
        "the upgrade replaced every operator pod: {before_upgrade:?} -> {after_upgrade:?}"
    );
    for pod in op.pods() {
        let args = pod["spec"]["containers"][0]["args"].to_string();
        assert!(args.contains("--resync-seconds=5"), "the new value: {args}");
    }
    wait_leader_among(&op, &after_upgrade);
    op.wait_ready(BRIDGE);

    // helm uninstall: the operator goes, the bridge keeps running and moving messages.
    op.uninstall();
    assert!(
        op.get(&format!("deployment/{FULLNAME}")).is_none(),
        "the Deployment is gone"
    );
    wait_until_seen("the operator pods to go", WAIT, || {
        let left = pod_names(&op);
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("{left:?}"))
        }
    });
    assert!(
        op.get(&format!("mkb/{BRIDGE}")).is_some(),
        "the bridge stays"
    );
    for old in &bridge_pods {
        let name = old["metadata"]["name"].as_str().unwrap_or_default();
        wait_pod_ready(&op, name, &node.name, "");
    }
    let counts = both_ways(&id, &subscriber, 1000, 200).await;
    eprintln!(
        "after helm uninstall: {} records for 1200 states, {} messages for 1200 commands",
        counts.0, counts.1
    );
    assert_eq!(
        counts,
        (1200, 1200),
        "the bridge moves every message once without its operator"
    );
}

#[test]
fn an_operator_image_that_cannot_be_pulled_shows_in_the_pod_and_the_notes_say_how_to_check() {
    real_node();
    // A registry on a closed loopback port: the pull fails at once, and nothing leaves the machine.
    let op = ChartOperator::install_no_wait(
        "in-cluster-noimage",
        &[
            "--set",
            "image.repository=127.0.0.1:9/mqtt-kafka-bridge/no-such-operator",
            "--set",
            "image.tag=0.0.0",
        ],
    );
    let reason = wait_until_seen("the operator pod to show the failed pull", WAIT, || {
        let pods = op.pods();
        let reason = pods
            .first()
            .and_then(|p| {
                p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"].as_str()
            })
            .unwrap_or_default()
            .to_owned();
        if reason == "ErrImagePull" || reason == "ImagePullBackOff" {
            Ok(reason)
        } else {
            Err(op.pod_summary())
        }
    });
    eprintln!("operator pod: {reason}");
    let notes = helm_ok(&["status", RELEASE, "-n", &op.0]);
    assert!(
        notes.contains("ImagePullBackOff") && notes.contains("kubectl describe pod"),
        "the NOTES say how to check a failed pull:\n{notes}"
    );
    assert!(
        notes.contains("127.0.0.1:9/mqtt-kafka-bridge/no-such-operator:0.0.0"),
        "the NOTES name the image:\n{notes}"
    );
}

#[test]
fn an_operator_without_its_permissions_says_which_and_stays_unready_without_restarting() {
    real_node();
    let op = ChartOperator::install_no_wait("in-cluster-norbac", &["--set", "rbac.create=false"]);
    let missing = format!(
        "may not get mqttkafkabridges (mqttkafka.io) in namespace {}",
        op.0
    );
    let log = wait_until_seen("the operator to log the missing permission", WAIT, || {
        let logs = op.logs();
        if logs.contains(&missing) {
            Ok(logs)
        } else {
            Err(logs)
        }
    });
    assert!(
        log.contains(&format!(
            "get leases (coordination.k8s.io) in namespace {}",
            op.0
        )),
        "the Lease's permissions are named too:\n{log}"
    );
    // Long enough for a liveness failure or a crash to show as a restart.
    std::thread::sleep(Duration::from_secs(15));
    let pods = op.pods();
    assert_eq!(pods.len(), 1, "{}", op.pod_summary());
    let status = &pods[0]["status"]["containerStatuses"][0];
    assert_eq!(
        status["ready"], false,
        "not ready without its permissions: {status}"
    );
    assert_eq!(status["restartCount"], 0, "no crash loop: {status}");
    assert!(status["state"]["running"].is_object(), "{status}");

    // Granted, it becomes ready without a restart.
    op.upgrade(&["--set", "rbac.create=true"]);
    let pods = op.pods();
    assert_eq!(
        pods[0]["status"]["containerStatuses"][0]["restartCount"],
        0,
        "ready after the grant without a restart: {}",
        op.pod_summary()
    );
}
