//! MQTT packets on the wire, for both protocol versions. rumqttc's codec writes CONNECT,
//! PUBLISH, SUBSCRIBE and UNSUBSCRIBE and reads PUBLISH and the CONNACK properties. The
//! acknowledgements, SUBACK, UNSUBACK and DISCONNECT are read (and the acknowledgements
//! written) here: they are a packet id and a reason code, and rumqttc's decoder refuses reason
//! codes the specification does not list, which would cut the connection over a broker's
//! unusual answer (some send 0x95, "packet too large", in a PUBACK).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use rumqttc::mqttbytes::v4 as v4b;
use rumqttc::v5::mqttbytes::v5 as v5b;
use thiserror::Error;

use super::{AckToken, Inbound, Outbound};

mod subscribe;
pub use subscribe::{subscribe, unsubscribe};

/// The largest packet MQTT can carry; the bridge accepts whatever the broker accepts.
pub const MAX_PACKET: u32 = 268_435_455;

#[derive(Debug, Error)]
pub enum WireError {
    #[error("malformed {packet} packet from the broker: {detail}")]
    Malformed {
        packet: &'static str,
        detail: String,
    },
    #[error("the broker sent a packet of {size} bytes, above the {max} the bridge accepts")]
    TooLarge { size: usize, max: usize },
    #[error("the broker sent a packet of type {0}, which a client never receives")]
    Unexpected(u8),
    #[error("cannot encode {what}: {detail}")]
    Encode { what: &'static str, detail: String },
}

/// An acknowledgement with its reason code (0 in MQTT 3.1.1, where there is none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub pkid: u16,
    pub reason: u8,
    pub reason_string: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct ConnAck {
    pub session_present: bool,
    /// The MQTT 3.1.1 return code or the MQTT 5 reason code; 0 is success.
    pub code: u8,
    pub max_packet_size: Option<u32>,
    pub receive_maximum: Option<u16>,
    pub max_qos: Option<u8>,
    pub retain_available: Option<bool>,
    pub reason_string: Option<String>,
}

/// A packet a client receives.
#[derive(Debug)]
pub enum Packet {
    ConnAck(ConnAck),
    Publish(Box<Inbound>),
    PubAck(Ack),
    PubRec(Ack),
    PubRel(Ack),
    PubComp(Ack),
    /// The reason code of each filter, in order (MQTT 3.1.1: 0–2 granted, 0x80 failure).
    SubAck {
        pkid: u16,
        codes: Vec<u8>,
    },
    UnsubAck {
        pkid: u16,
    },
    PingResp,
    Disconnect(Ack),
}

fn malformed(packet: &'static str, detail: impl ToString) -> WireError {
    WireError::Malformed {
        packet,
        detail: detail.to_string(),
    }
}

/// Reads the next complete packet out of `buf`; `None` until one is there.
pub fn read(buf: &mut BytesMut, v5: bool, max: usize) -> Result<Option<Packet>, WireError> {
    let Some((byte1, header_len, remaining)) = fixed_header(buf)? else {
        return Ok(None);
    };
    let size = header_len + remaining;
    if size > max {
        return Err(WireError::TooLarge { size, max });
    }
    if buf.len() < size {
        buf.reserve(size - buf.len());
        return Ok(None);
    }
    // Copied out, not split off: a frame split off the read buffer would keep that whole
    // allocation alive while its message waits in the window, and the next read into a buffer
    // so shared moves everything still unparsed into a new one. With 1 KiB messages that
    // pinned over 100 MiB and copied the backlog once per read (docs/performance.md).
    let frame = Bytes::copy_from_slice(&buf[..size]);
    buf.advance(size);
    let mut body = frame.slice(header_len..);
    let packet = match byte1 >> 4 {
        2 => Packet::ConnAck(connack(&mut body, v5)?),
        3 => Packet::Publish(Box::new(publish(
            byte1,
            header_len - 1,
            remaining,
            frame,
            v5,
        )?)),
        4 => Packet::PubAck(ack(&mut body, v5, "PUBACK")?),
        5 => Packet::PubRec(ack(&mut body, v5, "PUBREC")?),
        6 => Packet::PubRel(ack(&mut body, v5, "PUBREL")?),
        7 => Packet::PubComp(ack(&mut body, v5, "PUBCOMP")?),
        9 => suback(&mut body, v5)?,
        11 => {
            need(&body, 2, "UNSUBACK")?;
            Packet::UnsubAck {
                pkid: body.get_u16(),
            }
        }
        13 => Packet::PingResp,
        14 => Packet::Disconnect(disconnect(&mut body, v5)?),
        other => return Err(WireError::Unexpected(other)),
    };
    Ok(Some(packet))
}

/// The first byte, the fixed header's length and the remaining length, once complete.
fn fixed_header(buf: &[u8]) -> Result<Option<(u8, usize, usize)>, WireError> {
    let Some(&byte1) = buf.first() else {
        return Ok(None);
    };
    let mut remaining = 0usize;
    for (i, &byte) in buf.iter().skip(1).take(4).enumerate() {
        remaining |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(Some((byte1, i + 2, remaining)));
        }
    }
    if buf.len() >= 5 {
        return Err(malformed("any", "remaining length longer than 4 bytes"));
    }
    Ok(None)
}

