//! Parsing `${...}` templates into literal parts and placeholders.

use super::{JsonPath, PathSegment, Placeholder, Scope, TemplateError, TemplateErrorKind};

/// One piece of a parsed template.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Part {
    Literal(String),
    Placeholder(Placeholder),
}

/// Splits `text` into parts. `$${` is an escaped `${`; any other `$` is literal.
pub(super) fn parse_parts(text: &str, scope: Scope) -> Result<Vec<Part>, TemplateError> {
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        let (before, from_dollar) = rest.split_at(at);
        literal.push_str(before);
        if let Some(after) = from_dollar.strip_prefix("$${") {
            literal.push_str("${");
            rest = after;
        } else if let Some(after) = from_dollar.strip_prefix("${") {
            let column = column_of(text, from_dollar);
            let close = after.find('}').ok_or_else(|| TemplateError {
                column,
                placeholder: from_dollar.to_owned(),
                kind: TemplateErrorKind::Unterminated,
            })?;
            let inner = &after[..close];
            let raw = &from_dollar[..close + 3];
            let error = |kind| TemplateError {
                column,
                placeholder: raw.to_owned(),
                kind,
            };
            if inner.contains("${") {
                return Err(error(TemplateErrorKind::Nested));
            }
            let placeholder = parse_placeholder(inner.trim(), scope).map_err(error)?;
            if !literal.is_empty() {
                parts.push(Part::Literal(std::mem::take(&mut literal)));
            }
            parts.push(Part::Placeholder(placeholder));
            rest = &after[close + 1..];
        } else {
            literal.push('$');
            rest = &from_dollar[1..];
        }
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        parts.push(Part::Literal(literal));
    }
    Ok(parts)
}

/// 1-based column, in characters, of `suffix` within `text` (`suffix` is a tail of `text`).
fn column_of(text: &str, suffix: &str) -> usize {
    text[..text.len() - suffix.len()].chars().count() + 1
}

fn parse_placeholder(inner: &str, scope: Scope) -> Result<Placeholder, TemplateErrorKind> {
    if inner.is_empty() {
        return Err(TemplateErrorKind::Empty);
    }
    let parsed = match scope {
        Scope::MqttMessage => parse_mqtt(inner)?,
        Scope::KafkaRecord => parse_kafka(inner)?,
    };
    parsed.ok_or(TemplateErrorKind::Unknown(scope))
}

/// `Ok(None)` means the name is not a placeholder of this scope.
fn parse_mqtt(inner: &str) -> Result<Option<Placeholder>, TemplateErrorKind> {
    Ok(Some(match inner {
        "topic" => Placeholder::Topic,
        "payload" => Placeholder::Payload,
        "qos" => Placeholder::Qos,
        "retain" => Placeholder::Retain,
        "timestamp" => Placeholder::Timestamp,
        _ => {
            if let Some(index) = inner
                .strip_prefix("topic[")
                .and_then(|r| r.strip_suffix(']'))
            {
                let level = index
                    .parse::<i32>()
                    .map_err(|_| TemplateErrorKind::InvalidIndex(index.to_owned()))?;
                Placeholder::TopicLevel(level)
            } else if let Some(path) = field_path(inner, "payload")? {
                Placeholder::PayloadField(path)
            } else if let Some(name) = inner.strip_prefix("user_properties.") {
                Placeholder::UserProperty(non_empty_name(name)?)
            } else {
                return Ok(None);
            }
        }
    }))
}

fn parse_kafka(inner: &str) -> Result<Option<Placeholder>, TemplateErrorKind> {
    Ok(Some(match inner {
        "." => Placeholder::Record,
        ".value" => Placeholder::Value,
        ".key" => Placeholder::Key,
        ".topic" => Placeholder::KafkaTopic,
        ".partition" => Placeholder::Partition,
        ".offset" => Placeholder::Offset,
        ".ts" => Placeholder::KafkaTimestamp,
        ".ts_type" => Placeholder::TimestampType,
        _ => {
            if let Some(path) = field_path(inner, ".value")? {
                Placeholder::ValueField(path)
            } else if let Some(path) = field_path(inner, ".key")? {
                Placeholder::KeyField(path)
            } else if let Some(name) = inner.strip_prefix(".headers.") {
                Placeholder::Header(non_empty_name(name)?)
            } else {
                return Ok(None);
            }
        }
    }))
}

fn non_empty_name(name: &str) -> Result<String, TemplateErrorKind> {
    if name.is_empty() {
        Err(TemplateErrorKind::InvalidPath("empty name".into()))
    } else {
        Ok(name.to_owned())
    }
}

/// `base.a.b[0]` or `base[1].c` → the path after `base`; `Ok(None)` when `inner` is not a path of `base`.
fn field_path(inner: &str, base: &str) -> Result<Option<JsonPath>, TemplateErrorKind> {
    let Some(rest) = inner.strip_prefix(base) else {
        return Ok(None);
    };
    if !(rest.starts_with('.') || rest.starts_with('[')) {
        return Ok(None);
    }
    parse_path(rest)
        .map(Some)
        .map_err(TemplateErrorKind::InvalidPath)
}

fn parse_path(mut rest: &str) -> Result<JsonPath, String> {
    let mut segments = Vec::new();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            let name = &after[..end];
            if name.is_empty() {
                return Err("empty field name".into());
            }
            if name.contains(']') {
                return Err(format!("unexpected ']' in field name {name:?}"));
            }
            segments.push(PathSegment::Field(name.to_owned()));
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let end = after.find(']').ok_or("missing ']' after an array index")?;
            let digits = &after[..end];
            let index = digits
                .parse::<usize>()
                .map_err(|_| format!("array index {digits:?} is not a non-negative integer"))?;
            segments.push(PathSegment::Index(index));
            rest = &after[end + 1..];
        } else {
            return Err(format!("expected '.' or '[' before {rest:?}"));
        }
    }
    Ok(JsonPath(segments))
}
