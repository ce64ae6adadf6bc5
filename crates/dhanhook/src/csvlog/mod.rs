//! The CSV order log, for users of the upstream's spreadsheet habit.
//!
//! Same columns as the upstream's `log_order_to_csv` (so existing sheets keep working), plus
//! `alert_id`, `correlation_id` and `mode` at the end. One row per leg outcome: the broker's
//! answer to the order, and one more when the order tracker sees the leg reach its final state
//! (FILLED with the average price, REJECTED, CANCELLED, EXPIRED), so a spreadsheet keeping the
//! last row per `correlation_id` has each leg's final word; the header is written once, when
//! the file is new. The journal is the source of truth: a CSV write that
//! fails is logged and does not fail the order.
//!
//! Rows are written off the request path: [`CsvLog::append`] serialises the row and hands it
//! to one writer thread ([`writer`]), which writes and syncs them in order, many at a time
//! under load. A row is usually on disk before the alert's answer is sent, but the answer does
//! not wait for it; [`CsvLog::flush`] waits, and the shutdown calls it so nothing queued is
//! lost.

mod writer;

use std::{fs::OpenOptions, io, path::Path, sync::Arc};

use chrono::{DateTime, Utc};
use serde::Serialize;

use self::writer::RowWriter;
use crate::{clock::ist, store::OrderRow};

/// The header row. Must list [`CsvRow`]'s fields in order (a unit test checks this).
const COLUMNS: [&str; 24] = [
    "timestamp",
    "date",
    "time",
    "alert_type",
    "leg_number",
    "symbol",
    "exchange",
    "transaction_type",
    "quantity",
    "order_type",
    "product_type",
    "alert_price",
    "execution_price",
    "price_diff",
    "slippage_pct",
    "status",
    "message",
    "order_id",
    "security_id",
    "execution_mode",
    "source_ip",
    "alert_id",
    "correlation_id",
    "mode",
];

/// One CSV row. Field order is column order.
#[derive(Debug, Serialize)]
struct CsvRow<'a> {
    timestamp: String,
    date: String,
    time: String,
    alert_type: &'a str,
    leg_number: u32,
    symbol: &'a str,
    exchange: &'a str,
    transaction_type: &'a str,
    quantity: i64,
    order_type: &'a str,
    product_type: &'a str,
    alert_price: Option<f64>,
    execution_price: Option<f64>,
    price_diff: Option<f64>,
    slippage_pct: Option<f64>,
    status: &'a str,
    message: &'a str,
    order_id: &'a str,
    security_id: &'a str,
    execution_mode: String,
    source_ip: &'a str,
    alert_id: &'a str,
    correlation_id: &'a str,
    mode: &'a str,
}

/// An append-only CSV file shared by all requests. Cheap to clone: every clone feeds the same
/// writer thread.
#[derive(Debug, Clone)]
pub struct CsvLog {
    path: Arc<Path>,
    /// The one writer of the file: rows go to it in `append` order and never interleave.
    writer: RowWriter,
}