fn need(body: &Bytes, n: usize, packet: &'static str) -> Result<(), WireError> {
    if body.remaining() < n {
        return Err(malformed(packet, "shorter than its fields"));
    }
    Ok(())
}

fn varint(body: &mut Bytes, packet: &'static str) -> Result<usize, WireError> {
    let mut value = 0usize;
    for i in 0..4 {
        need(body, 1, packet)?;
        let byte = body.get_u8();
        value |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(malformed(
        packet,
        "variable byte integer longer than 4 bytes",
    ))
}

fn utf8(body: &mut Bytes, packet: &'static str) -> Result<String, WireError> {
    need(body, 2, packet)?;
    let len = usize::from(body.get_u16());
    need(body, len, packet)?;
    let raw = body.split_to(len);
    String::from_utf8(raw.to_vec()).map_err(|_| malformed(packet, "string is not UTF-8"))
}

/// Skips MQTT 5 properties, keeping the reason string (0x1F) if there is one.
fn reason_string(body: &mut Bytes, packet: &'static str) -> Result<Option<String>, WireError> {
    if !body.has_remaining() {
        return Ok(None);
    }
    let len = varint(body, packet)?;
    need(body, len, packet)?;
    let mut props = body.split_to(len);
    let mut reason = None;
    while props.has_remaining() {
        match varint(&mut props, packet)? {
            0x1F => reason = Some(utf8(&mut props, packet)?),
            0x26 => {
                utf8(&mut props, packet)?;
                utf8(&mut props, packet)?;
            }
            // Server reference and other strings a DISCONNECT may carry.
            0x1C => {
                utf8(&mut props, packet)?;
            }
            0x11 => {
                need(&props, 4, packet)?;
                props.advance(4);
            }
            other => return Err(malformed(packet, format!("unknown property 0x{other:02x}"))),
        }
    }
    Ok(reason)
}

/// PUBACK, PUBREC, PUBREL or PUBCOMP: a packet id, and in MQTT 5 an optional reason code and
/// properties. Any reason code is taken; what it means is for the caller.
fn ack(body: &mut Bytes, v5: bool, packet: &'static str) -> Result<Ack, WireError> {
    need(body, 2, packet)?;
    let pkid = body.get_u16();
    let mut ack = Ack {
        pkid,
        reason: 0,
        reason_string: None,
    };
    if v5 && body.has_remaining() {
        ack.reason = body.get_u8();
        ack.reason_string = reason_string(body, packet)?;
    }
    Ok(ack)
}

fn disconnect(body: &mut Bytes, v5: bool) -> Result<Ack, WireError> {
    let mut ack = Ack {
        pkid: 0,
        reason: 0,
        reason_string: None,
    };
    if v5 && body.has_remaining() {
        ack.reason = body.get_u8();
        ack.reason_string = reason_string(body, "DISCONNECT")?;
    }
    Ok(ack)
}

fn suback(body: &mut Bytes, v5: bool) -> Result<Packet, WireError> {
    need(body, 2, "SUBACK")?;
    let pkid = body.get_u16();
    if v5 {
        let len = varint(body, "SUBACK")?;
        need(body, len, "SUBACK")?;
        body.advance(len);
    }
    Ok(Packet::SubAck {
        pkid,
        codes: body.to_vec(),
    })
}

fn connack(body: &mut Bytes, v5: bool) -> Result<ConnAck, WireError> {
    need(body, 2, "CONNACK")?;
    let mut ack = ConnAck {
        session_present: body.get_u8() & 1 == 1,
        code: body.get_u8(),
        ..ConnAck::default()
    };
    if v5 && body.has_remaining() {
        let props = v5b::ConnAckProperties::read(body).map_err(|e| malformed("CONNACK", e))?;
        if let Some(p) = props {
            ack.max_packet_size = p.max_packet_size;
            ack.receive_maximum = p.receive_max;
            ack.max_qos = p.max_qos;
            ack.retain_available = p.retain_available.map(|available| available != 0);
            ack.reason_string = p.reason_string;
        }
    }
    Ok(ack)
}

fn publish(
    byte1: u8,
    len_len: usize,
    remaining: usize,
    frame: Bytes,
    v5: bool,
) -> Result<Inbound, WireError> {
    if v5 {
        let header = v5b::FixedHeader::new(byte1, len_len, remaining);
        let p = v5b::Publish::read(header, frame).map_err(|e| malformed("PUBLISH", e))?;
        let (user_properties, subscription_ids) = match p.properties {
            Some(props) => (props.user_properties, props.subscription_identifiers),
            None => (Vec::new(), Vec::new()),
        };
        let topic = String::from_utf8(p.topic.to_vec())
            .map_err(|_| malformed("PUBLISH", "topic is not UTF-8"))?;
        Ok(Inbound {
            topic,
            payload: p.payload,
            qos: p.qos as u8,
            retain: p.retain,
            user_properties,
            subscription_ids,
            ack: AckToken {
                pkid: p.pkid,
                qos: p.qos as u8,
            },
        })
    } else {
        let header = rumqttc::mqttbytes::FixedHeader::new(byte1, len_len, remaining);
        let p = v4b::Publish::read(header, frame).map_err(|e| malformed("PUBLISH", e))?;
        Ok(Inbound {
            topic: p.topic,
            payload: p.payload,
            qos: p.qos as u8,
            retain: p.retain,
            user_properties: Vec::new(),
            subscription_ids: Vec::new(),
            ack: AckToken {
                pkid: p.pkid,
                qos: p.qos as u8,
            },
        })
    }
}

pub(super) fn qos4(level: u8) -> rumqttc::QoS {
    match level {
        0 => rumqttc::QoS::AtMostOnce,
        1 => rumqttc::QoS::AtLeastOnce,
        _ => rumqttc::QoS::ExactlyOnce,
    }
}

fn qos5(level: u8) -> rumqttc::v5::mqttbytes::QoS {
    use rumqttc::v5::mqttbytes::QoS;
    match level {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

fn encoded<E: std::fmt::Display>(
    what: &'static str,
    result: Result<usize, E>,
) -> Result<(), WireError> {
    result.map(|_| ()).map_err(|e| WireError::Encode {
        what,
        detail: e.to_string(),
    })
}

/// What a CONNECT carries.
pub struct ConnectFields<'a> {
    pub client_id: &'a str,
    pub keep_alive: u16,
    pub clean: bool,
    pub credentials: Option<(&'a str, &'a str)>,
    /// MQTT 5: how many QoS 1 and 2 publishes the broker may have unacknowledged with us.
    pub receive_maximum: u16,
    /// MQTT 5: how long the broker keeps the session after a disconnect.
    pub session_expiry: Option<u32>,
}

pub fn connect(buf: &mut BytesMut, v5: bool, c: &ConnectFields<'_>) -> Result<(), WireError> {
    if v5 {
        let properties = v5b::ConnectProperties {
            session_expiry_interval: c.session_expiry,
            receive_maximum: Some(c.receive_maximum.max(1)),
            max_packet_size: Some(MAX_PACKET),
            ..v5b::ConnectProperties::new()
        };
        let packet = v5b::Connect {
            keep_alive: c.keep_alive,
            client_id: c.client_id.to_owned(),
            clean_start: c.clean,
            properties: Some(properties),
        };
        let login = c.credentials.map(|(u, p)| v5b::Login::new(u, p));
        encoded("CONNECT", packet.write(&None, &login, buf))
    } else {
        let mut packet = v4b::Connect::new(c.client_id);
        packet.keep_alive = c.keep_alive;
        packet.clean_session = c.clean;
        if let Some((user, password)) = c.credentials {
            packet.set_login(user, password);
        }
        encoded("CONNECT", packet.write(buf))
    }
}

pub fn publish_packet(
    buf: &mut BytesMut,
    v5: bool,
    msg: &Outbound,
    pkid: u16,
) -> Result<(), WireError> {
    if v5 {
        let properties = (!msg.user_properties.is_empty()).then(|| v5b::PublishProperties {
            user_properties: msg.user_properties.clone(),
            ..Default::default()
        });
        let mut p = v5b::Publish::new(
            msg.topic.as_str(),
            qos5(msg.qos),
            msg.payload.clone(),
            properties,
        );
        p.retain = msg.retain;
        p.pkid = pkid;
        encoded("PUBLISH", p.write(buf))
    } else {
        let mut p =
            v4b::Publish::from_bytes(msg.topic.as_str(), qos4(msg.qos), msg.payload.clone());
        p.retain = msg.retain;
        p.pkid = pkid;
        encoded("PUBLISH", p.write(buf))
    }
}

/// PUBACK (type 4), PUBREC (5), PUBREL (6) or PUBCOMP (7) with a reason code (MQTT 5 only;
/// success is written in the short form both versions share).
pub fn ack_packet(buf: &mut BytesMut, kind: u8, pkid: u16, v5: bool, reason: u8) {
    // PUBREL's fixed header flags are 0b0010.
    let byte1 = (kind << 4) | if kind == 6 { 0b0010 } else { 0 };
    buf.put_u8(byte1);
    if v5 && reason != 0 {
        buf.put_u8(3);
        buf.put_u16(pkid);
        buf.put_u8(reason);
    } else {
        buf.put_u8(2);
        buf.put_u16(pkid);
    }
}

/// The acknowledgement of an inbound publish: PUBACK for QoS 1, PUBREC for QoS 2.
pub fn ack_token(buf: &mut BytesMut, token: &AckToken, v5: bool) {
    let kind = if token.qos == 2 { 5 } else { 4 };
    ack_packet(buf, kind, token.pkid, v5, 0);
}

pub fn pingreq(buf: &mut BytesMut) {
    buf.put_slice(&[0xC0, 0]);
}

/// DISCONNECT, normal: MQTT 5 keeps the session for its expiry interval.
pub fn disconnect_packet(buf: &mut BytesMut) {
    buf.put_slice(&[0xE0, 0]);
}

#[cfg(test)]
mod tests;
