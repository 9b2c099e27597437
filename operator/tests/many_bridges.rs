//! 200 bridges created at once (one `kubectl apply`): every one becomes Ready, the operator
//! reports no failed reconciliation, and the time it took is printed. The operator runs with
//! its default resync period, as it would in a cluster (see `setup_default_resync`).

use std::time::{Duration, Instant};

use testbed::operator::{bridge_writing_to, ready_bridges, setup_default_resync};
use testbed::wait_until_seen;

const BRIDGES: usize = 200;

#[test]
fn two_hundred_bridges_at_once_all_become_ready() {
    let s = setup_default_resync("many-bridges");
    let manifest: Vec<String> = (0..BRIDGES)
        .map(|i| bridge_writing_to(&format!("b{i:03}"), "many-state", ""))
        .collect();
    let started = Instant::now();
    s.apply(&manifest.join("---\n"));
    let ready = wait_until_seen(
        &format!("{BRIDGES} bridges to be Ready"),
        Duration::from_secs(600),
        || {
            let list = s.get("mkb").unwrap_or_default();
            let ready = ready_bridges(&list);
            if ready == BRIDGES {
                Ok(ready)
            } else {
                let listed = list["items"].as_array().map_or(0, Vec::len);
                Err(format!("{ready} of {listed} Ready"))
            }
        },
    );
    let took = started.elapsed();
    let metrics = s.operator.metrics();
    let errors = metrics.sum("mkb_operator_reconcile_errors_total");
    let status = std::fs::read_to_string(format!("/proc/{}/status", s.operator.process.pid()))
        .unwrap_or_default();
    let peak_rss = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .unwrap_or("VmHWM: unknown");
    eprintln!(
        "{ready} bridges Ready {:.1} s after one apply; failed reconciliations: {}; operator peak RSS {}",
        took.as_secs_f64(),
        errors as u64,
        peak_rss.trim_start_matches("VmHWM:").trim()
    );
    assert_eq!(errors, 0.0, "no failed reconciliation:\n{}", metrics.0);
}
