//! Which offsets may be committed. Records of a partition start in offset order; an offset is
//! committable once every record before it is confirmed by the broker, so the commit position
//! is the lowest unconfirmed offset (or one past the last started record).

use std::collections::{BTreeSet, HashMap};

pub type TopicPartition = (String, i32);

struct Partition {
    /// Changes when the partition is assigned again, so confirmations of records from an
    /// earlier assignment are ignored.
    epoch: u64,
    unconfirmed: BTreeSet<i64>,
    next: Option<i64>,
    committed: Option<i64>,
}

impl Partition {
    fn position(&self) -> Option<i64> {
        self.unconfirmed.first().copied().or(self.next)
    }
}

#[derive(Default)]
pub struct OffsetTracker {
    partitions: HashMap<TopicPartition, Partition>,
    epochs: u64,
}

impl OffsetTracker {
    /// The partition was assigned: start afresh.
    pub fn assign(&mut self, tp: TopicPartition) {
        self.epochs += 1;
        let epoch = self.epochs;
        self.partitions.insert(
            tp,
            Partition {
                epoch,
                unconfirmed: BTreeSet::new(),
                next: None,
                committed: None,
            },
        );
    }

    /// The partition was revoked: returns the position to commit (if it moved), and forgets it.
    pub fn revoke(&mut self, tp: &TopicPartition) -> Option<i64> {
        let p = self.partitions.remove(tp)?;
        p.position().filter(|pos| Some(*pos) != p.committed)
    }

    /// A record was taken; returns the assignment epoch to confirm it with.
    pub fn started(&mut self, tp: &TopicPartition, offset: i64) -> u64 {
        if !self.partitions.contains_key(tp) {
            self.assign(tp.clone());
        }
        let p = self.partitions.get_mut(tp).map(|p| {
            p.unconfirmed.insert(offset);
            p.next = Some(offset + 1);
            p.epoch
        });
        p.unwrap_or_default()
    }

    /// The broker confirmed the record (or it went to the dead-letter topic).
    pub fn confirmed(&mut self, tp: &TopicPartition, offset: i64, epoch: u64) {
        if let Some(p) = self.partitions.get_mut(tp).filter(|p| p.epoch == epoch) {
            p.unconfirmed.remove(&offset);
        }
    }

    /// Positions that moved since the last commit; they count as committed from now on.
    pub fn take_commits(&mut self) -> Vec<(TopicPartition, i64)> {
        let mut out = Vec::new();
        for (tp, p) in &mut self.partitions {
            if let Some(pos) = p.position().filter(|pos| Some(*pos) != p.committed) {
                p.committed = Some(pos);
                out.push((tp.clone(), pos));
            }
        }
        out
    }

    /// Records taken and not yet confirmed, over all partitions.
    #[cfg(test)]
    pub fn unconfirmed(&self) -> usize {
        self.partitions.values().map(|p| p.unconfirmed.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(p: i32) -> TopicPartition {
        ("t".to_owned(), p)
    }

    #[test]
    fn commits_only_up_to_the_lowest_unconfirmed_offset() {
        let mut t = OffsetTracker::default();
        t.assign(tp(0));
        let e = t.started(&tp(0), 10);
        t.started(&tp(0), 11);
        t.started(&tp(0), 12);
        t.confirmed(&tp(0), 11, e);
        t.confirmed(&tp(0), 12, e);
        assert_eq!(
            t.take_commits(),
            [(tp(0), 10)],
            "10 is unconfirmed: nothing past it"
        );
        assert!(t.take_commits().is_empty(), "no change, no commit");
        t.confirmed(&tp(0), 10, e);
        assert_eq!(t.take_commits(), [(tp(0), 13)]);
        assert_eq!(t.unconfirmed(), 0);
    }

    #[test]
    fn confirmations_from_an_earlier_assignment_are_ignored() {
        let mut t = OffsetTracker::default();
        t.assign(tp(1));
        let old = t.started(&tp(1), 5);
        assert_eq!(t.revoke(&tp(1)), Some(5));
        t.assign(tp(1));
        let new = t.started(&tp(1), 5);
        t.confirmed(&tp(1), 5, old);
        assert_eq!(t.unconfirmed(), 1);
        t.confirmed(&tp(1), 5, new);
        assert_eq!(t.take_commits(), [(tp(1), 6)]);
    }

    #[test]
    fn revoke_reports_nothing_when_already_committed() {
        let mut t = OffsetTracker::default();
        let e = t.started(&tp(2), 0);
        t.confirmed(&tp(2), 0, e);
        assert_eq!(t.take_commits(), [(tp(2), 1)]);
        assert_eq!(t.revoke(&tp(2)), None);
    }
}
