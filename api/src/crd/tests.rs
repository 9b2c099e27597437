use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

use super::*;

const COMMITTED_CRD: &str = include_str!("../../../crds/mqttkafkabridges.mqttkafka.io.yaml");

fn example(yaml: &str) -> MqttKafkaBridge {
    serde_yaml::from_str(yaml).expect("example parses")
}

fn smart_locks() -> MqttKafkaBridge {
    example(include_str!("../../../examples/smart-locks.yaml"))
}

fn errors(bridge: &MqttKafkaBridge) -> Vec<String> {
    let name = bridge.metadata.name.as_deref().unwrap_or_default();
    match validate_spec(name, &bridge.spec) {
        Ok(()) => Vec::new(),
        Err(e) => e.iter().map(ToString::to_string).collect(),
    }
}

fn assert_error(bridge: &MqttKafkaBridge, expected: &str) {
    let found = errors(bridge);
    assert!(
        found.iter().any(|e| e.starts_with(expected)),
        "expected {expected:?} in {found:#?}"
    );
}

#[test]
fn committed_crd_is_up_to_date() {
    let generated = crd_yaml().expect("renders");
    assert!(
        generated == COMMITTED_CRD,
        "{CRD_PATH} is stale: run `make crds` and commit the result"
    );
}

#[test]
fn the_helm_chart_carries_the_same_crd() {
    let chart = include_str!(
        "../../../charts/mqtt-kafka-bridge-operator/crds/mqttkafkabridges.mqttkafka.io.yaml"
    );
    assert!(
        chart == COMMITTED_CRD,
        "the chart's copy of {CRD_PATH} differs: run `make crds` and commit the result"
    );
}

#[test]
fn committed_crd_has_scale_printer_columns_and_cel_rules() {
    let crd: CustomResourceDefinition = serde_yaml::from_str(COMMITTED_CRD).expect("a CRD");
    assert_eq!(crd.spec.group, "mqttkafka.io");
    assert_eq!(
        crd.spec.names.short_names.as_deref(),
        Some(&["mkb".to_owned()][..])
    );
    let version = &crd.spec.versions[0];
    assert_eq!(version.name, "v1alpha1");
    let subresources = version.subresources.as_ref().expect("subresources");
    assert!(subresources.status.is_some());
    let scale = subresources.scale.as_ref().expect("scale subresource");
    assert_eq!(scale.spec_replicas_path, ".spec.replicas");
    assert_eq!(scale.status_replicas_path, ".status.replicas");
    assert_eq!(
        scale.label_selector_path.as_deref(),
        Some(".status.labelSelector")
    );
    let columns: Vec<&str> = version
        .additional_printer_columns
        .iter()
        .flatten()
        .filter(|c| c.priority.unwrap_or(0) == 0)
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(columns, ["Ready", "Replicas", "Routes", "Age"]);
    let schema = version
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .expect("schema");
    let spec = &schema.properties.as_ref().expect("properties")["spec"];
    let rules: Vec<&str> = spec
        .x_kubernetes_validations
        .iter()
        .flatten()
        .map(|r| r.rule.as_str())
        .collect();
    assert!(
        rules.iter().any(|r| r.contains("r.mqtt.shared")),
        "{rules:?}"
    );
    assert!(
        rules.iter().any(|r| r.contains("a.name != b.name")),
        "{rules:?}"
    );
    let routes = &spec.properties.as_ref().expect("spec properties")["mqttToKafka"];
    assert_eq!(routes.x_kubernetes_list_type.as_deref(), Some("map"));
    assert_eq!(
        routes.x_kubernetes_list_map_keys.as_deref(),
        Some(&["name".to_owned()][..])
    );
}

#[test]
fn every_schema_property_has_a_description() {
    fn walk(path: &str, schema: &serde_json::Value, missing: &mut Vec<String>) {
        if let Some(props) = schema.get("properties").and_then(|p| p.as_object()) {
            for (name, prop) in props {
                let here = format!("{path}.{name}");
                if prop
                    .get("description")
                    .and_then(|d| d.as_str())
                    .is_none_or(str::is_empty)
                {
                    missing.push(here.clone());
                }
                walk(&here, prop, missing);
            }
        }
        if let Some(items) = schema.get("items") {
            walk(&format!("{path}[]"), items, missing);
        }
    }
    let crd: serde_json::Value = serde_yaml::from_str(COMMITTED_CRD).expect("yaml");
    let root = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    let mut missing = Vec::new();
    walk("", &root["properties"]["spec"], &mut missing);
    walk("", &root["properties"]["status"], &mut missing);
    assert!(
        missing.is_empty(),
        "fields without a description: {missing:#?}"
    );
}

#[test]
fn committed_crd_has_no_values_the_api_server_would_rewrite() {
    for needle in [": null", "nullable", "deprecated: false", "properties: {}"] {
        assert!(
            !COMMITTED_CRD.contains(needle),
            "the CRD contains {needle:?}"
        );
    }
}

