//! The body of a `/webhook` answer: the alert's status, its route and each leg as it stands.
//! Built from the journal's view of the alert ([`AlertRecord`]), so an answer given at once, at
//! the deadline or to a repeat delivery all look the same.

use serde::Serialize;

use crate::{
    alert::FieldProblem,
    domain::{Exchange, Mode, OrderType, Product, Side},
    pipeline::CancelReport,
    store::{AlertRecord, AlertStatus, LegStatus, OrderRow},
};

/// The answer to one delivery (the `/webhook` response body).
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub status: AlertStatus,
    pub alert_id: String,
    pub duplicate: bool,
    pub mode: Mode,
    /// How the alert was routed: `{"route":"now"}`, `{"route":"amo","amo_time":…}`,
    /// `{"route":"queue","until":…}` or `{"route":"reject","reason":…}`.
    pub route: serde_json::Value,
    pub legs: Vec<LegView>,
    /// What this delivery carried that was accepted but ignored or changed (see
    /// [`crate::alert::Signal::warnings`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<FieldProblem>,
    /// A position-aware alert: how each leg was worked out from the position (or why nothing
    /// was placed: already at the target).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub positions: Vec<String>,
    /// A `cancel_order` alert: each open order of ours it found and what became of it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancels: Option<Vec<CancelReport>>,
    /// Why the answer came before the broker's, when that is known: a leg queued behind
    /// Dhan's order rate limit, and when it is expected to leave.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Outcome {
    /// The answer for a journaled alert as it stands now.
    pub fn of(record: &AlertRecord, duplicate: bool, warnings: Vec<FieldProblem>) -> Self {
        Outcome {
            // An alert without legs (already at its target, a cancel) keeps its journaled
            // status: there is nothing to derive it from.
            status: if record.legs.is_empty() {
                record.status
            } else {
                AlertStatus::from_legs(record.legs.iter().map(|l| l.status))
            },
            alert_id: record.id.clone(),
            duplicate,
            mode: record.mode,
            route: record
                .route
                .as_deref()
                .and_then(|r| serde_json::from_str(r).ok())
                .unwrap_or(serde_json::Value::Null),
            legs: record.legs.iter().map(LegView::from).collect(),
            warnings,
            positions: Vec::new(),
            cancels: None,
            note: None,
        }
    }
}

/// One leg in a response.
#[derive(Debug, Clone, Serialize)]
pub struct LegView {
    pub leg: u32,
    pub symbol: String,
    pub exchange: Exchange,
    pub side: Side,
    /// Units, as sent to the broker (for futures and options, lots × lot size).
    pub quantity: i64,
    /// `quantity` in lots of the instrument (equities: lot size 1).
    pub lots: i64,
    /// What the leg trades at Dhan (`NIFTY-Dec2026-FUT`, `RELIANCE`) and its security id.
    pub trading_symbol: Option<String>,
    pub security_id: Option<String>,
    pub order_type: OrderType,
    pub product: Product,
    pub status: LegStatus,
    pub order_id: Option<String>,
    pub correlation_id: String,
    pub message: Option<String>,
}

impl From<&OrderRow> for LegView {
    fn from(row: &OrderRow) -> Self {
        let units = row.units.unwrap_or(row.quantity);
        LegView {
            leg: row.leg,
            symbol: row.symbol.clone(),
            exchange: row.exchange,
            side: row.side,
            quantity: units,
            lots: units / row.lot_size.filter(|l| *l > 0).unwrap_or(1),
            trading_symbol: row.trading_symbol.clone(),
            security_id: row.security_id.clone(),
            order_type: row.order_type,
            product: row.product,
            status: row.status,
            order_id: row.order_id.clone(),
            correlation_id: row.correlation_id.clone(),
            message: row.message.clone(),
        }
    }
}
