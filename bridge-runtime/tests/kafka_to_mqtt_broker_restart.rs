//! Mosquitto restarted in the middle of a command stream: the bridge reconnects and publishes
//! every unconfirmed command again; nothing is missing. In a file of its own: restarting the
//! broker would disturb tests running beside it.

mod common;

use common::*;
use testbed::bridge::Bridge;
use testbed::mqtt::Subscriber;
use testbed::{env, kafka, unique};

#[tokio::test(flavor = "multi_thread")]
async fn mosquitto_restart_mid_stream_misses_no_command() {
    let ns = unique("restart");
    let topic = format!("{ns}-cmd");
    kafka::create_topic(&topic, 3).await;
    // A persistent subscriber: the broker keeps its subscription and queue across the restart.
    let subscriber = Subscriber::connect_persistent(
        &unique("restart-sub"),
        &[&format!("{ns}/devices/+/command")],
        1,
    )
    .await;
    let mut bridge = Bridge::start(&ns, &commands_config(&ns, &topic, protocol(), None));
    bridge.wait_ready(SHORT);
    produce_commands(&topic, 30, 0, 3_000).await;
    subscriber.wait_for(1_000, LONG).await;
    env().service("restart", "mosquitto");
    produce_commands(&topic, 30, 100, 3_000).await;

    let got = wait_for_distinct_commands(&subscriber, 6_000, LONG).await;
    let (distinct, duplicates) = distinct_commands(&got);
    eprintln!("Mosquitto restart: {distinct} distinct of 6000, {duplicates} duplicates");
    assert_eq!(distinct, 6_000);
    assert!(
        bridge.process.exit_status().is_none(),
        "the bridge kept running"
    );
    assert_eq!(
        bridge.starts(),
        1,
        "the same process throughout: it never restarted"
    );
    bridge.wait_ready(SHORT);
    let log = bridge.process.log_text();
    assert!(log.contains("MQTT publisher reconnected"), "{log}");
}
