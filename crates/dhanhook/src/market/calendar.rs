//! The trading calendar: which continuous-trading sessions each venue has on a given IST date.
//!
//! Holidays and special sessions come from the data files (see [`super::data`]); the regular
//! timings are rules below, with their effective dates, as published in `docs/market.md` §2.
//! Pre-open and closing-auction/post-close periods are *not* sessions here: a market order
//! routed then would not trade continuously, so routing treats them as closed.

use std::{collections::BTreeMap, path::Path};

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, TimeDelta, TimeZone, Utc, Weekday};

use super::{
    Venue,
    data::{CalendarError, DayEntry, DayKind, ListId, YearFile, parse_file, parse_file_name},
};
use crate::clock::{ist, ist_offset};

/// How far ahead a missing holiday year is reported: NSE and BSE publish the next year's list in
/// mid-December, so a month and a half of notice before New Year.
pub const HOLIDAY_LOOKAHEAD_DAYS: i64 = 45;

/// How far ahead [`Calendar::next_open`] and [`Calendar::next_trading_day`] look. The longest
/// closure in any published Indian calendar is a few days; a month without a session means the
/// data is wrong, and callers then say so instead of scheduling far into the future.
pub(super) const SEARCH_DAYS: i64 = 30;

/// The holiday files compiled into the binary.
const BUILTIN: &[(&str, &str)] = &[
    (
        "nse-2026.csv",
        include_str!("../../data/holidays/nse-2026.csv"),
    ),
    (
        "bse-2026.csv",
        include_str!("../../data/holidays/bse-2026.csv"),
    ),
    (
        "cds-2026.csv",
        include_str!("../../data/holidays/cds-2026.csv"),
    ),
    (
        "mcx-2026.csv",
        include_str!("../../data/holidays/mcx-2026.csv"),
    ),
];

/// `HH:MM` as a constant. `from_hms_opt` is `const`, so a bad literal fails the build, not a run.
const fn hm(hour: u32, min: u32) -> NaiveTime {
    match NaiveTime::from_hms_opt(hour, min, 0) {
        Some(time) => time,
        None => panic!("invalid time literal"),
    }
}

/// Equity cash and F&O continuous session opens after the 09:00–09:15 pre-open (§2.1).
const EQUITY_OPEN: NaiveTime = hm(9, 15);
/// Equity cash close. From 3 Aug 2026 stocks with derivatives (the Closing Auction Session
/// stocks) stop continuous trading at 15:15, but that is per stock and needs the instrument
/// list; the venue-level calendar keeps 15:30, the close for all other stocks (§2.1).
const EQUITY_CLOSE: NaiveTime = hm(15, 30);
/// F&O close until 31 Jul 2026.
const FNO_CLOSE_OLD: NaiveTime = hm(15, 30);
/// F&O close from 3 Aug 2026 (NSE/FAOP/74467; BSE 20260612-9), §2.2.
const FNO_CLOSE_NEW: NaiveTime = hm(15, 40);
const FNO_NEW_CLOSE_FROM: NaiveDate = match NaiveDate::from_ymd_opt(2026, 8, 3) {
    Some(date) => date,
    None => panic!("invalid date literal"),
};
/// Currency derivatives (INR pairs) 09:00–17:00, §2.4.
const CURRENCY_OPEN: NaiveTime = hm(9, 0);
const CURRENCY_CLOSE: NaiveTime = hm(17, 0);
/// MCX morning session 09:00–17:00, evening 17:00–close, §1.3 / §2.3.
const MCX_OPEN: NaiveTime = hm(9, 0);
const MCX_EVENING_OPEN: NaiveTime = hm(17, 0);
/// MCX close for internationally referenceable contracts while US daylight saving is in force.
const MCX_CLOSE_US_SUMMER: NaiveTime = hm(23, 30);
const MCX_CLOSE_US_WINTER: NaiveTime = hm(23, 55);

/// Holidays and special sessions per exchange and year, as data (never code).
///
/// A year without a data file (e.g. 2027 before the exchanges publish it in December) is not an
/// error: its weekdays count as trading days with the regular timings, and
/// [`Calendar::missing_years`] reports the gap so the service can show it on `/ready`.
#[derive(Debug, Clone)]
pub struct Calendar {
    years: BTreeMap<(ListId, i32), YearFile>,
}

impl Venue {
    /// The published holiday list that governs this venue.
    fn list(self) -> ListId {
        match self {
            Venue::NseEquity | Venue::NseDerivatives => ListId::Nse,
            Venue::BseEquity | Venue::BseDerivatives => ListId::Bse,
            // Only the NSE CDS list was sourced; BSE currency is assumed to follow it (both
            // follow RBI settlement holidays). Override `cds-<year>.csv` if that ever differs.
            Venue::NseCurrency | Venue::BseCurrency => ListId::Cds,
            Venue::Mcx => ListId::Mcx,
        }
    }
}

