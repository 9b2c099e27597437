//! Latency runs: a live load at a set rate (QoS 1, 100-byte payloads), each message stamped
//! with its send time and timed where it arrives. The first `warm_up` seconds are not measured.

use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::kafka_load;
use crate::latency::{Latencies, Percentiles};
use crate::mqtt_load::{self, LatencySink, Load};
use crate::systems::{Route, Running, Setup, System};

pub const SIZE: usize = 100;
const QOS: u8 = 1;

#[derive(Debug, Clone, Copy)]
pub struct Pace {
    pub rate: f64,
    pub warm_up_s: f64,
    pub measured_s: f64,
}

impl Pace {
    fn total(&self) -> u64 {
        (self.rate * (self.warm_up_s + self.measured_s)) as u64
    }
    fn first_measured_seq(&self) -> u64 {
        (self.rate * self.warm_up_s) as u64
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub percentiles: Percentiles,
    pub arrived: u64,
    pub sent: u64,
    /// Messages per second between the first and the last arrival.
    pub arrival_rate: f64,
    /// (latency ms, fraction at or below), for the CDF plot.
    pub cdf: Vec<(f64, f64)>,
}

fn run(latencies: Latencies, sent: u64) -> Run {
    Run {
        percentiles: latencies.percentiles(),
        arrived: latencies.seen,
        sent,
        arrival_rate: latencies.arrival_rate(),
        cdf: latencies.cdf(),
    }
}

fn load(s: &Setup<'_>, prefix: &str, pace: Pace, connections: u64) -> Load {
    Load {
        port: s.mqtt_port,
        prefix: prefix.to_owned(),
        connections,
        count: pace.total(),
        size: SIZE,
        qos: mqtt_load::qos(QOS),
        rate: Some(pace.rate),
    }
}

/// Waits for a Kafka latency sink's thread without blocking the runtime.
async fn join_kafka_sink(sink: std::thread::JoinHandle<Result<Latencies>>) -> Result<Latencies> {
    tokio::task::spawn_blocking(move || sink.join())
        .await?
        .map_err(|_| anyhow::anyhow!("latency sink panicked"))?
}

/// The bare MQTT path: publishers -> broker -> one subscriber.
pub async fn bare_mqtt(s: &Setup<'_>, pace: Pace) -> Result<Run> {
    let prefix = testbed::unique("lat-mqtt");
    let sink = LatencySink::start(
        s.mqtt_port,
        &format!("{prefix}-sink"),
        &format!("{prefix}/+/state"),
        mqtt_load::qos(QOS),
        pace.first_measured_seq(),
        pace.total(),
    )
    .await?;
    mqtt_load::publish(&load(s, &prefix, pace, 10)).await?;
    Ok(run(sink.finish().await?, pace.total()))
}

/// The bare Kafka path: a producer (the bridge's settings) -> Kafka -> one consumer.
pub async fn bare_kafka(s: &Setup<'_>, pace: Pace) -> Result<Run> {
    let topic = testbed::unique("lat-kafka");
    testbed::kafka::create_topic(&topic, 6).await;
    let sink = kafka_load::latency_sink(s.kafka, &topic, pace.first_measured_seq(), pace.total())?;
    let (kafka, t) = (s.kafka.to_owned(), topic.clone());
    tokio::task::spawn_blocking(move || {
        kafka_load::produce(&kafka, &t, pace.total(), SIZE, Some(pace.rate))
    })
    .await??;
    let latencies = join_kafka_sink(sink).await?;
    kafka_load::delete_topic(s.kafka, &topic).await?;
    Ok(run(latencies, pace.total()))
}

/// A system's MQTT -> Kafka route: publishers -> broker -> system -> Kafka -> consumer.
pub async fn mqtt_to_kafka(s: &Setup<'_>, system: System, pace: Pace) -> Result<Run> {
    let run_id = testbed::unique("lat-m2k");
    testbed::kafka::create_topic(&run_id, 6).await;
    let route = Route::MqttToKafka {
        prefix: run_id.clone(),
        qos: QOS,
        topic: run_id.clone(),
    };
    let mut running = Running::start(system, &run_id, &route, s)?;
    running.wait_ready(Duration::from_secs(60))?;
    let sink = kafka_load::latency_sink(s.kafka, &run_id, pace.first_measured_seq(), pace.total())?;
    mqtt_load::publish(&load(s, &run_id, pace, 10)).await?;
    let latencies = join_kafka_sink(sink).await?;
    drop(running);
    kafka_load::delete_topic(s.kafka, &run_id).await?;
    Ok(run(latencies, pace.total()))
}

/// A system's Kafka -> MQTT route: producer -> Kafka -> system -> broker -> subscriber.
pub async fn kafka_to_mqtt(s: &Setup<'_>, system: System, pace: Pace) -> Result<Run> {
    let run_id = testbed::unique("lat-k2m");
    testbed::kafka::create_topic(&run_id, 6).await;
    let sink = LatencySink::start(
        s.mqtt_port,
        &format!("{run_id}-sink"),
        &format!("{run_id}/cmd"),
        mqtt_load::qos(QOS),
        pace.first_measured_seq(),
        pace.total(),
    )
    .await?;
    let route = Route::KafkaToMqtt {
        topic: run_id.clone(),
        prefix: run_id.clone(),
        qos: QOS,
    };
    let mut running = Running::start(system, &run_id, &route, s)?;
    running.wait_ready(Duration::from_secs(60))?;
    // The consumer group's first assignment takes a moment after readiness; the warm-up
    // absorbs what is left of it.
    let (kafka, t) = (s.kafka.to_owned(), run_id.clone());
    tokio::task::spawn_blocking(move || {
        kafka_load::produce(&kafka, &t, pace.total(), SIZE, Some(pace.rate))
    })
    .await?
    .context("producing the load")?;
    let latencies = sink.finish().await?;
    drop(running);
    kafka_load::delete_topic(s.kafka, &run_id).await?;
    Ok(run(latencies, pace.total()))
}
