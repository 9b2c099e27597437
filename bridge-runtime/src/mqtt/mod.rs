//! One MQTT client over rumqttc's MQTT 3.1.1 and MQTT 5 implementations, with events
//! normalised to what the routes need.

mod direct;
mod handoff;
mod options;
mod publish;
mod status;
mod tls;

use bytes::Bytes;
use mkb_api::compiled::MqttEndpoint;
use mkb_api::config::SecretSource;
use mkb_api::connection::{MqttSettings, MqttVersion};
use rumqttc::v5::mqttbytes::v5 as v5b;
use rumqttc::v5::mqttbytes::QoS as QoS5;

pub use direct::Outbound;
pub use handoff::Handoff;
pub use options::ConnectionOptions;
use publish::{puback_refusal, pubrec_refusal};
pub use publish::{publish_packet_size, Refusal};
pub use status::ConnectionStatus;

fn qos4(level: u8) -> rumqttc::QoS {
    match level {
        0 => rumqttc::QoS::AtMostOnce,
        1 => rumqttc::QoS::AtLeastOnce,
        _ => rumqttc::QoS::ExactlyOnce,
    }
}

fn qos5(level: u8) -> QoS5 {
    match level {
        0 => QoS5::AtMostOnce,
        1 => QoS5::AtLeastOnce,
        _ => QoS5::ExactlyOnce,
    }
}

/// How long a broker may take to close the connection after the DISCONNECT (see
/// [`EventLoop::read_until_closed`]).
pub const CLOSE_LIMIT: std::time::Duration = std::time::Duration::from_secs(2);

/// What is needed to acknowledge an inbound publish: its packet id and QoS, nothing more.
/// Acknowledgements can wait by the hundred thousand while a broker floods the bridge (see
/// `up::acks`), so a token holds neither the topic nor, for MQTT 5, a slice of the read buffer.
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

/// A normalised event of the connection.
#[derive(Debug)]
pub enum Event {
    Connected {
        session_present: bool,
        /// The broker's Maximum Packet Size (MQTT 5 CONNACK), if it announced one.
        max_packet_size: Option<u32>,
    },
    Message(Box<Inbound>),
    /// A publish left for the network with this packet id (0 for QoS 0).
    PublishSent(u16),
    /// The acknowledgement of an inbound publish (PUBACK or PUBREC) left for the network.
    AckSent,
    /// The broker confirmed a QoS 1 publish (PUBACK) or a QoS 2 publish (PUBCOMP).
    PublishConfirmed(u16),
    /// The broker refused a publish with an MQTT 5 reason code in its PUBACK or PUBREC.
    /// `reset_connection`: rumqttc keeps a refused QoS 2 publish's in-flight slot taken, so
    /// the connection must be renewed before the slots run out.
    PublishRefused {
        pkid: u16,
        refusal: Refusal,
        reset_connection: bool,
    },
    /// The broker answered a SUBSCRIBE; `rejected` lists refused filters by position, with
    /// the broker's reason.
    SubscribeAnswered {
        rejected: Vec<(usize, String)>,
    },
    DisconnectSent,
    Other,
}

/// The sending half of a connection.
#[derive(Clone)]
pub enum Client {
    V4(rumqttc::AsyncClient),
    V5(rumqttc::v5::AsyncClient),
}

/// The connection driver; poll it continuously (and only from one task).
pub enum EventLoop {
    V4(Box<rumqttc::EventLoop>),
    V5(Box<rumqttc::v5::EventLoop>),
}

/// Builds a client and its event loop (nothing connects until the loop is polled).
pub fn connect(
    endpoint: &MqttEndpoint,
    settings: &MqttSettings<SecretSource>,
    options: &ConnectionOptions,
) -> Result<(Client, EventLoop), String> {
    match settings.protocol_version {
        MqttVersion::V311 => {
            let opts = options::v4(endpoint, settings, options)?;
            let (client, eventloop) = rumqttc::AsyncClient::new(opts, options.request_capacity);
            let mut eventloop = eventloop;
            eventloop.network_options.set_tcp_nodelay(true);
            eventloop.network_options.set_connection_timeout(10);
            Ok((Client::V4(client), EventLoop::V4(Box::new(eventloop))))
        }
        MqttVersion::V5 => {
            let opts = options::v5(endpoint, settings, options)?;
            let (client, eventloop) = rumqttc::v5::AsyncClient::new(opts, options.request_capacity);
            Ok((Client::V5(client), EventLoop::V5(Box::new(eventloop))))
        }
    }
}

