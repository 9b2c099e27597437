//! The short reliability run (`make reliability` runs the full one): every fault once, at
//! 100 messages/s each way, against a bridge-runtime behind toxiproxy, on the Kafka cluster or
//! on HiveMQ. Nothing may be lost.
//! One test in its own binary: it restarts Kafka and cuts connections.

use testbed::reliability::{markdown, run, Fault, Plan};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_fault_loses_a_message() {
    let plan = Plan::short();
    let faults = Fault::ALL;
    let rows = run(&plan, &faults).await;
    let table = markdown(&rows);
    eprintln!("{table}");
    assert_eq!(
        rows.len(),
        faults.len() * 2,
        "a row per fault and direction"
    );
    for row in &rows {
        assert!(
            row.sent > 0,
            "{} {}: nothing was sent\n{table}",
            row.fault,
            row.direction
        );
        assert_eq!(
            row.lost, 0,
            "{} {}: messages lost\n{table}",
            row.fault, row.direction
        );
        assert_eq!(
            row.delivered, row.sent,
            "{} {}: every message sent arrives\n{table}",
            row.fault, row.direction
        );
    }
    // The dead-letter topic must have refused letters for a while (the failures counted are
    // both directions' together), or the row proves nothing; its poison messages count as
    // delivered only in the dead-letter topic. Healthy messages keep flowing meanwhile: no
    // pause in delivery as long as the dead-letter topic's outage.
    let dead_letter_rows: Vec<_> = rows.iter().filter(|r| r.dead_letters.is_some()).collect();
    assert_eq!(
        dead_letter_rows.len(),
        2,
        "a dead-letter row each way\n{table}"
    );
    for r in dead_letter_rows {
        let (poison, failures) = r.dead_letters.unwrap_or_default();
        assert!(
            poison > 0 && failures > 0,
            "{}: poison sent and letters held back\n{table}",
            r.direction
        );
        let pause = r.longest_pause_seconds.unwrap_or(f64::MAX);
        assert!(
            pause < plan.dead_letter_down.as_secs_f64(),
            "{}: healthy messages flow while the dead-letter topic is under its minimum\n{table}",
            r.direction
        );
    }
    // The kills must hit a bridge with work in hand, or they prove nothing.
    let kills = &rows
        .iter()
        .find(|r| !r.in_flight_at_kills.is_empty())
        .expect("the kill rows count the messages in flight")
        .in_flight_at_kills;
    assert_eq!(kills.len(), plan.kills as usize, "{kills:?}");
    assert!(
        kills.iter().all(|&n| n > 0),
        "a kill found nothing in flight: {kills:?}"
    );
}
