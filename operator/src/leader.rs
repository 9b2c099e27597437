//! Leader election on a `coordination.k8s.io/v1` Lease, so several operator replicas can run
//! and only one reconciles. The protocol is client-go's: the holder renews `renewTime` every
//! retry period; a candidate takes the Lease over once `renewTime + leaseDurationSeconds` has
//! passed (or the holder released it); every write carries the resourceVersion it read, so two
//! candidates cannot both win. A leader that cannot renew within the renew deadline reports
//! the lease lost, and the process exits rather than risk two leaders.

use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::Client;
use tokio::time::{timeout, Instant};
use tracing::{debug, info, warn};

/// Where the Lease is and who competes for it.
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    pub duration: Duration,
}

impl LeaseConfig {
    /// How often the holder renews and candidates retry.
    fn retry_every(&self) -> Duration {
        (self.duration / 7).max(Duration::from_millis(500))
    }

    /// How long the holder may fail to renew before it gives up.
    fn renew_deadline(&self) -> Duration {
        self.duration * 2 / 3
    }
}

/// What to do about the Lease as read.
#[derive(Debug, PartialEq, Eq)]
enum Decision {
    Create,
    /// We hold it: write a new renewTime.
    Renew,
    /// Free or expired: take it.
    TakeOver,
    /// Somebody else holds it.
    Wait(String),
}

/// `unchanged_for`: how long, by this process's clock, the Lease has been as it is now. The
/// holder's `renewTime` is written by the holder's clock, so expiry is never judged by
/// comparing it with ours (client-go's rule): a holder whose clock runs ahead would otherwise
/// keep the Lease past its death, one whose clock lags would lose it while alive.
fn decide(lease: Option<&Lease>, me: &str, unchanged_for: Duration) -> Decision {
    let Some(spec) = lease.map(|l| l.spec.clone().unwrap_or_default()) else {
        return Decision::Create;
    };
    let holder = spec.holder_identity.unwrap_or_default();
    if holder.is_empty() {
        return Decision::TakeOver;
    }
    if holder == me {
        return Decision::Renew;
    }
    let seconds = u64::try_from(spec.lease_duration_seconds.unwrap_or(0)).unwrap_or(0);
    if unchanged_for > Duration::from_secs(seconds) {
        Decision::TakeOver
    } else {
        Decision::Wait(holder)
    }
}

/// How an attempt to take or renew the Lease went.
#[derive(Debug, PartialEq, Eq)]
enum Attempt {
    /// We hold the Lease now.
    Holding,
    /// Somebody else does.
    HeldBy(String),
    /// Somebody wrote the Lease between our read and our write (409): read it again.
    Conflict,
}

/// The Lease as last read, by resourceVersion, and when this process first saw it so.
struct Observed {
    version: Option<String>,
    since: Instant,
}

pub struct Elector {
    api: Api<Lease>,
    config: LeaseConfig,
    observed: Mutex<Option<Observed>>,
}

impl Elector {
    pub fn new(client: Client, config: LeaseConfig) -> Self {
        Self {
            api: Api::namespaced(client, &config.namespace),
            config,
            observed: Mutex::new(None),
        }
    }

    /// Returns once this process holds the Lease.
    pub async fn acquire(&self) {
        let mut waiting_for = String::new();
        loop {
            // A request that hangs must not keep a candidate from trying again.
            match timeout(self.config.duration, self.try_acquire_or_renew()).await {
                Ok(Ok(Attempt::Holding)) => {
                    info!(lease = %self.config.name, identity = %self.config.identity, "became the leader");
                    return;
                }
                Ok(Ok(Attempt::HeldBy(holder))) if holder != waiting_for => {
                    info!(lease = %self.config.name, %holder, "another replica leads; standing by");
                    waiting_for = holder;
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    warn!(lease = %self.config.name, error = %e, "cannot read or write the leader Lease")
                }
                Err(_) => {
                    warn!(lease = %self.config.name, "the API server did not answer about the leader Lease in time")
                }
            }
            tokio::time::sleep(self.config.retry_every()).await;
        }
    }

    /// Renews the Lease; returns when it could not be renewed within the renew deadline (a
    /// request that hangs counts as failing) or another replica holds it: leadership is lost.
    pub async fn hold(&self) {
        let mut last_renewed = Instant::now();
        loop {
            tokio::time::sleep(self.config.retry_every()).await;
            let left = self
                .config
                .renew_deadline()
                .saturating_sub(last_renewed.elapsed());
            match timeout(left, self.try_acquire_or_renew()).await {
                Ok(Ok(Attempt::Holding)) => last_renewed = Instant::now(),
                Ok(Ok(Attempt::HeldBy(holder))) => {
                    warn!(lease = %self.config.name, %holder, "another replica took the leader Lease");
                    return;
                }
                // Our read was stale; the next attempt reads again and sees who holds it.
                Ok(Ok(Attempt::Conflict)) => {
                    debug!(lease = %self.config.name, "the leader Lease changed while it was renewed")
                }
                Ok(Err(e)) => {
                    warn!(lease = %self.config.name, error = %e, "cannot renew the leader Lease")
                }
                Err(_) => {
                    warn!(lease = %self.config.name, "renewing the leader Lease took past the renew deadline")
                }
            }
            if last_renewed.elapsed() >= self.config.renew_deadline() {
                return;
            }
        }
    }