impl Client {
    /// Queues the acknowledgement of an inbound publish (PUBACK or PUBREC). Never blocks: an
    /// error when rumqttc's request channel is full, and the ack tracker keeps it for later.
    pub fn try_ack(&self, token: &AckToken) -> Result<(), String> {
        // rumqttc builds the acknowledgement from a publish's packet id and QoS alone.
        match self {
            Client::V4(c) => {
                let mut p = rumqttc::Publish::new("", qos4(token.qos), Bytes::new());
                p.pkid = token.pkid;
                c.try_ack(&p).map_err(|e| e.to_string())
            }
            Client::V5(c) => {
                let mut p = v5b::Publish::new("", qos5(token.qos), Bytes::new(), None);
                p.pkid = token.pkid;
                c.try_ack(&p).map_err(|e| e.to_string())
            }
        }
    }

    /// Subscribes to `filters` in one SUBSCRIBE, each (MQTT 5) with its subscription id.
    pub async fn subscribe(&self, filters: &[(String, usize)], qos: u8) -> Result<(), String> {
        match self {
            Client::V4(c) => {
                let list = filters
                    .iter()
                    .map(|(f, _)| rumqttc::SubscribeFilter::new(f.clone(), qos4(qos)));
                c.subscribe_many(list).await.map_err(|e| e.to_string())
            }
            Client::V5(c) => {
                // One SUBSCRIBE per filter: a subscription identifier belongs to a SUBSCRIBE.
                for (filter, id) in filters {
                    let mut f = v5b::Filter::new(filter.clone(), qos5(qos));
                    // Retained messages only for new subscriptions, not on every resubscribe.
                    f.retain_forward_rule = v5b::RetainForwardRule::OnNewSubscribe;
                    let props = v5b::SubscribeProperties {
                        id: Some(*id),
                        user_properties: Vec::new(),
                    };
                    c.subscribe_many_with_properties([f], props)
                        .await
                        .map_err(|e| e.to_string())?;
                }
                Ok(())
            }
        }
    }

    /// Unsubscribes from `filters`, one UNSUBSCRIBE each.
    pub async fn unsubscribe(&self, filters: &[String]) -> Result<(), String> {
        for filter in filters {
            match self {
                Client::V4(c) => c
                    .unsubscribe(filter.clone())
                    .await
                    .map_err(|e| e.to_string())?,
                Client::V5(c) => c
                    .unsubscribe(filter.clone())
                    .await
                    .map_err(|e| e.to_string())?,
            }
        }
        Ok(())
    }

    /// Queues a publish without waiting.
    pub fn try_publish(
        &self,
        topic: String,
        qos: u8,
        retain: bool,
        payload: Bytes,
        user_properties: Vec<(String, String)>,
    ) -> Result<(), String> {
        match self {
            Client::V4(c) => c
                .try_publish(topic, qos4(qos), retain, payload)
                .map_err(|e| e.to_string()),
            Client::V5(c) => {
                let props = v5b::PublishProperties {
                    user_properties,
                    ..Default::default()
                };
                c.try_publish_with_properties(topic, qos5(qos), retain, payload, props)
                    .map_err(|e| e.to_string())
            }
        }
    }

    /// Queues a DISCONNECT (MQTT 5: the session is kept for its expiry interval).
    pub async fn disconnect(&self) {
        let result = match self {
            Client::V4(c) => c.disconnect().await.map_err(|e| e.to_string()),
            Client::V5(c) => c.disconnect().await.map_err(|e| e.to_string()),
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, "disconnect request not queued");
        }
    }
}

impl EventLoop {
    /// The next event; an error means the connection is down (the next poll reconnects).
    pub async fn poll(&mut self) -> Result<Event, String> {
        match self {
            EventLoop::V4(e) => e.poll().await.map(v4_event).map_err(|e| e.to_string()),
            EventLoop::V5(e) => e.poll().await.map(v5_event).map_err(|e| e.to_string()),
        }
    }

    /// Drops the connection (the next poll reconnects) and forgets every request not yet
    /// confirmed: rumqttc's replay queue, whatever is still in the request channel, and the
    /// events of the old connection not yet returned (a stale "publish sent" would match a
    /// packet id to the wrong message). The publisher replays unconfirmed messages itself.
    pub fn discard_pending(&mut self) {
        match self {
            EventLoop::V4(e) => {
                e.clean();
                e.pending.clear();
            }
            EventLoop::V5(e) => {
                e.clean();
                e.pending.clear();
            }
        }
        self.drop_stale_events();
    }

    /// After the DISCONNECT has left: reads, and drops, what the broker still sends until it
    /// closes the connection, for at most [`CLOSE_LIMIT`]; the caller then drops the event loop.
    ///
    /// Closing a socket with unread data in it makes the kernel reset the connection instead
    /// of closing it, and a reset makes the broker's kernel discard what the broker had not
    /// read yet: the last acknowledgements and the DISCONNECT itself. A broker that floods the
    /// bridge always has data on the way, so the last batch of acknowledgements was lost now
    /// and then, and the broker sent those messages again to the next session (duplicates after
    /// a graceful stop). The broker closes the connection once it has read the DISCONNECT, so
    /// by then it has read everything before it. Publishes read here are not acknowledged: the
    /// broker sends them again to the next session.
    pub async fn read_until_closed(&mut self) {
        let closed = async { while self.poll().await.is_ok() {} };
        if tokio::time::timeout(CLOSE_LIMIT, closed).await.is_err() {
            tracing::debug!(limit = ?CLOSE_LIMIT, "the MQTT broker did not close the connection after the DISCONNECT");
        }
    }

