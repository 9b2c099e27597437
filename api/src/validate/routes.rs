//! Route validation and compilation.

use std::collections::HashMap;

use super::{check_kafka_topic_name, index, join, ValidationErrors};
use crate::compiled::{CompiledKafkaToMqtt, CompiledMqttToKafka, CompiledValue, KafkaSubscription};
use crate::connection::{MqttVersion, OffsetReset};
use crate::routes::{
    KafkaSink, KafkaToMqttRoute, MqttSink, MqttSource, MqttToKafkaRoute, ValueFormat, ValueSpec,
};
use crate::template::{Scope, Template};
use crate::topic::{validate_share_group, validate_topic_name, TopicFilter};

/// What route compilation needs to know about the bridge.
pub struct RouteContext<'a> {
    /// Prefix of default share groups and consumer groups.
    pub bridge_name: &'a str,
    pub protocol: MqttVersion,
    pub default_offset_reset: OffsetReset,
}

/// The placeholder a Kafka → MQTT payload has when none is given: the value, byte for byte.
pub const DEFAULT_PAYLOAD_TEMPLATE: &str = "${.value}";

/// Validates and compiles both route lists. `base` is the path of the object that holds them
/// (`spec` for the custom resource, empty for the runtime configuration).
pub fn compile_routes(
    ctx: &RouteContext<'_>,
    mqtt_to_kafka: &[MqttToKafkaRoute],
    kafka_to_mqtt: &[KafkaToMqttRoute],
    base: &str,
    errors: &mut ValidationErrors,
) -> (Vec<CompiledMqttToKafka>, Vec<CompiledKafkaToMqtt>) {
    let up_path = join(base, "mqttToKafka");
    let down_path = join(base, "kafkaToMqtt");
    if mqtt_to_kafka.is_empty() && kafka_to_mqtt.is_empty() {
        errors.push(
            up_path.clone(),
            "the bridge has no routes: add a mqttToKafka or kafkaToMqtt route",
        );
    }
    check_names(
        mqtt_to_kafka
            .iter()
            .enumerate()
            .map(|(i, r)| (index(&up_path, i), r.name.as_str()))
            .chain(
                kafka_to_mqtt
                    .iter()
                    .enumerate()
                    .map(|(i, r)| (index(&down_path, i), r.name.as_str())),
            ),
        errors,
    );
    let up: Vec<_> = mqtt_to_kafka
        .iter()
        .enumerate()
        .filter_map(|(i, r)| compile_mqtt_to_kafka(ctx, r, &index(&up_path, i), errors))
        .collect();
    if ctx.protocol == MqttVersion::V311 {
        check_no_overlaps(mqtt_to_kafka, &up_path, errors);
    }
    let down = kafka_to_mqtt
        .iter()
        .enumerate()
        .filter_map(|(i, r)| compile_kafka_to_mqtt(ctx, r, &index(&down_path, i), errors))
        .collect();
    (up, down)
}

/// A setting that maps MQTT 5 user properties: on by default with MQTT 5, off with MQTT 3.1.1,
/// which has no user properties, so asking for it there is an error rather than a no-op.
fn user_properties_setting(
    ctx: &RouteContext<'_>,
    setting: Option<bool>,
    path: &str,
    errors: &mut ValidationErrors,
) -> bool {
    match (ctx.protocol, setting) {
        (MqttVersion::V5, setting) => setting.unwrap_or(true),
        (MqttVersion::V311, Some(true)) => {
            errors.push(
                path,
                "MQTT 3.1.1 has no user properties, so this would do nothing: set mqtt.protocolVersion to \"5\" or remove it",
            );
            false
        }
        (MqttVersion::V311, _) => false,
    }
}

/// Names follow DNS-label rules and are unique across both directions: they label metrics and
/// name default share and consumer groups.
fn check_names<'a>(names: impl Iterator<Item = (String, &'a str)>, errors: &mut ValidationErrors) {
    let mut seen: HashMap<&str, String> = HashMap::new();
    for (path, name) in names {
        let path = join(&path, "name");
        if !is_dns_label(name) {
            errors.push(
                &path,
                format!("{name:?} must be 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit"),
            );
        }
        match seen.get(name) {
            Some(first) => errors.push(
                &path,
                format!("duplicate route name {name:?} (also used by {first})"),
            ),
            None => {
                seen.insert(name, path.trim_end_matches(".name").to_owned());
            }
        }
    }
}

pub(crate) fn is_dns_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

fn parse_template(
    text: &str,
    scope: Scope,
    path: &str,
    errors: &mut ValidationErrors,
) -> Option<Template> {
    Template::parse(text, scope)
        .map_err(|e| errors.push(path, e.to_string()))
        .ok()
}

