//! Reading the journal's rows into typed values, and the SELECT and status fragments both
//! backends read them with. Stored spellings become enums here; a value the code does not know
//! is [`JournalError::Corrupt`], reported where it is read.

use sqlx::Row;

use super::{
    AlertRecord, AlertStatus, JournalError, LegDetail, LegEvent, LegSource, LegStatus, OrderRow,
    QueuedAlert,
};
use crate::{
    clock::from_millis,
    domain::{AmoTime, Exchange, Mode, OrderType, Product, Side, Validity},
};

/// The query that reads [`OrderRow`]s: order legs `l` joined with their alert `a` (add
/// `WHERE` / `ORDER BY` after it).
pub(super) const ORDER_ROW_SELECT: &str =
    "SELECT l.alert_id, a.received_at, a.strategy, a.client_ip, a.duplicates,
        l.leg_no, l.correlation_id, l.symbol, l.exchange, l.side, l.quantity, l.order_type,
        l.product, l.validity, l.price, l.trigger_price, l.amo, l.amo_time, l.closes, l.mode, l.status,
        l.security_id, l.exchange_segment, l.trading_symbol, l.units, l.lot_size,
        l.broker_order_id, l.fill_price, l.message, l.updated_at,
        l.filled_qty, l.exchange_order_id, l.exchange_time, l.reason
    FROM order_legs l JOIN alerts a ON a.id = l.alert_id";

/// SQL condition: the alert `a` waits in the queue. It was queued, nobody holds a claim on it,
/// and legs of it are still QUEUED. (A QUEUED leg is an open leg, so such an alert's derived
/// status is `queued` or `processing`: saying so lets the `(status, queued_until)` index skip
/// the alerts the queue has finished with.)
macro_rules! waiting {
    () => {
        "(a.claim_holder IS NULL AND a.queued_until IS NOT NULL
          AND a.status IN ('queued', 'processing')
          AND EXISTS (SELECT 1 FROM order_legs q WHERE q.alert_id = a.id AND q.status = 'QUEUED'))"
    };
}
pub(super) use waiting;

/// SQL expression: the status alert `a` is reported with. The stored status is derived from
/// the legs alone; the queue's view is laid over it: a waiting alert is `queued`, a claimed one
/// whose legs have not moved yet is `processing` (what `/queue-stats` has always shown).
macro_rules! reported_status {
    () => {
        concat!(
            "CASE WHEN ",
            waiting!(),
            " THEN 'queued'
              WHEN a.claim_holder IS NOT NULL AND a.status = 'queued' THEN 'processing'
              ELSE a.status END"
        )
    };
}
pub(super) use reported_status;

/// The columns of `alerts a` that [`alert_record`] reads.
pub(super) const ALERT_RECORD_SELECT: &str = concat!(
    "SELECT a.id, a.received_at, a.mode, ",
    reported_status!(),
    " AS status, a.duplicates, a.alert_type, a.route, a.queued_until, a.payload FROM alerts a"
);

/// A stored spelling as its enum, or [`JournalError::Corrupt`] naming the column.
fn decode<T>(what: &str, value: &str, parse: fn(&str) -> Option<T>) -> Result<T, JournalError> {
    parse(value).ok_or_else(|| JournalError::Corrupt(format!("{what} {value:?}")))
}

/// Reads an [`AlertRecord`] (a row of [`ALERT_RECORD_SELECT`]) with its legs.
pub(super) fn alert_record<'r, R>(
    row: &'r R,
    legs: Vec<OrderRow>,
) -> Result<AlertRecord, JournalError>
where
    R: Row,
    &'static str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(AlertRecord {
        id: row.try_get("id")?,
        received_at: from_millis(row.try_get("received_at")?),
        alert_type: row.try_get("alert_type")?,
        route: row.try_get("route")?,
        queued_until: row
            .try_get::<Option<i64>, _>("queued_until")?
            .map(from_millis),
        mode: decode(
            "alert mode",
            &row.try_get::<String, _>("mode")?,
            Mode::parse,
        )?,
        status: decode(
            "alert status",
            &row.try_get::<String, _>("status")?,
            AlertStatus::parse,
        )?,
        duplicates: row.try_get("duplicates")?,
        payload: row.try_get("payload")?,
        legs,
    })
}

