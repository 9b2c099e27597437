use super::*;
use crate::compiled::{CompiledValue, KafkaSubscription};
use crate::connection::OffsetReset;

const VALID: &str = r#"
bridgeName: smart-locks
mqtt:
  url: mqtt://127.0.0.1:1883
kafka:
  bootstrapServers: 127.0.0.1:9092
  deadLetterTopic: smart-locks.dead-letter
mqttToKafka:
  - name: lock-state
    mqtt:
      topicFilters: ["devices/+/state"]
    kafka:
      topic: lock-state
      key: ${topic[1]}
kafkaToMqtt:
  - name: lock-command
    kafka:
      topics: [lock-command]
    mqtt:
      topic: devices/${.key}/command
"#;

fn replaced(from: &str, to: &str) -> String {
    assert!(VALID.contains(from), "the base config has no {from:?}");
    VALID.replacen(from, to, 1)
}

fn errors_of(yaml: &str) -> Vec<FieldErrorView> {
    match load_runtime_config(yaml) {
        Ok(_) => panic!("config should be rejected:\n{yaml}"),
        Err(errors) => errors
            .iter()
            .map(|e| FieldErrorView(e.path.clone(), e.message.clone()))
            .collect(),
    }
}

#[derive(Debug)]
struct FieldErrorView(String, String);

/// Asserts the config is rejected with an error at `path` whose message contains `needle`.
fn assert_rejected(yaml: &str, path: &str, needle: &str) {
    let errors = errors_of(yaml);
    assert!(
        errors
            .iter()
            .any(|FieldErrorView(p, m)| p == path && m.contains(needle)),
        "expected an error at {path:?} containing {needle:?}, got {errors:#?}"
    );
}

#[test]
fn the_smart_lock_config_is_valid_and_compiles() {
    let valid = load_runtime_config(VALID).expect("valid");
    assert_eq!(valid.client_id_prefix, "smart-locks");
    assert_eq!(valid.mqtt_endpoint.port, 1883);
    let up = &valid.mqtt_to_kafka[0];
    assert_eq!(
        up.subscriptions[0].to_string(),
        "$share/smart-locks.lock-state/devices/+/state"
    );
    assert_eq!(up.filters[0].to_string(), "devices/+/state");
    assert_eq!(up.qos, 1);
    assert!(matches!(up.value, CompiledValue::Raw));
    let down = &valid.kafka_to_mqtt[0];
    assert_eq!(down.group_id, "smart-locks.lock-command");
    assert_eq!(
        down.subscription,
        KafkaSubscription::Topics(vec!["lock-command".into()])
    );
    assert_eq!(down.payload.source(), "${.value}");
    assert_eq!(down.auto_offset_reset, OffsetReset::Latest);
    assert_eq!(valid.config.delivery.max_in_flight, 5_000);
    assert_eq!(valid.config.http.listen, "0.0.0.0:9090");
}

#[test]
fn top_level_fields_match_the_struct() {
    let schema = schemars::schema_for!(RuntimeConfig);
    let props = schema
        .get("properties")
        .and_then(|p| p.as_object())
        .expect("properties");
    let mut from_schema: Vec<&str> = props.keys().map(String::as_str).collect();
    let mut listed = TOP_LEVEL_FIELDS.to_vec();
    from_schema.sort_unstable();
    listed.sort_unstable();
    assert_eq!(from_schema, listed);
}

#[test]
fn rejects_missing_bridge_name() {
    assert_rejected(
        &replaced("bridgeName: smart-locks\n", ""),
        "bridgeName",
        "missing required field",
    );
}

#[test]
fn rejects_unknown_top_level_field() {
    assert_rejected(&format!("{VALID}mqtts: {{}}\n"), "mqtts", "unknown field");
}

#[test]
fn rejects_bad_mqtt_url() {
    assert_rejected(
        &replaced("mqtt://127.0.0.1:1883", "tcp://127.0.0.1:1883"),
        "mqtt.url",
        "must start with mqtt:// or mqtts://",
    );
}

#[test]
fn rejects_unknown_protocol_version() {
    let yaml = replaced(
        "  url: mqtt://127.0.0.1:1883\n",
        "  url: mqtt://127.0.0.1:1883\n  protocolVersion: \"4\"\n",
    );
    assert_rejected(&yaml, "mqtt.protocolVersion", "unknown variant");
}

#[test]
fn rejects_qos_3() {
    let yaml = replaced(
        "      topicFilters: [\"devices/+/state\"]\n",
        "      topicFilters: [\"devices/+/state\"]\n      qos: 3\n",
    );
    assert_rejected(&yaml, "mqttToKafka[0].mqtt.qos", "not a QoS level");
}

