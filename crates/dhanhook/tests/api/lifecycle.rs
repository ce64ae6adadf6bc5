//! A live leg followed past ACCEPTED to its final state by polling Dhan (dhan-sim as it is:
//! TRANSIT → PENDING → TRADED for a market order, TRANSIT → REJECTED for an RMS refusal):
//! the state, filled quantity, average price and reason in `/logs`, the history with its
//! sources in `/orders/{alert_id}`, the CSV's final-state row, the duplicate's answer, and
//! polling that stops at the final state and at the end of the trading day.

use std::time::Duration;

use dhan_sim::SimConfig;
use serde_json::{Value, json};

use crate::{
    helpers::{ADMIN_TOKEN, flat_alert},
    live::{Live, eventually, live},
};

/// The leg of `alert_id` as `/logs` shows it.
async fn logs_leg(t: &Live, alert_id: &str) -> Value {
    let v: Value = t
        .app
        .get_admin("/logs", ADMIN_TOKEN)
        .await
        .json()
        .await
        .unwrap();
    v["orders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["alert_id"] == alert_id)
        .cloned()
        .unwrap_or_else(|| panic!("no leg of {alert_id} in /logs: {v}"))
}

/// Waits (real time, the clocks standing still) until `/logs` shows the leg in `status`.
async fn wait_for_status(t: &Live, alert_id: &str, status: &str) -> Value {
    for _ in 0..500 {
        let leg = logs_leg(t, alert_id).await;
        if leg["status"] == status {
            return leg;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "the leg never became {status}: {}",
        logs_leg(t, alert_id).await
    );
}

/// `GET /v2/orders/{id}` requests Dhan received for `order_id`.
fn lookups(t: &Live, order_id: &str) -> usize {
    let path = format!("/v2/orders/{order_id}");
    t.sim
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path == path)
        .count()
}

/// Places `body` and waits until dhan-sim has moved the order to `sim_status`.
async fn placed(t: &Live, body: &Value, sim_status: &str) -> (String, String) {
    let answer: Value = t.app.post_webhook(body).await.json().await.unwrap();
    assert_eq!(answer["legs"][0]["status"], "ACCEPTED", "{answer}");
    eventually("Dhan moves the order on", || {
        t.sim
            .orders()
            .first()
            .is_some_and(|o| o.status == sim_status)
    })
    .await;
    (
        answer["alert_id"].as_str().unwrap().to_owned(),
        answer["legs"][0]["order_id"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn a_market_order_is_followed_to_filled_with_its_average_price() {
    let t = live(SimConfig::default()).await;
    let mut body = flat_alert();
    body["id"] = json!("track-fill");
    let (alert_id, order_id) = placed(&t, &body, "TRADED").await;
    // Nothing is looked up before the first look is due.
    assert_eq!(lookups(&t, &order_id), 0);

    t.advance(chrono::Duration::seconds(3));
    let leg = wait_for_status(&t, &alert_id, "FILLED").await;

    let sim_order = t.sim.orders().remove(0);
    assert!(
        lookups(&t, &order_id) >= 1,
        "found by GET /v2/orders/{{id}}"
    );
    assert_eq!(leg["filled_qty"], 1, "{leg}");
    let avg = leg["fill_price"].as_f64().expect("an average price");
    assert!(avg > 0.0, "{leg}");
    assert_eq!(
        sim_order.average_traded_price, avg,
        "Dhan's averageTradedPrice"
    );
    assert_ne!(leg["exchange_order_id"], Value::Null, "{leg}");
    assert_ne!(leg["exchange_time"], Value::Null, "{leg}");
    assert_eq!(leg["reason"], Value::Null, "no reason on a healthy order");

    // The CSV: the placement's row, then one more at the final state (written just after the
    // journal shows FILLED).
    eventually("the final-state CSV row", || {
        let (_, rows) = t.app.csv();
        rows.iter().filter(|r| r["alert_id"] == alert_id).count() >= 2
    })
    .await;
    let (_, rows) = t.app.csv();
    let statuses: Vec<&str> = rows
        .iter()
        .filter(|r| r["alert_id"] == alert_id)
        .map(|r| r["status"].as_str())
        .collect();
    assert_eq!(statuses, ["ACCEPTED", "FILLED"]);
    let last = rows.iter().rfind(|r| r["alert_id"] == alert_id).unwrap();
    assert_eq!(last["execution_price"].parse::<f64>().ok(), Some(avg));

    // A duplicate delivery answers with the state as journaled now.
    let dup: Value = t.app.post_webhook(&body).await.json().await.unwrap();
    assert_eq!(dup["duplicate"], true, "{dup}");
    assert_eq!(dup["legs"][0]["status"], "FILLED", "{dup}");
    assert_eq!(dup["status"], "placed", "{dup}");
}

#[tokio::test]
async fn an_rms_rejection_is_followed_to_rejected_with_dhans_reason_and_its_history() {
    let t = live(SimConfig {
        rms_reject_security_ids: vec!["2885".into()],
        ..SimConfig::default()
    })
    .await;
    let mut body = flat_alert();
    body["id"] = json!("track-reject");
    let (alert_id, _) = placed(&t, &body, "REJECTED").await;

    t.advance(chrono::Duration::seconds(3));
    let leg = wait_for_status(&t, &alert_id, "REJECTED").await;

    let reason = leg["reason"].as_str().expect("Dhan's reason");
    assert!(
        reason.contains("RMS") && reason.contains("insufficient funds"),
        "{leg}"
    );
    assert!(leg["message"].as_str().unwrap().contains(reason), "{leg}");

    let resp = t
        .app
        .get_admin(&format!("/orders/{alert_id}"), ADMIN_TOKEN)
        .await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["alert"]["id"], alert_id.as_str(), "{v}");
    assert_eq!(v["alert"]["status"], "rejected", "{v}");
    let events = v["legs"][0]["events"].as_array().expect("the history");
    let steps: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e["status"].as_str().unwrap(), e["source"].as_str().unwrap()))
        .collect();
    assert_eq!(
        steps,
        [
            ("SUBMITTING", "placement"),
            ("ACCEPTED", "placement"),
            ("REJECTED", "poll"),
        ],
        "{v}"
    );
    let last = events.last().unwrap();
    assert!(last["message"].as_str().unwrap().contains(reason), "{last}");
    assert!(last["at"].as_str().unwrap().ends_with("+05:30"), "{last}");
    assert_eq!(v["legs"][0]["reason"], reason, "{v}");
}

#[tokio::test]
async fn orders_by_alert_id_is_for_the_admin_and_knows_unknown_ids() {
    let t = live(SimConfig::default()).await;
    let (_, answer) = t.order("track-admin").await;
    let alert_id = answer["alert_id"].as_str().unwrap();
    let path = format!("/orders/{alert_id}");
    assert_eq!(t.app.get(&path).await.status(), 401);
    assert_eq!(t.app.get_admin(&path, "wrong").await.status(), 401);
    assert_eq!(
        t.app
            .get_admin("/orders/no-such-alert", ADMIN_TOKEN)
            .await
            .status(),
        404
    );
    let v: Value = t
        .app
        .get_admin(&path, ADMIN_TOKEN)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["legs"][0]["status"], "ACCEPTED", "{v}");
    assert_eq!(v["legs"][0]["events"].as_array().unwrap().len(), 2, "{v}");
}

