//! The subscriber's connection task: owns the MQTT connection, forwards what arrives to the
//! subscriber, writes the acknowledgements that are due (many per write) and carries out the
//! subscriber's requests (subscribe, unsubscribe, renew, disconnect).
//!
//! While the subscriber takes nothing (its window is full: Kafka is slow or down), the task
//! stops parsing messages but keeps the connection alive: acknowledgements are written, pings
//! go out on time, and a closed connection is noticed at once. TCP pushes back on the broker,
//! which keeps the messages queued for the session.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::acks::AckTracker;
use crate::mqtt::{self, Connection, Event};

/// What the connection task tells the subscriber.
#[derive(Debug)]
pub enum Update {
    /// Connection number `generation` is up; requests name it (see [`Link`]).
    Connected {
        connected: mqtt::Connected,
        generation: u64,
    },
    Event(Event),
    /// A connection attempt failed, or the connection was lost; the task reconnects.
    Lost(String),
}

pub type Updates = mpsc::Receiver<Update>;

/// What the subscriber asks of the connection task.
#[derive(Debug)]
enum Request {
    /// One SUBSCRIBE at `qos` per packet: its filters, and its subscription identifier.
    Subscribe {
        generation: u64,
        packets: Vec<(Vec<String>, Option<usize>)>,
        qos: u8,
    },
    Unsubscribe {
        generation: u64,
        filters: Vec<String>,
    },
    /// Drop the connection and connect again: the broker sends every unacknowledged message
    /// again.
    Renew,
    Disconnect,
}

/// The subscriber's handle on the connection task.
#[derive(Clone)]
pub struct Link {
    requests: mpsc::Sender<Request>,
    v5: bool,
}

impl Link {
    /// Subscribes on connection `generation` (nothing if that connection is gone: the
    /// subscriber subscribes again on the next): one SUBSCRIBE per filter that has a
    /// subscription identifier (it belongs to a SUBSCRIBE, MQTT 5), and one for all the others.
    /// Returns the filters of each packet, in order: one SUBACK answers each.
    pub async fn subscribe(
        &self,
        generation: u64,
        filters: &[(String, Option<usize>)],
        qos: u8,
    ) -> Vec<Vec<String>> {
        let mut packets: Vec<(Vec<String>, Option<usize>)> = Vec::new();
        let mut plain = Vec::new();
        for (filter, id) in filters {
            match id {
                Some(id) if self.v5 => packets.push((vec![filter.clone()], Some(*id))),
                _ => plain.push(filter.clone()),
            }
        }
        if !plain.is_empty() {
            packets.push((plain, None));
        }
        let sent = packets.iter().map(|(f, _)| f.clone()).collect();
        let request = Request::Subscribe {
            generation,
            packets,
            qos,
        };
        let _ = self.requests.send(request).await;
        sent
    }

    pub async fn unsubscribe(&self, generation: u64, filters: Vec<String>) {
        let _ = self
            .requests
            .send(Request::Unsubscribe {
                generation,
                filters,
            })
            .await;
    }

    /// Asks for a new connection; `false` if a request is already waiting.
    pub fn renew(&self) -> bool {
        self.requests.try_send(Request::Renew).is_ok()
    }

    /// Asks for a DISCONNECT (the session is kept); the task ends once the broker has closed
    /// the connection after it, having sent [`Event::DisconnectSent`].
    pub async fn disconnect(&self) {
        let _ = self.requests.send(Request::Disconnect).await;
    }
}

/// Most acknowledgements put on the connection at once (4 bytes each on the wire).
const MAX_ACK_BATCH: usize = 4096;

/// Starts the connection task; it runs until the DISCONNECT or until nobody listens.
/// `capacity` bounds the updates waiting for the subscriber.
pub fn spawn(
    settings: mqtt::Settings,
    capacity: usize,
    tracker: Arc<AckTracker>,
) -> (Updates, Link, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(capacity);
    let (requests, mut pending) = mpsc::channel(64);
    let link = Link {
        requests,
        v5: settings.v5,
    };
    let task = tokio::spawn(async move {
        let mut backoff = Duration::from_millis(100);
        let mut generation = 0;
        loop {
            let served = match Connection::open(&settings).await {
                Ok((mut conn, connected)) => {
                    generation += 1;
                    backoff = Duration::from_millis(100);
                    tracker.connected();
                    let update = Update::Connected {
                        connected,
                        generation,
                    };
                    if tx.send(update).await.is_err() {
                        return;
                    }
                    let served = serve(&mut conn, generation, &tx, &mut pending, &tracker).await;
                    if let Served::Disconnected = served {
                        conn.read_until_closed(mqtt::CLOSE_LIMIT).await;
                        return;
                    }
                    served
                }
                Err(e) => Served::Failed(e.to_string()),
            };
            match served {
                Served::Disconnected | Served::Abandoned => return,
                Served::Renew => continue,
                Served::Failed(e) => {
                    if tx.send(Update::Lost(e)).await.is_err() {
                        return;
                    }
                }
            }
            // A DISCONNECT asked for while there is no connection ends the task.
            let wait = tokio::time::sleep(backoff);
            tokio::pin!(wait);
            loop {
                tokio::select! {
                    _ = &mut wait => break,
                    request = pending.recv() => match request {
                        Some(Request::Disconnect) | None => return,
                        Some(_) => {}
                    },
                }
            }
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
    });
    (rx, link, task)
}

/// How a connection ended.
enum Served {
    Disconnected,
    Renew,
    Failed(String),
    /// The subscriber is gone.
    Abandoned,
}

/// Runs one connection until it ends.
async fn serve(
    conn: &mut Connection,
    generation: u64,
    tx: &mpsc::Sender<Update>,
    requests: &mut mpsc::Receiver<Request>,
    tracker: &AckTracker,
) -> Served {
    let mut permit: Option<mpsc::Permit<'_, Update>> = None;
    loop {
        for token in tracker.take_due(MAX_ACK_BATCH) {
            conn.ack(&token);
        }
        tokio::select! {
            biased;
            request = requests.recv() => {
                let done = match request {
                    None => return Served::Abandoned,
                    Some(Request::Renew) => return Served::Renew,
                    Some(Request::Disconnect) => {
                        conn.disconnect();
                        Ok(())
                    }
                    Some(Request::Subscribe { generation: g, packets, qos }) if g == generation => {
                        packets.iter().try_for_each(|(filters, id)| conn.subscribe(filters, qos, *id))
                    }
                    Some(Request::Unsubscribe { generation: g, filters }) if g == generation => {
                        conn.unsubscribe(&filters)
                    }
                    Some(_) => Ok(()),
                };
                if let Err(e) = done {
                    return Served::Failed(e.to_string());
                }
            }
            reserved = tx.reserve(), if permit.is_none() => match reserved {
                Ok(p) => permit = Some(p),
                Err(_) => return Served::Abandoned,
            },
            event = conn.next(permit.is_some()) => {
                let event = match event {
                    Ok(event) => event,
                    Err(e) => return Served::Failed(e.to_string()),
                };
                let disconnected = matches!(event, Event::DisconnectSent);
                let update = Update::Event(event);
                let sent = match permit.take() {
                    Some(p) => {
                        p.send(update);
                        true
                    }
                    // Only events that do not wait for parsing (the DISCONNECT written) come
                    // without a permit.
                    None => tx.send(update).await.is_ok(),
                };
                if !sent {
                    return Served::Abandoned;
                }
                if disconnected {
                    return Served::Disconnected;
                }
            }
            _ = tracker.wake.notified() => {}
        }
    }
}