#[test]
fn rejects_multi_level_wildcard_not_last() {
    assert_rejected(
        &replaced("devices/+/state", "devices/#/state"),
        "mqttToKafka[0].mqtt.topicFilters[0]",
        "'#' must be the last level",
    );
}

#[test]
fn rejects_unknown_placeholder_with_its_column() {
    assert_rejected(
        &replaced("key: ${topic[1]}", "key: id-${topc}"),
        "mqttToKafka[0].kafka.key",
        "unknown placeholder ${topc} at column 4",
    );
}

#[test]
fn rejects_unknown_field_inside_a_route() {
    assert_rejected(
        &replaced("key: ${topic[1]}", "keyy: ${topic[1]}"),
        "mqttToKafka[0].kafka.keyy",
        "unknown field `keyy`",
    );
}

#[test]
fn rejects_duplicate_route_names_across_directions() {
    assert_rejected(
        &replaced("- name: lock-command", "- name: lock-state"),
        "kafkaToMqtt[0].name",
        "duplicate route name \"lock-state\" (also used by mqttToKafka[0])",
    );
}

#[test]
fn rejects_route_name_with_capitals() {
    assert_rejected(
        &replaced("- name: lock-state", "- name: LockState"),
        "mqttToKafka[0].name",
        "lowercase",
    );
}

#[test]
fn rejects_topics_and_pattern_together() {
    let yaml = replaced(
        "      topics: [lock-command]\n",
        "      topics: [lock-command]\n      topicPattern: \"^cmd.*\"\n",
    );
    assert_rejected(&yaml, "kafkaToMqtt[0].kafka", "not both");
}

#[test]
fn rejects_invalid_topic_pattern() {
    assert_rejected(
        &replaced(
            "      topics: [lock-command]\n",
            "      topicPattern: \"^cmd(\"\n",
        ),
        "kafkaToMqtt[0].kafka.topicPattern",
        "invalid regular expression",
    );
}

#[test]
fn rejects_unknown_kafka_placeholder_in_mqtt_topic() {
    assert_rejected(
        &replaced("devices/${.key}/command", "devices/${.kee}/command"),
        "kafkaToMqtt[0].mqtt.topic",
        "unknown placeholder ${.kee} at column 9",
    );
}

#[test]
fn rejects_wildcards_in_literal_mqtt_topic() {
    assert_rejected(
        &replaced("devices/${.key}/command", "devices/+/command"),
        "kafkaToMqtt[0].mqtt.topic",
        "wildcards",
    );
}

#[test]
fn rejects_bootstrap_server_without_port() {
    assert_rejected(
        &replaced("127.0.0.1:9092", "localhost"),
        "kafka.bootstrapServers",
        "\"localhost\" is not host:port",
    );
}

#[test]
fn rejects_idempotence_without_acks_all() {
    let yaml = replaced(
        "  deadLetterTopic:",
        "  producer:\n    acks: \"1\"\n  deadLetterTopic:",
    );
    assert_rejected(&yaml, "kafka.producer.idempotence", "requires acks \"all\"");
}

#[test]
fn rejects_invalid_dead_letter_topic() {
    assert_rejected(
        &replaced("smart-locks.dead-letter", "\"dead letters!\""),
        "kafka.deadLetterTopic",
        "not a valid Kafka topic name",
    );
}

#[test]
fn rejects_invalid_literal_kafka_topic() {
    assert_rejected(
        &replaced("topic: lock-state", "topic: lock state"),
        "mqttToKafka[0].kafka.topic",
        "not a valid Kafka topic name",
    );
}

#[test]
fn rejects_password_from_file_and_env() {
    let yaml = replaced(
        "  url: mqtt://127.0.0.1:1883\n",
        "  url: mqtt://127.0.0.1:1883\n  auth:\n    username: bridge\n    password: {file: /run/pw, env: PW}\n",
    );
    assert_rejected(&yaml, "mqtt.auth.password", "only one of file and env");
}

#[test]
fn rejects_tls_material_from_env() {
    let yaml = replaced(
        "  deadLetterTopic:",
        "  tls:\n    ca: {env: KAFKA_CA}\n  deadLetterTopic:",
    );
    assert_rejected(&yaml, "kafka.tls.ca.env", "must be read from a file");
}

#[test]
fn rejects_server_name_for_kafka_tls() {
    let yaml = replaced(
        "  deadLetterTopic:",
        "  tls:\n    serverName: kafka.internal\n  deadLetterTopic:",
    );
    assert_rejected(&yaml, "kafka.tls.serverName", "not supported for Kafka");
}

