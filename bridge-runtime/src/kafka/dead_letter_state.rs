//! Whether the dead-letter topic can take letters, from two sources: the periodic metadata
//! check (missing, not authorised) and the writes themselves, which see what metadata cannot —
//! a topic that refuses every letter (compacted, so keyless letters are invalid), or a
//! partition that cannot confirm one (no leader, fewer in-sync replicas than
//! `min.insync.replicas`). A problem a write found keeps the topic unusable for a while that
//! doubles with every failure (30 s up to 5 min): held-back messages are tried again then, not
//! every few seconds, and the bridge is not ready until a letter is written.

use std::time::{Duration, Instant};

const FIRST_BACKOFF: Duration = Duration::from_secs(30);
const MAX_BACKOFF: Duration = Duration::from_secs(300);

struct WriteProblem {
    reason: String,
    retry_at: Instant,
    backoff: Duration,
}

#[derive(Default)]
pub struct TopicState {
    /// What the last metadata check found wrong.
    checked: Option<String>,
    /// What the last write found wrong, until a write succeeds.
    written: Option<WriteProblem>,
}

impl TopicState {
    /// Whether a letter may be tried now; the reason when not.
    pub fn usable(&self, now: Instant) -> Result<(), String> {
        if let Some(problem) = &self.checked {
            return Err(problem.clone());
        }
        match &self.written {
            Some(p) if now < p.retry_at => Err(p.reason.clone()),
            _ => Ok(()),
        }
    }

    /// Whether the bridge may say the topic is usable: no problem from either source.
    pub fn ready(&self) -> Result<(), String> {
        match (&self.checked, &self.written) {
            (Some(problem), _) => Err(problem.clone()),
            (None, Some(p)) => Err(p.reason.clone()),
            (None, None) => Ok(()),
        }
    }

    /// Records the metadata check's finding; returns the previous one.
    pub fn checked(&mut self, problem: Option<String>) -> Option<String> {
        std::mem::replace(&mut self.checked, problem)
    }

    /// A write failed for a reason about the topic; returns when a letter is tried again.
    pub fn write_failed(&mut self, reason: String, now: Instant) -> Duration {
        let backoff = self
            .written
            .as_ref()
            .map_or(FIRST_BACKOFF, |p| (p.backoff * 2).min(MAX_BACKOFF));
        self.written = Some(WriteProblem {
            reason,
            retry_at: now + backoff,
            backoff,
        });
        backoff
    }

    /// A letter was written: returns the problem that is over, if there was one.
    pub fn write_succeeded(&mut self) -> Option<String> {
        self.written.take().map(|p| p.reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_problem_keeps_the_topic_unusable_for_a_doubling_while() {
        let mut s = TopicState::default();
        let t0 = Instant::now();
        assert_eq!(s.usable(t0), Ok(()));
        assert_eq!(s.write_failed("refused".into(), t0), FIRST_BACKOFF);
        assert_eq!(
            s.usable(t0 + Duration::from_secs(29)),
            Err("refused".into())
        );
        assert_eq!(s.usable(t0 + FIRST_BACKOFF), Ok(()), "tried again");
        assert_eq!(s.ready(), Err("refused".into()), "not ready until written");
        let t1 = t0 + FIRST_BACKOFF;
        assert_eq!(s.write_failed("refused".into(), t1), FIRST_BACKOFF * 2);
        for _ in 0..5 {
            s.write_failed("refused".into(), t1);
        }
        assert_eq!(s.write_failed("refused".into(), t1), MAX_BACKOFF);
        assert_eq!(s.write_succeeded(), Some("refused".into()));
        assert_eq!((s.usable(t1), s.ready()), (Ok(()), Ok(())));
        assert_eq!(
            s.write_failed("again".into(), t1),
            FIRST_BACKOFF,
            "a new problem starts over"
        );
    }

    #[test]
    fn the_metadata_check_decides_on_its_own() {
        let mut s = TopicState::default();
        let now = Instant::now();
        assert_eq!(s.checked(Some("missing".into())), None);
        assert_eq!(s.usable(now), Err("missing".into()));
        assert_eq!(s.ready(), Err("missing".into()));
        assert_eq!(s.checked(None), Some("missing".into()));
        assert_eq!(s.usable(now), Ok(()));
    }
}
