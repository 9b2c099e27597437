//! The Helm chart against the test bed: lint; rendered objects validated by kubeconform with
//! schemas generated from the test bed API server's own OpenAPI (our CRD included); bad values
//! refused by values.schema.json with the key named; `helm template` without `--kube-version`
//! (the test bed's helm reports its real version); install, upgrade and uninstall, and what the
//! chart's ServiceAccount may and may not do (checked with a TokenRequest token of it). The
//! operator running as the chart's pod is tests/e2e/in_cluster.rs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{json, Map, Value};
use testbed::helm::{chart, helm, helm_ok};
use testbed::kubectl::{ensure_crd, get_json, kubectl, kubectl_ok, Namespace};
use testbed::process::{output_with_input, test_log_dir};
use testbed::{env, unique};

const RELEASE: &str = "mkb";
/// The chart's full name for release `mkb`.
const FULLNAME: &str = "mkb-mqtt-kafka-bridge-operator";

/// `helm template` of the chart with `--set values` (none when empty).
fn template(values: &str) -> Output {
    let chart = chart();
    let mut args = vec![
        "template",
        RELEASE,
        chart.to_str().expect("utf-8 path"),
        "--namespace",
        "mkb-system",
        "--include-crds",
    ];
    if !values.is_empty() {
        args.extend_from_slice(&["--set", values]);
    }
    helm(&args)
}

