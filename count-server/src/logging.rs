//! The binary's logs: on stderr, as text for people (coloured only when stderr is a
//! terminal and `NO_COLOR` is unset) or as one JSON object a line for log shippers.
//! The level comes from `RUST_LOG` (default `info`).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, clap::ValueEnum)]
#[non_exhaustive]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object a line (`timestamp`, `level`, `fields`, `target`).
    Json,
}

/// Installs the process's log subscriber, writing to stderr at `RUST_LOG`'s level, or
/// at `default_level` when `RUST_LOG` is unset or invalid. Does nothing when one is
/// installed already.
pub fn init(format: LogFormat, default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => builder.with_ansi(colours_wanted()).try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    // Already installed (a test, a second call): keep that one.
    drop(installed);
}

/// Colours only for a person at a terminal who did not ask for none
/// (<https://no-color.org>).
fn colours_wanted() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}
