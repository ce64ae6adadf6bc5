//! Dhan's TradingView alert format (what web.dhan.co's webhook page and the upstream service use):
//!
//! ```json
//! {"secret":"…","alertType":"multi_leg_order","strategy":"…",
//!  "order_legs":[{"transactionType":"B","orderType":"MKT","quantity":"1","exchange":"NSE",
//!                 "symbol":"RELIANCE","instrument":"EQ","productType":"I","sort_order":"1",
//!                 "price":"0","amoTime":"OPEN",
//!                 "meta":{"interval":"{{interval}}","time":"{{time}}","timenow":"{{timenow}}"}}],
//!  "meta":{"interval":"{{interval}}","time":"{{time}}","timenow":"{{timenow}}"}}
//! ```
//!
//! Every alert the upstream Python service accepted is accepted here unless placing it would be
//! unsafe, in which case the refusal names the difference:
//! - `meta` may sit in each leg (the upstream required it there), at the top level, or both;
//! - `instrument` takes `EQ`/`FUT`/`OPT`, the scrip master's `FUTIDX`…`OPTFUT`, and `CE`/`PE`
//!   (an option of that type); a full Dhan trading symbol (`NIFTY-Dec2026-24000-CE`) names its
//!   contract by itself, and must agree with `instrument` and any option fields;
//! - keys the upstream ignored (unknown fields, a `triggerPrice` on a limit order, an unknown
//!   `alertType`, several legs in a `single_order`) are ignored here too and listed as warnings.
//!
//! Unlike the upstream, `sort_order` is honoured, `amoTime` is kept per leg, `triggerPrice` is
//! read, `cancel_order` cancels the open orders dhanhook placed on each leg's instrument, and
//! `manage_position: "EXIT_ALL"` closes each leg's position (the legs name the instruments and
//! products; their side and quantity are not used). Dhan's own meaning of `EXIT_ALL` is not
//! documented: dhanhook never reads it as "exit the whole account", which the kill switch does.

use chrono::NaiveDate;
use serde_json::{Map, Value};

use super::{
    AlertFormat, AmoTime, Exchange, FieldProblem, Instrument, Intent, LegOrder, OptionContract,
    OptionKind, OrderType, Product, Side, Signal, Validity, check_label, check_prices,
    check_symbol, contract, fields::Fields,
};

const TOP_FIELDS: &[&str] = &[
    "secret",
    "alertType",
    "strategy",
    "order_legs",
    "meta",
    "id",
    "when_closed",
    "on_leg_reject",
    "manage_position",
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
    "meta",
];
const META_FIELDS: &[&str] = &["interval", "time", "timenow"];

/// TradingView's `{{interval}}`, `{{time}}` and `{{timenow}}`.
#[derive(Debug, Default)]
struct Meta {
    interval: Option<String>,
    time: Option<String>,
    timenow: Option<String>,
}

/// An alert is in Dhan's format when it has Dhan's top-level fields.
pub(super) fn looks_like_dhan(body: &Map<String, Value>) -> bool {
    body.contains_key("order_legs") || body.contains_key("alertType")
}