    /// Gives the Lease up, so another replica takes over at once (clean shutdown).
    pub async fn release(&self) {
        let result = async {
            let Some(mut lease) = self.api.get_opt(&self.config.name).await? else {
                return Ok(());
            };
            let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
            if spec.holder_identity.as_deref() != Some(&self.config.identity) {
                return Ok(());
            }
            spec.holder_identity = None;
            spec.lease_duration_seconds = Some(1);
            spec.renew_time = Some(MicroTime(Timestamp::now()));
            self.api
                .replace(&self.config.name, &PostParams::default(), &lease)
                .await
                .map(|_| ())
        };
        match timeout(self.config.renew_deadline(), result).await {
            Ok(Ok(())) => info!(lease = %self.config.name, "released the leader Lease"),
            Ok(Err(e)) => {
                warn!(lease = %self.config.name, error = %e, "cannot release the leader Lease; it expires instead")
            }
            Err(_) => {
                warn!(lease = %self.config.name, "releasing the leader Lease took too long; it expires instead")
            }
        }
    }

    /// How long the Lease has been as `lease` is, by this process's clock.
    fn unchanged_for(&self, lease: Option<&Lease>) -> Duration {
        let version = lease.and_then(|l| l.metadata.resource_version.clone());
        let Ok(mut observed) = self.observed.lock() else {
            return Duration::ZERO;
        };
        match observed.as_ref() {
            Some(o) if o.version == version => o.since.elapsed(),
            _ => {
                *observed = Some(Observed {
                    version,
                    since: Instant::now(),
                });
                Duration::ZERO
            }
        }
    }

    async fn try_acquire_or_renew(&self) -> Result<Attempt, kube::Error> {
        let now = Timestamp::now();
        let current = self.api.get_opt(&self.config.name).await?;
        let unchanged_for = self.unchanged_for(current.as_ref());
        let decision = decide(current.as_ref(), &self.config.identity, unchanged_for);
        debug!(lease = %self.config.name, ?decision, "leader election");
        let duration = i32::try_from(self.config.duration.as_secs()).unwrap_or(i32::MAX);
        let mut lease = match (decision, current) {
            (Decision::Wait(holder), _) => return Ok(Attempt::HeldBy(holder)),
            (Decision::Create, _) | (_, None) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.config.name.clone()),
                        namespace: Some(self.config.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(self.config.identity.clone()),
                        lease_duration_seconds: Some(duration),
                        acquire_time: Some(MicroTime(now)),
                        renew_time: Some(MicroTime(now)),
                        lease_transitions: Some(0),
                        ..LeaseSpec::default()
                    }),
                };
                return match self.api.create(&PostParams::default(), &lease).await {
                    Ok(_) => Ok(Attempt::Holding),
                    // Another candidate created it first.
                    Err(kube::Error::Api(e)) if e.code == 409 => Ok(Attempt::Conflict),
                    Err(e) => Err(e),
                };
            }
            (decision, Some(lease)) => {
                let mut lease = lease;
                let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
                if decision == Decision::TakeOver {
                    spec.holder_identity = Some(self.config.identity.clone());
                    spec.acquire_time = Some(MicroTime(now));
                    spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                }
                spec.lease_duration_seconds = Some(duration);
                spec.renew_time = Some(MicroTime(now));
                lease
            }
        };
        // The resourceVersion read above makes this write fail if anyone wrote in between.
        lease.metadata.managed_fields = None;
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(Attempt::Holding),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(Attempt::Conflict),
            Err(e) => Err(e),
        }
    }
}

