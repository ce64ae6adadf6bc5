//! Live mode against dhan-sim over real HTTP: the token keeper (mint, reuse, schedule,
//! single-flight, cooldown, backoff, halt, recovery), orders at "Dhan" with their
//! correlationIds, error classification, and the consent and RenewToken routes.

use std::{sync::Arc, time::Duration};

use dhan_sim::{Fault, Sim, SimConfig, SimHandle};
use serde_json::{Value, json};

use crate::helpers::{
    ADMIN_TOKEN, SECRET, TestApp, flat_alert, http_client, market_time, spawn_app_with,
};

pub(crate) const FIXTURE: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/data/scrip-master-sample.csv");

/// The simulator and the app, with their clocks starting together.
pub(crate) struct Live {
    pub(crate) sim: SimHandle,
    pub(crate) app: TestApp,
}

pub(crate) async fn sim_with(config: SimConfig) -> SimHandle {
    sim_at(config, market_time()).await
}

pub(crate) async fn sim_at(config: SimConfig, at: chrono::DateTime<chrono::Utc>) -> SimHandle {
    Sim::spawn(SimConfig {
        start_time: at,
        ..config
    })
    .await
    .expect("simulator starts")
}

pub(crate) fn live_vars(sim: &SimHandle) -> Vec<(String, String)> {
    let c = SimConfig::default();
    vec![
        ("ENABLE_DHAN".into(), "true".into()),
        ("DHAN_BASE_URL".into(), sim.base_url()),
        ("DHAN_AUTH_URL".into(), sim.auth_url()),
        ("DHAN_CLIENT_ID".into(), c.client_id),
        ("DHAN_PIN".into(), c.pin),
        ("DHAN_TOTP_SECRET".into(), c.totp_secret),
        ("INSTRUMENTS_PATH".into(), FIXTURE.into()),
    ]
}

pub(crate) async fn start(
    sim: SimHandle,
    dir: Arc<tempfile::TempDir>,
    extra: &[(&str, &str)],
) -> Live {
    start_at(sim, dir, extra, market_time()).await
}

/// The app in live mode against `sim`, its clock starting at `at` (start the sim at `at` too).
pub(crate) async fn start_at(
    sim: SimHandle,
    dir: Arc<tempfile::TempDir>,
    extra: &[(&str, &str)],
    at: chrono::DateTime<chrono::Utc>,
) -> Live {
    let mut vars = live_vars(&sim);
    vars.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let borrowed: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let app = crate::helpers::spawn_app_at(dir, &borrowed, at).await;
    let live = Live { sim, app };
    live.settled_start_up().await;
    live
}

pub(crate) async fn live(config: SimConfig) -> Live {
    start(
        sim_with(config).await,
        Arc::new(tempfile::tempdir().unwrap()),
        &[],
    )
    .await
}

impl Live {
    /// Waits until the keeper has recorded `n` consecutive mint failures.
    async fn wait_for_failures(&self, n: u64) {
        for _ in 0..3000 {
            if self.auth_status().await["consecutive_failures"] == n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "the keeper never recorded {n} failures: {}",
            self.auth_status().await
        );
    }

