//! The order-update WebSocket and the postback sender, over a real WebSocket client and a
//! real HTTP receiver on loopback.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use dhan_sim::{SimConfig, SimHandle};
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

fn login_frame(client_id: &str, token: &str) -> String {
    json!({"LoginReq": {"MsgCode": 42, "ClientId": client_id, "Token": token}, "UserType": "SELF"})
        .to_string()
}

/// Connects and logs in, then waits until the simulator has processed the login.
async fn connect(sim: &SimHandle, token: &str) -> Ws {
    let before = sim.order_update_clients();
    let (mut ws, _) = tokio_tungstenite::connect_async(sim.order_update_url())
        .await
        .expect("connect");
    ws.send(Message::text(login_frame(CLIENT_ID, token)))
        .await
        .unwrap();
    for _ in 0..500 {
        if sim.order_update_clients() > before {
            return ws;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("login never processed");
}

/// The next `order_alert` frame's `Data`.
async fn next_alert(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("an alert in time")
            .expect("stream open")
            .expect("frame");
        if let Message::Text(text) = msg {
            let frame: Value = serde_json::from_str(text.as_str()).unwrap();
            assert_eq!(frame["Type"], "order_alert");
            return frame["Data"].clone();
        }
    }
}

/// Reads alerts until one has `status` for `order_no`; returns it.
async fn alert_with(
    ws: &mut Ws,
    key: &str,
    order_no: &str,
    status_key: &str,
    status: &str,
) -> Value {
    loop {
        let data = next_alert(ws).await;
        if data[key] == order_no && data[status_key] == status {
            return data;
        }
    }
}

#[tokio::test]
async fn logged_in_clients_get_every_status_change_in_camel_case() {
    let sim = start(fast_config()).await;
    let http = http();
    let token = mint(&sim, &http).await;
    let mut ws = connect(&sim, &token).await;
    sim.set_price("2885", 1401.5);
    let body = json!({
        "dhanClientId": CLIENT_ID, "correlationId": "tv-ws-1", "transactionType": "BUY",
        "exchangeSegment": "NSE_EQ", "productType": "INTRADAY", "orderType": "MARKET",
        "validity": "DAY", "securityId": "2885", "quantity": 2
    });
    let (_, resp) = place(&sim, &http, &token, &body).await;
    let id = resp["orderId"].as_str().unwrap().to_owned();

    let statuses: Vec<Value> = vec![
        next_alert(&mut ws).await,
        next_alert(&mut ws).await,
        next_alert(&mut ws).await,
    ];
    let names: Vec<&str> = statuses
        .iter()
        .map(|d| d["status"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Transit", "Pending", "Traded"]);
    let traded = &statuses[2];
    assert_eq!(traded["orderNo"], id.as_str());
    assert_eq!(traded["securityId"], "2885");
    assert_eq!(traded["txnType"], "B");
    assert_eq!(traded["product"], "I");
    assert_eq!(traded["orderType"], "MKT");
    assert_eq!(traded["quantity"], 2);
    assert_eq!(traded["tradedQty"], 2);
    assert_eq!(traded["avgTradedPrice"], 1401.5);
    assert_eq!(traded["correlationId"], "tv-ws-1");
    assert_eq!(traded["reasonDescription"], "CONFIRMED");
    assert_ne!(traded["exchOrderNo"], "0");
    assert!(traded.get("OrderNo").is_none());

    // Rejections and partial fills too.
    sim.reject_next_order("RMS:Margin Exceeds,Cash Available:0.00,Margin Required:12000.00");
    let (_, resp) = place(&sim, &http, &token, &body).await;
    let rejected = resp["orderId"].as_str().unwrap().to_owned();
    let data = alert_with(&mut ws, "orderNo", &rejected, "status", "Rejected").await;
    assert!(
        data["reasonDescription"]
            .as_str()
            .unwrap()
            .starts_with("RMS:Margin")
    );

    let lim = json!({
        "dhanClientId": CLIENT_ID, "transactionType": "SELL", "exchangeSegment": "NSE_EQ",
        "productType": "INTRADAY", "orderType": "LIMIT", "validity": "DAY",
        "securityId": "2885", "quantity": 5, "price": 1500.0
    });
    let (_, resp) = place(&sim, &http, &token, &lim).await;
    let part = resp["orderId"].as_str().unwrap().to_owned();
    alert_with(&mut ws, "orderNo", &part, "status", "Pending").await;
    sim.part_fill(&part, 2).unwrap();
    let data = alert_with(&mut ws, "orderNo", &part, "status", "Part_Traded").await;
    assert_eq!(data["tradedQty"], 2);
    assert_eq!(data["txnType"], "S");
    assert_eq!(data["orderType"], "LMT");
}

#[tokio::test]
async fn pascal_case_option_sends_the_documented_keys() {
    let sim = start(SimConfig {
        order_update_pascal_case: true,
        ..fast_config()
    })
    .await;
    let http = http();
    let token = mint(&sim, &http).await;
    let mut ws = connect(&sim, &token).await;
    let (_, resp) = place(&sim, &http, &token, &market_order()).await;
    let id = resp["orderId"].as_str().unwrap().to_owned();
    let data = alert_with(&mut ws, "OrderNo", &id, "Status", "Traded").await;
    assert_eq!(data["TxnType"], "B");
    assert_eq!(data["TradedQty"], 1);
    assert!(data.get("orderNo").is_none());

    // And back to camelCase at run time.
    sim.set_order_update_pascal_case(false);
    let (_, resp) = place(&sim, &http, &token, &market_order()).await;
    let id = resp["orderId"].as_str().unwrap().to_owned();
    alert_with(&mut ws, "orderNo", &id, "status", "Traded").await;
}

/// Expects the server to end the connection (a close frame or EOF) without alerts.
async fn expect_closed(ws: &mut Ws) -> Option<u16> {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Err(_) => panic!("connection not closed"),
            Ok(None) | Ok(Some(Err(_))) => return None,
            Ok(Some(Ok(Message::Close(frame)))) => return frame.map(|f| u16::from(f.code)),
            Ok(Some(Ok(Message::Text(t)))) => panic!("unexpected frame {t}"),
            Ok(Some(Ok(_))) => {}
        }
    }
}

#[tokio::test]
async fn bad_logins_are_closed() {
    let sim = start(fast_config()).await;
    let http = http();
    let token = mint(&sim, &http).await;
    for frame in [
        login_frame(CLIENT_ID, "not-the-token"),
        login_frame("1000000002", &token),
        json!({"LoginReq": {"MsgCode": 41, "ClientId": CLIENT_ID, "Token": token}}).to_string(),
        "hello".to_owned(),
    ] {
        let (mut ws, _) = tokio_tungstenite::connect_async(sim.order_update_url())
            .await
            .unwrap();
        ws.send(Message::text(frame)).await.unwrap();
        assert_eq!(expect_closed(&mut ws).await, Some(1008));
    }
    assert_eq!(sim.order_update_clients(), 0);
}

#[tokio::test]
async fn drops_force_a_reconnect_and_refusal_blocks_new_connections() {
    let sim = start(fast_config()).await;
    let http = http();
    let token = mint(&sim, &http).await;
    let mut ws = connect(&sim, &token).await;
    sim.drop_order_update_connections();
    assert_eq!(
        expect_closed(&mut ws).await,
        None,
        "a drop sends no close frame"
    );
    for _ in 0..200 {
        if sim.order_update_clients() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(sim.order_update_clients(), 0);

    // Reconnecting works, and alerts flow again.
    let mut ws = connect(&sim, &token).await;
    let (_, resp) = place(&sim, &http, &token, &market_order()).await;
    let id = resp["orderId"].as_str().unwrap().to_owned();
    alert_with(&mut ws, "orderNo", &id, "status", "Traded").await;

    sim.refuse_order_update_connections(true);
    let err = tokio_tungstenite::connect_async(sim.order_update_url())
        .await
        .expect_err("refused");
    match err {
        tokio_tungstenite::tungstenite::Error::Http(resp) => assert_eq!(resp.status(), 503),
        other => panic!("unexpected error {other}"),
    }
    sim.refuse_order_update_connections(false);
    connect(&sim, &token).await;
}

/// A loopback HTTP server recording the JSON bodies POSTed to it.
async fn receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    use http_body_util::BodyExt as _;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/hooks/dhan-secret-path",
        listener.local_addr().unwrap()
    );
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = got.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let sink = sink.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let sink = sink.clone();
                        async move {
                            assert_eq!(req.uri().path(), "/hooks/dhan-secret-path");
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            sink.lock()
                                .unwrap()
                                .push(serde_json::from_slice(&body).unwrap());
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(
                                http_body_util::Full::new(bytes::Bytes::new()),
                            ))
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (url, got)
}

