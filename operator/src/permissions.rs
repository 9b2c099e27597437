//! The permissions the operator needs, checked with SelfSubjectAccessReviews when it starts and
//! again every minute (every 10 s while one is missing). Without one, a watch or a write fails
//! in a retry loop that looks like an idle operator from outside; with this check a missing
//! permission is logged by name (verb, resource, namespace) and `/readyz` fails with the list,
//! and granting it later makes the operator ready without a restart. Nothing exits: a crash
//! loop would only hide the reason.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{stream, StreamExt};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::api::PostParams;
use kube::{Api, Client};
use tracing::{error, info, warn};

/// How often the permissions are checked again: soon while something is missing (a grant
/// shows within seconds), rarely once everything is granted.
const RECHECK_MISSING: Duration = Duration::from_secs(10);
const RECHECK: Duration = Duration::from_secs(60);

/// A resource and the verbs the operator uses on it: the rules of the chart's (Cluster)Role
/// (`charts/mqtt-kafka-bridge-operator/templates/rbac.yaml`, justified in docs/security.md).
struct Rule {
    group: &'static str,
    resource: &'static str,
    verbs: &'static [&'static str],
}

const BRIDGE_SCOPE: &[Rule] = &[
    Rule {
        group: "mqttkafka.io",
        resource: "mqttkafkabridges",
        verbs: &["get", "list", "watch", "patch"],
    },
    Rule {
        group: "mqttkafka.io",
        resource: "mqttkafkabridges/status",
        verbs: &["patch"],
    },
    Rule {
        group: "apps",
        resource: "statefulsets",
        verbs: &["get", "list", "watch", "create", "patch"],
    },
    Rule {
        group: "",
        resource: "configmaps",
        verbs: &["get", "list", "watch", "create", "patch"],
    },
    Rule {
        group: "",
        resource: "services",
        verbs: &["get", "list", "watch", "create", "patch"],
    },
    Rule {
        group: "policy",
        resource: "poddisruptionbudgets",
        verbs: &["get", "list", "watch", "create", "patch", "delete"],
    },
    Rule {
        group: "",
        resource: "secrets",
        verbs: &["get", "list", "watch"],
    },
    Rule {
        group: "",
        resource: "pods",
        verbs: &["list"],
    },
    Rule {
        group: "batch",
        resource: "jobs",
        verbs: &["get", "list", "watch", "create", "patch", "delete"],
    },
    Rule {
        group: "events.k8s.io",
        resource: "events",
        verbs: &["create", "patch"],
    },
];

const LEASE_SCOPE: &[Rule] = &[Rule {
    group: "coordination.k8s.io",
    resource: "leases",
    verbs: &["get", "create", "update"],
}];

/// What the operator must be allowed, and where.
#[derive(Clone, Debug)]
pub struct Scopes {
    /// The watched namespaces; empty: every namespace (cluster-wide permissions).
    pub watched: Vec<String>,
    /// The leader Lease's namespace, with leader election.
    pub lease_namespace: Option<String>,
}

/// One permission, as it is checked and reported.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Permission {
    verb: &'static str,
    group: &'static str,
    resource: &'static str,
    /// None: in every namespace.
    namespace: Option<String>,
}

impl std::fmt::Display for Permission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (resource, sub) = match self.resource.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (self.resource, None),
        };
        write!(f, "{} {resource}", self.verb)?;
        if let Some(sub) = sub {
            write!(f, "/{sub}")?;
        }
        if !self.group.is_empty() {
            write!(f, " ({})", self.group)?;
        }
        match &self.namespace {
            Some(ns) => write!(f, " in namespace {ns}"),
            None => write!(f, " in every namespace (cluster-wide)"),
        }
    }
}

impl Scopes {
    fn permissions(&self) -> Vec<Permission> {
        let bridge_namespaces: Vec<Option<String>> = if self.watched.is_empty() {
            vec![None]
        } else {
            self.watched.iter().cloned().map(Some).collect()
        };
        let mut all = Vec::new();
        let mut add = |rules: &[Rule], namespace: &Option<String>| {
            for rule in rules {
                for verb in rule.verbs {
                    all.push(Permission {
                        verb,
                        group: rule.group,
                        resource: rule.resource,
                        namespace: namespace.clone(),
                    });
                }
            }
        };
        for ns in &bridge_namespaces {
            add(BRIDGE_SCOPE, ns);
        }
        if let Some(ns) = &self.lease_namespace {
            add(LEASE_SCOPE, &Some(ns.clone()));
        }
        all
    }
}

/// The outcome of the last check, for `/readyz`.
#[derive(Default)]
pub struct Readiness {
    state: Mutex<State>,
}

#[derive(Default, Clone, PartialEq, Eq)]
enum State {
    #[default]
    Unchecked,
    Missing(Vec<String>),
    /// The check itself failed (the API server unreachable, say).
    Unknown(String),
    Granted,
}

