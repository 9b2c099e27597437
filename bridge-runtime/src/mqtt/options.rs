//! What a connection needs from the configuration, resolved once (secrets read, TLS built).

use std::sync::Arc;

use mkb_api::compiled::MqttEndpoint;
use mkb_api::config::SecretSource;
use mkb_api::connection::{MqttSettings, MqttVersion, DEFAULT_SESSION_EXPIRY_SECONDS};
use rustls::ClientConfig;

use crate::secrets;

/// How one connection behaves, beyond the shared settings.
#[derive(Debug, Clone)]
pub struct ConnectionOptions {
    pub client_id: String,
    /// Start a fresh session (the publisher) or keep one (the subscriber, unless configured).
    pub clean_session: bool,
    /// Unacknowledged QoS 1/2 publishes in flight, each way.
    pub inflight: u16,
}

/// Everything a connection attempt uses. Holds the password: never logged (no `Debug`).
pub struct Settings {
    pub host: String,
    pub port: u16,
    pub tls: Option<Arc<ClientConfig>>,
    pub v5: bool,
    pub client_id: String,
    pub clean_session: bool,
    pub keep_alive_seconds: u16,
    pub credentials: Option<(String, String)>,
    pub inflight: u16,
    /// MQTT 5, persistent sessions: how long the broker keeps the session.
    pub session_expiry: Option<u32>,
}

impl Settings {
    pub fn new(
        endpoint: &MqttEndpoint,
        settings: &MqttSettings<SecretSource>,
        options: &ConnectionOptions,
    ) -> Result<Self, String> {
        let credentials = settings
            .auth
            .as_ref()
            .map(|auth| {
                Ok::<_, String>((
                    auth.username.clone(),
                    secrets::read(&auth.password, "mqtt.auth.password")?,
                ))
            })
            .transpose()?;
        let tls = endpoint
            .tls
            .then(|| super::tls::client_config(settings.tls.as_ref()))
            .transpose()?;
        let v5 = settings.protocol_version == MqttVersion::V5;
        let session_expiry = (v5 && !options.clean_session).then(|| {
            settings
                .session_expiry_seconds
                .unwrap_or(DEFAULT_SESSION_EXPIRY_SECONDS)
        });
        Ok(Self {
            host: endpoint.host.clone(),
            port: endpoint.port,
            tls,
            v5,
            client_id: options.client_id.clone(),
            clean_session: options.clean_session,
            // Validated to 5..=65535.
            keep_alive_seconds: settings.keep_alive_seconds.min(u32::from(u16::MAX)) as u16,
            credentials,
            inflight: options.inflight.max(1),
            session_expiry,
        })
    }
}
