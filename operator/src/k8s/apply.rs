//! Server-side apply of the bridge's objects, only ever over objects the bridge owns, with an
//! Event for each object created or changed; and deletion of an owned object.

use std::fmt::Debug;

use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::info;

use crate::bridge::Bridge;
use crate::context::Context;
use crate::error::Error;
use crate::k8s::events::publish;

/// The field manager of everything the operator applies, and the `managed-by` label value.
pub const FIELD_MANAGER: &str = "mkb-operator";

/// What an apply did to the object.
#[derive(Debug, PartialEq, Eq)]
enum Change {
    Created,
    Updated,
    Unchanged,
}

/// How often an apply is tried again when the object changed between the ownership check and
/// the write (a StatefulSet's status changes often while it rolls out).
const CONFLICT_RETRIES: usize = 3;

/// Server-side apply with the operator's field manager. A no-op apply does not write, so an
/// unchanged bridge causes no writes. An object of that name the bridge does not own is left
/// alone (`Error::NotOwned`); the write carries the resourceVersion the ownership was checked
/// at, so an object that changed hands in between is never overwritten.
pub async fn apply<K>(
    ctx: &Context,
    bridge: &Bridge<'_>,
    api: &Api<K>,
    desired: &K,
) -> Result<K, Error>
where
    K: Resource<DynamicType = ()> + Clone + Debug + Serialize + DeserializeOwned,
{
    let name = desired
        .meta()
        .name
        .clone()
        .ok_or(Error::Incomplete("name"))?;
    let kind = K::kind(&()).into_owned();
    let mut tries = 0;
    let (after, change) = loop {
        match checked_apply(bridge, api, desired, &kind, &name).await {
            Err(Error::Kube(kube::Error::Api(e))) if e.code == 409 && tries < CONFLICT_RETRIES => {
                tries += 1;
            }
            other => break other?,
        }
    };
    let reason = match change {
        Change::Created => "Created",
        Change::Updated => "Updated",
        Change::Unchanged => return Ok(after),
    };
    info!(bridge = %bridge.name, namespace = %bridge.namespace, "{reason} {kind} {name}");
    let note = format!("{reason} {kind} {name}");
    publish(
        ctx,
        bridge,
        EventType::Normal,
        reason,
        note,
        Some(after.object_ref(&())),
    )
    .await;
    Ok(after)
}

/// One ownership check and the apply it allows.
async fn checked_apply<K>(
    bridge: &Bridge<'_>,
    api: &Api<K>,
    desired: &K,
    kind: &str,
    name: &str,
) -> Result<(K, Change), Error>
where
    K: Resource<DynamicType = ()> + Clone + Debug + Serialize + DeserializeOwned,
{
    let existing = api.get_metadata_opt(name).await?;
    if let Some(existing) = &existing {
        if !owned_by(&existing.metadata, bridge) {
            return Err(Error::NotOwned {
                kind: kind.to_owned(),
                name: name.to_owned(),
            });
        }
    }
    let before = existing.and_then(|m| m.metadata.resource_version);
    let mut desired = desired.clone();
    // A precondition: the API server refuses the write (409) if the object changed since.
    desired.meta_mut().resource_version = before.clone();
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let after = api
        .patch(name, &params, &Patch::Apply(&desired))
        .await
        .map_err(|e| match e {
            kube::Error::Api(response) if response.code != 409 => Error::Apply {
                kind: kind.to_owned(),
                name: name.to_owned(),
                message: response.message,
            },
            other => Error::Kube(other),
        })?;
    let change = match before {
        None => Change::Created,
        Some(rv) if after.meta().resource_version.as_ref() != Some(&rv) => Change::Updated,
        Some(_) => Change::Unchanged,
    };
    Ok((after, change))
}

/// Whether the bridge is the object's controller owner.
pub fn owned_by(meta: &ObjectMeta, bridge: &Bridge<'_>) -> bool {
    let uid = bridge.uid().unwrap_or_default();
    meta.owner_references
        .iter()
        .flatten()
        .any(|o| o.uid == uid && o.controller == Some(true))
}

/// Deletes the bridge's object of kind `K` named `name` if there is one the bridge owns: an
/// object of the same name that somebody else made is never touched.
pub async fn delete_if_owned<K>(
    ctx: &Context,
    bridge: &Bridge<'_>,
    api: &Api<K>,
    name: &str,
) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned,
{
    let owned = api
        .get_metadata_opt(name)
        .await?
        .is_some_and(|m| owned_by(&m.metadata, bridge));
    if owned {
        api.delete(name, &DeleteParams::default()).await?;
        let kind = K::kind(&());
        info!(bridge = %bridge.name, namespace = %bridge.namespace, "Deleted {kind} {name}");
        let note = format!("Deleted {kind} {name}");
        publish(ctx, bridge, EventType::Normal, "Deleted", note, None).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use http::{Method, StatusCode};
    use k8s_openapi::api::core::v1::ConfigMap;

    use super::*;
    use crate::fake_api::{self, Answer};

    fn config_map(owner: &str, version: &str) -> serde_json::Value {
        serde_json::json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": "b-config", "namespace": "ns", "resourceVersion": version,
                "ownerReferences": [{"apiVersion": "mqttkafka.io/v1alpha1", "kind": "MqttKafkaBridge",
                    "name": "b", "uid": owner, "controller": true}]
            }
        })
    }

    /// Issue 35: the ownership check and the forced apply were separate requests, so an object
    /// taken over in between was overwritten.
    #[tokio::test]
    async fn an_object_that_changes_hands_after_the_check_is_not_overwritten() {
        let reads = Arc::new(AtomicUsize::new(0));
        let seen = reads.clone();
        let client = fake_api::client(move |method, _path, body| {
            let reads = seen.clone();
            async move {
                match method {
                    // Ours at version 5 when first checked; somebody else's from then on.
                    Method::GET if reads.fetch_add(1, Ordering::SeqCst) == 0 => {
                        Answer::Json(StatusCode::OK, config_map("u1", "5"))
                    }
                    Method::GET => Answer::Json(StatusCode::OK, config_map("other", "6")),
                    Method::PATCH if body.contains(r#""resourceVersion":"5""#) => {
                        fake_api::status(StatusCode::CONFLICT, "Conflict")
                    }
                    // A write without the precondition lands on the other owner's object.
                    _ => Answer::Json(StatusCode::OK, config_map("other", "7")),
                }
            }
        });
        let ctx = fake_api::context(client.clone(), 3);
        let obj = fake_api::bridge(serde_json::json!({}), |_| {});
        let bridge = Bridge::new(&obj).expect("bridge");
        let api = Api::<ConfigMap>::namespaced(client, "ns");
        let mut desired = ConfigMap::default();
        desired.metadata.name = Some("b-config".into());
        let result = apply(&ctx, &bridge, &api, &desired).await;
        assert!(matches!(result, Err(Error::NotOwned { .. })), "{result:?}");
    }
}
