//! MQTT load (many publishers, at a set rate or flat out) and the MQTT sinks: a bare
//! subscriber that counts arrivals (the ceiling, and the counter behind every Kafka -> MQTT
//! run) and one that reads every message's stamp for its latency. rumqttc over MQTT 3.1.1,
//! acknowledging as it reads.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS};
use tokio::time::sleep_until;

use crate::latency::Latencies;
use crate::payload::{now_ns, read_stamp, stamped};

/// What to publish: `count` messages of `size` bytes over `connections` clients, client `i`
/// on `<prefix>/d<i>/state`, flat out or at `rate` messages per second in all.
#[derive(Debug, Clone)]
pub struct Load {
    pub port: u16,
    pub prefix: String,
    pub connections: u64,
    pub count: u64,
    pub size: usize,
    pub qos: QoS,
    pub rate: Option<f64>,
}

pub fn qos(level: u8) -> QoS {
    match level {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

fn options(id: &str, port: u16) -> MqttOptions {
    let mut o = MqttOptions::new(id, "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(30));
    o.set_inflight(1000);
    o.set_max_packet_size(1 << 20, 1 << 20);
    o
}

/// Publishes the load and returns once the broker has taken every message (QoS 1: every
/// PUBACK; QoS 0: a QoS 1 fence after the last, since the broker handles a connection's
/// packets in order). Returns the seconds it took.
pub async fn publish(load: &Load) -> Result<f64> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..load.connections {
        let count = load.count / load.connections + u64::from(i < load.count % load.connections);
        tasks.push(tokio::spawn(publish_one(load.clone(), i, count)));
    }
    for t in tasks {
        t.await.context("publisher task")??;
    }
    Ok(started.elapsed().as_secs_f64())
}

async fn publish_one(load: Load, index: u64, count: u64) -> Result<()> {
    let id = format!("{}-pub-{index}", load.prefix.replace('/', "-"));
    let (client, events) = AsyncClient::new(options(&id, load.port), 10_000);
    let acks = tokio::spawn(await_acks(events, load.qos, count));
    let topic = format!("{}/d{index}/state", load.prefix);
    let per_connection = load.rate.map(|r| r / load.connections as f64);
    let started = Instant::now();
    for k in 0..count {
        if let Some(rate) = per_connection {
            let due = started + Duration::from_secs_f64(k as f64 / rate);
            if due > Instant::now() {
                sleep_until(due.into()).await;
            }
        }
        let seq = index + k * load.connections;
        client
            .publish(&topic, load.qos, false, stamped(seq, load.size))
            .await?;
    }
    if load.qos == QoS::AtMostOnce {
        client
            .publish(
                format!("{}/fence", load.prefix),
                QoS::AtLeastOnce,
                false,
                "",
            )
            .await?;
    }
    let acked = acks.await.context("ack task")?;
    client.disconnect().await.ok();
    acked
}

/// Publishes `load` flat out on one connection the way a batching client does: as many
/// publishes per socket write as rumqttc's in-flight limit allows (QoS 1, refilled 64 or
/// more at a time) or 256 (QoS 0),
/// written straight to rumqttc's MQTT 3.1.1 connection between polls as bridge-runtime's
/// publisher does. rumqttc's own `publish` costs one write per message, which would make the
/// ceiling a client's rather than the broker's. Returns once the broker has taken every
/// message, like [`publish`].
pub async fn publish_batched(load: &Load) -> Result<f64> {
    const BATCH: usize = 256;
    let started = Instant::now();
    let id = format!("{}-pub-batched", load.prefix.replace('/', "-"));
    let mut events = EventLoop::new(options(&id, load.port), 10);
    loop {
        match events.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => break,
            Ok(_) => {}
            Err(e) => bail!("batching publisher cannot connect: {e}"),
        }
    }
    let topic = format!("{}/d0/state", load.prefix);
    let limit = usize::from(events.mqtt_options.inflight());
    let (mut sent, mut acked) = (0u64, 0u64);
    while sent < load.count {
        let in_flight = usize::from(events.state.inflight());
        let mut room = if load.qos == QoS::AtMostOnce {
            BATCH
        } else {
            limit.saturating_sub(in_flight).min(BATCH)
        };
        // Refilling a full window one slot per acknowledgement would be one write per
        // publish: wait for a batch's worth of room, as bridge-runtime's publisher does.
        if load.qos != QoS::AtMostOnce && in_flight > 0 && room < (limit / 2).clamp(1, 64) {
            room = 0;
        }
        if room > 0 && events.state.collision.is_none() {
            let network = events.network.as_mut().context("the connection is gone")?;
            for _ in 0..room.min((load.count - sent) as usize) {
                let publish =
                    rumqttc::Publish::from_bytes(&topic, load.qos, stamped(sent, load.size).into());
                if let Some(packet) = events
                    .state
                    .handle_outgoing_packet(rumqttc::Request::Publish(publish))?
                {
                    network.write(packet).await?;
                }
                sent += 1;
            }
            network.flush().await?;
            // Nobody reads the "sent" events; the acknowledgements are counted below.
            events
                .state
                .events
                .retain(|e| !matches!(e, Event::Outgoing(_)));
            if load.qos == QoS::AtMostOnce {
                continue;
            }
        }
        match events.poll().await {
            // QoS 1 ends at PUBACK, QoS 2 at PUBCOMP.
            Ok(Event::Incoming(Packet::PubAck(_) | Packet::PubComp(_))) => acked += 1,
            Ok(_) => {}
            Err(e) => bail!("batching publisher lost its connection after {sent} publishes: {e}"),
        }
    }
    let mut expected = load.count;
    if load.qos == QoS::AtMostOnce {
        // The broker handles a connection's packets in order: its answer to a QoS 1 fence
        // means it has taken every QoS 0 publish before it.
        let fence = rumqttc::Publish::new(format!("{}/fence", load.prefix), QoS::AtLeastOnce, "");
        let network = events.network.as_mut().context("the connection is gone")?;
        if let Some(packet) = events
            .state
            .handle_outgoing_packet(rumqttc::Request::Publish(fence))?
        {
            network.write(packet).await?;
        }
        network.flush().await?;
        expected = 1;
    }
    while acked < expected {
        match events.poll().await {
            Ok(Event::Incoming(Packet::PubAck(_) | Packet::PubComp(_))) => acked += 1,
            Ok(_) => {}
            Err(e) => {
                bail!("batching publisher lost its connection after {acked} acknowledgements: {e}")
            }
        }
    }
    Ok(started.elapsed().as_secs_f64())
}

/// Polls a publisher's event loop until the broker has acknowledged what it must.
async fn await_acks(mut events: EventLoop, qos: QoS, count: u64) -> Result<()> {
    let expected = if qos == QoS::AtMostOnce { 1 } else { count };
    let mut acked = 0;
    while acked < expected {
        match events.poll().await {
            Ok(Event::Incoming(Packet::PubAck(_))) => acked += 1,
            Ok(Event::Incoming(Packet::PubComp(_))) => acked += 1,
            Ok(_) => {}
            Err(e) => bail!("publisher connection failed after {acked} acknowledgements: {e}"),
        }
    }
    let_disconnect_out(&mut events, Duration::from_millis(200)).await;
    Ok(())
}

/// Polls until a queued DISCONNECT has gone out (or the connection ended), at most `within`.
async fn let_disconnect_out(events: &mut EventLoop, within: Duration) {
    let _ = tokio::time::timeout(within, async {
        while !matches!(
            events.poll().await,
            Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_)
        ) {}
    })
    .await;
}

