//! Dhan's TradingView alert format (what web.dhan.co's webhook page and the upstream service use):
//!
//! ```json
//! {"secret":"…","alertType":"multi_leg_order","strategy":"…",
//!  "order_legs":[{"transactionType":"B","orderType":"MKT","quantity":"1","exchange":"NSE",
//!                 "symbol":"RELIANCE","instrument":"EQ","productType":"I","sort_order":"1",
//!                 "price":"0","amoTime":"OPEN"}],
//!  "meta":{"interval":"{{interval}}","time":"{{time}}","timenow":"{{timenow}}"}}
//! ```
//!
//! Unlike the upstream, `sort_order` is honoured, `amoTime` is kept per leg, `triggerPrice` is
//! read, and `cancel_order` is refused instead of being placed as an order.

use chrono::NaiveDate;
use serde_json::{Map, Value};

use super::{
    AlertFormat, AmoTime, Exchange, FieldProblem, Instrument, LegOrder, OptionContract, OptionKind,
    OrderType, Product, Side, Signal, Validity, check_label, check_prices, check_symbol,
    fields::Fields,
};

const TOP_FIELDS: &[&str] = &[
    "secret",
    "alertType",
    "strategy",
    "order_legs",
    "meta",
    "id",
];
const LEG_FIELDS: &[&str] = &[
    "transactionType",
    "orderType",
    "quantity",
    "exchange",
    "symbol",
    "instrument",
    "productType",
    "price",
    "triggerPrice",
    "amoTime",
    "sort_order",
    "option_type",
    "strike_price",
    "expiry_date",
    "validity",
];
const META_FIELDS: &[&str] = &["interval", "time", "timenow"];

/// An alert is in Dhan's format when it has Dhan's top-level fields.
pub(super) fn looks_like_dhan(body: &Map<String, Value>) -> bool {
    body.contains_key("order_legs") || body.contains_key("alertType")
}

pub(super) fn parse(body: &Map<String, Value>) -> Result<Signal, Vec<FieldProblem>> {
    let mut out = Vec::new();
    let top = Fields::new(body, "", TOP_FIELDS);
    top.reject_unknown(&mut out);

    let alert_type = top.required_text(&mut out, "alertType");
    match alert_type.as_deref() {
        None | Some("single_order" | "multi_leg_order") => {}
        Some("cancel_order") => top.problem(
            &mut out,
            "alertType",
            "cancel_order is not supported yet; nothing was placed",
        ),
        Some(other) => top.problem(
            &mut out,
            "alertType",
            format!(
                "'{}' is not accepted; use single_order or multi_leg_order",
                super::fields::clip(other)
            ),
        ),
    }
    let strategy = check_label(top.text(&mut out, "strategy"), "strategy", &mut out);
    let id = check_label(top.text(&mut out, "id"), "id", &mut out);
    let when_closed = top.choice(
        &mut out,
        "when_closed",
        "amo, queue or reject",
        crate::market::WhenClosed::parse,
    );

    let (mut interval, mut bar_time, mut timenow) = (None, None, None);
    if let Some(meta) = top.object(&mut out, "meta") {
        let meta = Fields::new(meta, "meta", META_FIELDS);
        meta.reject_unknown(&mut out);
        interval = meta.text(&mut out, "interval");
        bar_time = meta.text(&mut out, "time");
        timenow = meta.text(&mut out, "timenow");
    }

    let mut legs: Vec<(u32, LegOrder)> = Vec::new();
    match top.raw("order_legs") {
        None => top.problem(
            &mut out,
            "order_legs",
            "is required (a list of at least one leg)",
        ),
        Some(Value::Array(items)) if items.is_empty() => {
            top.problem(&mut out, "order_legs", "must contain at least one leg");
        }
        Some(Value::Array(items)) if items.len() > super::MAX_LEGS => top.problem(
            &mut out,
            "order_legs",
            format!(
                "has {} legs; at most {} are accepted",
                items.len(),
                super::MAX_LEGS
            ),
        ),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let prefix = format!("order_legs[{i}]");
                match item {
                    Value::Object(map) => {
                        if let Some(leg) = parse_leg(map, &prefix, &mut out) {
                            legs.push(leg);
                        }
                    }
                    _ => out.push(FieldProblem {
                        field: prefix,
                        problem: "must be an object".to_owned(),
                    }),
                }
            }
        }
        Some(_) => top.problem(&mut out, "order_legs", "must be a list"),
    }
    if alert_type.as_deref() == Some("single_order") && legs.len() > 1 {
        top.problem(
            &mut out,
            "order_legs",
            "single_order takes exactly one leg; use multi_leg_order",
        );
    }

    if !out.is_empty() {
        return Err(out);
    }
    // Stable sort: legs with equal (or missing) sort_order keep their array order.
    legs.sort_by_key(|(order, _)| *order);
    Ok(Signal {
        format: AlertFormat::Dhan,
        alert_type: alert_type.unwrap_or_default(),
        strategy,
        id,
        timenow,
        interval,
        bar_time,
        when_closed,
        legs: legs.into_iter().map(|(_, leg)| leg).collect(),
    })
}

