//! What every reconciliation shares.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use kube::api::DynamicObject;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::Store;
use kube::{Client, ResourceExt};

use crate::metrics::Metrics;
use crate::seen::Seen;
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
    pub bridges: OnceLock<Vec<Store<DynamicObject>>>,
    /// What the last reconciliation of each bridge saw.
    pub seen: Seen,
    /// What `watched_bridges` parsed: by uid, the resourceVersion and the result.
    parsed_bridges: Mutex<HashMap<String, ParsedBridge>>,
    /// Consecutive failures per key, for exponential backoff.
    failures: Mutex<HashMap<String, u32>>,
}

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
        }
    }

    /// Every watched bridge whose spec can be read, for sharing decisions. Each reconciliation
    /// asks for all of them, so a bridge is parsed again only when it changed (by
    /// resourceVersion): with hundreds of bridges, parsing every spec every time was most of
    /// the operator's CPU.
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
                .filter_map(|b| BridgeTopics::from_object(b).map(Arc::new))
                .collect();
        };
        // Forget the bridges that are gone.
        if parsed.len() > objects.len() {
            let live: HashSet<&str> = objects
                .iter()
                .filter_map(|b| b.metadata.uid.as_deref())
                .collect();
            parsed.retain(|uid, _| live.contains(uid.as_str()));
        }
        objects
            .iter()
            .filter_map(|b| {
                let (Some(uid), Some(version)) = (&b.metadata.uid, &b.metadata.resource_version)
                else {
                    return BridgeTopics::from_object(b).map(Arc::new);
                };
                match parsed.get(uid) {
                    Some((seen, topics)) if seen == version => topics.clone(),
                    _ => {
                        let topics = BridgeTopics::from_object(b).map(Arc::new);
                        parsed.insert(uid.clone(), (version.clone(), topics.clone()));
                        topics
                    }
                }
            })
            .collect()
    }

    /// Forgets what is known of bridges that no longer exist, once there is a fair amount of
    /// it (cheap to call after every reconciliation).
    pub fn prune_seen(&self) {
        let stores = self.bridges.get().map(Vec::as_slice).unwrap_or_default();
        let watched: usize = stores.iter().map(|s| s.len()).sum();
        if self.seen.len() <= watched + 64 {
            return;
        }
        let live: HashSet<String> = stores
            .iter()
            .flat_map(|s| s.state())
            .map(|b| format!("{}/{}", b.namespace().unwrap_or_default(), b.name_any()))
            .collect();
        self.seen.retain(|key| live.contains(key));
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
    use super::backoff_after;

    #[test]
    fn backoff_doubles_and_caps() {
        let secs: Vec<u64> = [1, 2, 3, 6, 7, 30]
            .iter()
            .map(|n| backoff_after(*n).as_secs())
            .collect();
        assert_eq!(secs, [5, 10, 20, 160, 300, 300]);
    }
}
