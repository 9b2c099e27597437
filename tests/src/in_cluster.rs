//! The operator as users run it: `helm install`ed into a namespace of its own, its pods on the
//! test bed's real node from the image `make images` built, reaching the API server through
//! the Service `kubernetes` and the brokers by their Service names. The bridges of the tests
//! that use it run on the real node too.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::bridge::{http_get, MetricsText};
use crate::helm::{chart, helm, helm_ok};
use crate::kubectl::{ensure_crd, get_json, kubectl, Namespace};
use crate::{env, repo_root, wait_until_seen};

/// The release name; the chart's objects are named after it.
pub const RELEASE: &str = "mkb";
/// The chart's full name for release `mkb`: the Deployment, the Lease, the ServiceAccount.
pub const FULLNAME: &str = "mkb-mqtt-kafka-bridge-operator";
/// How long an install, an upgrade or a rollout may take.
pub const ROLLOUT: Duration = Duration::from_secs(180);
/// Resync period of the installed operators (the chart's default is five minutes).
pub const RESYNC_SECONDS: u32 = 4;

/// A namespace with the operator installed in it by the chart, watching that namespace only.
/// Bridges and operator pods meet the restricted Pod Security Standard (the namespace enforces
/// it). Dropping it uninstalls the release, and the namespace goes.
pub struct ChartOperator {
    pub ns: Namespace,
    installed: bool,
}

impl std::ops::Deref for ChartOperator {
    type Target = Namespace;
    fn deref(&self) -> &Namespace {
        &self.ns
    }
}

/// `helm install` or `helm upgrade` (`verb`) of the chart as release `mkb` in `ns`, with the
/// operator placed on the real node and watching `ns`, then `extra` helm arguments.
fn helm_release(verb: &str, ns: &str, extra: &[&str]) {
    let chart = chart();
    let values = repo_root().join("examples/testbed/operator-values.yaml");
    let watch = format!("watchNamespaces={{{ns}}}");
    let resync = format!("resyncSeconds={RESYNC_SECONDS}");
    let mut args = vec![
        verb,
        RELEASE,
        chart.to_str().expect("a UTF-8 path"),
        "-n",
        ns,
        "-f",
        values.to_str().expect("a UTF-8 path"),
        "--set",
        &watch,
        "--set",
        &resync,
        "--set",
        "logging.level=info\\,mkb_operator=debug",
    ];
    args.extend_from_slice(extra);
    helm_ok(&args);
}

impl ChartOperator {
    /// A fresh namespace (`prefix-…`) and `helm install` of the chart into it, with
    /// `extra` helm arguments (`--set key=value`, …). Returns once every operator pod is Ready.
    pub fn install(prefix: &str, extra: &[&str]) -> Self {
        let this = Self::install_no_wait(prefix, extra);
        this.wait_rolled_out();
        this
    }

    /// As `install`, without waiting for the pods (for installs that are not meant to work).
    pub fn install_no_wait(prefix: &str, extra: &[&str]) -> Self {
        ensure_crd();
        let ns =
            Namespace::create_labelled(prefix, &["pod-security.kubernetes.io/enforce=restricted"]);
        helm_release("install", &ns.0, extra);
        Self {
            ns,
            installed: true,
        }
    }

    /// `helm upgrade` of the release with the test's values and `extra`, and waits until the
    /// Deployment rolled out.
    pub fn upgrade(&self, extra: &[&str]) {
        helm_release("upgrade", &self.0, extra);
        self.wait_rolled_out();
    }

    /// `helm uninstall --wait`: the operator's objects are gone when it returns.
    pub fn uninstall(&mut self) {
        helm_ok(&[
            "uninstall",
            RELEASE,
            "-n",
            &self.0,
            "--wait",
            "--timeout",
            "120s",
        ]);
        self.installed = false;
    }

    /// Waits until the Deployment's pods of its current template are all Ready (and no old
    /// one is left), as `kubectl rollout status` does.
    pub fn wait_rolled_out(&self) {
        let start = Instant::now();
        wait_until_seen("the operator's Deployment to roll out", ROLLOUT, || {
            let d = self
                .get(&format!("deployment/{FULLNAME}"))
                .unwrap_or(Value::Null);
            let want = &d["spec"]["replicas"];
            let s = &d["status"];
            let done = d["metadata"]["generation"] == s["observedGeneration"]
                && s["updatedReplicas"] == *want
                && s["readyReplicas"] == *want
                && s["replicas"] == *want;
            if done {
                Ok(())
            } else {
                Err(format!("{s}; pods: {}", self.pod_summary()))
            }
        });
        eprintln!("operator rolled out in {:.1?}", start.elapsed());
    }

