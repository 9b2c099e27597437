//! What the publisher knows about each publish not yet confirmed, and the order in which
//! publishes leave: the order that matches the packet ids rumqttc reports to records.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Instant;

use tokio::sync::oneshot;
use tracing::error;

use super::Delivery;
use crate::mqtt::{self, Handoff, Outbound};

pub(super) struct Pending {
    pub msg: Outbound,
    pub confirmed: Option<oneshot::Sender<Delivery>>,
    /// Connections cut while this was the oldest publish in flight.
    pub strikes: u32,
    /// Transient refusals so far.
    pub refusals: u32,
    /// Waiting to be sent again after a transient refusal (not re-queued on reconnect).
    pub retry_scheduled: bool,
}

#[derive(Default)]
pub(super) struct State {
    pub next_id: u64,
    /// Every publish not yet confirmed, in the order it was first queued.
    pub unconfirmed: BTreeMap<u64, Pending>,
    /// Publishes handed to the connection whose packet id is not known yet, in the order
    /// they leave.
    pub awaiting_id: VecDeque<u64>,
    /// Packet id of each publish on the wire, and when it left.
    pub in_flight: HashMap<u16, (u64, Instant)>,
    /// The broker's Maximum Packet Size, once announced (MQTT 5).
    pub max_packet_size: Option<u32>,
    pub v5: bool,
    /// Where the publishes handed to the connection are (MQTT 3.1.1: the poller writes them
    /// directly; without that every publish goes through rumqttc's request channel).
    pub handoff: Handoff,
    /// Publishes waiting for the poller's next direct write, in order.
    pub queued: VecDeque<u64>,
}

