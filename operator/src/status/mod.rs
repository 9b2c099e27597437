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
    /// Something outside the spec stops the rollout (a missing Secret, a failed apply).
    Blocked { reason: String, message: String },
}

impl Outcome {
    /// The message of an outcome that stopped the rollout ("" when applied).
    pub fn message(&self) -> &str {
        match self {
            Outcome::Applied => "",
            Outcome::Invalid(message) | Outcome::Blocked { message, .. } => message,
        }
    }
}

/// What the status is computed from.
pub struct Observed<'a> {
    pub generation: i64,
    pub spec_replicas: i32,
    pub statefulset: Option<&'a StatefulSet>,
    pub routes: i32,
    pub config_hash: Option<String>,
    pub label_selector: String,
    /// This reconciliation's topic management; `None` keeps what the status had.
    pub topics: Option<&'a TopicsReport>,
    /// The spec's warning about connections that skip certificate verification: `Some(None)`
    /// when there is none, `None` when the spec could not be read (keeps what the status had).
    pub insecure_tls: Option<Option<&'a str>>,
    /// `(pod, reason)` of the pods that run but are not ready, in the runtime's words.
    pub pods_not_ready: &'a [(String, String)],
    /// `status.mqttSessions` and the SessionsRetired condition (status, reason, message);
    /// `None` keeps what the status had.
    pub sessions: Option<(i32, &'a (bool, &'static str, String))>,
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
    observed: &Observed<'_>,
    previous: &MqttKafkaBridgeStatus,
    now: &Time,
) -> MqttKafkaBridgeStatus {
    let generation = observed.generation;
    let prev = &previous.conditions;
    let (done, summary) = rolled_out(observed.statefulset, observed.spec_replicas);
    let summary = match observed.pods_not_ready {
        [] => summary,
        pods => {
            let why: Vec<String> = pods
                .iter()
                .map(|(pod, reason)| format!("{pod}: {reason}"))
                .collect();
            format!("{summary}; {}", why.join("; "))
        }
    };
    // (status, reason, message) of Ready, Progressing and Degraded.
    let rejected = "the spec is invalid; the running pods keep their configuration";
    // Topics that are not as the spec asks keep the bridge from Ready and make it Degraded.
    let topics_problem = observed
        .topics
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
        Outcome::Blocked { reason, message } => [
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
            .map(|t| Some((t.ready, t.reason, t.message.as_str()))),
    );
    add(
        INSECURE_TLS,
        observed
            .insecure_tls
            .map(|w| w.map(|w| (true, REASON_INSECURE_SKIP_VERIFY, w))),
    );
    add(
        SESSIONS_RETIRED,
        observed
            .sessions
            .map(|(_, (status, reason, message))| Some((*status, *reason, message.as_str()))),
    );
    let sts_status = observed.statefulset.and_then(|s| s.status.as_ref());
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
        mqtt_sessions: observed.sessions.map(|(n, _)| n).or(previous.mqtt_sessions),
        kafka_cluster_id: observed
            .topics
            .and_then(|t| t.cluster_id.clone())
            .or_else(|| previous.kafka_cluster_id.clone()),
        topics: observed
            .topics
            .map_or_else(|| previous.topics.clone(), |t| t.topics.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::StatefulSetStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn time(s: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(s).expect("valid"))
    }

    fn sts(
        generation: i64,
        observed: i64,
        replicas: i32,
        ready: i32,
        updated: i32,
        same_revision: bool,
    ) -> StatefulSet {
        StatefulSet {
            metadata: ObjectMeta {
                generation: Some(generation),
                ..ObjectMeta::default()
            },
            spec: None,
            status: Some(StatefulSetStatus {
                observed_generation: Some(observed),
                replicas,
                ready_replicas: Some(ready),
                updated_replicas: Some(updated),
                current_revision: Some("r1".into()),
                update_revision: Some(if same_revision { "r1" } else { "r2" }.into()),
                ..StatefulSetStatus::default()
            }),
        }
    }

    fn observed(s: Option<&StatefulSet>, replicas: i32) -> Observed<'_> {
        Observed {
            generation: 4,
            spec_replicas: replicas,
            statefulset: s,
            routes: 2,
            config_hash: Some("h".into()),
            label_selector: "a=b".into(),
            topics: None,
            insecure_tls: Some(None),
            pods_not_ready: &[],
            sessions: None,
        }
    }

    fn get<'a>(st: &'a MqttKafkaBridgeStatus, t: &str) -> &'a Condition {
        st.conditions
            .iter()
            .find(|c| c.type_ == t)
            .expect("condition")
    }

    #[test]
    fn ready_only_when_fully_rolled_out() {
        let none = MqttKafkaBridgeStatus::default();
        let done = sts(2, 2, 3, 3, 3, true);
        let st = compute(
            &Outcome::Applied,
            &observed(Some(&done), 3),
            &none,
            &time(10),
        );
        assert_eq!(get(&st, READY).status, "True");
        assert_eq!(get(&st, READY).observed_generation, Some(4));
        assert_eq!(get(&st, PROGRESSING).status, "False");
        assert_eq!((st.replicas, st.ready_replicas, st.routes), (3, 3, 2));
        assert_eq!(st.observed_generation, Some(4));
        for not_done in [
            sts(3, 2, 3, 3, 3, true),
            sts(2, 2, 3, 2, 3, true),
            sts(2, 2, 3, 3, 2, true),
            sts(2, 2, 3, 3, 3, false),
        ] {
            let st = compute(
                &Outcome::Applied,
                &observed(Some(&not_done), 3),
                &none,
                &time(10),
            );
            assert_eq!(get(&st, READY).status, "False");
            assert_eq!(get(&st, PROGRESSING).status, "True");
        }
        let st = compute(&Outcome::Applied, &observed(None, 1), &none, &time(10));
        assert_eq!(get(&st, READY).reason, REASON_ROLLING_OUT);
    }

    #[test]
    fn topics_not_ready_keep_the_bridge_from_ready_and_degrade_it() {
        let done = sts(2, 2, 1, 1, 1, true);
        let report = TopicsReport {
            topics: vec![mkb_api::crd::TopicStatus {
                name: "t".into(),
                state: mkb_api::crd::TopicState::Pending,
                partitions: Some(3),
                replication_factor: Some(1),
                created: true,
                message: Some("Kafka cannot be reached".into()),
            }],
            cluster_id: None,
            ready: false,
            reason: REASON_KAFKA_UNAVAILABLE,
            message: "Kafka at k:9092 cannot be reached".into(),
            changes: Vec::new(),
        };
        let mut o = observed(Some(&done), 1);
        o.topics = Some(&report);
        let st = compute(
            &Outcome::Applied,
            &o,
            &MqttKafkaBridgeStatus::default(),
            &time(1),
        );
        assert_eq!(get(&st, READY).status, "False");
        assert_eq!(get(&st, READY).reason, REASON_KAFKA_UNAVAILABLE);
        assert_eq!(get(&st, DEGRADED).status, "True");
        assert_eq!(get(&st, TOPICS_READY).status, "False");
        assert_eq!(
            get(&st, TOPICS_READY).message,
            "Kafka at k:9092 cannot be reached"
        );
        assert_eq!(st.topics, report.topics);
        // An invalid spec later keeps the topics and their condition as they were.
        let later = compute(
            &Outcome::Invalid("spec.x: bad".into()),
            &observed(Some(&done), 1),
            &st,
            &time(2),
        );
        assert_eq!(later.topics, report.topics);
        assert_eq!(get(&later, TOPICS_READY), get(&st, TOPICS_READY));
        let fine = TopicsReport {
            ready: true,
            reason: REASON_AS_EXPECTED,
            message: "1 topics ready".into(),
            cluster_id: Some("c1".into()),
            ..report.clone()
        };
        o.topics = Some(&fine);
        let st = compute(&Outcome::Applied, &o, &st, &time(3));
        assert_eq!(get(&st, READY).status, "True");
        assert_eq!(get(&st, DEGRADED).status, "False");
        assert_eq!(st.kafka_cluster_id.as_deref(), Some("c1"));
    }

    #[test]
    fn zero_replicas_is_ready() {
        let zero = sts(5, 5, 0, 0, 0, false);
        let st = compute(
            &Outcome::Applied,
            &observed(Some(&zero), 0),
            &MqttKafkaBridgeStatus::default(),
            &time(1),
        );
        assert_eq!(get(&st, READY).status, "True");
    }

    #[test]
    fn invalid_spec_is_not_ready_and_degraded_with_the_message() {
        let done = sts(2, 2, 1, 1, 1, true);
        let st = compute(
            &Outcome::Invalid("spec.x: bad".into()),
            &observed(Some(&done), 1),
            &MqttKafkaBridgeStatus::default(),
            &time(1),
        );
        assert_eq!(
            (
                get(&st, READY).status.as_str(),
                get(&st, READY).reason.as_str()
            ),
            ("False", REASON_INVALID_SPEC)
        );
        assert_eq!(get(&st, READY).message, "spec.x: bad");
        assert_eq!(get(&st, DEGRADED).status, "True");
        assert_eq!(st.ready_replicas, 1, "the running pods are still reported");
    }

    #[test]
    fn transition_time_moves_only_with_the_status() {
        let done = sts(2, 2, 1, 1, 1, true);
        let first = compute(
            &Outcome::Applied,
            &observed(Some(&done), 1),
            &MqttKafkaBridgeStatus::default(),
            &time(10),
        );
        let again = compute(
            &Outcome::Applied,
            &observed(Some(&done), 1),
            &first,
            &time(20),
        );
        assert_eq!(first, again, "nothing changed, nothing to write");
        let rolling = sts(3, 3, 1, 0, 1, true);
        let later = compute(
            &Outcome::Applied,
            &observed(Some(&rolling), 1),
            &again,
            &time(30),
        );
        assert_eq!(get(&later, READY).last_transition_time, time(30));
        assert_eq!(get(&later, DEGRADED).last_transition_time, time(10));
    }

    #[test]
    fn insecure_tls_is_a_warning_condition_that_does_not_block_ready() {
        let done = sts(2, 2, 1, 1, 1, true);
        let mut o = observed(Some(&done), 1);
        o.insecure_tls = Some(Some("spec.mqtt.tls.insecureSkipVerify is set: risky"));
        let st = compute(
            &Outcome::Applied,
            &o,
            &MqttKafkaBridgeStatus::default(),
            &time(1),
        );
        assert_eq!(get(&st, READY).status, "True");
        let insecure = get(&st, INSECURE_TLS);
        assert_eq!(
            (insecure.status.as_str(), insecure.reason.as_str()),
            ("True", REASON_INSECURE_SKIP_VERIFY)
        );
        assert_eq!(
            insecure.message,
            "spec.mqtt.tls.insecureSkipVerify is set: risky"
        );
        // An unreadable spec keeps it; a spec without the setting removes it.
        o.insecure_tls = None;
        let kept = compute(&Outcome::Invalid("bad".into()), &o, &st, &time(2));
        assert_eq!(get(&kept, INSECURE_TLS), insecure);
        o.insecure_tls = Some(None);
        let gone = compute(&Outcome::Applied, &o, &kept, &time(3));
        assert!(gone.conditions.iter().all(|c| c.type_ != INSECURE_TLS));
    }

    #[test]
    fn a_pod_that_is_not_ready_says_why_in_ready_and_progressing() {
        let rolling = sts(2, 2, 2, 1, 2, true);
        let why = [(
            "locks-1".to_owned(),
            "mqtt subscriber (cannot connect to mqtts://b:8883: UnknownIssuer)".to_owned(),
        )];
        let mut o = observed(Some(&rolling), 2);
        o.pods_not_ready = &why;
        let st = compute(
            &Outcome::Applied,
            &o,
            &MqttKafkaBridgeStatus::default(),
            &time(1),
        );
        let expected = "1/2 replicas ready, 2/2 updated, 2 running; locks-1: mqtt subscriber (cannot connect to mqtts://b:8883: UnknownIssuer)";
        assert_eq!(get(&st, READY).message, expected);
        assert_eq!(get(&st, PROGRESSING).message, expected);
    }

    #[test]
    fn the_recorded_sessions_and_their_condition_are_kept_when_the_spec_is_not_read() {
        let done = sts(2, 2, 1, 1, 1, true);
        let retiring = (
            false,
            "Retiring",
            "draining the sessions of ordinals 1, 2".to_owned(),
        );
        let mut o = observed(Some(&done), 1);
        o.sessions = Some((3, &retiring));
        let st = compute(
            &Outcome::Applied,
            &o,
            &MqttKafkaBridgeStatus::default(),
            &time(1),
        );
        assert_eq!(st.mqtt_sessions, Some(3));
        assert_eq!(get(&st, SESSIONS_RETIRED).reason, "Retiring");
        assert_eq!(
            get(&st, READY).status,
            "True",
            "retiring does not block Ready"
        );
        o.sessions = None;
        let kept = compute(&Outcome::Invalid("bad".into()), &o, &st, &time(2));
        assert_eq!(kept.mqtt_sessions, Some(3));
        assert_eq!(get(&kept, SESSIONS_RETIRED), get(&st, SESSIONS_RETIRED));
    }
}
