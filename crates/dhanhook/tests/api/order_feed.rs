//! Dhan's order-update WebSocket (dhan-sim's `/order-update`) as the way a leg learns its
//! fill: with the service's clock standing still the tracker never polls, so a leg that moves
//! did so through the feed; the history says `websocket`. Then the feed dropped mid-day
//! (polling covers the gap, the feed comes back), and two instances on PostgreSQL holding one
//! connection between them.

use std::{sync::Arc, time::Duration};

use dhan_sim::SimConfig;
use secrecy::ExposeSecret as _;
use serde_json::{Value, json};

use crate::{
    helpers::{ADMIN_TOKEN, flat_alert, market_time, spawn_app_at},
    journal_contract::{PG_URL_VAR, TestDatabase},
    live::{Live, eventually, live_vars, sim_at, start_at},
};

/// The app in live mode with the feed pointed at the simulator's, once it has logged in.
async fn with_feed(config: SimConfig) -> Live {
    let sim = sim_at(config, market_time()).await;
    let url = sim.order_update_url();
    let t = start_at(
        sim,
        Arc::new(tempfile::tempdir().unwrap()),
        &[("DHAN_ORDER_FEED_URL", url.as_str())],
        market_time(),
    )
    .await;
    eventually("the feed logs in", || t.sim.order_update_clients() == 1).await;
    t
}

