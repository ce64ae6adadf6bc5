//! The journal: the durable record of every accepted alert and every order leg.
//!
//! An alert is admitted (alert row, its legs and its dedupe key, in one transaction) *before*
//! any broker call, so an acknowledged alert is never lost and a redelivery is recognised even
//! after a restart. Leg statuses only move along the transitions [`LegStatus::can_become`]
//! allows; the SQL enforces the same rule so a stale writer cannot move a leg backwards.
//!
//! The operations are split by who uses them ([`AlertJournal`], [`QueueJournal`],
//! [`ReconcileJournal`], [`TokenStore`], [`Leases`], [`JournalLifecycle`]); [`Journal`] is all
//! of them, for the places that hand the journal around. Two backends implement them: SQLite
//! ([`sqlite`], the embedded default) and PostgreSQL ([`postgres`]). Their SQL is written once
//! (`shared.rs`, `admission.rs`; rows are read by `rows.rs`); each backend file holds only
//! what really differs.
//!
//! Values read back are typed (order enums, [`Mode`], [`AlertStatus`], [`LegStatus`]): a value
//! the code does not know is reported as [`JournalError::Corrupt`] where it is read, not
//! passed on as a string.

mod admission;
mod controls;
mod events;
mod journal;
mod outbox;
pub mod postgres;
mod reports;
mod rows;
mod shared;
pub mod sqlite;
#[cfg(test)]
mod tests;
mod writer;

pub use controls::{
    ControlJournal, Gate, GateCounts, GateSpec, KillSwitch, KillSwitchEvent, SendContext, SendRule,
    instrument_key,
};
pub use events::{LegDetail, LegEvent, LegSource};
pub use journal::{
    AlertJournal, Journal, JournalLifecycle, Leases, QueueJournal, ReconcileJournal, TokenJournal,
    TokenStore, TrackJournal,
};
pub use outbox::{NewNotification, OutboxJournal, PendingNotification};
pub use reports::{DayCounts, ReportJournal};
use std::fmt;

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::Serialize;

use crate::{
    alert::LegOrder,
    domain::{AmoTime, Exchange, Mode, OnLegReject, OrderType, Product, Side, Validity},
};

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
    /// Partly executed, the rest still open at the exchange (Dhan's PART_TRADED).
    PartTraded,
    /// Executed in full: Dhan's TRADED (the journal and the API keep the name FILLED).
    Filled,
    /// Definitively refused (by us before sending, or by the broker or the exchange; the
    /// reason is in the leg's `reason` once the broker gave one).
    Rejected,
    /// Cancelled at the broker or the exchange (what was filled before stays filled).
    Cancelled,
    /// Not executed by the end of its validity (a DAY order at the close).
    Expired,
    /// Refused by dhanhook's own controls (a risk rail, the kill switch, or an earlier leg's
    /// refusal under `on_leg_reject=stop`) just before it would have been sent: never sent to
    /// the broker. The rule and its numbers are in the leg's message.
    Blocked,
}

