//! One MQTT → Kafka route: render the record, produce it, and complete the message's ticket
//! when Kafka has confirmed it — or when the dead-letter topic has it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use mkb_api::compiled::CompiledMqttToKafka;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use tokio::sync::mpsc;
use tracing::{debug, error, warn};

use super::acks::Ticket;
use super::partitions::{self, PartitionChooser};
use super::producer::SharedProducer;
use super::record::{self, RecordParts};
use crate::health::{Failure, Readiness};
use crate::kafka::{
    classify, is_missing_topic, is_permanent, topic_presence, DeadLetter, DeadLetters, ErrorClass,
    TopicPresence,
};
use crate::metrics::RouteMetrics;
use crate::mqtt::Inbound;

/// A message handed to a route.
pub struct Job {
    pub msg: Arc<Inbound>,
    pub received_at: Instant,
    pub received_ms: i64,
    pub ticket: Ticket,
    /// Its place in the route's arrival order (set by the route), which a record produced
    /// again keeps.
    pub order: u64,
}

/// Which producer a record was handed to: the Kafka topic, and the producer's generation.
struct Sent {
    topic: String,
    generation: u64,
}

enum Step {
    Delivered(Job, Sent),
    Failed(Job, RecordParts, KafkaError, Sent),
    /// Kafka said the topic or partition is unknown, and a fresh metadata request did not
    /// confirm it: produced again.
    Unconfirmed(Job, RecordParts, KafkaError),
    /// The record will fail wherever it goes: dead-lettered with this reason. The topic is
    /// the one whose presence was checked.
    Poison(Job, String, String),
    DeadLettered(Job),
    /// The dead-letter topic cannot take the message: it is left unacknowledged.
    Held(Job, String),
}

pub struct RouteWorker {
    pub route: Arc<CompiledMqttToKafka>,
    pub producer: Arc<SharedProducer>,
    pub dead_letters: Option<Arc<DeadLetters>>,
    pub metrics: RouteMetrics,
    partitions: PartitionChooser,
    /// Not ready while Kafka refuses the route's topic (`blocked`).
    producing: Readiness,
    blocked: bool,
    failure: Failure,
    /// Jobs taken so far: the next job's `order`.
    taken: u64,
    /// Records Kafka did not take, to be produced again at `retry_at`, in arrival order. A
    /// new record for a topic with records waiting here waits with them, so a record produced
    /// again does not land behind later records of its partition; other topics go on.
    retrying: BTreeMap<u64, (Job, RecordParts)>,
    /// The Kafka topics with records in `retrying`.
    retrying_topics: HashSet<String>,
    retry_at: tokio::time::Instant,
    /// Records handed to a producer and not reported on yet, per topic and producer
    /// generation: while a topic has some on a replaced producer, they may still fail and be
    /// produced again, so the topic's later records wait.
    in_flight: HashMap<String, HashMap<u64, usize>>,
    /// Topics with a refused record whose presence is being checked (see `refused`): their
    /// later records wait for the answer.
    checking: HashMap<String, usize>,
}

/// What a route worker reports to, besides its metrics.
pub struct RouteHealth {
    pub producing: Readiness,
    pub failure: Failure,
}

type Pending = FuturesUnordered<BoxFuture<'static, Step>>;

const RETRY_BACKOFF: Duration = Duration::from_millis(500);

impl RouteWorker {
    pub fn new(
        route: Arc<CompiledMqttToKafka>,
        producer: Arc<SharedProducer>,
        dead_letters: Option<Arc<DeadLetters>>,
        metrics: RouteMetrics,
        health: RouteHealth,
    ) -> Self {
        let partitions = PartitionChooser::new(
            route.partitioner,
            partitions::from_producer(producer.clone()),
        );
        health.producing.set(true);
        Self {
            route,
            producer,
            dead_letters,
            metrics,
            partitions,
            producing: health.producing,
            blocked: false,
            failure: health.failure,
            taken: 0,
            retrying: BTreeMap::new(),
            retrying_topics: HashSet::new(),
            retry_at: tokio::time::Instant::now(),
            in_flight: HashMap::new(),
            checking: HashMap::new(),
        }
    }

