//! The subscriber connection: one MQTT session (`<prefix>-<ordinal>`, persistent) carrying the
//! subscriptions of every MQTT → Kafka route. A task runs the connection and forwards events;
//! this loop dispatches messages to routes within the in-flight window and acknowledges them
//! in order once Kafka has them.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mkb_api::compiled::{CompiledMqttToKafka, MqttEndpoint};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::acks::{AckTracker, Room};
use super::dispatch::Dispatcher;
use super::poller::{Link, Update, Updates};
use super::route::Job;
use super::subscriptions::{Answer, Exchange, RouteFilters};
use crate::health::Readiness;
use crate::kafka::DeadLetters;
use crate::mqtt::{self, Event, Inbound};

pub struct Subscriber {
    pub client_id: String,
    pub link: Link,
    pub routes: Vec<Arc<CompiledMqttToKafka>>,
    pub inputs: Vec<mpsc::Sender<Job>>,
    pub tracker: Arc<AckTracker>,
    pub window: Arc<Semaphore>,
    /// The window's payload budget, in KiB (`window_kib` permits).
    pub window_bytes: Arc<Semaphore>,
    pub window_kib: u32,
    pub ready: Readiness,
    pub endpoint: MqttEndpoint,
    pub up: Gauge,
    pub unrouted: Counter,
    pub dead_letters: Option<Arc<DeadLetters>>,
    /// Retiring the session (see `crate::retire`): unsubscribe instead of subscribing, take
    /// what the broker still sends, and end once it has been quiet for [`RETIRE_QUIET`].
    pub retire: bool,
}

/// A retiring session is drained once nothing arrived for this long and nothing is in flight.
pub const RETIRE_QUIET: Duration = Duration::from_secs(3);

