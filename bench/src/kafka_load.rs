//! Kafka load (a producer at a set rate or flat out, with the bridge's producer settings) and
//! the Kafka sinks: read a topic back for its rate, or measure each record's latency.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

use crate::latency::Latencies;
use crate::payload::{now_ns, read_stamp, stamped};

fn config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap);
    c
}

/// Produces `count` stamped records of `size` bytes into `topic` (acks=all, idempotent, lz4,
/// linger 5 ms: the bridge's own settings); returns the seconds until all were acknowledged.
pub fn produce(
    bootstrap: &str,
    topic: &str,
    count: u64,
    size: usize,
    rate: Option<f64>,
) -> Result<f64> {
    let producer: ThreadedProducer<DefaultProducerContext> = config(bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("compression.type", "lz4")
        .set("linger.ms", "5")
        .create()
        .context("Kafka producer")?;
    // Connected, with the topic's metadata, before the clock starts.
    producer
        .client()
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .context("topic metadata")?;
    let started = Instant::now();
    for seq in 0..count {
        if let Some(rate) = rate {
            let due = started + Duration::from_secs_f64(seq as f64 / rate);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        let mut payload = stamped(seq, size);
        loop {
            match producer.send::<[u8], [u8]>(BaseRecord::to(topic).payload(&payload)) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), record)) => {
                    payload = record.payload.map(<[u8]>::to_vec).unwrap_or_default();
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((e, _)) => bail!("producing to {topic}: {e}"),
            }
        }
    }
    producer
        .flush(Duration::from_secs(120))
        .context("flushing the producer")?;
    Ok(started.elapsed().as_secs_f64())
}

fn partitions(consumer: &BaseConsumer, topic: &str) -> Result<Vec<i32>> {
    let meta = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .context("topic metadata")?;
    let t = meta
        .topics()
        .first()
        .ok_or_else(|| anyhow!("no metadata for {topic}"))?;
    Ok(t.partitions().iter().map(|p| p.id()).collect())
}

/// Assigns every partition of `topic` to `consumer`, each at the offset `at` gives it.
fn assign_all(
    consumer: &BaseConsumer,
    topic: &str,
    at: impl Fn(i32) -> Result<Offset>,
) -> Result<()> {
    let mut tpl = TopicPartitionList::new();
    for p in partitions(consumer, topic)? {
        tpl.add_partition_offset(topic, p, at(p)?)?;
    }
    consumer.assign(&tpl)?;
    Ok(())
}

/// What reading a topic back found.
#[derive(Debug, Clone, Copy)]
pub struct ReadBack {
    pub records: u64,
    /// Seconds between the first and the last record's arrival at this reader.
    pub arrival_span: f64,
    /// Seconds between the smallest and the largest record timestamp (CreateTime: when the
    /// producing client handed the record to its library).
    pub timestamp_span: f64,
}

/// Reads `count` records of `topic` from the beginning (at most `timeout` without progress).
pub fn read_back(bootstrap: &str, topic: &str, count: u64, timeout: Duration) -> Result<ReadBack> {
    let consumer: BaseConsumer = config(bootstrap)
        .set("group.id", format!("{topic}-reader"))
        .set("enable.auto.commit", "false")
        .set("fetch.max.bytes", "52428800")
        .create()?;
    assign_all(&consumer, topic, |_| Ok(Offset::Beginning))?;
    let (mut records, mut first, mut last) = (0u64, None, Instant::now());
    let (mut ts_min, mut ts_max) = (i64::MAX, i64::MIN);
    let mut progress = Instant::now();
    while records < count {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                last = Instant::now();
                first.get_or_insert(last);
                progress = last;
                records += 1;
                if let Some(ts) = m.timestamp().to_millis() {
                    ts_min = ts_min.min(ts);
                    ts_max = ts_max.max(ts);
                }
            }
            Some(Err(e)) => bail!("reading {topic}: {e}"),
            None if progress.elapsed() > timeout => break,
            None => {}
        }
    }
    let first = first.unwrap_or(last);
    Ok(ReadBack {
        records,
        arrival_span: (last - first).as_secs_f64(),
        timestamp_span: (ts_max - ts_min).max(0) as f64 / 1e3,
    })
}

/// Sum of the high watermarks of `topic`'s partitions.
pub fn end_offsets(bootstrap: &str, topic: &str) -> Result<u64> {
    let consumer: BaseConsumer = config(bootstrap).create()?;
    let mut total = 0;
    for p in partitions(&consumer, topic)? {
        let (_, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(5))?;
        total += high.max(0) as u64;
    }
    Ok(total)
}

/// A reader placed at the end of `topic` before the load starts, measuring the latency of
/// every record with a sequence number of at least `from_seq`, until `expect` arrived or none
/// came for 30 s.
pub fn latency_sink(
    bootstrap: &str,
    topic: &str,
    from_seq: u64,
    expect: u64,
) -> Result<std::thread::JoinHandle<Result<Latencies>>> {
    let consumer: BaseConsumer = config(bootstrap)
        .set("group.id", format!("{topic}-latency"))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "1")
        .create()?;
    assign_all(&consumer, topic, |p| {
        let (_, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(5))?;
        Ok(Offset::Offset(high))
    })?;
    let topic = topic.to_owned();
    Ok(std::thread::spawn(move || {
        let mut latencies = Latencies::new(from_seq, expect);
        let mut progress = Instant::now();
        while latencies.seen < expect && progress.elapsed() < Duration::from_secs(30) {
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    let now = now_ns();
                    progress = Instant::now();
                    if let Some((seq, sent)) = m.payload().and_then(read_stamp) {
                        latencies.record(seq, sent, now);
                    }
                }
                Some(Err(e)) => bail!("reading {topic}: {e}"),
                None => {}
            }
        }
        Ok(latencies)
    }))
}

/// Deletes `topic` (the runs' data would otherwise fill the test bed's disk).
pub async fn delete_topic(bootstrap: &str, topic: &str) -> Result<()> {
    use rdkafka::admin::{AdminClient, AdminOptions};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> = config(bootstrap).create()?;
    admin
        .delete_topics(&[topic], &AdminOptions::new())
        .await?
        .into_iter()
        .try_for_each(|r| r.map(drop).map_err(|(t, e)| anyhow!("deleting {t}: {e}")))
}
