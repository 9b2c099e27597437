//! One MQTT connection, either protocol version, driven by the task that owns it: the caller
//! puts packets in (publishes, acknowledgements, subscriptions) and takes events out with
//! [`Connection::next`], which writes everything put in with as few writes as the socket
//! allows, reads, answers the broker's protocol packets (PINGRESP, PUBREL, PUBREC) itself, and
//! sends keep-alive pings on time even while the caller takes no events (see `next`).

use std::collections::VecDeque;
use std::time::Duration;

use thiserror::Error;
use tokio::time::{sleep_until, timeout, Instant};
use tracing::debug;

use super::in_flight::{InFlight, Use};
use super::options::Settings;
use super::reason;
use super::receipts::Receipts;
use super::transport::{self, Io};
use super::wire::{self, Packet, WireError};
use super::{AckToken, Outbound, Refusal};

/// In-flight windows narrower than this have every read acknowledged at once (see
/// [`Io::acknowledge_reads_at_once`]): refilled half at a time, a window of 512 that waits up
/// to 2 ms for each ACK still allows over 100,000 messages a second.
const NARROW_WINDOW: u16 = 512;
/// How long dialling, the TLS handshake and the CONNACK may take together.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// While the caller takes no events, bytes are still read (a closed connection is noticed)
/// until this many wait unparsed; then TCP pushes back on the broker.
const READ_AHEAD: usize = 1024 * 1024;

#[derive(Debug, Error)]
pub enum ConnectionError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("connecting took over {0:?}")]
    ConnectTimeout(Duration),
    #[error("the broker refused the connection: {0}")]
    Refused(String),
    #[error("the broker ended the connection with DISCONNECT: {0}")]
    Disconnected(String),
    #[error("no PINGRESP within the keep-alive interval of {0:?}")]
    PingTimeout(Duration),
    #[error("the broker sent a second CONNACK")]
    SecondConnAck,
}

/// What the broker said when it accepted the connection.
#[derive(Debug, Clone, Copy)]
pub struct Connected {
    pub session_present: bool,
    /// The broker's Maximum Packet Size (MQTT 5 CONNACK), if it announced one.
    pub max_packet_size: Option<u32>,
    /// The broker's Maximum QoS (MQTT 5 CONNACK), if it announced one.
    pub max_qos: Option<u8>,
    /// Whether the broker supports retained messages (MQTT 5 CONNACK), if it said.
    pub retain_available: Option<bool>,
}

/// What happened on the connection.
#[derive(Debug)]
pub enum Event {
    Message(Box<super::Inbound>),
    /// A publish is done: acknowledged (PUBACK for QoS 1, PUBCOMP for QoS 2), or for QoS 0
    /// written to the socket.
    Confirmed(u64),
    /// The broker refused a publish with a reason code in its PUBACK or PUBREC.
    Refused {
        tag: u64,
        refusal: Refusal,
    },
    /// The broker answered a SUBSCRIBE; `rejected` lists refused filters by position, with
    /// the reason.
    SubscribeAnswered {
        rejected: Vec<(usize, String)>,
    },
    Unsubscribed,
    /// The DISCONNECT has been written.
    DisconnectSent,
}

pub struct Connection {
    io: Io,
    v5: bool,
    in_flight: InFlight,
    /// Inbound QoS 2 publishes acknowledged with PUBREC, waiting for the broker's PUBREL, and
    /// the acknowledgements held back while too many are.
    receipts: Receipts,
    /// A DISCONNECT asked for while acknowledgements were held back: it follows them.
    disconnect_deferred: bool,
    /// QoS 0 publishes in the write buffer: where each ends, and its tag.
    unwritten_qos0: VecDeque<(u64, u64)>,
    /// Where the DISCONNECT ends in the output, once put in.
    disconnect_end: Option<u64>,
    events: VecDeque<Event>,
    keep_alive: Option<Duration>,
    last_sent: Instant,
    last_received: Instant,
    ping_sent: Option<Instant>,
}

impl Connection {
    /// Dials, sends CONNECT and waits for the CONNACK.
    pub async fn open(settings: &Settings) -> Result<(Self, Connected), ConnectionError> {
        match timeout(CONNECT_TIMEOUT, Self::handshake(settings)).await {
            Ok(result) => result,
            Err(_) => Err(ConnectionError::ConnectTimeout(CONNECT_TIMEOUT)),
        }
    }

