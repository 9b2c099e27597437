//! Prometheus metrics of the runtime, all prefixed `mkb_` and labelled with the bridge name.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Which way a route moves messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    MqttToKafka,
    KafkaToMqtt,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::MqttToKafka => "mqtt_to_kafka",
            Direction::KafkaToMqtt => "kafka_to_mqtt",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
    pub direction: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    pub route: String,
    pub direction: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnectionLabels {
    /// `mqtt` or `kafka`.
    pub side: String,
    /// Which connection: the MQTT client id, or the Kafka client's role.
    pub connection: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalLabels {
    /// The MQTT 5 reason code, e.g. `0x87`, or `disconnect` when the broker cut the connection.
    pub code: String,
    /// `retry` (sent again later) or `give_up` (dead-lettered).
    pub action: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeadLetterFailureLabels {
    /// `refused`, `timed_out` or `unusable`.
    pub reason: String,
}

/// Every metric of the runtime.
pub struct Metrics {
    registry: Registry,
    received: Family<RouteLabels, Counter>,
    delivered: Family<RouteLabels, Counter>,
    failed: Family<FailureLabels, Counter>,
    dead_lettered: Family<RouteLabels, Counter>,
    dropped: Family<RouteLabels, Counter>,
    pub unrouted: Counter,
    pub acks_dropped: Counter,
    pub producers_replaced: Counter,
    pub dead_letter_failures: Family<DeadLetterFailureLabels, Counter>,
    publishes_refused: Family<RefusalLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    in_flight: Family<RouteLabels, Gauge>,
    connection_up: Family<ConnectionLabels, Gauge>,
}

/// The metrics of one route, with its labels resolved once.
#[derive(Clone)]
pub struct RouteMetrics {
    metrics: Arc<Metrics>,
    labels: RouteLabels,
    pub received: Counter,
    pub delivered: Counter,
    pub dead_lettered: Counter,
    pub dropped: Counter,
    pub latency: Histogram,
    pub in_flight: Gauge,
}

impl RouteMetrics {
    /// Counts a failed attempt that will be retried (or dead-lettered), by reason.
    pub fn failed(&self, reason: &str) {
        self.metrics
            .failed
            .get_or_create(&FailureLabels {
                route: self.labels.route.clone(),
                direction: self.labels.direction.clone(),
                reason: reason.to_owned(),
            })
            .inc();
    }

    pub fn observe_latency(&self, elapsed: Duration) {
        self.latency.observe(elapsed.as_secs_f64());
    }
}

impl Metrics {
    pub fn new(bridge: &str) -> Arc<Self> {
        let mut registry = Registry::with_prefix_and_labels(
            "mkb",
            [("bridge".into(), bridge.to_owned().into())].into_iter(),
        );
        let received = Family::default();
        let delivered = Family::default();
        let failed = Family::default();
        let dead_lettered = Family::default();
        let dropped = Family::default();
        let unrouted = Counter::default();
        let acks_dropped = Counter::default();
        let producers_replaced = Counter::default();
        let dead_letter_failures = Family::default();
        let publishes_refused = Family::default();
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            // 100 µs to ~52 s.
            Histogram::new(exponential_buckets(0.0001, 2.0, 20))
        });
        let in_flight = Family::default();
        let connection_up = Family::default();
        registry.register(
            "messages_received",
            "Messages a route received (from MQTT or Kafka)",
            received.clone(),
        );
        registry.register(
            "messages_delivered",
            "Messages a route delivered: produced to Kafka (mqtt_to_kafka) or confirmed by the MQTT broker (kafka_to_mqtt)",
            delivered.clone(),
        );
        registry.register(
            "messages_failed",
            "Failed delivery attempts, by reason; retried unless dead-lettered",
            failed.clone(),
        );
        registry.register(
            "messages_dead_lettered",
            "Messages written to the dead-letter topic",
            dead_lettered.clone(),
        );
        registry.register(
            "messages_dropped",
            "Undeliverable messages dropped because no dead-letter topic is configured",
            dropped.clone(),
        );
        registry.register("messages_unrouted", "MQTT messages that matched no route (left-over subscriptions of a persistent session); acknowledged", unrouted.clone());
        registry.register(
            "mqtt_acks_dropped",
            "Acknowledgements not sent because the connection their message arrived on ended; the broker sends those messages again (duplicates)",
            acks_dropped.clone(),
        );
        registry.register(
            "kafka_producers_replaced",
            "MQTT -> Kafka producers replaced because a record waited while the brokers named a leader for its partition; the old producer's records are produced again",
            producers_replaced.clone(),
        );
        registry.register(
            "dead_letter_write_failures",
            "Dead letters the dead-letter topic did not take, by reason: refused (even without payload and headers), timed_out (not confirmed in time), unusable (missing, not authorised); the messages are held back",
            dead_letter_failures.clone(),
        );
        registry.register(
            "mqtt_publishes_refused",
            "Kafka -> MQTT publishes the broker refused (MQTT 5 reason code, or a connection cut while sending it), by what the bridge did next",
            publishes_refused.clone(),
        );
        registry.register(
            "delivery_latency_seconds",
            "From receipt to confirmation by the other side",
            latency.clone(),
        );
        registry.register(
            "in_flight_messages",
            "Messages received but not yet confirmed by the other side",
            in_flight.clone(),
        );
        registry.register(
            "connection_up",
            "1 while the connection is up",
            connection_up.clone(),
        );
        Arc::new(Self {
            registry,
            received,
            delivered,
            failed,
            dead_lettered,
            dropped,
            unrouted,
            acks_dropped,
            producers_replaced,
            dead_letter_failures,
            publishes_refused,
            latency,
            in_flight,
            connection_up,
        })
    }

    pub fn route(self: &Arc<Self>, route: &str, direction: Direction) -> RouteMetrics {
        let labels = RouteLabels {
            route: route.to_owned(),
            direction: direction.as_str().to_owned(),
        };
        RouteMetrics {
            metrics: self.clone(),
            received: self.received.get_or_create(&labels).clone(),
            delivered: self.delivered.get_or_create(&labels).clone(),
            dead_lettered: self.dead_lettered.get_or_create(&labels).clone(),
            dropped: self.dropped.get_or_create(&labels).clone(),
            latency: self.latency.get_or_create(&labels).clone(),
            in_flight: self.in_flight.get_or_create(&labels).clone(),
            labels,
        }
    }

    /// Counts a publish the broker refused (`code`) and what the bridge did (`action`).
    pub fn publish_refused(&self, code: &str, action: &str) {
        self.publishes_refused
            .get_or_create(&RefusalLabels {
                code: code.to_owned(),
                action: action.to_owned(),
            })
            .inc();
    }

    /// The gauge of one connection.
    pub fn connection(&self, side: &str, connection: &str) -> Gauge {
        self.connection_up
            .get_or_create(&ConnectionLabels {
                side: side.to_owned(),
                connection: connection.to_owned(),
            })
            .clone()
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        out
    }
}
