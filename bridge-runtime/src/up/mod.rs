//! MQTT → Kafka: one subscriber session feeding the routes, one idempotent producer.

mod acks;
mod dispatch;
mod partitions;
mod poller;
mod producer;
mod record;
mod route;
mod subscriber;
mod subscriptions;
mod watchdog;

use std::sync::Arc;
use std::time::Duration;

use mkb_api::connection::ProducerSettings;
use mkb_api::ValidConfig;
use rdkafka::producer::FutureProducer;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;

use crate::health::{Failure, Health};
use crate::kafka::{self, BridgeContext};
use crate::metrics::{Direction, Metrics};
use crate::mqtt::{self, ConnectionOptions};
use crate::process::{ClientRole, StartContext};
use producer::{ProducerSlot, SharedProducer};

/// Starts the MQTT → Kafka direction; the handle finishes once it has drained after `stop`,
/// or with the reason a part of it failed.
pub fn start(ctx: &StartContext<'_>) -> Result<JoinHandle<Result<(), String>>, String> {
    let StartContext {
        config,
        metrics,
        health,
        ..
    } = *ctx;
    let (dead_letters, stop) = (ctx.dead_letters.clone(), ctx.stop.clone());
    let settings = &config.config;
    let client_id = ctx.client_id(ClientRole::Subscriber);
    let window = settings.delivery.max_in_flight as usize;
    let window_kib = settings.delivery.max_in_flight_mib.saturating_mul(1024);
    let producer = Arc::new(SharedProducer::new(producer_factory(
        config,
        &client_id,
        metrics,
        health,
        &ctx.failure,
    ))?);
    let options = ConnectionOptions {
        client_id: client_id.clone(),
        clean_session: settings.mqtt.clean_session,
        inflight: settings.mqtt.max_inflight.min(u32::from(u16::MAX)) as u16,
    };
    let connection = mqtt::Settings::new(&config.mqtt_endpoint, &settings.mqtt, &options)?;
    let routes: Vec<_> = config.mqtt_to_kafka.iter().cloned().map(Arc::new).collect();
    let mut inputs = Vec::new();
    let mut workers: Vec<(String, JoinHandle<()>)> = Vec::new();
    for route in &routes {
        let (tx, rx) = mpsc::channel(window);
        inputs.push(tx);
        let worker = route::RouteWorker::new(
            route.clone(),
            producer.clone(),
            dead_letters.clone(),
            metrics.route(&route.name, Direction::MqttToKafka),
            route::RouteHealth {
                producing: health.component(&format!("route {} producing to Kafka", route.name)),
                failure: ctx.failure.clone(),
            },
        );
        workers.push((route.name.clone(), tokio::spawn(worker.run(rx))));
    }
    let tracker = acks::AckTracker::new(metrics.acks_dropped.clone());
    // A short hand-off: the connection task stops parsing (TCP pushes back on the broker)
    // when it is full, so what waits here is bounded by messages, not only by the window.
    let (events, link, mut poller) =
        poller::spawn(connection, window.min(64) + 16, tracker.clone());
    let subscriber = subscriber::Subscriber {
        client_id: client_id.clone(),
        tracker,
        link,
        routes,
        inputs,
        window: Arc::new(Semaphore::new(window)),
        window_bytes: Arc::new(Semaphore::new(window_kib as usize)),
        window_kib,
        ready: health.component(&format!(
            "mqtt subscriber {client_id} connected and subscribed"
        )),
        endpoint: config.mqtt_endpoint.clone(),
        up: metrics.connection("mqtt", &client_id),
        unrouted: metrics.unrouted.clone(),
        dead_letters: dead_letters.clone(),
        retire: ctx.retire,
    };
    let probe_kafka = settings.kafka.clone();
    let probe_id = format!("{client_id}-leaders");
    let watchdog = watchdog::Watchdog {
        producer: producer.clone(),
        probe: Box::new(move || {
            kafka::client_config(&probe_kafka, &probe_id)?
                .set("statistics.interval.ms", "0")
                .create_with_context(kafka::QuietContext {
                    client: "leader probe",
                })
                .map_err(|e| format!("cannot create a Kafka client: {e}"))
        }),
        linger: Duration::from_millis(u64::from(settings.kafka.producer.linger_ms)),
        ready: health.component("kafka producer delivering"),
        replaced: metrics.producers_replaced.clone(),
    };
    let watchdog = tokio::spawn(watchdog.run(stop.child_token()));
    let grace = Duration::from_secs(u64::from(settings.delivery.shutdown_grace_period_seconds));
    let retire = ctx.retire;
    Ok(tokio::spawn(async move {
        // Cancelled with `stop`, or when a part of this direction fails: the subscriber drains.
        let sub_stop = stop.child_token();
        let tracker = subscriber.tracker.clone();
        let run = subscriber.run(events, sub_stop.clone(), grace);
        tokio::pin!(run);
        let mut failure = None;
        tokio::select! {
            _ = &mut run => {}
            ended = first_to_end(&mut poller, &mut workers) => {
                // While draining, the connection task and the workers end as they should.
                if !sub_stop.is_cancelled() {
                    failure = Some(ended);
                    sub_stop.cancel();
                }
                run.await;
            }
        }
        if retire && failure.is_none() && tracker.len() > 0 {
            failure = Some(format!(
                "{} messages were not confirmed by Kafka in time; the session is kept",
                tracker.len()
            ));
        }
        // A held-back message has left the tracker unacknowledged: ending the session now
        // would throw it away.
        if retire && failure.is_none() && tracker.held() > 0 {
            failure = Some(format!(
                "{} message(s) of the session are held back unacknowledged because the dead-letter topic cannot take them; the session is kept with them (make the dead-letter topic usable, then retire again)",
                tracker.held()
            ));
        }
        // A retiring session ends by itself once drained.
        if failure.is_none() && !stop.is_cancelled() && !retire {
            failure = Some("the MQTT subscriber stopped unexpectedly".to_owned());
        }
        poller.abort();
        watchdog.abort();
        for (_, worker) in workers {
            worker.abort();
        }
        failure.map_or(Ok(()), Err)
    }))
}