/// Reads one leg. Returns its sort key and the leg, or `None` if any of its fields was wrong
/// (the problems are in `out`).
fn parse_leg(
    map: &Map<String, Value>,
    prefix: &str,
    out: &mut Vec<FieldProblem>,
) -> Option<(u32, LegOrder)> {
    let before = out.len();
    let f = Fields::new(map, prefix, LEG_FIELDS);
    f.reject_unknown(out);

    let side = required_choice(&f, out, "transactionType", Side::ACCEPTED, Side::parse);
    let order_type = required_choice(&f, out, "orderType", OrderType::ACCEPTED, OrderType::parse);
    let quantity = f.quantity(out, "quantity");
    let exchange = required_choice(&f, out, "exchange", Exchange::ACCEPTED, Exchange::parse);
    let symbol = f
        .required_text(out, "symbol")
        .and_then(|s| check_symbol(&s, &f.path("symbol"), out));
    let instrument = f.choice(out, "instrument", Instrument::ACCEPTED, Instrument::parse);
    let product = required_choice(&f, out, "productType", Product::ACCEPTED, Product::parse);
    let validity = f
        .choice(out, "validity", Validity::ACCEPTED, Validity::parse)
        .unwrap_or(Validity::Day);
    let price = f.price(out, "price");
    let trigger_price = f.price(out, "triggerPrice");
    let amo_time = f.choice(out, "amoTime", AmoTime::ACCEPTED, AmoTime::parse);
    let sort_order = match f.number(out, "sort_order") {
        None => u32::MAX,
        Some(n) if n.fract() == 0.0 && (0.0..=1000.0).contains(&n) => n as u32,
        Some(_) => {
            f.problem(out, "sort_order", "must be a whole number from 0 to 1000");
            u32::MAX
        }
    };
    let (option, future_expiry) = parse_option(&f, instrument, out);
    if let Some(order_type) = order_type {
        check_prices(
            order_type,
            price,
            trigger_price,
            (f.path("price"), f.path("triggerPrice")),
            out,
        );
    }

    if out.len() > before {
        return None;
    }
    let order_type = order_type?;
    let leg = LegOrder {
        symbol: symbol?,
        exchange: exchange?,
        side: side?,
        quantity: quantity?,
        order_type,
        product: product?,
        validity,
        // Dhan's UI sends "price":"0" for market orders: zero means "no price".
        price: price.filter(|p| *p > 0.0),
        trigger_price: trigger_price.filter(|p| *p > 0.0),
        instrument,
        option,
        future_expiry,
        symbol_field: f.path("symbol"),
        amo: false,
        amo_time,
    };
    // A missing sort_order sorts after explicit ones; ties keep array order (stable sort).
    Some((sort_order, leg))
}

fn required_choice<T>(
    f: &Fields<'_>,
    out: &mut Vec<FieldProblem>,
    key: &str,
    accepted: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> Option<T> {
    if f.raw(key).is_none() {
        f.problem(out, key, format!("is required; use {accepted}"));
        return None;
    }
    let before = out.len();
    let v = f.choice(out, key, accepted, parse);
    if v.is_none() && out.len() == before {
        f.problem(out, key, format!("is required; use {accepted}"));
    }
    v
}

/// Options need `option_type`, `strike_price` and `expiry_date`; futures may name their
/// `expiry_date` (else the nearest is traded); other instruments must not carry these fields
/// (a stray strike on a future is a template mistake worth knowing about). Returns the option,
/// and a future's expiry.
fn parse_option(
    f: &Fields<'_>,
    instrument: Option<Instrument>,
    out: &mut Vec<FieldProblem>,
) -> (Option<OptionContract>, Option<NaiveDate>) {
    let kind = f.choice(out, "option_type", OptionKind::ACCEPTED, OptionKind::parse);
    let strike = f.price(out, "strike_price").filter(|s| *s > 0.0);
    let expiry = f.text(out, "expiry_date").and_then(|d| {
        let parsed = NaiveDate::parse_from_str(&d, "%Y-%m-%d").ok();
        if parsed.is_none() {
            f.problem(out, "expiry_date", "must be a date like 2026-01-27");
        }
        parsed
    });
    let present = |key: &str| match f.raw(key) {
        Some(Value::String(s)) => !s.trim().is_empty() && s.trim() != "0" && s.trim() != "XX",
        Some(Value::Number(n)) => n.as_f64() != Some(0.0),
        Some(_) => true,
        None => false,
    };
    match instrument {
        Some(Instrument::Option) => {
            if kind.is_none() && f.raw("option_type").is_none() {
                f.problem(
                    out,
                    "option_type",
                    format!("is required for options; use {}", OptionKind::ACCEPTED),
                );
            }
            if strike.is_none() {
                f.problem(
                    out,
                    "strike_price",
                    "is required for options (greater than 0)",
                );
            }
            if expiry.is_none() && f.raw("expiry_date").is_none() {
                f.problem(
                    out,
                    "expiry_date",
                    "is required for options (e.g. 2026-01-27)",
                );
            }
            let option = (|| {
                Some(OptionContract {
                    kind: kind?,
                    strike: strike?,
                    expiry: expiry?,
                })
            })();
            (option, None)
        }
        other => {
            for key in ["option_type", "strike_price"] {
                if present(key) {
                    f.problem(out, key, "only applies when instrument is OPT");
                }
            }
            if other != Some(Instrument::Future) && present("expiry_date") {
                f.problem(
                    out,
                    "expiry_date",
                    "only applies when instrument is FUT or OPT",
                );
            }
            (None, expiry.filter(|_| other == Some(Instrument::Future)))
        }
    }
}
