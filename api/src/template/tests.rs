use super::*;
use proptest::prelude::*;

const NO_PROPS: &[(String, String)] = &[];

fn mqtt(text: &str) -> Template {
    Template::parse(text, Scope::MqttMessage).unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

fn kafka(text: &str) -> Template {
    Template::parse(text, Scope::KafkaRecord).unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

fn msg<'a>(topic: &'a str, payload: &'a [u8]) -> MqttMessage<'a> {
    MqttMessage::new(topic, payload, 1, false, 1_700_000_000_123, NO_PROPS)
}

fn render_text(t: &Template, ctx: &impl Context) -> String {
    String::from_utf8(t.render(ctx, OnMissing::Empty).expect("renders")).expect("utf-8")
}

fn record<'a>(
    value: Option<&'a [u8]>,
    headers: Vec<(&'a str, Option<&'a [u8]>)>,
) -> KafkaRecord<'a> {
    KafkaRecord::new(
        "lock-command",
        3,
        42,
        Some(b"lock-7"),
        value,
        KafkaTimestamp::CreateTime(1_700_000_000_000),
        headers,
    )
}

#[test]
fn empty_template_renders_empty_and_is_literal() {
    let t = mqtt("");
    assert_eq!(t.as_literal(), Some(""));
    assert_eq!(
        t.render(&msg("a", b"x"), OnMissing::Fail).expect("renders"),
        b""
    );
}

#[test]
fn literal_text_is_kept_verbatim() {
    let t = mqtt("lock-state");
    assert_eq!(t.as_literal(), Some("lock-state"));
    assert_eq!(render_text(&t, &msg("a", b"")), "lock-state");
}

#[test]
fn escaped_placeholder_renders_literally() {
    let t = mqtt("cost $${topic} is ${topic}");
    assert_eq!(render_text(&t, &msg("a/b", b"")), "cost ${topic} is a/b");
    assert!(t.as_literal().is_none());
    assert_eq!(mqtt("$${").as_literal(), Some("${"));
}

#[test]
fn lone_dollars_are_literal() {
    assert_eq!(mqtt("price: $5 $$ $").as_literal(), Some("price: $5 $$ $"));
    assert_eq!(
        render_text(&mqtt("$${topic}$"), &msg("t", b"")),
        "${topic}$"
    );
}

#[test]
fn topic_and_levels() {
    let m = msg("devices/lock-1/state", b"");
    assert_eq!(render_text(&mqtt("${topic}"), &m), "devices/lock-1/state");
    assert_eq!(
        render_text(&mqtt("${topic[0]}-${topic[1]}"), &m),
        "devices-lock-1"
    );
    assert_eq!(render_text(&mqtt("${topic[-1]}"), &m), "state");
    assert_eq!(render_text(&mqtt("${topic[-3]}"), &m), "devices");
}

#[test]
fn missing_topic_level_is_empty_or_fails() {
    let m = msg("a/b", b"");
    assert_eq!(render_text(&mqtt("x${topic[5]}y"), &m), "xy");
    assert_eq!(render_text(&mqtt("x${topic[-3]}y"), &m), "xy");
    assert_eq!(
        mqtt("${topic[5]}").render(&m, OnMissing::Fail),
        Err(RenderError::Missing {
            placeholder: "${topic[5]}".into()
        })
    );
}

#[test]
fn whole_payload_is_copied_byte_for_byte_even_when_not_utf8() {
    let payload = [0xff, 0x00, 0xfe, b'a'];
    let t = mqtt("<${payload}>");
    let out = t
        .render(&msg("t", &payload), OnMissing::Fail)
        .expect("renders");
    assert_eq!(out, [b'<', 0xff, 0x00, 0xfe, b'a', b'>']);
    assert_eq!(
        t.render_string(&msg("t", &payload), OnMissing::Fail),
        Err(RenderError::NotUtf8)
    );
}

#[test]
fn json_field_on_non_utf8_payload_is_a_render_error() {
    let err = mqtt("${payload.id}").render(&msg("t", &[0xff, 0xfe]), OnMissing::Empty);
    assert_eq!(
        err,
        Err(RenderError::NotJson {
            placeholder: "${payload.id}".into(),
            what: "payload"
        })
    );
    assert_eq!(
        err.expect_err("fails").to_string(),
        "${payload.id} needs a JSON payload, but the payload is not valid JSON"
    );
}

