//! bridge-runtime: the data plane of the MQTT ⇄ Kafka bridge.

mod app;
mod cli;
mod down;
mod health;
mod http;
mod kafka;
mod logging;
mod metrics;
mod mqtt;
mod process;
mod retire;
mod secrets;
mod shutdown;
mod up;

use std::process::ExitCode;

use clap::Parser;

/// Exit code for a configuration that cannot be used.
const EXIT_BAD_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    let config = match cli::load(&args.config) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("bridge-runtime: {message}");
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    if args.check {
        println!(
            "{}: valid ({} MQTT → Kafka, {} Kafka → MQTT routes)",
            args.config.display(),
            config.mqtt_to_kafka.len(),
            config.kafka_to_mqtt.len()
        );
        return ExitCode::SUCCESS;
    }
    if let Err(message) = logging::init(&config.config.logging) {
        eprintln!("bridge-runtime: {message}");
        return ExitCode::from(EXIT_BAD_CONFIG);
    }
    if let Some(ordinal) = args.retire_ordinal {
        return run_retirement(config, ordinal, args.summary_file.as_deref());
    }
    let ordinal = match cli::ordinal(config.config.ordinal) {
        Ok(n) => n,
        Err(message) => {
            eprintln!("bridge-runtime: {message}");
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    let runtime = match async_runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let outcome = runtime.block_on(app::run(config, ordinal));
    // A blocking call still waiting on a broker (a consumer leaving its group, see
    // down/route.rs) must not keep a finished process alive.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(process::RunError::Start(message)) => {
            tracing::error!("{message}");
            eprintln!("bridge-runtime: {message}");
            ExitCode::from(EXIT_BAD_CONFIG)
        }
        Err(process::RunError::Failed(message)) => {
            eprintln!("bridge-runtime: stopped after a failure: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The async runtime, with the process-wide TLS crypto provider installed.
fn async_runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    // rustls needs one process-wide crypto provider; ring is the one the workspace builds.
    let _ = rustls::crypto::ring::default_provider().install_default();
    tokio::runtime::Runtime::new().map_err(|e| {
        eprintln!("bridge-runtime: cannot start the async runtime: {e}");
        ExitCode::FAILURE
    })
}

fn run_retirement(
    config: mkb_api::ValidConfig,
    ordinal: u32,
    summary_file: Option<&std::path::Path>,
) -> ExitCode {
    let runtime = match async_runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let outcome = runtime.block_on(retire::retire(config, ordinal));
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match outcome {
        Ok(retired) => {
            let summary = format!(
                "retired the MQTT session {}: {} message(s) delivered to Kafka",
                retired.client_id, retired.drained
            );
            println!("{summary}");
            if let Some(path) = summary_file {
                // The retirement is done; a summary that cannot be written is only reported.
                if let Err(e) = std::fs::write(path, &summary) {
                    eprintln!(
                        "bridge-runtime: cannot write the summary to {}: {e}",
                        path.display()
                    );
                }
            }
            ExitCode::SUCCESS
        }
        Err(process::RunError::Start(message)) => {
            eprintln!("bridge-runtime: {message}");
            ExitCode::from(EXIT_BAD_CONFIG)
        }
        Err(process::RunError::Failed(message)) => {
            let summary = format!("the retirement failed: {message}");
            eprintln!("bridge-runtime: {summary}");
            // The operator reads the reason from here (the Job pod's termination message).
            if let Some(path) = summary_file {
                if let Err(e) = std::fs::write(path, &summary) {
                    eprintln!(
                        "bridge-runtime: cannot write the summary to {}: {e}",
                        path.display()
                    );
                }
            }
            ExitCode::FAILURE
        }
    }
}
