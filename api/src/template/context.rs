//! The two kinds of message templates are rendered against. Each parses its JSON at most
//! once, on the first placeholder that needs it.

use std::sync::OnceLock;

use base64::Engine;
use serde_json::{json, Map, Value};

use super::{Context, Placeholder, RenderError, Resolved};

/// Parses `bytes` as JSON once; `None` (remembered) when they are not JSON.
fn parse_json_once<'c>(
    cell: &'c OnceLock<Option<Value>>,
    bytes: Option<&[u8]>,
) -> Option<&'c Value> {
    cell.get_or_init(|| bytes.and_then(|b| serde_json::from_slice(b).ok()))
        .as_ref()
}

fn not_json(placeholder: &Placeholder, what: &'static str) -> RenderError {
    RenderError::NotJson {
        placeholder: placeholder.to_string(),
        what,
    }
}

/// An MQTT message, as seen by MQTT → Kafka templates.
pub struct MqttMessage<'a> {
    pub topic: &'a str,
    pub payload: &'a [u8],
    pub qos: u8,
    pub retain: bool,
    /// Milliseconds since the Unix epoch when the bridge received the message.
    pub timestamp_ms: i64,
    /// MQTT 5 user properties, in the order they arrived (names may repeat).
    pub user_properties: &'a [(String, String)],
    json: OnceLock<Option<Value>>,
}

impl<'a> MqttMessage<'a> {
    pub fn new(
        topic: &'a str,
        payload: &'a [u8],
        qos: u8,
        retain: bool,
        timestamp_ms: i64,
        user_properties: &'a [(String, String)],
    ) -> Self {
        Self {
            topic,
            payload,
            qos,
            retain,
            timestamp_ms,
            user_properties,
            json: OnceLock::new(),
        }
    }

    fn topic_level(&self, n: i32) -> Option<&'a str> {
        let count = self.topic.split('/').count();
        let index = if n < 0 {
            count.checked_sub(n.unsigned_abs() as usize)?
        } else {
            n as usize
        };
        self.topic.split('/').nth(index)
    }
}

impl Context for MqttMessage<'_> {
    fn resolve(&self, placeholder: &Placeholder) -> Result<Resolved<'_>, RenderError> {
        Ok(match placeholder {
            Placeholder::Topic => Resolved::Bytes(self.topic.as_bytes()),
            Placeholder::TopicLevel(n) => match self.topic_level(*n) {
                Some(level) => Resolved::Bytes(level.as_bytes()),
                None => Resolved::Missing,
            },
            Placeholder::Payload => Resolved::Bytes(self.payload),
            Placeholder::PayloadField(path) => {
                let doc = parse_json_once(&self.json, Some(self.payload))
                    .ok_or_else(|| not_json(placeholder, "payload"))?;
                path.lookup(doc).map_or(Resolved::Missing, Resolved::Json)
            }
            Placeholder::Qos => Resolved::Text(self.qos.to_string()),
            Placeholder::Retain => Resolved::Text(self.retain.to_string()),
            Placeholder::Timestamp => Resolved::Text(self.timestamp_ms.to_string()),
            Placeholder::UserProperty(name) => self
                .user_properties
                .iter()
                .find(|(k, _)| k == name)
                .map_or(Resolved::Missing, |(_, v)| Resolved::Bytes(v.as_bytes())),
            other => {
                return Err(RenderError::Missing {
                    placeholder: other.to_string(),
                })
            }
        })
    }
}

/// The timestamp of a Kafka record and what it means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KafkaTimestamp {
    NotAvailable,
    CreateTime(i64),
    LogAppendTime(i64),
}

impl KafkaTimestamp {
    fn millis(self) -> Option<i64> {
        match self {
            KafkaTimestamp::NotAvailable => None,
            KafkaTimestamp::CreateTime(ms) | KafkaTimestamp::LogAppendTime(ms) => Some(ms),
        }
    }

    /// The names EMQX uses for `ts_type`.
    fn type_name(self) -> &'static str {
        match self {
            KafkaTimestamp::NotAvailable => "undefined",
            KafkaTimestamp::CreateTime(_) => "create",
            KafkaTimestamp::LogAppendTime(_) => "append",
        }
    }
}

