//! The journal: the durable record of every accepted alert and every order leg.
//!
//! An alert is admitted (alert row, its legs and its dedupe key, in one transaction) *before*
//! any broker call, so an acknowledged alert is never lost and a redelivery is recognised even
//! after a restart. Leg statuses only move along the transitions [`LegStatus::can_become`]
//! allows; the SQL enforces the same rule so a stale writer cannot move a leg backwards.
//!
//! [`Journal`] is a trait so the PostgreSQL backend can join the SQLite one ([`sqlite`]) without
//! touching the engine.

pub mod postgres;
pub mod sqlite;

/// The query both backends use to read [`OrderRow`]s: order legs `l` joined with their
/// alert `a` (add `WHERE` / `ORDER BY` after it).
pub(crate) const ORDER_ROW_SELECT: &str =
    "SELECT l.alert_id, a.received_at, a.strategy, a.client_ip, a.duplicates,
        l.leg_no, l.correlation_id, l.symbol, l.exchange, l.side, l.quantity, l.order_type,
        l.product, l.validity, l.price, l.trigger_price, l.amo, l.amo_time, l.mode, l.status,
        l.security_id, l.exchange_segment, l.trading_symbol, l.units, l.lot_size,
        l.broker_order_id, l.fill_price, l.message, l.updated_at
    FROM order_legs l JOIN alerts a ON a.id = l.alert_id";

/// Reads an [`AlertRecord`] from a row of either backend (columns `id, received_at, mode,
/// status, duplicates, alert_type, route, queued_until` of `alerts`) and its legs.
pub(crate) fn alert_record<'r, R>(
    row: &'r R,
    legs: Vec<OrderRow>,
) -> Result<AlertRecord, JournalError>
where
    R: sqlx::Row,
    &'static str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    use crate::clock::from_millis;
    Ok(AlertRecord {
        id: row.try_get("id")?,
        received_at: from_millis(row.try_get("received_at")?),
        alert_type: row.try_get("alert_type")?,
        route: row.try_get("route")?,
        queued_until: row
            .try_get::<Option<i64>, _>("queued_until")?
            .map(from_millis),
        mode: row.try_get("mode")?,
        status: row.try_get("status")?,
        duplicates: row.try_get("duplicates")?,
        legs,
    })
}

/// Reads an [`OrderRow`] from a row of either backend (selected with [`ORDER_ROW_SELECT`]).
pub(crate) fn order_row<'r, R>(row: &'r R) -> Result<OrderRow, JournalError>
where
    R: sqlx::Row,
    &'static str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    f64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    bool: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    use crate::clock::from_millis;
    let status: String = row.try_get("status")?;
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
        exchange: row.try_get("exchange")?,
        side: row.try_get("side")?,
        quantity: row.try_get("quantity")?,
        order_type: row.try_get("order_type")?,
        product: row.try_get("product")?,
        validity: row.try_get("validity")?,
        price: row.try_get("price")?,
        trigger_price: row.try_get("trigger_price")?,
        amo: row.try_get("amo")?,
        amo_time: row.try_get("amo_time")?,
        security_id: row.try_get("security_id")?,
        exchange_segment: row.try_get("exchange_segment")?,
        trading_symbol: row.try_get("trading_symbol")?,
        units: row.try_get("units")?,
        lot_size: row.try_get("lot_size")?,
        mode: row.try_get("mode")?,
        status: LegStatus::parse(&status)
            .ok_or_else(|| JournalError::Corrupt(format!("leg status {status}")))?,
        order_id: row.try_get("broker_order_id")?,
        fill_price: row.try_get("fill_price")?,
        message: row.try_get("message")?,
        updated_at: from_millis(row.try_get("updated_at")?),
    })
}

use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::Serialize;

use crate::{alert::LegOrder, domain::Mode};

/// Where an order leg stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LegStatus {
    /// Journaled; nothing sent yet.
    Received,
    /// Held in the durable queue until its market opens; nothing sent yet.
    Queued,
    /// Committed just before the broker call: if we crash now, the order may or may not exist.
    Submitting,
    /// The request may have reached the broker but no answer came (timeout, reset, 5xx): the
    /// reconciler looks it up by correlationId; it is never re-sent blindly.
    Unknown,
    /// The reconciler could not settle it by itself: a person must look at the broker.
    NeedsAttention,
    /// The broker received the order (Dhan's 200 with TRANSIT); the exchange's verdict is
    /// still to come.
    Accepted,
    /// The broker holds the order open (e.g. a limit order waiting for its price).
    Pending,
    /// Executed.
    Filled,
    /// Definitively refused (by us before sending, or by the broker).
    Rejected,
}

