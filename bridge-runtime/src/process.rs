//! What every mode of the process (running, retiring a session) starts from: metrics, health,
//! the stop token that SIGTERM/SIGINT cancel, the failure handle, the dead-letter writer, and
//! the MQTT and Kafka client ids of a replica. Below both directions, which take a
//! [`StartContext`].

use std::sync::Arc;

use mkb_api::ValidConfig;
use rdkafka::producer::FutureProducer;
use tokio_util::sync::CancellationToken;

use crate::health::{Failure, Health};
use crate::kafka::{self, BridgeContext, DeadLetters};
use crate::metrics::Metrics;
use crate::shutdown;

/// Which of a replica's clients an id names.
#[derive(Debug, Clone, Copy)]
pub enum ClientRole<'a> {
    /// The MQTT subscriber (its persistent session carries this id) and the Kafka producer of
    /// the MQTT → Kafka direction.
    Subscriber,
    /// The MQTT publisher of the Kafka → MQTT direction.
    Publisher,
    /// The Kafka consumer of the Kafka → MQTT route of this name.
    Consumer(&'a str),
    /// The dead-letter producer.
    DeadLetters,
}

/// The id of one of replica `ordinal`'s clients: the prefix, the ordinal, and what it is.
pub fn client_id(config: &ValidConfig, ordinal: u32, role: ClientRole<'_>) -> String {
    let prefix = &config.client_id_prefix;
    match role {
        ClientRole::Subscriber => format!("{prefix}-{ordinal}"),
        ClientRole::Publisher => format!("{prefix}-{ordinal}-pub"),
        ClientRole::Consumer(route) => format!("{prefix}-{ordinal}-{route}"),
        ClientRole::DeadLetters => format!("{prefix}-{ordinal}-dead-letters"),
    }
}

/// What both directions start from.
pub struct StartContext<'a> {
    pub config: &'a ValidConfig,
    pub ordinal: u32,
    pub metrics: &'a Arc<Metrics>,
    pub health: &'a Health,
    pub dead_letters: Option<Arc<DeadLetters>>,
    /// Cancelled on SIGTERM/SIGINT (or a failure): stop taking messages and drain.
    pub stop: CancellationToken,
    pub failure: Failure,
    /// Retire the MQTT session instead of running (see `crate::retire`).
    pub retire: bool,
}

impl StartContext<'_> {
    pub fn client_id(&self, role: ClientRole<'_>) -> String {
        client_id(self.config, self.ordinal, role)
    }
}

/// What every mode of the process (running, retiring a session) shares: metrics, health, the
/// stop token that SIGTERM/SIGINT cancel, and the failure handle that cancels it too.
pub struct Process {
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
    pub stop: CancellationToken,
    pub failure: Failure,
}

impl Process {
    /// Sets up metrics and health and installs the signal handlers.
    pub fn new(config: &ValidConfig) -> Result<Self, String> {
        let metrics = Metrics::new(&config.config.bridge_name);
        let health = Arc::new(Health::default());
        let stop = CancellationToken::new();
        shutdown::on_signal(stop.clone())
            .map_err(|e| format!("cannot install signal handlers: {e}"))?;
        let failure = Failure::new(health.clone(), stop.clone());
        Ok(Self {
            metrics,
            health,
            stop,
            failure,
        })
    }

    /// What the directions of replica `ordinal` start from, with the dead-letter writer (and
    /// its topic check) when the bridge has a dead-letter topic.
    pub fn start_context<'a>(
        &'a self,
        config: &'a ValidConfig,
        ordinal: u32,
        retire: bool,
    ) -> Result<StartContext<'a>, String> {
        let client_id = client_id(config, ordinal, ClientRole::DeadLetters);
        Ok(StartContext {
            config,
            ordinal,
            metrics: &self.metrics,
            health: &self.health,
            dead_letters: self.dead_letters(config, &client_id)?,
            stop: self.stop.clone(),
            failure: self.failure.clone(),
            retire,
        })
    }

    fn dead_letters(
        &self,
        config: &ValidConfig,
        client_id: &str,
    ) -> Result<Option<Arc<DeadLetters>>, String> {
        let Some(topic) = &config.config.kafka.dead_letter_topic else {
            return Ok(None);
        };
        let writer = Arc::new(dead_letter_writer(
            config,
            topic,
            client_id,
            &self.metrics,
            &self.health,
            &self.failure,
        )?);
        tokio::spawn(writer.clone().watch(self.stop.clone()));
        Ok(Some(writer))
    }
}

/// Why the bridge stopped other than by a signal.
#[derive(Debug)]
pub enum RunError {
    /// It could not start (a setting that cannot work here: a port, a client).
    Start(String),
    /// A part of it failed while running.
    Failed(String),
}

impl From<String> for RunError {
    fn from(message: String) -> Self {
        RunError::Start(message)
    }
}

fn dead_letter_writer(
    config: &ValidConfig,
    topic: &str,
    client_id: &str,
    metrics: &Metrics,
    health: &Health,
    failure: &Failure,
) -> Result<DeadLetters, String> {
    let kafka_settings = &config.config.kafka;
    let mut c = kafka::client_config(kafka_settings, client_id)?;
    c.set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        // As large as Kafka allows: the dead-letter topic's max.message.bytes decides.
        .set("message.max.bytes", "1000000000")
        .set(
            "message.timeout.ms",
            kafka::DEAD_LETTER_WRITE_TIMEOUT.as_millis().to_string(),
        )
        // A dead-letter topic is created on purpose (retention, size); see dead_letter.rs.
        .set("allow.auto.create.topics", "false");
    let context = BridgeContext::new(
        "dead-letter producer",
        &kafka_settings.bootstrap_servers,
        metrics.connection("kafka", "dead-letters"),
        health.component("kafka dead-letter producer connected"),
        failure.clone(),
    );
    let producer: FutureProducer<BridgeContext> = c
        .create_with_context(context)
        .map_err(|e| format!("cannot create the dead-letter producer: {e}"))?;
    let ready = health.component(&format!("kafka dead-letter topic {topic} usable"));
    Ok(DeadLetters::new(
        producer,
        topic.to_owned(),
        ready,
        metrics.dead_letter_failures.clone(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ids are part of the contract with the broker (the persistent session of a replica
    /// is found by its id) and with Kafka (quotas, ACLs by client id): they never change.
    #[test]
    fn each_client_of_a_replica_has_its_own_stable_id() {
        let yaml = "bridgeName: locks\nmqtt:\n  url: mqtt://m:1883\nkafka:\n  bootstrapServers: k:9092\nmqttToKafka:\n  - name: r\n    mqtt: {topicFilters: [\"a/+\"]}\n    kafka: {topic: t}\n";
        let config = mkb_api::load_runtime_config(yaml).expect("valid");
        let ids: Vec<String> = [
            ClientRole::Subscriber,
            ClientRole::Publisher,
            ClientRole::Consumer("commands"),
            ClientRole::DeadLetters,
        ]
        .into_iter()
        .map(|role| client_id(&config, 2, role))
        .collect();
        assert_eq!(
            ids,
            [
                "locks-2",
                "locks-2-pub",
                "locks-2-commands",
                "locks-2-dead-letters"
            ]
        );
    }
}
