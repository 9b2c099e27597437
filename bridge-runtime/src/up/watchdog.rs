//! Notices a producer that stopped delivering while Kafka is fine, and replaces it.
//!
//! Every few seconds it looks at the record that has waited longest for Kafka's confirmation.
//! Once that record has waited a while, it asks the brokers (a fresh metadata request) whether
//! every partition of its topic has a leader. A record that keeps waiting for `STALL_BOUND`
//! while the brokers name a leader throughout means the producer no longer sends to that
//! partition (librdkafka #5430): the producer is replaced (see `producer.rs`). A broker that
//! holds every record back on purpose (`min.insync.replicas` not met) looks the same from
//! here; the replacement costs a reconnection there, and repeats at doubling intervals up to
//! `MAX_BOUND` rather than every `STALL_BOUND`.
//!
//! The route is not ready while a record has waited `NOT_READY_AFTER`, whatever the cause,
//! with the cause as the reason.

use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use rdkafka::producer::FutureProducer;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::producer::{Oldest, SharedProducer};
use crate::health::Readiness;
use crate::kafka::{topic_leaders, QuietContext, TopicLeaders};

const CHECK_EVERY: Duration = Duration::from_secs(5);
/// A record waiting less than this is in the normal course of things (batching, a leader
/// election, the reconnection backoff of at most 10 s): no metadata is asked for.
const SUSPECT_AFTER: Duration = Duration::from_secs(5);
const NOT_READY_AFTER: Duration = Duration::from_secs(30);
const STALL_BOUND: Duration = Duration::from_secs(30);
const MAX_BOUND: Duration = Duration::from_secs(300);

pub struct Watchdog {
    pub producer: Arc<SharedProducer>,
    /// Makes the client that asks the brokers for leaders (a producer that never sends: it
    /// serves its events on a thread of its own); one exists only while a record waits.
    pub probe: Box<dyn Fn() -> Result<FutureProducer<QuietContext>, String> + Send + Sync>,
    /// The producer's `linger.ms`: records wait that long on purpose.
    pub linger: Duration,
    pub ready: Readiness,
    pub replaced: Counter,
}

/// What the watchdog decides at one check.
#[derive(Debug, PartialEq)]
enum Verdict {
    /// Nothing waits long: ready.
    Flowing,
    /// A record waits; `reason` when it has waited long enough to be not ready.
    Waiting { reason: Option<String> },
    /// The producer is stuck: replace it.
    Replace { reason: String },
}

/// The watchdog's memory between checks.
#[derive(Debug)]
struct Judge {
    /// What a record may wait without suspicion: the linger time and `SUSPECT_AFTER`.
    normal: Duration,
    /// The waiting record seen while the brokers named every leader, and since when.
    stall: Option<(u64, Instant)>,
    /// How long a stall lasts before a replacement; doubles after each one until records
    /// flow again.
    bound: Duration,
}

impl Judge {
    fn new(linger: Duration) -> Self {
        Self {
            normal: linger + SUSPECT_AFTER,
            stall: None,
            bound: STALL_BOUND,
        }
    }

    /// Whether the brokers must be asked about the oldest record's topic.
    fn wants_leaders(&self, oldest: Option<&Oldest>) -> bool {
        oldest.is_some_and(|o| o.waited >= self.normal)
    }

