//! The Secret keys a bridge's spec references, with the field each comes from, and their
//! values once read. The values are held in memory only: this type has no `Debug`, so none can
//! reach a log line by accident.

use std::collections::{BTreeMap, BTreeSet};

use mkb_api::connection::TlsSettings;
use mkb_api::crd::{MqttKafkaBridgeSpec, SecretKeyRef};

/// Every Secret key the spec references, sorted and each once (the config hash covers their
/// values in this order).
pub fn referenced_secrets(spec: &MqttKafkaBridgeSpec) -> Vec<SecretKeyRef> {
    let refs: BTreeSet<SecretKeyRef> = secret_fields(spec).into_iter().map(|(_, r)| r).collect();
    refs.into_iter().collect()
}

/// The spec's fields that reference `secret`, for messages about it.
pub fn fields_referencing(spec: &MqttKafkaBridgeSpec, secret: &SecretKeyRef) -> Vec<String> {
    secret_fields(spec)
        .into_iter()
        .filter(|(_, r)| r == secret)
        .map(|(field, _)| field)
        .collect()
}

/// Each Secret reference with the path of its field.
fn secret_fields(spec: &MqttKafkaBridgeSpec) -> Vec<(String, SecretKeyRef)> {
    let mut fields = Vec::new();
    if let Some(auth) = &spec.mqtt.auth {
        fields.push(("spec.mqtt.auth.password".to_owned(), auth.password.clone()));
    }
    if let Some(sasl) = &spec.kafka.sasl {
        fields.push(("spec.kafka.sasl.password".to_owned(), sasl.password.clone()));
    }
    for (side, tls) in [
        ("mqtt", spec.mqtt.tls.as_ref()),
        ("kafka", spec.kafka.tls.as_ref()),
    ] {
        for (field, _, r) in tls.map(tls_refs).unwrap_or_default() {
            fields.push((format!("spec.{side}.tls.{field}"), r.clone()));
        }
    }
    fields
}

/// The TLS references, each with its field under `tls` and the file name it gets in the pods.
pub fn tls_refs(
    tls: &TlsSettings<SecretKeyRef>,
) -> Vec<(&'static str, &'static str, &SecretKeyRef)> {
    [
        ("ca", "ca.crt", &tls.ca),
        ("clientCertificate", "tls.crt", &tls.client_certificate),
        ("clientKey", "tls.key", &tls.client_key),
    ]
    .into_iter()
    .filter_map(|(field, file, r)| r.as_ref().map(|r| (field, file, r)))
    .collect()
}

/// The values of the Secret keys a bridge references, by reference, in sorted order.
#[derive(Default, Clone)]
pub struct SecretValues(BTreeMap<SecretKeyRef, Vec<u8>>);

impl SecretValues {
    pub fn insert(&mut self, r: SecretKeyRef, value: Vec<u8>) {
        self.0.insert(r, value);
    }

    pub fn get(&self, r: &SecretKeyRef) -> Option<&[u8]> {
        self.0.get(r).map(Vec::as_slice)
    }

    #[cfg(test)]
    pub fn remove(&mut self, r: &SecretKeyRef) {
        self.0.remove(r);
    }

    /// Each reference and its value, sorted by Secret name, then key.
    pub fn iter(&self) -> impl Iterator<Item = (&SecretKeyRef, &[u8])> {
        self.0.iter().map(|(r, v)| (r, v.as_slice()))
    }
}
