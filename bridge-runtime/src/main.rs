//! bridge-runtime: the data plane of the MQTT ⇄ Kafka bridge.

mod cli;

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
    eprintln!(
        "bridge-runtime: running routes is not available yet (issue 4); use --check to validate"
    );
    ExitCode::FAILURE
}
