//! Compact storage for the scrip master's rows and the two lookups resolution needs.
//!
//! Dhan's file has a quarter of a million rows and the service keeps two copies in memory while
//! a daily download replaces the index, on machines as small as a 512 MiB Cloud Run instance.
//! So a row is a fixed 40-byte record: its strings (security id, trading symbol, display name)
//! live back to back in one shared text buffer, repeated words (instrument kind, series) are
//! interned, and the "indexes" are row numbers sorted by key and binary-searched, instead of
//! hash maps holding their own copies of every key. [`RowRef`] reads a row back; [`Instrument`]
//! is built only for the row an alert resolves to.

use std::{cmp::Ordering, collections::HashMap};

use chrono::NaiveDate;

use super::Instrument;

/// The exchanges a row can belong to (its `exchange` byte is a position here).
const EXCHANGES: [&str; 3] = ["NSE", "BSE", "MCX"];

/// A row as the parser hands it over.
pub(crate) struct NewRow<'a> {
    pub exchange: &'static str,
    /// Dhan's segment letter (`E`, `D`, `C`, `M`).
    pub segment: char,
    pub security_id: &'a str,
    pub trading_symbol: &'a str,
    /// How many leading bytes of the trading symbol name the underlying (`NIFTY` in
    /// `NIFTY-Dec2026-FUT`; the whole symbol for an equity).
    pub underlying_len: usize,
    pub instrument: &'a str,
    pub lot_size: u32,
    pub series: &'a str,
    pub expiry: Option<NaiveDate>,
    pub strike: Option<f64>,
    pub option_type: Option<&'static str>,
    pub display: &'a str,
}

struct Row {
    /// Where the row's strings start in [`Table::text`]: security id, trading symbol, display.
    at: u32,
    id_len: u16,
    symbol_len: u16,
    display_len: u16,
    underlying_len: u16,
    lot_size: u32,
    expiry: Option<NaiveDate>,
    /// NaN when the row has no strike (saves the `Option` tag on every row).
    strike: f64,
    instrument: u32,
    series: u32,
    exchange: u8,
    segment: u8,
    /// 0 none, 1 CE, 2 PE.
    option: u8,
}

// The module doc's promise, checked by the compiler.
const _: () = assert!(std::mem::size_of::<Row>() == 40);

/// Each distinct word once; rows hold its number.
#[derive(Default)]
struct Interner {
    words: Vec<Box<str>>,
    numbers: HashMap<Box<str>, u32>,
}

impl Interner {
    fn number(&mut self, word: &str) -> u32 {
        if let Some(n) = self.numbers.get(word) {
            return *n;
        }
        let n = u32::try_from(self.words.len()).unwrap_or(u32::MAX);
        self.words.push(word.into());
        self.numbers.insert(word.into(), n);
        n
    }

    fn word(&self, n: u32) -> &str {
        self.words.get(n as usize).map_or("", |w| w)
    }
}

#[derive(Default)]
pub(crate) struct Table {
    text: String,
    rows: Vec<Row>,
    words: Interner,
    /// Row numbers sorted by (exchange, segment, upper-case trading symbol), file order within
    /// equal keys.
    by_symbol: Vec<u32>,
    /// Derivative row numbers sorted by (exchange, segment, upper-case underlying).
    by_underlying: Vec<u32>,
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table")
            .field("rows", &self.rows.len())
            .field("text_bytes", &self.text.len())
            .finish_non_exhaustive()
    }
}

impl Table {
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Adds a row; `false` (row skipped) only for absurd sizes no real file has: a field over
    /// 64 KiB, or more than 4 GiB of text in all.
    pub fn push(&mut self, row: &NewRow<'_>) -> bool {
        let (Ok(at), Ok(id_len), Ok(symbol_len), Ok(display_len), Ok(underlying_len)) = (
            u32::try_from(self.text.len()),
            u16::try_from(row.security_id.len()),
            u16::try_from(row.trading_symbol.len()),
            u16::try_from(row.display.len()),
            u16::try_from(row.underlying_len.min(row.trading_symbol.len())),
        ) else {
            return false;
        };
        let Some(exchange) = EXCHANGES.iter().position(|e| *e == row.exchange) else {
            return false;
        };
        self.text.push_str(row.security_id);
        self.text.push_str(row.trading_symbol);
        self.text.push_str(row.display);
        let instrument = self.words.number(row.instrument);
        let series = self.words.number(row.series);
        self.rows.push(Row {
            at,
            id_len,
            symbol_len,
            display_len,
            underlying_len,
            lot_size: row.lot_size,
            expiry: row.expiry,
            strike: row.strike.unwrap_or(f64::NAN),
            instrument,
            series,
            exchange: exchange as u8,
            segment: row.segment as u8,
            option: match row.option_type {
                Some("CE") => 1,
                Some("PE") => 2,
                _ => 0,
            },
        });
        true
    }

