//! The price-driven half of the fill model: what makes a working order trade, and the
//! exchange-side endings (cancel by the exchange, end-of-day expiry) tests trigger.
//!
//! The simulator has no market data; a test sets a price per security. Until it does,
//! the old fixed behaviour holds so existing suites keep passing: a MARKET order trades at
//! the price it named, else at [`DEFAULT_FILL_PRICE`], and a LIMIT order rests PENDING
//! (there is no price for it to cross). STOP_LOSS orders always rest: triggers are not
//! simulated.

use chrono::{DateTime, Utc};

use crate::book::{Book, DEFAULT_FILL_PRICE};
use crate::orders::OrderSpec;

/// Statuses of an order that can still trade or be cancelled.
const WORKING: &[&str] = &["PENDING", "PART_TRADED"];

impl Book {
    /// The price a MARKET order trades at now.
    pub(crate) fn market_price(&self, spec: &OrderSpec) -> f64 {
        match self.prices.get(&spec.security_id) {
            Some(p) => *p,
            None if spec.price > 0.0 => spec.price,
            None => DEFAULT_FILL_PRICE,
        }
    }

    /// The price the order would trade at if it traded now, or `None` if it cannot: a
    /// LIMIT buy trades once the price is at or below its limit, a sell at or above, and
    /// then at the limit price.
    pub(crate) fn fill_price_now(&self, spec: &OrderSpec) -> Option<f64> {
        match spec.order_type.as_str() {
            "MARKET" => Some(self.market_price(spec)),
            "LIMIT" => {
                let last = *self.prices.get(&spec.security_id)?;
                let crossed = if spec.is_buy() {
                    last <= spec.price
                } else {
                    last >= spec.price
                };
                crossed.then_some(spec.price)
            }
            _ => None,
        }
    }

    /// Sets a security's price and trades the working orders it crosses.
    pub(crate) fn set_price(&mut self, security_id: &str, price: f64, now: DateTime<Utc>) {
        self.prices.insert(security_id.to_owned(), price);
        let ids: Vec<String> = self
            .orders
            .iter()
            .filter(|o| o.spec.security_id == security_id && o.spec.order_type == "LIMIT")
            .map(|o| o.sim.order_id.clone())
            .collect();
        for id in ids {
            self.fill(&id, now);
        }
    }

    /// The market opens: AMO orders stop waiting. Crossed LIMIT orders trade at once; the
    /// MARKET ones are returned so the caller can trade them after the fill delay, as any
    /// MARKET order.
    pub(crate) fn open_market(&mut self, now: DateTime<Utc>) -> Vec<String> {
        let mut market = Vec::new();
        for idx in 0..self.orders.len() {
            if !self.orders[idx].awaiting_open {
                continue;
            }
            self.orders[idx].awaiting_open = false;
            let id = self.orders[idx].sim.order_id.clone();
            if self.orders[idx].spec.order_type == "MARKET" {
                market.push(id);
            } else {
                self.fill(&id, now);
            }
        }
        market
    }

    /// Trades `qty` more of a working order at the price it would trade at now (its limit
    /// for a LIMIT order, whether or not crossed; the market price otherwise).
    pub(crate) fn part_fill(
        &mut self,
        order_id: &str,
        qty: u64,
        now: DateTime<Utc>,
    ) -> Result<(), String> {
        let idx = self
            .order_index(order_id)
            .ok_or_else(|| format!("no order {order_id}"))?;
        let order = &self.orders[idx];
        if !WORKING.contains(&order.sim.status.as_str()) {
            return Err(format!("order {order_id} is {}", order.sim.status));
        }
        let rest = order.spec.quantity.saturating_sub(order.sim.filled_qty);
        if qty == 0 || qty > rest {
            return Err(format!("{qty} is not between 1 and the remaining {rest}"));
        }
        let price = if order.spec.price > 0.0 && order.spec.order_type != "MARKET" {
            order.spec.price
        } else {
            self.market_price(&order.spec)
        };
        self.trade(idx, qty, price, now);
        Ok(())
    }

    /// The exchange cancels a working order (e.g. an IOC remainder, a circuit breach).
    pub(crate) fn cancel_by_exchange(&mut self, order_id: &str, now: DateTime<Utc>) -> bool {
        let Some(idx) = self.order_index(order_id) else {
            return false;
        };
        self.end(
            idx,
            "CANCELLED",
            "Order cancelled by exchange",
            &["TRANSIT", "PENDING", "PART_TRADED"],
            now,
        )
    }

    /// End of day: every order still working expires. Returns how many did.
    pub(crate) fn expire_open_orders(&mut self, now: DateTime<Utc>) -> usize {
        (0..self.orders.len())
            .filter(|&idx| {
                self.end(
                    idx,
                    "EXPIRED",
                    "Order expired at end of day",
                    &["TRANSIT", "PENDING", "PART_TRADED"],
                    now,
                )
            })
            .count()
    }

    fn end(
        &mut self,
        idx: usize,
        status: &str,
        reason: &str,
        from: &[&str],
        now: DateTime<Utc>,
    ) -> bool {
        let order = &mut self.orders[idx];
        if !from.contains(&order.sim.status.as_str()) {
            return false;
        }
        order.sim.status = status.to_owned();
        order.sim.oms_error_description = Some(reason.to_owned());
        order.sim.updated_at = now;
        order.awaiting_open = false;
        self.changed(idx);
        true
    }
}
