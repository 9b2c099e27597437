//! Wires the runtime together: HTTP endpoint, the two directions, and the drain on SIGTERM.

use std::net::SocketAddr;
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use mkb_api::ValidConfig;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::health::Health;
use crate::process::{Process, RunError};
use crate::{down, http, up};

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
