//! The runtime's delivery against both MQTT brokers of the test bed, Mosquitto and HiveMQ CE:
//! both directions, kill -9 of the runtime, a broker restart, a shared subscription over two
//! replicas, a broker's "no matching subscribers" reason code, retained messages and a session
//! kept while the bridge is away (the broker restart is in mqtt_brokers_restart.rs, a binary of
//! its own). Each test runs once per broker and protocol version (`mosquitto::mqtt_5::…`,
//! `hivemq::mqtt_3_1_1::…`); where the brokers differ is in docs/broker-settings.md.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::brokers::*;
use common::*;
use rumqttc::v5::mqttbytes::v5::PubAckReason;
use testbed::bridge::Bridge;
use testbed::{env, kafka, unique};

async fn both_directions(broker: Broker, protocol: Protocol) {
    let ns = unique("brokers-both");
    let (state, cmd) = topics(&ns).await;
    let _bridge = start(broker, protocol, &ns, true);
    let subscriber = broker.subscriber(&format!("{ns}/devices/+/command")).await;
    let publisher = broker.publisher().await;
    publish_lock_states(&publisher, &ns, 10, 300).await;
    publisher.wait_acked(300, SHORT).await;
    produce_commands(&cmd, 10, 0, 300).await;

    let records = wait_for_distinct(&state, 300, LONG).await;
    assert_eq!(
        distinct_and_duplicates(&records),
        (300, 0),
        "{broker:?} {protocol:?}"
    );
    for r in &records {
        assert_eq!(r.key_str(), device_seq(r).0, "keyed by the device id");
    }
    let commands = wait_for_distinct_commands(&subscriber, 300, LONG).await;
    assert_eq!(
        distinct_commands(&commands),
        (300, 0),
        "{broker:?} {protocol:?}"
    );
}

/// kill -9 while both directions are under way: states published and commands produced in
/// batches in the background, the kill once the bridge has taken 100 of each and before it
/// has finished either; after the restart, everything arrives.
async fn kill9_mid_stream(broker: Broker, protocol: Protocol) {
    kill9_mid_stream_at(broker, protocol, 1).await;
}

/// The same at QoS 2 end to end: devices publish at QoS 2 to a QoS 2 subscription, commands
/// go out at QoS 2 to a QoS 2 subscriber. Nothing is lost. Duplicates are counted, not
/// forbidden: the write into Kafka is at least once (a message whose PUBREC died with the
/// process comes again), and so is a command whose PUBCOMP the killed process never saw.
async fn kill9_mid_stream_qos_2(broker: Broker, protocol: Protocol) {
    kill9_mid_stream_at(broker, protocol, 2).await;
}

