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
//! Derivative quantities are units by default (`FNO_QUANTITY=units`, as Dhan and the upstream
//! service take them) and must be a whole number of lots, else they are refused naming the lot
//! size and the nearest valid quantities; with `FNO_QUANTITY=lots` (TradingView counts
//! contracts) they are multiplied by the lot size from the file. Unknown symbols are refused
//! with the closest candidates. No security id or lot size is ever hard-coded.

pub mod master;
pub mod source;
mod table;

use chrono::NaiveDate;
use serde::Serialize;

use self::table::{RowRef, Table};
use crate::alert::{
    Exchange, Instrument as Kind, LegOrder, OptionKind,
    contract::{DhanContract, continuous_future, dhan_contract, tradingview_option},
};

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

pub use crate::domain::QuantityUnit;

/// Why a leg does not resolve: its symbol (unknown, ambiguous, expired…) or its quantity (not a
/// whole number of lots), so the refusal names the right field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unresolved {
    pub quantity: bool,
    pub message: String,
}

impl Unresolved {
    fn symbol(message: String) -> Self {
        Self {
            quantity: false,
            message,
        }
    }

    fn quantity(message: String) -> Self {
        Self {
            quantity: true,
            message,
        }
    }
}

impl std::fmt::Display for Unresolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
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
    /// A message for the trader, for the symbol (unknown or ambiguous, with the closest
    /// candidates; no live contract) or the quantity (not a whole number of lots).
    pub fn resolve(
        &self,
        leg: &LegOrder,
        today: NaiveDate,
        unit: QuantityUnit,
    ) -> Result<Resolved, Unresolved> {
        let instrument = self
            .find(leg, today)
            .map_err(Unresolved::symbol)?
            .to_instrument();
        let lot = instrument.lot_size.max(1);
        let units = if instrument.segment == 'E' {
            leg.quantity
        } else {
            match unit {
                QuantityUnit::Lots => leg.quantity.checked_mul(lot).ok_or_else(|| {
                    Unresolved::quantity(format!(
                        "{} lots of {} is too large",
                        leg.quantity, instrument.trading_symbol
                    ))
                })?,
                QuantityUnit::Units if !leg.quantity.is_multiple_of(lot) => {
                    return Err(Unresolved::quantity(not_whole_lots(
                        &instrument.trading_symbol,
                        leg.quantity,
                        lot,
                    )));
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
        // A Dhan trading symbol names its contract; an option's fields then only pick among
        // the weeklies of the month it names (the parser checked that they agree).
        let contract = dhan_contract(symbol);

        if let Some((kind, strike, expiry)) = option {
            let underlying = contract.as_ref().map_or(symbol, |c| c.underlying.as_str());
            return self.option(ex, underlying, kind, strike, expiry);
        }
        if let Some((root, nth)) = continuous_future(symbol) {
            return self.nth_future(ex, deriv_seg, root, nth, today);
        }
        if let Some((root, expiry, kind, strike)) = tradingview_option(symbol) {
            return self.option(ex, &root, kind, strike, expiry);
        }
        if let Some(c) = &contract {
            return self.contract(ex, deriv_seg, symbol, c, kind, future_expiry, today);
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

    /// The contract a Dhan trading symbol names. NSE/BSE symbols carry only the month, so the
    /// weekly options of one month share a symbol: `expiry` (from the alert) picks one, else
    /// the only live one; several live ones are refused rather than guessed (the upstream
    /// silently took the file's last row).
    #[allow(clippy::too_many_arguments)]
    fn contract(
        &self,
        ex: &'static str,
        seg: char,
        symbol: &str,
        named: &DhanContract,
        kind: Option<Kind>,
        expiry: Option<NaiveDate>,
        today: NaiveDate,
    ) -> Result<RowRef<'_>, String> {
        let rows: Vec<RowRef<'_>> = self.table.by_symbol(ex, seg, symbol).collect();
        let Some(first) = rows.first() else {
            return Err(self.unknown(ex, seg, symbol));
        };
        let what = if first.is_option() {
            "an option"
        } else {
            "a future"
        };
        match kind {
            Some(Kind::Future) if !first.is_future() => {
                return Err(format!(
                    "{ex}:{symbol} is {what}, but instrument says a future"
                ));
            }
            Some(Kind::Option) if !first.is_option() => {
                return Err(format!(
                    "{ex}:{symbol} is {what}, but instrument says an option"
                ));
            }
            _ => {}
        }
        let expiries = |rows: &[RowRef<'_>]| -> String {
            let set: std::collections::BTreeSet<NaiveDate> =
                rows.iter().filter_map(RowRef::expiry).collect();
            set.iter()
                .map(NaiveDate::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        if let Some(e) = expiry {
            return rows
                .iter()
                .find(|r| r.expiry() == Some(e))
                .copied()
                .ok_or_else(|| {
                    format!(
                        "{ex}:{symbol} has no contract expiring {e}; its expiries: {}",
                        expiries(&rows)
                    )
                });
        }
        let mut live: Vec<RowRef<'_>> = rows
            .iter()
            .copied()
            .filter(|r| r.expiry().is_none_or(|e| e >= today))
            .collect();
        live.sort_by_key(RowRef::expiry);
        live.dedup_by_key(|r| r.expiry());
        match live.as_slice() {
            [] => Err(format!(
                "{ex}:{symbol} ({}) has expired (on {})",
                named.expiry_text(),
                expiries(&rows)
            )),
            [only] => Ok(*only),
            several => Err(format!(
                "{ex}:{symbol} names {} live contracts (expiries {}): add \"expiry_date\" to pick one",
                several.len(),
                expiries(several)
            )),
        }
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

/// The refusal of a quantity in units that is not a whole number of lots: it names the lot
/// size and the nearest valid quantities, so a template written in lots (65× too small) or
/// with a typo is fixed in one go instead of being rounded into a position nobody asked for.
fn not_whole_lots(symbol: &str, quantity: u32, lot: u32) -> String {
    let below = quantity / lot * lot;
    let (a, b) = if below == 0 {
        (lot, lot.saturating_mul(2))
    } else {
        (below, below.saturating_add(lot))
    };
    let lots = |units: u32| match units / lot {
        1 => "1 lot".to_owned(),
        n => format!("{n} lots"),
    };
    format!(
        "{symbol}: quantity {quantity} is not a whole number of lots (lot size {lot}); the nearest valid \
         quantities are {a} ({}) and {b} ({}). Quantities are units (FNO_QUANTITY=units); if your alerts \
         count lots, set FNO_QUANTITY=lots",
        lots(a),
        lots(b)
    )
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
