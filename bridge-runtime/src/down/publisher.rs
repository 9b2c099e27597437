//! The publisher connection (`<prefix>-<ordinal>-pub`, clean session) shared by every
//! Kafka → MQTT route. Each publish is confirmed when the broker acknowledges it (PUBACK for
//! QoS 1, PUBCOMP for QoS 2; QoS 0 once handed to the connection).
//!
//! rumqttc does not say which packet id a publish got; it reports each id as the publish
//! leaves, in queue order. Publishes are queued under a lock together with their place in
//! that order, so ids match records. After a connection loss the bridge drops rumqttc's own
//! replay queue and queues every unconfirmed publish again itself, in the original order: the
//! broker gets each at least once, and per-partition order holds.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};

use crate::health::Readiness;
use crate::mqtt::{self, Event};

/// A message to publish.
#[derive(Debug, Clone)]
pub struct Outbound {
    pub topic: String,
    pub payload: Bytes,
    pub qos: u8,
    pub retain: bool,
    pub user_properties: Vec<(String, String)>,
}

struct Pending {
    msg: Outbound,
    confirmed: Option<oneshot::Sender<()>>,
}

#[derive(Default)]
struct State {
    next_id: u64,
    /// Every publish not yet confirmed, in the order it was first queued.
    unconfirmed: BTreeMap<u64, Pending>,
    /// Queued publishes whose packet id is not known yet, in queue order.
    awaiting_id: VecDeque<u64>,
    /// Packet id of each publish on the wire.
    in_flight: HashMap<u16, u64>,
}

impl State {
    fn confirm(&mut self, id: u64) {
        if let Some(p) = self.unconfirmed.remove(&id) {
            if let Some(tx) = p.confirmed {
                let _ = tx.send(());
            }
        }
    }
}

fn queue(client: &mqtt::Client, msg: &Outbound) -> Result<(), String> {
    client.try_publish(
        msg.topic.clone(),
        msg.qos,
        msg.retain,
        msg.payload.clone(),
        msg.user_properties.clone(),
    )
}

#[derive(Clone)]
pub struct Publisher {
    client: mqtt::Client,
    state: Arc<Mutex<State>>,
}

impl Publisher {
    /// Queues a publish; the receiver completes when the broker has confirmed it. A dropped
    /// sender means the publisher stopped first.
    pub fn publish(&self, msg: Outbound) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        let Ok(mut st) = self.state.lock() else {
            return rx;
        };
        let id = st.next_id;
        st.next_id += 1;
        match queue(&self.client, &msg) {
            Ok(()) => st.awaiting_id.push_back(id),
            // Sent again after the next reconnect, like every unconfirmed publish.
            Err(e) => error!(error = %e, topic = %msg.topic, "cannot queue a publish"),
        }
        st.unconfirmed.insert(
            id,
            Pending {
                msg,
                confirmed: Some(tx),
            },
        );
        rx
    }

    /// Queues a DISCONNECT; the poller ends once it is sent.
    pub async fn disconnect(&self) {
        self.client.disconnect().await;
    }

    /// Creates the publisher and its poller task.
    pub fn start(
        client: mqtt::Client,
        mut eventloop: mqtt::EventLoop,
        client_id: String,
        up: Gauge,
        ready: Readiness,
    ) -> (Self, JoinHandle<()>) {
        let publisher = Self {
            client: client.clone(),
            state: Arc::new(Mutex::new(State::default())),
        };
        let state = publisher.state.clone();
        let task = tokio::spawn(async move {
            let mut backoff = Duration::from_millis(100);
            let mut down_since: Option<Instant> = None;
            loop {
                match eventloop.poll().await {
                    Ok(Event::Connected { .. }) => {
                        backoff = Duration::from_millis(100);
                        up.set(1);
                        ready.set(true);
                        match down_since.take() {
                            Some(since) => {
                                info!(%client_id, after = ?since.elapsed(), "publisher reconnected to the MQTT broker")
                            }
                            None => info!(%client_id, "publisher connected to the MQTT broker"),
                        }
                    }
                    Ok(Event::PublishSent(pkid)) => {
                        let Ok(mut st) = state.lock() else { continue };
                        let Some(id) = st.awaiting_id.pop_front() else {
                            continue;
                        };
                        match st.unconfirmed.get(&id).map(|p| p.msg.qos) {
                            Some(0) => st.confirm(id),
                            Some(_) => {
                                st.in_flight.insert(pkid, id);
                            }
                            None => {}
                        }
                    }
                    Ok(Event::PublishConfirmed(pkid)) => {
                        let Ok(mut st) = state.lock() else { continue };
                        if let Some(id) = st.in_flight.remove(&pkid) {
                            st.confirm(id);
                        }
                    }
                    Ok(Event::DisconnectSent) => return,
                    Ok(_) => {}
                    Err(e) => {
                        up.set(0);
                        ready.set(false);
                        if down_since.is_none() {
                            warn!(%client_id, error = %e, "publisher lost the MQTT connection; reconnecting with backoff");
                            down_since = Some(Instant::now());
                        } else {
                            debug!(%client_id, error = %e, "publisher reconnect failed");
                        }
                        requeue_unconfirmed(&client, &mut eventloop, &state);
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(10));
                    }
                }
            }
        });
        (publisher, task)
    }
}

/// Drops rumqttc's replay queue and the request channel's contents, then queues every
/// unconfirmed publish again in its original order (they leave once reconnected).
fn requeue_unconfirmed(
    client: &mqtt::Client,
    eventloop: &mut mqtt::EventLoop,
    state: &Mutex<State>,
) {
    let Ok(mut st) = state.lock() else { return };
    eventloop.discard_pending();
    st.awaiting_id.clear();
    st.in_flight.clear();
    let ids: Vec<u64> = st.unconfirmed.keys().copied().collect();
    for id in ids {
        let queued = st.unconfirmed.get(&id).map(|p| queue(client, &p.msg));
        match queued {
            Some(Ok(())) => st.awaiting_id.push_back(id),
            Some(Err(e)) => error!(error = %e, "cannot queue a publish again"),
            None => {}
        }
    }
}
