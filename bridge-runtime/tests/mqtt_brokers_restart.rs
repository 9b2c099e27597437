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
async fn broker_restart(broker: Broker, protocol: Protocol) {
    broker_restart_at(broker, protocol, 1).await;
}

/// The same at QoS 2 end to end (devices, both routes, the command subscriber). Nothing is
/// lost; duplicates are counted (at least once into Kafka, and towards MQTT a publish whose
/// PUBCOMP the restart swallowed is sent again).
async fn broker_restart_qos_2(broker: Broker, protocol: Protocol) {
    broker_restart_at(broker, protocol, 2).await;
}

/// One restart scenario per broker at a time: a restart in the middle of another scenario on
/// the same broker would hit its test clients, and two `service.sh restart` of one broker at
/// once fight over its port.
static MOSQUITTO: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
static HIVEMQ: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn broker_restart_at(broker: Broker, protocol: Protocol, qos: u8) {
    let _only_scenario_on_this_broker = match broker {
        Broker::Mosquitto => MOSQUITTO.lock().await,
        Broker::Hivemq => HIVEMQ.lock().await,
    };
    let ns = unique("brokers-restart");
    let (state, cmd) = topics(&ns).await;
    let _bridge = start_at(broker, protocol, &ns, false, qos);
    let subscriber = broker
        .subscriber_at(&format!("{ns}/devices/+/command"), qos)
        .await;
    let publisher = broker.publisher().await;
    publish_lock_states_at(&publisher, &ns, 10, 0, 200, qos).await;
    publisher.wait_acked(200, SHORT).await;
    produce_commands(&cmd, 10, 0, 200).await;
    wait_for_distinct_commands(&subscriber, 200, LONG).await;

    env().service("restart", broker.service());
    produce_commands(&cmd, 10, 1000, 200).await;
    // A new publisher, connected once the broker is back: rumqttc can lose publishes queued
    // over a reconnection (docs/broker-settings.md), which is the test client's loss, not the
    // bridge's.
    let publisher = broker.publisher().await;
    publish_lock_states_at(&publisher, &ns, 10, 200, 200, qos).await;
    publisher.wait_acked(200, LONG).await;

    let records = wait_for_distinct(&state, 400, LONG).await;
    let (distinct, duplicates) = distinct_and_duplicates(&records);
    assert_eq!(
        distinct, 400,
        "{broker:?} {protocol:?} QoS {qos}: nothing lost"
    );
    let commands = wait_for_distinct_commands(&subscriber, 400, LONG).await;
    let (delivered, repeated) = distinct_commands(&commands);
    assert_eq!(
        delivered, 400,
        "{broker:?} {protocol:?} QoS {qos}: nothing lost"
    );
    eprintln!("broker restart at QoS {qos} on {broker:?} {protocol:?}: {duplicates} duplicate records in Kafka, {repeated} duplicate commands at the subscriber");
}

on_both_brokers!(broker_restart, broker_restart_qos_2);
