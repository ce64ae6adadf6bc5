//! Market calendar and order routing: is a venue trading right now, and if not, what should an
//! alert do (place an after-market order, wait in the queue, or be rejected)?
//!
//! Every market fact comes from `docs/market.md`:
//! - holidays and special sessions are *data* (`crates/dhanhook/data/holidays/*.csv`, compiled in,
//!   and replaceable per exchange and year from a directory, see [`Calendar::with_overrides`]),
//!   because exchanges publish and amend them by circular;
//! - regular session timings are *rules* (see [`Calendar::sessions_on`]), because they are
//!   fixed by SEBI/exchange circulars with effective dates (F&O to 15:40 from 3 Aug 2026, MCX
//!   closing with US daylight saving).
//!
//! Nothing here reads the clock: every function takes the instant (`at`) it decides for, so the
//! caller's [`crate::clock::Clock`] (and the tests) control time. Instants are
//! `DateTime<Utc>` at the API; all market logic runs in IST (a fixed +05:30).

mod calendar;
mod data;
mod route;

#[cfg(test)]
mod tests;

pub use crate::domain::WhenClosed;
pub use calendar::Calendar;
pub use data::CalendarError;
pub use route::{AmoWindow, Route, route};

/// Which trading venue a leg trades on, from Dhan's `exchangeSegment`.
///
/// Serialises as the Dhan segment code (the same spelling as [`Venue::as_str`]), so JSON shown to
/// operators matches what Dhan's API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Venue {
    #[serde(rename = "NSE_EQ")]
    NseEquity,
    #[serde(rename = "BSE_EQ")]
    BseEquity,
    #[serde(rename = "NSE_FNO")]
    NseDerivatives,
    #[serde(rename = "BSE_FNO")]
    BseDerivatives,
    #[serde(rename = "NSE_CURRENCY")]
    NseCurrency,
    #[serde(rename = "BSE_CURRENCY")]
    BseCurrency,
    #[serde(rename = "MCX_COMM")]
    Mcx,
}

impl Venue {
    /// Every venue, for tests and for operator views that list them all.
    pub const ALL: [Venue; 7] = [
        Venue::NseEquity,
        Venue::BseEquity,
        Venue::NseDerivatives,
        Venue::BseDerivatives,
        Venue::NseCurrency,
        Venue::BseCurrency,
        Venue::Mcx,
    ];

    /// The venue of a Dhan `exchangeSegment` value. Index segments (`IDX_I`) are not tradable
    /// and so have no venue.
    pub fn from_segment(exchange_segment: &str) -> Option<Venue> {
        Venue::ALL
            .into_iter()
            .find(|venue| venue.as_str() == exchange_segment)
    }

    /// Dhan's `exchangeSegment` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Venue::NseEquity => "NSE_EQ",
            Venue::BseEquity => "BSE_EQ",
            Venue::NseDerivatives => "NSE_FNO",
            Venue::BseDerivatives => "BSE_FNO",
            Venue::NseCurrency => "NSE_CURRENCY",
            Venue::BseCurrency => "BSE_CURRENCY",
            Venue::Mcx => "MCX_COMM",
        }
    }

    /// How a trader would name the venue, for messages ("NSE F&O is closed...").
    pub fn label(self) -> &'static str {
        match self {
            Venue::NseEquity => "NSE equity",
            Venue::BseEquity => "BSE equity",
            Venue::NseDerivatives => "NSE F&O",
            Venue::BseDerivatives => "BSE F&O",
            Venue::NseCurrency => "NSE currency",
            Venue::BseCurrency => "BSE currency",
            Venue::Mcx => "MCX",
        }
    }
}

impl std::fmt::Display for Venue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
