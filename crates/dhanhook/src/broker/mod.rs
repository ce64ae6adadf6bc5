//! Where orders go. [`Broker`] is the seam between the pipeline and the outside world: the
//! [`paper::PaperBroker`] (paper mode) and the [`live::DhanBroker`] (live and sandbox).

pub mod live;
pub mod paper;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::{
    alert::{AmoTime, LegOrder},
    store::{LegStatus, ResolvedLeg},
};

/// One order as handed to a broker: the validated leg, what it resolved to, how it is routed,
/// and the `correlationId` that lets us find it again at the broker.
#[derive(Debug, Clone)]
pub struct OrderRequest<'a> {
    pub correlation_id: &'a str,
    pub leg: &'a LegOrder,
    pub resolved: &'a ResolvedLeg,
    /// `Some` places an after-market order released at that time.
    pub amo: Option<AmoTime>,
}

/// The broker's definite answer to an order.
#[derive(Debug, Clone, PartialEq)]
pub enum Placement {
    /// Received by the broker; the exchange's verdict comes later (Dhan's TRANSIT).
    Accepted { order_id: String, message: String },
    /// Accepted and resting at the broker (e.g. a limit order).
    Pending { order_id: String, message: String },
    /// Accepted and executed.
    Filled {
        order_id: String,
        fill_price: Option<f64>,
        message: String,
    },
    /// Definitively refused; nothing is open at the broker.
    Rejected {
        order_id: Option<String>,
        message: String,
    },
}

/// A broker call that did not produce a definite answer.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The request may or may not have reached the broker (timeout, reset, 5xx): the order's
    /// fate is unknown and must be looked up, never blindly re-sent.
    #[error("outcome unknown: {0}")]
    Unknown(String),
}

/// What the broker knows of an order, looked up by its correlationId.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    /// The order as the broker shows it now (its status in the journal's terms, fill and
    /// reason), so a leg settled by correlationId lands in its true state: a CANCELLED order
    /// is not told as REJECTED, a PART_TRADED one not as PENDING.
    Found(OrderState),
    /// Neither the lookup nor the day's order book shows it. (Right after a send, an order
    /// still in TRANSIT can look absent: callers wait a settle time before believing it.)
    Absent,
}

/// The broker's view of one order, looked up by its order id, to follow it past ACCEPTED to
/// its final state.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderState {
    pub order_id: String,
    /// Where the order stands, in the journal's terms: Dhan's TRANSIT is ACCEPTED, TRADED is
    /// FILLED; PENDING, PART_TRADED, REJECTED, CANCELLED and EXPIRED keep their names.
    pub status: LegStatus,
    /// Units executed so far.
    pub filled_qty: Option<i64>,
    /// Average price of what was executed.
    pub average_price: Option<f64>,
    pub exchange_order_id: Option<String>,
    pub exchange_time: Option<DateTime<Utc>>,
    /// Why the order was rejected, cancelled or expired (only then).
    pub reason: Option<String>,
    /// One line for the leg's message.
    pub message: String,
}

#[async_trait]
pub trait Broker: Send + Sync + std::fmt::Debug {
    /// A short name for logs and `/` (e.g. `paper`).
    fn name(&self) -> &'static str;

