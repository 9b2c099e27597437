//! In-order acknowledgements. MQTT requires PUBACKs in the order the PUBLISHes arrived, and
//! the bridge may acknowledge a message only when every route that took it has Kafka's
//! confirmation. Entries complete in any order; acknowledgements leave in arrival order.
//!
//! A message frees its slot of the in-flight window when its acknowledgement is ready to go,
//! not when it is sent: the task that sends it is the one that reads new messages, so waiting
//! for the send could deadlock a full window. rumqttc sends one queued request per poll while
//! reading packets ten at a time, so during a flood (a broker that ignores the receive
//! maximum, as Mosquitto 2.0.11 does for queued messages) acknowledgements can pile up beyond
//! rumqttc's request channel. They are never dropped while their connection lives: those that
//! do not fit wait here, in order, and are queued as the channel drains ([`AckTracker::flush`]).
//! A dropped acknowledgement would leave its message in the broker's in-flight window until
//! the next reconnect; enough of them and the broker stops sending — a stall.
//! Acknowledgements of an earlier connection are dropped (and counted): the broker sends those
//! messages again on the new one.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use prometheus_client::metrics::counter::Counter;
use tokio::sync::OwnedSemaphorePermit;
use tracing::trace;

use crate::mqtt::{AckToken, Client};

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
    /// Acknowledgements due, in order, that did not fit in rumqttc's request channel yet.
    unsent: VecDeque<(u64, AckToken)>,
}

/// Tracks messages from arrival to acknowledgement.
pub struct AckTracker {
    client: Client,
    dropped: Counter,
    queue: Mutex<Queue>,
    connection: AtomicU64,
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
        Arc::new(Self {
            client,
            dropped,
            queue: Mutex::new(Queue::default()),
            connection: AtomicU64::new(0),
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
                if hold && entry.token.take().is_some() {
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
                q.unsent.push_back((entry.connection, token));
            }
        }
        self.send_due(&mut q);
    }

    /// Acknowledgements waiting for room in rumqttc's request channel.
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
        let current = self.connection.load(Ordering::SeqCst);
        while let Some((connection, token)) = q.unsent.front() {
            if *connection != current {
                self.dropped.inc();
                trace!("acknowledgement of an earlier connection dropped; the broker sends the message again");
            } else if let Err(e) = self.client.try_ack(token) {
                trace!(error = %e, waiting = q.unsent.len(), "rumqttc's request channel is full; acknowledgements wait");
                return;
            }
            q.unsent.pop_front();
        }
    }
}
