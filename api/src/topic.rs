//! MQTT topic names and topic filters (MQTT 3.1.1 section 4.7, MQTT 5 section 4.7 and 4.8.2).
//!
//! A [`TopicFilter`] is parsed once and then matched against many topic names without
//! allocating. Shared subscriptions (`$share/<group>/<filter>`) are parsed into their group
//! and inner filter; matching uses the inner filter.

use std::fmt;

/// The longest topic name or filter MQTT can encode (a UTF-8 string with a 16-bit length).
pub const MAX_TOPIC_BYTES: usize = 65_535;

const SHARE_PREFIX: &str = "$share/";

/// Why a topic name or topic filter is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("must not be empty")]
    Empty,
    #[error("is {0} bytes long; MQTT allows at most 65535")]
    TooLong(usize),
    #[error("must not contain the null character (U+0000)")]
    NullCharacter,
    #[error("'#' must be the last level of a filter, alone in its level (found at byte {0})")]
    MisplacedMultiLevelWildcard(usize),
    #[error("'+' must occupy a whole level (found at byte {0})")]
    MisplacedSingleLevelWildcard(usize),
    #[error("wildcards ('+', '#') are not allowed in a topic name (found at byte {0})")]
    WildcardInTopicName(usize),
    #[error("shared subscription needs the form $share/<group>/<filter>")]
    IncompleteSharedSubscription,
    #[error(
        "shared subscription group {0:?} must be non-empty and must not contain '/', '+' or '#'"
    )]
    InvalidShareGroup(String),
}

/// One level of a parsed topic filter.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Level {
    Literal(String),
    /// `+`: exactly one level.
    Single,
    /// `#`: this level and every level below, including none.
    Multi,
}

/// A validated MQTT topic filter, possibly a shared subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicFilter {
    share_group: Option<String>,
    filter: String,
    levels: Vec<Level>,
}

impl TopicFilter {
    /// Parses a topic filter, `$share/<group>/<filter>` included.
    pub fn parse(text: &str) -> Result<Self, TopicError> {
        check_common(text)?;
        let (share_group, filter) = match text.strip_prefix(SHARE_PREFIX) {
            Some(rest) => {
                let (group, filter) = rest
                    .split_once('/')
                    .ok_or(TopicError::IncompleteSharedSubscription)?;
                validate_share_group(group)?;
                if filter.is_empty() {
                    return Err(TopicError::IncompleteSharedSubscription);
                }
                (Some(group.to_owned()), filter)
            }
            None if text == "$share" => return Err(TopicError::IncompleteSharedSubscription),
            None => (None, text),
        };
        let offset = text.len() - filter.len();
        let levels = parse_levels(filter, offset)?;
        Ok(Self {
            share_group,
            filter: filter.to_owned(),
            levels,
        })
    }

    /// The filter without a `$share/<group>/` prefix.
    pub fn filter(&self) -> &str {
        &self.filter
    }

    /// The share group of a `$share/<group>/<filter>` subscription.
    pub fn share_group(&self) -> Option<&str> {
        self.share_group.as_deref()
    }

    /// Whether the filter contains `+` or `#`.
    pub fn has_wildcards(&self) -> bool {
        self.levels.iter().any(|l| !matches!(l, Level::Literal(_)))
    }

    /// Returns the same filter as a shared subscription of `group`.
    pub fn shared(&self, group: &str) -> Result<Self, TopicError> {
        validate_share_group(group)?;
        Self::parse(&format!("{SHARE_PREFIX}{group}/{}", self.filter))
    }

