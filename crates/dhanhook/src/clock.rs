//! The service's single source of "now".
//!
//! Everything that depends on time (dedupe windows today; token expiry and market hours later)
//! asks a [`Clock`] instead of calling `Utc::now()` directly, so tests can move time forward
//! without sleeping. Market logic is done in Asia/Kolkata; [`ist`] converts for display.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, FixedOffset, TimeZone, Utc};

/// A source of the current instant.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> DateTime<Utc>;
}

/// The real wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to. Used by tests (and later by the simulator).
#[derive(Debug, Clone)]
pub struct ManualClock {
    /// Shared so a test can keep a handle and move the time the application sees.
    now: Arc<Mutex<DateTime<Utc>>>,
}

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            now: Arc::new(Mutex::new(start)),
        }
    }

    pub fn set(&self, to: DateTime<Utc>) {
        *self.now.lock().expect("clock mutex poisoned") = to;
    }

    pub fn advance(&self, by: chrono::Duration) {
        let mut now = self.now.lock().expect("clock mutex poisoned");
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().expect("clock mutex poisoned")
    }
}

/// India Standard Time. IST has no daylight saving, so a fixed +05:30 offset is exact.
pub fn ist_offset() -> FixedOffset {
    FixedOffset::east_opt(5 * 3600 + 30 * 60).expect("+05:30 is a valid offset")
}

/// The instant as IST wall-clock time.
pub fn ist(at: DateTime<Utc>) -> DateTime<FixedOffset> {
    at.with_timezone(&ist_offset())
}

/// Milliseconds since the Unix epoch: how the journal stores instants (portable across backends,
/// and comparisons in SQL are plain integer comparisons).
pub fn to_millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

/// The inverse of [`to_millis`]. Out-of-range values (never written by us) clamp to the epoch.
pub fn from_millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or(DateTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ist_is_five_and_a_half_hours_ahead_of_utc() {
        let utc = Utc.with_ymd_and_hms(2026, 11, 27, 3, 45, 0).unwrap();
        assert_eq!(
            ist(utc).format("%Y-%m-%d %H:%M").to_string(),
            "2026-11-27 09:15"
        );
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let start = Utc.with_ymd_and_hms(2026, 1, 5, 0, 0, 0).unwrap();
        let clock = ManualClock::new(start);
        assert_eq!(clock.now(), start);
        clock.advance(chrono::Duration::seconds(90));
        assert_eq!(clock.now(), start + chrono::Duration::seconds(90));
    }

    #[test]
    fn millis_round_trip() {
        let at =
            Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap() + chrono::Duration::milliseconds(7);
        assert_eq!(from_millis(to_millis(at)), at);
    }
}