/// The rendered manifests; fails the test when helm refuses.
fn render(values: &str) -> String {
    let out = template(values);
    assert!(
        out.status.success(),
        "helm template --set {values}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Kubernetes' int-or-string and quantity are numbers or strings in YAML.
fn number_or_string(schema: &mut Value) {
    let format = schema["format"].as_str().unwrap_or_default();
    if format == "int-or-string" || schema.get("x-kubernetes-int-or-string").is_some() {
        *schema = json!({"oneOf": [{"type": "string"}, {"type": "integer"}]});
    }
}

/// Strict schemas: an object that lists its properties allows no others (as the API server's
/// field validation does), unless it preserves unknown fields.
fn make_strict(schema: &mut Value) {
    number_or_string(schema);
    let Some(obj) = schema.as_object_mut() else {
        return;
    };
    let preserves = obj.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    if obj.contains_key("properties") && !obj.contains_key("additionalProperties") && !preserves {
        obj.insert("additionalProperties".into(), Value::Bool(false));
    }
    if let Some(Value::Object(children)) = obj.get_mut("properties") {
        children.values_mut().for_each(make_strict);
    }
    for key in ["items", "additionalProperties"] {
        if let Some(child) = obj.get_mut(key) {
            make_strict(child);
        }
    }
}

/// Writes `<kind>_<version>.json` for the kinds the chart renders, from /openapi/v2.
fn write_schemas(dir: &Path) {
    let raw = kubectl_ok(&["get", "--raw", "/openapi/v2"], None);
    let doc: Value = serde_json::from_str(&raw).expect("OpenAPI v2 JSON");
    let mut definitions = doc["definitions"].clone();
    definitions.as_object_mut().expect("definitions").insert(
        "io.k8s.apimachinery.pkg.api.resource.Quantity".into(),
        json!({"oneOf": [{"type": "string"}, {"type": "number"}]}),
    );
    definitions
        .as_object_mut()
        .expect("definitions")
        .values_mut()
        .for_each(make_strict);
    let wanted = [
        "CustomResourceDefinition",
        "Deployment",
        "Service",
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "ClusterRole",
        "ClusterRoleBinding",
        "Lease",
        "MqttKafkaBridge",
    ];
    let mut written = Vec::new();
    for (name, def) in definitions.as_object().expect("definitions") {
        for gvk in def["x-kubernetes-group-version-kind"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let kind = gvk["kind"].as_str().unwrap_or_default();
            if !wanted.contains(&kind) {
                continue;
            }
            let version = gvk["version"].as_str().unwrap_or_default();
            let mut schema = Map::new();
            schema.insert("$ref".into(), json!(format!("#/definitions/{name}")));
            schema.insert("definitions".into(), definitions.clone());
            let file = dir.join(format!("{}_{version}.json", kind.to_lowercase()));
            std::fs::write(&file, Value::Object(schema).to_string()).expect("write schema");
            written.push(kind.to_owned());
        }
    }
    for kind in wanted {
        assert!(
            written.iter().any(|k| k == kind),
            "no schema for {kind} in /openapi/v2"
        );
    }
}

fn kubeconform(schemas: &Path, manifests: &str) -> Output {
    let location = format!(
        "{}/{{{{ .ResourceKind }}}}_{{{{ .ResourceAPIVersion }}}}.json",
        schemas.display()
    );
    let mut command = Command::new(env().bin.join("kubeconform"));
    command.args(["-strict", "-summary", "-schema-location", &location, "-"]);
    output_with_input(&mut command, Some(manifests), "kubeconform")
}

#[test]
fn the_chart_lints_and_renders_objects_the_api_server_schemas_accept() {
    ensure_crd();
    let chart = chart();
    let lint = helm_ok(&["lint", "--strict", chart.to_str().expect("utf-8 path")]);
    assert!(lint.contains("0 chart(s) failed"), "{lint}");

    let schemas = test_log_dir().join(unique("schemas"));
    std::fs::create_dir_all(&schemas).expect("schema dir");
    write_schemas(&schemas);
    let cluster_wide = render("");
    let namespaced = render("watchNamespaces={iot,fleet},metrics.service.enabled=false");
    assert!(cluster_wide.contains("kind: ClusterRole\n"));
    for ns in ["iot", "fleet"] {
        assert!(
            namespaced.contains(&format!("kind: Role\nmetadata:\n  name: {RELEASE}-mqtt-kafka-bridge-operator\n  namespace: {ns}\n")),
            "a Role in {ns}:\n{namespaced}"
        );
    }
    assert!(
        !namespaced.contains("kind: ClusterRole"),
        "namespaced mode has no cluster-wide rule"
    );
    for manifests in [&cluster_wide, &namespaced] {
        let out = kubeconform(&schemas, manifests);
        let report = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "kubeconform: {report}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            report.contains("Invalid: 0, Errors: 0, Skipped: 0"),
            "{report}"
        );
    }
    // The Prometheus Operator objects render when asked for (their CRDs are not in the test
    // bed, so kubeconform cannot check them).
    let monitors = render("metrics.serviceMonitor.enabled=true,metrics.podMonitor.enabled=true");
    for kind in ["kind: ServiceMonitor", "kind: PodMonitor"] {
        assert!(monitors.contains(kind), "{kind}:\n{monitors}");
    }
    assert!(monitors.contains("app.kubernetes.io/name: mkb-operator"));
    let out = template("metrics.serviceMonitor.enabled=true,metrics.service.enabled=false");
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("metrics.serviceMonitor.enabled needs metrics.service.enabled"));
    // The validation is real: an unknown field of a Deployment fails it.
    let broken = cluster_wide.replace("  strategy:\n", "  strategi:\n");
    let out = kubeconform(&schemas, &broken);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success() && report.contains("strategi"),
        "{report}"
    );

    // The values schema names the key of each bad value.
    for (set, expected) in [
        (
            "leaderElection.enabled=false,replicaCount=2",
            "at '/replicaCount': maximum: got 2, want 1",
        ),
        (
            "replicaCount=11",
            "at '/replicaCount': maximum: got 11, want 10",
        ),
        (
            "unknownKey=1",
            "additional properties 'unknownKey' not allowed",
        ),
        (
            "resyncSeconds=soon",
            "at '/resyncSeconds': got string, want integer",
        ),
        ("image.pullPolicy=Sometimes", "at '/image/pullPolicy'"),
        ("metrics.service.port=70000", "at '/metrics/service/port'"),
        ("logging.format=xml", "at '/logging/format'"),
        (
            "watchNamespaces={iot,Not_A_Namespace}",
            "at '/watchNamespaces/1'",
        ),
        (
            "serviceAccount.tokens=1",
            "additional properties 'tokens' not allowed",
        ),
    ] {
        let out = template(set);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains(expected),
            "--set {set}: {stderr}"
        );
    }
}

/// A kubeconfig for the test bed's API server that authenticates as the ServiceAccount.
fn service_account_kubeconfig(namespace: &str, account: &str) -> PathBuf {
    let token = kubectl_ok(
        &["create", "token", account, "-n", namespace, "--duration=1h"],
        None,
    );
    let view = |path: &str| {
        kubectl_ok(
            &[
                "config",
                "view",
                "--raw",
                "--minify",
                "-o",
                &format!("jsonpath={path}"),
            ],
            None,
        )
    };
    let server = view("{.clusters[0].cluster.server}");
    let ca = view("{.clusters[0].cluster.certificate-authority-data}");
    let ca_line = if ca.is_empty() {
        format!(
            "certificate-authority: {}",
            view("{.clusters[0].cluster.certificate-authority}")
        )
    } else {
        format!("certificate-authority-data: {ca}")
    };
    let path = test_log_dir().join(format!("kubeconfig-{namespace}-{account}"));
    let config = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: testbed\n  cluster:\n    server: {server}\n    {ca_line}\nusers:\n- name: {account}\n  user:\n    token: {}\ncontexts:\n- name: sa\n  context: {{cluster: testbed, user: {account}, namespace: {namespace}}}\ncurrent-context: sa\n",
        token.trim()
    );
    std::fs::write(&path, config).expect("write kubeconfig");
    path
}

