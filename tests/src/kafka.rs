//! Kafka helpers for tests: create topics, produce, and read a topic completely (up to its
//! high watermarks), against the test bed's broker.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, Timestamp, TopicPartitionList};

use crate::env;

const TIMEOUT: Duration = Duration::from_secs(10);

fn config() -> ClientConfig {
    config_for(&env().kafka_bootstrap)
}

/// A client configuration for the Kafka at `bootstrap`.
pub fn config_for(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    config
}

/// A record read back from Kafka.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
    pub timestamp: Option<i64>,
}

impl Record {
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_slice())
    }
    /// A header's value as text ("" when absent or not UTF-8).
    pub fn header_str(&self, name: &str) -> &str {
        self.header(name)
            .and_then(|v| std::str::from_utf8(v).ok())
            .unwrap_or_default()
    }
    pub fn key_str(&self) -> &str {
        self.key
            .as_deref()
            .and_then(|k| std::str::from_utf8(k).ok())
            .unwrap_or_default()
    }
    pub fn value_str(&self) -> &str {
        self.value
            .as_deref()
            .and_then(|v| std::str::from_utf8(v).ok())
            .unwrap_or_default()
    }
}

/// Creates a topic with `partitions` partitions (replication factor 1) and waits for it.
pub async fn create_topic(name: &str, partitions: i32) {
    create_topic_with_config(name, partitions, &[]).await;
}

/// Creates a topic with topic-level configuration, e.g. `("max.message.bytes", "10485760")`.
pub async fn create_topic_with_config(name: &str, partitions: i32, topic_config: &[(&str, &str)]) {
    let bootstrap = &env().kafka_bootstrap;
    create_topic_on(bootstrap, name, partitions, 1, topic_config).await;
}

/// Deletes topics on the Kafka at `bootstrap` (errors ignored: a clean-up).
pub async fn delete_topics_on(bootstrap: &str, names: &[&str]) {
    let admin: AdminClient<DefaultClientContext> =
        config_for(bootstrap).create().expect("admin client");
    let _ = admin
        .delete_topics(names, &AdminOptions::new().operation_timeout(Some(TIMEOUT)))
        .await;
}

/// Creates a topic on the Kafka at `bootstrap` (the test bed's broker or its three-broker
/// cluster) with `replicas` replicas each, and waits until its metadata shows every partition.
pub async fn create_topic_on(
    bootstrap: &str,
    name: &str,
    partitions: i32,
    replicas: i32,
    topic_config: &[(&str, &str)],
) {
    let admin: AdminClient<DefaultClientContext> =
        config_for(bootstrap).create().expect("admin client");
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(replicas));
    for (k, v) in topic_config {
        topic = topic.set(k, v);
    }
    let results = admin
        .create_topics(
            [&topic],
            &AdminOptions::new().operation_timeout(Some(TIMEOUT)),
        )
        .await
        .expect("create topic request");
    for result in results {
        result.unwrap_or_else(|(t, e)| panic!("create topic {t}: {e}"));
    }
    wait_for_partitions(bootstrap, name, partitions as usize).await;
}

/// Waits until the topic's metadata shows `partitions` partitions.
pub async fn wait_for_partitions(bootstrap: &str, name: &str, partitions: usize) {
    let (bootstrap, name) = (bootstrap.to_owned(), name.to_owned());
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = config_for(&bootstrap).create().expect("consumer");
        crate::wait_until(
            &format!("topic {name} to have {partitions} partitions"),
            TIMEOUT,
            || {
                let meta = consumer
                    .fetch_metadata(Some(&name), Duration::from_secs(1))
                    .ok()?;
                let t = meta.topics().first()?;
                (t.error().is_none() && t.partitions().len() == partitions).then_some(())
            },
        )
    })
    .await
    .expect("metadata task");
}

/// A record to produce.
pub struct Outgoing<'a> {
    pub key: Option<&'a [u8]>,
    pub value: &'a [u8],
    pub headers: Vec<(&'a str, &'a [u8])>,
}

/// Produces one record with `key` and a null value (a tombstone) and waits until Kafka has it.
pub async fn produce_tombstone(topic: &str, key: &[u8]) {
    let producer: FutureProducer = config().create().expect("producer");
    producer
        .send(
            FutureRecord::<[u8], [u8]>::to(topic).key(key),
            Duration::from_secs(30),
        )
        .await
        .map_err(|(e, _)| e)
        .expect("Kafka accepts the tombstone");
}

