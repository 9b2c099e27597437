//! One Kafka → MQTT route: consume, render, publish, and commit an offset only once the broker
//! has confirmed every record up to it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use mkb_api::compiled::CompiledKafkaToMqtt;
use mkb_api::template::{KafkaRecord, KafkaTimestamp, OnMissing};
use mkb_api::topic::validate_topic_name;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{Offset, Timestamp, TopicPartitionList};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::consumer_context::RouteContext;
use super::offsets::{Commit, OffsetTracker, TopicPartition};
use super::publisher::Publisher;
use crate::kafka::{DeadLetter, DeadLetters};
use crate::metrics::RouteMetrics;
use crate::mqtt::Outbound;

struct Done {
    tp: TopicPartition,
    offset: i64,
    epoch: u64,
    started: Instant,
    /// Payload bytes the record holds while in flight.
    bytes: usize,
    outcome: Outcome,
}

enum Outcome {
    Published,
    DeadLettered,
    Dropped,
    /// The publisher stopped before the broker confirmed: not committed, consumed again later.
    Abandoned,
}

pub struct DownRoute {
    pub route: Arc<CompiledKafkaToMqtt>,
    /// Shared with the commit running on the blocking pool.
    pub consumer: Arc<StreamConsumer<RouteContext>>,
    /// The commit on its way, if any: one at a time.
    pub committing: Option<tokio::task::JoinHandle<()>>,
    pub offsets: Arc<Mutex<OffsetTracker>>,
    pub publisher: Publisher,
    pub dead_letters: Option<Arc<DeadLetters>>,
    pub metrics: RouteMetrics,
    pub window: usize,
    /// Payload bytes in flight before the route stops taking records.
    pub window_bytes: usize,
    pub bytes_in_flight: usize,
    /// Forward Kafka headers as MQTT 5 user properties.
    pub forward_headers: bool,
}

/// Where an undeliverable record came from, for the log.
struct Place<'a> {
    route: &'a str,
    topic: &'a str,
    partition: i32,
    offset: i64,
}

