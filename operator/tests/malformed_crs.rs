//! A corpus of malformed bridges (tests/data/malformed-crs.yaml: wrong types, bad URLs, bad
//! templates, invalid filters, conflicting routes, bad Secret references, absurd sizes, unicode
//! tricks), applied one after another over a running bridge. Each is refused by the API server
//! or reported in the status, either way naming the field or the rule; the operator keeps
//! running and the StatefulSet stays as it was.

use serde_json::{json, Value};
use testbed::kubectl::kubectl;
use testbed::operator::{condition_of, setup, WAIT};
use testbed::{env, unique, wait_until_seen};

const NAME: &str = "malformed";

fn base(id: &str) -> Value {
    json!({
        "apiVersion": "mqttkafka.io/v1alpha1",
        "kind": "MqttKafkaBridge",
        "metadata": {"name": NAME},
        "spec": {
            "replicas": 1,
            "mqtt": {"url": env().mqtt_url},
            "kafka": {"bootstrapServers": env().kafka_bootstrap},
            "mqttToKafka": [{
                "name": "lock-state",
                "mqtt": {"topicFilters": [format!("{id}/devices/+/state")]},
                "kafka": {"topic": format!("{id}-lock-state"), "key": "${topic[2]}"},
            }],
            "kafkaToMqtt": [{
                "name": "lock-command",
                "kafka": {"topics": [format!("{id}-lock-command")]},
                "mqtt": {"topic": format!("{id}/devices/${{.key}}/command")},
            }],
        },
    })
}

/// The parent of a JSON pointer and the last token.
fn parent<'a>(doc: &'a mut Value, pointer: &str) -> (&'a mut Value, String) {
    let (parent, last) = pointer.rsplit_once('/').expect("a JSON pointer");
    let parent = doc
        .pointer_mut(parent)
        .unwrap_or_else(|| panic!("{pointer}: no parent in the base bridge"));
    (parent, last.to_owned())
}

fn set(doc: &mut Value, pointer: &str, value: Value) {
    match parent(doc, pointer) {
        (Value::Object(map), key) => {
            map.insert(key, value);
        }
        (Value::Array(items), index) => {
            let index: usize = index.parse().expect("an array index");
            items[index] = value;
        }
        _ => panic!("{pointer}: the parent is not an object or array"),
    }
}

fn remove(doc: &mut Value, pointer: &str) {
    match parent(doc, pointer) {
        (Value::Object(map), key) => {
            map.remove(&key);
        }
        (Value::Array(items), index) => {
            items.remove(index.parse::<usize>().expect("an array index"));
        }
        _ => panic!("{pointer}: the parent is not an object or array"),
    }
}

/// The base bridge with one case's changes.
fn malformed(base: &Value, case: &Value) -> Value {
    let mut bridge = base.clone();
    for (pointer, value) in case["set"].as_object().into_iter().flatten() {
        set(&mut bridge, pointer, value.clone());
    }
    for (pointer, size) in case["set_repeated"].as_object().into_iter().flatten() {
        let size = size.as_u64().unwrap_or(0) as usize;
        set(&mut bridge, pointer, json!("x".repeat(size)));
    }
    for pointer in case["remove"].as_array().into_iter().flatten() {
        remove(&mut bridge, pointer.as_str().unwrap_or_default());
    }
    bridge
}

#[test]
fn every_malformed_bridge_is_refused_or_reported_with_its_field_and_nothing_changes() {
    let corpus = std::fs::read_to_string(
        testbed::repo_root().join("operator/tests/data/malformed-crs.yaml"),
    )
    .expect("read the corpus");
    let cases: Vec<Value> = serde_yaml::from_str(&corpus).expect("the corpus is YAML");
    assert!(cases.len() >= 30, "{} cases", cases.len());

    let mut s = setup("malformed");
    let id = unique("mf");
    let base = base(&id);
    s.apply(&base.to_string());
    s.wait_ready(NAME);
    let sts_version = s.resource_version(&format!("statefulset/{NAME}"));
    let mut outcomes = Vec::new();
    for case in &cases {
        let name = case["case"].as_str().unwrap_or_default();
        let says = case["says"].as_str().unwrap_or_default();
        let bridge = malformed(&base, case).to_string();
        let out = kubectl(&["apply", "-n", &s.ns.0, "-f", "-"], Some(&bridge));
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let outcome = if out.status.success() {
            let condition =
                wait_until_seen(&format!("{name}: the status to say {says:?}"), WAIT, || {
                    let current = s.bridge(NAME);
                    let ready = condition_of(&current, "Ready");
                    let fresh = ready["observedGeneration"] == current["metadata"]["generation"];
                    let message = ready["message"].as_str().unwrap_or_default();
                    if fresh && ready["status"] == "False" && message.contains(says) {
                        Ok(ready)
                    } else {
                        Err(ready.to_string())
                    }
                });
            format!(
                "status, {}: {}",
                condition["reason"].as_str().unwrap_or_default(),
                condition["message"].as_str().unwrap_or_default()
            )
        } else {
            assert!(
                stderr.contains(says),
                "{name}: the API server refused it without naming {says:?}: {stderr}"
            );
            format!("refused by the API server: {}", stderr.trim())
        };
        assert!(
            s.operator.process.exit_status().is_none(),
            "{name}: the operator exited"
        );
        outcomes.push(format!("{name}: {outcome}"));
    }
    eprintln!("{}", outcomes.join("\n"));
    assert_eq!(
        s.resource_version(&format!("statefulset/{NAME}")),
        sts_version,
        "the StatefulSet is untouched"
    );
    s.apply(&base.to_string());
    s.wait_ready(NAME);
    assert!(s.operator.process.exit_status().is_none());
}
