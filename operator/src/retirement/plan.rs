//! What to do about the MQTT sessions of replicas a scale-down removed (pure).
//!
//! Brokers keep routing shared-subscription messages to the persistent session of every
//! member, offline ones included, so the session of a removed replica collects messages that
//! nobody reads. Once the pod of such an ordinal is gone, a Job retires its session (drains it
//! into Kafka and ends it). The status remembers how many ordinals may hold a session, so the
//! plan is the same after an operator restart; Jobs are created and deleted idempotently.

use std::collections::{BTreeMap, BTreeSet};

/// Where a retirement Job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Running,
    Succeeded,
    Failed,
}

/// What the plan is made from.
pub struct Observed<'a> {
    /// `spec.replicas`.
    pub desired: i32,
    /// `status.mqttSessions` as last written (`None`: never written).
    pub sessions: Option<i32>,
    /// Ordinals that still have a pod (running or stopping).
    pub pods: &'a BTreeSet<i32>,
    /// The bridge's retirement Jobs by ordinal.
    pub jobs: &'a BTreeMap<i32, JobState>,
    /// Whether the bridge subscribes (has MQTT → Kafka routes): only subscribers keep
    /// persistent sessions.
    pub subscribes: bool,
}

/// What to do now.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// `status.mqttSessions` to write.
    pub sessions: i32,
    /// Ordinals to start a retirement Job for.
    pub create: Vec<i32>,
    /// Jobs to delete before anything else (stale, or of ordinals that run again).
    pub delete: Vec<i32>,
    /// Jobs to delete once the status says their sessions are gone (their work is done).
    pub finished: Vec<i32>,
    /// Ordinals to retire whose pod is still there.
    pub waiting_for_pods: Vec<i32>,
    /// Those of `waiting_for_pods` whose pod is stuck terminating (set by the caller, which
    /// knows the time).
    pub stuck_pods: Vec<i32>,
    /// When to look again for a deadline of the caller's (a pod becoming stuck, a failed Job
    /// due for another try); `None`: nothing is due.
    pub wake_in: Option<std::time::Duration>,
    pub running: Vec<i32>,
    pub failed: Vec<i32>,
    /// Zero replicas: sessions are kept.
    pub paused: bool,
}

impl Plan {
    /// True when no session beyond the replicas is left to retire.
    pub fn settled(&self) -> bool {
        self.paused
            || (self.create.is_empty()
                && self.waiting_for_pods.is_empty()
                && self.running.is_empty()
                && self.failed.is_empty())
    }
}

