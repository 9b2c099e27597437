//! Kafka topic management end to end: the operator (one process per test namespace) against
//! the test bed's API server and Kafka, checked with an independent Kafka client.

use serde_json::Value;
use testbed::kafka::{create_topic_with_config, describe_topic, topic_config};
use testbed::kubectl::{kubectl_err, kubectl_ok};
use testbed::operator::{bridge_writing_to, setup, Setup, WAIT};
use testbed::{unique, wait_until};

fn topic_status(s: &Setup, bridge: &str, topic: &str) -> Value {
    s.bridge(bridge)["status"]["topics"]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["name"] == topic).cloned())
        .unwrap_or(Value::Null)
}

/// Waits until TopicsReady has `status` for the current generation; returns the condition.
fn wait_topics_ready(s: &Setup, bridge: &str, status: &str) -> Value {
    wait_until(&format!("{bridge}: TopicsReady={status}"), WAIT, || {
        let generation = s.bridge(bridge)["metadata"]["generation"].clone();
        let c = s.condition(bridge, "TopicsReady");
        (c["status"] == status && c["observedGeneration"] == generation).then_some(c)
    })
}

fn kafka_partitions(topic: &str) -> Option<usize> {
    describe_topic(topic).map(|(partitions, _)| partitions)
}

#[tokio::test(flavor = "multi_thread")]
async fn topics_are_created_grown_configured_and_never_shrunk() {
    let s = setup("topics");
    let id = unique("t");
    let (orders, audit, route) = (
        format!("{id}-orders"),
        format!("{id}-audit"),
        format!("{id}-state"),
    );
    // A topic that exists before the bridge, with a setting of its own: incremental alter
    // must keep it.
    create_topic_with_config(&audit, 6, &[("max.message.bytes", "2000000")]).await;
    let topics = |orders_partitions: i32, retention: &str| {
        format!(
            r#"    topics:
      - name: {orders}
        partitions: {orders_partitions}
        replicationFactor: 1
        config: {{retention.ms: "{retention}"}}
      - name: {audit}
        partitions: 6
        config: {{retention.ms: "{retention}"}}"#
        )
    };
    s.apply(&bridge_writing_to("locks", &route, &topics(6, "3600000")));
    let ready = wait_topics_ready(&s, "locks", "True");
    assert_eq!(ready["reason"], "AsExpected");
    s.wait_ready("locks");

    assert_eq!(describe_topic(&orders), Some((6, 1)));
    assert_eq!(kafka_partitions(&audit), Some(6));
    assert!(
        kafka_partitions(&route).is_some(),
        "the route's topic is created too"
    );
    for t in [&orders, &audit] {
        assert_eq!(
            topic_config(t, "retention.ms").await.as_deref(),
            Some("3600000")
        );
    }
    assert_eq!(
        topic_config(&audit, "max.message.bytes").await.as_deref(),
        Some("2000000"),
        "a key the spec does not set is kept"
    );
    let orders_status = topic_status(&s, "locks", &orders);
    assert_eq!(orders_status["state"], "Ready");
    assert_eq!(orders_status["partitions"], 6);
    assert_eq!(orders_status["created"], true);
    assert_eq!(
        topic_status(&s, "locks", &audit)["created"],
        Value::Null,
        "the bridge did not create the topic that existed"
    );
    assert_eq!(topic_status(&s, "locks", &route)["state"], "Ready");
    let cluster_id = s.bridge("locks")["status"]["kafkaClusterId"].clone();
    // A Kafka cluster id: a UUID as 22 characters of URL-safe base64.
    assert!(
        cluster_id.as_str().is_some_and(|c| c.len() == 22
            && c.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')),
        "{cluster_id}"
    );
    let events = wait_until("the Created event", WAIT, || {
        let e = s.events();
        e.contains(&format!("Created Kafka topic {orders}"))
            .then_some(e)
    });
    assert!(events.contains("TopicChanged"), "{events}");
    let operations = |operation: &str| {
        s.operator.metrics().value(
            "mkb_operator_kafka_topic_operations_total",
            &[("operation", operation), ("result", "ok")],
        )
    };
    // orders and the route's topic created; audit's retention set.
    assert_eq!(operations("create"), Some(2.0));
    assert_eq!(operations("alter"), Some(1.0));

    // Grow 6 -> 12 and change the retention.
    s.apply(&bridge_writing_to("locks", &route, &topics(12, "7200000")));
    wait_until("12 partitions in Kafka", WAIT, || {
        (kafka_partitions(&orders) == Some(12)).then_some(())
    });
    wait_topics_ready(&s, "locks", "True");
    assert_eq!(operations("grow"), Some(1.0));
    assert_eq!(topic_status(&s, "locks", &orders)["partitions"], 12);
    assert_eq!(
        topic_config(&orders, "retention.ms").await.as_deref(),
        Some("7200000")
    );
    assert_eq!(
        topic_config(&audit, "max.message.bytes").await.as_deref(),
        Some("2000000")
    );

    // 12 -> 6: refused, reported, Kafka keeps 12.
    s.apply(&bridge_writing_to("locks", &route, &topics(6, "7200000")));
    let failed = wait_topics_ready(&s, "locks", "False");
    assert_eq!(failed["reason"], "TopicError");
    let message = failed["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!(
            "spec.kafka.topics[0].partitions: topic {orders} has 12 partitions and Kafka cannot remove partitions"
        )),
        "{message}"
    );
    let degraded = s.condition("locks", "Degraded");
    assert_eq!(degraded["status"], "True");
    assert_eq!(s.condition("locks", "Ready")["status"], "False");
    assert_eq!(kafka_partitions(&orders), Some(12));
    assert_eq!(topic_status(&s, "locks", &orders)["state"], "Failed");
    wait_until("a TopicError warning", WAIT, || {
        s.events().contains("TopicError").then_some(())
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn kafka_refusals_and_bad_topics_are_reported_with_their_field() {
    let s = setup("topics-bad");
    let id = unique("t");
    let (unknown_key, too_many_replicas) = (format!("{id}-unknown"), format!("{id}-rf"));
    s.apply(&bridge_writing_to(
        "refused",
        &format!("{id}-state"),
        &format!(
            r#"    topics:
      - name: {unknown_key}
        config: {{no.such.setting: "1"}}
      - name: {too_many_replicas}
        replicationFactor: 3"#
        ),
    ));
    let failed = wait_topics_ready(&s, "refused", "False");
    let message = failed["message"].as_str().unwrap_or_default().to_owned();
    assert!(
        message.contains(&format!(
            "spec.kafka.topics[0].config: Kafka refused to create topic {unknown_key}: InvalidConfig: "
        )) && message.contains("no.such.setting"),
        "Kafka's own message names the key: {message}"
    );
    assert!(
        message.contains(&format!(
            "spec.kafka.topics[1].replicationFactor: topic {too_many_replicas} cannot have 3 replicas: the cluster has 1 broker"
        )),
        "{message}"
    );
    assert_eq!(describe_topic(&unknown_key), None);
    assert_eq!(describe_topic(&too_many_replicas), None);
    // The rest of the bridge is rolled out all the same.
    wait_until("the StatefulSet", WAIT, || s.get("statefulset/refused"));
    wait_until("a Warning event", WAIT, || {
        s.events().contains("TopicError").then_some(())
    });

    // An invalid name is the spec's problem: InvalidSpec with the path, nothing in Kafka.
    s.apply(&bridge_writing_to(
        "badname",
        &format!("{id}-state2"),
        "    topics:\n      - name: \"bad/topic\"",
    ));
    let invalid = s.wait_condition("badname", "Ready", |c| c["reason"] == "InvalidSpec");
    assert!(
        invalid["message"]
            .as_str()
            .unwrap_or_default()
            .contains("spec.kafka.topics[0].name: \"bad/topic\" is not a valid Kafka topic name"),
        "{invalid}"
    );
    // Partitions below 1 never get past the API server.
    let refused = kubectl_err(
        &["apply", "-n", &s.ns.0, "-f", "-"],
        Some(&bridge_writing_to(
            "zero",
            "zero-state",
            "    topics:\n      - {name: zero-topic, partitions: 0}",
        )),
    );
    assert!(
        refused.contains("spec.kafka.topics[0].partitions"),
        "{refused}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_policy_removes_created_topics_but_keeps_shared_and_retained_ones() {
    let s = setup("topics-del");
    let id = unique("t");
    let (own, shared, retained) = (
        format!("{id}-own"),
        format!("{id}-shared"),
        format!("{id}-kept"),
    );
    s.apply(&bridge_writing_to(
        "first",
        &own,
        &format!(
            "    topicDeletionPolicy: Delete\n    topics:\n      - {{name: {shared}, partitions: 2}}"
        ),
    ));
    wait_topics_ready(&s, "first", "True");
    let finalizers = s.bridge("first")["metadata"]["finalizers"].clone();
    assert_eq!(finalizers, serde_json::json!(["mqttkafka.io/topics"]));
    // A second bridge lists the shared topic with other settings: told, not applied.
    s.apply(&bridge_writing_to(
        "second",
        &retained,
        &format!("    topics:\n      - {{name: {shared}, partitions: 4}}"),
    ));
    wait_topics_ready(&s, "second", "True");
    let note = topic_status(&s, "second", &shared)["message"].clone();
    let note = note.as_str().unwrap_or_default();
    assert!(
        note.starts_with(&format!(
            "shared with bridge {ns}/first; bridge {ns}/first lists it first and manages its settings",
            ns = s.ns.0
        )),
        "{note}"
    );
    assert_eq!(kafka_partitions(&shared), Some(2));
    assert!(s.bridge("second")["metadata"]["finalizers"].is_null());

    kubectl_ok(
        &[
            "delete",
            "-n",
            &s.ns.0,
            "mkb/first",
            "--wait=true",
            "--timeout=90s",
        ],
        None,
    );
    assert_eq!(
        kafka_partitions(&own),
        None,
        "the bridge's own topic is deleted"
    );
    assert!(
        kafka_partitions(&shared).is_some(),
        "a topic another bridge uses survives"
    );
    // With the first bridge gone, the second one manages the shared topic's settings.
    wait_until("the second bridge to grow the shared topic", WAIT, || {
        (kafka_partitions(&shared) == Some(4)).then_some(())
    });
    let events = s.events();
    assert!(
        events.contains(&format!("Deleted Kafka topics {own}")),
        "{events}"
    );
    assert!(
        events.contains(&format!("Kept Kafka topics {shared}")),
        "{events}"
    );

    kubectl_ok(
        &[
            "delete",
            "-n",
            &s.ns.0,
            "mkb/second",
            "--wait=true",
            "--timeout=90s",
        ],
        None,
    );
    assert!(
        kafka_partitions(&retained).is_some(),
        "Retain keeps the topic"
    );
    assert!(kafka_partitions(&shared).is_some());
}