#[test]
fn examples_are_valid() {
    assert_eq!(errors(&smart_locks()), Vec::<String>::new());
    assert_eq!(
        errors(&example(include_str!(
            "../../../examples/connected-cars.yaml"
        ))),
        Vec::<String>::new()
    );
}

#[test]
fn defaults_are_filled_in() {
    let bridge = smart_locks();
    assert!(bridge.spec.mqtt_to_kafka.iter().all(|r| r.mqtt.shared));
    assert_eq!(bridge.spec.delivery.max_in_flight, 5_000);
    assert_eq!(bridge.spec.metrics.port, 9090);
    assert_eq!(
        bridge.spec.kafka.topic_deletion_policy,
        TopicDeletionPolicy::Retain
    );
}

#[test]
fn replicas_above_one_need_shared_subscriptions() {
    let mut bridge = smart_locks();
    bridge.spec.replicas = 2;
    bridge.spec.mqtt_to_kafka[0].mqtt.shared = false;
    assert_error(
        &bridge,
        "spec.mqttToKafka[0].mqtt.shared: must be true when replicas is 2",
    );
    bridge.spec.replicas = 1;
    assert_eq!(errors(&bridge), Vec::<String>::new());
}

#[test]
fn route_errors_carry_spec_paths() {
    let mut bridge = smart_locks();
    bridge.spec.mqtt_to_kafka[0].kafka.key = Some("${topc}".into());
    bridge.spec.mqtt_to_kafka[0].mqtt.topic_filters = vec!["devices/#/state".into()];
    assert_error(
        &bridge,
        "spec.mqttToKafka[0].kafka.key: unknown placeholder ${topc} at column 1",
    );
    assert_error(
        &bridge,
        "spec.mqttToKafka[0].mqtt.topicFilters[0]: \"devices/#/state\": '#' must be the last level",
    );
}

#[test]
fn duplicate_route_names_are_rejected() {
    let mut bridge = smart_locks();
    bridge.spec.kafka_to_mqtt[0].name = "lock-state".into();
    assert_error(
        &bridge,
        "spec.kafkaToMqtt[0].name: duplicate route name \"lock-state\"",
    );
}

#[test]
fn secret_references_are_checked() {
    let mut bridge = smart_locks();
    bridge.spec.mqtt.auth = Some(crate::connection::MqttAuth {
        username: "bridge".into(),
        password: SecretKeyRef {
            name: "Not_A_Name".into(),
            key: "pass word".into(),
        },
    });
    assert_error(
        &bridge,
        "spec.mqtt.auth.password.name: \"Not_A_Name\" is not a valid Secret name",
    );
    assert_error(
        &bridge,
        "spec.mqtt.auth.password.key: \"pass word\" is not a valid Secret key",
    );
}

#[test]
fn long_names_and_topic_lists_are_checked() {
    let mut bridge = smart_locks();
    bridge.metadata.name = Some("b".repeat(53));
    bridge.spec.kafka.topics = vec![
        KafkaTopicSpec {
            name: "lock-state".into(),
            partitions: Some(0),
            replication_factor: 0,
            config: [("bad key".to_owned(), "1".to_owned())].into(),
        },
        KafkaTopicSpec {
            name: "lock-state".into(),
            partitions: Some(3),
            replication_factor: -1,
            config: Default::default(),
        },
        KafkaTopicSpec {
            name: "..".into(),
            partitions: None,
            replication_factor: -1,
            config: Default::default(),
        },
    ];
    assert_error(&bridge, "metadata.name: is 53 characters long");
    assert_error(
        &bridge,
        "spec.kafka.topics[0].partitions: 0 is out of range 1-100000",
    );
    assert_error(&bridge, "spec.kafka.topics[0].replicationFactor");
    assert_error(
        &bridge,
        "spec.kafka.topics[0].config[\"bad key\"]: is not a Kafka configuration name",
    );
    assert_error(
        &bridge,
        "spec.kafka.topics[1].name: topic \"lock-state\" is listed twice",
    );
    assert_error(
        &bridge,
        "spec.kafka.topics[2].name: \"..\" is not a valid Kafka topic name",
    );
}

#[test]
fn managed_topics_and_the_delete_policy_are_accepted() {
    let mut bridge = smart_locks();
    bridge.spec.kafka.topic_deletion_policy = TopicDeletionPolicy::Delete;
    bridge.spec.kafka.topics = vec![KafkaTopicSpec {
        name: "lock-state".into(),
        partitions: Some(6),
        replication_factor: 1,
        config: [("retention.ms".to_owned(), "3600000".to_owned())].into(),
    }];
    let name = bridge.metadata.name.clone().unwrap_or_default();
    assert!(validate_spec(&name, &bridge.spec).is_ok());
}