/// This process's identity in the Lease: the pod name, else host name and process id.
pub fn identity() -> String {
    std::env::var("POD_NAME").unwrap_or_else(|_| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "mkb-operator".to_owned());
        format!("{host}-{}", std::process::id())
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use http::{Method, StatusCode};
    use k8s_openapi::jiff::SignedDuration;

    use super::*;
    use crate::fake_api::{self, Answer};

    fn lease(holder: Option<&str>, renewed_secs_ago: i64, duration: i32) -> Lease {
        let now = Timestamp::now();
        Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec {
                holder_identity: holder.map(str::to_owned),
                lease_duration_seconds: Some(duration),
                renew_time: Some(MicroTime(now - SignedDuration::from_secs(renewed_secs_ago))),
                ..LeaseSpec::default()
            }),
        }
    }

    const FRESH: Duration = Duration::from_secs(5);
    const STALE: Duration = Duration::from_secs(16);

    #[test]
    fn a_fresh_lease_of_another_holder_is_respected_and_an_expired_one_taken() {
        assert_eq!(decide(None, "a", FRESH), Decision::Create);
        assert_eq!(
            decide(Some(&lease(Some("b"), 5, 15)), "a", FRESH),
            Decision::Wait("b".into())
        );
        assert_eq!(
            decide(Some(&lease(Some("b"), 5, 15)), "a", STALE),
            Decision::TakeOver
        );
        assert_eq!(
            decide(Some(&lease(Some("a"), 5, 15)), "a", STALE),
            Decision::Renew
        );
        assert_eq!(
            decide(Some(&lease(None, 0, 1)), "a", Duration::ZERO),
            Decision::TakeOver,
            "released"
        );
        assert_eq!(
            decide(Some(&lease(Some(""), 0, 15)), "a", Duration::ZERO),
            Decision::TakeOver
        );
    }

    /// Issue 35: expiry came from the holder's renewTime against the local clock.
    #[test]
    fn expiry_is_judged_by_this_clock_whatever_the_holders_clock_says() {
        // A dead holder whose clock ran an hour ahead: its last renewTime is in our future.
        let ahead = lease(Some("b"), -3600, 15);
        assert_eq!(decide(Some(&ahead), "a", STALE), Decision::TakeOver);
        // A live holder whose clock lags by a minute: every renewTime looks old to us.
        let behind = lease(Some("b"), 60, 15);
        assert_eq!(
            decide(Some(&behind), "a", FRESH),
            Decision::Wait("b".into())
        );
    }

    #[test]
    fn renewals_come_well_within_the_lease() {
        let c = config();
        assert_eq!(c.retry_every().as_millis(), 2142);
        assert_eq!(c.renew_deadline(), Duration::from_secs(10));
    }

    fn config() -> LeaseConfig {
        LeaseConfig {
            namespace: "ns".into(),
            name: "mkb-operator".into(),
            identity: "a".into(),
            duration: Duration::from_secs(15),
        }
    }

    fn held_by(holder: &str, version: usize) -> Answer {
        Answer::Json(
            StatusCode::OK,
            serde_json::json!({
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": "mkb-operator", "namespace": "ns", "resourceVersion": version.to_string()},
                "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15, "renewTime": "2026-12-07T10:00:00.000000Z"}
            }),
        )
    }

    /// Issue 35: any 409 while renewing was taken for lost leadership.
    #[tokio::test(start_paused = true)]
    async fn a_conflict_while_renewing_is_retried_not_taken_for_a_lost_lease() {
        let writes = Arc::new(AtomicUsize::new(0));
        let seen = writes.clone();
        let client = fake_api::client(move |method, _path, _body| {
            let writes = seen.clone();
            async move {
                let n = writes.load(Ordering::SeqCst);
                match method {
                    Method::GET => held_by("a", n),
                    _ => {
                        writes.fetch_add(1, Ordering::SeqCst);
                        if n == 0 {
                            fake_api::status(StatusCode::CONFLICT, "Conflict")
                        } else {
                            held_by("a", n + 1)
                        }
                    }
                }
            }
        });
        let elector = Elector::new(client, config());
        let held = timeout(Duration::from_secs(30), elector.hold()).await;
        assert!(held.is_err(), "leadership was given up after a conflict");
        assert!(writes.load(Ordering::SeqCst) >= 10, "renewals went on");
    }

    #[tokio::test(start_paused = true)]
    async fn another_holder_ends_the_leadership() {
        let client = fake_api::client(|_method, _path, _body| async { held_by("b", 7) });
        let elector = Elector::new(client, config());
        assert!(timeout(Duration::from_secs(5), elector.hold())
            .await
            .is_ok());
    }

    /// Issue 35: a renewal awaited without a deadline kept a stuck leader leading.
    #[tokio::test(start_paused = true)]
    async fn a_renewal_that_hangs_ends_the_leadership_by_the_renew_deadline() {
        let client = fake_api::client(|method, _path, _body| async move {
            match method {
                Method::GET => held_by("a", 1),
                _ => Answer::Hang,
            }
        });
        let elector = Elector::new(client, config());
        let started = Instant::now();
        let lost = timeout(Duration::from_secs(60), elector.hold()).await;
        assert!(lost.is_ok(), "still leading after a minute of no answer");
        assert!(started.elapsed() <= config().renew_deadline() + config().retry_every());
    }
}
