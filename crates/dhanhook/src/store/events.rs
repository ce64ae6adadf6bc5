//! A leg's life after placement: what the broker said beyond the status ([`LegDetail`]), who
//! saw each transition ([`LegSource`]) and the history of transitions ([`LegEvent`], the
//! `leg_events` table, written in the same transaction as the move it records).

use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::LegStatus;

/// Who moved a leg: every transition in `leg_events` names its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LegSource {
    /// The placer: SUBMITTING and the broker's answer to the order.
    Placement,
    /// The queue worker (a queued alert refused at the open).
    Queue,
    /// The reconciler (an unknown outcome looked up by correlationId).
    Reconciler,
    /// The order tracker's polling of the broker.
    Poll,
    /// The order tracker's look at the broker on a postback's hint (the postback itself is
    /// never believed: the order is re-read from the broker).
    Postback,
    /// Dhan's live order-update WebSocket (the feed is Dhan's own word over a connection we
    /// opened and logged in to, so it is journaled as it comes).
    #[serde(rename = "websocket")]
    Feed,
}

impl LegSource {
    pub const ALL: [LegSource; 6] = [
        LegSource::Placement,
        LegSource::Queue,
        LegSource::Reconciler,
        LegSource::Poll,
        LegSource::Postback,
        LegSource::Feed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LegSource::Placement => "placement",
            LegSource::Queue => "queue",
            LegSource::Reconciler => "reconciler",
            LegSource::Poll => "poll",
            LegSource::Postback => "postback",
            LegSource::Feed => "websocket",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

impl fmt::Display for LegSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// What the broker reported about an order beyond its status (the average price is the leg's
/// `fill_price`). `None` keeps the journaled value.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LegDetail {
    /// Units executed so far.
    pub filled_qty: Option<i64>,
    /// The exchange's id for the order, once it reached the exchange.
    pub exchange_order_id: Option<String>,
    /// When the exchange last acted on the order.
    pub exchange_time: Option<DateTime<Utc>>,
    /// Why the order was rejected, cancelled or expired, as the broker or exchange said it.
    pub reason: Option<String>,
}

/// One transition of a leg, as journaled in `leg_events`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LegEvent {
    pub leg: u32,
    pub at: DateTime<Utc>,
    pub source: LegSource,
    pub status: LegStatus,
    pub filled_qty: Option<i64>,
    pub fill_price: Option<f64>,
    pub message: Option<String>,
}
