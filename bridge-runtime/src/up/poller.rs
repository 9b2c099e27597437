//! The subscriber's connection task: polls the MQTT connection, forwards its events to the
//! subscriber, and (MQTT 3.1.1) writes the acknowledgements that are due between two polls.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::acks::AckTracker;
use crate::mqtt::{self, Event};

/// What the connection task forwards: events, or the error that ended a connection.
pub type Events = mpsc::Receiver<Result<Event, String>>;

/// Most acknowledgements written at once (4 bytes each on the wire).
const MAX_ACK_BATCH: usize = 1024;

/// Polls the connection forever (reconnecting with capped exponential backoff) and forwards
/// its events. Never cancelled mid-poll: rumqttc's poll is not cancel-safe. Ends once the
/// broker closed the connection after the DISCONNECT (see
/// [`mqtt::EventLoop::read_until_closed`]), or when nobody listens any more. When `renew` is set, drops the
/// connection after the next event (keep-alive pings guarantee one) and connects again, so
/// the broker sends every unacknowledged message again.
pub fn spawn(
    mut eventloop: mqtt::EventLoop,
    capacity: usize,
    renew: Arc<AtomicBool>,
    tracker: Arc<AckTracker>,
) -> (Events, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(capacity);
    let task = tokio::spawn(async move {
        let mut backoff = Duration::from_millis(100);
        loop {
            let event = eventloop.poll().await;
            match &event {
                Ok(Event::Connected { .. }) => {
                    backoff = Duration::from_millis(100);
                    tracker.connected();
                }
                Ok(Event::AckSent) => tracker.ack_sent(),
                Ok(_) => {}
                Err(_) => {
                    eventloop.drop_stale_events();
                    tracker.connection_lost();
                }
            }
            let mut failed = event.is_err();
            let disconnected = matches!(event, Ok(Event::DisconnectSent));
            // An acknowledgement sent concerns this task only.
            let forward = !matches!(event, Ok(Event::AckSent));
            if forward && tx.send(event).await.is_err() {
                return;
            }
            if disconnected {
                eventloop.read_until_closed().await;
                return;
            }
            if !failed && !renew.load(Ordering::SeqCst) {
                if let Err(e) = write_due_acks(&tracker, &mut eventloop).await {
                    eventloop.abandon_connection();
                    tracker.connection_lost();
                    failed = true;
                    if tx.send(Err(e)).await.is_err() {
                        return;
                    }
                }
            }
            if renew.swap(false, Ordering::SeqCst) {
                eventloop.discard_pending();
                tracker.connection_lost();
            }
            if failed {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    });
    (rx, task)
}

/// Writes the acknowledgements that are due straight to the connection (MQTT 3.1.1), with
/// one flush. An error means the connection is broken.
async fn write_due_acks(
    tracker: &AckTracker,
    eventloop: &mut mqtt::EventLoop,
) -> Result<(), String> {
    if !eventloop.writes_directly() {
        return Ok(());
    }
    let Some(batch) = tracker.take_direct(MAX_ACK_BATCH) else {
        return Ok(());
    };
    let written = eventloop.write_acks(&batch).await;
    tracker.direct_written(batch.len(), written.is_ok());
    written
}