pub(super) fn parse(body: &Map<String, Value>) -> Result<Signal, Vec<FieldProblem>> {
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    let top = Fields::new(body, "", TOP_FIELDS);
    top.ignore_unknown(&mut warnings);

    let alert_type = top.required_text(&mut out, "alertType");
    let mut intent = Intent::Orders;
    match alert_type.as_deref() {
        None | Some("single_order" | "multi_leg_order") => {}
        Some("cancel_order") => intent = Intent::Cancel,
        Some(other) => top.problem(
            &mut warnings,
            "alertType",
            format!(
                "'{}' is not one of Dhan's (single_order, multi_leg_order); the legs are placed as orders",
                super::fields::clip(other)
            ),
        ),
    }
    match top.text(&mut out, "manage_position") {
        None => {}
        Some(m) if m.eq_ignore_ascii_case("EXIT_ALL") => {
            if intent == Intent::Cancel {
                top.problem(
                    &mut out,
                    "manage_position",
                    "cannot go with alertType cancel_order: send the exit and the cancel as two alerts",
                );
            }
            intent = Intent::Exit;
        }
        Some(other) => top.problem(
            &mut out,
            "manage_position",
            format!(
                "'{}' is not accepted; use EXIT_ALL (close each leg's position)",
                super::fields::clip(&other)
            ),
        ),
    }
    let strategy = check_label(top.text(&mut out, "strategy"), "strategy", &mut out);
    let id = check_label(top.text(&mut out, "id"), "id", &mut out);
    let when_closed = top.choice(
        &mut out,
        "when_closed",
        "amo, queue or reject",
        crate::domain::WhenClosed::parse,
    );
    let on_leg_reject = top.choice(
        &mut out,
        "on_leg_reject",
        super::OnLegReject::ACCEPTED,
        super::OnLegReject::parse,
    );
    let top_meta = read_meta(&top, &mut out, &mut warnings);

    let mut legs: Vec<(u32, LegOrder)> = Vec::new();
    let mut leg_meta: Option<Meta> = None;
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
                        let f = Fields::new(map, prefix, LEG_FIELDS);
                        // The upstream's template puts the same placeholders in every leg:
                        // the first leg's meta stands for the alert when there is no top one.
                        let meta = read_meta(&f, &mut out, &mut warnings);
                        if leg_meta.is_none() {
                            leg_meta = meta;
                        }
                        if let Some(leg) = parse_leg(&f, &mut out, &mut warnings) {
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
            &mut warnings,
            "order_legs",
            format!(
                "single_order with {} legs: every leg is placed, as for multi_leg_order",
                legs.len()
            ),
        );
    }

    if !out.is_empty() {
        return Err(out);
    }
    let meta = top_meta.or(leg_meta).unwrap_or_default();
    if matches!(intent, Intent::Exit | Intent::Cancel) {
        // An exit or a cancel is about the instrument: the legs' quantities are not used, and
        // must not be refused for not being whole lots.
        for (_, leg) in &mut legs {
            leg.quantity = 0;
        }
    }
    // Stable sort: legs with equal (or missing) sort_order keep their array order.
    legs.sort_by_key(|(order, _)| *order);
    Ok(Signal {
        format: AlertFormat::Dhan,
        alert_type: alert_type.unwrap_or_default(),
        strategy,
        id,
        timenow: meta.timenow,
        interval: meta.interval,
        bar_time: meta.time,
        when_closed,
        legs: legs.into_iter().map(|(_, leg)| leg).collect(),
        on_leg_reject,
        intent,
        warnings,
    })
}

/// The `meta` object of `f` (top level or a leg), if present.
fn read_meta(
    f: &Fields<'_>,
    out: &mut Vec<FieldProblem>,
    warnings: &mut Vec<FieldProblem>,
) -> Option<Meta> {
    let meta = f.object(out, "meta")?;
    let meta = Fields::new(meta, f.path("meta"), META_FIELDS);
    meta.ignore_unknown(warnings);
    Some(Meta {
        interval: meta.text(out, "interval"),
        time: meta.text(out, "time"),
        timenow: meta.text(out, "timenow"),
    })
}

