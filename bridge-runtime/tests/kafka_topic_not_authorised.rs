//! Kafka refuses every record for a topic (an ACL denies writes): the route reports not ready
//! with Kafka's reason and retries, nothing is dead-lettered or lost, and once the ACL is
//! lifted every message arrives.

mod common;

use common::*;
use testbed::bridge::Bridge;
use testbed::kafka::{self, DeniedWrites};
use testbed::mqtt::Publisher;
use testbed::unique;

#[tokio::test(flavor = "multi_thread")]
async fn an_unauthorised_topic_is_retried_and_reported_never_dead_lettered() {
    let ns = unique("denied");
    let (topic, dlq) = (format!("{ns}-state"), format!("{ns}-dead-letters"));
    kafka::create_topic(&topic, 1).await;
    kafka::create_topic(&dlq, 1).await;
    let denied = DeniedWrites::on(&topic);
    let config = format!(
        "{}mqttToKafka:\n  - name: state\n    mqtt: {{topicFilters: [\"{ns}/devices/+/state\"]}}\n    kafka: {{topic: {topic}, key: \"${{topic[2]}}\"}}\n",
        base_config(&ns, protocol(), Some(&dlq))
    );
    let mut bridge = Bridge::start(&ns, &config);
    // Ready at first: nothing has been refused yet.
    bridge.wait_ready(SHORT);
    let publisher = Publisher::connect(&unique("denied-pub")).await;
    publish_lock_states(&publisher, &ns, 5, 50).await;

    let body = wait_readyz(&bridge, 503, "route state producing to Kafka");
    assert!(
        body.contains(&format!("Kafka refuses records for topic {topic}"))
            && body.contains("uthoriz"),
        "{body}"
    );
    assert!(
        bridge.metrics().route_counter("failed", "state") > 0,
        "the refused attempts are counted"
    );
    assert_eq!(kafka::record_count(&dlq), Some(0), "nothing dead-lettered");
    assert_eq!(bridge.metrics().route_counter("dead_lettered", "state"), 0);

    drop(denied);
    let records = wait_for_distinct(&topic, 50, LONG).await;
    assert_eq!(
        distinct_and_duplicates(&records).0,
        50,
        "every message, once the ACL is lifted"
    );
    bridge.wait_ready(SHORT);
    assert_eq!(kafka::record_count(&dlq), Some(0));
}
