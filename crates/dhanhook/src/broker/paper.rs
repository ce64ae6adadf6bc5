//! The paper broker: the default mode. Nothing leaves the process; orders get `PAPER-…` ids.
//!
//! Market orders fill at once at the alert's price (`{{close}}` in most templates), limit and
//! stop orders rest as pending. The id is derived from the leg's correlationId, so the same leg
//! always gets the same paper id. Asked about an order later ([`Broker::order_state`]), it
//! answers from that book: a market order is FILLED, a limit or stop order stays PENDING (there
//! is no price source to fill it at yet, and its message says so).
//!
//! It also keeps the net positions its fills make (per instrument and product, as Dhan's
//! positions are), so position-aware alerts and SELL checks behave in paper mode as they do
//! live; it holds no demat holdings. A pending paper order can be cancelled.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use async_trait::async_trait;

use super::{
    BookOrder, Broker, BrokerError, CancelOutcome, Holding, Lookup, NetPosition, OrderRequest,
    OrderState, Placement,
};
use crate::{
    alert::{OrderType, Side},
    store::LegStatus,
};

/// The paper broker keeps its "order book" and positions in memory (lost on restart, like a
/// paper session). One lock for both, so a fill and the position it makes are seen together.
#[derive(Debug, Clone, Default)]
pub struct PaperBroker {
    state: Arc<Mutex<PaperState>>,
}

#[derive(Debug, Default)]
struct PaperState {
    /// By correlationId.
    book: HashMap<String, PaperOrder>,
    /// Net units by (security id, exchange segment, product).
    positions: HashMap<(String, String, String), i64>,
}

#[derive(Debug, Clone)]
struct PaperOrder {
    placement: Placement,
    units: u32,
    /// Cancelled while pending ([`Broker::cancel`], or [`Broker::exit_all`]'s flatten).
    cancelled: bool,
}

impl PaperBroker {
    fn lock(&self) -> std::sync::MutexGuard<'_, PaperState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl Broker for PaperBroker {
    fn name(&self) -> &'static str {
        "paper"
    }

    async fn place(&self, order: OrderRequest<'_>) -> Result<Placement, BrokerError> {
        let mut state = self.lock();
        // The same leg always gets the same answer (a re-send after a lost answer must not
        // fill twice).
        if let Some(existing) = state.book.get(order.correlation_id) {
            return Ok(existing.placement.clone());
        }
        let placement = paper_fill(&order);
        if matches!(placement, Placement::Filled { .. }) {
            let units = i64::from(order.resolved.units);
            let signed = match order.leg.side {
                Side::Buy => units,
                Side::Sell => -units,
            };
            *state
                .positions
                .entry((
                    order.resolved.security_id.clone(),
                    order.resolved.exchange_segment.clone(),
                    order.leg.product.as_str().to_owned(),
                ))
                .or_default() += signed;
        }
        state.book.insert(
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
        let state = self.lock();
        Ok(state
            .book
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
        let state = self.lock();
        Ok(state.book.values().filter_map(state_of).collect())
    }

    async fn positions(&self) -> Result<Vec<NetPosition>, BrokerError> {
        let state = self.lock();
        Ok(state
            .positions
            .iter()
            .map(|((security_id, segment, product), net)| NetPosition {
                security_id: security_id.clone(),
                exchange_segment: segment.clone(),
                product: product.clone(),
                net_qty: *net,
            })
            .collect())
    }

    async fn holdings(&self) -> Result<Vec<Holding>, BrokerError> {
        // A paper session starts with an empty demat account.
        Ok(Vec::new())
    }

    async fn book(&self) -> Result<Vec<BookOrder>, BrokerError> {
        let state = self.lock();
        Ok(state
            .book
            .iter()
            .filter_map(|(cid, order)| {
                let s = state_of(order)?;
                Some(BookOrder {
                    correlation_id: cid.clone(),
                    order_id: s.order_id,
                    status: s.status,
                    quantity: i64::from(order.units),
                    filled_qty: s.filled_qty.unwrap_or(0),
                })
            })
            .collect())
    }

    async fn cancel(&self, order_id: &str) -> Result<CancelOutcome, BrokerError> {
        let mut state = self.lock();
        let Some(order) = state
            .book
            .values_mut()
            .find(|o| placement_id(&o.placement) == Some(order_id))
        else {
            return Ok(CancelOutcome::Refused(format!(
                "paper order {order_id} is unknown (paper orders are lost on restart)"
            )));
        };
        match &order.placement {
            Placement::Pending { .. } | Placement::Accepted { .. } if !order.cancelled => {
                order.cancelled = true;
                Ok(CancelOutcome::Cancelled)
            }
            _ => Ok(CancelOutcome::Refused(format!(
                "paper order {order_id} is already final"
            ))),
        }
    }

    /// Closes the paper positions and cancels resting paper orders, as Dhan's exit-all does
    /// (the order tracker then journals them CANCELLED).
    async fn exit_all(&self) -> Result<String, String> {
        let mut state = self.lock();
        let mut cancelled = 0;
        for order in state.book.values_mut() {
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
        // Squared off at once, as Dhan's Exit All does (paper has no price to do it at).
        let closed = state.positions.values().filter(|q| **q != 0).count();
        state.positions.clear();
        Ok(format!(
            "{closed} paper position(s) closed; {cancelled} resting paper order(s) cancelled"
        ))
    }
}

fn placement_id(p: &Placement) -> Option<&str> {
    match p {
        Placement::Accepted { order_id, .. }
        | Placement::Pending { order_id, .. }
        | Placement::Filled { order_id, .. } => Some(order_id),
        Placement::Rejected { order_id, .. } => order_id.as_deref(),
    }
}

/// The paper order as the broker's view of it (nothing moves after placement: no price source).
fn state_of(order: &PaperOrder) -> Option<OrderState> {
    if order.cancelled {
        return Some(OrderState {
            order_id: placement_id(&order.placement)?.to_owned(),
            status: LegStatus::Cancelled,
            filled_qty: Some(0),
            average_price: None,
            exchange_order_id: None,
            exchange_time: None,
            reason: Some("cancelled".to_owned()),
            message: "paper order cancelled".to_owned(),
        });
    }
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