/// Reads one leg. Returns its sort key and the leg, or `None` if any of its fields was wrong
/// (the problems are in `out`).
fn parse_leg(
    f: &Fields<'_>,
    out: &mut Vec<FieldProblem>,
    warnings: &mut Vec<FieldProblem>,
) -> Option<(u32, LegOrder)> {
    let before = out.len();
    if f.raw("manage_position").is_some() {
        // A silent ignore would place the leg as an order, not the exit the sender meant.
        f.problem(
            out,
            "manage_position",
            "belongs at the top level of the alert (it applies to every leg); nothing was placed",
        );
    }
    f.ignore_unknown(warnings);

    let side = required_choice(f, out, "transactionType", Side::ACCEPTED, Side::parse);
    let order_type = required_choice(f, out, "orderType", OrderType::ACCEPTED, OrderType::parse);
    let quantity = f.quantity(out, "quantity");
    let exchange = required_choice(f, out, "exchange", Exchange::ACCEPTED, Exchange::parse);
    let symbol = f
        .required_text(out, "symbol")
        .and_then(|s| check_symbol(&s, &f.path("symbol"), out));
    let (instrument, implied_kind) = instrument(f, out);
    let product = required_choice(f, out, "productType", Product::ACCEPTED, Product::parse);
    let validity = f
        .choice(out, "validity", Validity::ACCEPTED, Validity::parse)
        .unwrap_or(Validity::Day);
    let price = f.price(out, "price");
    let mut trigger_price = f.price(out, "triggerPrice");
    let amo_time = f.choice(out, "amoTime", AmoTime::ACCEPTED, AmoTime::parse);
    let sort_order = match f.number(out, "sort_order") {
        None => u32::MAX,
        Some(n) if n.fract() == 0.0 && (0.0..=1000.0).contains(&n) => n as u32,
        Some(_) => {
            f.problem(out, "sort_order", "must be a whole number from 0 to 1000");
            u32::MAX
        }
    };
    let (option, future_expiry) = parse_option(f, instrument, implied_kind, symbol.as_deref(), out);
    if let Some(order_type) = order_type {
        let trigger_applies = check_prices(
            order_type,
            price,
            trigger_price,
            (f.path("price"), f.path("triggerPrice")),
            out,
            Some(warnings),
        );
        if !trigger_applies {
            trigger_price = None;
        }
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
        quantity_field: f.path("quantity"),
        amo: false,
        amo_time,
        // Dhan's format has no per-leg exit marker (its `manage_position` is refused above).
        closes: false,
    };
    // A missing sort_order sorts after explicit ones; ties keep array order (stable sort).
    Some((sort_order, leg))
}

