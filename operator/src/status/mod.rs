//! The bridge's status, computed from what was observed (pure; the reconciler writes it only
//! when it changed). kstatus semantics: Ready=True only when the current generation is fully
//! rolled out and every replica is ready.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use mkb_api::crd::conditions::*;
use mkb_api::crd::MqttKafkaBridgeStatus;

use crate::topics::TopicsReport;

/// How the reconciliation of this generation went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Children applied; readiness comes from the StatefulSet.
    Applied,
    /// The spec was rejected; children left as they were.
    Invalid(String),
    /// Something outside the spec stops the rollout (a missing Secret, a refused object).
    Blocked(Blocked),
}

/// Why the rollout is blocked: a condition reason and a message naming the field and problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    pub reason: String,
    pub message: String,
}

/// A condition's state as a step of the reconciliation found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionState {
    pub status: bool,
    pub reason: &'static str,
    pub message: String,
}

/// `status.mqttSessions` and the SessionsRetired condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sessions {
    pub count: i32,
    pub retired: ConditionState,
}

/// Whether the spec's connections verify the servers' certificates (the InsecureTLS
/// condition).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsVerification {
    /// The spec was not read this time: the status keeps what it had.
    NotRead,
    Verified,
    /// Some connection skips verification; the warning names the fields.
    Skipped(String),
}

/// A pod that runs but is not ready, with the reason in the runtime's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodNotReady {
    pub pod: String,
    pub reason: String,
}

/// What the status is computed from, filled in as the reconciliation goes.
pub struct Observed {
    pub generation: i64,
    pub spec_replicas: i32,
    pub statefulset: Option<StatefulSet>,
    pub routes: i32,
    pub config_hash: Option<String>,
    pub label_selector: String,
    /// This reconciliation's topic management; `None` keeps what the status had.
    pub topics: Option<TopicsReport>,
    pub tls_verification: TlsVerification,
    pub pods_not_ready: Vec<PodNotReady>,
    /// `None` keeps what the status had.
    pub sessions: Option<Sessions>,
}

impl Observed {
    /// What is known before the spec is read: every optional finding keeps the status's.
    pub fn new(generation: i64, routes: i32, label_selector: String) -> Self {
        Self {
            generation,
            spec_replicas: 0,
            statefulset: None,
            routes,
            config_hash: None,
            label_selector,
            topics: None,
            tls_verification: TlsVerification::NotRead,
            pods_not_ready: Vec::new(),
            sessions: None,
        }
    }
}

/// Whether the StatefulSet runs the current template on every replica, and a summary.
pub fn rolled_out(sts: Option<&StatefulSet>, want: i32) -> (bool, String) {
    let Some(sts) = sts else {
        return (false, "the StatefulSet does not exist yet".to_owned());
    };
    let Some(st) = sts.status.as_ref() else {
        return (false, "the StatefulSet has no status yet".to_owned());
    };
    let seen = st.observed_generation.unwrap_or(0) >= sts.metadata.generation.unwrap_or(0);
    let ready = st.ready_replicas.unwrap_or(0);
    let updated = st.updated_replicas.unwrap_or(0);
    let same_revision =
        want == 0 || (st.current_revision.is_some() && st.current_revision == st.update_revision);
    let done = seen && st.replicas == want && ready == want && updated == want && same_revision;
    let message = if done {
        format!("{ready}/{want} replicas ready")
    } else if !seen {
        "the StatefulSet controller has not seen the latest change yet".to_owned()
    } else {
        format!(
            "{ready}/{want} replicas ready, {updated}/{want} updated, {} running",
            st.replicas
        )
    };
    (done, message)
}

fn condition(
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    generation: i64,
    previous: &[Condition],
    now: &Time,
) -> Condition {
    let status = if status { "True" } else { "False" }.to_owned();
    // The transition time moves only when the status does.
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map_or_else(|| now.clone(), |c| c.last_transition_time.clone());
    Condition {
        type_: type_.to_owned(),
        status,
        reason: reason.to_owned(),
        message: message.to_owned(),
        observed_generation: Some(generation),
        last_transition_time,
    }
}

