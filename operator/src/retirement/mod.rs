//! Retiring the MQTT sessions of replicas a scale-down removed: reads the bridge's pods and
//! retirement Jobs, plans (plan.rs), starts and removes Jobs, and reports what each retired
//! session held. Safe to repeat at any point: the plan depends only on the status and on what
//! exists.

mod plan;

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams, PropagationPolicy};
use kube::runtime::events::EventType;
use kube::Api;
use tracing::warn;

pub use plan::{JobState, Plan};

use crate::bridge::Bridge;
use crate::context::Context;
use crate::desired::{self, BridgeInput, RETIRE_ORDINAL_LABEL};
use crate::error::Error;
use crate::k8s::apply::apply;
use crate::k8s::events::announce;
use crate::status::{ConditionState, Sessions};

/// Plans the retirement, deletes the Jobs that must go first and starts the missing ones.
pub async fn prepare(
    ctx: &Context,
    bridge: &Bridge<'_>,
    input: &BridgeInput<'_>,
    config_hash: &str,
) -> Result<Plan, Error> {
    let ns = &bridge.namespace;
    let pod_api = Api::<Pod>::namespaced(ctx.client.clone(), ns);
    let selector = desired::label_selector(&bridge.name);
    let pod_list = pod_api
        .list_metadata(&ListParams::default().labels(&selector))
        .await?
        .items;
    let pods: BTreeSet<i32> = pod_list
        .iter()
        .filter_map(|p| ordinal_of(p.metadata.name.as_deref()?, &bridge.name))
        .collect();
    // When each terminating pod was due to be gone (its deletion timestamp: the request plus
    // its grace period).
    let due_gone: BTreeMap<i32, k8s_openapi::jiff::Timestamp> = pod_list
        .iter()
        .filter_map(|p| {
            let ordinal = ordinal_of(p.metadata.name.as_deref()?, &bridge.name)?;
            Some((ordinal, p.metadata.deletion_timestamp.as_ref()?.0))
        })
        .collect();
    let job_api = Api::<Job>::namespaced(ctx.client.clone(), ns);
    let job_list = job_api
        .list(&ListParams::default().labels(&desired::retire_selector(&bridge.name)))
        .await?
        .items;
    let jobs: BTreeMap<i32, JobState> = job_list
        .iter()
        .filter_map(|job| {
            let ordinal = job.metadata.labels.as_ref()?.get(RETIRE_ORDINAL_LABEL)?;
            Some((ordinal.parse().ok()?, job_state(job)))
        })
        .collect();
    let failed_since: BTreeMap<i32, k8s_openapi::jiff::Timestamp> = job_list
        .iter()
        .filter_map(|job| {
            let ordinal = job.metadata.labels.as_ref()?.get(RETIRE_ORDINAL_LABEL)?;
            Some((ordinal.parse().ok()?, failed_at(job)?))
        })
        .collect();
    let mut plan = plan::plan(&plan::Observed {
        desired: input.spec.replicas,
        sessions: bridge.status.mqtt_sessions,
        pods: &pods,
        jobs: &jobs,
        subscribes: !input.spec.mqtt_to_kafka.is_empty(),
    });
    let now = k8s_openapi::jiff::Timestamp::now();
    plan.stuck_pods = plan
        .waiting_for_pods
        .iter()
        .copied()
        .filter(|n| {
            due_gone
                .get(n)
                .is_some_and(|due| passed(*due, STUCK_AFTER, now))
        })
        .collect();
    // The next of those deadlines, so the reconciliation comes back for it.
    let stuck_at = plan
        .waiting_for_pods
        .iter()
        .filter_map(|n| due_gone.get(n))
        .map(|due| (*due, STUCK_AFTER));
    let retry_at = plan
        .failed
        .iter()
        .filter_map(|n| failed_since.get(n))
        .map(|failed| (*failed, RETRY_FAILED_AFTER));
    plan.wake_in = stuck_at
        .chain(retry_at)
        .filter_map(|(from, after)| until(from, after, now))
        .min();
    for &n in &plan.delete {
        delete_job(&job_api, &desired::retire_job_name(&bridge.name, n)).await?;
    }
    report_failures(ctx, bridge, &plan).await;
    report_stuck_pods(ctx, bridge, &plan).await;
    // A failed Job is kept RETRY_FAILED_AFTER for its logs, then deleted, so the next
    // reconcile (its deletion is watched) starts a new one.
    for (&n, failed_at) in &failed_since {
        if plan.failed.contains(&n) && passed(*failed_at, RETRY_FAILED_AFTER, now) {
            let job = desired::retire_job_name(&bridge.name, n);
            warn!(bridge = %bridge.key(), %job, "retrying a failed session retirement");
            delete_job(&job_api, &job).await?;
        }
    }
    if !plan.create.is_empty() {
        let list = ordinals(&plan.create);
        let note = format!(
            "Retiring the MQTT sessions of removed replicas (ordinals {list}): draining what the broker queued for them into Kafka"
        );
        announce(ctx, bridge, EventType::Normal, "RetiringSessions", note).await;
    }
    for &n in &plan.create {
        apply(
            ctx,
            bridge,
            &job_api,
            &desired::retire_job(input, config_hash, n),
        )
        .await?;
    }
    Ok(plan)
}

