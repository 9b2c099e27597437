//! The bridge's own MQTT client, both protocol versions on one connection task shape: rumqttc's
//! codec for the packets, and here the connection (`connection`), the packet ids in flight
//! (`in_flight`), the byte stream (`transport`) and what the broker's answers mean.
//!
//! Why not rumqttc's event loop: it writes and flushes once per request (one system call and
//! one TCP segment per publish or acknowledgement), keeps its MQTT 5 connection private, frees
//! a QoS 2 packet id at PUBREC, disconnects on a PUBREL it does not know (every restart of a
//! persistent QoS 2 session), sends pings only while it is polled, and fails to decode reason
//! codes the specification does not list. See docs/runtime.md, "The MQTT client".

mod connection;
mod in_flight;
mod options;
mod publish;
mod reason;
mod receipts;
mod status;
mod tls;
mod transport;
mod wire;

use bytes::Bytes;

pub use connection::{Connected, Connection, ConnectionError, Event};
pub use options::{ConnectionOptions, Settings};
pub use publish::{publish_packet_size, Refusal};
pub use status::ConnectionStatus;

/// How long a broker may take to close the connection after the DISCONNECT (see
/// [`Connection::read_until_closed`]).
pub const CLOSE_LIMIT: std::time::Duration = std::time::Duration::from_secs(2);

/// What is needed to acknowledge an inbound publish: its packet id and QoS, nothing more.
/// Acknowledgements can wait by the hundred thousand while a broker floods the bridge (see
/// `up::acks`), so a token holds neither the topic nor a slice of the read buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckToken {
    pub pkid: u16,
    pub qos: u8,
}

/// An inbound publish.
#[derive(Debug, Clone)]
pub struct Inbound {
    pub topic: String,
    pub payload: Bytes,
    pub qos: u8,
    pub retain: bool,
    pub user_properties: Vec<(String, String)>,
    /// MQTT 5 subscription identifiers of the subscriptions this copy was sent for.
    pub subscription_ids: Vec<usize>,
    pub ack: AckToken,
}

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

#[cfg(test)]
mod tests {
    use super::AckToken;

    /// A broker flooding the bridge can leave a hundred thousand acknowledgements waiting
    /// (see `up::acks`): each must stay a few bytes, never a copy of its publish.
    #[test]
    fn a_waiting_acknowledgement_is_a_few_bytes() {
        assert!(std::mem::size_of::<AckToken>() <= 4);
    }
}
