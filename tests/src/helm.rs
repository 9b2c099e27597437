//! `helm` of the test bed, against its API server, and the project's chart.

use std::path::PathBuf;
use std::process::{Command, Output};

use crate::{env, repo_root};

/// The operator's chart in this checkout.
pub fn chart() -> PathBuf {
    repo_root().join("charts/mqtt-kafka-bridge-operator")
}

/// Runs helm with `args`.
pub fn helm(args: &[&str]) -> Output {
    let mut command = Command::new(env().bin.join("helm"));
    command.env("KUBECONFIG", &env().kubeconfig).args(args);
    crate::process::output_with_input(&mut command, None, "helm")
}

/// Runs helm and returns its stdout; fails the test, with its output, when helm fails.
pub fn helm_ok(args: &[&str]) -> String {
    let out = helm(args);
    assert!(
        out.status.success(),
        "helm {} failed: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
