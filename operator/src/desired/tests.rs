use mkb_api::crd::{MqttKafkaBridge, MqttKafkaBridgeSpec, SecretKeyRef};

use super::config::render_config;
use super::statefulset::CONFIG_HASH_ANNOTATION;
use super::*;
use crate::secret_refs::{referenced_secrets, SecretValues};

const SMART_LOCKS: &str = include_str!("../../../examples/smart-locks.yaml");
const CARS: &str = include_str!("../../../examples/connected-cars.yaml");

pub(crate) fn spec(yaml: &str) -> MqttKafkaBridgeSpec {
    let bridge: MqttKafkaBridge = serde_yaml::from_str(yaml).expect("example parses");
    bridge.spec
}

pub(crate) fn input<'a>(spec: &'a MqttKafkaBridgeSpec) -> BridgeInput<'a> {
    BridgeInput {
        name: "smart-locks",
        namespace: "iot",
        uid: "uid-1",
        spec,
        default_image: "bridge-runtime:test",
    }
}

fn with_secrets() -> MqttKafkaBridgeSpec {
    let mut s = spec(CARS);
    let r = |name: &str, key: &str| SecretKeyRef {
        name: name.into(),
        key: key.into(),
    };
    s.mqtt.url = "mqtts://emqx.iot.svc:8883".into();
    s.mqtt.tls = Some(mkb_api::connection::TlsSettings {
        ca: Some(r("mqtt-ca", "ca.pem")),
        client_certificate: Some(r("mqtt-client", "tls.crt")),
        client_key: Some(r("mqtt-client", "tls.key")),
        server_name: Some("emqx.example".into()),
        insecure_skip_verify: false,
    });
    s.kafka.sasl = Some(mkb_api::connection::SaslSettings {
        mechanism: mkb_api::connection::SaslMechanism::ScramSha512,
        username: "bridge".into(),
        password: r("kafka-user", "password"),
    });
    s
}

#[test]
fn labels_and_selector() {
    assert_eq!(
        label_selector("a"),
        "app.kubernetes.io/instance=a,app.kubernetes.io/name=bridge-runtime"
    );
    let l = labels("a");
    assert_eq!(l["app.kubernetes.io/managed-by"], "mkb-operator");
    assert!(selector_labels("a")
        .iter()
        .all(|(k, v)| l.get(k) == Some(v)));
}

#[test]
fn rendered_config_is_a_valid_runtime_config_with_the_same_routes() {
    let s = spec(CARS);
    let yaml = render_config("connected-cars", &s).expect("renders");
    let valid =
        mkb_api::load_runtime_config(&yaml).expect("the runtime accepts what the operator renders");
    assert_eq!(valid.config.bridge_name, "connected-cars");
    assert_eq!(valid.mqtt_to_kafka.len(), 3);
    assert_eq!(
        valid.config.ordinal, None,
        "each pod takes its ordinal from its name"
    );
    assert_eq!(valid.config.http.listen, "0.0.0.0:9090");
    assert_eq!(
        valid
            .config
            .mqtt
            .auth
            .as_ref()
            .map(|a| a.password.env.as_deref()),
        Some(Some("MKB_MQTT_PASSWORD"))
    );
}

#[test]
fn secrets_become_env_names_and_file_paths_never_values() {
    let s = with_secrets();
    let yaml = render_config("cars", &s).expect("renders");
    assert!(yaml.contains("env: MKB_MQTT_PASSWORD"), "{yaml}");
    assert!(yaml.contains("env: MKB_KAFKA_SASL_PASSWORD"), "{yaml}");
    assert!(
        yaml.contains("file: /etc/bridge/secrets/mqtt-tls/ca.crt"),
        "{yaml}"
    );
    assert!(
        yaml.contains("file: /etc/bridge/secrets/mqtt-tls/tls.key"),
        "{yaml}"
    );
    for secret_name in ["cars-mqtt", "mqtt-ca", "kafka-user"] {
        assert!(
            !yaml.contains(secret_name),
            "the config names no Secret: {secret_name}"
        );
    }
    mkb_api::load_runtime_config(&yaml).expect("valid");
    let refs: Vec<String> = referenced_secrets(&s)
        .iter()
        .map(|r| format!("{}/{}", r.name, r.key))
        .collect();
    assert_eq!(
        refs,
        [
            "cars-mqtt/password",
            "kafka-user/password",
            "mqtt-ca/ca.pem",
            "mqtt-client/tls.crt",
            "mqtt-client/tls.key"
        ]
    );
}