/// Reads an [`OrderRow`] (a row of [`ORDER_ROW_SELECT`]).
pub(super) fn order_row<'r, R>(row: &'r R) -> Result<OrderRow, JournalError>
where
    R: Row,
    &'static str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    f64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    bool: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let text = |column: &'static str| row.try_get::<String, _>(column);
    let leg: i64 = row.try_get("leg_no")?;
    Ok(OrderRow {
        alert_id: row.try_get("alert_id")?,
        received_at: from_millis(row.try_get("received_at")?),
        strategy: row.try_get("strategy")?,
        client_ip: row.try_get("client_ip")?,
        duplicates: row.try_get("duplicates")?,
        leg: u32::try_from(leg).map_err(|_| JournalError::Corrupt(format!("leg number {leg}")))?,
        correlation_id: row.try_get("correlation_id")?,
        symbol: row.try_get("symbol")?,
        exchange: decode("exchange", &text("exchange")?, Exchange::parse)?,
        side: decode("side", &text("side")?, Side::parse)?,
        quantity: row.try_get("quantity")?,
        order_type: decode("order type", &text("order_type")?, OrderType::parse)?,
        product: decode("product", &text("product")?, Product::parse)?,
        validity: decode("validity", &text("validity")?, Validity::parse)?,
        price: row.try_get("price")?,
        trigger_price: row.try_get("trigger_price")?,
        amo: row.try_get("amo")?,
        amo_time: row
            .try_get::<Option<String>, _>("amo_time")?
            .map(|t| decode("AMO time", &t, AmoTime::parse))
            .transpose()?,
        closes: row.try_get("closes")?,
        security_id: row.try_get("security_id")?,
        exchange_segment: row.try_get("exchange_segment")?,
        trading_symbol: row.try_get("trading_symbol")?,
        units: row.try_get("units")?,
        lot_size: row.try_get("lot_size")?,
        mode: decode("leg mode", &text("mode")?, Mode::parse)?,
        status: decode("leg status", &text("status")?, LegStatus::parse)?,
        order_id: row.try_get("broker_order_id")?,
        fill_price: row.try_get("fill_price")?,
        message: row.try_get("message")?,
        detail: LegDetail {
            filled_qty: row.try_get("filled_qty")?,
            exchange_order_id: row.try_get("exchange_order_id")?,
            exchange_time: row
                .try_get::<Option<i64>, _>("exchange_time")?
                .map(from_millis),
            reason: row.try_get("reason")?,
        },
        updated_at: from_millis(row.try_get("updated_at")?),
    })
}

/// Reads a [`LegEvent`] (columns `leg_no, at, source, status, filled_qty, fill_price,
/// message` of `leg_events`).
pub(super) fn leg_event<'r, R>(row: &'r R) -> Result<LegEvent, JournalError>
where
    R: Row,
    &'static str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    f64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let leg: i64 = row.try_get("leg_no")?;
    Ok(LegEvent {
        leg: u32::try_from(leg).map_err(|_| JournalError::Corrupt(format!("leg number {leg}")))?,
        at: from_millis(row.try_get("at")?),
        source: decode(
            "event source",
            &row.try_get::<String, _>("source")?,
            LegSource::parse,
        )?,
        status: decode(
            "event status",
            &row.try_get::<String, _>("status")?,
            LegStatus::parse,
        )?,
        filled_qty: row.try_get("filled_qty")?,
        fill_price: row.try_get("fill_price")?,
        message: row.try_get("message")?,
    })
}

/// Reads a [`QueuedAlert`] (columns `id, received_at, queued_until, status, strategy`).
pub(super) fn queued_alert<'r, R>(row: &'r R) -> Result<QueuedAlert, JournalError>
where
    R: Row,
    &'static str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(QueuedAlert {
        alert_id: row.try_get("id")?,
        received_at: from_millis(row.try_get("received_at")?),
        queued_until: row
            .try_get::<Option<i64>, _>("queued_until")?
            .map(from_millis),
        status: decode(
            "alert status",
            &row.try_get::<String, _>("status")?,
            AlertStatus::parse,
        )?,
        strategy: row.try_get("strategy")?,
    })
}

/// Reads one count of [`super::QueueSummary::by_status`] (columns `status, n`).
pub(super) fn status_count<'r, R>(row: &'r R) -> Result<(AlertStatus, i64), JournalError>
where
    R: Row,
    &'static str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let status = decode(
        "alert status",
        &row.try_get::<String, _>("status")?,
        AlertStatus::parse,
    )?;
    Ok((status, row.try_get("n")?))
}
