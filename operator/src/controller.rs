//! The controller: watches bridges (as dynamic objects, so one that cannot be deserialized is
//! reported in its status instead of stopping the watch), the children it owns, and the
//! Secrets bridges reference — by metadata only: no Secret value is ever cached; the values a
//! reconciliation needs are read then, for the referenced keys alone.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{DynamicObject, PartialObjectMeta};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{watcher, Controller};
use kube::{Api, Client, ResourceExt};
use mkb_api::crd::MqttKafkaBridgeSpec;
use tracing::{debug, warn};

use crate::build;
use crate::context::Context;
use crate::reconcile::{ar, error_policy, reconcile};

/// Api of `K` in `namespace`, or in all namespaces.
fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Runs until SIGTERM/SIGINT.
pub async fn run(ctx: Arc<Context>, namespace: Option<String>) {
    let client = ctx.client.clone();
    let ns = namespace.as_deref();
    let resource = ar();
    let bridges: Api<DynamicObject> = match ns {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    let owned = watcher::Config::default().labels(&format!(
        "app.kubernetes.io/managed-by={}",
        build::FIELD_MANAGER
    ));
    let controller = Controller::new_with(bridges, watcher::Config::default(), resource.clone());
    let store = controller.store();
    // Reconciliations read the other bridges, for topics they share.
    let _ = ctx.bridges.set(store.clone());
    controller
        .owns(scoped::<StatefulSet>(&client, ns), owned.clone())
        .owns(scoped::<ConfigMap>(&client, ns), owned.clone())
        .owns(scoped::<Service>(&client, ns), owned.clone())
        .owns(scoped::<PodDisruptionBudget>(&client, ns), owned)
        // An Api of PartialObjectMeta lists and watches metadata only.
        .watches(
            scoped::<PartialObjectMeta<Secret>>(&client, ns),
            watcher::Config::default(),
            move |secret| bridges_referencing(&store, &secret),
        )
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((object, _)) => debug!(bridge = %object.name, "reconciled"),
                Err(e) => warn!(error = %e, "controller"),
            }
        })
        .await;
}

/// The bridges in the Secret's namespace whose spec references it: a change of the Secret
/// must roll their pods.
fn bridges_referencing(
    store: &Store<DynamicObject>,
    secret: &PartialObjectMeta<Secret>,
) -> Vec<ObjectRef<DynamicObject>> {
    let name = secret.name_any();
    let namespace = secret.namespace();
    store
        .state()
        .into_iter()
        .filter(|b| b.namespace() == namespace)
        .filter(|b| {
            let spec = b
                .data
                .get("spec")
                .cloned()
                .and_then(|s| serde_json::from_value::<MqttKafkaBridgeSpec>(s).ok());
            spec.is_some_and(|s| build::referenced_secrets(&s).iter().any(|r| r.name == name))
        })
        .map(|b| ObjectRef::from_obj_with(b.as_ref(), ar()))
        .collect()
}
