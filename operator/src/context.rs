//! What every reconciliation shares.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use kube::core::DeserializeGuard;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::Store;
use kube::{Client, Resource, ResourceExt};
use mkb_api::crd::MqttKafkaBridge;

use crate::metrics::Metrics;
use crate::seen::{self, Seen};
use crate::topics::{AdminClients, BridgeTopics};

type ParsedBridge = (String, Option<Arc<BridgeTopics>>);

pub struct Context {
    pub client: Client,
    pub reporter: Reporter,
    /// Publishes Normal events, grouping repeats into series.
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    /// bridge-runtime image for bridges that do not name one.
    pub default_image: String,
    /// How often a bridge is reconciled without any change (drift correction).
    pub resync: Duration,
    /// How many times the topics of a deleted bridge are tried before its finalizer is
    /// released anyway.
    pub topic_deletion_attempts: u32,
    /// Kafka admin clients, one per connection.
    pub kafka: AdminClients,
    /// The watched bridges, one store per watch (set once the controllers run), for topics
    /// they share.
    pub bridges: OnceLock<Vec<Store<DeserializeGuard<MqttKafkaBridge>>>>,
    /// What the last reconciliation of each bridge saw.
    pub seen: Seen,
    /// What `watched_bridges` parsed: by uid, the resourceVersion and the result.
    parsed_bridges: Mutex<HashMap<String, ParsedBridge>>,
    /// Consecutive failures per key, for exponential backoff.
    failures: Mutex<HashMap<String, u32>>,
    /// When `forget_gone` last did its work.
    last_forgotten: Mutex<Instant>,
}

/// How often what is kept of deleted bridges is dropped.
const FORGET_EVERY: Duration = Duration::from_secs(60);

impl Context {
    pub fn new(
        client: Client,
        reporter: Reporter,
        metrics: Arc<Metrics>,
        default_image: String,
        resync: Duration,
        topic_deletion_attempts: u32,
    ) -> Self {
        let recorder = Recorder::new(client.clone(), reporter.clone());
        Self {
            client,
            reporter,
            recorder,
            metrics,
            default_image,
            resync,
            topic_deletion_attempts,
            kafka: AdminClients::default(),
            bridges: OnceLock::new(),
            seen: Seen::default(),
            parsed_bridges: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            last_forgotten: Mutex::new(Instant::now()),
        }
    }

    /// Every watched bridge whose spec can be read, for sharing decisions. Each reconciliation
    /// asks for all of them, so a bridge's topics are worked out again only when it changed
    /// (by resourceVersion): with hundreds of bridges, doing it every time was most of the
    /// operator's CPU.
    pub fn watched_bridges(&self) -> Vec<Arc<BridgeTopics>> {
        let objects: Vec<_> = self
            .bridges
            .get()
            .into_iter()
            .flatten()
            .flat_map(|store| store.state())
            .collect();
        let Ok(mut parsed) = self.parsed_bridges.lock() else {
            return objects
                .iter()
                .filter_map(|b| BridgeTopics::from_watched(b).map(Arc::new))
                .collect();
        };
        // Forget the bridges that are gone.
        if parsed.len() > objects.len() {
            let live: HashSet<&str> = objects
                .iter()
                .filter_map(|b| b.meta().uid.as_deref())
                .collect();
            parsed.retain(|uid, _| live.contains(uid.as_str()));
        }
        objects
            .iter()
            .filter_map(|b| {
                let (Some(uid), Some(version)) = (&b.meta().uid, &b.meta().resource_version) else {
                    return BridgeTopics::from_watched(b).map(Arc::new);
                };
                match parsed.get(uid) {
                    Some((seen, topics)) if seen == version => topics.clone(),
                    _ => {
                        let topics = BridgeTopics::from_watched(b).map(Arc::new);
                        parsed.insert(uid.clone(), (version.clone(), topics.clone()));
                        topics
                    }
                }
            })
            .collect()
    }

