//! The finalizer of bridges whose topics go with them (`topicDeletionPolicy: Delete`). It is
//! added before any topic is created and removed once the topics the bridge created are
//! deleted, or after a bounded number of attempts when Kafka cannot be reached, with a
//! Warning Event naming the topics left behind. A topic another bridge still uses is kept.

use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{ObjectMeta, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use mkb_api::crd::{MqttKafkaBridgeSpec, TopicDeletionPolicy};
use serde_json::json;
use tracing::{info, warn};

use crate::bridge::Bridge;
use crate::context::{backoff_after, Context};
use crate::error::Error;
use crate::k8s::events::announce;
use crate::k8s::secrets;
use crate::topics::{self, BridgeTopics, Sharing};

/// Held by bridges whose topics are deleted with them.
pub const FINALIZER: &str = "mqttkafka.io/topics";

fn has_finalizer(meta: &ObjectMeta) -> bool {
    meta.finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|f| f == FINALIZER))
}

/// Adds the finalizer when the policy is Delete; removes it when the policy became Retain.
pub async fn follow_policy(
    ctx: &Context,
    bridge: &Bridge<'_>,
    spec: &MqttKafkaBridgeSpec,
) -> Result<(), Error> {
    let want = spec.kafka.topic_deletion_policy == TopicDeletionPolicy::Delete;
    if want != has_finalizer(bridge.meta) {
        set_finalizer(ctx, bridge, want).await?;
    }
    Ok(())
}