    /// Forgets events read on a connection that has since failed. rumqttc would return them
    /// after the next CONNACK, where a stale publish would be acknowledged with a packet id
    /// the broker may by then have given to another message. The broker sends again whatever
    /// was not acknowledged.
    pub fn drop_stale_events(&mut self) {
        match self {
            EventLoop::V4(e) => e.state.events.clear(),
            EventLoop::V5(e) => e.state.events.clear(),
        }
    }
}

fn v4_event(event: rumqttc::Event) -> Event {
    use rumqttc::{Event as E, Outgoing, Packet};
    match event {
        E::Incoming(Packet::ConnAck(ack)) => Event::Connected {
            session_present: ack.session_present,
            max_packet_size: None,
        },
        E::Incoming(Packet::Publish(p)) => Event::Message(Box::new(Inbound {
            topic: p.topic.clone(),
            payload: p.payload.clone(),
            qos: p.qos as u8,
            retain: p.retain,
            user_properties: Vec::new(),
            subscription_ids: Vec::new(),
            ack: AckToken {
                pkid: p.pkid,
                qos: p.qos as u8,
            },
        })),
        E::Incoming(Packet::PubAck(a)) => Event::PublishConfirmed(a.pkid),
        E::Incoming(Packet::PubComp(c)) => Event::PublishConfirmed(c.pkid),
        E::Incoming(Packet::SubAck(s)) => Event::SubscribeAnswered {
            rejected: s
                .return_codes
                .iter()
                .enumerate()
                .filter(|(_, c)| matches!(c, rumqttc::SubscribeReasonCode::Failure))
                .map(|(i, _)| (i, "failure (MQTT 3.1.1 gives no reason)".to_owned()))
                .collect(),
        },
        E::Outgoing(Outgoing::Publish(pkid)) => Event::PublishSent(pkid),
        E::Outgoing(Outgoing::PubAck(_) | Outgoing::PubRec(_)) => Event::AckSent,
        E::Outgoing(Outgoing::Disconnect) => Event::DisconnectSent,
        _ => Event::Other,
    }
}

fn v5_event(event: rumqttc::v5::Event) -> Event {
    use rumqttc::v5::Event as E;
    use rumqttc::Outgoing;
    use v5b::Packet;
    match event {
        E::Incoming(Packet::ConnAck(ack)) => Event::Connected {
            session_present: ack.session_present,
            max_packet_size: ack.properties.as_ref().and_then(|p| p.max_packet_size),
        },
        E::Incoming(Packet::Publish(p)) => {
            let (user_properties, subscription_ids) = match &p.properties {
                Some(props) => (
                    props.user_properties.clone(),
                    props.subscription_identifiers.clone(),
                ),
                None => (Vec::new(), Vec::new()),
            };
            Event::Message(Box::new(Inbound {
                topic: String::from_utf8_lossy(&p.topic).into_owned(),
                payload: p.payload.clone(),
                qos: p.qos as u8,
                retain: p.retain,
                user_properties,
                subscription_ids,
                ack: AckToken {
                    pkid: p.pkid,
                    qos: p.qos as u8,
                },
            }))
        }
        E::Incoming(Packet::PubAck(a)) => match puback_refusal(&a.reason) {
            None => Event::PublishConfirmed(a.pkid),
            Some(refusal) => Event::PublishRefused {
                pkid: a.pkid,
                refusal,
                reset_connection: false,
            },
        },
        E::Incoming(Packet::PubRec(r)) => match pubrec_refusal(&r.reason) {
            None => Event::Other,
            Some(refusal) => Event::PublishRefused {
                pkid: r.pkid,
                refusal,
                reset_connection: true,
            },
        },
        E::Incoming(Packet::PubComp(c)) => Event::PublishConfirmed(c.pkid),
        E::Incoming(Packet::SubAck(s)) => Event::SubscribeAnswered {
            rejected: s
                .return_codes
                .iter()
                .enumerate()
                .filter(|(_, c)| !matches!(c, v5b::SubscribeReasonCode::Success(_)))
                .map(|(i, c)| (i, format!("{c:?}")))
                .collect(),
        },
        E::Outgoing(Outgoing::Publish(pkid)) => Event::PublishSent(pkid),
        E::Outgoing(Outgoing::PubAck(_) | Outgoing::PubRec(_)) => Event::AckSent,
        E::Outgoing(Outgoing::Disconnect) => Event::DisconnectSent,
        _ => Event::Other,
    }
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
