use super::*;

fn spec(yaml: &str) -> MqttKafkaBridgeSpec {
    serde_yaml::from_str(yaml).expect("spec parses")
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn listed(partitions: Option<i32>, rf: i32, config: &[(&str, &str)]) -> DesiredTopic {
    DesiredTopic {
        name: "lock-state".into(),
        path: "spec.kafka.topics[0]".into(),
        partitions,
        replication_factor: rf,
        config: map(config),
        listed: true,
    }
}

fn observed(partitions: i32, rf: i32, config: &[(&str, &str)]) -> ObservedTopic {
    ObservedTopic {
        partitions,
        replication_factor: rf,
        config: map(config),
    }
}

#[test]
fn listed_topics_route_topics_and_the_dead_letter_topic_are_desired() {
    let s = spec(
        r#"
mqtt: {url: "mqtt://m:1883"}
kafka:
  bootstrapServers: k:9092
  deadLetterTopic: bridge-dlq
  topics:
    - {name: lock-state, partitions: 6, config: {retention.ms: "3600000"}}
mqttToKafka:
  - name: state
    mqtt: {topicFilters: ["devices/+/state"]}
    kafka: {topic: lock-state}
  - name: telemetry
    mqtt: {topicFilters: ["cars/+/gps"]}
    kafka: {topic: "telemetry-${topic[1]}"}
kafkaToMqtt:
  - name: command
    kafka: {topics: [lock-command, lock-state]}
    mqtt: {topic: "devices/${.key}/command"}
  - name: pattern
    kafka: {topicPattern: "^ops\\..*"}
    mqtt: {topic: "ops/${.key}"}
"#,
    );
    let topics = desired_topics(&s);
    let summary: Vec<(&str, &str, Option<i32>, bool)> = topics
        .iter()
        .map(|t| (t.name.as_str(), t.path.as_str(), t.partitions, t.listed))
        .collect();
    assert_eq!(
        summary,
        [
            ("bridge-dlq", "spec.kafka.deadLetterTopic", None, false),
            (
                "lock-command",
                "spec.kafkaToMqtt[0].kafka.topics[0]",
                None,
                false
            ),
            ("lock-state", "spec.kafka.topics[0]", Some(6), true),
        ],
        "templated topics and patterns are the user's; a listed topic keeps its settings"
    );
    assert_eq!(topics[2].config["retention.ms"], "3600000");
    assert_eq!(topics[0].replication_factor, -1);
}

#[test]
fn a_missing_topic_is_created_unless_it_needs_more_replicas_than_brokers() {
    let t = listed(Some(6), 1, &[]);
    assert_eq!(plan(&t, None, true, 1).steps, [Step::Create]);
    let t = listed(Some(6), 3, &[]);
    let p = plan(&t, None, true, 1);
    assert!(p.steps.is_empty());
    assert_eq!(
        p.problems,
        ["spec.kafka.topics[0].replicationFactor: topic lock-state cannot have 3 replicas: the cluster has 1 broker"]
    );
    assert_eq!(
        plan(&listed(None, -1, &[]), None, true, 1).steps,
        [Step::Create]
    );
}

#[test]
fn partitions_grow_and_never_shrink() {
    let t = listed(Some(12), -1, &[]);
    assert_eq!(
        plan(&t, Some(&observed(6, 1, &[])), true, 1).steps,
        [Step::Grow(12)]
    );
    let t = listed(Some(6), -1, &[]);
    let p = plan(&t, Some(&observed(12, 1, &[])), true, 1);
    assert!(p.steps.is_empty());
    assert_eq!(
        p.problems,
        ["spec.kafka.topics[0].partitions: topic lock-state has 12 partitions and Kafka cannot remove partitions; it keeps 12 (set partitions to 12 or more)"]
    );
    let same = plan(
        &listed(Some(6), -1, &[]),
        Some(&observed(6, 1, &[])),
        true,
        1,
    );
    assert_eq!(same, Plan::default(), "nothing to do");
}

#[test]
fn only_changed_config_keys_are_altered() {
    let t = listed(
        None,
        -1,
        &[("retention.ms", "1000"), ("cleanup.policy", "delete")],
    );
    let o = observed(
        3,
        1,
        &[("retention.ms", "604800000"), ("cleanup.policy", "delete")],
    );
    assert_eq!(
        plan(&t, Some(&o), true, 1).steps,
        [Step::Alter(
            [("retention.ms".to_owned(), "1000".to_owned())].into()
        )]
    );
    // A key Kafka does not know is sent too: Kafka's refusal names it.
    let t = listed(None, -1, &[("no.such.key", "1")]);
    assert_eq!(plan(&t, Some(&o), true, 1).steps.len(), 1);
}

#[test]
fn a_different_replication_factor_is_reported_not_changed() {
    let p = plan(&listed(None, 3, &[]), Some(&observed(3, 1, &[])), true, 3);
    assert!(p.steps.is_empty());
    assert!(p.problems[0]
        .starts_with("spec.kafka.topics[0].replicationFactor: topic lock-state has 1 replicas"));
}

#[test]
fn settings_are_left_alone_when_another_bridge_manages_them_or_the_topic_is_implied() {
    let t = listed(Some(12), 3, &[("retention.ms", "1")]);
    let o = observed(6, 1, &[]);
    assert_eq!(plan(&t, Some(&o), false, 3), Plan::default());
    let mut implied = t.clone();
    implied.listed = false;
    assert_eq!(plan(&implied, Some(&o), true, 3), Plan::default());
}
