//! `make reliability`: every fault of the reliability suite against a bridge-runtime under
//! load; prints the table, writes it (and JSON) to target/reliability/, and exits non-zero
//! when any message was lost. `--short` runs the small plan `make test` runs; `--only
//! kill9,kafka-restart,...` runs some of the faults.

use std::process::ExitCode;

use testbed::reliability::{markdown, run, to_json, Fault, Plan};

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() -> ExitCode {
    let plan = if std::env::args().any(|a| a == "--short") {
        Plan::short()
    } else {
        Plan::full()
    };
    let args: Vec<String> = std::env::args().collect();
    let faults = match args.iter().position(|a| a == "--only") {
        None => Fault::ALL.to_vec(),
        Some(i) => {
            let wanted = args.get(i + 1).map(String::as_str).unwrap_or_default();
            let parsed: Option<Vec<Fault>> = wanted.split(',').map(Fault::from_slug).collect();
            match parsed {
                Some(faults) if !faults.is_empty() => faults,
                _ => {
                    let mut known: Vec<&str> = Fault::ALL.iter().map(|f| f.slug()).collect();
                    known.push(Fault::MosquittoRestartShared.slug());
                    eprintln!(
                        "--only {wanted:?}: expected a comma-separated list of {}",
                        known.join(", ")
                    );
                    return ExitCode::from(2);
                }
            }
        }
    };
    eprintln!("[reliability] plan {plan:?}");
    let rows = run(&plan, &faults).await;
    let table = markdown(&rows);
    println!("{table}");
    let dir = testbed::repo_root().join("target/reliability");
    let written = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(dir.join(format!("{}.md", plan.name)), &table))
        .and_then(|()| {
            let json = serde_json::to_string_pretty(&to_json(&rows)).unwrap_or_default();
            std::fs::write(dir.join(format!("{}.json", plan.name)), json)
        });
    if let Err(e) = written {
        eprintln!("cannot write {}: {e}", dir.display());
        return ExitCode::FAILURE;
    }
    let lost: u64 = rows.iter().map(|r| r.lost).sum();
    if lost > 0 || rows.iter().any(|r| r.sent == 0) {
        eprintln!("[reliability] FAILED: {lost} messages lost (or a direction carried nothing)");
        return ExitCode::FAILURE;
    }
    eprintln!(
        "[reliability] lost = 0 in every row; table in {}",
        dir.display()
    );
    ExitCode::SUCCESS
}
