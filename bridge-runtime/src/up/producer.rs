//! The MQTT → Kafka producer, replaceable, and the records it has not confirmed yet.
//!
//! librdkafka can leave a partition without a broker for good after a Kafka restart
//! (librdkafka #5430: an incremental metadata update naming leader -1 is skipped and the
//! partition stays in "no info" while every later metadata response names its leader). The
//! producer then keeps every record for that partition forever. The watchdog
//! (`watchdog.rs`) notices from the records waiting here and replaces the producer: the new
//! one starts from fresh metadata, and the old one's records fail and go back to their routes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use rdkafka::producer::{FutureProducer, Producer, PurgeConfig};
use tracing::warn;

use crate::kafka::BridgeContext;

/// A producer with the switch that silences its context once it is replaced (its last
/// errors and statistics describe a client nobody uses).
pub struct ProducerSlot {
    pub producer: FutureProducer<BridgeContext>,
    pub retired: Arc<AtomicBool>,
}

type Factory = Box<dyn Fn() -> Result<ProducerSlot, String> + Send + Sync>;

pub struct SharedProducer {
    current: RwLock<ProducerSlot>,
    /// How many times the producer was replaced; changed with `current`, under its lock.
    generation: AtomicU64,
    make: Factory,
    waiting: Mutex<Waiting>,
}

#[derive(Default)]
struct Waiting {
    next_id: u64,
    /// By id, which grows with time: the first entry is the record waiting longest.
    records: BTreeMap<u64, (Instant, Arc<str>)>,
    /// The topic last registered: most routes write to one topic, which is then shared
    /// rather than copied per record.
    last_topic: Option<Arc<str>>,
}

/// The record that has waited longest for Kafka's confirmation.
#[derive(Debug, Clone, PartialEq)]
pub struct Oldest {
    pub id: u64,
    pub waited: Duration,
    pub topic: Arc<str>,
}

impl SharedProducer {
    /// Creates the first producer with `make`, which also makes its replacements.
    pub fn new(make: Factory) -> Result<Self, String> {
        let first = make()?;
        Ok(Self {
            current: RwLock::new(first),
            generation: AtomicU64::new(0),
            make,
            waiting: Mutex::new(Waiting::default()),
        })
    }

    /// The producer to send with now.
    pub fn get(&self) -> FutureProducer<BridgeContext> {
        self.get_with_generation().0
    }

    /// The current producer and its generation (see [`SharedProducer::generation`]).
    pub fn get_with_generation(&self) -> (FutureProducer<BridgeContext>, u64) {
        let slot = match self.current.read() {
            Ok(slot) => slot,
            Err(poisoned) => poisoned.into_inner(),
        };
        (
            slot.producer.clone(),
            self.generation.load(Ordering::SeqCst),
        )
    }

    /// Grows by one with every replacement: a record sent with an older generation belongs
    /// to a producer that was given up.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Registers a record handed to the producer for `topic`; it counts as waiting until the
    /// returned guard is dropped (when its delivery report arrived, whatever it says).
    pub fn waiting(self: &Arc<Self>, topic: &str) -> WaitingRecord {
        let mut w = self.lock_waiting();
        let id = w.next_id;
        w.next_id += 1;
        let topic = match &w.last_topic {
            Some(last) if **last == *topic => last.clone(),
            _ => {
                let fresh: Arc<str> = Arc::from(topic);
                w.last_topic = Some(fresh.clone());
                fresh
            }
        };
        w.records.insert(id, (Instant::now(), topic));
        WaitingRecord {
            shared: self.clone(),
            id,
        }
    }

    /// The record waiting longest, if any.
    pub fn oldest(&self) -> Option<Oldest> {
        let w = self.lock_waiting();
        w.records
            .first_key_value()
            .map(|(id, (since, topic))| Oldest {
                id: *id,
                waited: since.elapsed(),
                topic: topic.clone(),
            })
    }

    /// Puts a new producer in place of the current one and gives up the old one's records:
    /// their deliveries fail (`PurgeQueue`, `PurgeInflight`) and their routes produce them
    /// again with the new producer. The old producer is purged, flushed and destroyed on the
    /// blocking pool.
    pub fn replace(&self) -> Result<(), String> {
        let fresh = (self.make)()?;
        let old = {
            let mut slot = match self.current.write() {
                Ok(slot) => slot,
                Err(poisoned) => poisoned.into_inner(),
            };
            self.generation.fetch_add(1, Ordering::SeqCst);
            std::mem::replace(&mut *slot, fresh)
        };
        old.retired.store(true, Ordering::SeqCst);
        tokio::task::spawn_blocking(move || {
            let producer = old.producer;
            producer.purge(PurgeConfig::default().queue().inflight());
            // Serves the purged records' delivery reports, so every route hears of them.
            if let Err(e) = producer.flush(Duration::from_secs(10)) {
                warn!(error = %e, "the replaced Kafka producer did not report every purged record");
            }
        });
        Ok(())
    }

    fn lock_waiting(&self) -> std::sync::MutexGuard<'_, Waiting> {
        match self.waiting.lock() {
            Ok(w) => w,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// A record the producer has not reported on yet (see [`SharedProducer::waiting`]).
pub struct WaitingRecord {
    shared: Arc<SharedProducer>,
    id: u64,
}

impl Drop for WaitingRecord {
    fn drop(&mut self) {
        self.shared.lock_waiting().records.remove(&self.id);
    }
}
