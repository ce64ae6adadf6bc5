//! dhanhook's flat alert format: one order, readable names, easy to write in TradingView.
//!
//! ```json
//! {"secret":"…","strategy":"ema-cross","id":"{{strategy.order.id}}-{{timenow}}",
//!  "symbol":"{{exchange}}:{{ticker}}","action":"{{strategy.order.action}}",
//!  "quantity":"{{strategy.order.contracts}}","order_type":"market","product":"intraday",
//!  "price":"{{close}}","timenow":"{{timenow}}"}
//! ```
//!
//! `symbol` may carry the exchange (`NSE:RELIANCE`) or come with a separate `exchange` field.
//!
//! Position-aware alerts (see `pipeline::positions`): `"position":"long"|"short"|"flat"` with
//! `"position_size"` (TradingView's `{{strategy.market_position}}` and
//! `{{strategy.market_position_size}}`) asks for a net position, and then `action` and
//! `quantity` are not used; `"action":"exit"` closes the symbol's position, `"action":"reverse"`
//! flips it (to `quantity` when given), and `"action":"cancel"` cancels the symbol's open
//! orders that dhanhook placed.

use serde_json::{Map, Value};

use super::{
    AlertFormat, AmoTime, Exchange, FieldProblem, Intent, LegOrder, OrderType, Product, Side,
    Signal, Validity, check_label, check_prices, check_symbol,
    fields::{Fields, clip},
};

const FIELDS: &[&str] = &[
    "secret",
    "id",
    "strategy",
    "symbol",
    "exchange",
    "action",
    "quantity",
    "order_type",
    "price",
    "trigger_price",
    "product",
    "validity",
    "amo",
    "amo_time",
    "timenow",
    "when_closed",
    "position",
    "on_leg_reject",
    "position_size",
];

const ACTIONS: &str = "buy, sell, exit, reverse or cancel";
const POSITIONS: &str = "long, short or flat";
const ORDER_TYPES: &str = "market, limit, sl or sl-m";
const PRODUCTS: &str = "intraday, delivery, margin or mtf";

pub(super) fn parse(body: &Map<String, Value>) -> Result<Signal, Vec<FieldProblem>> {
    let mut out = Vec::new();
    let f = Fields::new(body, "", FIELDS);
    f.reject_unknown(&mut out);

    let strategy = check_label(f.text(&mut out, "strategy"), "strategy", &mut out);
    let id = check_label(f.text(&mut out, "id"), "id", &mut out);
    let timenow = f.text(&mut out, "timenow");

    let (symbol, exchange) = symbol_and_exchange(&f, &mut out);
    let mut warnings = Vec::new();
    let (intent, side, quantity) = intent_side_quantity(&f, &mut out, &mut warnings);
    let order_type = match f.text(&mut out, "order_type") {
        None => Some(OrderType::Market),
        Some(t) => {
            let parsed = OrderType::parse(&t.to_ascii_uppercase());
            if parsed.is_none() {
                f.problem(
                    &mut out,
                    "order_type",
                    format!("'{}' is not accepted; use {ORDER_TYPES}", clip(&t)),
                );
            }
            parsed
        }
    };
    let product = match f.text(&mut out, "product") {
        None => {
            f.problem(&mut out, "product", format!("is required; use {PRODUCTS}"));
            None
        }
        Some(p) => {
            let parsed = Product::parse(&p.to_ascii_uppercase());
            if parsed.is_none() {
                f.problem(
                    &mut out,
                    "product",
                    format!("'{}' is not accepted; use {PRODUCTS}", clip(&p)),
                );
            }
            parsed
        }
    };
    let validity = f
        .choice(&mut out, "validity", "day or ioc", Validity::parse)
        .unwrap_or(Validity::Day);
    let price = f.price(&mut out, "price");
    let trigger_price = f.price(&mut out, "trigger_price");
    let amo = f.boolean(&mut out, "amo").unwrap_or(false);
    let amo_time = f.choice(&mut out, "amo_time", AmoTime::ACCEPTED, AmoTime::parse);
    let when_closed = f.choice(
        &mut out,
        "when_closed",
        "amo, queue or reject",
        crate::domain::WhenClosed::parse,
    );
    // An exit (a leg that closes a position, which the kill switch and the entry window let
    // through) is worked out against the positions for a position-aware alert
    // (`pipeline/positions.rs`); a plain order is an entry.
    let closes = false;
    let on_leg_reject = f.choice(
        &mut out,
        "on_leg_reject",
        super::OnLegReject::ACCEPTED,
        super::OnLegReject::parse,
    );
    if let Some(order_type) = order_type {
        check_prices(
            order_type,
            price,
            trigger_price,
            ("price".to_owned(), "trigger_price".to_owned()),
            &mut out,
            None,
        );
    }

    if !out.is_empty() {
        return Err(out);
    }
    let (Some(symbol), Some(exchange), Some(side), Some(quantity), Some(order_type), Some(product)) =
        (symbol, exchange, side, quantity, order_type, product)
    else {
        // Unreachable in practice: every `None` above recorded a problem.
        return Err(vec![FieldProblem {
            field: "alert".to_owned(),
            problem: "is incomplete".to_owned(),
        }]);
    };
    let leg = LegOrder {
        symbol,
        exchange,
        side,
        quantity,
        order_type,
        product,
        validity,
        price: price.filter(|p| *p > 0.0),
        trigger_price: trigger_price.filter(|p| *p > 0.0),
        instrument: None,
        option: None,
        future_expiry: None,
        symbol_field: "symbol".to_owned(),
        quantity_field: "quantity".to_owned(),
        amo,
        amo_time,
        closes,
    };
    Ok(Signal {
        format: AlertFormat::Flat,
        alert_type: "flat".to_owned(),
        strategy,
        id,
        timenow,
        interval: None,
        bar_time: None,
        // `amo: true` (the upstream's habit) asks for an AMO when the market is closed.
        when_closed: when_closed.or(amo.then_some(crate::domain::WhenClosed::Amo)),
        legs: vec![leg],
        on_leg_reject,
        intent,
        warnings,
    })
}