/// Produces records in order (idempotent producer) and waits until Kafka has all of them;
/// returns each record's (partition, offset).
pub async fn produce(
    topic: &str,
    records: impl IntoIterator<Item = Outgoing<'_>>,
) -> Vec<(i32, i64)> {
    let producer: FutureProducer = config()
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        // Tests produce records up to what a topic's max.message.bytes allows.
        .set("message.max.bytes", "20000000")
        .create()
        .expect("producer");
    let mut deliveries = Vec::new();
    for r in records {
        let mut headers = OwnedHeaders::new();
        for (k, v) in &r.headers {
            headers = headers.insert(Header {
                key: k,
                value: Some(*v),
            });
        }
        let mut record = FutureRecord::<[u8], [u8]>::to(topic)
            .payload(r.value)
            .headers(headers);
        if let Some(key) = r.key {
            record = record.key(key);
        }
        let delivery = producer
            .send_result(record)
            .map_err(|(e, _)| e)
            .expect("enqueue a record");
        deliveries.push(delivery);
    }
    let mut positions = Vec::with_capacity(deliveries.len());
    for d in deliveries {
        let delivered = d
            .await
            .expect("delivery future")
            .map_err(|(e, _)| e)
            .expect("Kafka accepts the record");
        positions.push((delivered.partition, delivered.offset));
    }
    positions
}

/// Sum of the high watermarks of a topic's partitions: how many records it holds.
pub fn record_count(topic: &str) -> Option<i64> {
    let consumer: BaseConsumer = config().create().ok()?;
    let meta = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(2))
        .ok()?;
    let t = meta.topics().first()?;
    if t.error().is_some() {
        return None;
    }
    let mut total = 0;
    for p in t.partitions() {
        let (low, high) = consumer
            .fetch_watermarks(topic, p.id(), Duration::from_secs(2))
            .ok()?;
        total += high - low;
    }
    Some(total)
}

/// Waits until the topic holds at least `count` records, then reads all of them.
pub async fn wait_for_records(topic: &str, count: i64, timeout: Duration) -> Vec<Record> {
    let name = topic.to_owned();
    let what = format!("{count} records in Kafka topic {topic}");
    tokio::task::spawn_blocking(move || {
        // The count seen last goes into a timeout's message: none at all and a few short
        // point to different causes.
        crate::wait_until_seen(&what, timeout, || match record_count(&name) {
            Some(n) if n >= count => Ok(()),
            Some(n) => Err(format!("{n} records so far")),
            None => Err("the topic cannot be read".to_owned()),
        });
        read_all_blocking(&name)
    })
    .await
    .expect("reader task")
}

/// Reads every record of a topic, from the beginning up to the high watermarks at the start.
pub async fn read_all(topic: &str) -> Vec<Record> {
    let name = topic.to_owned();
    tokio::task::spawn_blocking(move || read_all_blocking(&name))
        .await
        .expect("reader task")
}

/// The partition ids of a topic (none when it does not exist).
fn partition_ids(consumer: &BaseConsumer, topic: &str) -> Vec<i32> {
    let meta = consumer
        .fetch_metadata(Some(topic), TIMEOUT)
        .expect("metadata");
    meta.topics()
        .first()
        .map(|t| t.partitions().iter().map(|p| p.id()).collect())
        .unwrap_or_default()
}

fn read_all_blocking(topic: &str) -> Vec<Record> {
    let consumer: BaseConsumer = config()
        .set("group.id", crate::unique("test-reader"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let partitions = partition_ids(&consumer, topic);
    let mut assignment = TopicPartitionList::new();
    let mut remaining = 0usize;
    let mut ends = std::collections::HashMap::new();
    for p in &partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, *p, TIMEOUT)
            .expect("watermarks");
        if high > low {
            assignment
                .add_partition_offset(topic, *p, Offset::Offset(low))
                .expect("assign");
            ends.insert(*p, high);
            remaining += 1;
        }
    }
    if remaining == 0 {
        return Vec::new();
    }
    consumer.assign(&assignment).expect("assign partitions");
    let mut records = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while remaining > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "reading {topic} took over 60s"
        );
        let Some(result) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let m = result.expect("consume");
        let end = ends.get(&m.partition()).copied().unwrap_or(0);
        if m.offset() >= end {
            continue;
        }
        let headers = m
            .headers()
            .map(|h| {
                h.iter()
                    .map(|x| (x.key.to_owned(), x.value.unwrap_or_default().to_vec()))
                    .collect()
            })
            .unwrap_or_default();
        records.push(Record {
            topic: m.topic().to_owned(),
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(<[u8]>::to_vec),
            value: m.payload().map(<[u8]>::to_vec),
            headers,
            timestamp: match m.timestamp() {
                Timestamp::NotAvailable => None,
                Timestamp::CreateTime(t) | Timestamp::LogAppendTime(t) => Some(t),
            },
        });
        if m.offset() + 1 == end {
            remaining -= 1;
        }
    }
    records.sort_by_key(|r| (r.partition, r.offset));
    records
}

