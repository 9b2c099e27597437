//! Which routes a message belongs to.
//!
//! When no two of the bridge's filters overlap, a message matches at most one filter and the
//! topic decides. MQTT 3.1.1 has no subscription identifiers, and the validator refuses
//! overlapping filters there.
//!
//! With MQTT 5 overlapping filters are allowed, and then every filter is subscribed with its
//! own subscription identifier. Brokers send one copy per matching subscription (Mosquitto
//! does), or one copy carrying every matching identifier. A route takes a copy only if it
//! carries the identifier of the route's first filter that matches the topic: each route
//! receives each message exactly once, even with overlapping filters and shared subscriptions
//! spread over replicas. Without overlaps no identifier is asked for: the broker would add one
//! to every message it sends (a property Mosquitto builds and frees per message), which costs
//! it and the bridge CPU for nothing.

use std::sync::Arc;

use mkb_api::compiled::CompiledMqttToKafka;
use mkb_api::topic::TopicFilter;

/// Identifiers are `route * STRIDE + filter + 1` (routes and filters per route are ≤ 100).
const STRIDE: usize = 1000;

pub struct Dispatcher {
    filters: Vec<Vec<TopicFilter>>,
    identified: bool,
}

impl Dispatcher {
    pub fn new(routes: &[Arc<CompiledMqttToKafka>]) -> Self {
        Self::of_filters(routes.iter().map(|r| r.filters.clone()).collect())
    }

    /// From each route's filters, in route order.
    fn of_filters(filters: Vec<Vec<TopicFilter>>) -> Self {
        let identified = any_overlap(&filters);
        Self {
            filters,
            identified,
        }
    }

    /// Whether the filters are subscribed with subscription identifiers (some overlap).
    pub fn identifies(&self) -> bool {
        self.identified
    }

    /// The subscription identifier of filter `filter` of route `route`.
    pub fn subscription_id(route: usize, filter: usize) -> usize {
        route * STRIDE + filter + 1
    }

    /// The routes that take this copy of a message on `topic` that came with
    /// `subscription_ids` (empty for MQTT 3.1.1). Without overlaps the topic decides, whatever
    /// identifiers a subscription kept from an earlier run carries.
    pub fn routes_for(&self, topic: &str, subscription_ids: &[usize]) -> Vec<usize> {
        self.filters
            .iter()
            .enumerate()
            .filter(|(route, filters)| {
                let first_match = filters.iter().position(|f| f.matches(topic));
                match first_match {
                    None => false,
                    Some(_) if !self.identified || subscription_ids.is_empty() => true,
                    Some(filter) => {
                        subscription_ids.contains(&Self::subscription_id(*route, filter))
                    }
                }
            })
            .map(|(route, _)| route)
            .collect()
    }
}

/// Whether some topic matches two of the filters (of one route or of two).
fn any_overlap(routes: &[Vec<TopicFilter>]) -> bool {
    let all: Vec<&TopicFilter> = routes.iter().flatten().collect();
    all.iter()
        .enumerate()
        .any(|(i, f)| all[..i].iter().any(|g| f.overlaps(g)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dispatcher(routes: &[&[&str]]) -> Dispatcher {
        Dispatcher::of_filters(
            routes
                .iter()
                .map(|fs| {
                    fs.iter()
                        .map(|f| TopicFilter::parse(f).expect("valid"))
                        .collect()
                })
                .collect(),
        )
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
        let d = dispatcher(&[&["a/#"], &["a/b"]]);
        assert!(d.identifies());
        assert!(d.routes_for("a/b", &[99_999]).is_empty());
    }

    #[test]
    fn identifiers_are_asked_for_only_when_filters_overlap() {
        assert!(
            !dispatcher(&[&["devices/+/state", "devices/+/event"], &["alerts/#"]]).identifies()
        );
        assert!(dispatcher(&[&["devices/#", "devices/+/event"]]).identifies());
        assert!(dispatcher(&[&["devices/+/state"], &["devices/1/+"]]).identifies());
        // Without overlaps the topic decides, whatever a subscription kept from an earlier
        // run carries.
        let d = dispatcher(&[&["a/#"], &["b/#"]]);
        assert_eq!(
            d.routes_for("b/c", &[Dispatcher::subscription_id(0, 0)]),
            [1]
        );
    }
}
