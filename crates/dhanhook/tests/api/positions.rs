//! Position-aware alerts, SELL checks and `cancel_order` (issue 13), in paper mode and in live
//! mode against dhan-sim: what the trader sees in the answer, what reaches "Dhan" (the sim's
//! order book and positions) and what the journal keeps.

use std::sync::Arc;

use dhan_sim::{Fault, SimConfig};
use dhanhook::clock::Clock;
use serde_json::{Value, json};

use crate::{
    helpers::{SECRET, TestApp, ist_time, market_time, spawn_app, spawn_app_with},
    live::{Live, eventually, live, sim_at, start_at},
};

const RELIANCE: &str = "2885";

/// A position-aware alert on RELIANCE (intraday), as TradingView's strategy placeholders fill it.
fn target(id: &str, position: &str, size: u32) -> Value {
    json!({"secret": SECRET, "id": id, "symbol": "NSE:RELIANCE", "product": "intraday",
           "position": position, "position_size": size.to_string(), "price": "2500.5"})
}

/// A flat-format alert on RELIANCE with `action` (and `quantity` when given).
fn action(id: &str, action: &str, product: &str, quantity: Option<u32>) -> Value {
    let mut body = json!({"secret": SECRET, "id": id, "symbol": "NSE:RELIANCE",
                          "product": product, "action": action, "price": "2500.5"});
    if let Some(q) = quantity {
        body["quantity"] = json!(q);
    }
    body
}

async fn send(app: &TestApp, body: &Value) -> Value {
    let resp = app.post_webhook(body).await;
    let status = resp.status().as_u16();
    let v: Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "{v}");
    v
}