/// Writes an undeliverable record to the dead-letter topic, or drops it (logged and counted)
/// when the bridge has none.
async fn dead_letter(
    letter: Option<(Arc<DeadLetters>, DeadLetter)>,
    place: Place<'_>,
    reason: &str,
) -> Outcome {
    let Place {
        route,
        topic,
        partition,
        offset,
    } = place;
    let Some((dead_letters, letter)) = letter else {
        warn!(%route, %topic, partition, offset, %reason,
            "undeliverable record dropped: no dead-letter topic is configured");
        return Outcome::Dropped;
    };
    warn!(%route, %topic, partition, offset, %reason, "record goes to the dead-letter topic");
    // Until the topic takes it, the record stays uncommitted (its partition's commits wait);
    // other partitions and routes go on.
    let mut backoff = Duration::from_secs(1);
    loop {
        // While the topic is known to be unusable, wait without asking (and without a
        // warning each time).
        if dead_letters.usable() {
            match dead_letters.write(&letter).await {
                Ok(_) => return Outcome::DeadLettered,
                Err(problem) => {
                    warn!(%route, %topic, partition, offset, %problem,
                        "the dead-letter topic cannot take the record; it stays uncommitted");
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

const COMMIT_INTERVAL: Duration = Duration::from_millis(500);
/// The most the final commit and leaving the group may take on shutdown.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a full window may stop the route taking records before its partitions are paused.
const PAUSE_AFTER: Duration = Duration::from_secs(1);

impl DownRoute {
    /// Consumes until `stop`, then finishes in-flight records within `grace`, commits, and
    /// leaves the group.
    pub async fn run(mut self, stop: CancellationToken, grace: Duration) {
        let mut in_flight: FuturesUnordered<BoxFuture<'static, Done>> = FuturesUnordered::new();
        let mut commit_tick = tokio::time::interval(COMMIT_INTERVAL);
        let mut paused = false;
        let mut full_since: Option<tokio::time::Instant> = None;
        let mut consumer_failing: Option<String> = None;
        loop {
            // A full window stops taking records. If it stays full for PAUSE_AFTER, the
            // partitions are paused and the consumer is polled on: a consumer not polled for
            // max.poll.interval.ms would be put out of its group. Pausing only then matters
            // for speed: a pause drops librdkafka's prefetched records, and the fetches after
            // the resume wait out fetch.queue.backoff.ms. Resuming waits for a half-empty
            // window for the same reason.
            let full = in_flight.len() >= self.window || self.bytes_in_flight >= self.window_bytes;
            let half_empty =
                in_flight.len() <= self.window / 2 && self.bytes_in_flight <= self.window_bytes / 2;
            let now = tokio::time::Instant::now();
            let pause_at = *full_since.get_or_insert(now) + PAUSE_AFTER;
            if !full {
                full_since = None;
            }
            if (!paused && full && now >= pause_at) || (paused && half_empty) {
                paused = !paused;
                self.pause_all(paused);
            }
            let take = !full || paused;
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                Some(done) = in_flight.next(), if !in_flight.is_empty() => self.finish(done),
                _ = commit_tick.tick() => self.commit(),
                _ = tokio::time::sleep_until(pause_at), if !take => {}
                message = self.consumer.recv(), if take => match message {
                    Ok(m) => {
                        consumer_failing = None;
                        // Fetched before the pause took effect (or newly assigned): taken,
                        // and its partition paused too.
                        if paused {
                            self.pause_partition(m.topic(), m.partition());
                        }
                        let (record, bytes) = self.start(&m);
                        self.bytes_in_flight += bytes;
                        in_flight.push(record);
                    }
                    Err(e) => {
                        // Once per kind of error until a record arrives; the repeats at debug.
                        let text = e.to_string();
                        if consumer_failing.as_deref() == Some(text.as_str()) {
                            debug!(route = %self.route.name, error = %e, "Kafka consumer error (again)");
                        } else {
                            warn!(route = %self.route.name, error = %e, "Kafka consumer error; retrying");
                            consumer_failing = Some(text);
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                },
            }
        }
        let deadline = tokio::time::Instant::now() + grace;
        while !in_flight.is_empty() {
            tokio::select! {
                Some(done) = in_flight.next() => self.finish(done),
                _ = tokio::time::sleep_until(deadline) => {
                    warn!(route = %self.route.name, records = in_flight.len(),
                        "grace period over with records unconfirmed; they will be consumed again");
                    break;
                }
            }
        }
        self.close().await;
    }

    /// Commits every position Kafka has not confirmed, waiting for the answer, and leaves the
    /// group; on the blocking pool, as these calls wait on the coordinator. Bounded: a
    /// coordinator that does not answer defers a commit for up to the session timeout (10 s).
    async fn close(mut self) {
        if let Some(committing) = self.committing.take() {
            let _ = committing.await;
        }
        let (consumer, offsets, route) = (self.consumer, self.offsets, self.route.name.clone());
        let closing = tokio::task::spawn_blocking(move || {
            let commits = match offsets.lock() {
                Ok(mut o) => o.all_uncommitted(),
                Err(_) => Vec::new(),
            };
            if !commits.is_empty() {
                match commit_and_record(&consumer, &commits) {
                    Ok(()) => {
                        info!(route = %route, partitions = commits.len(), "final offsets committed")
                    }
                    Err(e) => {
                        error!(route = %route, error = %e, "the final offset commit failed; records since the last commit will be consumed again")
                    }
                }
            }
            consumer.unsubscribe();
            // Leaves the group (waits on the coordinator).
            drop(consumer);
            info!(route = %route, "consumer stopped");
        });
        match tokio::time::timeout(CLOSE_TIMEOUT, closing).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                error!(route = %self.route.name, error = %e, "closing the consumer failed")
            }
            Err(_) => {
                error!(route = %self.route.name, "the consumer did not leave its group within {}s; going on without it", CLOSE_TIMEOUT.as_secs())
            }
        }
    }

    /// Pauses (or resumes) every assigned partition. Paused partitions' prefetched records
    /// are dropped by librdkafka and fetched again after the resume, from the last one taken.
    fn pause_all(&self, pause: bool) {
        let Ok(assignment) = self.consumer.assignment() else {
            return;
        };
        let result = if pause {
            self.consumer.pause(&assignment)
        } else {
            self.consumer.resume(&assignment)
        };
        if let Err(e) = result {
            warn!(route = %self.route.name, error = %e, pause, "cannot pause or resume partitions");
        }
    }

    fn pause_partition(&self, topic: &str, partition: i32) {
        let mut list = TopicPartitionList::new();
        list.add_partition(topic, partition);
        if let Err(e) = self.consumer.pause(&list) {
            warn!(route = %self.route.name, error = %e, "cannot pause a partition");
        }
    }

    /// Starts a record on its way; returns it and the payload bytes it holds.
    fn start(&self, m: &BorrowedMessage<'_>) -> (BoxFuture<'static, Done>, usize) {
        let tp = (m.topic().to_owned(), m.partition());
        let offset = m.offset();
        let epoch = self
            .offsets
            .lock()
            .map(|mut o| o.started(&tp, offset))
            .unwrap_or_default();
        self.metrics.received.inc();
        self.metrics.in_flight.inc();
        let bytes = m.payload_len() + m.key().map_or(0, <[u8]>::len);
        let started = Instant::now();
        let headers: Vec<(&str, Option<&[u8]>)> = m
            .headers()
            .map(|h| h.iter().map(|x| (x.key, x.value)).collect())
            .unwrap_or_default();
        let timestamp = match m.timestamp() {
            Timestamp::NotAvailable => KafkaTimestamp::NotAvailable,
            Timestamp::CreateTime(t) => KafkaTimestamp::CreateTime(t),
            Timestamp::LogAppendTime(t) => KafkaTimestamp::LogAppendTime(t),
        };
        let record = KafkaRecord::new(
            m.topic(),
            m.partition(),
            offset,
            m.key(),
            m.payload(),
            timestamp,
            headers,
        );
        let done = move |outcome| Done {
            tp,
            offset,
            epoch,
            started,
            bytes,
            outcome,
        };
        let record = match self.render(&record) {
            Ok(outbound) => {
                // Kept until the broker answers: a refused publish goes to the dead-letter topic.
                let spare = self
                    .dead_letters
                    .clone()
                    .map(|dl| (dl, self.letter(&record, String::new())));
                let confirmed = self.publisher.publish(outbound);
                let (route, topic, partition) = (
                    self.route.name.clone(),
                    record.topic.to_owned(),
                    record.partition,
                );
                async move {
                    match confirmed.await {
                        Ok(Ok(())) => done(Outcome::Published),
                        Ok(Err(reason)) => {
                            let place = Place {
                                route: &route,
                                topic: &topic,
                                partition,
                                offset,
                            };
                            let spare = spare.map(|(dl, letter)| {
                                (
                                    dl,
                                    DeadLetter {
                                        reason: reason.clone(),
                                        ..letter
                                    },
                                )
                            });
                            // Boxed: inline, the rare dead-letter write would make every
                            // record's future as large as its state (kilobytes per record).
                            done(Box::pin(dead_letter(spare, place, &reason)).await)
                        }
                        Err(_) => done(Outcome::Abandoned),
                    }
                }
                .boxed()
            }
            Err(reason) => {
                let letter = self
                    .dead_letters
                    .clone()
                    .map(|dl| (dl, self.letter(&record, reason.clone())));
                let (route, topic, partition) = (
                    self.route.name.clone(),
                    record.topic.to_owned(),
                    record.partition,
                );
                async move {
                    let place = Place {
                        route: &route,
                        topic: &topic,
                        partition,
                        offset,
                    };
                    done(dead_letter(letter, place, &reason).await)
                }
                .boxed()
            }
        };
        (record, bytes)
    }

    fn render(&self, record: &KafkaRecord<'_>) -> Result<Outbound, String> {
        let topic = self
            .route
            .topic
            .render_string(record, OnMissing::Fail)
            .map_err(|e| format!("mqtt.topic: {e}"))?;
        validate_topic_name(&topic)
            .map_err(|e| format!("mqtt.topic: rendered {topic:?}, which {e}"))?;
        let payload = self
            .route
            .payload
            .render(record, OnMissing::Empty)
            .map_err(|e| format!("mqtt.payload: {e}"))?;
        let user_properties = if self.forward_headers {
            record
                .headers
                .iter()
                .map(|(k, v)| {
                    (
                        (*k).to_owned(),
                        String::from_utf8_lossy(v.unwrap_or_default()).into_owned(),
                    )
                })
                .collect()
        } else {
            Vec::new()
        };
        Ok(Outbound {
            topic,
            payload: Bytes::from(payload),
            qos: self.route.qos,
            retain: self.route.retain,
            user_properties,
        })
    }

    /// The dead letter of `record`, with its coordinates and original headers.
    fn letter(&self, record: &KafkaRecord<'_>, reason: String) -> DeadLetter {
        let mut extra_headers = vec![
            (
                "mkb.source.partition".to_owned(),
                record.partition.to_string().into_bytes(),
            ),
            (
                "mkb.source.offset".to_owned(),
                record.offset.to_string().into_bytes(),
            ),
        ];
        extra_headers.extend(
            record
                .headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.unwrap_or_default().to_vec())),
        );
        DeadLetter {
            route: self.route.name.clone(),
            direction: "kafka_to_mqtt",
            reason,
            source_topic: record.topic.to_owned(),
            key: record.key.map(<[u8]>::to_vec),
            payload: record.value.unwrap_or_default().to_vec(),
            extra_headers,
        }
    }

    fn finish(&mut self, done: Done) {
        self.bytes_in_flight -= done.bytes;
        if let Ok(mut offsets) = self.offsets.lock() {
            if !matches!(done.outcome, Outcome::Abandoned) {
                offsets.confirmed(&done.tp, done.offset, done.epoch);
            }
        }
        self.metrics.in_flight.dec();
        match done.outcome {
            Outcome::Published => {
                self.metrics.delivered.inc();
                self.metrics.observe_latency(done.started.elapsed());
            }
            Outcome::DeadLettered => {
                self.metrics.dead_lettered.inc();
            }
            Outcome::Dropped => {
                self.metrics.dropped.inc();
            }
            Outcome::Abandoned => {}
        }
    }

    /// Commits the due positions on the blocking pool (a synchronous commit, so Kafka's
    /// answer is known: librdkafka reports none for an asynchronous one without a commit
    /// callback, which rust-rdkafka does not set), unless the previous one is still on its
    /// way.
    fn commit(&mut self) {
        if self.committing.as_ref().is_some_and(|c| !c.is_finished()) {
            return;
        }
        let commits = match self.offsets.lock() {
            Ok(mut o) => o.due_commits(),
            Err(_) => return,
        };
        if commits.is_empty() {
            return;
        }
        let consumer = self.consumer.clone();
        self.committing = Some(tokio::task::spawn_blocking(move || {
            let _ = commit_and_record(&consumer, &commits);
        }));
    }
}

/// Commits `commits` synchronously (it waits on the coordinator: call it off the async
/// workers) and records Kafka's answer.
fn commit_and_record(
    consumer: &StreamConsumer<RouteContext>,
    commits: &[Commit],
) -> rdkafka::error::KafkaResult<()> {
    let result = consumer.commit(&commit_list(commits), CommitMode::Sync);
    consumer.context().commit_answered(&result, commits);
    result
}

fn commit_list(commits: &[Commit]) -> TopicPartitionList {
    let mut list = TopicPartitionList::new();
    for c in commits {
        let _ = list.add_partition_offset(&c.tp.0, c.tp.1, Offset::Offset(c.offset));
    }
    list
}
