//! Crash points for fault tests: `DHANHOOK_CRASH_AT=<point>` makes the process abort (no
//! cleanup, like `kill -9`) when it reaches that point, so tests can check that a restart
//! loses nothing and places nothing twice. Unset (always, in production) it does nothing.
//!
//! Points: `after_journal` (alert committed, nothing sent), `after_submitting` (leg marked
//! SUBMITTING, request not sent), `after_broker` (the broker accepted, the journal not updated).

use std::sync::OnceLock;

fn configured() -> Option<&'static str> {
    static AT: OnceLock<Option<String>> = OnceLock::new();
    AT.get_or_init(|| std::env::var("DHANHOOK_CRASH_AT").ok())
        .as_deref()
}

/// Aborts the process if `DHANHOOK_CRASH_AT` names this point.
pub fn point(name: &str) {
    if configured() == Some(name) {
        eprintln!("DHANHOOK_CRASH_AT={name}: aborting on purpose");
        std::process::abort();
    }
}
