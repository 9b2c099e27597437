//! Sustained QoS 1 load in both directions, straight to the brokers (never through the
//! proxies: the faults are between the bridge and the brokers). Every message carries a
//! sequence number; the receivers record when each first arrives.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use tokio::task::JoinHandle;

use super::tally::{seq_of, Tally};
use super::Brokers;

/// How many messages a sender has handed over, and how many the broker confirmed.
#[derive(Clone, Default)]
pub struct Counts {
    pub sent: Arc<AtomicU64>,
    pub confirmed: Arc<AtomicU64>,
}

impl Counts {
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::SeqCst)
    }
    pub fn confirmed(&self) -> u64 {
        self.confirmed.load(Ordering::SeqCst)
    }
}

fn payload(seq: u64) -> Vec<u8> {
    padded_payload(seq, 0)
}

/// `payload(seq)` with a `pad` field of `padding` random letters and digits (incompressible
/// enough that the record stays about that large).
fn padded_payload(seq: u64, padding: usize) -> Vec<u8> {
    use rand::distr::{Alphanumeric, SampleString};
    let device = seq % 10;
    if padding == 0 {
        return format!("{{\"seq\":{seq},\"device\":\"dev-{device}\"}}").into_bytes();
    }
    let pad = Alphanumeric.sample_string(&mut rand::rng(), padding);
    format!("{{\"seq\":{seq},\"device\":\"dev-{device}\",\"pad\":\"{pad}\"}}").into_bytes()
}

/// Whether message `seq` is one of the load's poison messages (see [`MqttSender::start`] and
/// [`KafkaSender::start`]).
fn is_poison(seq: u64, poison_every: u64) -> bool {
    poison_every > 0 && seq % poison_every == poison_every - 1
}

/// The sequence number of an MQTT → Kafka poison message (`poison <seq>`).
pub fn poison_seq(payload: &[u8]) -> Option<u64> {
    std::str::from_utf8(payload)
        .ok()?
        .strip_prefix("poison ")?
        .parse()
        .ok()
}

/// Messages due by now at `rate` per second since `start`.
fn due(start: Instant, rate: u32) -> u64 {
    (start.elapsed().as_secs_f64() * f64::from(rate)) as u64
}

fn mqtt_options(client_id: &str, brokers: &Brokers) -> MqttOptions {
    let mut o = MqttOptions::new(client_id, &brokers.mqtt_host, brokers.mqtt_port);
    o.set_keep_alive(Duration::from_secs(10))
        .set_clean_start(false)
        .set_session_expiry_interval(Some(3600));
    o
}

/// Publishes `{"seq":N}` (padded with `padding` bytes) at QoS 1 to `<ns>/up/dev-<N mod 10>`
/// at `rate` per second until stopped. Unconfirmed publishes are sent again after a reconnection (rumqttc keeps them).
pub struct MqttSender {
    pub counts: Counts,
    stop: Arc<AtomicBool>,
    task: JoinHandle<()>,
    poller: JoinHandle<()>,
}

