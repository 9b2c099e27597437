//! The PodDisruptionBudget of a bridge with more than one replica: voluntary disruptions
//! (node drains) take one replica at a time.

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{selector_labels, BridgeInput};

/// `None` when the bridge has at most one replica: a budget would then block every drain.
pub fn pod_disruption_budget(input: &BridgeInput<'_>) -> Option<PodDisruptionBudget> {
    (input.spec.replicas > 1).then(|| PodDisruptionBudget {
        metadata: input.child_meta(input.name.to_owned()),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(selector_labels(input.name)),
                match_expressions: None,
            }),
            // A replica that is not ready (crash-looping, cannot reach a broker) may be evicted:
            // otherwise it blocks node drains while protecting nothing.
            unhealthy_pod_eviction_policy: Some("AlwaysAllow".to_owned()),
            ..PodDisruptionBudgetSpec::default()
        }),
        status: None,
    })
}
