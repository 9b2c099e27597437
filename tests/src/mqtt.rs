//! MQTT clients for tests (MQTT 5, against the test bed's Mosquitto): a publisher that knows
//! when the broker has acknowledged, and a subscriber that records what arrives.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::v5::mqttbytes::v5::{Packet, PublishProperties};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::{env, wait_until_async};

/// A QoS level from its number.
pub fn qos(level: u8) -> QoS {
    match level {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

fn options(client_id: &str) -> MqttOptions {
    let env = env();
    options_at(client_id, &env.mqtt_host, env.mqtt_port)
}

fn options_at(client_id: &str, host: &str, port: u16) -> MqttOptions {
    let mut options = MqttOptions::new(client_id, host, port);
    options.set_keep_alive(Duration::from_secs(30));
    options.set_max_packet_size(Some(16 * 1024 * 1024));
    options
}

/// Publishes and counts the broker's acknowledgements (PUBACK for QoS 1, PUBCOMP for QoS 2).
pub struct Publisher {
    client: AsyncClient,
    acked: watch::Receiver<u64>,
    task: JoinHandle<()>,
}

impl Publisher {
    pub async fn connect(client_id: &str) -> Self {
        Self::start(options(client_id)).await
    }

    /// Like [`Publisher::connect`], to the broker on 127.0.0.1:`port` (a private broker).
    pub async fn connect_at(port: u16, client_id: &str) -> Self {
        Self::start(options_at(client_id, "127.0.0.1", port)).await
    }

    async fn start(mut opts: MqttOptions) -> Self {
        opts.set_outgoing_inflight_upper_limit(500);
        let (client, mut eventloop) = AsyncClient::new(opts, 1000);
        let (tx, acked) = watch::channel(0u64);
        let (connected_tx, mut connected) = watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let _ = connected_tx.send(true);
                    }
                    Ok(Event::Incoming(Packet::PubAck(_) | Packet::PubComp(_))) => {
                        tx.send_modify(|n| *n += 1);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        eprintln!("test publisher: {e}; reconnecting");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), connected.wait_for(|c| *c))
            .await
            .expect("test publisher connects to Mosquitto within 10s")
            .expect("publisher task alive");
        Self {
            client,
            acked,
            task,
        }
    }

    pub async fn publish(&self, topic: &str, qos_level: u8, payload: impl Into<Vec<u8>>) {
        self.publish_with_properties(topic, qos_level, payload, Vec::new())
            .await;
    }

    pub async fn publish_with_properties(
        &self,
        topic: &str,
        qos_level: u8,
        payload: impl Into<Vec<u8>>,
        user_properties: Vec<(String, String)>,
    ) {
        let props = PublishProperties {
            user_properties,
            ..Default::default()
        };
        self.client
            .publish_with_properties(topic, qos(qos_level), false, payload.into(), props)
            .await
            .expect("queue a publish");
    }

    /// Publishes with the retain flag: the broker keeps it for later subscribers (an empty
    /// payload removes what it kept).
    pub async fn publish_retained(&self, topic: &str, qos_level: u8, payload: impl Into<Vec<u8>>) {
        self.client
            .publish(topic, qos(qos_level), true, payload.into())
            .await
            .expect("queue a retained publish");
    }

    /// Waits until the broker has acknowledged `count` QoS 1/2 publishes in total.
    pub async fn wait_acked(&self, count: u64, timeout: Duration) {
        let mut acked = self.acked.clone();
        tokio::time::timeout(timeout, acked.wait_for(|n| *n >= count))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "the broker acknowledged {} of {count} publishes within {timeout:?}",
                    *self.acked.borrow()
                )
            })
            .expect("publisher task alive");
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A message a [`Subscriber`] received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub topic: String,
    pub payload: Vec<u8>,
    pub qos: u8,
    pub retain: bool,
    pub user_properties: Vec<(String, String)>,
}

/// Subscribes (clean session) and records every message, in arrival order.
pub struct Subscriber {
    messages: Arc<Mutex<Vec<Received>>>,
    task: JoinHandle<()>,
}

impl Subscriber {
    /// Connects (clean session) and subscribes to `filters`; returns once the broker has
    /// granted them.
    pub async fn connect(client_id: &str, filters: &[&str], qos_level: u8) -> Self {
        Self::start(options(client_id), filters, qos_level).await
    }

    /// Like [`Subscriber::connect`], to the broker on 127.0.0.1:`port` (a private broker).
    pub async fn connect_at(port: u16, client_id: &str, filters: &[&str], qos_level: u8) -> Self {
        Self::start(options_at(client_id, "127.0.0.1", port), filters, qos_level).await
    }

    /// Like [`Subscriber::connect`] with a persistent session (one hour), so a broker restart
    /// keeps the subscription and queues what arrives until the subscriber is back.
    pub async fn connect_persistent(client_id: &str, filters: &[&str], qos_level: u8) -> Self {
        Self::connect_persistent_at(env().mqtt_port, client_id, filters, qos_level).await
    }

    /// Like [`Subscriber::connect_persistent`], to the broker on 127.0.0.1:`port`.
    pub async fn connect_persistent_at(
        port: u16,
        client_id: &str,
        filters: &[&str],
        qos_level: u8,
    ) -> Self {
        let mut opts = options_at(client_id, "127.0.0.1", port);
        opts.set_clean_start(false)
            .set_session_expiry_interval(Some(3600));
        Self::start(opts, filters, qos_level).await
    }

    async fn start(opts: MqttOptions, filters: &[&str], qos_level: u8) -> Self {
        let (client, mut eventloop) = AsyncClient::new(opts, 100);
        let messages = Arc::new(Mutex::new(Vec::new()));
        let sink = messages.clone();
        let (subscribed_tx, mut subscribed) = watch::channel(false);
        let filters: Vec<String> = filters.iter().map(|f| f.to_string()).collect();
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        for f in &filters {
                            let _ = client.subscribe(f.clone(), qos(qos_level)).await;
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        let _ = subscribed_tx.send(true);
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let user_properties = p
                            .properties
                            .map(|pr| pr.user_properties)
                            .unwrap_or_default();
                        let received = Received {
                            topic: String::from_utf8_lossy(&p.topic).into_owned(),
                            payload: p.payload.to_vec(),
                            qos: p.qos as u8,
                            retain: p.retain,
                            user_properties,
                        };
                        if let Ok(mut m) = sink.lock() {
                            m.push(received);
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        eprintln!("test subscriber: {e}; reconnecting");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), subscribed.wait_for(|s| *s))
            .await
            .expect("test subscriber subscribes within 10s")
            .expect("subscriber task alive");
        Self { messages, task }
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.messages.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// Waits until at least `count` messages have arrived; returns all of them.
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Vec<Received> {
        let what = format!("{count} MQTT messages");
        wait_until_async(&what, timeout, || async {
            let got = self.received();
            (got.len() >= count).then_some(got)
        })
        .await
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.task.abort();
    }
}
