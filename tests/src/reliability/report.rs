//! The figures of a run, as a markdown table and as JSON.

use serde_json::json;

/// One fault, one direction.
#[derive(Debug, Clone)]
pub struct Row {
    pub fault: String,
    pub direction: String,
    /// Messages handed to the broker of the sending side (MQTT publishes; Kafka records).
    pub sent: u64,
    /// Of those, how many that broker confirmed (PUBACK; delivery report).
    pub confirmed: u64,
    /// Distinct messages that reached the other side.
    pub delivered: u64,
    pub lost: u64,
    /// Copies beyond the first (at-least-once allows them).
    pub duplicated: u64,
    /// How long the fault lasted.
    pub fault_seconds: f64,
    /// From the fault's end until everything sent before it had arrived.
    pub recovery_seconds: f64,
    /// For kills: the messages the bridge had in flight at each (proof that it was working).
    pub in_flight_at_kills: Vec<u64>,
    /// For the stuck producer: how many times the watchdog replaced it (proof that it fired).
    pub producers_replaced: Option<u64>,
    /// For the Kafka cluster's faults: the nodes stopped or killed, in order (which one led
    /// what is in the fault's description).
    pub nodes_killed: Vec<String>,
    /// For the dead-letter row: the poison messages sent this way (each must reach the
    /// dead-letter topic), and the letters the topic did not take at first (all of them,
    /// both ways: `mkb_dead_letter_write_failures_total`).
    pub dead_letters: Option<(u64, u64)>,
    /// For the brokers' faults: the longest time, from the fault's start until the load
    /// stopped, in which nothing new arrived (the fail-over as users see it).
    pub longest_pause_seconds: Option<f64>,
}

impl Row {
    /// The notes column.
    fn notes(&self) -> String {
        if let Some(n) = self.producers_replaced {
            return format!("producer replaced {n} time(s)");
        }
        let mut notes = self.nodes_killed.clone();
        if let Some((poison, failures)) = self.dead_letters {
            notes.push(format!(
                "{poison} to the dead-letter topic; {failures} letter write(s) failed and were held back"
            ));
        }
        if let Some(pause) = self.longest_pause_seconds {
            notes.push(format!("delivery paused at most {pause:.1} s"));
        }
        if !notes.is_empty() {
            return notes.join("; ");
        }
        if self.in_flight_at_kills.is_empty() {
            return String::new();
        }
        let counts: Vec<String> = self.in_flight_at_kills.iter().map(u64::to_string).collect();
        format!("in flight at the kills: {}", counts.join(", "))
    }
}

/// The table `make reliability` prints and docs/reliability.md shows.
pub fn markdown(rows: &[Row]) -> String {
    let mut out = String::from(
        "| fault | direction | sent | confirmed | delivered | lost | duplicated | fault s | recovery s | notes |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {:.1} | {:.1} | {} |\n",
            r.fault,
            r.direction,
            r.sent,
            r.confirmed,
            r.delivered,
            r.lost,
            r.duplicated,
            r.fault_seconds,
            r.recovery_seconds,
            r.notes()
        ));
    }
    out
}

pub fn to_json(rows: &[Row]) -> serde_json::Value {
    rows.iter()
        .map(|r| {
            json!({
                "fault": r.fault, "direction": r.direction, "sent": r.sent,
                "confirmed": r.confirmed, "delivered": r.delivered, "lost": r.lost,
                "duplicated": r.duplicated, "fault_seconds": r.fault_seconds,
                "recovery_seconds": r.recovery_seconds,
                "in_flight_at_kills": r.in_flight_at_kills,
                "producers_replaced": r.producers_replaced,
                "nodes_killed": r.nodes_killed,
                "dead_letters": r.dead_letters,
                "longest_pause_seconds": r.longest_pause_seconds,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_per_line_with_every_figure() {
        let row = Row {
            fault: "Kafka restart".into(),
            direction: "MQTT → Kafka".into(),
            sent: 10,
            confirmed: 10,
            delivered: 10,
            lost: 0,
            duplicated: 2,
            fault_seconds: 7.25,
            recovery_seconds: 1.04,
            in_flight_at_kills: vec![3, 1],
            producers_replaced: None,
            nodes_killed: Vec::new(),
            dead_letters: None,
            longest_pause_seconds: None,
        };
        let table = markdown(std::slice::from_ref(&row));
        assert!(
            table
                .contains("| Kafka restart | MQTT → Kafka | 10 | 10 | 10 | 0 | 2 | 7.2 | 1.0 | in flight at the kills: 3, 1 |"),
            "{table}"
        );
        let json = to_json(&[row]);
        assert_eq!(json[0]["duplicated"], 2);
        assert_eq!(json[0]["in_flight_at_kills"], serde_json::json!([3, 1]));
    }
}
