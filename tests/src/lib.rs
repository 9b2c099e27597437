//! Test-bed support for the integration and end-to-end suites: where the servers are
//! ([`env`]), unique names per test ([`unique`]), waiting on conditions with deadlines
//! ([`wait`]), Kafka and MQTT clients for assertions ([`kafka`], [`mqtt`]), the three-broker
//! Kafka cluster's leaders and controller ([`kafka_cluster`]), child processes
//! that dump their logs when a test fails ([`process`]), `kubectl` ([`kubectl`]), and looking
//! for leaked secret values ([`secrets`]), `helm` ([`helm`]) and the operator installed by its
//! chart onto the real node ([`in_cluster`]).
//!
//! Every test that uses it talks to the real servers `make testbed` starts.

pub mod bridge;
pub mod env;
pub mod helm;
pub mod in_cluster;
pub mod kafka;
pub mod kafka_cluster;
pub mod kubectl;
pub mod mosquitto;
pub mod mqtt;
pub mod netguard;
pub mod operator;
pub mod process;
pub mod real_node;
pub mod reliability;
pub mod secrets;
pub mod wait;

pub use env::{env, TestbedEnv};
pub use wait::{wait_until, wait_until_async, wait_until_seen, wait_until_seen_async};

use std::path::{Path, PathBuf};

use rand::distr::{Alphanumeric, SampleString};

/// The checkout's root directory, found at run time: cargo runs a test in its package's
/// directory. (Not `env!("CARGO_MANIFEST_DIR")`: clones that share the cached target directory
/// may reuse a test binary compiled in another clone, which would then find that clone's test
/// bed.)
pub fn repo_root() -> PathBuf {
    let cwd = std::env::current_dir().expect("current directory");
    cwd.ancestors()
        .find(|d| d.join("Cargo.lock").is_file() && d.join("tests/testbed").is_dir())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
}

/// A name no other test uses: `<prefix>-<8 random lowercase letters and digits>`. Valid as a
/// Kafka topic, an MQTT topic level, a consumer group and a Kubernetes namespace.
pub fn unique(prefix: &str) -> String {
    let suffix = Alphanumeric
        .sample_string(&mut rand::rng(), 8)
        .to_ascii_lowercase();
    format!("{prefix}-{suffix}")
}