#[test]
fn statefulset_runs_the_runtime_safely() {
    let s = spec(SMART_LOCKS);
    let sts = statefulset(&input(&s), "abc123");
    let owner = &sts.metadata.owner_references.as_ref().expect("owner")[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.controller),
        ("MqttKafkaBridge", "smart-locks", Some(true))
    );
    let spec = sts.spec.expect("spec");
    assert_eq!(spec.replicas, Some(1));
    assert_eq!(spec.pod_management_policy.as_deref(), Some("Parallel"));
    assert_eq!(spec.service_name.as_deref(), Some("smart-locks"));
    let template = spec.template;
    let annotations = template
        .metadata
        .as_ref()
        .and_then(|m| m.annotations.clone())
        .expect("annotations");
    assert_eq!(annotations[CONFIG_HASH_ANNOTATION], "abc123");
    let pod = template.spec.expect("pod spec");
    assert_eq!(pod.automount_service_account_token, Some(false));
    let psc = pod.security_context.expect("pod security context");
    assert_eq!(psc.run_as_non_root, Some(true));
    assert_eq!(
        (psc.run_as_user, psc.run_as_group, psc.fs_group),
        (None, None, None),
        "no fixed ids: OpenShift's restricted SCC assigns them"
    );
    assert_eq!(
        psc.seccomp_profile.map(|p| p.type_),
        Some("RuntimeDefault".to_owned())
    );
    assert_eq!(pod.termination_grace_period_seconds, Some(40));
    let anti = pod
        .affinity
        .and_then(|a| a.pod_anti_affinity)
        .expect("default anti-affinity");
    assert!(anti
        .preferred_during_scheduling_ignored_during_execution
        .is_some());
    let c = &pod.containers[0];
    assert_eq!(c.image.as_deref(), Some("bridge-runtime:test"));
    assert_eq!(
        c.args.as_deref(),
        Some(&["--config".to_owned(), "/etc/bridge/config.yaml".to_owned()][..])
    );
    let sc = c
        .security_context
        .as_ref()
        .expect("container security context");
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(
        sc.capabilities.as_ref().and_then(|c| c.drop.clone()),
        Some(vec!["ALL".to_owned()])
    );
    let probe_path = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
        p.as_ref()
            .and_then(|p| p.http_get.as_ref())
            .and_then(|g| g.path.clone())
    };
    assert_eq!(probe_path(&c.liveness_probe).as_deref(), Some("/healthz"));
    assert_eq!(probe_path(&c.readiness_probe).as_deref(), Some("/readyz"));
    assert_eq!(c.ports.as_ref().map(|p| p[0].container_port), Some(9090));
    let env = c.env.as_ref().expect("env");
    assert_eq!(
        env[0].name, "POD_NAME",
        "the ordinal comes from the pod name"
    );
}

