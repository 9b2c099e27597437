//! The publisher connection (`<prefix>-<ordinal>-pub`, clean session) shared by every
//! Kafka → MQTT route. Each publish is confirmed when the broker acknowledges it (PUBACK for
//! QoS 1, PUBCOMP for QoS 2; QoS 0 once written to the socket).
//!
//! Routes queue publishes here; the connection task puts as many on the connection as the
//! broker's receive maximum allows and writes them together. The connection reports each
//! answer by the publish's own tag, never by packet id, so a reused packet id cannot confirm
//! another publish. After a connection loss every unconfirmed publish is queued again, in the
//! original order: the broker gets each at least once, and per-partition order holds.
//!
//! A publish the broker refuses never counts as confirmed. An MQTT 5 refusal that may pass
//! later (quota exceeded, unspecified error) is sent again with backoff, a few times; any
//! other refusal ends the publish with the reason, and the route dead-letters the record. A
//! publish larger than the broker's Maximum Packet Size is refused before it is sent. A
//! publish that the broker answers by cutting the connection (what Mosquitto does with an
//! oversized packet on MQTT 3.1.1) would be sent again after every reconnect forever; after
//! [`MAX_STRIKES`] such cuts it is refused too.

mod state;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use mkb_api::compiled::MqttEndpoint;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::health::Readiness;
use crate::metrics::Metrics;
use crate::mqtt::{self, Connection, Event, Outbound, Refusal};
use state::{BrokerLimits, State};

/// Connections cut while a publish was the largest one in flight, before it is refused.
pub const MAX_STRIKES: u32 = 3;
/// How long a publish may wait for the broker's answer on an open connection.
const UNANSWERED_LIMIT: Duration = Duration::from_secs(60);
/// Transient refusals of one publish before it is refused for good.
const MAX_TRANSIENT_REFUSALS: u32 = 5;
/// Bytes put on the connection ahead of the socket: enough for one large write.
const MAX_BACKLOG: usize = 256 * 1024;
/// In-flight slots that must be free (or half the limit, if smaller) before QoS 1 and 2
/// publishes are put on the connection again while others wait for their answer. With the
/// window full, each acknowledgement frees one slot, and refilling it at once would be one
/// write per publish (perf counted 0.65 writes per publish before this rule).
const REFILL_BATCH: usize = 64;

/// How a publish ended: confirmed, or refused for good with the reason.
pub type Delivery = Result<(), String>;

#[derive(Clone)]
pub struct Publisher {
    state: Arc<Mutex<State>>,
    /// Wakes the connection task: something was queued.
    wake: Arc<Notify>,
    /// Asks the connection task to disconnect once what is queued has gone.
    disconnect: CancellationToken,
    metrics: Arc<Metrics>,
}

impl Publisher {
    /// Queues a publish; the receiver completes when the broker has confirmed it, or with the
    /// reason it is refused for good. A dropped sender means the publisher stopped first.
    pub fn publish(&self, msg: Outbound) -> oneshot::Receiver<Delivery> {
        let (tx, rx) = oneshot::channel();
        let Ok(mut st) = self.state.lock() else {
            return rx;
        };
        if let Some(why) = st.unsendable(&msg) {
            self.metrics.publish_refused(why.code, "give_up");
            let _ = tx.send(Err(why.reason));
            return rx;
        }
        st.add(msg, tx);
        drop(st);
        self.wake.notify_one();
        rx
    }

    /// Asks the connection task to disconnect once what is queued has gone; it ends then.
    pub fn disconnect(&self) {
        self.disconnect.cancel();
    }

    /// Creates the publisher and its connection task.
    pub fn start(
        settings: mqtt::Settings,
        endpoint: &MqttEndpoint,
        metrics: Arc<Metrics>,
        ready: Readiness,
    ) -> (Self, JoinHandle<()>) {
        let publisher = Self {
            state: Arc::new(Mutex::new(State::new(settings.v5))),
            wake: Arc::new(Notify::new()),
            disconnect: CancellationToken::new(),
            metrics: metrics.clone(),
        };
        let poller = Poller {
            up: metrics.connection("mqtt", &settings.client_id),
            state: publisher.state.clone(),
            wake: publisher.wake.clone(),
            disconnect: publisher.disconnect.clone(),
            endpoint: endpoint.clone(),
            metrics,
            ready,
        };
        (publisher, tokio::spawn(poller.run(settings)))
    }
}