impl State {
    pub fn new(v5: bool) -> Self {
        Self {
            v5,
            handoff: Handoff::new(!v5),
            ..Self::default()
        }
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

    /// Hands unconfirmed publish `id` to the connection, after every publish handed before.
    /// With direct writes a publish goes through rumqttc's request channel only when the
    /// poller may be idle, to wake it; while the poller has publishes to report or write
    /// anyway, it waits in `queued` for the poller's next batch.
    pub fn submit(&mut self, client: &mqtt::Client, id: u64) {
        if self.handoff.direct() && (self.handoff.task_busy() || !self.queued.is_empty()) {
            self.queued.push_back(id);
            return;
        }
        let Some(pending) = self.unconfirmed.get(&id) else {
            return;
        };
        let msg = &pending.msg;
        let queued = client.try_publish(
            msg.topic.clone(),
            msg.qos,
            msg.retain,
            msg.payload.clone(),
            msg.user_properties.clone(),
        );
        match queued {
            Ok(()) => {
                self.awaiting_id.push_back(id);
                self.handoff.through_channel();
            }
            // Sent again after the next reconnect, like every unconfirmed publish.
            Err(e) => error!(error = %e, topic = %msg.topic, "cannot queue a publish"),
        }
    }

    /// Takes the next publishes to write directly, up to `max` and `room` of QoS 1 or 2,
    /// and marks them as leaving. `None` while publishes in the channel have not left yet
    /// (they were submitted first) or nothing waits.
    pub fn take_batch(&mut self, max: usize, mut room: usize) -> Option<Vec<Outbound>> {
        if !self.handoff.may_write() || self.queued.is_empty() {
            return None;
        }
        let mut batch = Vec::new();
        while batch.len() < max {
            let Some(&id) = self.queued.front() else {
                break;
            };
            let Some(pending) = self.unconfirmed.get(&id) else {
                self.queued.pop_front();
                continue;
            };
            if pending.msg.qos > 0 {
                if room == 0 {
                    break;
                }
                room -= 1;
            }
            batch.push(pending.msg.clone());
            self.queued.pop_front();
            self.awaiting_id.push_back(id);
        }
        if batch.is_empty() {
            return None;
        }
        self.handoff.write_started();
        Some(batch)
    }

    /// rumqttc took `taken` of the `written` publishes of the last batch; the rest (after a
    /// packet-id collision) go back to the front of the queue.
    pub fn batch_written(&mut self, written: usize, taken: usize) {
        self.handoff.write_ended(taken);
        for _ in taken..written {
            if let Some(id) = self.awaiting_id.pop_back() {
                self.queued.push_front(id);
            }
        }
    }

    /// Forgets the order of everything handed to the old connection (it is all sent again).
    pub fn connection_discarded(&mut self) {
        self.awaiting_id.clear();
        self.in_flight.clear();
        self.queued.clear();
        self.handoff.reset();
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    /// A client whose request channel stays open (its event loop is kept, never polled).
    fn client() -> (mqtt::Client, rumqttc::EventLoop) {
        let options = rumqttc::MqttOptions::new("state-test", "127.0.0.1", 1883);
        let (client, eventloop) = rumqttc::AsyncClient::new(options, 100);
        (mqtt::Client::V4(client), eventloop)
    }

    fn add(st: &mut State, client: &mqtt::Client, qos: u8) -> u64 {
        let id = st.next_id;
        st.next_id += 1;
        let msg = Outbound {
            topic: format!("t/{id}"),
            payload: Bytes::from_static(b"x"),
            qos,
            retain: false,
            user_properties: Vec::new(),
        };
        let pending = Pending {
            msg,
            confirmed: None,
            strikes: 0,
            refusals: 0,
            retry_scheduled: false,
        };
        st.unconfirmed.insert(id, pending);
        st.submit(client, id);
        id
    }

    fn topics(batch: &[Outbound]) -> Vec<&str> {
        batch.iter().map(|m| m.topic.as_str()).collect()
    }

    #[test]
    fn publishes_leave_in_submission_order_across_the_channel_and_direct_writes() {
        let (client, _eventloop) = client();
        let mut st = State::new(false);
        // An idle poller is woken through the channel; the rest wait for a direct write.
        for _ in 0..5 {
            add(&mut st, &client, 1);
        }
        assert_eq!(st.awaiting_id, [0]);
        assert_eq!(st.handoff.in_channel, 1);
        assert_eq!(st.queued, [1, 2, 3, 4]);
        // Nothing is written directly before the channel's publish has left.
        assert!(st.take_batch(256, 1000).is_none());
        st.handoff.reported_sent();
        assert_eq!(st.awaiting_id.pop_front(), Some(0));
        // Two in-flight slots: two publishes, in order.
        let batch = st.take_batch(256, 2).expect("a batch");
        assert_eq!(topics(&batch), ["t/1", "t/2"]);
        assert_eq!(st.awaiting_id, [1, 2]);
        // A publish submitted while the batch is written waits behind the queue.
        add(&mut st, &client, 1);
        assert_eq!(st.queued, [3, 4, 5]);
        st.batch_written(2, 2);
        assert_eq!(st.handoff.direct_unreported, 2);
        st.handoff.reported_sent();
        st.handoff.reported_sent();
        assert_eq!(
            (st.handoff.direct_unreported, st.handoff.in_channel),
            (0, 0)
        );
        let batch = st.take_batch(256, 10).expect("a batch");
        assert_eq!(topics(&batch), ["t/3", "t/4", "t/5"]);
    }

    #[test]
    fn qos_0_publishes_take_no_in_flight_slot() {
        let (client, _eventloop) = client();
        let mut st = State::new(false);
        st.handoff.in_channel = 1; // keep all of them queued
        for qos in [0, 0, 1, 0] {
            add(&mut st, &client, qos);
        }
        st.handoff.in_channel = 0;
        let batch = st.take_batch(256, 0).expect("a batch");
        assert_eq!(topics(&batch), ["t/0", "t/1"]);
        assert_eq!(st.queued, [2, 3]);
    }

    #[test]
    fn publishes_not_taken_after_a_collision_go_back_to_the_front_in_order() {
        let (client, _eventloop) = client();
        let mut st = State::new(false);
        st.handoff.in_channel = 1;
        for _ in 0..4 {
            add(&mut st, &client, 1);
        }
        st.handoff.in_channel = 0;
        let batch = st.take_batch(3, 10).expect("a batch");
        assert_eq!(batch.len(), 3);
        st.batch_written(3, 1);
        assert_eq!(st.awaiting_id, [0]);
        assert_eq!(st.queued, [1, 2, 3]);
        assert_eq!(st.handoff.direct_unreported, 1);
        assert!(!st.handoff.writing);
    }

    #[test]
    fn without_direct_writes_every_publish_goes_through_the_channel() {
        let (client, _eventloop) = client();
        let mut st = State::new(true);
        for _ in 0..3 {
            add(&mut st, &client, 1);
        }
        assert_eq!(st.awaiting_id, [0, 1, 2]);
        assert!(st.queued.is_empty());
        assert!(st.take_batch(256, 10).is_none());
    }
}
