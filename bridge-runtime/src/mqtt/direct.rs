//! Publishes and acknowledgements written straight to an MQTT 3.1.1 connection, many per write.
//!
//! rumqttc's event loop takes one request from its channel per poll and flushes the socket
//! after each: one `writev` and one TCP segment per publish or acknowledgement, which was 40 %
//! of the bridge's CPU on the Kafka → MQTT path (perf, QoS 1, 100 B). Its MQTT 3.1.1 event loop
//! exposes its state and connection, so between two polls the task that polls it can register
//! a batch with rumqttc's state (packet ids, in-flight limit, replay after a reconnect, all as
//! usual) and write it with one flush. rumqttc's MQTT 5 event loop keeps its connection
//! private: MQTT 5 requests still go one per poll through the request channel.

use std::time::Duration;

use bytes::Bytes;

use super::{qos4, AckToken, EventLoop};

/// In-flight slots that must be free (or half the limit, if smaller) before QoS 1 and 2
/// publishes are written again while others wait for their acknowledgement.
const REFILL_BATCH: usize = 64;
/// rumqttc's flush timeout for a request, the same here.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// A message to publish.
#[derive(Debug, Clone)]
pub struct Outbound {
    pub topic: String,
    pub payload: Bytes,
    pub qos: u8,
    pub retain: bool,
    /// MQTT 5 only; an MQTT 3.1.1 publish has no properties.
    pub user_properties: Vec<(String, String)>,
}

impl EventLoop {
    /// How many QoS 1 and 2 publishes [`EventLoop::write_publishes`] may take now (QoS 0 take
    /// no in-flight slot): `None` when publishes cannot be written directly now (MQTT 5, no
    /// connection, or events rumqttc has not returned yet, so that after a failed write the
    /// only unreturned events are the write's own); `Some(0)` while rumqttc's in-flight limit
    /// is reached (or nearly: see [`REFILL_BATCH`]) or a publish waits on a packet-id
    /// collision.
    pub fn direct_room(&self) -> Option<usize> {
        match self {
            EventLoop::V4(e) => {
                e.network.as_ref()?;
                if !e.state.events.is_empty() {
                    return None;
                }
                if e.state.collision.is_some() {
                    return Some(0);
                }
                let limit = usize::from(e.mqtt_options.inflight());
                let in_flight = usize::from(e.state.inflight());
                let free = limit.saturating_sub(in_flight);
                // With the window full, each acknowledgement frees one slot: refilling it at
                // once is one write per publish again (perf counted 0.65 writes per publish).
                // While acknowledgements are due, wait for a batch's worth of room.
                if in_flight > 0 && free < (limit / 2).clamp(1, REFILL_BATCH) {
                    return Some(0);
                }
                Some(free)
            }
            EventLoop::V5(_) => None,
        }
    }

    /// Writes `msgs` in order straight to the connection with one flush, bypassing rumqttc's
    /// request channel; each is reported as sent (with its packet id) by the next polls, in
    /// order, like a publish from the channel. Returns how many rumqttc took: fewer than
    /// `msgs.len()` only when the last one taken collided with a packet id still in flight
    /// (rumqttc sends it once that id is acknowledged, and takes nothing new until then).
    /// An error means the connection is broken; call [`EventLoop::discard_pending`] and poll
    /// to reconnect. The caller keeps within [`EventLoop::direct_room`].
    pub async fn write_publishes(&mut self, msgs: &[Outbound]) -> Result<usize, String> {
        let requests = msgs.iter().map(|msg| {
            // from_bytes shares the payload; `Publish::new` (and `try_publish`) would copy it.
            let mut publish =
                rumqttc::Publish::from_bytes(&msg.topic, qos4(msg.qos), msg.payload.clone());
            publish.retain = msg.retain;
            rumqttc::Request::Publish(publish)
        });
        self.write_requests(requests, "publishes").await
    }

    /// Registers `requests` in order with rumqttc's state and writes them with one flush;
    /// stops after the first one rumqttc holds back (a publish whose packet id collides with
    /// one in flight). Returns how many rumqttc took. `what` names them in errors.
    async fn write_requests(
        &mut self,
        requests: impl Iterator<Item = rumqttc::Request>,
        what: &str,
    ) -> Result<usize, String> {
        let EventLoop::V4(e) = self else {
            return Err(format!(
                "MQTT 5 {what} go through rumqttc's request channel"
            ));
        };
        let Some(network) = e.network.as_mut() else {
            return Err("not connected".to_owned());
        };
        let mut taken = 0;
        for request in requests {
            let packet = e
                .state
                .handle_outgoing_packet(request)
                .map_err(|err| err.to_string())?;
            taken += 1;
            match packet {
                Some(packet) => network.write(packet).await.map_err(|err| err.to_string())?,
                None => break,
            }
        }
        match tokio::time::timeout(FLUSH_TIMEOUT, network.flush()).await {
            Ok(flushed) => flushed.map_err(|err| err.to_string())?,
            Err(_) => return Err(format!("flushing {what} took over {FLUSH_TIMEOUT:?}")),
        }
        Ok(taken)
    }

    /// Packet ids of the publishes rumqttc took but whose "sent" events it has not returned
    /// yet, in order; the events are consumed. For after a failed [`EventLoop::write_publishes`].
    pub fn take_sent_events(&mut self) -> Vec<u16> {
        let EventLoop::V4(e) = self else {
            return Vec::new();
        };
        e.state
            .events
            .drain(..)
            .filter_map(|event| match event {
                rumqttc::Event::Outgoing(rumqttc::Outgoing::Publish(pkid)) => Some(pkid),
                _ => None,
            })
            .collect()
    }

    /// Whether requests can be written straight to the connection now: MQTT 3.1.1, connected.
    pub fn writes_directly(&self) -> bool {
        matches!(self, EventLoop::V4(e) if e.network.is_some())
    }

    /// Writes the acknowledgements (PUBACK for QoS 1, PUBREC for QoS 2) in order straight to
    /// the connection with one flush; each is reported by a later poll as
    /// [`super::Event::AckSent`], like one from the channel. An error means the connection is
    /// broken: call [`EventLoop::abandon_connection`].
    pub async fn write_acks(&mut self, tokens: &[AckToken]) -> Result<(), String> {
        let requests = tokens.iter().filter_map(|token| match token.qos {
            1 => Some(rumqttc::Request::PubAck(rumqttc::PubAck::new(token.pkid))),
            2 => Some(rumqttc::Request::PubRec(rumqttc::PubRec::new(token.pkid))),
            _ => None,
        });
        // rumqttc holds back no acknowledgement: each is written.
        self.write_requests(requests, "acknowledgements")
            .await
            .map(|_| ())
    }

    /// After a failed direct write: drops the connection as rumqttc does after a failed poll
    /// (the next poll reconnects), and the events of the old connection not yet returned.
    pub fn abandon_connection(&mut self) {
        if let EventLoop::V4(e) = self {
            e.clean();
        }
        self.drop_stale_events();
    }
}
