//! A broker restart under the bridge, once per MQTT broker of the test bed (Mosquitto and
//! HiveMQ CE). In a binary of its own: the restart would disturb the other tests of
//! mqtt_brokers.rs on the same broker.

mod common;

use common::brokers::*;
use common::*;
use testbed::{env, unique};

/// A broker restart between two batches, a plain subscription (Mosquitto drops shared ones
/// over a restart: docs/broker-settings.md): the bridge's persistent session carries both
/// routes over it.
async fn broker_restart(broker: Broker) {
    let ns = unique("brokers-restart");
    let (state, cmd) = topics(&ns).await;
    let _bridge = start(broker, &ns, false);
    let subscriber = broker.subscriber(&format!("{ns}/devices/+/command")).await;
    let publisher = broker.publisher().await;
    publish_lock_states(&publisher, &ns, 10, 200).await;
    publisher.wait_acked(200, SHORT).await;
    produce_commands(&cmd, 10, 0, 200).await;
    wait_for_distinct_commands(&subscriber, 200, LONG).await;

    env().service("restart", broker.service());
    produce_commands(&cmd, 10, 1000, 200).await;
    // A new publisher, connected once the broker is back: rumqttc can lose publishes queued
    // over a reconnection (docs/broker-settings.md), which is the test client's loss, not the
    // bridge's.
    let publisher = broker.publisher().await;
    publish_lock_states_from(&publisher, &ns, 10, 200, 200).await;
    publisher.wait_acked(200, LONG).await;

    let records = wait_for_distinct(&state, 400, LONG).await;
    assert_eq!(
        distinct_and_duplicates(&records).0,
        400,
        "{broker:?}: nothing lost"
    );
    let commands = wait_for_distinct_commands(&subscriber, 400, LONG).await;
    assert_eq!(
        distinct_commands(&commands).0,
        400,
        "{broker:?}: nothing lost"
    );
}

on_both_brokers!(broker_restart);
