//! The holiday-file format: one CSV file per (holiday list, year), parsed strictly.
//!
//! A file is named `<list>-<year>.csv`, where `<list>` is one of `nse` (NSE equity and F&O),
//! `bse` (BSE equity and F&O), `cds` (NSE and BSE currency derivatives) or `mcx` (commodities).
//! The name decides which (list, year) the file covers, so an operator can replace one year of
//! one exchange by dropping a single file into the override directory.
//!
//! Contents: a header line `date,kind,description,open,close` (the last two columns may be left
//! out of the header), `#` comment lines anywhere, and one row per listed date:
//!
//! ```text
//! 2026-01-26,holiday,Republic Day
//! 2026-02-01,special,Union Budget live session (Sunday),09:15,15:30
//! 2026-03-03,morning_closed,Holi
//! ```
//!
//! `kind` is `holiday` (no session), `special` (exactly one session, `open`–`close` IST, which
//! replaces the regular one, also on weekends), `morning_closed` or `evening_closed` (commodity
//! list only: one of the two MCX sessions does not trade). Any malformed line is an error that
//! names the file and line, because a silently skipped holiday would send real orders into a
//! closed market.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use chrono::{Datelike, NaiveDate, NaiveTime, Weekday};

/// Problems reading holiday data. Every message names the file (and the line when there is one).
#[derive(Debug, thiserror::Error)]
pub enum CalendarError {
    /// The directory or a file in it could not be read.
    // The I/O error is in the message, so it is not also a `source()` (a field named
    // `source` would be one): `{:#}` would print it twice.
    #[error("cannot read holiday data {}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The file name does not say which list and year it is for.
    #[error("{file}: {message}")]
    FileName { file: String, message: String },
    /// A line of the file is malformed.
    #[error("{file}:{line}: {message}")]
    Line {
        file: String,
        line: u64,
        message: String,
    },
}

impl CalendarError {
    pub(super) fn io(path: &Path, error: std::io::Error) -> Self {
        CalendarError::Io {
            path: path.to_path_buf(),
            error,
        }
    }
}

/// Which published holiday list a file holds. Several venues share one list (equity and F&O of
/// an exchange use the same circular's dates).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum ListId {
    Nse,
    Bse,
    Cds,
    Mcx,
}

impl ListId {
    const ALL: [ListId; 4] = [ListId::Nse, ListId::Bse, ListId::Cds, ListId::Mcx];

    /// The file-name prefix.
    fn stem(self) -> &'static str {
        match self {
            ListId::Nse => "nse",
            ListId::Bse => "bse",
            ListId::Cds => "cds",
            ListId::Mcx => "mcx",
        }
    }
}

/// What a listed date does to that day's regular sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DayKind {
    /// No trading at all.
    Holiday,
    /// Exactly one session, `open`..`close` IST, instead of the regular ones.
    Special { open: NaiveTime, close: NaiveTime },
    /// Commodities: the morning session (09:00–17:00) is closed, the evening one trades.
    MorningClosed,
    /// Commodities: the evening session (17:00–close) is closed, the morning one trades.
    EveningClosed,
}

/// One listed date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DayEntry {
    pub kind: DayKind,
    pub description: String,
}

/// One parsed file: every listed date of one list in one year.
#[derive(Debug, Clone)]
pub(super) struct YearFile {
    pub list: ListId,
    pub year: i32,
    pub days: BTreeMap<NaiveDate, DayEntry>,
}

/// Which (list, year) a file name such as `nse-2026.csv` covers.
pub(super) fn parse_file_name(shown: &str, name: &str) -> Result<(ListId, i32), CalendarError> {
    let bad = |message: String| CalendarError::FileName {
        file: shown.to_owned(),
        message,
    };
    let expected = || {
        let stems: Vec<&str> = ListId::ALL.iter().map(|l| l.stem()).collect();
        format!(
            "a holiday file must be named <list>-<year>.csv with <list> one of {}",
            stems.join(", ")
        )
    };
    let Some(stem) = name.strip_suffix(".csv") else {
        return Err(bad(expected()));
    };
    let Some((list, year)) = stem.rsplit_once('-') else {
        return Err(bad(expected()));
    };
    let Some(list) = ListId::ALL.into_iter().find(|l| l.stem() == list) else {
        return Err(bad(expected()));
    };
    // Four digits exactly: "26" or "+2026" are typos, not years.
    if year.len() != 4 || !year.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(format!("`{year}` is not a four-digit year")));
    }
    let year = year
        .parse::<i32>()
        .map_err(|e| bad(format!("`{year}` is not a year: {e}")))?;
    Ok((list, year))
}

const HEADER_SHORT: [&str; 3] = ["date", "kind", "description"];
const HEADER_FULL: [&str; 5] = ["date", "kind", "description", "open", "close"];

