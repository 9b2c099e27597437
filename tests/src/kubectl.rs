//! `kubectl` of the test bed's Kubernetes version, against its API server.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use crate::env;

/// Runs kubectl with `args` (and `stdin`, if any).
pub fn kubectl(args: &[&str], stdin: Option<&str>) -> Output {
    let env = env();
    let mut child = Command::new(env.bin.join("kubectl"))
        .env("KUBECONFIG", &env.kubeconfig)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kubectl");
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes())
            .expect("write kubectl stdin");
    }
    child.wait_with_output().expect("kubectl output")
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
        let name = crate::unique(prefix);
        kubectl_ok(&["create", "namespace", &name], None);
        Self(name)
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = kubectl(&["delete", "namespace", &self.0, "--wait=false"], None);
    }
}
