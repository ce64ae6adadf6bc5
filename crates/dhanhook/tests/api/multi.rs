//! Two instances sharing one PostgreSQL journal against one dhan-sim: the same alert sent to
//! both many times places one order; both instances see the same journal; one token mint
//! serves both, at start-up and when the token expires; one order tracker polls for both.

use std::sync::Arc;

use dhan_sim::SimConfig;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::{
    helpers::{SECRET, market_time, spawn_app_at},
    journal_contract::{PG_URL_VAR, TestDatabase},
    live::{eventually, live_vars, sim_at},
};

fn live_env(sim: &dhan_sim::SimHandle, database_url: &str) -> Vec<(String, String)> {
    let mut env = live_vars(sim);
    env.push(("DATABASE_URL".into(), database_url.to_owned()));
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_postgres_place_one_order_for_two_hundred_deliveries_and_mint_once() {
    let Ok(server) = std::env::var(PG_URL_VAR) else {
        eprintln!("skipping the two-instance PostgreSQL test: {PG_URL_VAR} is not set");
        return;
    };
    let db = TestDatabase::create(&server).await;
    let sim = sim_at(SimConfig::default(), market_time()).await;
    let env = live_env(&sim, db.url.expose_secret());
    let vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let a = spawn_app_at(Arc::new(tempfile::tempdir().unwrap()), &vars, market_time()).await;
    let b = spawn_app_at(Arc::new(tempfile::tempdir().unwrap()), &vars, market_time()).await;

    // Start-up: both need a token; the lease lets one mint and the other adopt it.
    eventually("a token for both", || sim.mint_count() >= 1).await;
    let alert = json!({"secret": SECRET, "id": "shared-1", "symbol": "NSE:RELIANCE", "action": "buy",
                       "quantity": 1, "product": "intraday"});
    let sends = (0..200).map(|i| {
        let app = if i % 2 == 0 { &a } else { &b };
        let alert = alert.clone();
        async move {
            let resp = app.post_webhook(&alert).await;
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap();
            let body: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("HTTP {status}, not JSON ({e}): {text}"));
            (status, body)
        }
    });
    let answers = futures::future::join_all(sends).await;

    // Every delivery gets an answer in time: 200/202, or, when a loaded journal has not taken
    // a delivery by ACK_DEADLINE_MS, a 503 that makes TradingView resend (safe: recognised).
    let late = |v: &Value| {
        v["error"]
            .as_str()
            .is_some_and(|e| e.contains("did not record the alert in time"))
    };
    assert!(
        answers
            .iter()
            .all(|(s, v)| *s == 200 || *s == 202 || (*s == 503 && late(v))),
        "{answers:?}"
    );
    let recorded: Vec<&Value> = answers
        .iter()
        .filter(|(s, _)| *s != 503)
        .map(|(_, v)| v)
        .collect();
    assert!(
        recorded.iter().filter(|v| v["duplicate"] == false).count() <= 1,
        "one delivery is the alert, the others its repeats"
    );
    assert!(
        recorded
            .iter()
            .all(|v| v["alert_id"] == recorded[0]["alert_id"]),
        "every answer names the one journaled alert"
    );
    eventually("the order at Dhan", || sim.orders().len() == 1).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        sim.orders().len(),
        1,
        "one order for 40 deliveries to two instances"
    );
    assert_eq!(sim.mint_count(), 1, "one token for both instances");
    let logs_a: Value = a
        .get_admin("/logs", crate::helpers::ADMIN_TOKEN)
        .await
        .json()
        .await
        .unwrap();
    let logs_b: Value = b
        .get_admin("/logs", crate::helpers::ADMIN_TOKEN)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        logs_a["orders"], logs_b["orders"],
        "both instances read the same journal"
    );
    assert_eq!(logs_a["count"], 1);

    // A day later the token expires: both schedulers want a new one; one mint serves both.
    for app in [&a, &b] {
        app.clock
            .advance(chrono::Duration::hours(23) + chrono::Duration::minutes(1));
    }
    sim.advance(chrono::Duration::hours(23) + chrono::Duration::minutes(1));
    eventually("the refresh", || sim.mint_count() == 2).await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(
        sim.mint_count(),
        2,
        "exactly one mint for the two instances"
    );
    // Not even a refused second attempt: at Dhan a second mint would end the first token.
    let attempts = sim
        .requests()
        .iter()
        .filter(|r| r.path == "/app/generateAccessToken")
        .count();
    assert_eq!(attempts, 2, "one mint request at start-up, one at expiry");

    a.stop().await;
    b.stop().await;
    db.drop().await;
}

