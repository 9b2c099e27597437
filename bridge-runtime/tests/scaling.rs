//! Replicas of one bridge as the operator runs them (ordinals 0…N-1, one process each):
//! two replicas share the work both ways without duplicates; scaling down (3 → 1, and
//! 2 → 0 → 1) loses nothing once the removed ordinals' sessions are retired.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use testbed::bridge::Bridge;
use testbed::kafka;
use testbed::mqtt::{Publisher, Subscriber};
use testbed::unique;

/// A bridge with the smart-lock routes both ways: `<ns>/devices/+/state` → `<ns>-state`, and
/// `<ns>-cmd` → `<ns>/devices/${.key}/command`.
fn both_ways_config(ns: &str) -> String {
    format!(
        "{}kafkaToMqtt:\n  - name: commands\n    kafka: {{topics: [{ns}-cmd], autoOffsetReset: earliest}}\n    mqtt: {{topic: \"{ns}/devices/${{.key}}/command\", qos: 1}}\n",
        device_state_config(ns, &format!("{ns}-state"), protocol())
    )
}

fn replica(ns: &str, config: &str, ordinal: u32) -> Bridge {
    Bridge::start(
        &format!("{ns}-{ordinal}"),
        &format!("{config}ordinal: {ordinal}\n"),
    )
}

/// Publishes smart-lock states `first..first+count` (20 devices) in the background.
fn publish_in_background(
    publisher: Arc<Publisher>,
    ns: &str,
    first: u32,
    count: u32,
) -> tokio::task::JoinHandle<()> {
    let ns = ns.to_owned();
    tokio::spawn(async move {
        for i in first..first + count {
            let device = format!("lock-{}", i % 20);
            publisher
                .publish(
                    &format!("{ns}/devices/{device}/state"),
                    1,
                    lock_state(&device, i / 20),
                )
                .await;
            if i % 500 == 0 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_share_the_work_both_ways_without_duplicates() {
    let ns = unique("scale2");
    kafka::create_topic(&format!("{ns}-state"), 4).await;
    kafka::create_topic(&format!("{ns}-cmd"), 4).await;
    let config = both_ways_config(&ns);
    let subscriber = Subscriber::connect(
        &unique("scale2-sub"),
        &[&format!("{ns}/devices/+/command")],
        1,
    )
    .await;
    let mut replicas = [replica(&ns, &config, 0), replica(&ns, &config, 1)];
    for r in &mut replicas {
        r.wait_ready(SHORT);
    }
    // The consumer group has settled: each replica holds 2 of the 4 partitions.
    testbed::wait_until("the two replicas to split the partitions", LONG, || {
        replicas
            .iter()
            .all(|r| {
                r.process
                    .log_text()
                    .contains("partitions assigned route=commands partitions=2")
            })
            .then_some(())
    });
    let publisher = Publisher::connect(&unique("scale2-pub")).await;
    publish_lock_states(&publisher, &ns, 20, 5_000).await;
    produce_commands(&format!("{ns}-cmd"), 20, 0, 5_000).await;

    let records = wait_for_distinct(&format!("{ns}-state"), 5_000, LONG).await;
    let commands = wait_for_distinct_commands(&subscriber, 5_000, LONG).await;
    let (up, up_dups) = distinct_and_duplicates(&records);
    let (down, down_dups) = distinct_commands(&commands);
    eprintln!("two replicas: up {up} distinct, {up_dups} duplicates; down {down} distinct, {down_dups} duplicates");
    assert_eq!((up, up_dups), (5_000, 0), "MQTT → Kafka: each message once");
    assert_eq!(
        (down, down_dups),
        (5_000, 0),
        "Kafka → MQTT: each command once"
    );
    for (i, r) in replicas.iter().enumerate() {
        let m = r.metrics();
        assert!(
            m.route_counter("received", "state") > 0 && m.route_counter("received", "commands") > 0,
            "replica {i} took part both ways"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn scaling_3_to_1_under_load_loses_nothing() {
    let ns = unique("scale31");
    let topic = format!("{ns}-state");
    kafka::create_topic(&topic, 3).await;
    let config = device_state_config(&ns, &topic, protocol());
    let mut replicas: Vec<Bridge> = (0..3).map(|o| replica(&ns, &config, o)).collect();
    for r in &mut replicas {
        r.wait_ready(SHORT);
    }
    let publisher = Arc::new(Publisher::connect(&unique("scale31-pub")).await);
    let load = publish_in_background(publisher.clone(), &ns, 0, 6_000);
    testbed::wait_until("the load to be under way", LONG, || {
        kafka::record_count(&topic).filter(|n| *n >= 1_000)
    });
    // Scale to 1 mid-stream: replicas 2 and 1 stop, then their sessions are retired.
    for r in replicas.iter_mut().skip(1).rev() {
        assert!(r.terminate(Duration::from_secs(20)).success());
    }
    load.await.expect("publisher task");
    for ordinal in [1, 2] {
        retire_ordinal(&replicas[ordinal].config, ordinal as u32);
    }
    // Afterwards nothing is routed to the removed client ids.
    let more = publish_in_background(publisher.clone(), &ns, 6_000, 10_000);
    more.await.expect("publisher task");
    publisher.wait_acked(16_000, LONG).await;
    let records = wait_for_distinct(&topic, 16_000, LONG).await;
    let (distinct, duplicates) = distinct_and_duplicates(&records);
    eprintln!("3 → 1: {distinct} distinct of 16000, {duplicates} duplicates");
    assert_eq!(distinct, 16_000, "nothing lost");
    replicas[0].wait_ready(SHORT);
}

#[tokio::test(flavor = "multi_thread")]
async fn scaling_2_to_0_to_1_delivers_what_was_published_at_0() {
    let ns = unique("scale201");
    let topic = format!("{ns}-state");
    kafka::create_topic(&topic, 2).await;
    let config = device_state_config(&ns, &topic, protocol());
    let mut replicas = [replica(&ns, &config, 0), replica(&ns, &config, 1)];
    for r in &mut replicas {
        r.wait_ready(SHORT);
        assert!(r.terminate(Duration::from_secs(20)).success());
    }
    // At 0 replicas the sessions stay and the broker queues.
    let publisher = Publisher::connect(&unique("scale201-pub")).await;
    publish_lock_states(&publisher, &ns, 20, 2_000).await;
    publisher.wait_acked(2_000, LONG).await;
    assert_eq!(kafka::record_count(&topic), Some(0), "paused at 0 replicas");

    replicas[0].restart(&format!("{ns}-0-again"));
    replicas[0].wait_ready(SHORT);
    retire_ordinal(&replicas[1].config, 1);
    let records = wait_for_distinct(&topic, 2_000, LONG).await;
    assert_eq!(distinct_and_duplicates(&records).0, 2_000, "all arrive");
}
