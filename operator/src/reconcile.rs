//! One reconciliation: validate (no client) → read referenced Secrets → build the desired
//! objects (pure) → server-side apply → status. An invalid spec leaves the running children
//! as they are.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource, ResourceExt};
use mkb_api::connection::insecure_tls_warning;
use mkb_api::crd::conditions::{INSECURE_TLS, REASON_APPLY_FAILED, REASON_INSECURE_SKIP_VERIFY};
use mkb_api::crd::{validate_spec, MqttKafkaBridge, MqttKafkaBridgeSpec, MqttKafkaBridgeStatus};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;
use tracing::{info, warn};

use crate::build::{self, BridgeInput, FIELD_MANAGER};
use crate::context::Context;
use crate::finalizer;
use crate::pods;
use crate::retirement;
use crate::status::{self, Observed, Outcome};
use crate::topics::{self, SecretValues, TopicsReport};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("cannot render the runtime configuration: {0}")]
    Render(#[from] serde_yaml::Error),
    #[error("cannot encode the status: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the object has no {0}")]
    Incomplete(&'static str),
    #[error("the API server refused {kind} {name}: {message}")]
    Apply {
        kind: String,
        name: String,
        message: String,
    },
    #[error("{kind} {name} exists and does not belong to this bridge; the operator leaves it alone (rename the bridge, or delete that {kind})")]
    NotOwned { kind: String, name: String },
}

impl Error {
    /// A short label for the errors metric.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Kube(kube::Error::Api(_)) => "api_error",
            Error::Kube(_) => "api_unreachable",
            Error::Render(_) | Error::Json(_) => "encoding",
            Error::Incomplete(_) => "incomplete_object",
            Error::Apply { .. } => "apply_refused",
            Error::NotOwned { .. } => "not_owned",
        }
    }
}

/// What changed when an object was applied.
#[derive(Debug, PartialEq, Eq)]
enum Change {
    Created,
    Updated,
    Unchanged,
}

/// How a reconciliation ended.
struct Reconciled {
    action: Action,
    /// The result label of the metrics.
    label: &'static str,
    /// When everything was applied: the bridge's resourceVersion after its status write, and
    /// when the next full reconciliation is due (see `seen`).
    settled: Option<(Option<String>, Duration)>,
}

impl Reconciled {
    fn unsettled(action: Action, label: &'static str) -> Self {
        Self {
            action,
            label,
            settled: None,
        }
    }
}

pub async fn reconcile(obj: Arc<DynamicObject>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let key = format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any());
    let version = obj.metadata.resource_version.as_deref();
    if obj.metadata.deletion_timestamp.is_none() {
        if let Some(due_in) = ctx.seen.unchanged(&key, version, started) {
            ctx.metrics.unchanged();
            return Ok(Action::requeue(due_in));
        }
    }
    let changes = ctx.seen.changes(&key);
    let result = reconcile_bridge(&obj, &ctx).await;
    match &result {
        Ok(done) => {
            ctx.succeeded(&key);
            match &done.settled {
                Some((version, next)) => {
                    ctx.seen
                        .visited(&key, version.clone(), changes, started + *next);
                    ctx.prune_seen();
                }
                None => ctx.seen.forget(&key),
            }
            ctx.metrics.reconciled(done.label, started.elapsed());
        }
        Err(e) => {
            ctx.seen.forget(&key);
            ctx.metrics.reconciled("error", started.elapsed());
            ctx.metrics.error(e.reason());
        }
    }
    result.map(|done| done.action)
}

/// Retries a failed reconciliation with exponential backoff.
pub fn error_policy(obj: Arc<DynamicObject>, error: &Error, ctx: Arc<Context>) -> Action {
    let key = format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any());
    let wait = ctx.backoff(&key);
    warn!(bridge = %key, %error, retry_in = ?wait, "reconciliation failed");
    Action::requeue(wait)
}

/// The bridge being reconciled, with what reconciliation needs of it.
pub(crate) struct Bridge<'a> {
    pub obj: &'a DynamicObject,
    pub name: String,
    pub namespace: String,
    pub generation: i64,
    pub status: MqttKafkaBridgeStatus,
}

