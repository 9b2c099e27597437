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
    /// The legs timed alongside, for the paths that time them (see [`Legs`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub legs: Option<Legs>,
}

/// Where a path's time goes. A bridge path is timed with an observer alongside that sees the
/// same messages where the first leg ends: a bare subscriber on the MQTT topics the system
/// reads (MQTT -> Kafka) or a bare consumer of the Kafka topic it reads (Kafka -> MQTT). The
/// bare legs are also timed at once, each loading the machine while the other is measured.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Legs {
    /// Publish -> a bare subscriber.
    pub mqtt: Option<Percentiles>,
    /// Produce -> a bare consumer.
    pub kafka: Option<Percentiles>,
    /// Per message, its arrival at the end of the path minus its arrival at the observer:
    /// the system and its second leg.
    pub system_and_second_leg: Option<Percentiles>,
}

fn run(latencies: Latencies, sent: u64) -> Run {
    Run {
        percentiles: latencies.percentiles(),
        arrived: latencies.seen,
        sent,
        arrival_rate: latencies.arrival_rate(),
        cdf: latencies.cdf(),
        legs: None,
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
    let sink = mqtt_latency_sink(
        s,
        &format!("{prefix}-sink"),
        &format!("{prefix}/+/state"),
        pace,
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

/// Both bare legs at once, at the same rate: what each costs with the other loading the
/// machine, as a bridge path loads it. The run's own figures are the Kafka leg's.
pub async fn bare_legs_at_once(s: &Setup<'_>, pace: Pace) -> Result<Run> {
    let (mqtt, kafka) = tokio::join!(bare_mqtt(s, pace), bare_kafka(s, pace));
    let (mqtt, kafka) = (mqtt?, kafka?);
    Ok(Run {
        legs: Some(Legs {
            mqtt: Some(mqtt.percentiles),
            kafka: Some(kafka.percentiles),
            system_and_second_leg: None,
        }),
        ..kafka
    })
}

/// A system's MQTT -> Kafka route: publishers -> broker -> system -> Kafka -> consumer.
/// `observed`: with a bare subscriber on the same topics alongside (see [`Legs`]); it is one
/// more subscriber for the broker to serve.
pub async fn mqtt_to_kafka(
    s: &Setup<'_>,
    system: System,
    pace: Pace,
    observed: bool,
) -> Result<Run> {
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
    let observer = if observed {
        Some(
            mqtt_latency_sink(
                s,
                &format!("{run_id}-observer"),
                &format!("{run_id}/+/state"),
                pace,
            )
            .await?,
        )
    } else {
        None
    };
    mqtt_load::publish(&load(s, &run_id, pace, 10)).await?;
    let latencies = join_kafka_sink(sink).await?;
    let legs = match observer {
        Some(o) => {
            let observer = o.finish().await?;
            Some(Legs {
                mqtt: Some(observer.percentiles()),
                system_and_second_leg: Some(latencies.after(&observer)),
                ..Legs::default()
            })
        }
        None => None,
    };
    drop(running);
    kafka_load::delete_topic(s.kafka, &run_id).await?;
    Ok(Run {
        legs,
        ..run(latencies, pace.total())
    })
}

async fn mqtt_latency_sink(
    s: &Setup<'_>,
    id: &str,
    filter: &str,
    pace: Pace,
) -> Result<LatencySink> {
    LatencySink::start(
        s.mqtt_port,
        id,
        filter,
        mqtt_load::qos(QOS),
        pace.first_measured_seq(),
        pace.total(),
    )
    .await
}

/// A system's Kafka -> MQTT route: producer -> Kafka -> system -> broker -> subscriber.
/// `observed`: with a bare consumer of the same Kafka topic alongside (see [`Legs`]).
pub async fn kafka_to_mqtt(
    s: &Setup<'_>,
    system: System,
    pace: Pace,
    observed: bool,
) -> Result<Run> {
    let run_id = testbed::unique("lat-k2m");
    testbed::kafka::create_topic(&run_id, 6).await;
    let sink =
        mqtt_latency_sink(s, &format!("{run_id}-sink"), &format!("{run_id}/cmd"), pace).await?;
    let observer = if observed {
        Some(kafka_load::latency_sink(
            s.kafka,
            &run_id,
            pace.first_measured_seq(),
            pace.total(),
        )?)
    } else {
        None
    };
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
    let legs = match observer {
        Some(o) => {
            let observer = join_kafka_sink(o).await?;
            Some(Legs {
                kafka: Some(observer.percentiles()),
                system_and_second_leg: Some(latencies.after(&observer)),
                ..Legs::default()
            })
        }
        None => None,
    };
    drop(running);
    kafka_load::delete_topic(s.kafka, &run_id).await?;
    Ok(Run {
        legs,
        ..run(latencies, pace.total())
    })
}

/// One of the paths the latency part times.
#[derive(Debug, Clone, Copy)]
pub enum Path {
    BareMqtt,
    BareKafka,
    /// Both bare legs at once (see [`Legs`]).
    BareLegsAtOnce,
    /// A system's MQTT -> Kafka route; `true`: with an observer alongside.
    MqttToKafka(System, bool),
    /// A system's Kafka -> MQTT route; `true`: with an observer alongside.
    KafkaToMqtt(System, bool),
}

impl Path {
    pub fn name(self) -> String {
        let observed = |yes: bool| if yes { ", observed" } else { "" };
        match self {
            Path::BareMqtt => "bare MQTT (publish -> subscriber)".into(),
            Path::BareKafka => "bare Kafka (produce -> consumer)".into(),
            Path::BareLegsAtOnce => "bare MQTT and bare Kafka at once".into(),
            Path::MqttToKafka(system, o) => {
                format!("{} MQTT -> Kafka{}", system.name(), observed(o))
            }
            Path::KafkaToMqtt(system, o) => {
                format!("{} Kafka -> MQTT{}", system.name(), observed(o))
            }
        }
    }

    /// The system under test on this path, if there is one.
    pub fn system(self) -> Option<System> {
        match self {
            Path::MqttToKafka(system, _) | Path::KafkaToMqtt(system, _) => Some(system),
            _ => None,
        }
    }

    pub fn is_kafka_to_mqtt(self) -> bool {
        matches!(self, Path::KafkaToMqtt(..))
    }

    pub async fn run(self, s: &Setup<'_>, pace: Pace) -> Result<Run> {
        match self {
            Path::BareMqtt => bare_mqtt(s, pace).await,
            Path::BareKafka => bare_kafka(s, pace).await,
            Path::BareLegsAtOnce => bare_legs_at_once(s, pace).await,
            Path::MqttToKafka(system, observed) => mqtt_to_kafka(s, system, pace, observed).await,
            Path::KafkaToMqtt(system, observed) => kafka_to_mqtt(s, system, pace, observed).await,
        }
    }
}