#[tokio::test]
async fn postbacks_carry_every_status_change_to_a_loopback_url() {
    let (url, got) = receiver().await;
    let sim = start(SimConfig {
        postback_url: Some(url.clone()),
        ..fast_config()
    })
    .await;
    let http = http();
    let token = mint(&sim, &http).await;
    let (_, resp) = place(&sim, &http, &token, &market_order()).await;
    let id = resp["orderId"].as_str().unwrap().to_owned();
    wait_for_status(&sim, &id, "TRADED").await;
    for _ in 0..500 {
        if got.lock().unwrap().len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let bodies = got.lock().unwrap().clone();
    let statuses: Vec<&str> = bodies
        .iter()
        .map(|b| b["orderStatus"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["TRANSIT", "PENDING", "TRADED"]);
    let traded = &bodies[2];
    assert_eq!(traded["orderId"], id.as_str());
    assert_eq!(traded["filled_qty"], 1);
    assert_eq!(traded["filledQty"], 1);
    assert_eq!(traded["omsErrorDescription"], "CONFIRMED");
    let (_, book_row) = get(&sim, &http, &format!("/orders/{id}"), &token).await;
    assert_eq!(traded["exchangeOrderId"], book_row["exchangeOrderId"]);
    assert!(sim.postbacks().iter().all(|p| p.status == Some(200)));

    // A receiver that is gone is recorded and does not hold orders up.
    sim.set_postback_url(Some("http://127.0.0.1:9/unreachable"));
    let (_, resp) = place(&sim, &http, &token, &market_order()).await;
    wait_for_status(&sim, resp["orderId"].as_str().unwrap(), "TRADED").await;
    for _ in 0..500 {
        if sim.postbacks().iter().any(|p| p.error.is_some()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let failed = sim
        .postbacks()
        .into_iter()
        .find(|p| p.error.is_some())
        .expect("a failure");
    assert_eq!(failed.url, "http://127.0.0.1:9/unreachable");
    assert_eq!(got.lock().unwrap().len(), 3);
}