    /// Builds the sorted lookups once every row is in.
    pub fn finish(&mut self) {
        self.text.shrink_to_fit();
        self.rows.shrink_to_fit();
        let all = 0..u32::try_from(self.rows.len()).unwrap_or(u32::MAX);
        let mut by_symbol: Vec<u32> = all.clone().collect();
        // `sort_by` is stable: rows with one key stay in file order.
        by_symbol.sort_by(|a, b| self.symbol_key(*a).cmp_key(&self.symbol_key(*b)));
        let mut by_underlying: Vec<u32> = all
            .filter(|n| self.rows[*n as usize].segment != b'E')
            .collect();
        by_underlying.sort_by(|a, b| self.underlying_key(*a).cmp_key(&self.underlying_key(*b)));
        self.by_symbol = by_symbol;
        self.by_underlying = by_underlying;
    }

    /// The rows whose trading symbol is `symbol` (any case) on `exchange` and `segment`.
    pub fn by_symbol<'a>(
        &'a self,
        exchange: &str,
        segment: char,
        symbol: &str,
    ) -> impl Iterator<Item = RowRef<'a>> + 'a {
        let key = Key::of(exchange, segment, symbol);
        let range = self.equal_range(&self.by_symbol, &key, |n| self.symbol_key(n));
        self.by_symbol[range].iter().map(|n| self.row(*n))
    }

    /// The derivative rows of `underlying` (any case) on `exchange` and `segment`.
    pub fn by_underlying<'a>(
        &'a self,
        exchange: &str,
        segment: char,
        underlying: &str,
    ) -> impl Iterator<Item = RowRef<'a>> + 'a {
        let key = Key::of(exchange, segment, underlying);
        let range = self.equal_range(&self.by_underlying, &key, |n| self.underlying_key(n));
        self.by_underlying[range].iter().map(|n| self.row(*n))
    }

    /// Every distinct upper-case trading symbol on `exchange` and `segment` (for "did you
    /// mean" suggestions).
    pub fn symbols<'a>(
        &'a self,
        exchange: &str,
        segment: char,
    ) -> impl Iterator<Item = String> + 'a {
        let exchange = exchange_number(exchange);
        let segment = segment as u8;
        let start = self.by_symbol.partition_point(|n| {
            let r = &self.rows[*n as usize];
            (Some(r.exchange), r.segment) < (exchange, segment)
        });
        let mut last: Option<String> = None;
        self.by_symbol[start..]
            .iter()
            .map(|n| &self.rows[*n as usize])
            .take_while(move |r| (Some(r.exchange), r.segment) == (exchange, segment))
            .filter_map(move |r| {
                let name = self.symbol_of(r).to_ascii_uppercase();
                if last.as_deref() == Some(name.as_str()) {
                    return None;
                }
                last = Some(name.clone());
                Some(name)
            })
    }

    fn equal_range<'a>(
        &'a self,
        sorted: &[u32],
        key: &Key<'_>,
        key_of: impl Fn(u32) -> Key<'a>,
    ) -> std::ops::Range<usize> {
        let start = sorted.partition_point(|n| key_of(*n).cmp_key(key) == Ordering::Less);
        let len = sorted[start..].partition_point(|n| key_of(*n).cmp_key(key) == Ordering::Equal);
        start..start + len
    }

    fn row(&self, n: u32) -> RowRef<'_> {
        RowRef {
            table: self,
            row: &self.rows[n as usize],
        }
    }

    fn symbol_of(&self, r: &Row) -> &str {
        let start = r.at as usize + r.id_len as usize;
        &self.text[start..start + r.symbol_len as usize]
    }

    fn symbol_key(&self, n: u32) -> Key<'_> {
        let r = &self.rows[n as usize];
        Key {
            exchange: Some(r.exchange),
            segment: r.segment,
            name: self.symbol_of(r),
        }
    }

    fn underlying_key(&self, n: u32) -> Key<'_> {
        let r = &self.rows[n as usize];
        Key {
            exchange: Some(r.exchange),
            segment: r.segment,
            name: &self.symbol_of(r)[..r.underlying_len as usize],
        }
    }
}

fn exchange_number(exchange: &str) -> Option<u8> {
    EXCHANGES
        .iter()
        .position(|e| *e == exchange)
        .map(|n| n as u8)
}

/// A sort key: names compare without regard to ASCII case (Dhan writes `NIFTY-Dec2026-FUT`,
/// alerts arrive upper-cased). An unknown exchange (`None`) sorts first and matches no row.
struct Key<'a> {
    exchange: Option<u8>,
    segment: u8,
    name: &'a str,
}

impl<'a> Key<'a> {
    fn of(exchange: &str, segment: char, name: &'a str) -> Self {
        Key {
            exchange: exchange_number(exchange),
            segment: u8::try_from(segment).unwrap_or(0),
            name,
        }
    }

    fn cmp_key(&self, other: &Key<'_>) -> Ordering {
        (self.exchange, self.segment)
            .cmp(&(other.exchange, other.segment))
            .then_with(|| {
                let upper = |s: &'a str| s.bytes().map(|b| b.to_ascii_uppercase());
                upper(self.name).cmp(other.name.bytes().map(|b| b.to_ascii_uppercase()))
            })
    }
}

