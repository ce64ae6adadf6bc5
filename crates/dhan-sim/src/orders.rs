//! Order requests: Dhan's validation of `POST /v2/orders` (dhan-api.md §3.1) and the
//! order-book record the simulator keeps for each accepted order.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::ApiError;

pub(crate) const TRANSACTION_TYPES: &[&str] = &["BUY", "SELL"];
pub(crate) const EXCHANGE_SEGMENTS: &[&str] = &[
    "NSE_EQ",
    "NSE_FNO",
    "NSE_CURRENCY",
    "BSE_EQ",
    "BSE_FNO",
    "BSE_CURRENCY",
    "MCX_COMM",
];
pub(crate) const PRODUCT_TYPES: &[&str] = &["CNC", "INTRADAY", "MARGIN", "MTF", "CO", "BO"];
pub(crate) const ORDER_TYPES: &[&str] = &["LIMIT", "MARKET", "STOP_LOSS", "STOP_LOSS_MARKET"];
pub(crate) const VALIDITIES: &[&str] = &["DAY", "IOC"];
pub(crate) const AMO_TIMES: &[&str] = &["PRE_OPEN", "OPEN", "OPEN_30", "OPEN_60"];

/// Longest `correlationId` Dhan accepts (measured in the sandbox; the docs say 30).
pub(crate) const CORRELATION_ID_MAX: usize = 25;

/// Largest quantity accepted in one order.
pub(crate) const MAX_QUANTITY: u64 = 1_000_000_000;

/// One order as the simulator holds it: what was sent and where it is in its life.
#[derive(Clone, Debug, Serialize)]
pub struct SimOrder {
    /// Dhan's order id, a numeric string.
    pub order_id: String,
    /// The `correlationId` the client sent, if any.
    pub correlation_id: Option<String>,
    /// TRANSIT, PENDING, PART_TRADED, TRADED, REJECTED, CANCELLED or EXPIRED.
    pub status: String,
    /// The request body exactly as received.
    pub body: serde_json::Value,
    /// When the order was accepted (sim clock).
    pub created_at: DateTime<Utc>,
    /// When the status last changed (sim clock).
    pub updated_at: DateTime<Utc>,
    /// The rejection reason for REJECTED orders (shown as "CONFIRMED" in the book otherwise).
    pub oms_error_description: Option<String>,
    /// The exchange's order id, once the order has left TRANSIT and reached the exchange.
    pub exchange_order_id: Option<String>,
    /// Quantity traded so far.
    pub filled_qty: u64,
    /// Average traded price (0 until traded).
    pub average_traded_price: f64,
}

/// The validated, typed fields of an order request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OrderSpec {
    pub(crate) transaction_type: String,
    pub(crate) exchange_segment: String,
    pub(crate) product_type: String,
    pub(crate) order_type: String,
    pub(crate) validity: String,
    pub(crate) security_id: String,
    pub(crate) quantity: u64,
    pub(crate) disclosed_quantity: u64,
    pub(crate) price: f64,
    pub(crate) trigger_price: f64,
    pub(crate) after_market_order: bool,
    pub(crate) amo_time: Option<String>,
    pub(crate) correlation_id: Option<String>,
    pub(crate) bo_profit_value: f64,
    pub(crate) bo_stop_loss_value: f64,
}

impl OrderSpec {
    pub(crate) fn is_buy(&self) -> bool {
        self.transaction_type == "BUY"
    }
}

fn is_missing(obj: &Map<String, Value>, field: &str) -> bool {
    matches!(obj.get(field), None | Some(Value::Null))
}

fn required_enum(
    obj: &Map<String, Value>,
    field: &str,
    allowed: &[&str],
) -> Result<String, ApiError> {
    match obj.get(field) {
        None | Some(Value::Null) => Err(ApiError::input(format!("{field} is required"))),
        Some(Value::String(s)) if allowed.contains(&s.as_str()) => Ok(s.clone()),
        Some(Value::String(s)) => Err(ApiError::input(format!("Invalid {field}: {s}"))),
        Some(_) => Err(ApiError::input(format!("Invalid {field}"))),
    }
}

