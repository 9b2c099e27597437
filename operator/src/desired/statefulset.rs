//! The StatefulSet of a bridge: pod N runs bridge-runtime as MQTT client `<prefix>-N`.

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EnvVar, EnvVarSource,
    HTTPGetAction, ObjectFieldSelector, PodAffinityTerm, PodAntiAffinity, PodSecurityContext,
    PodSpec, PodTemplateSpec, Probe, SeccompProfile, SecurityContext, Volume, VolumeMount,
    WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::secrets::{password_env, tls_volume, ENV_KAFKA_SASL_PASSWORD, ENV_MQTT_PASSWORD};
use super::{labels, selector_labels, BridgeInput, CONFIG_KEY};

/// Pod-template annotation with the configuration hash: a change rolls the pods.
pub const CONFIG_HASH_ANNOTATION: &str = "mqttkafka.io/config-hash";
const CONTAINER: &str = "bridge-runtime";
const CONFIG_DIR: &str = "/etc/bridge";
/// The StatefulSet; `config_hash` goes into the pod template.
pub fn statefulset(input: &BridgeInput<'_>, config_hash: &str) -> StatefulSet {
    let spec = input.spec;
    let pod = &spec.pod;
    let mut pod_labels = pod.labels.clone();
    pod_labels.extend(labels(input.name));
    let mut annotations = pod.annotations.clone();
    annotations.insert(CONFIG_HASH_ANNOTATION.to_owned(), config_hash.to_owned());
    if spec.metrics.enabled {
        annotations.insert("prometheus.io/scrape".to_owned(), "true".to_owned());
        annotations.insert(
            "prometheus.io/port".to_owned(),
            spec.metrics.port.to_string(),
        );
        annotations.insert("prometheus.io/path".to_owned(), "/metrics".to_owned());
    }

    let mut env = vec![EnvVar {
        name: "POD_NAME".to_owned(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: "metadata.name".to_owned(),
                api_version: None,
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }];
    if let Some(auth) = &spec.mqtt.auth {
        env.push(password_env(ENV_MQTT_PASSWORD, &auth.password));
    }
    if let Some(sasl) = &spec.kafka.sasl {
        env.push(password_env(ENV_KAFKA_SASL_PASSWORD, &sasl.password));
    }

    let mut volumes = vec![Volume {
        name: "config".to_owned(),
        config_map: Some(ConfigMapVolumeSource {
            name: input.config_map_name(),
            items: Some(vec![k8s_openapi::api::core::v1::KeyToPath {
                key: CONFIG_KEY.to_owned(),
                path: CONFIG_KEY.to_owned(),
                mode: None,
            }]),
            default_mode: Some(0o444),
            optional: Some(false),
        }),
        ..Volume::default()
    }];
    let mut mounts = vec![VolumeMount {
        name: "config".to_owned(),
        mount_path: CONFIG_DIR.to_owned(),
        read_only: Some(true),
        ..VolumeMount::default()
    }];
    for (tls, volume) in [
        (spec.mqtt.tls.as_ref(), "mqtt-tls"),
        (spec.kafka.tls.as_ref(), "kafka-tls"),
    ] {
        if let Some((v, m)) = tls.and_then(|t| tls_volume(t, volume)) {
            volumes.push(v);
            mounts.push(m);
        }
    }

    let probe = |path: &str, period: i32, failures: i32| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String("http".to_owned()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        ..Probe::default()
    };
    let container = Container {
        name: CONTAINER.to_owned(),
        image: Some(
            spec.image
                .clone()
                .unwrap_or_else(|| input.default_image.to_owned()),
        ),
        image_pull_policy: spec.image_pull_policy.map(|p| p.as_str().to_owned()),
        args: Some(vec![
            "--config".to_owned(),
            format!("{CONFIG_DIR}/{CONFIG_KEY}"),
        ]),
        env: Some(env),
        ports: Some(vec![ContainerPort {
            name: Some("http".to_owned()),
            container_port: spec.metrics.port,
            protocol: Some("TCP".to_owned()),
            ..ContainerPort::default()
        }]),
        liveness_probe: Some(probe("/healthz", 10, 3)),
        readiness_probe: Some(probe("/readyz", 5, 2)),
        resources: spec.resources.clone(),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_owned()]),
                add: None,
            }),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(mounts),
        ..Container::default()
    };

    let pod_spec = PodSpec {
        containers: vec![container],
        volumes: Some(volumes),
        automount_service_account_token: Some(false),
        service_account_name: pod.service_account_name.clone(),
        // No fixed UID, GID or fsGroup: the image runs as the numeric non-root user 65532 (so
        // runAsNonRoot can check it), and platforms that assign UIDs per namespace (OpenShift's
        // restricted SCC) may replace it. Secret files are world-readable for that reason
        // (secrets.rs): the pod runs this one process only.
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".to_owned(),
                localhost_profile: None,
            }),
            ..PodSecurityContext::default()
        }),
        // Room to drain in-flight messages after SIGTERM.
        termination_grace_period_seconds: Some(
            i64::from(spec.delivery.shutdown_grace_period_seconds) + 10,
        ),
        node_selector: (!pod.node_selector.is_empty()).then(|| pod.node_selector.clone()),
        tolerations: (!pod.tolerations.is_empty()).then(|| pod.tolerations.clone()),
        topology_spread_constraints: (!pod.topology_spread_constraints.is_empty())
            .then(|| pod.topology_spread_constraints.clone()),
        affinity: Some(
            pod.affinity
                .clone()
                .unwrap_or_else(|| spread_over_nodes(input.name)),
        ),
        priority_class_name: pod.priority_class_name.clone(),
        image_pull_secrets: (!pod.image_pull_secrets.is_empty())
            .then(|| pod.image_pull_secrets.clone()),
        ..PodSpec::default()
    };

    StatefulSet {
        metadata: input.child_meta(input.name.to_owned()),
        spec: Some(StatefulSetSpec {
            replicas: Some(spec.replicas),
            service_name: Some(input.name.to_owned()),
            // Replicas are independent: start and stop them all at once.
            pod_management_policy: Some("Parallel".to_owned()),
            selector: LabelSelector {
                match_labels: Some(selector_labels(input.name)),
                match_expressions: None,
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(annotations),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod_spec),
            },
            ..StatefulSetSpec::default()
        }),
        status: None,
    }
}

/// Prefer one replica per node, so a node failure takes one replica at most.
fn spread_over_nodes(name: &str) -> Affinity {
    Affinity {
        pod_anti_affinity: Some(PodAntiAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(vec![
                WeightedPodAffinityTerm {
                    weight: 100,
                    pod_affinity_term: PodAffinityTerm {
                        label_selector: Some(LabelSelector {
                            match_labels: Some(selector_labels(name)),
                            match_expressions: None,
                        }),
                        topology_key: "kubernetes.io/hostname".to_owned(),
                        ..PodAffinityTerm::default()
                    },
                },
            ]),
            required_during_scheduling_ignored_during_execution: None,
        }),
        ..Affinity::default()
    }
}
