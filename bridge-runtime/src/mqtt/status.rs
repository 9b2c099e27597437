//! What a connection tells its operator: one log line when it comes up, one when it cannot
//! connect or is lost (naming the broker and the cause; the repeats at debug level), and the
//! cause as its readiness reason.

use std::time::Instant;

use mkb_api::compiled::MqttEndpoint;
use tracing::{debug, info, warn};

use crate::health::Readiness;

pub struct ConnectionStatus {
    /// `subscriber` or `publisher`.
    role: &'static str,
    client_id: String,
    endpoint: String,
    ready: Readiness,
    ever_connected: bool,
    down_since: Option<Instant>,
}

impl ConnectionStatus {
    pub fn new(
        role: &'static str,
        client_id: &str,
        endpoint: &MqttEndpoint,
        ready: Readiness,
    ) -> Self {
        let scheme = if endpoint.tls { "mqtts" } else { "mqtt" };
        Self {
            role,
            client_id: client_id.to_owned(),
            endpoint: format!("{scheme}://{}:{}", endpoint.host, endpoint.port),
            ready,
            ever_connected: false,
            down_since: None,
        }
    }

    /// The connection is up (readiness is left to the caller: a subscriber also needs its
    /// subscriptions granted).
    pub fn connected(&mut self, session_present: bool) {
        let (role, client_id, endpoint) = (self.role, &self.client_id, &self.endpoint);
        match self.down_since.take() {
            Some(since) if self.ever_connected => {
                info!(%client_id, %endpoint, after = ?since.elapsed(), "MQTT {role} reconnected")
            }
            _ => info!(%client_id, %endpoint, session_present, "MQTT {role} connected"),
        }
        self.ever_connected = true;
    }

    /// The connection failed or a connection attempt did; the next poll retries.
    pub fn failed(&mut self, error: &str) {
        let (role, client_id, endpoint) = (self.role, &self.client_id, &self.endpoint);
        let what = if self.ever_connected {
            "lost the connection to"
        } else {
            "cannot connect to"
        };
        self.ready.not_ready(format!("{what} {endpoint}: {error}"));
        if self.down_since.is_none() {
            warn!(%client_id, %error, "MQTT {role} {what} {endpoint}; retrying with backoff (100 ms doubling to 10 s)");
            self.down_since = Some(Instant::now());
        } else {
            debug!(%client_id, %error, "MQTT {role}: connecting to {endpoint} failed again");
        }
    }
}
