//! Throughput runs. Each sample drains N messages that wait for the subject, so the load
//! generator does not compete for the CPUs while the subject is timed:
//! - MQTT -> Kafka: the subject starts, connects and subscribes, is paused (SIGSTOP, its
//!   connections stay up) while the broker queues N messages for it, then resumed;
//! - Kafka -> MQTT: N records wait in a topic when the subject starts.
//!
//! The rate is taken from the first to the last message at the far end (Kafka's record
//! timestamps, or the arrival times at a counting subscriber), so start-up is never timed.

use std::time::Duration;

use anyhow::{bail, Result};
use serde::Serialize;

use crate::kafka_load;
use crate::mqtt_load::{self, Counter, Load};
use crate::procstat::CpuSince;
use crate::systems::{Route, Running, Setup, System};

/// Who drains: the bare client (the ceiling) or a system under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Subject {
    /// MQTT -> Kafka: a bare subscriber (same client library, protocol, QoS and plain
    /// subscription as the bridge, writing nowhere) draining its offline session. Kafka ->
    /// MQTT: the load generator publishing flat out (the broker's publish ceiling), counted by
    /// the same subscriber as the systems.
    Ceiling,
    System(System),
}

impl Subject {
    pub fn name(self) -> &'static str {
        match self {
            Subject::Ceiling => "ceiling",
            Subject::System(s) => s.name(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub messages_per_s: f64,
    pub mb_per_s: f64,
    pub delivered: u64,
    pub cpu_s_per_million: f64,
    /// Mosquitto's and Kafka's CPU seconds per million messages during the run.
    pub brokers_cpu_s_per_million: f64,
    pub peak_rss_mib: f64,
}

/// CPU seconds of the subject and of the brokers during a run.
struct Cpu {
    subject: f64,
    brokers: f64,
}

const UNMEASURED: Cpu = Cpu {
    subject: f64::NAN,
    brokers: f64::NAN,
};

fn sample(delivered: u64, span: f64, size: usize, cpu: Cpu, rss: f64) -> Result<Sample> {
    if delivered < 2 || span <= 0.0 {
        bail!("only {delivered} messages arrived; see the logs in the results directory");
    }
    let rate = (delivered - 1) as f64 / span;
    Ok(Sample {
        messages_per_s: rate,
        mb_per_s: rate * size as f64 / 1e6,
        delivered,
        cpu_s_per_million: cpu.subject / delivered as f64 * 1e6,
        brokers_cpu_s_per_million: cpu.brokers / delivered as f64 * 1e6,
        peak_rss_mib: rss,
    })
}

/// MQTT -> Kafka: N messages queued in the subject's offline session, then drained.
pub async fn mqtt_to_kafka(
    s: &Setup<'_>,
    who: Subject,
    qos: u8,
    size: usize,
    n: u64,
) -> Result<Sample> {
    let run = testbed::unique("m2k");
    let filter = format!("{run}/+/state");
    let load = Load {
        port: s.mqtt_port,
        prefix: run.clone(),
        connections: 10,
        count: n,
        size,
        qos: mqtt_load::qos(qos),
        rate: None,
    };
    let Subject::System(system) = who else {
        mqtt_load::create_session(s.mqtt_port, &run, &filter, load.qos).await?;
        mqtt_load::publish(&load).await?;
        let sub = Counter::resume(s.mqtt_port, &run, n).finish().await?;
        return sample(sub.received, sub.span, size, UNMEASURED, f64::NAN);
    };
    testbed::kafka::create_topic(&run, 6).await;
    let route = Route::MqttToKafka {
        prefix: run.clone(),
        qos,
        topic: run.clone(),
    };
    let mut running = Running::start(system, &run, &route, s)?;
    running.wait_ready(Duration::from_secs(60))?;
    // Let the producer finish its own start (idempotent producer id) before pausing.
    std::thread::sleep(Duration::from_secs(1));
    running.pause(true)?;
    let published = mqtt_load::publish(&load).await;
    let (subject_cpu, brokers_cpu) = (CpuSince::now(&[running.pid()]), CpuSince::now(&s.brokers));
    running.pause(false)?;
    published?;
    let rss = wait_for_records(&running, s.kafka, &run, n)?;
    let cpu = Cpu {
        subject: subject_cpu.used(),
        brokers: brokers_cpu.used(),
    };
    drop(running);
    let back = kafka_load::read_back(s.kafka, &run, n, Duration::from_secs(30))?;
    kafka_load::delete_topic(s.kafka, &run).await?;
    sample(back.records, back.timestamp_span, size, cpu, rss)
}

/// Waits until `topic` holds `n` records or stops growing for 60 s; returns the subject's
/// peak RSS.
fn wait_for_records(running: &Running, kafka: &str, topic: &str, n: u64) -> Result<f64> {
    let (mut seen, mut progress) = (0, std::time::Instant::now());
    loop {
        let rss = running.peak_rss_mib();
        let now = kafka_load::end_offsets(kafka, topic)?;
        if now >= n || (now == seen && progress.elapsed() > Duration::from_secs(60)) {
            return Ok(rss);
        }
        if now > seen {
            (seen, progress) = (now, std::time::Instant::now());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The bare Kafka figures of one sample: N records produced flat out, then read back.
#[derive(Debug, Clone, Serialize)]
pub struct KafkaBaseline {
    pub produce: Sample,
    pub consume: Sample,
}

/// Kafka -> MQTT: N records waiting in a topic, drained into MQTT and counted by a subscriber.
/// The ceiling publishes the same N messages straight to the broker instead; its sample also
/// measures bare Kafka producing and consuming.
pub async fn kafka_to_mqtt(
    s: &Setup<'_>,
    who: Subject,
    qos: u8,
    size: usize,
    n: u64,
) -> Result<(Sample, Option<KafkaBaseline>)> {
    let run = testbed::unique("k2m");
    testbed::kafka::create_topic(&run, 6).await;
    let (kafka, topic) = (s.kafka.to_owned(), run.clone());
    let produced =
        tokio::task::spawn_blocking(move || kafka_load::produce(&kafka, &topic, n, size, None))
            .await??;
    // The counting subscriber: on the load generator's topics for the ceiling, on the route's
    // output topic for a system.
    let filter = match who {
        Subject::Ceiling => format!("{run}/+/state"),
        Subject::System(_) => format!("{run}/cmd"),
    };
    let counter = Counter::subscribe(
        s.mqtt_port,
        &format!("{run}-sub"),
        &filter,
        mqtt_load::qos(qos),
        n,
    )
    .await?;
    let result = match who {
        Subject::Ceiling => {
            let (kafka, topic) = (s.kafka.to_owned(), run.clone());
            let back = tokio::task::spawn_blocking(move || {
                kafka_load::read_back(&kafka, &topic, n, Duration::from_secs(30))
            })
            .await??;
            let baseline = KafkaBaseline {
                produce: sample(n, produced, size, UNMEASURED, f64::NAN)?,
                consume: sample(back.records, back.arrival_span, size, UNMEASURED, f64::NAN)?,
            };
            let load = Load {
                port: s.mqtt_port,
                prefix: run.clone(),
                connections: 1,
                count: n,
                size,
                qos: mqtt_load::qos(qos),
                rate: None,
            };
            mqtt_load::publish_batched(&load).await?;
            let sub = counter.finish().await?;
            (
                sample(sub.received, sub.span, size, UNMEASURED, f64::NAN)?,
                Some(baseline),
            )
        }
        Subject::System(system) => {
            let route = Route::KafkaToMqtt {
                topic: run.clone(),
                prefix: run.clone(),
                qos,
            };
            let brokers_cpu = CpuSince::now(&s.brokers);
            let running = Running::start(system, &run, &route, s)?;
            let sub = counter.finish().await?;
            let cpu = Cpu {
                subject: running.cpu_seconds(),
                brokers: brokers_cpu.used(),
            };
            let rss = running.peak_rss_mib();
            drop(running);
            (sample(sub.received, sub.span, size, cpu, rss)?, None)
        }
    };
    kafka_load::delete_topic(s.kafka, &run).await?;
    Ok(result)
}
