//! The upstream's guide, followed as its users do (`shared/seed/DHAN_CREDENTIALS_GUIDE.md`):
//! its `.env` (a `DHAN_ACCESS_TOKEN`, no PIN), its checks of `/health`, `/ready` and `/`, and
//! the log lines it tells users to grep for. What dhanhook reports about the token is what
//! Dhan said about it, and an alert that cannot be placed is told so at once.

use std::{
    io::Write,
    sync::{Arc, Mutex},
    time::Duration,
};

use dhan_sim::SimConfig;
use serde_json::Value;

use crate::{
    helpers::market_time,
    live::{eventually, live, sim_at, start_at},
};

/// The guide's API key and secret placeholders (obviously fake).
const GUIDE_API_KEY: &str = "abcd1234";
const GUIDE_API_SECRET: &str = "00000000-0000-4000-8000-000000000000";

async fn ready(app: &crate::helpers::TestApp) -> (u16, Value) {
    let resp = app.get("/ready").await;
    (resp.status().as_u16(), resp.json().await.unwrap())
}

/// The guide's `.env` has a `DHAN_ACCESS_TOKEN` and no PIN. Dhan refuses the token: nothing
/// calls it valid, `/ready` says what is missing, and an alert is refused at once with that
/// reason (the upstream answered 200 and dropped it; before this fix dhanhook reported the
/// token valid for 24 h and rejected alerts two minutes late with a misleading reason).
#[tokio::test]
async fn a_refused_access_token_without_a_pin_is_reported_and_alerts_are_refused_at_once() {
    let sim = sim_at(SimConfig::default(), market_time()).await;
    let t = start_at(
        sim,
        Arc::new(tempfile::tempdir().unwrap()),
        &[
            ("DHAN_PIN", ""),
            (
                "DHAN_ACCESS_TOKEN",
                "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzUxMiJ9.e30.not-a-real-token",
            ),
            ("DHAN_API_KEY", GUIDE_API_KEY),
            ("DHAN_API_SECRET", GUIDE_API_SECRET),
        ],
        market_time(),
    )
    .await;

    let (status, v) = ready(&t.app).await;
    assert_eq!(status, 503, "{v}");
    assert_eq!(v["checks"]["dhan_client"], "initialized");
    assert_eq!(v["checks"]["access_token"], "refused", "{v}");
    let problem = v["checks"]["token"]["problem"].as_str().unwrap();
    assert!(
        problem.contains("Dhan refused the token (DH-901")
            && problem.contains("DHAN_PIN is not set")
            && problem.contains("Add DHAN_PIN to .env")
            && problem.contains("POST /auth/consent"),
        "{problem}"
    );

    let (code, body) = t.order("no-pin").await;
    assert_eq!(code, 200, "a definite answer, not a 202: {body}");
    let leg = &body["legs"][0];
    assert_eq!(leg["status"], "REJECTED");
    let message = leg["message"].as_str().unwrap();
    assert!(
        message.contains("not sent: no usable Dhan access token")
            && message.contains("DHAN_PIN is not set"),
        "{message}"
    );
    assert!(t.sim.orders().is_empty(), "nothing reached Dhan");
    let requests = t.sim.requests();
    let count = |path: &str| requests.iter().filter(|r| r.path == path).count();
    assert_eq!(count("/v2/profile"), 1, "checked once at start-up");
    assert_eq!(
        count("/v2/orders"),
        0,
        "a refused token is never sent again"
    );
    assert_eq!(t.mint_requests(), 0);
    let rows = t.app.journal_orders().await;
    assert_eq!(rows[0].status.as_str(), "REJECTED");
}

/// A pasted token Dhan accepts, without a PIN: valid (after Dhan said so), used for orders,
/// and `/ready` says it will not be renewed and what to add before it expires.
#[tokio::test]
async fn an_accepted_access_token_without_a_pin_works_and_says_it_will_not_be_renewed() {
    let sim = sim_at(SimConfig::default(), market_time()).await;
    let pasted = sim.issue_app_token();
    let t = start_at(
        sim,
        Arc::new(tempfile::tempdir().unwrap()),
        &[("DHAN_PIN", ""), ("DHAN_ACCESS_TOKEN", &pasted)],
        market_time(),
    )
    .await;

    let (status, v) = ready(&t.app).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["checks"]["access_token"], "valid");
    assert_eq!(v["checks"]["token"]["renewable"], false);
    let problem = v["checks"]["token"]["problem"].as_str().unwrap();
    assert!(
        problem.contains("will not be renewed") && problem.contains("DHAN_PIN is not set"),
        "{problem}"
    );
    let profile_checks = t
        .sim
        .requests()
        .iter()
        .filter(|r| r.path == "/v2/profile")
        .count();
    assert_eq!(
        profile_checks, 1,
        "accepted by Dhan before being reported valid"
    );

    let (_, body) = t.order("pasted").await;
    assert_eq!(body["legs"][0]["status"], "ACCEPTED", "{body}");
    assert_eq!(t.mint_requests(), 0);
}