/// An optional JSON number; a string such as "100" is refused because Dhan wants numbers.
fn optional_number(obj: &Map<String, Value>, field: &str) -> Result<Option<f64>, ApiError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(x) if x.is_finite() && x >= 0.0 => Ok(Some(x)),
            _ => Err(ApiError::input(format!("{field} must not be negative"))),
        },
        Some(_) => Err(ApiError::input(format!("{field} must be a number"))),
    }
}

/// An optional non-negative JSON integer.
fn optional_count(obj: &Map<String, Value>, field: &str) -> Result<Option<u64>, ApiError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| ApiError::input(format!("{field} must be a non-negative integer"))),
    }
}

fn valid_correlation_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == ' ' || c == '_' || c == '-'
}

/// Validates a place-order body the way Dhan does, in a fixed order so each malformed
/// request gets one predictable DH-905 message.
pub(crate) fn validate_order(body: &Value, client_id: &str) -> Result<OrderSpec, ApiError> {
    let Some(obj) = body.as_object() else {
        return Err(ApiError::input(
            "Invalid request body: expected a JSON object",
        ));
    };

    // Dhan's own sample sends "" for unused fields and live refuses exactly that
    // (dhan-api.md §3.1), so an empty string anywhere is an error before anything else.
    if let Some((field, _)) = obj.iter().find(|(_, v)| v.as_str() == Some("")) {
        return Err(ApiError::input(format!("{field} must not be empty")));
    }

    match obj.get("dhanClientId") {
        None | Some(Value::Null) => return Err(ApiError::input("dhanClientId is required")),
        Some(Value::String(s)) if s == client_id => {}
        Some(_) => return Err(ApiError::input("Invalid dhanClientId")),
    }

    let transaction_type = required_enum(obj, "transactionType", TRANSACTION_TYPES)?;
    let exchange_segment = required_enum(obj, "exchangeSegment", EXCHANGE_SEGMENTS)?;
    let product_type = required_enum(obj, "productType", PRODUCT_TYPES)?;
    let order_type = required_enum(obj, "orderType", ORDER_TYPES)?;
    let validity = required_enum(obj, "validity", VALIDITIES)?;

    let security_id = match obj.get("securityId") {
        None | Some(Value::Null) => return Err(ApiError::input("securityId is required")),
        Some(Value::String(s)) if s.bytes().all(|b| b.is_ascii_digit()) => s.clone(),
        Some(Value::String(s)) => return Err(ApiError::input(format!("Invalid securityId: {s}"))),
        Some(_) => return Err(ApiError::input("securityId must be a string")),
    };

    if is_missing(obj, "quantity") {
        return Err(ApiError::input("quantity is required"));
    }
    let quantity = obj
        .get("quantity")
        .and_then(Value::as_u64)
        .filter(|q| *q > 0)
        .ok_or_else(|| ApiError::input("quantity must be a positive integer"))?;
    // A cap far above any exchange freeze limit keeps the book's arithmetic in range.
    if quantity > MAX_QUANTITY {
        return Err(ApiError::input("quantity exceeds the maximum allowed"));
    }

    let disclosed_quantity = optional_count(obj, "disclosedQuantity")?.unwrap_or(0);
    // Dhan: a disclosed quantity, when used, must be more than 30 % of the order.
    if disclosed_quantity > 0
        && (disclosed_quantity > quantity
            || disclosed_quantity.saturating_mul(10) < quantity.saturating_mul(3))
    {
        return Err(ApiError::input(
            "disclosedQuantity must be between 30% and 100% of quantity",
        ));
    }

    let price = optional_number(obj, "price")?.unwrap_or(0.0);
    if matches!(order_type.as_str(), "LIMIT" | "STOP_LOSS") && price <= 0.0 {
        return Err(ApiError::input(
            "price must be greater than 0 for LIMIT and STOP_LOSS orders",
        ));
    }
    let trigger_price = optional_number(obj, "triggerPrice")?.unwrap_or(0.0);
    if matches!(order_type.as_str(), "STOP_LOSS" | "STOP_LOSS_MARKET") && trigger_price <= 0.0 {
        return Err(ApiError::input(
            "triggerPrice must be greater than 0 for STOP_LOSS and STOP_LOSS_MARKET orders",
        ));
    }

    let correlation_id = match obj.get("correlationId") {
        None | Some(Value::Null) => None,
        Some(Value::String(s))
            if s.chars().count() <= CORRELATION_ID_MAX && s.chars().all(valid_correlation_char) =>
        {
            Some(s.clone())
        }
        Some(_) => {
            return Err(ApiError::input(format!(
                "correlationId must be at most {CORRELATION_ID_MAX} characters of letters, digits, space, '_' or '-'"
            )));
        }
    };

    let after_market_order = match obj.get("afterMarketOrder") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(ApiError::input("afterMarketOrder must be a boolean")),
    };
    let amo_time = match obj.get("amoTime") {
        None | Some(Value::Null) => None,
        Some(_) if !after_market_order => {
            return Err(ApiError::input(
                "amoTime is allowed only when afterMarketOrder is true",
            ));
        }
        Some(Value::String(s)) if AMO_TIMES.contains(&s.as_str()) => Some(s.clone()),
        Some(Value::String(s)) => return Err(ApiError::input(format!("Invalid amoTime: {s}"))),
        Some(_) => return Err(ApiError::input("Invalid amoTime")),
    };
    if after_market_order && amo_time.is_none() {
        return Err(ApiError::input(
            "amoTime is required when afterMarketOrder is true",
        ));
    }

    let bo_profit_value = optional_number(obj, "boProfitValue")?.unwrap_or(0.0);
    let bo_stop_loss_value = optional_number(obj, "boStopLossValue")?.unwrap_or(0.0);
    if product_type == "BO" && (bo_profit_value <= 0.0 || bo_stop_loss_value <= 0.0) {
        return Err(ApiError::input(
            "boProfitValue and boStopLossValue are required for BO orders",
        ));
    }

    Ok(OrderSpec {
        transaction_type,
        exchange_segment,
        product_type,
        order_type,
        validity,
        security_id,
        quantity,
        disclosed_quantity,
        price,
        trigger_price,
        after_market_order,
        amo_time,
        correlation_id,
        bo_profit_value,
        bo_stop_loss_value,
    })
}