/// A Kafka record, as seen by Kafka → MQTT templates.
pub struct KafkaRecord<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub timestamp: KafkaTimestamp,
    /// Headers in record order (names may repeat; a value may be null).
    pub headers: Vec<(&'a str, Option<&'a [u8]>)>,
    value_json: OnceLock<Option<Value>>,
    key_json: OnceLock<Option<Value>>,
    record_json: OnceLock<Value>,
}

impl<'a> KafkaRecord<'a> {
    pub fn new(
        topic: &'a str,
        partition: i32,
        offset: i64,
        key: Option<&'a [u8]>,
        value: Option<&'a [u8]>,
        timestamp: KafkaTimestamp,
        headers: Vec<(&'a str, Option<&'a [u8]>)>,
    ) -> Self {
        Self {
            topic,
            partition,
            offset,
            key,
            value,
            timestamp,
            headers,
            value_json: OnceLock::new(),
            key_json: OnceLock::new(),
            record_json: OnceLock::new(),
        }
    }

    /// The record as one JSON object, for `${.}`. Key and value are strings when they are
    /// UTF-8; otherwise base64, flagged by `key_encoding` / `value_encoding` = `"base64"`.
    pub fn to_json(&self) -> Value {
        let mut record = Map::new();
        record.insert("topic".into(), json!(self.topic));
        record.insert("partition".into(), json!(self.partition));
        record.insert("offset".into(), json!(self.offset));
        insert_bytes(&mut record, "key", self.key);
        insert_bytes(&mut record, "value", self.value);
        record.insert("ts".into(), json!(self.timestamp.millis()));
        record.insert("ts_type".into(), json!(self.timestamp.type_name()));
        let headers: Map<String, Value> = self
            .headers
            .iter()
            .map(|(k, v)| {
                let text = v.map(|b| String::from_utf8_lossy(b).into_owned());
                ((*k).to_owned(), json!(text))
            })
            .collect();
        record.insert("headers".into(), Value::Object(headers));
        Value::Object(record)
    }
}

fn insert_bytes(record: &mut Map<String, Value>, field: &str, bytes: Option<&[u8]>) {
    let value = match bytes.map(std::str::from_utf8) {
        None => Value::Null,
        Some(Ok(text)) => json!(text),
        Some(Err(_)) => {
            record.insert(format!("{field}_encoding"), json!("base64"));
            let encoded =
                base64::engine::general_purpose::STANDARD.encode(bytes.unwrap_or_default());
            json!(encoded)
        }
    };
    record.insert(field.to_owned(), value);
}

impl<'a> Context for KafkaRecord<'a> {
    fn resolve(&self, placeholder: &Placeholder) -> Result<Resolved<'_>, RenderError> {
        let bytes = |b: Option<&'a [u8]>| b.map_or(Resolved::Missing, Resolved::Bytes);
        Ok(match placeholder {
            Placeholder::Record => Resolved::Json(self.record_json.get_or_init(|| self.to_json())),
            Placeholder::Value => bytes(self.value),
            Placeholder::Key => bytes(self.key),
            Placeholder::ValueField(path) => {
                let doc = parse_json_once(&self.value_json, self.value)
                    .ok_or_else(|| not_json(placeholder, "value"))?;
                path.lookup(doc).map_or(Resolved::Missing, Resolved::Json)
            }
            Placeholder::KeyField(path) => {
                let doc = parse_json_once(&self.key_json, self.key)
                    .ok_or_else(|| not_json(placeholder, "key"))?;
                path.lookup(doc).map_or(Resolved::Missing, Resolved::Json)
            }
            Placeholder::KafkaTopic => Resolved::Bytes(self.topic.as_bytes()),
            Placeholder::Partition => Resolved::Text(self.partition.to_string()),
            Placeholder::Offset => Resolved::Text(self.offset.to_string()),
            Placeholder::KafkaTimestamp => match self.timestamp.millis() {
                Some(ms) => Resolved::Text(ms.to_string()),
                None => Resolved::Missing,
            },
            Placeholder::TimestampType => Resolved::Text(self.timestamp.type_name().to_owned()),
            Placeholder::Header(name) => self
                .headers
                .iter()
                .find(|(k, _)| k == name)
                .and_then(|(_, v)| *v)
                .map_or(Resolved::Missing, Resolved::Bytes),
            other => {
                return Err(RenderError::Missing {
                    placeholder: other.to_string(),
                })
            }
        })
    }
}