impl LegStatus {
    pub const ALL: [LegStatus; 9] = [
        LegStatus::Received,
        LegStatus::Queued,
        LegStatus::Submitting,
        LegStatus::Unknown,
        LegStatus::NeedsAttention,
        LegStatus::Accepted,
        LegStatus::Pending,
        LegStatus::Filled,
        LegStatus::Rejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LegStatus::Received => "RECEIVED",
            LegStatus::Queued => "QUEUED",
            LegStatus::Submitting => "SUBMITTING",
            LegStatus::Unknown => "UNKNOWN",
            LegStatus::NeedsAttention => "NEEDS_ATTENTION",
            LegStatus::Accepted => "ACCEPTED",
            LegStatus::Pending => "PENDING",
            LegStatus::Filled => "FILLED",
            LegStatus::Rejected => "REJECTED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// The order's fate is known to the broker (it will not be sent again by us).
    /// Journaled but without the broker's answer yet (RECEIVED, SUBMITTING): the only states
    /// a duplicate delivery waits out.
    pub fn awaits_broker(self) -> bool {
        matches!(self, LegStatus::Received | LegStatus::Submitting)
    }

    pub fn is_settled(self) -> bool {
        matches!(
            self,
            LegStatus::Pending | LegStatus::Filled | LegStatus::Rejected
        )
    }

    /// The legal transitions, in one place.
    pub fn can_become(self, next: LegStatus) -> bool {
        use LegStatus::*;
        matches!(
            (self, next),
            (Received, Submitting | Rejected)
                | (Queued, Submitting | Rejected)
                | (Submitting, Unknown | Accepted | Pending | Filled | Rejected)
                // Unknown → Submitting is the reconciler's single re-send (granted by
                // `Journal::claim_resend`).
                | (
                    Unknown,
                    Submitting | NeedsAttention | Accepted | Pending | Filled | Rejected
                )
                | (NeedsAttention, Accepted | Pending | Filled | Rejected)
                | (Accepted, Pending | Filled | Rejected)
                | (Pending, Filled | Rejected)
        )
    }

    /// The statuses a leg may be in to move to `next` (used in `WHERE status IN (...)`).
    pub fn predecessors(next: LegStatus) -> Vec<LegStatus> {
        Self::ALL
            .into_iter()
            .filter(|from| from.can_become(next))
            .collect()
    }
}

impl fmt::Display for LegStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`, not `write_str`: honours width and alignment (`{:<15}`) in tables.
        f.pad(self.as_str())
    }
}

/// The overall state of an alert, derived from its legs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    /// Held in the durable queue until its market opens.
    Queued,
    /// Some leg has not reached the broker's answer yet.
    Processing,
    /// Every leg was accepted by the broker (filled or pending).
    Placed,
    /// Some legs accepted, some rejected.
    Partial,
    /// Every leg was rejected.
    Rejected,
}

impl AlertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Queued => "queued",
            AlertStatus::Processing => "processing",
            AlertStatus::Placed => "placed",
            AlertStatus::Partial => "partial",
            AlertStatus::Rejected => "rejected",
        }
    }

    pub fn from_legs(legs: impl IntoIterator<Item = LegStatus>) -> Self {
        let (mut accepted, mut rejected, mut open, mut queued) = (0, 0, 0, 0);
        for status in legs {
            if status == LegStatus::Queued {
                queued += 1;
            }
            match status {
                LegStatus::Accepted | LegStatus::Pending | LegStatus::Filled => accepted += 1,
                LegStatus::Rejected => rejected += 1,
                LegStatus::Received
                | LegStatus::Queued
                | LegStatus::Submitting
                | LegStatus::Unknown
                | LegStatus::NeedsAttention => open += 1,
            }
        }
        if queued > 0 && queued == open && accepted == 0 && rejected == 0 {
            return AlertStatus::Queued;
        }
        match (accepted, rejected, open) {
            (_, _, 1..) | (0, 0, 0) => AlertStatus::Processing,
            (_, 0, 0) => AlertStatus::Placed,
            (0, _, 0) => AlertStatus::Rejected,
            _ => AlertStatus::Partial,
        }
    }
}

/// What makes two deliveries "the same alert".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DedupeKey {
    pub key: String,
    /// `None`: the key never expires (explicit `id`, or a payload carrying `timenow`).
    pub expires_at: Option<DateTime<Utc>>,
}

/// An alert to admit, with its legs.
#[derive(Debug, Clone)]
pub struct NewAlert {
    pub id: String,
    pub received_at: DateTime<Utc>,
    pub client_ip: Option<String>,
    pub format: &'static str,
    pub alert_type: String,
    pub strategy: Option<String>,
    pub dedupe: DedupeKey,
    /// The alert JSON with the secret removed.
    pub payload: String,
    pub mode: Mode,
    pub legs: Vec<NewLeg>,
    /// How the alert was routed (JSON of [`crate::market::Route`]).
    pub route: String,
    /// For a queued alert: when it becomes due.
    pub queued_until: Option<DateTime<Utc>>,
    /// The status every leg starts in: RECEIVED (to be placed now), QUEUED or REJECTED.
    pub initial_status: LegStatus,
    /// The legs' message when they start REJECTED (why) or QUEUED (until when).
    pub initial_message: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewLeg {
    pub leg_no: u32,
    pub correlation_id: String,
    pub order: LegOrder,
    /// What the leg resolved to in the scrip master.
    pub resolved: ResolvedLeg,
}

/// The instrument and quantity a leg trades at the broker.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResolvedLeg {
    pub security_id: String,
    /// Dhan's `exchangeSegment`, e.g. `NSE_FNO`.
    pub exchange_segment: String,
    pub trading_symbol: String,
    pub lot_size: u32,
    /// The quantity sent to the broker (lots converted to units).
    pub units: u32,
}

/// The result of admitting an alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// First delivery: the alert and its legs are journaled, ready to be placed.
    Admitted,
    /// A live dedupe key already points at this earlier alert; nothing was written but its
    /// redelivery count.
    Duplicate { alert_id: String },
}

/// A change to one leg.
#[derive(Debug, Clone)]
pub struct LegUpdate {
    pub status: LegStatus,
    pub broker_order_id: Option<String>,
    pub fill_price: Option<f64>,
    pub message: Option<String>,
}

/// One order leg as journaled, with the context of its alert (what `/logs` and `orders` show).
#[derive(Debug, Clone, Serialize)]
pub struct OrderRow {
    pub alert_id: String,
    pub received_at: DateTime<Utc>,
    pub strategy: Option<String>,
    pub client_ip: Option<String>,
    pub duplicates: i64,
    pub leg: u32,
    pub correlation_id: String,
    pub symbol: String,
    pub exchange: String,
    pub side: String,
    pub quantity: i64,
    pub order_type: String,
    pub product: String,
    pub validity: String,
    pub price: Option<f64>,
    pub trigger_price: Option<f64>,
    pub amo: bool,
    pub amo_time: Option<String>,
    pub security_id: Option<String>,
    pub exchange_segment: Option<String>,
    pub trading_symbol: Option<String>,
    /// Quantity sent to the broker, in units.
    pub units: Option<i64>,
    pub lot_size: Option<i64>,
    pub mode: String,
    pub status: LegStatus,
    pub order_id: Option<String>,
    pub fill_price: Option<f64>,
    pub message: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// An alert with its legs, as journaled.
#[derive(Debug, Clone)]
pub struct AlertRecord {
    pub id: String,
    pub received_at: DateTime<Utc>,
    pub alert_type: String,
    pub route: Option<String>,
    pub queued_until: Option<DateTime<Utc>>,
    pub mode: String,
    pub status: String,
    pub duplicates: i64,
    pub legs: Vec<OrderRow>,
}

/// The queue at a glance.
#[derive(Debug, Clone, Serialize)]
pub struct QueueSummary {
    /// Alert counts by status among alerts that were ever queued.
    pub by_status: std::collections::BTreeMap<String, i64>,
    pub next_due: Option<DateTime<Utc>>,
    pub pending: Vec<QueuedAlert>,
}

#[derive(Debug, Clone, Serialize)]
pub struct QueuedAlert {
    pub alert_id: String,
    pub received_at: DateTime<Utc>,
    pub queued_until: Option<DateTime<Utc>>,
    pub status: String,
    pub strategy: Option<String>,
}

/// The Dhan access token kept across restarts.
#[derive(Debug, Clone)]
pub struct StoredToken {
    pub client_id: String,
    pub token: SecretString,
    pub expires_at: DateTime<Utc>,
    pub source: String,
    pub obtained_at: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    // The sqlx error is in the message, so it is not also a `source()` (no `#[from]`, see the
    // `From` impls below): `{:#}` would print it twice.
    #[error("journal database error: {0}")]
    Database(sqlx::Error),
    #[error("journal migration failed: {0}")]
    Migration(sqlx::migrate::MigrateError),
    #[error("journal could not be opened: {0}")]
    Open(String),
    #[error(
        "leg {leg_no} of alert {alert_id} cannot become {to}: it is not in a state that allows it"
    )]
    IllegalTransition {
        alert_id: String,
        leg_no: u32,
        to: LegStatus,
    },
    #[error("journal holds a value it does not understand: {0}")]
    Corrupt(String),
}

