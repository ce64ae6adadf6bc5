//! REST host orders and portfolio: validation table, order life cycle, lookups, cancel,
//! rate limit, market hours / static IP / kill switch gates, holdings, exit-all, faults.

mod common;

use std::time::Duration;

use common::*;
use dhan_sim::{Fault, SimConfig};
use reqwest::Method;
use serde_json::{Value, json};

fn with(mut body: Value, key: &str, value: Value) -> Value {
    body[key] = value;
    body
}

fn without(mut body: Value, key: &str) -> Value {
    body.as_object_mut().unwrap().remove(key);
    body
}

#[tokio::test]
async fn order_validation_table() {
    let sim = start(SimConfig {
        orders_per_second: 1000,
        ..fast_config()
    })
    .await;
    let http = http();
    let token = mint(&sim, &http).await;
    let m = market_order;
    let limit = || with(m(), "orderType", json!("LIMIT"));

    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "missing client",
            without(m(), "dhanClientId"),
            "dhanClientId is required",
        ),
        (
            "other client",
            with(m(), "dhanClientId", json!("1000000002")),
            "Invalid dhanClientId",
        ),
        (
            "missing side",
            without(m(), "transactionType"),
            "transactionType is required",
        ),
        (
            "bad side",
            with(m(), "transactionType", json!("HOLD")),
            "Invalid transactionType: HOLD",
        ),
        (
            "bad segment",
            with(m(), "exchangeSegment", json!("IDX_I")),
            "Invalid exchangeSegment: IDX_I",
        ),
        (
            "missing segment",
            without(m(), "exchangeSegment"),
            "exchangeSegment is required",
        ),
        (
            "bad product",
            with(m(), "productType", json!("DELIVERY")),
            "Invalid productType: DELIVERY",
        ),
        (
            "bad order type",
            with(m(), "orderType", json!("SL")),
            "Invalid orderType: SL",
        ),
        (
            "bad validity",
            with(m(), "validity", json!("GTC")),
            "Invalid validity: GTC",
        ),
        (
            "missing validity",
            without(m(), "validity"),
            "validity is required",
        ),
        (
            "missing security",
            without(m(), "securityId"),
            "securityId is required",
        ),
        (
            "numeric security",
            with(m(), "securityId", json!(2885)),
            "securityId must be a string",
        ),
        (
            "missing quantity",
            without(m(), "quantity"),
            "quantity is required",
        ),
        (
            "zero quantity",
            with(m(), "quantity", json!(0)),
            "quantity must be a positive integer",
        ),
        (
            "negative quantity",
            with(m(), "quantity", json!(-5)),
            "quantity must be a positive integer",
        ),
        (
            "fractional quantity",
            with(m(), "quantity", json!(1.5)),
            "quantity must be a positive integer",
        ),
        (
            "string quantity",
            with(m(), "quantity", json!("1")),
            "quantity must be a positive integer",
        ),
        (
            "limit without price",
            limit(),
            "price must be greater than 0 for LIMIT and STOP_LOSS orders",
        ),
        (
            "limit zero price",
            with(limit(), "price", json!(0)),
            "price must be greater than 0 for LIMIT and STOP_LOSS orders",
        ),
        (
            "string price",
            with(limit(), "price", json!("100")),
            "price must be a number",
        ),
        (
            "stop loss without trigger",
            with(
                with(m(), "orderType", json!("STOP_LOSS")),
                "price",
                json!(101.5),
            ),
            "triggerPrice must be greater than 0 for STOP_LOSS and STOP_LOSS_MARKET orders",
        ),
        (
            "sl-m without trigger",
            with(m(), "orderType", json!("STOP_LOSS_MARKET")),
            "triggerPrice must be greater than 0 for STOP_LOSS and STOP_LOSS_MARKET orders",
        ),
        (
            "empty string price",
            with(m(), "price", json!("")),
            "price must not be empty",
        ),
        (
            "empty string amoTime",
            with(m(), "amoTime", json!("")),
            "amoTime must not be empty",
        ),
        (
            "empty correlationId",
            with(m(), "correlationId", json!("")),
            "correlationId must not be empty",
        ),
        (
            "empty securityId",
            with(m(), "securityId", json!("")),
            "securityId must not be empty",
        ),
        (
            "26-char correlationId",
            with(m(), "correlationId", json!("a".repeat(26))),
            "correlationId must be at most 25 characters of letters, digits, space, '_' or '-'",
        ),
        (
            "bad correlationId char",
            with(m(), "correlationId", json!("tv:1")),
            "correlationId must be at most 25 characters of letters, digits, space, '_' or '-'",
        ),
        (
            "amo without time",
            with(m(), "afterMarketOrder", json!(true)),
            "amoTime is required when afterMarketOrder is true",
        ),
        (
            "amo bad time",
            with(
                with(m(), "afterMarketOrder", json!(true)),
                "amoTime",
                json!("CLOSE"),
            ),
            "Invalid amoTime: CLOSE",
        ),
        (
            "amoTime without amo",
            with(m(), "amoTime", json!("OPEN")),
            "amoTime is allowed only when afterMarketOrder is true",
        ),
        (
            "amoTime with amo false",
            with(
                with(m(), "afterMarketOrder", json!(false)),
                "amoTime",
                json!("OPEN"),
            ),
            "amoTime is allowed only when afterMarketOrder is true",
        ),
        (
            "not an object",
            json!([m()]),
            "Invalid request body: expected a JSON object",
        ),
    ];

    for (name, body, message) in &cases {
        let (status, resp) = place(&sim, &http, &token, body).await;
        assert_eq!(status, 400, "{name}: {resp}");
        assert_eq!(
            resp,
            json!({"errorType": "Input_Exception", "errorCode": "DH-905", "errorMessage": message}),
            "{name}"
        );
    }

    // Malformed JSON is an error response, never a crash.
    let resp = http
        .post(format!("{}/orders", sim.base_url()))
        .header("access-token", &token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["errorCode"], "DH-905");

    assert!(
        sim.orders().is_empty(),
        "no refused request created an order"
    );

    // The accepted edge cases.
    let ok_cases = [
        with(m(), "correlationId", json!("a".repeat(25))),
        with(m(), "correlationId", json!("tv alert_1-2")),
        with(m(), "price", json!(0)),
        with(limit(), "price", json!(1400.5)),
        with(
            with(m(), "orderType", json!("STOP_LOSS_MARKET")),
            "triggerPrice",
            json!(99.5),
        ),
        with(
            with(m(), "afterMarketOrder", json!(true)),
            "amoTime",
            json!("OPEN_30"),
        ),
    ];
    for body in &ok_cases {
        let (status, resp) = place(&sim, &http, &token, body).await;
        assert_eq!(status, 200, "{body} -> {resp}");
    }
    assert_eq!(sim.orders().len(), ok_cases.len());
}

