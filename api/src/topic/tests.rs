//! Topic filter rules, case by case from MQTT 5.0 section 4.7 (and 4.8.2 for shared
//! subscriptions), then property tests against a naive reference matcher.

use super::*;
use proptest::prelude::*;

fn filter(text: &str) -> TopicFilter {
    TopicFilter::parse(text).unwrap_or_else(|e| panic!("{text:?} should parse: {e}"))
}

fn assert_matches(f: &str, topics: &[&str]) {
    let parsed = filter(f);
    for t in topics {
        assert!(parsed.matches(t), "{f:?} should match {t:?}");
    }
}

fn assert_no_match(f: &str, topics: &[&str]) {
    let parsed = filter(f);
    for t in topics {
        assert!(!parsed.matches(t), "{f:?} should not match {t:?}");
    }
}

// 4.7.1.2 Multi-level wildcard

#[test]
fn multi_level_wildcard_matches_parent_and_any_number_of_children() {
    assert_matches(
        "sport/tennis/player1/#",
        &[
            "sport/tennis/player1",
            "sport/tennis/player1/ranking",
            "sport/tennis/player1/score/wimbledon",
        ],
    );
    assert_no_match(
        "sport/tennis/player1/#",
        &["sport/tennis/player2", "sport/tennis"],
    );
}

#[test]
fn multi_level_wildcard_matches_the_parent_level_itself() {
    assert_matches("sport/#", &["sport", "sport/", "sport/a/b"]);
    assert_no_match("sport/#", &["sports", "spor"]);
}

#[test]
fn lone_multi_level_wildcard_matches_every_topic() {
    assert_matches("#", &["a", "/", "a/b/c", "/leading", "trailing/"]);
}

#[test]
fn multi_level_wildcard_must_be_last_and_alone_in_its_level() {
    assert!(TopicFilter::parse("sport/tennis/#").is_ok());
    assert_eq!(
        TopicFilter::parse("sport/tennis#"),
        Err(TopicError::MisplacedMultiLevelWildcard(12))
    );
    assert_eq!(
        TopicFilter::parse("sport/tennis/#/ranking"),
        Err(TopicError::MisplacedMultiLevelWildcard(13))
    );
    assert_eq!(
        TopicFilter::parse("#/"),
        Err(TopicError::MisplacedMultiLevelWildcard(0))
    );
    assert_eq!(
        TopicFilter::parse("a/#b"),
        Err(TopicError::MisplacedMultiLevelWildcard(2))
    );
}

// 4.7.1.3 Single-level wildcard

#[test]
fn single_level_wildcard_matches_exactly_one_level() {
    assert_matches(
        "sport/tennis/+",
        &[
            "sport/tennis/player1",
            "sport/tennis/player2",
            "sport/tennis/",
        ],
    );
    assert_no_match(
        "sport/tennis/+",
        &["sport/tennis/player1/ranking", "sport/tennis"],
    );
}

#[test]
fn single_level_wildcard_does_not_match_the_parent() {
    assert_no_match("sport/+", &["sport"]);
    assert_matches("sport/+", &["sport/"]);
}

#[test]
fn single_level_wildcard_must_occupy_a_whole_level() {
    for ok in ["+", "+/tennis/#", "sport/+/player1", "+/+", "/+", "+/"] {
        assert!(TopicFilter::parse(ok).is_ok(), "{ok:?} should be valid");
    }
    assert_eq!(
        TopicFilter::parse("sport+"),
        Err(TopicError::MisplacedSingleLevelWildcard(5))
    );
    assert_eq!(
        TopicFilter::parse("a/+b/c"),
        Err(TopicError::MisplacedSingleLevelWildcard(2))
    );
    assert_eq!(
        TopicFilter::parse("++"),
        Err(TopicError::MisplacedSingleLevelWildcard(0))
    );
}

#[test]
fn leading_slash_creates_an_empty_first_level() {
    assert_matches("+/+", &["/finance"]);
    assert_matches("/+", &["/finance"]);
    assert_no_match("+", &["/finance"]);
}

#[test]
fn empty_levels_are_levels() {
    assert_matches("a//b", &["a//b"]);
    assert_no_match("a//b", &["a/b"]);
    assert_matches("a/+/b", &["a//b"]);
    assert_matches("+/+", &["/"]);
    assert_no_match("+", &["/"]);
}

// 4.7.2 Topics beginning with $

#[test]
fn wildcard_first_level_does_not_match_dollar_topics() {
    assert_no_match("#", &["$SYS/broker/clients", "$SYS"]);
    assert_no_match("+/monitor/Clients", &["$SYS/monitor/Clients"]);
    assert_no_match("+", &["$SYS"]);
}

#[test]
fn explicit_dollar_filters_match_dollar_topics() {
    assert_matches("$SYS/#", &["$SYS/monitor/Clients", "$SYS"]);
    assert_matches("$SYS/monitor/+", &["$SYS/monitor/Clients"]);
    // A '$' later in the topic is an ordinary character.
    assert_matches("#", &["a/$b"]);
    assert_matches("+/x", &["a$/x"]);
}

