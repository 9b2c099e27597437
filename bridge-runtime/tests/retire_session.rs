//! Scale-down without stranded messages: Mosquitto keeps routing `$share` messages to the
//! persistent session of a replica that is gone, and they wait there. `bridge-runtime
//! --retire-ordinal N` unsubscribes that session, delivers what it holds to Kafka and ends it,
//! and writes its summary to `--summary-file` when asked.

mod common;

use std::time::Duration;

use common::*;
use testbed::bridge::Bridge;
use testbed::kafka;
use testbed::mqtt::Publisher;
use testbed::unique;

#[tokio::test(flavor = "multi_thread")]
async fn retiring_a_removed_replicas_session_delivers_what_it_held() {
    let ns = unique("retire");
    let topic = format!("{ns}-state");
    kafka::create_topic(&topic, 3).await;
    let config = device_state_config(&ns, &topic, protocol());
    let mut replica0 = Bridge::start(&format!("{ns}-0"), &format!("{config}ordinal: 0\n"));
    let mut replica1 = Bridge::start(&format!("{ns}-1"), &format!("{config}ordinal: 1\n"));
    replica0.wait_ready(SHORT);
    replica1.wait_ready(SHORT);
    // Replica 1 is scaled away; its persistent session stays in the shared group.
    assert!(replica1.terminate(Duration::from_secs(20)).success());

    let publisher = Publisher::connect(&unique("retire-pub")).await;
    publish_lock_states(&publisher, &ns, 10, 1_000).await;
    publisher.wait_acked(1_000, LONG).await;
    testbed::wait_until("replica 0 to deliver its share", LONG, || {
        kafka::record_count(&topic).filter(|n| *n >= 300)
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (before, _) = distinct_and_duplicates(&kafka::read_all(&topic).await);
    assert!(
        before < 1_000,
        "Mosquitto routed part of the messages to the removed replica's session ({before} of 1000 arrived)"
    );

    let stdout = retire_ordinal(&replica1.config, 1);
    assert!(
        stdout.contains(&format!("retired the MQTT session {ns}-1: ")),
        "{stdout}"
    );
    let records = wait_for_distinct(&topic, 1_000, LONG).await;
    let (distinct, _) = distinct_and_duplicates(&records);
    assert_eq!(
        distinct, 1_000,
        "the retired session's messages reached Kafka"
    );
    assert!(drained(&stdout) >= (1_000 - before) as u64, "{stdout}");

    // Nothing is routed to the retired client id any more: everything new arrives.
    let more = 1_000u32;
    for i in 0..more {
        let device = format!("lock-{}", i % 10);
        publisher
            .publish(
                &format!("{ns}/devices/{device}/state"),
                1,
                lock_state(&device, 100 + i / 10),
            )
            .await;
    }
    let records = wait_for_distinct(&topic, 2_000, LONG).await;
    assert_eq!(distinct_and_duplicates(&records).0, 2_000);
    // Repeating it is safe: the session is empty. The summary can go to a file too (a Job's
    // termination message).
    let summary = testbed::process::test_log_dir().join(format!("{ns}-summary"));
    let summary_arg = summary.to_string_lossy().into_owned();
    let again = retire_ordinal_with(&replica1.config, 1, &["--summary-file", &summary_arg]);
    assert_eq!(drained(&again), 0, "{again}");
    let written = std::fs::read_to_string(&summary).unwrap_or_default();
    assert_eq!(
        written,
        again.trim_end(),
        "the summary file holds the summary line"
    );
    replica0.wait_ready(SHORT);
}

/// Issue 29, path 1: a message the retirement took but could not deliver (it needs the
/// dead-letter topic, which does not exist yet) is held back unacknowledged. The retirement
/// must not end the session then — it did, exiting 0 and losing the message. It fails, says
/// why (on stderr and in the summary file, the Job pod's termination message), and keeps the
/// session; once the topic exists, retiring again delivers the message there.
#[tokio::test(flavor = "multi_thread")]
async fn a_retirement_that_holds_a_message_back_fails_and_keeps_the_session() {
    let ns = unique("retire-held");
    let topic = format!("{ns}-state");
    let dead_letters = format!("{ns}-dead-letters");
    kafka::create_topic(&topic, 1).await;
    let config = format!(
        "{}mqttToKafka:\n  - name: state\n    mqtt: {{topicFilters: [\"{ns}/devices/+/state\"], shared: false}}\n    kafka: {{topic: {topic}}}\nordinal: 0\n",
        base_config(&ns, protocol(), Some(&dead_letters)).replace(
            &format!("deadLetterTopic: {dead_letters}"),
            &format!("deadLetterTopic: {dead_letters}\n  producer: {{maxMessageBytes: 1000}}")
        )
    );
    let mut replica = Bridge::start(&ns, &config);
    // Not ready for the missing dead-letter topic alone: subscribed, connected.
    testbed::wait_until("the replica to have subscribed", SHORT, || {
        let (code, body) = testbed::bridge::http_get(replica.http, "/readyz")?;
        // "not ready: <part>, <part>…": only the dead-letter topic's part is left.
        let parts = body
            .trim()
            .trim_start_matches("not ready: ")
            .split(", ")
            .count();
        (code == 503 && parts == 1 && body.contains("dead-letter")).then_some(())
    });
    assert!(replica.terminate(Duration::from_secs(20)).success());
    // Queued in the stopped replica's session: one fits, one is larger than a record may be.
    let publisher = Publisher::connect(&unique("retire-held-pub")).await;
    publisher
        .publish(&format!("{ns}/devices/lock-1/state"), 1, "small")
        .await;
    publisher
        .publish(&format!("{ns}/devices/lock-2/state"), 1, vec![b'x'; 2_000])
        .await;
    publisher.wait_acked(2, SHORT).await;

    let summary = testbed::process::test_log_dir().join(format!("{ns}-summary"));
    let output = std::process::Command::new(testbed::process::workspace_binary("bridge-runtime"))
        .arg("--config")
        .arg(&replica.config)
        .args(["--retire-ordinal", "0", "--summary-file"])
        .arg(&summary)
        .output()
        .expect("run bridge-runtime --retire-ordinal");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        !output.status.success(),
        "the retirement must fail: {stderr}"
    );
    assert!(
        stderr.contains("held back") && stderr.contains("the session is kept"),
        "says why: {stderr}"
    );
    let written = std::fs::read_to_string(&summary).unwrap_or_default();
    assert!(
        written.contains("held back"),
        "the termination message says why: {written}"
    );

    kafka::create_topic(&dead_letters, 1).await;
    let stdout = retire_ordinal(&replica.config, 0);
    assert!(
        stdout.contains(&format!("retired the MQTT session {ns}-0: ")),
        "{stdout}"
    );
    let letters = kafka::wait_for_records(&dead_letters, 1, LONG).await;
    assert_eq!(
        letters.len(),
        1,
        "the held-back message reached the dead-letter topic"
    );
    assert_eq!(letters[0].value.as_deref().map(<[u8]>::len), Some(2_000));
    let records = kafka::read_all(&topic).await;
    assert!(
        records.iter().any(|r| r.value_str() == "small"),
        "the small one is in Kafka"
    );
}
