//! The live order-update WebSocket (dhan-api.md §9), standing in for
//! `wss://api-order-update.dhan.co`, served as `ws://…/order-update` on the sim listener.
//!
//! Protocol as simulated:
//! - The client's first text frame must be
//!   `{"LoginReq":{"MsgCode":42,"ClientId":"…","Token":"<JWT>"},"UserType":"SELF"}`,
//!   within [`LOGIN_TIMEOUT`]. The docs do not say what a bad login gets; the simulator
//!   closes the connection with a close frame (1008, "Invalid Authentication") and sends
//!   nothing else, which is what a client has to handle anyway. The token must be the
//!   account's active token (the same check as the REST host), `ClientId` the account's.
//! - No acknowledgement frame follows a good login (none is documented). Tests that need
//!   to know the login has been processed wait on `SimHandle::order_update_clients`.
//! - After login, every status change of every order on the account is sent as
//!   `{"Type":"order_alert","Data":{…}}`. `Data` is camelCase with a Title-case `status`
//!   ("Transit", "Pending", "Part_Traded", "Traded", "Rejected", "Cancelled", "Expired"),
//!   as the live feed sends; the `order_update_pascal_case` option sends the documented
//!   PascalCase keys instead (same values).
//! - A drop (`SimHandle::drop_order_update_connections`) ends the TCP connection without
//!   a close frame, as a network drop would. While feed connections are refused, the
//!   upgrade request gets a 503 and no WebSocket.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::FromRequestParts as _;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use serde_json::{Map, Value, json};
use tokio::sync::broadcast::error::RecvError;

use crate::state::Shared;

/// How long a new connection may take to send its login frame.
pub(crate) const LOGIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Answers the upgrade request on `/order-update` and serves the socket on its own task.
pub(crate) async fn upgrade(
    shared: Arc<Shared>,
    mut parts: hyper::http::request::Parts,
) -> (u16, Response<Full<Bytes>>) {
    if shared.lock().feed_refused {
        return (503, plain(503, "order update service unavailable"));
    }
    let Ok(ws) = WebSocketUpgrade::from_request_parts(&mut parts, &()).await else {
        return (400, plain(400, "expected a WebSocket upgrade"));
    };
    let response = ws.on_upgrade(move |socket| session(shared, socket));
    let (head, _) = response.into_parts();
    (
        head.status.as_u16(),
        Response::from_parts(head, Full::new(Bytes::new())),
    )
}

fn plain(status: u16, text: &'static str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *resp.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::BAD_REQUEST);
    resp
}

/// Counts a logged-in connection for as long as it lives.
struct ClientCount<'a>(&'a Shared);

impl Drop for ClientCount<'_> {
    fn drop(&mut self) {
        self.0.feed_clients.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn session(shared: Arc<Shared>, mut socket: WebSocket) {
    let mut drops = shared.feed_drop.subscribe();
    let login = tokio::time::timeout(LOGIN_TIMEOUT, socket.recv()).await;
    let accepted = match login {
        Ok(Some(Ok(Message::Text(text)))) => login_ok(&shared, text.as_str()),
        _ => false,
    };
    if !accepted {
        let close = CloseFrame {
            code: 1008,
            reason: "Invalid Authentication".into(),
        };
        let _ = socket.send(Message::Close(Some(close))).await;
        return;
    }
    let mut events = shared.events.subscribe();
    shared.feed_clients.fetch_add(1, Ordering::SeqCst);
    let _count = ClientCount(&shared);
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(row) => {
                    let pascal = shared.lock().feed_pascal_case;
                    let frame = json!({"Type": "order_alert", "Data": alert_data(&row, pascal)});
                    if socket.send(Message::Text(frame.to_string().into())).await.is_err() {
                        return;
                    }
                }
                // A client this far behind has missed updates either way; it must poll.
                Err(RecvError::Lagged(_)) => return,
                Err(RecvError::Closed) => return,
            },
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            },
            // Dropping the socket ends the TCP connection with no close frame.
            _ = drops.changed() => return,
        }
    }
}

