//! SUBSCRIBE and UNSUBSCRIBE, for both protocol versions, on rumqttc's codec.

use bytes::BytesMut;
use rumqttc::mqttbytes::v4 as v4b;
use rumqttc::v5::mqttbytes::v5 as v5b;

use super::{encoded, qos4, qos5, WireError};

/// One SUBSCRIBE for `filters` at `qos`; MQTT 5 with a subscription identifier, retained
/// messages only for a new subscription.
pub fn subscribe(
    buf: &mut BytesMut,
    v5: bool,
    pkid: u16,
    filters: &[String],
    qos: u8,
    id: Option<usize>,
) -> Result<(), WireError> {
    if v5 {
        let filters = filters
            .iter()
            .map(|f| {
                let mut filter = v5b::Filter::new(f.clone(), qos5(qos));
                filter.retain_forward_rule = v5b::RetainForwardRule::OnNewSubscribe;
                filter
            })
            .collect();
        let properties = id.map(|id| v5b::SubscribeProperties {
            id: Some(id),
            user_properties: Vec::new(),
        });
        let packet = v5b::Subscribe {
            pkid,
            filters,
            properties,
        };
        encoded("SUBSCRIBE", packet.write(buf))
    } else {
        let packet = v4b::Subscribe {
            pkid,
            filters: filters
                .iter()
                .map(|f| v4b::SubscribeFilter::new(f.clone(), qos4(qos)))
                .collect(),
        };
        encoded("SUBSCRIBE", packet.write(buf))
    }
}

pub fn unsubscribe(
    buf: &mut BytesMut,
    v5: bool,
    pkid: u16,
    filters: &[String],
) -> Result<(), WireError> {
    if v5 {
        let packet = v5b::Unsubscribe {
            pkid,
            filters: filters.to_vec(),
            properties: None,
        };
        encoded("UNSUBSCRIBE", packet.write(buf))
    } else {
        let packet = v4b::Unsubscribe {
            pkid,
            topics: filters.to_vec(),
        };
        encoded("UNSUBSCRIBE", packet.write(buf))
    }
}
