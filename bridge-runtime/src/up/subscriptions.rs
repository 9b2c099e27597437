//! The subscriber's SUBSCRIBE exchange on each connection: which filters it subscribes, the
//! SUBACKs it still waits for, the filters the broker refused, and the second subscription of
//! the shared filters.

use std::collections::VecDeque;
use std::sync::Arc;

use mkb_api::compiled::CompiledMqttToKafka;

use super::dispatch::Dispatcher;

/// Filters grouped per route, as (QoS, [(filter, subscription identifier if any)]).
pub type Filters = Vec<(u8, Vec<(String, Option<usize>)>)>;

/// The routes' filters: all of them, and the shared ones alone.
pub struct RouteFilters {
    all: Filters,
    shared: Filters,
}

/// Where a connection's SUBSCRIBE exchange stands after a SUBACK.
#[derive(Debug, PartialEq)]
pub enum Answer {
    /// SUBACKs are still to come.
    Waiting,
    /// Subscribe these again, then wait for their SUBACKs.
    SubscribeAgain(Filters),
    /// Every filter is subscribed.
    Subscribed,
    /// The broker refused filters: `filter: reason`, comma-separated.
    Refused(String),
}

/// One connection's SUBSCRIBE exchange.
pub struct Exchange {
    /// The filters of each SUBSCRIBE not answered yet, in order.
    awaiting: VecDeque<Vec<String>>,
    /// Refused filters, with the broker's reason.
    refused: Vec<(String, String)>,
    /// The shared filters are still to be subscribed a second time.
    shared_again: bool,
}

impl RouteFilters {
    /// With `identified`, each filter has its subscription identifier (see `dispatch`).
    pub fn new(routes: &[Arc<CompiledMqttToKafka>], identified: bool) -> Self {
        Self {
            all: route_filters(routes, identified, false),
            shared: route_filters(routes, identified, true),
        }
    }

    pub fn all(&self) -> &Filters {
        &self.all
    }

    /// What a connection subscribes, and its exchange. Every filter on a fresh session (the
    /// configuration may have changed, or the broker lost the session). A resumed session keeps
    /// its plain subscriptions, but not always its shared ones: Mosquitto 2.0 restores a session
    /// after a restart without them, and then drops what is published to them; they are
    /// subscribed again (harmless where they were kept: a shared subscription sends no retained
    /// messages).
    ///
    /// Either way the shared filters are subscribed a second time once the broker has answered.
    /// HiveMQ CE (2025.5 and later) can lose a shared subscription's polling when the SUBSCRIBE
    /// arrives while it still sets up the connection: the session looks up its shared
    /// subscriptions before the new one is stored, remembers it has none, and from then on
    /// takes a shared message only when one is published to an empty queue — one per burst, the
    /// rest waits for a reconnect. A SUBSCRIBE after the SUBACK clears that; elsewhere it renews
    /// a subscription that exists.
    pub fn for_connection(&self, fresh: bool) -> (&Filters, Exchange) {
        let wanted = if fresh { &self.all } else { &self.shared };
        let exchange = Exchange {
            awaiting: VecDeque::new(),
            refused: Vec::new(),
            shared_again: !self.shared.is_empty(),
        };
        (wanted, exchange)
    }
}

impl Exchange {
    /// SUBSCRIBEs went out: the filters of each, in order.
    pub fn sent(&mut self, packets: Vec<Vec<String>>) {
        self.awaiting.extend(packets);
    }

    /// Whether SUBACKs are awaited.
    pub fn waiting(&self) -> bool {
        !self.awaiting.is_empty()
    }

    /// A SUBACK, with the refused filters by position in its SUBSCRIBE. Returns those refused
    /// (filter, reason), and what comes next.
    pub fn answered(
        &mut self,
        rejected: Vec<(usize, String)>,
        filters: &RouteFilters,
    ) -> (Vec<(String, String)>, Answer) {
        let packet = self.awaiting.pop_front().unwrap_or_default();
        let refused: Vec<(String, String)> = rejected
            .into_iter()
            .map(|(position, reason)| {
                let filter = packet.get(position).map_or("?", String::as_str);
                (filter.to_owned(), reason)
            })
            .collect();
        self.refused.extend(refused.iter().cloned());
        if self.waiting() {
            return (refused, Answer::Waiting);
        }
        if std::mem::take(&mut self.shared_again) {
            let again: Filters = filters
                .shared
                .iter()
                .map(|(qos, fs)| {
                    let accepted = fs
                        .iter()
                        .filter(|(f, _)| self.refused.iter().all(|(r, _)| r != f))
                        .cloned()
                        .collect();
                    (*qos, accepted)
                })
                .filter(|(_, fs): &(u8, Vec<_>)| !fs.is_empty())
                .collect();
            if !again.is_empty() {
                return (refused, Answer::SubscribeAgain(again));
            }
        }
        let answer = if self.refused.is_empty() {
            Answer::Subscribed
        } else {
            let list: Vec<String> = self
                .refused
                .iter()
                .map(|(filter, reason)| format!("{filter}: {reason}"))
                .collect();
            Answer::Refused(list.join(", "))
        };
        (refused, answer)
    }
}

