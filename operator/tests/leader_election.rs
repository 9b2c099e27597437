//! Two operator replicas with leader election against the test bed: exactly one reconciles;
//! after kill -9 of the leader the other takes over within the lease duration + 10 s; a clean
//! shutdown releases the Lease.
//!
//! Host processes (`testbed::operator`): a kill -9 with no grace period and an exact count of
//! who reconciled need the process and its metrics at hand. Hand-over by deleting the leader
//! pod of the chart's Deployment is tests/e2e/in_cluster.rs.

use std::time::{Duration, Instant};

use testbed::kubectl::{ensure_crd, get_json, kubectl_ok, Namespace};
use testbed::operator::{bridge_writing_to, Operator, RESYNC_SECONDS, WAIT};
use testbed::{unique, wait_until};

const LEASE_SECONDS: u64 = 15;

fn replica(ns: &str) -> Operator {
    Operator::start_with(
        ns,
        RESYNC_SECONDS,
        &["--leader-elect", "--leader-election-namespace", ns],
    )
}

fn leads(operator: &Operator) -> Option<f64> {
    operator.metrics().value("mkb_operator_leader", &[])
}

fn holder(ns: &str) -> String {
    get_json(&["lease", "mkb-operator", "-n", ns])
        .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn reconciled(ns: &str, bridge: &str) -> bool {
    get_json(&["mkb", bridge, "-n", ns])
        .is_some_and(|b| b["status"]["observedGeneration"] == b["metadata"]["generation"])
}

#[test]
fn one_replica_leads_and_the_other_takes_over_when_it_dies() {
    ensure_crd();
    let ns = Namespace::create("leader");
    let mut first = replica(&ns.0);
    wait_until("the first replica to lead", WAIT, || {
        (leads(&first) == Some(1.0)).then_some(())
    });
    let second = replica(&ns.0);
    wait_until("the second replica to stand by", WAIT, || {
        second
            .process
            .log_text()
            .contains("another replica leads; standing by")
            .then_some(())
    });
    assert_eq!(leads(&second), Some(0.0));

    let apply = |name: &str| {
        kubectl_ok(
            &["apply", "-n", &ns.0, "-f", "-"],
            Some(&bridge_writing_to(name, &unique("leader-state"), "")),
        );
    };
    apply("one");
    wait_until("bridge one reconciled", WAIT, || {
        reconciled(&ns.0, "one").then_some(())
    });
    assert!(first.reconciles() > 0);
    assert_eq!(second.reconciles(), 0, "the standby reconciles nothing");

    first.process.kill9();
    let killed = Instant::now();
    apply("two");
    let limit = Duration::from_secs(LEASE_SECONDS + 10);
    wait_until("bridge two reconciled by the new leader", limit, || {
        reconciled(&ns.0, "two").then_some(())
    });
    eprintln!(
        "takeover: bridge two reconciled {:?} after kill -9",
        killed.elapsed()
    );
    assert_eq!(leads(&second), Some(1.0));
    assert!(second.reconciles() > 0);

    // A clean shutdown gives the Lease up at once.
    let mut second = second;
    let status = second.process.terminate(Duration::from_secs(30));
    assert!(status.success(), "{status}");
    assert_eq!(holder(&ns.0), "", "the Lease is released");
}
