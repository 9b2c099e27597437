//! What a Kafka client tells its operator about its connection: one log line when it comes
//! up, one warning per cause when it cannot get in (a broker that refuses the connection, a
//! certificate refused either way, refused credentials, a mechanism the listener does not
//! offer, a name that does not resolve), naming the bootstrap servers and librdkafka's reason;
//! the repeats at debug level. The cause is also the client's readiness reason.
//!
//! A cause is the broker endpoint and librdkafka's reason, not its error code: librdkafka
//! reports one refused certificate first as `SSL` and on later attempts as
//! `BrokerTransportFailure`, with the same reason. What changes between attempts (the broker's
//! node id once known, the time spent in the failing state, the count of suppressed repeats)
//! is not part of it.

use std::sync::Mutex;
use std::time::Instant;

use prometheus_client::metrics::gauge::Gauge;
use rdkafka::error::RDKafkaErrorCode;
use tracing::{debug, info, warn};

use crate::health::Readiness;

/// Errors that keep a client out however often it retries, until somebody fixes the
/// configuration or the certificates.
fn keeps_out(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::Authentication
            | RDKafkaErrorCode::SaslAuthenticationFailed
            | RDKafkaErrorCode::UnsupportedSASLMechanism
            | RDKafkaErrorCode::SSL
            | RDKafkaErrorCode::Resolve
    )
}

#[derive(Default)]
struct State {
    up: bool,
    ever_up: bool,
    down_since: Option<Instant>,
    /// The causes warned about since the client was last up (see [`cause_key`]).
    warned: Vec<String>,
    cause: Option<String>,
}

pub struct ConnectionStatus {
    /// `producer`, `dead-letter producer`, `consumer of route <name>`.
    client: String,
    bootstrap: String,
    up: Gauge,
    ready: Readiness,
    state: Mutex<State>,
}

impl ConnectionStatus {
    pub fn new(client: &str, bootstrap: &str, up: Gauge, ready: Readiness) -> Self {
        Self {
            client: client.to_owned(),
            bootstrap: bootstrap.to_owned(),
            up,
            ready,
            state: Mutex::new(State::default()),
        }
    }

    /// Whether any broker is up, from librdkafka's statistics (every second).
    pub fn observed(&self, up: bool) {
        self.up.set(i64::from(up));
        let Ok(mut s) = self.state.lock() else {
            return;
        };
        let (client, bootstrap) = (&self.client, &self.bootstrap);
        if up {
            if !s.up {
                match s.down_since.take() {
                    Some(since) if s.ever_up => {
                        info!(%bootstrap, after = ?since.elapsed(), "Kafka {client} reconnected")
                    }
                    _ => info!(%bootstrap, "Kafka {client} connected"),
                }
            }
            *s = State {
                up: true,
                ever_up: true,
                ..State::default()
            };
            self.ready.set(true);
            return;
        }
        s.up = false;
        s.down_since.get_or_insert_with(Instant::now);
        self.ready.not_ready(self.not_ready_reason(&s));
    }

    fn not_ready_reason(&self, s: &State) -> String {
        let bootstrap = &self.bootstrap;
        match &s.cause {
            Some(cause) => format!("cannot connect to Kafka at {bootstrap}: {cause}"),
            None => format!("no Kafka broker of {bootstrap} is reachable"),
        }
    }

    /// A client error librdkafka reports (not fatal: those end the process elsewhere).
    pub fn error(&self, code: RDKafkaErrorCode, reason: &str) {
        let (client, bootstrap) = (&self.client, &self.bootstrap);
        let Ok(mut s) = self.state.lock() else {
            return;
        };
        // A transport failure while no broker is up is why it is down (connection refused,
        // a TLS alert from the broker); one while up is a connection closing, and reconnects.
        let is_cause =
            keeps_out(code) || (code == RDKafkaErrorCode::BrokerTransportFailure && !s.up);
        if !is_cause {
            debug!(error = %code, %reason, "librdkafka ({client})");
            return;
        }
        s.cause = Some(reason.to_owned());
        let key = cause_key(reason);
        if s.warned.contains(&key) {
            debug!(error = %code, %reason, "Kafka {client}: connecting to {bootstrap} failed again");
        } else {
            s.warned.push(key);
            warn!(error = %code, %reason, "Kafka {client} cannot connect to {bootstrap}; retrying with backoff (100 ms doubling to 10 s)");
        }
        if !s.up {
            self.ready.not_ready(self.not_ready_reason(&s));
        }
    }
}