#[test]
fn rejects_tls_with_plain_mqtt_url() {
    let yaml = replaced(
        "  url: mqtt://127.0.0.1:1883\n",
        "  url: mqtt://127.0.0.1:1883\n  tls: {insecureSkipVerify: true}\n",
    );
    assert_rejected(&yaml, "mqtt.tls", "mqtts://");
}

#[test]
fn rejects_template_format_without_template() {
    let yaml = replaced(
        "      key: ${topic[1]}\n",
        "      key: ${topic[1]}\n      value: {format: template}\n",
    );
    assert_rejected(
        &yaml,
        "mqttToKafka[0].kafka.value.template",
        "required when format is template",
    );
}

#[test]
fn rejects_template_on_raw_format() {
    let yaml = replaced(
        "      key: ${topic[1]}\n",
        "      key: ${topic[1]}\n      value: {template: \"${payload}\"}\n",
    );
    assert_rejected(
        &yaml,
        "mqttToKafka[0].kafka.value.template",
        "only used with format: template",
    );
}

#[test]
fn rejects_share_prefix_in_filter() {
    assert_rejected(
        &replaced("\"devices/+/state\"", "\"$share/g/devices/+/state\""),
        "mqttToKafka[0].mqtt.topicFilters[0]",
        "set shared: true",
    );
}

#[test]
fn rejects_share_group_when_not_shared() {
    let yaml = replaced(
        "      topicFilters: [\"devices/+/state\"]\n",
        "      topicFilters: [\"devices/+/state\"]\n      shared: false\n      shareGroup: g\n",
    );
    assert_rejected(&yaml, "mqttToKafka[0].mqtt.shareGroup", "shared is false");
}

#[test]
fn rejects_bad_listen_address() {
    assert_rejected(
        &format!("{VALID}http:\n  listen: nowhere\n"),
        "http.listen",
        "not an address",
    );
}

#[test]
fn rejects_wrong_type() {
    assert_rejected(
        &format!("{VALID}ordinal: first\n"),
        "ordinal",
        "invalid type",
    );
}

#[test]
fn rejects_config_without_routes() {
    let yaml = "bridgeName: b\nmqtt: {url: \"mqtt://m\"}\nkafka: {bootstrapServers: \"k:9092\"}\n";
    assert_rejected(yaml, "mqttToKafka", "no routes");
}

#[test]
fn rejects_overlapping_routes_with_mqtt_3_1_1() {
    let yaml = replaced(
        "kafkaToMqtt:",
        "  - name: all-devices\n    mqtt:\n      topicFilters: [\"devices/#\"]\n    kafka:\n      topic: everything\nkafkaToMqtt:",
    )
    .replacen("  url: mqtt://127.0.0.1:1883\n", "  url: mqtt://127.0.0.1:1883\n  protocolVersion: \"3.1.1\"\n", 1);
    assert_rejected(
        &yaml,
        "mqttToKafka[1].mqtt.topicFilters[0]",
        "overlaps \"devices/+/state\" (mqttToKafka[0].mqtt.topicFilters[0])",
    );
    // The same routes are fine with MQTT 5, which tells the bridge which subscription matched.
    let v5 = yaml.replacen("protocolVersion: \"3.1.1\"", "protocolVersion: \"5\"", 1);
    assert!(load_runtime_config(&v5).is_ok());
}

#[test]
fn rejects_overlapping_filters_within_a_route_with_mqtt_3_1_1() {
    let yaml = replaced(
        "[\"devices/+/state\"]",
        "[\"devices/+/state\", \"devices/lock-1/#\"]",
    )
    .replacen(
        "  url: mqtt://127.0.0.1:1883\n",
        "  url: mqtt://127.0.0.1:1883\n  protocolVersion: \"3.1.1\"\n",
        1,
    );
    assert_rejected(&yaml, "mqttToKafka[0].mqtt.topicFilters[1]", "overlaps");
}

#[test]
fn rejects_invalid_yaml() {
    assert_rejected("bridgeName: [unclosed\n", "", "not valid YAML");
    assert_rejected("- just\n- a list\n", "", "must be a YAML mapping");
}

#[test]
fn reports_every_error_not_only_the_first() {
    let yaml = replaced("mqtt://127.0.0.1:1883", "tcp://x")
        .replacen("key: ${topic[1]}", "key: ${nope}", 1)
        .replacen("devices/${.key}/command", "devices/${.kee}/command", 1)
        .replacen("127.0.0.1:9092", "nohost", 1);
    let paths: Vec<String> = errors_of(&yaml)
        .into_iter()
        .map(|FieldErrorView(p, _)| p)
        .collect();
    for expected in [
        "mqtt.url",
        "kafka.bootstrapServers",
        "mqttToKafka[0].kafka.key",
        "kafkaToMqtt[0].mqtt.topic",
    ] {
        assert!(
            paths.iter().any(|p| p == expected),
            "missing {expected} in {paths:?}"
        );
    }
}