    fn judge(&mut self, oldest: Option<&Oldest>, leaders: TopicLeaders, now: Instant) -> Verdict {
        let Some(oldest) = oldest.filter(|o| o.waited >= self.normal) else {
            self.stall = None;
            self.bound = STALL_BOUND;
            return Verdict::Flowing;
        };
        let (topic, waited) = (&oldest.topic, oldest.waited.as_secs());
        let cause = match leaders {
            TopicLeaders::All(_) => {
                let since = match self.stall {
                    Some((id, since)) if id == oldest.id => since,
                    _ => {
                        self.stall = Some((oldest.id, now));
                        now
                    }
                };
                let stalled = now.duration_since(since);
                if stalled >= self.bound {
                    self.stall = None;
                    self.bound = (self.bound * 2).min(MAX_BOUND);
                    return Verdict::Replace {
                        reason: format!(
                            "a record for Kafka topic {topic} has waited {waited} s although the brokers have named a leader for each of its partitions for {} s",
                            stalled.as_secs()
                        ),
                    };
                }
                format!("the brokers name a leader for every partition of {topic}; the producer is replaced if this lasts")
            }
            TopicLeaders::Missing(partitions) => {
                self.stall = None;
                format!("Kafka names no leader for partition(s) {partitions:?} of {topic}")
            }
            TopicLeaders::Unknown => {
                self.stall = None;
                "the Kafka brokers do not answer".to_owned()
            }
        };
        Verdict::Waiting {
            reason: (oldest.waited >= self.normal + NOT_READY_AFTER).then(|| {
                format!("a record for Kafka topic {topic} has waited {waited} s for Kafka's confirmation: {cause}")
            }),
        }
    }
}

impl Watchdog {
    pub async fn run(self, stop: CancellationToken) {
        let mut judge = Judge::new(self.linger);
        let mut probe: Option<Arc<FutureProducer<QuietContext>>> = None;
        self.ready.set(true);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(CHECK_EVERY) => {}
            }
            let oldest = self.producer.oldest();
            let leaders = match oldest.as_ref() {
                Some(o) if judge.wants_leaders(Some(o)) => match self.probe(&mut probe) {
                    Some(p) => topic_leaders(&p, &o.topic).await,
                    None => TopicLeaders::Unknown,
                },
                _ => {
                    drop_blocking(probe.take());
                    TopicLeaders::Unknown
                }
            };
            if let Some(o) = &oldest {
                debug!(topic = %o.topic, waited = ?o.waited, ?leaders, "oldest record waiting for Kafka");
            }
            match judge.judge(oldest.as_ref(), leaders, Instant::now()) {
                Verdict::Flowing | Verdict::Waiting { reason: None } => self.ready.set(true),
                Verdict::Waiting {
                    reason: Some(reason),
                } => self.ready.not_ready(reason),
                Verdict::Replace { reason } => {
                    warn!(%reason, "the Kafka producer stopped delivering; replacing it (its records are produced again: duplicates are possible, nothing is lost)");
                    self.ready
                        .not_ready(format!("replacing the Kafka producer: {reason}"));
                    match self.producer.replace() {
                        Ok(()) => {
                            self.replaced.inc();
                            info!("a new Kafka producer is in place");
                        }
                        Err(e) => {
                            warn!(error = %e, "cannot create a new Kafka producer; keeping the old one")
                        }
                    }
                }
            }
        }
        drop_blocking(probe);
    }

    /// The probe client, made when first needed.
    fn probe(
        &self,
        probe: &mut Option<Arc<FutureProducer<QuietContext>>>,
    ) -> Option<Arc<FutureProducer<QuietContext>>> {
        if probe.is_none() {
            match (self.probe)() {
                Ok(p) => *probe = Some(Arc::new(p)),
                Err(e) => {
                    warn!(error = %e, "cannot create the Kafka client that checks partition leaders")
                }
            }
        }
        probe.clone()
    }
}