/// Why a connection ended.
enum Ended {
    /// The DISCONNECT was written.
    Disconnected,
    /// The connection failed.
    Failed(String),
    /// A publish waited over [`UNANSWERED_LIMIT`]: its answer was lost.
    Stalled,
}

/// Runs the publisher's connection and matches the broker's answers to publishes.
struct Poller {
    state: Arc<Mutex<State>>,
    wake: Arc<Notify>,
    disconnect: CancellationToken,
    endpoint: MqttEndpoint,
    metrics: Arc<Metrics>,
    up: Gauge,
    ready: Readiness,
}

impl Poller {
    /// Connects, publishes, and reconnects with capped exponential backoff, until the
    /// DISCONNECT is written (or asked for while there is no connection).
    async fn run(self, settings: mqtt::Settings) {
        let mut backoff = Duration::from_millis(100);
        let mut status = mqtt::ConnectionStatus::new(
            "publisher",
            &settings.client_id,
            &self.endpoint,
            self.ready.clone(),
        );
        loop {
            if self.disconnect.is_cancelled() {
                return;
            }
            let error = match Connection::open(&settings).await {
                Ok((mut conn, connected)) => {
                    backoff = Duration::from_millis(100);
                    self.connected(connected, &mut status);
                    match self.serve(&mut conn).await {
                        Ended::Disconnected => {
                            // Publishes before the DISCONNECT reach the broker even when its
                            // answers are still arriving (see `read_until_closed`).
                            conn.read_until_closed(mqtt::CLOSE_LIMIT).await;
                            return;
                        }
                        Ended::Stalled => {
                            warn!(client_id = %settings.client_id, after = ?UNANSWERED_LIMIT, "the MQTT broker has not answered a publish; renewing the connection and sending the unconfirmed ones again");
                            "a publish went unanswered".to_owned()
                        }
                        Ended::Failed(e) => {
                            self.strike_largest_in_flight(&conn.in_flight_tags(), &e);
                            e
                        }
                    }
                }
                Err(e) => e.to_string(),
            };
            self.up.set(0);
            status.failed(&error);
            // A disconnect asked for meanwhile ends the wait.
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = self.disconnect.cancelled() => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
    }

    fn connected(&self, connected: mqtt::Connected, status: &mut mqtt::ConnectionStatus) {
        if let Ok(mut st) = self.state.lock() {
            st.limits = BrokerLimits {
                max_packet_size: connected.max_packet_size,
                max_qos: connected.max_qos,
                retain_available: connected.retain_available,
            };
            for code in st.requeue_all() {
                self.metrics.publish_refused(code, "give_up");
            }
        }
        self.up.set(1);
        status.connected(false);
        self.ready.set(true);
    }

    /// Publishes what is queued and handles the answers until the connection ends.
    async fn serve(&self, conn: &mut Connection) -> Ended {
        let mut stall_check = tokio::time::interval(Duration::from_secs(1));
        let mut disconnecting = false;
        loop {
            match self.fill(conn) {
                Ok(disconnect) if disconnect && !disconnecting => {
                    disconnecting = true;
                    conn.disconnect();
                }
                Ok(_) => {}
                Err(e) => return Ended::Failed(e),
            }
            tokio::select! {
                event = conn.next(true) => match event {
                    Ok(Event::Confirmed(tag)) => self.finish(tag, Ok(())),
                    Ok(Event::Refused { tag, refusal }) => self.refused(tag, refusal),
                    Ok(Event::DisconnectSent) => return Ended::Disconnected,
                    Ok(_) => {}
                    Err(e) => return Ended::Failed(e.to_string()),
                },
                _ = self.wake.notified() => {}
                _ = self.disconnect.cancelled(), if !disconnecting => {}
                _ = stall_check.tick() => {
                    if conn.oldest_unanswered().is_some_and(|age| age > UNANSWERED_LIMIT) {
                        return Ended::Stalled;
                    }
                }
            }
        }
    }

    /// Puts queued publishes on the connection, in order, while the broker's receive maximum
    /// leaves room. Returns whether to disconnect now (asked for, and nothing left queued).
    fn fill(&self, conn: &mut Connection) -> Result<bool, String> {
        let Ok(mut st) = self.state.lock() else {
            return Err("the publisher's state is poisoned".to_owned());
        };
        let (in_flight, limit) = conn.in_flight();
        let refill =
            in_flight == 0 || limit - in_flight.min(limit) >= (limit / 2).clamp(1, REFILL_BATCH);
        while conn.backlog() < MAX_BACKLOG {
            let Some(&id) = st.queued.front() else {
                break;
            };
            let Some(pending) = st.unconfirmed.get(&id) else {
                st.queued.pop_front();
                continue;
            };
            if pending.msg.qos > 0 && !refill {
                break;
            }
            if !conn.publish(id, &pending.msg).map_err(|e| e.to_string())? {
                break;
            }
            st.queued.pop_front();
        }
        Ok(self.disconnect.is_cancelled() && st.queued.is_empty())
    }

    fn finish(&self, tag: u64, delivery: Delivery) {
        if let Ok(mut st) = self.state.lock() {
            st.finish(tag, delivery);
        }
    }

    /// A refusal that may pass later is retried with backoff; any other ends the publish.
    fn refused(&self, id: u64, refusal: Refusal) {
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        let Some(pending) = st.unconfirmed.get_mut(&id) else {
            return;
        };
        pending.refusals += 1;
        let topic = pending.msg.topic.clone();
        if refusal.transient && pending.refusals < MAX_TRANSIENT_REFUSALS {
            pending.retry_scheduled = true;
            let delay = Duration::from_secs(1) * 2u32.pow(pending.refusals - 1);
            warn!(%topic, reason = %refusal.reason, retry_in = ?delay, "the MQTT broker refused a publish; sending it again later");
            self.metrics.publish_refused(&refusal.code, "retry");
            self.retry_later(id, delay);
            return;
        }
        let reason = if refusal.transient {
            format!("{} ({} times)", refusal.reason, pending.refusals)
        } else {
            refusal.reason
        };
        warn!(%topic, %reason, "the MQTT broker refused a publish");
        self.metrics.publish_refused(&refusal.code, "give_up");
        st.finish(id, Err(reason));
    }

    /// Queues a refused publish again after `delay` (unless it ended meanwhile).
    fn retry_later(&self, id: u64, delay: Duration) {
        let (state, wake) = (self.state.clone(), self.wake.clone());
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let Ok(mut st) = state.lock() else { return };
            let Some(pending) = st.unconfirmed.get_mut(&id) else {
                return;
            };
            pending.retry_scheduled = false;
            st.queued.push_back(id);
            drop(st);
            wake.notify_one();
        });
    }

    /// The connection was cut: the largest publish in flight (the oldest of equals) may be
    /// what the broker refuses by disconnecting. After [`MAX_STRIKES`] cuts it is refused for
    /// good. (Which publish a cut answers cannot be known: acknowledgements of the ones before
    /// it may still be unread. Brokers cut connections over a publish for its size.)
    fn strike_largest_in_flight(&self, in_flight: &[u64], error: &str) {
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        let suspect = in_flight
            .iter()
            .filter_map(|id| Some((st.unconfirmed.get(id)?.msg.payload.len(), *id)))
            .max_by_key(|(size, id)| (*size, std::cmp::Reverse(*id)))
            .map(|(_, id)| id);
        let Some(id) = suspect else {
            return;
        };
        let Some(pending) = st.unconfirmed.get_mut(&id) else {
            return;
        };
        pending.strikes += 1;
        if pending.strikes < MAX_STRIKES {
            return;
        }
        let reason = format!(
            "the MQTT broker cut the connection each of the {MAX_STRIKES} times this publish ({} payload bytes, the largest in flight) was sent, last with: {error}; it is probably larger than the broker accepts",
            pending.msg.payload.len()
        );
        warn!(topic = %pending.msg.topic, %reason, "giving up on a publish");
        self.metrics.publish_refused("disconnect", "give_up");
        st.finish(id, Err(reason));
    }
}
