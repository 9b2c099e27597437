//! The operator at scale: N bridges applied at once (KWOK nodes), the time until every one is
//! Ready, and the operator's memory (release build, a fresh process for each N).

use std::time::{Duration, Instant};

use anyhow::Result;
use serde::Serialize;
use testbed::kubectl::{ensure_crd, Namespace};
use testbed::operator::{bridge_writing_to, ready_bridges, Operator, Setup};

use crate::procstat;

#[derive(Debug, Clone, Serialize)]
pub struct OperatorRun {
    pub bridges: usize,
    /// Bridges Ready when the run ended (all of them, unless it gave up after 600 s).
    pub ready: usize,
    /// Seconds until all were Ready (NaN when they were not within 600 s).
    pub ready_s: f64,
    /// Reconciliations the operator ran, and their mean duration.
    pub reconciles: f64,
    pub mean_reconcile_s: f64,
    pub peak_rss_mib: f64,
    pub rss_when_ready_mib: f64,
}

/// The operator's default resync period (the tests run it at a few seconds instead).
const RESYNC_SECONDS: u64 = 300;

pub fn bridges_ready(n: usize) -> Result<OperatorRun> {
    ensure_crd();
    let ns = Namespace::create("bench-operator");
    let operator = Operator::start(&ns.0, RESYNC_SECONDS);
    let s = Setup { ns, operator };
    let manifest: Vec<String> = (0..n)
        .map(|i| bridge_writing_to(&format!("b{i:03}"), "bench-state", ""))
        .collect();
    let started = Instant::now();
    s.apply(&manifest.join("---\n"));
    let deadline = started + Duration::from_secs(600);
    let mut ready;
    loop {
        ready = ready_bridges(&s.get("mkb").unwrap_or_default());
        if ready == n {
            break;
        }
        if Instant::now() > deadline {
            break;
        }
        // Listing 500 bridges costs kubectl and the API server CPU the operator also needs.
        std::thread::sleep(Duration::from_secs(1));
    }
    let ready_s = if ready == n {
        started.elapsed().as_secs_f64()
    } else {
        f64::NAN
    };
    let pid = s.operator.process.pid();
    let metrics = s.operator.metrics();
    let reconciles = metrics.sum("mkb_operator_reconcile_duration_seconds_count");
    Ok(OperatorRun {
        bridges: n,
        ready,
        ready_s,
        reconciles,
        mean_reconcile_s: metrics.sum("mkb_operator_reconcile_duration_seconds_sum") / reconciles,
        peak_rss_mib: procstat::memory_mib(pid, "VmHWM:"),
        rss_when_ready_mib: procstat::memory_mib(pid, "VmRSS:"),
    })
}