#[tokio::test]
async fn market_order_trades_and_opens_a_position() {
    let sim = start(fast_config()).await;
    let http = http();
    let token = mint(&sim, &http).await;
    let body = with(market_order(), "correlationId", json!("tv-0001"));

    let (status, resp) = place(&sim, &http, &token, &body).await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp["orderStatus"], "TRANSIT");
    let order_id = resp["orderId"].as_str().unwrap().to_owned();
    assert!(order_id.chars().all(|c| c.is_ascii_digit()), "{order_id}");

    let orders = sim.orders();
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0].body, body, "the body is kept as received");
    assert_eq!(orders[0].correlation_id.as_deref(), Some("tv-0001"));

    wait_for_status(&sim, &order_id, "TRADED").await;

    let (status, order) = get(&sim, &http, &format!("/orders/{order_id}"), &token).await;
    assert_eq!(status, 200);
    assert_eq!(order["orderId"], order_id.as_str());
    assert_eq!(order["orderStatus"], "TRADED");
    assert_eq!(order["dhanClientId"], CLIENT_ID);
    assert_eq!(order["correlationId"], "tv-0001");
    assert_eq!(order["securityId"], "2885");
    assert_eq!(order["quantity"], 1);
    assert_eq!(order["filledQty"], 1);
    assert_eq!(order["remainingQuantity"], 0);
    assert_eq!(order["averageTradedPrice"], 100.0);
    assert_eq!(order["omsErrorDescription"], "CONFIRMED");
    let create_time = order["createTime"].as_str().unwrap();
    assert!(
        chrono::NaiveDateTime::parse_from_str(create_time, "%Y-%m-%d %H:%M:%S").is_ok(),
        "{create_time}"
    );

    let (_, book) = get(&sim, &http, "/orders", &token).await;
    assert_eq!(book.as_array().unwrap().len(), 1);
    assert_eq!(book[0], order);

    let (_, trades) = get(&sim, &http, "/trades", &token).await;
    assert_eq!(trades.as_array().unwrap().len(), 1);
    assert_eq!(trades[0]["orderId"], order_id.as_str());
    assert_eq!(trades[0]["tradedQuantity"], 1);
    assert_eq!(trades[0]["tradedPrice"], 100.0);
    let (_, own) = get(&sim, &http, &format!("/trades/{order_id}"), &token).await;
    assert_eq!(own, trades);

    let (status, positions) = get(&sim, &http, "/positions", &token).await;
    assert_eq!(status, 200);
    let p = &positions[0];
    assert_eq!(p["securityId"], "2885");
    assert_eq!(p["positionType"], "LONG");
    assert_eq!(p["netQty"], 1);
    assert_eq!(p["buyQty"], 1);
    assert_eq!(p["sellQty"], 0);
    assert_eq!(p["buyAvg"], 100.0);
    assert_eq!(p["productType"], "INTRADAY");
    assert_eq!(p["exchangeSegment"], "NSE_EQ");
    assert_eq!(p["tradingSymbol"], "RELIANCE");
    assert_eq!(sim.positions(), positions.as_array().unwrap().clone());

    // Selling the share closes the position.
    let sell = with(
        with(market_order(), "transactionType", json!("SELL")),
        "price",
        json!(110.0),
    );
    let (_, resp) = place(&sim, &http, &token, &sell).await;
    wait_for_status(&sim, resp["orderId"].as_str().unwrap(), "TRADED").await;
    let p = &sim.positions()[0];
    assert_eq!(p["positionType"], "CLOSED");
    assert_eq!(p["netQty"], 0);
    assert_eq!(p["sellAvg"], 110.0);
    assert_eq!(p["realizedProfit"], 10.0);
}

