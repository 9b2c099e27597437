//! Credentials from Secrets end to end: the operator's Kafka admin client logs in over
//! SASL_SSL (SCRAM-SHA-512, the CA from a Secret) to manage topics; a wrong password shows in
//! the status with Kafka's answer and never the value; a missing Secret or key is named in
//! the status and an Event, and nothing is rolled out until it is there.

use testbed::kafka::describe_topic;
use testbed::kubectl::kubectl_ok;
use testbed::operator::{bridge_writing_to, setup, Setup};
use testbed::{env, unique};

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

    let wrong = "wrong-kafka-Pa55word-7c1d";
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
