use super::*;

/// Issue 29, path 9: the retirement waited without a word for a pod stuck terminating.
#[test]
fn a_pod_stuck_terminating_is_named_with_what_to_do() {
    let due = k8s_openapi::jiff::Timestamp::from_second(2_000_000).expect("valid");
    let at = |s: i64| k8s_openapi::jiff::Timestamp::from_second(2_000_000 + s).expect("valid");
    assert!(
        !passed(due, STUCK_AFTER, at(-30)),
        "still in its grace period"
    );
    assert!(!passed(due, STUCK_AFTER, at(299)));
    assert!(passed(due, STUCK_AFTER, at(300)));
    let plan = Plan {
        sessions: 3,
        waiting_for_pods: vec![2],
        stuck_pods: vec![2],
        ..Plan::default()
    };
    let (ok, reason, message) = condition(&plan, "locks", 2);
    assert!(!ok);
    assert_eq!(reason, mkb_api::crd::conditions::REASON_RETIRING);
    assert!(
        message.contains("locks-2 still terminating")
            && message.contains("kubectl delete pod --force --grace-period=0 locks-2"),
        "{message}"
    );
}

#[test]
fn the_next_deadline_is_how_long_is_left() {
    let from = k8s_openapi::jiff::Timestamp::from_second(3_000_000).expect("valid");
    let at = |s: i64| k8s_openapi::jiff::Timestamp::from_second(3_000_000 + s).expect("valid");
    let five = std::time::Duration::from_secs(300);
    assert_eq!(
        until(from, five, at(100)),
        Some(std::time::Duration::from_secs(200))
    );
    assert_eq!(
        until(from, five, at(-50)),
        Some(five),
        "a clock behind waits it all"
    );
    assert_eq!(until(from, five, at(300)), None);
}

#[test]
fn a_failed_retirement_and_a_stuck_pod_are_both_named() {
    let plan = Plan {
        sessions: 4,
        failed: vec![2],
        waiting_for_pods: vec![3],
        stuck_pods: vec![3],
        ..Plan::default()
    };
    let (_, reason, message) = condition(&plan, "locks", 2);
    assert_eq!(reason, mkb_api::crd::conditions::REASON_RETIRE_FAILED);
    assert!(message.contains("job/locks-retire-2`"), "{message}");
    assert!(message.contains("locks-3 still terminating"), "{message}");
}

#[test]
fn a_failed_retirement_is_tried_again_after_five_minutes() {
    let failed = k8s_openapi::jiff::Timestamp::from_second(1_000_000).expect("valid");
    let at = |s: i64| k8s_openapi::jiff::Timestamp::from_second(1_000_000 + s).expect("valid");
    assert!(!passed(failed, RETRY_FAILED_AFTER, at(299)));
    assert!(passed(failed, RETRY_FAILED_AFTER, at(300)));
    assert!(
        !passed(failed, RETRY_FAILED_AFTER, at(-400)),
        "a clock behind the failure waits"
    );
}

#[test]
fn reads_ordinals_and_drained_counts() {
    assert_eq!(ordinal_of("locks-2", "locks"), Some(2));
    assert_eq!(ordinal_of("locks-retire-1-abcde", "locks"), None);
    assert_eq!(ordinal_of("other-1", "locks"), None);
    assert_eq!(
        drained_count("retired the MQTT session locks-2: 312 message(s) delivered to Kafka"),
        Some(312)
    );
    assert_eq!(drained_count("something else"), None);
}

#[test]
fn the_condition_says_what_the_retirement_waits_for() {
    let plan = Plan {
        sessions: 3,
        waiting_for_pods: vec![2],
        running: vec![1],
        ..Plan::default()
    };
    assert_eq!(
        condition(&plan, "locks", 1),
        (
            false,
            "Retiring",
            "waiting for the pods of ordinals 2 to stop; draining the sessions of ordinals 1"
                .to_owned()
        )
    );
    let failed = Plan {
        sessions: 2,
        failed: vec![1],
        ..Plan::default()
    };
    let (ok, reason, message) = condition(&failed, "locks", 1);
    assert_eq!((ok, reason), (false, "RetireFailed"));
    assert!(
        message.contains("kubectl logs job/locks-retire-1"),
        "{message}"
    );
    let done = Plan {
        sessions: 1,
        ..Plan::default()
    };
    assert!(condition(&done, "locks", 1).0);
    let paused = Plan {
        sessions: 2,
        paused: true,
        ..Plan::default()
    };
    assert_eq!(condition(&paused, "locks", 0).1, "Paused");
}
