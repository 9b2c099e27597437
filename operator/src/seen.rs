//! What the last reconciliation of each bridge saw, so a request to reconcile a bridge that
//! has not changed since is answered without a round of API requests.
//!
//! Half of the requests to reconcile a bridge are echoes: the watch event of the status the
//! last reconciliation wrote, or a repeat of a trigger already served. Each full
//! reconciliation is a dozen API requests (server-side applies included), so with hundreds of
//! bridges the echoes alone kept the API server busy. A reconciliation is skipped only when
//! the bridge is the very version the last one left behind (its resourceVersion), none of its
//! children or referenced Secrets changed since that one started, and its next check (the
//! resync, or the retry of topics that were not ready) is not due yet.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// `namespace/name`: how the operator keys a bridge in its own bookkeeping (visits, failure
/// counts, sharing decisions, metric series).
pub fn key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Visit {
    /// The bridge's resourceVersion when the reconciliation ended (after its status write).
    version: String,
    /// The bridge's change count (children, Secrets) when the reconciliation started.
    changes: u64,
    /// When the next full reconciliation is due regardless.
    due: Instant,
}

#[derive(Default)]
pub struct Seen {
    /// Changes to a bridge's children or referenced Secrets, by `namespace/name`.
    changes: Mutex<HashMap<String, u64>>,
    visits: Mutex<HashMap<String, Visit>>,
}

impl Seen {
    /// A child or a referenced Secret of the bridge `key` changed (called by the watches).
    pub fn changed(&self, key: &str) {
        if let Ok(mut changes) = self.changes.lock() {
            *changes.entry(key.to_owned()).or_insert(0) += 1;
        }
    }

    /// The bridge's change count, read when a reconciliation starts.
    pub fn changes(&self, key: &str) -> u64 {
        self.changes
            .lock()
            .map(|c| c.get(key).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// How long until the next full reconciliation is due, when the bridge at `version` is
    /// what the last reconciliation left and nothing of it changed since; `None` otherwise.
    pub fn unchanged(&self, key: &str, version: Option<&str>, now: Instant) -> Option<Duration> {
        let changes = self.changes(key);
        let visits = self.visits.lock().ok()?;
        let visit = visits.get(key)?;
        (Some(visit.version.as_str()) == version && visit.changes == changes && now < visit.due)
            .then(|| visit.due - now)
    }

    /// Whether `version` is the one the last reconciliation left (its status write included).
    pub fn left(&self, key: &str, version: Option<&str>) -> bool {
        let Some(version) = version else {
            return false;
        };
        self.visits
            .lock()
            .is_ok_and(|v| v.get(key).is_some_and(|v| v.version == version))
    }

    /// A reconciliation ended well: the bridge is at `version`, it had seen `changes`, and the
    /// next one is due at `due`.
    pub fn visited(&self, key: &str, version: Option<String>, changes: u64, due: Instant) {
        let Ok(mut visits) = self.visits.lock() else {
            return;
        };
        match version {
            Some(version) => {
                let visit = Visit {
                    version,
                    changes,
                    due,
                };
                visits.insert(key.to_owned(), visit);
            }
            None => {
                visits.remove(key);
            }
        }
    }

    /// The next request to reconcile the bridge does the full round (after a failure, or once
    /// the bridge is gone).
    pub fn forget(&self, key: &str) {
        if let Ok(mut visits) = self.visits.lock() {
            visits.remove(key);
        }
    }

    /// Drops what is known of bridges that no longer exist.
    pub fn retain(&self, live: impl Fn(&str) -> bool) {
        if let Ok(mut visits) = self.visits.lock() {
            visits.retain(|k, _| live(k));
        }
        if let Ok(mut changes) = self.changes.lock() {
            changes.retain(|k, _| live(k));
        }
    }

    /// How many bridges are remembered (for pruning).
    pub fn len(&self) -> usize {
        self.visits.lock().map(|v| v.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOON: Duration = Duration::from_secs(60);

    #[test]
    fn the_version_the_last_reconciliation_left_is_unchanged_until_due() {
        let seen = Seen::default();
        let now = Instant::now();
        assert_eq!(seen.unchanged("ns/a", Some("7"), now), None, "never seen");
        seen.visited("ns/a", Some("7".into()), seen.changes("ns/a"), now + SOON);
        assert_eq!(seen.unchanged("ns/a", Some("7"), now), Some(SOON));
        assert_eq!(
            seen.unchanged("ns/a", Some("8"), now),
            None,
            "changed since"
        );
        assert_eq!(
            seen.unchanged("ns/b", Some("7"), now),
            None,
            "another bridge"
        );
        assert_eq!(seen.unchanged("ns/a", Some("7"), now + SOON), None, "due");
        assert!(seen.left("ns/a", Some("7")) && !seen.left("ns/a", Some("8")));
        assert!(!seen.left("ns/a", None));
    }

    #[test]
    fn a_change_of_a_child_or_secret_after_the_start_counts() {
        let seen = Seen::default();
        let now = Instant::now();
        let at_start = seen.changes("ns/a");
        // A child changed while the reconciliation ran: it may not have seen the change.
        seen.changed("ns/a");
        seen.visited("ns/a", Some("7".into()), at_start, now + SOON);
        assert_eq!(seen.unchanged("ns/a", Some("7"), now), None);
        // The next one started after the change: what it left is current.
        seen.visited("ns/a", Some("7".into()), seen.changes("ns/a"), now + SOON);
        assert!(seen.unchanged("ns/a", Some("7"), now).is_some());
        seen.changed("ns/b");
        assert!(
            seen.unchanged("ns/a", Some("7"), now).is_some(),
            "other bridges' changes"
        );
    }

    #[test]
    fn forgotten_and_pruned_bridges_are_reconciled_in_full() {
        let seen = Seen::default();
        let now = Instant::now();
        for key in ["ns/a", "ns/b"] {
            seen.visited(key, Some("1".into()), 0, now + SOON);
        }
        seen.forget("ns/a");
        assert_eq!(seen.unchanged("ns/a", Some("1"), now), None);
        seen.retain(|k| k != "ns/b");
        assert_eq!(seen.unchanged("ns/b", Some("1"), now), None);
        assert_eq!(seen.len(), 0);
        seen.visited("ns/c", None, 0, now + SOON);
        assert_eq!(
            seen.unchanged("ns/c", None, now),
            None,
            "no version, no skip"
        );
    }
}
