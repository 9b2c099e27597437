//! In-order acknowledgements. MQTT requires PUBACKs in the order the PUBLISHes arrived, and
//! the bridge may acknowledge a message only when every route that took it has Kafka's
//! confirmation. Entries complete in any order; acknowledgements leave in arrival order.
//!
//! A message holds its slot of the in-flight window until its acknowledgement is on the wire,
//! not merely queued: rumqttc sends one queued request per poll while it reads many packets,
//! so under a flood queued acknowledgements would otherwise pile up without bound.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::OwnedSemaphorePermit;
use tracing::warn;

use crate::mqtt::{AckToken, Client};

struct Entry {
    /// The connection the message arrived on; acknowledging on a later connection could
    /// acknowledge a different message that reuses the packet id.
    connection: u64,
    token: Option<AckToken>,
    remaining: usize,
    /// The entry's slot of the in-flight window.
    permit: OwnedSemaphorePermit,
}

#[derive(Default)]
struct Queue {
    /// Sequence number of `entries[0]`.
    head: u64,
    entries: VecDeque<Entry>,
}

/// Tracks messages from arrival to acknowledgement.
pub struct AckTracker {
    client: Client,
    queue: Mutex<Queue>,
    connection: AtomicU64,
    /// Slots of acknowledgements queued in rumqttc and not yet sent, in queue order.
    unsent: Mutex<VecDeque<OwnedSemaphorePermit>>,
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
        self.tracker.complete(self.seq);
    }
}

impl AckTracker {
    pub fn new(client: Client) -> Arc<Self> {
        Arc::new(Self {
            client,
            queue: Mutex::new(Queue::default()),
            connection: AtomicU64::new(0),
            unsent: Mutex::new(VecDeque::new()),
        })
    }

    /// A new connection to the broker began; messages of earlier ones are no longer acknowledged.
    pub fn new_connection(&self) -> u64 {
        self.connection.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// rumqttc sent one queued acknowledgement: its slot is free (acknowledgements leave in
    /// the order they were queued, so the oldest slot goes).
    pub fn ack_sent(&self) {
        if let Ok(mut unsent) = self.unsent.lock() {
            unsent.pop_front();
        }
    }

    /// The connection dropped: rumqttc discarded the acknowledgements it had not sent (the
    /// broker redelivers those messages), so their slots are free.
    pub fn connection_lost(&self) {
        if let Ok(mut unsent) = self.unsent.lock() {
            unsent.clear();
        }
    }

    /// Registers a message taken by `routes` routes; returns one ticket per route.
    pub fn track(
        self: &Arc<Self>,
        token: Option<AckToken>,
        routes: usize,
        permit: OwnedSemaphorePermit,
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
                permit,
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

    fn complete(&self, seq: u64) {
        if let Ok(mut q) = self.queue.lock() {
            let head = q.head;
            if let Some(entry) = seq
                .checked_sub(head)
                .and_then(|i| q.entries.get_mut(i as usize))
            {
                entry.remaining = entry.remaining.saturating_sub(1);
            }
        }
        self.release_completed();
    }

    /// Acknowledges the completed prefix of the queue, in order.
    fn release_completed(&self) {
        let current = self.connection.load(Ordering::SeqCst);
        let Ok(mut q) = self.queue.lock() else { return };
        while q.entries.front().is_some_and(|e| e.remaining == 0) {
            let Some(entry) = q.entries.pop_front() else {
                break;
            };
            q.head += 1;
            let Entry {
                token,
                connection,
                permit,
                ..
            } = entry;
            let Some(token) = token.filter(|_| connection == current) else {
                continue; // QoS 0, or an earlier connection: nothing to send, the slot is free.
            };
            // The slot is handed over before the request is queued, so the sent event that
            // frees it always finds it.
            if let Ok(mut unsent) = self.unsent.lock() {
                unsent.push_back(permit);
            }
            if let Err(e) = self.client.try_ack(&token) {
                if let Ok(mut unsent) = self.unsent.lock() {
                    unsent.pop_back();
                }
                warn!(error = %e, "could not queue an acknowledgement; the broker will redeliver the message");
            }
        }
    }
}
