//! Dhan's scrip master: trading symbols to security ids, segments and lot sizes.
//!
//! For now the file comes from `INSTRUMENTS_PATH` (Dhan's compact CSV format, e.g. the file at
//! `https://images.dhan.co/api-data/api-scrip-master.csv`, downloaded by hand). Resolution is
//! exact: equities by trading symbol (NSE series EQ preferred), derivatives by Dhan's trading
//! symbol or, for options, by underlying + expiry + strike + CE/PE. Continuous futures
//! (`NIFTY1!`) and automatic daily downloads are not done yet: such symbols are refused with a
//! message saying so. No security id is ever hard-coded.

use std::{collections::HashMap, path::Path};

use chrono::NaiveDate;

use crate::alert::{Exchange, Instrument as Kind, LegOrder, OptionKind};

/// One tradable row of the scrip master.
#[derive(Debug, Clone, PartialEq)]
pub struct Instrument {
    pub security_id: String,
    /// Dhan's `exchangeSegment` for orders, e.g. `NSE_EQ`.
    pub exchange_segment: &'static str,
    pub trading_symbol: String,
    /// `EQUITY`, `FUTIDX`, `OPTSTK`…
    pub instrument: String,
    pub lot_size: u32,
    pub series: String,
    pub expiry: Option<NaiveDate>,
    pub strike: Option<f64>,
    pub option_type: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum InstrumentsError {
    #[error("cannot read the scrip master {path}: {why}")]
    Read { path: String, why: String },
    #[error("the scrip master {path} has no {column} column: is it Dhan's compact CSV?")]
    MissingColumn { path: String, column: &'static str },
}

/// The loaded scrip master, indexed by (exchange, segment letter, trading symbol).
#[derive(Debug, Default)]
pub struct Instruments {
    by_symbol: HashMap<(String, char, String), Vec<Instrument>>,
    rows: usize,
}

const COLUMNS: [&str; 11] = [
    "SEM_EXM_EXCH_ID",
    "SEM_SEGMENT",
    "SEM_SMST_SECURITY_ID",
    "SEM_INSTRUMENT_NAME",
    "SEM_TRADING_SYMBOL",
    "SEM_LOT_UNITS",
    "SEM_EXPIRY_DATE",
    "SEM_STRIKE_PRICE",
    "SEM_OPTION_TYPE",
    "SEM_SERIES",
    "SEM_CUSTOM_SYMBOL",
];

impl Instruments {
    /// Loads a scrip master in Dhan's compact CSV format.
    ///
    /// # Errors
    /// The file cannot be read or is not in that format.
    pub fn load(path: &Path) -> Result<Self, InstrumentsError> {
        let shown = path.display().to_string();
        let read_err = |why: String| InstrumentsError::Read {
            path: shown.clone(),
            why,
        };
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .from_path(path)
            .map_err(|e| read_err(e.to_string()))?;
        let headers = reader
            .headers()
            .map_err(|e| read_err(e.to_string()))?
            .clone();
        let mut index = [0usize; COLUMNS.len()];
        for (slot, column) in index.iter_mut().zip(COLUMNS) {
            *slot = headers
                .iter()
                .position(|h| h.trim() == column)
                .ok_or_else(|| InstrumentsError::MissingColumn {
                    path: shown.clone(),
                    column,
                })?;
        }
        let mut out = Instruments::default();
        for record in reader.records() {
            let record = record.map_err(|e| read_err(e.to_string()))?;
            let get = |i: usize| record.get(index[i]).unwrap_or("").trim();
            let exchange = get(0).to_ascii_uppercase();
            let segment = get(1).chars().next().unwrap_or(' ').to_ascii_uppercase();
            let Some(exchange_segment) = exchange_segment(&exchange, segment) else {
                continue; // indices (IDX_I) and unknown segments are not tradable
            };
            let option_type = Some(get(8).to_ascii_uppercase()).filter(|o| o == "CE" || o == "PE");
            let instrument = Instrument {
                security_id: get(2).to_owned(),
                exchange_segment,
                trading_symbol: get(4).to_ascii_uppercase(),
                instrument: get(3).to_ascii_uppercase(),
                lot_size: get(5)
                    .parse::<f64>()
                    .ok()
                    .filter(|l| *l >= 1.0)
                    .map_or(1, |l| l as u32),
                series: get(9).to_ascii_uppercase(),
                expiry: get(6)
                    .get(..10)
                    .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok()),
                strike: get(7).parse::<f64>().ok().filter(|s| *s > 0.0),
                option_type,
            };
            if instrument.security_id.is_empty() || instrument.trading_symbol.is_empty() {
                continue;
            }
            out.rows += 1;
            out.by_symbol
                .entry((exchange, segment, instrument.trading_symbol.clone()))
                .or_default()
                .push(instrument);
        }
        Ok(out)
    }

    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// The instrument an alert leg trades.
    ///
    /// # Errors
    /// A message for the user: unknown symbol, ambiguous symbol, or not supported yet.
    pub fn resolve(&self, leg: &LegOrder) -> Result<&Instrument, String> {
        let symbol = leg.symbol.as_str();
        if symbol.ends_with('!') {
            return Err(format!(
                "{symbol}: continuous futures are not resolved yet; send Dhan's trading symbol (e.g. NIFTY-Dec2026-FUT)"
            ));
        }
        let (exchange, segment) = match (leg.exchange, leg.instrument) {
            (Exchange::Nse, None | Some(Kind::Equity)) => ("NSE", 'E'),
            (Exchange::Bse, None | Some(Kind::Equity)) => ("BSE", 'E'),
            (Exchange::Nse | Exchange::Nfo, _) => ("NSE", 'D'),
            (Exchange::Bse | Exchange::Bfo, _) => ("BSE", 'D'),
            (Exchange::Mcx, _) => ("MCX", 'M'),
        };
        if let Some(option) = &leg.option {
            return self.resolve_option(
                exchange,
                symbol,
                option.kind,
                option.strike,
                option.expiry,
            );
        }
        let candidates = self
            .by_symbol
            .get(&(exchange.to_owned(), segment, symbol.to_owned()))
            .ok_or_else(|| format!("{exchange}:{symbol} is not in the scrip master"))?;
        // NSE lists a stock in several series (EQ, BE, SM…); EQ is the normal market.
        let pick = candidates
            .iter()
            .find(|i| i.series == "EQ")
            .or_else(|| (candidates.len() == 1).then(|| &candidates[0]))
            .or_else(|| (segment == 'E' && exchange == "BSE").then(|| &candidates[0]));
        pick.ok_or_else(|| {
            let ids: Vec<String> = candidates
                .iter()
                .map(|i| format!("{} ({})", i.security_id, i.series))
                .collect();
            format!(
                "{exchange}:{symbol} is ambiguous in the scrip master: {}",
                ids.join(", ")
            )
        })
    }

    fn resolve_option(
        &self,
        exchange: &str,
        underlying: &str,
        kind: OptionKind,
        strike: f64,
        expiry: NaiveDate,
    ) -> Result<&Instrument, String> {
        let ce_pe = match kind {
            OptionKind::Call => "CE",
            OptionKind::Put => "PE",
        };
        let prefix = format!("{underlying}-");
        self.by_symbol
            .iter()
            .filter(|((ex, seg, sym), _)| ex == exchange && *seg == 'D' && sym.starts_with(&prefix))
            .flat_map(|(_, rows)| rows)
            .find(|i| {
                i.option_type.as_deref() == Some(ce_pe)
                    && i.expiry == Some(expiry)
                    && i.strike.is_some_and(|s| (s - strike).abs() < 1e-6)
            })
            .ok_or_else(|| format!("{exchange}: no {underlying} {expiry} {strike} {ce_pe} option in the scrip master"))
    }
}

/// Dhan's `exchangeSegment` for an (exchange, segment letter) pair; `None` for indices.
fn exchange_segment(exchange: &str, segment: char) -> Option<&'static str> {
    Some(match (exchange, segment) {
        ("NSE", 'E') => "NSE_EQ",
        ("BSE", 'E') => "BSE_EQ",
        ("NSE", 'D') => "NSE_FNO",
        ("BSE", 'D') => "BSE_FNO",
        ("NSE", 'C') => "NSE_CURRENCY",
        ("BSE", 'C') => "BSE_CURRENCY",
        ("MCX", 'M') => "MCX_COMM",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::alert::parse_signal;

    fn fixture() -> Instruments {
        Instruments::load(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/scrip-master.csv"
        )))
        .unwrap()
    }

