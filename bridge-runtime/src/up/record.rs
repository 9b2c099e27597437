//! Turning an MQTT message into a Kafka record: topic, key, value and headers from the
//! route's templates.

use base64::Engine;
use mkb_api::compiled::{CompiledMqttToKafka, CompiledValue};
use mkb_api::template::{MqttMessage, OnMissing};
use serde_json::{json, Map, Value};

use crate::mqtt::Inbound;

/// The parts of a Kafka record, rendered.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordParts {
    pub topic: String,
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
}

/// Renders the record for `msg`; the error says why it can never be produced.
pub fn build(
    route: &CompiledMqttToKafka,
    msg: &Inbound,
    received_ms: i64,
) -> Result<RecordParts, String> {
    let ctx = MqttMessage::new(
        &msg.topic,
        &msg.payload,
        msg.qos,
        msg.retain,
        received_ms,
        &msg.user_properties,
    );
    let topic = route
        .topic
        .render_string(&ctx, OnMissing::Fail)
        .map_err(|e| format!("kafka.topic: {e}"))?;
    if !is_kafka_topic_name(&topic) {
        return Err(format!(
            "kafka.topic: rendered {topic:?}, which is not a valid Kafka topic name"
        ));
    }
    let key = match &route.key {
        Some(t) => Some(
            t.render(&ctx, OnMissing::Empty)
                .map_err(|e| format!("kafka.key: {e}"))?,
        ),
        None => None,
    };
    let value = match &route.value {
        CompiledValue::Raw => msg.payload.to_vec(),
        CompiledValue::Envelope => envelope(msg, received_ms),
        CompiledValue::Template(t) => t
            .render(&ctx, OnMissing::Empty)
            .map_err(|e| format!("kafka.value.template: {e}"))?,
    };
    let mut headers = Vec::with_capacity(route.headers.len() + msg.user_properties.len());
    for (name, template) in &route.headers {
        let rendered = template
            .render(&ctx, OnMissing::Empty)
            .map_err(|e| format!("kafka.headers.{name}: {e}"))?;
        headers.push((name.clone(), rendered));
    }
    if route.forward_user_properties {
        headers.extend(
            msg.user_properties
                .iter()
                .map(|(k, v)| (k.clone(), v.as_bytes().to_vec())),
        );
    }
    Ok(RecordParts {
        topic,
        key,
        value,
        headers,
    })
}

fn is_kafka_topic_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// The JSON envelope: topic, payload (text, or base64 with `encoding`), qos, retain,
/// timestamp and user properties (the first value of a repeated name).
pub fn envelope(msg: &Inbound, received_ms: i64) -> Vec<u8> {
    let mut doc = Map::new();
    doc.insert("topic".into(), json!(msg.topic));
    match std::str::from_utf8(&msg.payload) {
        Ok(text) => {
            doc.insert("payload".into(), json!(text));
        }
        Err(_) => {
            doc.insert(
                "payload".into(),
                json!(base64::engine::general_purpose::STANDARD.encode(&msg.payload)),
            );
            doc.insert("encoding".into(), json!("base64"));
        }
    }
    doc.insert("qos".into(), json!(msg.qos));
    doc.insert("retain".into(), json!(msg.retain));
    doc.insert("timestamp".into(), json!(received_ms));
    let mut props = Map::new();
    for (k, v) in &msg.user_properties {
        props.entry(k.clone()).or_insert_with(|| json!(v));
    }
    doc.insert("userProperties".into(), Value::Object(props));
    serde_json::to_vec(&Value::Object(doc)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::AckToken;
    use bytes::Bytes;
    use mkb_api::load_runtime_config;

    fn route(kafka: &str) -> CompiledMqttToKafka {
        let yaml = format!(
            "bridgeName: b\nmqtt: {{url: 'mqtt://m'}}\nkafka: {{bootstrapServers: 'k:9092'}}\nmqttToKafka:\n  - name: r\n    mqtt: {{topicFilters: ['#']}}\n    kafka: {kafka}\n"
        );
        load_runtime_config(&yaml)
            .expect("valid")
            .mqtt_to_kafka
            .remove(0)
    }

    fn msg(topic: &str, payload: &[u8], props: &[(&str, &str)]) -> Inbound {
        Inbound {
            topic: topic.into(),
            payload: Bytes::copy_from_slice(payload),
            qos: 1,
            retain: false,
            user_properties: props
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            subscription_ids: vec![],
            ack: AckToken { pkid: 1, qos: 1 },
        }
    }

    #[test]
    fn renders_topic_key_headers_and_forwards_user_properties() {
        let r = route(
            "{topic: 'telemetry-${topic[0]}', key: '${topic[1]}', headers: {kind: '${topic[2]}'}}",
        );
        let parts =
            build(&r, &msg("cars/c1/gps", b"{}", &[("site", "berlin")]), 5).expect("renders");
        assert_eq!(parts.topic, "telemetry-cars");
        assert_eq!(parts.key.as_deref(), Some(&b"c1"[..]));
        assert_eq!(parts.value, b"{}");
        assert_eq!(
            parts.headers,
            [
                ("kind".to_owned(), b"gps".to_vec()),
                ("site".to_owned(), b"berlin".to_vec())
            ]
        );
    }

    #[test]
    fn json_field_of_a_non_json_payload_is_an_error_naming_the_field() {
        let r = route("{topic: t, value: {format: template, template: '${payload.temp}'}}");
        let err = build(&r, &msg("a", b"not json", &[]), 0).expect_err("fails");
        assert_eq!(err, "kafka.value.template: ${payload.temp} needs a JSON payload, but the payload is not valid JSON");
    }

    #[test]
    fn missing_topic_level_in_the_topic_template_is_an_error() {
        let r = route("{topic: 'x-${topic[3]}'}");
        assert!(build(&r, &msg("a/b", b"", &[]), 0)
            .expect_err("fails")
            .starts_with("kafka.topic: ${topic[3]} has no value"));
    }

    #[test]
    fn rendered_topic_must_be_a_valid_kafka_name() {
        let r = route("{topic: '${topic[0]}'}");
        assert!(build(&r, &msg("has space/x", b"", &[]), 0)
            .expect_err("fails")
            .contains("not a valid Kafka topic name"));
    }

    #[test]
    fn envelope_has_text_or_base64_payload() {
        let text: Value =
            serde_json::from_slice(&envelope(&msg("a/b", b"hi", &[("p", "1"), ("p", "2")]), 42))
                .expect("json");
        assert_eq!(
            text,
            json!({"topic": "a/b", "payload": "hi", "qos": 1, "retain": false, "timestamp": 42, "userProperties": {"p": "1"}})
        );
        let binary: Value =
            serde_json::from_slice(&envelope(&msg("a", &[0xff, 0x00], &[]), 1)).expect("json");
        assert_eq!(binary["payload"], "/wA=");
        assert_eq!(binary["encoding"], "base64");
    }
}
