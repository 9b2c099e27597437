//! The headless Service of a bridge: stable pod DNS names and the metrics port.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{selector_labels, BridgeInput};

pub fn service(input: &BridgeInput<'_>) -> Service {
    Service {
        metadata: input.child_meta(input.name.to_owned()),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".to_owned()),
            selector: Some(selector_labels(input.name)),
            ports: Some(vec![ServicePort {
                name: Some("http".to_owned()),
                port: input.spec.metrics.port,
                target_port: Some(IntOrString::String("http".to_owned())),
                protocol: Some("TCP".to_owned()),
                ..ServicePort::default()
            }]),
            // Scrapers and tests can reach a pod before it is ready.
            publish_not_ready_addresses: Some(true),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}
