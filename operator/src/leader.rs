//! Leader election on a `coordination.k8s.io/v1` Lease, so several operator replicas can run
//! and only one reconciles. The protocol is client-go's: the holder renews `renewTime` every
//! retry period; a candidate takes the Lease over once `renewTime + leaseDurationSeconds` has
//! passed (or the holder released it); every write carries the resourceVersion it read, so two
//! candidates cannot both win. A leader that cannot renew within the renew deadline reports
//! the lease lost, and the process exits rather than risk two leaders.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};
use kube::Client;
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

fn decide(lease: Option<&Lease>, me: &str, now: Timestamp) -> Decision {
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
    let duration = SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(0)));
    let expired = spec
        .renew_time
        .is_none_or(|renewed| now.duration_since(renewed.0) > duration);
    if expired {
        Decision::TakeOver
    } else {
        Decision::Wait(holder)
    }
}

pub struct Elector {
    api: Api<Lease>,
    config: LeaseConfig,
}

impl Elector {
    pub fn new(client: Client, config: LeaseConfig) -> Self {
        Self {
            api: Api::namespaced(client, &config.namespace),
            config,
        }
    }

    /// Returns once this process holds the Lease.
    pub async fn acquire(&self) {
        let mut waiting_for = String::new();
        loop {
            match self.try_acquire_or_renew().await {
                Ok(Ok(())) => {
                    info!(lease = %self.config.name, identity = %self.config.identity, "became the leader");
                    return;
                }
                Ok(Err(holder)) if holder != waiting_for => {
                    info!(lease = %self.config.name, %holder, "another replica leads; standing by");
                    waiting_for = holder;
                }
                Ok(Err(_)) => {}
                Err(e) => {
                    warn!(lease = %self.config.name, error = %e, "cannot read or write the leader Lease")
                }
            }
            tokio::time::sleep(self.config.retry_every()).await;
        }
    }

    /// Renews the Lease; returns when it could not be renewed within the renew deadline (or
    /// another replica took it): leadership is lost.
    pub async fn hold(&self) {
        let mut last_renewed = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(self.config.retry_every()).await;
            match self.try_acquire_or_renew().await {
                Ok(Ok(())) => last_renewed = tokio::time::Instant::now(),
                Ok(Err(holder)) => {
                    warn!(lease = %self.config.name, %holder, "another replica took the leader Lease");
                    return;
                }
                Err(e) => {
                    warn!(lease = %self.config.name, error = %e, "cannot renew the leader Lease")
                }
            }
            if last_renewed.elapsed() > self.config.renew_deadline() {
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
        }
        .await;
        match result {
            Ok(()) => info!(lease = %self.config.name, "released the leader Lease"),
            Err(e) => {
                warn!(lease = %self.config.name, error = %e, "cannot release the leader Lease; it expires instead")
            }
        }
    }

    /// `Ok(Ok(()))`: we hold the Lease now; `Ok(Err(holder))`: somebody else does.
    async fn try_acquire_or_renew(&self) -> Result<Result<(), String>, kube::Error> {
        let now = Timestamp::now();
        let current = self.api.get_opt(&self.config.name).await?;
        let decision = decide(current.as_ref(), &self.config.identity, now);
        debug!(lease = %self.config.name, ?decision, "leader election");
        let duration = i32::try_from(self.config.duration.as_secs()).unwrap_or(i32::MAX);
        let mut lease = match (decision, current) {
            (Decision::Wait(holder), _) => return Ok(Err(holder)),
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
                    Ok(_) => Ok(Ok(())),
                    // Another candidate created it first.
                    Err(kube::Error::Api(e)) if e.code == 409 => Ok(Err(String::new())),
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
            Ok(_) => Ok(Ok(())),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(Err(String::new())),
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
    use super::*;

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

    #[test]
    fn a_fresh_lease_of_another_holder_is_respected_and_an_expired_one_taken() {
        let now = Timestamp::now();
        assert_eq!(decide(None, "a", now), Decision::Create);
        assert_eq!(
            decide(Some(&lease(Some("b"), 5, 15)), "a", now),
            Decision::Wait("b".into())
        );
        assert_eq!(
            decide(Some(&lease(Some("b"), 16, 15)), "a", now),
            Decision::TakeOver
        );
        assert_eq!(
            decide(Some(&lease(Some("a"), 5, 15)), "a", now),
            Decision::Renew
        );
        assert_eq!(
            decide(Some(&lease(None, 0, 1)), "a", now),
            Decision::TakeOver,
            "released"
        );
        assert_eq!(
            decide(Some(&lease(Some(""), 0, 15)), "a", now),
            Decision::TakeOver
        );
    }

    #[test]
    fn renewals_come_well_within_the_lease() {
        let c = LeaseConfig {
            namespace: "ns".into(),
            name: "mkb-operator".into(),
            identity: "a".into(),
            duration: Duration::from_secs(15),
        };
        assert_eq!(c.retry_every().as_millis(), 2142);
        assert_eq!(c.renew_deadline(), Duration::from_secs(10));
    }
}
