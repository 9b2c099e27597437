//! The Job that retires the MQTT session of a removed replica: the bridge's own pod template
//! (image, configuration, Secrets, security context, placement) running
//! `bridge-runtime --retire-ordinal N` once, with its summary as the termination message.

use k8s_openapi::api::batch::v1::{Job, JobSpec};

use super::{labels, BridgeInput};

/// Label of a retirement Job and its pod: the ordinal whose session it retires.
pub const RETIRE_ORDINAL_LABEL: &str = "mqttkafka.io/retire-ordinal";
/// `app.kubernetes.io/name` of retirement pods (not the bridge pods' value, so the
/// StatefulSet's selector, the PodDisruptionBudget and the readiness check never count them).
const RETIRE_NAME: &str = "bridge-runtime-retire";

/// Name of the Job retiring `ordinal`'s session.
pub fn retire_job_name(bridge: &str, ordinal: i32) -> String {
    format!("{bridge}-retire-{ordinal}")
}

/// Labels of a bridge's retirement Jobs (all of them, for listing).
pub fn retire_selector(bridge: &str) -> String {
    format!("app.kubernetes.io/name={RETIRE_NAME},app.kubernetes.io/instance={bridge}")
}

/// The Job; `config_hash` is the one the StatefulSet runs with.
pub fn retire_job(input: &BridgeInput<'_>, config_hash: &str, ordinal: i32) -> Job {
    let sts = super::statefulset(input, config_hash);
    let mut template = sts.spec.map(|s| s.template).unwrap_or_default();
    let mut job_labels = labels(input.name);
    job_labels.insert("app.kubernetes.io/name".to_owned(), RETIRE_NAME.to_owned());
    job_labels.insert(RETIRE_ORDINAL_LABEL.to_owned(), ordinal.to_string());
    if let Some(meta) = template.metadata.as_mut() {
        let mut pod_labels = input.spec.pod.labels.clone();
        pod_labels.extend(job_labels.clone());
        meta.labels = Some(pod_labels);
        // Not a scrape target: it lives for seconds.
        if let Some(annotations) = meta.annotations.as_mut() {
            annotations.retain(|k, _| !k.starts_with("prometheus.io/"));
        }
    }
    if let Some(pod) = template.spec.as_mut() {
        pod.restart_policy = Some("Never".to_owned());
        for container in &mut pod.containers {
            container.args.get_or_insert_with(Vec::new).extend([
                "--retire-ordinal".to_owned(),
                ordinal.to_string(),
                "--summary-file".to_owned(),
                "/dev/termination-log".to_owned(),
            ]);
            container.readiness_probe = None;
            container.liveness_probe = None;
            container.ports = None;
        }
    }
    let mut metadata = input.child_meta(retire_job_name(input.name, ordinal));
    metadata.labels = Some(job_labels);
    Job {
        metadata,
        spec: Some(JobSpec {
            // A broker or Kafka that is briefly away: a few more tries, then the Job is kept,
            // failed, for its logs.
            backoff_limit: Some(4),
            template,
            ..JobSpec::default()
        }),
        status: None,
    }
}
