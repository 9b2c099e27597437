//! The test bed works: Kubernetes of the pinned version with KWOK nodes that run pods, the
//! project's CRD with its schema and CEL rules, Kafka and Mosquitto.

use std::time::Duration;

use testbed::kafka::{self, Outgoing};
use testbed::kubectl::{ensure_crd, kubectl, kubectl_err, kubectl_ok, Namespace, CRD_MANAGER};
use testbed::mqtt::{Publisher, Subscriber};
use testbed::{env, unique, wait_until};

fn crd_path() -> String {
    testbed::repo_root()
        .join("crds/mqttkafkabridges.mqttkafka.io.yaml")
        .display()
        .to_string()
}
const SMART_LOCKS: &str = include_str!("../../examples/smart-locks.yaml");

/// `ip route get ADDRESS [ARGS]`: what the host would do with a packet, without sending one.
fn route_of(address: &str, args: &[&str]) -> String {
    let out = std::process::Command::new("ip")
        .args(["route", "get", address])
        .args(args)
        .output()
        .expect("ip runs");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Nothing the test bed declares is routed off the machine: KWOK's pod IPs and the Service
/// range are unreachable (or, without root, on loopback), and what the real node's pods send
/// to an address outside the pod network and the host is not forwarded out.
#[test]
fn declared_ranges_and_pod_traffic_stay_on_the_machine() {
    let default_route = String::from_utf8_lossy(
        &std::process::Command::new("ip")
            .args(["route", "show", "default"])
            .output()
            .expect("ip runs")
            .stdout,
    )
    .into_owned();
    let gateway = default_route
        .split_whitespace()
        .skip_while(|w| *w != "via")
        .nth(1)
        .map(|g| format!("via {g} "));
    let leaves = |route: &str| gateway.as_ref().is_some_and(|g| route.contains(g.as_str()));
    assert_eq!(
        env().unserved_ranges.len(),
        2,
        "{:?}",
        env().unserved_ranges
    );
    for range in &env().unserved_ranges {
        let cidr: testbed::netguard::Cidr = range.parse().expect("a range");
        let address = cidr.nth(5).expect("an IPv4 range").to_string();
        let route = route_of(&address, &[]);
        assert!(
            !leaves(&route),
            "{address} of {range} goes off the machine: {route}"
        );
        assert!(
            route.contains("No route to host") || route.starts_with("local "),
            "{address} of {range}: {route}"
        );
    }
    if env().real_node.is_some() {
        let pod = env().networks[0]
            .parse::<testbed::netguard::Cidr>()
            .expect("a range");
        let from = pod.nth(200).expect("an address").to_string();
        for outside in ["203.0.113.80", "10.244.0.5", "192.168.1.1"] {
            let route = route_of(outside, &["from", &from, "iif", "mkb0"]);
            assert!(
                !leaves(&route),
                "a pod's packet to {outside} is forwarded off the machine: {route}"
            );
        }
    }
}

#[test]
fn kubernetes_reports_the_pinned_version_and_two_ready_nodes() {
    let version: serde_json::Value =
        serde_json::from_str(&kubectl_ok(&["version", "-o", "json"], None)).expect("json");
    assert_eq!(
        version["serverVersion"]["gitVersion"],
        env().kubernetes_version.as_str()
    );
    assert_ne!(version["serverVersion"]["gitVersion"], "v0.0.0");
    let ready = kubectl_ok(
        &["get", "nodes", "-o", "jsonpath={range .items[*]}{.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}{end}"],
        None,
    );
    assert!(
        ready.lines().filter(|s| *s == "True").count() >= 2,
        "ready nodes: {ready:?}"
    );
}

#[test]
fn crd_applies_server_side_without_drift_and_explains_itself() {
    ensure_crd();
    // What the API server stored equals the file: GitOps tools show no drift.
    let crd = crd_path();
    let diff = kubectl(
        &[
            "diff",
            "--server-side",
            "--field-manager",
            CRD_MANAGER,
            "-f",
            &crd,
        ],
        None,
    );
    assert_eq!(
        diff.status.code(),
        Some(0),
        "drift after apply:\n{}",
        String::from_utf8_lossy(&diff.stdout)
    );
    // The API server publishes a new CRD's OpenAPI a moment after it is established.
    let explain = wait_until(
        "kubectl explain to know the CRD",
        Duration::from_secs(60),
        || {
            let out = kubectl(&["explain", "mqttkafkabridge.spec"], None);
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
        },
    );
    assert!(
        explain.contains("Routes from MQTT topic filters to Kafka topics"),
        "{explain}"
    );
    let explain = kubectl_ok(
        &["explain", "mqttkafkabridge.spec.mqttToKafka.kafka.key"],
        None,
    );
    assert!(explain.contains("Record key template"), "{explain}");
}

#[test]
fn sample_bridge_is_accepted_and_invalid_ones_are_rejected() {
    ensure_crd();
    let ns = Namespace::create("smoke-crd");
    kubectl_ok(&["apply", "-n", &ns.0, "-f", "-"], Some(SMART_LOCKS));
    let stored = kubectl_ok(
        &[
            "get",
            "mkb",
            "smart-locks",
            "-n",
            &ns.0,
            "-o",
            "jsonpath={.spec.mqttToKafka[0].mqtt.shared}",
        ],
        None,
    );
    assert_eq!(stored, "true", "the schema default applies");

    let not_shared = SMART_LOCKS.replace("replicas: 1", "replicas: 2").replace(
        "        qos: 1\n      kafka:",
        "        qos: 1\n        shared: false\n      kafka:",
    );
    let err = kubectl_err(
        &["apply", "-n", &ns.0, "-f", "-"],
        Some(&not_shared.replace("name: smart-locks", "name: not-shared")),
    );
    assert!(
        err.contains("replicas > 1 requires mqtt.shared: true"),
        "{err}"
    );

    let duplicate = SMART_LOCKS
        .replace("- name: lock-command", "- name: lock-state")
        .replace("name: smart-locks", "name: duplicate");
    let err = kubectl_err(&["apply", "-n", &ns.0, "-f", "-"], Some(&duplicate));
    assert!(err.contains("route names must be unique"), "{err}");

    let bad_qos = SMART_LOCKS
        .replace(
            "        qos: 1\n      kafka:",
            "        qos: 3\n      kafka:",
        )
        .replace("name: smart-locks", "name: bad-qos");
    let err = kubectl_err(&["apply", "-n", &ns.0, "-f", "-"], Some(&bad_qos));
    assert!(err.contains("spec.mqttToKafka[0].mqtt.qos"), "{err}");

    let no_routes = "apiVersion: mqttkafka.io/v1alpha1\nkind: MqttKafkaBridge\nmetadata: {name: empty}\nspec:\n  mqtt: {url: 'mqtt://m'}\n  kafka: {bootstrapServers: 'k:9092'}\n";
    let err = kubectl_err(&["apply", "-n", &ns.0, "-f", "-"], Some(no_routes));
    assert!(err.contains("the bridge has no routes"), "{err}");
}

#[test]
fn statefulset_with_two_replicas_becomes_ready() {
    let ns = Namespace::create("smoke-sts");
    let manifest = r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web}
spec:
  replicas: 2
  serviceName: web
  podManagementPolicy: Parallel
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: registry.invalid/web:1}]
"#;
    kubectl_ok(&["apply", "-n", &ns.0, "-f", "-"], Some(manifest));
    wait_until(
        "StatefulSet web to have 2 ready replicas",
        Duration::from_secs(60),
        || {
            let ready = kubectl_ok(
                &[
                    "get",
                    "sts",
                    "web",
                    "-n",
                    &ns.0,
                    "-o",
                    "jsonpath={.status.readyReplicas}",
                ],
                None,
            );
            (ready == "2").then_some(())
        },
    );
}

