//! Mosquitto restarted under a bridge whose route uses a shared subscription (the default):
//! Mosquitto 2.0 resumes the session without it, so the bridge must subscribe again, or it
//! receives nothing more. In a file of its own: restarting the broker would disturb tests
//! running beside it.

mod common;

use common::*;
use testbed::bridge::Bridge;
use testbed::mqtt::Publisher;
use testbed::{env, kafka, unique, wait_until};

#[tokio::test(flavor = "multi_thread")]
async fn after_a_mosquitto_restart_the_shared_subscription_delivers_again() {
    let ns = unique("mqtt-restart");
    let topic = format!("{ns}-state");
    kafka::create_topic(&topic, 3).await;
    let mut bridge = Bridge::start(&ns, &device_state_config(&ns, &topic, protocol()));
    bridge.wait_ready(SHORT);
    let publisher = Publisher::connect(&unique("mqtt-restart-pub")).await;
    publish_lock_states(&publisher, &ns, 5, 100).await;
    wait_for_distinct(&topic, 100, LONG).await;

    env().service("restart", "mosquitto");
    // The broker resumed the session (persistence), and the bridge subscribed once more.
    let subscriptions = || {
        bridge
            .process
            .log_text()
            .matches(" subscribed client_id=")
            .count()
    };
    wait_until("the bridge to subscribe again", SHORT, || {
        (subscriptions() >= 2).then_some(())
    });
    let log = bridge.process.log_text();
    assert!(log.contains("MQTT subscriber reconnected"), "{log}");

    let publisher = Publisher::connect(&unique("mqtt-restart-pub2")).await;
    for i in 100..200 {
        let (device, seq) = (format!("lock-{}", i % 5), i / 5);
        publisher
            .publish(
                &format!("{ns}/devices/{device}/state"),
                1,
                lock_state(&device, seq),
            )
            .await;
    }
    publisher.wait_acked(100, SHORT).await;
    let records = wait_for_distinct(&topic, 200, LONG).await;
    let (distinct, duplicates) = distinct_and_duplicates(&records);
    eprintln!("Mosquitto restart, shared subscription: {distinct} distinct of 200, {duplicates} duplicates");
    assert_eq!(
        distinct, 200,
        "every message published after the restart arrives"
    );
    assert_eq!(bridge.starts(), 1, "the same process throughout");
}
