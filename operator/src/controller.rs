//! The controller: watches bridges (typed, behind a `DeserializeGuard`, so one that cannot be
//! deserialized is reported in its status instead of stopping the watch), the children it
//! owns, and the Secrets bridges reference — by metadata only: no Secret value is ever cached; the values a
//! reconciliation needs are read then, for the referenced keys alone.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{controller, watcher, Controller};
use kube::{Api, Client, Resource, ResourceExt};
use mkb_api::crd::MqttKafkaBridge;
use tracing::{debug, warn};

use crate::bridge::{key_of, Watched};
use crate::context::Context;
use crate::k8s::apply::FIELD_MANAGER;
use crate::reconcile::{error_policy, reconcile};
use crate::secret_refs::referenced_secrets;

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

/// Requests to reconcile one bridge that come closer together than this are served by one
/// reconciliation: creating a bridge's children, and their status settling, come as bursts of
/// watch events (each child created, each pod scheduled and ready, the echo of the status
/// write), and each reconciliation costs a dozen API requests.
const DEBOUNCE: Duration = Duration::from_millis(500);

/// Runs until SIGTERM/SIGINT: one watch of every namespace when `namespaces` is empty, else
/// one per listed namespace (so the operator needs no cluster-wide permission). At most
/// `concurrency` bridges are reconciled at once (per watch). `watches` is the client without
/// a request timeout (see `k8s::clients`).
pub async fn run(ctx: Arc<Context>, watches: Client, namespaces: Vec<String>, concurrency: u16) {
    let scopes: Vec<Option<String>> = if namespaces.is_empty() {
        vec![None]
    } else {
        namespaces.into_iter().map(Some).collect()
    };
    let controllers: Vec<_> = scopes
        .iter()
        .map(|ns| {
            let api = scoped::<Watched>(&watches, ns.as_deref());
            Controller::new(api, watcher::Config::default()).with_config(
                controller::Config::default()
                    .debounce(DEBOUNCE)
                    .concurrency(concurrency),
            )
        })
        .collect();
    // Reconciliations read the other bridges, for topics they share.
    let _ = ctx
        .bridges
        .set(controllers.iter().map(Controller::store).collect());
    let runs = controllers
        .into_iter()
        .zip(scopes)
        .map(|(controller, ns)| run_one(controller, ctx.clone(), watches.clone(), ns));
    futures::future::join_all(runs).await;
}

async fn run_one(
    controller: Controller<Watched>,
    ctx: Arc<Context>,
    client: Client,
    namespace: Option<String>,
) {
    let ns = namespace.as_deref();
    let owned =
        watcher::Config::default().labels(&format!("app.kubernetes.io/managed-by={FIELD_MANAGER}"));
    let store = controller.store();
    let secrets_ctx = ctx.clone();
    // Like `owns`, and each change is noted for the owner (see `seen`).
    controller
        .watches(
            scoped::<StatefulSet>(&client, ns),
            owned.clone(),
            owner_of(&ctx),
        )
        .watches(
            scoped::<ConfigMap>(&client, ns),
            owned.clone(),
            owner_of(&ctx),
        )
        .watches(
            scoped::<Service>(&client, ns),
            owned.clone(),
            owner_of(&ctx),
        )
        .watches(
            scoped::<PodDisruptionBudget>(&client, ns),
            owned.clone(),
            owner_of(&ctx),
        )
        .watches(scoped::<Job>(&client, ns), owned, owner_of(&ctx))
        // An Api of PartialObjectMeta lists and watches metadata only.
        .watches(
            scoped::<PartialObjectMeta<Secret>>(&client, ns),
            watcher::Config::default(),
            move |secret| {
                let bridges = bridges_referencing(&store, &secret);
                for b in &bridges {
                    secrets_ctx.seen.changed(&key_of(b));
                }
                bridges
            },
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

/// Maps a child to the bridge that controls it (its controller owner reference), noting the
/// change for that bridge.
fn owner_of<K: Resource>(
    ctx: &Arc<Context>,
) -> impl Fn(K) -> Option<ObjectRef<Watched>> + Send + Sync + 'static {
    let ctx = ctx.clone();
    move |child| owner(&ctx, &child)
}

fn owner<K: Resource>(ctx: &Context, child: &K) -> Option<ObjectRef<Watched>> {
    let meta = child.meta();
    let namespace = meta.namespace.as_deref()?;
    let owner = meta
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true) && o.kind == MqttKafkaBridge::kind(&()))?;
    let bridge = ObjectRef::new(&owner.name).within(namespace);
    ctx.seen.changed(&key_of(&bridge));
    Some(bridge)
}

/// The bridges in the Secret's namespace whose spec references it: a change of the Secret
/// must roll their pods. The store holds them parsed: nothing is parsed per Secret event.
fn bridges_referencing(
    store: &Store<Watched>,
    secret: &PartialObjectMeta<Secret>,
) -> Vec<ObjectRef<Watched>> {
    let name = secret.name_any();
    let namespace = secret.namespace();
    store
        .state()
        .into_iter()
        .filter(|b| b.namespace() == namespace)
        .filter(|b| {
            b.0.as_ref().is_ok_and(|bridge| {
                referenced_secrets(&bridge.spec)
                    .iter()
                    .any(|r| r.name == name)
            })
        })
        .map(|b| ObjectRef::from_obj(b.as_ref()))
        .collect()
}
