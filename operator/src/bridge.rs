//! The bridge being reconciled. Bridges are watched typed, each behind a `DeserializeGuard`:
//! one the types cannot read (a newer CRD version, a value outside the Rust type) still
//! arrives, with its metadata, and is reported in its status (InvalidSpec, naming the field)
//! instead of stopping the watch or being retried for ever.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{DynamicObject, ObjectMeta};
use kube::core::DeserializeGuard;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use mkb_api::crd::{MqttKafkaBridge, MqttKafkaBridgeSpec, MqttKafkaBridgeStatus};
use serde_json::Value;

use crate::context::Context;
use crate::error::Error;
use crate::seen;

/// A bridge as the watch delivers it.
pub type Watched = DeserializeGuard<MqttKafkaBridge>;

/// The API resource of MqttKafkaBridge, for reading and patching a bridge untyped (its
/// status, its finalizers and annotations), whatever its spec holds.
pub fn ar() -> kube::core::ApiResource {
    kube::core::ApiResource::erase::<MqttKafkaBridge>(&())
}

/// `namespace/name`: how a bridge is keyed in the operator's own bookkeeping.
pub fn key_of(bridge: &ObjectRef<Watched>) -> String {
    seen::key(
        bridge.namespace.as_deref().unwrap_or_default(),
        &bridge.name,
    )
}

/// The bridge being reconciled, with what reconciliation needs of it.
pub struct Bridge<'a> {
    obj: &'a Watched,
    pub meta: &'a ObjectMeta,
    pub name: String,
    pub namespace: String,
    pub generation: i64,
    pub status: MqttKafkaBridgeStatus,
    /// The spec, or why this version of the operator cannot read the object.
    spec: Result<&'a MqttKafkaBridgeSpec, String>,
    /// How many routes the object lists, read or not.
    routes: usize,
}

impl<'a> Bridge<'a> {
    pub fn new(obj: &'a Watched) -> Result<Self, Error> {
        let meta = obj.meta();
        let (spec, status, routes) = match &obj.0 {
            Ok(b) => (
                Ok(&b.spec),
                b.status.clone().unwrap_or_default(),
                b.spec.mqtt_to_kafka.len() + b.spec.kafka_to_mqtt.len(),
            ),
            Err(invalid) => (
                Err(format!(
                    "spec: cannot be read by this version of the operator: {}",
                    invalid.error
                )),
                MqttKafkaBridgeStatus::default(),
                0,
            ),
        };
        Ok(Bridge {
            obj,
            meta,
            name: obj.name_any(),
            namespace: obj.namespace().ok_or(Error::Incomplete("namespace"))?,
            generation: meta.generation.unwrap_or(0),
            status,
            spec,
            routes,
        })
    }

    /// `namespace/name`.
    pub fn key(&self) -> String {
        seen::key(&self.namespace, &self.name)
    }

    /// The bridge's uid, which its children's owner references carry.
    pub fn uid(&self) -> Result<String, Error> {
        self.meta.uid.clone().ok_or(Error::Incomplete("uid"))
    }

    /// The number of routes the spec lists, readable or not (for the status).
    pub fn route_count(&self) -> i32 {
        i32::try_from(self.routes).unwrap_or(i32::MAX)
    }

    /// The spec, or the InvalidSpec message of an object the types cannot read.
    pub fn spec(&self) -> Result<MqttKafkaBridgeSpec, String> {
        self.spec.clone().cloned()
    }

    pub fn deleting(&self) -> bool {
        self.meta.deletion_timestamp.is_some()
    }

    /// Creation time (RFC 3339, sorts by time), for which of the bridges sharing a topic is
    /// the oldest.
    pub fn created_at(&self) -> String {
        crate::topics::created_at(self.meta)
    }

    /// The reference Events about the bridge carry.
    pub fn object_ref(&self) -> ObjectReference {
        self.obj.object_ref(&())
    }

    /// The bridge read and written untyped: its status, finalizers and annotations, whatever
    /// its spec holds.
    pub fn untyped_api(&self, ctx: &Context) -> Api<DynamicObject> {
        Api::namespaced_with(ctx.client.clone(), &self.namespace, &ar())
    }

    /// Replaces the status with the API server's current one (kept when the bridge is gone or
    /// its status unreadable): the watch cache can lag behind our own last status write, and
    /// the status records which topics this bridge created (what Delete removes). Of an
    /// object the types cannot read, it also finds the field at fault and the routes listed.
    pub async fn refresh(&mut self, ctx: &Context) -> Result<(), Error> {
        let Some(live) = self.untyped_api(ctx).get_opt(&self.name).await? else {
            return Ok(());
        };
        if let Some(status) = live
            .data
            .get("status")
            .and_then(|s| serde_json::from_value(s.clone()).ok())
        {
            self.status = status;
        }
        if self.spec.is_err() {
            let spec = live.data.get("spec").cloned().unwrap_or_default();
            let count = |field: &str| spec[field].as_array().map_or(0, Vec::len);
            self.routes = count("mqttToKafka") + count("kafkaToMqtt");
            if let Some(message) = unreadable_spec(&spec) {
                self.spec = Err(message);
            }
        }
        Ok(())
    }
}

/// Why `spec` cannot be read by these types, naming the field; `None` when it can.
fn unreadable_spec(spec: &Value) -> Option<String> {
    let result: Result<MqttKafkaBridgeSpec, _> = serde_path_to_error::deserialize(spec);
    let e = result.err()?;
    let path = e.path().to_string();
    let field = if path == "." {
        "spec".to_owned()
    } else {
        format!("spec.{path}")
    };
    Some(format!(
        "{field}: cannot be read by this version of the operator: {}",
        e.inner()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_unreadable_spec_is_an_invalid_spec_naming_the_field() {
        let spec = json!({"mqtt": {"url": 5}, "kafka": {"bootstrapServers": "k:9092"}});
        let message = unreadable_spec(&spec).expect("unreadable");
        assert!(
            message.starts_with(
                "spec.mqtt.url: cannot be read by this version of the operator: invalid type: integer `5`"
            ),
            "{message}"
        );
        assert!(unreadable_spec(&json!(null))
            .expect("no spec")
            .starts_with("spec: cannot be read"));
    }

    #[test]
    fn a_bridge_the_types_cannot_read_still_arrives_with_its_metadata() {
        let obj: Watched = serde_json::from_value(json!({
            "apiVersion": "mqttkafka.io/v1alpha1",
            "kind": "MqttKafkaBridge",
            "metadata": {"name": "b", "namespace": "ns", "generation": 3},
            "spec": {"mqtt": {"url": 5}, "mqttToKafka": [{}, {}]},
        }))
        .expect("a guard reads any object");
        let bridge = Bridge::new(&obj).expect("namespaced");
        assert_eq!((bridge.key(), bridge.generation), ("ns/b".to_owned(), 3));
        let message = bridge.spec().expect_err("unreadable");
        assert!(message.starts_with("spec: cannot be read by this version of the operator"));
    }
}
