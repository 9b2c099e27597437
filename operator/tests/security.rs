//! Credentials from Secrets end to end: the operator's Kafka admin client logs in over
//! SASL_SSL (SCRAM-SHA-512, the CA from a Secret) and over mutual TLS to manage topics; a
//! wrong password shows in the status with Kafka's answer and never the value; a missing
//! Secret or key is named in the status and an Event, and nothing is rolled out until it is
//! there; `insecureSkipVerify` is a warning condition and Event; no ConfigMap, Event, status
//! or trace-level operator log line holds a secret value; a namespace that enforces the
//! restricted Pod Security Standard admits the bridge pods.

use testbed::kafka::describe_topic;
use testbed::kubectl::{kubectl_err, kubectl_ok};
use testbed::operator::{bridge_writing_to, setup, setup_labelled, setup_traced, Setup};
use testbed::secrets::{assert_none_in_trace_log, leaked, Secret};
use testbed::{env, unique};

/// The MQTT password the bridges of these tests are given (the operator only passes it on).
const MQTT_PASSWORD: &str = "mqtt-Pa55word-operator-security";
/// A password Kafka refuses.
const WRONG_KAFKA_PASSWORD: &str = "wrong-kafka-Pa55word-7c1d";

fn create_secret(s: &Setup, name: &str, from: &str) {
    kubectl_ok(
        &["create", "secret", "generic", name, "-n", &s.ns.0, from],
        None,
    );
}

/// The test CA as Secret `kafka-ca`, key `ca.crt`.
fn create_ca_secret(s: &Setup) {
    let ca = env().tls_dir.join("ca.crt");
    create_secret(
        s,
        "kafka-ca",
        &format!("--from-file=ca.crt={}", ca.display()),
    );
}

/// The test client certificate and key as Secret `kafka-client` (`tls.crt`, `tls.key`).
fn create_client_secret(s: &Setup) {
    let tls = &env().tls_dir;
    create_secret(
        s,
        "kafka-client",
        &format!("--from-file=tls.crt={}", tls.join("client.crt").display()),
    );
    kubectl_ok(
        &[
            "patch",
            "secret",
            "kafka-client",
            "-n",
            &s.ns.0,
            "--type",
            "merge",
            "-p",
            &format!(
                r#"{{"stringData":{{"tls.key":{}}}}}"#,
                serde_json::Value::from(
                    std::fs::read_to_string(tls.join("client.key")).expect("client.key")
                )
            ),
        ],
        None,
    );
}

/// A bridge whose Kafka is the SSL listener (client certificate required), with `tls` lines
/// (under `spec.kafka.tls`, indented by six spaces) and one managed topic.
fn mtls_bridge(name: &str, route_topic: &str, topic: &str, tls: &str) -> String {
    let kafka = format!(
        "    tls:\n      clientCertificate: {{name: kafka-client, key: tls.crt}}\n      clientKey: {{name: kafka-client, key: tls.key}}\n{tls}    topics:\n      - {{name: {topic}, partitions: 2}}"
    );
    bridge_writing_to(name, route_topic, &kafka).replace(
        &format!("bootstrapServers: {}", env().kafka_bootstrap),
        &format!("bootstrapServers: {}", env().kafka_ssl_bootstrap),
    )
}

/// A bridge whose Kafka is the SASL_SSL listener, with the CA and password from Secrets.
fn secure_bridge(name: &str, route_topic: &str, topic: &str, password_secret: &str) -> String {
    let kafka = format!(
        "    tls:\n      ca: {{name: kafka-ca, key: ca.crt}}\n    sasl:\n      mechanism: SCRAM-SHA-512\n      username: {user}\n      password: {{name: {password_secret}, key: password}}\n    topics:\n      - {{name: {topic}, partitions: 3}}",
        user = env().kafka_sasl_username,
    );
    bridge_writing_to(name, route_topic, &kafka).replace(
        &format!("bootstrapServers: {}", env().kafka_bootstrap),
        &format!("bootstrapServers: {}", env().kafka_sasl_bootstrap),
    )
}