impl Calendar {
    /// The data files shipped in the binary (`crates/dhanhook/data/holidays/*.csv`).
    ///
    /// A built-in file that fails to parse (a unit test guarantees they all parse) is logged and
    /// left out, so its year shows up in [`Calendar::missing_years`] instead of crashing the
    /// service.
    pub fn builtin() -> Calendar {
        let mut years = BTreeMap::new();
        for (name, text) in BUILTIN {
            match parse_file(name, name, text) {
                Ok(file) => {
                    years.insert((file.list, file.year), file);
                }
                Err(error) => {
                    tracing::error!(%error, "built-in holiday file is invalid; its year counts as missing");
                }
            }
        }
        Calendar { years }
    }

    /// Reads every `*.csv` in `dir` (same format and naming as the built-in files) and uses them
    /// instead of the built-in file for each (list, year) they cover; built-in files for other
    /// (list, year) stay. Files with other extensions (a README) are ignored; a `.csv` whose name
    /// is not `<list>-<year>.csv` is an error, since a typo would otherwise be silently ignored.
    // Blocking file calls, made from async code on purpose: a few small CSVs (one per exchange
    // and year), read once at start-up before the listener serves anything, or by `dhanhook
    // check`, so nothing waits on them.
    pub fn with_overrides(dir: &Path) -> Result<Calendar, CalendarError> {
        let mut calendar = Calendar::builtin();
        let mut paths = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| CalendarError::io(dir, e))? {
            let path = entry.map_err(|e| CalendarError::io(dir, e))?.path();
            if path.extension().is_some_and(|ext| ext == "csv") && path.is_file() {
                paths.push(path);
            }
        }
        // Sorted, so that with several bad files the same one is reported every time.
        paths.sort();
        for path in paths {
            let shown = path.display().to_string();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                return Err(CalendarError::FileName {
                    file: shown,
                    message: "the file name is not valid UTF-8".to_owned(),
                });
            };
            // Check the name before reading, so a stray big file fails fast with the right error.
            parse_file_name(&shown, name)?;
            let text = std::fs::read_to_string(&path).map_err(|e| CalendarError::io(&path, e))?;
            let file = parse_file(&shown, name, &text)?;
            calendar.years.insert((file.list, file.year), file);
        }
        Ok(calendar)
    }

    /// The years `/ready` and `/market-status` report as missing on `today`: this year and, ahead
    /// of time, the next one within [`HOLIDAY_LOOKAHEAD_DAYS`]. One window for both, so the two
    /// pages never disagree.
    pub fn missing_years_ahead(&self, venue: Venue, today: NaiveDate) -> Vec<i32> {
        self.missing_years(venue, today, HOLIDAY_LOOKAHEAD_DAYS)
    }

    /// Years (from `from`'s year through the year of `from + days`) for which `venue` has no
    /// data file. A negative `days` looks backwards; a window beyond chrono's date range counts
    /// only `from`'s year.
    pub fn missing_years(&self, venue: Venue, from: NaiveDate, days: i64) -> Vec<i32> {
        let to = TimeDelta::try_days(days)
            .and_then(|d| from.checked_add_signed(d))
            .unwrap_or(from);
        let (first, last) = if to < from {
            (to.year(), from.year())
        } else {
            (from.year(), to.year())
        };
        let list = venue.list();
        (first..=last)
            .filter(|year| !self.years.contains_key(&(list, *year)))
            .collect()
    }

    /// Continuous-trading windows of `venue` on IST date `date`, as UTC instants, in order.
    ///
    /// Empty on weekends and holidays unless a special session is listed. MCX trades 09:00 to
    /// its close as one window (the 17:00 morning/evening boundary is seamless), or only one of
    /// the two halves on a partial holiday.
    pub fn sessions_on(
        &self,
        venue: Venue,
        date: NaiveDate,
    ) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        self.sessions_ist(venue, date)
            .into_iter()
            .filter_map(|(open, close)| Some((at_ist(date, open)?, at_ist(date, close)?)))
            .collect()
    }

    /// The same windows as IST wall-clock times.
    pub(super) fn sessions_ist(
        &self,
        venue: Venue,
        date: NaiveDate,
    ) -> Vec<(NaiveTime, NaiveTime)> {
        let (open, close) = regular_session(venue, date);
        match self.entry(venue, date).map(|entry| entry.kind) {
            Some(DayKind::Holiday) => Vec::new(),
            Some(DayKind::Special { open, close }) => vec![(open, close)],
            // The parser only allows these on weekdays of the commodity list; `max`/`min` keep
            // the result a sane window even for a venue whose day does not span 17:00.
            Some(DayKind::MorningClosed) => window(open.max(MCX_EVENING_OPEN), close),
            Some(DayKind::EveningClosed) => window(open, close.min(MCX_EVENING_OPEN)),
            None if is_weekend(date) => Vec::new(),
            None => vec![(open, close)],
        }
    }

    fn entry(&self, venue: Venue, date: NaiveDate) -> Option<&DayEntry> {
        self.years
            .get(&(venue.list(), date.year()))
            .and_then(|file| file.days.get(&date))
    }

    /// Whether `venue` is in continuous trading at `at` (session start inclusive, end exclusive).
    pub fn is_open(&self, venue: Venue, at: DateTime<Utc>) -> bool {
        // Sessions never cross IST midnight, so only the IST date of `at` can contain it.
        self.sessions_on(venue, ist(at).date_naive())
            .iter()
            .any(|(open, close)| *open <= at && at < *close)
    }

    /// Whether `venue` has any session on IST date `date`.
    pub fn is_trading_day(&self, venue: Venue, date: NaiveDate) -> bool {
        !self.sessions_ist(venue, date).is_empty()
    }

    /// The first session start strictly after `after`, looking up to 30 days ahead.
    /// `None` means the data shows no session for a month, which only broken data can do.
    pub fn next_open(&self, venue: Venue, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let today = ist(after).date_naive();
        (0..=SEARCH_DAYS)
            .map_while(|offset| today.checked_add_signed(TimeDelta::days(offset)))
            .flat_map(|date| self.sessions_on(venue, date))
            .map(|(open, _)| open)
            .find(|open| *open > after)
    }

    /// The first trading day strictly after `after`, looking up to 30 days ahead.
    pub fn next_trading_day(&self, venue: Venue, after: NaiveDate) -> Option<NaiveDate> {
        (1..=SEARCH_DAYS)
            .map_while(|offset| after.checked_add_signed(TimeDelta::days(offset)))
            .find(|date| self.is_trading_day(venue, *date))
    }

    /// The next `n` weekday closures of `venue` on or after `from`, with their description.
    /// Weekend holidays change nothing and are left out; a partial MCX closure is included with
    /// the closed half named. Only years with data contribute (see [`Calendar::missing_years`]).
    pub fn upcoming_holidays(
        &self,
        venue: Venue,
        from: NaiveDate,
        n: usize,
    ) -> Vec<(NaiveDate, String)> {
        let list = venue.list();
        self.years
            .range((list, from.year())..=(list, i32::MAX))
            .flat_map(|(_, file)| file.days.range(from..))
            .filter(|(date, _)| !is_weekend(**date))
            .filter_map(|(date, entry)| {
                let description = match entry.kind {
                    DayKind::Holiday => entry.description.clone(),
                    DayKind::MorningClosed => {
                        format!("{} (morning session closed)", entry.description)
                    }
                    DayKind::EveningClosed => {
                        format!("{} (evening session closed)", entry.description)
                    }
                    // A weekday special session is a trading day, not a closure.
                    DayKind::Special { .. } => return None,
                };
                Some((*date, description))
            })
            .take(n)
            .collect()
    }
}

