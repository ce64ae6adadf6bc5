//! Notifications end to end, against a fake Telegram Bot API on loopback that records every
//! message (and can refuse them): what the trader reads, that it is truthful and escaped, that
//! it carries no secret, and that an undelivered message survives a restart and arrives once.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use axum::{Json, Router, extract::State, http::StatusCode, routing::post};
use serde_json::{Value, json};

use crate::helpers::{ADMIN_TOKEN, SECRET, spawn_app_with};

const BOT_TOKEN: &str = "123456:fake-bot-token-for-tests-0f9e8d";
const CHAT_ID: &str = "-1001234567890";

/// One request the fake received.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    body: Value,
    /// Whether the fake took it (200) or refused it (500).
    taken: bool,
}

#[derive(Clone, Default)]
struct Fake {
    received: Arc<Mutex<Vec<Received>>>,
    failing: Arc<AtomicBool>,
}

impl Fake {
    fn taken(&self) -> Vec<Received> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.taken)
            .cloned()
            .collect()
    }

    fn attempts(&self) -> usize {
        self.received.lock().unwrap().len()
    }
}

/// Starts the fake; returns its base URL (what `TELEGRAM_API_URL` takes).
async fn fake_telegram() -> (String, Fake) {
    async fn send(
        State(fake): State<Fake>,
        uri: axum::http::Uri,
        Json(body): Json<Value>,
    ) -> (StatusCode, Json<Value>) {
        let taken = !fake.failing.load(Ordering::SeqCst);
        fake.received.lock().unwrap().push(Received {
            path: uri.path().to_owned(),
            body,
            taken,
        });
        if taken {
            (StatusCode::OK, Json(json!({"ok": true})))
        } else {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({"ok": false, "description": "Internal Server Error"})),
            )
        }
    }
    let fake = Fake::default();
    let app = Router::new()
        .route("/{*path}", post(send))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, fake)
}

/// Waits (real time, bounded) until `f` holds.
async fn until(what: &str, f: impl Fn() -> bool) {
    for _ in 0..1000 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

fn telegram_vars(url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("TELEGRAM_BOT_TOKEN", BOT_TOKEN.to_owned()),
        ("TELEGRAM_CHAT_ID", CHAT_ID.to_owned()),
        ("TELEGRAM_API_URL", url.to_owned()),
    ]
}

fn borrowed<'a>(vars: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    vars.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

fn market_order(symbol: &str) -> Value {
    json!({"secret": SECRET, "symbol": symbol, "action": "buy", "quantity": "1",
           "product": "intraday"})
}