#[test]
fn topics_are_managed_over_sasl_ssl_and_a_wrong_password_is_reported_without_its_value() {
    let s = setup("sec-topics");
    let id = unique("t");
    let (topic, route_topic) = (format!("{id}-secured"), format!("{id}-state"));
    create_ca_secret(&s);
    create_secret(
        &s,
        "kafka-login",
        &format!("--from-literal=password={}", env().kafka_sasl_password),
    );
    s.apply(&secure_bridge(
        "secure",
        &route_topic,
        &topic,
        "kafka-login",
    ));
    let ready = s.wait_condition("secure", "TopicsReady", |c| c["status"] == "True");
    assert_eq!(ready["reason"], "AsExpected");
    assert_eq!(describe_topic(&topic).map(|t| t.0), Some(3));
    s.wait_ready("secure");
    let config = s.get("configmap/secure-config").expect("the ConfigMap");
    let rendered = config["data"]["config.yaml"].as_str().unwrap_or_default();
    assert!(
        rendered.contains("env: MKB_KAFKA_SASL_PASSWORD")
            && rendered.contains("/etc/bridge/secrets/")
            && !rendered.contains(&env().kafka_sasl_password),
        "paths and variable names only:\n{rendered}"
    );

    let wrong = WRONG_KAFKA_PASSWORD;
    create_secret(
        &s,
        "kafka-wrong",
        &format!("--from-literal=password={wrong}"),
    );
    s.apply(&secure_bridge(
        "refused",
        &format!("{id}-r"),
        &format!("{id}-refused"),
        "kafka-wrong",
    ));
    let refused = s.wait_condition("refused", "TopicsReady", |c| c["status"] == "False");
    let message = refused["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&env().kafka_sasl_bootstrap) && message.contains("Authentication failed"),
        "the status names Kafka and its answer: {message}"
    );
    let status = s.bridge("refused")["status"].to_string();
    let events = s.events();
    assert!(
        !status.contains(wrong) && !events.contains(wrong),
        "the password is in the status or an Event"
    );
}

#[test]
fn a_missing_secret_or_key_is_named_and_nothing_is_rolled_out() {
    let s = setup("sec-missing");
    let id = unique("t");
    create_ca_secret(&s);
    s.apply(&secure_bridge(
        "waiting",
        &format!("{id}-state"),
        &format!("{id}-w"),
        "kafka-login",
    ));
    let blocked = s.wait_condition("waiting", "Ready", |c| c["reason"] == "SecretNotFound");
    assert_eq!(blocked["status"], "False");
    assert_eq!(
        blocked["message"],
        format!(
            "spec.kafka.sasl.password: Secret kafka-login (key \"password\") does not exist in namespace {}; nothing is rolled out until it does",
            s.ns.0
        )
    );
    assert!(s.get("statefulset/waiting").is_none(), "nothing rolled out");

    create_secret(&s, "kafka-login", "--from-literal=user=bridge");
    let blocked = s.wait_condition("waiting", "Ready", |c| c["reason"] == "SecretKeyNotFound");
    assert_eq!(
        blocked["message"],
        "spec.kafka.sasl.password: Secret kafka-login has no key \"password\"; nothing is rolled out until it has"
    );
    assert!(s.get("statefulset/waiting").is_none(), "nothing rolled out");
    let events = s.events();
    assert!(
        events.contains("SecretNotFound") && events.contains("SecretKeyNotFound"),
        "{events}"
    );

    kubectl_ok(
        &[
            "patch",
            "secret",
            "kafka-login",
            "-n",
            &s.ns.0,
            "-p",
            &format!(
                r#"{{"stringData":{{"password":"{}"}}}}"#,
                env().kafka_sasl_password
            ),
        ],
        None,
    );
    s.wait_ready("waiting");
    assert!(s.get("statefulset/waiting").is_some());
}