/// Destroys a librdkafka client on the blocking pool (its destruction waits for its threads).
fn drop_blocking(client: Option<Arc<FutureProducer<QuietContext>>>) {
    if let Some(client) = client {
        tokio::task::spawn_blocking(move || drop(client));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: u64, waited: u64) -> Oldest {
        Oldest {
            id,
            waited: Duration::from_secs(waited),
            topic: Arc::from("t"),
        }
    }

    #[test]
    fn records_flowing_or_young_are_fine() {
        let mut judge = Judge::new(Duration::from_millis(5));
        let now = Instant::now();
        assert_eq!(
            judge.judge(None, TopicLeaders::Unknown, now),
            Verdict::Flowing
        );
        assert_eq!(
            judge.judge(Some(&record(1, 2)), TopicLeaders::All(1), now),
            Verdict::Flowing
        );
        assert!(!judge.wants_leaders(Some(&record(1, 2))));
        assert!(judge.wants_leaders(Some(&record(1, 6))));
    }

    #[test]
    fn records_lingering_on_purpose_are_not_suspect() {
        let mut judge = Judge::new(Duration::from_secs(60));
        assert!(!judge.wants_leaders(Some(&record(1, 62))));
        assert_eq!(
            judge.judge(Some(&record(1, 62)), TopicLeaders::All(1), Instant::now()),
            Verdict::Flowing
        );
        assert!(judge.wants_leaders(Some(&record(1, 66))));
    }

    #[test]
    fn a_record_waiting_while_every_leader_is_named_replaces_the_producer_after_the_bound() {
        let mut judge = Judge::new(Duration::from_millis(5));
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(
            judge.judge(Some(&record(7, 10)), TopicLeaders::All(1), at(0)),
            Verdict::Waiting { reason: None }
        );
        let Verdict::Waiting { reason: Some(r) } =
            judge.judge(Some(&record(7, 36)), TopicLeaders::All(1), at(25))
        else {
            panic!("not ready after 30 s of waiting");
        };
        assert!(r.contains("has waited 36 s"), "{r}");
        let Verdict::Replace { reason } =
            judge.judge(Some(&record(7, 40)), TopicLeaders::All(1), at(30))
        else {
            panic!("replaced after 30 s of named leaders");
        };
        assert!(reason.contains("for 30 s"), "{reason}");
    }

    #[test]
    fn an_outage_does_not_count_towards_the_bound() {
        let mut judge = Judge::new(Duration::from_millis(5));
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        // Kafka down for a minute, then back: the stall starts when the leaders are named.
        for s in (0..60).step_by(5) {
            let v = judge.judge(Some(&record(3, s + 6)), TopicLeaders::Unknown, at(s));
            assert!(matches!(v, Verdict::Waiting { .. }), "{v:?}");
        }
        let v = judge.judge(Some(&record(3, 65)), TopicLeaders::All(1), at(60));
        assert!(
            matches!(v, Verdict::Waiting { reason: Some(ref r) } if r.contains("name a leader")),
            "{v:?}"
        );
        // A leaderless partition in between starts the count again.
        judge.judge(Some(&record(3, 70)), TopicLeaders::Missing(vec![0]), at(65));
        let v = judge.judge(Some(&record(3, 95)), TopicLeaders::All(1), at(90));
        assert!(matches!(v, Verdict::Waiting { .. }), "{v:?}");
        let v = judge.judge(Some(&record(3, 125)), TopicLeaders::All(1), at(120));
        assert!(matches!(v, Verdict::Replace { .. }), "{v:?}");
    }

    #[test]
    fn progress_restarts_the_count_and_repeated_replacements_back_off() {
        let mut judge = Judge::new(Duration::from_millis(5));
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        judge.judge(Some(&record(1, 10)), TopicLeaders::All(1), at(0));
        // The oldest record was delivered; the next one has waited too, but not as long.
        let v = judge.judge(Some(&record(2, 10)), TopicLeaders::All(1), at(29));
        assert_eq!(v, Verdict::Waiting { reason: None });
        assert!(matches!(
            judge.judge(Some(&record(2, 40)), TopicLeaders::All(1), at(59)),
            Verdict::Replace { .. }
        ));
        // The broker keeps holding records back: the next replacement comes after 60 s.
        judge.judge(Some(&record(9, 10)), TopicLeaders::All(1), at(60));
        let v = judge.judge(Some(&record(9, 40)), TopicLeaders::All(1), at(90));
        assert!(matches!(v, Verdict::Waiting { .. }), "{v:?}");
        let v = judge.judge(Some(&record(9, 70)), TopicLeaders::All(1), at(120));
        assert!(matches!(v, Verdict::Replace { .. }), "{v:?}");
        // Records flow again: the bound is back to 30 s.
        assert_eq!(
            judge.judge(None, TopicLeaders::Unknown, at(125)),
            Verdict::Flowing
        );
        assert_eq!(judge.bound, STALL_BOUND);
    }
}
