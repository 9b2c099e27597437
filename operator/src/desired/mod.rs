//! Desired objects of a bridge, as pure functions of its spec: no client, no I/O. Each is
//! unit-tested; the reconciler applies them with server-side apply.

mod config;
mod hash;
mod pdb;
mod retire_job;
mod secrets;
mod service;
mod statefulset;

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;
use mkb_api::crd::{MqttKafkaBridge, MqttKafkaBridgeSpec};

use crate::k8s::apply::FIELD_MANAGER;

pub use config::{configuration, CONFIG_KEY};
pub use hash::config_hash;
pub use pdb::pod_disruption_budget;
pub use retire_job::{retire_job, retire_job_name, retire_selector, RETIRE_ORDINAL_LABEL};
pub use service::service;
pub use statefulset::statefulset;

/// What a bridge is built from.
pub struct BridgeInput<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    pub uid: &'a str,
    pub spec: &'a MqttKafkaBridgeSpec,
    /// bridge-runtime image when the spec does not name one.
    pub default_image: &'a str,
}

impl BridgeInput<'_> {
    /// Name of the ConfigMap with the runtime configuration.
    pub fn config_map_name(&self) -> String {
        format!("{}-config", self.name)
    }

    /// Metadata of a child object: name, namespace, labels, and the bridge as controller owner
    /// (so Kubernetes deletes the children with the bridge).
    pub fn child_meta(&self, name: String) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.namespace.to_owned()),
            labels: Some(labels(self.name)),
            owner_references: Some(vec![OwnerReference {
                api_version: MqttKafkaBridge::api_version(&()).into_owned(),
                kind: MqttKafkaBridge::kind(&()).into_owned(),
                name: self.name.to_owned(),
                uid: self.uid.to_owned(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..ObjectMeta::default()
        }
    }
}

/// Labels that select a bridge's pods.
pub fn selector_labels(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "app.kubernetes.io/name".to_owned(),
            "bridge-runtime".to_owned(),
        ),
        ("app.kubernetes.io/instance".to_owned(), name.to_owned()),
    ])
}

/// Labels of every object the operator creates for a bridge.
pub fn labels(name: &str) -> BTreeMap<String, String> {
    let mut labels = selector_labels(name);
    labels.insert(
        "app.kubernetes.io/managed-by".to_owned(),
        FIELD_MANAGER.to_owned(),
    );
    labels.insert(
        "app.kubernetes.io/part-of".to_owned(),
        "mqtt-kafka-bridge".to_owned(),
    );
    labels
}

/// The selector as a string, for `status.labelSelector` (the scale subresource, HPAs).
pub fn label_selector(name: &str) -> String {
    selector_labels(name)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
pub(crate) mod tests;
