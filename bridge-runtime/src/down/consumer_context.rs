//! A Kafka → MQTT route's consumer context: the connection state for readiness, and the
//! commits made when partitions are revoked (what the broker confirmed here is committed
//! before another consumer takes the partitions over).

use std::sync::{Arc, Mutex};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tracing::{debug, info, warn};

use super::offsets::{Commit, OffsetTracker};
use crate::health::Readiness;
use crate::kafka::BridgeContext;

/// The consumer's context: connection state, and commits on partition revocation.
pub struct RouteContext {
    pub base: BridgeContext,
    pub offsets: Arc<Mutex<OffsetTracker>>,
    pub route: String,
    /// Ready once the consumer group has given this consumer its partitions (possibly none).
    /// Until then the consumer has no position: with `autoOffsetReset: latest`, a record
    /// produced meanwhile is behind the position its partition gets and is never consumed,
    /// so the pod must not say it is ready. Seen in `make test`: 50 of 1,000 commands
    /// produced right after the bridge was Ready were skipped while the group's join was slow.
    pub assigned: Readiness,
    /// The last commit failure warned about, so a repeated one is logged at debug level.
    pub commit_failing: Mutex<Option<String>>,
}

impl RouteContext {
    /// Records Kafka's answer to a synchronous commit of `commits`. librdkafka fails the whole
    /// commit when any partition failed, so the answer counts for all of them.
    pub(super) fn commit_answered(
        &self,
        result: &rdkafka::error::KafkaResult<()>,
        commits: &[Commit],
    ) {
        if let Ok(mut offsets) = self.offsets.lock() {
            for c in commits {
                offsets.commit_answered(c, result.is_ok());
            }
        }
        let Ok(mut last) = self.commit_failing.lock() else {
            return;
        };
        match result {
            Ok(()) => *last = None,
            Err(e) => {
                let text = e.to_string();
                if last.as_deref() == Some(text.as_str()) {
                    debug!(route = %self.route, error = %text, "offset commit failed again; it is sent again");
                } else {
                    warn!(route = %self.route, error = %text, "offset commit failed; it is sent again until Kafka confirms it (records since the last commit would be consumed again after a restart)");
                    *last = Some(text);
                }
            }
        }
    }
}

/// Runs a call that may wait on the network (a synchronous commit) without holding up the
/// other tasks of the async worker it is called on: librdkafka calls the rebalance callback
/// on the thread polling the consumer, which is an async worker (one, on a 1-CPU pod).
fn off_the_async_workers<R>(call: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(call),
        _ => call(),
    }
}

impl ClientContext for RouteContext {
    fn stats_raw(&self, statistics: &[u8]) {
        self.base.stats_raw(statistics);
    }

    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, facility: &str, message: &str) {
        self.base.log(level, facility, message);
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        self.base.error(error, reason);
    }
}

impl ConsumerContext for RouteContext {
    /// Before partitions go to another consumer, commit what the broker has confirmed here;
    /// records still in flight will be consumed again by the new owner (at least once).
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(revoked) = rebalance else {
            return;
        };
        let mut commits = TopicPartitionList::new();
        if let Ok(mut offsets) = self.offsets.lock() {
            for e in revoked.elements() {
                let tp = (e.topic().to_owned(), e.partition());
                if let Some(pos) = offsets.revoke(&tp) {
                    let _ = commits.add_partition_offset(&tp.0, tp.1, Offset::Offset(pos));
                }
            }
        }
        if commits.count() > 0 {
            let result = off_the_async_workers(|| consumer.commit(&commits, CommitMode::Sync));
            if let Err(e) = result {
                warn!(route = %self.route, error = %e, "commit on partition revocation failed; records since the last commit will be consumed again");
            }
        }
        info!(route = %self.route, partitions = revoked.count(), "partitions revoked");
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(assigned) = rebalance {
            if let Ok(mut offsets) = self.offsets.lock() {
                for e in assigned.elements() {
                    offsets.assign((e.topic().to_owned(), e.partition()));
                }
            }
            info!(route = %self.route, partitions = assigned.count(), "partitions assigned");
            self.assigned.set(true);
        }
    }
}