// 4.7.3 Topic semantic and usage

#[test]
fn topics_and_filters_must_not_be_empty() {
    assert_eq!(TopicFilter::parse(""), Err(TopicError::Empty));
    assert_eq!(validate_topic_name(""), Err(TopicError::Empty));
}

#[test]
fn matching_is_case_sensitive() {
    assert_no_match("ACCOUNTS", &["Accounts"]);
    assert_matches("Accounts", &["Accounts"]);
}

#[test]
fn spaces_are_allowed() {
    assert_matches("Accounts payable", &["Accounts payable"]);
    assert!(validate_topic_name("Accounts payable").is_ok());
}

#[test]
fn leading_or_trailing_slash_makes_a_distinct_topic() {
    assert_no_match("/finance", &["finance"]);
    assert_no_match("finance", &["/finance", "finance/"]);
}

#[test]
fn a_lone_slash_is_a_valid_topic_name() {
    assert!(validate_topic_name("/").is_ok());
    assert_matches("/", &["/"]);
}

#[test]
fn null_character_is_rejected() {
    assert_eq!(TopicFilter::parse("a\0b"), Err(TopicError::NullCharacter));
    assert_eq!(validate_topic_name("a\0"), Err(TopicError::NullCharacter));
}

#[test]
fn length_limit_is_65535_bytes() {
    let max = "a".repeat(MAX_TOPIC_BYTES);
    assert!(validate_topic_name(&max).is_ok());
    assert!(TopicFilter::parse(&max).is_ok());
    let over = "a".repeat(MAX_TOPIC_BYTES + 1);
    assert_eq!(validate_topic_name(&over), Err(TopicError::TooLong(65_536)));
    // The limit is in bytes of UTF-8, not characters: 'é' is two bytes.
    let multibyte = "é".repeat(MAX_TOPIC_BYTES / 2 + 1);
    assert_eq!(
        TopicFilter::parse(&multibyte),
        Err(TopicError::TooLong(65_536))
    );
}

#[test]
fn utf8_levels_match_byte_for_byte() {
    assert_matches("capteurs/+/température", &["capteurs/salon/température"]);
    assert_no_match("capteurs/+/température", &["capteurs/salon/temperature"]);
}

#[test]
fn topic_names_must_not_contain_wildcards() {
    assert_eq!(
        validate_topic_name("a/+/b"),
        Err(TopicError::WildcardInTopicName(2))
    );
    assert_eq!(
        validate_topic_name("a/#"),
        Err(TopicError::WildcardInTopicName(2))
    );
    assert_eq!(
        validate_topic_name("a+b"),
        Err(TopicError::WildcardInTopicName(1))
    );
}

// 4.8.2 Shared subscriptions

#[test]
fn shared_subscription_splits_group_and_filter() {
    let f = filter("$share/consumer1/sport/tennis/+");
    assert_eq!(f.share_group(), Some("consumer1"));
    assert_eq!(f.filter(), "sport/tennis/+");
    assert!(f.matches("sport/tennis/player1"));
    assert_eq!(f.to_string(), "$share/consumer1/sport/tennis/+");
}

#[test]
fn shared_subscription_filter_may_start_with_a_slash() {
    let f = filter("$share/consumer1//finance");
    assert_eq!(f.filter(), "/finance");
    assert!(f.matches("/finance"));
}

#[test]
fn shared_subscription_needs_group_and_filter() {
    assert_eq!(
        TopicFilter::parse("$share/consumer1"),
        Err(TopicError::IncompleteSharedSubscription)
    );
    assert_eq!(
        TopicFilter::parse("$share/consumer1/"),
        Err(TopicError::IncompleteSharedSubscription)
    );
    assert_eq!(
        TopicFilter::parse("$share"),
        Err(TopicError::IncompleteSharedSubscription)
    );
    assert_eq!(
        TopicFilter::parse("$share//a"),
        Err(TopicError::InvalidShareGroup(String::new()))
    );
    assert_eq!(
        TopicFilter::parse("$share/a+b/x"),
        Err(TopicError::InvalidShareGroup("a+b".into()))
    );
    assert_eq!(
        TopicFilter::parse("$share/#/x"),
        Err(TopicError::InvalidShareGroup("#".into()))
    );
}

#[test]
fn shared_subscription_inner_filter_follows_the_wildcard_rules() {
    // The error position points into the whole text the user wrote.
    assert_eq!(
        TopicFilter::parse("$share/g/a/#/b"),
        Err(TopicError::MisplacedMultiLevelWildcard(11))
    );
}

#[test]
fn shared_builds_a_share_of_a_plain_filter() {
    let f = filter("devices/+/state")
        .shared("locks")
        .expect("valid group");
    assert_eq!(f.to_string(), "$share/locks/devices/+/state");
    assert!(filter("a").shared("bad/group").is_err());
}

#[test]
fn wildcard_detection() {
    assert!(filter("a/+/b").has_wildcards());
    assert!(filter("a/#").has_wildcards());
    assert!(!filter("a/b").has_wildcards());
}