/// Hands each arriving message's payload to `on_message`, which returns how many count so
/// far, until that reaches `expect` or nothing arrives for 30 s.
async fn receive(
    events: &mut EventLoop,
    expect: u64,
    who: &str,
    mut on_message: impl FnMut(&[u8]) -> u64,
) -> Result<()> {
    let mut counted = 0;
    while counted < expect {
        match tokio::time::timeout(Duration::from_secs(30), events.poll()).await {
            Ok(Ok(Event::Incoming(Packet::Publish(p)))) => counted = on_message(&p.payload),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => bail!("{who} lost its connection: {e}"),
            Err(_) => break,
        }
    }
    Ok(())
}

/// A subscriber on `filter` at `qos` that is subscribed when this returns, and from then on
/// records the latency of every message with a sequence number of at least `from_seq`.
pub struct LatencySink {
    task: tokio::task::JoinHandle<Result<Latencies>>,
}

impl LatencySink {
    pub async fn start(
        port: u16,
        id: &str,
        filter: &str,
        qos: QoS,
        from_seq: u64,
        expect: u64,
    ) -> Result<Self> {
        let (client, mut events) = subscribed(port, id, false, filter, qos).await?;
        let task = tokio::spawn(async move {
            let _client = client;
            let mut latencies = Latencies::new(from_seq, expect);
            receive(&mut events, expect, "latency subscriber", |payload| {
                let now = now_ns();
                if let Some((seq, sent)) = read_stamp(payload) {
                    latencies.record(seq, sent, now);
                }
                latencies.seen
            })
            .await?;
            Ok(latencies)
        });
        Ok(Self { task })
    }