#[tokio::test]
async fn kafka_record_is_consumed_back() {
    let topic = unique("smoke");
    kafka::create_topic(&topic, 2).await;
    kafka::produce(
        &topic,
        [Outgoing {
            key: Some(b"k"),
            value: b"hello kafka",
            headers: vec![("h", b"v")],
        }],
    )
    .await;
    let records = kafka::wait_for_records(&topic, 1, Duration::from_secs(30)).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].value_str(), "hello kafka");
    assert_eq!(records[0].key_str(), "k");
    assert_eq!(records[0].header("h"), Some(&b"v"[..]));
}

#[tokio::test]
async fn mqtt_publish_reaches_a_subscriber() {
    let topic = format!("smoke/{}", unique("t"));
    let subscriber = Subscriber::connect(&unique("smoke-sub"), &[&topic], 1).await;
    let publisher = Publisher::connect(&unique("smoke-pub")).await;
    publisher.publish(&topic, 1, "hello mqtt").await;
    publisher.wait_acked(1, Duration::from_secs(10)).await;
    let got = subscriber.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got[0].topic, topic);
    assert_eq!(got[0].payload, b"hello mqtt");
}

/// One DNS query for the A record of `name` to `server` (UDP); returns the response code and
/// the addresses answered.
fn dns_a(server: &str, name: &str) -> (u8, Vec<std::net::Ipv4Addr>) {
    let mut query = vec![0x4d, 0x4b, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        query.push(label.len() as u8);
        query.extend_from_slice(label.as_bytes());
    }
    query.extend_from_slice(&[0, 0, 1, 0, 1]);
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").expect("a UDP socket");
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("a timeout");
    socket.send_to(&query, server).expect("send the query");
    let mut buf = [0u8; 512];
    let (len, _) = socket
        .recv_from(&mut buf)
        .unwrap_or_else(|e| panic!("no answer from {server} for {name}: {e}"));
    let response = &buf[..len];
    assert_eq!(&response[..2], &query[..2], "the answer to our query");
    let rcode = response[3] & 0x0f;
    let answers = u16::from_be_bytes([response[6], response[7]]);
    // The question comes back as it was sent; each answer is a name (labels, or a pointer to
    // one), type, class, TTL, length and the data.
    let mut at = query.len();
    let mut addresses = Vec::new();
    for _ in 0..answers {
        loop {
            let b = response[at];
            if b & 0xc0 == 0xc0 {
                at += 2;
                break;
            }
            at += 1 + usize::from(b);
            if b == 0 {
                break;
            }
        }
        let rtype = u16::from_be_bytes([response[at], response[at + 1]]);
        let rdlen = usize::from(u16::from_be_bytes([response[at + 8], response[at + 9]]));
        let data = &response[at + 10..at + 10 + rdlen];
        if rtype == 1 && rdlen == 4 {
            addresses.push(std::net::Ipv4Addr::new(data[0], data[1], data[2], data[3]));
        }
        at += 10 + rdlen;
    }
    (rcode, addresses)
}

