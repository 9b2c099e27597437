//! `${...}` templates, compatible in spirit with EMQX's placeholders.
//!
//! A template is parsed once, against a [`Scope`] that decides which placeholders exist, and
//! rendered many times without re-parsing. Parse errors carry the 1-based column and the
//! offending text; render errors say which placeholder could not be produced.
//!
//! MQTT message scope: `${topic}`, `${topic[N]}` (level N, 0-based; negative counts from the
//! end), `${payload}`, `${payload.a.b[0]}` (a field of a JSON payload), `${qos}`, `${retain}`,
//! `${timestamp}` (milliseconds since the epoch when the bridge received the message),
//! `${user_properties.NAME}` (MQTT 5).
//!
//! Kafka record scope: `${.}` (the record as a JSON object), `${.value}`, `${.value.a[0]}`,
//! `${.key}`, `${.key.a}`, `${.topic}`, `${.partition}`, `${.offset}`, `${.ts}`, `${.ts_type}`,
//! `${.headers.NAME}`.
//!
//! `$${` renders a literal `${`; any other `$` is literal text.

mod context;
mod parse;

use std::fmt;

pub use context::{KafkaRecord, KafkaTimestamp, MqttMessage};
use parse::Part;

/// Which kind of message a template is rendered against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// An MQTT message on its way to Kafka.
    MqttMessage,
    /// A Kafka record on its way to MQTT.
    KafkaRecord,
}

impl Scope {
    fn known_placeholders(self) -> &'static str {
        match self {
            Scope::MqttMessage => {
                "${topic}, ${topic[N]}, ${payload}, ${payload.FIELD}, ${qos}, ${retain}, \
                 ${timestamp}, ${user_properties.NAME}"
            }
            Scope::KafkaRecord => {
                "${.}, ${.value}, ${.value.FIELD}, ${.key}, ${.key.FIELD}, ${.topic}, \
                 ${.partition}, ${.offset}, ${.ts}, ${.ts_type}, ${.headers.NAME}"
            }
        }
    }
}

/// A path into a JSON document: `.field` and `[index]` steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPath(pub Vec<PathSegment>);

/// One step of a [`JsonPath`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSegment {
    Field(String),
    Index(usize),
}

impl JsonPath {
    /// Follows the path; `None` when a step does not exist.
    pub fn lookup<'v>(&self, mut value: &'v serde_json::Value) -> Option<&'v serde_json::Value> {
        for segment in &self.0 {
            value = match segment {
                PathSegment::Field(name) => value.as_object()?.get(name)?,
                PathSegment::Index(i) => value.as_array()?.get(*i)?,
            };
        }
        Some(value)
    }
}

/// A placeholder a template can contain.
#[derive(Debug, Clone, PartialEq)]
pub enum Placeholder {
    Topic,
    TopicLevel(i32),
    Payload,
    PayloadField(JsonPath),
    Qos,
    Retain,
    Timestamp,
    UserProperty(String),
    Record,
    Value,
    ValueField(JsonPath),
    Key,
    KeyField(JsonPath),
    KafkaTopic,
    Partition,
    Offset,
    KafkaTimestamp,
    TimestampType,
    Header(String),
}

/// A template that failed to parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct TemplateError {
    /// 1-based column, in characters, of the `$` that starts the offending placeholder.
    pub column: usize,
    /// The offending text, from `${` on.
    pub placeholder: String,
    pub kind: TemplateErrorKind,
}

/// What is wrong with a placeholder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateErrorKind {
    Unknown(Scope),
    Unterminated,
    Empty,
    Nested,
    InvalidIndex(String),
    InvalidPath(String),
}

impl TemplateError {
    fn describe(&self) -> String {
        let at = self.column;
        let text: String = self.placeholder.chars().take(40).collect();
        match &self.kind {
            TemplateErrorKind::Unknown(scope) => format!(
                "unknown placeholder {text} at column {at} (known: {})",
                scope.known_placeholders()
            ),
            TemplateErrorKind::Unterminated => {
                format!("unterminated placeholder {text} at column {at}: missing '}}'")
            }
            TemplateErrorKind::Empty => format!("empty placeholder {text} at column {at}"),
            TemplateErrorKind::Nested => {
                format!("placeholder {text} at column {at} contains another '${{'")
            }
            TemplateErrorKind::InvalidIndex(index) => format!(
                "invalid topic level {index:?} in {text} at column {at}: expected an integer"
            ),
            TemplateErrorKind::InvalidPath(why) => {
                format!("invalid field path in {text} at column {at}: {why}")
            }
        }
    }
}

/// A message for which a template could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("{placeholder} needs a JSON {what}, but the {what} is not valid JSON")]
    NotJson {
        placeholder: String,
        what: &'static str,
    },
    #[error("{placeholder} has no value for this message")]
    Missing { placeholder: String },
    #[error("the rendered text is not valid UTF-8")]
    NotUtf8,
}