pub fn compute(
    outcome: &Outcome,
    observed: &Observed,
    previous: &MqttKafkaBridgeStatus,
    now: &Time,
) -> MqttKafkaBridgeStatus {
    let generation = observed.generation;
    let prev = &previous.conditions;
    let (done, summary) = rolled_out(observed.statefulset.as_ref(), observed.spec_replicas);
    let summary = match observed.pods_not_ready.as_slice() {
        [] => summary,
        pods => {
            let why: Vec<String> = pods
                .iter()
                .map(|p| format!("{}: {}", p.pod, p.reason))
                .collect();
            format!("{summary}; {}", why.join("; "))
        }
    };
    // (status, reason, message) of Ready, Progressing and Degraded.
    let rejected = "the spec is invalid; the running pods keep their configuration";
    // Topics that are not as the spec asks keep the bridge from Ready and make it Degraded.
    let topics_problem = observed
        .topics
        .as_ref()
        .filter(|t| !t.ready)
        .map(|t| (t.reason, t.message.as_str()));
    let no_problem = (false, REASON_AS_EXPECTED, "");
    let [ready, progressing, degraded]: [(bool, &str, &str); 3] = match outcome {
        Outcome::Applied if done => match topics_problem {
            None => [
                (true, REASON_ROLLED_OUT, &summary),
                (false, REASON_ROLLED_OUT, &summary),
                no_problem,
            ],
            Some((reason, message)) => [
                (false, reason, message),
                (false, REASON_ROLLED_OUT, &summary),
                (true, reason, message),
            ],
        },
        Outcome::Applied => [
            (false, REASON_ROLLING_OUT, &summary),
            (true, REASON_ROLLING_OUT, &summary),
            topics_problem.map_or(no_problem, |(reason, message)| (true, reason, message)),
        ],
        Outcome::Invalid(message) => [
            (false, REASON_INVALID_SPEC, message),
            (false, REASON_INVALID_SPEC, rejected),
            (true, REASON_INVALID_SPEC, message),
        ],
        Outcome::Blocked(Blocked { reason, message }) => [
            (false, reason, message),
            (false, reason, message),
            (true, reason, message),
        ],
    };
    let mut conditions: Vec<Condition> = [
        (READY, ready),
        (PROGRESSING, progressing),
        (DEGRADED, degraded),
    ]
    .into_iter()
    .map(|(type_, (status, reason, message))| {
        condition(type_, status, reason, message, generation, prev, now)
    })
    .collect();
    // The conditions beside the three above: computed this time (`Some(Some(..))`), absent
    // this time (`Some(None)`), or kept as the status had them (`None`: not computed).
    let mut add = |type_: &str, now_is: Option<Option<(bool, &str, &str)>>| match now_is {
        Some(Some((status, reason, message))) => conditions.push(condition(
            type_, status, reason, message, generation, prev, now,
        )),
        Some(None) => {}
        None => conditions.extend(prev.iter().find(|c| c.type_ == type_).cloned()),
    };
    add(
        TOPICS_READY,
        observed
            .topics
            .as_ref()
            .map(|t| Some((t.ready, t.reason, t.message.as_str()))),
    );
    add(
        INSECURE_TLS,
        match &observed.tls_verification {
            TlsVerification::NotRead => None,
            TlsVerification::Verified => Some(None),
            TlsVerification::Skipped(w) => Some(Some((true, REASON_INSECURE_SKIP_VERIFY, w))),
        },
    );
    add(
        SESSIONS_RETIRED,
        observed.sessions.as_ref().map(|s| {
            let c = &s.retired;
            Some((c.status, c.reason, c.message.as_str()))
        }),
    );
    let sts_status = observed
        .statefulset
        .as_ref()
        .and_then(|s| s.status.as_ref());
    MqttKafkaBridgeStatus {
        observed_generation: Some(generation),
        conditions,
        replicas: sts_status.map_or(0, |s| s.replicas),
        ready_replicas: sts_status.and_then(|s| s.ready_replicas).unwrap_or(0),
        label_selector: Some(observed.label_selector.clone()),
        routes: observed.routes,
        config_hash: observed
            .config_hash
            .clone()
            .or_else(|| previous.config_hash.clone()),
        mqtt_sessions: observed
            .sessions
            .as_ref()
            .map(|s| s.count)
            .or(previous.mqtt_sessions),
        kafka_cluster_id: observed
            .topics
            .as_ref()
            .and_then(|t| t.cluster_id.clone())
            .or_else(|| previous.kafka_cluster_id.clone()),
        topics: observed
            .topics
            .as_ref()
            .map_or_else(|| previous.topics.clone(), |t| t.topics.clone()),
    }
}

#[cfg(test)]
mod tests;