/// What the alert asks for, the leg's side and its quantity: from `position` and
/// `position_size` when the alert names a position, else from `action` and `quantity`.
fn intent_side_quantity(
    f: &Fields<'_>,
    out: &mut Vec<FieldProblem>,
    warnings: &mut Vec<FieldProblem>,
) -> (Intent, Option<Side>, Option<u32>) {
    let action = f.text(out, "action").map(|a| a.to_ascii_lowercase());
    if let Some(position) = f.text(out, "position") {
        let size = position_size(f, out);
        let not_used = |key: &str, warnings: &mut Vec<FieldProblem>| {
            if f.raw(key).is_some() {
                f.problem(
                    warnings,
                    key,
                    "not used: the alert names a position (position, position_size), and dhanhook orders the difference from the current one",
                );
            }
        };
        match action.as_deref() {
            None | Some("buy" | "sell") => not_used("action", warnings),
            Some(other) => f.problem(
                out,
                "action",
                format!(
                    "'{}' cannot go with position; send buy, sell or no action",
                    clip(other)
                ),
            ),
        }
        not_used("quantity", warnings);
        let (side, size) = match position.to_ascii_lowercase().as_str() {
            "long" | "short" => {
                if size == Some(0) {
                    f.problem(
                        out,
                        "position_size",
                        format!("must be at least 1 for a {position} position (use position flat to close)"),
                    );
                } else if f.raw("position_size").is_none() {
                    f.problem(
                        out,
                        "position_size",
                        "is required with position long or short (TradingView's {{strategy.market_position_size}})",
                    );
                }
                let side = if position.eq_ignore_ascii_case("long") {
                    Side::Buy
                } else {
                    Side::Sell
                };
                (Some(side), size.filter(|s| *s > 0))
            }
            "flat" => {
                if size.is_some_and(|s| s > 0) {
                    f.problem(
                        out,
                        "position_size",
                        "must be 0 (or absent) with position flat",
                    );
                }
                (Some(Side::Sell), Some(0))
            }
            _ => {
                f.problem(
                    out,
                    "position",
                    format!("'{}' is not accepted; use {POSITIONS}", clip(&position)),
                );
                (None, None)
            }
        };
        return (Intent::Target, side, size);
    }
    if f.raw("position_size").is_some() {
        f.problem(
            out,
            "position_size",
            "only goes with position (long, short or flat)",
        );
    }
    let optional_quantity = |out: &mut Vec<FieldProblem>| match f.raw("quantity") {
        None => Some(0),
        Some(_) => f.quantity(out, "quantity"),
    };
    match action.as_deref() {
        None => {
            f.problem(out, "action", format!("is required; use {ACTIONS}"));
            (Intent::Orders, None, f.quantity(out, "quantity"))
        }
        Some("buy") => (Intent::Orders, Some(Side::Buy), f.quantity(out, "quantity")),
        Some("sell") => (
            Intent::Orders,
            Some(Side::Sell),
            f.quantity(out, "quantity"),
        ),
        Some("exit") => {
            if f.raw("quantity").is_some() {
                f.problem(
                    warnings,
                    "quantity",
                    "not used: exit closes the whole position",
                );
            }
            (Intent::Exit, Some(Side::Sell), Some(0))
        }
        Some("reverse") => (Intent::Reverse, Some(Side::Sell), optional_quantity(out)),
        Some("cancel") => {
            if f.raw("quantity").is_some() {
                f.problem(
                    warnings,
                    "quantity",
                    "not used: cancel cancels every open order dhanhook placed on the symbol",
                );
            }
            (Intent::Cancel, Some(Side::Sell), Some(0))
        }
        Some(other) => {
            f.problem(
                out,
                "action",
                format!("'{}' is not accepted; use {ACTIONS}", clip(other)),
            );
            (Intent::Orders, None, f.quantity(out, "quantity"))
        }
    }
}

