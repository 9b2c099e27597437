//! Scaling without loss, on the real node. Scaling down retires the MQTT sessions of the
//! removed replicas (a Job per ordinal drains what the broker queued there into Kafka and ends
//! the session), so nothing is lost and nothing more is routed to them; zero replicas pause,
//! keeping every session; an operator killed in the middle of a retirement completes it after
//! its restart. The operator is the chart's pod on the real node (`testbed::in_cluster`); the
//! kill is a SIGKILL of its container, which the kubelet restarts.

use std::time::Duration;

use serde_json::{json, Value};
use testbed::in_cluster::ChartOperator;
use testbed::kubectl::kubectl_ok;
use testbed::mqtt::Publisher;
use testbed::operator::WAIT;
use testbed::real_node::*;
use testbed::{unique, wait_until, wait_until_seen};

/// The example bridge on the real node with `replicas`, ready.
fn start_bridge(s: &ChartOperator, id: &str, replicas: i32) {
    let mut bridge = smart_locks_on(&real_node(), id);
    bridge["spec"]["replicas"] = json!(replicas);
    s.apply(&bridge.to_string());
    s.wait_ready(BRIDGE);
}

fn scale(s: &ChartOperator, replicas: i32) {
    let to = format!("--replicas={replicas}");
    kubectl_ok(&["scale", "mkb", BRIDGE, "-n", &s.0, &to], None);
}

/// Waits until `status.mqttSessions` is `sessions` and SessionsRetired has `reason`; returns
/// the condition.
fn wait_sessions(s: &ChartOperator, sessions: i32, reason: &str) -> Value {
    wait_until_seen(
        &format!("mqttSessions {sessions} and SessionsRetired {reason}"),
        WAIT,
        || {
            let bridge = s.bridge(BRIDGE);
            let condition = testbed::operator::condition_of(&bridge, "SessionsRetired");
            let recorded = &bridge["status"]["mqttSessions"];
            if *recorded == sessions && condition["reason"] == reason {
                Ok(condition)
            } else {
                Err(format!("mqttSessions {recorded}, {condition}"))
            }
        },
    )
}

/// Publishes `count` states from `first_seq` in the background, `pause` apart, and waits for
/// the broker's acknowledgements.
fn stream_states(
    id: &str,
    first_seq: u32,
    count: u32,
    pause: Duration,
) -> tokio::task::JoinHandle<()> {
    let id = id.to_owned();
    tokio::spawn(async move {
        let publisher = Publisher::connect(&unique("sd-stream")).await;
        publish_states(&publisher, &id, first_seq, count, pause).await;
        publisher.wait_acked(u64::from(count), WAIT).await;
    })
}

fn retirement_jobs(s: &ChartOperator) -> String {
    kubectl_ok(&["get", "jobs", "-n", &s.0, "-o", "name"], None)
}

#[tokio::test(flavor = "multi_thread")]
async fn three_to_one_mid_stream_retires_the_removed_sessions_and_loses_nothing() {
    let s = ChartOperator::install("scale-down", &[]);
    let id = unique("sd");
    start_bridge(&s, &id, 3);
    wait_sessions(&s, 3, "AsExpected");
    let states = format!("{id}-lock-state");

    let stream = stream_states(&id, 0, 3000, Duration::from_millis(3));
    tokio::time::sleep(Duration::from_secs(3)).await;
    scale(&s, 1);
    stream.await.expect("the publishing task");
    let retired = wait_sessions(&s, 1, "AsExpected");
    assert_eq!(retired["status"], "True");
    let total = wait_distinct_records(&states, 3000).await;
    let events = s.events();
    assert!(
        events.contains("RetiringSessions")
            && events.contains(&format!("Retired the MQTT session {id}-1:"))
            && events.contains(&format!("Retired the MQTT session {id}-2:")),
        "{events}"
    );
    for line in events
        .lines()
        .filter(|l| l.contains("Retired the MQTT session"))
    {
        eprintln!("{line}");
    }
    assert_eq!(retirement_jobs(&s).trim(), "", "the Jobs are removed");
    let metrics = s.metrics();
    assert_eq!(
        metrics.value("mkb_operator_retired_sessions_total", &[("ordinal", "2")]),
        Some(1.0),
        "{}",
        metrics.0
    );

    // Nothing is routed to the removed client ids any more: all of these arrive.
    let publisher = Publisher::connect(&unique("sd-after")).await;
    publish_states(&publisher, &id, 3000, 10_000, Duration::ZERO).await;
    publisher.wait_acked(10_000, WAIT).await;
    let after = wait_distinct_records(&states, 13_000).await;
    eprintln!(
        "3 → 1 mid-stream: {total} records for 3000 states; then {} records for 10000 more",
        after - total
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn zero_replicas_pause_and_what_was_published_meanwhile_arrives() {
    let s = ChartOperator::install("scale-pause", &[]);
    let id = unique("sp");
    start_bridge(&s, &id, 2);
    scale(&s, 0);
    let paused = wait_sessions(&s, 2, "Paused");
    assert_eq!(paused["status"], "True");
    wait_until("the bridge's pods to be gone", WAIT, || {
        let gone = |pod: &str| s.get(&format!("pod/{pod}")).is_none();
        (gone("smart-locks-0") && gone("smart-locks-1")).then_some(())
    });
    let publisher = Publisher::connect(&unique("sp-pub")).await;
    publish_states(&publisher, &id, 0, 500, Duration::ZERO).await;
    publisher.wait_acked(500, WAIT).await;
    scale(&s, 1);
    wait_sessions(&s, 1, "AsExpected");
    let total = wait_distinct_records(&format!("{id}-lock-state"), 500).await;
    eprintln!("2 → 0 → 1: {total} records for 500 states published at 0");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_killed_during_a_retirement_completes_it_after_its_restart() {
    let s = ChartOperator::install("scale-crash", &[]);
    let id = unique("sc");
    start_bridge(&s, &id, 3);
    let stream = stream_states(&id, 0, 2000, Duration::from_millis(3));
    tokio::time::sleep(Duration::from_secs(2)).await;
    scale(&s, 1);
    wait_until("a retirement Job", WAIT, || {
        retirement_jobs(&s).contains("retire").then_some(())
    });
    s.kill9_leader();
    stream.await.expect("the publishing task");
    wait_sessions(&s, 1, "AsExpected");
    let restarts = &s.leader_pod()["status"]["containerStatuses"][0]["restartCount"];
    assert_eq!(
        *restarts,
        1,
        "the operator was killed once and restarted: {}",
        s.pod_summary()
    );
    let total = wait_distinct_records(&format!("{id}-lock-state"), 2000).await;
    eprintln!("operator killed mid-retirement: {total} records for 2000 states");
}
