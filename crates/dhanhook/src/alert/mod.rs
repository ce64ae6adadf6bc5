//! Alerts: the two JSON formats TradingView can send us, parsed into one validated [`Signal`].
//!
//! - **Dhan's TradingView format** ([`dhan_format`]): what Dhan's web UI generates and the upstream
//!   Python service accepts: `alertType`, `order_legs[]` with short codes (`B`/`S`, `MKT`, `C`/`I`/`M`).
//! - **dhanhook's flat format** ([`flat`]): one order per alert with readable names (`action`,
//!   `order_type`, `product`), easier to write by hand in TradingView.
//!
//! Parsing is strict ("parse, don't validate"): the rest of the service only ever sees a
//! [`Signal`], whose fields are already checked (positive whole quantities, prices where the
//! order type needs them, known enums). Everything wrong with an alert is reported at once as a
//! list of [`FieldProblem`]s. The `secret` field is read by the HTTP layer before this module
//! runs and is never part of a [`Signal`].

pub mod contract;
mod dhan_format;
mod fields;
mod flat;
mod strict;

pub use fields::clip;
pub use strict::first_duplicate_key;

pub use crate::domain::{
    AmoTime, Exchange, Instrument, OnLegReject, OptionKind, OrderType, Product, Side, Validity,
    WhenClosed,
};

use chrono::NaiveDate;
use serde::Serialize;
use serde_json::{Map, Value};

/// One thing wrong with an alert, as returned in a 422 body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldProblem {
    pub field: String,
    pub problem: String,
}

/// Which format an alert was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertFormat {
    Dhan,
    Flat,
}

impl AlertFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertFormat::Dhan => "dhan",
            AlertFormat::Flat => "flat",
        }
    }
}

/// A validated alert: one or more order legs to run in order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Signal {
    pub format: AlertFormat,
    /// Dhan's `alertType` (`single_order`, `multi_leg_order`), or `flat` for our own format.
    pub alert_type: String,
    pub strategy: Option<String>,
    /// An explicit id from the sender: with `strategy`, the dedupe key.
    pub id: Option<String>,
    /// TradingView's `{{timenow}}` (fire time), part of the dedupe hash when present.
    pub timenow: Option<String>,
    /// TradingView's `{{interval}}` and `{{time}}` (Dhan format `meta`), kept for the journal.
    pub interval: Option<String>,
    pub bar_time: Option<String>,
    /// Overrides `WHEN_CLOSED` for this alert (`when_closed`, or the flat format's `amo: true`).
    pub when_closed: Option<WhenClosed>,
    /// Never empty; already in execution order (Dhan's `sort_order`, then array order).
    pub legs: Vec<LegOrder>,
    /// `on_leg_reject`: overrides `ON_LEG_REJECT` for this alert. Left out of the serialised
    /// form when absent, so the dedupe hash of alerts without it is unchanged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_leg_reject: Option<OnLegReject>,
    /// Orders as written, or a position to reach, or a cancel (see [`Intent`]). Left out of
    /// the serialised form for plain orders, so their dedupe hashes stay what they were.
    #[serde(skip_serializing_if = "Intent::is_orders")]
    pub intent: Intent,
    /// What the alert carried that was accepted but ignored, as the upstream Python service
    /// ignored it (an unknown field, a trigger price on a limit order): returned in the answer
    /// so the sender can tidy the template. Not part of the alert's identity (dedupe).
    #[serde(skip)]
    pub warnings: Vec<FieldProblem>,
}

/// What an alert asks for. Anything but [`Intent::Orders`] is about each leg's instrument and
/// product as a whole, and is worked out against the broker's positions by
/// `pipeline::positions` before anything is journaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Intent {
    /// Place the legs as written (the default).
    Orders,
    /// Bring each leg's net position to a target: the leg's side is the direction (BUY
    /// long, SELL short), its quantity the size; a quantity of 0 means flat.
    Target,
    /// Close each leg's position (target 0); the leg's side and quantity are not used.
    Exit,
    /// Flip each leg's position to the other side: to the same size, or to the leg's
    /// quantity when it is not 0. A flat position stays flat.
    Reverse,
    /// Cancel the open orders dhanhook placed on each leg's instrument.
    Cancel,
}

impl Intent {
    /// Plain orders (the default).
    pub fn is_orders(&self) -> bool {
        *self == Intent::Orders
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Intent::Orders => "orders",
            Intent::Target => "target",
            Intent::Exit => "exit",
            Intent::Reverse => "reverse",
            Intent::Cancel => "cancel",
        }
    }
}

/// One order as the alert asked for it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LegOrder {
    /// Upper-case trading symbol as TradingView sent it (`RELIANCE`, `NIFTY1!`, `M&M`).
    pub symbol: String,
    pub exchange: Exchange,
    pub side: Side,
    /// As sent (units for equity; lots-to-units conversion comes with instrument resolution).
    pub quantity: u32,
    pub order_type: OrderType,
    pub product: Product,
    pub validity: Validity,
    /// Limit price: present (and > 0) for LIMIT and STOP_LOSS; for MARKET, the alert's price
    /// (e.g. `{{close}}`) if it sent one, used as the paper fill price.
    pub price: Option<f64>,
    /// Present (and > 0) for STOP_LOSS and STOP_LOSS_MARKET, absent otherwise.
    pub trigger_price: Option<f64>,
    pub instrument: Option<Instrument>,
    pub option: Option<OptionContract>,
    /// The alert field that named the symbol (`symbol`, `order_legs[1].symbol`), for messages
    /// about this leg. Not part of the order's identity.
    #[serde(skip)]
    pub symbol_field: String,
    /// The alert field that gave the quantity, likewise.
    #[serde(skip)]
    pub quantity_field: String,
    /// A future's expiry when the alert names it (Dhan format `expiry_date` with `FUT`);
    /// otherwise futures resolve to the nearest expiry.
    pub future_expiry: Option<NaiveDate>,
    /// The alert explicitly asked for an after-market order.
    pub amo: bool,
    /// The AMO timing to use if this leg is placed as an AMO.
    pub amo_time: Option<AmoTime>,
    /// This leg moves a position towards flat without crossing it, as `pipeline::positions`
    /// worked it out from a position-aware alert: an exit, which the kill switch and the entry
    /// window let through (`pipeline::controls::is_exit`). False as parsed. Left out of the
    /// serialised form when false, so existing dedupe hashes are unchanged.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub closes: bool,
}

