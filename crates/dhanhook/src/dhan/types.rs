//! Request and response shapes of the Dhan calls we make (`dhan-api.md` §2–§4).
//!
//! Requests are typed and omit every field that does not apply (Dhan refuses `""` with
//! DH-905). Responses are read leniently from JSON: Dhan's fields vary between live, sandbox
//! and documentation, numbers sometimes arrive as text, and unknown fields must not break us.

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use secrecy::SecretString;
use serde::Serialize;
use serde_json::Value;

use crate::clock::ist_offset;

/// A token Dhan issued (generateAccessToken, consumeApp-consent, RenewToken).
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub access_token: SecretString,
    /// Dhan's `expiryTime`: IST wall time without an offset, converted to UTC.
    pub expiry_time: Option<DateTime<Utc>>,
}

impl IssuedToken {
    pub(crate) fn from_json(v: &Value) -> Option<Self> {
        // RenewToken has been seen answering `token` instead of `accessToken`.
        let token = str_field(v, "accessToken").or_else(|| str_field(v, "token"))?;
        let expiry_time = str_field(v, "expiryTime")
            .or_else(|| str_field(v, "expiry_time"))
            .and_then(|s| parse_ist(&s));
        Some(Self {
            access_token: SecretString::from(token),
            expiry_time,
        })
    }
}

/// Parses Dhan's IST timestamps: `2026-01-01T09:15:00`, with or without milliseconds, `T` or
/// a space between date and time.
pub fn parse_ist(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    let naive = [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%d/%m/%Y %H:%M",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())?;
    ist_offset()
        .from_local_datetime(&naive)
        .single()
        .map(|t| t.with_timezone(&Utc))
}

/// `GET /v2/profile`, the token check.
#[derive(Debug, Clone)]
pub struct Profile {
    pub dhan_client_id: Option<String>,
    /// `tokenValidity` (IST `DD/MM/YYYY HH:MM`), when present.
    pub token_validity: Option<DateTime<Utc>>,
}

impl Profile {
    pub(crate) fn from_json(v: &Value) -> Self {
        Self {
            dhan_client_id: str_field(v, "dhanClientId"),
            token_validity: str_field(v, "tokenValidity").and_then(|s| parse_ist(&s)),
        }
    }
}

/// `GET /v2/ip/getIP`: the account's whitelisted static IPs, and (undocumented, seen on the
/// wire) the address Dhan sees and whether orders from it are allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticIp {
    pub primary: Option<String>,
    pub secondary: Option<String>,
    pub detected: Option<String>,
    pub orders_allowed: Option<bool>,
}

impl StaticIp {
    pub(crate) fn from_json(v: &Value) -> Self {
        Self {
            primary: str_field(v, "primaryIP"),
            secondary: str_field(v, "secondaryIP"),
            detected: str_field(v, "detectedIP"),
            orders_allowed: v.get("ordersAllowed").and_then(Value::as_bool),
        }
    }

    /// The whitelisted addresses that are set.
    pub fn listed(&self) -> Vec<&str> {
        [&self.primary, &self.secondary]
            .into_iter()
            .filter_map(|ip| ip.as_deref())
            .collect()
    }
}

/// The body of `POST /v2/orders`. `None` fields are left out entirely.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderBody {
    pub dhan_client_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    pub transaction_type: &'static str,
    pub exchange_segment: String,
    pub product_type: &'static str,
    pub order_type: &'static str,
    pub validity: &'static str,
    /// A string, as Dhan requires.
    pub security_id: String,
    /// Units, not lots.
    pub quantity: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger_price: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after_market_order: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amo_time: Option<&'static str>,
}

/// Dhan's immediate answer to an order write: "received", not "executed".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderAck {
    pub order_id: String,
    pub order_status: String,
}

impl OrderAck {
    pub(crate) fn from_json(v: &Value) -> Option<Self> {
        Some(Self {
            order_id: str_field(v, "orderId")?,
            order_status: str_field(v, "orderStatus").unwrap_or_default(),
        })
    }
}

