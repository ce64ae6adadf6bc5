//! The keeper's rules as pure functions of the time and what it knows, so they are tested
//! directly, case by case, with no Dhan, journal or clock behind them:
//!
//! - [`decide`]: whether a refresh asked for now may call Dhan's auth host, waits, or is
//!   refused (cooldown, exponential backoff, the halt after `TOKEN_MAX_FAILURES`, a token a
//!   concurrent refresh already obtained);
//! - [`MintState::record_failure`] / [`MintState::record_success`]: what a mint's outcome does
//!   to that state;
//! - [`plan_refresh`]: when the schedule refreshes next (the margin and the pre-market check).

use chrono::{DateTime, NaiveTime, TimeZone, Utc};

use super::{Token, TokenSettings, to_chrono};
use crate::{
    clock::{ist, ist_offset},
    dhan::{DhanError, DhanErrorKind},
    market::{Calendar, Venue},
};

#[cfg(test)]
mod tests;

/// Why a refresh is wanted; decides whether a concurrent refresh already satisfied it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reason {
    /// No usable token (none, expired or refused).
    Missing,
    /// The schedule says so (margin or pre-market).
    Scheduled,
    /// Dhan refused the token we hold.
    Refused,
    /// An operator asked.
    Operator,
}

/// Whether a refresh may wait out Dhan's mint cooldown. Only the background schedule does:
/// an order never hangs for minutes behind it (it is refused at once, saying when a token can
/// be had), and an operator is told how long to wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Patience {
    WaitOutCooldown,
    AnswerNow,
}

/// Mint bookkeeping, guarded by the single-flight mutex.
#[derive(Debug, Default, Clone)]
pub(super) struct MintState {
    /// The last call to Dhan's auth host made by this process.
    pub(super) last_attempt: Option<DateTime<Utc>>,
    pub(super) failures: u32,
    pub(super) halted: bool,
    pub(super) last_error: Option<String>,
}

impl MintState {
    /// A token was obtained: the failure count and any halt are over.
    pub(super) fn record_success(&mut self, at: DateTime<Utc>) {
        self.last_attempt = Some(at);
        self.failures = 0;
        self.halted = false;
        self.last_error = None;
    }

    /// Dhan refused to issue a token. Returns whether minting is now halted.
    pub(super) fn record_failure(
        &mut self,
        at: DateTime<Utc>,
        error: &DhanError,
        max_failures: u32,
    ) -> bool {
        self.last_attempt = Some(at);
        // Dhan's own throttle is not a credential failure: it does not count toward the halt,
        // which exists because too many failed logins can lock the Dhan account.
        if error.kind != DhanErrorKind::RateLimit {
            self.failures += 1;
        }
        self.last_error = Some(error.to_string());
        if self.failures >= max_failures {
            self.halted = true;
        }
        self.halted
    }

    /// An operator's request: the next attempt is allowed however many failed before.
    pub(super) fn lift_halt(&mut self) {
        self.halted = false;
        self.failures = 0;
    }
}

/// What the keeper knows when a refresh is asked for, read just before [`decide`].
#[derive(Debug, Clone, Copy)]
pub(super) struct Situation<'a> {
    pub(super) mint: &'a MintState,
    /// The token in use if it may be sent (after adopting a newer stored one).
    pub(super) usable: Option<&'a Token>,
    /// The token Dhan refused, for [`Reason::Refused`].
    pub(super) rejected: Option<&'a Token>,
    /// Whether a new token can be had without a person (see `TokenKeeper::renewable`).
    pub(super) renewable: bool,
    /// When the stored token was obtained from Dhan's auth host, here or by another instance
    /// sharing the journal; `None` for a pasted `DHAN_ACCESS_TOKEN` (it started no cooldown).
    pub(super) stored_obtained_at: Option<DateTime<Utc>>,
}

/// What a refresh does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Decision {
    /// The token in use already answers this reason (a concurrent refresh, here or in another
    /// instance, got one): use it, call no one.
    UseCurrent,
    /// Call Dhan's auth host now.
    Mint,
    /// Only the schedule's refresh: wait until then (Dhan's cooldown), then decide again.
    WaitUntil(DateTime<Utc>),
    /// Answer at once with this error.
    Refuse(Refusal),
}

/// Why a refresh is refused without calling Dhan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Refusal {
    /// No configured way to get a token.
    NoRoute,
    /// `TOKEN_MAX_FAILURES` failures in a row: only an operator restarts minting.
    Halted,
    /// The last mint failed; the next attempt is not before `until`.
    BackingOff { until: DateTime<Utc> },
    /// Dhan's mint cooldown is not over.
    Cooldown { wait_secs: u64 },
}