/// A readable symbol for a security id; a few well-known NSE ids get their real names.
pub(crate) fn trading_symbol(security_id: &str) -> String {
    match security_id {
        "2885" => "RELIANCE".into(),
        "1333" => "HDFCBANK".into(),
        "11536" => "TCS".into(),
        "1594" => "INFY".into(),
        other => format!("SIM{other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> Value {
        json!({
            "dhanClientId": "1000000001",
            "transactionType": "BUY",
            "exchangeSegment": "NSE_EQ",
            "productType": "INTRADAY",
            "orderType": "MARKET",
            "validity": "DAY",
            "securityId": "2885",
            "quantity": 1
        })
    }

    #[test]
    fn minimal_market_order_is_valid() {
        let spec = validate_order(&base(), "1000000001").unwrap();
        assert_eq!(spec.quantity, 1);
        assert_eq!(spec.security_id, "2885");
        assert!(!spec.after_market_order);
    }

    #[test]
    fn non_object_bodies_are_refused() {
        for body in [json!([]), json!("x"), json!(null), json!(1)] {
            let err = validate_order(&body, "1000000001").unwrap_err();
            assert_eq!(err.status, 400);
            assert_eq!(err.body["errorCode"], "DH-905");
        }
    }

    #[test]
    fn correlation_id_limits() {
        let mut ok = base();
        ok["correlationId"] = json!("a".repeat(25));
        assert!(validate_order(&ok, "1000000001").is_ok());
        let mut spaces = base();
        spaces["correlationId"] = json!("tv alert_1-2");
        assert!(validate_order(&spaces, "1000000001").is_ok());
        let mut long = base();
        long["correlationId"] = json!("a".repeat(26));
        assert!(validate_order(&long, "1000000001").is_err());
        let mut bad = base();
        bad["correlationId"] = json!("tv/1");
        assert!(validate_order(&bad, "1000000001").is_err());
    }

    #[test]
    fn huge_or_fractional_quantities_are_refused() {
        for q in [
            json!(0),
            json!(-1),
            json!(1.5),
            json!("1"),
            json!(1e30),
            json!(u64::MAX),
        ] {
            let mut body = base();
            body["quantity"] = q.clone();
            let err = validate_order(&body, "1000000001").unwrap_err();
            assert_eq!(err.status, 400, "{q}");
        }
    }
}