/// Once the status records the retirement: reports each retired session (Event and metric,
/// from the Job pod's termination message) and deletes its Job.
pub async fn complete(ctx: &Context, bridge: &Bridge<'_>, plan: &Plan) -> Result<(), Error> {
    if plan.finished.is_empty() {
        return Ok(());
    }
    let ns = &bridge.namespace;
    let job_api = Api::<Job>::namespaced(ctx.client.clone(), ns);
    let pod_api = Api::<Pod>::namespaced(ctx.client.clone(), ns);
    for &n in &plan.finished {
        let job = desired::retire_job_name(&bridge.name, n);
        let summary = termination_message(&pod_api, &job, true).await;
        let drained = summary
            .as_deref()
            .and_then(drained_count)
            .unwrap_or_default();
        ctx.metrics.retired(&bridge.key(), n, drained);
        let note = summary.unwrap_or_else(|| format!("retired the MQTT session of ordinal {n}"));
        let mut chars = note.chars();
        let note: String = chars
            .next()
            .map(|first| first.to_uppercase().chain(chars).collect())
            .unwrap_or_default();
        announce(ctx, bridge, EventType::Normal, "RetiredSession", note).await;
        delete_job(&job_api, &job).await?;
    }
    Ok(())
}

/// How long a failed retirement Job is kept (for `kubectl logs`) before a new one is tried.
const RETRY_FAILED_AFTER: std::time::Duration = std::time::Duration::from_secs(300);

/// How long from `now` until `after` has passed since `from`; `None` when it has.
fn until(
    from: k8s_openapi::jiff::Timestamp,
    after: std::time::Duration,
    now: k8s_openapi::jiff::Timestamp,
) -> Option<std::time::Duration> {
    let elapsed = now.duration_since(from);
    let elapsed = if elapsed.is_negative() {
        std::time::Duration::ZERO
    } else {
        elapsed.unsigned_abs()
    };
    after.checked_sub(elapsed).filter(|d| !d.is_zero())
}

/// Whether `after` has passed since `from` (never with a clock behind `from`).
fn passed(
    from: k8s_openapi::jiff::Timestamp,
    after: std::time::Duration,
    now: k8s_openapi::jiff::Timestamp,
) -> bool {
    until(from, after, now).is_none()
}

/// When the Job failed for good (its Failed condition), if it did; without the condition's
/// time, when the Job was created.
fn failed_at(job: &Job) -> Option<k8s_openapi::jiff::Timestamp> {
    let conditions = job.status.as_ref()?.conditions.as_ref()?;
    let failed = conditions
        .iter()
        .find(|c| c.type_ == "Failed" && c.status == "True")?;
    failed
        .last_transition_time
        .as_ref()
        .or(job.metadata.creation_timestamp.as_ref())
        .map(|t| t.0)
}

/// How long past its grace period a pod may take to go before it counts as stuck.
const STUCK_AFTER: std::time::Duration = std::time::Duration::from_secs(300);

/// What the condition and the Event say of pods stuck terminating.
fn stuck_message(bridge: &str, stuck: &[i32]) -> String {
    let pods: Vec<String> = stuck.iter().map(|n| format!("{bridge}-{n}")).collect();
    format!(
        "pod(s) {} still terminating over {} minutes past the grace period (a lost node, or a finalizer): their sessions are retired once they are gone; if the node is lost, `kubectl delete pod --force --grace-period=0 {}`",
        pods.join(", "),
        STUCK_AFTER.as_secs() / 60,
        pods.join(" ")
    )
}

/// A Warning Event for pods stuck terminating, once per set of pods (the condition keeps
/// the message).
async fn report_stuck_pods(ctx: &Context, bridge: &Bridge<'_>, plan: &Plan) {
    use mkb_api::crd::conditions::SESSIONS_RETIRED;
    if plan.stuck_pods.is_empty() {
        return;
    }
    let message = stuck_message(&bridge.name, &plan.stuck_pods);
    let reported = bridge
        .status
        .conditions
        .iter()
        .any(|c| c.type_ == SESSIONS_RETIRED && c.message.contains(&message));
    if !reported {
        let note = format!("Retiring sessions waits: {message}");
        announce(
            ctx,
            bridge,
            EventType::Warning,
            "RetirementWaitingForPod",
            note,
        )
        .await;
    }
}

