//! Dhan's scrip master: what a TradingView ticker trades at Dhan.
//!
//! - [`master`] parses Dhan's compact CSV into an index.
//! - [`source`] decides where the file comes from (a local file, or a daily download cached on
//!   disk, or the built-in sample in offline paper mode) and keeps it fresh.
//!
//! Resolution turns an alert leg into a security id, Dhan segment and quantity in units:
//! - equities: `NSE:RELIANCE`, `RELIANCE` + `exchange`, `BSE:RELIANCE`; NSE series EQ first;
//!   TradingView's `_` for `&`/`-` (`NSE:M_M`, `NSE:BAJAJ_AUTO`) is understood;
//! - continuous futures: `NIFTY1!`, `BANKNIFTY2!`, `RELIANCE1!`, `MCX:CRUDEOIL1!` → the nearest
//!   (or next) expiry on or after today;
//! - options: Dhan's fields (underlying + `expiry_date` + `strike_price` + CE/PE) or a
//!   TradingView option ticker (`NIFTY260929C23500`);
//! - Dhan trading symbols as they are (`NIFTY-Dec2026-FUT`).
//!
//! Derivative quantities are lots by default (`FNO_QUANTITY=lots`, the way TradingView counts
//! contracts) and become units with the lot size from the file; with `FNO_QUANTITY=units` a
//! quantity that is not a whole number of lots is refused. Unknown symbols are refused with the
//! closest candidates. No security id or lot size is ever hard-coded.

pub mod master;
pub mod source;
mod table;

use chrono::NaiveDate;
use serde::Serialize;

use self::table::{RowRef, Table};
use crate::alert::{Exchange, Instrument as Kind, LegOrder, OptionKind};

/// One tradable row of the scrip master.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Instrument {
    pub security_id: String,
    /// `NSE`, `BSE` or `MCX`.
    pub exchange: &'static str,
    /// Dhan's segment letter: `E` equity, `D` derivatives, `C` currency, `M` commodity.
    pub segment: char,
    /// Dhan's `exchangeSegment` for orders, e.g. `NSE_EQ`.
    pub exchange_segment: &'static str,
    pub trading_symbol: String,
    /// The underlying of a derivative (`NIFTY` for `NIFTY-Dec2026-FUT`), else the symbol.
    pub underlying: String,
    /// `EQUITY`, `FUTIDX`, `OPTSTK`…
    pub instrument: String,
    pub lot_size: u32,
    pub series: String,
    pub expiry: Option<NaiveDate>,
    pub strike: Option<f64>,
    pub option_type: Option<&'static str>,
    /// Dhan's display name (`NIFTY 08 DEC 24000 CALL`).
    pub display: String,
}

impl Instrument {
    pub fn is_future(&self) -> bool {
        self.instrument.starts_with("FUT")
    }

    pub fn is_option(&self) -> bool {
        self.option_type.is_some()
    }
}

/// How derivative quantities in alerts are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QuantityUnit {
    /// Contracts (lots), as TradingView strategies count them: units = lots × lot size.
    #[default]
    Lots,
    /// Units (shares, barrels…): must be a whole number of lots.
    Units,
}

/// A leg resolved to what Dhan needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub instrument: Instrument,
    /// Quantity for Dhan's `quantity` field (units).
    pub units: u32,
}

/// The loaded scrip master.
#[derive(Debug, Default)]
pub struct Instruments {
    /// The tradable rows, stored compactly (see [`table`]).
    pub(crate) table: Table,
    /// (exchange, index name): indices are not tradable, but deserve a precise message.
    pub(crate) indices: std::collections::HashSet<(&'static str, String)>,
}

impl Instruments {
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.len() == 0
    }

    /// The instrument and quantity an alert leg trades, on IST date `today`.
    ///
    /// # Errors
    /// A message for the trader: unknown or ambiguous symbol (with the closest candidates), no
    /// live contract, or a quantity that is not a whole number of lots.
    pub fn resolve(
        &self,
        leg: &LegOrder,
        today: NaiveDate,
        unit: QuantityUnit,
    ) -> Result<Resolved, String> {
        let instrument = self.find(leg, today)?.to_instrument();
        let units = if instrument.segment == 'E' {
            leg.quantity
        } else {
            match unit {
                QuantityUnit::Lots => {
                    leg.quantity
                        .checked_mul(instrument.lot_size)
                        .ok_or_else(|| {
                            format!(
                                "{} lots of {} is too large",
                                leg.quantity, instrument.trading_symbol
                            )
                        })?
                }
                QuantityUnit::Units if !leg.quantity.is_multiple_of(instrument.lot_size) => {
                    return Err(format!(
                        "{}: quantity {} is not a whole number of lots (lot size {})",
                        instrument.trading_symbol, leg.quantity, instrument.lot_size
                    ));
                }
                QuantityUnit::Units => leg.quantity,
            }
        };
        Ok(Resolved { instrument, units })
    }

