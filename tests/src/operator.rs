//! An `mkb-operator` process under test, watching one namespace.
//!
//! A host process, not the chart's pod (`crate::in_cluster`), because of what these suites do:
//! their bridges run on the KWOK nodes (hundreds of them, for scale and status tests) against
//! the brokers on 127.0.0.1, which a pod cannot reach; they kill -9 the operator, restart the
//! API server under it, start it with per-test flags (a traced log, another identity's
//! kubeconfig) and read its log and metrics directly. What a pod can do — the install path,
//! hand-over by pod deletion, upgrades, bridges on the real node — is tested with the operator
//! installed by its chart (tests/e2e/in_cluster.rs, operator/tests/real_node.rs).

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::bridge::{free_port, http_get, MetricsText};
use crate::kubectl::{ensure_crd, get_json, kubectl_ok, Namespace};
use crate::process::{workspace_binary, ChildProcess};
use crate::{env, wait_until_seen};

/// How long end-to-end tests wait for the operator and Kubernetes.
pub const WAIT: Duration = Duration::from_secs(90);
/// The operator's resync period in end-to-end tests.
pub const RESYNC_SECONDS: u64 = 4;

pub struct Operator {
    pub process: ChildProcess,
    pub http: SocketAddr,
}

impl Operator {
    /// Starts the operator for `namespace`, reconciling unchanged bridges every `resync` seconds.
    pub fn start(namespace: &str, resync_seconds: u64) -> Self {
        Self::start_with(namespace, resync_seconds, &[])
    }

    /// As `start`, with extra arguments.
    pub fn start_with(namespace: &str, resync_seconds: u64, extra: &[&str]) -> Self {
        Self::start_as(namespace, &env().kubeconfig, resync_seconds, extra)
    }

    /// As `start_with`, with the identity and cluster of another kubeconfig.
    pub fn start_as(
        namespace: &str,
        kubeconfig: &std::path::Path,
        resync_seconds: u64,
        extra: &[&str],
    ) -> Self {
        Self::spawn(
            namespace,
            kubeconfig,
            resync_seconds,
            extra,
            "info,mkb_operator=debug",
        )
    }

    /// As `start`, logging everything at trace level (to look for leaked secrets).
    pub fn start_traced(namespace: &str) -> Self {
        Self::spawn(namespace, &env().kubeconfig, RESYNC_SECONDS, &[], "trace")
    }

    fn spawn(
        namespace: &str,
        kubeconfig: &std::path::Path,
        resync_seconds: u64,
        extra: &[&str],
        rust_log: &str,
    ) -> Self {
        let port = free_port();
        let mut command = Command::new(workspace_binary("mkb-operator"));
        command
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", rust_log)
            .args([
                "--namespace",
                namespace,
                "--runtime-image",
                "bridge-runtime:e2e",
            ])
            .args([
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--resync-seconds",
                &resync_seconds.to_string(),
            ])
            .args(extra);
        let process = ChildProcess::spawn(&format!("operator-{namespace}"), command);
        Self {
            process,
            http: ([127, 0, 0, 1], port).into(),
        }
    }

    pub fn metrics(&self) -> MetricsText {
        MetricsText(
            http_get(self.http, "/metrics")
                .map(|(_, b)| b)
                .unwrap_or_default(),
        )
    }

    /// Full reconciliations so far, all results (not the requests answered as `unchanged`).
    pub fn reconciles(&self) -> u64 {
        self.metrics()
            .sum("mkb_operator_reconcile_duration_seconds_count") as u64
    }
}

/// The head of a bridge manifest against the test bed's brokers, up to `spec.kafka`
/// (`kafka_extra` is YAML under it, indented by four spaces); the routes follow.
pub fn bridge_head(name: &str, replicas: i32, kafka_extra: &str) -> String {
    let env = env();
    format!(
        r#"apiVersion: mqttkafka.io/v1alpha1
kind: MqttKafkaBridge
metadata:
  name: {name}
spec:
  replicas: {replicas}
  mqtt:
    url: {mqtt}
  kafka:
    bootstrapServers: {kafka}
{kafka_extra}
"#,
        mqtt = env.mqtt_url,
        kafka = env.kafka_bootstrap,
    )
}

/// A one-replica bridge against the test bed's brokers whose one MQTT → Kafka route writes
/// `name/devices/+/state` to `topic`; `kafka_extra` is YAML under `spec.kafka`, indented by
/// four spaces.
pub fn bridge_writing_to(name: &str, topic: &str, kafka_extra: &str) -> String {
    format!(
        r#"{}  mqttToKafka:
    - name: state
      mqtt:
        topicFilters: ["{name}/devices/+/state"]
      kafka:
        topic: {topic}
"#,
        bridge_head(name, 1, kafka_extra)
    )
}

/// A namespace of its own and an operator watching only it.
pub struct Setup {
    pub ns: Namespace,
    pub operator: Operator,
}

/// The CRD applied, a fresh namespace, and an operator for it.
pub fn setup(prefix: &str) -> Setup {
    setup_with(prefix, &[])
}

/// As `setup`, with extra operator arguments.
pub fn setup_with(prefix: &str, operator_args: &[&str]) -> Setup {
    ensure_crd();
    let ns = Namespace::create(prefix);
    let operator = Operator::start_with(&ns.0, RESYNC_SECONDS, operator_args);
    Setup { ns, operator }
}

