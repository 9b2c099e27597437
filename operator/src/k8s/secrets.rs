//! Reads the values of the Secret keys a bridge references, for the config hash (a changed
//! value rolls the pods) and the operator's own Kafka admin client. Each Secret is read once;
//! the values stay in memory.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};
use mkb_api::crd::MqttKafkaBridgeSpec;

use crate::error::Error;
use crate::secret_refs::{fields_referencing, referenced_secrets, SecretValues};
use crate::status::Blocked;

/// The values of every referenced Secret key; `Ok(Err(..))` names the first Secret or key
/// that is missing (nothing is rolled out until it is there).
pub async fn read(
    client: &Client,
    namespace: &str,
    spec: &MqttKafkaBridgeSpec,
) -> Result<Result<SecretValues, Blocked>, Error> {
    let api = Api::<Secret>::namespaced(client.clone(), namespace);
    let mut values = SecretValues::default();
    let mut secrets: BTreeMap<String, Option<Secret>> = BTreeMap::new();
    for r in referenced_secrets(spec) {
        if !secrets.contains_key(&r.name) {
            secrets.insert(r.name.clone(), api.get_opt(&r.name).await?);
        }
        let fields = fields_referencing(spec, &r).join(", ");
        let Some(secret) = secrets.get(&r.name).and_then(Option::as_ref) else {
            return Ok(Err(Blocked {
                reason: "SecretNotFound".to_owned(),
                message: format!(
                    "{fields}: Secret {} (key {:?}) does not exist in namespace {namespace}; nothing is rolled out until it does",
                    r.name, r.key
                ),
            }));
        };
        let Some(value) = secret.data.as_ref().and_then(|d| d.get(&r.key)) else {
            return Ok(Err(Blocked {
                reason: "SecretKeyNotFound".to_owned(),
                message: format!(
                    "{fields}: Secret {} has no key {:?}; nothing is rolled out until it has",
                    r.name, r.key
                ),
            }));
        };
        values.insert(r, value.0.clone());
    }
    Ok(Ok(values))
}
