//! Wires the runtime together: HTTP endpoint, the two directions, and the drain on SIGTERM.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mkb_api::ValidConfig;
use rdkafka::producer::FutureProducer;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::health::Health;
use crate::kafka::{self, BridgeContext, DeadLetters};
use crate::metrics::Metrics;
use crate::{down, http, shutdown, up};

/// What both directions start from.
pub struct StartContext<'a> {
    pub config: &'a ValidConfig,
    pub ordinal: u32,
    pub metrics: &'a Arc<Metrics>,
    pub health: &'a Health,
    pub dead_letters: Option<Arc<DeadLetters>>,
    /// Cancelled on SIGTERM/SIGINT: stop taking messages and drain.
    pub stop: CancellationToken,
}

/// Runs the bridge until SIGTERM/SIGINT, then drains. `Err` is a start-up failure.
pub async fn run(config: ValidConfig, ordinal: u32) -> Result<(), String> {
    let settings = &config.config;
    let metrics = Metrics::new(&settings.bridge_name);
    let health = Arc::new(Health::default());
    let stop = CancellationToken::new();
    shutdown::on_signal(stop.clone())
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let listen: SocketAddr = settings
        .http
        .listen
        .parse()
        .map_err(|_| format!("http.listen: {:?} is not an address", settings.http.listen))?;
    let http_stop = CancellationToken::new();
    let server = http::serve(
        listen,
        settings.http.metrics,
        metrics.clone(),
        health.clone(),
        http_stop.clone(),
    )
    .await
    .map_err(|e| format!("http.listen: cannot listen on {listen}: {e}"))?;

    let client_id = format!("{}-{ordinal}", config.client_id_prefix);
    let dead_letters = match &settings.kafka.dead_letter_topic {
        Some(topic) => Some(Arc::new(dead_letter_writer(
            &config, topic, &client_id, &metrics, &health,
        )?)),
        None => None,
    };
    let ctx = StartContext {
        config: &config,
        ordinal,
        metrics: &metrics,
        health: &health,
        dead_letters,
        stop: stop.clone(),
    };
    let mut directions = Vec::new();
    if !config.mqtt_to_kafka.is_empty() {
        directions.push(up::start(&ctx)?);
    }
    if !config.kafka_to_mqtt.is_empty() {
        directions.push(down::start(&ctx)?);
    }
    info!(
        bridge = %settings.bridge_name,
        ordinal,
        mqtt_to_kafka = config.mqtt_to_kafka.len(),
        kafka_to_mqtt = config.kafka_to_mqtt.len(),
        %listen,
        "bridge-runtime started"
    );

    stop.cancelled().await;
    // Each direction drains within the grace period; this bound only guards against a stuck one.
    let grace =
        Duration::from_secs(u64::from(settings.delivery.shutdown_grace_period_seconds) + 10);
    let drained = tokio::time::timeout(grace, futures::future::join_all(directions)).await;
    if drained.is_err() {
        tracing::warn!("draining did not finish in time; exiting anyway (unacknowledged messages will be redelivered)");
    }
    http_stop.cancel();
    let _ = server.await;
    info!("bridge-runtime stopped");
    Ok(())
}

fn dead_letter_writer(
    config: &ValidConfig,
    topic: &str,
    client_id: &str,
    metrics: &Metrics,
    health: &Health,
) -> Result<DeadLetters, String> {
    let kafka_settings = &config.config.kafka;
    let mut c = kafka::client_config(kafka_settings, &format!("{client_id}-dead-letters"))?;
    c.set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        // As large as Kafka allows: the dead-letter topic's max.message.bytes decides.
        .set("message.max.bytes", "1000000000")
        .set("message.timeout.ms", "0");
    let context = BridgeContext {
        up: metrics.connection("kafka", "dead-letters"),
        ready: health.component("kafka dead-letter producer connected"),
    };
    let producer: FutureProducer<BridgeContext> = c
        .create_with_context(context)
        .map_err(|e| format!("cannot create the dead-letter producer: {e}"))?;
    Ok(DeadLetters::new(producer, topic.to_owned()))
}