fn login_ok(shared: &Shared, text: &str) -> bool {
    let Ok(frame) = serde_json::from_str::<Value>(text) else {
        return false;
    };
    let login = &frame["LoginReq"];
    if login["MsgCode"].as_u64() != Some(42)
        || login["ClientId"].as_str() != Some(shared.config.client_id.as_str())
    {
        return false;
    }
    shared.lock().check_token(login["Token"].as_str()).is_ok()
}

/// Order-book status → the feed's Title-case status.
fn title_status(status: &str) -> String {
    status
        .split('_')
        .map(|word| {
            let lower = word.to_ascii_lowercase();
            let mut chars = lower.chars();
            chars.next().map_or_else(String::new, |c| {
                c.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect::<Vec<_>>()
        .join("_")
}

/// The feed's one-letter product codes (PYSDK `orderupdate.py`).
fn product_code(product: &str) -> &'static str {
    match product {
        "CNC" => "C",
        "INTRADAY" => "I",
        "MARGIN" => "M",
        "MTF" => "F",
        "CO" => "V",
        "BO" => "B",
        _ => "",
    }
}

fn order_type_code(order_type: &str) -> &'static str {
    match order_type {
        "LIMIT" => "LMT",
        "MARKET" => "MKT",
        "STOP_LOSS" => "SL",
        "STOP_LOSS_MARKET" => "SLM",
        _ => "",
    }
}

/// The `Data` object of an `order_alert` built from an order-book row.
pub(crate) fn alert_data(row: &Value, pascal: bool) -> Value {
    let s = |k: &str| row[k].as_str().unwrap_or_default().to_owned();
    let segment = s("exchangeSegment");
    let (exchange, seg) = segment.split_once('_').unwrap_or((segment.as_str(), ""));
    let data = json!({
        "exchange": exchange,
        "segment": match seg {
            "EQ" => "E",
            "FNO" => "D",
            "CURRENCY" => "C",
            "COMM" => "M",
            _ => "",
        },
        "source": "P",
        "securityId": s("securityId"),
        "clientId": s("dhanClientId"),
        "exchOrderNo": if s("exchangeOrderId") == "NA" { "0".to_owned() } else { s("exchangeOrderId") },
        "orderNo": s("orderId"),
        "product": product_code(&s("productType")),
        "txnType": if s("transactionType") == "BUY" { "B" } else { "S" },
        "orderType": order_type_code(&s("orderType")),
        "validity": s("validity"),
        "quantity": row["quantity"],
        "tradedQty": row["filledQty"],
        "remainingQuantity": row["remainingQuantity"],
        "price": row["price"],
        "triggerPrice": row["triggerPrice"],
        "tradedPrice": row["averageTradedPrice"],
        "avgTradedPrice": row["averageTradedPrice"],
        "offMktFlag": if row["afterMarketOrder"] == true { "1" } else { "0" },
        "orderDateTime": s("createTime"),
        "exchOrderTime": s("exchangeTime"),
        "lastUpdatedTime": s("updateTime"),
        "status": title_status(&s("orderStatus")),
        "symbol": s("tradingSymbol"),
        "displayName": s("tradingSymbol"),
        "correlationId": s("correlationId"),
        "reasonDescription": s("omsErrorDescription"),
        "legNo": 1,
    });
    if !pascal {
        return data;
    }
    let Value::Object(map) = data else {
        return data;
    };
    let pascal_map: Map<String, Value> = map
        .into_iter()
        .map(|(k, v)| {
            let mut chars = k.chars();
            let key = chars.next().map_or_else(String::new, |c| {
                c.to_ascii_uppercase().to_string() + chars.as_str()
            });
            (key, v)
        })
        .collect();
    Value::Object(pascal_map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_title_case() {
        assert_eq!(title_status("PENDING"), "Pending");
        assert_eq!(title_status("PART_TRADED"), "Part_Traded");
        assert_eq!(title_status("TRANSIT"), "Transit");
    }

    #[test]
    fn pascal_case_capitalises_every_key() {
        let row = json!({"orderId": "1", "orderStatus": "TRADED", "transactionType": "SELL"});
        let data = alert_data(&row, true);
        assert_eq!(data["OrderNo"], "1");
        assert_eq!(data["Status"], "Traded");
        assert_eq!(data["TxnType"], "S");
        assert!(data.get("orderNo").is_none());
    }
}