/// The history of `alert_id`'s first leg as (status, source) pairs.
async fn history(t: &Live, alert_id: &str) -> Vec<(String, String)> {
    let v: Value = t
        .app
        .get_admin(&format!("/orders/{alert_id}"), ADMIN_TOKEN)
        .await
        .json()
        .await
        .unwrap();
    v["legs"][0]["events"]
        .as_array()
        .unwrap_or_else(|| panic!("no history: {v}"))
        .iter()
        .map(|e| {
            (
                e["status"].as_str().unwrap().to_owned(),
                e["source"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Waits, at most `bound` of real time, until the journal shows `alert_id`'s leg in `status`.
async fn reaches(t: &Live, alert_id: &str, status: &str, bound: Duration) -> bool {
    let until = std::time::Instant::now() + bound;
    while std::time::Instant::now() < until {
        let rows = t.app.journal_orders().await;
        if rows
            .iter()
            .any(|r| r.alert_id == alert_id && r.status.as_str() == status)
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

/// `GET /v2/orders/...` lookups Dhan received (the tracker's polling).
fn polls(t: &Live) -> usize {
    t.sim
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.starts_with("/v2/orders"))
        .count()
}

async fn place(t: &Live, id: &str) -> String {
    let mut body = flat_alert();
    body["id"] = json!(id);
    let answer: Value = t.app.post_webhook(&body).await.json().await.unwrap();
    assert_eq!(answer["legs"][0]["status"], "ACCEPTED", "{answer}");
    answer["alert_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_market_order_is_filled_through_the_feed_within_two_seconds_in_either_casing() {
    for pascal in [false, true] {
        let t = with_feed(SimConfig {
            order_update_pascal_case: pascal,
            ..SimConfig::default()
        })
        .await;
        let alert_id = place(&t, &format!("feed-fill-{pascal}")).await;

        assert!(
            reaches(&t, &alert_id, "FILLED", Duration::from_secs(2)).await,
            "FILLED within 2 s through the feed (PascalCase: {pascal}): {:?}",
            t.app.journal_orders().await
        );
        assert_eq!(polls(&t), 0, "the clock stood still: nothing was polled");
        let steps = history(&t, &alert_id).await;
        assert_eq!(
            steps.last().map(|(s, src)| (s.as_str(), src.as_str())),
            Some(("FILLED", "websocket")),
            "{steps:?}"
        );
        let leg = t.app.journal_orders().await.remove(0);
        let sim_order = t.sim.orders().remove(0);
        assert_eq!(leg.fill_price, Some(sim_order.average_traded_price));
        assert_eq!(leg.detail.filled_qty, Some(1));
        assert!(leg.detail.exchange_order_id.is_some(), "{leg:?}");
        // The final-state CSV row, as with polling.
        eventually("the final-state CSV row", || {
            let (_, rows) = t.app.csv();
            rows.iter()
                .any(|r| r["alert_id"] == alert_id && r["status"] == "FILLED")
        })
        .await;
        t.app.stop().await;
    }
}

#[tokio::test]
async fn an_rms_rejection_arrives_through_the_feed_with_dhans_reason() {
    let t = with_feed(SimConfig {
        rms_reject_security_ids: vec!["2885".into()],
        ..SimConfig::default()
    })
    .await;
    let alert_id = place(&t, "feed-reject").await;
    assert!(reaches(&t, &alert_id, "REJECTED", Duration::from_secs(10)).await);
    let leg = t.app.journal_orders().await.remove(0);
    let reason = leg.detail.reason.expect("Dhan's reason");
    assert!(reason.contains("insufficient funds"), "{reason}");
    assert_eq!(polls(&t), 0);
    assert_eq!(history(&t, &alert_id).await.last().unwrap().1, "websocket");
}

#[tokio::test]
async fn a_feed_dropped_mid_day_comes_back_and_polling_covers_the_gap() {
    let t = with_feed(SimConfig::default()).await;
    // The network drops the feed and Dhan's host refuses new connections for a while.
    t.sim.refuse_order_update_connections(true);
    t.sim.drop_order_update_connections();
    eventually("the feed is down", || t.sim.order_update_clients() == 0).await;

    let during = place(&t, "feed-gap").await;
    eventually("Dhan fills it", || {
        t.sim.orders().first().is_some_and(|o| o.status == "TRADED")
    })
    .await;
    // Nothing comes through the feed: the leg waits for its first poll.
    assert!(!reaches(&t, &during, "FILLED", Duration::from_millis(300)).await);
    t.advance(chrono::Duration::seconds(3));
    assert!(reaches(&t, &during, "FILLED", Duration::from_secs(10)).await);
    assert_eq!(history(&t, &during).await.last().unwrap().1, "poll");

    // Dhan takes connections again: the feed reconnects on its own (its backoff is counted
    // on the service's clock).
    t.sim.refuse_order_update_connections(false);
    for _ in 0..100 {
        if t.sim.order_update_clients() == 1 {
            break;
        }
        t.advance(chrono::Duration::seconds(1));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(t.sim.order_update_clients(), 1, "the feed reconnected");

    let polled = polls(&t);
    let after = place(&t, "feed-back").await;
    assert!(reaches(&t, &after, "FILLED", Duration::from_secs(10)).await);
    assert_eq!(history(&t, &after).await.last().unwrap().1, "websocket");
    assert_eq!(polls(&t), polled, "the new order was not polled");
}

#[tokio::test(flavor = "current_thread")]
async fn a_refused_connection_is_retried_further_apart_and_the_token_never_logged() {
    let logs = crate::guide::Captured::this_thread();
    let t = with_feed(SimConfig::default()).await;
    // Dhan's host refuses the upgrade (HTTP 503) for a while: the feed keeps trying, further
    // apart each time, on the service's clock.
    t.sim.refuse_order_update_connections(true);
    t.sim.drop_order_update_connections();
    eventually("the feed is down", || t.sim.order_update_clients() == 0).await;
    let attempts = || {
        t.sim
            .requests()
            .iter()
            .filter(|r| r.path == "/order-update")
            .count()
    };
    let before = attempts();
    for _ in 0..7 {
        t.advance(chrono::Duration::seconds(1));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let tries = attempts() - before;
    // 1 s, then 2 s, then 4 s apart: about three tries in seven seconds, not seven.
    assert!((2..=4).contains(&tries), "{tries} tries in 7 s");
    let text = logs.text();
    assert!(
        text.contains("order feed: could not connect: Dhan answered HTTP 503"),
        "{text}"
    );
    let token = t.sim.active_token().expect("a token");
    assert!(!text.contains(&token), "the token is never logged");
}

/// Two instances on one PostgreSQL journal: one feed connection between them, and the other
/// takes over when the first stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_postgres_hold_one_feed() {
    let Ok(server) = std::env::var(PG_URL_VAR) else {
        eprintln!("skipping the two-instance PostgreSQL feed test: {PG_URL_VAR} is not set");
        return;
    };
    let db = TestDatabase::create(&server).await;
    let sim = sim_at(SimConfig::default(), market_time()).await;
    let mut env = live_vars(&sim);
    env.push(("DATABASE_URL".into(), db.url.expose_secret().to_owned()));
    env.push(("DHAN_ORDER_FEED_URL".into(), sim.order_update_url()));
    let vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let a = spawn_app_at(Arc::new(tempfile::tempdir().unwrap()), &vars, market_time()).await;
    let b = spawn_app_at(Arc::new(tempfile::tempdir().unwrap()), &vars, market_time()).await;
    eventually("one feed", || sim.order_update_clients() == 1).await;
    let advance = |d: chrono::Duration| {
        a.clock.advance(d);
        b.clock.advance(d);
        sim.advance(d);
    };
    // Through lease renewals and the other's attempts to take it: still one.
    for _ in 0..6 {
        advance(chrono::Duration::seconds(10));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(sim.order_update_clients(), 1);
    }

    // Whichever holds it, an order placed through either is filled through the feed.
    let mut body = flat_alert();
    body["id"] = json!("two-feeds");
    let answer: Value = b.post_webhook(&body).await.json().await.unwrap();
    let alert_id = answer["alert_id"].as_str().unwrap().to_owned();
    eventually("FILLED through the feed", || {
        sim.orders().first().is_some_and(|o| o.status == "TRADED")
    })
    .await;
    let mut filled = false;
    for _ in 0..500 {
        if b.journal_orders().await[0].status.as_str() == "FILLED" {
            filled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(filled, "{:?}", b.journal_orders().await);
    let v: Value = b
        .get_admin(&format!("/orders/{alert_id}"), ADMIN_TOKEN)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        v["legs"][0]["events"].as_array().unwrap().last().unwrap()["source"],
        "websocket",
        "{v}"
    );

    // One stops (releasing its lease if it held the feed): the other holds it now.
    a.stop().await;
    for _ in 0..100 {
        if sim.order_update_clients() == 1 {
            break;
        }
        b.clock.advance(chrono::Duration::seconds(1));
        sim.advance(chrono::Duration::seconds(1));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        sim.order_update_clients(),
        1,
        "the other instance took over"
    );
    b.stop().await;
    db.drop().await;
}