impl From<sqlx::Error> for JournalError {
    fn from(e: sqlx::Error) -> Self {
        JournalError::Database(e)
    }
}

impl From<sqlx::migrate::MigrateError> for JournalError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        JournalError::Migration(e)
    }
}

/// The journal's operations. Implementations must make [`Journal::admit`] atomic: either the
/// alert, its legs and its dedupe key are all written, or nothing is.
#[async_trait]
pub trait Journal: Send + Sync + fmt::Debug {
    /// Applies pending schema migrations.
    async fn migrate(&self) -> Result<(), JournalError>;

    /// Journals a new alert, or recognises a redelivery of one whose dedupe key is still live.
    async fn admit(&self, alert: &NewAlert) -> Result<Admission, JournalError>;

    /// Moves one leg to a new status (only along a legal transition).
    async fn update_leg(
        &self,
        alert_id: &str,
        leg_no: u32,
        update: &LegUpdate,
        now: DateTime<Utc>,
    ) -> Result<(), JournalError>;

    /// Records the alert's overall status (derived from its legs by the engine).
    async fn set_alert_status(
        &self,
        alert_id: &str,
        status: AlertStatus,
        now: DateTime<Utc>,
    ) -> Result<(), JournalError>;

    /// An alert with its legs, if it exists.
    async fn alert(&self, alert_id: &str) -> Result<Option<AlertRecord>, JournalError>;