    async fn handshake(settings: &Settings) -> Result<(Self, Connected), ConnectionError> {
        let stream = transport::dial(&settings.host, settings.port, settings.tls.as_ref()).await?;
        let mut io = Io::new(stream);
        let credentials = settings
            .credentials
            .as_ref()
            .map(|(u, p)| (u.as_str(), p.as_str()));
        let fields = wire::ConnectFields {
            client_id: &settings.client_id,
            keep_alive: settings.keep_alive_seconds,
            clean: settings.clean_session,
            credentials,
            receive_maximum: settings.inflight,
            session_expiry: settings.session_expiry,
        };
        wire::connect(&mut io.wbuf, settings.v5, &fields)?;
        let ack = loop {
            if let Some(packet) = wire::read(&mut io.rbuf, settings.v5, wire::MAX_PACKET as usize)?
            {
                match packet {
                    Packet::ConnAck(ack) => break ack,
                    Packet::Disconnect(d) => {
                        return Err(ConnectionError::Disconnected(describe(
                            d.reason,
                            d.reason_string,
                        )))
                    }
                    other => debug!(?other, "packet before the CONNACK ignored"),
                }
                continue;
            }
            io.step(true).await?;
        };
        if ack.code != 0 {
            let reason = if settings.v5 {
                describe(ack.code, ack.reason_string)
            } else {
                format!(
                    "return code {} ({})",
                    ack.code,
                    reason::return_code_name(ack.code)
                )
            };
            return Err(ConnectionError::Refused(reason));
        }
        let limit = ack
            .receive_maximum
            .unwrap_or(u16::MAX)
            .min(settings.inflight);
        if limit < NARROW_WINDOW {
            io.acknowledge_reads_at_once();
        }
        let keep_alive = (settings.keep_alive_seconds > 0)
            .then(|| Duration::from_secs(u64::from(settings.keep_alive_seconds)));
        let now = Instant::now();
        let connection = Self {
            io,
            v5: settings.v5,
            in_flight: InFlight::new(limit),
            receipts: Receipts::default(),
            disconnect_deferred: false,
            unwritten_qos0: VecDeque::new(),
            disconnect_end: None,
            events: VecDeque::new(),
            keep_alive,
            last_sent: now,
            last_received: now,
            ping_sent: None,
        };
        let connected = Connected {
            session_present: ack.session_present,
            max_packet_size: ack.max_packet_size,
            max_qos: ack.max_qos,
            retain_available: ack.retain_available,
        };
        Ok((connection, connected))
    }

    /// Publishes (and subscriptions) in flight, and the most publishes that may be: the
    /// broker's receive maximum, or the configured limit if lower.
    pub fn in_flight(&self) -> (usize, usize) {
        self.in_flight.usage()
    }

    /// Bytes waiting to be written.
    pub fn backlog(&self) -> usize {
        self.io.wbuf.len()
    }

    /// Puts a publish in; `tag` comes back with its [`Event::Confirmed`] or [`Event::Refused`].
    /// `Ok(false)` when a QoS 1 or 2 publish finds no room.
    pub fn publish(&mut self, tag: u64, msg: &Outbound) -> Result<bool, ConnectionError> {
        let what = match msg.qos {
            0 => None,
            1 => Some(Use::Qos1(tag)),
            _ => Some(Use::Qos2(tag)),
        };
        let pkid = match what.map(|w| self.in_flight.take(w)) {
            None => 0,
            Some(Some(id)) => id,
            Some(None) => return Ok(false),
        };
        wire::publish_packet(&mut self.io.wbuf, self.v5, msg, pkid)?;
        if msg.qos == 0 {
            let end = self.io.written + self.io.wbuf.len() as u64;
            self.unwritten_qos0.push_back((end, tag));
        }
        Ok(true)
    }

    /// Puts in the acknowledgement of an inbound publish: PUBACK (QoS 1) or PUBREC (QoS 2);
    /// held back, in order, while too many PUBRECs wait for their PUBREL (see `receipts`).
    pub fn ack(&mut self, token: &AckToken) {
        if let Some(token) = self.receipts.admit(*token) {
            wire::ack_token(&mut self.io.wbuf, &token, self.v5);
        }
    }

    /// Puts in one SUBSCRIBE.
    pub fn subscribe(
        &mut self,
        filters: &[String],
        qos: u8,
        id: Option<usize>,
    ) -> Result<(), ConnectionError> {
        let pkid = self.control_id(Use::Subscribe, "SUBSCRIBE")?;
        wire::subscribe(&mut self.io.wbuf, self.v5, pkid, filters, qos, id)?;
        Ok(())
    }

    /// Puts in one UNSUBSCRIBE.
    pub fn unsubscribe(&mut self, filters: &[String]) -> Result<(), ConnectionError> {
        let pkid = self.control_id(Use::Unsubscribe, "UNSUBSCRIBE")?;
        wire::unsubscribe(&mut self.io.wbuf, self.v5, pkid, filters)?;
        Ok(())
    }

    fn control_id(&mut self, what: Use, packet: &'static str) -> Result<u16, ConnectionError> {
        self.in_flight.take(what).ok_or_else(|| {
            ConnectionError::Wire(WireError::Encode {
                what: packet,
                detail: "every packet id is in use".to_owned(),
            })
        })
    }