/// Writes the finalizer list with a resourceVersion precondition, so a concurrent change of
/// the list is never overwritten (the write fails and is retried). The list and its version
/// are read fresh: the watch cache often still holds the bridge as it was before our own last
/// write, and its version would make the write fail every time.
async fn set_finalizer(ctx: &Context, bridge: &Bridge<'_>, present: bool) -> Result<(), Error> {
    let api = bridge.untyped_api(ctx);
    let Some(live) = api.get_opt(&bridge.name).await? else {
        return Ok(());
    };
    let mut finalizers = live.metadata.finalizers.clone().unwrap_or_default();
    if finalizers.iter().any(|f| f == FINALIZER) == present {
        return Ok(());
    }
    finalizers.retain(|f| f != FINALIZER);
    if present {
        finalizers.push(FINALIZER.to_owned());
    }
    let patch = json!({
        "metadata": {
            "resourceVersion": live.metadata.resource_version,
            "finalizers": finalizers,
        }
    });
    api.patch(&bridge.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    info!(bridge = %bridge.key(), finalizer = FINALIZER, present, "finalizer updated");
    Ok(())
}

/// The failed attempts to delete a deleted bridge's topics, and when the next is due: kept
/// on the bridge, so an operator that restarts (or another replica that takes over) goes on
/// counting instead of starting over.
pub const DELETION_ATTEMPTS: &str = "mqttkafka.io/topic-deletion-attempts";
pub const NEXT_DELETION_ATTEMPT: &str = "mqttkafka.io/topic-deletion-next-attempt";

/// What the bridge's annotations say of earlier attempts.
#[derive(Debug, Default, PartialEq, Eq)]
struct Attempts {
    failed: u32,
    next: Option<Timestamp>,
}

impl Attempts {
    fn of(meta: &ObjectMeta) -> Self {
        let annotation = |name: &str| meta.annotations.as_ref()?.get(name).cloned();
        Attempts {
            failed: annotation(DELETION_ATTEMPTS)
                .and_then(|n| n.parse().ok())
                .unwrap_or(0),
            next: annotation(NEXT_DELETION_ATTEMPT).and_then(|t| t.parse().ok()),
        }
    }

    /// How long until the next attempt is due; `None` when it is.
    fn wait(&self, now: Timestamp) -> Option<Duration> {
        let left = self.next?.duration_since(now);
        Duration::try_from(left).ok().filter(|d| !d.is_zero())
    }
}

/// Records a failed attempt on the bridge.
async fn record_failure(
    ctx: &Context,
    bridge: &Bridge<'_>,
    failed: u32,
    next: Timestamp,
) -> Result<(), Error> {
    let patch = json!({
        "metadata": {"annotations": {
            DELETION_ATTEMPTS: failed.to_string(),
            NEXT_DELETION_ATTEMPT: next.to_string(),
        }}
    });
    bridge
        .untyped_api(ctx)
        .patch(&bridge.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// The bridge is being deleted: delete its topics if it holds the finalizer, then let it go.
pub async fn on_deletion(
    ctx: &Context,
    bridge: &Bridge<'_>,
) -> Result<(Action, &'static str), Error> {
    if !has_finalizer(bridge.meta) {
        return Ok((Action::await_change(), "ok"));
    }
    let attempts = Attempts::of(bridge.meta);
    let now = Timestamp::now();
    // Our own annotation write brings the bridge back at once; the backoff still holds.
    if let Some(wait) = attempts.wait(now) {
        return Ok((Action::requeue(wait), "blocked"));
    }
    match delete_topics(ctx, bridge).await {
        Ok((deleted, kept)) => {
            if !deleted.is_empty() {
                let note = format!("Deleted Kafka topics {}", deleted.join(", "));
                announce(ctx, bridge, EventType::Normal, "DeletedTopics", note).await;
            }
            if !kept.is_empty() {
                let note = format!(
                    "Kept Kafka topics {}: other bridges still use them",
                    kept.join(", ")
                );
                announce(ctx, bridge, EventType::Normal, "KeptSharedTopics", note).await;
            }
        }
        Err(message) => {
            let failed = attempts.failed.saturating_add(1);
            if failed < ctx.topic_deletion_attempts {
                let wait = backoff_after(failed);
                let next = now + SignedDuration::try_from(wait).unwrap_or(SignedDuration::ZERO);
                record_failure(ctx, bridge, failed, next).await?;
                warn!(bridge = %bridge.key(), attempts = failed, retry_in = ?wait, %message, "cannot delete the bridge's topics yet");
                return Ok((Action::requeue(wait), "blocked"));
            }
            let left: Vec<&str> = bridge
                .status
                .topics
                .iter()
                .filter(|t| t.created)
                .map(|t| t.name.as_str())
                .collect();
            let note = format!(
                "Gave up deleting Kafka topics {} after {failed} attempts ({message}); they are left in Kafka",
                left.join(", ")
            );
            announce(ctx, bridge, EventType::Warning, "TopicsLeftBehind", note).await;
        }
    }
    set_finalizer(ctx, bridge, false).await?;
    Ok((Action::await_change(), "ok"))
}

/// Deletes the topics the bridge created that no other bridge uses; returns those deleted
/// and those kept for other bridges.
async fn delete_topics(
    ctx: &Context,
    bridge: &Bridge<'_>,
) -> Result<(Vec<String>, Vec<String>), String> {
    let spec = bridge.spec()?;
    let secrets = match secrets::read(&ctx.client, &bridge.namespace, &spec).await {
        Ok(Ok(values)) => values,
        Ok(Err(blocked)) => return Err(blocked.message),
        Err(e) => return Err(e.to_string()),
    };
    let me = BridgeTopics::new(
        bridge.key(),
        bridge.created_at(),
        true,
        &spec,
        bridge.status.kafka_cluster_id.clone(),
    );
    let sharing = Sharing::new(me, ctx.watched_bridges());
    topics::delete_created(
        &ctx.kafka,
        &ctx.metrics,
        &spec,
        &secrets,
        &bridge.status,
        &sharing,
    )
    .await
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use http::{Method, StatusCode};

    use super::*;
    use crate::fake_api::{self, Answer};

    /// Issue 35: the attempts were counted in memory, so every restart of the operator began
    /// the count again (and a bridge whose topics could not go was held for ever).
    #[tokio::test]
    async fn a_restarted_operator_goes_on_counting_the_deletion_attempts() {
        let released = Arc::new(AtomicUsize::new(0));
        let writes = released.clone();
        let client = fake_api::client(move |method, path, body| {
            let writes = writes.clone();
            async move {
                let bridge = serde_json::json!({
                    "apiVersion": "mqttkafka.io/v1alpha1",
                    "kind": "MqttKafkaBridge",
                    "metadata": {"name": "b", "namespace": "ns", "resourceVersion": "4",
                        "finalizers": [FINALIZER]},
                });
                match method {
                    // The Secret with the Kafka password is gone: the topics cannot be deleted.
                    Method::GET if path.contains("/secrets/") => {
                        fake_api::status(StatusCode::NOT_FOUND, "NotFound")
                    }
                    Method::GET => Answer::Json(StatusCode::OK, bridge),
                    Method::PATCH if body.contains(r#""finalizers":[]"#) => {
                        writes.fetch_add(1, Ordering::SeqCst);
                        Answer::Json(StatusCode::OK, bridge)
                    }
                    _ => fake_api::status(StatusCode::CREATED, "Created"),
                }
            }
        });
        let obj = fake_api::bridge(
            serde_json::json!({
                "finalizers": [FINALIZER],
                "annotations": {
                    DELETION_ATTEMPTS: "2",
                    NEXT_DELETION_ATTEMPT: "2026-01-01T00:00:00Z",
                },
            }),
            |spec| {
                spec.kafka.sasl = Some(mkb_api::connection::SaslSettings {
                    mechanism: mkb_api::connection::SaslMechanism::ScramSha512,
                    username: "bridge".into(),
                    password: mkb_api::crd::SecretKeyRef {
                        name: "kafka-user".into(),
                        key: "password".into(),
                    },
                });
            },
        );
        let bridge = Bridge::new(&obj).expect("bridge");
        // A fresh operator, as after a restart, allowed three attempts: this is the third.
        let ctx = fake_api::context(client, 3);
        let (_, label) = on_deletion(&ctx, &bridge).await.expect("handled");
        assert_eq!(
            label, "ok",
            "the finalizer is released after the third attempt"
        );
        assert_eq!(released.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_deletion_attempt_waits_for_its_time() {
        let now: Timestamp = "2026-12-07T10:00:00Z".parse().expect("time");
        let mut meta = ObjectMeta::default();
        assert_eq!(Attempts::of(&meta), Attempts::default());
        assert_eq!(Attempts::of(&meta).wait(now), None);
        meta.annotations = Some(
            [
                (DELETION_ATTEMPTS.to_owned(), "2".to_owned()),
                (
                    NEXT_DELETION_ATTEMPT.to_owned(),
                    "2026-12-07T10:00:10Z".to_owned(),
                ),
            ]
            .into(),
        );
        let attempts = Attempts::of(&meta);
        assert_eq!(attempts.failed, 2);
        assert_eq!(attempts.wait(now), Some(Duration::from_secs(10)));
        let later: Timestamp = "2026-12-07T10:00:11Z".parse().expect("time");
        assert_eq!(attempts.wait(later), None);
    }

    /// Issue 35: the precondition came from the watch cache, which right after our own status
    /// write is one version behind: every such write failed into error backoff.
    #[tokio::test]
    async fn the_finalizer_is_written_against_the_current_version_not_the_cached_one() {
        let client = fake_api::client(|method, _path, body| async move {
            let bridge = |version: &str| {
                serde_json::json!({
                    "apiVersion": "mqttkafka.io/v1alpha1",
                    "kind": "MqttKafkaBridge",
                    "metadata": {"name": "b", "namespace": "ns", "resourceVersion": version},
                })
            };
            match method {
                Method::GET => Answer::Json(StatusCode::OK, bridge("9")),
                Method::PATCH if body.contains(r#""resourceVersion":"9""#) => {
                    Answer::Json(StatusCode::OK, bridge("10"))
                }
                _ => fake_api::status(StatusCode::CONFLICT, "Conflict"),
            }
        });
        let ctx = fake_api::context(client, 3);
        let cached = fake_api::bridge(serde_json::json!({"resourceVersion": "8"}), |_| {});
        let bridge = Bridge::new(&cached).expect("bridge");
        set_finalizer(&ctx, &bridge, true)
            .await
            .expect("written against version 9");
    }
}
