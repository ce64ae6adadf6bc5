//! `GET /metrics`: who may read it, and that a scripted run against dhan-sim (alerts, a
//! duplicate, an invalid alert, a wrong secret, an unknown symbol, a rejection, a mint) moves
//! each counter by exactly what happened. The exposition is read with `prometheus-parse`.

use std::collections::HashMap;

use dhan_sim::SimConfig;
use serde_json::{Value, json};

use crate::{
    helpers::{ADMIN_TOKEN, flat_alert, spawn_app, spawn_app_with},
    live::{eventually, live},
};

const METRICS_TOKEN: &str = "canary-metrics-token-5e1f0a9b3c7d2e84";

/// One scrape: every sample by name and labels (histogram buckets, `_count`, `_sum` and
/// `_total` series are plain samples under their own names).
struct Scrape(Vec<prometheus_parse::Sample>);

impl Scrape {
    async fn of(app: &crate::helpers::TestApp) -> Scrape {
        let resp = app.get_admin("/metrics", ADMIN_TOKEN).await;
        assert_eq!(resp.status(), 200);
        let text = resp.text().await.unwrap();
        assert!(
            !text.contains(ADMIN_TOKEN) && !text.contains(crate::helpers::SECRET),
            "no secret in the exposition"
        );
        let lines = text.lines().map(|l| Ok(l.to_owned()));
        Scrape(
            prometheus_parse::Scrape::parse(lines)
                .expect("the exposition parses")
                .samples,
        )
    }

    /// The value of the series `name{labels}` (labels must match exactly); `None` if absent.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: HashMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.0
            .iter()
            .find(|s| {
                s.metric == name && {
                    let have: HashMap<String, String> = s
                        .labels
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    have == want
                }
            })
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => panic!("{name} is not a single value"),
            })
    }

    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels)
            .unwrap_or_else(|| panic!("no series {name}{labels:?}"))
    }

    fn webhooks(&self, outcome: &str) -> f64 {
        self.value("dhanhook_webhooks_received_total", &[("outcome", outcome)])
    }
}