impl LegStatus {
    pub const ALL: [LegStatus; 13] = [
        LegStatus::Received,
        LegStatus::Queued,
        LegStatus::Submitting,
        LegStatus::Unknown,
        LegStatus::NeedsAttention,
        LegStatus::Accepted,
        LegStatus::Pending,
        LegStatus::PartTraded,
        LegStatus::Filled,
        LegStatus::Rejected,
        LegStatus::Cancelled,
        LegStatus::Expired,
        LegStatus::Blocked,
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
            LegStatus::PartTraded => "PART_TRADED",
            LegStatus::Filled => "FILLED",
            LegStatus::Rejected => "REJECTED",
            LegStatus::Cancelled => "CANCELLED",
            LegStatus::Expired => "EXPIRED",
            LegStatus::Blocked => "BLOCKED",
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

    /// The broker has given a definite answer (open at the broker, or final).
    pub fn is_settled(self) -> bool {
        matches!(self, LegStatus::Pending | LegStatus::PartTraded) || self.is_final()
    }

    /// Nothing more will happen to the order: the order tracker stops following it.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            LegStatus::Filled
                | LegStatus::Rejected
                | LegStatus::Cancelled
                | LegStatus::Expired
                | LegStatus::Blocked
        )
    }

    /// At the broker and not final yet: the order tracker follows it.
    pub fn is_open_at_broker(self) -> bool {
        matches!(
            self,
            LegStatus::Accepted | LegStatus::Pending | LegStatus::PartTraded
        )
    }

    /// The legal transitions, in one place.
    pub fn can_become(self, next: LegStatus) -> bool {
        use LegStatus::*;
        matches!(
            (self, next),
            // BLOCKED: dhanhook's controls refused it at the moment it would have been sent
            // (`ControlJournal::gate_leg`), first send or the reconciler's re-send alike.
            (Received, Submitting | Rejected | Blocked)
                | (Queued, Submitting | Rejected | Blocked)
                // A leg settled by correlationId (the reconciler) lands in whatever state the
                // broker shows, including part-filled, cancelled or expired.
                | (
                    Submitting,
                    Unknown
                        | Accepted
                        | Pending
                        | PartTraded
                        | Filled
                        | Rejected
                        | Cancelled
                        | Expired
                )
                // Unknown → Submitting is the reconciler's single re-send (granted by
                // `Journal::claim_resend`).
                | (
                    Unknown,
                    Submitting
                        | NeedsAttention
                        | Accepted
                        | Pending
                        | PartTraded
                        | Filled
                        | Rejected
                        | Cancelled
                        | Expired
                        | Blocked
                )
                | (
                    NeedsAttention,
                    Accepted | Pending | PartTraded | Filled | Rejected | Cancelled | Expired
                )
                // Followed at the broker (the order tracker): on to a final state. PART_TRADED
                // may repeat, as more of the order fills.
                | (
                    Accepted,
                    Pending | PartTraded | Filled | Rejected | Cancelled | Expired
                )
                | (
                    Pending,
                    PartTraded | Filled | Rejected | Cancelled | Expired
                )
                | (PartTraded, PartTraded | Filled | Cancelled | Expired)
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

/// What a leg's transition does to its alert's stored status (in the same transaction).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertStatusChange {
    /// Left as it is.
    Keep,
    /// Set to this (the caller derived it from legs it holds in memory).
    Set(AlertStatus),
    /// Derived from the alert's legs as they stand after the transition.
    FromLegs,
}

/// The overall state of an alert, derived from its legs.
///
/// Ordered by its spelling (see the `Ord` impl), so maps keyed by it list their entries as
/// maps keyed by the string did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
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
    pub const ALL: [AlertStatus; 5] = [
        AlertStatus::Queued,
        AlertStatus::Processing,
        AlertStatus::Placed,
        AlertStatus::Partial,
        AlertStatus::Rejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Queued => "queued",
            AlertStatus::Processing => "processing",
            AlertStatus::Placed => "placed",
            AlertStatus::Partial => "partial",
            AlertStatus::Rejected => "rejected",
        }
    }

    /// The stored spelling back (`queued`, `processing`, ...).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    pub fn from_legs(legs: impl IntoIterator<Item = LegStatus>) -> Self {
        let (mut accepted, mut rejected, mut open, mut queued) = (0, 0, 0, 0);
        for status in legs {
            if status == LegStatus::Queued {
                queued += 1;
            }
            match status {
                // PART_TRADED is open at the broker, as PENDING is: the alert was placed.
                LegStatus::Accepted
                | LegStatus::Pending
                | LegStatus::PartTraded
                | LegStatus::Filled => accepted += 1,
                // Cancelled or expired orders count as not placed, like rejected ones; so do
                // legs dhanhook's controls blocked.
                LegStatus::Rejected
                | LegStatus::Cancelled
                | LegStatus::Expired
                | LegStatus::Blocked => rejected += 1,
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

// By spelling, not declaration order: `/queue-stats` serialises a map keyed by status, and its
// keys must keep the order they had as strings.
impl Ord for AlertStatus {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl PartialOrd for AlertStatus {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for AlertStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
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
    /// What happens to the remaining legs when one is refused (the alert's own, or
    /// `ON_LEG_REJECT`), kept with the alert for its legs that are sent later (queue).
    pub on_leg_reject: OnLegReject,
}

impl NewAlert {
    /// The status `leg` is journaled in: BLOCKED when a check refused it before sending (a
    /// SELL check), else the alert's initial status.
    pub fn leg_status(&self, leg: &NewLeg) -> LegStatus {
        if leg.refused.is_some() {
            LegStatus::Blocked
        } else {
            self.initial_status
        }
    }

    /// The message `leg` is journaled with (its refusal, else the alert's initial message).
    pub fn leg_message(&self, leg: &NewLeg) -> Option<String> {
        leg.refused.clone().or_else(|| self.initial_message.clone())
    }

    /// The alert's status as journaled. An alert without legs (a position already at its
    /// target, a cancel) has nothing left to do: `placed`.
    pub fn status(&self) -> AlertStatus {
        if self.legs.is_empty() {
            AlertStatus::Placed
        } else {
            AlertStatus::from_legs(self.legs.iter().map(|l| self.leg_status(l)))
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewLeg {
    pub leg_no: u32,
    pub correlation_id: String,
    pub order: LegOrder,
    /// What the leg resolved to in the scrip master.
    pub resolved: ResolvedLeg,
    /// Refused before sending (a SELL check): journaled REJECTED with this message, whatever
    /// the alert's route, and never sent. (After issue 13's merge this becomes BLOCKED.)
    pub refused: Option<String>,
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
    pub exchange: Exchange,
    pub side: Side,
    pub quantity: i64,
    pub order_type: OrderType,
    pub product: Product,
    pub validity: Validity,
    pub price: Option<f64>,
    pub trigger_price: Option<f64>,
    pub amo: bool,
    pub amo_time: Option<AmoTime>,
    /// The alert marked the leg as closing a position (see [`LegOrder::closes`]).
    pub closes: bool,
    pub security_id: Option<String>,
    pub exchange_segment: Option<String>,
    pub trading_symbol: Option<String>,
    /// Quantity sent to the broker, in units.
    pub units: Option<i64>,
    pub lot_size: Option<i64>,
    pub mode: Mode,
    pub status: LegStatus,
    pub order_id: Option<String>,
    /// The average price of what was executed.
    pub fill_price: Option<f64>,
    pub message: Option<String>,
    /// Filled quantity, exchange order id and time, reason (flattened in JSON).
    #[serde(flatten)]
    pub detail: LegDetail,
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
    pub mode: Mode,
    /// As reported: `queued` while the alert waits in the queue, `processing` while a queue
    /// run holds it (and none of its legs has moved yet), otherwise as derived from its legs.
    pub status: AlertStatus,
    pub duplicates: i64,
    /// The alert JSON as received, with the secret removed (the dashboard's history page).
    pub payload: String,
    pub legs: Vec<OrderRow>,
}

/// The queue at a glance.
#[derive(Debug, Clone, Serialize)]
pub struct QueueSummary {
    /// Alert counts by status among alerts that were ever queued.
    pub by_status: std::collections::BTreeMap<AlertStatus, i64>,
    pub next_due: Option<DateTime<Utc>>,
    pub pending: Vec<QueuedAlert>,
}

#[derive(Debug, Clone, Serialize)]
pub struct QueuedAlert {
    pub alert_id: String,
    pub received_at: DateTime<Utc>,
    pub queued_until: Option<DateTime<Utc>>,
    pub status: AlertStatus,
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
    /// The write's transaction was not committed (the batch it was part of failed, or the
    /// journal was closing): nothing of it was written.
    #[error("journal write not committed: {0}")]
    NotCommitted(String),
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