#[test]
fn no_configmap_event_status_or_trace_log_line_holds_a_secret_value() {
    let s = setup_traced("sec-sweep");
    let id = unique("t");
    create_ca_secret(&s);
    create_client_secret(&s);
    for (name, value) in [
        ("kafka-login", env().kafka_sasl_password.as_str()),
        ("kafka-wrong", WRONG_KAFKA_PASSWORD),
        ("mqtt-login", MQTT_PASSWORD),
    ] {
        create_secret(&s, name, &format!("--from-literal=password={value}"));
    }
    // SCRAM-SHA-512 with an MQTT password, mutual TLS, and a refused login.
    let mqtt_auth = format!(
        "    url: {}\n    auth:\n      username: bridge\n      password: {{name: mqtt-login, key: password}}\n",
        env().mqtt_url
    );
    let secure = secure_bridge(
        "secure",
        &format!("{id}-s"),
        &format!("{id}-secure"),
        "kafka-login",
    )
    .replace(&format!("    url: {}\n", env().mqtt_url), &mqtt_auth);
    s.apply(&secure);
    s.apply(&mtls_bridge(
        "mtls",
        &format!("{id}-m"),
        &format!("{id}-mtls"),
        "      ca: {name: kafka-ca, key: ca.crt}\n",
    ));
    s.apply(&secure_bridge(
        "refused",
        &format!("{id}-r"),
        &format!("{id}-refused"),
        "kafka-wrong",
    ));
    for name in ["secure", "mtls"] {
        s.wait_condition(name, "TopicsReady", |c| c["status"] == "True");
        s.wait_ready(name);
    }
    assert_eq!(describe_topic(&format!("{id}-mtls")).map(|t| t.0), Some(2));
    s.wait_condition("refused", "TopicsReady", |c| {
        c["message"]
            .as_str()
            .unwrap_or_default()
            .contains("Authentication failed")
    });

    let secrets = [
        Secret::value("the Kafka password", &env().kafka_sasl_password),
        Secret::value("the wrong Kafka password", WRONG_KAFKA_PASSWORD),
        Secret::value("the MQTT password", MQTT_PASSWORD),
        Secret::private_key("client.key", &env().tls_dir.join("client.key")),
    ];
    for what in ["configmaps", "events", "mkb", "statefulsets"] {
        let objects = kubectl_ok(&["get", what, "-n", &s.ns.0, "-o", "json"], None);
        let found = leaked(&objects, &secrets);
        assert!(found.is_empty(), "{found:?} in the {what} of the namespace");
    }
    assert_none_in_trace_log(&s.operator.process, &secrets);
    // The sweep looks where the values would be: the Secrets themselves hold them.
    let held = kubectl_ok(&["get", "secrets", "-n", &s.ns.0, "-o", "json"], None);
    assert_eq!(leaked(&held, &secrets).len(), secrets.len());
}

#[test]
fn insecure_skip_verify_is_a_warning_in_the_status_and_an_event() {
    let s = setup("sec-insecure");
    let id = unique("t");
    create_client_secret(&s);
    // No CA: only skipping verification lets the admin client in.
    s.apply(&mtls_bridge(
        "insecure",
        &format!("{id}-state"),
        &format!("{id}-insecure"),
        "      insecureSkipVerify: true\n",
    ));
    s.wait_condition("insecure", "TopicsReady", |c| c["status"] == "True");
    s.wait_ready("insecure");
    let warning = s.condition("insecure", "InsecureTls");
    assert_eq!(
        (&warning["status"], &warning["reason"]),
        (&"True".into(), &"InsecureSkipVerify".into())
    );
    let message = warning["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with(
            "spec.kafka.tls.insecureSkipVerify is set: the broker's certificate is not verified"
        ),
        "{message}"
    );
    let events = s.events();
    assert!(
        events.contains("InsecureSkipVerify")
            && events.contains("spec.kafka.tls.insecureSkipVerify is set"),
        "{events}"
    );

    kubectl_ok(
        &[
            "patch",
            "mkb",
            "insecure",
            "-n",
            &s.ns.0,
            "--type",
            "json",
            "-p",
            r#"[{"op":"add","path":"/spec/kafka/tls/insecureSkipVerify","value":false}]"#,
        ],
        None,
    );
    let refused = s.wait_condition("insecure", "TopicsReady", |c| c["status"] == "False");
    let message = refused["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("certificate verify failed"),
        "verification is back on: {message}"
    );
    assert_eq!(
        s.condition("insecure", "InsecureTls"),
        serde_json::Value::Null
    );
}

#[test]
fn a_namespace_enforcing_the_restricted_pod_security_standard_admits_the_bridge_pods() {
    let s = setup_labelled(
        "sec-restricted",
        &["pod-security.kubernetes.io/enforce=restricted"],
    );
    // The API server enforces the standard here: a root pod is refused.
    let refused = kubectl_err(
        &[
            "run",
            "root",
            "-n",
            &s.ns.0,
            "--image=busybox",
            "--restart=Never",
        ],
        None,
    );
    assert!(
        refused.contains("violates PodSecurity \"restricted:latest\""),
        "{refused}"
    );
    let id = unique("t");
    s.apply(
        &bridge_writing_to("locked", &format!("{id}-state"), "")
            .replace("replicas: 1", "replicas: 2"),
    );
    s.wait_ready("locked");
    for pod in ["locked-0", "locked-1"] {
        assert!(s.get(&format!("pod/{pod}")).is_some(), "{pod} admitted");
    }
    let events = s.events();
    assert!(!events.contains("FailedCreate"), "{events}");
}
