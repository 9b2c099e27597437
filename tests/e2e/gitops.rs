//! GitOps behaviour: the Argo CD health check of docs/gitops.md, run with lua5.4 against
//! statuses the operator really wrote (and two recorded ones), and server-side applies of every
//! example that change nothing the second time.

use std::process::Command;

use serde_json::{json, Value};
use testbed::kubectl::kubectl_ok;
use testbed::operator::{condition_of, setup, Setup, WAIT};
use testbed::process::output_with_input;
use testbed::{env, repo_root, wait_until};

/// The ```lua block of docs/gitops.md.
fn health_check() -> String {
    let doc = std::fs::read_to_string(repo_root().join("docs/gitops.md")).expect("docs/gitops.md");
    let start = doc.find("```lua\n").expect("a lua block") + "```lua\n".len();
    let end = start + doc[start..].find("```").expect("its end");
    doc[start..end].to_owned()
}

/// A JSON value as a Lua literal (null becomes nil, so the key is absent).
fn lua(value: &Value) -> String {
    match value {
        Value::Null => "nil".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("{s:?}"),
        Value::Array(items) => format!(
            "{{{}}}",
            items.iter().map(lua).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!("[{k:?}] = {}", lua(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Runs the health check on `obj`; returns (status, message).
fn health(obj: &Value) -> (String, String) {
    let program = format!(
        "obj = {}\nlocal function health()\n{}\nend\nlocal hs = health()\nio.write(hs.status, \"\\n\", hs.message)\n",
        lua(obj),
        health_check()
    );
    let out = output_with_input(
        Command::new("lua5.4").arg("-"),
        Some(&program),
        "lua5.4 (tests/testbed/install.sh installs it)",
    );
    assert!(
        out.status.success(),
        "lua: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (status, message) = text.split_once('\n').unwrap_or((&text, ""));
    (status.to_owned(), message.to_owned())
}

/// The example with the test bed's brokers in place of the placeholders.
fn example(name: &str) -> String {
    let env = env();
    std::fs::read_to_string(repo_root().join("examples").join(name))
        .expect("example")
        .replace("mqtt://mosquitto.iot.svc:1883", &env.mqtt_url)
        .replace("mqtt://emqx.iot.svc:1883", &env.mqtt_url)
        .replace("kafka-bootstrap.kafka.svc:9092", &env.kafka_bootstrap)
}

fn server_side_apply(s: &Setup, yaml: &str) {
    kubectl_ok(
        &[
            "apply",
            "--server-side",
            "--field-manager=gitops",
            "-n",
            &s.ns.0,
            "-f",
            "-",
        ],
        Some(yaml),
    );
}

#[test]
fn the_argo_cd_health_check_reads_each_kind_of_status() {
    let s = setup("gitops-health");
    server_side_apply(&s, &example("smart-locks.yaml"));
    let healthy = s.wait_ready("smart-locks");
    let (status, message) = health(&healthy);
    assert_eq!(
        (status.as_str(), message.as_str()),
        ("Healthy", "1/1 replicas ready")
    );

    let invalid = example("smart-locks.yaml")
        .replace("name: smart-locks", "name: broken")
        .replace("key: \"${topic[1]}\"", "key: \"${topc}\"");
    server_side_apply(&s, &invalid);
    let broken = wait_until("InvalidSpec", WAIT, || {
        let b = s.bridge("broken");
        (condition_of(&b, "Degraded")["reason"] == "InvalidSpec").then_some(b)
    });
    let (status, message) = health(&broken);
    assert_eq!(status, "Degraded");
    assert!(
        message
            .starts_with("InvalidSpec: spec.mqttToKafka[0].kafka.key: unknown placeholder ${topc}"),
        "{message}"
    );

    // Recorded: a spec the operator has not seen yet, and a rollout under way.
    let mut stale = healthy.clone();
    stale["metadata"]["generation"] =
        json!(healthy["metadata"]["generation"].as_i64().unwrap_or(1) + 1);
    assert_eq!(health(&stale).0, "Progressing");
    assert_eq!(
        health(&json!({"metadata": {"generation": 1}})).0,
        "Progressing"
    );
    let rolling = json!({
        "metadata": {"generation": 3},
        "status": {"observedGeneration": 3, "conditions": [
            {"type": "Ready", "status": "False", "reason": "RollingOut", "message": "1/3 replicas ready, 1/3 updated, 3 running", "observedGeneration": 3},
            {"type": "Progressing", "status": "True", "reason": "RollingOut", "message": "1/3 replicas ready, 1/3 updated, 3 running", "observedGeneration": 3},
            {"type": "Degraded", "status": "False", "reason": "AsExpected", "message": "", "observedGeneration": 3}
        ]}
    });
    assert_eq!(
        health(&rolling),
        (
            "Progressing".to_owned(),
            "1/3 replicas ready, 1/3 updated, 3 running".to_owned()
        )
    );
}

#[test]
fn applying_every_example_twice_changes_nothing_and_the_operator_never_writes_spec() {
    let s = setup("gitops-apply");
    // As the connected-cars example says to, before applying it.
    kubectl_ok(
        &[
            "create",
            "secret",
            "generic",
            "cars-mqtt",
            "-n",
            &s.ns.0,
            "--from-literal=password=not-used-here",
        ],
        None,
    );
    let mut names = Vec::new();
    for file in std::fs::read_dir(repo_root().join("examples")).expect("examples") {
        let path = file.expect("entry").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let yaml = example(path.file_name().and_then(|n| n.to_str()).expect("name"));
            server_side_apply(&s, &yaml);
            let name = serde_yaml_name(&yaml);
            s.wait_ready(&name);
            names.push((name, yaml));
        }
    }
    assert!(names.len() >= 2, "{names:?}");
    for (name, yaml) in &names {
        let before = s.bridge(name)["metadata"]["resourceVersion"].clone();
        server_side_apply(&s, yaml);
        let after = s.bridge(name);
        assert_eq!(
            after["metadata"]["resourceVersion"], before,
            "{name}: the second apply changed it"
        );
        for entry in after["metadata"]["managedFields"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if entry["manager"] == "mkb-operator" {
                assert!(
                    entry["fieldsV1"].get("f:spec").is_none(),
                    "{name}: the operator owns spec fields: {entry}"
                );
            }
        }
    }
}

/// metadata.name of a one-object manifest.
fn serde_yaml_name(yaml: &str) -> String {
    yaml.lines()
        .skip_while(|l| !l.starts_with("metadata:"))
        .find_map(|l| l.trim().strip_prefix("name: ").map(str::to_owned))
        .expect("metadata.name")
}

#[test]
fn lua_literals_keep_nesting_and_escape_strings() {
    assert_eq!(
        lua(&json!({"a": [1, "x\"y"], "b": null})),
        "{[\"a\"] = {1, \"x\\\"y\"}, [\"b\"] = nil}"
    );
}
