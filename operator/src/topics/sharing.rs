//! Topics that several bridges use (pure). Bridges share a topic when they name it and use
//! the same Kafka cluster. The oldest bridge that lists a topic in `spec.kafka.topics`
//! manages its settings, so two specs never fight over partitions or configuration; the
//! others are told. A topic is never deleted while another bridge still uses it.

use std::collections::BTreeSet;
use std::sync::Arc;

use kube::api::ObjectMeta;
use kube::core::DeserializeGuard;
use kube::ResourceExt;
use mkb_api::crd::{MqttKafkaBridge, MqttKafkaBridgeSpec};

use super::plan::{desired_topics, DesiredTopic};
use crate::seen;

/// What sharing decisions need of one bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeTopics {
    /// `namespace/name`.
    pub key: String,
    /// Creation time (RFC 3339, sorts by time), for "oldest".
    pub created_at: String,
    pub deleting: bool,
    pub cluster_id: Option<String>,
    pub bootstrap: BTreeSet<String>,
    /// Every topic it needs.
    pub uses: BTreeSet<String>,
    /// The topics in its `spec.kafka.topics`.
    pub lists: BTreeSet<String>,
}

impl BridgeTopics {
    pub fn new(
        key: String,
        created_at: String,
        deleting: bool,
        spec: &MqttKafkaBridgeSpec,
        cluster_id: Option<String>,
    ) -> Self {
        Self::with_topics(
            key,
            created_at,
            deleting,
            spec,
            &desired_topics(spec),
            cluster_id,
        )
    }

    /// As `new`, from the bridge's desired topics computed already.
    pub fn with_topics(
        key: String,
        created_at: String,
        deleting: bool,
        spec: &MqttKafkaBridgeSpec,
        desired: &[DesiredTopic],
        cluster_id: Option<String>,
    ) -> Self {
        Self {
            key,
            created_at,
            deleting,
            cluster_id,
            bootstrap: spec
                .kafka
                .bootstrap_servers
                .split(',')
                .map(|s| s.trim().to_ascii_lowercase())
                .filter(|s| !s.is_empty())
                .collect(),
            uses: desired.iter().map(|t| t.name.clone()).collect(),
            lists: desired
                .iter()
                .filter(|t| t.listed)
                .map(|t| t.name.clone())
                .collect(),
        }
    }

    /// A watched bridge; `None` when its spec cannot be read (it manages nothing then).
    pub fn from_watched(obj: &DeserializeGuard<MqttKafkaBridge>) -> Option<Self> {
        let bridge = obj.0.as_ref().ok()?;
        let meta = &bridge.metadata;
        Some(Self::new(
            seen::key(&obj.namespace().unwrap_or_default(), &obj.name_any()),
            created_at(meta),
            meta.deletion_timestamp.is_some(),
            &bridge.spec,
            bridge
                .status
                .as_ref()
                .and_then(|s| s.kafka_cluster_id.clone()),
        ))
    }

    /// Known cluster ids decide; without them, a shared bootstrap address does.
    fn same_cluster(&self, other: &BridgeTopics) -> bool {
        match (&self.cluster_id, &other.cluster_id) {
            (Some(a), Some(b)) => a == b,
            _ => !self.bootstrap.is_disjoint(&other.bootstrap),
        }
    }
}

/// Creation time of an object (RFC 3339, sorts by time).
pub fn created_at(meta: &ObjectMeta) -> String {
    meta.creation_timestamp
        .as_ref()
        .map(|t| t.0.to_string())
        .unwrap_or_default()
}

/// How many of the other users of a topic its note names.
const NOTE_NAMES: usize = 3;

/// One bridge and the other live bridges on its cluster.
pub struct Sharing {
    me: BridgeTopics,
    peers: Vec<Arc<BridgeTopics>>,
}

impl Sharing {
    pub fn new<B: Into<Arc<BridgeTopics>>>(
        me: BridgeTopics,
        all: impl IntoIterator<Item = B>,
    ) -> Self {
        let peers = all
            .into_iter()
            .map(Into::into)
            .filter(|b| b.key != me.key && !b.deleting && me.same_cluster(b))
            .collect();
        Self { me, peers }
    }

    /// The other bridges that use the topic.
    pub fn users(&self, topic: &str) -> Vec<&str> {
        self.peers
            .iter()
            .filter(|b| b.uses.contains(topic))
            .map(|b| b.key.as_str())
            .collect()
    }

    /// The bridge whose spec manages the topic's settings: the oldest that lists it.
    pub fn settings_manager(&self, topic: &str) -> Option<&str> {
        std::iter::once(&self.me)
            .chain(self.peers.iter().map(|b| &**b))
            .filter(|b| b.lists.contains(topic))
            .min_by(|a, b| (&a.created_at, &a.key).cmp(&(&b.created_at, &b.key)))
            .map(|b| b.key.as_str())
    }