/// A Warning Event, with the retirement's own reason (its pod's termination message), for
/// each failure the status does not report yet.
async fn report_failures(ctx: &Context, bridge: &Bridge<'_>, plan: &Plan) {
    use mkb_api::crd::conditions::{REASON_RETIRE_FAILED, SESSIONS_RETIRED};
    if plan.failed.is_empty() {
        return;
    }
    let pod_api = Api::<Pod>::namespaced(ctx.client.clone(), &bridge.namespace);
    for &n in &plan.failed {
        let job = desired::retire_job_name(&bridge.name, n);
        // Reported already when the status names this Job as failed.
        let reported = bridge.status.conditions.iter().any(|c| {
            c.type_ == SESSIONS_RETIRED
                && c.reason == REASON_RETIRE_FAILED
                && c.message
                    .split([' ', '`'])
                    .any(|word| word == format!("job/{job}"))
        });
        if reported {
            continue;
        }
        let why = termination_message(&pod_api, &job, false)
            .await
            .unwrap_or_else(|| format!("see `kubectl logs job/{job}`"));
        let note = format!(
            "Retiring the MQTT session of ordinal {n} failed; the session is kept and the retirement is tried again in {} minutes: {why}",
            RETRY_FAILED_AFTER.as_secs() / 60
        );
        announce(ctx, bridge, EventType::Warning, REASON_RETIRE_FAILED, note).await;
    }
}

/// `status.mqttSessions` and the SessionsRetired condition.
pub fn sessions(plan: &Plan, bridge: &str, desired: i32) -> Sessions {
    let (status, reason, message) = condition(plan, bridge, desired);
    Sessions {
        count: plan.sessions,
        retired: ConditionState {
            status,
            reason,
            message,
        },
    }
}

/// The SessionsRetired condition: (status, reason, message).
fn condition(plan: &Plan, bridge: &str, desired: i32) -> (bool, &'static str, String) {
    use mkb_api::crd::conditions::*;
    if plan.paused {
        let message = format!(
            "0 replicas: the MQTT sessions of ordinals {} are kept, so the broker queues for them until the bridge scales up",
            ordinals(&(0..plan.sessions).collect::<Vec<_>>())
        );
        return (true, REASON_PAUSED, message);
    }
    if !plan.failed.is_empty() {
        let jobs: Vec<String> = plan
            .failed
            .iter()
            .map(|&n| format!("job/{}", desired::retire_job_name(bridge, n)))
            .collect();
        let mut message = format!(
            "retiring the MQTT session of ordinals {} failed; see `kubectl logs {}`; it is tried again 5 minutes after the failure (delete the Job to try at once)",
            ordinals(&plan.failed),
            jobs.join(" ")
        );
        if !plan.stuck_pods.is_empty() {
            message = format!("{message}; {}", stuck_message(bridge, &plan.stuck_pods));
        }
        return (false, REASON_RETIRE_FAILED, message);
    }
    if !plan.settled() {
        let mut parts = Vec::new();
        if !plan.waiting_for_pods.is_empty() {
            parts.push(format!(
                "waiting for the pods of ordinals {} to stop",
                ordinals(&plan.waiting_for_pods)
            ));
        }
        if !plan.stuck_pods.is_empty() {
            parts.push(stuck_message(bridge, &plan.stuck_pods));
        }
        let busy: Vec<i32> = plan.running.iter().chain(&plan.create).copied().collect();
        if !busy.is_empty() {
            parts.push(format!(
                "draining the sessions of ordinals {}",
                ordinals(&busy)
            ));
        }
        return (false, REASON_RETIRING, parts.join("; "));
    }
    let message = format!("no MQTT session beyond the {desired} replica(s) holds messages");
    (true, REASON_AS_EXPECTED, message)
}

fn ordinals(ns: &[i32]) -> String {
    ns.iter().map(i32::to_string).collect::<Vec<_>>().join(", ")
}

/// `N` of pod `<bridge>-N`.
fn ordinal_of(pod: &str, bridge: &str) -> Option<i32> {
    pod.strip_prefix(bridge)?.strip_prefix('-')?.parse().ok()
}

fn job_state(job: &Job) -> JobState {
    let status = job.status.as_ref();
    let condition = |type_: &str| {
        status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == type_ && c.status == "True"))
    };
    if condition("Complete") || status.and_then(|s| s.succeeded).unwrap_or(0) > 0 {
        JobState::Succeeded
    } else if condition("Failed") {
        JobState::Failed
    } else {
        JobState::Running
    }
}

async fn delete_job(api: &Api<Job>, name: &str) -> Result<(), Error> {
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..DeleteParams::default()
    };
    match api.delete(name, &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The summary the retirement wrote as its pod's termination message: of a pod that
/// succeeded, or (`succeeded: false`) of one that failed, which says why.
async fn termination_message(pods: &Api<Pod>, job: &str, succeeded: bool) -> Option<String> {
    let params = ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}"));
    let list = match pods.list(&params).await {
        Ok(list) => list,
        Err(e) => {
            warn!(%job, error = %e, "cannot read the retirement's pod");
            return None;
        }
    };
    list.items.iter().find_map(|pod| {
        let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
        statuses.iter().find_map(|s| {
            let terminated = s.state.as_ref()?.terminated.as_ref()?;
            ((terminated.exit_code == 0) == succeeded)
                .then(|| terminated.message.clone())
                .flatten()
                .map(|m| m.trim().to_owned())
                .filter(|m| !m.is_empty())
        })
    })
}

/// The number in "…: N message(s) delivered to Kafka".
fn drained_count(summary: &str) -> Option<u64> {
    let (_, rest) = summary.rsplit_once(": ")?;
    rest.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests;