impl MqttSender {
    /// `poison_every`: every that many-th message (0: none) is `poison <seq>`, not JSON, which
    /// a route rendering a JSON field cannot turn into a record: it goes to the dead-letter
    /// topic.
    pub fn start(
        ns: &str,
        brokers: &Brokers,
        rate: u32,
        padding: usize,
        poison_every: u64,
    ) -> Self {
        let mut opts = mqtt_options(&format!("{ns}-load-pub"), brokers);
        // A persistent session: rumqttc sends the unconfirmed publishes again only when the
        // broker resumes it (it drops them on a clean one).
        opts.set_outgoing_inflight_upper_limit(1000);
        // No request queue (capacity 0): rumqttc 0.25 moves queued publishes into its resend
        // list when a connection drops, gives them packet ids there that can collide with the
        // in-flight ones it resends, and keeps one collided publish only: with HiveMQ's receive
        // maximum of 10, a restart lost up to 634 publishes this way, never sent again.
        let (client, mut eventloop) = AsyncClient::new(opts, 0);
        let counts = Counts::default();
        let confirmed = counts.confirmed.clone();
        let poller = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        confirmed.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        });
        let stop = Arc::new(AtomicBool::new(false));
        let (sent, stopping, ns) = (counts.sent.clone(), stop.clone(), ns.to_owned());
        let task = tokio::spawn(async move {
            let start = Instant::now();
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            while !stopping.load(Ordering::SeqCst) {
                tick.tick().await;
                let mut seq = sent.load(Ordering::SeqCst);
                while seq < due(start, rate) && !stopping.load(Ordering::SeqCst) {
                    let topic = format!("{ns}/up/dev-{}", seq % 10);
                    let payload = if is_poison(seq, poison_every) {
                        format!("poison {seq}").into_bytes()
                    } else {
                        padded_payload(seq, padding)
                    };
                    if client
                        .publish(topic, QoS::AtLeastOnce, false, payload)
                        .await
                        .is_err()
                    {
                        return;
                    }
                    seq += 1;
                    sent.store(seq, Ordering::SeqCst);
                }
            }
        });
        Self {
            counts,
            stop,
            task,
            poller,
        }
    }

    /// Stops sending (returns at once).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Stops sending; waits (up to `timeout`) until the broker confirmed every publish.
    pub async fn finish(&mut self, timeout: Duration) {
        self.stop();
        let _ = (&mut self.task).await;
        let deadline = Instant::now() + timeout;
        while self.counts.confirmed() < self.counts.sent() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for MqttSender {
    fn drop(&mut self) {
        self.task.abort();
        self.poller.abort();
    }
}

/// Reads every partition of `topic` from the beginning into a tally. Assigned, not
/// subscribed: a consumer group's rebalance (its coordinator moving in a failover) would start
/// it over from the beginning, and what it read twice would count as the bridge's duplicates.
pub struct KafkaReceiver {
    pub tally: Tally,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl KafkaReceiver {
    pub fn start(ns: &str, topic: &str, brokers: &Brokers) -> Self {
        let tally = Tally::default();
        let sink = tally.clone();
        let mut receiver = Self::start_with(ns, topic, brokers, move |payload, at| {
            if let Some(seq) = seq_of(payload) {
                sink.record(seq, at);
            }
        });
        receiver.tally = tally;
        receiver
    }

    /// Reads `topic` as [`KafkaReceiver::start`] does, handing every record's value to `sink`
    /// (its own `tally` stays empty).
    pub fn start_with(
        ns: &str,
        topic: &str,
        brokers: &Brokers,
        sink: impl Fn(&[u8], Instant) + Send + 'static,
    ) -> Self {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers.kafka_bootstrap)
            .set("group.id", format!("{ns}-load-reader"))
            .set("enable.auto.commit", "false")
            .create()
            .expect("load consumer");
        let meta = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .expect("the load topic's metadata");
        let mut partitions = TopicPartitionList::new();
        for p in meta.topics().iter().flat_map(|t| t.partitions()) {
            partitions
                .add_partition_offset(topic, p.id(), Offset::Beginning)
                .expect("a partition to read");
        }
        assert!(partitions.count() > 0, "topic {topic} has no partitions");
        consumer
            .assign(&partitions)
            .expect("assign the load consumer");
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            while !stopping.load(Ordering::SeqCst) {
                if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                    sink(m.payload().unwrap_or_default(), Instant::now());
                }
            }
        });
        Self {
            tally: Tally::default(),
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for KafkaReceiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Counts the producer's delivery reports.
struct Confirmations(Arc<AtomicU64>);

impl ClientContext for Confirmations {}

impl ProducerContext for Confirmations {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: Self::DeliveryOpaque) {
        if result.is_ok() {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Produces `{"seq":N}` keyed `dev-<N mod 10>` to `topic` at `rate` per second until
/// stopped; idempotent, and never giving up on a record. Every `poison_every`-th record (0:
/// none) is keyed `dev+<N>`, which a route publishing to `.../${.key}` cannot turn into a topic
/// name (a wildcard): it goes to the dead-letter topic.
pub struct KafkaSender {
    pub counts: Counts,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl KafkaSender {
    pub fn start(topic: &str, brokers: &Brokers, rate: u32, poison_every: u64) -> Self {
        let counts = Counts::default();
        let producer: BaseProducer<Confirmations> = ClientConfig::new()
            .set("bootstrap.servers", &brokers.kafka_bootstrap)
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .set("message.timeout.ms", "0")
            .create_with_context(Confirmations(counts.confirmed.clone()))
            .expect("load producer");
        let stop = Arc::new(AtomicBool::new(false));
        let (sent, stopping, topic) = (counts.sent.clone(), stop.clone(), topic.to_owned());
        let thread = std::thread::spawn(move || {
            let start = Instant::now();
            let mut seq = 0u64;
            while !stopping.load(Ordering::SeqCst) {
                while seq < due(start, rate) && !stopping.load(Ordering::SeqCst) {
                    let key = if is_poison(seq, poison_every) {
                        format!("dev+{seq}")
                    } else {
                        format!("dev-{}", seq % 10)
                    };
                    let value = payload(seq);
                    let record = BaseRecord::to(&topic).key(&key).payload(&value);
                    match producer.send(record) {
                        Ok(()) => {
                            seq += 1;
                            sent.store(seq, Ordering::SeqCst);
                        }
                        Err(_) => {
                            producer.poll(Duration::from_millis(10));
                        }
                    }
                }
                producer.poll(Duration::from_millis(10));
            }
            let _ = producer.flush(Duration::from_secs(120));
        });
        Self {
            counts,
            stop,
            thread: Some(thread),
        }
    }

    /// Stops producing (returns at once).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Stops producing and waits until Kafka confirmed what was produced (up to 120 s).
    pub fn finish(&mut self) {
        self.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for KafkaSender {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Subscribes at QoS 1 with a persistent session to `filter` and tallies what arrives.
pub struct MqttReceiver {
    pub tally: Tally,
    task: JoinHandle<()>,
}

impl MqttReceiver {
    pub async fn start(ns: &str, filter: &str, brokers: &Brokers) -> Self {
        let (client, mut eventloop) =
            AsyncClient::new(mqtt_options(&format!("{ns}-load-sub"), brokers), 100);
        let tally = Tally::default();
        let sink = tally.clone();
        let (subscribed_tx, mut subscribed) = tokio::sync::watch::channel(false);
        let filter = filter.to_owned();
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let _ = client.subscribe(filter.clone(), QoS::AtLeastOnce).await;
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        let _ = subscribed_tx.send(true);
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        if let Some(seq) = seq_of(&p.payload) {
                            sink.record(seq, Instant::now());
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), subscribed.wait_for(|s| *s))
            .await
            .expect("the load subscriber subscribes within 10 s")
            .expect("load subscriber task alive");
        Self { tally, task }
    }
}

impl Drop for MqttReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}