/// kubectl as whoever `kubeconfig` names; (success, stderr).
fn kubectl_as(kubeconfig: &Path, args: &[&str]) -> (bool, String) {
    let mut all = vec!["--kubeconfig", kubeconfig.to_str().expect("utf-8 path")];
    all.extend_from_slice(args);
    let out = kubectl(&all, None);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn helm_install_runs_the_operator_under_its_service_account_and_uninstall_cleans_up() {
    ensure_crd();
    let ns = Namespace::create("helm");
    // A second watched namespace: one Role each, one watch each.
    let other = Namespace::create("helm-other");
    let chart = chart();
    let chart = chart.to_str().expect("utf-8 path");
    let watch = format!("watchNamespaces={{{},{}}}", ns.0, other.0);
    helm_ok(&[
        "install",
        RELEASE,
        chart,
        "-n",
        &ns.0,
        "--set",
        &watch,
        "--wait",
        "--timeout",
        "90s",
    ]);
    let deployment = get_json(&["deployment", FULLNAME, "-n", &ns.0]).expect("the Deployment");
    assert_eq!(deployment["status"]["readyReplicas"], 1, "{deployment}");

    // What the chart's ServiceAccount may do (the operator running under it, as a pod, is
    // tests/e2e/in_cluster.rs).
    let kubeconfig = service_account_kubeconfig(&ns.0, FULLNAME);
    for watched in [&ns.0, &other.0] {
        let (ok, stderr) = kubectl_as(
            &kubeconfig,
            &["get", "mkb,secrets,statefulsets", "-n", watched],
        );
        assert!(
            ok,
            "the operator reads what it watches in {watched}: {stderr}"
        );
    }
    // Nothing outside its namespace, and nothing it does not need inside.
    let (ok, stderr) = kubectl_as(&kubeconfig, &["get", "secrets", "-n", "default"]);
    assert!(!ok && stderr.contains("forbidden"), "{stderr}");
    let (ok, stderr) = kubectl_as(&kubeconfig, &["get", "mkb", "--all-namespaces"]);
    assert!(!ok && stderr.contains("forbidden"), "{stderr}");
    let (ok, _) = kubectl_as(
        &kubeconfig,
        &["auth", "can-i", "delete", "statefulsets", "-n", &ns.0],
    );
    assert!(
        !ok,
        "the operator never deletes StatefulSets; the garbage collector does"
    );

    // An upgrade with changed values rolls the operator.
    let generation = deployment["metadata"]["generation"].as_i64().unwrap_or(0);
    helm_ok(&[
        "upgrade",
        RELEASE,
        chart,
        "-n",
        &ns.0,
        "--set",
        &watch,
        "--set",
        "resyncSeconds=60",
        "--wait",
        "--timeout",
        "90s",
    ]);
    let upgraded = get_json(&["deployment", FULLNAME, "-n", &ns.0]).expect("the Deployment");
    assert!(upgraded["metadata"]["generation"].as_i64().unwrap_or(0) > generation);
    let args = upgraded["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
    assert!(args.contains("--resync-seconds=60"), "{args}");
    kubectl_ok(
        &[
            "rollout",
            "status",
            &format!("deployment/{FULLNAME}"),
            "-n",
            &ns.0,
            "--timeout=90s",
        ],
        None,
    );

    // Uninstall removes the operator's objects; the CRD and the bridges stay.
    helm_ok(&[
        "uninstall",
        RELEASE,
        "-n",
        &ns.0,
        "--wait",
        "--timeout",
        "90s",
    ]);
    for what in [
        "deployment",
        "serviceaccount",
        "role",
        "rolebinding",
        "service",
    ] {
        let left = kubectl_ok(
            &[
                "get",
                what,
                "-n",
                &ns.0,
                "-l",
                &format!("app.kubernetes.io/instance={RELEASE}"),
                "-o",
                "name",
            ],
            None,
        );
        assert!(left.trim().is_empty(), "{what} left behind: {left}");
    }
    assert!(get_json(&["crd", "mqttkafkabridges.mqttkafka.io"]).is_some());
}
