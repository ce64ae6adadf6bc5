//! The simulator's clock, and Dhan's IST time formats.
//!
//! The sim clock runs at real speed from a settable anchor, so a service computing TOTP
//! codes from its own wall clock agrees with it by default, while tests can still jump
//! it forward (token expiry, mint cooldown) without waiting.

use std::time::Instant;

use chrono::{DateTime, FixedOffset, Offset as _, Utc};

/// A clock that runs at real speed but can be set or advanced.
#[derive(Debug, Clone)]
pub(crate) struct SimClock {
    anchor_sim: DateTime<Utc>,
    anchor_real: Instant,
}

impl SimClock {
    pub(crate) fn new(start: DateTime<Utc>) -> Self {
        Self {
            anchor_sim: start,
            anchor_real: Instant::now(),
        }
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        let elapsed = chrono::Duration::from_std(self.anchor_real.elapsed())
            .unwrap_or_else(|_| chrono::Duration::zero());
        self.anchor_sim
            .checked_add_signed(elapsed)
            .unwrap_or(self.anchor_sim)
    }

    pub(crate) fn set(&mut self, t: DateTime<Utc>) {
        self.anchor_sim = t;
        self.anchor_real = Instant::now();
    }

    pub(crate) fn advance(&mut self, d: chrono::Duration) {
        // An out-of-range jump is ignored rather than allowed to panic.
        if let Some(t) = self.anchor_sim.checked_add_signed(d) {
            self.anchor_sim = t;
        }
    }
}

/// India Standard Time: UTC+05:30 all year (India has no daylight saving).
pub(crate) fn ist() -> FixedOffset {
    // The offset is a constant in range, so the fallback to UTC is never taken.
    FixedOffset::east_opt(5 * 3600 + 30 * 60).unwrap_or(Utc.fix())
}

/// `expiryTime` of token responses: IST wall time with milliseconds and no offset.
pub(crate) fn expiry_time(t: DateTime<Utc>) -> String {
    t.with_timezone(&ist())
        .format("%Y-%m-%dT%H:%M:%S%.3f")
        .to_string()
}

/// `tokenValidity` of `/v2/profile`: `DD/MM/YYYY HH:MM` in IST.
pub(crate) fn token_validity(t: DateTime<Utc>) -> String {
    t.with_timezone(&ist()).format("%d/%m/%Y %H:%M").to_string()
}

/// Order and trade book times: `YYYY-MM-DD HH:MM:SS` in IST.
pub(crate) fn book_time(t: DateTime<Utc>) -> String {
    t.with_timezone(&ist())
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// The sentinel Dhan uses for a time that has not happened yet.
pub(crate) const NO_TIME: &str = "0001-01-01 00:00:00";

/// The IST calendar day of a sim instant (consent limits are per day).
pub(crate) fn ist_date(t: DateTime<Utc>) -> chrono::NaiveDate {
    t.with_timezone(&ist()).date_naive()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn formats_are_ist() {
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 3, 45, 0).unwrap();
        assert_eq!(expiry_time(t), "2026-01-01T09:15:00.000");
        assert_eq!(token_validity(t), "01/01/2026 09:15");
        assert_eq!(book_time(t), "2026-01-01 09:15:00");
    }

    #[test]
    fn advance_and_set_move_the_clock() {
        let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let mut clock = SimClock::new(start);
        clock.advance(chrono::Duration::hours(2));
        assert!(clock.now() >= start + chrono::Duration::hours(2));
        clock.set(start);
        assert!(clock.now() < start + chrono::Duration::hours(1));
    }
}
