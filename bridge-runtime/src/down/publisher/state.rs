//! What the publisher knows about each publish not yet confirmed, and the order in which
//! publishes go to the connection.

use std::collections::{BTreeMap, VecDeque};

use tokio::sync::oneshot;

use super::Delivery;
use crate::mqtt::{self, Outbound};

pub(super) struct Pending {
    pub msg: Outbound,
    pub confirmed: Option<oneshot::Sender<Delivery>>,
    /// Connections cut while this was the largest publish in flight.
    pub strikes: u32,
    /// Transient refusals so far.
    pub refusals: u32,
    /// Waiting to be sent again after a transient refusal (not re-queued on reconnect).
    pub retry_scheduled: bool,
}

/// The limits an MQTT 5 broker announces in its CONNACK that refuse a publish outright.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct BrokerLimits {
    /// Maximum Packet Size.
    pub max_packet_size: Option<u32>,
    /// Maximum QoS (absent: 2).
    pub max_qos: Option<u8>,
    /// Retain Available (absent: true).
    pub retain_available: Option<bool>,
}

/// Why a publish cannot be sent to this broker at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Unsendable {
    /// The `code` label of `mkb_mqtt_publishes_refused_total`.
    pub code: &'static str,
    pub reason: String,
}

#[derive(Default)]
pub(super) struct State {
    pub next_id: u64,
    /// Every publish not yet confirmed, in the order it was first queued; the key is the tag
    /// the connection reports it by.
    pub unconfirmed: BTreeMap<u64, Pending>,
    /// Publishes waiting to go to the connection, in order.
    pub queued: VecDeque<u64>,
    /// What the broker announced in its CONNACK (MQTT 5), from the last connection.
    pub limits: BrokerLimits,
    pub v5: bool,
}

impl State {
    pub fn new(v5: bool) -> Self {
        Self {
            v5,
            ..Self::default()
        }
    }

    /// Registers a publish and queues it; its tag.
    pub fn add(&mut self, msg: Outbound, confirmed: oneshot::Sender<Delivery>) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.unconfirmed.insert(
            id,
            Pending {
                msg,
                confirmed: Some(confirmed),
                strikes: 0,
                refusals: 0,
                retry_scheduled: false,
            },
        );
        self.queued.push_back(id);
        id
    }

    pub fn finish(&mut self, id: u64, delivery: Delivery) {
        if let Some(p) = self.unconfirmed.remove(&id) {
            if let Some(tx) = p.confirmed {
                let _ = tx.send(delivery);
            }
        }
    }

    /// Why `msg` cannot be sent to this broker at all, if it cannot. A client must not send
    /// what its CONNACK ruled out (MQTT 5, 3.2.2.3): the broker would disconnect.
    pub fn unsendable(&self, msg: &Outbound) -> Option<Unsendable> {
        let limits = &self.limits;
        if let Some(max_qos) = limits.max_qos.filter(|max| msg.qos > *max) {
            return Some(Unsendable {
                code: "qos_not_supported",
                reason: format!(
                    "the route publishes at QoS {}, and the MQTT broker accepts at most QoS {max_qos} (Maximum QoS in its CONNACK)",
                    msg.qos
                ),
            });
        }
        if msg.retain && limits.retain_available == Some(false) {
            return Some(Unsendable {
                code: "retain_not_supported",
                reason: "the publish is retained, and the MQTT broker does not support retained messages (Retain Available 0 in its CONNACK)".to_owned(),
            });
        }
        let max = limits.max_packet_size? as usize;
        let size = mqtt::publish_packet_size(
            self.v5,
            &msg.topic,
            msg.qos,
            msg.payload.len(),
            &msg.user_properties,
        );
        (size > max).then(|| Unsendable {
            code: "packet_too_large",
            reason: format!("the publish takes {size} bytes, above the MQTT broker's maximum packet size of {max} bytes"),
        })
    }

    /// A new connection: every unconfirmed publish is queued again in its original order,
    /// except those waiting to be retried after a refusal; those the broker's limits rule out
    /// end. Returns the `code` of each that ended so.
    pub fn requeue_all(&mut self) -> Vec<&'static str> {
        self.queued.clear();
        let mut unsendable = Vec::new();
        for (id, pending) in &self.unconfirmed {
            if pending.retry_scheduled {
                continue;
            }
            match self.unsendable(&pending.msg) {
                Some(why) => unsendable.push((*id, why)),
                None => self.queued.push_back(*id),
            }
        }
        let mut codes = Vec::with_capacity(unsendable.len());
        for (id, why) in unsendable {
            codes.push(why.code);
            self.finish(id, Err(why.reason));
        }
        codes
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn msg(topic: &str, payload: usize) -> Outbound {
        Outbound {
            topic: topic.to_owned(),
            payload: Bytes::from(vec![0u8; payload]),
            qos: 1,
            retain: false,
            user_properties: Vec::new(),
        }
    }

    #[test]
    fn a_new_connection_queues_every_unconfirmed_publish_in_order() {
        let mut st = State::new(true);
        let mut receivers = Vec::new();
        for (topic, size) in [("a", 10), ("b", 5000), ("c", 10), ("d", 10)] {
            let (tx, rx) = oneshot::channel();
            st.add(msg(topic, size), tx);
            receivers.push(rx);
        }
        // "a" confirmed, "d" waits for a retry; the broker accepts at most 1 KiB.
        st.finish(0, Ok(()));
        st.unconfirmed.get_mut(&3).expect("d").retry_scheduled = true;
        st.queued.clear();
        st.limits.max_packet_size = Some(1024);
        assert_eq!(st.requeue_all(), ["packet_too_large"]);
        assert_eq!(st.queued, [2]);
        let refused = receivers[1].try_recv().expect("b ended");
        assert!(refused
            .expect_err("refused")
            .contains("maximum packet size of 1024"));
    }

    #[test]
    fn a_publish_above_the_brokers_maximum_qos_or_retained_without_retain_is_unsendable() {
        let mut st = State::new(true);
        let mut q2 = msg("a", 10);
        q2.qos = 2;
        let mut retained = msg("b", 10);
        retained.retain = true;
        assert_eq!(st.unsendable(&q2), None, "no limits announced");
        assert_eq!(st.unsendable(&retained), None);

        st.limits.max_qos = Some(1);
        st.limits.retain_available = Some(false);
        let why = st.unsendable(&q2).expect("QoS 2 above the maximum");
        assert_eq!(why.code, "qos_not_supported");
        assert!(
            why.reason.contains("QoS 2") && why.reason.contains("at most QoS 1"),
            "{}",
            why.reason
        );
        let why = st
            .unsendable(&retained)
            .expect("retained without Retain Available");
        assert_eq!(why.code, "retain_not_supported");
        assert_eq!(st.unsendable(&msg("c", 10)), None, "QoS 1, not retained");
    }
}