/// The operator's own default resync period (`--resync-seconds`).
pub const DEFAULT_RESYNC_SECONDS: u64 = 300;

/// As `setup`, with the operator's default resync period instead of the tests' short one.
/// For many bridges: every resync is a full reconciliation (a dozen API requests), so 200
/// bridges at `RESYNC_SECONDS` ask for 50 a second, more than the operator and the test bed's
/// API server serve, and bridges not yet reconciled wait behind them.
pub fn setup_default_resync(prefix: &str) -> Setup {
    ensure_crd();
    let ns = Namespace::create(prefix);
    let operator = Operator::start(&ns.0, DEFAULT_RESYNC_SECONDS);
    Setup { ns, operator }
}

/// As `setup`, with the operator logging everything at trace level.
pub fn setup_traced(prefix: &str) -> Setup {
    ensure_crd();
    let ns = Namespace::create(prefix);
    let operator = Operator::start_traced(&ns.0);
    Setup { ns, operator }
}

/// As `setup`, in a namespace that carries `labels` (`key=value`) from its creation on.
pub fn setup_labelled(prefix: &str, labels: &[&str]) -> Setup {
    ensure_crd();
    let ns = Namespace::create_labelled(prefix, labels);
    let operator = Operator::start(&ns.0, RESYNC_SECONDS);
    Setup { ns, operator }
}

/// What a test does in its namespace goes through the setup too.
impl std::ops::Deref for Setup {
    type Target = Namespace;
    fn deref(&self) -> &Namespace {
        &self.ns
    }
}

/// Bridges and their objects in a test's namespace, whoever runs the operator.
impl Namespace {
    pub fn apply(&self, yaml: &str) {
        kubectl_ok(&["apply", "-n", &self.0, "-f", "-"], Some(yaml));
    }

    pub fn get(&self, what: &str) -> Option<Value> {
        get_json(&[what, "-n", &self.0])
    }

    pub fn bridge(&self, name: &str) -> Value {
        self.get(&format!("mkb/{name}")).unwrap_or(Value::Null)
    }

    pub fn condition(&self, name: &str, type_: &str) -> Value {
        condition_of(&self.bridge(name), type_)
    }

    /// Waits until the bridge's condition `type_` satisfies `holds`; returns it. On timeout
    /// the failure shows the condition as last seen.
    pub fn wait_condition(&self, name: &str, type_: &str, holds: impl Fn(&Value) -> bool) -> Value {
        wait_until_seen(&format!("bridge {name}: condition {type_}"), WAIT, || {
            let c = self.condition(name, type_);
            if holds(&c) {
                Ok(c)
            } else {
                Err(c.to_string())
            }
        })
    }

    /// Waits until the bridge is Ready=True for its current generation; returns the bridge,
    /// as read in the check (one read: a second one could differ from what was checked).
    /// Waits until the bridge is Ready for its generation. On timeout the failure shows the
    /// bridge's status and its StatefulSet's, as last seen.
    pub fn wait_ready(&self, name: &str) -> Value {
        wait_until_seen(&format!("bridge {name} to be Ready"), WAIT, || {
            let bridge = self.bridge(name);
            let generation = bridge["metadata"]["generation"].clone();
            let ready = condition_of(&bridge, "Ready");
            if ready["status"] == "True"
                && ready["observedGeneration"] == generation
                && bridge["status"]["observedGeneration"] == generation
            {
                return Ok(bridge);
            }
            let sts = self.get(&format!("statefulset/{name}"));
            Err(format!(
                "generation {generation}, bridge status {}, StatefulSet status {}",
                bridge["status"],
                sts.as_ref().map_or(Value::Null, |s| s["status"].clone())
            ))
        })
    }

    /// The object's `metadata.generation`: it changes with its spec, not with its status.
    pub fn generation(&self, what: &str) -> String {
        self.get(what)
            .map(|v| v["metadata"]["generation"].to_string())
            .unwrap_or_default()
    }

    pub fn resource_version(&self, what: &str) -> String {
        self.get(what)
            .map(|v| v["metadata"]["resourceVersion"].to_string())
            .unwrap_or_default()
    }

    pub fn config_hash(&self, name: &str) -> String {
        let sts = self
            .get(&format!("statefulset/{name}"))
            .unwrap_or(Value::Null);
        sts["spec"]["template"]["metadata"]["annotations"]["mqttkafka.io/config-hash"].to_string()
    }

    pub fn events(&self) -> String {
        kubectl_ok(
            &[
                "get",
                "events",
                "-n",
                &self.0,
                "-o",
                "custom-columns=REASON:.reason,MESSAGE:.message",
            ],
            None,
        )
    }
}

/// How many bridges of a `kubectl get mkb` list are Ready for their current generation.
pub fn ready_bridges(list: &Value) -> usize {
    list["items"].as_array().map_or(0, |items| {
        items
            .iter()
            .filter(|b| {
                let c = condition_of(b, "Ready");
                c["status"] == "True" && c["observedGeneration"] == b["metadata"]["generation"]
            })
            .count()
    })
}

/// The condition of type `type_` in a bridge's status (Null when absent).
pub fn condition_of(bridge: &Value, type_: &str) -> Value {
    bridge["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_).cloned())
        .unwrap_or(Value::Null)
}
