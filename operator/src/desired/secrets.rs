//! Where the Secrets a bridge references end up in its pods: passwords as environment
//! variables, TLS material as files of projected volumes. Never in the ConfigMap.

use k8s_openapi::api::core::v1::{
    EnvVar, EnvVarSource, KeyToPath, ProjectedVolumeSource, SecretKeySelector, SecretProjection,
    Volume, VolumeMount, VolumeProjection,
};
use mkb_api::config::SecretSource;
use mkb_api::connection::TlsSettings;
use mkb_api::crd::SecretKeyRef;

use crate::secret_refs::tls_refs;

/// Where TLS material is mounted in the pods.
pub const SECRETS_DIR: &str = "/etc/bridge/secrets";
pub const ENV_MQTT_PASSWORD: &str = "MKB_MQTT_PASSWORD";
pub const ENV_KAFKA_SASL_PASSWORD: &str = "MKB_KAFKA_SASL_PASSWORD";

/// A password in an environment variable.
pub fn password_env(var: &str, secret: &SecretKeyRef) -> EnvVar {
    EnvVar {
        name: var.to_owned(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.name.clone(),
                key: secret.key.clone(),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

/// The runtime's view of a TLS block: files under `<SECRETS_DIR>/<volume>/`.
pub fn tls_files(tls: &TlsSettings<SecretKeyRef>, volume: &str) -> TlsSettings<SecretSource> {
    let file = |name: &str, r: &Option<SecretKeyRef>| {
        r.as_ref().map(|_| SecretSource {
            file: Some(format!("{SECRETS_DIR}/{volume}/{name}")),
            env: None,
        })
    };
    TlsSettings {
        ca: file("ca.crt", &tls.ca),
        client_certificate: file("tls.crt", &tls.client_certificate),
        client_key: file("tls.key", &tls.client_key),
        server_name: tls.server_name.clone(),
        insecure_skip_verify: tls.insecure_skip_verify,
    }
}

/// A projected volume with a TLS block's keys as `ca.crt`, `tls.crt`, `tls.key`, and its mount.
pub fn tls_volume(tls: &TlsSettings<SecretKeyRef>, volume: &str) -> Option<(Volume, VolumeMount)> {
    let sources: Vec<VolumeProjection> = tls_refs(tls)
        .into_iter()
        .map(|(_, file, r)| VolumeProjection {
            secret: Some(SecretProjection {
                name: r.name.clone(),
                items: Some(vec![KeyToPath {
                    key: r.key.clone(),
                    path: file.to_owned(),
                    mode: None,
                }]),
                optional: Some(false),
            }),
            ..VolumeProjection::default()
        })
        .collect();
    if sources.is_empty() {
        return None;
    }
    let v = Volume {
        name: volume.to_owned(),
        projected: Some(ProjectedVolumeSource {
            sources: Some(sources),
            // Readable whatever UID the platform runs the pod as (no fsGroup is set).
            default_mode: Some(0o444),
        }),
        ..Volume::default()
    };
    let m = VolumeMount {
        name: volume.to_owned(),
        mount_path: format!("{SECRETS_DIR}/{volume}"),
        read_only: Some(true),
        ..VolumeMount::default()
    };
    Some((v, m))
}