// Property tests

/// The reference: recursive matching over split levels, written independently of the parser.
fn naive_matches(filter: &str, topic: &str) -> bool {
    fn go(f: &[&str], t: &[&str]) -> bool {
        match (f.first(), t.first()) {
            (Some(&"#"), _) => true,
            (Some(&"+"), Some(_)) => go(&f[1..], &t[1..]),
            (Some(a), Some(b)) => a == b && go(&f[1..], &t[1..]),
            (None, None) => true,
            _ => false,
        }
    }
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let f: Vec<&str> = filter.split('/').collect();
    let t: Vec<&str> = topic.split('/').collect();
    go(&f, &t)
}

fn level() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("a".to_owned()),
        Just("b".to_owned()),
        Just("$s".to_owned()),
        "[a-c]{1,3}",
    ]
}

fn topic_name() -> impl Strategy<Value = String> {
    prop::collection::vec(level(), 1..5)
        .prop_map(|levels| levels.join("/"))
        .prop_filter("a topic is not empty", |t| !t.is_empty())
}

fn valid_filter() -> impl Strategy<Value = String> {
    let filter_level = prop_oneof![3 => level(), 1 => Just("+".to_owned())];
    (prop::collection::vec(filter_level, 1..5), any::<bool>())
        .prop_map(|(mut levels, multi)| {
            if multi {
                levels.push("#".to_owned());
            }
            levels.join("/")
        })
        .prop_filter("a filter is not empty", |f| !f.is_empty())
}

proptest! {
    #[test]
    fn matcher_agrees_with_naive_reference(f in valid_filter(), t in topic_name()) {
        let parsed = TopicFilter::parse(&f).expect("generated filters are valid");
        prop_assert_eq!(parsed.matches(&t), naive_matches(&f, &t));
    }

    #[test]
    fn shared_filter_matches_like_its_inner_filter(f in valid_filter(), t in topic_name()) {
        let plain = TopicFilter::parse(&f).expect("valid");
        let shared = TopicFilter::parse(&format!("$share/g/{f}")).expect("valid");
        prop_assert_eq!(plain.matches(&t), shared.matches(&t));
    }

    #[test]
    fn parse_never_panics(s in "\\PC{0,40}") {
        let _ = TopicFilter::parse(&s);
        let _ = validate_topic_name(&s);
    }

    #[test]
    fn display_round_trips(f in valid_filter()) {
        let parsed = TopicFilter::parse(&f).expect("valid");
        prop_assert_eq!(parsed.to_string(), f);
    }
}

#[test]
fn overlapping_filters() {
    let overlap = |a: &str, b: &str| filter(a).overlaps(&filter(b));
    assert!(overlap("devices/+/state", "devices/#"));
    assert!(overlap("devices/+/state", "+/lock-1/+"));
    assert!(overlap("a", "a/#"));
    assert!(overlap("#", "x/y"));
    assert!(overlap("a/b", "a/b"));
    assert!(!overlap("devices/+/state", "devices/+/command"));
    assert!(!overlap("a/+", "a"));
    assert!(!overlap("a/b/c", "a/b"));
    assert!(!overlap("#", "$SYS/x"));
    assert!(!overlap("+/x", "$SYS/x"));
    assert!(overlap("$SYS/#", "$SYS/+"));
    // Their only common topic would be "", which is not a topic name.
    assert!(!overlap("/#", "+"));
    assert!(overlap("/#", "/+"));
    assert!(overlap("+/#", "+"));
}

/// Filters over the same small alphabet as [`all_topics`], so brute force can find witnesses.
fn small_filter() -> impl Strategy<Value = String> {
    let level = prop_oneof![Just("a"), Just("b"), Just(""), Just("$s"), Just("+")];
    (prop::collection::vec(level, 1..5), any::<bool>())
        .prop_map(|(levels, multi)| {
            let mut levels: Vec<&str> = levels;
            if multi {
                levels.push("#");
            }
            levels.join("/")
        })
        .prop_filter("not empty", |f| !f.is_empty())
}

fn all_topics(depth: usize) -> Vec<String> {
    let alphabet = ["a", "b", "", "$s"];
    let mut out: Vec<Vec<&str>> = alphabet.iter().map(|l| vec![*l]).collect();
    let mut frontier = out.clone();
    for _ in 1..depth {
        frontier = frontier
            .iter()
            .flat_map(|t| alphabet.iter().map(move |l| [t.clone(), vec![*l]].concat()))
            .collect();
        out.extend(frontier.clone());
    }
    out.into_iter()
        .map(|l| l.join("/"))
        .filter(|t| !t.is_empty())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn overlap_agrees_with_brute_force(a in small_filter(), b in small_filter()) {
        let (fa, fb) = (filter(&a), filter(&b));
        // Filters of up to 5 levels plus '#': topics of up to 6 levels decide the question.
        let witness = all_topics(6).into_iter().find(|t| fa.matches(t) && fb.matches(t));
        prop_assert_eq!(fa.overlaps(&fb), witness.is_some(), "witness: {:?}", witness);
    }
}
