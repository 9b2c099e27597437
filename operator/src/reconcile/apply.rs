//! Step 3: make the cluster and Kafka as the spec says, in a fixed order — the finalizer
//! (before any topic exists), the topics (before any producer starts), the ConfigMap (before
//! pods of a new template look for it), the Service, the StatefulSet, the
//! PodDisruptionBudget (or its deletion), then the retirement of removed replicas' sessions.

use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::runtime::events::EventType;
use kube::Api;
use mkb_api::crd::MqttKafkaBridgeSpec;
use tracing::warn;

use super::Stop;
use crate::bridge::Bridge;
use crate::context::Context;
use crate::desired::{self, BridgeInput};
use crate::error::Error;
use crate::finalizer;
use crate::k8s::apply::{apply, delete_if_owned};
use crate::k8s::events::announce;
use crate::retirement::{self, Plan};
use crate::secret_refs::SecretValues;
use crate::status::Observed;
use crate::topics;

/// What was applied, for the status and what follows it.
pub struct Applied {
    pub retirement: Plan,
    /// When to come back without any change: the resync, sooner for Kafka's or the
    /// retirement's sake.
    pub next: Duration,
}

pub async fn everything(
    ctx: &Context,
    bridge: &Bridge<'_>,
    spec: &MqttKafkaBridgeSpec,
    secrets: &SecretValues,
    observed: &mut Observed,
) -> Result<Applied, Stop> {
    finalizer::follow_policy(ctx, bridge, spec).await?;
    let next = ensure_topics(ctx, bridge, spec, secrets, observed).await;
    let uid = bridge.uid()?;
    let input = BridgeInput {
        name: &bridge.name,
        namespace: &bridge.namespace,
        uid: &uid,
        spec,
        default_image: &ctx.default_image,
    };
    let configuration = desired::configuration(&input).map_err(Error::from)?;
    let config_hash = desired::config_hash(&configuration.text, secrets);
    let config_map = &configuration.config_map;
    observed.statefulset = Some(children(ctx, bridge, &input, config_map, &config_hash).await?);
    observed.config_hash = Some(config_hash.clone());
    // The sessions of removed replicas: Jobs started here, reported and removed once the
    // status records them retired.
    let retirement = retirement::prepare(ctx, bridge, &input, &config_hash).await?;
    observed.sessions = Some(retirement::sessions(
        &retirement,
        &bridge.name,
        spec.replicas,
    ));
    // Back for the retirement's own deadlines (a pod stuck terminating, a failed Job's next
    // try), which nothing else would wake it for before the resync.
    let next = retirement
        .wake_in
        .map_or(next, |w| next.min(w + Duration::from_secs(1)));
    Ok(Applied { retirement, next })
}

/// Creates and adjusts the topics; Kafka being down does not stop the rest. Returns when to
/// come back: the resync, or sooner with backoff while the topics are not as the spec asks.
async fn ensure_topics(
    ctx: &Context,
    bridge: &Bridge<'_>,
    spec: &MqttKafkaBridgeSpec,
    secrets: &SecretValues,
    observed: &mut Observed,
) -> Duration {
    let report = topics::ensure(
        &ctx.kafka,
        &ctx.metrics,
        topics::Request {
            spec,
            secrets,
            previous: &bridge.status,
            key: bridge.key(),
            created_at: bridge.created_at(),
            others: || ctx.watched_bridges(),
        },
    )
    .await;
    for change in &report.changes {
        announce(
            ctx,
            bridge,
            EventType::Normal,
            "TopicChanged",
            change.clone(),
        )
        .await;
    }
    let topics_key = format!("topics:{}", bridge.key());
    let next = if report.ready {
        ctx.succeeded(&topics_key);
        ctx.resync
    } else {
        warn!(bridge = %bridge.key(), reason = report.reason, message = %report.message, "topics not ready");
        ctx.backoff(&topics_key).min(ctx.resync)
    };
    observed.topics = Some(report);
    next
}

/// Applies the ConfigMap, the Service, the StatefulSet and the PodDisruptionBudget; returns
/// the applied StatefulSet.
async fn children(
    ctx: &Context,
    bridge: &Bridge<'_>,
    input: &BridgeInput<'_>,
    config_map: &ConfigMap,
    config_hash: &str,
) -> Result<StatefulSet, Error> {
    let (client, ns) = (&ctx.client, bridge.namespace.as_str());
    let config_map_api = Api::<ConfigMap>::namespaced(client.clone(), ns);
    apply(ctx, bridge, &config_map_api, config_map).await?;
    let service_api = Api::<Service>::namespaced(client.clone(), ns);
    apply(ctx, bridge, &service_api, &desired::service(input)).await?;
    let sts_api = Api::<StatefulSet>::namespaced(client.clone(), ns);
    let sts = apply(
        ctx,
        bridge,
        &sts_api,
        &desired::statefulset(input, config_hash),
    )
    .await?;
    let pdb_api = Api::<PodDisruptionBudget>::namespaced(client.clone(), ns);
    match desired::pod_disruption_budget(input) {
        Some(pdb) => {
            apply(ctx, bridge, &pdb_api, &pdb).await?;
        }
        None => delete_if_owned(ctx, bridge, &pdb_api, &bridge.name).await?,
    }
    Ok(sts)
}