impl<'a> Bridge<'a> {
    fn new(obj: &'a DynamicObject) -> Result<Self, Error> {
        Ok(Bridge {
            obj,
            name: obj.name_any(),
            namespace: obj.namespace().ok_or(Error::Incomplete("namespace"))?,
            generation: obj.metadata.generation.unwrap_or(0),
            status: obj
                .data
                .get("status")
                .and_then(|s| serde_json::from_value(s.clone()).ok())
                .unwrap_or_default(),
        })
    }

    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

async fn reconcile_bridge(obj: &DynamicObject, ctx: &Context) -> Result<Reconciled, Error> {
    let mut bridge = Bridge::new(obj)?;
    // The watch cache can lag behind our own last status write; the status records which
    // topics this bridge created (what Delete removes), so it is read fresh, unless the
    // cached bridge is the version our last status write made.
    if !ctx
        .seen
        .left(&bridge.key(), obj.metadata.resource_version.as_deref())
    {
        if let Some(status) = live_status(ctx, &bridge).await? {
            bridge.status = status;
        }
    }
    if obj.metadata.deletion_timestamp.is_some() {
        // The children go with the bridge: they carry it as their controller owner. Its
        // topics go too when the policy says so (the finalizer holds the bridge until then).
        let (action, label) = finalizer::on_deletion(ctx, &bridge).await?;
        return Ok(Reconciled::unsettled(action, label));
    }
    let spec = match read_spec(obj) {
        Ok(spec) => spec,
        Err(message) => {
            let report = Report::keep_previous(0);
            finish(ctx, &bridge, Outcome::Invalid(message), None, &report).await?;
            return Ok(Reconciled::unsettled(
                Action::await_change(),
                "invalid_spec",
            ));
        }
    };
    if let Err(errors) = validate_spec(&bridge.name, &spec) {
        let message = errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        let report = Report::keep_previous(spec.replicas);
        finish(ctx, &bridge, Outcome::Invalid(message), None, &report).await?;
        return Ok(Reconciled::unsettled(
            Action::await_change(),
            "invalid_spec",
        ));
    }
    let insecure_tls =
        insecure_tls_warning("spec.", spec.mqtt.tls.as_ref(), spec.kafka.tls.as_ref());
    let mut report = Report {
        spec_replicas: spec.replicas,
        http_port: spec.metrics.port,
        topics: None,
        insecure_tls: Some(insecure_tls.as_deref()),
        sessions: None,
    };
    let secrets = match read_secrets(ctx, &bridge.namespace, &spec).await? {
        Ok(values) => values,
        Err(blocked) => {
            finish(ctx, &bridge, blocked, None, &report).await?;
            // The Secret watch brings the bridge back when the Secret appears.
            return Ok(Reconciled::unsettled(
                Action::requeue(ctx.resync),
                "blocked",
            ));
        }
    };
    // Before any topic is created: a bridge whose topics go with it holds a finalizer.
    finalizer::follow_policy(ctx, &bridge, &spec).await?;
    // Topics before the pods, so producers never find them missing (or auto-create them
    // with the broker's defaults). Kafka being down does not stop the rest.
    let topics = topics::ensure(
        &ctx.kafka,
        &ctx.metrics,
        topics::Request {
            spec: &spec,
            secrets: &secret_values(&secrets),
            previous: &bridge.status,
            key: bridge.key(),
            created_at: topics::created_at(obj),
            others: || ctx.watched_bridges(),
        },
    )
    .await;
    for change in &topics.changes {
        announce(
            ctx,
            &bridge,
            EventType::Normal,
            "TopicChanged",
            change.clone(),
        )
        .await;
    }
    let topics_key = format!("topics:{}", bridge.key());
    let next = if topics.ready {
        ctx.succeeded(&topics_key);
        ctx.resync
    } else {
        warn!(bridge = %bridge.key(), reason = topics.reason, message = %topics.message, "topics not ready");
        ctx.backoff(&topics_key).min(ctx.resync)
    };

    let uid = obj.uid().ok_or(Error::Incomplete("uid"))?;
    let input = BridgeInput {
        name: &bridge.name,
        namespace: &bridge.namespace,
        uid: &uid,
        spec: &spec,
        default_image: &ctx.default_image,
    };
    let config = build::render_config(&bridge.name, &spec)?;
    let hash = build::config_hash(&config, &secrets);
    let config_map = ConfigMap {
        metadata: input.child_meta(input.config_map_name()),
        data: Some(BTreeMap::from([(build::CONFIG_KEY.to_owned(), config)])),
        ..ConfigMap::default()
    };
    let sts = match apply_children(ctx, &bridge, &input, &config_map, &hash).await {
        Ok(sts) => sts,
        // Refused by the API server (quota, admission, validation) or a name taken by an
        // object this bridge does not own: the status and a Warning Event say so, and the
        // reconciliation is retried with backoff.
        Err(e @ (Error::Apply { .. } | Error::NotOwned { .. })) => {
            let blocked = Outcome::Blocked {
                reason: REASON_APPLY_FAILED.to_owned(),
                message: e.to_string(),
            };
            report.topics = Some(&topics);
            finish(ctx, &bridge, blocked, None, &report).await?;
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    report.topics = Some(&topics);
    // The sessions of removed replicas: Jobs started here, reported and removed once the
    // status records them retired.
    let retirement = retirement::prepare(ctx, &bridge, &input, &hash).await?;
    // Back for the retirement's own deadlines (a pod stuck terminating, a failed Job's next
    // try), which nothing else would wake it for before the resync.
    let next = retirement
        .wake_in
        .map_or(next, |w| next.min(w + Duration::from_secs(1)));
    let sessions = retirement::condition(&retirement, &bridge.name, spec.replicas);
    report.sessions = Some((retirement.sessions, &sessions));
    let finished = finish(ctx, &bridge, Outcome::Applied, Some((&sts, hash)), &report).await?;
    retirement::complete(ctx, &bridge, &retirement).await?;
    // A pod that runs but is not ready has its reason in the status, asked of the pod: that
    // can change with nothing else changing, so such a bridge is never taken as unchanged.
    let settled = (!finished.pods_not_ready).then(|| {
        let version = finished
            .status_version
            .or_else(|| obj.metadata.resource_version.clone());
        (version, next)
    });
    Ok(Reconciled {
        action: Action::requeue(next),
        label: "ok",
        settled,
    })
}

/// Applies the ConfigMap (first: pods of a new template find their configuration), the
/// Service, the StatefulSet and the PodDisruptionBudget; returns the applied StatefulSet.
async fn apply_children(
    ctx: &Context,
    bridge: &Bridge<'_>,
    input: &BridgeInput<'_>,
    config_map: &ConfigMap,
    hash: &str,
) -> Result<StatefulSet, Error> {
    let client = &ctx.client;
    let ns = &bridge.namespace;
    apply(
        ctx,
        bridge,
        &Api::<ConfigMap>::namespaced(client.clone(), ns),
        config_map,
    )
    .await?;
    apply(
        ctx,
        bridge,
        &Api::<Service>::namespaced(client.clone(), ns),
        &build::service(input),
    )
    .await?;
    let sts_api = Api::<StatefulSet>::namespaced(client.clone(), ns);
    let sts = apply(ctx, bridge, &sts_api, &build::statefulset(input, hash)).await?;
    let pdb_api = Api::<PodDisruptionBudget>::namespaced(client.clone(), ns);
    match build::pod_disruption_budget(input) {
        Some(pdb) => {
            apply(ctx, bridge, &pdb_api, &pdb).await?;
        }
        None => delete_if_present(ctx, bridge, &pdb_api).await?,
    }
    Ok(sts)
}

/// The bridge's status as the API server has it now; `None` when it is gone or unreadable.
async fn live_status(
    ctx: &Context,
    bridge: &Bridge<'_>,
) -> Result<Option<MqttKafkaBridgeStatus>, Error> {
    let api = Api::<DynamicObject>::namespaced_with(ctx.client.clone(), &bridge.namespace, &ar());
    Ok(api
        .get_opt(&bridge.name)
        .await?
        .and_then(|o| o.data.get("status").cloned())
        .and_then(|s| serde_json::from_value(s).ok()))
}

/// The Secret values by (name, key), for the Kafka admin client.
pub(crate) fn secret_values(values: &[(String, String, Option<Vec<u8>>)]) -> SecretValues {
    values
        .iter()
        .filter_map(|(name, key, v)| Some(((name.clone(), key.clone()), v.clone()?)))
        .collect()
}

/// The spec of a bridge watched as a dynamic object. An object the types cannot read (a
/// newer CRD version, a value outside the Rust type) becomes an InvalidSpec status instead of
/// an error that would retry forever.
pub(crate) fn read_spec(obj: &DynamicObject) -> Result<MqttKafkaBridgeSpec, String> {
    let spec = obj.data.get("spec").cloned().unwrap_or_default();
    serde_json::from_value(spec)
        .map_err(|e| format!("spec: cannot be read by this version of the operator: {e}"))
}

/// The values of every referenced Secret key, for the hash; `Err` when one is missing.
pub(crate) async fn read_secrets(
    ctx: &Context,
    namespace: &str,
    spec: &MqttKafkaBridgeSpec,
) -> Result<Result<Vec<(String, String, Option<Vec<u8>>)>, Outcome>, Error> {
    let api = Api::<Secret>::namespaced(ctx.client.clone(), namespace);
    let mut values = Vec::new();
    let mut cache: BTreeMap<String, Option<Secret>> = BTreeMap::new();
    for r in build::referenced_secrets(spec) {
        if !cache.contains_key(&r.name) {
            cache.insert(r.name.clone(), api.get_opt(&r.name).await?);
        }
        let fields = || build::fields_referencing(spec, &r).join(", ");
        let Some(secret) = cache.get(&r.name).and_then(Option::as_ref) else {
            return Ok(Err(Outcome::Blocked {
                reason: "SecretNotFound".to_owned(),
                message: format!(
                    "{}: Secret {} (key {:?}) does not exist in namespace {namespace}; nothing is rolled out until it does",
                    fields(),
                    r.name,
                    r.key
                ),
            }));
        };
        let value = secret
            .data
            .as_ref()
            .and_then(|d| d.get(&r.key))
            .map(|v| v.0.clone());
        if value.is_none() {
            return Ok(Err(Outcome::Blocked {
                reason: "SecretKeyNotFound".to_owned(),
                message: format!(
                    "{}: Secret {} has no key {:?}; nothing is rolled out until it has",
                    fields(),
                    r.name,
                    r.key
                ),
            }));
        }
        values.push((r.name.clone(), r.key.clone(), value));
    }
    Ok(Ok(values))
}

/// Server-side apply with the operator's field manager. A no-op apply does not write, so an
/// unchanged bridge causes no writes.
pub(crate) async fn apply<K>(
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
    let existing = api.get_metadata_opt(&name).await?;
    if let Some(existing) = &existing {
        if !owned_by(&existing.metadata, bridge) {
            return Err(Error::NotOwned { kind, name });
        }
    }
    let before = existing.and_then(|m| m.metadata.resource_version);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let after = api
        .patch(&name, &params, &Patch::Apply(desired))
        .await
        .map_err(|e| match e {
            kube::Error::Api(response) => Error::Apply {
                kind: kind.clone(),
                name: name.clone(),
                message: response.message,
            },
            other => Error::Kube(other),
        })?;
    let change = match before {
        None => Change::Created,
        Some(rv) if after.meta().resource_version.as_ref() != Some(&rv) => Change::Updated,
        Some(_) => Change::Unchanged,
    };
    if change != Change::Unchanged {
        let reason = if change == Change::Created {
            "Created"
        } else {
            "Updated"
        };
        info!(bridge = %bridge.name, namespace = %bridge.namespace, "{reason} {kind} {name}");
        let child = after.object_ref(&());
        publish(
            ctx,
            bridge,
            EventType::Normal,
            reason,
            format!("{reason} {kind} {name}"),
            Some(child),
        )
        .await;
    }
    Ok(after)
}

/// Whether the bridge is the object's controller owner.
fn owned_by(meta: &kube::api::ObjectMeta, bridge: &Bridge<'_>) -> bool {
    let uid = bridge.obj.uid().unwrap_or_default();
    meta.owner_references
        .iter()
        .flatten()
        .any(|o| o.uid == uid && o.controller == Some(true))
}

/// Deletes the bridge's child of kind `K` if there is one that the bridge owns: an object of
/// the same name that somebody else made is never touched.
async fn delete_if_present<K>(ctx: &Context, bridge: &Bridge<'_>, api: &Api<K>) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned,
{
    let owned = api
        .get_metadata_opt(&bridge.name)
        .await?
        .is_some_and(|m| owned_by(&m.metadata, bridge));
    if owned {
        api.delete(&bridge.name, &DeleteParams::default()).await?;
        let kind = K::kind(&());
        info!(bridge = %bridge.name, namespace = %bridge.namespace, "Deleted {kind} {}", bridge.name);
        let note = format!("Deleted {kind} {}", bridge.name);
        publish(ctx, bridge, EventType::Normal, "Deleted", note, None).await;
    }
    Ok(())
}

/// What a reconciliation found besides its outcome, for the status.
#[derive(Clone, Copy)]
struct Report<'a> {
    spec_replicas: i32,
    /// The pods' HTTP port (`spec.metrics.port`), where they say why they are not ready.
    http_port: i32,
    /// Topic management, when it ran.
    topics: Option<&'a TopicsReport>,
    /// The spec's `insecureSkipVerify` warning; `None` when the spec was not read.
    insecure_tls: Option<Option<&'a str>>,
    /// `status.mqttSessions` and the SessionsRetired condition; `None` keeps the status's.
    sessions: Option<(i32, &'a (bool, &'static str, String))>,
}

impl Report<'_> {
    /// For a spec that was not read or not valid: what the status had is kept.
    fn keep_previous(spec_replicas: i32) -> Self {
        Self {
            spec_replicas,
            http_port: 0,
            topics: None,
            insecure_tls: None,
            sessions: None,
        }
    }
}

/// Computes the status and writes it when it changed; emits a warning Event when the bridge
/// newly became invalid or blocked (or the reason changed), when its topics newly failed, and
/// when it newly skips certificate verification.
async fn finish(
    ctx: &Context,
    bridge: &Bridge<'_>,
    outcome: Outcome,
    applied: Option<(&StatefulSet, String)>,
    report: &Report<'_>,
) -> Result<Finished, Error> {
    let Report {
        spec_replicas,
        http_port,
        topics,
        insecure_tls,
        sessions,
    } = *report;
    let api = Api::<DynamicObject>::namespaced_with(ctx.client.clone(), &bridge.namespace, &ar());
    let sts = match applied {
        Some((sts, _)) => Some(sts.clone()),
        None => {
            Api::<StatefulSet>::namespaced(ctx.client.clone(), &bridge.namespace)
                .get_opt(&bridge.name)
                .await?
        }
    };
    let routes = bridge.obj.data["spec"]["mqttToKafka"]
        .as_array()
        .map_or(0, Vec::len)
        + bridge.obj.data["spec"]["kafkaToMqtt"]
            .as_array()
            .map_or(0, Vec::len);
    // Pods that run but are not ready say why (only while the rollout is not done).
    let pods_not_ready = match (&outcome, &sts) {
        (Outcome::Applied, Some(_)) if !status::rolled_out(sts.as_ref(), spec_replicas).0 => {
            let selector = build::label_selector(&bridge.name);
            pods::not_ready(&ctx.client, &bridge.namespace, &selector, http_port).await
        }
        _ => Vec::new(),
    };
    let observed = Observed {
        generation: bridge.generation,
        spec_replicas,
        statefulset: sts.as_ref(),
        routes: routes as i32,
        config_hash: applied.map(|(_, hash)| hash),
        label_selector: build::label_selector(&bridge.name),
        topics,
        insecure_tls,
        pods_not_ready: &pods_not_ready,
        sessions,
    };
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let status = status::compute(&outcome, &observed, &bridge.status, &now);
    let previous_ready = bridge.status.conditions.iter().find(|c| c.type_ == "Ready");
    if let Outcome::Invalid(message) | Outcome::Blocked { message, .. } = &outcome {
        let reason = match &outcome {
            Outcome::Blocked { reason, .. } => reason.as_str(),
            _ => "InvalidSpec",
        };
        let known = previous_ready.is_some_and(|c| c.reason == reason && &c.message == message);
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
    if let Some(report) = topics.filter(|t| !t.ready) {
        let before = bridge
            .status
            .conditions
            .iter()
            .find(|c| c.type_ == mkb_api::crd::conditions::TOPICS_READY);
        let known = before.is_some_and(|c| c.status == "False" && c.message == report.message);
        if !known {
            publish(
                ctx,
                bridge,
                EventType::Warning,
                report.reason,
                report.message.clone(),
                None,
            )
            .await;
        }
    }
    if let Some(Some(warning)) = insecure_tls {
        let known = bridge
            .status
            .conditions
            .iter()
            .any(|c| c.type_ == INSECURE_TLS && c.message == warning);
        if !known {
            let reason = REASON_INSECURE_SKIP_VERIFY;
            announce(ctx, bridge, EventType::Warning, reason, warning.to_owned()).await;
        }
    }
    let mut status_version = None;
    if status != bridge.status {
        let patch = json!({
            "apiVersion": "mqttkafka.io/v1alpha1",
            "kind": "MqttKafkaBridge",
            "status": status,
        });
        let written = api
            .patch_status(
                &bridge.name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await?;
        status_version = written.metadata.resource_version;
    }
    Ok(Finished {
        status_version,
        pods_not_ready: !pods_not_ready.is_empty(),
    })
}

/// What `finish` did.
struct Finished {
    /// The bridge's resourceVersion after the status write, when there was one.
    status_version: Option<String>,
    /// Some pods run but are not ready; the status has their reasons.
    pods_not_ready: bool,
}

/// Logs `note` (info for Normal, warn for Warning) and publishes it as an Event about the
/// bridge.
pub(crate) async fn announce(
    ctx: &Context,
    bridge: &Bridge<'_>,
    type_: EventType,
    reason: &str,
    note: String,
) {
    match type_ {
        EventType::Normal => info!(bridge = %bridge.key(), "{note}"),
        EventType::Warning => warn!(bridge = %bridge.key(), "{note}"),
    }
    publish(ctx, bridge, type_, reason, note, None).await;
}

/// Publishes an Event about the bridge; failing to is logged, not fatal. Events about a child
/// name it as the related object, so each child has its own series. Every other Event
/// (warnings, published only when their message changes; topic changes) is a new Event
/// object: a series would keep only its first message.
pub(crate) async fn publish(
    ctx: &Context,
    bridge: &Bridge<'_>,
    type_: EventType,
    reason: &str,
    note: String,
    child: Option<k8s_openapi::api::core::v1::ObjectReference>,
) {
    let mut note = note;
    if note.len() > 1000 {
        let cut = (0..=1000)
            .rev()
            .find(|i| note.is_char_boundary(*i))
            .unwrap_or(0);
        note.truncate(cut);
        note.push('…');
    }
    let event = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(note),
        action: "Reconcile".to_owned(),
        secondary: child,
    };
    let reference = bridge.obj.object_ref(&ar());
    let result = if type_ == EventType::Warning || event.secondary.is_none() {
        ctx.fresh_recorder().publish(&event, &reference).await
    } else {
        ctx.recorder.publish(&event, &reference).await
    };
    if let Err(e) = result {
        warn!(bridge = %bridge.name, error = %e, "cannot publish an Event");
    }
}

/// The API resource of MqttKafkaBridge, for dynamic objects.
pub fn ar() -> kube::core::ApiResource {
    kube::core::ApiResource::erase::<MqttKafkaBridge>(&())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreadable_spec_is_an_invalid_spec_naming_the_problem() {
        let mut obj = DynamicObject::new("b", &ar());
        obj.data = json!({"spec": {"mqtt": {"url": 5}, "kafka": {"bootstrapServers": "k:9092"}}});
        let message = read_spec(&obj).expect_err("unreadable");
        assert!(
            message.starts_with(
                "spec: cannot be read by this version of the operator: invalid type: integer `5`"
            ),
            "{message}"
        );
        obj.data = json!({});
        assert!(read_spec(&obj)
            .expect_err("no spec")
            .contains("cannot be read"));
    }

    #[test]
    fn error_reasons_for_the_metric() {
        assert_eq!(Error::Incomplete("uid").reason(), "incomplete_object");
    }
}
