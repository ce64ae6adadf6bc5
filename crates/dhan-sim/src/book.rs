//! The account's books — orders, trades, positions, holdings, kill switch — and what
//! happens to an order after Dhan has accepted it (TRANSIT → PENDING → TRADED/REJECTED).
//!
//! Everything here is plain data changed under the state lock; the timing of the
//! transitions lives in the server, which calls [`Book::leave_transit`] and
//! [`Book::fill`] after the configured real-time delays. The price-driven part of the
//! fill model (limit crossing, AMO at the open, partial fills, exchange cancels, expiry)
//! is in `fills.rs`.
//!
//! Every status change leaves a snapshot in [`Book::changes`]; the state lock's guard
//! publishes them to the order-update feed and the postback sender when it is released.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::orders::{OrderSpec, SimOrder, trading_symbol};

/// Price used for a MARKET order that names none (the simulator has no market data).
pub(crate) const DEFAULT_FILL_PRICE: f64 = 100.0;

/// An order and the simulator's bookkeeping around it.
#[derive(Debug, Clone)]
pub(crate) struct OrderRec {
    pub(crate) sim: SimOrder,
    pub(crate) spec: OrderSpec,
    /// The correlation id shown in the book: the client's, or one Dhan made up.
    pub(crate) correlation: String,
    /// When the order reached the exchange (left TRANSIT).
    pub(crate) exchange_at: Option<DateTime<Utc>>,
    pub(crate) oms_error_code: Option<String>,
    /// A rejection forced by `reject_next_order`, applied when the order leaves TRANSIT.
    pub(crate) forced_reject: Option<String>,
    /// An AMO placed while the market was closed: rests PENDING until the market opens.
    pub(crate) awaiting_open: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Trade {
    pub(crate) order_id: String,
    pub(crate) exchange_order_id: String,
    pub(crate) trade_id: String,
    pub(crate) spec: OrderSpec,
    pub(crate) quantity: u64,
    pub(crate) price: f64,
    pub(crate) at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub(crate) struct Position {
    pub(crate) security_id: String,
    pub(crate) exchange_segment: String,
    pub(crate) product_type: String,
    pub(crate) buy_qty: u64,
    pub(crate) buy_value: f64,
    pub(crate) sell_qty: u64,
    pub(crate) sell_value: f64,
    pub(crate) last_price: f64,
}

impl Position {
    pub(crate) fn net(&self) -> i128 {
        i128::from(self.buy_qty) - i128::from(self.sell_qty)
    }
}

/// What the order does after it leaves TRANSIT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterTransit {
    /// Nothing more happens on its own (PENDING limit/SL/AMO, REJECTED, or gone).
    Rest,
    /// A MARKET order that will trade after another delay.
    Fill,
}

/// Orders, trades, positions, holdings and the kill switch of the one simulated account.
#[derive(Debug, Default)]
pub(crate) struct Book {
    pub(crate) orders: Vec<OrderRec>,
    pub(crate) trades: Vec<Trade>,
    pub(crate) positions: Vec<Position>,
    pub(crate) holdings: Vec<Value>,
    /// The IST day Dhan's kill switch was activated for: it blocks trading for the rest of
    /// that day (dhan-api.md §4), so it is active only while the sim's clock is on that day.
    pub(crate) kill_switch_day: Option<chrono::NaiveDate>,
    /// Per-security prices set by tests (`SimHandle::set_price`); the simulator has no
    /// market data of its own.
    pub(crate) prices: HashMap<String, f64>,
    /// Snapshots of orders whose status changed, oldest first, not yet published.
    pub(crate) changes: Vec<OrderRec>,
    next_order: u64,
    next_exchange: u64,
    next_trade: u64,
}

/// A number in a holdings row, accepting numbers or numeric strings (rows may be seeded).
fn row_number(row: &Value, key: &str) -> f64 {
    match row.get(key) {
        Some(Value::Number(n)) => n.as_f64().unwrap_or(0.0),
        Some(Value::String(s)) => s.trim().parse().unwrap_or(0.0),
        _ => 0.0,
    }
}

fn row_security_id(row: &Value) -> Option<String> {
    match row.get("securityId") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

/// Holdings quantities are whole shares; negative or fractional seeds are clamped.
fn as_qty(x: f64) -> u64 {
    if x.is_finite() && x > 0.0 {
        x.round() as u64
    } else {
        0
    }
}

fn exchange_of(segment: &str) -> &str {
    segment.split('_').next().unwrap_or("NSE")
}

impl Book {
    pub(crate) fn order_index(&self, order_id: &str) -> Option<usize> {
        self.orders.iter().position(|o| o.sim.order_id == order_id)
    }

    pub(crate) fn get(&self, order_id: &str) -> Option<&OrderRec> {
        self.orders.iter().find(|o| o.sim.order_id == order_id)
    }

    /// The latest order with this correlation id (Dhan does not enforce uniqueness).
    pub(crate) fn by_correlation(&self, correlation_id: &str) -> Option<&OrderRec> {
        self.orders
            .iter()
            .rev()
            .find(|o| o.correlation == correlation_id)
    }

    /// Records a newly accepted order in TRANSIT and returns its id.
    pub(crate) fn place(&mut self, spec: OrderSpec, body: Value, now: DateTime<Utc>) -> String {
        self.place_with(spec, body, now, None)
    }

    /// Like [`Book::place`], with a rejection that will hit the order when it leaves TRANSIT.
    pub(crate) fn place_with(
        &mut self,
        spec: OrderSpec,
        body: Value,
        now: DateTime<Utc>,
        forced_reject: Option<String>,
    ) -> String {
        self.next_order += 1;
        // Dhan's order ids are 12-digit numeric strings.
        let order_id = (112_600_000_000 + self.next_order).to_string();
        let correlation = spec
            .correlation_id
            .clone()
            .unwrap_or_else(|| format!("sim-{order_id}"));
        self.orders.push(OrderRec {
            sim: SimOrder {
                order_id: order_id.clone(),
                correlation_id: spec.correlation_id.clone(),
                status: "TRANSIT".into(),
                body,
                created_at: now,
                updated_at: now,
                oms_error_description: None,
                exchange_order_id: None,
                filled_qty: 0,
                average_traded_price: 0.0,
            },
            spec,
            correlation,
            exchange_at: None,
            oms_error_code: None,
            forced_reject,
            awaiting_open: false,
        });
        self.changed(self.orders.len() - 1);
        order_id
    }

    fn available_to_sell(&self, security_id: &str) -> u64 {
        self.holdings
            .iter()
            .filter(|row| row_security_id(row).as_deref() == Some(security_id))
            .map(|row| as_qty(row_number(row, "availableQty")))
            .fold(0u64, u64::saturating_add)
    }

    /// Records a snapshot of the order at `idx` for the feed and the postback.
    pub(crate) fn changed(&mut self, idx: usize) {
        if let Some(order) = self.orders.get(idx) {
            self.changes.push(order.clone());
        }
    }

    /// The RMS check and hand-off to the exchange that follows TRANSIT.
    pub(crate) fn leave_transit(
        &mut self,
        order_id: &str,
        now: DateTime<Utc>,
        rms_reject_security_ids: &[String],
        market_open: bool,
    ) -> AfterTransit {
        let Some(idx) = self.order_index(order_id) else {
            return AfterTransit::Rest;
        };
        if self.orders[idx].sim.status != "TRANSIT" {
            // Cancelled by exit-all meanwhile.
            return AfterTransit::Rest;
        }
        let spec = self.orders[idx].spec.clone();
        let rejection = if let Some(reason) = self.orders[idx].forced_reject.take() {
            Some(reason)
        } else if rms_reject_security_ids.contains(&spec.security_id) {
            Some(format!(
                "RMS:{order_id}:Margin Exceeds, Cash Available: 0.00, Cash Required: {:.2}: insufficient funds",
                spec.quantity as f64 * self.market_price(&spec)
            ))
        } else if spec.product_type == "CNC"
            && !spec.is_buy()
            && self.available_to_sell(&spec.security_id) < spec.quantity
        {
            // Delivery sells need shares in the demat account.
            Some(format!(
                "RMS:{order_id}:Holdings not available to sell for security {}",
                spec.security_id
            ))
        } else {
            None
        };
        self.next_exchange += 1;
        let exchange_id = (1_100_000_000_000_000 + self.next_exchange).to_string();
        let order = &mut self.orders[idx];
        order.sim.updated_at = now;
        if let Some(reason) = rejection {
            order.sim.status = "REJECTED".into();
            order.sim.oms_error_description = Some(reason);
            order.oms_error_code = Some("RMS".into());
            self.changed(idx);
            return AfterTransit::Rest;
        }
        order.sim.status = "PENDING".into();
        order.sim.exchange_order_id = Some(exchange_id);
        order.exchange_at = Some(now);
        // An AMO placed during market hours is treated as a regular order.
        order.awaiting_open = spec.after_market_order && !market_open;
        let waits = order.awaiting_open;
        self.changed(idx);
        if !waits && self.fill_price_now(&spec).is_some() {
            AfterTransit::Fill
        } else {
            AfterTransit::Rest
        }
    }

    /// Trades the rest of a working order if it can trade now (a MARKET order always, a
    /// LIMIT order once the price has crossed it) and books the trade.
    pub(crate) fn fill(&mut self, order_id: &str, now: DateTime<Utc>) {
        let Some(idx) = self.order_index(order_id) else {
            return;
        };
        let order = &self.orders[idx];
        if !matches!(order.sim.status.as_str(), "PENDING" | "PART_TRADED") || order.awaiting_open {
            // Cancelled in between, or waiting for the open: nothing trades.
            return;
        }
        let Some(price) = self.fill_price_now(&order.spec) else {
            return;
        };
        let rest = order.spec.quantity.saturating_sub(order.sim.filled_qty);
        self.trade(idx, rest, price, now);
    }

    /// Books a trade of `quantity` at `price` for the order at `idx`: PART_TRADED until the
    /// whole quantity has traded, then TRADED.
    pub(crate) fn trade(&mut self, idx: usize, quantity: u64, price: f64, now: DateTime<Utc>) {
        if quantity == 0 {
            return;
        }
        let spec = self.orders[idx].spec.clone();
        let order = &mut self.orders[idx];
        let before = order.sim.filled_qty;
        let filled = before.saturating_add(quantity).min(spec.quantity);
        order.sim.average_traded_price = (before as f64 * order.sim.average_traded_price
            + quantity as f64 * price)
            / filled as f64;
        order.sim.filled_qty = filled;
        order.sim.status = if filled >= spec.quantity {
            "TRADED".into()
        } else {
            "PART_TRADED".into()
        };
        order.sim.updated_at = now;
        let order_id = order.sim.order_id.clone();
        let exchange_order_id = order.sim.exchange_order_id.clone().unwrap_or_default();
        self.changed(idx);
        self.next_trade += 1;
        self.trades.push(Trade {
            order_id,
            exchange_order_id,
            trade_id: (50_000_000 + self.next_trade).to_string(),
            spec: spec.clone(),
            quantity,
            price,
            at: now,
        });
        if spec.product_type == "CNC" {
            self.book_delivery(&spec, quantity, price);
        } else {
            self.book_position(&spec, quantity, price);
        }
    }

    fn book_position(&mut self, spec: &OrderSpec, quantity: u64, price: f64) {
        let idx = match self.positions.iter().position(|p| {
            p.security_id == spec.security_id
                && p.exchange_segment == spec.exchange_segment
                && p.product_type == spec.product_type
        }) {
            Some(idx) => idx,
            None => {
                self.positions.push(Position {
                    security_id: spec.security_id.clone(),
                    exchange_segment: spec.exchange_segment.clone(),
                    product_type: spec.product_type.clone(),
                    buy_qty: 0,
                    buy_value: 0.0,
                    sell_qty: 0,
                    sell_value: 0.0,
                    last_price: price,
                });
                self.positions.len() - 1
            }
        };
        let p = &mut self.positions[idx];
        let value = quantity as f64 * price;
        if spec.is_buy() {
            p.buy_qty = p.buy_qty.saturating_add(quantity);
            p.buy_value += value;
        } else {
            p.sell_qty = p.sell_qty.saturating_add(quantity);
            p.sell_value += value;
        }
        p.last_price = price;
    }

    /// CNC trades move shares in and out of holdings (a BUY adds, a SELL removes).
    fn book_delivery(&mut self, spec: &OrderSpec, qty: u64, price: f64) {
        let idx = self
            .holdings
            .iter()
            .position(|row| row_security_id(row).as_deref() == Some(spec.security_id.as_str()));
        if spec.is_buy() {
            match idx {
                Some(i) => {
                    let row = &mut self.holdings[i];
                    let total = as_qty(row_number(row, "totalQty"));
                    let avg = row_number(row, "avgCostPrice");
                    let new_total = total.saturating_add(qty);
                    let new_avg = if new_total == 0 {
                        price
                    } else {
                        (total as f64 * avg + qty as f64 * price) / new_total as f64
                    };
                    let available = as_qty(row_number(row, "availableQty")).saturating_add(qty);
                    let t1 = as_qty(row_number(row, "t1Qty")).saturating_add(qty);
                    if let Some(obj) = row.as_object_mut() {
                        obj.insert("totalQty".into(), json!(new_total));
                        obj.insert("availableQty".into(), json!(available));
                        obj.insert("t1Qty".into(), json!(t1));
                        obj.insert("avgCostPrice".into(), json!(new_avg));
                    }
                }
                None => self.holdings.push(json!({
                    "exchange": exchange_of(&spec.exchange_segment),
                    "tradingSymbol": trading_symbol(&spec.security_id),
                    "securityId": spec.security_id,
                    "isin": "INE000000000",
                    "totalQty": qty,
                    "dpQty": 0,
                    "t1Qty": qty,
                    "availableQty": qty,
                    "collateralQty": 0,
                    "avgCostPrice": price,
                })),
            }
        } else if let Some(i) = idx {
            let row = &mut self.holdings[i];
            let total = as_qty(row_number(row, "totalQty")).saturating_sub(qty);
            let available = as_qty(row_number(row, "availableQty")).saturating_sub(qty);
            if total == 0 {
                self.holdings.remove(i);
            } else if let Some(obj) = row.as_object_mut() {
                obj.insert("totalQty".into(), json!(total));
                obj.insert("availableQty".into(), json!(available));
            }
        }
    }

    /// Cancels a PENDING order (`DELETE /v2/orders/{id}`).
    pub(crate) fn cancel(&mut self, order_id: &str, now: DateTime<Utc>) -> Result<(), ApiError> {
        let Some(idx) = self.order_index(order_id) else {
            return Err(ApiError::order(400, "Invalid Order Id"));
        };
        let order = &mut self.orders[idx];
        match order.sim.status.as_str() {
            // A partly traded order keeps its trades; the rest is cancelled.
            "PENDING" | "PART_TRADED" => {
                order.sim.status = "CANCELLED".into();
                order.sim.updated_at = now;
                self.changed(idx);
                Ok(())
            }
            "TRANSIT" => Err(ApiError::order(400, "Order is in Transit state")),
            other => Err(ApiError::order(
                400,
                format!("Order cannot be cancelled as it is already {other}"),
            )),
        }
    }

    /// Whether Dhan's kill switch blocks trading at `now`.
    pub(crate) fn kill_switch_active(&self, now: DateTime<Utc>) -> bool {
        self.kill_switch_day == Some(crate::clock::ist_date(now))
    }

    /// Whether the account has open positions or working orders (blocks the kill switch).
    pub(crate) fn has_open_exposure(&self) -> bool {
        self.positions.iter().any(|p| p.net() != 0)
            || self
                .orders
                .iter()
                .any(|o| matches!(o.sim.status.as_str(), "TRANSIT" | "PENDING" | "PART_TRADED"))
    }

    /// Exit all (`DELETE /v2/positions`): cancels working orders, then squares off every
    /// open position with a MARKET order that trades at once at the last traded price.
    pub(crate) fn exit_all(&mut self, now: DateTime<Utc>, client_id: &str) {
        for idx in 0..self.orders.len() {
            let order = &mut self.orders[idx];
            if matches!(
                order.sim.status.as_str(),
                "TRANSIT" | "PENDING" | "PART_TRADED"
            ) {
                order.sim.status = "CANCELLED".into();
                order.sim.updated_at = now;
                self.changed(idx);
            }
        }
        let open: Vec<(Position, i128)> = self
            .positions
            .iter()
            .filter(|p| p.net() != 0)
            .map(|p| (p.clone(), p.net()))
            .collect();
        for (p, net) in open {
            let side = if net > 0 { "SELL" } else { "BUY" };
            let quantity = u64::try_from(net.unsigned_abs()).unwrap_or(u64::MAX);
            let body = json!({
                "dhanClientId": client_id,
                "transactionType": side,
                "exchangeSegment": p.exchange_segment,
                "productType": p.product_type,
                "orderType": "MARKET",
                "validity": "DAY",
                "securityId": p.security_id,
                "quantity": quantity,
            });
            let spec = OrderSpec {
                transaction_type: side.into(),
                exchange_segment: p.exchange_segment.clone(),
                product_type: p.product_type.clone(),
                order_type: "MARKET".into(),
                validity: "DAY".into(),
                security_id: p.security_id.clone(),
                quantity,
                disclosed_quantity: 0,
                price: p.last_price,
                trigger_price: 0.0,
                after_market_order: false,
                amo_time: None,
                correlation_id: None,
                bo_profit_value: 0.0,
                bo_stop_loss_value: 0.0,
            };
            let id = self.place(spec, body, now);
            self.leave_transit(&id, now, &[], true);
            self.fill(&id, now);
        }
    }
}