    /// Whether some topic name matches both filters.
    pub fn overlaps(&self, other: &TopicFilter) -> bool {
        // Topics matching a filter that starts with a '$' literal all start with '$', which a
        // filter starting with a wildcard never matches.
        let dollar = |f: &TopicFilter| matches!(f.levels.first(), Some(Level::Literal(l)) if l.starts_with('$'));
        let wild = |f: &TopicFilter| matches!(f.levels.first(), Some(Level::Single | Level::Multi));
        if (dollar(self) && wild(other)) || (dollar(other) && wild(self)) {
            return false;
        }
        // The common topic must not be the empty string: that happens only when it has exactly
        // one level and one of the filters fixes that level to "".
        let first_level_empty = [self, other]
            .iter()
            .any(|f| matches!(f.levels.first(), Some(Level::Literal(l)) if l.is_empty()));
        for i in 0.. {
            match (self.levels.get(i), other.levels.get(i)) {
                // One filter ends with '#', the other goes on: a longer common topic exists.
                (Some(Level::Multi), Some(_)) | (Some(_), Some(Level::Multi)) => return true,
                // Exactly `i` levels (a '#' also matches its parent level).
                (Some(Level::Multi), None) | (None, Some(Level::Multi)) | (None, None) => {
                    return !(i == 1 && first_level_empty);
                }
                (None, Some(_)) | (Some(_), None) => return false,
                (Some(Level::Literal(x)), Some(Level::Literal(y))) if x != y => return false,
                _ => {}
            }
        }
        false
    }

    /// Whether a topic name matches this filter. The topic name is assumed valid.
    pub fn matches(&self, topic: &str) -> bool {
        // A filter starting with a wildcard never matches a topic starting with '$' [MQTT-4.7.2-1].
        if topic.starts_with('$')
            && matches!(self.levels.first(), Some(Level::Single | Level::Multi))
        {
            return false;
        }
        let mut names = topic.split('/');
        for level in &self.levels {
            match level {
                Level::Multi => return true,
                Level::Single => {
                    if names.next().is_none() {
                        return false;
                    }
                }
                Level::Literal(lit) => match names.next() {
                    Some(name) if name == lit => {}
                    _ => return false,
                },
            }
        }
        names.next().is_none()
    }
}

impl fmt::Display for TopicFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.share_group {
            Some(group) => write!(f, "{SHARE_PREFIX}{group}/{}", self.filter),
            None => f.write_str(&self.filter),
        }
    }
}

/// Checks a topic name to publish to: non-empty, at most 65535 bytes, no null, no wildcards.
pub fn validate_topic_name(topic: &str) -> Result<(), TopicError> {
    check_common(topic)?;
    match topic.find(['+', '#']) {
        Some(at) => Err(TopicError::WildcardInTopicName(at)),
        None => Ok(()),
    }
}

/// A share group name: non-empty, without '/', '+' or '#' [MQTT-4.8.2-2].
pub fn validate_share_group(group: &str) -> Result<(), TopicError> {
    if group.is_empty() || group.contains(['/', '+', '#']) {
        return Err(TopicError::InvalidShareGroup(group.to_owned()));
    }
    Ok(())
}

fn check_common(text: &str) -> Result<(), TopicError> {
    if text.is_empty() {
        return Err(TopicError::Empty);
    }
    if text.len() > MAX_TOPIC_BYTES {
        return Err(TopicError::TooLong(text.len()));
    }
    if text.contains('\0') {
        return Err(TopicError::NullCharacter);
    }
    Ok(())
}

/// Splits a filter into levels; `offset` is where the filter starts in the text the user wrote,
/// so errors point into that text.
fn parse_levels(filter: &str, offset: usize) -> Result<Vec<Level>, TopicError> {
    let mut levels = Vec::new();
    let mut start = 0;
    let parts: Vec<&str> = filter.split('/').collect();
    let last = parts.len() - 1;
    for (i, part) in parts.into_iter().enumerate() {
        let level = match part {
            "#" if i == last => Level::Multi,
            "#" => return Err(TopicError::MisplacedMultiLevelWildcard(offset + start)),
            "+" => Level::Single,
            _ => {
                if let Some(at) = part.find('#') {
                    return Err(TopicError::MisplacedMultiLevelWildcard(offset + start + at));
                }
                if let Some(at) = part.find('+') {
                    return Err(TopicError::MisplacedSingleLevelWildcard(
                        offset + start + at,
                    ));
                }
                Level::Literal(part.to_owned())
            }
        };
        levels.push(level);
        start += part.len() + 1;
    }
    Ok(levels)
}

#[cfg(test)]
mod tests;
