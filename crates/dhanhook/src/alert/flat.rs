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

use serde_json::{Map, Value};

use super::{
    AlertFormat, AmoTime, Exchange, FieldProblem, LegOrder, OrderType, Product, Side, Signal,
    Validity, check_label, check_prices, check_symbol,
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
];

const ACTIONS: &str = "buy or sell";
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
    let side = match f.text(&mut out, "action") {
        None => {
            f.problem(&mut out, "action", format!("is required; use {ACTIONS}"));
            None
        }
        Some(a) => match a.to_ascii_lowercase().as_str() {
            "buy" => Some(Side::Buy),
            "sell" => Some(Side::Sell),
            _ => {
                f.problem(
                    &mut out,
                    "action",
                    format!("'{}' is not accepted; use {ACTIONS}", clip(&a)),
                );
                None
            }
        },
    };
    let quantity = f.quantity(&mut out, "quantity");
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
    let closes = position_closes(&f, &mut out);
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
        warnings: Vec::new(),
    })
}

/// `position`: TradingView's `{{strategy.market_position}}`, the strategy's position *after*
/// this order. `flat` marks the order as an exit (it closes the position), which the kill
/// switch and the entry window let through. `long` and `short` would ask dhanhook to steer to a
/// target position, which it does not do yet: refused rather than placed as a plain order.
fn position_closes(f: &Fields<'_>, out: &mut Vec<FieldProblem>) -> bool {
    match f.text(out, "position") {
        None => false,
        Some(p) => match p.to_ascii_lowercase().as_str() {
            "flat" => true,
            "long" | "short" => {
                f.problem(
                    out,
                    "position",
                    format!(
                        "'{p}' (a target position) is not supported yet; send \"flat\" on exits, or leave it out"
                    ),
                );
                false
            }
            _ => {
                f.problem(
                    out,
                    "position",
                    format!("'{}' is not accepted; use flat", clip(&p)),
                );
                false
            }
        },
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