impl Readiness {
    /// Ok when every permission was granted at the last check, else why not.
    pub fn status(&self) -> Result<(), String> {
        let state = self.state.lock().map(|s| s.clone()).unwrap_or_default();
        match state {
            State::Granted => Ok(()),
            State::Unchecked => Err("the operator's permissions are not checked yet".to_owned()),
            State::Unknown(e) => Err(format!("cannot check the operator's permissions: {e}")),
            State::Missing(missing) => Err(format!(
                "the operator's service account may not {} (see docs/security.md)",
                missing.join("; ")
            )),
        }
    }

    /// Records `state`; true when it changed.
    fn set(&self, state: State) -> bool {
        match self.state.lock() {
            Ok(mut current) if *current != state => {
                *current = state;
                true
            }
            _ => false,
        }
    }
}

/// Checks the permissions now and every minute, until the process ends.
pub async fn keep_checking(client: Client, scopes: Scopes, readiness: Arc<Readiness>) {
    let wanted = scopes.permissions();
    loop {
        let state = match missing(&client, &wanted).await {
            Ok(missing) if missing.is_empty() => State::Granted,
            Ok(missing) => State::Missing(missing.iter().map(ToString::to_string).collect()),
            Err(e) => State::Unknown(e.to_string()),
        };
        if readiness.set(state.clone()) {
            match (&state, readiness.status()) {
                (State::Granted, _) => info!(
                    checked = wanted.len(),
                    "the operator has every permission it needs"
                ),
                (State::Missing(_), Err(why)) => error!("not ready: {why}"),
                (_, Err(why)) => warn!("not ready: {why}"),
                (_, Ok(())) => {}
            }
        }
        let granted = state == State::Granted;
        tokio::time::sleep(if granted { RECHECK } else { RECHECK_MISSING }).await;
    }
}

/// The permissions of `wanted` the API server denies.
async fn missing(client: &Client, wanted: &[Permission]) -> Result<Vec<Permission>, kube::Error> {
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let answers: Vec<Result<(Permission, bool), kube::Error>> = stream::iter(wanted.to_vec())
        .map(move |p| {
            let api = api.clone();
            async move {
                let allowed = api
                    .create(&PostParams::default(), &review(&p))
                    .await?
                    .status
                    .is_some_and(|s| s.allowed);
                Ok((p, allowed))
            }
        })
        .buffered(8)
        .collect()
        .await;
    let mut denied = Vec::new();
    for answer in answers {
        let (permission, allowed) = answer?;
        if !allowed {
            denied.push(permission);
        }
    }
    Ok(denied)
}

fn review(p: &Permission) -> SelfSubjectAccessReview {
    let (resource, subresource) = match p.resource.split_once('/') {
        Some((r, s)) => (r, Some(s.to_owned())),
        None => (p.resource, None),
    };
    SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                group: Some(p.group.to_owned()),
                resource: Some(resource.to_owned()),
                subresource,
                verb: Some(p.verb.to_owned()),
                namespace: p.namespace.clone(),
                ..ResourceAttributes::default()
            }),
            ..SelfSubjectAccessReviewSpec::default()
        },
        ..SelfSubjectAccessReview::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_namespaced_install_needs_each_rule_in_each_namespace_and_the_lease() {
        let scopes = Scopes {
            watched: vec!["a".into(), "b".into()],
            lease_namespace: Some("ops".into()),
        };
        let all = scopes.permissions();
        let per_scope: usize = BRIDGE_SCOPE.iter().map(|r| r.verbs.len()).sum();
        assert_eq!(all.len(), 2 * per_scope + 3);
        let texts: Vec<String> = all.iter().map(ToString::to_string).collect();
        assert!(texts.contains(&"list secrets in namespace b".to_owned()));
        assert!(texts
            .contains(&"patch mqttkafkabridges/status (mqttkafka.io) in namespace a".to_owned()));
        assert!(texts.contains(&"update leases (coordination.k8s.io) in namespace ops".to_owned()));
    }

    #[test]
    fn watching_every_namespace_needs_cluster_wide_permissions() {
        let scopes = Scopes {
            watched: vec![],
            lease_namespace: None,
        };
        let all = scopes.permissions();
        assert!(all.iter().all(|p| p.namespace.is_none()));
        assert_eq!(
            all[0].to_string(),
            "get mqttkafkabridges (mqttkafka.io) in every namespace (cluster-wide)"
        );
    }

    #[test]
    fn readiness_says_what_is_missing() {
        let readiness = Readiness::default();
        assert!(readiness.status().unwrap_err().contains("not checked yet"));
        assert!(readiness.set(State::Missing(vec!["list secrets in namespace a".into()])));
        assert!(!readiness.set(State::Missing(vec!["list secrets in namespace a".into()])));
        let why = readiness.status().unwrap_err();
        assert!(why.contains("may not list secrets in namespace a"), "{why}");
        assert!(readiness.set(State::Granted));
        assert_eq!(readiness.status(), Ok(()));
    }
}
