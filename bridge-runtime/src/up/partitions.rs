//! Partitions for the random and round-robin partitioners (by key, librdkafka's murmur2
//! partitioner decides). They need each topic's partition count. The first record of a topic
//! waits for its first reading (at most one metadata timeout, 5 s, while Kafka does not
//! answer). After that a task of the topic's own reads it again every `REFRESH` for as long as
//! the topic is in use, so no record waits for a reading and partitions added to a topic get
//! records within `REFRESH`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use mkb_api::routes::Partitioner;
use rand::Rng;
use tokio::time::Instant;

use super::producer::SharedProducer;
use crate::kafka::{topic_presence, TopicPresence};

/// How often a topic's partition count is read again.
const REFRESH: Duration = Duration::from_secs(10);
/// A topic without records for this long is no longer read; its next record starts the
/// readings again (with the last count until the first answer).
const IDLE: Duration = Duration::from_secs(60);

/// Reads a topic's partition count (a metadata request, in production).
pub type Lookup = Arc<dyn Fn(String) -> BoxFuture<'static, TopicPresence> + Send + Sync>;

/// The lookup through the route's producer.
pub fn from_producer(producer: Arc<SharedProducer>) -> Lookup {
    Arc::new(move |topic: String| {
        let producer = producer.clone();
        async move { topic_presence(&producer.get(), &topic).await }.boxed()
    })
}

struct Count {
    partitions: Option<i32>,
    used: Instant,
    /// Whether the topic's reading task runs.
    refreshing: bool,
}

type Counts = Arc<Mutex<HashMap<String, Count>>>;

pub struct PartitionChooser {
    partitioner: Partitioner,
    lookup: Lookup,
    counts: Counts,
    turn: u64,
}

impl PartitionChooser {
    pub fn new(partitioner: Partitioner, lookup: Lookup) -> Self {
        Self {
            partitioner,
            lookup,
            counts: Arc::default(),
            turn: 0,
        }
    }

    /// The partition for the next record of `topic`; `None` lets librdkafka's partitioner
    /// decide: with by-key, and while the topic's partition count cannot be read.
    pub async fn choose(&mut self, topic: &str) -> Option<i32> {
        if self.partitioner == Partitioner::ByKey {
            return None;
        }
        let count = match self.known_count(topic) {
            Some(count) => count,
            None => self.first_reading(topic).await,
        }?;
        self.turn = self.turn.wrapping_add(1);
        Some(match self.partitioner {
            Partitioner::RoundRobin => (self.turn % count as u64) as i32,
            _ => rand::rng().random_range(0..count),
        })
    }

    /// The last count read (`Some(None)`: read, without an answer); `None` when the topic
    /// has never been read. Starts the topic's readings again if they had stopped.
    fn known_count(&self, topic: &str) -> Option<Option<i32>> {
        let mut counts = lock(&self.counts);
        let count = counts.get_mut(topic)?;
        count.used = Instant::now();
        if !count.refreshing {
            count.refreshing = true;
            self.spawn_refresh(topic, true);
        }
        Some(count.partitions)
    }

    async fn first_reading(&self, topic: &str) -> Option<i32> {
        let answer = (self.lookup)(topic.to_owned()).await;
        let partitions = present(answer);
        lock(&self.counts).insert(
            topic.to_owned(),
            Count {
                partitions,
                used: Instant::now(),
                refreshing: true,
            },
        );
        self.spawn_refresh(topic, false);
        partitions
    }

    /// Reads the topic every `REFRESH` (at once if `now`) until it has been idle for `IDLE`.
    fn spawn_refresh(&self, topic: &str, now: bool) {
        let (lookup, counts, topic) = (self.lookup.clone(), self.counts.clone(), topic.to_owned());
        tokio::spawn(async move {
            let mut first = now;
            loop {
                if !first {
                    tokio::time::sleep(REFRESH).await;
                }
                first = false;
                {
                    let mut counts = lock(&counts);
                    let Some(count) = counts.get_mut(&topic) else {
                        return;
                    };
                    if count.used.elapsed() >= IDLE {
                        count.refreshing = false;
                        return;
                    }
                }
                // Without an answer the last count stays in use.
                if let Some(n) = present(lookup(topic.clone()).await) {
                    if let Some(count) = lock(&counts).get_mut(&topic) {
                        count.partitions = Some(n);
                    }
                }
            }
        });
    }
}