/// The option a leg trades (Dhan format fields `option_type`, `strike_price`, `expiry_date`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OptionContract {
    pub kind: OptionKind,
    pub strike: f64,
    pub expiry: NaiveDate,
}

/// Longest accepted `strategy` and `id`: both go into the dedupe key and the journal.
const MAX_LABEL_LEN: usize = 100;
/// Most legs in one alert. Dhan's UI builds a handful; anything near this is a mistake.
const MAX_LEGS: usize = 20;

/// Parses an alert body (already known to be a JSON object carrying the right secret).
///
/// # Errors
/// Every problem found, each naming its field (for example `quantity` or
/// `order_legs[0].orderType`).
pub fn parse_signal(body: &Map<String, Value>) -> Result<Signal, Vec<FieldProblem>> {
    let signal = if dhan_format::looks_like_dhan(body) {
        dhan_format::parse(body)
    } else {
        flat::parse(body)
    }?;
    let problems = position_problems(&signal);
    if problems.is_empty() {
        Ok(signal)
    } else {
        Err(problems)
    }
}

/// Position-aware alerts work on intraday and margin products only: a delivery (CNC/MTF)
/// position mixes in shares bought outside the strategy (holdings), and "flat" would sell
/// them. Refused with the leg's product field named.
pub fn position_problems(signal: &Signal) -> Vec<FieldProblem> {
    if !matches!(
        signal.intent,
        Intent::Target | Intent::Exit | Intent::Reverse
    ) {
        return Vec::new();
    }
    signal
        .legs
        .iter()
        .filter(|l| matches!(l.product, Product::Delivery | Product::Mtf))
        .map(|l| FieldProblem {
            field: if l.symbol_field == "symbol" {
                "product".to_owned()
            } else {
                l.symbol_field.replace(".symbol", ".productType")
            },
            problem: format!(
                "{} cannot be used with a position, exit or reverse: a delivery position includes holdings bought outside the strategy. Use intraday or margin, or plain buy/sell orders; nothing was placed",
                l.product
            ),
        })
        .collect()
}

/// The rule shared by both formats: the prices each order type needs.
/// `price_field` and `trigger_field` are the full names of those fields in the alert's format.
/// A trigger price on an order type that takes none is a problem in the strict flat format; in
/// Dhan's format (where the upstream service ignored it) it is a warning, and `false` is
/// returned so the caller drops it.
fn check_prices(
    order_type: OrderType,
    price: Option<f64>,
    trigger_price: Option<f64>,
    (price_field, trigger_field): (String, String),
    out: &mut Vec<FieldProblem>,
    warnings: Option<&mut Vec<FieldProblem>>,
) -> bool {
    let positive = |v: Option<f64>| v.is_some_and(|p| p > 0.0);
    if matches!(order_type, OrderType::Limit | OrderType::StopLoss) && !positive(price) {
        out.push(FieldProblem {
            field: price_field,
            problem: "must be greater than 0 for LIMIT and SL orders".to_owned(),
        });
    }
    let needs_trigger = matches!(order_type, OrderType::StopLoss | OrderType::StopLossMarket);
    if needs_trigger && !positive(trigger_price) {
        out.push(FieldProblem {
            field: trigger_field,
            problem: "is required (greater than 0) for SL and SL-M orders".to_owned(),
        });
    } else if !needs_trigger && positive(trigger_price) {
        match warnings {
            Some(warnings) => warnings.push(FieldProblem {
                field: trigger_field,
                problem: format!("only applies to SL and SL-M orders; ignored for {order_type}"),
            }),
            None => out.push(FieldProblem {
                field: trigger_field,
                problem: "only applies to SL and SL-M orders".to_owned(),
            }),
        }
        return false;
    }
    true
}

/// Checks `strategy` or `id`: short, printable text.
fn check_label(value: Option<String>, field: &str, out: &mut Vec<FieldProblem>) -> Option<String> {
    let v = value?;
    if v.chars().count() > MAX_LABEL_LEN || v.chars().any(char::is_control) {
        out.push(FieldProblem {
            field: field.to_owned(),
            problem: format!("must be printable text of at most {MAX_LABEL_LEN} characters"),
        });
        return None;
    }
    Some(v)
}

/// Checks a trading symbol and upper-cases it. TradingView tickers use letters, digits and a
/// few marks (`M&M`, `BAJAJ-AUTO`, `NIFTY1!`); anything else is a broken template.
fn check_symbol(raw: &str, field: &str, out: &mut Vec<FieldProblem>) -> Option<String> {
    let ok = !raw.is_empty()
        && raw.len() <= 64
        && raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "&-_.!".contains(c));
    if ok {
        Some(raw.to_ascii_uppercase())
    } else {
        out.push(FieldProblem {
            field: field.to_owned(),
            problem: format!(
                "'{}' is not a trading symbol (letters, digits and & - _ . ! only)",
                fields::clip(raw)
            ),
        });
        None
    }
}

#[cfg(test)]
mod tests;