/// What identifies a cause in librdkafka's reason: the broker's address without its node id
/// (`ssl://127.0.0.1:9093/bootstrap:` and `ssl://127.0.0.1:9093/1:` are one broker), and the
/// reason without the trailing `(after 5ms in state SSL_HANDSHAKE, 1 identical error(s)
/// suppressed)`. A TLS failure is its OpenSSL error code: librdkafka words one refused
/// certificate in several ways (with or without "SSL handshake failed:" and its hint about
/// `ssl.ca.location`), depending on where in the handshake it noticed.
fn cause_key(reason: &str) -> String {
    let reason = reason.trim();
    let (broker, rest) = match reason.split_once(": ") {
        Some((name, rest)) if name.contains("://") && !name.contains(' ') => {
            let endpoint = name.rsplit_once('/').map_or(name, |(endpoint, _)| endpoint);
            (endpoint, rest)
        }
        _ => ("", reason),
    };
    if let Some(code) = openssl_error(rest) {
        return format!("{broker} {code}");
    }
    let rest = match rest.rfind(" (after ") {
        Some(at) if rest.ends_with(')') => &rest[..at],
        _ => rest,
    };
    format!("{broker} {rest}")
}

/// The `error:0A000086` of an OpenSSL error string, if `reason` holds one.
fn openssl_error(reason: &str) -> Option<&str> {
    reason.match_indices("error:").find_map(|(at, _)| {
        let code = reason.get(at..at + 14)?;
        code[6..]
            .bytes()
            .all(|b| b.is_ascii_hexdigit())
            .then_some(code)
    })
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::health::Health;

    fn connection() -> (ConnectionStatus, Health) {
        let health = Health::default();
        let ready = health.component("kafka producer connected");
        let c = ConnectionStatus::new("producer", "k:9093", Gauge::default(), ready);
        (c, health)
    }

    #[test]
    fn a_refused_login_is_the_readiness_reason_until_a_broker_is_up() {
        let (c, health) = connection();
        c.error(
            RDKafkaErrorCode::Authentication,
            "SASL authentication error: Authentication failed",
        );
        c.observed(false);
        let reasons = health.readiness().expect_err("not ready");
        assert!(
            reasons.iter().any(|r| r.contains(
                "cannot connect to Kafka at k:9093: SASL authentication error: Authentication failed"
            )),
            "{reasons:?}"
        );
        c.observed(true);
        assert_eq!(health.readiness(), Ok(()));
        c.observed(false);
        let reasons = health.readiness().expect_err("down again");
        assert!(
            reasons
                .iter()
                .any(|r| r.contains("no Kafka broker of k:9093 is reachable")),
            "the old cause is forgotten once connected: {reasons:?}"
        );
    }

    #[test]
    fn a_connection_closing_while_up_is_not_a_cause() {
        let (c, health) = connection();
        c.observed(true);
        c.error(
            RDKafkaErrorCode::BrokerTransportFailure,
            "Disconnected (after 600000ms in state UP)",
        );
        assert_eq!(health.readiness(), Ok(()));
        c.observed(false);
        c.error(
            RDKafkaErrorCode::BrokerTransportFailure,
            "Connect to ipv4#127.0.0.1:9093 failed: Connection refused",
        );
        let reasons = health.readiness().expect_err("down");
        assert!(
            reasons.iter().any(|r| r.contains("Connection refused")),
            "{reasons:?}"
        );
    }

    /// A log with this client's warnings and debug lines, for counting them.
    fn captured() -> (tracing::subscriber::DefaultGuard, Arc<Mutex<Vec<u8>>>) {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || Capture(writer.clone()))
            .finish();
        (tracing::subscriber::set_default(subscriber), buffer)
    }

    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut b) = self.0.lock() {
                b.extend_from_slice(bytes);
            }
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn warnings(buffer: &Mutex<Vec<u8>>) -> usize {
        let text = String::from_utf8_lossy(&buffer.lock().expect("buffer")).into_owned();
        text.lines().filter(|l| l.contains("WARN")).count()
    }

    const UNTRUSTED: &str = "ssl://127.0.0.1:29094/bootstrap: SSL handshake failed: error:0A000086:SSL routines::certificate verify failed: broker certificate could not be verified, verify that ssl.ca.location is correctly configured or root CA certificates are installed (install ca-certificates package) (after 5ms in state SSL_HANDSHAKE)";

    #[test]
    fn one_refused_certificate_is_one_warning_whatever_the_error_code() {
        let (_guard, log) = captured();
        let (c, _health) = connection();
        c.error(RDKafkaErrorCode::SSL, UNTRUSTED);
        c.observed(false);
        // librdkafka's later attempts: another code, the node id, the time and a repeat count.
        let again = UNTRUSTED.replace("/bootstrap:", "/1:").replace(
            "(after 5ms in state SSL_HANDSHAKE)",
            "(after 9ms in state SSL_HANDSHAKE, 1 identical error(s) suppressed)",
        );
        c.error(RDKafkaErrorCode::BrokerTransportFailure, &again);
        c.error(RDKafkaErrorCode::SSL, UNTRUSTED);
        // And in its short wording (seen in `make test`, where it made a second warning).
        c.error(
            RDKafkaErrorCode::BrokerTransportFailure,
            "ssl://127.0.0.1:29094/bootstrap: ../ssl/statem/statem_clnt.c:1889:tls_post_process_server_certificate error:0A000086:SSL routines::certificate verify failed (after 12ms in state SSL_HANDSHAKE)",
        );
        assert_eq!(warnings(&log), 1);
        // Another cause is warned about.
        c.error(
            RDKafkaErrorCode::BrokerTransportFailure,
            "ssl://127.0.0.1:29094/bootstrap: Connect to ipv4#127.0.0.1:29094 failed: Connection refused (after 0ms in state CONNECT)",
        );
        assert_eq!(warnings(&log), 2);
    }

    #[test]
    fn the_cause_key_keeps_the_endpoint_and_the_reason() {
        assert_eq!(
            cause_key("sasl_ssl://k:9095/3: SASL authentication error: Authentication failed (after 12ms in state AUTH_REQ)"),
            "sasl_ssl://k:9095 SASL authentication error: Authentication failed"
        );
        assert_ne!(
            cause_key("ssl://a:1/bootstrap: Connection refused"),
            cause_key("ssl://b:1/bootstrap: Connection refused")
        );
        assert_eq!(
            cause_key("ssl://k:9093/1: SSL handshake failed: error:0A000086:SSL routines::certificate verify failed: hint (after 5ms in state SSL_HANDSHAKE)"),
            "ssl://k:9093 error:0A000086"
        );
        assert_eq!(
            cause_key("Failed to resolve 'nowhere:9092': Name or service not known"),
            " Failed to resolve 'nowhere:9092': Name or service not known"
        );
    }

    #[test]
    fn brokers_going_down_is_not_a_cause() {
        let (c, health) = connection();
        c.error(RDKafkaErrorCode::AllBrokersDown, "1/1 brokers are down");
        c.observed(false);
        let reasons = health.readiness().expect_err("not ready");
        assert!(
            reasons
                .iter()
                .any(|r| r.contains("no Kafka broker of k:9093 is reachable")),
            "{reasons:?}"
        );
    }
}