    /// Runs until the job channel closes and every job taken has been completed.
    pub async fn run(mut self, mut jobs: mpsc::Receiver<Job>) {
        let mut pending = Pending::new();
        let mut open = true;
        while open || !pending.is_empty() || !self.retrying.is_empty() {
            let retrying = !self.retrying.is_empty();
            tokio::select! {
                // Outcomes first: a failure must be known before a later record of its topic
                // is produced.
                biased;
                Some(step) = pending.next(), if !pending.is_empty() => self.after(step, &mut pending).await,
                _ = tokio::time::sleep_until(self.retry_at), if retrying => self.produce_again(&mut pending).await,
                job = jobs.recv(), if open => match job {
                    Some(job) => self.start(job, &mut pending).await,
                    None => open = false,
                },
            }
        }
    }

    async fn start(&mut self, mut job: Job, pending: &mut Pending) {
        job.order = self.taken;
        self.taken += 1;
        self.metrics.received.inc();
        self.metrics.in_flight.inc();
        match record::build(&self.route, &job.msg, job.received_ms) {
            Ok(parts) if self.must_wait(&parts.topic) => self.retry_later(job, parts),
            Ok(parts) => self.produce(job, parts, pending).await,
            Err(reason) => self.dead_letter(job, reason, pending),
        }
    }

    /// Schedules `job` to be produced again after `RETRY_BACKOFF` (with the others waiting).
    fn retry_later(&mut self, job: Job, parts: RecordParts) {
        if self.retrying.is_empty() {
            self.retry_at = tokio::time::Instant::now() + RETRY_BACKOFF;
        }
        self.retrying_topics.insert(parts.topic.clone());
        self.retrying.insert(job.order, (job, parts));
    }

    /// Whether a record for `topic` must wait behind earlier ones that may be produced again.
    fn must_wait(&self, topic: &str) -> bool {
        let generation = self.producer.generation();
        self.retrying_topics.contains(topic)
            || self.checking.contains_key(topic)
            || self
                .in_flight
                .get(topic)
                .is_some_and(|by_generation| by_generation.keys().any(|g| *g < generation))
    }

    /// Produces the waiting records again, oldest first. A record whose topic must still wait
    /// (a record of it failed again meanwhile, or is still with a replaced producer) waits for
    /// the next round, and so do the later ones of that topic.
    async fn produce_again(&mut self, pending: &mut Pending) {
        let waiting = std::mem::take(&mut self.retrying);
        self.retrying_topics.clear();
        for (job, parts) in waiting.into_values() {
            if self.must_wait(&parts.topic) {
                self.retry_later(job, parts);
            } else {
                self.produce(job, parts, pending).await;
            }
        }
    }

    /// A record handed to the producer of `generation` for `topic`.
    fn sent(&mut self, topic: &str, generation: u64) -> Sent {
        *self
            .in_flight
            .entry(topic.to_owned())
            .or_default()
            .entry(generation)
            .or_default() += 1;
        Sent {
            topic: topic.to_owned(),
            generation,
        }
    }

    /// The producer reported on a record it was handed.
    fn reported(&mut self, sent: &Sent) {
        if let Some(by_generation) = self.in_flight.get_mut(&sent.topic) {
            count_down(by_generation, &sent.generation);
            if by_generation.is_empty() {
                self.in_flight.remove(&sent.topic);
            }
        }
    }

    fn checked(&mut self, topic: &str) {
        count_down(&mut self.checking, topic);
    }