#[test]
fn json_field_on_text_payload_is_a_render_error() {
    assert!(matches!(
        mqtt("${payload.id}").render(&msg("t", b"locked"), OnMissing::Empty),
        Err(RenderError::NotJson { .. })
    ));
}

#[test]
fn nested_json_paths_and_array_indexes() {
    let payload = br#"{"device":{"id":"lock-9","battery":{"level":87}},"readings":[{"v":1.5},{"v":2}],"ok":true}"#;
    let m = msg("t", payload);
    assert_eq!(render_text(&mqtt("${payload.device.id}"), &m), "lock-9");
    assert_eq!(
        render_text(&mqtt("${payload.device.battery.level}"), &m),
        "87"
    );
    assert_eq!(render_text(&mqtt("${payload.readings[1].v}"), &m), "2");
    assert_eq!(render_text(&mqtt("${payload.readings[0].v}"), &m), "1.5");
    assert_eq!(render_text(&mqtt("${payload.ok}"), &m), "true");
    // Objects and arrays render as compact JSON.
    assert_eq!(
        render_text(&mqtt("${payload.device.battery}"), &m),
        r#"{"level":87}"#
    );
    assert_eq!(
        render_text(&mqtt("${payload.readings[0]}"), &m),
        r#"{"v":1.5}"#
    );
}

