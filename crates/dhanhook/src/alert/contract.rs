//! What a symbol's text alone says about the contract it names, before any scrip master is
//! consulted: used by the parser (to check an alert's `instrument` and option fields against
//! its symbol) and by instrument resolution (to pick the lookup).
//!
//! Three shapes carry a contract in the symbol itself:
//! - Dhan's trading symbols: `NIFTY-Dec2026-FUT`, `NIFTY-Dec2026-24000-CE`,
//!   `BAJAJ-AUTO-Dec2026-FUT` (an underlying may contain `-`), and MCX's dated
//!   `CRUDEOIL-17Dec2026-FUT`. NSE/BSE symbols name a month, not a day, so weekly options in
//!   one month share a symbol;
//! - TradingView's continuous futures: `NIFTY1!`, `BANKNIFTY2!`;
//! - TradingView's option tickers: `NIFTY260929C23500` (`<UNDERLYING><YYMMDD><C|P><STRIKE>`).

use chrono::NaiveDate;

use super::OptionKind;

/// What a Dhan trading symbol names.
#[derive(Debug, Clone, PartialEq)]
pub struct DhanContract {
    /// Upper case, e.g. `NIFTY`, `BAJAJ-AUTO`.
    pub underlying: String,
    pub year: i32,
    pub month: u32,
    /// Only MCX symbols carry the day.
    pub day: Option<u32>,
    /// `None` for a future.
    pub option: Option<(OptionKind, f64)>,
}

impl DhanContract {
    /// Whether `date` falls in the month (and on the day, if named) this symbol names.
    pub fn matches_expiry(&self, date: NaiveDate) -> bool {
        use chrono::Datelike;
        date.year() == self.year
            && date.month() == self.month
            && self.day.is_none_or(|d| d == date.day())
    }

