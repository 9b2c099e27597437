//! Issue 28, finding 3: while the in-flight window is full (Kafka down), the subscriber must
//! keep its MQTT connection alive. The client the bridge used before sent pings only while it
//! was polled, and a full window stopped the polling: after 1.5 × keep-alive the broker
//! dropped the bridge while `/readyz` still said connected, and on reconnect the queued QoS 0
//! messages and the acknowledgements in flight were lost (duplicates). In a file of its own:
//! stopping Kafka would disturb tests running beside it.

mod common;

use std::time::{Duration, Instant};

use common::*;
use testbed::bridge::Bridge;
use testbed::kafka;
use testbed::mosquitto::Broker;
use testbed::mqtt::Publisher;
use testbed::{env, unique};

/// QoS 0 at 2,000 msg/s and QoS 1 at 100 msg/s while Kafka is stopped for 90 s, keep-alive
/// 5 s: Mosquitto never times the bridge out, the bridge never reconnects, and every QoS 1
/// message the broker queued reaches Kafka once it is back.
#[tokio::test(flavor = "multi_thread")]
async fn kafka_down_90s_under_qos_0_keeps_the_mqtt_connection_alive() {
    let ns = unique("keepalive");
    let (q0, q1) = (format!("{ns}-q0"), format!("{ns}-q1"));
    kafka::create_topic(&q0, 3).await;
    kafka::create_topic(&q1, 3).await;
    // No limit on what the broker queues for the bridge, so that nothing the test publishes
    // at QoS 1 is dropped by the broker's own policy.
    let broker = Broker::start(&ns, "max_queued_messages 0", None);
    let config = format!(
        "bridgeName: {ns}\nmqtt:\n  url: {url}\n  protocolVersion: \"{protocol}\"\n  keepAliveSeconds: 5\nkafka:\n  bootstrapServers: {kafka}\ndelivery:\n  shutdownGracePeriodSeconds: 10\nmqttToKafka:\n  - name: q0\n    mqtt: {{topicFilters: [\"{ns}/q0/+\"], qos: 0}}\n    kafka: {{topic: {q0}}}\n  - name: q1\n    mqtt: {{topicFilters: [\"{ns}/devices/+/state\"], qos: 1}}\n    kafka: {{topic: {q1}, key: \"${{topic[2]}}\"}}\n",
        url = broker.url(),
        protocol = protocol(),
        kafka = env().kafka_bootstrap
    );
    let mut bridge = Bridge::start(&ns, &config);
    bridge.wait_ready(SHORT);
    let publisher = Publisher::connect_at(broker.port, &unique("keepalive-pub")).await;

    env().service("stop", "kafka");
    let stopped = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut qos1 = 0u32;
    while stopped.elapsed() < Duration::from_secs(90) {
        tick.tick().await;
        for i in 0..200 {
            publisher
                .publish(&format!("{ns}/q0/dev-{}", i % 20), 0, "x".repeat(100))
                .await;
        }
        for _ in 0..10 {
            let device = format!("lock-{}", qos1 % 10);
            publisher
                .publish(
                    &format!("{ns}/devices/{device}/state"),
                    1,
                    lock_state(&device, qos1 / 10),
                )
                .await;
            qos1 += 1;
        }
    }
    publisher.wait_acked(u64::from(qos1), LONG).await;
    env().service("start", "kafka");

    let records = wait_for_distinct(&q1, qos1 as usize, LONG).await;
    assert_eq!(
        distinct_and_duplicates(&records).0,
        qos1 as usize,
        "every QoS 1 message queued by the broker arrives"
    );
    let client_id = format!("{ns}-0");
    let broker_log = std::fs::read_to_string(
        testbed::process::test_log_dir().join(format!("{ns}-mosquitto.log")),
    )
    .expect("the broker's log");
    assert!(
        !broker_log
            .lines()
            .any(|l| l.contains(&client_id) && l.contains("exceeded timeout")),
        "Mosquitto timed the bridge out:\n{broker_log}"
    );
    let log = bridge.process.log_text();
    assert!(
        !log.contains("MQTT subscriber lost the connection"),
        "the subscriber's connection was lost:\n{log}"
    );
    assert_eq!(bridge.starts(), 1, "the same process throughout");
    bridge.wait_ready(SHORT);
}
