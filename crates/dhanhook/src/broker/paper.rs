//! The paper broker: the default mode. Nothing leaves the process; orders get `PAPER-…` ids.
//!
//! Market orders fill at once at the alert's price (`{{close}}` in most templates), limit and
//! stop orders rest as pending. The id is derived from the leg's correlationId, so the same leg
//! always gets the same paper id. Asked about an order later ([`Broker::order_state`]), it
//! answers from that book: a market order is FILLED, a limit or stop order stays PENDING (there
//! is no price source to fill it at yet, and its message says so).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use async_trait::async_trait;

use super::{Broker, BrokerError, Lookup, OrderRequest, OrderState, Placement};
use crate::{alert::OrderType, store::LegStatus};

/// The paper broker keeps its "order book" in memory (lost on restart, like a paper session),
/// by correlationId.
#[derive(Debug, Clone, Default)]
pub struct PaperBroker {
    book: Arc<Mutex<HashMap<String, PaperOrder>>>,
}

#[derive(Debug, Clone)]
struct PaperOrder {
    placement: Placement,
    units: u32,
    /// Cancelled by [`Broker::exit_all`] while resting.
    cancelled: bool,
}

#[async_trait]
impl Broker for PaperBroker {
    fn name(&self) -> &'static str {
        "paper"
    }

    async fn place(&self, order: OrderRequest<'_>) -> Result<Placement, BrokerError> {
        let placement = paper_fill(&order);
        self.book.lock().unwrap_or_else(|e| e.into_inner()).insert(
            order.correlation_id.to_owned(),
            PaperOrder {
                placement: placement.clone(),
                units: order.resolved.units,
                cancelled: false,
            },
        );
        Ok(placement)
    }

    async fn lookup(&self, correlation_id: &str) -> Result<Lookup, BrokerError> {
        let book = self.book.lock().unwrap_or_else(|e| e.into_inner());
        Ok(book
            .get(correlation_id)
            // A paper order refused without an id never existed: absent.
            .and_then(state_of)
            .map_or(Lookup::Absent, Lookup::Found))
    }

    async fn order_state(&self, order_id: &str) -> Result<Option<OrderState>, BrokerError> {
        Ok(self
            .order_states()
            .await?
            .into_iter()
            .find(|o| o.order_id == order_id))
    }

    async fn order_states(&self) -> Result<Vec<OrderState>, BrokerError> {
        let book = self.book.lock().unwrap_or_else(|e| e.into_inner());
        Ok(book.values().filter_map(state_of).collect())
    }

    /// Paper mode keeps no positions (a paper fill is not booked anywhere), so there is
    /// nothing to close; resting paper orders are cancelled, as Dhan's exit-all cancels open
    /// orders (the order tracker then journals them CANCELLED).
    async fn exit_all(&self) -> Result<String, String> {
        let mut book = self.book.lock().unwrap_or_else(|e| e.into_inner());
        let mut cancelled = 0;
        for order in book.values_mut() {
            if !order.cancelled
                && matches!(
                    order.placement,
                    Placement::Pending { .. } | Placement::Accepted { .. }
                )
            {
                order.cancelled = true;
                cancelled += 1;
            }
        }
        Ok(format!(
            "paper mode tracks no positions, so there were none to close; {cancelled} resting paper order(s) cancelled"
        ))
    }
}

/// The paper order as the broker's view of it (nothing moves after placement: no price source).
fn state_of(order: &PaperOrder) -> Option<OrderState> {
    let state = |order_id: &String, status, filled: u32, price, message: &str| OrderState {
        order_id: order_id.clone(),
        status,
        filled_qty: Some(i64::from(filled)),
        average_price: price,
        exchange_order_id: None,
        exchange_time: None,
        reason: None,
        message: message.to_owned(),
    };
    Some(match &order.placement {
        Placement::Filled {
            order_id,
            fill_price,
            message,
        } => state(
            order_id,
            LegStatus::Filled,
            order.units,
            *fill_price,
            message,
        ),
        Placement::Pending { order_id, .. } | Placement::Accepted { order_id, .. }
            if order.cancelled =>
        {
            OrderState {
                reason: Some("cancelled by the kill switch's flatten".to_owned()),
                ..state(
                    order_id,
                    LegStatus::Cancelled,
                    0,
                    None,
                    "paper order cancelled by the kill switch's flatten",
                )
            }
        }
        Placement::Pending { order_id, .. } | Placement::Accepted { order_id, .. } => state(
            order_id,
            LegStatus::Pending,
            0,
            None,
            "paper order pending: paper mode has no price source to fill it yet",
        ),
        Placement::Rejected { order_id, message } => OrderState {
            reason: Some(message.clone()),
            ..state(order_id.as_ref()?, LegStatus::Rejected, 0, None, message)
        },
    })
}

/// Market orders fill at the alert's price; limit, stop and after-market orders rest.
fn paper_fill(order: &OrderRequest<'_>) -> Placement {
    let order_id = format!("PAPER-{}", order.correlation_id);
    let leg = order.leg;
    if order.amo.is_some() {
        return Placement::Pending {
            order_id,
            message: "paper after-market order pending until the market opens".to_owned(),
        };
    }
    match leg.order_type {
        OrderType::Market => Placement::Filled {
            order_id,
            fill_price: leg.price,
            message: match leg.price {
                Some(p) => format!("paper fill at {p}"),
                None => "paper fill (the alert sent no price to fill at)".to_owned(),
            },
        },
        OrderType::Limit | OrderType::StopLoss | OrderType::StopLossMarket => Placement::Pending {
            order_id,
            message: "paper order pending (paper mode does not simulate price movement)".to_owned(),
        },
    }
}
