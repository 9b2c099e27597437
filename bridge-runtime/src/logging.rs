//! Structured logs with `tracing`, as text or JSON. `RUST_LOG`, when set, overrides the
//! configured filter.

use mkb_api::connection::{LogFormat, LoggingSettings};
use tracing_subscriber::EnvFilter;

pub fn init(settings: &LoggingSettings) -> Result<(), String> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(from_env) if !from_env.is_empty() => EnvFilter::try_new(&from_env)
            .map_err(|e| format!("RUST_LOG={from_env:?} is not a valid log filter: {e}"))?,
        _ => EnvFilter::try_new(&settings.level).map_err(|e| {
            format!(
                "logging.level: {:?} is not a valid log filter: {e}",
                settings.level
            )
        })?,
    };
    // Colours only on a terminal: log collectors get plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let result = match settings.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    result.map_err(|e| format!("cannot initialise logging: {e}"))
}
