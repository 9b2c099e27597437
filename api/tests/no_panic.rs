//! The parsers that read user input never panic, whatever the input: topic filters and topic
//! names, templates in both scopes, and whole runtime configurations (arbitrary text, and
//! valid configurations with random bytes changed). Nor does rendering a template (JSON paths
//! included) against arbitrary MQTT messages and Kafka records. `make test` runs proptest's default number
//! of cases; `make fuzz` runs a million of each (PROPTEST_CASES). Failing inputs are kept by
//! proptest under api/proptest-regressions/ and replayed first.

use mkb_api::load_runtime_config;
use mkb_api::template::{KafkaRecord, KafkaTimestamp, MqttMessage, OnMissing, Scope, Template};
use mkb_api::topic::{validate_topic_name, TopicFilter};
use proptest::prelude::*;

/// Text made of what these parsers care about, plus anything else.
fn tricky_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("/".to_owned()),
        Just("+".to_owned()),
        Just("#".to_owned()),
        Just("$share/".to_owned()),
        Just("${".to_owned()),
        Just("}".to_owned()),
        Just("$".to_owned()),
        Just("[".to_owned()),
        Just("]".to_owned()),
        Just(".".to_owned()),
        Just("\u{0}".to_owned()),
        Just("\u{202e}".to_owned()),
        "[a-z0-9]{0,4}",
        any::<String>(),
    ];
    prop::collection::vec(piece, 0..24).prop_map(|p| p.concat())
}

/// Templates that reach every kind of placeholder, JSON paths with fields and indexes
/// (negative and large ones too), or anything else.
fn template_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("${topic}".to_owned()),
        Just("${topic[0]}".to_owned()),
        Just("${topic[-1]}".to_owned()),
        Just("${topic[99999]}".to_owned()),
        Just("${payload}".to_owned()),
        Just("${payload.a}".to_owned()),
        Just("${payload.a[0].b}".to_owned()),
        Just("${payload[3]}".to_owned()),
        Just("${payload.a[18446744073709551615]}".to_owned()),
        Just("${qos}-${retain}-${timestamp}".to_owned()),
        Just("${user_properties.n}".to_owned()),
        Just("${.}".to_owned()),
        Just("${.value.a.b}".to_owned()),
        Just("${.key[1]}".to_owned()),
        Just("${.headers.h}".to_owned()),
        Just("${.topic}/${.partition}/${.offset}/${.ts}/${.ts_type}".to_owned()),
        tricky_text(),
    ];
    prop::collection::vec(piece, 0..6).prop_map(|p| p.concat())
}

/// Payloads: JSON made of fragments (often valid, often not), or any bytes.
fn payload() -> impl Strategy<Value = Vec<u8>> {
    let fragment = prop_oneof![
        Just("{".to_owned()),
        Just("}".to_owned()),
        Just("[".to_owned()),
        Just("]".to_owned()),
        Just("\"a\":".to_owned()),
        Just("\"b\":".to_owned()),
        Just(",".to_owned()),
        Just("null".to_owned()),
        Just("1e400".to_owned()),
        Just("-0".to_owned()),
        Just("\"\\ud800\"".to_owned()),
        "\"[a-z]{0,3}\"",
    ];
    prop_oneof![
        prop::collection::vec(fragment, 0..40).prop_map(|f| f.concat().into_bytes()),
        prop::collection::vec(any::<u8>(), 0..64),
    ]
}

const SMART_LOCKS: &str = include_str!("../../examples/runtime/smart-locks.yaml");

proptest! {
    #[test]
    fn topic_filters_and_names_never_panic(filter in tricky_text(), topic in tricky_text()) {
        let _ = validate_topic_name(&topic);
        if let Ok(parsed) = TopicFilter::parse(&filter) {
            let _ = parsed.matches(&topic);
            if let Ok(other) = TopicFilter::parse(&topic) {
                let _ = parsed.overlaps(&other);
            }
        }
    }

    #[test]
    fn templates_never_panic(text in tricky_text()) {
        let _ = Template::parse(&text, Scope::MqttMessage);
        let _ = Template::parse(&text, Scope::KafkaRecord);
    }

    #[test]
    fn rendering_never_panics(
        template in template_text(),
        topic in tricky_text(),
        body in payload(),
        key in prop::option::of(payload()),
        property in tricky_text(),
    ) {
        let properties = vec![("n".to_owned(), property)];
        if let Ok(t) = Template::parse(&template, Scope::MqttMessage) {
            let msg = MqttMessage::new(&topic, &body, 1, false, 0, &properties);
            for on_missing in [OnMissing::Empty, OnMissing::Fail] {
                let _ = t.render(&msg, on_missing);
                let _ = t.render_string(&msg, on_missing);
            }
        }
        if let Ok(t) = Template::parse(&template, Scope::KafkaRecord) {
            let headers = vec![("h", Some(body.as_slice())), ("h", None)];
            let record = KafkaRecord::new(
                &topic, 0, i64::MAX, key.as_deref(), Some(&body), KafkaTimestamp::NotAvailable, headers,
            );
            for on_missing in [OnMissing::Empty, OnMissing::Fail] {
                let _ = t.render(&record, on_missing);
                let _ = t.render_string(&record, on_missing);
            }
        }
    }

    #[test]
    fn arbitrary_configurations_never_panic(text in any::<String>()) {
        let _ = load_runtime_config(&text);
    }

    #[test]
    fn damaged_configurations_never_panic(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)
    ) {
        let mut bytes = SMART_LOCKS.as_bytes().to_vec();
        for (at, byte) in edits {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        let _ = load_runtime_config(&String::from_utf8_lossy(&bytes));
    }
}