/// A filled order is told once, as filled, in Telegram's HTML mode with the symbol escaped; an
/// order the broker only holds (a paper limit order, PENDING) is not news and sends nothing.
#[tokio::test]
async fn a_fill_is_told_as_filled_and_a_pending_order_is_not() {
    let (url, fake) = fake_telegram().await;
    let vars = telegram_vars(&url);
    let app = spawn_app_with(Arc::new(tempfile::tempdir().unwrap()), &borrowed(&vars)).await;

    let limit = json!({"secret": SECRET, "symbol": "NSE:RELIANCE", "action": "buy",
                       "quantity": "1", "product": "intraday", "order_type": "limit",
                       "price": "2500.5"});
    let answer: Value = app.post_webhook(&limit).await.json().await.unwrap();
    assert_eq!(answer["legs"][0]["status"], "PENDING", "{answer}");
    let answer: Value = app
        .post_webhook(&market_order("NSE:M&M"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(answer["legs"][0]["status"], "FILLED", "{answer}");

    until("the fill's message", || !fake.taken().is_empty()).await;
    let messages = fake.taken();
    assert_eq!(messages.len(), 1, "only the fill is news: {messages:?}");
    let m = &messages[0];
    assert_eq!(m.path, format!("/bot{BOT_TOKEN}/sendMessage"));
    assert_eq!(m.body["chat_id"], CHAT_ID);
    assert_eq!(m.body["parse_mode"], "HTML");
    let text = m.body["text"].as_str().unwrap();
    assert!(
        text.starts_with("<b>✅ Filled (paper): BUY 1 M&amp;M</b>\n"),
        "{text}"
    );
    assert!(
        text.contains(answer["alert_id"].as_str().unwrap()),
        "the message names the alert: {text}"
    );
    for secret in [SECRET, ADMIN_TOKEN, BOT_TOKEN] {
        assert!(!text.contains(secret), "a secret in the message: {text}");
    }
    app.stop().await;
}

/// Telegram is down when the order fills and the service restarts before it comes back: the
/// message waits in the journal, is retried after the restart, and arrives exactly once.
#[tokio::test]
async fn an_undelivered_message_survives_a_restart_and_arrives_once() {
    let (url, fake) = fake_telegram().await;
    fake.failing.store(true, Ordering::SeqCst);
    let vars = telegram_vars(&url);
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let app = spawn_app_with(Arc::clone(&dir), &borrowed(&vars)).await;
    let answer: Value = app
        .post_webhook(&market_order("NSE:SBIN"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(answer["legs"][0]["status"], "FILLED", "{answer}");
    until("a first, refused delivery", || fake.attempts() >= 1).await;
    let dir = app.stop().await;

    fake.failing.store(false, Ordering::SeqCst);
    let app = spawn_app_with(dir, &borrowed(&vars)).await;
    // The retry is due 5 s after the failure, on the service's clock.
    app.clock.advance(chrono::Duration::seconds(10));
    until("the delivery after the restart", || {
        !fake.taken().is_empty()
    })
    .await;
    // Later wake-ups send nothing more.
    app.clock.advance(chrono::Duration::minutes(5));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let taken = fake.taken();
    assert_eq!(taken.len(), 1, "delivered exactly once: {taken:?}");
    assert!(
        taken[0].body["text"]
            .as_str()
            .unwrap()
            .starts_with("<b>✅ Filled (paper): BUY 1 SBIN</b>"),
        "{taken:?}"
    );
    app.stop().await;
}

/// `NOTIFY_EVENTS` switches kinds off: with only rejections on, a fill sends nothing.
#[tokio::test]
async fn notify_events_switches_kinds_off() {
    let (url, fake) = fake_telegram().await;
    let mut vars = telegram_vars(&url);
    vars.push(("NOTIFY_EVENTS", "rejected,needs_attention".to_owned()));
    let app = spawn_app_with(Arc::new(tempfile::tempdir().unwrap()), &borrowed(&vars)).await;
    let answer: Value = app
        .post_webhook(&market_order("NSE:SBIN"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(answer["legs"][0]["status"], "FILLED", "{answer}");
    app.clock.advance(chrono::Duration::minutes(1));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fake.attempts(), 0, "fills are switched off");
    app.stop().await;
}

/// `dhanhook notify-test` sends one test message and says so; without a channel it says what
/// to set and exits non-zero.
#[tokio::test]
async fn notify_test_sends_one_message_or_says_what_is_missing() {
    let (url, fake) = fake_telegram().await;
    let dir = tempfile::tempdir().unwrap();
    let run = |vars: Vec<(&'static str, String)>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_dhanhook"));
        cmd.arg("notify-test")
            .current_dir(dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATA_DIR", dir.path());
        for (k, v) in vars {
            cmd.env(k, v);
        }
        // The fake answers on this runtime: run the binary on a blocking thread.
        async move {
            tokio::task::spawn_blocking(move || cmd.output())
                .await
                .unwrap()
        }
    };
    let out = run(telegram_vars(&url)).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("✓ telegram: test message sent"), "{stdout}");
    let taken = fake.taken();
    assert_eq!(taken.len(), 1);
    assert!(
        taken[0].body["text"]
            .as_str()
            .unwrap()
            .starts_with("<b>dhanhook test message</b>"),
        "{taken:?}"
    );
    assert!(
        !stdout.contains(BOT_TOKEN) && !String::from_utf8_lossy(&out.stderr).contains(BOT_TOKEN)
    );

    let out = run(Vec::new()).await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("set TELEGRAM_BOT_TOKEN and TELEGRAM_CHAT_ID, or NOTIFY_WEBHOOK_URL"),
        "{stderr}"
    );
}
