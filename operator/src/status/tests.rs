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

fn observed(s: Option<&StatefulSet>, replicas: i32) -> Observed {
    Observed {
        spec_replicas: replicas,
        statefulset: s.cloned(),
        config_hash: Some("h".into()),
        tls_verification: TlsVerification::Verified,
        ..Observed::new(4, 2, "a=b".into())
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
    o.topics = Some(report.clone());
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
    o.topics = Some(fine.clone());
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
    o.tls_verification =
        TlsVerification::Skipped("spec.mqtt.tls.insecureSkipVerify is set: risky".into());
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
    o.tls_verification = TlsVerification::NotRead;
    let kept = compute(&Outcome::Invalid("bad".into()), &o, &st, &time(2));
    assert_eq!(get(&kept, INSECURE_TLS), insecure);
    o.tls_verification = TlsVerification::Verified;
    let gone = compute(&Outcome::Applied, &o, &kept, &time(3));
    assert!(gone.conditions.iter().all(|c| c.type_ != INSECURE_TLS));
}

#[test]
fn a_pod_that_is_not_ready_says_why_in_ready_and_progressing() {
    let rolling = sts(2, 2, 2, 1, 2, true);
    let mut o = observed(Some(&rolling), 2);
    o.pods_not_ready = vec![PodNotReady {
        pod: "locks-1".to_owned(),
        reason: "mqtt subscriber (cannot connect to mqtts://b:8883: UnknownIssuer)".to_owned(),
    }];
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
    let retiring = ConditionState {
        status: false,
        reason: "Retiring",
        message: "draining the sessions of ordinals 1, 2".to_owned(),
    };
    let mut o = observed(Some(&done), 1);
    o.sessions = Some(Sessions {
        count: 3,
        retired: retiring,
    });
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