/// The legs of an answer as (side, units).
fn legs(v: &Value) -> Vec<(String, i64)> {
    v["legs"]
        .as_array()
        .unwrap_or_else(|| panic!("no legs in {v}"))
        .iter()
        .map(|l| {
            (
                l["side"].as_str().unwrap().to_owned(),
                l["quantity"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn sides(pairs: &[(&str, i64)]) -> Vec<(String, i64)> {
    pairs.iter().map(|(s, q)| ((*s).to_owned(), *q)).collect()
}

/// The position lines of an answer, joined.
fn notes(v: &Value) -> String {
    v["positions"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|n| n.as_str().unwrap_or_default())
                .collect::<Vec<_>>()
                .join(" | ")
        })
        .unwrap_or_default()
}

/// flat → long 10 → long 10 again → short 10 → exit → flat, on any app: the legs each step
/// places. Returns nothing; asserts the answers.
async fn walk_the_targets(app: &TestApp) {
    let v = send(app, &target("t1", "long", 10)).await;
    assert_eq!(legs(&v), sides(&[("BUY", 10)]), "{v}");
    assert!(notes(&v).contains("target +10: BUY 10"), "{v}");

    // Sent at once, before any fill is known: our own open order counts.
    let v = send(app, &target("t2", "long", 10)).await;
    assert_eq!(legs(&v), sides(&[]), "a repeat places nothing: {v}");
    assert!(notes(&v).contains("already there, nothing placed"), "{v}");
    assert_eq!(v["status"], "placed", "{v}");

    let v = send(app, &target("t3", "short", 10)).await;
    assert_eq!(
        legs(&v),
        sides(&[("SELL", 20)]),
        "one order crosses zero: {v}"
    );

    let v = send(app, &action("t4", "exit", "intraday", None)).await;
    assert_eq!(legs(&v), sides(&[("BUY", 10)]), "{v}");

    let v = send(app, &target("t5", "flat", 0)).await;
    assert_eq!(legs(&v), sides(&[]), "already flat: {v}");
}

#[tokio::test]
async fn paper_positions_reach_each_target_and_a_repeat_places_nothing() {
    let app = spawn_app().await;
    walk_the_targets(&app).await;

    let rows = app.journal_orders().await;
    let mut placed: Vec<(String, i64)> = rows
        .iter()
        .map(|r| (r.side.as_str().to_owned(), r.units.unwrap()))
        .collect();
    placed.reverse();
    assert_eq!(placed, sides(&[("BUY", 10), ("SELL", 20), ("BUY", 10)]));
    assert!(rows.iter().all(|r| r.status.as_str() == "FILLED"));

    // Reverse flips whatever is held; from flat there is nothing to reverse.
    let v = send(&app, &action("r1", "reverse", "intraday", None)).await;
    assert_eq!(legs(&v), sides(&[]), "{v}");
    assert!(notes(&v).contains("nothing to reverse"), "{v}");
    send(&app, &target("r2", "long", 4)).await;
    let v = send(&app, &action("r3", "reverse", "intraday", None)).await;
    assert_eq!(legs(&v), sides(&[("SELL", 8)]), "long 4 → short 4: {v}");
    let v = send(&app, &action("r4", "reverse", "intraday", Some(2))).await;
    assert_eq!(legs(&v), sides(&[("BUY", 6)]), "short 4 → long 2: {v}");
    app.stop().await;
}

#[tokio::test]
async fn dhan_exit_all_closes_the_legs_positions() {
    let app = spawn_app().await;
    send(&app, &target("e1", "long", 7)).await;
    let exit = json!({"secret": SECRET, "alertType": "multi_leg_order",
        "manage_position": "EXIT_ALL", "order_legs": [
        {"transactionType":"B","orderType":"MKT","quantity":"1","exchange":"NSE",
         "symbol":"RELIANCE","instrument":"EQ","productType":"I","price":"0"}],
        "meta": {"interval":"5","time":"2026-12-01T04:25:00Z","timenow":"2026-12-01T04:30:01Z"}});
    let v = send(&app, &exit).await;
    assert_eq!(
        legs(&v),
        sides(&[("SELL", 7)]),
        "the leg's side and quantity are not used: {v}"
    );
    app.stop().await;
}

#[tokio::test]
async fn live_positions_reach_each_target_at_the_sim() {
    let t = live(SimConfig::default()).await;
    walk_the_targets(&t.app).await;

    // Dhan got exactly the three orders, and once they trade the position is flat.
    let orders = t.sim.orders();
    let sent: Vec<(String, i64)> = orders
        .iter()
        .map(|o| {
            (
                o.body["transactionType"].as_str().unwrap().to_owned(),
                o.body["quantity"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(sent, sides(&[("BUY", 10), ("SELL", 20), ("BUY", 10)]));
    eventually("every order trades", || {
        t.sim.orders().iter().all(|o| o.status == "TRADED")
    })
    .await;
    assert_eq!(net_at_sim(&t), 0);

    // Now from the sim's real position: long 3 is one BUY 3, and again nothing.
    let v = send(&t.app, &target("t6", "long", 3)).await;
    assert_eq!(legs(&v), sides(&[("BUY", 3)]), "{v}");
    eventually("the BUY trades", || net_at_sim(&t) == 3).await;
    let v = send(&t.app, &target("t7", "long", 3)).await;
    assert_eq!(legs(&v), sides(&[]), "{v}");
    assert!(notes(&v).contains("at the broker +3"), "{v}");
    t.app.stop().await;
}

/// RELIANCE's intraday net quantity as the sim's positions show it.
fn net_at_sim(t: &Live) -> i64 {
    t.sim
        .positions()
        .iter()
        .filter(|p| p["securityId"] == RELIANCE && p["productType"] == "INTRADAY")
        .map(|p| p["netQty"].as_i64().unwrap())
        .sum()
}

#[tokio::test]
async fn unreadable_positions_place_nothing_and_say_why() {
    let t = live(SimConfig::default()).await;
    t.sim.inject(Fault::Read5xx, 1000);

    let resp = t.app.post_webhook(&target("u1", "long", 10)).await;
    assert_eq!(resp.status(), 503, "TradingView may resend");
    let v: Value = resp.json().await.unwrap();
    let error = v["error"].as_str().unwrap_or_default();
    assert!(error.contains("nothing was placed"), "{v}");
    assert!(error.contains("could not be read"), "{v}");
    assert!(t.sim.orders().is_empty(), "fail closed: nothing sent");
    assert!(t.app.journal_orders().await.is_empty());

    // Dhan back: the resend goes through, once.
    t.sim.clear_faults();
    let v = send(&t.app, &target("u1", "long", 10)).await;
    assert_eq!(legs(&v), sides(&[("BUY", 10)]), "{v}");
    assert_eq!(t.sim.orders().len(), 1);
    t.app.stop().await;
}

#[tokio::test]
async fn a_delivery_sell_without_holdings_is_refused_with_the_numbers() {
    let t = live(SimConfig::default()).await;

    let v = send(&t.app, &action("s1", "sell", "delivery", Some(5))).await;
    let leg = &v["legs"][0];
    assert_eq!(leg["status"], "BLOCKED", "{v}");
    let message = leg["message"].as_str().unwrap();
    assert!(
        message.starts_with("blocked by the SELL check: SELL 5 RELIANCE (CNC)"),
        "{message}"
    );
    assert!(message.contains("0 are available: holdings 0"), "{message}");
    assert!(t.sim.orders().is_empty(), "never sent");
    // Dhan's "no holdings" (HTTP 500 DH-1111) was read as zero, not as a failure.
    assert!(
        t.sim
            .requests()
            .iter()
            .any(|r| r.method == "GET" && r.path == "/v2/holdings")
    );

    // With the shares in the demat account, the same SELL goes.
    t.sim.set_holdings(vec![
        json!({"securityId": RELIANCE, "tradingSymbol": "RELIANCE",
        "exchange": "NSE", "totalQty": 5, "availableQty": 5, "avgCostPrice": 2400.0}),
    ]);
    let v = send(&t.app, &action("s2", "sell", "delivery", Some(5))).await;
    assert_eq!(v["legs"][0]["status"], "ACCEPTED", "{v}");
    assert_eq!(t.sim.orders().len(), 1);
    // A third SELL of the same 5 while the second is open: those shares are spoken for.
    let v = send(&t.app, &action("s3", "sell", "delivery", Some(5))).await;
    assert_eq!(v["legs"][0]["status"], "BLOCKED", "{v}");
    assert!(
        v["legs"][0]["message"]
            .as_str()
            .unwrap()
            .contains("- 5 in open SELL orders"),
        "{v}"
    );
    assert_eq!(t.sim.orders().len(), 1);
    t.app.stop().await;
}

#[tokio::test]
async fn allow_short_false_refuses_a_sell_that_would_open_a_short() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let app = spawn_app_with(dir, &[("ALLOW_SHORT", "false")]).await;
    let v = send(&app, &action("a1", "sell", "intraday", Some(5))).await;
    assert_eq!(v["legs"][0]["status"], "BLOCKED", "{v}");
    let message = v["legs"][0]["message"].as_str().unwrap();
    assert!(message.contains("ALLOW_SHORT=false"), "{message}");
    assert!(message.contains("net position 0"), "{message}");

    send(&app, &action("a2", "buy", "intraday", Some(5))).await;
    let v = send(&app, &action("a3", "sell", "intraday", Some(5))).await;
    assert_eq!(
        v["legs"][0]["status"], "FILLED",
        "closing a long is fine: {v}"
    );
    let v = send(&app, &target("a4", "short", 1)).await;
    assert_eq!(v["legs"][0]["status"], "BLOCKED", "a short target too: {v}");
    app.stop().await;
}

#[tokio::test]
async fn concurrent_alerts_on_one_symbol_end_at_the_target_not_doubled() {
    let t = live(SimConfig::default()).await;
    let sends = (0..6).map(|i| {
        let app = &t.app;
        async move {
            let resp = app
                .post_webhook(&target(&format!("c{i}"), "long", 10))
                .await;
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        }
    });
    let answers = futures::future::join_all(sends).await;
    assert!(answers.iter().all(|(s, _)| *s == 200), "{answers:?}");
    let placed: usize = answers.iter().map(|(_, v)| legs(v).len()).sum();
    assert_eq!(
        placed, 1,
        "one alert orders, the others see it: {answers:?}"
    );
    assert_eq!(t.sim.orders().len(), 1);
    eventually("the BUY trades", || net_at_sim(&t) == 10).await;
    t.app.stop().await;

    // The same in paper mode.
    let app = spawn_app().await;
    let sends = (0..6).map(|i| {
        let app = &app;
        async move { send(app, &target(&format!("p{i}"), "short", 4)).await }
    });
    let answers = futures::future::join_all(sends).await;
    let placed: Vec<(String, i64)> = answers.iter().flat_map(legs).collect();
    assert_eq!(placed, sides(&[("SELL", 4)]));
    app.stop().await;
}

#[tokio::test]
async fn cancel_order_cancels_only_our_open_orders() {
    let t = live(SimConfig::default()).await;
    t.sim.set_price(RELIANCE, 2500.0);
    // Ours: a limit BUY far below the price rests PENDING.
    let mut ours = action("k1", "buy", "intraday", Some(1));
    ours["order_type"] = json!("limit");
    ours["price"] = json!("2000");
    let v = send(&t.app, &ours).await;
    let our_id = v["legs"][0]["order_id"].as_str().unwrap().to_owned();
    // Someone else's, on the same symbol, placed straight at "Dhan".
    let token = t.sim.active_token().expect("the app's token");
    let foreign: Value = crate::helpers::http_client()
        .post(format!("{}/orders", t.sim.base_url()))
        .header("access-token", token)
        .json(&json!({"dhanClientId": SimConfig::default().client_id,
            "correlationId": "placed-by-hand", "transactionType": "BUY",
            "exchangeSegment": "NSE_EQ", "productType": "INTRADAY", "orderType": "LIMIT",
            "validity": "DAY", "securityId": RELIANCE, "quantity": 1, "price": 2000.0}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let foreign_id = foreign["orderId"].as_str().unwrap().to_owned();
    eventually("both rest PENDING", || {
        t.sim.orders().iter().all(|o| o.status == "PENDING")
    })
    .await;

    let v = send(&t.app, &action("k2", "cancel", "intraday", None)).await;
    assert_eq!(legs(&v), sides(&[]), "a cancel places nothing: {v}");
    let cancels = v["cancels"].as_array().unwrap();
    assert_eq!(cancels.len(), 1, "{v}");
    assert_eq!(cancels[0]["order_id"], our_id.as_str());
    assert_eq!(cancels[0]["result"], "cancelled", "{v}");

    let status_of = |id: &str| {
        t.sim
            .orders()
            .into_iter()
            .find(|o| o.order_id == id)
            .unwrap()
            .status
    };
    assert_eq!(status_of(&our_id), "CANCELLED");
    assert_eq!(status_of(&foreign_id), "PENDING", "not ours: left alone");
    let row = t
        .app
        .journal_orders()
        .await
        .into_iter()
        .find(|r| r.order_id.as_deref() == Some(our_id.as_str()))
        .unwrap();
    assert_eq!(row.status.as_str(), "CANCELLED");

    // Nothing of ours is open any more: a second cancel finds nothing.
    let v = send(&t.app, &action("k3", "cancel", "intraday", None)).await;
    assert_eq!(v["cancels"], json!([]), "{v}");
    t.app.stop().await;
}

#[tokio::test]
async fn square_off_closes_the_days_intraday_positions_at_the_set_time() {
    let sim = sim_at(SimConfig::default(), market_time()).await;
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let t = start_at(sim, dir, &[("SQUARE_OFF_AT", "15:12")], market_time()).await;
    t.sim.set_price(RELIANCE, 2500.0);
    send(&t.app, &target("q1", "long", 10)).await;
    eventually("the BUY trades", || net_at_sim(&t) == 10).await;
    // A resting order of ours on the same symbol, and a delivery buy that is not intraday.
    let mut resting = action("q2", "buy", "intraday", Some(1));
    resting["order_type"] = json!("limit");
    resting["price"] = json!("2000");
    send(&t.app, &resting).await;
    send(
        &t.app,
        &json!({"secret": SECRET, "id": "q3", "symbol": "NSE:INFY", "action": "buy",
                "quantity": 2, "product": "delivery"}),
    )
    .await;
    eventually("all three at the exchange", || {
        let o = t.sim.orders();
        o.len() == 3
            && o.iter()
                .all(|o| o.status == "PENDING" || o.status == "TRADED")
    })
    .await;

    // 15:11 IST: not yet.
    let now = t.app.clock.now();
    t.advance(ist_time(2026, 12, 1, 15, 11) - now);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(t.sim.orders().len(), 3, "nothing before SQUARE_OFF_AT");

    // 15:12 IST: our resting order is cancelled and the position closed, by one SELL 10.
    t.advance(chrono::Duration::minutes(1));
    eventually("the position is flat", || net_at_sim(&t) == 0).await;
    let orders = t.sim.orders();
    assert_eq!(orders.len(), 4, "one more order: {orders:?}");
    let exit = &orders[3].body;
    assert_eq!(
        (
            exit["transactionType"].as_str(),
            exit["quantity"].as_i64(),
            exit["productType"].as_str()
        ),
        (Some("SELL"), Some(10), Some("INTRADAY"))
    );
    assert!(
        orders
            .iter()
            .any(|o| o.body["orderType"] == "LIMIT" && o.status == "CANCELLED"),
        "{orders:?}"
    );
    assert!(
        orders
            .iter()
            .any(|o| o.body["securityId"] == "1594" && o.status != "CANCELLED"),
        "the delivery buy is left alone: {orders:?}"
    );

    // Once a day: the next minutes change nothing.
    t.advance(chrono::Duration::minutes(5));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(t.sim.orders().len(), 4);
    t.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_postgres_compute_one_symbols_target_one_at_a_time() {
    use secrecy::ExposeSecret;
    let Ok(server) = std::env::var(crate::journal_contract::PG_URL_VAR) else {
        eprintln!("skipping the two-instance position test: no PostgreSQL URL is set");
        return;
    };
    let db = crate::journal_contract::TestDatabase::create(&server).await;
    let sim = sim_at(SimConfig::default(), market_time()).await;
    let mut env = crate::live::live_vars(&sim);
    env.push(("DATABASE_URL".into(), db.url.expose_secret().to_owned()));
    let vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let a =
        crate::helpers::spawn_app_at(Arc::new(tempfile::tempdir().unwrap()), &vars, market_time())
            .await;
    let b =
        crate::helpers::spawn_app_at(Arc::new(tempfile::tempdir().unwrap()), &vars, market_time())
            .await;
    eventually("a token for both", || sim.mint_count() >= 1).await;

    let sends = (0..8).map(|i| {
        let app = if i % 2 == 0 { &a } else { &b };
        async move {
            let resp = app
                .post_webhook(&target(&format!("m{i}"), "long", 10))
                .await;
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        }
    });
    let answers = futures::future::join_all(sends).await;
    assert!(answers.iter().all(|(s, _)| *s == 200), "{answers:?}");
    let orders = sim.orders();
    assert_eq!(
        orders.len(),
        1,
        "one BUY 10 for eight alerts on two instances: {answers:?}"
    );
    assert_eq!(orders[0].body["quantity"], 10);
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn refusals_are_told_to_the_trader() {
    let (url, fake) = crate::notify::fake_telegram().await;
    let vars = crate::notify::telegram_vars(&url);
    let sim = sim_at(SimConfig::default(), market_time()).await;
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let t = start_at(sim, dir, &crate::notify::borrowed(&vars), market_time()).await;
    let texts = || -> Vec<String> {
        fake.taken()
            .iter()
            .map(|m| m.body["text"].as_str().unwrap_or_default().to_owned())
            .collect()
    };

    // Unreadable positions: nothing journaled, yet the trader hears why.
    t.sim.inject(Fault::Read5xx, 1000);
    let resp = t.app.post_webhook(&target("n1", "long", 10)).await;
    assert_eq!(resp.status(), 503);
    eventually("the not-placed message", || !texts().is_empty()).await;
    let text = texts().remove(0);
    assert!(text.contains("Not placed: target RELIANCE"), "{text}");
    assert!(text.contains("could not be read"), "{text}");
    t.sim.clear_faults();

    // A refused delivery SELL: told as rejected, with the numbers.
    send(&t.app, &action("n2", "sell", "delivery", Some(5))).await;
    eventually("the rejection message", || texts().len() >= 2).await;
    let text = texts().remove(1);
    assert!(
        text.contains("Blocked by dhanhook: SELL 5 RELIANCE"),
        "{text}"
    );
    assert!(text.contains("holdings 0"), "{text}");
    assert!(t.sim.orders().is_empty());
    t.app.stop().await;
}

#[tokio::test]
async fn our_orders_from_an_earlier_session_no_longer_count() {
    let app = spawn_app().await;
    // A limit BUY 5 rests (paper mode never fills it): it counts today.
    let mut resting = action("o1", "buy", "intraday", Some(5));
    resting["order_type"] = json!("limit");
    resting["price"] = json!("2000");
    let v = send(&app, &resting).await;
    assert_eq!(v["legs"][0]["status"], "PENDING", "{v}");
    let v = send(&app, &target("o2", "long", 5)).await;
    assert_eq!(legs(&v), sides(&[]), "the open BUY 5 counts: {v}");

    // The next trading day: yesterday's DAY order is over at the broker, whatever the journal
    // still says of it.
    app.clock.advance(chrono::Duration::days(1));
    let v = send(&app, &target("o3", "long", 5)).await;
    assert_eq!(legs(&v), sides(&[("BUY", 5)]), "{v}");
    app.stop().await;
}

#[tokio::test]
async fn paper_dhan_format_cancel_order_cancels_our_resting_order() {
    let app = spawn_app().await;
    let mut resting = action("pc1", "buy", "intraday", Some(3));
    resting["order_type"] = json!("limit");
    resting["price"] = json!("2000");
    let v = send(&app, &resting).await;
    let order_id = v["legs"][0]["order_id"].as_str().unwrap().to_owned();

    // Dhan's format: alertType cancel_order with a leg naming the symbol.
    let cancel = json!({"secret": SECRET, "alertType": "cancel_order", "order_legs": [
        {"transactionType":"B","orderType":"MKT","quantity":"1","exchange":"NSE",
         "symbol":"RELIANCE","instrument":"EQ","productType":"I","price":"0"}],
        "meta": {"interval":"5","time":"2026-12-01T04:25:00Z","timenow":"2026-12-01T04:30:02Z"}});
    let v = send(&app, &cancel).await;
    assert_eq!(v["cancels"][0]["order_id"], order_id.as_str(), "{v}");
    assert_eq!(v["cancels"][0]["result"], "cancelled", "{v}");
    let rows = app.journal_orders().await;
    assert_eq!(rows.len(), 1, "a cancel journals no leg of its own");
    assert_eq!(rows[0].status.as_str(), "CANCELLED");
    // Cancelled, it no longer counts towards the position.
    let v = send(&app, &target("pc2", "long", 3)).await;
    assert_eq!(legs(&v), sides(&[("BUY", 3)]), "{v}");
    app.stop().await;
}