    /// The operator's pods (not terminating), as JSON.
    pub fn pods(&self) -> Vec<Value> {
        get_json(&[
            "pods",
            "-n",
            &self.0,
            "-l",
            &format!("app.kubernetes.io/instance={RELEASE},app.kubernetes.io/name=mkb-operator"),
        ])
        .and_then(|list| list["items"].as_array().cloned())
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .collect()
    }

    /// One line per operator pod: name, node, phase, ready, waiting reason.
    pub fn pod_summary(&self) -> String {
        self.pods()
            .iter()
            .map(|p| {
                let c = &p["status"]["containerStatuses"][0];
                format!(
                    "{} on {} {} ready={} {}",
                    p["metadata"]["name"].as_str().unwrap_or_default(),
                    p["spec"]["nodeName"].as_str().unwrap_or("-"),
                    p["status"]["phase"].as_str().unwrap_or_default(),
                    c["ready"],
                    c["state"]["waiting"]["reason"].as_str().unwrap_or_default(),
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The holder of the leader Lease, if any.
    pub fn leader(&self) -> Option<String> {
        self.get(&format!("lease/{FULLNAME}"))
            .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_owned))
            .filter(|h| !h.is_empty())
    }

    /// The pod holding the leader Lease; fails the test when none does.
    pub fn leader_pod(&self) -> Value {
        let leader = wait_until_seen("an operator pod to lead", ROLLOUT, || {
            self.leader().ok_or_else(|| self.pod_summary())
        });
        self.get(&format!("pod/{leader}"))
            .unwrap_or_else(|| panic!("the leader {leader} has no pod"))
    }

    /// The leading operator's `/metrics`, asked over the pod network.
    pub fn metrics(&self) -> MetricsText {
        let pod = self.leader_pod();
        let ip: std::net::IpAddr = pod["status"]["podIP"]
            .as_str()
            .and_then(|ip| ip.parse().ok())
            .unwrap_or_else(|| panic!("the leader pod has no IP: {}", pod["status"]));
        MetricsText(
            http_get((ip, 8080).into(), "/metrics")
                .map(|(_, body)| body)
                .unwrap_or_default(),
        )
    }

    /// Kills the leading operator's container with SIGKILL (containerd's `ctr tasks kill`: no
    /// grace period, no clean shutdown), as a crash would; the kubelet restarts it in the
    /// same pod.
    pub fn kill9_leader(&self) {
        let pod = self.leader_pod();
        let status = &pod["status"]["containerStatuses"][0];
        let id = status["containerID"]
            .as_str()
            .and_then(|id| id.strip_prefix("containerd://"))
            .unwrap_or_else(|| panic!("no containerd container id: {status}"));
        let socket = env().dir.join("node/containerd/containerd.sock");
        let out = std::process::Command::new(env().bin.join("ctr"))
            .args([
                "--address",
                &socket.display().to_string(),
                "--namespace",
                "k8s.io",
            ])
            .args(["tasks", "kill", "--signal", "SIGKILL", id])
            .output()
            .expect("run ctr");
        assert!(
            out.status.success(),
            "ctr tasks kill {id}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The operator pods' logs (all containers, including a previous, crashed one).
    pub fn logs(&self) -> String {
        let mut text = String::new();
        for pod in self.pods() {
            let name = pod["metadata"]["name"].as_str().unwrap_or_default();
            let out = kubectl(&["logs", "-n", &self.0, name, "--tail", "200"], None);
            text.push_str(&format!(
                "--- {name}\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        text
    }
}

impl Drop for ChartOperator {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "operator pods in {}: {}\n{}",
                self.0,
                self.pod_summary(),
                self.logs()
            );
        }
        if self.installed {
            let _ = helm(&["uninstall", RELEASE, "-n", &self.0, "--wait=false"]);
        }
    }
}
