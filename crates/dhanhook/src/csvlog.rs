//! The CSV order log, for users of the upstream's spreadsheet habit.
//!
//! Same columns as the upstream's `log_order_to_csv` (so existing sheets keep working), plus
//! `alert_id`, `correlation_id` and `mode` at the end. One row per leg outcome: the broker's
//! answer to the order, and one more when the order tracker sees the leg reach its final state
//! (FILLED with the average price, REJECTED, CANCELLED, EXPIRED), so a spreadsheet keeping the
//! last row per `correlation_id` has each leg's final word; the header is written once, when
//! the file is new. The journal is the source of truth: a CSV write that
//! fails is logged and does not fail the order.

use std::{
    fs::{File, OpenOptions},
    io,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use chrono::{DateTime, Utc};
use serde::Serialize;

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

/// An append-only CSV file shared by all requests.
#[derive(Debug, Clone)]
pub struct CsvLog {
    path: PathBuf,
    /// A std mutex: rows are written from `spawn_blocking`, never across an `.await`; it makes
    /// each row a single uninterrupted write, so concurrent requests never interleave lines.
    file: Arc<Mutex<File>>,
}

impl CsvLog {
    /// Opens `path` for appending (creating it and its folder), writing the header if the file
    /// is new or empty.
    ///
    /// # Errors
    /// The folder or file cannot be created or opened.
    // Blocking file calls, made from the async start-up (`Application::build`) on purpose: a
    // folder, an open and at most a header line, once, before the listener serves anything,
    // so nothing waits on them. Rows are written off the runtime (`append`).
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
            path: path.to_owned(),
            file: Arc::new(Mutex::new(file)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one row for a leg's outcome. Errors are logged, not returned: see the module doc.
    pub async fn append(&self, alert_type: &str, row: &OrderRow, at: DateTime<Utc>) {
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
        // Serialise here (cheap), write on a blocking thread (file I/O).
        let mut line = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(Vec::new());
        let bytes = line
            .serialize(&record)
            .map_err(io::Error::other)
            .and_then(|()| {
                line.into_inner()
                    .map_err(|e| io::Error::other(e.to_string()))
            });
        let file = Arc::clone(&self.file);
        let result = match bytes {
            Ok(bytes) => tokio::task::spawn_blocking(move || write_line(&file, &bytes))
                .await
                .unwrap_or_else(|e| Err(io::Error::other(e))),
            Err(e) => Err(e),
        };
        if let Err(error) = result {
            tracing::warn!(path = %self.path.display(), %error, "could not append to the CSV order log");
        }
    }
}

fn write_line(file: &Mutex<File>, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let mut file = file
        .lock()
        .map_err(|_| io::Error::other("CSV file lock poisoned"))?;
    // One write_all of a whole line on an O_APPEND file: rows never interleave.
    file.write_all(bytes)?;
    file.flush()
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
}