/// One order tracker polls across instances (its journal lease): two instances following the
/// same resting order look it up as often as one does.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_postgres_poll_an_open_order_as_one() {
    let Ok(server) = std::env::var(PG_URL_VAR) else {
        eprintln!("skipping the two-instance PostgreSQL test: {PG_URL_VAR} is not set");
        return;
    };
    let db = TestDatabase::create(&server).await;
    let sim = sim_at(SimConfig::default(), market_time()).await;
    let env = live_env(&sim, db.url.expose_secret());
    let vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let a = spawn_app_at(Arc::new(tempfile::tempdir().unwrap()), &vars, market_time()).await;
    let b = spawn_app_at(Arc::new(tempfile::tempdir().unwrap()), &vars, market_time()).await;
    eventually("a token for both", || sim.mint_count() >= 1).await;
    let alert = json!({"secret": SECRET, "id": "shared-rest", "symbol": "NSE:RELIANCE",
                       "action": "buy", "quantity": 1, "product": "intraday",
                       "order_type": "limit", "price": "2400"});
    let answer: Value = a.post_webhook(&alert).await.json().await.unwrap();
    assert_eq!(answer["legs"][0]["status"], "ACCEPTED", "{answer}");
    let order_id = answer["legs"][0]["order_id"].as_str().unwrap().to_owned();
    eventually("Dhan rests the order", || {
        sim.orders().first().is_some_and(|o| o.status == "PENDING")
    })
    .await;
    let lookups = || {
        let path = format!("/v2/orders/{order_id}");
        sim.requests()
            .iter()
            .filter(|r| r.method == "GET" && r.path == path)
            .count()
    };
    let advance = |d: chrono::Duration| {
        a.clock.advance(d);
        b.clock.advance(d);
        sim.advance(d);
    };

    for _ in 0..63 {
        advance(chrono::Duration::seconds(1));
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    let rows = a.journal_orders().await;
    assert_eq!(rows[0].status.as_str(), "PENDING", "{rows:?}");
    // One poller: looks at about 2, 4, 8, 16, 32 s after each move (a second tracker would
    // double that).
    let n = lookups();
    assert!(
        (2..=6).contains(&n),
        "{n} lookups in a minute by two instances"
    );
    a.stop().await;
    b.stop().await;
    db.drop().await;
}

/// Two paper instances share one PostgreSQL journal and one Telegram chat, which is down when
/// ten orders fill: once it is back, every message arrives exactly once, though both
/// instances' notifiers retry the same outbox.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_postgres_deliver_each_notification_exactly_once() {
    use crate::notify::{fake_telegram, telegram_vars, until};
    let Ok(server) = std::env::var(PG_URL_VAR) else {
        eprintln!("skipping the two-instance PostgreSQL test: {PG_URL_VAR} is not set");
        return;
    };
    let db = TestDatabase::create(&server).await;
    let (url, fake) = fake_telegram().await;
    fake.failing
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let mut env: Vec<(String, String)> = telegram_vars(&url)
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    env.push(("DATABASE_URL".into(), db.url.expose_secret().to_owned()));
    let vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let a = spawn_app_at(Arc::new(tempfile::tempdir().unwrap()), &vars, market_time()).await;
    let b = spawn_app_at(Arc::new(tempfile::tempdir().unwrap()), &vars, market_time()).await;

    for i in 0..10 {
        let app = if i % 2 == 0 { &a } else { &b };
        let alert = json!({"secret": SECRET, "id": format!("told-{i}"), "symbol": "NSE:SBIN",
                           "action": "buy", "quantity": 1, "product": "intraday"});
        let answer: Value = app.post_webhook(&alert).await.json().await.unwrap();
        assert_eq!(answer["legs"][0]["status"], "FILLED", "{answer}");
    }
    until("a first round of refused deliveries", || {
        fake.received.lock().unwrap().len() >= 10
    })
    .await;

    fake.failing
        .store(false, std::sync::atomic::Ordering::SeqCst);
    // Both instances' retries come due (backoff of at most 10 s after two failures).
    for _ in 0..4 {
        a.clock.advance(chrono::Duration::seconds(10));
        b.clock.advance(chrono::Duration::seconds(10));
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    until("every message delivered", || fake.taken().len() >= 10).await;
    for _ in 0..3 {
        a.clock.advance(chrono::Duration::seconds(60));
        b.clock.advance(chrono::Duration::seconds(60));
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let mut texts: Vec<String> = fake
        .taken()
        .iter()
        .map(|r| r.body["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(texts.len(), 10, "each exactly once: {texts:?}");
    texts.sort();
    texts.dedup();
    assert_eq!(texts.len(), 10, "no message twice: {texts:?}");
    a.stop().await;
    b.stop().await;
    db.drop().await;
}