/// Parses one holiday file. `shown` is how errors name the file (a path for override files),
/// `name` its bare file name (which decides list and year).
pub(super) fn parse_file(shown: &str, name: &str, text: &str) -> Result<YearFile, CalendarError> {
    let (list, year) = parse_file_name(shown, name)?;
    let err = |line: u64, message: String| CalendarError::Line {
        file: shown.to_owned(),
        line,
        message,
    };

    let mut reader = csv::ReaderBuilder::new()
        // The header is checked by hand so a wrong one gets a clear message with its line.
        .has_headers(false)
        // Regular rows have 3 fields and special rows 5; the count is checked per row below.
        .flexible(true)
        .comment(Some(b'#'))
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());

    let mut saw_header = false;
    let mut days = BTreeMap::new();
    let mut first_line: BTreeMap<NaiveDate, u64> = BTreeMap::new();
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                return Err(err(line, format!("not valid CSV: {e}")));
            }
        }
        let line = record.position().map_or(0, |p| p.line());
        let fields: Vec<&str> = record.iter().collect();

        if !saw_header {
            if fields != HEADER_SHORT && fields != HEADER_FULL {
                return Err(err(
                    line,
                    format!(
                        "expected the header `{}`, found `{}`",
                        HEADER_FULL.join(","),
                        fields.join(",")
                    ),
                ));
            }
            saw_header = true;
            continue;
        }

        let (date, entry) = parse_row(list, year, &fields).map_err(|m| err(line, m))?;
        if let Some(first) = first_line.insert(date, line) {
            return Err(err(
                line,
                format!("{date} is listed twice (first on line {first})"),
            ));
        }
        days.insert(date, entry);
    }
    if !saw_header {
        return Err(err(
            1,
            format!(
                "the file is empty; it needs at least the header `{}`",
                HEADER_FULL.join(",")
            ),
        ));
    }
    Ok(YearFile { list, year, days })
}

/// One data row; the error is the message (the caller adds file and line).
fn parse_row(list: ListId, year: i32, fields: &[&str]) -> Result<(NaiveDate, DayEntry), String> {
    let (date, kind, description, times) = match *fields {
        [date, kind, description] => (date, kind, description, None),
        [date, kind, description, open, close] => (date, kind, description, Some((open, close))),
        _ => {
            return Err(format!(
                "expected 3 fields (date,kind,description) or 5 (date,kind,description,open,close), found {}",
                fields.len()
            ));
        }
    };

    // `%Y-%m-%d` alone would also take "2026-1-5"; insist on the zero-padded form.
    let date = if date.len() == 10 {
        NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()
    } else {
        None
    }
    .ok_or_else(|| format!("`{date}` is not a date (YYYY-MM-DD)"))?;
    if date.year() != year {
        return Err(format!(
            "{date} is not in {year}, the year in the file name"
        ));
    }
    if description.is_empty() {
        return Err("the description is empty".to_owned());
    }
    // A quoted field may hold line breaks, so an unclosed quote swallows the following rows into
    // one description; refuse rather than silently lose those dates.
    if description.contains(['\n', '\r']) {
        return Err("the description spans several lines (an unclosed quote?)".to_owned());
    }
    // Open/close columns present but empty are fine on non-special rows (spreadsheets pad rows).
    let times = times.filter(|(open, close)| !(open.is_empty() && close.is_empty()));

    let weekend = matches!(date.weekday(), Weekday::Sat | Weekday::Sun);
    let kind = match kind {
        "holiday" => DayKind::Holiday,
        "special" => {
            let Some((open, close)) = times else {
                return Err("a `special` row needs open and close times (HH:MM IST)".to_owned());
            };
            let open = parse_hhmm(open)?;
            let close = parse_hhmm(close)?;
            if open >= close {
                return Err(format!(
                    "the session must open before it closes ({open} is not before {close})"
                ));
            }
            DayKind::Special { open, close }
        }
        "morning_closed" | "evening_closed" => {
            if list != ListId::Mcx {
                return Err(format!(
                    "`{kind}` only applies to the commodity list (mcx-<year>.csv)"
                ));
            }
            if weekend {
                return Err(format!(
                    "{date} is a weekend, which has no session to close; use `special` for weekend trading"
                ));
            }
            if kind == "morning_closed" {
                DayKind::MorningClosed
            } else {
                DayKind::EveningClosed
            }
        }
        other => {
            return Err(format!(
                "unknown kind `{other}` (expected holiday, special, morning_closed or evening_closed)"
            ));
        }
    };
    if times.is_some() && !matches!(kind, DayKind::Special { .. }) {
        return Err("open and close times are only allowed on `special` rows".to_owned());
    }
    Ok((
        date,
        DayEntry {
            kind,
            description: description.to_owned(),
        },
    ))
}