#[tokio::test]
async fn limit_and_amo_orders_rest_pending_and_can_be_cancelled() {
    let sim = start(fast_config()).await;
    let http = http();
    let token = mint(&sim, &http).await;
    let limit = with(
        with(market_order(), "orderType", json!("LIMIT")),
        "price",
        json!(95.5),
    );
    let (_, resp) = place(&sim, &http, &token, &limit).await;
    let id = resp["orderId"].as_str().unwrap().to_owned();
    wait_for_status(&sim, &id, "PENDING").await;
    let (_, order) = get(&sim, &http, &format!("/orders/{id}"), &token).await;
    assert_eq!(order["orderStatus"], "PENDING");
    assert_eq!(order["filledQty"], 0);
    assert_eq!(order["remainingQuantity"], 1);
    assert_ne!(order["exchangeOrderId"], "NA");

    let (status, resp) = rest(
        &sim,
        &http,
        Method::DELETE,
        &format!("/orders/{id}"),
        &token,
        None,
    )
    .await;
    assert_eq!(status, 202);
    assert_eq!(resp, json!({"orderId": id, "orderStatus": "CANCELLED"}));
    let (status, resp) = rest(
        &sim,
        &http,
        Method::DELETE,
        &format!("/orders/{id}"),
        &token,
        None,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(resp["errorCode"], "DH-906");
    assert!(sim.positions().is_empty());

    // Market closed: regular orders refused, AMO accepted and left PENDING.
    sim.set_market_open(false);
    let (status, resp) = place(&sim, &http, &token, &market_order()).await;
    assert_eq!(status, 400);
    assert_eq!(
        resp,
        json!({
            "errorType": "Order_Error",
            "errorCode": "DH-906",
            "errorMessage": "Market is Closed! Want to place an offline order?"
        })
    );
    let amo = with(
        with(market_order(), "afterMarketOrder", json!(true)),
        "amoTime",
        json!("PRE_OPEN"),
    );
    let (status, resp) = place(&sim, &http, &token, &amo).await;
    assert_eq!(status, 200, "{resp}");
    let amo_id = resp["orderId"].as_str().unwrap().to_owned();
    wait_for_status(&sim, &amo_id, "PENDING").await;
    let (_, order) = get(&sim, &http, &format!("/orders/{amo_id}"), &token).await;
    assert_eq!(order["afterMarketOrder"], true);
    assert_eq!(sim.orders().len(), 2);
}

#[tokio::test]
async fn cancel_in_transit_is_refused() {
    let sim = start(SimConfig {
        fill_delay: Duration::from_secs(3600),
        ..SimConfig::default()
    })
    .await;
    let http = http();
    let token = mint(&sim, &http).await;
    let (_, resp) = place(&sim, &http, &token, &market_order()).await;
    let id = resp["orderId"].as_str().unwrap();
    let (status, resp) = rest(
        &sim,
        &http,
        Method::DELETE,
        &format!("/orders/{id}"),
        &token,
        None,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        resp,
        json!({"errorType": "Order_Error", "errorCode": "DH-906", "errorMessage": "Order is in Transit state"})
    );
}

#[tokio::test]
async fn lookups_of_unknown_orders_and_by_correlation_id() {
    let sim = start(fast_config()).await;
    let http = http();
    let token = mint(&sim, &http).await;
    let miss = json!({
        "errorType": "Order_Error",
        "errorCode": "DH-906",
        "errorMessage": "Incorrect request for order and cannot be processed"
    });

    let (status, body) = get(&sim, &http, "/orders/external/tv-missing", &token).await;
    assert_eq!((status, body), (404, miss));
    let (status, body) = get(&sim, &http, "/orders/999999999999", &token).await;
    assert_eq!((status, body), (200, json!([])));

    let order = with(
        with(market_order(), "orderType", json!("LIMIT")),
        "price",
        json!(90.0),
    );
    let order = with(order, "correlationId", json!("tv 0002"));
    let (_, resp) = place(&sim, &http, &token, &order).await;
    let id = resp["orderId"].as_str().unwrap().to_owned();

    wait_for_status(&sim, &id, "PENDING").await;
    let (status, body) = get(&sim, &http, "/orders/external/tv%200002", &token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["orderId"], id.as_str());
    assert_eq!(body["correlationId"], "tv 0002");
}

#[tokio::test]
async fn external_lookup_is_404_while_in_transit() {
    let sim = start(SimConfig {
        fill_delay: Duration::from_secs(3600),
        ..SimConfig::default()
    })
    .await;
    let http = http();
    let token = mint(&sim, &http).await;
    let order = with(market_order(), "correlationId", json!("tv-transit"));
    let (status, _) = place(&sim, &http, &token, &order).await;
    assert_eq!(status, 200);
    let (status, body) = get(&sim, &http, "/orders/external/tv-transit", &token).await;
    assert_eq!(status, 404);
    assert_eq!(body["errorCode"], "DH-906");
    // The order book does show it.
    let (_, book) = get(&sim, &http, "/orders", &token).await;
    assert_eq!(book[0]["orderStatus"], "TRANSIT");
    assert_eq!(book[0]["exchangeOrderId"], "NA");
}

#[tokio::test]
async fn the_eleventh_order_in_one_second_is_rate_limited() {
    let sim = start(fast_config()).await;
    let http = http();
    let token = mint(&sim, &http).await;
    let mut statuses = Vec::new();
    for _ in 0..11 {
        let (status, body) = place(&sim, &http, &token, &market_order()).await;
        if status == 429 {
            assert_eq!(
                body,
                json!({"errorType": "Rate_Limit", "errorCode": "DH-904", "errorMessage": "Too many requests"})
            );
        }
        statuses.push(status);
    }
    assert_eq!(&statuses[..10], &[200; 10]);
    assert_eq!(statuses[10], 429);
    assert_eq!(sim.orders().len(), 10);
    // Reads are not order writes.
    assert_eq!(get(&sim, &http, "/orders", &token).await.0, 200);
}

#[tokio::test]
async fn static_ip_and_kill_switch_gate_order_writes() {
    let sim = start(fast_config()).await;
    let http = http();
    let token = mint(&sim, &http).await;

    sim.set_whitelisted_ip(false);
    let (status, body) = place(&sim, &http, &token, &market_order()).await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"errorType": "Input_Exception", "errorCode": "DH-905", "errorMessage": "Invalid IP"})
    );
    assert_eq!(
        get(&sim, &http, "/orders", &token).await.0,
        200,
        "reads need no static IP"
    );
    sim.set_whitelisted_ip(true);

    let (status, body) = get(&sim, &http, "/killswitch", &token).await;
    assert_eq!(status, 200);
    assert_eq!(body["killSwitchStatus"], "DEACTIVATE");

    // An open position blocks activation.
    let (_, resp) = place(&sim, &http, &token, &market_order()).await;
    wait_for_status(&sim, resp["orderId"].as_str().unwrap(), "TRADED").await;
    let (status, body) = rest(
        &sim,
        &http,
        Method::POST,
        "/killswitch?killSwitchStatus=ACTIVATE",
        &token,
        None,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["errorCode"], "DH-906");

    // Exit all flattens it; then the switch can be activated and blocks orders.
    let (status, body) = rest(&sim, &http, Method::DELETE, "/positions", &token, None).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "SUCCESS");
    assert_eq!(sim.positions()[0]["netQty"], 0);
    let (status, body) = rest(
        &sim,
        &http,
        Method::POST,
        "/killswitch?killSwitchStatus=ACTIVATE",
        &token,
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["killSwitchStatus"],
        "Kill Switch has been successfully activated"
    );
    assert_eq!(
        get(&sim, &http, "/killswitch", &token).await.1["killSwitchStatus"],
        "ACTIVATE"
    );
    let (status, body) = place(&sim, &http, &token, &market_order()).await;
    assert_eq!(status, 400);
    assert_eq!(body["errorCode"], "DH-906");
    assert_eq!(
        body["errorMessage"],
        "Kill Switch is active; trading is disabled for the day"
    );

    // It lasts for the day it was activated: the next IST day trades again.
    sim.advance(chrono::Duration::days(1));
    let token = mint(&sim, &http).await;
    assert_eq!(
        get(&sim, &http, "/killswitch", &token).await.1["killSwitchStatus"],
        "DEACTIVATE"
    );
    assert_eq!(place(&sim, &http, &token, &market_order()).await.0, 200);

    let (status, _) = rest(
        &sim,
        &http,
        Method::POST,
        "/killswitch?killSwitchStatus=DEACTIVATE",
        &token,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(place(&sim, &http, &token, &market_order()).await.0, 200);
    let (status, _) = rest(
        &sim,
        &http,
        Method::POST,
        "/killswitch?killSwitchStatus=MAYBE",
        &token,
        None,
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn exit_all_cancels_pending_orders() {
    let sim = start(fast_config()).await;
    let http = http();
    let token = mint(&sim, &http).await;
    let limit = with(
        with(market_order(), "orderType", json!("LIMIT")),
        "price",
        json!(50.0),
    );
    let (_, resp) = place(&sim, &http, &token, &limit).await;
    let id = resp["orderId"].as_str().unwrap().to_owned();
    wait_for_status(&sim, &id, "PENDING").await;
    let (status, _) = rest(&sim, &http, Method::DELETE, "/positions", &token, None).await;
    assert_eq!(status, 200);
    assert_eq!(sim.orders()[0].status, "CANCELLED");
}

#[tokio::test]
async fn rms_rejects_listed_securities_after_accepting_them() {
    let sim = start(SimConfig {
        rms_reject_security_ids: vec!["13".into()],
        ..fast_config()
    })
    .await;
    let http = http();
    let token = mint(&sim, &http).await;
    let (status, resp) = place(
        &sim,
        &http,
        &token,
        &with(market_order(), "securityId", json!("13")),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(resp["orderStatus"], "TRANSIT");
    let id = resp["orderId"].as_str().unwrap().to_owned();
    wait_for_status(&sim, &id, "REJECTED").await;
    let (_, order) = get(&sim, &http, &format!("/orders/{id}"), &token).await;
    assert_eq!(order["orderStatus"], "REJECTED");
    let reason = order["omsErrorDescription"].as_str().unwrap();
    assert!(
        reason.starts_with("RMS:") && reason.ends_with("insufficient funds"),
        "{reason}"
    );
    assert_eq!(
        sim.orders()[0].oms_error_description.as_deref(),
        Some(reason)
    );
    assert!(sim.positions().is_empty());
    assert_eq!(get(&sim, &http, "/trades", &token).await.1, json!([]));
}

#[tokio::test]
async fn delivery_orders_move_holdings() {
    let sim = start(fast_config()).await;
    let http = http();
    let token = mint(&sim, &http).await;

    let (status, body) = get(&sim, &http, "/holdings", &token).await;
    assert_eq!(status, 500);
    assert_eq!(
        body,
        json!({"errorType": "HOLDING_ERROR", "errorCode": "DH-1111", "errorMessage": "No holdings available"})
    );

    // A delivery sell without shares is rejected by RMS.
    let cnc_sell = with(
        with(
            with(market_order(), "productType", json!("CNC")),
            "transactionType",
            json!("SELL"),
        ),
        "quantity",
        json!(5),
    );
    let (_, resp) = place(&sim, &http, &token, &cnc_sell).await;
    wait_for_status(&sim, resp["orderId"].as_str().unwrap(), "REJECTED").await;

    sim.set_holdings(vec![json!({
        "exchange": "NSE", "tradingSymbol": "RELIANCE", "securityId": "2885", "isin": "INE002A01018",
        "totalQty": 10, "dpQty": 10, "t1Qty": 0, "availableQty": 10, "collateralQty": 0, "avgCostPrice": 90.0
    })]);
    let (_, resp) = place(&sim, &http, &token, &cnc_sell).await;
    wait_for_status(&sim, resp["orderId"].as_str().unwrap(), "TRADED").await;
    let (status, rows) = get(&sim, &http, "/holdings", &token).await;
    assert_eq!(status, 200);
    assert_eq!(rows[0]["totalQty"], 5);
    assert_eq!(rows[0]["availableQty"], 5);
    assert!(sim.positions().is_empty(), "delivery trades go to holdings");

    let cnc_buy = with(
        with(market_order(), "productType", json!("CNC")),
        "securityId",
        json!("1333"),
    );
    let (_, resp) = place(&sim, &http, &token, &cnc_buy).await;
    wait_for_status(&sim, resp["orderId"].as_str().unwrap(), "TRADED").await;
    let holdings = sim.holdings();
    assert_eq!(holdings.len(), 2);
    assert_eq!(holdings[1]["securityId"], "1333");
    assert_eq!(holdings[1]["totalQty"], 1);
    assert_eq!(holdings[1]["avgCostPrice"], 100.0);
}

#[tokio::test]
async fn funds_and_profile_answer_with_dhan_fields() {
    let sim = start(fast_config()).await;
    let http = http();
    let token = mint(&sim, &http).await;
    let (status, funds) = get(&sim, &http, "/fundlimit", &token).await;
    assert_eq!(status, 200);
    assert_eq!(funds["dhanClientId"], CLIENT_ID);
    assert!(
        funds["availabelBalance"].is_number(),
        "Dhan's misspelling is kept"
    );
    assert!(funds["sodLimit"].is_number());
}

#[tokio::test]
async fn fault_order_delay_still_accepts() {
    let sim = start(fast_config()).await;
    let http = http();
    let token = mint(&sim, &http).await;
    sim.inject(Fault::OrderDelay(Duration::from_millis(200)), 1);
    let (status, resp) = place(&sim, &http, &token, &market_order()).await;
    assert_eq!(status, 200);
    assert_eq!(resp["orderStatus"], "TRANSIT");
    assert_eq!(sim.orders().len(), 1);
}

#[tokio::test]
async fn fault_5xx_before_accept_creates_no_order() {
    let sim = start(fast_config()).await;
    let http = http();
    let token = mint(&sim, &http).await;
    sim.inject(Fault::Order5xxBeforeAccept, 1);
    let (status, body) = place(&sim, &http, &token, &market_order()).await;
    assert_eq!(status, 500);
    assert_eq!(body["errorCode"], "DH-908");
    assert!(sim.orders().is_empty());
    assert_eq!(
        place(&sim, &http, &token, &market_order()).await.0,
        200,
        "used up"
    );
}

#[tokio::test]
async fn fault_5xx_after_accept_creates_the_order() {
    let sim = start(fast_config()).await;
    let http = http();
    let token = mint(&sim, &http).await;
    sim.inject(Fault::Order5xxAfterAccept, 1);
    let body = with(market_order(), "correlationId", json!("tv-after-5xx"));
    let (status, resp) = place(&sim, &http, &token, &body).await;
    assert_eq!(status, 500);
    assert_eq!(resp["errorCode"], "DH-908");
    let orders = sim.orders();
    assert_eq!(orders.len(), 1);
    // The order lives on and can be found by its correlation id.
    wait_for_status(&sim, &orders[0].order_id, "TRADED").await;
    let (status, found) = get(&sim, &http, "/orders/external/tv-after-5xx", &token).await;
    assert_eq!(status, 200);
    assert_eq!(found["orderId"], orders[0].order_id.as_str());
}

#[tokio::test]
async fn fault_drop_after_accept_closes_the_connection() {
    let sim = start(fast_config()).await;
    let http = http();
    let token = mint(&sim, &http).await;
    sim.inject(Fault::OrderDropAfterAccept, 1);
    let result = http
        .post(format!("{}/orders", sim.base_url()))
        .header("access-token", &token)
        .json(&market_order())
        .send()
        .await;
    assert!(result.is_err(), "no response expected: {result:?}");
    assert_eq!(sim.orders().len(), 1, "the order was created");
    let log = sim.requests();
    assert_eq!(log.last().unwrap().status, 0);
    // The simulator keeps serving.
    assert_eq!(place(&sim, &http, &token, &market_order()).await.0, 200);
}

#[tokio::test]
async fn fault_rate_limited_creates_no_order() {
    let sim = start(fast_config()).await;
    let http = http();
    let token = mint(&sim, &http).await;
    sim.inject(Fault::OrderRateLimited, 2);
    for _ in 0..2 {
        let (status, body) = place(&sim, &http, &token, &market_order()).await;
        assert_eq!(status, 429);
        assert_eq!(body["errorCode"], "DH-904");
    }
    assert!(sim.orders().is_empty());
    assert_eq!(place(&sim, &http, &token, &market_order()).await.0, 200);
}

#[tokio::test]
async fn order_faults_do_not_fire_on_other_calls() {
    let sim = start(fast_config()).await;
    let http = http();
    let token = mint(&sim, &http).await;
    sim.inject(Fault::Order5xxBeforeAccept, 1);
    assert_eq!(get(&sim, &http, "/orders", &token).await.0, 200);
    assert_eq!(get(&sim, &http, "/positions", &token).await.0, 200);
    assert_eq!(place(&sim, &http, &token, &market_order()).await.0, 500);
}

#[tokio::test]
async fn sim_orders_shows_the_book_without_a_token_for_people_trying_things_out() {
    let sim = common::start(common::fast_config()).await;
    let http = common::http();
    let token = common::mint(&sim, &http).await;
    let mut body = common::market_order();
    body["correlationId"] = serde_json::json!("DH261201abcdefL1");
    let (status, _) = common::place(&sim, &http, &token, &body).await;
    assert_eq!(status, 200);

    let resp = http
        .get(format!("{}/sim/orders", sim.auth_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let book: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(book[0]["correlation_id"], "DH261201abcdefL1");
    assert_eq!(book.as_array().unwrap().len(), 1);
}

/// `GET /v2/ip/getIP` shows the account's static IPs and the address Dhan sees; `setIP` sets
/// one, and order writes follow it (dhan-api.md §2.7).
#[tokio::test]
async fn the_static_ip_is_shown_by_get_ip_and_set_by_set_ip() {
    let sim = start(fast_config()).await;
    let http = http();
    let token = mint(&sim, &http).await;

    let (status, ip) = get(&sim, &http, "/ip/getIP", &token).await;
    assert_eq!(status, 200);
    assert_eq!(ip["primaryIP"], "127.0.0.1", "whitelisted by default: {ip}");
    assert_eq!(ip["detectedIP"], "127.0.0.1");
    assert_eq!(ip["ordersAllowed"], true);

    sim.set_whitelisted_ip(false);
    let (_, ip) = get(&sim, &http, "/ip/getIP", &token).await;
    assert_ne!(ip["primaryIP"], "127.0.0.1", "{ip}");
    assert_eq!(ip["ipMatchStatus"], "NOT_MATCHED");
    assert_eq!(ip["ordersAllowed"], false);
    assert_eq!(place(&sim, &http, &token, &market_order()).await.0, 400);

    let set = json!({"dhanClientId": CLIENT_ID, "ip": "127.0.0.1", "ipFlag": "PRIMARY"});
    let (status, body) = rest(
        &sim,
        &http,
        reqwest::Method::POST,
        "/ip/setIP",
        &token,
        Some(&set),
    )
    .await;
    assert_eq!(
        (status, &body["status"]),
        (200, &json!("SUCCESS")),
        "{body}"
    );
    let (_, ip) = get(&sim, &http, "/ip/getIP", &token).await;
    assert_eq!(
        (&ip["primaryIP"], &ip["ordersAllowed"]),
        (&json!("127.0.0.1"), &json!(true))
    );
    assert_eq!(place(&sim, &http, &token, &market_order()).await.0, 200);

    let bad = json!({"dhanClientId": CLIENT_ID, "ip": "not-an-ip", "ipFlag": "PRIMARY"});
    let (status, _) = rest(
        &sim,
        &http,
        reqwest::Method::POST,
        "/ip/setIP",
        &token,
        Some(&bad),
    )
    .await;
    assert_eq!(status, 400);
}
