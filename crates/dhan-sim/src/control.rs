//! Steering the simulated market: the logic behind the [`crate::SimHandle`] methods that
//! move orders (prices, market open, forced rejections, exchange cancels, expiry, partial
//! fills), and the same controls over HTTP under `/sim/` so a person running
//! `dhanhook sim` can drive fills with curl.
//!
//! Paths (all `POST`, JSON bodies, no token): `/sim/price`, `/sim/reject-next`,
//! `/sim/market-open`, `/sim/part-fill`, `/sim/exchange-cancel`, `/sim/expire`; next to the
//! older `GET /sim/orders`.
//!
//! The `/sim/` paths are not Dhan's: Dhan has no such paths, and nothing under `/v2` or
//! the auth host's paths is ever answered here.

use std::sync::Arc;

use hyper::Method;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::server::{Reply, Req, gateway_error};
use crate::state::Shared;

/// Trades a MARKET order after the fill delay, as every MARKET order does.
pub(crate) fn fill_later(shared: &Arc<Shared>, order_id: String) {
    let fill_now = |shared: &Shared, id: &str| {
        let mut state = shared.lock();
        let now = state.now();
        state.book.fill(id, now);
    };
    // Handle methods may be called outside a runtime; then the order trades at once.
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => {
            let shared = shared.clone();
            let delay = shared.config.fill_delay;
            rt.spawn(async move {
                tokio::time::sleep(delay).await;
                fill_now(&shared, &order_id);
            });
        }
        Err(_) => fill_now(shared, &order_id),
    }
}

/// Opens or closes the market; opening releases the AMO orders waiting for it.
pub(crate) fn set_market_open(shared: &Arc<Shared>, open: bool) {
    let waiting = {
        let mut state = shared.lock();
        state.market_open = open;
        let now = state.now();
        if open {
            state.book.open_market(now)
        } else {
            Vec::new()
        }
    };
    for id in waiting {
        fill_later(shared, id);
    }
}

pub(crate) fn set_price(shared: &Shared, security_id: &str, price: f64) {
    let mut state = shared.lock();
    let now = state.now();
    state.book.set_price(security_id, price, now);
}

/// Handles `/sim/...` control paths (`segs` after `sim`); `None` for paths not handled here.
pub(crate) fn dispatch(shared: &Arc<Shared>, req: &Req, segs: &[&str]) -> Option<Reply> {
    let handler: fn(&Arc<Shared>, &Value) -> Result<Value, ApiError> = match segs {
        ["price"] => price,
        ["reject-next"] => reject_next,
        ["market-open"] => market_open,
        ["expire"] => expire,
        ["part-fill"] => part_fill,
        ["exchange-cancel"] => exchange_cancel,
        _ => return None,
    };
    if req.method != Method::POST {
        return Some(gateway_error(shared, 405, "Method Not Allowed", &req.path));
    }
    let body: Value = if req.body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&req.body) {
            Ok(v) => v,
            Err(_) => return Some(ApiError::input("Invalid JSON in request body").into()),
        }
    };
    Some(match handler(shared, &body) {
        Ok(v) => Reply::ok(v),
        Err(e) => e.into(),
    })
}

/// `POST /sim/price {"securityId":"2885","price":1401.5}`
fn price(shared: &Arc<Shared>, body: &Value) -> Result<Value, ApiError> {
    let id = body["securityId"]
        .as_str()
        .ok_or_else(|| ApiError::input("securityId (a string) is required"))?;
    let price = body["price"]
        .as_f64()
        .filter(|p| p.is_finite() && *p > 0.0)
        .ok_or_else(|| ApiError::input("price must be a positive number"))?;
    set_price(shared, id, price);
    Ok(json!({"securityId": id, "price": price}))
}

/// `POST /sim/reject-next {"reason":"RMS:..."}` (the reason is optional).
fn reject_next(shared: &Arc<Shared>, body: &Value) -> Result<Value, ApiError> {
    let reason = body["reason"]
        .as_str()
        .map_or_else(|| DEFAULT_REJECT_REASON.to_owned(), str::to_owned);
    shared.lock().reject_next.push_back(reason.clone());
    Ok(json!({"reason": reason}))
}

/// `POST /sim/market-open {"open":true}`
fn market_open(shared: &Arc<Shared>, body: &Value) -> Result<Value, ApiError> {
    let open = body["open"]
        .as_bool()
        .ok_or_else(|| ApiError::input("open (a boolean) is required"))?;
    set_market_open(shared, open);
    Ok(json!({"open": open}))
}

/// `POST /sim/expire`: the end of the day for every working order.
fn expire(shared: &Arc<Shared>, _body: &Value) -> Result<Value, ApiError> {
    let mut state = shared.lock();
    let now = state.now();
    let expired = state.book.expire_open_orders(now);
    Ok(json!({"expired": expired}))
}

fn order_id(body: &Value) -> Result<&str, ApiError> {
    body["orderId"]
        .as_str()
        .ok_or_else(|| ApiError::input("orderId (a string) is required"))
}

/// `POST /sim/part-fill {"orderId":"…","quantity":2}`
fn part_fill(shared: &Arc<Shared>, body: &Value) -> Result<Value, ApiError> {
    let id = order_id(body)?;
    let qty = body["quantity"]
        .as_u64()
        .ok_or_else(|| ApiError::input("quantity (a positive integer) is required"))?;
    let mut state = shared.lock();
    let now = state.now();
    state
        .book
        .part_fill(id, qty, now)
        .map_err(ApiError::input)?;
    Ok(json!({"orderId": id, "quantity": qty}))
}

/// `POST /sim/exchange-cancel {"orderId":"…"}`
fn exchange_cancel(shared: &Arc<Shared>, body: &Value) -> Result<Value, ApiError> {
    let id = order_id(body)?;
    let mut state = shared.lock();
    let now = state.now();
    if state.book.cancel_by_exchange(id, now) {
        Ok(json!({"orderId": id, "orderStatus": "CANCELLED"}))
    } else {
        Err(ApiError::input(format!("no working order {id}")))
    }
}

/// What a forced rejection says when no reason is given: Dhan's RMS margin text.
pub(crate) const DEFAULT_REJECT_REASON: &str =
    "RMS:Margin Exceeds,Cash Available:0.00,Margin Required:12000.00";
