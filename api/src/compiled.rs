//! The validated, ready-to-run form of routes and endpoints: templates parsed, topic filters
//! parsed, defaults resolved. Produced only by [`crate::validate`].

use crate::connection::OffsetReset;
use crate::routes::Partitioner;
use crate::template::Template;
use crate::topic::TopicFilter;

/// An MQTT → Kafka route, compiled.
#[derive(Debug, Clone)]
pub struct CompiledMqttToKafka {
    pub name: String,
    /// The filters as written; a message belongs to the route when one of them matches.
    pub filters: Vec<TopicFilter>,
    /// What to subscribe to: the filters, as `$share/<group>/...` when shared.
    pub subscriptions: Vec<TopicFilter>,
    pub qos: u8,
    pub topic: Template,
    pub key: Option<Template>,
    pub value: CompiledValue,
    /// Header name and value template, in name order.
    pub headers: Vec<(String, Template)>,
    pub forward_user_properties: bool,
    pub partitioner: Partitioner,
}

/// How the record value is made.
#[derive(Debug, Clone)]
pub enum CompiledValue {
    Raw,
    Envelope,
    Template(Template),
}

/// A Kafka → MQTT route, compiled.
#[derive(Debug, Clone)]
pub struct CompiledKafkaToMqtt {
    pub name: String,
    pub subscription: KafkaSubscription,
    pub group_id: String,
    pub auto_offset_reset: OffsetReset,
    pub topic: Template,
    pub payload: Template,
    pub qos: u8,
    pub retain: bool,
    pub forward_headers: bool,
}

/// What a Kafka → MQTT route consumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KafkaSubscription {
    Topics(Vec<String>),
    /// A regular expression starting with `^` (how librdkafka recognises a pattern).
    Pattern(String),
}

/// Where the MQTT broker is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttEndpoint {
    pub tls: bool,
    pub host: String,
    pub port: u16,
}

impl MqttEndpoint {
    /// Parses `mqtt://host[:port]` or `mqtts://host[:port]` (IPv6 hosts in brackets).
    pub fn parse(url: &str) -> Result<Self, String> {
        let (tls, rest) = if let Some(rest) = url.strip_prefix("mqtt://") {
            (false, rest)
        } else if let Some(rest) = url.strip_prefix("mqtts://") {
            (true, rest)
        } else {
            return Err(format!("{url:?} must start with mqtt:// or mqtts://"));
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains(['/', '?', '#', '@']) {
            return Err(format!(
                "{url:?} must be only scheme://host[:port] (no path, query or credentials; put credentials in auth)"
            ));
        }
        let default_port = if tls { 8883 } else { 1883 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("{url:?} has an unclosed '[' in its IPv6 host"))?;
            match after.strip_prefix(':') {
                Some(port) => (host, parse_port(url, port)?),
                None if after.is_empty() => (host, default_port),
                None => return Err(format!("{url:?} has text after the IPv6 host")),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, parse_port(url, port)?),
                None => (authority, default_port),
            }
        };
        if host.is_empty() {
            return Err(format!("{url:?} has no host"));
        }
        Ok(Self {
            tls,
            host: host.to_owned(),
            port,
        })
    }
}

fn parse_port(url: &str, port: &str) -> Result<u16, String> {
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!(
            "{url:?} has an invalid port {port:?} (expected 1-65535)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::MqttEndpoint;

    #[test]
    fn parses_urls() {
        let e = |tls, host: &str, port| MqttEndpoint {
            tls,
            host: host.into(),
            port,
        };
        assert_eq!(
            MqttEndpoint::parse("mqtt://broker"),
            Ok(e(false, "broker", 1883))
        );
        assert_eq!(
            MqttEndpoint::parse("mqtts://broker"),
            Ok(e(true, "broker", 8883))
        );
        assert_eq!(
            MqttEndpoint::parse("mqtt://127.0.0.1:1884/"),
            Ok(e(false, "127.0.0.1", 1884))
        );
        assert_eq!(
            MqttEndpoint::parse("mqtts://[::1]:8884"),
            Ok(e(true, "::1", 8884))
        );
        assert_eq!(
            MqttEndpoint::parse("mqtt://[::1]"),
            Ok(e(false, "::1", 1883))
        );
    }

    #[test]
    fn rejects_bad_urls() {
        for bad in [
            "tcp://broker:1883",
            "broker:1883",
            "mqtt://",
            "mqtt://:1883",
            "mqtt://broker:0",
            "mqtt://broker:99999",
            "mqtt://broker:x",
            "mqtt://user:pw@broker",
            "mqtt://broker/path",
            "mqtt://[::1",
            "mqtt://[::1]x",
        ] {
            assert!(
                MqttEndpoint::parse(bad).is_err(),
                "{bad} should be rejected"
            );
        }
    }
}
