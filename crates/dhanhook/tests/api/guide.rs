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
            && problem.contains("Add DHAN_PIN=<your 6-digit Dhan PIN> to .env")
            && problem.contains("POST /auth/consent"),
        "{problem}"
    );

    let (code, body) = t.order("no-pin").await;
    assert_eq!(code, 200, "a definite answer, not a 202: {body}");
    let leg = &body["legs"][0];
    assert_eq!(leg["status"], "REJECTED");
    let message = leg["message"].as_str().unwrap();
    assert!(
        message.contains("not sent: no usable Dhan access token: Dhan refused the token (DH-901")
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
pub(crate) struct Captured(Arc<Mutex<Vec<u8>>>);

thread_local! {
    static CAPTURE: std::cell::RefCell<Option<Captured>> = const { std::cell::RefCell::new(None) };
}

impl Captured {
    /// Starts capturing this thread's log events.
    pub(crate) fn this_thread() -> Self {
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

    pub(crate) fn text(&self) -> String {
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

/// The guide's `.env` block ("Configuration Values Explained"), as written: its values are the
/// guide's own placeholders (obviously fake), its inline comments included.
const GUIDE_ENV: &str = "\
# Dhan API Credentials (Basic)
DHAN_CLIENT_ID=1000000001
DHAN_ACCESS_TOKEN=eyJ0eXAi...  # Optional: will be auto-generated

# Dhan Auto-Authentication (for automatic token renewal)
DHAN_API_KEY=abcd1234
DHAN_API_SECRET=00000000-0000-4000-8000-000000000000
DHAN_TOTP_SECRET=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP
DHAN_USER_ID=9000000000
DHAN_PASSWORD=your_password_here

# Webhook Configuration
WEBHOOK_SECRET=change-me-to-a-long-random-secret
ENABLE_DHAN=true

# Health Check Configuration
AUTO_HEALTH_CHECK=true
HEALTH_CHECK_INTERVAL=21600  # 6 hours

# Server Configuration
PORT=8080
";

/// Tried as a new user would: the guide's `.env` as written, against dhan-sim, with the real
/// binary. Without `DHAN_PIN`: one clear start-up line, `/ready` 503 naming what is missing,
/// an alert refused at once with that reason. With `DHAN_PIN` added: a token is minted, the
/// guide's checks pass verbatim, the alert is ACCEPTED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guides_env_as_written_says_what_is_missing_then_works_with_the_pin() {
    let sim = sim_at(
        SimConfig {
            totp_secret: "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP".into(),
            api_key: GUIDE_API_KEY.into(),
            api_secret: GUIDE_API_SECRET.into(),
            ..SimConfig::default()
        },
        market_time(),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".env"), GUIDE_ENV).unwrap();
    let (base_url, auth_url) = (sim.base_url(), sim.auth_url());
    let start = market_time().to_rfc3339();
    let vars = [
        ("DHAN_BASE_URL", base_url.as_str()),
        ("DHAN_AUTH_URL", auth_url.as_str()),
        ("INSTRUMENTS_PATH", crate::live::FIXTURE),
        ("DHANHOOK_CLOCK_START", start.as_str()),
        ("RUST_LOG", ""),
    ];
    let alert = serde_json::json!({"secret": "change-me-to-a-long-random-secret",
        "alertType": "single_order", "order_legs": [{"transactionType": "B", "orderType": "MKT",
        "quantity": "1", "exchange": "NSE", "symbol": "RELIANCE", "instrument": "EQ",
        "productType": "C", "price": "0", "meta": {"interval": "1D", "time": "t",
        "timenow": "2026-12-01T04:30:00Z"}}]});

    // Without the PIN.
    let served = crate::cli::serve(dir.path(), &vars);
    let out = served.wait_for_output("No usable Dhan token");
    let lines: Vec<&str> = out.lines().filter(|l| l.contains("DHAN_PIN")).collect();
    assert_eq!(lines.len(), 1, "one start-up line about it:\n{out}");
    assert!(
        lines[0].contains("ERROR")
            && lines[0].contains("Dhan refused the token (DH-901")
            && lines[0].contains("DHAN_PIN is not set")
            && lines[0].contains("DHAN_USER_ID and DHAN_PASSWORD are not used")
            && lines[0].contains("Add DHAN_PIN=<your 6-digit Dhan PIN> to .env and restart"),
        "{}",
        lines[0]
    );
    let (status, v) = served.get_json("/ready").await;
    assert_eq!(status, 503);
    assert_eq!(v["checks"]["access_token"], "refused", "{v}");
    let problem = v["checks"]["token"]["problem"].as_str().unwrap();
    assert!(problem.contains("Add DHAN_PIN"), "{v}");
    let (_, answer) = served.post_alert(&alert).await;
    assert_eq!(answer["legs"][0]["status"], "REJECTED", "{answer}");
    let message = answer["legs"][0]["message"].as_str().unwrap();
    assert!(message.contains("DHAN_PIN is not set"), "{answer}");
    assert!(sim.orders().is_empty());
    let (status, _) = served.terminate();
    assert!(status.success());

    // The one thing Dhan needs that the guide lacks.
    let mut env = std::fs::read_to_string(dir.path().join(".env")).unwrap();
    env.push_str("DHAN_PIN=123456\n");
    std::fs::write(dir.path().join(".env"), env).unwrap();
    let served = crate::cli::serve(dir.path(), &vars);
    let mut ready = None;
    for _ in 0..3000 {
        if let (200, v) = served.get_json("/ready").await {
            ready = Some(v);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let ready = ready.unwrap_or_else(|| panic!("never ready:\n{}", served.output()));
    // The guide's "Check Token Status", verbatim.
    assert_eq!(ready["ready"], true);
    assert_eq!(ready["checks"]["dhan_client"], "initialized");
    assert_eq!(ready["checks"]["access_token"], "valid");
    assert_eq!(served.get_json("/health").await.1["status"], "healthy");
    let (_, root) = served.get_json("/").await;
    assert_eq!(root["config"]["health_check_interval"], 21600);
    let mut alert = alert;
    alert["order_legs"][0]["meta"]["timenow"] = "2026-12-01T04:31:00Z".into();
    let (_, answer) = served.post_alert(&alert).await;
    assert_eq!(answer["legs"][0]["status"], "ACCEPTED", "{answer}");
    assert_eq!(sim.orders().len(), 1);
    let (status, out) = served.terminate();
    assert!(status.success());
    assert!(out.contains("New token generated, valid for"), "{out}");
    assert!(!out.contains("No usable Dhan token"), "{out}");
}

/// The guide's `.env` keeps its placeholder `DHAN_ACCESS_TOKEN` after `DHAN_PIN` is added. A
/// restart must reuse the token it minted, not prefer the placeholder (whose expiry is unknown)
/// and mint again inside Dhan's 2-minute throttle.
#[tokio::test]
async fn a_restart_with_the_placeholder_token_still_set_reuses_the_minted_token() {
    let sim = sim_at(SimConfig::default(), market_time()).await;
    let vars = [("DHAN_ACCESS_TOKEN", "eyJ0eXAi...")];
    let first = start_at(
        sim.clone(),
        Arc::new(tempfile::tempdir().unwrap()),
        &vars,
        market_time(),
    )
    .await;
    eventually("the first mint", || first.sim.mint_count() == 1).await;
    // Stored before it is installed: once /ready is 200 the journal has the minted token.
    for _ in 0..3000 {
        if ready(&first.app).await.0 == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let dir = first.app.stop().await;

    let again = start_at(sim, dir, &vars, market_time()).await;
    let (status, v) = ready(&again.app).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["checks"]["token"]["source"], "minted", "{v}");
    let (_, body) = again.order("after-restart").await;
    assert_eq!(body["legs"][0]["status"], "ACCEPTED", "{body}");
    assert_eq!(again.mint_requests(), 1, "no second mint");
}