/// One order from the order book or a lookup.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderRecord {
    pub order_id: String,
    pub correlation_id: Option<String>,
    /// TRANSIT, PENDING, PART_TRADED, TRADED, REJECTED, CANCELLED, EXPIRED.
    pub order_status: String,
    pub security_id: Option<String>,
    pub quantity: Option<f64>,
    pub filled_qty: Option<f64>,
    pub average_traded_price: Option<f64>,
    /// Only an error when the status is REJECTED, CANCELLED or EXPIRED ("CONFIRMED" otherwise).
    pub oms_error_description: Option<String>,
    /// The whole object as Dhan sent it.
    pub raw: Value,
}

impl OrderRecord {
    pub(crate) fn from_json(v: &Value) -> Option<Self> {
        Some(Self {
            order_id: str_field(v, "orderId")?,
            correlation_id: str_field(v, "correlationId").filter(|c| c != "NA"),
            order_status: str_field(v, "orderStatus").unwrap_or_default(),
            security_id: str_field(v, "securityId"),
            quantity: num_field(v, "quantity"),
            filled_qty: num_field(v, "filledQty"),
            average_traded_price: num_field(v, "averageTradedPrice"),
            oms_error_description: str_field(v, "omsErrorDescription")
                .filter(|s| s != "NA" && !s.is_empty()),
            raw: v.clone(),
        })
    }
}

/// A text field that may arrive as a string or a number; empty strings count as absent.
pub(crate) fn str_field(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A numeric field that may arrive as a number or as text.
pub(crate) fn num_field(v: &Value, key: &str) -> Option<f64> {
    match v.get(key)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn expiry_time_is_ist_without_offset() {
        let t = parse_ist("2026-01-01T09:15:00.000").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-01-01T03:45:00+00:00");
        assert_eq!(
            parse_ist("2025-09-23T12:37:23").unwrap().to_rfc3339(),
            "2025-09-23T07:07:23+00:00"
        );
        assert_eq!(
            parse_ist("30/03/2026 15:37").unwrap().to_rfc3339(),
            "2026-03-30T10:07:00+00:00"
        );
        assert_eq!(parse_ist("soon"), None);
    }

    #[test]
    fn order_bodies_leave_out_what_does_not_apply() {
        let body = OrderBody {
            dhan_client_id: "1000000001".to_owned(),
            correlation_id: Some("DH261201abcL1".to_owned()),
            transaction_type: "BUY",
            exchange_segment: "NSE_EQ".to_owned(),
            product_type: "INTRADAY",
            order_type: "MARKET",
            validity: "DAY",
            security_id: "2885".to_owned(),
            quantity: 1,
            price: None,
            trigger_price: None,
            after_market_order: None,
            amo_time: None,
        };
        let v = serde_json::to_value(&body).unwrap();
        assert_eq!(
            v,
            json!({"dhanClientId":"1000000001","correlationId":"DH261201abcL1","transactionType":"BUY",
                   "exchangeSegment":"NSE_EQ","productType":"INTRADAY","orderType":"MARKET","validity":"DAY",
                   "securityId":"2885","quantity":1})
        );
    }

    #[test]
    fn order_records_are_read_leniently() {
        let r = OrderRecord::from_json(&json!({"orderId": 112111182198_u64, "orderStatus":"TRADED",
            "correlationId":"NA","filledQty":"5","averageTradedPrice":2500.5,"omsErrorDescription":"NA"}))
        .unwrap();
        assert_eq!(r.order_id, "112111182198");
        assert_eq!(r.correlation_id, None);
        assert_eq!(r.filled_qty, Some(5.0));
        assert_eq!(r.average_traded_price, Some(2500.5));
        assert_eq!(r.oms_error_description, None);
        assert!(OrderRecord::from_json(&json!({"orderStatus":"TRADED"})).is_none());
    }

    #[test]
    fn issued_tokens_accept_both_field_names() {
        use secrecy::ExposeSecret;
        let a = IssuedToken::from_json(
            &json!({"accessToken":"a.b.c","expiryTime":"2026-01-01T09:15:00"}),
        )
        .unwrap();
        assert_eq!(a.access_token.expose_secret(), "a.b.c");
        assert!(a.expiry_time.is_some());
        let b = IssuedToken::from_json(&json!({"token":"x.y.z"})).unwrap();
        assert_eq!(b.access_token.expose_secret(), "x.y.z");
        assert!(IssuedToken::from_json(&json!({"status":"error"})).is_none());
    }
}
