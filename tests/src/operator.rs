//! An `mkb-operator` process under test, watching one namespace.

use std::net::SocketAddr;
use std::process::Command;

use crate::bridge::{free_port, http_get, MetricsText};
use crate::env;
use crate::process::{workspace_binary, ChildProcess};

pub struct Operator {
    pub process: ChildProcess,
    pub http: SocketAddr,
}

impl Operator {
    /// Starts the operator for `namespace`, reconciling unchanged bridges every `resync` seconds.
    pub fn start(namespace: &str, resync_seconds: u64) -> Self {
        let port = free_port();
        let mut command = Command::new(workspace_binary("mkb-operator"));
        command
            .env("KUBECONFIG", &env().kubeconfig)
            .env("RUST_LOG", "info,mkb_operator=debug")
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
            ]);
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

    /// Reconciliations so far, all results.
    pub fn reconciles(&self) -> u64 {
        self.metrics()
            .0
            .lines()
            .filter(|l| l.starts_with("mkb_operator_reconciles_total"))
            .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
            .sum::<f64>() as u64
    }
}