    async fn produce(&mut self, job: Job, parts: RecordParts, pending: &mut Pending) {
        let partition = self.partitions.choose(&parts.topic).await;
        loop {
            let mut headers = OwnedHeaders::new_with_capacity(parts.headers.len());
            for (k, v) in &parts.headers {
                headers = headers.insert(Header {
                    key: k,
                    value: Some(v.as_slice()),
                });
            }
            let mut record = FutureRecord::<[u8], [u8]>::to(&parts.topic)
                .payload(&parts.value)
                .headers(headers);
            if let Some(key) = &parts.key {
                record = record.key(key.as_slice());
            }
            if let Some(p) = partition {
                record = record.partition(p);
            }
            let waiting = self.producer.waiting(&parts.topic);
            let (producer, generation) = self.producer.get_with_generation();
            let error = match producer.send_result(record) {
                Ok(delivery) => {
                    let sent = self.sent(&parts.topic, generation);
                    pending.push(
                        async move {
                            let report = delivery.await;
                            drop(waiting);
                            match report {
                                Ok(Ok(_)) => Step::Delivered(job, sent),
                                Ok(Err((e, _))) => Step::Failed(job, parts, e, sent),
                                Err(_) => Step::Failed(job, parts, KafkaError::Canceled, sent),
                            }
                        }
                        .boxed(),
                    );
                    return;
                }
                Err((e, _)) => e,
            };
            match error {
                KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull) => {
                    // The producer's queue is full: let deliveries complete, then try again.
                    match pending.next().await {
                        Some(step) => Box::pin(self.after(step, pending)).await,
                        None => tokio::time::sleep(Duration::from_millis(10)).await,
                    }
                }
                e if is_permanent(&e) => {
                    self.refused(job, parts, e, pending);
                    return;
                }
                e => {
                    self.metrics.failed(&reason_label(&e));
                    self.not_delivered(&e, &parts.topic);
                    debug!(route = %self.route.name, error = %e, "produce failed; retrying");
                    tokio::time::sleep(RETRY_BACKOFF).await;
                }
            }
        }
    }

    async fn after(&mut self, step: Step, pending: &mut Pending) {
        match step {
            Step::Delivered(job, sent) => {
                self.reported(&sent);
                self.finish(job);
                self.metrics.delivered.inc();
                if self.blocked {
                    self.blocked = false;
                    self.producing.set(true);
                }
            }
            Step::DeadLettered(job) => {
                self.finish(job);
                self.metrics.dead_lettered.inc();
            }
            Step::Held(job, problem) => {
                // Frees its slot of the window without an acknowledgement: the broker keeps
                // the message and sends it again on the next connection, which the subscriber
                // opens once the dead-letter topic is usable. Healthy messages go on.
                error!(route = %self.route.name, topic = %job.msg.topic, %problem,
                    "undeliverable message held back unacknowledged: the dead-letter topic cannot take it");
                self.metrics.failed("dead_letter_topic_unusable");
                self.metrics.in_flight.dec();
                job.ticket.hold();
            }
            Step::Failed(job, parts, e, sent) if is_permanent(&e) => {
                self.reported(&sent);
                self.refused(job, parts, e, pending);
            }
            Step::Poison(job, reason, topic) => {
                self.checked(&topic);
                self.dead_letter(job, reason, pending);
            }
            Step::Unconfirmed(job, parts, e) => {
                self.checked(&parts.topic);
                self.metrics.failed(&reason_label(&e));
                warn!(route = %self.route.name, topic = %parts.topic, error = %e,
                    "Kafka reported the topic unknown but its metadata has it (a broker restarting?); producing the record again");
                self.retry_later(job, parts);
            }
            Step::Failed(job, parts, e, sent) => {
                self.reported(&sent);
                self.metrics.failed(&reason_label(&e));
                self.not_delivered(&e, &parts.topic);
                if is_purged(&e) {
                    // The watchdog replaced the producer and said so once.
                    debug!(route = %self.route.name, error = %e, "record given up by the replaced producer; producing it again");
                } else {
                    warn!(route = %self.route.name, error = %e, "delivery failed; producing the record again");
                }
                self.retry_later(job, parts);
            }
        }
    }

    /// A failure that is retried: a blocked topic makes the route not ready with the reason; a
    /// fatal one ends the process (see `ErrorClass`).
    fn not_delivered(&mut self, e: &KafkaError, topic: &str) {
        match classify(e) {
            ErrorClass::Blocked => {
                if !self.blocked {
                    error!(route = %self.route.name, %topic, error = %e, "Kafka refuses every record for this topic; retrying until it is fixed");
                }
                self.blocked = true;
                self.producing
                    .not_ready(format!("Kafka refuses records for topic {topic}: {e}"));
            }
            ErrorClass::Fatal => self
                .failure
                .fail(&format!("MQTT → Kafka route {}: {e}", self.route.name)),
            ErrorClass::Transient | ErrorClass::Poison => {}
        }
    }

    /// Completes a job; the caller counts its outcome afterwards, so a counter never runs
    /// ahead of the in-flight gauge.
    fn finish(&self, job: Job) {
        self.metrics.in_flight.dec();
        self.metrics.observe_latency(job.received_at.elapsed());
        job.ticket.complete();
    }

    /// A record Kafka refused for good. An unknown topic or partition is believed only when
    /// a fresh metadata request confirms it: librdkafka reports it from cached metadata,
    /// which a restarting broker can leave briefly wrong, and giving up there loses data.
    fn refused(&mut self, job: Job, parts: RecordParts, e: KafkaError, pending: &mut Pending) {
        let reason = format!("Kafka refused the record: {e}");
        if !is_missing_topic(&e) {
            self.dead_letter(job, reason, pending);
            return;
        }
        let producer = self.producer.get();
        *self.checking.entry(parts.topic.clone()).or_default() += 1;
        pending.push(
            async move {
                match topic_presence(&producer, &parts.topic).await {
                    TopicPresence::Missing => Step::Poison(job, reason, parts.topic),
                    TopicPresence::Present(_) | TopicPresence::Unknown => {
                        Step::Unconfirmed(job, parts, e)
                    }
                }
            }
            .boxed(),
        );
    }

    fn dead_letter(&mut self, job: Job, reason: String, pending: &mut Pending) {
        let Some(dead_letters) = self.dead_letters.clone() else {
            warn!(route = %self.route.name, topic = %job.msg.topic, %reason,
                "undeliverable message dropped: no dead-letter topic is configured");
            self.metrics.dropped.inc();
            self.metrics.in_flight.dec();
            job.ticket.complete();
            return;
        };
        warn!(route = %self.route.name, topic = %job.msg.topic, %reason, "message goes to the dead-letter topic");
        let letter = DeadLetter {
            route: self.route.name.clone(),
            direction: "mqtt_to_kafka",
            reason,
            source_topic: job.msg.topic.clone(),
            key: None,
            payload: job.msg.payload.to_vec(),
            extra_headers: vec![(
                "mkb.source.qos".to_owned(),
                job.msg.qos.to_string().into_bytes(),
            )],
        };
        pending.push(
            async move {
                match dead_letters.write(&letter).await {
                    Ok(_) => Step::DeadLettered(job),
                    Err(problem) => Step::Held(job, problem),
                }
            }
            .boxed(),
        );
    }
}

/// Takes one from `key`'s count, forgetting the key at zero.
fn count_down<K, Q>(counts: &mut HashMap<K, usize>, key: &Q)
where
    K: std::borrow::Borrow<Q> + std::hash::Hash + Eq,
    Q: std::hash::Hash + Eq + ?Sized,
{
    if let Some(n) = counts.get_mut(key) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            counts.remove(key);
        }
    }
}

/// A record the producer gave up because it was replaced (see `watchdog.rs`).
fn is_purged(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(RDKafkaErrorCode::PurgeQueue | RDKafkaErrorCode::PurgeInflight)
    )
}

fn reason_label(e: &KafkaError) -> String {
    match e.rdkafka_error_code() {
        Some(code) => format!("{code:?}"),
        None => "other".to_owned(),
    }
}
