//! The test bed's three-broker Kafka cluster (`service.sh start kafka-cluster`): which node
//! leads what, which is the active controller, and whether every replica has caught up.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::{env, kafka};

fn metadata_consumer() -> BaseConsumer {
    kafka::config_for(&env().kafka_cluster_bootstrap)
        .create()
        .expect("cluster metadata client")
}

/// The node leading `partition` of `topic`, when the cluster names one.
pub fn leader_of(topic: &str, partition: i32) -> Option<i32> {
    let meta = metadata_consumer()
        .fetch_metadata(Some(topic), Duration::from_secs(5))
        .ok()?;
    let t = meta.topics().first()?;
    let p = t.partitions().iter().find(|p| p.id() == partition)?;
    (p.leader() >= 0).then_some(p.leader())
}

/// Partitions (of every topic) whose in-sync replicas are fewer than their replicas, or whose
/// metadata could not be read at all (`None`).
pub fn under_replicated() -> Option<usize> {
    let meta = metadata_consumer()
        .fetch_metadata(None, Duration::from_secs(5))
        .ok()?;
    Some(
        meta.topics()
            .iter()
            .flat_map(|t| t.partitions())
            .filter(|p| p.leader() < 0 || p.isr().len() < p.replicas().len())
            .count(),
    )
}

/// Waits until every replica of every partition is in sync again (what a rolling restart
/// waits for before the next broker, as Strimzi does).
pub fn wait_fully_replicated(timeout: Duration) {
    crate::wait_until(
        "every partition of the Kafka cluster fully replicated",
        timeout,
        || (under_replicated() == Some(0)).then_some(()),
    );
}

/// The node that is the KRaft quorum's leader (the active controller), from Kafka's
/// `MetadataQuorumCommand describe --status`.
pub fn active_controller() -> i32 {
    let env = env();
    let output = std::process::Command::new("java")
        .arg("-Xmx128m")
        .arg("-cp")
        .arg(env.kafka_home.join("libs/*"))
        .arg("org.apache.kafka.tools.MetadataQuorumCommand")
        .args(["--bootstrap-server", &env.kafka_cluster_bootstrap])
        .args(["describe", "--status"])
        .output()
        .expect("run Kafka's MetadataQuorumCommand");
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("LeaderId:"))
        .and_then(|id| id.trim().parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "MetadataQuorumCommand named no LeaderId: {text}{}",
                String::from_utf8_lossy(&output.stderr)
            )
        })
}
