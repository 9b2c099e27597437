//! The last step, whatever came before: compute the status from what was observed, write it
//! when it changed, and only then publish the warnings it newly carries (a failed write is
//! retried, and its warnings with it, instead of repeating them).

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::{Api, Resource};
use mkb_api::crd::conditions::{INSECURE_TLS, READY, REASON_INSECURE_SKIP_VERIFY, TOPICS_READY};
use mkb_api::crd::{MqttKafkaBridge, MqttKafkaBridgeStatus};
use serde_json::json;
use tracing::warn;

use crate::bridge::Bridge;
use crate::context::Context;
use crate::desired;
use crate::error::Error;
use crate::k8s::apply::FIELD_MANAGER;
use crate::k8s::events::{announce, publish};
use crate::pods;
use crate::status::{self, Blocked, Observed, Outcome, TlsVerification};

/// What writing the status did.
pub struct Written {
    /// The bridge's resourceVersion after the status write, when there was one.
    pub version: Option<String>,
    /// Some pods run but are not ready; the status has their reasons.
    pub pods_not_ready: bool,
}

/// `http_port`: where the pods say why they are not ready (known once the spec was read).
pub async fn update(
    ctx: &Context,
    bridge: &Bridge<'_>,
    outcome: &Outcome,
    mut observed: Observed,
    http_port: Option<i32>,
) -> Result<Written, Error> {
    if observed.statefulset.is_none() {
        observed.statefulset =
            Api::<StatefulSet>::namespaced(ctx.client.clone(), &bridge.namespace)
                .get_opt(&bridge.name)
                .await?;
    }
    // Pods that run but are not ready say why (only while the rollout is not done).
    let rolled_out = status::rolled_out(observed.statefulset.as_ref(), observed.spec_replicas).0;
    if let (Outcome::Applied, Some(port), false) = (outcome, http_port, rolled_out) {
        let selector = desired::label_selector(&bridge.name);
        observed.pods_not_ready =
            pods::not_ready(&ctx.client, &bridge.namespace, &selector, port).await;
    }
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let status = status::compute(outcome, &observed, &bridge.status, &now);
    let mut version = None;
    if status != bridge.status {
        version = write(ctx, bridge, &status).await?;
    }
    warn_of_news(ctx, bridge, outcome, &observed).await;
    Ok(Written {
        version,
        pods_not_ready: !observed.pods_not_ready.is_empty(),
    })
}

async fn write(
    ctx: &Context,
    bridge: &Bridge<'_>,
    status: &MqttKafkaBridgeStatus,
) -> Result<Option<String>, Error> {
    let api = bridge.untyped_api(ctx);
    let patch = json!({
        "apiVersion": MqttKafkaBridge::api_version(&()),
        "kind": MqttKafkaBridge::kind(&()),
        "status": status,
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let written = api
        .patch_status(&bridge.name, &params, &Patch::Apply(&patch))
        .await?;
    Ok(written.metadata.resource_version)
}

/// A Warning Event for what the status did not say before: the bridge newly invalid or
/// blocked (or for another reason), its topics newly failing, a connection newly skipping
/// certificate verification.
async fn warn_of_news(ctx: &Context, bridge: &Bridge<'_>, outcome: &Outcome, observed: &Observed) {
    let before = |type_: &str| bridge.status.conditions.iter().find(|c| c.type_ == type_);
    let stopped = match outcome {
        Outcome::Applied => None,
        Outcome::Invalid(message) => Some(("InvalidSpec", message)),
        Outcome::Blocked(Blocked { reason, message }) => Some((reason.as_str(), message)),
    };
    if let Some((reason, message)) = stopped {
        let known = before(READY).is_some_and(|c| c.reason == reason && &c.message == message);
        if !known {
            warn!(bridge = %bridge.name, namespace = %bridge.namespace, %reason, %message, "bridge not rolled out");
            publish(
                ctx,
                bridge,
                EventType::Warning,
                reason,
                message.clone(),
                None,
            )
            .await;
        }
    }
    if let Some(report) = observed.topics.as_ref().filter(|t| !t.ready) {
        let known = before(TOPICS_READY)
            .is_some_and(|c| c.status == "False" && c.message == report.message);
        if !known {
            let note = report.message.clone();
            publish(ctx, bridge, EventType::Warning, report.reason, note, None).await;
        }
    }
    if let TlsVerification::Skipped(warning) = &observed.tls_verification {
        let known = before(INSECURE_TLS).is_some_and(|c| &c.message == warning);
        if !known {
            let reason = REASON_INSECURE_SKIP_VERIFY;
            announce(ctx, bridge, EventType::Warning, reason, warning.clone()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use http::{Method, StatusCode};

    use super::*;
    use crate::fake_api;

    /// Issue 35: the warning Event went out before the status write, and again with every
    /// retry of a write that failed.
    #[tokio::test]
    async fn no_warning_is_published_when_the_status_write_fails() {
        let events = Arc::new(AtomicUsize::new(0));
        let counted = events.clone();
        let client = fake_api::client(move |method, path, _body| {
            let events = counted.clone();
            async move {
                if path.contains("/events") {
                    events.fetch_add(1, Ordering::SeqCst);
                    return fake_api::status(StatusCode::CREATED, "Created");
                }
                match method {
                    Method::GET => fake_api::status(StatusCode::NOT_FOUND, "NotFound"),
                    _ => fake_api::status(StatusCode::INTERNAL_SERVER_ERROR, "etcd is down"),
                }
            }
        });
        let ctx = fake_api::context(client, 3);
        let obj = fake_api::bridge(serde_json::json!({}), |_| {});
        let bridge = Bridge::new(&obj).expect("bridge");
        let observed = Observed::new(1, 0, "app=b".into());
        let outcome = Outcome::Invalid("spec.mqtt.url: not a URL".into());
        let result = update(&ctx, &bridge, &outcome, observed, None).await;
        assert!(result.is_err(), "the status write failed");
        assert_eq!(
            events.load(Ordering::SeqCst),
            0,
            "a warning went out anyway"
        );
    }
}
