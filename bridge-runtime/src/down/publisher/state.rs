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

#[derive(Default)]
pub(super) struct State {
    pub next_id: u64,
    /// Every publish not yet confirmed, in the order it was first queued; the key is the tag
    /// the connection reports it by.
    pub unconfirmed: BTreeMap<u64, Pending>,
    /// Publishes waiting to go to the connection, in order.
    pub queued: VecDeque<u64>,
    /// The broker's Maximum Packet Size, once announced (MQTT 5).
    pub max_packet_size: Option<u32>,
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

    /// Why `msg` cannot be sent to this broker at all, if it cannot.
    pub fn too_large(&self, msg: &Outbound) -> Option<String> {
        let max = self.max_packet_size? as usize;
        let size = mqtt::publish_packet_size(
            self.v5,
            &msg.topic,
            msg.qos,
            msg.payload.len(),
            &msg.user_properties,
        );
        (size > max).then(|| {
            format!("the publish takes {size} bytes, above the MQTT broker's maximum packet size of {max} bytes")
        })
    }

    /// A new connection: every unconfirmed publish is queued again in its original order,
    /// except those waiting to be retried after a refusal; those above the broker's maximum
    /// packet size end. Returns how many ended so.
    pub fn requeue_all(&mut self) -> usize {
        self.queued.clear();
        let mut oversized = Vec::new();
        for (id, pending) in &self.unconfirmed {
            if pending.retry_scheduled {
                continue;
            }
            match self.too_large(&pending.msg) {
                Some(reason) => oversized.push((*id, reason)),
                None => self.queued.push_back(*id),
            }
        }
        let ended = oversized.len();
        for (id, reason) in oversized {
            self.finish(id, Err(reason));
        }
        ended
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
        st.max_packet_size = Some(1024);
        assert_eq!(st.requeue_all(), 1);
        assert_eq!(st.queued, [2]);
        let refused = receivers[1].try_recv().expect("b ended");
        assert!(refused
            .expect_err("refused")
            .contains("maximum packet size of 1024"));
    }
}