#[tokio::test]
async fn metrics_need_the_admin_token_or_the_metrics_token() {
    let app = spawn_app_with(
        std::sync::Arc::new(tempfile::tempdir().unwrap()),
        &[("METRICS_TOKEN", METRICS_TOKEN)],
    )
    .await;

    assert_eq!(app.get("/metrics").await.status(), 401);
    assert_eq!(app.get_admin("/metrics", "wrong").await.status(), 401);
    let with_metrics_token = app.get_admin("/metrics", METRICS_TOKEN).await;
    assert_eq!(with_metrics_token.status(), 200);
    assert!(
        with_metrics_token.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    assert_eq!(app.get_admin("/metrics", ADMIN_TOKEN).await.status(), 200);
    // The metrics token opens nothing else.
    assert_eq!(app.get_admin("/logs", METRICS_TOKEN).await.status(), 401);
}

#[tokio::test]
async fn an_allowed_address_reads_the_metrics_without_a_token() {
    let allowed = spawn_app_with(
        std::sync::Arc::new(tempfile::tempdir().unwrap()),
        &[("METRICS_ALLOWED_IPS", "127.0.0.1/32")],
    )
    .await;
    assert_eq!(allowed.get("/metrics").await.status(), 200);
    assert_eq!(
        allowed.get("/logs").await.status(),
        401,
        "nothing else opens"
    );
    let elsewhere = spawn_app_with(
        std::sync::Arc::new(tempfile::tempdir().unwrap()),
        &[("METRICS_ALLOWED_IPS", "10.0.0.0/8")],
    )
    .await;
    assert_eq!(elsewhere.get("/metrics").await.status(), 401);
}

#[tokio::test]
async fn paper_mode_metrics_have_build_info_and_no_token_series() {
    let app = spawn_app().await;
    let m = Scrape::of(&app).await;
    assert_eq!(
        m.value(
            "dhanhook_build_info",
            &[("version", env!("CARGO_PKG_VERSION")), ("mode", "paper")]
        ),
        1.0
    );
    assert!(m.value("dhanhook_scrip_master_rows", &[]) > 0.0);
    assert_eq!(
        m.webhooks("placed"),
        0.0,
        "every outcome is exposed at zero"
    );
    assert_eq!(
        m.get("dhanhook_token_state", &[("state", "valid")]),
        None,
        "paper mode has no token"
    );
    assert_eq!(
        m.get("dhanhook_token_expiry_seconds", &[]),
        None,
        "no expiry series to set off a token alert in paper mode"
    );
    assert_eq!(m.get("dhanhook_token_mint_attempts_total", &[]), None);
}

#[tokio::test]
async fn a_scripted_run_against_dhan_sim_moves_each_counter_by_exactly_what_happened() {
    let t = live(SimConfig::default()).await;
    eventually("the start-up mint", || t.sim.mint_count() == 1).await;
    let before = Scrape::of(&t.app).await;
    assert_eq!(before.value("dhanhook_token_mint_attempts_total", &[]), 1.0);

    // Act: one placed order, its duplicate, an invalid alert, a wrong secret, an unknown
    // symbol, an order Dhan rejects, and a token minted on request.
    let (status, placed) = t.order("m-1").await;
    assert_eq!(status, 200, "{placed}");
    assert_eq!(placed["legs"][0]["status"], "ACCEPTED");
    let (_, duplicate) = t.order("m-1").await;
    assert_eq!(duplicate["duplicate"], true, "{duplicate}");
    let mut invalid = flat_alert();
    invalid["action"] = json!("hold");
    assert_eq!(t.app.post_webhook(&invalid).await.status(), 422);
    let mut wrong = flat_alert();
    wrong["secret"] = json!("not-the-secret");
    assert_eq!(t.app.post_webhook(&wrong).await.status(), 401);
    let mut unknown = flat_alert();
    unknown["symbol"] = json!("NSE:RELIANC");
    assert_eq!(t.app.post_webhook(&unknown).await.status(), 422);
    t.sim.set_whitelisted_ip(false);
    let (_, rejected) = t.order("m-2").await;
    assert_eq!(rejected["legs"][0]["status"], "REJECTED", "{rejected}");
    t.sim.set_whitelisted_ip(true);
    t.advance(chrono::Duration::seconds(126));
    assert_eq!(t.app.post_admin("/refresh-token").await.status(), 200);
    assert_eq!(t.sim.mint_count(), 2);

    let after = Scrape::of(&t.app).await;
    let delta = |name: &str, labels: &[(&str, &str)]| {
        after.value(name, labels) - before.get(name, labels).unwrap_or(0.0)
    };
    for (outcome, n) in [
        ("placed", 2.0),
        ("duplicate", 1.0),
        ("invalid", 1.0),
        ("unauthorized", 1.0),
        ("refused", 1.0),
        ("error", 0.0),
    ] {
        assert_eq!(
            after.webhooks(outcome) - before.webhooks(outcome),
            n,
            "webhooks {outcome}"
        );
    }
    assert_eq!(delta("dhanhook_webhook_answer_seconds_count", &[]), 6.0);
    assert_eq!(
        delta(
            "dhanhook_broker_call_seconds_count",
            &[("call", "place order"), ("result", "ok")]
        ),
        1.0
    );
    assert_eq!(
        delta(
            "dhanhook_broker_call_seconds_count",
            &[("call", "place order"), ("result", "error")]
        ),
        1.0
    );
    assert_eq!(delta("dhanhook_rate_limit_wait_seconds_count", &[]), 2.0);
    // Admission records the two orders and recognises the duplicate in the journal; the
    // invalid, unauthorized and unknown-symbol alerts never reach it.
    assert_eq!(delta("dhanhook_journal_commit_seconds_count", &[]), 3.0);
    // The placed leg: ACCEPTED, or already PENDING or FILLED if the order tracker looked at it
    // once the clock moved for the mint cooldown (the CI run on PostgreSQL caught that).
    let placed_leg: f64 = ["ACCEPTED", "PENDING", "FILLED"]
        .iter()
        .map(|state| delta("dhanhook_order_legs", &[("state", state)]))
        .sum();
    assert_eq!(
        placed_leg, 1.0,
        "the placed leg, in whatever open or filled state"
    );
    assert_eq!(delta("dhanhook_order_legs", &[("state", "REJECTED")]), 1.0);
    assert_eq!(
        after.value("dhanhook_order_legs", &[("state", "NEEDS_ATTENTION")]),
        0.0
    );
    assert_eq!(delta("dhanhook_token_mint_attempts_total", &[]), 1.0);
    for reason in ["auth", "rate_limit", "transient", "unreachable"] {
        assert_eq!(
            after.value("dhanhook_token_mint_failures_total", &[("reason", reason)]),
            0.0,
            "no mint failed"
        );
    }
    assert_eq!(
        after.value("dhanhook_token_state", &[("state", "valid")]),
        1.0
    );
    assert_eq!(
        after.value("dhanhook_token_state", &[("state", "expired")]),
        0.0
    );
    let expiry = after.value("dhanhook_token_expiry_seconds", &[]);
    assert!(
        expiry > 20.0 * 3600.0 && expiry <= 24.0 * 3600.0,
        "a fresh token has about a day left: {expiry}"
    );
    assert!(after.value("dhanhook_token_age_seconds", &[]) < 3600.0);
    assert_eq!(after.value("dhanhook_queue_depth", &[]), 0.0);
    assert_eq!(after.value("dhanhook_kill_switch_on", &[]), 0.0);
}

#[tokio::test]
async fn a_failed_mint_is_counted_by_its_reason() {
    let t = live(SimConfig {
        pin: "999999".into(),
        ..SimConfig::default()
    })
    .await;
    // The service was configured with the default PIN; the simulator expects another.
    let m = Scrape::of(&t.app).await;
    let status: Value = t.auth_status().await;
    assert!(!status["last_error"].is_null(), "{status}");
    assert!(m.value("dhanhook_token_mint_attempts_total", &[]) >= 1.0);
    assert_eq!(
        m.value("dhanhook_token_mint_attempts_total", &[]),
        m.value("dhanhook_token_mint_failures_total", &[("reason", "auth")]),
        "every attempt failed, each for Dhan refusing the credentials"
    );
    assert_eq!(m.value("dhanhook_token_state", &[("state", "none")]), 1.0);
    assert_eq!(
        m.value("dhanhook_token_expiry_seconds", &[]),
        0.0,
        "no token: nothing left, so an expiry alert fires"
    );
}

#[tokio::test]
async fn each_periodic_health_check_is_counted_by_its_result() {
    let sim = crate::live::sim_at(SimConfig::default(), crate::helpers::market_time()).await;
    let t = crate::live::start_at(
        sim,
        std::sync::Arc::new(tempfile::tempdir().unwrap()),
        &[("HEALTH_CHECK_INTERVAL", "3600")],
        crate::helpers::market_time(),
    )
    .await;
    eventually("the start-up mint", || t.sim.mint_count() == 1).await;
    let before = Scrape::of(&t.app).await;
    let checks = |m: &Scrape, result: &str| {
        m.value("dhanhook_token_health_checks_total", &[("result", result)])
    };
    assert_eq!(checks(&before, "ok"), 0.0);

    t.advance(chrono::Duration::seconds(3600));

    // The check runs in the background: scrape until it shows (bounded).
    let mut after = Scrape::of(&t.app).await;
    for _ in 0..300 {
        if checks(&after, "ok") >= 1.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        after = Scrape::of(&t.app).await;
    }
    assert_eq!(checks(&after, "ok"), 1.0);
    assert_eq!(checks(&after, "refused"), 0.0);
    assert_eq!(
        after.value(
            "dhanhook_broker_call_seconds_count",
            &[("call", "profile"), ("result", "ok")]
        ),
        1.0,
        "the check is one GET /v2/profile"
    );
}