async fn kill9_mid_stream_at(broker: Broker, protocol: Protocol, qos: u8) {
    let ns = unique("brokers-kill");
    let (state, cmd) = topics(&ns).await;
    let mut bridge = start_at(broker, protocol, &ns, true, qos);
    let subscriber = broker
        .subscriber_at(&format!("{ns}/devices/+/command"), qos)
        .await;
    let publisher = Arc::new(broker.publisher().await);
    let (p, n) = (publisher.clone(), ns.clone());
    let publishing = tokio::spawn(async move {
        for batch in 0..20 {
            publish_lock_states_at(&p, &n, 10, batch * 100, 100, qos).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let topic = cmd.clone();
    let producing = tokio::spawn(async move {
        for batch in 0..20 {
            produce_commands(&topic, 10, batch * 10, 100).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let taken = testbed::wait_until_async("both routes under way", LONG, || async {
        let m = bridge.metrics();
        let taken = (
            m.route_counter("received", "state"),
            m.route_counter("received", "commands"),
        );
        (taken.0 >= 100 && taken.1 >= 100).then_some(taken)
    })
    .await;
    bridge.kill9();
    assert!(
        taken.0 < 2000 && taken.1 < 2000,
        "{broker:?} {protocol:?}: killed mid-stream: {taken:?}"
    );
    bridge.restart(&ns);
    bridge.wait_ready(SHORT);
    publishing.await.expect("publisher task");
    producing.await.expect("producer task");
    publisher.wait_acked(2000, LONG).await;

    let records = wait_for_distinct(&state, 2000, LONG).await;
    let (distinct, duplicates) = distinct_and_duplicates(&records);
    assert_eq!(
        distinct, 2000,
        "{broker:?} {protocol:?} QoS {qos}: nothing lost"
    );
    let commands = wait_for_distinct_commands(&subscriber, 2000, LONG).await;
    let (delivered, repeated) = distinct_commands(&commands);
    assert_eq!(
        delivered, 2000,
        "{broker:?} {protocol:?} QoS {qos}: nothing lost"
    );
    eprintln!("kill -9 at QoS {qos} on {broker:?} {protocol:?}: {duplicates} duplicate records in Kafka, {repeated} duplicate commands at the subscriber");
}

/// Two replicas on one shared subscription: each message reaches Kafka once, and both
/// replicas take a share.
async fn shared_subscription_two_replicas(broker: Broker, protocol: Protocol) {
    let ns = unique("brokers-shared");
    let (state, _) = topics(&ns).await;
    let base = config(broker, protocol, &ns, true, None);
    let mut replicas: Vec<Bridge> = (0..2)
        .map(|ordinal| {
            Bridge::start(
                &format!("{ns}-{ordinal}"),
                &format!("{base}ordinal: {ordinal}\n"),
            )
        })
        .collect();
    for r in &mut replicas {
        r.wait_ready(SHORT);
    }
    let publisher = broker.publisher().await;
    // In ten bursts: HiveMQ hands a shared subscription's messages to whichever member has
    // room, so one burst may go to one replica.
    for burst in 0..10 {
        publish_lock_states_from(&publisher, &ns, 10, burst * 100, 100).await;
        publisher.wait_acked(u64::from(burst + 1) * 100, LONG).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // Should the records not all come, what each replica took and still holds tells a broker
    // that stopped sending from a bridge that stopped acknowledging.
    testbed::wait_until_seen_async("1000 records in Kafka", LONG, || async {
        match kafka::record_count(&state) {
            Some(n) if n >= 1000 => Ok(()),
            n => Err(format!(
                "{n:?} records; replicas: {}",
                replicas
                    .iter()
                    .map(replica_summary)
                    .collect::<Vec<_>>()
                    .join("; ")
            )),
        }
    })
    .await;
    let records = wait_for_distinct(&state, 1000, SHORT).await;
    assert_eq!(
        distinct_and_duplicates(&records),
        (1000, 0),
        "{broker:?} {protocol:?}"
    );
    let shares: Vec<u64> = replicas
        .iter()
        .map(|r| r.metrics().route_counter("received", "state"))
        .collect();
    assert!(
        shares.iter().all(|&n| n > 0),
        "{broker:?} {protocol:?}: both replicas take a share: {shares:?}"
    );
    assert_eq!(
        shares.iter().sum::<u64>(),
        1000,
        "{broker:?} {protocol:?}: {shares:?}"
    );
}

/// What a replica took from the broker and what it still holds, for a failure message.
fn replica_summary(bridge: &Bridge) -> String {
    let m = bridge.metrics();
    format!(
        "received {}, delivered {}, in flight {}, acknowledgements dropped {}, connections up {}",
        m.route_counter("received", "state"),
        m.route_counter("delivered", "state"),
        m.sum("mkb_in_flight_messages"),
        m.sum("mkb_mqtt_acks_dropped_total"),
        m.sum("mkb_connection_up"),
    )
}

/// Commands for a topic nobody subscribes to: both brokers answer such a PUBLISH with reason
/// code 0x10, "No matching subscribers" (checked first with a client of the test's own). It
/// is a success: the records are committed and nothing goes to the dead-letter topic.
async fn no_matching_subscribers_is_a_success(broker: Broker, protocol: Protocol) {
    let ns = unique("brokers-nosub");
    assert_eq!(
        broker.puback_reason(&format!("{ns}/nobody/listens")).await,
        PubAckReason::NoMatchingSubscribers,
        "{broker:?} {protocol:?}"
    );
    let (_, cmd) = topics(&ns).await;
    let dlq = format!("{ns}-dlq");
    kafka::create_topic(&dlq, 1).await;
    let mut bridge = Bridge::start(&ns, &config(broker, protocol, &ns, true, Some(&dlq)));
    bridge.wait_ready(SHORT);
    produce_commands(&cmd, 10, 0, 50).await;
    wait_all_committed(&format!("{ns}.commands"), &cmd).await;
    assert_eq!(
        kafka::record_count(&dlq),
        Some(0),
        "{broker:?} {protocol:?}: no dead letters"
    );
    assert_eq!(
        bridge.metrics().route_counter("delivered", "commands"),
        50,
        "{broker:?} {protocol:?}"
    );
}

/// A retained state reaches Kafka when the route first subscribes (header `mqtt.retain`
/// true); after a restart of the bridge, MQTT 5's Retain Handling 1 keeps the broker from
/// sending it again. MQTT 3.1.1 has no such option: the broker sends it again on the new
/// SUBSCRIBE (docs/runtime.md says so).
async fn retained_once(broker: Broker, protocol: Protocol) {
    let ns = unique("brokers-retained");
    let (state, _) = topics(&ns).await;
    let device = format!("{ns}/devices/lock-1/state");
    let publisher = broker.publisher().await;
    publisher.publish_retained(&device, 1, "locked").await;
    publisher.wait_acked(1, SHORT).await;

    let mut bridge = start(broker, protocol, &ns, false);
    let first = kafka::wait_for_records(&state, 1, LONG).await;
    assert_eq!(
        (first[0].value_str(), first[0].header_str("mqtt.retain")),
        ("locked", "true")
    );
    assert!(bridge.terminate(SHORT).success(), "SIGTERM: exit 0");
    bridge.restart(&ns);
    bridge.wait_ready(SHORT);
    publisher.publish(&device, 1, "unlocked").await;
    publisher.wait_acked(2, SHORT).await;
    testbed::wait_until_async("the live message after the restart", LONG, || async {
        let records = kafka::read_all(&state).await;
        records
            .iter()
            .any(|r| r.value_str() == "unlocked")
            .then_some(())
    })
    .await;
    publisher.publish_retained(&device, 1, "").await;
    publisher.wait_acked(3, SHORT).await;
    // The empty retained message that cleared the state is the last record.
    let expected: &[&str] = match protocol {
        Protocol::Mqtt5 => &["locked", "unlocked", ""],
        Protocol::Mqtt311 => &["locked", "locked", "unlocked", ""],
    };
    let values: Vec<String> = kafka::wait_for_records(&state, expected.len() as i64, LONG)
        .await
        .iter()
        .map(|r| r.value_str().to_owned())
        .collect();
    assert_eq!(values, expected, "{broker:?} {protocol:?}");
}

/// What is published while the bridge is stopped waits in its session on the broker
/// (`sessionExpirySeconds`, 3600 by default) and reaches Kafka when it is back.
async fn session_kept_while_stopped(broker: Broker, protocol: Protocol) {
    let ns = unique("brokers-session");
    let (state, _) = topics(&ns).await;
    let mut bridge = start(broker, protocol, &ns, false);
    let publisher = broker.publisher().await;
    publish_lock_states(&publisher, &ns, 10, 100).await;
    publisher.wait_acked(100, SHORT).await;
    wait_for_distinct(&state, 100, LONG).await;
    assert!(bridge.terminate(SHORT).success(), "SIGTERM: exit 0");

    for i in 100..300 {
        let device = format!("lock-{}", i % 10);
        publisher
            .publish(
                &format!("{ns}/devices/{device}/state"),
                1,
                lock_state(&device, i / 10),
            )
            .await;
    }
    publisher.wait_acked(300, SHORT).await;
    bridge.restart(&ns);
    bridge.wait_ready(SHORT);
    let records = wait_for_distinct(&state, 300, LONG).await;
    assert_eq!(
        distinct_and_duplicates(&records),
        (300, 0),
        "{broker:?} {protocol:?}"
    );
}

/// A PUBLISH HiveMQ refuses (the test bed's extension answers 0x87, not authorized, for a
/// topic with a level `refused`, as an authorisation extension would) is dead-lettered with the
/// reason code, the other commands arrive, and every offset is committed.
#[tokio::test(flavor = "multi_thread")]
async fn hivemq_refusals_are_dead_lettered() {
    let ns = unique("brokers-refused");
    // One partition: with three, the three keys may leave one empty, and an empty partition
    // has no offset to commit.
    let cmd = format!("{ns}-cmd");
    kafka::create_topic(&format!("{ns}-state"), 1).await;
    kafka::create_topic(&cmd, 1).await;
    let dlq = format!("{ns}-dlq");
    kafka::create_topic(&dlq, 1).await;
    let mut bridge = Bridge::start(
        &ns,
        &config(Broker::Hivemq, Protocol::Mqtt5, &ns, true, Some(&dlq)),
    );
    bridge.wait_ready(SHORT);
    let subscriber = Broker::Hivemq
        .subscriber(&format!("{ns}/devices/+/command"))
        .await;
    let keys = ["lock-0", "refused", "lock-1"];
    let payloads: Vec<(String, Vec<u8>)> = (0..60)
        .map(|i| {
            let device = keys[i % 3];
            (device.to_owned(), command_payload(device, (i / 3) as u32))
        })
        .collect();
    kafka::produce(
        &cmd,
        payloads.iter().map(|(k, v)| kafka::Outgoing {
            key: Some(k.as_bytes()),
            value: v,
            headers: vec![],
        }),
    )
    .await;

    let letters = kafka::wait_for_records(&dlq, 20, LONG).await;
    assert_eq!(
        letters.len(),
        20,
        "every refused command is dead-lettered once"
    );
    for letter in &letters {
        assert_eq!(letter.key_str(), "refused");
        let reason = letter.header_str("mkb.reason");
        assert!(
            reason.contains("reason code 0x87 (not authorized)"),
            "{reason}"
        );
    }
    let got = wait_for_distinct_commands(&subscriber, 40, SHORT).await;
    assert!(
        got.iter().all(|m| !m.topic.contains("/refused/")),
        "HiveMQ delivered nothing it refused"
    );
    wait_all_committed(&format!("{ns}.commands"), &cmd).await;
    let metrics = bridge.metrics();
    assert_eq!(metrics.route_counter("delivered", "commands"), 40);
    assert_eq!(
        metrics.value(
            "mkb_mqtt_publishes_refused_total",
            &[("code", "0x87"), ("action", "give_up")]
        ),
        Some(20.0)
    );
}

/// HiveMQ's TLS listener (the test CA's server certificate): the bridge moves messages both
/// ways over `mqtts://` with the CA it is given, and does not connect with a CA that did not
/// sign the certificate. (Mosquitto's TLS is in mqtt_tls.rs.)
#[tokio::test(flavor = "multi_thread")]
async fn hivemq_over_tls() {
    let ns = unique("brokers-tls");
    let (state, cmd) = topics(&ns).await;
    let tls = |ca: &str| {
        let dir = env().tls_dir.display().to_string();
        config(Broker::Hivemq, Protocol::Mqtt5, &ns, true, None).replacen(
            &format!("  url: {}\n", env().hivemq_url),
            &format!(
                "  url: {}\n  tls:\n    ca: {{file: {dir}/{ca}}}\n",
                env().hivemq_tls_url
            ),
            1,
        )
    };
    assert!(tls("ca.crt").contains("url: mqtts://"), "{}", tls("ca.crt"));
    let mut bridge = Bridge::start(&ns, &tls("ca.crt"));
    bridge.wait_ready(SHORT);
    let subscriber = Broker::Hivemq
        .subscriber(&format!("{ns}/devices/+/command"))
        .await;
    let publisher = Broker::Hivemq.publisher().await;
    publish_lock_states(&publisher, &ns, 10, 100).await;
    publisher.wait_acked(100, SHORT).await;
    produce_commands(&cmd, 10, 0, 100).await;
    let records = wait_for_distinct(&state, 100, LONG).await;
    assert_eq!(
        distinct_and_duplicates(&records),
        (100, 0),
        "MQTT → Kafka over TLS"
    );
    let commands = wait_for_distinct_commands(&subscriber, 100, LONG).await;
    assert_eq!(
        distinct_commands(&commands),
        (100, 0),
        "Kafka → MQTT over TLS"
    );
    assert!(bridge.terminate(SHORT).success(), "SIGTERM: exit 0");

    let untrusted = unique("brokers-tls-untrusted");
    let wrong_ca = tls("other/ca.crt").replace(
        &format!("bridgeName: {ns}"),
        &format!("bridgeName: {untrusted}"),
    );
    let bridge = Bridge::start(&untrusted, &wrong_ca);
    let log = testbed::wait_until("the bridge to log UnknownIssuer", SHORT, || {
        let log = bridge.process.log_text();
        log.contains("UnknownIssuer").then_some(log)
    });
    let line = log
        .lines()
        .find(|l| l.contains("UnknownIssuer"))
        .unwrap_or_default();
    assert!(
        line.contains(&env().hivemq_tls_url),
        "the endpoint is named: {line}"
    );
    let (code, body) = testbed::bridge::http_get(bridge.http, "/readyz").expect("/readyz answers");
    assert_eq!(
        code, 503,
        "not ready with an untrusted server certificate: {body}"
    );
    assert!(
        body.contains("UnknownIssuer"),
        "the cause is the readiness reason: {body}"
    );
}

on_both_brokers!(
    both_directions,
    kill9_mid_stream,
    kill9_mid_stream_qos_2,
    shared_subscription_two_replicas,
    no_matching_subscribers_is_a_success,
    retained_once,
    session_kept_while_stopped,
);