    /// The expiry as the symbol names it, for messages (`Dec 2026`, `17 Dec 2026`).
    pub fn expiry_text(&self) -> String {
        let month = MONTHS.get(self.month as usize - 1).copied().unwrap_or("?");
        match self.day {
            Some(d) => format!("{d} {month} {}", self.year),
            None => format!("{month} {}", self.year),
        }
    }
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Reads a Dhan derivative trading symbol (any case). `None` when the symbol is not one.
pub fn dhan_contract(symbol: &str) -> Option<DhanContract> {
    let parts: Vec<&str> = symbol.split('-').collect();
    let (kind, rest) = parts.split_last()?;
    let (option, rest) = match kind.to_ascii_uppercase().as_str() {
        "FUT" => (None, rest),
        ce_pe @ ("CE" | "PE") => {
            let (strike, rest) = rest.split_last()?;
            let strike: f64 = strike.parse().ok().filter(|s: &f64| *s > 0.0)?;
            let kind = if ce_pe == "CE" {
                OptionKind::Call
            } else {
                OptionKind::Put
            };
            (Some((kind, strike)), rest)
        }
        _ => return None,
    };
    let (date, underlying) = rest.split_last()?;
    if underlying.is_empty() || underlying.iter().any(|p| p.is_empty()) {
        return None;
    }
    let (day, month, year) = month_year(date)?;
    Some(DhanContract {
        underlying: underlying.join("-").to_ascii_uppercase(),
        year,
        month,
        day,
        option,
    })
}

/// `Dec2026` → (None, 12, 2026); `17Dec2026` → (Some(17), 12, 2026).
fn month_year(token: &str) -> Option<(Option<u32>, u32, i32)> {
    let digits_before = token.bytes().take_while(u8::is_ascii_digit).count();
    let (day, rest) = token.split_at(digits_before);
    if rest.len() != 7 {
        return None;
    }
    let (month, year) = rest.split_at(3);
    let month = MONTHS
        .iter()
        .position(|m| m.eq_ignore_ascii_case(month))
        .and_then(|i| u32::try_from(i + 1).ok())?;
    if !year.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let year: i32 = year.parse().ok()?;
    let day = match day {
        "" => None,
        d => {
            let d: u32 = d.parse().ok()?;
            NaiveDate::from_ymd_opt(year, month, d)?;
            Some(d)
        }
    };
    Some((day, month, year))
}

/// `NIFTY1!` → (`NIFTY`, 1). Only `1!` and `2!` exist on TradingView for Indian futures; `3!`
/// is read so its refusal can say why.
pub fn continuous_future(symbol: &str) -> Option<(&str, usize)> {
    let root = symbol.strip_suffix('!')?;
    let nth = root.chars().last()?.to_digit(10)?;
    let root = &root[..root.len() - 1];
    (!root.is_empty() && (1..=3).contains(&nth)).then_some((root, nth as usize))
}

/// TradingView's option tickers: `<UNDERLYING><YYMMDD><C|P><STRIKE>`, e.g. `NIFTY260929C23500`.
pub fn tradingview_option(symbol: &str) -> Option<(String, NaiveDate, OptionKind, f64)> {
    let bytes = symbol.as_bytes();
    let strike_start = bytes
        .iter()
        .rposition(|b| !(b.is_ascii_digit() || *b == b'.'))?
        + 1;
    if strike_start >= bytes.len() || strike_start < 8 {
        return None;
    }
    let strike: f64 = symbol[strike_start..].parse().ok()?;
    let kind = match bytes[strike_start - 1] {
        b'C' => OptionKind::Call,
        b'P' => OptionKind::Put,
        _ => return None,
    };
    let date = &symbol[strike_start - 7..strike_start - 1];
    if !date.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let expiry = NaiveDate::parse_from_str(&format!("20{date}"), "%Y%m%d").ok()?;
    let underlying = &symbol[..strike_start - 7];
    (!underlying.is_empty()
        && underlying
            .bytes()
            .all(|b| b.is_ascii_alphabetic() || b"&_-".contains(&b)))
    .then(|| (underlying.to_owned(), expiry, kind, strike))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dhan_symbols_of_every_shape_are_read() {
        let fut = dhan_contract("NIFTY-DEC2026-FUT").unwrap();
        assert_eq!(
            (
                fut.underlying.as_str(),
                fut.year,
                fut.month,
                fut.day,
                fut.option
            ),
            ("NIFTY", 2026, 12, None, None)
        );
        let dashed = dhan_contract("BAJAJ-AUTO-Dec2026-FUT").unwrap();
        assert_eq!(dashed.underlying, "BAJAJ-AUTO");
        let opt = dhan_contract("NIFTY-Dec2026-24000-CE").unwrap();
        assert_eq!(opt.option, Some((OptionKind::Call, 24000.0)));
        let put = dhan_contract("RELIANCE-Jan2027-1312.5-PE").unwrap();
        assert_eq!(put.option, Some((OptionKind::Put, 1312.5)));
        let mcx = dhan_contract("CRUDEOIL-17DEC2026-FUT").unwrap();
        assert_eq!((mcx.day, mcx.month, mcx.year), (Some(17), 12, 2026));
        assert_eq!(mcx.expiry_text(), "17 Dec 2026");
        assert!(mcx.matches_expiry(NaiveDate::from_ymd_opt(2026, 12, 17).unwrap()));
        assert!(!mcx.matches_expiry(NaiveDate::from_ymd_opt(2026, 12, 18).unwrap()));
    }

    #[test]
    fn other_symbols_are_not_contracts() {
        for s in [
            "RELIANCE",
            "BAJAJ-AUTO",
            "NIFTY1!",
            "-Dec2026-FUT",
            "NIFTY-Dec26-FUT",
            "NIFTY-Xyz2026-FUT",
            "NIFTY-Dec2026-CE",
            "NIFTY-Dec2026-0-CE",
            "NIFTY-31Feb2026-FUT",
            "NIFTY--Dec2026-FUT",
        ] {
            assert_eq!(dhan_contract(s), None, "{s}");
        }
    }
}
