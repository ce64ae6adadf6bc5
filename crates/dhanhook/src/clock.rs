//! The service's single source of "now".
//!
//! Everything that depends on time (dedupe windows, token expiry, scheduled refreshes, market
//! hours) asks a [`Clock`] instead of calling `Utc::now()` directly, and waits with
//! [`Clock::sleep_until`] instead of `tokio::time::sleep`, so tests can move time forward
//! without sleeping. Market logic is done in Asia/Kolkata; [`ist`] converts.

use std::{future::Future, pin::Pin};

use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use tokio::sync::watch;

/// A boxed future, so [`Clock`] stays usable as `Arc<dyn Clock>`.
pub type Sleep<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// A source of the current instant.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> DateTime<Utc>;

    /// Completes once [`Clock::now`] has reached `deadline`.
    fn sleep_until(&self, deadline: DateTime<Utc>) -> Sleep<'_>;
}

/// The real wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn sleep_until(&self, deadline: DateTime<Utc>) -> Sleep<'_> {
        Box::pin(async move {
            // Re-check after waking: the wall clock can be stepped (NTP) while we sleep.
            loop {
                let left = deadline - Utc::now();
                let Ok(left) = left.to_std() else { return };
                if left.is_zero() {
                    return;
                }
                tokio::time::sleep(left).await;
            }
        })
    }
}

/// The wall clock shifted to start at a chosen instant, running at real speed
/// (`DHANHOOK_CLOCK_START`): for trying market-hours behaviour at any hour, and for tests
/// that run the real binary at a known market time.
#[derive(Debug, Clone, Copy)]
pub struct OffsetClock {
    offset: chrono::Duration,
}

impl OffsetClock {
    /// A clock whose "now" is `start` at the moment of the call.
    pub fn starting_at(start: DateTime<Utc>) -> Self {
        Self {
            offset: start - Utc::now(),
        }
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.offset
    }

    fn sleep_until(&self, deadline: DateTime<Utc>) -> Sleep<'_> {
        SystemClock.sleep_until(deadline - self.offset)
    }
}

/// A clock that only moves when told to: tests move it, and every [`Clock::sleep_until`]
/// whose deadline is passed wakes up at once, without real waiting.
#[derive(Debug, Clone)]
pub struct ManualClock {
    /// A watch channel: setting the time notifies every sleeper, which re-checks its deadline.
    now: std::sync::Arc<watch::Sender<DateTime<Utc>>>,
}

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            now: std::sync::Arc::new(watch::Sender::new(start)),
        }
    }

    pub fn set(&self, to: DateTime<Utc>) {
        self.now.send_replace(to);
    }

    pub fn advance(&self, by: chrono::Duration) {
        self.now.send_modify(|now| *now += by);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.borrow()
    }

    fn sleep_until(&self, deadline: DateTime<Utc>) -> Sleep<'_> {
        let mut rx = self.now.subscribe();
        Box::pin(async move {
            // The sender lives as long as `self`, so this only ends when the deadline is reached.
            let _ = rx.wait_for(|now| *now >= deadline).await;
        })
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

    #[tokio::test]
    async fn manual_sleepers_wake_when_the_clock_passes_their_deadline() {
        let start = Utc.with_ymd_and_hms(2026, 1, 5, 0, 0, 0).unwrap();
        let clock = ManualClock::new(start);
        let waiter = {
            let clock = clock.clone();
            tokio::spawn(async move { clock.sleep_until(start + chrono::Duration::hours(1)).await })
        };
        clock.advance(chrono::Duration::minutes(59));
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "59 minutes is not an hour");
        clock.advance(chrono::Duration::minutes(1));
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
    }

    #[test]
    fn millis_round_trip() {
        let at =
            Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap() + chrono::Duration::milliseconds(7);
        assert_eq!(from_millis(to_millis(at)), at);
    }
}