#[test]
fn statefulset_wires_secrets_as_env_and_projected_files() {
    let s = with_secrets();
    let sts = statefulset(&input(&s), "h");
    let pod = sts.spec.and_then(|s| s.template.spec).expect("pod");
    let env = pod.containers[0].env.clone().expect("env");
    let from_secret = |var: &str| {
        env.iter()
            .find(|e| e.name == var)
            .and_then(|e| e.value_from.as_ref())
            .and_then(|v| v.secret_key_ref.as_ref())
            .map(|r| (r.name.clone(), r.key.clone()))
    };
    assert_eq!(
        from_secret("MKB_MQTT_PASSWORD"),
        Some(("cars-mqtt".into(), "password".into()))
    );
    assert_eq!(
        from_secret("MKB_KAFKA_SASL_PASSWORD"),
        Some(("kafka-user".into(), "password".into()))
    );
    let volume = pod
        .volumes
        .expect("volumes")
        .into_iter()
        .find(|v| v.name == "mqtt-tls")
        .expect("mqtt-tls volume");
    let sources = volume.projected.and_then(|p| p.sources).expect("sources");
    let paths: Vec<String> = sources
        .iter()
        .filter_map(|s| s.secret.as_ref())
        .map(|s| {
            format!(
                "{}:{}",
                s.name,
                s.items
                    .as_ref()
                    .map(|i| format!("{}->{}", i[0].key, i[0].path))
                    .unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(
        paths,
        [
            "mqtt-ca:ca.pem->ca.crt",
            "mqtt-client:tls.crt->tls.crt",
            "mqtt-client:tls.key->tls.key"
        ]
    );
    let mounts = pod.containers[0].volume_mounts.clone().expect("mounts");
    assert!(mounts
        .iter()
        .any(|m| m.mount_path == "/etc/bridge/secrets/mqtt-tls" && m.read_only == Some(true)));
}

#[test]
fn pod_overrides_apply() {
    let mut s = spec(SMART_LOCKS);
    s.image = Some("registry.example/bridge:1.2".into());
    s.pod.labels.insert("team".into(), "iot".into());
    s.pod.node_selector.insert("pool".into(), "edge".into());
    s.pod.affinity = Some(k8s_openapi::api::core::v1::Affinity::default());
    let sts = statefulset(&input(&s), "h");
    let template = sts.spec.expect("spec").template;
    assert_eq!(
        template.metadata.and_then(|m| m.labels).expect("labels")["team"],
        "iot"
    );
    let pod = template.spec.expect("pod");
    assert_eq!(
        pod.containers[0].image.as_deref(),
        Some("registry.example/bridge:1.2")
    );
    assert_eq!(pod.node_selector.expect("selector")["pool"], "edge");
    assert_eq!(
        pod.affinity,
        Some(k8s_openapi::api::core::v1::Affinity::default()),
        "the user's affinity replaces the default"
    );
}

#[test]
fn service_is_headless_with_the_metrics_port() {
    let s = spec(SMART_LOCKS);
    let svc = service(&input(&s)).spec.expect("spec");
    assert_eq!(svc.cluster_ip.as_deref(), Some("None"));
    assert_eq!(svc.ports.expect("ports")[0].port, 9090);
    assert_eq!(svc.selector, Some(selector_labels("smart-locks")));
}

#[test]
fn disruption_budget_only_above_one_replica() {
    let mut s = spec(SMART_LOCKS);
    assert!(pod_disruption_budget(&input(&s)).is_none());
    s.replicas = 3;
    let pdb = pod_disruption_budget(&input(&s)).expect("a budget");
    let pdb_spec = pdb.spec.expect("spec");
    assert_eq!(
        pdb_spec.max_unavailable,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(1))
    );
    assert_eq!(
        pdb_spec.unhealthy_pod_eviction_policy.as_deref(),
        Some("AlwaysAllow")
    );
}

#[test]
fn hash_follows_config_and_secret_values() {
    let secret = |v: &str| {
        let mut values = SecretValues::default();
        let r = SecretKeyRef {
            name: "s".into(),
            key: "k".into(),
        };
        values.insert(r, v.as_bytes().to_vec());
        values
    };
    let a = config_hash("config", &secret("one"));
    // The value of earlier releases: an upgraded operator must not roll every bridge's pods.
    assert_eq!(
        a,
        "f9c38525b7e382ecf44edd4dae28adfc6efb8e64d5416c1ee98b3b2fed7a6a92"
    );
    assert_ne!(
        a,
        config_hash("config2", &secret("one")),
        "a config change rolls the pods"
    );
    assert_ne!(
        a,
        config_hash("config", &secret("two")),
        "a secret change rolls the pods"
    );
    assert_ne!(a, config_hash("config", &SecretValues::default()));
}

#[test]
fn a_retirement_job_runs_the_bridge_pod_once_with_the_ordinal_and_other_labels() {
    let spec = with_secrets();
    let job = retire_job(&input(&spec), "h1", 2);
    assert_eq!(job.metadata.name.as_deref(), Some("smart-locks-retire-2"));
    let job_spec = job.spec.expect("job spec");
    assert_eq!(job_spec.backoff_limit, Some(4));
    let template = job_spec.template;
    let labels = template
        .metadata
        .and_then(|m| m.labels)
        .expect("pod labels");
    assert_eq!(labels["app.kubernetes.io/name"], "bridge-runtime-retire");
    assert_eq!(labels["mqttkafka.io/retire-ordinal"], "2");
    let pod = template.spec.expect("pod spec");
    assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
    let container = &pod.containers[0];
    assert_eq!(
        container.args.as_deref().unwrap_or_default()[2..],
        [
            "--retire-ordinal",
            "2",
            "--summary-file",
            "/dev/termination-log"
        ]
    );
    assert!(container.readiness_probe.is_none() && container.liveness_probe.is_none());
    assert!(
        container.env.as_ref().is_some_and(|e| e.len() > 1),
        "the same Secrets as the bridge pods"
    );
}