fn present(answer: TopicPresence) -> Option<i32> {
    match answer {
        TopicPresence::Present(n) if n > 0 => Some(n),
        _ => None,
    }
}

fn lock(counts: &Counts) -> std::sync::MutexGuard<'_, HashMap<String, Count>> {
    counts.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};

    use super::*;

    /// A lookup answering with the count in `partitions` (0: never answers), counting calls.
    fn lookup(partitions: Arc<AtomicI32>, calls: Arc<AtomicUsize>) -> Lookup {
        Arc::new(move |_topic: String| {
            calls.fetch_add(1, Ordering::SeqCst);
            let n = partitions.load(Ordering::SeqCst);
            async move {
                if n == 0 {
                    futures::future::pending::<()>().await;
                }
                TopicPresence::Present(n)
            }
            .boxed()
        })
    }

    fn chooser(
        partitioner: Partitioner,
        n: i32,
    ) -> (PartitionChooser, Arc<AtomicI32>, Arc<AtomicUsize>) {
        let (partitions, calls) = (Arc::new(AtomicI32::new(n)), Arc::new(AtomicUsize::new(0)));
        let c = PartitionChooser::new(partitioner, lookup(partitions.clone(), calls.clone()));
        (c, partitions, calls)
    }

    /// The partitions of `n` records of topic `t`, sorted.
    async fn picks(c: &mut PartitionChooser, n: usize) -> Vec<i32> {
        let mut seen = Vec::new();
        for _ in 0..n {
            seen.extend(c.choose("t").await);
        }
        seen.sort_unstable();
        seen
    }

    #[tokio::test(start_paused = true)]
    async fn round_robin_takes_each_partition_in_turn_from_the_first_record() {
        let (mut c, _, _) = chooser(Partitioner::RoundRobin, 3);
        assert_eq!(picks(&mut c, 6).await, [0, 0, 1, 1, 2, 2]);
    }

    #[tokio::test(start_paused = true)]
    async fn partitions_added_are_used_within_the_refresh_period_without_a_record_waiting() {
        let (mut c, partitions, _) = chooser(Partitioner::RoundRobin, 2);
        assert!(c.choose("t").await.is_some());
        partitions.store(4, Ordering::SeqCst);
        tokio::time::sleep(REFRESH + Duration::from_millis(1)).await;
        assert_eq!(
            picks(&mut c, 4).await,
            [0, 1, 2, 3],
            "the new count, read in the background"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_reading_kafka_does_not_answer_never_holds_a_record_up() {
        let (mut c, partitions, calls) = chooser(Partitioner::Random, 2);
        assert!(c.choose("t").await.is_some());
        partitions.store(0, Ordering::SeqCst);
        tokio::time::sleep(REFRESH + Duration::from_millis(1)).await;
        for _ in 0..1000 {
            let p = c.choose("t").await.expect("the last count stays in use");
            assert!((0..2).contains(&p));
        }
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "one reading under way, not one per record"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_topic_is_no_longer_read_until_its_next_record() {
        let (mut c, _, calls) = chooser(Partitioner::Random, 2);
        c.choose("t").await;
        tokio::time::sleep(IDLE + REFRESH * 3).await;
        let read_while_idle = calls.load(Ordering::SeqCst);
        assert!(read_while_idle <= 1 + (IDLE.as_secs() / REFRESH.as_secs()) as usize + 1);
        tokio::time::sleep(REFRESH * 3).await;
        assert_eq!(
            calls.load(Ordering::SeqCst),
            read_while_idle,
            "no readings once idle"
        );
        c.choose("t").await;
        tokio::task::yield_now().await;
        assert_eq!(
            calls.load(Ordering::SeqCst),
            read_while_idle + 1,
            "read again at once"
        );
    }

    #[tokio::test]
    async fn by_key_leaves_the_choice_to_librdkafka_and_reads_nothing() {
        let (mut c, _, calls) = chooser(Partitioner::ByKey, 2);
        assert_eq!(c.choose("t").await, None);
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }
}
