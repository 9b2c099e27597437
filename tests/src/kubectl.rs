//! `kubectl` of the test bed's Kubernetes version, against its API server.

use std::process::{Command, Output};

use crate::env;

/// Runs kubectl with `args` (and `stdin`, if any).
pub fn kubectl(args: &[&str], stdin: Option<&str>) -> Output {
    let env = env();
    let mut command = Command::new(env.bin.join("kubectl"));
    command.env("KUBECONFIG", &env.kubeconfig).args(args);
    crate::process::output_with_input(&mut command, stdin, "kubectl")
}

/// Runs kubectl and returns its stdout; fails the test, with stderr, when kubectl fails.
pub fn kubectl_ok(args: &[&str], stdin: Option<&str>) -> String {
    let out = kubectl(args, stdin);
    assert!(
        out.status.success(),
        "kubectl {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs kubectl expecting it to fail; returns its stderr.
pub fn kubectl_err(args: &[&str], stdin: Option<&str>) -> String {
    let out = kubectl(args, stdin);
    assert!(
        !out.status.success(),
        "kubectl {} should have failed; it printed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A namespace for one test, deleted (without waiting) when dropped.
pub struct Namespace(pub String);

impl Namespace {
    pub fn create(prefix: &str) -> Self {
        Self::create_labelled(prefix, &[])
    }

    /// A namespace created with `labels` (`key=value`) in one request, so admission sees
    /// them before anything is created in it.
    pub fn create_labelled(prefix: &str, labels: &[&str]) -> Self {
        let name = crate::unique(prefix);
        let labels: serde_json::Map<String, serde_json::Value> = labels
            .iter()
            .map(|l| {
                let (k, v) = l
                    .split_once('=')
                    .unwrap_or_else(|| panic!("label {l:?} is not key=value"));
                (k.to_owned(), v.into())
            })
            .collect();
        let namespace = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": labels},
        });
        kubectl_ok(&["create", "-f", "-"], Some(&namespace.to_string()));
        Self(name)
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = kubectl(&["delete", "namespace", &self.0, "--wait=false"], None);
    }
}

/// `kubectl get <what> -o json`, parsed; `None` when it does not exist.
pub fn get_json(args: &[&str]) -> Option<serde_json::Value> {
    let mut full = vec!["get"];
    full.extend_from_slice(args);
    full.extend_from_slice(&["-o", "json"]);
    let out = kubectl(&full, None);
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

/// The field manager the suites apply the CRD with.
pub const CRD_MANAGER: &str = "mkb-tests";

/// Applies the project's CRD (server-side) once per test process and waits until it is
/// established and served.
pub fn ensure_crd() {
    static APPLIED: std::sync::Once = std::sync::Once::new();
    APPLIED.call_once(|| {
        let crd = crate::repo_root().join("crds/mqttkafkabridges.mqttkafka.io.yaml");
        let crd = crd.to_str().expect("a UTF-8 path");
        // The suites own the test bed's CRD: take over fields an earlier version of the file
        // (or an earlier manager name) left behind, so a changed CRD applies.
        kubectl_ok(
            &[
                "apply",
                "--server-side",
                "--force-conflicts",
                "--field-manager",
                CRD_MANAGER,
                "-f",
                crd,
            ],
            None,
        );
        // `kubectl wait`, and a jsonpath filter, fail instead of waiting while the CRD has no
        // conditions yet: a failed read is "not yet".
        crate::wait_until(
            "the CRD to be established",
            std::time::Duration::from_secs(60),
            || {
                let jsonpath = "jsonpath={.status.conditions[?(@.type==\"Established\")].status}";
                let out = kubectl(
                    &[
                        "get",
                        "crd",
                        "mqttkafkabridges.mqttkafka.io",
                        "-o",
                        jsonpath,
                    ],
                    None,
                );
                (out.status.success() && out.stdout == b"True").then_some(())
            },
        );
    });
}