    /// The latencies seen, once `expect` messages arrived or none came for 30 s.
    pub async fn finish(self) -> Result<Latencies> {
        self.task.await.context("latency subscriber task")?
    }
}

/// What a counting subscriber saw.
pub struct Count {
    pub received: u64,
    /// Seconds between the first and the last arrival.
    pub span: f64,
}

/// A subscriber that counts arrivals.
pub struct Counter {
    task: tokio::task::JoinHandle<Result<Count>>,
}

async fn subscribed(
    port: u16,
    id: &str,
    persistent: bool,
    filter: &str,
    qos: QoS,
) -> Result<(AsyncClient, EventLoop)> {
    let mut o = options(id, port);
    o.set_clean_session(!persistent);
    let (client, mut events) = AsyncClient::new(o, 100);
    client.subscribe(filter, qos).await?;
    loop {
        match tokio::time::timeout(Duration::from_secs(10), events.poll()).await {
            Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => return Ok((client, events)),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => bail!("subscriber {id}: {e}"),
            Err(_) => bail!("subscriber {id}: no SUBACK within 10 s"),
        }
    }
}

/// Creates the persistent session `id` subscribed to `filter`, and leaves it offline.
pub async fn create_session(port: u16, id: &str, filter: &str, qos: QoS) -> Result<()> {
    let (client, mut events) = subscribed(port, id, true, filter, qos).await?;
    client.disconnect().await?;
    let_disconnect_out(&mut events, Duration::from_secs(2)).await;
    Ok(())
}

impl Counter {
    /// A new subscription on `filter` at `qos`; returns once it is in place.
    pub async fn subscribe(
        port: u16,
        id: &str,
        filter: &str,
        qos: QoS,
        expect: u64,
    ) -> Result<Self> {
        let (client, events) = subscribed(port, id, false, filter, qos).await?;
        Ok(Self::count(client, events, expect))
    }

    /// Resumes the persistent session `id` and counts what the broker queued for it (which
    /// may arrive before any SUBACK would, so it does not subscribe again).
    pub fn resume(port: u16, id: &str, expect: u64) -> Self {
        let mut o = options(id, port);
        o.set_clean_session(false);
        let (client, events) = AsyncClient::new(o, 100);
        Self::count(client, events, expect)
    }

    /// Counts `expect` messages, or until none came for 30 s.
    fn count(client: AsyncClient, mut events: EventLoop, expect: u64) -> Self {
        let task = tokio::spawn(async move {
            let _client = client;
            let (mut received, mut first, mut last) = (0u64, None, Instant::now());
            receive(&mut events, expect, "counting subscriber", |_| {
                last = Instant::now();
                first.get_or_insert(last);
                received += 1;
                received
            })
            .await?;
            let span = first.map_or(0.0, |f| (last - f).as_secs_f64());
            Ok(Count { received, span })
        });
        Self { task }
    }

    pub async fn finish(self) -> Result<Count> {
        self.task.await.context("counting subscriber task")?
    }
}