impl CsvLog {
    /// Opens `path` for appending (creating it and its folder), writing the header if the file
    /// is new or empty.
    ///
    /// # Errors
    /// The folder or file cannot be created or opened.
    // Blocking file calls, made from the async start-up (`Application::build`) on purpose: a
    // folder, an open and at most a header line, once, before the listener serves anything,
    // so nothing waits on them. Rows are written by the writer thread started here.
    pub fn open(path: &Path) -> io::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        // Order history and client IPs: readable by this user only, like the journal.
        let mut file = {
            use std::os::unix::fs::OpenOptionsExt;
            OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(path)?
        };
        // A log created by an older version (0644) is tightened too.
        {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
        if file.metadata()?.len() == 0 {
            let mut header = csv::Writer::from_writer(Vec::new());
            header.write_record(COLUMNS)?;
            let bytes = header
                .into_inner()
                .map_err(|e| io::Error::other(e.to_string()))?;
            std::io::Write::write_all(&mut file, &bytes)?;
        }
        Ok(Self {
            path: Arc::from(path),
            writer: RowWriter::start(file, path.to_owned())?,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Waits until every row appended before this call is written and synced (or its failure
    /// logged). Called at shutdown; a reader who must see a row at once can call it too.
    pub async fn flush(&self) {
        self.writer.flush().await;
    }

    /// Appends one row for a leg's outcome: serialised here, written by the writer thread
    /// shortly after, in call order. Never waits for the disk. Errors are logged, not
    /// returned: see the module doc.
    pub fn append(&self, alert_type: &str, row: &OrderRow, at: DateTime<Utc>) {
        let local = ist(at);
        let price_diff = match (row.price, row.fill_price) {
            (Some(a), Some(e)) => Some(e - a),
            _ => None,
        };
        let slippage_pct = match (row.price, price_diff) {
            (Some(a), Some(d)) if a > 0.0 => Some((d / a * 10_000.0).round() / 100.0),
            _ => None,
        };
        let execution_mode = if row.amo {
            format!("AMO ({})", row.amo_time.map_or("default", |t| t.as_str()))
        } else {
            "IMMEDIATE".to_owned()
        };
        let record = CsvRow {
            timestamp: local.to_rfc3339(),
            date: local.format("%Y-%m-%d").to_string(),
            time: local.format("%H:%M:%S").to_string(),
            alert_type,
            leg_number: row.leg,
            symbol: &row.symbol,
            exchange: row.exchange.as_str(),
            transaction_type: row.side.as_str(),
            // Units, as sent to Dhan (the upstream logged the quantity it sent).
            quantity: row.units.unwrap_or(row.quantity),
            order_type: row.order_type.as_str(),
            product_type: row.product.as_str(),
            alert_price: row.price,
            execution_price: row.fill_price,
            price_diff,
            slippage_pct,
            status: row.status.as_str(),
            message: row.message.as_deref().unwrap_or(""),
            order_id: row.order_id.as_deref().unwrap_or(""),
            security_id: row.security_id.as_deref().unwrap_or(""),
            execution_mode,
            source_ip: row.client_ip.as_deref().unwrap_or(""),
            alert_id: &row.alert_id,
            correlation_id: &row.correlation_id,
            mode: row.mode.as_str(),
        };
        // Serialise here (cheap, and `record` borrows `row`); the writer thread does the I/O.
        let mut line = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(Vec::new());
        let sent = line
            .serialize(&record)
            .map_err(io::Error::other)
            .and_then(|()| {
                line.into_inner()
                    .map_err(|e| io::Error::other(e.to_string()))
            })
            .and_then(|bytes| {
                if self.writer.send(bytes) {
                    Ok(())
                } else {
                    Err(io::Error::other("the CSV writer thread has stopped"))
                }
            });
        if let Err(error) = sent {
            tracing::warn!(path = %self.path.display(), %error, "could not append to the CSV order log");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lists_the_row_fields_in_order() {
        let row = CsvRow {
            timestamp: String::new(),
            date: String::new(),
            time: String::new(),
            alert_type: "",
            leg_number: 1,
            symbol: "",
            exchange: "",
            transaction_type: "",
            quantity: 1,
            order_type: "",
            product_type: "",
            alert_price: None,
            execution_price: None,
            price_diff: None,
            slippage_pct: None,
            status: "",
            message: "",
            order_id: "",
            security_id: "",
            execution_mode: String::new(),
            source_ip: "",
            alert_id: "",
            correlation_id: "",
            mode: "",
        };
        let mut w = csv::Writer::from_writer(Vec::new());
        w.serialize(&row).unwrap();
        let text = String::from_utf8(w.into_inner().unwrap()).unwrap();
        assert_eq!(text.lines().next().unwrap(), COLUMNS.join(","));
    }

    fn row(i: usize) -> OrderRow {
        use crate::{
            domain::{Exchange, Mode, OrderType, Product, Side, Validity},
            store::{LegDetail, LegStatus},
        };
        let at = chrono::DateTime::UNIX_EPOCH;
        OrderRow {
            alert_id: format!("alert-{i}"),
            received_at: at,
            strategy: None,
            client_ip: Some("127.0.0.1".to_owned()),
            duplicates: 0,
            leg: 1,
            correlation_id: format!("corr-{i}"),
            // A comma and a quote: the row must still be one whole CSV record.
            symbol: "RELIANCE, \"EQ\"".to_owned(),
            exchange: Exchange::Nse,
            side: Side::Buy,
            quantity: 1,
            order_type: OrderType::Market,
            product: Product::Intraday,
            validity: Validity::Day,
            price: Some(2500.0),
            trigger_price: None,
            amo: false,
            amo_time: None,
            closes: false,
            security_id: Some("2885".to_owned()),
            exchange_segment: None,
            trading_symbol: None,
            units: Some(1),
            lot_size: Some(1),
            mode: Mode::Paper,
            status: LegStatus::Accepted,
            order_id: Some(format!("order-{i}")),
            fill_price: None,
            message: Some("multi\nline".to_owned()),
            detail: LegDetail::default(),
            updated_at: at,
        }
    }

    /// What a user sees: appends from many tasks at once each give one intact row under one
    /// header; rows appended one after another are in call order; `flush` means on disk; a
    /// reopened log adds no second header.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_appends_give_every_row_once_after_one_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/orders.csv");
        let log = CsvLog::open(&path).unwrap();
        let at = Utc::now();
        let tasks: Vec<_> = (0..8)
            .map(|t| {
                let log = log.clone();
                tokio::spawn(async move {
                    for i in 0..50 {
                        log.append("single_order", &row(t * 100 + i), at);
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        log.flush().await;
        let reopened = CsvLog::open(&path).unwrap();
        for i in 1000..1010 {
            reopened.append("single_order", &row(i), at);
        }
        reopened.flush().await;

        let mut reader = csv::Reader::from_path(&path).unwrap();
        assert_eq!(
            reader.headers().unwrap().iter().collect::<Vec<_>>(),
            COLUMNS
        );
        let ids: Vec<String> = reader
            .records()
            .map(|r| {
                let r = r.expect("a whole CSV record");
                assert_eq!(r.len(), COLUMNS.len());
                assert_eq!(&r[5], "RELIANCE, \"EQ\"");
                r[21].to_owned()
            })
            .collect();
        assert_eq!(ids.len(), 410, "every row once");
        let unique: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), 410, "no row twice");
        let numbers: Vec<usize> = ids.iter().map(|id| id[6..].parse().unwrap()).collect();
        for t in 0..8 {
            let mine: Vec<usize> = numbers
                .iter()
                .copied()
                .filter(|n| *n < 1000 && n / 100 == t)
                .collect();
            let expected: Vec<usize> = (0..50).map(|i| t * 100 + i).collect();
            assert_eq!(mine, expected, "task {t}'s rows in call order");
        }
        let tail: Vec<String> = (1000..1010).map(|i| format!("alert-{i}")).collect();
        assert_eq!(
            ids[400..],
            tail,
            "sequential appends in call order, after the others"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
}
