//! Command line and configuration loading.

use std::path::{Path, PathBuf};

use clap::Parser;
use mkb_api::{load_runtime_config, ValidConfig};

/// bridge-runtime: moves device data from MQTT into Kafka and commands from Kafka back to
/// MQTT, with at-least-once delivery both ways.
#[derive(Debug, Parser)]
#[command(name = "bridge-runtime", version)]
pub struct Args {
    /// The runtime configuration file (YAML). See docs/runtime.md.
    #[arg(long, short, env = "BRIDGE_CONFIG", value_name = "FILE")]
    pub config: PathBuf,
    /// Validate the configuration, print every problem found, and exit.
    #[arg(long, conflicts_with = "retire_ordinal")]
    pub check: bool,
    /// Retire the MQTT session of replica N instead of running: unsubscribe its route
    /// filters, deliver what the broker queued for it to Kafka, end the session, and exit.
    /// For replicas removed by a scale-down; see docs/runtime.md.
    #[arg(long, value_name = "N")]
    pub retire_ordinal: Option<u32>,
    /// With --retire-ordinal: also write the one-line summary to FILE (in a Kubernetes Job,
    /// /dev/termination-log, which the pod's status then shows).
    #[arg(long, value_name = "FILE", requires = "retire_ordinal")]
    pub summary_file: Option<PathBuf>,
}

/// Reads and validates the configuration file; the error is the text to print, one problem
/// per line, each with its field path.
pub fn load(path: &Path) -> Result<ValidConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    load_runtime_config(&text).map_err(|errors| {
        let mut out = format!(
            "invalid configuration {} ({} problem{}):",
            path.display(),
            errors.len(),
            if errors.len() == 1 { "" } else { "s" }
        );
        for error in errors.iter() {
            out.push_str(&format!("\n  {error}"));
        }
        out
    })
}

/// This replica's ordinal: the configuration's, else `BRIDGE_ORDINAL`, else the trailing
/// `-<N>` of `POD_NAME` or `HOSTNAME` (StatefulSet pods are `<name>-<N>`), else 0.
pub fn ordinal(configured: Option<u32>) -> Result<u32, String> {
    if let Some(n) = configured {
        return Ok(n);
    }
    if let Ok(value) = std::env::var("BRIDGE_ORDINAL") {
        return value
            .parse()
            .map_err(|_| format!("BRIDGE_ORDINAL={value:?} is not a non-negative integer"));
    }
    let from_name = |var: &str| {
        std::env::var(var)
            .ok()
            .and_then(|name| name.rsplit_once('-').and_then(|(_, n)| n.parse().ok()))
    };
    Ok(from_name("POD_NAME")
        .or_else(|| from_name("HOSTNAME"))
        .unwrap_or(0))
}
