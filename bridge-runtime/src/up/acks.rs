//! In-order acknowledgements. MQTT requires PUBACKs in the order the PUBLISHes arrived, and
//! the bridge may acknowledge a message only when every route that took it has Kafka's
//! confirmation. Entries complete in any order; acknowledgements leave in arrival order.
//!
//! A message frees its slot of the in-flight window when its acknowledgement is ready to go,
//! not when it is sent: the task that sends it is the one that reads new messages, so waiting
//! for the send could deadlock a full window.
//!
//! With MQTT 3.1.1 the connection task writes the acknowledgements that are due itself, many
//! per write, between two polls ([`AckTracker::take_direct`], see `mqtt::direct`); one goes
//! through rumqttc's request channel only to wake an idle connection task, and none is written
//! directly before the channel's has left, so they leave in order. With MQTT 5 every one goes
//! through the channel, and rumqttc sends one queued request per poll while reading packets
//! ten at a time, so during a flood (a broker that ignores the receive maximum, as Mosquitto
//! 2.0.11 does for queued messages) they can pile up beyond the channel: those that do not
//! fit wait here, in order, and are queued as the channel drains ([`AckTracker::flush`]).
//!
//! None is dropped while its connection lives: a dropped acknowledgement would leave its
//! message in the broker's in-flight window until the next reconnect; enough of them and the
//! broker stops sending — a stall. Acknowledgements of an earlier connection are dropped (and
//! counted): the broker sends those messages again on the new one.
//!
//! The waiting ones are bounded by MQTT itself: a message keeps its packet id in use at the
//! broker until it is acknowledged, and a broker may not reuse one in use, so no more than
//! [`MAX_UNSENT`] (65,535, the packet ids there are) can wait for one connection. A broker
//! that breaks that rule gets no more: the acknowledgement beyond it is dropped, counted and
//! logged, and its message comes again after the next reconnect.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use prometheus_client::metrics::counter::Counter;
use tokio::sync::OwnedSemaphorePermit;
use tracing::{trace, warn};

/// The most acknowledgements that wait to be sent: one per MQTT packet id.
pub const MAX_UNSENT: usize = u16::MAX as usize;

use crate::mqtt::{AckToken, Client, Handoff};

struct Entry {
    /// The connection the message arrived on; acknowledging on a later connection could
    /// acknowledge a different message that reuses the packet id.
    connection: u64,
    token: Option<AckToken>,
    remaining: usize,
    /// Frees its room in the in-flight window when the entry leaves.
    _room: Room,
}

/// A message's room in the in-flight window: one message, and its payload's KiB. Held, not
/// read: dropping it gives the room back.
pub struct Room {
    _message: OwnedSemaphorePermit,
    _kib: OwnedSemaphorePermit,
}

impl Room {
    pub fn new(message: OwnedSemaphorePermit, kib: OwnedSemaphorePermit) -> Self {
        Self {
            _message: message,
            _kib: kib,
        }
    }
}

#[derive(Default)]
struct Queue {
    /// Sequence number of `entries[0]`.
    head: u64,
    entries: VecDeque<Entry>,
    /// Acknowledgements due, in order, not handed to the connection yet: waiting for room in
    /// rumqttc's request channel, or for the connection task's next direct write.
    unsent: VecDeque<(u64, AckToken)>,
    /// Where the acknowledgements handed to the connection are (MQTT 3.1.1: the connection
    /// task writes them directly).
    handoff: Handoff,
}

/// Tracks messages from arrival to acknowledgement.
pub struct AckTracker {
    client: Client,
    dropped: Counter,
    queue: Mutex<Queue>,
    /// Connections the subscriber has seen (it tags messages with this).
    connection: AtomicU64,
    /// Connections the connection task has seen. It learns of a reconnect before the
    /// subscriber does; an acknowledgement of any earlier connection is dropped.
    live_connection: AtomicU64,
    held: AtomicUsize,
}

/// A route's hold on a message: complete it once Kafka has the record (or the dead-letter
/// topic has it). Dropping it without completing leaves the message unacknowledged, so the
/// broker redelivers it.
pub struct Ticket {
    tracker: Arc<AckTracker>,
    seq: u64,
}

impl Ticket {
    pub fn complete(self) {
        self.tracker.complete(self.seq, false);
    }

