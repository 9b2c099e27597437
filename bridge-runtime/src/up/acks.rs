//! In-order acknowledgements. MQTT requires PUBACKs in the order the PUBLISHes arrived, and
//! the bridge may acknowledge a message only when every route that took it has Kafka's
//! confirmation. Entries complete in any order; acknowledgements leave in arrival order.
//!
//! A message frees its slot of the in-flight window when its acknowledgement is ready to go,
//! not when it is sent: the task that sends it is the one that reads new messages, so waiting
//! for the send could deadlock a full window.
//!
//! The connection task takes the acknowledgements that are due ([`AckTracker::take_due`])
//! whenever it is woken, and writes them many per write.
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
use tokio::sync::Notify;
use tokio::sync::OwnedSemaphorePermit;
use tracing::{trace, warn};

/// The most acknowledgements that wait to be sent: one per MQTT packet id.
pub const MAX_UNSENT: usize = u16::MAX as usize;

use crate::mqtt::AckToken;

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
    /// Acknowledgements due, in order, not taken by the connection task yet.
    unsent: VecDeque<(u64, AckToken)>,
}

/// Tracks messages from arrival to acknowledgement.
pub struct AckTracker {
    dropped: Counter,
    /// Wakes the connection task when acknowledgements are due.
    pub wake: Notify,
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
    pub fn new(dropped: Counter) -> Arc<Self> {
        Arc::new(Self {
            dropped,
            wake: Notify::new(),
            queue: Mutex::new(Queue::default()),
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
        if !q.unsent.is_empty() {
            self.wake.notify_one();
        }
    }

    /// Acknowledgements due and not taken by the connection task yet.
    pub fn unsent(&self) -> usize {
        self.queue.lock().map(|q| q.unsent.len()).unwrap_or(0)
    }

    /// The acknowledgements due, in order, up to `max`, for the connection task to write;
    /// those of earlier connections are dropped.
    pub fn take_due(&self, max: usize) -> Vec<AckToken> {
        let Ok(mut q) = self.queue.lock() else {
            return Vec::new();
        };
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
        batch
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
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::sync::Semaphore;

    use super::*;

    /// A tracker connected once, as both the connection task and the subscriber see it.
    fn tracker() -> (Arc<AckTracker>, Counter) {
        let dropped = Counter::default();
        let tracker = AckTracker::new(dropped.clone());
        tracker.connected();
        tracker.new_connection();
        (tracker, dropped)
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

    fn pkids(batch: Vec<AckToken>) -> Vec<u16> {
        batch.iter().map(|t| t.pkid).collect()
    }

    #[test]
    fn acknowledgements_leave_in_arrival_order_once_every_earlier_one_is_complete() {
        let (tracker, dropped) = tracker();
        let mut tickets: Vec<Ticket> = (1..=4).map(|pkid| arrive(&tracker, pkid)).collect();
        let fourth = tickets.pop().expect("ticket 4");
        let third = tickets.pop().expect("ticket 3");
        let second = tickets.pop().expect("ticket 2");
        let first = tickets.pop().expect("ticket 1");
        second.complete();
        fourth.complete();
        assert_eq!(tracker.unsent(), 0, "the first is not complete yet");
        first.complete();
        assert_eq!(pkids(tracker.take_due(1)), [1]);
        assert_eq!(pkids(tracker.take_due(10)), [2]);
        third.complete();
        assert_eq!(pkids(tracker.take_due(10)), [3, 4]);
        assert_eq!(dropped.get(), 0);
    }

    #[test]
    fn acknowledgements_of_an_earlier_connection_are_dropped_not_written() {
        let (tracker, dropped) = tracker();
        let first = arrive(&tracker, 1);
        let second = arrive(&tracker, 2);
        // The connection task reconnected before the subscriber heard of it.
        tracker.connected();
        first.complete();
        second.complete();
        assert!(tracker.take_due(1024).is_empty());
        assert_eq!(tracker.unsent(), 0);
        assert_eq!(dropped.get(), 2);
    }

    /// Issue 29, path 9: the acknowledgements waiting to be written were bounded only by what
    /// the broker sent. They are bounded by the packet ids MQTT has; a broker that sends more
    /// unacknowledged messages than that cannot exist without breaking the protocol, so this
    /// is a unit test.
    #[test]
    fn no_more_acknowledgements_wait_than_there_are_packet_ids() {
        let (tracker, dropped) = tracker();
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
        assert_eq!(tracker.unsent(), 1);
    }

    #[test]
    fn a_message_of_an_earlier_connection_held_back_is_not_counted_as_held() {
        let (tracker, _dropped) = tracker();
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
}
