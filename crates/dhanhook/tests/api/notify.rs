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
pub(crate) struct Received {
    pub(crate) path: String,
    pub(crate) body: Value,
    /// Whether the fake took it (200) or refused it (500).
    taken: bool,
}

#[derive(Clone, Default)]
pub(crate) struct Fake {
    pub(crate) received: Arc<Mutex<Vec<Received>>>,
    pub(crate) failing: Arc<AtomicBool>,
}

impl Fake {
    pub(crate) fn taken(&self) -> Vec<Received> {
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
pub(crate) async fn fake_telegram() -> (String, Fake) {
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
pub(crate) async fn until(what: &str, f: impl Fn() -> bool) {
    for _ in 0..1000 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

pub(crate) fn telegram_vars(url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("TELEGRAM_BOT_TOKEN", BOT_TOKEN.to_owned()),
        ("TELEGRAM_CHAT_ID", CHAT_ID.to_owned()),
        ("TELEGRAM_API_URL", url.to_owned()),
    ]
}

pub(crate) fn borrowed<'a>(vars: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
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
    // The retry is due 5 s after the failure, on the service's clock; 61 s also covers a stop
    // that came before the failure was recorded (the claim then lapses after 60 s).
    app.clock.advance(chrono::Duration::seconds(61));
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

/// A token Dhan refuses, with no PIN + TOTP to replace it, stops every order: the trader is
/// told once, with what to do; and told again when a token is back (here through the API-key
/// consent flow).
#[tokio::test]
async fn a_token_that_cannot_be_renewed_is_told_and_so_is_its_recovery() {
    use crate::helpers::market_time;
    use crate::live::{sim_at, start_at};

    let (url, fake) = fake_telegram().await;
    let sim = sim_at(dhan_sim::SimConfig::default(), market_time()).await;
    let c = dhan_sim::SimConfig::default();
    let pasted = sim.issue_app_token();
    let mut vars = telegram_vars(&url);
    vars.extend([
        ("DHAN_PIN", String::new()),
        ("DHAN_TOTP_SECRET", String::new()),
        ("DHAN_ACCESS_TOKEN", pasted),
        ("DHAN_API_KEY", c.api_key.clone()),
        ("DHAN_API_SECRET", c.api_secret.clone()),
    ]);
    let t = start_at(
        sim,
        Arc::new(tempfile::tempdir().unwrap()),
        &borrowed(&vars),
        market_time(),
    )
    .await;
    let (_, body) = t.order("with-the-pasted-token").await;
    assert_eq!(body["legs"][0]["status"], "ACCEPTED", "{body}");

    // Dhan refuses the token (another login, the daily logout…).
    t.sim.inject(dhan_sim::Fault::AuthFailure, 1);
    let (_, body) = t.order("refused").await;
    assert_eq!(body["legs"][0]["status"], "REJECTED", "{body}");
    let texts = || -> Vec<String> {
        fake.taken()
            .iter()
            .map(|r| r.body["text"].as_str().unwrap().to_owned())
            .collect()
    };
    let token_news = || -> Vec<String> {
        texts()
            .into_iter()
            .filter(|t| t.starts_with("<b>🔴") || t.starts_with("<b>🟢"))
            .collect()
    };
    until("the trouble message", || !token_news().is_empty()).await;
    let trouble = token_news()[0].clone();
    assert!(
        trouble.starts_with("<b>🔴 No usable Dhan token (refused)</b>"),
        "{trouble}"
    );
    assert!(trouble.contains("DHAN_PIN"), "says what to add: {trouble}");
    until("the refused order's message", || {
        texts()
            .iter()
            .any(|t| t.starts_with("<b>❌ Rejected: BUY 1 RELIANCE</b>"))
    })
    .await;

    // A person completes the consent flow: a token is back.
    let started: Value = t
        .app
        .post_admin("/auth/consent")
        .await
        .json()
        .await
        .unwrap();
    let login_url = started["login_url"].as_str().unwrap().to_owned();
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = no_redirects.get(&login_url).send().await.unwrap();
    let location = login.headers()["location"].to_str().unwrap().to_owned();
    let token_id = location.split("tokenId=").nth(1).unwrap().to_owned();
    let done = t
        .app
        .get(&format!("/auth/callback?tokenId={token_id}"))
        .await;
    assert_eq!(done.status(), 200);
    until("the recovery message", || token_news().len() >= 2).await;
    let news = token_news();
    assert_eq!(news.len(), 2, "trouble once, recovery once: {news:?}");
    assert!(
        news[1].starts_with("<b>🟢 Dhan token usable again</b>"),
        "{news:?}"
    );
}

/// After the close the trader gets the day in one message, once, even across a restart.
#[tokio::test]
async fn the_day_is_summed_up_once_after_the_close() {
    let (url, fake) = fake_telegram().await;
    let vars = telegram_vars(&url);
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let app = spawn_app_with(Arc::clone(&dir), &borrowed(&vars)).await;
    app.post_webhook(&market_order("NSE:SBIN")).await;
    let limit = json!({"secret": SECRET, "symbol": "NSE:RELIANCE", "action": "buy",
                       "quantity": "1", "product": "intraday", "order_type": "limit",
                       "price": "2500.5"});
    app.post_webhook(&limit).await;
    until("the fill's message", || fake.taken().len() == 1).await;

    // 10:00 → 15:50 IST on Tuesday 2026-12-01.
    app.clock.advance(chrono::Duration::minutes(350));
    let summaries = || -> Vec<String> {
        fake.taken()
            .iter()
            .map(|r| r.body["text"].as_str().unwrap().to_owned())
            .filter(|t| t.starts_with("<b>📊"))
            .collect()
    };
    until("the summary", || !summaries().is_empty()).await;
    assert_eq!(
        summaries(),
        [
            "<b>📊 2026-12-01 (paper): 2 alerts</b>\nFilled 1 · Rejected 0 · Open at the broker 1 · Queued 0"
        ]
    );
    let dir = app.stop().await;

    // A restart the same afternoon does not send it again.
    let app = spawn_app_with(dir, &borrowed(&vars)).await;
    app.clock.advance(chrono::Duration::minutes(350));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(summaries().len(), 1, "one summary a day");
    app.stop().await;
}

/// `kill -9` while a message could not be delivered yet: after the restart it is delivered,
/// once. The real binary, on the machine's clock (started at market hours).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_kill_9_an_undelivered_message_is_delivered_once() {
    use crate::cli::serve;
    let (url, fake) = fake_telegram().await;
    fake.failing.store(true, Ordering::SeqCst);
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let start = crate::helpers::market_time().to_rfc3339();
    let vars: Vec<(String, String)> = [
        ("TELEGRAM_BOT_TOKEN", BOT_TOKEN),
        ("TELEGRAM_CHAT_ID", CHAT_ID),
        ("TELEGRAM_API_URL", url.as_str()),
        ("WEBHOOK_SECRET", SECRET),
        ("DATA_DIR", &dir.path().display().to_string()),
        ("DHANHOOK_CLOCK_START", start.as_str()),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let run = |vars: Vec<(String, String)>, dir: Arc<tempfile::TempDir>| async move {
        tokio::task::spawn_blocking(move || {
            let borrowed: Vec<(&str, &str)> =
                vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            serve(dir.path(), &borrowed)
        })
        .await
        .unwrap()
    };

    let served = run(vars.clone(), Arc::clone(&dir)).await;
    let (status, answer) = served.post_alert(&market_order("NSE:SBIN")).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["legs"][0]["status"], "FILLED", "{answer}");
    until("a first, refused delivery", || fake.attempts() >= 1).await;
    // Its failure is recorded at once; then the process dies without any shutdown.
    tokio::time::sleep(Duration::from_millis(300)).await;
    tokio::task::spawn_blocking(move || served.kill9())
        .await
        .unwrap();

    fake.failing.store(false, Ordering::SeqCst);
    let served = run(vars, Arc::clone(&dir)).await;
    // The retry is due 5 s after the failure (real time here); if the kill came before the
    // failure was recorded, the claim lapses after 60 s.
    for _ in 0..9000 {
        if !fake.taken().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let taken = fake.taken();
    assert_eq!(taken.len(), 1, "delivered once: {taken:?}");
    assert!(
        taken[0].body["text"]
            .as_str()
            .unwrap()
            .starts_with("<b>✅ Filled (paper): BUY 1 SBIN</b>"),
        "{taken:?}"
    );
    tokio::task::spawn_blocking(move || served.terminate())
        .await
        .unwrap();
}

/// Dhan's static-IP refusal is its own event: told once per refused order as what it is (every
/// order will be refused until the address is fixed), not as an ordinary rejection, and it can
/// be switched off on its own.
#[tokio::test]
async fn a_static_ip_refusal_is_told_as_such_and_can_be_switched_off() {
    use crate::helpers::market_time;
    use crate::live::{sim_at, start_at};

    for events in ["all", "filled,rejected"] {
        let (url, fake) = fake_telegram().await;
        let sim = sim_at(dhan_sim::SimConfig::default(), market_time()).await;
        let mut vars = telegram_vars(&url);
        vars.push(("NOTIFY_EVENTS", events.to_owned()));
        let t = start_at(
            sim,
            Arc::new(tempfile::tempdir().unwrap()),
            &borrowed(&vars),
            market_time(),
        )
        .await;
        t.sim.set_whitelisted_ip(false);
        let (_, body) = t.order(&format!("static-ip-{events}")).await;
        assert_eq!(body["legs"][0]["status"], "REJECTED", "{body}");
        // A market order that is filled afterwards marks the end of the outbox's work.
        t.sim.set_whitelisted_ip(true);
        let (_, body) = t.order(&format!("after-{events}")).await;
        assert_eq!(body["legs"][0]["status"], "ACCEPTED", "{body}");
        until("Dhan fills it", || {
            t.sim.orders().iter().any(|o| o.status == "TRADED")
        })
        .await;
        t.advance(chrono::Duration::seconds(3));
        until("the fill's message", || {
            fake.taken()
                .iter()
                .any(|r| r.body["text"].as_str().unwrap().contains("Filled"))
        })
        .await;
        let texts: Vec<String> = fake
            .taken()
            .iter()
            .map(|r| r.body["text"].as_str().unwrap().to_owned())
            .collect();
        let told: Vec<&String> = texts.iter().filter(|t| t.contains("static IP")).collect();
        if events == "all" {
            assert_eq!(told.len(), 1, "{texts:?}");
            assert!(
                told[0].starts_with("<b>🛑 Refused by Dhan, static IP"),
                "{texts:?}"
            );
            assert!(told[0].contains("Every order is refused"), "{texts:?}");
        } else {
            assert!(told.is_empty(), "static_ip is off: {texts:?}");
        }
        assert!(
            !texts.iter().any(|t| t.starts_with("<b>❌")),
            "not told as an ordinary rejection: {texts:?}"
        );
        t.app.stop().await;
    }
}
