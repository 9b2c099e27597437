//! Kafka → MQTT: one consumer per route (replicas share its group), one publisher session.

mod consumer_context;
mod offsets;
mod publisher;
mod route;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use mkb_api::compiled::KafkaSubscription;
use mkb_api::connection::MqttVersion;
use rdkafka::consumer::{Consumer, StreamConsumer};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::kafka::{self, BridgeContext};
use crate::metrics::Direction;
use crate::mqtt::{self, ConnectionOptions};
use crate::process::{ClientRole, StartContext};

/// Starts the Kafka → MQTT direction; the handle finishes once every route has drained and
/// the publisher has disconnected, or with the reason a part of it failed.
pub fn start(ctx: &StartContext<'_>) -> Result<JoinHandle<Result<(), String>>, String> {
    let StartContext {
        config,
        metrics,
        health,
        ..
    } = *ctx;
    let (dead_letters, stop) = (ctx.dead_letters.clone(), ctx.stop.clone());
    let settings = &config.config;
    let client_id = ctx.client_id(ClientRole::Publisher);
    let window = settings.delivery.max_in_flight as usize;
    let window_kib = settings.delivery.max_in_flight_mib as usize * 1024;
    let prefetch_kib = (window_kib / 2).clamp(1024, 2_097_151);
    let options = ConnectionOptions {
        client_id: client_id.clone(),
        clean_session: true,
        inflight: settings.mqtt.max_inflight.min(u32::from(u16::MAX)) as u16,
    };
    let connection = mqtt::Settings::new(&config.mqtt_endpoint, &settings.mqtt, &options)?;
    let (publisher, poller) = publisher::Publisher::start(
        connection,
        &config.mqtt_endpoint,
        metrics.clone(),
        health.component(&format!("mqtt publisher {client_id} connected")),
    );
    let grace = Duration::from_secs(u64::from(settings.delivery.shutdown_grace_period_seconds));
    // Cancelled with `stop`, or when a part of this direction fails: the other routes drain.
    let routes_stop = stop.child_token();
    let mut routes = Vec::new();
    for compiled in &config.kafka_to_mqtt {
        let offsets = Arc::new(Mutex::new(offsets::OffsetTracker::default()));
        let consumer_id = ctx.client_id(ClientRole::Consumer(&compiled.name));
        let context = consumer_context::RouteContext {
            base: BridgeContext::new(
                &format!("consumer of route {}", compiled.name),
                &settings.kafka.bootstrap_servers,
                metrics.connection("kafka", &format!("consumer {}", compiled.name)),
                health.component(&format!(
                    "kafka consumer of route {} connected",
                    compiled.name
                )),
                ctx.failure.clone(),
            ),
            offsets: offsets.clone(),
            route: compiled.name.clone(),
            assigned: health.component(&format!(
                "kafka consumer of route {} has its partitions from the consumer group",
                compiled.name
            )),
            commit_failing: Mutex::new(None),
        };
        let mut c = kafka::client_config(&settings.kafka, &consumer_id)?;
        c.set("group.id", &compiled.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set(
                "auto.offset.reset",
                compiled.auto_offset_reset.as_kafka_str(),
            )
            // The consumer's prefetch is part of the route's memory: half of its budget, and
            // no single fetch larger than that.
            .set("queued.max.messages.kbytes", prefetch_kib.to_string())
            .set("fetch.max.bytes", (prefetch_kib * 1024).to_string())
            // and in records (per partition): librdkafka's 100,000 default costs far more
            // memory in per-record overhead than small payloads take.
            .set(
                "queued.min.messages",
                (window / 10).clamp(100, 1_000_000).to_string(),
            )
            // Once the prefetch is full, librdkafka waits this long before fetching again;
            // its 1 s default starved a route whose window had emptied in milliseconds.
            .set("fetch.queue.backoff.ms", "10")
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "3000");
        let consumer: StreamConsumer<consumer_context::RouteContext> =
            c.create_with_context(context).map_err(|e| {
                format!(
                    "cannot create the Kafka consumer of route {}: {e}",
                    compiled.name
                )
            })?;
        let topics: Vec<&str> = match &compiled.subscription {
            KafkaSubscription::Topics(list) => list.iter().map(String::as_str).collect(),
            KafkaSubscription::Pattern(pattern) => vec![pattern.as_str()],
        };
        consumer
            .subscribe(&topics)
            .map_err(|e| format!("kafkaToMqtt route {}: cannot subscribe: {e}", compiled.name))?;
        let route = route::DownRoute {
            route: Arc::new(compiled.clone()),
            consumer: Arc::new(consumer),
            committing: None,
            offsets,
            publisher: publisher.clone(),
            dead_letters: dead_letters.clone(),
            metrics: metrics.route(&compiled.name, Direction::KafkaToMqtt),
            window,
            window_bytes: window_kib * 1024,
            bytes_in_flight: 0,
            forward_headers: compiled.forward_headers
                && settings.mqtt.protocol_version == MqttVersion::V5,
        };
        routes.push((
            compiled.name.clone(),
            tokio::spawn(route.run(routes_stop.clone(), grace)),
        ));
    }
    Ok(tokio::spawn(supervise(
        routes,
        routes_stop,
        stop,
        publisher,
        poller,
    )))
}

/// Waits for the routes to finish after `stop`, then disconnects the publisher. A route or the
/// publisher's connection task that ends before `stop` is a failure: the other routes drain,
/// and the direction ends with the reason.
async fn supervise(
    routes: Vec<(String, JoinHandle<()>)>,
    routes_stop: CancellationToken,
    stop: CancellationToken,
    publisher: publisher::Publisher,
    mut poller: JoinHandle<()>,
) -> Result<(), String> {
    let mut running: FuturesUnordered<_> = routes
        .into_iter()
        .map(|(name, handle)| async move { (name, handle.await) })
        .collect();
    let mut failure = None;
    loop {
        tokio::select! {
            ended = running.next() => match ended {
                None => break,
                Some((name, result)) => {
                    if failure.is_none() && !stop.is_cancelled() {
                        let how = match result {
                            Err(e) if e.is_panic() => "panicked",
                            _ => "ended",
                        };
                        failure = Some(format!("Kafka → MQTT route {name} {how} unexpectedly"));
                        routes_stop.cancel();
                    }
                }
            },
            _ = &mut poller, if failure.is_none() => {
                failure = Some("the Kafka → MQTT publisher's MQTT connection task ended unexpectedly".to_owned());
                routes_stop.cancel();
            }
        }
    }
    if let Some(failure) = failure {
        return Err(failure);
    }
    publisher.disconnect();
    if tokio::time::timeout(Duration::from_secs(5), poller)
        .await
        .is_err()
    {
        tracing::warn!("the publisher did not disconnect within 5s");
    }
    Ok(())
}
