//! Which routes a message belongs to.
//!
//! With MQTT 5 every filter is subscribed with its own subscription identifier. Brokers send
//! one copy per matching subscription (Mosquitto does), or one copy carrying every matching
//! identifier. A route takes a copy only if it carries the identifier of the route's first
//! filter that matches the topic: each route receives each message exactly once, even with
//! overlapping filters and shared subscriptions spread over replicas.
//!
//! With MQTT 3.1.1 there are no identifiers; the validator guarantees the filters of a bridge
//! do not overlap, so a message matches at most one filter and the topic decides.

use mkb_api::compiled::CompiledMqttToKafka;
use mkb_api::topic::TopicFilter;

/// Identifiers are `route * STRIDE + filter + 1` (routes and filters per route are ≤ 100).
const STRIDE: usize = 1000;

pub struct Dispatcher {
    filters: Vec<Vec<TopicFilter>>,
}

impl Dispatcher {
    pub fn new(routes: &[CompiledMqttToKafka]) -> Self {
        Self {
            filters: routes.iter().map(|r| r.filters.clone()).collect(),
        }
    }

    /// The subscription identifier of filter `filter` of route `route`.
    pub fn subscription_id(route: usize, filter: usize) -> usize {
        route * STRIDE + filter + 1
    }

    /// The routes that take this copy of a message on `topic` that came with
    /// `subscription_ids` (empty for MQTT 3.1.1).
    pub fn routes_for(&self, topic: &str, subscription_ids: &[usize]) -> Vec<usize> {
        self.filters
            .iter()
            .enumerate()
            .filter(|(route, filters)| {
                let first_match = filters.iter().position(|f| f.matches(topic));
                match first_match {
                    None => false,
                    Some(_) if subscription_ids.is_empty() => true,
                    Some(filter) => {
                        subscription_ids.contains(&Self::subscription_id(*route, filter))
                    }
                }
            })
            .map(|(route, _)| route)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dispatcher(routes: &[&[&str]]) -> Dispatcher {
        Dispatcher {
            filters: routes
                .iter()
                .map(|fs| {
                    fs.iter()
                        .map(|f| TopicFilter::parse(f).expect("valid"))
                        .collect()
                })
                .collect(),
        }
    }

    #[test]
    fn without_identifiers_the_topic_decides() {
        let d = dispatcher(&[&["devices/+/state"], &["devices/+/alarm", "other/#"]]);
        assert_eq!(d.routes_for("devices/1/state", &[]), [0]);
        assert_eq!(d.routes_for("other/x", &[]), [1]);
        assert!(d.routes_for("nothing", &[]).is_empty());
    }

    #[test]
    fn one_copy_per_subscription_reaches_each_route_once() {
        // Route 0 has overlapping filters; route 1 overlaps route 0 (fan-out).
        let d = dispatcher(&[&["cars/#", "cars/+/gps"], &["cars/+/gps"]]);
        let id = Dispatcher::subscription_id;
        // Mosquitto sends three copies of cars/1/gps, one per matching subscription.
        let copies = [vec![id(0, 0)], vec![id(0, 1)], vec![id(1, 0)]];
        let mut taken: Vec<usize> = copies
            .iter()
            .flat_map(|ids| d.routes_for("cars/1/gps", ids))
            .collect();
        taken.sort_unstable();
        assert_eq!(taken, [0, 1]);
        // A broker sending one copy with every identifier reaches the same routes.
        assert_eq!(
            d.routes_for("cars/1/gps", &[id(0, 0), id(0, 1), id(1, 0)]),
            [0, 1]
        );
    }

    #[test]
    fn identifiers_of_other_routes_or_stale_subscriptions_take_nothing() {
        let d = dispatcher(&[&["a/#"]]);
        assert!(d.routes_for("a/b", &[99_999]).is_empty());
    }
}
