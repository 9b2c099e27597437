//! Wires the runtime together: HTTP endpoint, the two directions, and the drain on SIGTERM.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use mkb_api::ValidConfig;
use rdkafka::producer::FutureProducer;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::health::{Failure, Health};
use crate::kafka::{self, BridgeContext, DeadLetters};
use crate::metrics::Metrics;
use crate::{down, http, shutdown, up};

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
        let client_id = format!("{}-{ordinal}", config.client_id_prefix);
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

/// Runs the bridge until SIGTERM/SIGINT, then drains; or until a part of it fails.
pub async fn run(config: ValidConfig, ordinal: u32) -> Result<(), RunError> {
    let settings = &config.config;
    let process = Process::new(&config)?;
    let listen: SocketAddr = settings
        .http
        .listen
        .parse()
        .map_err(|_| format!("http.listen: {:?} is not an address", settings.http.listen))?;
    let http_stop = CancellationToken::new();
    let server = http::serve(
        listen,
        settings.http.metrics,
        process.metrics.clone(),
        process.health.clone(),
        http_stop.clone(),
    )
    .await
    .map_err(|e| format!("http.listen: cannot listen on {listen}: {e}"))?;

    let ctx = process.start_context(&config, ordinal, false)?;
    let mut directions = Vec::new();
    if !config.mqtt_to_kafka.is_empty() {
        directions.push(up::start(&ctx)?);
    }
    if !config.kafka_to_mqtt.is_empty() {
        directions.push(down::start(&ctx)?);
    }
    info!(
        bridge = %settings.bridge_name,
        ordinal,
        mqtt_to_kafka = config.mqtt_to_kafka.len(),
        kafka_to_mqtt = config.kafka_to_mqtt.len(),
        %listen,
        "bridge-runtime started"
    );
    if let Some(warning) = mkb_api::connection::insecure_tls_warning(
        "",
        settings.mqtt.tls.as_ref(),
        settings.kafka.tls.as_ref(),
    ) {
        warn!("{warning}");
    }

    // Each direction drains within the grace period; this bound only guards against a stuck one.
    let grace =
        Duration::from_secs(u64::from(settings.delivery.shutdown_grace_period_seconds) + 10);
    let failure = supervise(directions, process.stop.clone(), &process.health, grace).await;
    http_stop.cancel();
    let _ = server.await;
    match failure {
        None => {
            info!("bridge-runtime stopped");
            Ok(())
        }
        Some(failure) => Err(RunError::Failed(failure)),
    }
}

/// Runs until `stop` (a signal) or until a direction fails. A failure is recorded in `health`
/// (so `/healthz` reports it) and cancels `stop`: the other direction drains, and the process
/// exits non-zero for its supervisor (Kubernetes) to restart it, rather than running half-dead.
/// Returns the failure, if any.
pub async fn supervise(
    directions: Vec<JoinHandle<Result<(), String>>>,
    stop: CancellationToken,
    health: &Health,
    grace: Duration,
) -> Option<String> {
    let mut running: FuturesUnordered<_> = directions.into_iter().collect();
    let mut failure: Option<String> = None;
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        let ended = tokio::select! {
            ended = running.next() => ended,
            _ = stop.cancelled(), if deadline.is_none() => {
                deadline = Some(tokio::time::Instant::now() + grace);
                continue;
            }
            _ = sleep_until_deadline(deadline), if deadline.is_some() => {
                warn!("draining did not finish in time; exiting anyway (unacknowledged messages will be redelivered)");
                break;
            }
        };
        let reason = match ended {
            None => break,
            Some(Ok(Ok(()))) if stop.is_cancelled() => continue,
            Some(Ok(Ok(()))) => "a direction of the bridge ended unexpectedly".to_owned(),
            Some(Ok(Err(reason))) => reason,
            Some(Err(e)) => format!("a direction of the bridge panicked: {e}"),
        };
        if failure.is_none() {
            error!(%reason, "the bridge failed; draining what still runs, then exiting");
            health.fail(&reason);
            failure = Some(reason);
            stop.cancel();
        }
    }
    // A failure reported by a client (see `Failure`) rather than by a direction's end.
    failure.or_else(|| health.liveness().err())
}

async fn sleep_until_deadline(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
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
    let mut c = kafka::client_config(kafka_settings, &format!("{client_id}-dead-letters"))?;
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

    const GRACE: Duration = Duration::from_secs(5);

    /// A direction that drains when `stop` is cancelled, the way the real ones do.
    fn healthy(stop: &CancellationToken) -> JoinHandle<Result<(), String>> {
        let stop = stop.clone();
        tokio::spawn(async move {
            stop.cancelled().await;
            Ok(())
        })
    }

    #[tokio::test]
    async fn a_signal_drains_every_direction_without_a_failure() {
        let (stop, health) = (CancellationToken::new(), Health::default());
        let directions = vec![healthy(&stop), healthy(&stop)];
        stop.cancel();
        assert_eq!(supervise(directions, stop, &health, GRACE).await, None);
        assert_eq!(health.liveness(), Ok(()));
    }

    #[tokio::test]
    async fn a_failed_direction_stops_the_other_and_is_reported() {
        let (stop, health) = (CancellationToken::new(), Health::default());
        let failing = tokio::spawn(async {
            Err("Kafka → MQTT route commands ended unexpectedly".to_owned())
        });
        let directions = vec![healthy(&stop), failing];
        let failure = supervise(directions, stop.clone(), &health, GRACE).await;
        assert_eq!(
            failure.as_deref(),
            Some("Kafka → MQTT route commands ended unexpectedly")
        );
        assert!(
            stop.is_cancelled(),
            "the healthy direction was asked to drain"
        );
        assert_eq!(
            health.liveness().map_err(|e| e.contains("commands")),
            Err(true)
        );
    }

    #[tokio::test]
    async fn a_panicking_direction_is_a_failure() {
        let (stop, health) = (CancellationToken::new(), Health::default());
        let panicking = tokio::spawn(async { panic!("injected") });
        let failure = supervise(vec![healthy(&stop), panicking], stop, &health, GRACE).await;
        assert!(failure.is_some_and(|f| f.contains("panicked")));
    }

    #[tokio::test]
    async fn a_direction_that_ends_without_being_asked_is_a_failure() {
        let (stop, health) = (CancellationToken::new(), Health::default());
        let quitting = tokio::spawn(async { Ok(()) });
        let failure = supervise(vec![quitting], stop, &health, GRACE).await;
        assert!(failure.is_some_and(|f| f.contains("ended unexpectedly")));
    }

    #[tokio::test]
    async fn a_direction_stuck_in_its_drain_is_given_up_after_the_grace_period() {
        let (stop, health) = (CancellationToken::new(), Health::default());
        let stuck = tokio::spawn(std::future::pending::<Result<(), String>>());
        stop.cancel();
        let grace = Duration::from_millis(50);
        assert_eq!(supervise(vec![stuck], stop, &health, grace).await, None);
    }
}
