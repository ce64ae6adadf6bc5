//! Routing one alert by the clock: send now, send as an after-market order, queue until the
//! market opens, or reject. A pure function of (instant, calendar, policy) so it can be tested
//! exhaustively and replayed from the journal.

use chrono::{DateTime, NaiveTime, Utc};

use super::{Calendar, Venue, calendar::SEARCH_DAYS};
use crate::{
    clock::ist,
    domain::{AmoTime, WhenClosed},
};

/// When Dhan will take an after-market order (AMO) for a venue, in IST.
///
/// Dhan does not publish its AMO acceptance window for any segment (`docs/market.md` §3, "NOT
/// FOUND"), so the window is a conservative guess that can be configured:
///
/// - **opens 16:00**: the equity post-close session ends at 16:00 (15:40–16:00 until Jul 2026,
///   15:50–16:00 after), and F&O now trades to 15:40. From 16:00 no equity or F&O session of the
///   day is running, so an AMO cannot collide with that day's trading. Other brokers open theirs
///   at 15:45–16:01.
/// - **closes 08:55**: five minutes before the 09:00 pre-open starts. Other brokers stop taking
///   equity AMOs at 08:57–08:59; the margin covers clock skew and request latency, and a late
///   order is then queued to 09:15 instead of bouncing off a closed AMO window.
/// - On top of the window a venue must actually be closed at the time: currency trades to 17:00
///   and a Muhurat session can run in the evening, and an AMO sent into an open market is wrong.
/// - **MCX** takes AMOs whenever it is closed (as at other brokers); the window does not apply.
///
/// If Dhan refuses anyway it answers with a reject code (e.g. DH-906 "Market is Closed"), which
/// the order path reports. The window is assumed to span midnight (`opens` in the evening,
/// `closes` in the morning).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AmoWindow {
    /// IST time on a trading day from which AMOs are accepted.
    pub opens: NaiveTime,
    /// IST time on the next trading day until which AMOs are accepted (exclusive).
    pub closes: NaiveTime,
}

impl Default for AmoWindow {
    fn default() -> Self {
        AmoWindow {
            opens: NaiveTime::from_hms_opt(16, 0, 0).unwrap_or(NaiveTime::MIN),
            closes: NaiveTime::from_hms_opt(8, 55, 0).unwrap_or(NaiveTime::MIN),
        }
    }
}

impl AmoWindow {
    /// Whether Dhan should accept an AMO for `venue` at `at`: the venue is closed, and it is
    /// either MCX or inside the window, which runs from `opens` on a trading day (once that day's
    /// last session has ended) through all non-trading days to `closes` on the next trading day
    /// (and before its first session).
    pub fn accepts(&self, venue: Venue, at: DateTime<Utc>, calendar: &Calendar) -> bool {
        if calendar.is_open(venue, at) {
            return false;
        }
        if venue == Venue::Mcx {
            return true;
        }
        let local = ist(at);
        let time = local.time();
        let sessions = calendar.sessions_ist(venue, local.date_naive());
        match (sessions.first(), sessions.last()) {
            (Some((first_open, _)), Some((_, last_close))) => {
                (time >= self.opens && time >= *last_close)
                    || (time < self.closes && time < *first_open)
            }
            // A non-trading day lies between a trading day's evening and the next one's morning.
            _ => true,
        }
    }
}

/// The decision for one alert (all its legs' venues).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "route", rename_all = "snake_case")]
pub enum Route {
    /// Every venue is open: place the orders now.
    Now,
    /// Place them now as after-market orders with this `amoTime`.
    Amo { amo_time: AmoTime },
    /// Hold the alert until this instant, the next moment every venue is open.
    Queue { until: DateTime<Utc> },
    /// Refuse the alert; the reason is one sentence for the trader.
    Reject { reason: String },
}

/// Decides what to do with an alert at `at` whose legs trade on `venues`.
///
/// - every venue open at `at` → [`Route::Now`] (also for an empty `venues`: nothing is closed);
/// - policy [`WhenClosed::Amo`]: if Dhan takes an AMO for every venue at `at`
///   ([`AmoWindow::accepts`]) → [`Route::Amo`], otherwise queue until the next moment every
///   venue is open (e.g. 15:30–16:00, or the 09:00–09:15 pre-open);
/// - policy [`WhenClosed::Queue`] → [`Route::Queue`];
/// - policy [`WhenClosed::Reject`] → [`Route::Reject`] naming the closed venue(s) and the next
///   open in IST;
/// - no next open found within a month (broken or missing holiday data) → [`Route::Reject`]
///   saying so, rather than queueing indefinitely.
pub fn route(
    at: DateTime<Utc>,
    venues: &[Venue],
    policy: WhenClosed,
    amo: AmoWindow,
    amo_time: AmoTime,
    calendar: &Calendar,
) -> Route {
    let mut distinct: Vec<Venue> = Vec::with_capacity(venues.len());
    for venue in venues {
        if !distinct.contains(venue) {
            distinct.push(*venue);
        }
    }
    let closed: Vec<Venue> = distinct
        .iter()
        .copied()
        .filter(|venue| !calendar.is_open(*venue, at))
        .collect();
    if closed.is_empty() {
        return Route::Now;
    }
    if policy == WhenClosed::Amo
        && distinct
            .iter()
            .all(|venue| amo.accepts(*venue, at, calendar))
    {
        return Route::Amo { amo_time };
    }

    let names = join_labels(&closed);
    let verb = if closed.len() == 1 { "is" } else { "are" };
    let Some(until) = next_all_open(calendar, &distinct, at) else {
        return Route::Reject {
            reason: format!(
                "{names} {verb} closed at {} and no session was found in the next {SEARCH_DAYS} days, so the holiday data is missing or wrong; the alert was not placed.",
                format_ist(at)
            ),
        };
    };
    match policy {
        WhenClosed::Amo | WhenClosed::Queue => Route::Queue { until },
        WhenClosed::Reject => {
            let next = if distinct.len() == 1 {
                "it next opens"
            } else {
                "all of this alert's markets are next open together"
            };
            Route::Reject {
                reason: format!(
                    "{names} {verb} closed at {}; {next} at {}.",
                    format_ist(at),
                    format_ist(until)
                ),
            }
        }
    }
}

/// The first instant at or after `at` at which every venue is open, or `None` if there is none
/// within [`SEARCH_DAYS`].
///
/// Moves a candidate forward to the next open of whichever venue is closed at it. That never
/// overshoots: a venue closed at the candidate cannot be open again before its next session
/// start. Session starts are the only instants the candidate takes, so this ends quickly.
fn next_all_open(
    calendar: &Calendar,
    venues: &[Venue],
    at: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let horizon = at
        .checked_add_signed(chrono::TimeDelta::days(SEARCH_DAYS))
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    let mut candidate = at;
    while candidate <= horizon {
        match venues
            .iter()
            .find(|venue| !calendar.is_open(**venue, candidate))
        {
            None => return Some(candidate),
            Some(venue) => candidate = calendar.next_open(*venue, candidate)?,
        }
    }
    None
}

/// "NSE equity", "NSE equity and MCX", "NSE equity, NSE F&O and MCX".
fn join_labels(venues: &[Venue]) -> String {
    let labels: Vec<&str> = venues.iter().map(|venue| venue.label()).collect();
    match labels.split_last() {
        None => String::new(),
        Some((last, [])) => (*last).to_owned(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}

/// An instant as a trader reads it: "Mon 07 Dec 2026 09:15 IST".
fn format_ist(at: DateTime<Utc>) -> String {
    ist(at).format("%a %d %b %Y %H:%M IST").to_string()
}