/// What rendering does when a placeholder has no value (a missing JSON field, header, user
/// property or topic level, or a JSON null).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnMissing {
    /// Render nothing, as EMQX does. For payloads, keys and headers.
    Empty,
    /// Fail. For topic names, where an empty level would route the message somewhere wrong.
    Fail,
}

/// What a placeholder resolved to for one message.
pub enum Resolved<'a> {
    Bytes(&'a [u8]),
    Text(String),
    Json(&'a serde_json::Value),
    Missing,
}

/// A message that placeholders can be resolved against.
pub trait Context {
    fn resolve(&self, placeholder: &Placeholder) -> Result<Resolved<'_>, RenderError>;
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

impl Template {
    /// Parses `text` with the placeholders of `scope`.
    pub fn parse(text: &str, scope: Scope) -> Result<Self, TemplateError> {
        Ok(Self {
            source: text.to_owned(),
            parts: parse::parse_parts(text, scope)?,
        })
    }

    /// The text the template was parsed from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The rendered text when the template has no placeholders.
    pub fn as_literal(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [] => Some(""),
            [Part::Literal(text)] => Some(text),
            _ => None,
        }
    }

    /// The placeholders, in order of appearance.
    pub fn placeholders(&self) -> impl Iterator<Item = &Placeholder> {
        self.parts.iter().filter_map(|p| match p {
            Part::Placeholder(ph) => Some(ph),
            Part::Literal(_) => None,
        })
    }

    /// Renders into `out`, appending.
    pub fn render_into(
        &self,
        ctx: &impl Context,
        on_missing: OnMissing,
        out: &mut Vec<u8>,
    ) -> Result<(), RenderError> {
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.extend_from_slice(text.as_bytes()),
                Part::Placeholder(ph) => match ctx.resolve(ph)? {
                    Resolved::Bytes(bytes) => out.extend_from_slice(bytes),
                    Resolved::Text(text) => out.extend_from_slice(text.as_bytes()),
                    Resolved::Json(serde_json::Value::Null) | Resolved::Missing => {
                        if on_missing == OnMissing::Fail {
                            return Err(RenderError::Missing {
                                placeholder: ph.to_string(),
                            });
                        }
                    }
                    Resolved::Json(serde_json::Value::String(s)) => {
                        out.extend_from_slice(s.as_bytes())
                    }
                    Resolved::Json(other) => out.extend_from_slice(other.to_string().as_bytes()),
                },
            }
        }
        Ok(())
    }

    /// Renders to bytes.
    pub fn render(
        &self,
        ctx: &impl Context,
        on_missing: OnMissing,
    ) -> Result<Vec<u8>, RenderError> {
        let mut out = Vec::with_capacity(self.source.len());
        self.render_into(ctx, on_missing, &mut out)?;
        Ok(out)
    }

    /// Renders to text, for topic names and header names.
    pub fn render_string(
        &self,
        ctx: &impl Context,
        on_missing: OnMissing,
    ) -> Result<String, RenderError> {
        if let Some(literal) = self.as_literal() {
            return Ok(literal.to_owned());
        }
        String::from_utf8(self.render(ctx, on_missing)?).map_err(|_| RenderError::NotUtf8)
    }
}

impl fmt::Display for Placeholder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = |p: &JsonPath| {
            p.0.iter()
                .map(|s| match s {
                    PathSegment::Field(name) => format!(".{name}"),
                    PathSegment::Index(i) => format!("[{i}]"),
                })
                .collect::<String>()
        };
        match self {
            Placeholder::Topic => write!(f, "${{topic}}"),
            Placeholder::TopicLevel(n) => write!(f, "${{topic[{n}]}}"),
            Placeholder::Payload => write!(f, "${{payload}}"),
            Placeholder::PayloadField(p) => write!(f, "${{payload{}}}", path(p)),
            Placeholder::Qos => write!(f, "${{qos}}"),
            Placeholder::Retain => write!(f, "${{retain}}"),
            Placeholder::Timestamp => write!(f, "${{timestamp}}"),
            Placeholder::UserProperty(name) => write!(f, "${{user_properties.{name}}}"),
            Placeholder::Record => write!(f, "${{.}}"),
            Placeholder::Value => write!(f, "${{.value}}"),
            Placeholder::ValueField(p) => write!(f, "${{.value{}}}", path(p)),
            Placeholder::Key => write!(f, "${{.key}}"),
            Placeholder::KeyField(p) => write!(f, "${{.key{}}}", path(p)),
            Placeholder::KafkaTopic => write!(f, "${{.topic}}"),
            Placeholder::Partition => write!(f, "${{.partition}}"),
            Placeholder::Offset => write!(f, "${{.offset}}"),
            Placeholder::KafkaTimestamp => write!(f, "${{.ts}}"),
            Placeholder::TimestampType => write!(f, "${{.ts_type}}"),
            Placeholder::Header(name) => write!(f, "${{.headers.{name}}}"),
        }
    }
}

#[cfg(test)]
mod tests;