/// One stored row, read back.
#[derive(Clone, Copy)]
pub(crate) struct RowRef<'a> {
    table: &'a Table,
    row: &'a Row,
}

impl<'a> RowRef<'a> {
    pub fn security_id(&self) -> &'a str {
        let start = self.row.at as usize;
        &self.table.text[start..start + self.row.id_len as usize]
    }

    pub fn trading_symbol(&self) -> &'a str {
        self.table.symbol_of(self.row)
    }

    pub fn instrument(&self) -> &'a str {
        self.table.words.word(self.row.instrument)
    }

    pub fn series(&self) -> &'a str {
        self.table.words.word(self.row.series)
    }

    pub fn expiry(&self) -> Option<NaiveDate> {
        self.row.expiry
    }

    pub fn strike(&self) -> Option<f64> {
        (!self.row.strike.is_nan()).then_some(self.row.strike)
    }

    pub fn option_type(&self) -> Option<&'static str> {
        match self.row.option {
            1 => Some("CE"),
            2 => Some("PE"),
            _ => None,
        }
    }

    pub fn is_future(&self) -> bool {
        self.instrument().starts_with("FUT")
    }

    pub fn is_option(&self) -> bool {
        self.row.option != 0
    }

    /// The row as the owned [`Instrument`] an alert resolves to.
    pub fn to_instrument(self) -> Instrument {
        let exchange = EXCHANGES[self.row.exchange as usize];
        let segment = char::from(self.row.segment);
        let symbol = self.trading_symbol();
        let display_start =
            self.row.at as usize + self.row.id_len as usize + self.row.symbol_len as usize;
        Instrument {
            security_id: self.security_id().to_owned(),
            exchange,
            segment,
            exchange_segment: super::master::exchange_segment(exchange, segment).unwrap_or(""),
            trading_symbol: symbol.to_owned(),
            underlying: symbol[..self.row.underlying_len as usize].to_ascii_uppercase(),
            instrument: self.instrument().to_owned(),
            lot_size: self.row.lot_size,
            series: self.series().to_owned(),
            expiry: self.row.expiry,
            strike: self.strike(),
            option_type: self.option_type(),
            display: self.table.text[display_start..display_start + self.row.display_len as usize]
                .to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row<'a>(exchange: &'static str, segment: char, id: &'a str, symbol: &'a str) -> NewRow<'a> {
        NewRow {
            exchange,
            segment,
            security_id: id,
            trading_symbol: symbol,
            underlying_len: symbol.find('-').unwrap_or(symbol.len()),
            instrument: if segment == 'E' { "EQUITY" } else { "FUTIDX" },
            lot_size: 1,
            series: "EQ",
            expiry: None,
            strike: None,
            option_type: None,
            display: "",
        }
    }

    #[test]
    fn lookups_are_case_blind_keep_file_order_and_never_cross_exchanges() {
        let mut t = Table::default();
        for r in [
            row("NSE", 'D', "3", "NIFTY-Jan2027-FUT"),
            row("NSE", 'E', "1", "INFY"),
            row("BSE", 'E', "9", "INFY"),
            row("NSE", 'D', "2", "NIFTY-Dec2026-FUT"),
            row("NSE", 'E', "4", "INFY"),
        ] {
            assert!(t.push(&r));
        }
        t.finish();
        let ids = |it: &mut dyn Iterator<Item = RowRef<'_>>| {
            it.map(|r| r.security_id().to_owned()).collect::<Vec<_>>()
        };
        assert_eq!(ids(&mut t.by_symbol("NSE", 'E', "INFY")), ["1", "4"]);
        assert_eq!(ids(&mut t.by_symbol("BSE", 'E', "infy")), ["9"]);
        assert_eq!(
            ids(&mut t.by_symbol("MCX", 'E', "INFY")),
            Vec::<String>::new()
        );
        assert_eq!(
            ids(&mut t.by_symbol("XYZ", 'E', "INFY")),
            Vec::<String>::new()
        );
        assert_eq!(
            ids(&mut t.by_symbol("NSE", 'D', "NIFTY-DEC2026-FUT")),
            ["2"]
        );
        assert_eq!(ids(&mut t.by_underlying("NSE", 'D', "nifty")), ["3", "2"]);
        assert_eq!(
            ids(&mut t.by_underlying("NSE", 'E', "INFY")),
            Vec::<String>::new(),
            "equities are not derivatives of themselves"
        );
        assert_eq!(
            t.symbols("NSE", 'E').collect::<Vec<_>>(),
            ["INFY"],
            "one name however many rows"
        );
        let nifty = t.by_symbol("NSE", 'D', "NIFTY-JAN2027-FUT").next().unwrap();
        let i = nifty.to_instrument();
        assert_eq!(
            (
                i.trading_symbol.as_str(),
                i.underlying.as_str(),
                i.exchange_segment
            ),
            ("NIFTY-Jan2027-FUT", "NIFTY", "NSE_FNO")
        );
        assert_eq!(i.strike, None);
    }
}
