//! mkb-operator: reconciles MqttKafkaBridge resources into StatefulSets of bridge-runtime.

mod bridge;
mod context;
mod controller;
mod desired;
mod error;
#[cfg(test)]
mod fake_api;
mod finalizer;
mod http;
mod k8s;
mod leader;
mod metrics;
mod permissions;
mod pods;
mod reconcile;
mod retirement;
mod secret_refs;
mod seen;
mod status;
mod topics;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use kube::runtime::events::Reporter;
use tracing::info;

/// The MqttKafkaBridge operator. Uses the in-cluster service account, or KUBECONFIG.
#[derive(Debug, Parser)]
#[command(name = "mkb-operator", version)]
struct Args {
    /// bridge-runtime image for bridges whose spec names none.
    #[arg(long, env = "MKB_RUNTIME_IMAGE", default_value = concat!("ghcr.io/mqtt-kafka-bridge/bridge-runtime:", env!("CARGO_PKG_VERSION")))]
    runtime_image: String,
    /// Watch only these namespaces, comma-separated (default: all). Each gets a watch of its
    /// own, so the operator needs permissions in those namespaces only.
    #[arg(long, env = "MKB_WATCH_NAMESPACE", value_delimiter = ',')]
    namespace: Vec<String>,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "MKB_LISTEN", default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
    /// Seconds between reconciliations of an unchanged bridge (drift correction).
    #[arg(long, env = "MKB_RESYNC_SECONDS", default_value_t = 300)]
    resync_seconds: u64,
    /// How many bridges are reconciled at once. Each reconciliation is a dozen API requests
    /// and a Kafka metadata request; unbounded, a burst of bridges (a GitOps sync) makes the
    /// API server slow for everyone and the operator's memory grow with the burst.
    #[arg(long, env = "MKB_CONCURRENCY", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    concurrency: u16,
    /// How many times to try deleting the topics of a deleted bridge (topicDeletionPolicy
    /// Delete) before releasing its finalizer anyway, with a Warning Event naming the topics
    /// left behind. The waits between tries double from 5 s.
    #[arg(long, env = "MKB_TOPIC_DELETION_ATTEMPTS", default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..=100))]
    topic_deletion_attempts: u32,
    /// Run only while holding the leader Lease, so several replicas can run and exactly one
    /// reconciles; the others stand by and take over when it stops or dies.
    #[arg(long, env = "MKB_LEADER_ELECT")]
    leader_elect: bool,
    /// Namespace of the leader Lease (in a pod: its own namespace).
    #[arg(long, env = "POD_NAMESPACE")]
    leader_election_namespace: Option<String>,
    /// Name of the leader Lease.
    #[arg(
        long,
        env = "MKB_LEADER_ELECTION_LEASE",
        default_value = "mkb-operator"
    )]
    leader_election_lease: String,
    /// Seconds a leader that stops renewing keeps the Lease: how long a takeover can take.
    #[arg(long, env = "MKB_LEADER_ELECTION_LEASE_SECONDS", default_value_t = 15, value_parser = clap::value_parser!(u64).range(3..=300))]
    leader_election_lease_seconds: u64,
    /// Log format: text or json. The filter comes from RUST_LOG (default info).
    #[arg(long, env = "MKB_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = if format == "json" {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}

fn main() -> ExitCode {
    let args = Args::parse();
    init_logging(&args.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mkb-operator: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!("{message}");
            eprintln!("mkb-operator: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    if let Some(bad) = args.namespace.iter().find(|n| !is_namespace_name(n)) {
        return Err(format!("--namespace: {bad:?} is not a namespace name"));
    }
    if args.leader_elect && args.leader_election_namespace.is_none() {
        return Err(
            "--leader-elect needs --leader-election-namespace (or POD_NAMESPACE): where the Lease is"
                .to_owned(),
        );
    }
    let clients = k8s::clients::connect()
        .await
        .map_err(|e| format!("cannot reach Kubernetes (in-cluster config or KUBECONFIG): {e}"))?;
    let client = clients.requests;
    let metrics = Arc::new(metrics::Metrics::new());
    metrics.set_leader(false);
    let readiness = Arc::new(permissions::Readiness::default());
    let server = http::serve(args.listen, metrics.clone(), readiness.clone())
        .await
        .map_err(|e| format!("--listen {}: {e}", args.listen))?;
    let scopes = permissions::Scopes {
        watched: args.namespace.clone(),
        lease_namespace: args
            .leader_elect
            .then(|| args.leader_election_namespace.clone())
            .flatten(),
    };
    let checks = tokio::spawn(permissions::keep_checking(
        client.clone(),
        scopes,
        readiness,
    ));
    let reporter = Reporter {
        controller: "mkb-operator".to_owned(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let ctx = Arc::new(context::Context::new(
        client,
        reporter,
        metrics.clone(),
        args.runtime_image.clone(),
        Duration::from_secs(args.resync_seconds.max(1)),
        args.topic_deletion_attempts,
    ));
    info!(image = %args.runtime_image, namespace = ?args.namespace, listen = %args.listen, "mkb-operator started");
    if !args.leader_elect {
        metrics.set_leader(true);
        controller::run(ctx, clients.watches, args.namespace, args.concurrency).await;
        server.abort();
        checks.abort();
        info!("mkb-operator stopped");
        return Ok(());
    }
    let namespace = args.leader_election_namespace.clone().unwrap_or_default();
    let elector = leader::Elector::new(
        ctx.client.clone(),
        leader::LeaseConfig {
            namespace,
            name: args.leader_election_lease.clone(),
            identity: leader::identity(),
            duration: Duration::from_secs(args.leader_election_lease_seconds),
        },
    );
    tokio::select! {
        () = elector.acquire() => {}
        () = shutdown_signal() => {
            server.abort();
            checks.abort();
            info!("mkb-operator stopped before it led");
            return Ok(());
        }
    }
    metrics.set_leader(true);
    let result = tokio::select! {
        () = controller::run(ctx, clients.watches, args.namespace, args.concurrency) => {
            elector.release().await;
            Ok(())
        }
        () = elector.hold() => Err("lost the leader Lease; stopping so that only one replica reconciles".to_owned()),
    };
    server.abort();
    checks.abort();
    info!("mkb-operator stopped");
    result
}

/// A DNS label, as namespace names are.
fn is_namespace_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// SIGTERM or SIGINT.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}
