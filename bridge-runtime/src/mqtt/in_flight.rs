//! The packet ids the bridge has in use on one connection, and what each stands for.
//!
//! A QoS 2 publish keeps its packet id until PUBCOMP, not PUBREC: a new publish that took the
//! id of one still waiting for PUBCOMP would be confirmed by the old one's PUBCOMP (and the
//! old one never). SUBSCRIBE and UNSUBSCRIBE take ids from the same space. The table lives and
//! dies with its connection (the publisher's session is clean; what was in flight is sent
//! again, as new publishes, on the next connection), so an id never confirms a publish of
//! another connection either.

use std::collections::HashMap;
use std::time::Instant;

/// What a packet id in use stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// A QoS 1 publish waiting for PUBACK, with the caller's tag.
    Qos1(u64),
    /// A QoS 2 publish waiting for PUBREC, with the caller's tag.
    Qos2(u64),
    /// A QoS 2 publish the broker received (PUBREC), released (PUBREL sent), waiting for
    /// PUBCOMP.
    Released(u64),
    Subscribe,
    Unsubscribe,
}

impl Use {
    pub fn tag(self) -> Option<u64> {
        match self {
            Use::Qos1(tag) | Use::Qos2(tag) | Use::Released(tag) => Some(tag),
            Use::Subscribe | Use::Unsubscribe => None,
        }
    }
}

pub struct InFlight {
    ids: HashMap<u16, (Use, Instant)>,
    next: u16,
    /// Publishes in flight at most: the broker's receive maximum or the configured limit.
    limit: usize,
}

impl InFlight {
    pub fn new(limit: u16) -> Self {
        Self {
            ids: HashMap::new(),
            next: 1,
            limit: usize::from(limit.max(1)),
        }
    }

    /// Packet ids in use, and the most publishes that may be in flight.
    pub fn usage(&self) -> (usize, usize) {
        (self.ids.len(), self.limit)
    }

    /// QoS 1 and 2 publishes that may be sent now.
    pub fn room(&self) -> usize {
        self.limit.saturating_sub(self.ids.len())
    }

    /// Takes a free packet id for `what`; `None` when the limit is reached (control packets
    /// may always take one: there are far more ids than the limit).
    pub fn take(&mut self, what: Use) -> Option<u16> {
        if what.tag().is_some() && self.room() == 0 {
            return None;
        }
        if self.ids.len() >= usize::from(u16::MAX) {
            return None;
        }
        loop {
            let id = self.next;
            self.next = if id == u16::MAX { 1 } else { id + 1 };
            if let std::collections::hash_map::Entry::Vacant(e) = self.ids.entry(id) {
                e.insert((what, Instant::now()));
                return Some(id);
            }
        }
    }

    /// Ends the use of `id` if it is `expected` (by kind); the use it had, if it ended.
    pub fn end(&mut self, id: u16, expected: fn(Use) -> bool) -> Option<Use> {
        let (what, _) = *self.ids.get(&id)?;
        if !expected(what) {
            return None;
        }
        self.ids.remove(&id);
        Some(what)
    }

    /// PUBREC for a QoS 2 publish: it now waits for PUBCOMP; its tag, if `id` was one.
    pub fn release(&mut self, id: u16) -> Option<u64> {
        let entry = self.ids.get_mut(&id)?;
        match entry.0 {
            Use::Qos2(tag) => {
                entry.0 = Use::Released(tag);
                Some(tag)
            }
            _ => None,
        }
    }

    /// Whether `id` is a QoS 2 publish waiting for PUBCOMP.
    pub fn is_released(&self, id: u16) -> bool {
        matches!(self.ids.get(&id), Some((Use::Released(_), _)))
    }

    /// Tags of the publishes in flight.
    pub fn tags(&self) -> impl Iterator<Item = u64> + '_ {
        self.ids.values().filter_map(|(what, _)| what.tag())
    }

    /// When the oldest publish in flight was sent.
    pub fn oldest(&self) -> Option<Instant> {
        self.ids
            .values()
            .filter(|(what, _)| what.tag().is_some())
            .map(|(_, sent)| *sent)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 28, finding 1: rumqttc freed a QoS 2 id at PUBREC, and a new publish took it.
    #[test]
    fn a_released_qos_2_publish_keeps_its_id_until_pubcomp() {
        let mut table = InFlight::new(2);
        let first = table.take(Use::Qos2(10)).expect("an id");
        assert_eq!(table.release(first), Some(10));
        let second = table.take(Use::Qos1(11)).expect("an id");
        assert_ne!(first, second);
        assert_eq!(table.room(), 0, "the released one still counts");
        assert_eq!(table.take(Use::Qos1(12)), None);
        // A PUBACK with the QoS 2 publish's id confirms nothing.
        assert_eq!(table.end(first, |u| matches!(u, Use::Qos1(_))), None);
        assert_eq!(
            table.end(first, |u| matches!(u, Use::Released(_))),
            Some(Use::Released(10))
        );
        assert_eq!(table.room(), 1);
    }

    #[test]
    fn ids_wrap_around_and_skip_those_in_use() {
        let mut table = InFlight::new(u16::MAX);
        table.next = u16::MAX;
        let a = table.take(Use::Qos1(1)).expect("an id");
        assert_eq!(a, u16::MAX);
        let b = table.take(Use::Qos1(2)).expect("an id");
        assert_eq!(b, 1, "0 is not a packet id");
        table.next = u16::MAX;
        assert_eq!(table.take(Use::Subscribe), Some(2));
    }

    #[test]
    fn control_packets_take_ids_beyond_the_publish_limit() {
        let mut table = InFlight::new(1);
        table.take(Use::Qos1(1)).expect("an id");
        assert!(table.take(Use::Subscribe).is_some());
        assert_eq!(table.tags().collect::<Vec<_>>(), [1]);
    }
}
