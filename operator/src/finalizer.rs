//! The finalizer of bridges whose topics go with them (`topicDeletionPolicy: Delete`). It is
//! added before any topic is created and removed once the topics the bridge created are
//! deleted, or after a bounded number of attempts when Kafka cannot be reached, with a
//! Warning Event naming the topics left behind. A topic another bridge still uses is kept.

use kube::api::{DynamicObject, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::Api;
use mkb_api::crd::{MqttKafkaBridgeSpec, TopicDeletionPolicy};
use serde_json::json;
use tracing::{info, warn};

use crate::context::{backoff_after, Context};
use crate::reconcile::{announce, ar, read_secrets, read_spec, secret_values, Bridge, Error};
use crate::topics::{self, BridgeTopics, Sharing};

/// Held by bridges whose topics are deleted with them.
pub const FINALIZER: &str = "mqttkafka.io/topics";

fn has_finalizer(obj: &DynamicObject) -> bool {
    obj.metadata
        .finalizers
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
    if want != has_finalizer(bridge.obj) {
        set_finalizer(ctx, bridge, want).await?;
    }
    Ok(())
}

/// Writes the finalizer list with the bridge's resourceVersion as precondition, so a
/// concurrent change of the list is never overwritten (the write fails and is retried).
async fn set_finalizer(ctx: &Context, bridge: &Bridge<'_>, present: bool) -> Result<(), Error> {
    let mut finalizers = bridge.obj.metadata.finalizers.clone().unwrap_or_default();
    finalizers.retain(|f| f != FINALIZER);
    if present {
        finalizers.push(FINALIZER.to_owned());
    }
    let patch = json!({
        "metadata": {
            "resourceVersion": bridge.obj.metadata.resource_version,
            "finalizers": finalizers,
        }
    });
    let api = Api::<DynamicObject>::namespaced_with(ctx.client.clone(), &bridge.namespace, &ar());
    api.patch(&bridge.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    info!(bridge = %bridge.key(), finalizer = FINALIZER, present, "finalizer updated");
    Ok(())
}

/// The bridge is being deleted: delete its topics if it holds the finalizer, then let it go.
pub async fn on_deletion(
    ctx: &Context,
    bridge: &Bridge<'_>,
) -> Result<(Action, &'static str), Error> {
    if !has_finalizer(bridge.obj) {
        return Ok((Action::await_change(), "ok"));
    }
    let key = format!("deletion:{}", bridge.key());
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
            let attempts = ctx.failed(&key);
            if attempts < ctx.topic_deletion_attempts {
                let wait = backoff_after(attempts);
                warn!(bridge = %bridge.key(), attempts, retry_in = ?wait, %message, "cannot delete the bridge's topics yet");
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
                "Gave up deleting Kafka topics {} after {attempts} attempts ({message}); they are left in Kafka",
                left.join(", ")
            );
            announce(ctx, bridge, EventType::Warning, "TopicsLeftBehind", note).await;
        }
    }
    set_finalizer(ctx, bridge, false).await?;
    ctx.succeeded(&key);
    Ok((Action::await_change(), "ok"))
}

/// Deletes the topics the bridge created that no other bridge uses; returns those deleted
/// and those kept for other bridges.
async fn delete_topics(
    ctx: &Context,
    bridge: &Bridge<'_>,
) -> Result<(Vec<String>, Vec<String>), String> {
    let spec = read_spec(bridge.obj)?;
    let secrets = match read_secrets(ctx, &bridge.namespace, &spec).await {
        Ok(Ok(values)) => values,
        Ok(Err(blocked)) => return Err(blocked.message().to_owned()),
        Err(e) => return Err(e.to_string()),
    };
    let me = BridgeTopics::new(
        bridge.key(),
        topics::created_at(bridge.obj),
        true,
        &spec,
        bridge.status.kafka_cluster_id.clone(),
    );
    let sharing = Sharing::new(me, ctx.watched_bridges());
    topics::delete_created(
        &ctx.kafka,
        &ctx.metrics,
        &spec,
        &secret_values(&secrets),
        &bridge.status,
        &sharing,
    )
    .await
}