    /// What a ticker as TradingView writes it (`NSE:RELIANCE`, `NIFTY1!`, `MCX:GOLD1!`;
    /// exchange NSE when none is given) resolves to on `today` (for `instruments lookup`).
    ///
    /// # Errors
    /// As [`Instruments::resolve`].
    pub fn lookup(&self, ticker: &str, today: NaiveDate) -> Result<Instrument, String> {
        let ticker = ticker.trim().to_ascii_uppercase();
        let (exchange, symbol) = match ticker.split_once(':') {
            Some((ex, sym)) => (
                Exchange::parse(ex).ok_or_else(|| {
                    format!("'{ex}' is not an exchange; use {}", Exchange::ACCEPTED)
                })?,
                sym.to_owned(),
            ),
            None => (Exchange::Nse, ticker.clone()),
        };
        self.find_symbol(exchange, None, &symbol, None, None, today)
            .map(|r| r.to_instrument())
    }

    fn find(&self, leg: &LegOrder, today: NaiveDate) -> Result<RowRef<'_>, String> {
        self.find_symbol(
            leg.exchange,
            leg.instrument,
            &leg.symbol,
            leg.option.as_ref().map(|o| (o.kind, o.strike, o.expiry)),
            leg.future_expiry,
            today,
        )
    }

    fn find_symbol(
        &self,
        exchange: Exchange,
        kind: Option<Kind>,
        symbol: &str,
        option: Option<(OptionKind, f64, NaiveDate)>,
        future_expiry: Option<NaiveDate>,
        today: NaiveDate,
    ) -> Result<RowRef<'_>, String> {
        let (ex, deriv_seg) = match exchange {
            Exchange::Nse | Exchange::Nfo => ("NSE", 'D'),
            Exchange::Bse | Exchange::Bfo => ("BSE", 'D'),
            Exchange::Mcx => ("MCX", 'M'),
        };
        let derivative_exchange = matches!(exchange, Exchange::Nfo | Exchange::Bfo | Exchange::Mcx);

        if let Some((kind, strike, expiry)) = option {
            return self.option(ex, symbol, kind, strike, expiry);
        }
        if let Some((root, nth)) = continuous_future(symbol) {
            return self.nth_future(ex, deriv_seg, root, nth, today);
        }
        if let Some((root, expiry, kind, strike)) = tradingview_option(symbol) {
            return self.option(ex, &root, kind, strike, expiry);
        }
        if kind == Some(Kind::Future) {
            return match future_expiry {
                Some(expiry) => self
                    .derivatives(ex, deriv_seg, symbol)
                    .find(|i| i.is_future() && i.expiry() == Some(expiry))
                    .ok_or_else(|| {
                        format!("{ex}: no {symbol} future expiring {expiry} in the scrip master")
                    }),
                None => self.nth_future(ex, deriv_seg, symbol, 1, today),
            };
        }
        let wants_derivative = derivative_exchange || kind == Some(Kind::Option);
        let segments: &[char] = if wants_derivative {
            &[deriv_seg]
        } else {
            &['E', deriv_seg]
        };
        for seg in segments {
            for variant in spellings(symbol) {
                let rows: Vec<RowRef<'_>> = self.table.by_symbol(ex, *seg, &variant).collect();
                if !rows.is_empty() {
                    return pick(ex, symbol, rows);
                }
            }
        }
        if self.indices.contains(&(ex, symbol.to_owned())) {
            return Err(format!(
                "{ex}:{symbol} is an index and cannot be traded; trade its future ({symbol}1!) or an option"
            ));
        }
        Err(self.unknown(ex, if wants_derivative { deriv_seg } else { 'E' }, symbol))
    }

    fn derivatives<'a>(
        &'a self,
        ex: &'static str,
        seg: char,
        underlying: &str,
    ) -> impl Iterator<Item = RowRef<'a>> {
        spellings(underlying)
            .into_iter()
            .flat_map(move |u| self.table.by_underlying(ex, seg, &u).collect::<Vec<_>>())
    }

    /// The `nth` (1-based) future of `root` expiring on or after `today`.
    fn nth_future(
        &self,
        ex: &'static str,
        seg: char,
        root: &str,
        nth: usize,
        today: NaiveDate,
    ) -> Result<RowRef<'_>, String> {
        let mut futures: Vec<RowRef<'_>> = self
            .derivatives(ex, seg, root)
            .filter(|i| i.is_future() && i.expiry().is_some_and(|e| e >= today))
            .collect();
        futures.sort_by_key(RowRef::expiry);
        futures.dedup_by_key(|i| i.expiry());
        futures.get(nth - 1).copied().ok_or_else(|| {
            if futures.is_empty() {
                format!("{ex}: no {root} future expiring on or after {today} in the scrip master")
            } else {
                format!(
                    "{ex}: {root}{nth}! needs {nth} live expiries; the scrip master lists {}",
                    futures.len()
                )
            }
        })
    }

    fn option(
        &self,
        ex: &'static str,
        underlying: &str,
        kind: OptionKind,
        strike: f64,
        expiry: NaiveDate,
    ) -> Result<RowRef<'_>, String> {
        let seg = if ex == "MCX" { 'M' } else { 'D' };
        let ce_pe = match kind {
            OptionKind::Call => "CE",
            OptionKind::Put => "PE",
        };
        self.derivatives(ex, seg, underlying)
            .find(|i| {
                i.option_type() == Some(ce_pe)
                    && i.expiry() == Some(expiry)
                    && i.strike().is_some_and(|s| (s - strike).abs() < 1e-6)
            })
            .ok_or_else(|| {
                let expiries: std::collections::BTreeSet<NaiveDate> = self
                    .derivatives(ex, seg, underlying)
                    .filter(|i| i.is_option())
                    .filter_map(|i| i.expiry())
                    .collect();
                let listed: Vec<String> =
                    expiries.iter().take(4).map(NaiveDate::to_string).collect();
                format!(
                    "{ex}: no {underlying} {expiry} {strike} {ce_pe} option in the scrip master{}",
                    if listed.is_empty() {
                        String::new()
                    } else {
                        format!(" (its option expiries include {})", listed.join(", "))
                    }
                )
            })
    }

    /// "Unknown symbol", with up to three close spellings from the same exchange and segment.
    fn unknown(&self, ex: &str, seg: char, symbol: &str) -> String {
        let mut scored: Vec<(usize, String)> = self
            .table
            .symbols(ex, seg)
            .map(|name| (edit_distance(symbol, &name), name))
            .filter(|(d, name)| *d <= (symbol.len() / 3).max(2) || name.starts_with(symbol))
            .collect();
        scored.sort();
        let close: Vec<&str> = scored.iter().take(3).map(|(_, n)| n.as_str()).collect();
        if close.is_empty() {
            format!("{ex}:{symbol} is not in the scrip master")
        } else {
            format!(
                "{ex}:{symbol} is not in the scrip master; did you mean {}?",
                close.join(", ")
            )
        }
    }
}