/// For each partition of `topic`: (partition, offset committed by `group`, high watermark).
pub async fn committed_and_end(group: &str, topic: &str) -> Vec<(i32, Option<i64>, i64)> {
    let (group, topic) = (group.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = config().set("group.id", &group).create().expect("consumer");
        let partitions = partition_ids(&consumer, &topic);
        let mut list = TopicPartitionList::new();
        for p in &partitions {
            list.add_partition(&topic, *p);
        }
        let committed = consumer
            .committed_offsets(list, TIMEOUT)
            .expect("committed offsets");
        partitions
            .iter()
            .map(|p| {
                let offset = committed
                    .find_partition(&topic, *p)
                    .and_then(|e| match e.offset() {
                        Offset::Offset(o) => Some(o),
                        _ => None,
                    });
                let (_, high) = consumer
                    .fetch_watermarks(&topic, *p, TIMEOUT)
                    .expect("watermarks");
                (*p, offset, high)
            })
            .collect()
    })
    .await
    .expect("offsets task")
}

/// What Kafka has of a topic: partitions and the replicas of its first partition; `None`
/// when the topic does not exist.
pub fn describe_topic(name: &str) -> Option<(usize, usize)> {
    let consumer: BaseConsumer = config().create().expect("consumer");
    let meta = consumer
        .fetch_metadata(Some(name), TIMEOUT)
        .unwrap_or_else(|e| panic!("metadata of {name}: {e}"));
    let topic = meta.topics().iter().find(|t| t.name() == name)?;
    if topic.error().is_some() {
        return None;
    }
    let replicas = topic.partitions().first().map_or(0, |p| p.replicas().len());
    Some((topic.partitions().len(), replicas))
}

/// The current value of a topic's configuration key (Kafka's default included).
pub async fn topic_config(name: &str, key: &str) -> Option<String> {
    use rdkafka::admin::ResourceSpecifier;
    let admin: AdminClient<DefaultClientContext> = config().create().expect("admin client");
    let mut results = admin
        .describe_configs(
            &[ResourceSpecifier::Topic(name)],
            &AdminOptions::new().request_timeout(Some(TIMEOUT)),
        )
        .await
        .unwrap_or_else(|e| panic!("describe configs of {name}: {e}"));
    let resource = results
        .pop()
        .expect("one resource")
        .unwrap_or_else(|e| panic!("describe configs of {name}: {e}"));
    resource.get(key).and_then(|e| e.value.clone())
}

/// Sets one configuration key of a topic. Kafka's AlterConfigs replaces the whole set, so
/// every other key of the topic goes back to its default.
pub async fn set_topic_config(name: &str, key: &str, value: &str) {
    use rdkafka::admin::{AlterConfig, ResourceSpecifier};
    let admin: AdminClient<DefaultClientContext> = config().create().expect("admin client");
    let results = admin
        .alter_configs(
            &[AlterConfig::new(ResourceSpecifier::Topic(name)).set(key, value)],
            &AdminOptions::new().request_timeout(Some(TIMEOUT)),
        )
        .await
        .unwrap_or_else(|e| panic!("alter configs of {name}: {e}"));
    for result in results {
        result.unwrap_or_else(|(r, e)| panic!("alter {r:?}: {e}"));
    }
}

/// Grows a topic to `partitions` partitions and waits until its metadata shows them.
pub async fn grow_partitions(name: &str, partitions: usize) {
    use rdkafka::admin::NewPartitions;
    let admin: AdminClient<DefaultClientContext> = config().create().expect("admin client");
    let results = admin
        .create_partitions(
            &[NewPartitions::new(name, partitions)],
            &AdminOptions::new().operation_timeout(Some(TIMEOUT)),
        )
        .await
        .expect("create partitions request");
    for result in results {
        result.unwrap_or_else(|(t, e)| panic!("grow {t}: {e}"));
    }
    wait_for_partitions(&env().kafka_bootstrap, name, partitions).await;
}

/// Denies the test bed's clients (principal `User:ANONYMOUS`) writes to `topic` until the
/// guard is dropped. The test bed's broker runs an authorizer that allows everything no ACL
/// mentions, so no other topic is affected.
pub struct DeniedWrites {
    topic: String,
}

/// Runs Kafka's ACL tool on the test bed's broker.
fn acl_command(args: &[&str]) {
    let env = env();
    let output = std::process::Command::new("java")
        .arg("-cp")
        .arg(env.kafka_home.join("libs/*"))
        .arg("org.apache.kafka.tools.AclCommand")
        .args(["--bootstrap-server", &env.kafka_bootstrap])
        .args(args)
        .output()
        .expect("run Kafka's AclCommand");
    assert!(
        output.status.success(),
        "AclCommand {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

impl DeniedWrites {
    pub fn on(topic: &str) -> Self {
        acl_command(&[
            "--add",
            "--deny-principal",
            "User:ANONYMOUS",
            "--operation",
            "Write",
            "--topic",
            topic,
        ]);
        Self {
            topic: topic.to_owned(),
        }
    }
}

impl Drop for DeniedWrites {
    fn drop(&mut self) {
        acl_command(&[
            "--remove",
            "--force",
            "--deny-principal",
            "User:ANONYMOUS",
            "--operation",
            "Write",
            "--topic",
            &self.topic,
        ]);
    }
}