#[test]
fn top_level_json_array_payload() {
    let m = msg("t", br#"[10, "x"]"#);
    assert_eq!(render_text(&mqtt("${payload[1]}"), &m), "x");
}

#[test]
fn missing_fields_render_empty_or_fail() {
    let payload = br#"{"a":{"b":null},"list":[1]}"#;
    let m = msg("t", payload);
    for t in [
        "${payload.nope}",
        "${payload.a.b}",
        "${payload.a.b.c}",
        "${payload.list[9]}",
        "${payload.list.x}",
        "${payload.a[0]}",
    ] {
        assert_eq!(render_text(&mqtt(t), &m), "", "{t}");
        assert!(
            matches!(
                mqtt(t).render(&m, OnMissing::Fail),
                Err(RenderError::Missing { .. })
            ),
            "{t}"
        );
    }
}

#[test]
fn qos_retain_timestamp() {
    let m = MqttMessage::new("t", b"", 2, true, 1234, NO_PROPS);
    assert_eq!(
        render_text(&mqtt("${qos}/${retain}/${timestamp}"), &m),
        "2/true/1234"
    );
}

#[test]
fn user_properties_first_value_wins() {
    let props = vec![
        ("site".to_owned(), "berlin".to_owned()),
        ("site".to_owned(), "paris".to_owned()),
    ];
    let m = MqttMessage::new("t", b"", 1, false, 0, &props);
    assert_eq!(render_text(&mqtt("${user_properties.site}"), &m), "berlin");
    assert_eq!(render_text(&mqtt("${user_properties.none}"), &m), "");
}

#[test]
fn whitespace_inside_braces_is_ignored() {
    assert_eq!(render_text(&mqtt("${ topic }"), &msg("a", b"")), "a");
}

#[test]
fn unknown_placeholder_names_column_and_text() {
    let err = Template::parse("a-${topc}", Scope::MqttMessage).expect_err("unknown");
    assert_eq!(err.column, 3);
    assert_eq!(err.placeholder, "${topc}");
    assert!(
        err.to_string()
            .starts_with("unknown placeholder ${topc} at column 3"),
        "{err}"
    );
}

#[test]
fn columns_count_characters_not_bytes() {
    let err = Template::parse("é€/${x}", Scope::MqttMessage).expect_err("unknown");
    assert_eq!(err.column, 4);
}

#[test]
fn placeholders_of_the_other_scope_are_unknown() {
    assert!(matches!(
        Template::parse("${.value}", Scope::MqttMessage).map_err(|e| e.kind),
        Err(TemplateErrorKind::Unknown(Scope::MqttMessage))
    ));
    assert!(matches!(
        Template::parse("${payload}", Scope::KafkaRecord).map_err(|e| e.kind),
        Err(TemplateErrorKind::Unknown(Scope::KafkaRecord))
    ));
}

#[test]
fn syntax_errors() {
    let kind = |t: &str| Template::parse(t, Scope::MqttMessage).map_err(|e| (e.column, e.kind));
    assert_eq!(kind("ab${topic"), Err((3, TemplateErrorKind::Unterminated)));
    assert_eq!(kind("${}"), Err((1, TemplateErrorKind::Empty)));
    assert_eq!(kind("${  }"), Err((1, TemplateErrorKind::Empty)));
    assert_eq!(kind("x${a${topic}}"), Err((2, TemplateErrorKind::Nested)));
    assert_eq!(
        kind("${topic[x]}"),
        Err((1, TemplateErrorKind::InvalidIndex("x".into())))
    );
    assert!(matches!(
        kind("${payload..a}"),
        Err((1, TemplateErrorKind::InvalidPath(_)))
    ));
    assert!(matches!(
        kind("${payload.a[}"),
        Err((1, TemplateErrorKind::InvalidPath(_)))
    ));
    assert!(matches!(
        kind("${payload[-1]}"),
        Err((1, TemplateErrorKind::InvalidPath(_)))
    ));
    assert!(matches!(
        kind("${payload.a]b}"),
        Err((1, TemplateErrorKind::InvalidPath(_)))
    ));
    assert!(matches!(
        kind("${user_properties.}"),
        Err((1, TemplateErrorKind::InvalidPath(_)))
    ));
    assert!(matches!(
        kind("${payloadx}"),
        Err((1, TemplateErrorKind::Unknown(_)))
    ));
}

#[test]
fn kafka_record_placeholders() {
    let headers = vec![("device", Some(&b"lock-7"[..])), ("empty", None)];
    let r = record(Some(br#"{"cmd":"unlock","args":[5]}"#), headers);
    let t =
        kafka("${.topic}/${.partition}/${.offset}/${.key}/${.ts}/${.ts_type}/${.headers.device}");
    assert_eq!(
        render_text(&t, &r),
        "lock-command/3/42/lock-7/1700000000000/create/lock-7"
    );
    assert_eq!(
        render_text(&kafka("${.value.cmd}:${.value.args[0]}"), &r),
        "unlock:5"
    );
    assert_eq!(
        render_text(&kafka("${.value}"), &r),
        r#"{"cmd":"unlock","args":[5]}"#
    );
    // A header with a null value counts as missing.
    assert!(kafka("${.headers.empty}")
        .render(&r, OnMissing::Fail)
        .is_err());
    assert!(kafka("devices/${.headers.absent}/command")
        .render(&r, OnMissing::Fail)
        .is_err());
    assert_eq!(
        render_text(&kafka("devices/${.headers.absent}/command"), &r),
        "devices//command"
    );
}

#[test]
fn kafka_header_names_may_contain_dots_and_dashes() {
    let r = record(None, vec![("x-trace.id", Some(&b"t1"[..]))]);
    assert_eq!(render_text(&kafka("${.headers.x-trace.id}"), &r), "t1");
}

#[test]
fn kafka_key_json_field() {
    let r = KafkaRecord::new(
        "t",
        0,
        0,
        Some(br#"{"id":7}"#),
        None,
        KafkaTimestamp::NotAvailable,
        vec![],
    );
    assert_eq!(render_text(&kafka("${.key.id}"), &r), "7");
    assert_eq!(
        render_text(&kafka("${.ts}|${.ts_type}|${.value}"), &r),
        "|undefined|"
    );
    assert!(matches!(
        kafka("${.value.x}").render(&r, OnMissing::Empty),
        Err(RenderError::NotJson { .. })
    ));
}

#[test]
fn whole_record_json_has_the_documented_fields() {
    let r = record(Some(b"hello"), vec![("h", Some(&b"v"[..]))]);
    let out: serde_json::Value =
        serde_json::from_slice(&kafka("${.}").render(&r, OnMissing::Fail).expect("renders"))
            .expect("json");
    assert_eq!(
        out,
        serde_json::json!({
            "topic": "lock-command", "partition": 3, "offset": 42, "key": "lock-7", "value": "hello",
            "ts": 1_700_000_000_000_i64, "ts_type": "create", "headers": {"h": "v"}
        })
    );
}

#[test]
fn whole_record_json_base64_encodes_binary_values() {
    let r = KafkaRecord::new(
        "t",
        0,
        1,
        None,
        Some(&[0xff, 0x01]),
        KafkaTimestamp::LogAppendTime(5),
        vec![],
    );
    let out = r.to_json();
    assert_eq!(out["value"], "/wE=");
    assert_eq!(out["value_encoding"], "base64");
    assert_eq!(out["key"], serde_json::Value::Null);
    assert!(out.get("key_encoding").is_none());
    assert_eq!(out["ts_type"], "append");
}

#[test]
fn placeholders_are_listed_in_order() {
    let t = mqtt("${topic[1]}-${qos}");
    let list: Vec<String> = t.placeholders().map(|p| p.to_string()).collect();
    assert_eq!(list, ["${topic[1]}", "${qos}"]);
}

#[test]
fn display_of_placeholders_round_trips_through_the_parser() {
    for text in [
        "${payload.a[2].b}",
        "${topic[-1]}",
        "${user_properties.x-y}",
        "${timestamp}",
    ] {
        let t = mqtt(text);
        assert_eq!(
            t.placeholders().next().map(|p| p.to_string()).as_deref(),
            Some(text)
        );
    }
    for text in [
        "${.}",
        "${.value[0].a}",
        "${.key.k}",
        "${.headers.h}",
        "${.ts_type}",
    ] {
        let t = kafka(text);
        assert_eq!(
            t.placeholders().next().map(|p| p.to_string()).as_deref(),
            Some(text)
        );
    }
}

fn template_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        "[a-z/ ]{0,4}",
        Just("$".to_owned()),
        Just("${".to_owned()),
        Just("}".to_owned()),
        Just("$${".to_owned()),
        Just("${topic}".to_owned()),
        Just("${topic[1]}".to_owned()),
        Just("${topic[-2]}".to_owned()),
        Just("${payload}".to_owned()),
        Just("${payload.a.b}".to_owned()),
        Just("${payload.list[1]}".to_owned()),
        Just("${qos}".to_owned()),
        Just("${user_properties.p}".to_owned()),
        Just("${.value.a}".to_owned()),
        Just("${.}".to_owned()),
        Just("${.headers.h}".to_owned()),
        "\\PC{0,3}",
    ];
    prop::collection::vec(piece, 0..8).prop_map(|v| v.concat())
}

fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..16),
        Just(br#"{"a":{"b":1},"list":[1,"x"]}"#.to_vec()),
        Just(b"null".to_vec()),
    ]
}

