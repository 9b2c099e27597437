//! Retiring the MQTT session of a replica that no longer runs (`--retire-ordinal N`).
//!
//! Brokers keep routing shared-subscription messages to the persistent session of every
//! member, offline ones included (Mosquitto does), and what lands there waits until that
//! client id connects again. When a bridge scales down, the sessions of the removed ordinals
//! would keep collecting messages nobody reads. Retiring one: connect with its client id
//! (resuming the session), unsubscribe every route filter so nothing new is routed there,
//! take what the broker queued and deliver it to Kafka under the same at-least-once rules
//! (acknowledged only once Kafka has it), and once the broker has been quiet and nothing is in
//! flight, end the session (a clean-session connection). Safe to repeat: a second run finds
//! an empty session, or none, and ends it again.

use std::time::Duration;

use mkb_api::ValidConfig;
use tracing::info;

use crate::metrics::Direction;
use crate::mqtt::{self, Connection, ConnectionOptions, Event};
use crate::process::{client_id, ClientRole, Process, RunError};
use crate::up;

/// What a retirement did.
pub struct Retired {
    pub client_id: String,
    /// Messages taken from the session and delivered to Kafka (or its dead-letter topic).
    pub drained: u64,
}

/// Drains and ends the MQTT session of replica `ordinal`.
pub async fn retire(config: ValidConfig, ordinal: u32) -> Result<Retired, RunError> {
    let client_id = client_id(&config, ordinal, ClientRole::Subscriber);
    let process = Process::new(&config)?;
    // Only the subscriber's session is persistent; the publisher's is clean.
    if !config.mqtt_to_kafka.is_empty() {
        let ctx = process.start_context(&config, ordinal, true)?;
        let outcome = up::start(&ctx)?.await;
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(reason)) => return Err(RunError::Failed(reason)),
            Err(e) => return Err(RunError::Failed(format!("the drain panicked: {e}"))),
        }
        if let Err(reason) = process.health.liveness() {
            return Err(RunError::Failed(reason));
        }
        if process.stop.is_cancelled() {
            return Err(RunError::Failed(format!(
                "interrupted before the session {client_id} was drained; it is kept, run the retirement again"
            )));
        }
    }
    let drained = config
        .mqtt_to_kafka
        .iter()
        .map(|r| {
            process
                .metrics
                .route(&r.name, Direction::MqttToKafka)
                .received
                .get()
        })
        .sum();
    end_session(&config, &client_id)
        .await
        .map_err(RunError::Failed)?;
    info!(%client_id, drained, "session retired");
    Ok(Retired { client_id, drained })
}

/// Connects with a clean session and disconnects: the broker discards the session.
async fn end_session(config: &ValidConfig, client_id: &str) -> Result<(), String> {
    let options = ConnectionOptions {
        client_id: client_id.to_owned(),
        clean_session: true,
        inflight: 1,
    };
    let settings = mqtt::Settings::new(&config.mqtt_endpoint, &config.config.mqtt, &options)?;
    let ended = async {
        let (mut conn, _) = Connection::open(&settings).await?;
        conn.disconnect();
        while !matches!(conn.next(false).await?, Event::DisconnectSent) {}
        conn.read_until_closed(mqtt::CLOSE_LIMIT).await;
        Ok::<_, mqtt::ConnectionError>(())
    };
    match tokio::time::timeout(Duration::from_secs(30), ended).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!(
            "cannot connect as {client_id} to end its session: {e}"
        )),
        Err(_) => Err(format!("ending the session {client_id} took over 30s")),
    }
}