fn check_qos(qos: u8, path: &str, errors: &mut ValidationErrors) {
    if qos > 2 {
        errors.push(path, format!("{qos} is not a QoS level: use 0, 1 or 2"));
    }
}

fn compile_mqtt_to_kafka(
    ctx: &RouteContext<'_>,
    route: &MqttToKafkaRoute,
    path: &str,
    errors: &mut ValidationErrors,
) -> Option<CompiledMqttToKafka> {
    let before = errors.len();
    let source = compile_source(ctx, &route.name, &route.mqtt, &join(path, "mqtt"), errors);
    let sink = compile_sink(&route.kafka, &join(path, "kafka"), errors);
    let forward_user_properties = user_properties_setting(
        ctx,
        route.kafka.forward_user_properties,
        &join(path, "kafka.forwardUserProperties"),
        errors,
    );
    let ((filters, subscriptions), (topic, key, value, headers)) = (source?, sink?);
    (errors.len() == before).then(|| CompiledMqttToKafka {
        name: route.name.clone(),
        filters,
        subscriptions,
        qos: route.mqtt.qos,
        topic,
        key,
        value,
        headers,
        forward_user_properties,
        partitioner: route.kafka.partitioner,
    })
}

type Filters = (Vec<TopicFilter>, Vec<TopicFilter>);

fn compile_source(
    ctx: &RouteContext<'_>,
    route_name: &str,
    source: &MqttSource,
    path: &str,
    errors: &mut ValidationErrors,
) -> Option<Filters> {
    let before = errors.len();
    check_qos(source.qos, &join(path, "qos"), errors);
    let filters_path = join(path, "topicFilters");
    if source.topic_filters.is_empty() {
        errors.push(&filters_path, "list at least one topic filter");
    }
    let group = match &source.share_group {
        Some(group) if !source.shared => {
            errors.push(
                join(path, "shareGroup"),
                "is set but shared is false; set shared: true or remove shareGroup",
            );
            group.clone()
        }
        Some(group) => group.clone(),
        None => format!("{}.{route_name}", ctx.bridge_name),
    };
    if let Err(e) = validate_share_group(&group) {
        errors.push(join(path, "shareGroup"), e.to_string());
    }
    let mut filters = Vec::new();
    for (i, text) in source.topic_filters.iter().enumerate() {
        let filter_path = index(&filters_path, i);
        match TopicFilter::parse(text) {
            Ok(f) if f.share_group().is_some() => errors.push(
                filter_path,
                format!("{text:?}: write the plain filter {:?} and set shared: true instead of $share/...", f.filter()),
            ),
            Ok(f) => filters.push(f),
            Err(e) => errors.push(filter_path, format!("{text:?}: {e}")),
        }
    }
    if errors.len() != before {
        return None;
    }
    let subscriptions = if source.shared {
        filters
            .iter()
            .filter_map(|f| f.shared(&group).ok())
            .collect()
    } else {
        filters.clone()
    };
    Some((filters, subscriptions))
}

type Sink = (
    Template,
    Option<Template>,
    CompiledValue,
    Vec<(String, Template)>,
);

fn compile_sink(sink: &KafkaSink, path: &str, errors: &mut ValidationErrors) -> Option<Sink> {
    let before = errors.len();
    let scope = Scope::MqttMessage;
    let topic_path = join(path, "topic");
    let topic = parse_template(&sink.topic, scope, &topic_path, errors);
    if let Some(literal) = topic.as_ref().and_then(Template::as_literal) {
        check_kafka_topic_name(literal, &topic_path, errors);
    }
    let key = sink
        .key
        .as_ref()
        .map(|k| parse_template(k, scope, &join(path, "key"), errors));
    let value = compile_value(&sink.value, &join(path, "value"), errors);
    let mut headers = Vec::new();
    for (name, text) in &sink.headers {
        let header_path = join(&join(path, "headers"), name);
        if name.is_empty() {
            errors.push(&header_path, "header names must not be empty");
        }
        if let Some(t) = parse_template(text, scope, &header_path, errors) {
            headers.push((name.clone(), t));
        }
    }
    if errors.len() != before {
        return None;
    }
    Some((topic?, key.flatten(), value?, headers))
}

fn compile_value(
    value: &ValueSpec,
    path: &str,
    errors: &mut ValidationErrors,
) -> Option<CompiledValue> {
    match (value.format, &value.template) {
        (ValueFormat::Raw, None) => Some(CompiledValue::Raw),
        (ValueFormat::Envelope, None) => Some(CompiledValue::Envelope),
        (ValueFormat::Template, Some(text)) => {
            parse_template(text, Scope::MqttMessage, &join(path, "template"), errors)
                .map(CompiledValue::Template)
        }
        (ValueFormat::Template, None) => {
            errors.push(
                join(path, "template"),
                "is required when format is template",
            );
            None
        }
        (_, Some(_)) => {
            errors.push(
                join(path, "template"),
                "is only used with format: template; set format: template or remove it",
            );
            None
        }
    }
}