    /// Places one order.
    ///
    /// # Errors
    /// [`BrokerError::Unknown`] when the outcome could not be observed.
    async fn place(&self, order: OrderRequest<'_>) -> Result<Placement, BrokerError>;

    /// Finds an order by its correlationId (for orders whose outcome is unknown).
    ///
    /// # Errors
    /// [`BrokerError::Unknown`] when the broker could not be asked.
    async fn lookup(&self, correlation_id: &str) -> Result<Lookup, BrokerError>;

    /// The broker's view of one order by its id; `None` when the broker does not know it.
    ///
    /// # Errors
    /// [`BrokerError::Unknown`] when the broker could not be asked (or cannot be, as here: a
    /// broker that does not implement it).
    async fn order_state(&self, order_id: &str) -> Result<Option<OrderState>, BrokerError> {
        let _ = order_id;
        Err(BrokerError::Unknown(format!(
            "the {} broker cannot look orders up by id",
            self.name()
        )))
    }

    /// Every order of the day in one call (the order book), for when many are open.
    ///
    /// # Errors
    /// As [`Broker::order_state`].
    async fn order_states(&self) -> Result<Vec<OrderState>, BrokerError> {
        Err(BrokerError::Unknown(format!(
            "the {} broker has no order book",
            self.name()
        )))
    }

    /// Closes every open position and cancels every open order at the broker (the kill
    /// switch's `flatten`). `Ok` carries what the broker said.
    ///
    /// # Errors
    /// Why it was not done (or may not have been), in words for the operator.
    async fn exit_all(&self) -> Result<String, String> {
        Err(format!(
            "the {} broker cannot exit all positions",
            self.name()
        ))
    }

    /// Turns the broker's own kill switch on or off (Dhan's blocks the account for the day).
    ///
    /// # Errors
    /// As [`Broker::exit_all`].
    async fn set_kill_switch(&self, on: bool) -> Result<String, String> {
        let _ = on;
        Err(format!("the {} broker has no kill switch", self.name()))
    }

    /// The broker's own kill switch as it reports it (Dhan: `ACTIVATE` or `DEACTIVATE`).
    ///
    /// # Errors
    /// As [`Broker::exit_all`].
    async fn kill_switch_status(&self) -> Result<String, String> {
        Err(format!("the {} broker has no kill switch", self.name()))
    }

    /// The account's net positions (every product, every instrument the broker lists).
    ///
    /// # Errors
    /// [`BrokerError::Unknown`] when they could not be read: callers fail closed.
    async fn positions(&self) -> Result<Vec<NetPosition>, BrokerError> {
        unsupported(self.name(), "read positions")
    }

    /// The demat holdings; an empty portfolio is an empty list (Dhan's DH-1111).
    ///
    /// # Errors
    /// As [`Broker::positions`].
    async fn holdings(&self) -> Result<Vec<Holding>, BrokerError> {
        unsupported(self.name(), "read holdings")
    }

    /// The day's orders by correlationId (for counting our own orders in flight).
    ///
    /// # Errors
    /// As [`Broker::positions`].
    async fn book(&self) -> Result<Vec<BookOrder>, BrokerError> {
        unsupported(self.name(), "read the order book")
    }

    /// Cancels one open order by its broker id.
    ///
    /// # Errors
    /// [`BrokerError::Unknown`] when the answer could not be observed.
    async fn cancel(&self, order_id: &str) -> Result<CancelOutcome, BrokerError> {
        let _ = order_id;
        unsupported(self.name(), "cancel orders")
    }
}

/// One row of the broker's positions (`GET /v2/positions`), as much as position-aware alerts
/// need: the net quantity of one instrument in one product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetPosition {
    pub security_id: String,
    /// Dhan's `exchangeSegment`, e.g. `NSE_EQ`.
    pub exchange_segment: String,
    /// Dhan's `productType`, e.g. `INTRADAY`.
    pub product: String,
    /// Units: positive long, negative short (Dhan's `netQty`).
    pub net_qty: i64,
}

/// One row of the demat holdings (`GET /v2/holdings`): what a delivery SELL may sell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holding {
    pub security_id: String,
    /// Dhan's `availableQty`: shares that can be sold now.
    pub available_qty: i64,
}

/// One order of the day's book, by the `correlationId` we gave it: how much of it is still to
/// execute, so our own orders in flight count towards a position exactly once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookOrder {
    pub correlation_id: String,
    pub order_id: String,
    pub status: LegStatus,
    pub quantity: i64,
    pub filled_qty: i64,
}

/// What became of a cancel request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The broker cancelled it (what was filled before stays filled).
    Cancelled,
    /// The broker refused (already final, still in transit, unknown id), with its reason.
    Refused(String),
}

/// The default answer of a broker that cannot do `what`: fail closed.
fn unsupported<T>(broker: &str, what: &str) -> Result<T, BrokerError> {
    Err(BrokerError::Unknown(format!(
        "the {broker} broker cannot {what}"
    )))
}