/// Dhan kills our token inside its 2-minute mint throttle (another login). The order that
/// meets the refusal is answered at once, saying when a token can be had, instead of hanging
/// for the cooldown; the keeper mints as soon as Dhan allows and the next order goes through.
#[tokio::test]
async fn an_order_inside_the_mint_cooldown_is_refused_at_once_naming_the_wait() {
    let t = live(SimConfig::default()).await;
    eventually("the start-up mint", || t.sim.mint_count() == 1).await;
    t.sim.issue_web_token();

    let (code, body) = t.order("in-cooldown").await;
    assert_eq!(code, 200, "{body}");
    let leg = &body["legs"][0];
    assert_eq!(leg["status"], "REJECTED", "{body}");
    let message = leg["message"].as_str().unwrap();
    assert!(
        message.contains("Dhan refused the access token") && message.contains("next can be had in"),
        "{message}"
    );
    let (status, v) = ready(&t.app).await;
    assert_eq!(
        (status, &v["checks"]["access_token"]),
        (503, &Value::from("refused"))
    );

    t.advance(chrono::Duration::seconds(130));
    eventually("the mint after the cooldown", || t.sim.mint_count() == 2).await;
    let mut placed = None;
    for _ in 0..300 {
        let (_, body) = t.order("after-cooldown").await;
        if body["legs"][0]["status"] == "ACCEPTED" {
            placed = Some(body);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(placed.is_some(), "the order after the cooldown is placed");
    assert_eq!(ready(&t.app).await.0, 200);
}

/// Log output captured for one test. The subscriber is global (a scoped one misses events
/// whose callsites other tests' threads registered first); it writes each event to the buffer
/// of the thread that emitted it, and a current-thread runtime keeps all of one test's tasks on
/// its thread, so each test reads only its own lines.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

thread_local! {
    static CAPTURE: std::cell::RefCell<Option<Captured>> = const { std::cell::RefCell::new(None) };
}

impl Captured {
    /// Starts capturing this thread's log events.
    fn this_thread() -> Self {
        static INSTALLED: std::sync::Once = std::sync::Once::new();
        INSTALLED.call_once(|| {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(
                    "info,sqlx=warn,hyper=warn",
                ))
                .with_writer(ThreadRouted)
                .with_ansi(false)
                .try_init();
        });
        let captured = Captured::default();
        CAPTURE.with(|c| *c.borrow_mut() = Some(captured.clone()));
        captured
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Writes to the current thread's [`Captured`] buffer, if any.
struct ThreadRouted;

impl Write for ThreadRouted {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        CAPTURE.with(|c| {
            if let Some(captured) = c.borrow().as_ref() {
                captured.0.lock().unwrap().extend_from_slice(buf);
            }
        });
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for ThreadRouted {
    type Writer = ThreadRouted;

    fn make_writer(&'a self) -> Self::Writer {
        ThreadRouted
    }
}

/// The guide's "Monitor Auto Health Checks": users grep for "Periodic health check",
/// "Token valid (N hours remaining)", "Token expiring soon, generating new token" and "New
/// token generated"; each appears when the guide says it does.
#[tokio::test(flavor = "current_thread")]
async fn the_log_lines_the_guide_greps_for_appear_at_those_moments() {
    let logs = Captured::this_thread();

    let t = live(SimConfig::default()).await;
    eventually("the start-up mint's line", || {
        logs.text()
            .contains("New token generated, valid for 24.0 hours")
    })
    .await;
    assert!(!logs.text().contains("Periodic health check"));

    // Every HEALTH_CHECK_INTERVAL (6 h by default): the check and the hours left.
    t.advance(chrono::Duration::hours(6) + chrono::Duration::minutes(1));
    eventually("the periodic health check's line", || {
        logs.text()
            .contains("Periodic health check: Token valid (18.0 hours remaining)")
    })
    .await;

    // Under TOKEN_REFRESH_MARGIN (1 h) left: the refresh and the new token.
    t.advance(chrono::Duration::hours(17));
    eventually("the refresh's lines", || {
        let text = logs.text();
        text.contains("Token expiring soon, generating new token...")
            && text.matches("New token generated").count() == 2
    })
    .await;
    assert_eq!(t.sim.mint_count(), 2);
}
