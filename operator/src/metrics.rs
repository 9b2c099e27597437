//! The operator's Prometheus metrics.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// `ok`, `invalid_spec`, `blocked` or `error`.
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TopicOperationLabels {
    /// `create`, `grow`, `alter`, `describe` or `delete`.
    pub operation: String,
    /// `ok` or `error`.
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RetiredLabels {
    /// `namespace/name` of the bridge.
    pub bridge: String,
    /// The replica ordinal whose MQTT session was retired.
    pub ordinal: String,
}

pub struct Metrics {
    registry: Registry,
    retired_sessions: Family<RetiredLabels, Counter>,
    retired_messages: Family<RetiredLabels, Counter>,
    /// The label sets of the two above, so a deleted bridge's series can be removed.
    retired_series: Mutex<BTreeSet<(String, String)>>,
    leader: Gauge,
    topic_operations: Family<TopicOperationLabels, Counter>,
    reconciles: Family<ResultLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    duration: Histogram,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("mkb_operator");
        let reconciles = Family::default();
        let errors = Family::default();
        let duration = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica reconciles (holds the leader Lease, or runs without election)",
            leader.clone(),
        );
        let topic_operations = Family::default();
        registry.register(
            "kafka_topic_operations",
            "Kafka Admin API operations on managed topics, by operation and result",
            topic_operations.clone(),
        );
        registry.register(
            "reconciles",
            "Reconciliations, by result",
            reconciles.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Failed reconciliations, by reason",
            errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time of one reconciliation",
            duration.clone(),
        );
        let retired_sessions = Family::default();
        registry.register(
            "retired_sessions",
            "MQTT sessions of removed replicas retired (drained into Kafka and ended)",
            retired_sessions.clone(),
        );
        let retired_messages = Family::default();
        registry.register(
            "retired_messages",
            "Messages the retired MQTT sessions held, delivered to Kafka by their retirement",
            retired_messages.clone(),
        );
        Self {
            registry,
            retired_sessions,
            retired_messages,
            retired_series: Mutex::default(),
            leader,
            topic_operations,
            reconciles,
            errors,
            duration,
        }
    }

    pub fn reconciled(&self, result: &str, took: Duration) {
        self.reconciles
            .get_or_create(&ResultLabels {
                result: result.to_owned(),
            })
            .inc();
        self.duration.observe(took.as_secs_f64());
    }

    /// A request to reconcile a bridge that had not changed, answered without a round of API
    /// requests (counted as result `unchanged`, not timed).
    pub fn unchanged(&self) {
        self.reconciles
            .get_or_create(&ResultLabels {
                result: "unchanged".to_owned(),
            })
            .inc();
    }

    pub fn error(&self, reason: &str) {
        self.errors
            .get_or_create(&ErrorLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    pub fn topic_operation(&self, operation: &str, result: &str) {
        self.topic_operations
            .get_or_create(&TopicOperationLabels {
                operation: operation.to_owned(),
                result: result.to_owned(),
            })
            .inc();
    }

    /// One retired MQTT session of `bridge`'s replica `ordinal`, which held `drained` messages.
    pub fn retired(&self, bridge: &str, ordinal: i32, drained: u64) {
        let labels = RetiredLabels {
            bridge: bridge.to_owned(),
            ordinal: ordinal.to_string(),
        };
        self.retired_sessions.get_or_create(&labels).inc();
        self.retired_messages.get_or_create(&labels).inc_by(drained);
        if let Ok(mut series) = self.retired_series.lock() {
            series.insert((labels.bridge, labels.ordinal));
        }
    }

    /// Removes the retirement series of bridges `live` says are gone.
    pub fn forget_bridges(&self, live: impl Fn(&str) -> bool) {
        let Ok(mut series) = self.retired_series.lock() else {
            return;
        };
        series.retain(|(bridge, ordinal)| {
            if live(bridge) {
                return true;
            }
            let labels = RetiredLabels {
                bridge: bridge.clone(),
                ordinal: ordinal.clone(),
            };
            self.retired_sessions.remove(&labels);
            self.retired_messages.remove(&labels);
            false
        });
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        out
    }
}
