//! MQTT → Kafka: one subscriber session feeding the routes, one idempotent producer.

mod acks;
mod dispatch;
mod record;
mod route;
mod subscriber;

use std::sync::Arc;
use std::time::Duration;

use mkb_api::ValidConfig;
use rdkafka::producer::FutureProducer;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;

use crate::app::StartContext;
use crate::health::Health;
use crate::kafka::{self, BridgeContext};
use crate::metrics::{Direction, Metrics};
use crate::mqtt::{self, ConnectionOptions};

/// Starts the MQTT → Kafka direction; the handle finishes once it has drained after `stop`.
pub fn start(ctx: &StartContext<'_>) -> Result<JoinHandle<()>, String> {
    let StartContext {
        config,
        ordinal,
        metrics,
        health,
        ..
    } = *ctx;
    let (dead_letters, stop) = (ctx.dead_letters.clone(), ctx.stop.clone());
    let settings = &config.config;
    let client_id = format!("{}-{ordinal}", config.client_id_prefix);
    let window = settings.delivery.max_in_flight as usize;
    let producer = producer(config, &client_id, metrics, health)?;
    let options = ConnectionOptions {
        client_id: client_id.clone(),
        clean_session: settings.mqtt.clean_session,
        manual_acks: true,
        inflight: settings.mqtt.max_inflight.min(u32::from(u16::MAX)) as u16,
        // Acknowledgements can queue up in rumqttc faster than it sends them (see acks.rs).
        request_capacity: window * 4 + 10_000,
    };
    let (client, eventloop) = mqtt::connect(&config.mqtt_endpoint, &settings.mqtt, &options)?;
    let routes: Vec<_> = config.mqtt_to_kafka.iter().cloned().map(Arc::new).collect();
    let mut inputs = Vec::new();
    let mut workers = Vec::new();
    for route in &routes {
        let (tx, rx) = mpsc::channel(window);
        inputs.push(tx);
        let worker = route::RouteWorker::new(
            route.clone(),
            producer.clone(),
            dead_letters.clone(),
            metrics.route(&route.name, Direction::MqttToKafka),
        );
        workers.push(tokio::spawn(worker.run(rx)));
    }
    let subscriber = subscriber::Subscriber {
        client_id: client_id.clone(),
        tracker: acks::AckTracker::new(client.clone(), metrics.acks_dropped.clone()),
        client,
        routes,
        inputs,
        window: Arc::new(Semaphore::new(window)),
        ready: health.component(&format!(
            "mqtt subscriber {client_id} connected and subscribed"
        )),
        up: metrics.connection("mqtt", &client_id),
        unrouted: metrics.unrouted.clone(),
    };
    let (events, poller) = subscriber::spawn_poller(eventloop, window.min(4096) + 16);
    let grace = Duration::from_secs(u64::from(settings.delivery.shutdown_grace_period_seconds));
    Ok(tokio::spawn(async move {
        subscriber.run(events, stop, grace).await;
        poller.abort();
        for worker in workers {
            worker.abort();
        }
    }))
}

fn producer(
    config: &ValidConfig,
    client_id: &str,
    metrics: &Metrics,
    health: &Health,
) -> Result<FutureProducer<BridgeContext>, String> {
    let kafka = &config.config.kafka;
    let p = &kafka.producer;
    let mut c = kafka::client_config(kafka, client_id)?;
    c.set("acks", p.acks.as_kafka_str())
        .set("compression.type", p.compression.as_kafka_str())
        .set("linger.ms", p.linger_ms.to_string())
        .set("batch.size", p.batch_size_bytes.to_string())
        .set("message.max.bytes", p.max_message_bytes.to_string())
        .set("enable.idempotence", p.idempotence.to_string())
        // Never give up on a record while Kafka is unreachable: the in-flight window bounds
        // what waits, and the broker keeps the rest. Unknown topics still fail, after
        // topic.metadata.propagation.max.ms.
        .set("message.timeout.ms", "0")
        .set("partitioner", "murmur2_random");
    let context = BridgeContext {
        up: metrics.connection("kafka", "producer"),
        ready: health.component("kafka producer connected"),
    };
    c.create_with_context(context)
        .map_err(|e| format!("cannot create the Kafka producer: {e}"))
}
