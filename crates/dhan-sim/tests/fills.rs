//! The fill model over real HTTP: market orders at the sim price, limit orders when the
//! price crosses them, forced RMS rejections, AMO orders released by the open, partial
//! fills, exchange cancels, end-of-day expiry, and the `/sim/` controls.

mod common;

use common::*;
use reqwest::Method;
use serde_json::{Value, json};

fn with(mut body: Value, key: &str, value: Value) -> Value {
    body[key] = value;
    body
}

fn limit(side: &str, price: f64, quantity: u64) -> Value {
    let body = with(market_order(), "orderType", json!("LIMIT"));
    let body = with(body, "transactionType", json!(side));
    let body = with(body, "quantity", json!(quantity));
    with(body, "price", json!(price))
}

async fn place_id(
    sim: &dhan_sim::SimHandle,
    http: &reqwest::Client,
    token: &str,
    body: &Value,
) -> String {
    let (status, resp) = place(sim, http, token, body).await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp["orderStatus"], "TRANSIT");
    resp["orderId"].as_str().unwrap().to_owned()
}

async fn order(sim: &dhan_sim::SimHandle, http: &reqwest::Client, token: &str, id: &str) -> Value {
    let (status, order) = get(sim, http, &format!("/orders/{id}"), token).await;
    assert_eq!(status, 200);
    order
}

#[tokio::test]
async fn market_orders_trade_at_the_sim_price() {
    let sim = start(fast_config()).await;
    let http = http();
    let token = mint(&sim, &http).await;
    sim.set_price("2885", 1401.5);
    let body = with(market_order(), "quantity", json!(3));
    let body = with(body, "correlationId", json!("tv-px-1"));
    let id = place_id(&sim, &http, &token, &body).await;
    wait_for_status(&sim, &id, "TRADED").await;
    let o = order(&sim, &http, &token, &id).await;
    let (status, by_tag) = get(&sim, &http, "/orders/external/tv-px-1", &token).await;
    assert_eq!(status, 200);
    assert_eq!(by_tag, o);
    let (_, book) = get(&sim, &http, "/orders", &token).await;
    assert_eq!(book[0], o);
    assert_eq!(o["filledQty"], 3);
    assert_eq!(o["remainingQuantity"], 0);
    assert_eq!(o["averageTradedPrice"], 1401.5);
    assert_eq!(o["omsErrorDescription"], "CONFIRMED");
    assert_ne!(o["exchangeOrderId"], "NA");
    assert_ne!(o["exchangeTime"], "0001-01-01 00:00:00");
    let (_, trades) = get(&sim, &http, "/trades", &token).await;
    assert_eq!(trades[0]["tradedPrice"], 1401.5);
    assert_eq!(trades[0]["tradedQuantity"], 3);
}

#[tokio::test]
async fn limit_orders_trade_at_their_limit_when_the_price_crosses() {
    let sim = start(fast_config()).await;
    let http = http();
    let token = mint(&sim, &http).await;
    sim.set_price("2885", 1410.0);
    let buy = place_id(&sim, &http, &token, &limit("BUY", 1400.0, 2)).await;
    let sell = place_id(&sim, &http, &token, &limit("SELL", 1420.0, 1)).await;
    wait_for_status(&sim, &buy, "PENDING").await;
    wait_for_status(&sim, &sell, "PENDING").await;

    sim.set_price("2885", 1405.0); // crosses neither
    let o = order(&sim, &http, &token, &buy).await;
    assert_eq!(o["orderStatus"], "PENDING");
    assert_eq!(o["averageTradedPrice"], 0.0);

    sim.set_price("2885", 1399.0); // the buy crosses
    let o = order(&sim, &http, &token, &buy).await;
    assert_eq!(o["orderStatus"], "TRADED");
    assert_eq!(o["filledQty"], 2);
    assert_eq!(o["averageTradedPrice"], 1400.0);
    assert_eq!(
        order(&sim, &http, &token, &sell).await["orderStatus"],
        "PENDING"
    );

    sim.set_price("2885", 1425.0); // the sell crosses
    let o = order(&sim, &http, &token, &sell).await;
    assert_eq!(o["orderStatus"], "TRADED");
    assert_eq!(o["averageTradedPrice"], 1420.0);

    // A limit already crossed when it reaches the exchange trades on its own.
    let now = place_id(&sim, &http, &token, &limit("BUY", 1500.0, 1)).await;
    wait_for_status(&sim, &now, "TRADED").await;
    assert_eq!(
        order(&sim, &http, &token, &now).await["averageTradedPrice"],
        1500.0
    );
}