#[test]
fn reports_structural_errors_of_several_routes() {
    let yaml = replaced("key: ${topic[1]}", "key: 5\n      bogus: 1")
        .replacen(
            "      topics: [lock-command]\n",
            "      topics: lock-command\n",
            1,
        )
        .replacen("bridgeName: smart-locks", "bridgeName: [x]", 1);
    let paths: Vec<String> = errors_of(&yaml)
        .into_iter()
        .map(|FieldErrorView(p, _)| p)
        .collect();
    assert!(
        paths.iter().any(|p| p.starts_with("mqttToKafka[0]")),
        "{paths:?}"
    );
    assert!(
        paths.iter().any(|p| p.starts_with("kafkaToMqtt[0]")),
        "{paths:?}"
    );
    assert!(paths.iter().any(|p| p == "bridgeName"), "{paths:?}");
}

#[test]
fn settings_that_would_do_nothing_on_mqtt_3_1_1_are_refused() {
    let v311 = replaced(
        "  url: mqtt://127.0.0.1:1883\n",
        "  url: mqtt://127.0.0.1:1883\n  protocolVersion: \"3.1.1\"\n  sessionExpirySeconds: 600\n",
    )
    .replacen(
        "      key: ${topic[1]}\n",
        "      key: ${topic[1]}\n      forwardUserProperties: true\n",
        1,
    )
    .replacen(
        "      topic: devices/${.key}/command\n",
        "      topic: devices/${.key}/command\n      forwardHeaders: true\n",
        1,
    );
    assert_rejected(
        &v311,
        "mqtt.sessionExpirySeconds",
        "MQTT 3.1.1 has no session expiry",
    );
    assert_rejected(
        &v311,
        "mqttToKafka[0].kafka.forwardUserProperties",
        "MQTT 3.1.1 has no user properties",
    );
    assert_rejected(
        &v311,
        "kafkaToMqtt[0].mqtt.forwardHeaders",
        "MQTT 3.1.1 has no user properties",
    );
}

#[test]
fn user_properties_are_forwarded_by_default_with_mqtt_5_only() {
    let v5 = load_runtime_config(VALID).expect("valid");
    assert!(v5.mqtt_to_kafka[0].forward_user_properties);
    assert!(v5.kafka_to_mqtt[0].forward_headers);
    let v311 = load_runtime_config(&replaced(
        "  url: mqtt://127.0.0.1:1883\n",
        "  url: mqtt://127.0.0.1:1883\n  protocolVersion: \"3.1.1\"\n",
    ))
    .expect("valid without the MQTT 5 settings");
    assert!(!v311.mqtt_to_kafka[0].forward_user_properties);
    assert!(!v311.kafka_to_mqtt[0].forward_headers);
    let opted_out = load_runtime_config(&replaced(
        "      key: ${topic[1]}\n",
        "      key: ${topic[1]}\n      forwardUserProperties: false\n",
    ))
    .expect("valid");
    assert!(!opted_out.mqtt_to_kafka[0].forward_user_properties);
}

#[test]
fn acks_0_is_refused() {
    let yaml = replaced(
        "  deadLetterTopic:",
        "  producer:\n    acks: \"0\"\n    idempotence: false\n  deadLetterTopic:",
    );
    assert_rejected(&yaml, "kafka.producer.acks", "Kafka confirms no write");
}

#[test]
fn qos_2_subscriptions_are_accepted_and_3_is_refused() {
    let yaml = replaced(
        "      topicFilters: [\"devices/+/state\"]\n",
        "      topicFilters: [\"devices/+/state\"]\n      qos: 2\n",
    );
    let valid = load_runtime_config(&yaml).expect("QoS 2 is valid");
    assert_eq!(valid.mqtt_to_kafka[0].qos, 2);
    assert_rejected(
        &yaml.replace("qos: 2", "qos: 3"),
        "mqttToKafka[0].mqtt.qos",
        "3 is not a QoS level",
    );
}

#[test]
fn the_byte_window_defaults_to_32_mib_and_must_be_1_to_4096() {
    let valid = load_runtime_config(VALID).expect("valid");
    assert_eq!(valid.config.delivery.max_in_flight_mib, 32);
    assert_rejected(
        &format!("{VALID}delivery:\n  maxInFlightMiB: 0\n"),
        "delivery.maxInFlightMiB",
        "0 is outside 1 to 4096",
    );
    assert_rejected(
        &format!("{VALID}delivery:\n  maxInFlightMiB: 5000\n"),
        "delivery.maxInFlightMiB",
        "5000 is outside 1 to 4096",
    );
}