/// How often held-back messages are looked at (see `renew_for_held_messages`).
const HELD_CHECK_INTERVAL: Duration = Duration::from_secs(5);

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Subscriber {
    /// Runs until `stop`, then drains: no new message is taken; those taken are finished and
    /// acknowledged within `grace`; then the session is disconnected (and kept by the broker).
    pub async fn run(self, mut events: Updates, stop: CancellationToken, grace: Duration) {
        let dispatcher = Dispatcher::new(&self.routes);
        let filters = RouteFilters::new(&self.routes, dispatcher.identifies());
        let mut first_connection = true;
        // The SUBSCRIBE exchange of the current connection, and that connection's number.
        let mut exchange: Option<(u64, Exchange)> = None;
        let mut status = mqtt::ConnectionStatus::new(
            "subscriber",
            &self.client_id,
            &self.endpoint,
            self.ready.clone(),
        );
        let mut held_tick = tokio::time::interval(HELD_CHECK_INTERVAL);
        let mut renew_requested = false;
        let mut quiet_tick = tokio::time::interval(Duration::from_millis(250));
        let mut last_activity: Option<Instant> = None;
        loop {
            let event = tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                _ = quiet_tick.tick(), if self.retire => {
                    let drained = last_activity.is_some_and(|t| t.elapsed() >= RETIRE_QUIET)
                        && self.tracker.len() == 0;
                    if drained {
                        // Ending is expected from here on: the connection task stops too.
                        stop.cancel();
                        break;
                    }
                    continue;
                }
                _ = held_tick.tick(), if !renew_requested => {
                    renew_requested = self.renew_for_held_messages();
                    continue;
                }
                event = events.recv() => match event { Some(e) => e, None => return },
            };
            match event {
                Update::Connected {
                    connected,
                    generation,
                } => {
                    let session_present = connected.session_present;
                    self.tracker.new_connection();
                    renew_requested = false;
                    self.up.set(1);
                    status.connected(session_present);
                    last_activity = Some(Instant::now());
                    if self.retire {
                        // Nothing new is routed to the session once it has no subscriptions;
                        // what the broker queued for it still comes.
                        let all: Vec<String> = filters
                            .all()
                            .iter()
                            .flat_map(|(_, fs)| fs.iter().map(|(f, _)| f.clone()))
                            .collect();
                        self.link.unsubscribe(generation, all).await;
                        info!(client_id = %self.client_id, session_present, "retiring the session: unsubscribed, draining what the broker queued");
                        self.ready.set(true);
                    } else {
                        // See `RouteFilters::for_connection` for what is subscribed when.
                        let fresh = first_connection || !session_present;
                        let (wanted, mut started) = filters.for_connection(fresh);
                        for (qos, fs) in wanted {
                            started.sent(self.link.subscribe(generation, fs, *qos).await);
                        }
                        if !started.waiting() {
                            self.ready.set(true);
                        } else if !fresh {
                            debug!(client_id = %self.client_id, "session resumed; subscribing the shared filters again");
                        }
                        exchange = Some((generation, started));
                    }
                    first_connection = false;
                }
                Update::Event(Event::SubscribeAnswered { rejected }) => {
                    let Some((generation, current)) = exchange.as_mut() else {
                        continue;
                    };
                    let (refused, answer) = current.answered(rejected, &filters);
                    for (filter, reason) in refused {
                        error!(client_id = %self.client_id, %filter, %reason, "the broker refused a subscription (check its ACLs and shared-subscription support)");
                    }
                    match answer {
                        Answer::Waiting => {}
                        Answer::SubscribeAgain(again) => {
                            for (qos, fs) in &again {
                                current.sent(self.link.subscribe(*generation, fs, *qos).await);
                            }
                        }
                        Answer::Subscribed => {
                            info!(client_id = %self.client_id, "subscribed");
                            self.ready.set(true);
                        }
                        Answer::Refused(list) => {
                            self.ready.not_ready(format!(
                                "the broker refused the subscription to {list}"
                            ));
                        }
                    }
                }
                Update::Event(Event::Message(msg)) => {
                    last_activity = Some(Instant::now());
                    if !self.dispatch(&dispatcher, msg, &stop).await {
                        break;
                    }
                }
                Update::Event(_) => {}
                Update::Lost(e) => {
                    self.up.set(0);
                    status.failed(&e);
                }
            }
        }
        self.drain(events, grace).await;
    }

    /// Once the dead-letter topic is usable again, asks for a new connection if messages were
    /// held back on this one: the broker sends them again. `true` when asked.
    fn renew_for_held_messages(&self) -> bool {
        let held = self.tracker.held();
        let usable = self.dead_letters.as_ref().is_some_and(|d| d.usable());
        if held == 0 || !usable {
            return false;
        }
        info!(client_id = %self.client_id, held, "the dead-letter topic is usable again; renewing the MQTT connection so the broker sends the held-back messages again");
        self.link.renew()
    }

    /// Hands a message to its routes; `false` when stopping interrupted the wait for room in
    /// the window (the message stays unacknowledged and the broker redelivers it).
    async fn dispatch(
        &self,
        dispatcher: &Dispatcher,
        msg: Box<Inbound>,
        stop: &CancellationToken,
    ) -> bool {
        let routes = dispatcher.routes_for(&msg.topic, &msg.subscription_ids);
        if routes.is_empty() {
            self.unrouted.inc();
            debug!(topic = %msg.topic, "message matches no route (a subscription left in the session); acknowledging it");
        }
        let Some(room) = self.room_for(msg.payload.len(), stop).await else {
            return false;
        };
        let token = (msg.qos > 0).then_some(msg.ack);
        let tickets = self.tracker.track(token, routes.len(), room);
        let msg = Arc::new(*msg);
        let received_at = Instant::now();
        let received_ms = now_ms();
        for (route, ticket) in routes.into_iter().zip(tickets) {
            let job = Job {
                msg: msg.clone(),
                received_at,
                received_ms,
                ticket,
                order: 0,
            };
            if self.inputs[route].send(job).await.is_err() {
                return false;
            }
        }
        true
    }

    /// Waits for room in the window for one message of `bytes`; `None` when stopping.
    async fn room_for(&self, bytes: usize, stop: &CancellationToken) -> Option<Room> {
        let kib = bytes.div_ceil(1024).min(self.window_kib as usize) as u32;
        let room = async {
            let message = self.window.clone().acquire_owned().await.ok()?;
            let kib = self
                .window_bytes
                .clone()
                .acquire_many_owned(kib)
                .await
                .ok()?;
            Some(Room::new(message, kib))
        };
        tokio::select! {
            room = room => room,
            _ = stop.cancelled() => None,
        }
    }

    /// Lets the routes finish what they took, keeps the connection polled so acknowledgements
    /// reach the broker, then disconnects.
    async fn drain(self, mut events: Updates, grace: Duration) {
        let Subscriber {
            link,
            tracker,
            inputs,
            client_id,
            ready,
            ..
        } = self;
        drop(inputs);
        ready.set(false);
        let deadline = tokio::time::Instant::now() + grace;
        let remaining = tracker.len();
        if remaining > 0 {
            info!(client_id = %client_id, messages = remaining, "finishing in-flight messages");
        }
        while tracker.len() > 0 || tracker.unsent() > 0 {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => {
                    warn!(client_id = %client_id, messages = tracker.len(),
                        "grace period over with messages unacknowledged; the broker will redeliver them");
                    break;
                }
                event = events.recv() => if event.is_none() { return },
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
        }
        link.disconnect().await;
        // The connection task ends once the broker has closed the connection after the
        // DISCONNECT, so that it has read every acknowledgement before it.
        let wait = tokio::time::sleep(Duration::from_secs(5) + mqtt::CLOSE_LIMIT);
        tokio::pin!(wait);
        let mut sent = false;
        loop {
            tokio::select! {
                _ = &mut wait => break,
                event = events.recv() => match event {
                    Some(Update::Event(Event::DisconnectSent)) => sent = true,
                    None => break,
                    _ => {}
                },
            }
        }
        if sent {
            info!(client_id = %client_id, "disconnected from the MQTT broker");
        } else {
            warn!(client_id = %client_id, "the DISCONNECT was not sent in time; the broker will redeliver what it did not see acknowledged");
        }
    }
}