/// Whether a refresh for `reason` may call Dhan now, given `s`. The rules, in order:
/// 1. a token that already answers the reason is used (see [`satisfies`]);
/// 2. without PIN + TOTP or a renewable web token, refuse (nothing to mint with);
/// 3. an operator's request lifts a halt and forgets failures (see [`lifts_halt`]); anything
///    else is refused while halted;
/// 4. no attempt before the last one (here or another instance's) + `TOKEN_MINT_COOLDOWN` ×
///    2^(failures − 1), doubling up to 64×: inside it, refuse with the backoff after a
///    failure (except an operator's request), refuse with the wait when answering now, or
///    wait it out (the schedule);
/// 5. otherwise mint.
pub(super) fn decide(
    now: DateTime<Utc>,
    s: &Situation<'_>,
    reason: Reason,
    patience: Patience,
    settings: &TokenSettings,
) -> Decision {
    if s.usable
        .is_some_and(|cur| satisfies(cur, reason, s.rejected, now, settings))
    {
        return Decision::UseCurrent;
    }
    if !s.renewable {
        return Decision::Refuse(Refusal::NoRoute);
    }
    let (failures, halted) = if reason == Reason::Operator {
        (0, false)
    } else {
        (s.mint.failures, s.mint.halted)
    };
    if halted {
        return Decision::Refuse(Refusal::Halted);
    }
    let last = match (s.mint.last_attempt, s.stored_obtained_at) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    let Some(last) = last else {
        return Decision::Mint;
    };
    let ready = last
        + to_chrono(settings.mint_cooldown)
            * 2i32.saturating_pow(failures.saturating_sub(1).min(6));
    if ready <= now {
        return Decision::Mint;
    }
    if failures > 0 {
        return Decision::Refuse(Refusal::BackingOff { until: ready });
    }
    match patience {
        Patience::AnswerNow => Decision::Refuse(Refusal::Cooldown {
            wait_secs: u64::try_from((ready - now).num_seconds().max(1)).unwrap_or(1),
        }),
        Patience::WaitOutCooldown => Decision::WaitUntil(ready),
    }
}

/// Whether acting on `decision` clears the mint state's halt and failures first: an operator's
/// request does once it gets past "nothing to mint with" (rule 3 of [`decide`]), even when it
/// is then told to wait out the cooldown.
pub(super) fn lifts_halt(reason: Reason, decision: &Decision) -> bool {
    reason == Reason::Operator
        && !matches!(
            decision,
            Decision::UseCurrent | Decision::Refuse(Refusal::NoRoute)
        )
}

/// Whether `current` (a usable token) already answers a refresh for `reason`: a refresh that
/// waited for the single-flight lock, or for another instance, must not mint again for a
/// need that is gone (a new token kills the previous one at Dhan).
pub(super) fn satisfies(
    current: &Token,
    reason: Reason,
    rejected: Option<&Token>,
    now: DateTime<Utc>,
    settings: &TokenSettings,
) -> bool {
    match reason {
        Reason::Missing => true,
        Reason::Refused => rejected.is_some_and(|r| !current.same_as(r)),
        Reason::Scheduled => current.expires_at - to_chrono(settings.refresh_margin) > now,
        Reason::Operator => false,
    }
}

/// When the next refresh should happen, or `None` (halted: only an operator can restart it).
/// A pure function of the time, the token, the settings and the trading calendar.
pub(crate) fn plan_refresh(
    now: DateTime<Utc>,
    token: Option<&Token>,
    settings: &TokenSettings,
    halted: bool,
    calendar: &Calendar,
) -> Option<DateTime<Utc>> {
    if halted {
        return None;
    }
    let Some(token) = token else { return Some(now) };
    let mut at = token.expires_at - to_chrono(settings.refresh_margin);
    if let Some(premarket) = settings.premarket_refresh
        && let Some(check) = next_premarket(now, premarket, calendar)
    {
        // Refresh at the pre-market check if the token would not last through the session.
        let close = ist_offset()
            .from_local_datetime(&ist(check).date_naive().and_time(MARKET_CLOSE))
            .single()
            .map(|c| c.with_timezone(&Utc));
        if close.is_some_and(|c| token.expires_at < c + to_chrono(settings.refresh_margin))
            && check < at
        {
            at = check;
        }
    }
    Some(at.max(now))
}

/// The NSE equity close: the token must last at least until then (plus the margin).
const MARKET_CLOSE: NaiveTime = match NaiveTime::from_hms_opt(15, 30, 0) {
    Some(t) => t,
    None => panic!("15:30 is a valid time"),
};

/// The next pre-market check at `time` IST, strictly after `now`, on a day NSE equity trades.
/// A holiday has no check: refreshing that morning would not keep the next trading day's
/// session free of a mid-session refresh, which is what the check is for.
fn next_premarket(
    now: DateTime<Utc>,
    time: NaiveTime,
    calendar: &Calendar,
) -> Option<DateTime<Utc>> {
    let today = ist(now).date_naive();
    (0..8).find_map(|d| {
        let day = today + chrono::Duration::days(d);
        if !calendar.is_trading_day(Venue::NseEquity, day) {
            return None;
        }
        let at = ist_offset()
            .from_local_datetime(&day.and_time(time))
            .single()?
            .with_timezone(&Utc);
        (at > now).then_some(at)
    })
}
