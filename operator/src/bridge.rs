//! The bridge being reconciled, as watched (a dynamic object, so one the types cannot read is
//! reported in its status instead of stopping the watch), and what reconciliation reads of it.

use kube::api::DynamicObject;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};
use mkb_api::crd::{MqttKafkaBridge, MqttKafkaBridgeSpec, MqttKafkaBridgeStatus};

use crate::context::Context;
use crate::error::Error;

/// The API resource of MqttKafkaBridge, for dynamic objects.
pub fn ar() -> kube::core::ApiResource {
    kube::core::ApiResource::erase::<MqttKafkaBridge>(&())
}

/// `namespace/name`: how a bridge is keyed in the operator's own bookkeeping.
pub fn key_of(bridge: &ObjectRef<DynamicObject>) -> String {
    format!(
        "{}/{}",
        bridge.namespace.as_deref().unwrap_or_default(),
        bridge.name
    )
}

/// The bridge being reconciled, with what reconciliation needs of it.
pub struct Bridge<'a> {
    pub obj: &'a DynamicObject,
    pub name: String,
    pub namespace: String,
    pub generation: i64,
    pub status: MqttKafkaBridgeStatus,
}

impl<'a> Bridge<'a> {
    pub fn new(obj: &'a DynamicObject) -> Result<Self, Error> {
        Ok(Bridge {
            obj,
            name: obj.name_any(),
            namespace: obj.namespace().ok_or(Error::Incomplete("namespace"))?,
            generation: obj.metadata.generation.unwrap_or(0),
            status: obj
                .data
                .get("status")
                .and_then(|s| serde_json::from_value(s.clone()).ok())
                .unwrap_or_default(),
        })
    }

    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// The bridge's uid, which its children's owner references carry.
    pub fn uid(&self) -> Result<String, Error> {
        self.obj.uid().ok_or(Error::Incomplete("uid"))
    }

    /// The number of routes the spec lists, readable or not (for the status).
    pub fn route_count(&self) -> i32 {
        let count = |field: &str| self.obj.data["spec"][field].as_array().map_or(0, Vec::len);
        i32::try_from(count("mqttToKafka") + count("kafkaToMqtt")).unwrap_or(i32::MAX)
    }

    /// The spec. An object the types cannot read (a newer CRD version, a value outside the
    /// Rust type) becomes an InvalidSpec status instead of an error that would retry forever.
    pub fn spec(&self) -> Result<MqttKafkaBridgeSpec, String> {
        read_spec(self.obj)
    }

    /// Replaces the status with the API server's current one (kept when the bridge is gone or
    /// its status unreadable): the watch cache can lag behind our own last status write, and
    /// the status records which topics this bridge created (what Delete removes).
    pub async fn refresh_status(&mut self, ctx: &Context) -> Result<(), Error> {
        let api = Api::<DynamicObject>::namespaced_with(ctx.client.clone(), &self.namespace, &ar());
        let live = api
            .get_opt(&self.name)
            .await?
            .and_then(|o| o.data.get("status").cloned())
            .and_then(|s| serde_json::from_value(s).ok());
        if let Some(status) = live {
            self.status = status;
        }
        Ok(())
    }
}

/// The spec of a bridge watched as a dynamic object (see [`Bridge::spec`]).
pub fn read_spec(obj: &DynamicObject) -> Result<MqttKafkaBridgeSpec, String> {
    let spec = obj.data.get("spec").cloned().unwrap_or_default();
    serde_json::from_value(spec)
        .map_err(|e| format!("spec: cannot be read by this version of the operator: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_unreadable_spec_is_an_invalid_spec_naming_the_problem() {
        let mut obj = DynamicObject::new("b", &ar());
        obj.data = json!({"spec": {"mqtt": {"url": 5}, "kafka": {"bootstrapServers": "k:9092"}}});
        let message = read_spec(&obj).expect_err("unreadable");
        assert!(
            message.starts_with(
                "spec: cannot be read by this version of the operator: invalid type: integer `5`"
            ),
            "{message}"
        );
        obj.data = json!({});
        assert!(read_spec(&obj)
            .expect_err("no spec")
            .contains("cannot be read"));
    }

    #[test]
    fn routes_are_counted_even_in_a_spec_the_types_cannot_read() {
        let mut obj = DynamicObject::new("b", &ar()).within("ns");
        obj.data = json!({"spec": {"mqttToKafka": [{}, {}], "kafkaToMqtt": [{"x": 1}]}});
        let bridge = Bridge::new(&obj).expect("namespaced");
        assert_eq!(bridge.route_count(), 3);
        assert_eq!(bridge.key(), "ns/b");
    }
}