/// Which of the subscriber's tasks ended first (none should before the drain).
async fn first_to_end(
    poller: &mut JoinHandle<()>,
    workers: &mut [(String, JoinHandle<()>)],
) -> String {
    let worker_ends = futures::future::select_all(workers.iter_mut().map(|(name, handle)| {
        Box::pin(async move {
            let result = handle.await;
            (name.clone(), result.is_err())
        })
    }));
    tokio::select! {
        _ = poller => "the MQTT subscriber's connection task ended unexpectedly".to_owned(),
        ((name, panicked), _, _) = worker_ends => {
            let how = if panicked { "panicked" } else { "ended" };
            format!("MQTT → Kafka route {name} {how} unexpectedly")
        }
    }
}

/// Makes the producer, and its replacements should the watchdog need one.
fn producer_factory(
    config: &ValidConfig,
    client_id: &str,
    metrics: &Metrics,
    health: &Health,
    failure: &Failure,
) -> Box<dyn Fn() -> Result<ProducerSlot, String> + Send + Sync> {
    let kafka = config.config.kafka.clone();
    let client_id = client_id.to_owned();
    let up = metrics.connection("kafka", "producer");
    let ready = health.component("kafka producer connected");
    let failure = failure.clone();
    Box::new(move || {
        let mut c = kafka::client_config(&kafka, &client_id)?;
        for (key, value) in producer_properties(&kafka.producer) {
            c.set(key, value);
        }
        let context = BridgeContext::new(
            "producer",
            &kafka.bootstrap_servers,
            up.clone(),
            ready.clone(),
            failure.clone(),
        );
        let retired = context.retired_flag();
        let producer: FutureProducer<BridgeContext> = c
            .create_with_context(context)
            .map_err(|e| format!("cannot create the Kafka producer: {e}"))?;
        Ok(ProducerSlot { producer, retired })
    })
}

/// The librdkafka settings of the route producer.
fn producer_properties(p: &ProducerSettings) -> Vec<(&'static str, String)> {
    let mut properties = vec![
        ("acks", p.acks.as_kafka_str().to_owned()),
        ("compression.type", p.compression.as_kafka_str().to_owned()),
        ("linger.ms", p.linger_ms.to_string()),
        ("batch.size", p.batch_size_bytes.to_string()),
        ("message.max.bytes", p.max_message_bytes.to_string()),
        ("enable.idempotence", p.idempotence.to_string()),
        // Never give up on a record while Kafka is unreachable: the in-flight window bounds
        // what waits, and the broker keeps the rest. Unknown topics still fail, after
        // topic.metadata.propagation.max.ms. A producer that stops sending while Kafka is fine
        // is the watchdog's business.
        ("message.timeout.ms", "0".to_owned()),
        ("partitioner", "murmur2_random".to_owned()),
    ];
    if !p.idempotence {
        // Without idempotence a retried request lands behind the requests sent after it;
        // one request in flight per broker keeps each partition in order (and costs
        // throughput, which is why idempotence is the default).
        properties.push(("max.in.flight.requests.per.connection", "1".to_owned()));
    }
    properties
}

#[cfg(test)]
mod tests {
    use super::*;

    fn property(p: &ProducerSettings, key: &str) -> Option<String> {
        producer_properties(p)
            .into_iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }

    /// Issue 29, path 4: with `idempotence: false` librdkafka kept up to 1,000,000 requests in
    /// flight, so a retried one landed behind later records of its partition. The test bed's
    /// broker never answers a produce request with a retriable error while the requests after
    /// it succeed, so this is a unit test of the settings.
    #[test]
    fn without_idempotence_one_request_is_in_flight_per_broker() {
        let mut p = ProducerSettings::default();
        assert_eq!(property(&p, "enable.idempotence").as_deref(), Some("true"));
        assert_eq!(property(&p, "max.in.flight.requests.per.connection"), None);
        p.idempotence = false;
        assert_eq!(property(&p, "enable.idempotence").as_deref(), Some("false"));
        assert_eq!(
            property(&p, "max.in.flight.requests.per.connection").as_deref(),
            Some("1")
        );
    }
}
