//! Parsing Dhan's compact scrip master (`api-scrip-master.csv`, about 200k+ rows) into an
//! [`Instruments`] index.
//!
//! Columns are found by name, so a reordered or extended file still loads; rows of indices
//! (not tradable) are kept only as names; rows that make no sense (no id, no symbol, unknown
//! exchange/segment) are skipped rather than failing the whole file. Parsing reuses one record
//! buffer and hands each row to the compact [`super::table`], so memory stays a small multiple
//! of the file's useful bytes.

use std::{io::Read, path::Path};

use chrono::{Datelike, NaiveDate};

use super::{Instruments, table::NewRow};

/// A small, real-shaped sample (equity, index, index and stock futures, index and stock options,
/// MCX) shipped in the binary for offline paper mode and the tests.
pub const SAMPLE: &str = include_str!("../../data/scrip-master-sample.csv");

#[derive(Debug, thiserror::Error)]
pub enum MasterError {
    #[error("cannot read the scrip master {path}: {why}")]
    Read { path: String, why: String },
    #[error("the scrip master {path} has no {column} column: is it Dhan's compact CSV?")]
    MissingColumn { path: String, column: &'static str },
    #[error("the scrip master {path} has no tradable rows")]
    Empty { path: String },
}

/// The columns we use, by their names in the compact file.
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

/// Loads a scrip master file.
///
/// # Errors
/// The file cannot be read, lacks a needed column, or has no tradable row.
pub fn load(path: &Path) -> Result<Instruments, MasterError> {
    let file = std::fs::File::open(path).map_err(|e| MasterError::Read {
        path: path.display().to_string(),
        why: e.to_string(),
    })?;
    parse(
        std::io::BufReader::with_capacity(1 << 20, file),
        &path.display().to_string(),
    )
}

/// Parses a scrip master from any reader; `name` is used in error messages.
///
/// # Errors
/// As [`load`].
pub fn parse(reader: impl Read, name: &str) -> Result<Instruments, MasterError> {
    let read_err = |why: String| MasterError::Read {
        path: name.to_owned(),
        why,
    };
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(reader);
    let headers = reader
        .headers()
        .map_err(|e| read_err(e.to_string()))?
        .clone();
    let mut index = [0usize; COLUMNS.len()];
    for (slot, column) in index.iter_mut().zip(COLUMNS) {
        *slot = headers
            .iter()
            .position(|h| h.trim() == column)
            .ok_or_else(|| MasterError::MissingColumn {
                path: name.to_owned(),
                column,
            })?;
    }
    let mut out = Instruments::default();
    let mut record = csv::StringRecord::new();
    while reader
        .read_record(&mut record)
        .map_err(|e| read_err(e.to_string()))?
    {
        let get = |i: usize| record.get(index[i]).unwrap_or("").trim();
        let Some(exchange) = exchange(get(0)) else {
            continue;
        };
        let segment = get(1).chars().next().unwrap_or(' ').to_ascii_uppercase();
        // Dhan writes derivative symbols in mixed case (`NIFTY-Dec2026-FUT`); alerts arrive
        // upper-cased. The table keeps Dhan's spelling and looks up without regard to case.
        let key = get(4).to_ascii_uppercase();
        if segment == 'I' {
            out.indices.insert((exchange, key));
            continue;
        }
        if exchange_segment(exchange, segment).is_none() {
            continue;
        }
        let security_id = get(2);
        if security_id.is_empty() || key.is_empty() {
            continue;
        }
        let option_type = match get(8).to_ascii_uppercase().as_str() {
            "CE" => Some("CE"),
            "PE" => Some("PE"),
            _ => None,
        };
        let underlying_len = if segment == 'E' {
            key.len()
        } else {
            underlying_of(&key, option_type.is_some()).len()
        };
        out.table.push(&NewRow {
            exchange,
            segment,
            security_id,
            trading_symbol: get(4),
            underlying_len,
            instrument: &get(3).to_ascii_uppercase(),
            // MCX rows carry 1.0; anything below 1 is treated as 1 (never a zero divisor).
            lot_size: get(5)
                .parse::<f64>()
                .ok()
                .filter(|l| *l >= 1.0)
                .map_or(1, |l| l as u32),
            series: &get(9).to_ascii_uppercase(),
            // The time of day in the expiry column is nominal: the date is what counts.
            expiry: get(6)
                .get(..10)
                .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
                .filter(|d| d.year() > 1900),
            strike: get(7).parse::<f64>().ok().filter(|s| *s > 0.0),
            option_type,
            display: get(10),
        });
    }
    out.table.finish();
    if out.table.len() == 0 {
        return Err(MasterError::Empty {
            path: name.to_owned(),
        });
    }
    Ok(out)
}

fn exchange(s: &str) -> Option<&'static str> {
    match s.to_ascii_uppercase().as_str() {
        "NSE" => Some("NSE"),
        "BSE" => Some("BSE"),
        "MCX" => Some("MCX"),
        _ => None,
    }
}

/// Dhan's `exchangeSegment` for an (exchange, segment letter) pair (`dhan-api.md` §6.3).
pub(super) fn exchange_segment(exchange: &str, segment: char) -> Option<&'static str> {
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

/// The underlying in a derivative trading symbol: `NIFTY-Dec2026-FUT` → `NIFTY`,
/// `BAJAJ-AUTO-Dec2026-FUT` → `BAJAJ-AUTO`, `NIFTY-Dec2026-24000-CE` → `NIFTY`,
/// `CRUDEOIL-19Oct2026-FUT` → `CRUDEOIL`.
fn underlying_of(symbol: &str, option: bool) -> String {
    let mut rest = symbol;
    if option {
        rest = rest.rsplit_once('-').map_or(rest, |(r, _)| r); // CE/PE
        rest = rest.rsplit_once('-').map_or(rest, |(r, _)| r); // strike
    } else {
        rest = rest.strip_suffix("-FUT").unwrap_or(rest);
    }
    rest.rsplit_once('-').map_or(rest, |(r, _)| r).to_owned() // month (and day for MCX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn underlyings_come_out_of_dhans_trading_symbols() {
        assert_eq!(underlying_of("NIFTY-Dec2026-FUT", false), "NIFTY");
        assert_eq!(underlying_of("BAJAJ-AUTO-Dec2026-FUT", false), "BAJAJ-AUTO");
        assert_eq!(underlying_of("NIFTY-Dec2026-24000-CE", true), "NIFTY");
        assert_eq!(underlying_of("CRUDEOIL-19Oct2026-FUT", false), "CRUDEOIL");
    }

    #[test]
    fn the_sample_loads_and_bad_files_say_why() {
        let m = parse(SAMPLE.as_bytes(), "sample").unwrap();
        assert!(m.len() >= 20);
        assert!(m.indices.contains(&("NSE", "NIFTY".to_owned())));
        let err = parse("A,B\n1,2\n".as_bytes(), "x.csv").unwrap_err();
        assert_eq!(
            err.to_string(),
            "the scrip master x.csv has no SEM_EXM_EXCH_ID column: is it Dhan's compact CSV?"
        );
        let header = SAMPLE.lines().next().unwrap();
        let err = parse(format!("{header}\n").as_bytes(), "empty.csv").unwrap_err();
        assert!(matches!(err, MasterError::Empty { .. }));
    }
}