    /// Forgets what is kept per bridge (visits, failure counts, metric series) once the bridge
    /// is gone. Cheap to call after every reconciliation: the work is done at most once a
    /// minute, or sooner when much has piled up.
    pub fn forget_gone(&self) {
        let stores = self.bridges.get().map(Vec::as_slice).unwrap_or_default();
        let watched: usize = stores.iter().map(|s| s.len()).sum();
        let due = self
            .last_forgotten
            .lock()
            .map_or(true, |at| at.elapsed() >= FORGET_EVERY);
        if !due && self.seen.len() <= watched + 64 {
            return;
        }
        let live: HashSet<String> = stores
            .iter()
            .flat_map(|s| s.state())
            .map(|b| seen::key(&b.namespace().unwrap_or_default(), &b.name_any()))
            .collect();
        self.forget_all_but(&live);
    }

    fn forget_all_but(&self, live: &HashSet<String>) {
        self.seen.retain(|key| live.contains(key));
        // Failure keys are `namespace/name`, or that with a `purpose:` prefix.
        let bridge_of = |key: &str| key.rsplit(':').next().unwrap_or(key).to_owned();
        if let Ok(mut failures) = self.failures.lock() {
            failures.retain(|key, _| live.contains(&bridge_of(key)));
        }
        self.metrics.forget_bridges(|bridge| live.contains(bridge));
        if let Ok(mut at) = self.last_forgotten.lock() {
            *at = Instant::now();
        }
    }

    /// A recorder without history: its event is always a new Event object.
    pub fn fresh_recorder(&self) -> Recorder {
        Recorder::new(self.client.clone(), self.reporter.clone())
    }

    /// Records a failure of `key`; returns how long to wait before the next attempt
    /// (5 s doubling up to 5 min).
    pub fn backoff(&self, key: &str) -> Duration {
        backoff_after(self.failed(key))
    }

    /// Records a failure of `key`; returns how many in a row.
    pub fn failed(&self, key: &str) -> u32 {
        self.failures
            .lock()
            .map(|mut f| {
                let n = f.entry(key.to_owned()).or_insert(0);
                *n = n.saturating_add(1);
                *n
            })
            .unwrap_or(1)
    }

    pub fn succeeded(&self, key: &str) {
        if let Ok(mut f) = self.failures.lock() {
            f.remove(key);
        }
    }
}

/// The wait after `failures` consecutive failures: 5 s, doubling, at most 5 min.
pub fn backoff_after(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(6);
    Duration::from_secs(5 << doublings).min(Duration::from_secs(300))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_api;

    /// Issue 35: failure counts and retirement series of deleted bridges were never removed.
    #[tokio::test]
    async fn what_is_kept_of_a_deleted_bridge_is_forgotten() {
        let client = fake_api::client(|_, _, _| async {
            fake_api::status(http::StatusCode::NOT_FOUND, "NotFound")
        });
        let ctx = fake_api::context(client, 3);
        for key in [
            "ns/gone",
            "topics:ns/gone",
            "deletion:ns/gone",
            "ns/live",
            "topics:ns/live",
        ] {
            ctx.failed(key);
        }
        let metrics = ctx.metrics.clone();
        metrics.retired("ns/gone", 2, 10);
        metrics.retired("ns/live", 1, 5);
        let due = std::time::Instant::now();
        ctx.seen.visited("ns/gone", Some("1".into()), 0, due);
        ctx.seen.visited("ns/live", Some("1".into()), 0, due);
        let live = HashSet::from(["ns/live".to_owned()]);
        ctx.forget_all_but(&live);
        let mut kept: Vec<String> = ctx.failures.lock().expect("lock").keys().cloned().collect();
        kept.sort();
        assert_eq!(kept, ["ns/live", "topics:ns/live"]);
        assert_eq!(ctx.seen.len(), 1);
        let text = metrics.encode();
        assert!(!text.contains("ns/gone"), "{text}");
        assert!(text.contains("ns/live"), "{text}");
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let secs: Vec<u64> = [1, 2, 3, 6, 7, 30]
            .iter()
            .map(|n| backoff_after(*n).as_secs())
            .collect();
        assert_eq!(secs, [5, 10, 20, 160, 300, 300]);
    }
}
