//! Logging: tracing to stdout, pretty for a terminal or JSON for log collectors.
//!
//! The filter comes from `RUST_LOG` when set, else a default that keeps our own events at
//! `info` and quiets the libraries. No code path logs a secret: request bodies, auth headers
//! and URLs of auth calls are never recorded (see `http` and `secrets`).

use std::io::IsTerminal;

use tracing_subscriber::{EnvFilter, fmt};

use crate::config::LogFormat;

/// The filter when `RUST_LOG` is unset.
pub const DEFAULT_FILTER: &str = "info,sqlx=warn,hyper=warn";

/// Installs the global subscriber, with `default_filter` unless `RUST_LOG` says otherwise.
/// Calling it again (as tests may) is harmless.
pub fn init(format: LogFormat, default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = fmt().with_env_filter(filter).with_target(false);
    let result = match format {
        LogFormat::Pretty => builder
            .with_ansi(std::io::stdout().is_terminal())
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
    };
    // Already installed (a second call in one process): keep the first.
    drop(result);
}