pub fn plan(o: &Observed<'_>) -> Plan {
    let desired = o.desired.max(0);
    // Never written (a bridge from before this field): every ordinal with a pod may have one.
    let known = o
        .sessions
        .unwrap_or_else(|| o.pods.iter().next_back().map_or(0, |n| n + 1));
    if !o.subscribes {
        return Plan {
            sessions: desired,
            delete: o.jobs.keys().copied().collect(),
            ..Plan::default()
        };
    }
    let sessions = known.max(desired);
    if desired == 0 {
        // Paused: the broker queues for every session until the bridge scales up again.
        return Plan {
            sessions,
            delete: o.jobs.keys().copied().collect(),
            paused: true,
            ..Plan::default()
        };
    }
    let retire = desired..sessions;
    let mut plan = Plan {
        sessions,
        delete: o
            .jobs
            .keys()
            .copied()
            .filter(|n| !retire.contains(n))
            .collect(),
        ..Plan::default()
    };
    for n in retire.clone() {
        match (o.pods.contains(&n), o.jobs.get(&n)) {
            (_, Some(JobState::Succeeded)) => plan.finished.push(n),
            (_, Some(JobState::Failed)) => plan.failed.push(n),
            (_, Some(JobState::Running)) => plan.running.push(n),
            (true, None) => plan.waiting_for_pods.push(n),
            (false, None) => plan.create.push(n),
        }
    }
    if plan.finished.len() == retire.len() {
        plan.sessions = desired;
    } else {
        // Their Jobs stay until every removed session is retired: each one's success is
        // what the status records.
        plan.finished.clear();
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(desired: i32, sessions: Option<i32>, pods: &[i32], jobs: &[(i32, JobState)]) -> Plan {
        let pods: BTreeSet<i32> = pods.iter().copied().collect();
        let jobs: BTreeMap<i32, JobState> = jobs.iter().copied().collect();
        plan(&Observed {
            desired,
            sessions,
            pods: &pods,
            jobs: &jobs,
            subscribes: true,
        })
    }

    #[test]
    fn scaling_up_records_the_new_sessions_and_retires_nothing() {
        let p = run(3, Some(1), &[0], &[]);
        assert_eq!(p.sessions, 3);
        assert!(p.settled() && p.create.is_empty());
    }

    #[test]
    fn a_scale_down_waits_for_the_pods_then_retires_each_removed_ordinal() {
        let p = run(1, Some(3), &[0, 1, 2], &[]);
        assert_eq!((p.sessions, p.waiting_for_pods.clone()), (3, vec![1, 2]));
        assert!(!p.settled());
        let p = run(1, Some(3), &[0, 2], &[]);
        assert_eq!(
            (p.create.clone(), p.waiting_for_pods.clone()),
            (vec![1], vec![2])
        );
        let p = run(1, Some(3), &[0], &[(1, JobState::Running)]);
        assert_eq!((p.running.clone(), p.create.clone()), (vec![1], vec![2]));
    }

    #[test]
    fn the_sessions_drop_only_when_every_removed_one_is_retired() {
        let p = run(
            1,
            Some(3),
            &[0],
            &[(1, JobState::Succeeded), (2, JobState::Running)],
        );
        assert_eq!(p.sessions, 3);
        assert!(p.finished.is_empty(), "kept until all are done");
        let p = run(
            1,
            Some(3),
            &[0],
            &[(1, JobState::Succeeded), (2, JobState::Succeeded)],
        );
        assert_eq!((p.sessions, p.finished.clone()), (1, vec![1, 2]));
        assert!(p.settled());
        // After the status write, before the Jobs were deleted (a crash): they are stale.
        let p = run(
            1,
            Some(1),
            &[0],
            &[(1, JobState::Succeeded), (2, JobState::Succeeded)],
        );
        assert_eq!((p.sessions, p.delete.clone()), (1, vec![1, 2]));
    }

    #[test]
    fn a_failed_job_is_kept_and_reported() {
        let p = run(1, Some(2), &[0], &[(1, JobState::Failed)]);
        assert_eq!((p.failed.clone(), p.sessions), (vec![1], 2));
        assert!(p.delete.is_empty() && !p.settled());
    }

    #[test]
    fn scaling_up_during_a_retirement_stops_the_jobs_of_ordinals_that_run_again() {
        let p = run(
            3,
            Some(4),
            &[0],
            &[(1, JobState::Running), (3, JobState::Running)],
        );
        assert_eq!((p.delete.clone(), p.running.clone()), (vec![1], vec![3]));
    }

    #[test]
    fn zero_replicas_pause_and_keep_every_session() {
        let p = run(0, Some(2), &[], &[(1, JobState::Running)]);
        assert!(p.paused && p.settled());
        assert_eq!((p.sessions, p.delete.clone()), (2, vec![1]));
        // Back to one: the other session is retired.
        let p = run(1, Some(2), &[], &[]);
        assert_eq!(p.create, vec![1]);
    }

    #[test]
    fn a_bridge_without_subscriptions_has_no_sessions_to_retire() {
        let pods = BTreeSet::from([0, 1, 2]);
        let jobs = BTreeMap::from([(2, JobState::Running)]);
        let p = plan(&Observed {
            desired: 1,
            sessions: Some(3),
            pods: &pods,
            jobs: &jobs,
            subscribes: false,
        });
        assert_eq!((p.sessions, p.delete.clone()), (1, vec![2]));
        assert!(p.settled());
    }

    #[test]
    fn an_unrecorded_count_starts_from_the_pods_there_are() {
        let p = run(1, None, &[0, 1, 2], &[]);
        assert_eq!((p.sessions, p.waiting_for_pods.clone()), (3, vec![1, 2]));
    }
}