    /// The newest order legs first, at most `limit`.
    async fn recent_orders(&self, limit: u32) -> Result<Vec<OrderRow>, JournalError>;

    /// Legs the reconciler looks at, oldest first: SUBMITTING or UNKNOWN (their outcome must
    /// be found at the broker), and RECEIVED (placement may have been interrupted).
    async fn legs_to_reconcile(&self, limit: u32) -> Result<Vec<OrderRow>, JournalError>;

    /// Claims the one permitted re-send of a leg (`resends` 0 → 1). `true` for the single
    /// caller that may re-send; every other caller, now or after a restart, gets `false`.
    async fn claim_resend(&self, alert_id: &str, leg_no: u32) -> Result<bool, JournalError>;

    /// When the earliest queued alert becomes due, if any is queued.
    async fn next_queued_at(&self) -> Result<Option<DateTime<Utc>>, JournalError>;

    /// Claims the oldest queued alert that is due at `now` (status `queued` → `processing`, in
    /// one statement, so two runners never claim the same alert).
    async fn claim_due(&self, now: DateTime<Utc>) -> Result<Option<String>, JournalError>;

    /// Puts a claimed alert back in the queue until `until`.
    async fn requeue(
        &self,
        alert_id: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), JournalError>;

    /// Alerts claimed before `claimed_before` by a run that never finished (its process died)
    /// go back to the queue when legs of theirs are still QUEUED (never sent). Legs already
    /// SUBMITTING or later are not touched. The cut-off leaves claims a live instance is
    /// working on alone.
    async fn recover_claims(
        &self,
        claimed_before: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<u64, JournalError>;

    /// Queued and in-flight alerts, oldest first, at most `limit` (for `/queue-stats`).
    async fn queue_summary(&self, limit: u32) -> Result<QueueSummary, JournalError>;

    /// Proves the journal accepts a durable write right now (for `/ready`).
    async fn check_writable(&self, now: DateTime<Utc>) -> Result<(), JournalError>;

    /// The stored Dhan token for `client_id`, if any (valid or not: the caller decides).
    async fn load_token(&self, client_id: &str) -> Result<Option<StoredToken>, JournalError>;

    /// Stores the token in use for its client id, replacing the previous one.
    async fn save_token(&self, token: &StoredToken) -> Result<(), JournalError>;

    /// Takes or renews the lease `name` for `holder` until `until`: granted when the lease is
    /// free, expired (at `now`) or already held by `holder`. Exactly one holder at a time
    /// across every instance sharing the journal.
    async fn try_lease(
        &self,
        name: &str,
        holder: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, JournalError>;

    /// Gives the lease up early (only if `holder` holds it).
    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), JournalError>;

    /// Closes connections; called once at shutdown after in-flight work finished.
    async fn close(&self);
}