#[tokio::test]
async fn reject_next_order_rejects_one_order_with_the_reason() {
    let sim = start(fast_config()).await;
    let http = http();
    let token = mint(&sim, &http).await;
    let reason = "RMS:Margin Exceeds,Cash Available:0.00,Margin Required:12000.00";
    sim.reject_next_order(reason);
    let rejected = place_id(&sim, &http, &token, &market_order()).await;
    let fine = place_id(&sim, &http, &token, &market_order()).await;
    wait_for_status(&sim, &rejected, "REJECTED").await;
    wait_for_status(&sim, &fine, "TRADED").await;
    let o = order(&sim, &http, &token, &rejected).await;
    assert_eq!(o["omsErrorDescription"], reason);
    assert_eq!(o["filledQty"], 0);
    assert_eq!(o["exchangeTime"], "0001-01-01 00:00:00");
    let (_, trades) = get(&sim, &http, "/trades", &token).await;
    assert_eq!(trades.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn amo_orders_wait_for_the_open_then_fill() {
    let sim = start(fast_config()).await;
    let http = http();
    let token = mint(&sim, &http).await;
    sim.set_market_open(false);
    sim.set_price("2885", 1400.0);
    let amo = |body: Value| {
        with(
            with(body, "afterMarketOrder", json!(true)),
            "amoTime",
            json!("OPEN"),
        )
    };
    let market = place_id(&sim, &http, &token, &amo(market_order())).await;
    let lim = place_id(&sim, &http, &token, &amo(limit("BUY", 1410.0, 1))).await;
    wait_for_status(&sim, &market, "PENDING").await;
    wait_for_status(&sim, &lim, "PENDING").await;
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert_eq!(
        order(&sim, &http, &token, &market).await["orderStatus"],
        "PENDING"
    );
    assert_eq!(
        order(&sim, &http, &token, &lim).await["orderStatus"],
        "PENDING"
    );

    sim.set_market_open(true);
    // The crossed limit trades at the open; the market order after the fill delay.
    assert_eq!(
        order(&sim, &http, &token, &lim).await["orderStatus"],
        "TRADED"
    );
    wait_for_status(&sim, &market, "TRADED").await;
    assert_eq!(
        order(&sim, &http, &token, &market).await["averageTradedPrice"],
        1400.0
    );
}

#[tokio::test]
async fn part_fills_cancels_by_the_exchange_and_expiry() {
    let sim = start(fast_config()).await;
    let http = http();
    let token = mint(&sim, &http).await;
    let a = place_id(&sim, &http, &token, &limit("BUY", 90.0, 10)).await;
    let b = place_id(&sim, &http, &token, &limit("BUY", 90.0, 10)).await;
    let c = place_id(&sim, &http, &token, &limit("BUY", 90.0, 10)).await;
    for id in [&a, &b, &c] {
        wait_for_status(&sim, id, "PENDING").await;
    }

    sim.part_fill(&a, 4).unwrap();
    let o = order(&sim, &http, &token, &a).await;
    assert_eq!(o["orderStatus"], "PART_TRADED");
    assert_eq!(o["filledQty"], 4);
    assert_eq!(o["remainingQuantity"], 6);
    assert_eq!(o["averageTradedPrice"], 90.0);
    assert!(sim.part_fill(&a, 7).is_err(), "more than the remainder");
    sim.part_fill(&a, 6).unwrap();
    assert_eq!(
        order(&sim, &http, &token, &a).await["orderStatus"],
        "TRADED"
    );
    let (_, trades) = get(&sim, &http, &format!("/trades/{a}"), &token).await;
    assert_eq!(trades.as_array().unwrap().len(), 2);

    assert!(sim.cancel_by_exchange(&b));
    assert!(!sim.cancel_by_exchange(&b), "already cancelled");
    let o = order(&sim, &http, &token, &b).await;
    assert_eq!(o["orderStatus"], "CANCELLED");
    assert_ne!(o["omsErrorDescription"], "CONFIRMED");

    sim.part_fill(&c, 1).unwrap();
    assert_eq!(sim.expire_open_orders(), 1);
    let o = order(&sim, &http, &token, &c).await;
    assert_eq!(o["orderStatus"], "EXPIRED");
    assert_eq!(o["filledQty"], 1);
}

#[tokio::test]
async fn sim_control_endpoints_drive_fills_without_a_token() {
    let sim = start(fast_config()).await;
    let http = http();
    let token = mint(&sim, &http).await;
    let control = |path: &str, body: Value| {
        let http = http.clone();
        let url = format!("{}/sim/{path}", sim.auth_url());
        async move {
            let resp = http.post(url).json(&body).send().await.unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        }
    };
    let id = place_id(&sim, &http, &token, &limit("BUY", 1400.0, 1)).await;
    wait_for_status(&sim, &id, "PENDING").await;
    let (status, _) = control("price", json!({"securityId": "2885", "price": 1399.5})).await;
    assert_eq!(status, 200);
    assert_eq!(
        order(&sim, &http, &token, &id).await["orderStatus"],
        "TRADED"
    );

    let (status, body) = control("reject-next", json!({})).await;
    assert_eq!(status, 200);
    assert!(body["reason"].as_str().unwrap().starts_with("RMS:"));
    let id = place_id(&sim, &http, &token, &market_order()).await;
    wait_for_status(&sim, &id, "REJECTED").await;

    let (status, _) = control("market-open", json!({"open": false})).await;
    assert_eq!(status, 200);
    let (status, _) = place(&sim, &http, &token, &market_order()).await;
    assert_eq!(status, 400, "market closed");

    let (status, body) = control("price", json!({"securityId": "2885"})).await;
    assert_eq!(status, 400);
    assert_eq!(body["errorCode"], "DH-905");
    let resp = http
        .get(format!("{}/sim/price", sim.auth_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 405);

    control("market-open", json!({"open": true})).await;
    let a = place_id(&sim, &http, &token, &limit("BUY", 10.0, 3)).await;
    let b = place_id(&sim, &http, &token, &limit("BUY", 10.0, 3)).await;
    wait_for_status(&sim, &a, "PENDING").await;
    wait_for_status(&sim, &b, "PENDING").await;
    let (status, _) = control("part-fill", json!({"orderId": a, "quantity": 1})).await;
    assert_eq!(status, 200);
    assert_eq!(order(&sim, &http, &token, &a).await["filledQty"], 1);
    let (status, _) = control("part-fill", json!({"orderId": a, "quantity": 9})).await;
    assert_eq!(status, 400);
    let (status, _) = control("exchange-cancel", json!({"orderId": b})).await;
    assert_eq!(status, 200);
    assert_eq!(
        order(&sim, &http, &token, &b).await["orderStatus"],
        "CANCELLED"
    );

    let (status, body) = control("expire", json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(body["expired"], 1);
    assert_eq!(
        order(&sim, &http, &token, &a).await["orderStatus"],
        "EXPIRED"
    );
    let (status, _) = rest(&sim, &http, Method::GET, "/orders", &token, None).await;
    assert_eq!(status, 200);
}
