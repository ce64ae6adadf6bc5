//! Dhan's live order-update WebSocket (`docs/dhan-api.md` §9): the login frame and the reading
//! of its `order_alert` frames. The connection itself is the feed worker's
//! ([`crate::workers::order_feed`]).
//!
//! The documentation shows PascalCase keys (`OrderNo`, `TradedQty`, …) while the live feed sends
//! camelCase (`orderNo`, `tradedQty`, …) with a Title-case status ("Traded", "Part_Traded"), so
//! keys are matched without regard to case. A frame is turned into the order book's shape
//! ([`OrderRecord`]) so that one mapping ([`crate::broker`]'s) decides what a status means,
//! whichever way Dhan told us.

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value, json};

use super::types::OrderRecord;

/// Dhan's order-update host.
pub const LIVE_URL: &str = "wss://api-order-update.dhan.co";

/// The first frame after connecting. It carries the access token: never log it.
pub fn login_frame(client_id: &str, token: &SecretString) -> SecretString {
    json!({
        "LoginReq": {"MsgCode": 42, "ClientId": client_id, "Token": token.expose_secret()},
        "UserType": "SELF",
    })
    .to_string()
    .into()
}

/// One order's update, as read from an `order_alert` frame.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedUpdate {
    /// The correlationId the order was placed with (`None`: the order carries none, so it is
    /// not one of ours).
    pub correlation_id: Option<String>,
    /// The order in the order book's terms.
    pub record: OrderRecord,
}

/// Reads a text frame. `None` for anything that is not an order update with an order number
/// (other message types, malformed JSON): the feed has nothing to act on in it.
pub fn parse_frame(text: &str) -> Option<FeedUpdate> {
    let frame: Value = serde_json::from_str(text).ok()?;
    let frame = lowercase_keys(frame.as_object()?);
    if frame.get("type")?.as_str()? != "order_alert" {
        return None;
    }
    let data = lowercase_keys(frame.get("data")?.as_object()?);
    let get = |key: &str| data.get(key).cloned().unwrap_or(Value::Null);
    let status = get("status")
        .as_str()
        .map(|s| match s.to_ascii_uppercase().as_str() {
            "PARTTRADED" | "PART TRADED" => "PART_TRADED".to_owned(),
            upper => upper.to_owned(),
        })
        .unwrap_or_default();
    // "0" is the feed's "no exchange order yet"; the order book says "NA".
    let exchange_order = match get("exchorderno") {
        Value::String(s) if s == "0" => Value::Null,
        Value::Number(n) if n.as_u64() == Some(0) => Value::Null,
        other => other,
    };
    let average = match get("avgtradedprice") {
        Value::Null => get("tradedprice"),
        v => v,
    };
    let book_shaped = json!({
        "orderId": get("orderno"),
        "correlationId": get("correlationid"),
        "orderStatus": status,
        "securityId": get("securityid"),
        "quantity": get("quantity"),
        "filledQty": get("tradedqty"),
        "averageTradedPrice": average,
        "omsErrorDescription": get("reasondescription"),
        "exchangeOrderId": exchange_order,
        "exchangeTime": get("exchordertime"),
    });
    let record = OrderRecord::from_json(&book_shaped)?;
    Some(FeedUpdate {
        correlation_id: record.correlation_id.clone(),
        record,
    })
}

fn lowercase_keys(map: &Map<String, Value>) -> Map<String, Value> {
    map.iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_live_camel_case_frame_is_read() {
        let text = json!({"Type": "order_alert", "Data": {
            "orderNo": "112111182045", "status": "Traded", "tradedQty": 10,
            "avgTradedPrice": 1434.5, "correlationId": "DH261130abcdefabcdefL1",
            "exchOrderNo": "1100000012345", "exchOrderTime": "2026-11-30 09:15:02",
            "reasonDescription": "CONFIRMED", "securityId": "2885", "quantity": 10,
        }})
        .to_string();
        let update = parse_frame(&text).unwrap();
        assert_eq!(
            update.correlation_id.as_deref(),
            Some("DH261130abcdefabcdefL1")
        );
        assert_eq!(update.record.order_id, "112111182045");
        assert_eq!(update.record.order_status, "TRADED");
        assert_eq!(update.record.filled_qty, Some(10.0));
        assert_eq!(update.record.average_traded_price, Some(1434.5));
    }

    #[test]
    fn the_documented_pascal_case_frame_is_read_the_same() {
        let text = json!({"Type": "order_alert", "Data": {
            "OrderNo": "9", "Status": "Part_Traded", "TradedQty": "4",
            "AvgTradedPrice": "101.25", "CorrelationId": "DH261130abcdefabcdefL2",
            "ExchOrderNo": "0", "ReasonDescription": "",
        }})
        .to_string();
        let update = parse_frame(&text).unwrap();
        assert_eq!(update.record.order_status, "PART_TRADED");
        assert_eq!(update.record.filled_qty, Some(4.0));
        assert_eq!(update.record.average_traded_price, Some(101.25));
        assert_eq!(update.record.raw["exchangeOrderId"], Value::Null);
        assert_eq!(
            update.correlation_id.as_deref(),
            Some("DH261130abcdefabcdefL2")
        );
    }

    #[test]
    fn other_frames_and_garbage_are_nothing_to_act_on() {
        assert_eq!(parse_frame("not json"), None);
        assert_eq!(parse_frame(r#"{"Type":"heartbeat"}"#), None);
        assert_eq!(
            parse_frame(r#"{"Type":"order_alert","Data":{"status":"Traded"}}"#),
            None
        );
        let foreign =
            parse_frame(r#"{"Type":"order_alert","Data":{"orderNo":"5","status":"Pending"}}"#)
                .unwrap();
        assert_eq!(foreign.correlation_id, None);
    }

    #[test]
    fn the_login_frame_is_dhans_msg_code_42() {
        let frame = login_frame("1000000001", &SecretString::from("fake.jwt.token"));
        let v: Value = serde_json::from_str(frame.expose_secret()).unwrap();
        assert_eq!(v["LoginReq"]["MsgCode"], 42);
        assert_eq!(v["LoginReq"]["ClientId"], "1000000001");
        assert_eq!(v["LoginReq"]["Token"], "fake.jwt.token");
        assert_eq!(v["UserType"], "SELF");
    }
}