    /// Waits until the start-up token work is over (a token in hand, or minting given up), so a
    /// test that moves the clocks does not move them under a mint in flight.
    async fn settled_start_up(&self) {
        for _ in 0..3000 {
            let status = self.auth_status().await;
            let state = status["state"].as_str().unwrap_or_default();
            let settled = match state {
                // Being obtained, or about to be checked: not yet.
                "minting" | "unchecked" => false,
                // Nothing to do without a way to get one, or the attempt failed.
                "none" => status["renewable"] == false || !status["last_error"].is_null(),
                _ => true,
            };
            if settled {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Moves both clocks: time passes for the service and for "Dhan" alike.
    pub(crate) fn advance(&self, d: chrono::Duration) {
        self.app.clock.advance(d);
        self.sim.advance(d);
    }

    pub(crate) async fn order(&self, id: &str) -> (u16, Value) {
        let mut body = flat_alert();
        body["id"] = json!(id);
        let resp = self.app.post_webhook(&body).await;
        (resp.status().as_u16(), resp.json().await.unwrap())
    }

    pub(crate) async fn auth_status(&self) -> Value {
        let v: Value = self
            .app
            .get_admin("/auth/status", ADMIN_TOKEN)
            .await
            .json()
            .await
            .unwrap();
        v["token"].clone()
    }

    pub(crate) fn mint_requests(&self) -> usize {
        self.sim
            .requests()
            .iter()
            .filter(|r| r.path == "/app/generateAccessToken")
            .count()
    }
}

/// Waits (bounded, real time) for something the service does in the background.
pub(crate) async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    // A bound, not a timing claim: generous, so a loaded machine does not fail the test.
    for _ in 0..3000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for: {what}");
}

#[tokio::test]
async fn an_alert_becomes_an_order_at_dhan_carrying_the_legs_correlation_id() {
    let t = live(SimConfig::default()).await;

    let (status, body) = t.order("first").await;

    assert_eq!(status, 200, "{body}");
    assert_eq!(body["mode"], "live");
    let leg = &body["legs"][0];
    assert_eq!(leg["status"], "ACCEPTED", "{body}");
    let orders = t.sim.orders();
    assert_eq!(orders.len(), 1);
    let sent = &orders[0];
    assert_eq!(sent.order_id, leg["order_id"].as_str().unwrap());
    assert_eq!(
        sent.correlation_id.as_deref(),
        leg["correlation_id"].as_str()
    );
    assert_eq!(
        sent.body,
        json!({"dhanClientId":"1000000001","correlationId":leg["correlation_id"],"transactionType":"BUY",
               "exchangeSegment":"NSE_EQ","productType":"INTRADAY","orderType":"MARKET","validity":"DAY",
               "securityId":"2885","quantity":1}),
        "no price on a market order, no empty strings"
    );
    assert_eq!(t.sim.mint_count(), 1, "one token for the session");
    let rows = t.app.journal_orders().await;
    assert_eq!(rows[0].status.as_str(), "ACCEPTED");
    assert_eq!(rows[0].mode.as_str(), "live");
}

#[tokio::test]
async fn a_restart_reuses_the_stored_token_instead_of_minting() {
    let sim = sim_with(SimConfig::default()).await;
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let first = start(sim.clone(), Arc::clone(&dir), &[]).await;
    first.order("before-restart").await;
    assert_eq!(sim.mint_count(), 1);
    let dir = first.app.stop().await;

    let second = start(sim.clone(), dir, &[]).await;
    let status = second.auth_status().await;
    assert_eq!(status["state"], "valid");
    let (code, body) = second.order("after-restart").await;

    assert_eq!(code, 200, "{body}");
    assert_eq!(body["legs"][0]["status"], "ACCEPTED");
    assert_eq!(sim.mint_count(), 1, "the stored token was reused");
    if !crate::helpers::on_postgres() {
        let db = std::fs::metadata(dir_db(&second.app)).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            db.permissions().mode() & 0o777,
            0o600,
            "the journal holds the token: owner-only"
        );
    }
}

fn dir_db(app: &TestApp) -> std::path::PathBuf {
    app.data_dir().join("dhanhook.db")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_orders_after_a_forced_logout_cause_one_mint_and_each_order_once() {
    // Rate limits out of the way (they have their own test): this is about the token.
    let sim = sim_with(SimConfig {
        orders_per_second: 10_000,
        ..SimConfig::default()
    })
    .await;
    let t = start(
        sim,
        Arc::new(tempfile::tempdir().unwrap()),
        &[("ORDER_RATE_LIMITS", "10000/s")],
    )
    .await;
    t.order("warm-up").await;
    assert_eq!(t.sim.mint_count(), 1);
    // Past Dhan's mint throttle, then Dhan's daily forced logout kills the token we hold.
    t.advance(chrono::Duration::seconds(130));
    t.sim.expire_active_token();

    let results = futures::future::join_all((0..100).map(|i| {
        let t = &t;
        async move { t.order(&format!("burst-{i}")).await }
    }))
    .await;

    for (status, body) in &results {
        assert_eq!(*status, 200, "{body}");
        assert_eq!(body["legs"][0]["status"], "ACCEPTED", "{body}");
    }
    assert_eq!(
        t.sim.mint_count(),
        2,
        "exactly one new token for the whole burst"
    );
    let orders = t.sim.orders();
    assert_eq!(orders.len(), 101);
    let cids: std::collections::HashSet<_> =
        orders.iter().map(|o| o.correlation_id.clone()).collect();
    assert_eq!(cids.len(), 101, "every order placed once");
}

#[tokio::test]
async fn an_expired_token_is_replaced_once_before_concurrent_orders_use_it() {
    let t = live(SimConfig::default()).await;
    t.order("day-1").await;
    // A day later the token has expired at Dhan and for us.
    t.advance(chrono::Duration::hours(25));

    let results = futures::future::join_all((0..5).map(|i| {
        let t = &t;
        async move { t.order(&format!("day-2-{i}")).await }
    }))
    .await;

    assert!(
        results
            .iter()
            .all(|(s, b)| *s == 200 && b["legs"][0]["status"] == "ACCEPTED"),
        "{results:?}"
    );
    assert_eq!(t.sim.mint_count(), 2);
}

#[tokio::test]
async fn the_scheduled_refresh_fires_at_expiry_minus_the_margin_and_not_before() {
    let t = live(SimConfig::default()).await;
    eventually("the start-up mint", || t.sim.mint_count() == 1).await;

    // 24 h token: 22 h 58 min later it has 62 minutes left, outside the 60-minute margin.
    t.advance(chrono::Duration::minutes(22 * 60 + 58));
    let status = t.auth_status().await;
    assert_eq!(status["state"], "valid", "{status}");
    assert_eq!(t.sim.mint_count(), 1);

    // Three minutes later: 59 minutes left. Exactly one mint, before any order needs it.
    t.advance(chrono::Duration::minutes(3));
    eventually("the scheduled refresh", || t.sim.mint_count() == 2).await;
    // It is now 09:01 IST, pre-open; the order goes in once the market is open.
    t.advance(chrono::Duration::minutes(20));
    let (code, body) = t.order("after-refresh").await;
    assert_eq!(code, 200);
    assert_eq!(body["legs"][0]["status"], "ACCEPTED");
    assert_eq!(t.sim.mint_count(), 2, "the order used the refreshed token");
    assert_eq!(t.auth_status().await["state"], "valid");
}

#[tokio::test]
async fn a_token_killed_by_another_login_is_recovered_from() {
    let t = live(SimConfig::default()).await;
    t.order("before").await;
    t.advance(chrono::Duration::seconds(130));
    // The user generates a token on Dhan Web: ours dies.
    t.sim.issue_web_token();

    let (code, body) = t.order("after").await;

    assert_eq!(code, 200);
    assert_eq!(body["legs"][0]["status"], "ACCEPTED", "{body}");
    assert_eq!(t.sim.mint_count(), 2);
    assert_eq!(
        t.sim.orders().len(),
        2,
        "the refused order was sent again once, after a lookup"
    );
    let lookups = t
        .sim
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/v2/orders/external/"))
        .count();
    assert_eq!(lookups, 1);
}

#[tokio::test]
async fn wrong_credentials_back_off_then_stop_minting_until_an_operator_asks() {
    let sim = sim_with(SimConfig::default()).await;
    let t = start(
        sim,
        Arc::new(tempfile::tempdir().unwrap()),
        &[("DHAN_PIN", "654321")],
    )
    .await;
    eventually("the first mint attempt", || t.mint_requests() == 1).await;

    let status = t.auth_status().await;
    assert_eq!(status["consecutive_failures"], 1, "{status}");
    assert!(
        status["last_error"]
            .as_str()
            .unwrap()
            .contains("Invalid Pin"),
        "{status}"
    );
    let (code, body) = t.order("no-token").await;
    assert_eq!(code, 200);
    let leg = &body["legs"][0];
    assert_eq!(leg["status"], "REJECTED");
    assert!(
        leg["message"]
            .as_str()
            .unwrap()
            .contains("not sent: no usable Dhan access token"),
        "{leg}"
    );
    assert_eq!(
        t.mint_requests(),
        1,
        "an order does not retry a failing mint inside the backoff"
    );
    assert_eq!(t.app.get("/ready").await.status(), 503);

    // Backoff: 125 s, then 250 s. After the third failure, minting stops for good. Each time,
    // the keeper must have recorded the failure before the clocks move again (it plans its
    // next attempt from the time it learns of it).
    t.advance(chrono::Duration::seconds(130));
    t.wait_for_failures(2).await;
    assert_eq!(t.mint_requests(), 2);
    t.advance(chrono::Duration::seconds(260));
    t.wait_for_failures(3).await;
    assert_eq!(t.mint_requests(), 3);
    t.advance(chrono::Duration::hours(6));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let status = t.auth_status().await;
    assert_eq!(status["minting_halted"], true, "{status}");
    assert_eq!(
        t.mint_requests(),
        3,
        "no automatic attempt after the halt, however long we wait"
    );

    // The operator asks: one more attempt (still the wrong PIN here), reported as 502.
    let resp = t.app.post_admin("/refresh-token").await;
    assert_eq!(resp.status(), 502);
    assert_eq!(t.mint_requests(), 4);
}

#[tokio::test]
async fn refresh_token_mints_now_but_never_inside_the_cooldown() {
    let t = live(SimConfig::default()).await;
    eventually("the start-up mint", || t.sim.mint_count() == 1).await;
    let post = || async { t.app.post_admin("/refresh-token").await };
    assert_eq!(
        t.app
            .client
            .post(t.app.url("/refresh-token"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );

    let too_soon = post().await;
    assert_eq!(too_soon.status(), 429);
    let v: Value = too_soon.json().await.unwrap();
    let wait = v["retry_after_secs"].as_u64().unwrap();
    assert!((120..=125).contains(&wait), "{v}");
    assert_eq!(t.sim.mint_count(), 1);

    t.advance(chrono::Duration::seconds(126));
    let ok = post().await;
    assert_eq!(ok.status(), 200);
    let v: Value = ok.json().await.unwrap();
    assert_eq!(v["token"]["state"], "valid");
    assert_eq!(t.sim.mint_count(), 2);
}

#[tokio::test]
async fn stopping_does_not_wait_for_a_token_cooldown() {
    // A token due for renewal a minute after it was minted: inside Dhan's 2-minute throttle,
    // so the keeper waits out the cooldown (minutes on a real clock).
    let t = live(SimConfig {
        token_ttl: Duration::from_secs(61 * 60),
        ..SimConfig::default()
    })
    .await;
    eventually("the start-up mint", || t.sim.mint_count() == 1).await;
    t.advance(chrono::Duration::seconds(61));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(t.sim.mint_count(), 1, "never minted inside the cooldown");

    // A bound for a hang, not a timing claim: a stop that waits for the cooldown never ends.
    let stopped = tokio::time::timeout(Duration::from_secs(20), t.app.stop()).await;
    assert!(stopped.is_ok(), "shutdown waited for the token cooldown");
}

#[tokio::test]
async fn dhans_refusals_are_rejections_with_dhans_reason() {
    let t = live(SimConfig::default()).await;

    t.sim.set_whitelisted_ip(false);
    let (_, ip) = t.order("ip").await;
    let msg = ip["legs"][0]["message"].as_str().unwrap();
    assert_eq!(ip["legs"][0]["status"], "REJECTED");
    assert!(
        msg.contains("Invalid IP") && msg.contains("whitelisted static IP"),
        "{msg}"
    );

    t.sim.set_whitelisted_ip(true);
    t.sim.set_market_open(false);
    let (_, closed) = t.order("closed").await;
    assert_eq!(closed["legs"][0]["status"], "REJECTED");
    assert!(
        closed["legs"][0]["message"]
            .as_str()
            .unwrap()
            .contains("Market is Closed"),
        "{closed}"
    );

    let mut unknown = flat_alert();
    unknown["symbol"] = json!("NSE:RELIANC");
    let resp = t.app.post_webhook(&unknown).await;
    assert_eq!(resp.status(), 422, "an unknown symbol is refused at intake");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["errors"][0]["field"], "symbol");
    assert!(
        v["errors"][0]["problem"]
            .as_str()
            .unwrap()
            .contains("did you mean RELIANCE"),
        "{v}"
    );
    assert_eq!(t.sim.orders().len(), 0, "nothing reached the order book");
}

#[tokio::test]
async fn an_unknown_outcome_is_left_unknown_never_guessed() {
    let t = live(SimConfig::default()).await;
    t.order("warm-up").await;
    t.sim.inject(Fault::Order5xxAfterAccept, 1);

    let (code, body) = t.order("5xx").await;

    assert_eq!(
        code, 202,
        "a leg whose fate is unknown is not reported as done: {body}"
    );
    assert_eq!(body["status"], "processing");
    assert_eq!(body["legs"][0]["status"], "UNKNOWN");
    assert!(
        body["legs"][0]["message"]
            .as_str()
            .unwrap()
            .contains("outcome unknown"),
        "{body}"
    );
    assert_eq!(t.sim.orders().len(), 2, "not re-sent");
}

#[tokio::test]
async fn ready_and_root_report_the_token_without_showing_it() {
    let t = live(SimConfig::default()).await;
    eventually("the start-up mint", || t.sim.mint_count() == 1).await;
    let token = t.sim.active_token().unwrap();

    let ready = t.app.get("/ready").await;
    assert_eq!(ready.status(), 200);
    let v: Value = ready.json().await.unwrap();
    // The upstream guide's checks, verbatim, and the detail beside them.
    assert_eq!(v["ready"], true);
    assert_eq!(v["checks"]["dhan_client"], "initialized");
    assert_eq!(v["checks"]["access_token"], "valid");
    let tok = &v["checks"]["token"];
    assert_eq!(tok["state"], "valid");
    assert_eq!(tok["renewable"], true);
    assert!(tok["problem"].is_null(), "{tok}");
    assert_eq!(tok["hours_left"], 24.0);
    assert_eq!(tok["expires_at"], "2026-12-02 10:00:00", "IST");

    let root = t.app.get("/").await.text().await.unwrap();
    assert!(!root.contains(&token) && !root.contains(SECRET) && !root.contains("JBSWY3DPEHPK3PXP"));
    let root: Value = serde_json::from_str(&root).unwrap();
    assert!(
        root.get("access_token").is_none(),
        "the public page shows no token state: {root}"
    );
    assert_eq!(root["config"]["dhan"]["token_routes"], json!(["pin+totp"]));
    assert_eq!(root["config"]["dhan"]["client_id"], "******0001");
}

#[tokio::test]
async fn the_consent_flow_gets_a_token_through_the_callback_once() {
    let sim = sim_with(SimConfig::default()).await;
    let c = SimConfig::default();
    let t = start(
        sim,
        Arc::new(tempfile::tempdir().unwrap()),
        &[
            ("DHAN_PIN", ""),
            ("DHAN_TOTP_SECRET", ""),
            ("DHAN_API_KEY", &c.api_key),
            ("DHAN_API_SECRET", &c.api_secret),
        ],
    )
    .await;
    assert_eq!(t.app.get("/ready").await.status(), 503, "no token yet");
    // A stranger's callback before any consent is refused without calling Dhan.
    let early = t.app.get("/auth/callback?tokenId=made-up").await;
    assert_eq!(early.status(), 400);
    assert!(
        !t.sim
            .requests()
            .iter()
            .any(|r| r.path == "/app/consumeApp-consent")
    );

    let started: Value = t
        .app
        .post_admin("/auth/consent")
        .await
        .json()
        .await
        .unwrap();
    let login_url = started["login_url"].as_str().unwrap().to_owned();
    assert!(login_url.starts_with(&t.sim.auth_url()), "{login_url}");
    // The user's browser logs in at "Dhan" and is redirected with a tokenId.
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = no_redirects.get(&login_url).send().await.unwrap();
    assert_eq!(login.status(), 302);
    let location = login.headers()["location"].to_str().unwrap().to_owned();
    let token_id = location.split("tokenId=").nth(1).unwrap().to_owned();

    let done = t
        .app
        .get(&format!("/auth/callback?tokenId={token_id}"))
        .await;
    assert_eq!(done.status(), 200);
    assert!(done.text().await.unwrap().contains("Dhan token received"));
    assert_eq!(t.app.get("/ready").await.status(), 200);
    let (_, body) = t.order("after-consent").await;
    assert_eq!(body["legs"][0]["status"], "ACCEPTED", "{body}");

    let reused = t
        .app
        .get(&format!("/auth/callback?tokenId={token_id}"))
        .await;
    assert_eq!(reused.status(), 400, "a tokenId is used once");
    let consumes = t
        .sim
        .requests()
        .iter()
        .filter(|r| r.path == "/app/consumeApp-consent")
        .count();
    assert_eq!(consumes, 1);

    // Forged callbacks while a consent waits: a malformed tokenId never reaches Dhan, and after
    // 5 well-formed forgeries the consent is cancelled (each call carries the API secret).
    t.app.post_admin("/auth/consent").await;
    let malformed = t.app.get("/auth/callback?tokenId=%3Cscript%3E").await;
    assert_eq!(malformed.status(), 400);
    for i in 0..30 {
        let forged = t
            .app
            .get(&format!("/auth/callback?tokenId=forged-token-id-{i:04}"))
            .await;
        assert_eq!(forged.status(), 400);
    }
    let consumes = t
        .sim
        .requests()
        .iter()
        .filter(|r| r.path == "/app/consumeApp-consent")
        .count();
    assert_eq!(consumes, 1 + 5, "at most 5 tries per consent");
}

#[tokio::test]
async fn a_web_token_is_renewed_with_renew_token_when_no_pin_is_configured() {
    let sim = sim_with(SimConfig::default()).await;
    let web = sim.issue_web_token();
    let t = start(
        sim,
        Arc::new(tempfile::tempdir().unwrap()),
        &[
            ("DHAN_PIN", ""),
            ("DHAN_TOTP_SECRET", ""),
            ("DHAN_ACCESS_TOKEN", &web),
        ],
    )
    .await;
    let status = t.auth_status().await;
    assert_eq!(
        (status["state"].as_str(), status["source"].as_str()),
        (Some("valid"), Some("env"))
    );

    t.advance(chrono::Duration::hours(23) + chrono::Duration::minutes(1));
    eventually("the renewal", || t.sim.mint_count() == 1).await;
    assert!(t.sim.requests().iter().any(|r| r.path == "/v2/RenewToken"));
    // The keeper records the new token just after Dhan issues it.
    let mut source = t.auth_status().await["source"].clone();
    for _ in 0..3000 {
        if source == "renewed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        source = t.auth_status().await["source"].clone();
    }
    assert_eq!(source, "renewed");
    t.advance(chrono::Duration::minutes(20)); // past the 09:15 open
    let (_, body) = t.order("renewed").await;
    assert_eq!(body["legs"][0]["status"], "ACCEPTED", "{body}");
}

#[tokio::test]
async fn sandbox_selects_dhans_sandbox_host() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let token = "a.b.c";
    let app = spawn_app_with(
        dir,
        &[
            ("ENABLE_DHAN", "true"),
            ("DHAN_ENV", "sandbox"),
            ("DHAN_CLIENT_ID", "1000000001"),
            ("DHAN_ACCESS_TOKEN", token),
            ("INSTRUMENTS_PATH", FIXTURE),
        ],
    )
    .await;
    let root: Value = app.get("/").await.json().await.unwrap();
    assert_eq!(root["config"]["dhan"]["env"], "sandbox");
    assert_eq!(root["config"]["dhan"]["api"], "https://sandbox.dhan.co/v2");
    let _ = http_client();
}

#[tokio::test]
async fn the_health_check_notices_a_dead_token_and_replaces_it() {
    let sim = sim_with(SimConfig::default()).await;
    let t = start(
        sim,
        Arc::new(tempfile::tempdir().unwrap()),
        &[("HEALTH_CHECK_INTERVAL", "3600")],
    )
    .await;
    eventually("the start-up mint", || t.sim.mint_count() == 1).await;
    t.advance(chrono::Duration::seconds(130));
    t.sim.expire_active_token();

    t.advance(chrono::Duration::seconds(3600));

    eventually("a new token after the health check", || {
        t.sim.mint_count() == 2
    })
    .await;
    assert!(
        t.sim
            .requests()
            .iter()
            .any(|r| r.path == "/v2/profile" && r.status == 401)
    );
    let (_, body) = t.order("after-health-check").await;
    assert_eq!(body["legs"][0]["status"], "ACCEPTED");
    assert_eq!(t.sim.mint_count(), 2);
}

/// A duplicate of a live alert whose order Dhan accepted is answered from the journal, without
/// waiting for an exchange verdict that takes minutes and without calling Dhan. (How fast:
/// `cargo run --release -p dhanhook --example bench_duplicates`, figures in BENCHMARKS.md.)
#[tokio::test]
async fn a_duplicate_of_an_accepted_order_is_answered_from_the_journal_without_calling_dhan() {
    let t = live(SimConfig::default()).await;
    let (_, first) = t.order("dup-accepted").await;
    assert_eq!(first["legs"][0]["status"], "ACCEPTED", "{first}");
    let requests_before = t.sim.requests().len();

    let (code, dup) = t.order("dup-accepted").await;

    assert_eq!(code, 200, "{dup}");
    assert_eq!(dup["duplicate"], true);
    assert_eq!(dup["alert_id"], first["alert_id"]);
    assert_eq!(dup["legs"][0]["status"], "ACCEPTED");
    assert_eq!(dup["legs"][0]["order_id"], first["legs"][0]["order_id"]);
    assert_eq!(
        t.sim.requests().len(),
        requests_before,
        "no broker call: no order, no lookup"
    );
    assert_eq!(t.sim.orders().len(), 1);
}

/// A duplicate that arrives while the first delivery is still at the broker waits for it and
/// answers with its outcome (woken by the placement, not by polling).
#[tokio::test]
async fn a_duplicate_during_placement_answers_with_the_first_deliverys_outcome() {
    let t = live(SimConfig::default()).await;
    eventually("the start-up mint", || t.sim.mint_count() == 1).await;
    t.sim
        .inject(Fault::OrderDelay(Duration::from_millis(400)), 1);
    let first = t.order("dup-in-flight");
    let second = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        t.order("dup-in-flight").await
    };
    let ((_, first), (code, dup)) = tokio::join!(first, second);
    assert_eq!(code, 200, "{dup}");
    assert_eq!(dup["duplicate"], true, "{dup}");
    assert_eq!(dup["legs"][0]["status"], "ACCEPTED", "{dup}");
    assert_eq!(dup["legs"][0]["order_id"], first["legs"][0]["order_id"]);
    assert_eq!(t.sim.orders().len(), 1);
}

/// The Dhan token at rest: sealed with TOKEN_KEY, so neither the database file nor its
/// write-ahead log holds it readable; a restart with another key drops the stored token and
/// gets a new one.
#[tokio::test]
async fn the_stored_token_is_never_readable_in_the_journal_files() {
    let sim = sim_with(SimConfig::default()).await;
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let t = start(sim.clone(), Arc::clone(&dir), &[]).await;
    eventually("the start-up mint", || t.sim.mint_count() == 1).await;
    let (_, body) = t.order("sealed").await;
    assert_eq!(body["legs"][0]["status"], "ACCEPTED", "{body}");
    let token = t.sim.active_token().unwrap();
    let dir = t.app.stop().await;
    if !crate::helpers::on_postgres() {
        for name in ["dhanhook.db", "dhanhook.db-wal"] {
            let Ok(bytes) = std::fs::read(dir.path().join(name)) else {
                continue;
            };
            let needle = token.as_bytes();
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "the token is readable in {name}"
            );
            // Nor any large piece of it (the JWT's signature part).
            let sig = token.rsplit('.').next().unwrap().as_bytes();
            assert!(!bytes.windows(sig.len()).any(|w| w == sig), "{name}");
        }
    }

    // The same key: reused, no mint. Another key (past Dhan's mint cooldown): dropped with one
    // line, and replaced.
    let later = market_time() + chrono::Duration::seconds(130);
    sim.set_now(later);
    let again = start_at(sim.clone(), Arc::clone(&dir), &[], later).await;
    assert_eq!(again.sim.mint_count(), 1, "the sealed token was reused");
    let dir = again.app.stop().await;
    let other_key = "b3RoZXIta2V5LWZvci10ZXN0cy0wMTIzNDU2Nzg5YWI=";
    let rekeyed = start_at(sim, dir, &[("TOKEN_KEY", other_key)], later).await;
    eventually("a new token under the new key", || {
        rekeyed.sim.mint_count() == 2
    })
    .await;
    let (_, body) = rekeyed.order("rekeyed").await;
    assert_eq!(body["legs"][0]["status"], "ACCEPTED", "{body}");
}
