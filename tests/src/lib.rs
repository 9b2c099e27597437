//! Test-bed support for the integration and end-to-end suites: where the servers are
//! ([`env`]), unique names per test ([`unique`]), waiting on conditions with deadlines
//! ([`wait`]), Kafka and MQTT clients for assertions ([`kafka`], [`mqtt`]), child processes
//! that dump their logs when a test fails ([`process`]), and `kubectl` ([`kubectl`]).
//!
//! Every test that uses it talks to the real servers `make testbed` starts.

pub mod bridge;
pub mod env;
pub mod kafka;
pub mod kubectl;
pub mod mqtt;
pub mod operator;
pub mod process;
pub mod wait;

pub use env::{env, TestbedEnv};
pub use wait::{wait_until, wait_until_async};

use rand::distr::{Alphanumeric, SampleString};

/// A name no other test uses: `<prefix>-<8 random lowercase letters and digits>`. Valid as a
/// Kafka topic, an MQTT topic level, a consumer group and a Kubernetes namespace.
pub fn unique(prefix: &str) -> String {
    let suffix = Alphanumeric
        .sample_string(&mut rand::rng(), 8)
        .to_ascii_lowercase();
    format!("{prefix}-{suffix}")
}
