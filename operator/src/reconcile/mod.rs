//! One reconciliation of a bridge, as a pipeline:
//!
//! 1. [`validate`] the spec, without a client;
//! 2. [`dereference`] what it references: the Secrets' values;
//! 3. [`apply`] the finalizer, the topics, the children in order, the sessions' retirement;
//! 4. [`update_status`] from what the steps observed, and the warnings it newly carries.
//!
//! A step that cannot go on returns a [`Stop`]; the status is written in one place whatever
//! the outcome, and an invalid spec leaves the running children as they are. A bridge being
//! deleted goes to the finalizer instead.

mod apply;
mod dereference;
mod update_status;
mod validate;

use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::Resource;
use mkb_api::crd::conditions::REASON_APPLY_FAILED;
use tracing::warn;

use crate::bridge::{key_of, Bridge, Watched};
use crate::context::Context;
use crate::desired;
use crate::error::Error;
use crate::finalizer;
use crate::retirement;
use crate::status::{Blocked, Observed, Outcome};

/// Why a reconciliation stopped before everything was applied.
pub enum Stop {
    /// The spec cannot be read or is invalid: nothing changes until the spec does.
    Invalid(String),
    /// Something outside the spec stops the rollout; the watches bring the bridge back.
    Blocked(Blocked),
    /// A failure, retried with backoff. One that refuses an object of the bridge (quota,
    /// admission, a name taken) is also shown in the status.
    Failed(Error),
}

impl From<Error> for Stop {
    fn from(e: Error) -> Self {
        Stop::Failed(e)
    }
}

/// How a reconciliation ended.
struct Reconciled {
    action: Action,
    /// The result label of the metrics.
    label: &'static str,
    /// When everything was applied: the bridge's resourceVersion after its status write, and
    /// when the next full reconciliation is due (see `seen`).
    settled: Option<(Option<String>, Duration)>,
}

impl Reconciled {
    fn unsettled(action: Action, label: &'static str) -> Self {
        Self {
            action,
            label,
            settled: None,
        }
    }
}

pub async fn reconcile(obj: Arc<Watched>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let key = key_of(&ObjectRef::from_obj(&*obj));
    let version = obj.meta().resource_version.as_deref();
    if obj.meta().deletion_timestamp.is_none() {
        if let Some(due_in) = ctx.seen.unchanged(&key, version, started) {
            ctx.metrics.unchanged();
            return Ok(Action::requeue(due_in));
        }
    }
    let changes = ctx.seen.changes(&key);
    let result = reconcile_bridge(&obj, &ctx).await;
    match &result {
        Ok(done) => {
            ctx.succeeded(&key);
            match &done.settled {
                Some((version, next)) => {
                    ctx.seen
                        .visited(&key, version.clone(), changes, started + *next);
                    ctx.forget_gone();
                }
                None => ctx.seen.forget(&key),
            }
            ctx.metrics.reconciled(done.label, started.elapsed());
        }
        Err(e) => {
            ctx.seen.forget(&key);
            ctx.metrics.reconciled("error", started.elapsed());
            ctx.metrics.error(e.reason());
        }
    }
    result.map(|done| done.action)
}

/// Retries a failed reconciliation with exponential backoff.
pub fn error_policy(obj: Arc<Watched>, error: &Error, ctx: Arc<Context>) -> Action {
    let key = key_of(&ObjectRef::from_obj(&*obj));
    let wait = ctx.backoff(&key);
    warn!(bridge = %key, %error, retry_in = ?wait, "reconciliation failed");
    Action::requeue(wait)
}

async fn reconcile_bridge(obj: &Watched, ctx: &Context) -> Result<Reconciled, Error> {
    let mut bridge = Bridge::new(obj)?;
    // Fresh unless the cached bridge is the version our last status write made.
    if !ctx
        .seen
        .left(&bridge.key(), obj.meta().resource_version.as_deref())
    {
        bridge.refresh(ctx).await?;
    }
    if bridge.deleting() {
        // The children go with the bridge: they carry it as their controller owner. Its
        // topics go too when the policy says so (the finalizer holds the bridge until then).
        let (action, label) = finalizer::on_deletion(ctx, &bridge).await?;
        return Ok(Reconciled::unsettled(action, label));
    }
    let mut observed = Observed::new(
        bridge.generation,
        bridge.route_count(),
        desired::label_selector(&bridge.name),
    );
    let mut http_port = None;
    let result = async {
        let spec = validate::spec(&bridge, &mut observed)?;
        http_port = Some(spec.metrics.port);
        let secrets = dereference::secret_values(ctx, &bridge, &spec).await?;
        apply::everything(ctx, &bridge, &spec, &secrets, &mut observed).await
    }
    .await;
    let (outcome, applied, failure) = match result {
        Ok(applied) => (Outcome::Applied, Some(applied), None),
        Err(Stop::Invalid(message)) => (Outcome::Invalid(message), None, None),
        Err(Stop::Blocked(blocked)) => (Outcome::Blocked(blocked), None, None),
        Err(Stop::Failed(e)) if e.blocks_rollout() => {
            let blocked = Blocked {
                reason: REASON_APPLY_FAILED.to_owned(),
                message: e.to_string(),
            };
            (Outcome::Blocked(blocked), None, Some(e))
        }
        Err(Stop::Failed(e)) => return Err(e),
    };
    let written = update_status::update(ctx, &bridge, &outcome, observed, http_port).await?;
    if let Some(e) = failure {
        return Err(e);
    }
    let Some(applied) = applied else {
        return Ok(match outcome {
            Outcome::Invalid(_) => Reconciled::unsettled(Action::await_change(), "invalid_spec"),
            // The Secret watch brings the bridge back when the Secret appears.
            _ => Reconciled::unsettled(Action::requeue(ctx.resync), "blocked"),
        });
    };
    retirement::complete(ctx, &bridge, &applied.retirement).await?;
    // A pod that runs but is not ready has its reason in the status, asked of the pod: that
    // can change with nothing else changing, so such a bridge is never taken as unchanged.
    let settled = (!written.pods_not_ready).then(|| {
        let version = written
            .version
            .or_else(|| obj.meta().resource_version.clone());
        (version, applied.next)
    });
    Ok(Reconciled {
        action: Action::requeue(applied.next),
        label: "ok",
        settled,
    })
}