/// The regular continuous session of `venue` on a normal weekday `date` (IST).
fn regular_session(venue: Venue, date: NaiveDate) -> (NaiveTime, NaiveTime) {
    match venue {
        Venue::NseEquity | Venue::BseEquity => (EQUITY_OPEN, EQUITY_CLOSE),
        Venue::NseDerivatives | Venue::BseDerivatives => {
            let close = if date >= FNO_NEW_CLOSE_FROM {
                FNO_CLOSE_NEW
            } else {
                FNO_CLOSE_OLD
            };
            (EQUITY_OPEN, close)
        }
        Venue::NseCurrency | Venue::BseCurrency => (CURRENCY_OPEN, CURRENCY_CLOSE),
        Venue::Mcx => {
            let close = if mcx_us_summer(date) {
                MCX_CLOSE_US_SUMMER
            } else {
                MCX_CLOSE_US_WINTER
            };
            (MCX_OPEN, close)
        }
    }
}

/// Whether MCX closes at 23:30 on `date` (§2.3): from the Monday after the US "spring forward"
/// (second Sunday of March) to the Friday before the Monday after the US "fall back" (first
/// Sunday of November). 2026: 9 Mar – 30 Oct. For 2027 this derives 15 Mar – 5 Nov, which the
/// exchanges had not yet confirmed when this was written.
fn mcx_us_summer(date: NaiveDate) -> bool {
    let year = date.year();
    let spring = NaiveDate::from_weekday_of_month_opt(year, 3, Weekday::Sun, 2)
        .and_then(|sunday| sunday.succ_opt());
    let fall = NaiveDate::from_weekday_of_month_opt(year, 11, Weekday::Sun, 1)
        .and_then(|sunday| sunday.checked_sub_signed(TimeDelta::days(2)));
    match (spring, fall) {
        (Some(first), Some(last)) => first <= date && date <= last,
        // Only at the edges of chrono's date range; the longer winter close is the safe side.
        _ => false,
    }
}

fn is_weekend(date: NaiveDate) -> bool {
    matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
}

/// A one-window list, or none if the window is empty.
fn window(open: NaiveTime, close: NaiveTime) -> Vec<(NaiveTime, NaiveTime)> {
    if open < close {
        vec![(open, close)]
    } else {
        Vec::new()
    }
}

/// The UTC instant of IST wall-clock `time` on `date`. IST is a fixed offset, so this is always
/// unambiguous; `None` only at the edges of chrono's range.
pub(super) fn at_ist(date: NaiveDate, time: NaiveTime) -> Option<DateTime<Utc>> {
    ist_offset()
        .from_local_datetime(&date.and_time(time))
        .single()
        .map(|at| at.with_timezone(&Utc))
}