/// `HH:MM`, zero-padded, 24-hour.
fn parse_hhmm(s: &str) -> Result<NaiveTime, String> {
    if s.len() == 5
        && let Ok(time) = NaiveTime::parse_from_str(s, "%H:%M")
    {
        return Ok(time);
    }
    Err(format!("`{s}` is not a time (HH:MM, IST)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(name: &str, text: &str) -> Result<YearFile, CalendarError> {
        parse_file(name, name, text)
    }

    fn line_error(name: &str, text: &str) -> (u64, String) {
        match parse(name, text) {
            Err(CalendarError::Line { line, message, .. }) => (line, message),
            other => panic!("expected a line error, got {other:?}"),
        }
    }

    #[test]
    fn parses_all_kinds_with_comments_and_quotes() {
        let text = "# comment\n\
                    date,kind,description,open,close\n\
                    2026-01-01,evening_closed,New Year\n\
                    # another comment\n\
                    2026-02-01,special,\"Budget, Sunday\",09:15,15:30\n\
                    2026-03-03,morning_closed,Holi,,\n\
                    2026-12-25,holiday,Christmas\n";
        let file = parse("mcx-2026.csv", text).unwrap();
        assert_eq!((file.list, file.year), (ListId::Mcx, 2026));
        assert_eq!(file.days.len(), 4);
        let budget = &file.days[&NaiveDate::from_ymd_opt(2026, 2, 1).unwrap()];
        assert_eq!(budget.description, "Budget, Sunday");
        assert_eq!(
            budget.kind,
            DayKind::Special {
                open: NaiveTime::from_hms_opt(9, 15, 0).unwrap(),
                close: NaiveTime::from_hms_opt(15, 30, 0).unwrap(),
            }
        );
    }

    #[test]
    fn line_numbers_count_comment_lines() {
        let text = "# one\ndate,kind,description\n# three\n2026-01-26,holiday,Republic Day\n\
                    2026-13-01,holiday,Nope\n";
        let (line, message) = line_error("nse-2026.csv", text);
        assert_eq!(line, 5, "{message}");
        assert!(message.contains("2026-13-01"), "{message}");
    }

    #[test]
    fn rejects_malformed_rows() {
        let header = "date,kind,description,open,close\n";
        let cases = [
            ("2026-01-26,holiday", "expected 3 fields"),
            ("2026-1-26,holiday,Republic Day", "is not a date"),
            ("2027-01-26,holiday,Republic Day", "not in 2026"),
            ("2026-01-26,closed,Republic Day", "unknown kind"),
            ("2026-01-26,holiday,", "description is empty"),
            ("2026-02-01,special,Budget", "needs open and close"),
            ("2026-02-01,special,Budget,9:15,15:30", "is not a time"),
            (
                "2026-02-01,special,Budget,15:30,09:15",
                "open before it closes",
            ),
            (
                "2026-01-26,holiday,Republic Day,09:15,15:30",
                "only allowed on `special`",
            ),
            (
                "2026-03-03,morning_closed,Holi",
                "only applies to the commodity list",
            ),
        ];
        for (row, expected) in cases {
            let (line, message) = line_error("nse-2026.csv", &format!("{header}{row}\n"));
            assert_eq!(line, 2, "{row}: {message}");
            assert!(message.contains(expected), "{row}: {message}");
        }
        let (_, message) = line_error(
            "mcx-2026.csv",
            &format!("{header}2026-03-07,morning_closed,Saturday\n"),
        );
        assert!(message.contains("weekend"), "{message}");
    }

    #[test]
    fn rejects_duplicates_bad_headers_and_empty_files() {
        let (line, message) = line_error(
            "nse-2026.csv",
            "date,kind,description\n2026-01-26,holiday,A\n2026-01-26,holiday,B\n",
        );
        assert_eq!(line, 3);
        assert!(message.contains("first on line 2"), "{message}");

        let (line, message) = line_error("nse-2026.csv", "2026-01-26,holiday,A\n");
        assert_eq!(line, 1);
        assert!(message.contains("expected the header"), "{message}");

        let (line, message) = line_error("nse-2026.csv", "# only a comment\n");
        assert_eq!(line, 1);
        assert!(message.contains("empty"), "{message}");

        // An unclosed quote would swallow the next rows into one description.
        let (line, message) = line_error(
            "nse-2026.csv",
            "date,kind,description\n2026-01-26,holiday,\"Republic Day\n2026-03-03,holiday,Holi\n",
        );
        assert_eq!(line, 2);
        assert!(message.contains("unclosed quote"), "{message}");
    }

    #[test]
    fn file_names_decide_list_and_year() {
        assert_eq!(
            parse_file_name("x", "cds-2027.csv").unwrap(),
            (ListId::Cds, 2027)
        );
        for bad in [
            "nse.csv",
            "nse-26.csv",
            "nse-2026.txt",
            "nasdaq-2026.csv",
            "NSE-2026.csv",
        ] {
            assert!(parse_file_name(bad, bad).is_err(), "{bad}");
        }
        let message = parse_file_name("/etc/holidays/nse-26.csv", "nse-26.csv")
            .unwrap_err()
            .to_string();
        assert!(
            message.starts_with("/etc/holidays/nse-26.csv:"),
            "{message}"
        );
    }
}