    /// Puts in a DISCONNECT (MQTT 5: the session is kept for its expiry interval);
    /// [`Event::DisconnectSent`] follows once it is written.
    pub fn disconnect(&mut self) {
        if self.receipts.holding() {
            self.disconnect_deferred = true;
            return;
        }
        wire::disconnect_packet(&mut self.io.wbuf);
        self.disconnect_end = Some(self.io.written + self.io.wbuf.len() as u64);
    }

    /// Tags of the publishes in flight: sent (or being sent) and not answered.
    pub fn in_flight_tags(&self) -> Vec<u64> {
        let qos0 = self.unwritten_qos0.iter().map(|(_, tag)| *tag);
        self.in_flight.tags().chain(qos0).collect()
    }

    /// How long the oldest publish in flight has waited for its answer.
    pub fn oldest_unanswered(&self) -> Option<Duration> {
        self.in_flight.oldest().map(|t| t.elapsed())
    }

    /// The next event. Cancel-safe. With `deliver` false the caller takes no messages now:
    /// nothing is parsed, but whatever was put in is written, bytes are read ahead up to
    /// [`READ_AHEAD`] (a closed connection is still noticed), and pings keep the broker from
    /// ending the connection for silence, however long the caller waits.
    pub async fn next(&mut self, deliver: bool) -> Result<Event, ConnectionError> {
        loop {
            if let Some(event) = self.events.pop_front() {
                return Ok(event);
            }
            if deliver {
                while let Some(packet) =
                    wire::read(&mut self.io.rbuf, self.v5, wire::MAX_PACKET as usize)?
                {
                    if let Some(event) = self.incoming(packet)? {
                        return Ok(event);
                    }
                }
            }
            // Delivering, the buffer holds at most one incomplete packet (of any size).
            let read = deliver || self.io.rbuf.len() < READ_AHEAD;
            let before = (self.io.written, self.io.rbuf.len());
            let deadline = self.keep_alive_deadline();
            tokio::select! {
                stepped = self.io.step(read) => stepped?,
                _ = sleep_until(deadline) => self.keep_alive(deliver)?,
            }
            if self.io.rbuf.len() > before.1 {
                self.last_received = Instant::now();
            }
            if self.io.written > before.0 {
                self.written();
            }
        }
    }

    /// After the DISCONNECT was written: reads and drops what the broker still sends until it
    /// closes the connection, for at most `limit`. Closing a socket with unread data in it
    /// makes the kernel reset the connection, and a reset makes the broker's kernel discard
    /// what the broker had not read yet: the last acknowledgements, and the DISCONNECT. The
    /// broker closes the connection once it has read the DISCONNECT, so by then it has read
    /// everything before it. Publishes read here are not acknowledged: the broker sends them
    /// again to the next session.
    pub async fn read_until_closed(mut self, limit: Duration) {
        let closed = async {
            loop {
                self.io.rbuf.clear();
                if self.io.step(true).await.is_err() {
                    return;
                }
            }
        };
        if timeout(limit, closed).await.is_err() {
            debug!(
                ?limit,
                "the MQTT broker did not close the connection after the DISCONNECT"
            );
        }
    }

    fn keep_alive_deadline(&self) -> Instant {
        let Some(interval) = self.keep_alive else {
            return Instant::now() + Duration::from_secs(86_400);
        };
        match self.ping_sent {
            Some(sent) => sent + interval,
            None => self.last_sent.min(self.last_received) + interval,
        }
    }

    /// The keep-alive deadline passed: ping, or give up on a broker that did not answer the
    /// last ping (unless its answer may be among the bytes not parsed yet).
    fn keep_alive(&mut self, deliver: bool) -> Result<(), ConnectionError> {
        let Some(interval) = self.keep_alive else {
            return Ok(());
        };
        if self.ping_sent.is_some() && deliver && self.io.rbuf.is_empty() {
            return Err(ConnectionError::PingTimeout(interval));
        }
        wire::pingreq(&mut self.io.wbuf);
        self.ping_sent = Some(Instant::now());
        Ok(())
    }

    /// Bytes left: QoS 0 publishes and the DISCONNECT are done once written.
    fn written(&mut self) {
        self.last_sent = Instant::now();
        let written = self.io.written;
        while let Some(&(end, tag)) = self.unwritten_qos0.front() {
            if end > written {
                break;
            }
            self.unwritten_qos0.pop_front();
            self.events.push_back(Event::Confirmed(tag));
        }
        if self.disconnect_end.is_some_and(|end| end <= written) {
            self.disconnect_end = None;
            self.events.push_back(Event::DisconnectSent);
        }
    }

