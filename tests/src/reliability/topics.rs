//! The scenario's topics. On the Kafka cluster they are created by the operator, as users get
//! them: an MqttKafkaBridge declaring them in `spec.kafka.topics` (replication factor 3) is
//! applied to the test bed's API server, in a namespace of its own with an operator process
//! watching it; the scenario goes on once the bridge reports TopicsReady. (Its pods land on
//! the fake nodes; the bridge under load is the scenario's own process.) Elsewhere the
//! harness creates them with Kafka's admin API.

use super::Brokers;
use crate::operator::{condition_of, setup, WAIT};
use crate::{env, kafka, wait_until_seen};

/// A topic of the scenario: name, partitions, topic configuration.
pub struct Topic<'a> {
    pub name: &'a str,
    pub partitions: i32,
    pub config: &'a [(&'a str, &'a str)],
}

/// Creates the topics (replication factor `brokers.replicas`), through the operator when
/// `brokers.topics_by_operator`, and waits until Kafka's metadata shows every partition. The
/// operator and its namespace go once the topics exist (the bridge's default
/// `topicDeletionPolicy: Retain` keeps them): it has no part in the fault.
pub async fn create(ns: &str, brokers: &Brokers, topics: &[Topic<'_>]) {
    if !brokers.topics_by_operator {
        for t in topics {
            kafka::create_topic_on(
                &brokers.kafka_bootstrap,
                t.name,
                t.partitions,
                brokers.replicas,
                t.config,
            )
            .await;
        }
        return;
    }
    let yaml = bridge_declaring(ns, brokers, topics);
    tokio::task::spawn_blocking(move || {
        let s = setup("rel-topics");
        s.apply(&yaml);
        wait_until_seen("the operator to create the topics", WAIT, || {
            let bridge = s.bridge("topics");
            let generation = bridge["metadata"]["generation"].clone();
            let c = condition_of(&bridge, "TopicsReady");
            if c["status"] == "True" && c["observedGeneration"] == generation {
                Ok(())
            } else {
                Err(c.to_string())
            }
        });
    })
    .await
    .expect("operator set-up task");
    for t in topics {
        kafka::wait_for_partitions(&brokers.kafka_bootstrap, t.name, t.partitions as usize).await;
    }
}

/// Deletes the topics the scenario made on the Kafka cluster, whose data outlives a run (on
/// the single broker, they are left for a post-mortem, as ever).
pub async fn delete(brokers: &Brokers, topics: &[&str]) {
    if brokers.topics_by_operator {
        kafka::delete_topics_on(&brokers.kafka_bootstrap, topics).await;
    }
}

/// A one-replica bridge whose `spec.kafka.topics` declares `topics`, replicated three times;
/// its one route writes to the first.
fn bridge_declaring(ns: &str, brokers: &Brokers, topics: &[Topic<'_>]) -> String {
    let mut declared = String::new();
    for t in topics {
        declared.push_str(&format!(
            "      - name: {}\n        partitions: {}\n        replicationFactor: {}\n",
            t.name, t.partitions, brokers.replicas
        ));
        if !t.config.is_empty() {
            let pairs: Vec<String> = t
                .config
                .iter()
                .map(|(k, v)| format!("{k}: \"{v}\""))
                .collect();
            declared.push_str(&format!("        config: {{{}}}\n", pairs.join(", ")));
        }
    }
    format!(
        r#"apiVersion: mqttkafka.io/v1alpha1
kind: MqttKafkaBridge
metadata:
  name: topics
spec:
  replicas: 1
  mqtt:
    url: {mqtt}
  kafka:
    bootstrapServers: {kafka}
    topics:
{declared}  mqttToKafka:
    - name: up
      mqtt:
        topicFilters: ["{ns}/up/+"]
      kafka:
        topic: {first}
"#,
        mqtt = env().mqtt_url,
        kafka = brokers.bridge_kafka_bootstrap,
        first = topics[0].name,
    )
}
