//! The publisher connection (`<prefix>-<ordinal>-pub`, clean session) shared by every
//! Kafka → MQTT route. Each publish is confirmed when the broker acknowledges it (PUBACK for
//! QoS 1, PUBCOMP for QoS 2; QoS 0 once handed to the connection).
//!
//! rumqttc does not say which packet id a publish got; it reports each id as the publish
//! leaves, in queue order. Publishes are queued under a lock together with their place in
//! that order, so ids match records. On MQTT 3.1.1 the poller writes queued publishes to the
//! connection itself, many per write (`mqtt::direct`); rumqttc's request channel then only
//! wakes an idle poller. After a connection loss the bridge drops rumqttc's own
//! replay queue and queues every unconfirmed publish again itself, in the original order: the
//! broker gets each at least once, and per-partition order holds.
//!
//! A publish the broker refuses never counts as confirmed. An MQTT 5 refusal that may pass
//! later (quota exceeded, unspecified error) is sent again with backoff, a few times; any
//! other refusal ends the publish with the reason, and the route dead-letters the record. A
//! publish larger than the broker's Maximum Packet Size is refused before it is sent. A
//! publish that the broker answers by cutting the connection (what Mosquitto does with an
//! oversized packet on MQTT 3.1.1, or a reason code rumqttc cannot parse) would be sent again
//! after every reconnect forever; after [`MAX_STRIKES`] such cuts it is refused too.

mod state;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mkb_api::compiled::MqttEndpoint;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::warn;

use crate::health::Readiness;
use crate::metrics::Metrics;
use crate::mqtt::{self, Event, Outbound, Refusal};
use state::{Pending, State};

/// Connections cut while a publish was the oldest one in flight, before it is refused.
pub const MAX_STRIKES: u32 = 3;
/// How long a publish may wait for the broker's answer on an open connection.
const UNANSWERED_LIMIT: Duration = Duration::from_secs(60);
/// How often the publishes in flight are checked against [`UNANSWERED_LIMIT`]. The check
/// looks at every one (up to the window), and the events that prompt it come with every
/// QoS 2 publish.
const STALL_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// Transient refusals of one publish before it is refused for good.
const MAX_TRANSIENT_REFUSALS: u32 = 5;
/// Most publishes written to the connection at once (MQTT 3.1.1): a batch is reported
/// one event per publish before the poller reads the broker's answers again.
const MAX_BATCH: usize = 256;

/// How a publish ended: confirmed, or refused for good with the reason.
pub type Delivery = Result<(), String>;

#[derive(Clone)]
pub struct Publisher {
    client: mqtt::Client,
    state: Arc<Mutex<State>>,
}

impl Publisher {
    /// Queues a publish; the receiver completes when the broker has confirmed it, or with the
    /// reason it is refused for good. A dropped sender means the publisher stopped first.
    pub fn publish(&self, msg: Outbound) -> oneshot::Receiver<Delivery> {
        let (tx, rx) = oneshot::channel();
        let Ok(mut st) = self.state.lock() else {
            return rx;
        };
        if let Some(reason) = st.too_large(&msg) {
            let _ = tx.send(Err(reason));
            return rx;
        }
        let id = st.next_id;
        st.next_id += 1;
        st.unconfirmed.insert(
            id,
            Pending {
                msg,
                confirmed: Some(tx),
                strikes: 0,
                refusals: 0,
                retry_scheduled: false,
            },
        );
        st.submit(&self.client, id);
        rx
    }

    /// Queues a DISCONNECT; the poller ends once it is sent.
    pub async fn disconnect(&self) {
        self.client.disconnect().await;
    }

    /// Creates the publisher and its poller task.
    pub fn start(
        client: mqtt::Client,
        eventloop: mqtt::EventLoop,
        client_id: String,
        endpoint: &MqttEndpoint,
        metrics: Arc<Metrics>,
        ready: Readiness,
    ) -> (Self, JoinHandle<()>) {
        let state = State::new(matches!(client, mqtt::Client::V5(_)));
        let publisher = Self {
            client: client.clone(),
            state: Arc::new(Mutex::new(state)),
        };
        let poller = Poller {
            up: metrics.connection("mqtt", &client_id),
            client,
            state: publisher.state.clone(),
            client_id,
            endpoint: endpoint.clone(),
            metrics,
            ready,
        };
        (publisher, tokio::spawn(poller.run(eventloop)))
    }
}

