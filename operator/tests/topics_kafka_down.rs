//! Topic management while Kafka is stopped: the rest of the reconciliation goes on, the
//! topics appear when Kafka returns without any edit of the bridge, and a bridge deleted in
//! the meantime is let go after a bounded number of attempts. In a file of its own: stopping
//! Kafka would disturb tests running beside it.

use testbed::kafka::describe_topic;
use testbed::kubectl::kubectl_ok;
use testbed::operator::{bridge_writing_to, setup_with, WAIT};
use testbed::{env, unique, wait_until};

fn bridge_yaml(name: &str, topic: &str, policy: &str) -> String {
    let kafka = format!(
        "    topicDeletionPolicy: {policy}\n    topics:\n      - {{name: {topic}, partitions: 3}}"
    );
    bridge_writing_to(name, topic, &kafka)
}

/// Starts Kafka again when dropped, so a failing test leaves the test bed whole.
struct KafkaStopped;

impl KafkaStopped {
    fn stop() -> Self {
        env().service("stop", "kafka");
        Self
    }
}

impl Drop for KafkaStopped {
    fn drop(&mut self) {
        env().service("start", "kafka");
    }
}

#[test]
fn kafka_down_delays_topics_but_not_the_rollout_and_they_appear_when_it_returns() {
    let s = setup_with("topics-down", &["--topic-deletion-attempts", "2"]);
    let id = unique("t");
    let (leaving_topic, waiting_topic) = (format!("{id}-leaving"), format!("{id}-waiting"));
    s.apply(&bridge_yaml("leaving", &leaving_topic, "Delete"));
    s.wait_condition("leaving", "TopicsReady", |c| c["status"] == "True");
    assert_eq!(describe_topic(&leaving_topic).map(|t| t.0), Some(3));

    let kafka = KafkaStopped::stop();
    s.apply(&bridge_yaml("waiting", &waiting_topic, "Retain"));
    let unavailable = s.wait_condition("waiting", "TopicsReady", |c| {
        c["reason"] == "KafkaUnavailable"
    });
    assert_eq!(unavailable["status"], "False");
    let message = unavailable["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with(&format!(
            "Kafka at {} cannot be reached",
            env().kafka_bootstrap
        )) && message.contains("Connection refused"),
        "{message}"
    );
    wait_until("the StatefulSet, Kafka or not", WAIT, || {
        s.get("statefulset/waiting")
    });
    assert_eq!(
        s.bridge("waiting")["status"]["topics"][0]["state"],
        "Pending"
    );

    // Deleted while Kafka is down: let go after 2 attempts, with the topic named.
    kubectl_ok(
        &[
            "delete",
            "-n",
            &s.ns.0,
            "mkb/leaving",
            "--wait=true",
            "--timeout=90s",
        ],
        None,
    );
    let events = s.events();
    assert!(
        events.contains("TopicsLeftBehind")
            && events.contains(&format!(
                "Gave up deleting Kafka topics {leaving_topic} after 2 attempts"
            )),
        "{events}"
    );

    drop(kafka);
    s.wait_condition("waiting", "TopicsReady", |c| c["status"] == "True");
    // Just after a restart the new topic's leader may not be known to a fresh client yet.
    wait_until("the topic with 3 partitions in Kafka", WAIT, || {
        (describe_topic(&waiting_topic).map(|t| t.0) == Some(3)).then_some(())
    });
    assert_eq!(
        s.bridge("waiting")["metadata"]["generation"],
        1,
        "no edit of the bridge"
    );
    assert!(
        describe_topic(&leaving_topic).is_some(),
        "the topic left behind is still there, as the Event says"
    );
}
