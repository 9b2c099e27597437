//! Whether the dead-letter topic can take letters, from two sources: the periodic metadata
//! check (missing, not authorised) and the writes themselves, which see what metadata cannot —
//! a topic that refuses every letter (compacted, so keyless letters are invalid), or a
//! partition that cannot confirm one (no leader, fewer in-sync replicas than
//! `min.insync.replicas`). A problem a write found keeps the topic unusable for a while that
//! doubles with every failure (30 s up to 5 min): held-back messages are tried again then, not
//! every few seconds, and the bridge is not ready meanwhile. Attempts that were already on
//! their way when a problem was recorded neither double the wait (many letters failing at once
//! are one failure) nor end it (a letter that got through to another partition proves little).

use std::time::{Duration, Instant};

const FIRST_BACKOFF: Duration = Duration::from_secs(30);
const MAX_BACKOFF: Duration = Duration::from_secs(300);

struct WriteProblem {
    reason: String,
    /// When it was recorded: attempts started before then are not news.
    since: Instant,
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

    /// Whether the bridge may say the topic is usable: no problem from the check, and no wait
    /// after a failed write going on.
    pub fn ready(&self, now: Instant) -> Result<(), String> {
        self.usable(now)
    }

    /// Records the metadata check's finding; returns the previous one.
    pub fn checked(&mut self, problem: Option<String>) -> Option<String> {
        std::mem::replace(&mut self.checked, problem)
    }

    /// A write started at `started` failed for a reason about the topic; returns how long
    /// until a letter is tried again.
    pub fn write_failed(&mut self, reason: String, started: Instant, now: Instant) -> Duration {
        let backoff = match &self.written {
            // On its way when the problem was recorded: the same failure.
            Some(p) if started < p.since => return p.retry_at.saturating_duration_since(now),
            Some(p) => (p.backoff * 2).min(MAX_BACKOFF),
            None => FIRST_BACKOFF,
        };
        self.written = Some(WriteProblem {
            reason,
            since: now,
            retry_at: now + backoff,
            backoff,
        });
        backoff
    }

    /// A letter started at `started` was written: returns the problem that is over, if there
    /// was one and the attempt began after it was recorded.
    pub fn write_succeeded(&mut self, started: Instant) -> Option<String> {
        if self.written.as_ref().is_some_and(|p| started < p.since) {
            return None;
        }
        self.written.take().map(|p| p.reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn a_write_problem_keeps_the_topic_unusable_for_a_doubling_while() {
        let mut s = TopicState::default();
        let t0 = Instant::now();
        assert_eq!(s.usable(t0), Ok(()));
        assert_eq!(s.write_failed("refused".into(), t0, t0), FIRST_BACKOFF);
        assert_eq!(s.usable(t0 + secs(29)), Err("refused".into()));
        assert_eq!(s.ready(t0 + secs(29)), Err("refused".into()));
        let t1 = t0 + FIRST_BACKOFF;
        assert_eq!(s.usable(t1), Ok(()), "tried again");
        assert_eq!(s.ready(t1), Ok(()), "ready once the wait is over");
        assert_eq!(s.write_failed("refused".into(), t1, t1), FIRST_BACKOFF * 2);
        let mut t = t1;
        for _ in 0..5 {
            t += MAX_BACKOFF;
            s.write_failed("refused".into(), t, t);
        }
        assert_eq!(s.write_failed("refused".into(), t, t), MAX_BACKOFF);
        assert_eq!(s.write_succeeded(t), Some("refused".into()));
        assert_eq!((s.usable(t), s.ready(t)), (Ok(()), Ok(())));
        assert_eq!(
            s.write_failed("again".into(), t, t),
            FIRST_BACKOFF,
            "a new problem starts over"
        );
    }

    #[test]
    fn attempts_already_on_their_way_are_not_news() {
        let mut s = TopicState::default();
        let t0 = Instant::now();
        s.write_failed("timed out".into(), t0, t0 + secs(15));
        // Nine more letters, sent before the first failure was known, fail as well.
        for _ in 0..9 {
            let left = s.write_failed("timed out".into(), t0 + secs(1), t0 + secs(16));
            assert_eq!(left, secs(29));
        }
        assert_eq!(
            s.usable(t0 + secs(15) + FIRST_BACKOFF),
            Ok(()),
            "still 30 s"
        );
        // One sent before the failure got through (another partition): the wait goes on.
        assert_eq!(s.write_succeeded(t0 + secs(2)), None);
        assert!(s.usable(t0 + secs(20)).is_err());
        // One sent after it is news.
        assert_eq!(s.write_succeeded(t0 + secs(46)), Some("timed out".into()));
    }

    #[test]
    fn the_metadata_check_decides_on_its_own() {
        let mut s = TopicState::default();
        let now = Instant::now();
        assert_eq!(s.checked(Some("missing".into())), None);
        assert_eq!(s.usable(now), Err("missing".into()));
        assert_eq!(s.ready(now), Err("missing".into()));
        assert_eq!(s.checked(None), Some("missing".into()));
        assert_eq!(s.usable(now), Ok(()));
    }
}
