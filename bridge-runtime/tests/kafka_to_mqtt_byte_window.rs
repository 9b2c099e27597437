//! Kafka → MQTT with the MQTT broker down: publishes go unconfirmed, the route's window fills
//! by bytes (`delivery.maxInFlightMiB`) long before its message count, the route pauses its
//! partitions and takes nothing more; when the broker is back every record is published and
//! committed.

mod common;

use std::time::Duration;

use common::*;
use testbed::bridge::Bridge;
use testbed::kafka::{self, Outgoing};
use testbed::mosquitto::Broker;
use testbed::mqtt::Subscriber;
use testbed::unique;

#[tokio::test(flavor = "multi_thread")]
async fn a_full_byte_window_pauses_the_route_until_the_broker_confirms() {
    let ns = unique("down-bytes");
    let topic = format!("{ns}-blobs");
    kafka::create_topic(&topic, 1).await;
    let broker = Broker::start(&ns, "", None);
    let port = broker.port;
    let env = testbed::env();
    let config = format!(
        "bridgeName: {ns}\nmqtt:\n  url: {}\nkafka:\n  bootstrapServers: {}\ndelivery:\n  maxInFlightMiB: 1\n  shutdownGracePeriodSeconds: 10\nkafkaToMqtt:\n  - name: blobs\n    kafka: {{topics: [{topic}], autoOffsetReset: earliest}}\n    mqtt: {{topic: \"{ns}/blobs/${{.key}}\", qos: 1}}\n",
        broker.url(),
        env.kafka_bootstrap
    );
    let mut bridge = Bridge::start(&ns, &config);
    bridge.wait_ready(SHORT);
    drop(broker);

    let blobs: Vec<(String, Vec<u8>)> = (0..20)
        .map(|i| (format!("b{i:02}"), vec![b'.'; 256 * 1024]))
        .collect();
    kafka::produce(
        &topic,
        blobs.iter().map(|(k, v)| Outgoing {
            key: Some(k.as_bytes()),
            value: v,
            headers: vec![],
        }),
    )
    .await;
    // 1 MiB holds four records of 256 KiB: the route takes those and pauses.
    testbed::wait_until("the route to take what fits", SHORT, || {
        (bridge.metrics().route_counter("received", "blobs") >= 4).then_some(())
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    let taken = bridge.metrics().route_counter("received", "blobs");
    eprintln!("byte window: {taken} of 20 records of 256 KiB taken with 1 MiB");
    assert_eq!(
        taken, 4,
        "the byte window, not the count (5,000), stopped the route"
    );

    let broker = Broker::start_on(port, &format!("{ns}-again"), "", None);
    let subscriber = Subscriber::connect_at(
        broker.port,
        &unique("down-bytes-sub"),
        &[&format!("{ns}/blobs/+")],
        1,
    )
    .await;
    let got = subscriber.wait_for(16, LONG).await;
    assert!(got.iter().all(|m| m.payload.len() == 256 * 1024));
    wait_all_committed(&format!("{ns}.blobs"), &topic).await;
    assert_eq!(bridge.wait_counter("delivered", "blobs", 20, SHORT), 20);
}
