//! The parsers that read user input never panic, whatever the input: topic filters and topic
//! names, templates in both scopes, and whole runtime configurations (arbitrary text, and
//! valid configurations with random bytes changed). `make test` runs proptest's default number
//! of cases; `make fuzz` runs a million of each (PROPTEST_CASES). Failing inputs are kept by
//! proptest under crds/proptest-regressions/ and replayed first.

use mkb_api::load_runtime_config;
use mkb_api::template::{Scope, Template};
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