#[tokio::test]
async fn polling_stops_at_the_final_state() {
    let t = live(SimConfig::default()).await;
    let mut body = flat_alert();
    body["id"] = json!("track-stop");
    let (alert_id, order_id) = placed(&t, &body, "TRADED").await;
    t.advance(chrono::Duration::seconds(3));
    wait_for_status(&t, &alert_id, "FILLED").await;
    let seen = lookups(&t, &order_id);

    for _ in 0..10 {
        t.advance(chrono::Duration::seconds(90));
        tokio::time::sleep(Duration::from_millis(30)).await;
    }

    assert_eq!(
        lookups(&t, &order_id),
        seen,
        "no lookup after FILLED: {:?}",
        t.sim.requests()
    );
}

#[tokio::test]
async fn a_resting_order_is_polled_with_backoff_until_its_trading_day_ends() {
    let t = live(SimConfig::default()).await;
    let mut body = flat_alert();
    body["id"] = json!("track-rest");
    body["order_type"] = json!("limit");
    let (alert_id, order_id) = placed(&t, &body, "PENDING").await;

    t.advance(chrono::Duration::seconds(3));
    let leg = wait_for_status(&t, &alert_id, "PENDING").await;
    assert_eq!(leg["filled_qty"], 0, "{leg}");

    // Backoff: a minute of ticks looks the order up a few times, not once a second.
    let before = lookups(&t, &order_id);
    for _ in 0..60 {
        t.advance(chrono::Duration::seconds(1));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let in_a_minute = lookups(&t, &order_id) - before;
    assert!(
        (2..=6).contains(&in_a_minute),
        "{in_a_minute} lookups in a minute"
    );

    // 10:01 IST + 6 h: past NSE's 15:30 close and the half hour after it.
    t.advance(chrono::Duration::hours(6));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let at_close = lookups(&t, &order_id);
    for _ in 0..5 {
        t.advance(chrono::Duration::minutes(5));
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert_eq!(
        lookups(&t, &order_id),
        at_close,
        "not looked up after its trading day"
    );
    assert_eq!(logs_leg(&t, &alert_id).await["status"], "PENDING");
}

#[tokio::test]
async fn many_open_orders_are_read_from_the_order_book_in_one_call() {
    let t = live(SimConfig::default()).await;
    let mut alert_ids = Vec::new();
    for n in 0..7 {
        let mut body = flat_alert();
        body["id"] = json!(format!("track-book-{n}"));
        let answer: Value = t.app.post_webhook(&body).await.json().await.unwrap();
        assert_eq!(answer["legs"][0]["status"], "ACCEPTED", "{answer}");
        alert_ids.push(answer["alert_id"].as_str().unwrap().to_owned());
    }
    eventually("Dhan trades them all", || {
        let orders = t.sim.orders();
        orders.len() == 7 && orders.iter().all(|o| o.status == "TRADED")
    })
    .await;

    t.advance(chrono::Duration::seconds(3));
    for alert_id in &alert_ids {
        wait_for_status(&t, alert_id, "FILLED").await;
    }

    let requests = t.sim.requests();
    let book_reads = requests
        .iter()
        .filter(|r| r.method == "GET" && r.path == "/v2/orders")
        .count();
    let single = requests
        .iter()
        .filter(|r| r.method == "GET" && r.path.starts_with("/v2/orders/"))
        .count();
    assert_eq!(book_reads, 1, "one order-book call for the seven");
    assert_eq!(single, 0, "no lookup one by one");
}

#[tokio::test]
async fn paper_orders_fill_at_once_or_rest_pending_with_the_reason_why() {
    let app = crate::helpers::spawn_app().await;
    let mut market = flat_alert();
    market["id"] = json!("paper-market");
    let filled: Value = app.post_webhook(&market).await.json().await.unwrap();
    let mut limit = flat_alert();
    limit["id"] = json!("paper-limit");
    limit["order_type"] = json!("limit");
    let pending: Value = app.post_webhook(&limit).await.json().await.unwrap();
    assert_eq!(filled["legs"][0]["status"], "FILLED", "{filled}");
    assert_eq!(pending["legs"][0]["status"], "PENDING", "{pending}");

    // The tracker asks the paper broker: nothing moves, and nothing is journaled.
    for _ in 0..5 {
        app.clock.advance(chrono::Duration::seconds(30));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let order = |id: &Value| {
        let path = format!("/orders/{}", id.as_str().unwrap());
        let app = &app;
        async move {
            let v: Value = app
                .get_admin(&path, ADMIN_TOKEN)
                .await
                .json()
                .await
                .unwrap();
            v["legs"][0].clone()
        }
    };
    let leg = order(&filled["alert_id"]).await;
    assert_eq!(leg["filled_qty"], 1, "{leg}");
    assert_eq!(leg["fill_price"], 2500.5, "{leg}");
    let leg = order(&pending["alert_id"]).await;
    assert_eq!(leg["status"], "PENDING", "{leg}");
    assert!(
        leg["message"]
            .as_str()
            .unwrap()
            .contains("does not simulate price movement"),
        "{leg}"
    );
    let sources: Vec<&str> = leg["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["source"].as_str().unwrap())
        .collect();
    assert_eq!(sources, ["placement", "placement"], "{leg}");
}

/// Dhan accepts the order, then its risk system refuses it: the trader's message says
/// "Rejected" with Dhan's reason, never "filled" (the upstream's Telegram said ✅ here).
#[tokio::test]
async fn an_rms_rejection_after_acceptance_is_told_as_rejected_with_dhans_reason() {
    use crate::{
        helpers::market_time,
        live::{sim_at, start_at},
        notify::{borrowed, fake_telegram, telegram_vars, until},
    };
    let (url, fake) = fake_telegram().await;
    let sim = sim_at(
        SimConfig {
            rms_reject_security_ids: vec!["2885".into()],
            ..SimConfig::default()
        },
        market_time(),
    )
    .await;
    let vars = telegram_vars(&url);
    let t = start_at(
        sim,
        std::sync::Arc::new(tempfile::tempdir().unwrap()),
        &borrowed(&vars),
        market_time(),
    )
    .await;
    let mut body = flat_alert();
    body["id"] = json!("track-reject-told");
    let (alert_id, _) = placed(&t, &body, "REJECTED").await;
    assert!(fake.taken().is_empty(), "ACCEPTED is not news");

    t.advance(chrono::Duration::seconds(3));
    wait_for_status(&t, &alert_id, "REJECTED").await;
    until("the rejection's message", || !fake.taken().is_empty()).await;
    let taken = fake.taken();
    assert_eq!(taken.len(), 1, "{taken:?}");
    let text = taken[0].body["text"].as_str().unwrap();
    assert!(
        text.starts_with("<b>❌ Rejected: BUY 1 RELIANCE</b>\n"),
        "{text}"
    );
    assert!(
        text.contains("RMS") && text.contains("insufficient funds"),
        "{text}"
    );
    assert!(!text.to_lowercase().contains("filled"), "{text}");
}

/// The README's simulator walkthrough, as a new user runs it: the simulator sets a price, a
/// market order is accepted, followed to FILLED at that price, and the fill is told through
/// the simulator's Telegram stand-in.
#[tokio::test]
async fn the_simulator_walkthrough_shows_a_fill_in_the_orders_and_in_telegram() {
    use crate::{
        helpers::{SECRET, market_time},
        live::{sim_at, start_at},
        notify::until,
    };
    let sim = sim_at(SimConfig::default(), market_time()).await;
    sim.set_price("2885", 1401.5);
    let telegram = format!("{}/sim/telegram", sim.auth_url());
    let t = start_at(
        sim,
        std::sync::Arc::new(tempfile::tempdir().unwrap()),
        &[
            ("TELEGRAM_API_URL", telegram.as_str()),
            ("TELEGRAM_BOT_TOKEN", "sim-bot"),
            ("TELEGRAM_CHAT_ID", "1"),
        ],
        market_time(),
    )
    .await;
    let body = json!({"secret": SECRET, "symbol": "NSE:RELIANCE", "action": "buy",
                      "quantity": 1, "product": "intraday", "id": "walkthrough"});
    let (alert_id, _) = placed(&t, &body, "TRADED").await;
    t.advance(chrono::Duration::seconds(3));
    let leg = wait_for_status(&t, &alert_id, "FILLED").await;
    assert_eq!(leg["fill_price"], 1401.5, "{leg}");
    until("the fill in the Telegram stand-in", || {
        !t.sim.telegram_messages().is_empty()
    })
    .await;
    let messages = t.sim.telegram_messages();
    assert_eq!(messages.len(), 1, "{messages:?}");
    let text = messages[0]["text"].as_str().unwrap();
    assert!(
        text.starts_with("<b>✅ Filled: BUY 1 RELIANCE</b>\nAverage price 1401.50"),
        "{text}"
    );
    assert_eq!(messages[0]["chat_id"], "1");
}

/// A limit order rests (PENDING) while the price is away, and is followed to FILLED at its
/// limit when the price crosses it; the fill is told then, not before.
#[tokio::test]
async fn a_limit_order_rests_then_fills_when_the_price_crosses() {
    use crate::{
        helpers::market_time,
        live::{sim_at, start_at},
        notify::{borrowed, fake_telegram, telegram_vars, until},
    };
    let (url, fake) = fake_telegram().await;
    let sim = sim_at(SimConfig::default(), market_time()).await;
    sim.set_price("2885", 2600.0);
    let vars = telegram_vars(&url);
    let t = start_at(
        sim,
        std::sync::Arc::new(tempfile::tempdir().unwrap()),
        &borrowed(&vars),
        market_time(),
    )
    .await;
    let mut body = flat_alert(); // buy RELIANCE, limit 2500.5
    body["id"] = json!("track-limit-cross");
    body["order_type"] = json!("limit");
    let (alert_id, _) = placed(&t, &body, "PENDING").await;
    t.advance(chrono::Duration::seconds(3));
    wait_for_status(&t, &alert_id, "PENDING").await;
    assert!(fake.taken().is_empty(), "a resting order is not news");

    t.sim.set_price("2885", 2499.0);
    // The next looks are due within the backoff's minute.
    for _ in 0..70 {
        t.advance(chrono::Duration::seconds(1));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let leg = wait_for_status(&t, &alert_id, "FILLED").await;
    assert_eq!(leg["fill_price"], 2500.5, "filled at its limit: {leg}");
    until("the fill's message", || !fake.taken().is_empty()).await;
    let text = fake.taken()[0].body["text"].as_str().unwrap().to_owned();
    assert!(
        text.starts_with("<b>✅ Filled: BUY 1 RELIANCE</b>\nAverage price 2500.50"),
        "{text}"
    );
}

/// An after-market order rests at Dhan overnight (PENDING) and is followed to FILLED when the
/// market opens the next morning.
#[tokio::test]
async fn an_amo_rests_overnight_and_fills_at_the_open() {
    use crate::{
        helpers::{SECRET, ist_time},
        live::{sim_at, start_at},
    };
    let evening = ist_time(2026, 12, 1, 20, 0);
    let sim = sim_at(SimConfig::default(), evening).await;
    sim.set_market_open(false);
    sim.set_price("2885", 1401.5);
    let t = start_at(
        sim,
        std::sync::Arc::new(tempfile::tempdir().unwrap()),
        &[],
        evening,
    )
    .await;
    let body = json!({"secret": SECRET, "symbol": "NSE:RELIANCE", "action": "buy",
                      "quantity": 1, "product": "intraday", "id": "track-amo"});
    let answer: Value = t.app.post_webhook(&body).await.json().await.unwrap();
    assert_eq!(answer["route"]["route"], "amo", "{answer}");
    let alert_id = answer["alert_id"].as_str().unwrap().to_owned();
    eventually("Dhan holds the AMO", || {
        t.sim
            .orders()
            .first()
            .is_some_and(|o| o.status == "PENDING")
    })
    .await;
    t.advance(chrono::Duration::seconds(3));
    wait_for_status(&t, &alert_id, "PENDING").await;

    // The next morning, 09:16 IST: the market opens and the order trades.
    t.advance(chrono::Duration::minutes(13 * 60 + 16));
    t.sim.set_market_open(true);
    eventually("Dhan trades the AMO at the open", || {
        t.sim.orders().first().is_some_and(|o| o.status == "TRADED")
    })
    .await;
    for _ in 0..70 {
        t.advance(chrono::Duration::seconds(1));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let leg = wait_for_status(&t, &alert_id, "FILLED").await;
    assert_eq!(leg["fill_price"], 1401.5, "{leg}");
}

const POSTBACK_SECRET: &str = "postback-path-7c1d9e2f4a6b8053";

/// Dhan's postbacks make the tracker look at once (the clock stands still here, so no
/// scheduled look comes): the order is re-read from Dhan and journaled with the source
/// `postback`.
#[tokio::test]
async fn a_postback_makes_the_order_be_read_at_once() {
    use crate::{
        helpers::market_time,
        live::{sim_at, start_at},
    };
    let sim = sim_at(SimConfig::default(), market_time()).await;
    let t = start_at(
        sim,
        std::sync::Arc::new(tempfile::tempdir().unwrap()),
        &[("DHAN_POSTBACK_SECRET", POSTBACK_SECRET)],
        market_time(),
    )
    .await;
    t.sim.set_postback_url(Some(
        &t.app.url(&format!("/dhan/postback/{POSTBACK_SECRET}")),
    ));
    let mut body = flat_alert();
    body["id"] = json!("track-postback");
    let (alert_id, _) = placed(&t, &body, "TRADED").await;
    let leg = wait_for_status(&t, &alert_id, "FILLED").await;
    assert_eq!(leg["filled_qty"], 1, "{leg}");
    let v: Value = t
        .app
        .get_admin(&format!("/orders/{alert_id}"), ADMIN_TOKEN)
        .await
        .json()
        .await
        .unwrap();
    let last = v["legs"][0]["events"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(
        (last["status"].as_str(), last["source"].as_str()),
        (Some("FILLED"), Some("postback")),
        "{v}"
    );
}

/// A forged postback ("it traded") changes nothing: the order is re-read from Dhan, which
/// still holds it open; a postback to any other path is an ordinary 404 and reads nothing.
#[tokio::test]
async fn a_forged_postback_changes_nothing() {
    use crate::{
        helpers::market_time,
        live::{sim_at, start_at},
    };
    let sim = sim_at(SimConfig::default(), market_time()).await;
    let t = start_at(
        sim,
        std::sync::Arc::new(tempfile::tempdir().unwrap()),
        &[("DHAN_POSTBACK_SECRET", POSTBACK_SECRET)],
        market_time(),
    )
    .await;
    let mut body = flat_alert();
    body["id"] = json!("track-forged");
    body["order_type"] = json!("limit");
    let (alert_id, order_id) = placed(&t, &body, "PENDING").await;
    t.advance(chrono::Duration::seconds(3));
    wait_for_status(&t, &alert_id, "PENDING").await;
    let before = lookups(&t, &order_id);

    let forged = json!({"orderId": order_id, "orderStatus": "TRADED", "filled_qty": 1,
                        "averageTradedPrice": 1.0});
    let wrong = t
        .app
        .client
        .post(t.app.url("/dhan/postback/guessed-path"))
        .json(&forged)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 404);
    let resp = t
        .app
        .client
        .post(t.app.url(&format!("/dhan/postback/{POSTBACK_SECRET}")))
        .json(&forged)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    eventually("the order re-read from Dhan", || {
        lookups(&t, &order_id) == before + 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let leg = logs_leg(&t, &alert_id).await;
    assert_eq!(
        leg["status"], "PENDING",
        "believed a forged postback: {leg}"
    );
    assert_eq!(leg["fill_price"], Value::Null, "{leg}");
}
