//! The operator killed (-9) in the middle of a rollout: a new operator picks the bridge up
//! from what is in the cluster and finishes it — one StatefulSet, every pod on the new
//! revision, the status on the new generation.

use testbed::operator::{bridge_head, condition_of, setup, Operator, RESYNC_SECONDS, WAIT};
use testbed::wait_until;

fn bridge(topic: &str) -> String {
    format!(
        r#"{}  mqttToKafka:
    - name: state
      mqtt:
        topicFilters: ["fleet/devices/+/state"]
      kafka:
        topic: {topic}
"#,
        bridge_head("fleet", 3, "")
    )
}

#[test]
fn a_rollout_interrupted_by_kill_9_is_finished_by_the_next_operator() {
    let mut s = setup("operator-kill");
    s.apply(&bridge("fleet-state"));
    s.wait_ready("fleet");
    let hash_before = s.config_hash("fleet");

    s.apply(&bridge("fleet-state-v2"));
    // Kill it as soon as it has started the rollout: the StatefulSet has the new template.
    wait_until("the rollout to start", WAIT, || {
        (s.config_hash("fleet") != hash_before).then_some(())
    });
    s.operator.process.kill9();
    let at_kill = s.bridge("fleet");
    let sts = s.get("statefulset/fleet").unwrap_or_default();
    eprintln!(
        "at the kill: status.observedGeneration {}, Ready {}, StatefulSet updatedReplicas {} of {}",
        at_kill["status"]["observedGeneration"],
        condition_of(&at_kill, "Ready"),
        sts["status"]["updatedReplicas"],
        sts["status"]["replicas"]
    );
    s.operator = Operator::start(&s.ns.0, RESYNC_SECONDS);

    let bridge = s.wait_ready("fleet");
    assert_eq!(bridge["metadata"]["generation"], 2, "{bridge}");
    assert_eq!(bridge["status"]["readyReplicas"], 3, "{bridge}");
    let sts = s.get("statefulset/fleet").expect("the StatefulSet");
    let status = &sts["status"];
    assert_eq!(
        status["updateRevision"], status["currentRevision"],
        "every pod on the new revision: {status}"
    );
    assert_eq!(status["updatedReplicas"], 3, "{status}");
    let all = s.get("statefulsets").expect("StatefulSets");
    assert_eq!(
        all["items"].as_array().map(Vec::len),
        Some(1),
        "one StatefulSet, no leftovers"
    );
}
