//! The paper broker: the default mode. Nothing leaves the process; orders get `PAPER-…` ids.
//!
//! Market orders fill at once at the alert's price (`{{close}}` in most templates), limit and
//! stop orders rest as pending. The id is derived from the leg's correlationId, so the same leg
//! always gets the same paper id.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use async_trait::async_trait;

use super::{Broker, BrokerError, Lookup, OrderRequest, Placement};
use crate::alert::OrderType;

/// The paper broker keeps its "order book" in memory (lost on restart, like a paper session).
#[derive(Debug, Clone, Default)]
pub struct PaperBroker {
    book: Arc<Mutex<HashMap<String, Placement>>>,
}

#[async_trait]
impl Broker for PaperBroker {
    fn name(&self) -> &'static str {
        "paper"
    }

    async fn place(&self, order: OrderRequest<'_>) -> Result<Placement, BrokerError> {
        let placement = paper_fill(&order);
        self.book
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(order.correlation_id.to_owned(), placement.clone());
        Ok(placement)
    }

    async fn lookup(&self, correlation_id: &str) -> Result<Lookup, BrokerError> {
        let book = self.book.lock().unwrap_or_else(|e| e.into_inner());
        Ok(book
            .get(correlation_id)
            .cloned()
            .map_or(Lookup::Absent, Lookup::Found))
    }
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