/// With MQTT 3.1.1 the broker cannot say which subscription a message matched. Brokers send
/// a copy per matching shared subscription (and may for plain ones), so two overlapping
/// filters, in one route or in two, would deliver duplicates the bridge cannot tell apart.
fn check_no_overlaps(routes: &[MqttToKafkaRoute], base: &str, errors: &mut ValidationErrors) {
    let filters: Vec<(String, TopicFilter)> = routes
        .iter()
        .enumerate()
        .flat_map(|(r, route)| {
            route
                .mqtt
                .topic_filters
                .iter()
                .enumerate()
                .filter_map(move |(i, text)| {
                    let path = format!("{base}[{r}].mqtt.topicFilters[{i}]");
                    TopicFilter::parse(text).ok().map(|f| (path, f))
                })
        })
        .collect();
    for (later, (path, f)) in filters.iter().enumerate() {
        if let Some((earlier_path, g)) = filters[..later].iter().find(|(_, g)| f.overlaps(g)) {
            errors.push(
                path,
                format!(
                    "{:?} overlaps {:?} ({earlier_path}); with MQTT 3.1.1 the broker cannot tell the bridge which \
                     subscription a message came through, so overlapping filters deliver duplicates. Use \
                     protocolVersion \"5\" or make the filters disjoint",
                    f.filter(),
                    g.filter()
                ),
            );
        }
    }
}

fn compile_kafka_to_mqtt(
    ctx: &RouteContext<'_>,
    route: &KafkaToMqttRoute,
    path: &str,
    errors: &mut ValidationErrors,
) -> Option<CompiledKafkaToMqtt> {
    let before = errors.len();
    let forward_headers = user_properties_setting(
        ctx,
        route.mqtt.forward_headers,
        &join(path, "mqtt.forwardHeaders"),
        errors,
    );
    let kafka_path = join(path, "kafka");
    let source = &route.kafka;
    let subscription = match (&source.topic_pattern, source.topics.is_empty()) {
        (Some(_), false) => {
            errors.push(&kafka_path, "set either topics or topicPattern, not both");
            None
        }
        (None, true) => {
            errors.push(
                join(&kafka_path, "topics"),
                "list at least one topic (or set topicPattern)",
            );
            None
        }
        (None, false) => {
            for (i, topic) in source.topics.iter().enumerate() {
                check_kafka_topic_name(topic, &index(&join(&kafka_path, "topics"), i), errors);
            }
            Some(KafkaSubscription::Topics(source.topics.clone()))
        }
        (Some(pattern), true) => {
            let anchored = if pattern.starts_with('^') {
                pattern.clone()
            } else {
                format!("^{pattern}")
            };
            match regex::Regex::new(&anchored) {
                Ok(_) => Some(KafkaSubscription::Pattern(anchored)),
                Err(e) => {
                    errors.push(
                        join(&kafka_path, "topicPattern"),
                        format!("invalid regular expression: {e}"),
                    );
                    None
                }
            }
        }
    };
    let group_id = source
        .group_id
        .clone()
        .unwrap_or_else(|| format!("{}.{}", ctx.bridge_name, route.name));
    if group_id.is_empty() {
        errors.push(join(&kafka_path, "groupId"), "must not be empty");
    }
    let sink = compile_mqtt_sink(&route.mqtt, &join(path, "mqtt"), errors);
    let (subscription, (topic, payload)) = (subscription?, sink?);
    (errors.len() == before).then(|| CompiledKafkaToMqtt {
        name: route.name.clone(),
        subscription,
        group_id,
        auto_offset_reset: source.auto_offset_reset.unwrap_or(ctx.default_offset_reset),
        topic,
        payload,
        qos: route.mqtt.qos,
        retain: route.mqtt.retain,
        forward_headers,
    })
}

fn compile_mqtt_sink(
    sink: &MqttSink,
    path: &str,
    errors: &mut ValidationErrors,
) -> Option<(Template, Template)> {
    let scope = Scope::KafkaRecord;
    check_qos(sink.qos, &join(path, "qos"), errors);
    let topic_path = join(path, "topic");
    let topic = parse_template(&sink.topic, scope, &topic_path, errors);
    if let Some(literal) = topic.as_ref().and_then(Template::as_literal) {
        if let Err(e) = validate_topic_name(literal) {
            errors.push(
                &topic_path,
                format!("{literal:?} is not a valid MQTT topic name: {e}"),
            );
        }
    }
    let payload_text = sink.payload.as_deref().unwrap_or(DEFAULT_PAYLOAD_TEMPLATE);
    let payload = parse_template(payload_text, scope, &join(path, "payload"), errors);
    Some((topic?, payload?))
}