/// `position_size`: a whole number, 0 allowed (TradingView sends 0 when flat).
fn position_size(f: &Fields<'_>, out: &mut Vec<FieldProblem>) -> Option<u32> {
    match f.raw("position_size") {
        None => None,
        Some(Value::Number(n)) if n.as_f64() == Some(0.0) => Some(0),
        Some(Value::String(s)) if s.trim() == "0" || s.trim() == "0.0" => Some(0),
        Some(_) => f.quantity(out, "position_size"),
    }
}

/// `symbol` is `NSE:RELIANCE`, or `RELIANCE` with `exchange`. When both name an exchange they
/// must agree: a silent pick could trade on the wrong exchange.
fn symbol_and_exchange(
    f: &Fields<'_>,
    out: &mut Vec<FieldProblem>,
) -> (Option<String>, Option<Exchange>) {
    let raw_symbol = f.required_text(out, "symbol");
    let field_exchange = f.choice(out, "exchange", Exchange::ACCEPTED, Exchange::parse);
    let Some(raw_symbol) = raw_symbol else {
        return (None, field_exchange);
    };
    let (prefix_exchange, ticker) = match raw_symbol.split_once(':') {
        Some((ex, ticker)) => {
            let parsed = Exchange::parse(&ex.to_ascii_uppercase());
            if parsed.is_none() {
                f.problem(
                    out,
                    "symbol",
                    format!(
                        "exchange '{}' is not accepted; use {}",
                        clip(ex),
                        Exchange::ACCEPTED
                    ),
                );
            }
            (parsed, ticker.to_owned())
        }
        None => (None, raw_symbol.clone()),
    };
    let symbol = check_symbol(&ticker, "symbol", out);
    let exchange = match (prefix_exchange, field_exchange) {
        (Some(a), Some(b)) if a != b => {
            f.problem(
                out,
                "exchange",
                format!("{b} disagrees with the symbol's exchange {a}"),
            );
            None
        }
        (Some(a), _) => Some(a),
        (None, Some(b)) => Some(b),
        (None, None) => {
            if !raw_symbol.contains(':') {
                f.problem(
                    out,
                    "exchange",
                    "is required when symbol has no exchange prefix (send NSE:RELIANCE, or add \"exchange\":\"NSE\")",
                );
            }
            None
        }
    };
    (symbol, exchange)
}
