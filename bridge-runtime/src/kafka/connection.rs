//! What a Kafka client tells its operator about its connection: one log line when it comes
//! up, one warning per kind of cause when it cannot get in (a broker that refuses the
//! connection, a certificate refused either way, refused credentials, a mechanism the listener
//! does not offer, a name that does not resolve), naming the bootstrap servers and
//! librdkafka's reason; the repeats at debug level. The cause is also the client's readiness
//! reason.

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
    /// The causes warned about since the client was last up.
    warned: Vec<RDKafkaErrorCode>,
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
        if s.warned.contains(&code) {
            debug!(error = %code, %reason, "Kafka {client}: connecting to {bootstrap} failed again");
        } else {
            s.warned.push(code);
            warn!(error = %code, %reason, "Kafka {client} cannot connect to {bootstrap}; retrying with backoff (100 ms doubling to 10 s)");
        }
        if !s.up {
            self.ready.not_ready(self.not_ready_reason(&s));
        }
    }
}

#[cfg(test)]
mod tests {
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