    pub fn manages_settings(&self, topic: &str) -> bool {
        self.settings_manager(topic) == Some(self.me.key.as_str())
    }

    /// The note for the topic's status when others use it too. It names the first few users
    /// only: with hundreds of bridges on one topic, a full list would make every status
    /// hundreds of names long, and rewritten each time one of them comes or goes.
    pub fn note(&self, topic: &str) -> Option<String> {
        let mut users = self.users(topic);
        if users.is_empty() {
            return None;
        }
        users.sort_unstable();
        let named = users.len().min(NOTE_NAMES);
        let mut note = format!("shared with bridge {}", users[..named].join(", "));
        if users.len() > named {
            note.push_str(&format!(" and {} more", users.len() - named));
        }
        if self.me.lists.contains(topic) && !self.manages_settings(topic) {
            if let Some(manager) = self.settings_manager(topic) {
                note.push_str(&format!(
                    "; bridge {manager} lists it first and manages its settings, so this spec's partitions and config for it are not applied"
                ));
            }
        }
        Some(note)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bridge(key: &str, at: &str, bootstrap: &str, uses: &[&str], lists: &[&str]) -> BridgeTopics {
        let set = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect();
        BridgeTopics {
            key: key.into(),
            created_at: at.into(),
            deleting: false,
            cluster_id: None,
            bootstrap: set(&[bootstrap]),
            uses: set(uses),
            lists: set(lists),
        }
    }

    #[test]
    fn the_oldest_lister_manages_and_the_others_are_told() {
        let a = bridge("ns/a", "2026-01-01T00:00:00Z", "k:9092", &["t"], &["t"]);
        let b = bridge("ns/b", "2026-01-02T00:00:00Z", "k:9092", &["t"], &["t"]);
        let for_b = Sharing::new(b.clone(), [a.clone(), b.clone()]);
        assert!(!for_b.manages_settings("t"));
        assert_eq!(for_b.users("t"), ["ns/a"]);
        let note = for_b.note("t").expect("shared");
        assert!(
            note.starts_with("shared with bridge ns/a; bridge ns/a lists it first"),
            "{note}"
        );
        let for_a = Sharing::new(a.clone(), [a, b]);
        assert!(for_a.manages_settings("t"));
        assert_eq!(for_a.note("t").as_deref(), Some("shared with bridge ns/b"));
    }

    #[test]
    fn the_note_names_three_users_and_counts_the_rest() {
        let me = bridge("ns/m", "9", "k:9092", &["t"], &[]);
        let others: Vec<_> = ["ns/e", "ns/a", "ns/d", "ns/c", "ns/b"]
            .iter()
            .map(|k| bridge(k, "1", "k:9092", &["t"], &[]))
            .collect();
        let s = Sharing::new(me, others);
        assert_eq!(
            s.note("t").as_deref(),
            Some("shared with bridge ns/a, ns/b, ns/c and 2 more")
        );
    }

    #[test]
    fn a_bridge_that_only_routes_to_a_topic_does_not_manage_it_but_counts_as_a_user() {
        let lister = bridge("ns/b", "2026-01-02T00:00:00Z", "k:9092", &["t"], &["t"]);
        let router = bridge("ns/a", "2026-01-01T00:00:00Z", "k:9092", &["t"], &[]);
        let s = Sharing::new(lister.clone(), [router.clone(), lister]);
        assert!(s.manages_settings("t"));
        assert_eq!(s.users("t"), ["ns/a"]);
    }

    #[test]
    fn other_clusters_and_deleting_bridges_do_not_share() {
        let me = bridge("ns/a", "1", "k:9092", &["t"], &["t"]);
        let elsewhere = bridge("ns/b", "0", "other:9092", &["t"], &["t"]);
        let mut leaving = bridge("ns/c", "0", "k:9092", &["t"], &["t"]);
        leaving.deleting = true;
        let s = Sharing::new(me.clone(), [elsewhere.clone(), leaving]);
        assert!(s.users("t").is_empty() && s.manages_settings("t"));
        // Cluster ids, when both are known, win over addresses.
        let mut me_id = me.clone();
        me_id.cluster_id = Some("c1".into());
        let mut same = elsewhere.clone();
        same.cluster_id = Some("c1".into());
        assert_eq!(Sharing::new(me_id.clone(), [same]).users("t"), ["ns/b"]);
        let mut other = bridge("ns/d", "0", "k:9092", &["t"], &[]);
        other.cluster_id = Some("c2".into());
        assert!(Sharing::new(me_id, [other]).users("t").is_empty());
    }
}
