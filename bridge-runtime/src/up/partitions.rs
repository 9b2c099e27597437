//! Partitions for the random and round-robin partitioners (by key, librdkafka's murmur2
//! partitioner decides). They need each topic's partition count. The first record of a topic
//! waits for its first reading (at most one metadata timeout, 5 s, while Kafka does not
//! answer); later readings happen in the background, so a record never waits for a refresh.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::FutureExt;
use mkb_api::routes::Partitioner;
use rand::Rng;

use super::producer::SharedProducer;
use crate::kafka::{topic_presence, TopicPresence};

/// How long a topic's partition count is trusted before it is read again, so partitions
/// added to a topic (by the operator, or by hand) get records within this time.
const REFRESH: Duration = Duration::from_secs(10);

/// Reads a topic's partition count (a metadata request, in production).
pub type Lookup = Arc<dyn Fn(String) -> BoxFuture<'static, TopicPresence> + Send + Sync>;

/// The lookup through the route's producer.
pub fn from_producer(producer: Arc<SharedProducer>) -> Lookup {
    Arc::new(move |topic: String| {
        let producer = producer.clone();
        async move { topic_presence(&producer.get(), &topic).await }.boxed()
    })
}

#[derive(Default)]
struct Count {
    partitions: Option<i32>,
    read: Option<Instant>,
    reading: bool,
}

pub struct PartitionChooser {
    partitioner: Partitioner,
    lookup: Lookup,
    counts: Arc<Mutex<HashMap<String, Count>>>,
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

    /// The last count read (`Some(None)`: read, without an answer), starting a reading in the
    /// background when one is due; `None` when the topic has never been read.
    fn known_count(&self, topic: &str) -> Option<Option<i32>> {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let count = counts.get_mut(topic)?;
        let due = count.read.is_none_or(|read| read.elapsed() >= REFRESH);
        if due && !count.reading {
            count.reading = true;
            let (lookup, counts) = (self.lookup.clone(), self.counts.clone());
            let topic = topic.to_owned();
            tokio::spawn(async move {
                let answer = lookup(topic.clone()).await;
                record(&counts, topic, answer);
            });
        }
        Some(count.partitions)
    }

    async fn first_reading(&self, topic: &str) -> Option<i32> {
        let answer = (self.lookup)(topic.to_owned()).await;
        record(&self.counts, topic.to_owned(), answer)
    }
}

/// Keeps a reading; without an answer the last count stays in use and is read again later.
fn record(
    counts: &Mutex<HashMap<String, Count>>,
    topic: String,
    answer: TopicPresence,
) -> Option<i32> {
    let mut counts = counts.lock().unwrap_or_else(|p| p.into_inner());
    let count = counts.entry(topic).or_default();
    if let TopicPresence::Present(n) = answer {
        count.partitions = Some(n).filter(|n| *n > 0);
    }
    count.read = Some(Instant::now());
    count.reading = false;
    count.partitions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(answer: impl Fn() -> Option<TopicPresence> + Send + Sync + 'static) -> Lookup {
        let answer = Arc::new(answer);
        Arc::new(move |_topic: String| {
            let answer = answer.clone();
            async move {
                match answer() {
                    Some(a) => a,
                    // Kafka away: no answer, ever.
                    None => futures::future::pending().await,
                }
            }
            .boxed()
        })
    }

    #[tokio::test]
    async fn round_robin_takes_each_partition_in_turn_from_the_first_record() {
        let mut chooser = PartitionChooser::new(
            Partitioner::RoundRobin,
            lookup(|| Some(TopicPresence::Present(3))),
        );
        let mut seen = Vec::new();
        for _ in 0..6 {
            seen.extend(chooser.choose("t").await);
        }
        seen.sort_unstable();
        assert_eq!(seen, [0, 0, 1, 1, 2, 2]);
    }

    #[tokio::test]
    async fn a_refresh_kafka_does_not_answer_never_holds_a_record_up() {
        let answered = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let first = answered.clone();
        // The first reading answers; every later one waits for ever.
        let mut chooser = PartitionChooser::new(
            Partitioner::Random,
            lookup(move || {
                (!first.swap(true, std::sync::atomic::Ordering::SeqCst))
                    .then_some(TopicPresence::Present(2))
            }),
        );
        assert!(chooser.choose("t").await.is_some());
        // Make the count due for a refresh.
        chooser
            .counts
            .lock()
            .expect("counts")
            .get_mut("t")
            .expect("t")
            .read = Instant::now().checked_sub(REFRESH);
        for _ in 0..1000 {
            let p = chooser
                .choose("t")
                .await
                .expect("the last count stays in use");
            assert!((0..2).contains(&p));
        }
        assert!(
            chooser.counts.lock().expect("counts")["t"].reading,
            "one refresh under way, not one per record"
        );
    }

    #[tokio::test]
    async fn without_an_answer_librdkafka_decides_and_the_count_is_read_again_later() {
        let mut chooser = PartitionChooser::new(
            Partitioner::RoundRobin,
            lookup(|| Some(TopicPresence::Unknown)),
        );
        assert_eq!(chooser.choose("t").await, None);
        assert_eq!(
            chooser.choose("t").await,
            None,
            "not read again within 10 s"
        );
        assert!(!chooser.counts.lock().expect("counts")["t"].reading);
    }

    #[tokio::test]
    async fn by_key_leaves_the_choice_to_librdkafka_and_reads_nothing() {
        let mut chooser = PartitionChooser::new(
            Partitioner::ByKey,
            lookup(|| panic!("no metadata is read for by-key")),
        );
        assert_eq!(chooser.choose("t").await, None);
    }
}
