//! The two MQTT brokers of the test bed, Mosquitto and HiveMQ CE, for tests that run once per
//! broker ([`on_both_brokers!`]), and a bridge configuration on either.

use rumqttc::v5::mqttbytes::v5::{Packet, PubAckReason};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use testbed::bridge::Bridge;
use testbed::mqtt::{Publisher, Subscriber};
use testbed::{env, kafka, unique};

use super::{Protocol, SHORT};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Broker {
    Mosquitto,
    Hivemq,
}

impl Broker {
    pub fn url(self) -> String {
        match self {
            Broker::Mosquitto => env().mqtt_url.clone(),
            Broker::Hivemq => env().hivemq_url.clone(),
        }
    }

    pub fn port(self) -> u16 {
        match self {
            Broker::Mosquitto => env().mqtt_port,
            Broker::Hivemq => env().hivemq_port,
        }
    }

    /// Its name for `service.sh`.
    pub fn service(self) -> &'static str {
        match self {
            Broker::Mosquitto => "mosquitto",
            Broker::Hivemq => "hivemq",
        }
    }

    pub async fn publisher(self) -> Publisher {
        Publisher::connect_at(self.port(), &unique("pub")).await
    }

    /// The reason code of the PUBACK this broker answers a QoS 1 PUBLISH to `topic` with
    /// (MQTT 5, a client of its own).
    pub async fn puback_reason(self, topic: &str) -> PubAckReason {
        let options = MqttOptions::new(unique("reason"), "127.0.0.1", self.port());
        let (client, mut eventloop) = AsyncClient::new(options, 10);
        client
            .publish(topic, QoS::AtLeastOnce, false, "probe")
            .await
            .expect("queue the probe");
        let ack = tokio::time::timeout(SHORT, async {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::PubAck(ack))) => return ack.reason,
                    Ok(_) => {}
                    Err(e) => panic!("{self:?}: the probe's connection failed: {e}"),
                }
            }
        })
        .await;
        ack.unwrap_or_else(|_| panic!("{self:?}: no PUBACK within {SHORT:?}"))
    }

    /// A subscriber with a persistent session, so a broker restart keeps its subscription.
    pub async fn subscriber(self, filter: &str) -> Subscriber {
        self.subscriber_at(filter, 1).await
    }

    /// As [`Broker::subscriber`], subscribed at `qos`.
    pub async fn subscriber_at(self, filter: &str, qos: u8) -> Subscriber {
        Subscriber::connect_persistent_at(self.port(), &unique("sub"), &[filter], qos).await
    }
}

/// A bridge on `broker` over `protocol`: `<ns>/devices/+/state` → `<ns>-state` (keyed by
/// device, a shared subscription when `shared`) and `<ns>-cmd` → `<ns>/devices/${.key}/command`
/// at QoS 1.
pub fn config(
    broker: Broker,
    protocol: Protocol,
    ns: &str,
    shared: bool,
    dead_letter_topic: Option<&str>,
) -> String {
    config_at(broker, protocol, ns, shared, dead_letter_topic, 1)
}

/// As [`config`], both routes at `qos` (the subscription and the publishes).
pub fn config_at(
    broker: Broker,
    protocol: Protocol,
    ns: &str,
    shared: bool,
    dead_letter_topic: Option<&str>,
    qos: u8,
) -> String {
    let dlq = dead_letter_topic
        .map(|t| format!("\n  deadLetterTopic: {t}"))
        .unwrap_or_default();
    format!(
        "bridgeName: {ns}
mqtt:
  url: {url}
  protocolVersion: \"{protocol}\"
kafka:
  bootstrapServers: {kafka}{dlq}
delivery:
  shutdownGracePeriodSeconds: 10
mqttToKafka:
  - name: state
    mqtt: {{topicFilters: [\"{ns}/devices/+/state\"], shared: {shared}, qos: {qos}}}
    kafka: {{topic: {ns}-state, key: \"${{topic[2]}}\", headers: {{mqtt.retain: \"${{retain}}\"}}}}
kafkaToMqtt:
  - name: commands
    kafka: {{topics: [{ns}-cmd], autoOffsetReset: earliest}}
    mqtt: {{topic: \"{ns}/devices/${{.key}}/command\", qos: {qos}}}
",
        url = broker.url(),
        protocol = protocol.version(),
        kafka = env().kafka_bootstrap,
    )
}

/// The two topics of [`config`], three partitions each.
pub async fn topics(ns: &str) -> (String, String) {
    let (state, cmd) = (format!("{ns}-state"), format!("{ns}-cmd"));
    kafka::create_topic(&state, 3).await;
    kafka::create_topic(&cmd, 3).await;
    (state, cmd)
}

pub fn start(broker: Broker, protocol: Protocol, ns: &str, shared: bool) -> Bridge {
    start_at(broker, protocol, ns, shared, 1)
}

/// As [`start`], both routes at `qos`.
pub fn start_at(broker: Broker, protocol: Protocol, ns: &str, shared: bool, qos: u8) -> Bridge {
    let mut bridge = Bridge::start(ns, &config_at(broker, protocol, ns, shared, None, qos));
    bridge.wait_ready(SHORT);
    bridge
}

/// Each scenario as a test per broker and MQTT protocol version: `mosquitto::mqtt_5::<name>`,
/// `mosquitto::mqtt_3_1_1::<name>`, `hivemq::mqtt_5::<name>` and `hivemq::mqtt_3_1_1::<name>`.
/// A scenario is `async fn <name>(Broker, Protocol)`.
#[macro_export]
macro_rules! on_both_brokers {
    ($($name:ident),* $(,)?) => {
        mod mosquitto {
            $crate::on_both_brokers!(@versions Mosquitto; $($name),*);
        }
        mod hivemq {
            $crate::on_both_brokers!(@versions Hivemq; $($name),*);
        }
    };
    (@versions $broker:ident; $($name:ident),*) => {
        mod mqtt_5 {
            $crate::on_both_brokers!(@tests $broker, Mqtt5; $($name),*);
        }
        mod mqtt_3_1_1 {
            $crate::on_both_brokers!(@tests $broker, Mqtt311; $($name),*);
        }
    };
    (@tests $broker:ident, $protocol:ident; $($name:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread")]
            async fn $name() {
                $crate::$name(
                    $crate::common::brokers::Broker::$broker,
                    $crate::common::Protocol::$protocol,
                )
                .await;
            }
        )*
    };
}