    /// Completes without an acknowledgement: the message stays with the broker, which sends
    /// it again on the next connection.
    pub fn hold(self) {
        self.tracker.complete(self.seq, true);
    }
}

impl AckTracker {
    pub fn new(client: Client, dropped: Counter) -> Arc<Self> {
        let queue = Queue {
            handoff: Handoff::new(matches!(client, Client::V4(_))),
            ..Queue::default()
        };
        Arc::new(Self {
            client,
            dropped,
            queue: Mutex::new(queue),
            connection: AtomicU64::new(0),
            live_connection: AtomicU64::new(0),
            held: AtomicUsize::new(0),
        })
    }

    /// A new connection to the broker began; messages of earlier ones are no longer
    /// acknowledged, and those held back are sent again by the broker.
    pub fn new_connection(&self) -> u64 {
        self.held.store(0, Ordering::SeqCst);
        self.connection.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Registers a message taken by `routes` routes; returns one ticket per route.
    pub fn track(
        self: &Arc<Self>,
        token: Option<AckToken>,
        routes: usize,
        room: Room,
    ) -> Vec<Ticket> {
        let connection = self.connection.load(Ordering::SeqCst);
        let seq = {
            let Ok(mut q) = self.queue.lock() else {
                return Vec::new();
            };
            q.entries.push_back(Entry {
                connection,
                token,
                remaining: routes,
                _room: room,
            });
            q.head + q.entries.len() as u64 - 1
        };
        if routes == 0 {
            self.release_completed();
        }
        (0..routes)
            .map(|_| Ticket {
                tracker: self.clone(),
                seq,
            })
            .collect()
    }

    /// Messages tracked and not yet acknowledged.
    pub fn len(&self) -> usize {
        self.queue.lock().map(|q| q.entries.len()).unwrap_or(0)
    }

    fn complete(&self, seq: u64, hold: bool) {
        if let Ok(mut q) = self.queue.lock() {
            let head = q.head;
            if let Some(entry) = seq
                .checked_sub(head)
                .and_then(|i| q.entries.get_mut(i as usize))
            {
                entry.remaining = entry.remaining.saturating_sub(1);
                // Held on the current connection; one of an earlier connection is sent again
                // anyway, and `held` was reset for the new one.
                let current = entry.connection == self.connection.load(Ordering::SeqCst);
                if hold && entry.token.take().is_some() && current {
                    self.held.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
        self.release_completed();
    }

    /// Messages held back unacknowledged on the current connection.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::SeqCst)
    }

    /// Acknowledges the completed prefix of the queue, in order.
    fn release_completed(&self) {
        let Ok(mut q) = self.queue.lock() else { return };
        while q.entries.front().is_some_and(|e| e.remaining == 0) {
            let Some(entry) = q.entries.pop_front() else {
                break;
            };
            q.head += 1;
            if let Some(token) = entry.token {
                if q.unsent.len() >= MAX_UNSENT {
                    self.drop_stale_unsent(&mut q);
                }
                if q.unsent.len() >= MAX_UNSENT {
                    self.dropped.inc();
                    warn!(pkid = token.pkid, "more acknowledgements wait than MQTT has packet ids (the broker reused one in use); this one is dropped and its message comes again after a reconnect");
                    continue;
                }
                q.unsent.push_back((entry.connection, token));
            }
        }
        self.send_due(&mut q);
    }

    /// Acknowledgements due and not handed to the connection yet.
    pub fn unsent(&self) -> usize {
        self.queue.lock().map(|q| q.unsent.len()).unwrap_or(0)
    }

    /// Queues the acknowledgements that are waiting, as far as the channel has room.
    pub fn flush(&self) {
        if let Ok(mut q) = self.queue.lock() {
            self.send_due(&mut q);
        }
    }

    fn send_due(&self, q: &mut Queue) {
        let live = self.live_connection.load(Ordering::SeqCst);
        while let Some(&(connection, token)) = q.unsent.front() {
            if connection != live {
                self.drop_stale();
                q.unsent.pop_front();
                continue;
            }
            if q.handoff.direct() && q.handoff.task_busy() {
                return;
            }
            if let Err(e) = self.client.try_ack(&token) {
                trace!(error = %e, waiting = q.unsent.len(), "rumqttc's request channel is full; acknowledgements wait");
                return;
            }
            q.handoff.through_channel();
            q.unsent.pop_front();
        }
    }

    /// Drops the waiting acknowledgements of earlier connections (the oldest, at the front).
    fn drop_stale_unsent(&self, q: &mut Queue) {
        let live = self.live_connection.load(Ordering::SeqCst);
        while q.unsent.front().is_some_and(|(c, _)| *c != live) {
            q.unsent.pop_front();
            self.drop_stale();
        }
    }

    fn drop_stale(&self) {
        self.dropped.inc();
        trace!(
            "acknowledgement of an earlier connection dropped; the broker sends the message again"
        );
    }

    /// The connection task connected (again): acknowledgements of earlier connections are
    /// dropped from now on.
    pub fn connected(&self) {
        self.live_connection.fetch_add(1, Ordering::SeqCst);
        self.connection_lost();
    }

    /// The connection task lost or dropped its connection, and with it the acknowledgements
    /// in rumqttc's channel and those written but not reported.
    pub fn connection_lost(&self) {
        if let Ok(mut q) = self.queue.lock() {
            q.handoff.reset();
        }
    }

    /// rumqttc reported an acknowledgement sent; they are reported in the order they left,
    /// the ones written directly before the channel's.
    pub fn ack_sent(&self) {
        if let Ok(mut q) = self.queue.lock() {
            q.handoff.reported_sent();
        }
    }

    /// The next acknowledgements for the connection task to write directly, up to `max`,
    /// in order; `None` without direct writes, while one in the channel has not left yet, or
    /// when none is due. Call [`AckTracker::direct_written`] after the write.
    pub fn take_direct(&self, max: usize) -> Option<Vec<AckToken>> {
        let mut q = self.queue.lock().ok()?;
        if !q.handoff.may_write() {
            return None;
        }
        let live = self.live_connection.load(Ordering::SeqCst);
        let mut batch = Vec::new();
        while batch.len() < max {
            let Some((connection, token)) = q.unsent.pop_front() else {
                break;
            };
            if connection == live {
                batch.push(token);
            } else {
                self.drop_stale();
            }
        }
        if batch.is_empty() {
            return None;
        }
        q.handoff.write_started();
        Some(batch)
    }

    /// The connection task wrote `count` acknowledgements taken with
    /// [`AckTracker::take_direct`], or lost them with the connection (`written` false).
    pub fn direct_written(&self, count: usize, written: bool) {
        if let Ok(mut q) = self.queue.lock() {
            q.handoff.write_ended(if written { count } else { 0 });
            if !written {
                self.dropped.inc_by(count as u64);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::sync::Semaphore;

    use super::*;

    /// A tracker whose client's request channel stays open (the event loop is kept, never
    /// polled), connected once as both the connection task and the subscriber see it.
    fn tracker(v5: bool) -> (Arc<AckTracker>, Counter, Box<dyn std::any::Any>) {
        let dropped = Counter::default();
        let (client, eventloop): (Client, Box<dyn std::any::Any>) = if v5 {
            let options = rumqttc::v5::MqttOptions::new("acks-test", "127.0.0.1", 1883);
            let (c, e) = rumqttc::v5::AsyncClient::new(options, 100);
            (Client::V5(c), Box::new(e))
        } else {
            let options = rumqttc::MqttOptions::new("acks-test", "127.0.0.1", 1883);
            let (c, e) = rumqttc::AsyncClient::new(options, 100);
            (Client::V4(c), Box::new(e))
        };
        let tracker = AckTracker::new(client, dropped.clone());
        tracker.connected();
        tracker.new_connection();
        (tracker, dropped, eventloop)
    }

    fn arrive(tracker: &Arc<AckTracker>, pkid: u16) -> Ticket {
        let window = Arc::new(Semaphore::new(10));
        let room = Room::new(
            window.clone().try_acquire_owned().expect("a permit"),
            window.try_acquire_owned().expect("a permit"),
        );
        let token = AckToken { pkid, qos: 1 };
        let mut tickets = tracker.track(Some(token), 1, room);
        tickets.pop().expect("one ticket")
    }

    fn pkids(batch: Option<Vec<AckToken>>) -> Vec<u16> {
        batch.unwrap_or_default().iter().map(|t| t.pkid).collect()
    }

    #[test]
    fn one_acknowledgement_wakes_the_connection_task_and_the_rest_wait_for_its_write() {
        let (tracker, dropped, _eventloop) = tracker(false);
        let tickets: Vec<Ticket> = (1..=4).map(|pkid| arrive(&tracker, pkid)).collect();
        let mut tickets = tickets.into_iter();
        tickets.next().expect("ticket 1").complete();
        // Through the channel: the connection task may be idle.
        assert_eq!(tracker.unsent(), 0);
        for ticket in tickets {
            ticket.complete();
        }
        assert_eq!(tracker.unsent(), 3);
        // Nothing is written before the channel's has left: they leave in order.
        assert!(tracker.take_direct(1024).is_none());
        tracker.ack_sent();
        assert_eq!(pkids(tracker.take_direct(2)), [2, 3]);
        tracker.direct_written(2, true);
        // Its two reports are pending, so the next one waits for the task as well.
        tracker.flush();
        assert_eq!(tracker.unsent(), 1);
        tracker.ack_sent();
        tracker.ack_sent();
        assert_eq!(pkids(tracker.take_direct(1024)), [4]);
        assert_eq!(dropped.get(), 0);
    }

    #[test]
    fn acknowledgements_of_an_earlier_connection_are_dropped_not_written() {
        let (tracker, dropped, _eventloop) = tracker(false);
        let first = arrive(&tracker, 1);
        let second = arrive(&tracker, 2);
        // The connection task reconnected before the subscriber heard of it.
        tracker.connected();
        first.complete();
        second.complete();
        assert!(tracker.take_direct(1024).is_none());
        assert_eq!(tracker.unsent(), 0);
        assert_eq!(dropped.get(), 2);
    }

    #[test]
    fn acknowledgements_lost_with_a_failed_write_are_counted_as_dropped() {
        let (tracker, dropped, _eventloop) = tracker(false);
        let tickets: Vec<Ticket> = (1..=3).map(|pkid| arrive(&tracker, pkid)).collect();
        for ticket in tickets {
            ticket.complete();
        }
        tracker.ack_sent();
        let batch = tracker.take_direct(1024).expect("a batch");
        tracker.direct_written(batch.len(), false);
        tracker.connection_lost();
        assert_eq!(dropped.get(), 2);
        // The next acknowledgement wakes the task again.
        arrive(&tracker, 4).complete();
        assert_eq!(tracker.unsent(), 0);
    }

    /// Issue 29, path 9: the acknowledgements waiting to be written were bounded only by what
    /// the broker sent. They are bounded by the packet ids MQTT has; a broker that sends more
    /// unacknowledged messages than that cannot exist without breaking the protocol, so this
    /// is a unit test.
    #[test]
    fn no_more_acknowledgements_wait_than_there_are_packet_ids() {
        let (tracker, dropped, _eventloop) = tracker(false);
        // The first goes through the channel and is never reported sent: the rest wait.
        arrive(&tracker, 1).complete();
        for i in 0..=MAX_UNSENT {
            arrive(&tracker, (i % 65_535) as u16 + 1).complete();
        }
        assert_eq!(tracker.unsent(), MAX_UNSENT);
        assert_eq!(dropped.get(), 1);
        // After a reconnect those are stale: they make room instead of the new one.
        tracker.connected();
        tracker.new_connection();
        arrive(&tracker, 7).complete();
        assert_eq!(dropped.get(), 1 + MAX_UNSENT as u64);
        assert!(tracker.unsent() <= 1);
    }

    #[test]
    fn a_message_of_an_earlier_connection_held_back_is_not_counted_as_held() {
        let (tracker, _dropped, _eventloop) = tracker(false);
        let old = arrive(&tracker, 1);
        tracker.new_connection();
        old.hold();
        assert_eq!(
            tracker.held(),
            0,
            "the broker sends it again on the new connection anyway"
        );
        arrive(&tracker, 2).hold();
        assert_eq!(tracker.held(), 1);
    }

    #[test]
    fn with_mqtt_5_every_acknowledgement_goes_through_the_channel() {
        let (tracker, _dropped, _eventloop) = tracker(true);
        let tickets: Vec<Ticket> = (1..=3).map(|pkid| arrive(&tracker, pkid)).collect();
        for ticket in tickets {
            ticket.complete();
        }
        assert_eq!(tracker.unsent(), 0);
        assert!(tracker.take_direct(1024).is_none());
    }
}