    fn leg(v: serde_json::Value) -> LegOrder {
        parse_signal(v.as_object().unwrap()).unwrap().legs.remove(0)
    }

    #[test]
    fn equities_resolve_with_nse_eq_series_preferred() {
        let m = fixture();
        let r = m
            .resolve(&leg(
                json!({"symbol":"NSE:RELIANCE","action":"buy","quantity":1,"product":"I"}),
            ))
            .unwrap();
        assert_eq!(
            (r.security_id.as_str(), r.exchange_segment),
            ("2885", "NSE_EQ")
        );
        let b = m
            .resolve(&leg(
                json!({"symbol":"BSE:RELIANCE","action":"buy","quantity":1,"product":"I"}),
            ))
            .unwrap();
        assert_eq!(
            (b.security_id.as_str(), b.exchange_segment),
            ("500325", "BSE_EQ")
        );
        let bhel = m
            .resolve(&leg(
                json!({"symbol":"NSE:BHEL","action":"buy","quantity":1,"product":"I"}),
            ))
            .unwrap();
        assert_eq!(bhel.security_id, "438", "EQ series, not BE");
    }

    #[test]
    fn dhan_format_options_resolve_by_underlying_expiry_strike_and_type() {
        let m = fixture();
        let l = parse_signal(
            json!({"alertType":"single_order","order_legs":[{"transactionType":"B","orderType":"MKT",
                "quantity":"65","exchange":"NSE","symbol":"NIFTY","instrument":"OPT","productType":"I",
                "option_type":"CE","strike_price":"24000","expiry_date":"2026-12-08"}]})
            .as_object()
            .unwrap(),
        )
        .unwrap()
        .legs
        .remove(0);
        let r = m.resolve(&l).unwrap();
        assert_eq!(
            (r.security_id.as_str(), r.exchange_segment, r.lot_size),
            ("71301", "NSE_FNO", 65)
        );
    }

    #[test]
    fn unknown_and_unsupported_symbols_are_refused_with_a_reason() {
        let m = fixture();
        let e = m
            .resolve(&leg(
                json!({"symbol":"NSE:NOSUCH","action":"buy","quantity":1,"product":"I"}),
            ))
            .unwrap_err();
        assert!(e.contains("not in the scrip master"), "{e}");
        let e = m
            .resolve(&leg(
                json!({"symbol":"NSE:NIFTY1!","action":"buy","quantity":1,"product":"M"}),
            ))
            .unwrap_err();
        assert!(e.contains("continuous futures"), "{e}");
        assert!(m.len() >= 20);
    }
}