/// `instrument`, and the option type it implies: `CE`/`PE` (as the upstream documents) mean an
/// option of that type.
fn instrument(
    f: &Fields<'_>,
    out: &mut Vec<FieldProblem>,
) -> (Option<Instrument>, Option<OptionKind>) {
    let Some(text) = f.text(out, "instrument") else {
        return (None, None);
    };
    match text.to_ascii_uppercase().as_str() {
        "CE" => (Some(Instrument::Option), Some(OptionKind::Call)),
        "PE" => (Some(Instrument::Option), Some(OptionKind::Put)),
        upper => {
            let parsed = Instrument::parse(upper);
            if parsed.is_none() {
                f.problem(
                    out,
                    "instrument",
                    format!(
                        "'{}' is not accepted; use {}",
                        super::fields::clip(&text),
                        Instrument::ACCEPTED
                    ),
                );
            }
            (parsed, None)
        }
    }
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

/// What the symbol's text names, for checking it against `instrument` and the option fields.
enum Named {
    /// A plain symbol (`NIFTY`, `RELIANCE`): the fields say which contract.
    Nothing,
    /// A future: `NIFTY-Dec2026-FUT` or `NIFTY1!`.
    Future(Option<contract::DhanContract>),
    /// An option: a Dhan trading symbol (month, maybe a day) or a TradingView ticker (date).
    DhanOption(contract::DhanContract, OptionKind, f64),
    TvOption(NaiveDate, OptionKind, f64),
}

fn named_by(symbol: Option<&str>) -> Named {
    let Some(symbol) = symbol else {
        return Named::Nothing;
    };
    if let Some(c) = contract::dhan_contract(symbol) {
        return match c.option {
            Some((kind, strike)) => Named::DhanOption(c, kind, strike),
            None => Named::Future(Some(c)),
        };
    }
    if contract::continuous_future(symbol).is_some() {
        return Named::Future(None);
    }
    match contract::tradingview_option(symbol) {
        Some((_, expiry, kind, strike)) => Named::TvOption(expiry, kind, strike),
        None => Named::Nothing,
    }
}

/// The option contract and a future's expiry, from `instrument`, `option_type`, `strike_price`,
/// `expiry_date` and what the symbol itself names. Every source that speaks must agree: a
/// silent pick between two different contracts could trade the wrong one.
///
/// - Options need a type, a strike and an expiry, from the fields or the symbol. A Dhan
///   trading symbol names only the month, so weekly options of that month are told apart by
///   `expiry_date` (or, without it, at resolution, where a symbol naming several live contracts
///   is refused).
/// - Futures may name their `expiry_date` (else the nearest is traded).
/// - Other instruments must not carry option fields: a stray strike on a future is a template
///   mistake worth knowing about.
fn parse_option(
    f: &Fields<'_>,
    instrument: Option<Instrument>,
    implied_kind: Option<OptionKind>,
    symbol: Option<&str>,
    out: &mut Vec<FieldProblem>,
) -> (Option<OptionContract>, Option<NaiveDate>) {
    let field_kind = f.choice(out, "option_type", OptionKind::ACCEPTED, OptionKind::parse);
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
    let named = named_by(symbol);
    // Only for messages: clipped like every value an answer repeats.
    let symbol = super::fields::clip(symbol.unwrap_or_default());
    match instrument {
        Some(Instrument::Option) => {
            if let (Some(a), Some(b)) = (field_kind, implied_kind)
                && a != b
            {
                f.problem(
                    out,
                    "option_type",
                    format!("{a} disagrees with instrument {b}"),
                );
            }
            let kind = field_kind.or(implied_kind);
            let (symbol_kind, symbol_strike) = match &named {
                Named::DhanOption(_, k, s) | Named::TvOption(_, k, s) => (Some(*k), Some(*s)),
                Named::Future(_) => {
                    f.problem(
                        out,
                        "symbol",
                        format!("{symbol} is a future, but instrument says an option"),
                    );
                    return (None, None);
                }
                Named::Nothing => (None, None),
            };
            if let (Some(a), Some(b)) = (kind, symbol_kind)
                && a != b
            {
                f.problem(
                    out,
                    "symbol",
                    format!("{symbol} is a {b} option, but the alert says {a}"),
                );
            }
            if let (Some(a), Some(b)) = (strike, symbol_strike)
                && (a - b).abs() > 1e-6
            {
                f.problem(
                    out,
                    "strike_price",
                    format!("{a} disagrees with the symbol's strike {b}"),
                );
            }
            match (&named, expiry) {
                (Named::DhanOption(c, ..), Some(e)) if !c.matches_expiry(e) => f.problem(
                    out,
                    "expiry_date",
                    format!("{e} is not in {}, which {symbol} names", c.expiry_text()),
                ),
                (Named::TvOption(d, ..), Some(e)) if *d != e => f.problem(
                    out,
                    "expiry_date",
                    format!("{e} disagrees with the symbol's expiry {d}"),
                ),
                _ => {}
            }
            match named {
                // The symbol names the contract; an expiry_date only picks among a month's
                // weeklies. Without one, resolution finds the contract by the symbol.
                Named::DhanOption(_, k, s) => (
                    expiry.map(|expiry| OptionContract {
                        kind: k,
                        strike: s,
                        expiry,
                    }),
                    None,
                ),
                Named::TvOption(..) => (None, None),
                _ => {
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
            }
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
            match (other, &named) {
                (Some(Instrument::Future), Named::DhanOption(..) | Named::TvOption(..)) => {
                    f.problem(
                        out,
                        "symbol",
                        format!("{symbol} is an option, but instrument says a future"),
                    );
                }
                (Some(Instrument::Future), Named::Future(Some(c))) => {
                    if let Some(e) = expiry.filter(|e| !c.matches_expiry(*e)) {
                        f.problem(
                            out,
                            "expiry_date",
                            format!("{e} is not in {}, which {symbol} names", c.expiry_text()),
                        );
                    }
                }
                (Some(Instrument::Equity), Named::Future(_))
                | (Some(Instrument::Equity), Named::DhanOption(..) | Named::TvOption(..)) => {
                    f.problem(
                        out,
                        "instrument",
                        format!("EQ, but {symbol} is a derivative contract; use FUT or OPT"),
                    );
                }
                _ => {}
            }
            (None, expiry.filter(|_| other == Some(Instrument::Future)))
        }
    }
}