/// Route filters grouped per route; with `only_shared`, just the shared subscriptions, and no
/// route that has none.
fn route_filters(
    routes: &[Arc<CompiledMqttToKafka>],
    identified: bool,
    only_shared: bool,
) -> Filters {
    routes
        .iter()
        .enumerate()
        .map(|(r, route)| {
            let filters: Vec<(String, Option<usize>)> = route
                .subscriptions
                .iter()
                .enumerate()
                .filter(|(_, s)| !only_shared || s.share_group().is_some())
                .map(|(i, s)| {
                    let id = identified.then(|| Dispatcher::subscription_id(r, i));
                    (s.to_string(), id)
                })
                .collect();
            (route.qos, filters)
        })
        .filter(|(_, filters)| !only_shared || !filters.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: &str = "  - name: plain\n    mqtt: {topicFilters: ['alerts/#'], shared: false}\n    kafka: {topic: a}\n";

    fn filters_of(routes: &str) -> RouteFilters {
        let yaml = format!("bridgeName: b\nmqtt: {{url: 'mqtt://m', protocolVersion: '5'}}\nkafka: {{bootstrapServers: 'k:9092'}}\nmqttToKafka:\n{routes}");
        let routes: Vec<Arc<CompiledMqttToKafka>> = mkb_api::load_runtime_config(&yaml)
            .expect("valid")
            .mqtt_to_kafka
            .into_iter()
            .map(Arc::new)
            .collect();
        RouteFilters::new(&routes, true)
    }

    /// A shared route with two filters, and a plain one.
    fn routes() -> RouteFilters {
        filters_of(&format!("  - name: up\n    mqtt: {{topicFilters: ['devices/+/state', 'devices/+/event']}}\n    kafka: {{topic: t}}\n{PLAIN}"))
    }

    const STATE: &str = "$share/b.up/devices/+/state";
    const EVENT: &str = "$share/b.up/devices/+/event";

    /// Sends each (QoS, filters) as one SUBSCRIBE, as MQTT 3.1.1 does.
    fn send(exchange: &mut Exchange, filters: &Filters) {
        exchange.sent(
            filters
                .iter()
                .map(|(_, fs)| fs.iter().map(|(f, _)| f.clone()).collect())
                .collect(),
        );
    }

    #[test]
    fn a_resumed_session_subscribes_only_its_shared_filters_again() {
        let filters = routes();
        assert_eq!(filters.all().len(), 2);
        assert_eq!(
            filters.all()[1].1,
            vec![(
                "alerts/#".to_owned(),
                Some(Dispatcher::subscription_id(1, 0))
            )]
        );
        let (wanted, _) = filters.for_connection(false);
        assert_eq!(
            wanted,
            &vec![(
                filters.all()[0].0,
                vec![
                    (STATE.to_owned(), Some(Dispatcher::subscription_id(0, 0))),
                    (EVENT.to_owned(), Some(Dispatcher::subscription_id(0, 1))),
                ]
            )]
        );
    }

    /// HiveMQ CE can stop serving a shared subscription made while it sets up the connection;
    /// a second SUBSCRIBE after the SUBACK clears that (see `for_connection`).
    #[test]
    fn the_shared_filters_are_subscribed_again_once_the_broker_has_answered() {
        let filters = routes();
        let (wanted, mut exchange) = filters.for_connection(true);
        send(&mut exchange, wanted);
        assert_eq!(exchange.answered(vec![], &filters).1, Answer::Waiting);
        let (_, answer) = exchange.answered(vec![], &filters);
        let Answer::SubscribeAgain(again) = answer else {
            panic!("the shared filters again, not {answer:?}");
        };
        assert_eq!(again, filters.for_connection(false).0.clone());
        send(&mut exchange, &again);
        assert_eq!(exchange.answered(vec![], &filters).1, Answer::Subscribed);
    }

    #[test]
    fn a_refused_filter_is_not_subscribed_again_and_is_reported_once() {
        let filters = routes();
        let (wanted, mut exchange) = filters.for_connection(false);
        send(&mut exchange, wanted);
        let (refused, answer) =
            exchange.answered(vec![(1, "0x87 (Not authorized)".into())], &filters);
        assert_eq!(
            refused,
            vec![(EVENT.to_owned(), "0x87 (Not authorized)".to_owned())]
        );
        let Answer::SubscribeAgain(again) = answer else {
            panic!("the accepted shared filter again, not {answer:?}");
        };
        assert_eq!(again[0].1.len(), 1);
        assert_eq!(again[0].1[0].0, STATE);
        send(&mut exchange, &again);
        assert_eq!(
            exchange.answered(vec![], &filters).1,
            Answer::Refused(format!("{EVENT}: 0x87 (Not authorized)"))
        );
    }

    #[test]
    fn without_shared_filters_one_round_is_enough() {
        let filters = filters_of(PLAIN);
        let (wanted, mut exchange) = filters.for_connection(true);
        send(&mut exchange, wanted);
        assert_eq!(exchange.answered(vec![], &filters).1, Answer::Subscribed);
    }
}