/// `NIFTY1!` → (`NIFTY`, 1). Only `1!` and `2!` exist on TradingView for Indian futures.
fn continuous_future(symbol: &str) -> Option<(&str, usize)> {
    let root = symbol.strip_suffix('!')?;
    let nth = root.chars().last()?.to_digit(10)?;
    let root = &root[..root.len() - 1];
    (!root.is_empty() && (1..=3).contains(&nth)).then_some((root, nth as usize))
}

/// TradingView's option tickers: `<UNDERLYING><YYMMDD><C|P><STRIKE>`, e.g. `NIFTY260929C23500`.
fn tradingview_option(symbol: &str) -> Option<(String, NaiveDate, OptionKind, f64)> {
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

/// The spellings a TradingView symbol may have at Dhan: TradingView writes `&` and `-` as `_`.
fn spellings(symbol: &str) -> Vec<String> {
    let mut out = vec![symbol.to_owned()];
    if symbol.contains('_') {
        out.push(symbol.replace('_', "&"));
        out.push(symbol.replace('_', "-"));
    }
    out
}

/// Levenshtein distance, for "did you mean" suggestions.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// One row among several with the same symbol: NSE lists a stock in several series (EQ, BE,
/// SM…); EQ is the normal market. BSE uses group letters; there is one row per scrip.
fn pick<'a>(ex: &str, symbol: &str, candidates: Vec<RowRef<'a>>) -> Result<RowRef<'a>, String> {
    if let [only] = candidates.as_slice() {
        return Ok(*only);
    }
    if let Some(eq) = candidates.iter().find(|i| i.series() == "EQ") {
        return Ok(*eq);
    }
    let ids: Vec<String> = candidates
        .iter()
        .map(|i| format!("{} (series {})", i.security_id(), i.series()))
        .collect();
    Err(format!(
        "{ex}:{symbol} is ambiguous in the scrip master: {}",
        ids.join(", ")
    ))
}

#[cfg(test)]
mod tests;