proptest! {
    #[test]
    fn parse_then_render_never_panics(text in template_text(), topic in "[a-z/]{1,8}", body in payload()) {
        let props = vec![("p".to_owned(), "v".to_owned())];
        let m = MqttMessage::new(&topic, &body, 1, false, 0, &props);
        if let Ok(t) = Template::parse(&text, Scope::MqttMessage) {
            let _ = t.render(&m, OnMissing::Empty);
            let _ = t.render_string(&m, OnMissing::Fail);
        }
        let r = KafkaRecord::new(&topic, 0, 0, None, Some(&body), KafkaTimestamp::NotAvailable, vec![("h", Some(&body[..]))]);
        if let Ok(t) = Template::parse(&text, Scope::KafkaRecord) {
            let _ = t.render(&r, OnMissing::Empty);
            let _ = t.render_string(&r, OnMissing::Fail);
        }
    }

    #[test]
    fn parse_arbitrary_text_never_panics(text in "\\PC{0,60}") {
        let _ = Template::parse(&text, Scope::MqttMessage);
        let _ = Template::parse(&text, Scope::KafkaRecord);
    }

    #[test]
    fn text_without_dollar_renders_to_itself(text in "[^$]{0,40}") {
        let t = Template::parse(&text, Scope::MqttMessage).expect("no placeholders");
        prop_assert_eq!(t.as_literal(), Some(text.as_str()));
    }

    #[test]
    fn errors_point_at_a_dollar(text in template_text()) {
        if let Err(e) = Template::parse(&text, Scope::MqttMessage) {
            let at: String = text.chars().skip(e.column - 1).take(2).collect();
            prop_assert_eq!(at, "${");
        }
    }
}
