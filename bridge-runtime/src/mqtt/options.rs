//! rumqttc options from the configuration.

use std::time::Duration;

use mkb_api::compiled::MqttEndpoint;
use mkb_api::config::SecretSource;
use mkb_api::connection::{MqttSettings, DEFAULT_SESSION_EXPIRY_SECONDS};

use crate::secrets;

/// The largest packet MQTT can carry; the bridge accepts whatever the broker accepts.
const MAX_PACKET: u32 = 268_435_455;

/// How one connection behaves, beyond the shared settings.
#[derive(Debug, Clone)]
pub struct ConnectionOptions {
    pub client_id: String,
    /// Start a fresh session (the publisher) or keep one (the subscriber, unless configured).
    pub clean_session: bool,
    /// Acknowledge inbound publishes only when told to (the subscriber).
    pub manual_acks: bool,
    /// Unacknowledged QoS 1/2 publishes in flight, each way.
    pub inflight: u16,
    /// Capacity of the request channel: above every request that can be queued at once.
    pub request_capacity: usize,
}

fn credentials(settings: &MqttSettings<SecretSource>) -> Result<Option<(String, String)>, String> {
    settings
        .auth
        .as_ref()
        .map(|auth| {
            Ok((
                auth.username.clone(),
                secrets::read(&auth.password, "mqtt.auth.password")?,
            ))
        })
        .transpose()
}

/// TLS for `mqtts://` endpoints.
fn tls_transport(
    endpoint: &MqttEndpoint,
    settings: &MqttSettings<SecretSource>,
) -> Result<Option<rumqttc::Transport>, String> {
    if !endpoint.tls {
        return Ok(None);
    }
    let config = super::tls::client_config(settings.tls.as_ref())?;
    Ok(Some(rumqttc::Transport::Tls(
        rumqttc::TlsConfiguration::Rustls(config),
    )))
}

pub fn v4(
    endpoint: &MqttEndpoint,
    settings: &MqttSettings<SecretSource>,
    options: &ConnectionOptions,
) -> Result<rumqttc::MqttOptions, String> {
    let mut o = rumqttc::MqttOptions::new(
        options.client_id.clone(),
        endpoint.host.clone(),
        endpoint.port,
    );
    o.set_keep_alive(Duration::from_secs(u64::from(settings.keep_alive_seconds)))
        .set_clean_session(options.clean_session)
        .set_manual_acks(options.manual_acks)
        .set_inflight(options.inflight.max(1))
        .set_max_packet_size(MAX_PACKET as usize, MAX_PACKET as usize);
    if let Some((user, password)) = credentials(settings)? {
        o.set_credentials(user, password);
    }
    if let Some(transport) = tls_transport(endpoint, settings)? {
        o.set_transport(transport);
    }
    Ok(o)
}

pub fn v5(
    endpoint: &MqttEndpoint,
    settings: &MqttSettings<SecretSource>,
    options: &ConnectionOptions,
) -> Result<rumqttc::v5::MqttOptions, String> {
    let mut o = rumqttc::v5::MqttOptions::new(
        options.client_id.clone(),
        endpoint.host.clone(),
        endpoint.port,
    );
    o.set_keep_alive(Duration::from_secs(u64::from(settings.keep_alive_seconds)))
        .set_clean_start(options.clean_session)
        .set_manual_acks(options.manual_acks)
        .set_receive_maximum(Some(options.inflight.max(1)))
        .set_outgoing_inflight_upper_limit(options.inflight.max(1))
        .set_max_packet_size(Some(MAX_PACKET));
    let mut network = rumqttc::NetworkOptions::new();
    network.set_tcp_nodelay(true);
    network.set_connection_timeout(10);
    o.set_network_options(network);
    if !options.clean_session {
        o.set_session_expiry_interval(Some(
            settings
                .session_expiry_seconds
                .unwrap_or(DEFAULT_SESSION_EXPIRY_SECONDS),
        ));
    }
    if let Some((user, password)) = credentials(settings)? {
        o.set_credentials(user, password);
    }
    if let Some(transport) = tls_transport(endpoint, settings)? {
        o.set_transport(transport);
    }
    Ok(o)
}