    /// Handles a packet from the broker; the event for the caller, if it is one.
    fn incoming(&mut self, packet: Packet) -> Result<Option<Event>, ConnectionError> {
        let event = match packet {
            // Delivered even when its packet id waits for a PUBREL: a broker resends a QoS 2
            // publish only on a new connection (where nothing waits), so on this one it is a
            // new message under a reused id. Mosquitto 2.0 does reuse ids that early when it
            // floods a session with queued messages; holding such a message back as a
            // duplicate would lose it. The write into Kafka is at least once either way.
            Packet::Publish(msg) => Some(Event::Message(msg)),
            Packet::PubAck(ack) => self
                .in_flight
                .end(ack.pkid, |u| matches!(u, Use::Qos1(_)))
                .and_then(Use::tag)
                .map(|tag| answer(tag, &ack)),
            Packet::PubRec(ack) if ack.reason >= 0x80 => self
                .in_flight
                .end(ack.pkid, |u| matches!(u, Use::Qos2(_)))
                .and_then(Use::tag)
                .map(|tag| answer(tag, &ack)),
            Packet::PubRec(ack) => {
                // A second PUBREC for one released already gets its PUBREL again.
                let known = self.in_flight.release(ack.pkid).is_some()
                    || self.in_flight.is_released(ack.pkid);
                let reason = if known { 0 } else { 0x92 };
                wire::ack_packet(&mut self.io.wbuf, 6, ack.pkid, self.v5, reason);
                None
            }
            Packet::PubRel(ack) => {
                // One the bridge does not know (released on an earlier connection, whose
                // PUBCOMP was lost): "packet identifier not found", and the flow ends.
                let reason = if self.receipts.released(ack.pkid) {
                    0
                } else {
                    0x92
                };
                wire::ack_packet(&mut self.io.wbuf, 7, ack.pkid, self.v5, reason);
                while let Some(token) = self.receipts.next_ready() {
                    wire::ack_token(&mut self.io.wbuf, &token, self.v5);
                }
                if self.disconnect_deferred && !self.receipts.holding() {
                    self.disconnect_deferred = false;
                    self.disconnect();
                }
                None
            }
            Packet::PubComp(ack) => self
                .in_flight
                .end(ack.pkid, |u| matches!(u, Use::Released(_)))
                .and_then(Use::tag)
                .map(Event::Confirmed),
            Packet::SubAck { pkid, codes } => {
                self.in_flight.end(pkid, |u| u == Use::Subscribe);
                let rejected = codes
                    .iter()
                    .enumerate()
                    .filter(|(_, code)| **code >= 0x80)
                    .map(|(i, code)| (i, suback_reason(*code, self.v5)))
                    .collect();
                Some(Event::SubscribeAnswered { rejected })
            }
            Packet::UnsubAck { pkid } => {
                self.in_flight.end(pkid, |u| u == Use::Unsubscribe);
                Some(Event::Unsubscribed)
            }
            Packet::PingResp => {
                self.ping_sent = None;
                None
            }
            Packet::Disconnect(d) => {
                return Err(ConnectionError::Disconnected(describe(
                    d.reason,
                    d.reason_string,
                )))
            }
            Packet::ConnAck(_) => return Err(ConnectionError::SecondConnAck),
        };
        Ok(event)
    }
}

/// PUBACK or PUBREC reason: a confirmation, or a refusal naming the code.
fn answer(tag: u64, ack: &wire::Ack) -> Event {
    match refusal(ack) {
        None => Event::Confirmed(tag),
        Some(refusal) => Event::Refused { tag, refusal },
    }
}

/// The refusal in a PUBACK's or PUBREC's reason code; `None` below 0x80 (success, and "no
/// matching subscribers"). Quota, "unspecified" and implementation-specific errors, and "packet
/// identifier in use", may pass later; the others will not.
pub fn refusal(ack: &wire::Ack) -> Option<Refusal> {
    if ack.reason < 0x80 {
        return None;
    }
    let transient = matches!(ack.reason, 0x80 | 0x83 | 0x91 | 0x97);
    let mut reason = format!(
        "the MQTT broker refused the publish: reason code 0x{:02x} ({})",
        ack.reason,
        reason::reason_name(ack.reason)
    );
    if let Some(text) = &ack.reason_string {
        reason.push_str(&format!(": {text}"));
    }
    Some(Refusal {
        code: format!("0x{:02x}", ack.reason),
        reason,
        transient,
    })
}

fn suback_reason(code: u8, v5: bool) -> String {
    if v5 {
        format!("0x{code:02x} ({})", reason::reason_name(code))
    } else {
        "failure (MQTT 3.1.1 gives no reason)".to_owned()
    }
}

fn describe(code: u8, text: Option<String>) -> String {
    let mut s = format!("reason code 0x{code:02x} ({})", reason::reason_name(code));
    if let Some(text) = text {
        s.push_str(&format!(": {text}"));
    }
    s
}