#[test]
fn the_cluster_dns_answers_service_names_and_no_other_name() {
    if env().real_node.is_none() {
        eprintln!("no real node, so no cluster DNS: skipped");
        return;
    }
    let dns = "10.88.0.1:53";
    let (rcode, api) = dns_a(dns, "kubernetes.default.svc.cluster.local");
    assert_eq!(
        (rcode, api),
        (0, vec![[10, 96, 0, 1].into()]),
        "the API server's Service"
    );
    for name in [
        "mosquitto.iot.svc.cluster.local",
        "kafka-bootstrap.kafka.svc.cluster.local",
    ] {
        let (rcode, addresses) = dns_a(dns, name);
        assert!(
            rcode == 0 && addresses.len() == 1,
            "{name}: rcode {rcode}, {addresses:?}"
        );
        let service = name.split('.').take(2).collect::<Vec<_>>();
        let cluster_ip = kubectl_ok(
            &[
                "get",
                "service",
                service[0],
                "-n",
                service[1],
                "-o",
                "jsonpath={.spec.clusterIP}",
            ],
            None,
        );
        assert_eq!(addresses[0].to_string(), cluster_ip, "{name}");
    }
    // Forwarding nothing: a name outside the cluster is NXDOMAIN (3), answered here.
    let (rcode, addresses) = dns_a(dns, "example.com");
    assert_eq!(
        (rcode, addresses),
        (3, vec![]),
        "example.com is not forwarded"
    );
}
