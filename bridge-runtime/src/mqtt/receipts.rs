//! Inbound QoS 2 receipts: the PUBRECs written whose PUBREL has not come yet, and the
//! acknowledgements held back while too many are.
//!
//! Why hold any back: a broker keeps a session's outgoing messages in one list and looks up
//! each PUBREC by walking it from the oldest message, past every message whose PUBCOMP it still
//! waits for (Mosquitto 2.0 does, `db__message_update_outgoing`). Written all at once, a batch
//! of n PUBRECs costs the broker n²/2 steps. Mosquitto 2.0.11 also lets a session's in-flight
//! list grow past its receive maximum (`db__message_delete_outgoing` counts the messages in
//! flight from where the acknowledged one stood; fixed in 2.0.13), so n grows with the backlog,
//! the broker slows, more waits, and n grows again: MQTT → Kafka at QoS 2 drained at 3,500
//! msg/s in some runs and 140,000 in others. With at most [`MAX_UNRELEASED`] PUBRECs waiting
//! for their PUBREL the walk stays short; the broker answers within a round trip, so this
//! costs no throughput.

use std::collections::{HashSet, VecDeque};

use super::AckToken;

/// The most PUBRECs written and not yet released by the broker's PUBREL.
pub const MAX_UNRELEASED: usize = 128;

#[derive(Default)]
pub struct Receipts {
    /// Packet ids acknowledged with PUBREC, waiting for the broker's PUBREL.
    unreleased: HashSet<u16>,
    /// Acknowledgements not written yet, in order: the first is a PUBREC that found
    /// [`MAX_UNRELEASED`] waiting; those after it wait behind it to keep their order.
    held: VecDeque<AckToken>,
}

impl Receipts {
    /// `token` if its acknowledgement may be written now; otherwise it is held.
    pub fn admit(&mut self, token: AckToken) -> Option<AckToken> {
        if !self.held.is_empty() || !self.may_write(&token) {
            self.held.push_back(token);
            return None;
        }
        self.written(&token);
        Some(token)
    }

    /// A PUBREL for `pkid`: whether a PUBREC of this connection waited for it.
    pub fn released(&mut self, pkid: u16) -> bool {
        self.unreleased.remove(&pkid)
    }

    /// The next held acknowledgement that may be written now.
    pub fn next_ready(&mut self) -> Option<AckToken> {
        let token = *self.held.front()?;
        if !self.may_write(&token) {
            return None;
        }
        self.held.pop_front();
        self.written(&token);
        Some(token)
    }

    /// Acknowledgements held back.
    pub fn holding(&self) -> bool {
        !self.held.is_empty()
    }

    fn may_write(&self, token: &AckToken) -> bool {
        token.qos != 2 || self.unreleased.len() < MAX_UNRELEASED
    }

    fn written(&mut self, token: &AckToken) {
        if token.qos == 2 {
            self.unreleased.insert(token.pkid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qos(pkid: u16, qos: u8) -> AckToken {
        AckToken { pkid, qos }
    }

    fn fill(receipts: &mut Receipts) {
        for pkid in 1..=MAX_UNRELEASED as u16 {
            assert_eq!(receipts.admit(qos(pkid, 2)), Some(qos(pkid, 2)));
        }
    }

    #[test]
    fn a_pubrec_waits_while_too_many_wait_for_their_pubrel_and_keeps_the_order() {
        let mut receipts = Receipts::default();
        fill(&mut receipts);
        assert_eq!(receipts.admit(qos(1000, 2)), None);
        // A PUBACK after it waits behind it: acknowledgements leave in arrival order.
        assert_eq!(receipts.admit(qos(1001, 1)), None);
        assert!(receipts.holding());
        assert_eq!(receipts.next_ready(), None);
        assert!(receipts.released(1));
        assert_eq!(receipts.next_ready(), Some(qos(1000, 2)));
        assert_eq!(receipts.next_ready(), Some(qos(1001, 1)));
        assert_eq!(receipts.next_ready(), None);
        assert!(!receipts.holding());
    }

    #[test]
    fn pubacks_are_never_held_on_their_own() {
        let mut qos1 = Receipts::default();
        for pkid in 1..=1000 {
            assert_eq!(qos1.admit(qos(pkid, 1)), Some(qos(pkid, 1)));
        }
        assert!(!qos1.holding());
    }

    #[test]
    fn a_pubrel_nobody_waits_for_is_unknown() {
        let mut receipts = Receipts::default();
        assert!(!receipts.released(7));
        receipts.admit(qos(7, 2));
        assert!(receipts.released(7));
        assert!(!receipts.released(7), "released once");
    }
}