/// Polls the publisher's connection and matches the broker's answers to publishes.
struct Poller {
    client: mqtt::Client,
    state: Arc<Mutex<State>>,
    client_id: String,
    endpoint: MqttEndpoint,
    metrics: Arc<Metrics>,
    up: Gauge,
    ready: Readiness,
}

impl Poller {
    /// Polls until the DISCONNECT is sent, reconnecting with capped exponential backoff.
    async fn run(self, mut eventloop: mqtt::EventLoop) {
        let mut backoff = Duration::from_millis(100);
        let mut stall_checked = Instant::now();
        let mut status = mqtt::ConnectionStatus::new(
            "publisher",
            &self.client_id,
            &self.endpoint,
            self.ready.clone(),
        );
        loop {
            let result = match eventloop.poll().await {
                Ok(Event::DisconnectSent) => {
                    // Publishes before the DISCONNECT reach the broker even when its answers
                    // are still arriving (see `read_until_closed`).
                    eventloop.read_until_closed().await;
                    return;
                }
                Ok(event) => {
                    if matches!(event, Event::Connected { .. }) {
                        backoff = Duration::from_millis(100);
                    }
                    self.handle(event, &mut eventloop, &mut status, &mut stall_checked);
                    self.write_queued(&mut eventloop).await
                }
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                self.up.set(0);
                status.failed(&e);
                self.strike_largest_in_flight(&e);
                self.requeue_unconfirmed(&mut eventloop);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }

    fn handle(
        &self,
        event: Event,
        eventloop: &mut mqtt::EventLoop,
        status: &mut mqtt::ConnectionStatus,
        stall_checked: &mut Instant,
    ) {
        match event {
            Event::Connected {
                max_packet_size, ..
            } => {
                if let Ok(mut st) = self.state.lock() {
                    st.max_packet_size = max_packet_size;
                }
                self.up.set(1);
                status.connected(false);
                self.ready.set(true);
            }
            Event::PublishSent(pkid) => self.sent(pkid, true),
            Event::PublishConfirmed(pkid) => {
                if let Ok(mut st) = self.state.lock() {
                    if let Some((id, _)) = st.in_flight.remove(&pkid) {
                        st.finish(id, Ok(()));
                    }
                }
            }
            Event::PublishRefused {
                pkid,
                refusal,
                reset_connection,
            } => {
                self.refused(pkid, refusal);
                if reset_connection {
                    // rumqttc keeps the slot of a refused QoS 2 publish; a new connection
                    // frees them all.
                    self.requeue_unconfirmed(eventloop);
                }
            }
            _ if stall_checked.elapsed() >= STALL_CHECK_INTERVAL => {
                *stall_checked = Instant::now();
                if self.stalled() {
                    warn!(client_id = %self.client_id, after = ?UNANSWERED_LIMIT, "the MQTT broker has not answered a publish; renewing the connection and sending the unconfirmed ones again");
                    self.requeue_unconfirmed(eventloop);
                }
            }
            _ => {}
        }
    }

    /// Writes publishes waiting for a direct write (MQTT 3.1.1), as many as rumqttc's
    /// in-flight limit allows, with one flush. An error means the connection is broken.
    async fn write_queued(&self, eventloop: &mut mqtt::EventLoop) -> Result<(), String> {
        let Some(room) = eventloop.direct_room() else {
            return Ok(());
        };
        let Some(batch) = self
            .state
            .lock()
            .ok()
            .and_then(|mut st| st.take_batch(MAX_BATCH, room))
        else {
            return Ok(());
        };
        let written = eventloop.write_publishes(&batch).await;
        // After a failed write, rumqttc's unreturned events are this batch's "sent" ones (a
        // batch starts only when there are no others): the publishes it took are in flight,
        // which is what picks the suspect when the broker cut the connection over one.
        let sent_before_failure = match written {
            Ok(_) => Vec::new(),
            Err(_) => eventloop.take_sent_events(),
        };
        if let Ok(mut st) = self.state.lock() {
            let taken = *written.as_ref().unwrap_or(&sent_before_failure.len());
            st.batch_written(batch.len(), taken);
        }
        for pkid in sent_before_failure {
            self.sent(pkid, false);
        }
        written.map(|_| ())
    }

    /// A publish has waited for the broker's answer longer than [`UNANSWERED_LIMIT`]: its
    /// acknowledgement was lost, and without a new connection it would never come. (Checked
    /// on events other than publishes and their answers, at most once a second; keep-alive
    /// pings guarantee one at least every keep-alive interval.)
    fn stalled(&self) -> bool {
        self.state.lock().is_ok_and(|st| {
            st.in_flight
                .values()
                .any(|(_, sent)| sent.elapsed() > UNANSWERED_LIMIT)
        })
    }

    /// A publish left with packet id `pkid` (0 for QoS 0). `connected`: false for one that
    /// was part of a write the connection broke in; a QoS 0 one then stays unconfirmed (it
    /// may never have left the buffer) and is sent again after the reconnect.
    fn sent(&self, pkid: u16, connected: bool) {
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        st.handoff.reported_sent();
        let Some(id) = st.awaiting_id.pop_front() else {
            return;
        };
        match st.unconfirmed.get(&id).map(|p| p.msg.qos) {
            Some(0) if connected => st.finish(id, Ok(())),
            Some(0) => {}
            Some(_) => {
                st.in_flight.insert(pkid, (id, Instant::now()));
            }
            None => {}
        }
    }

    /// A refusal that may pass later is retried with backoff; any other ends the publish.
    fn refused(&self, pkid: u16, refusal: Refusal) {
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        let Some((id, _)) = st.in_flight.remove(&pkid) else {
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
        let (client, state) = (self.client.clone(), self.state.clone());
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let Ok(mut st) = state.lock() else { return };
            let Some(pending) = st.unconfirmed.get_mut(&id) else {
                return;
            };
            pending.retry_scheduled = false;
            st.submit(&client, id);
        });
    }

    /// The connection was cut: the largest publish in flight (the oldest of equals) may be
    /// what the broker refuses by disconnecting. After [`MAX_STRIKES`] cuts it is refused for
    /// good. (Which publish a cut answers cannot be known: acknowledgements of the ones before
    /// it may still be unread. Brokers cut connections over a publish for its size.)
    fn strike_largest_in_flight(&self, error: &str) {
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        let suspect = st
            .in_flight
            .values()
            .filter_map(|(id, _)| Some((st.unconfirmed.get(id)?.msg.payload.len(), *id)))
            .max_by_key(|(size, id)| (*size, std::cmp::Reverse(*id)))
            .map(|(_, id)| id);
        let Some(pending) = suspect.and_then(|id| st.unconfirmed.get_mut(&id)) else {
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
        if let Some(id) = suspect {
            st.finish(id, Err(reason));
        }
    }

    /// Drops rumqttc's replay queue and the request channel's contents (and the connection,
    /// if still open), then queues every unconfirmed publish again in its original order
    /// (they leave once reconnected). Publishes above the broker's maximum packet size end.
    fn requeue_unconfirmed(&self, eventloop: &mut mqtt::EventLoop) {
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        eventloop.discard_pending();
        st.connection_discarded();
        let ids: Vec<u64> = st.unconfirmed.keys().copied().collect();
        for id in ids {
            let Some(pending) = st.unconfirmed.get(&id) else {
                continue;
            };
            if pending.retry_scheduled {
                continue;
            }
            if let Some(reason) = st.too_large(&pending.msg) {
                self.metrics.publish_refused("packet_too_large", "give_up");
                st.finish(id, Err(reason));
                continue;
            }
            st.submit(&self.client, id);
        }
    }
}
