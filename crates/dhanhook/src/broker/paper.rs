//! The paper broker: the default mode. Nothing leaves the process; orders get `PAPER-…` ids.
//!
//! Market orders fill at once at the alert's price (`{{close}}` in most templates), limit and
//! stop orders rest as pending. The id is derived from the leg's correlationId, so the same leg
//! always gets the same paper id.

use async_trait::async_trait;

use super::{Broker, BrokerError, OrderRequest, Placement};
use crate::alert::OrderType;

#[derive(Debug, Clone, Copy, Default)]
pub struct PaperBroker;

#[async_trait]
impl Broker for PaperBroker {
    fn name(&self) -> &'static str {
        "paper"
    }

    async fn place(&self, order: OrderRequest<'_>) -> Result<Placement, BrokerError> {
        let order_id = format!("PAPER-{}", order.correlation_id);
        let leg = order.leg;
        if order.amo.is_some() {
            return Ok(Placement::Pending {
                order_id,
                message: "paper after-market order pending until the market opens".to_owned(),
            });
        }
        Ok(match leg.order_type {
            OrderType::Market => Placement::Filled {
                order_id,
                fill_price: leg.price,
                message: match leg.price {
                    Some(p) => format!("paper fill at {p}"),
                    None => "paper fill (the alert sent no price to fill at)".to_owned(),
                },
            },
            OrderType::Limit | OrderType::StopLoss | OrderType::StopLossMarket => {
                Placement::Pending {
                    order_id,
                    message: "paper order pending (paper mode does not simulate price movement)"
                        .to_owned(),
                }
            }
        })
    }
}
