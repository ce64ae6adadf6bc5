//! The scrip master's life cycle as a user sees it: downloaded and cached, reported fresh or
//! stale on /ready, a bad download never replacing a good copy, live mode refusing alerts it
//! cannot resolve; and `dhanhook instruments lookup`.

use std::{
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use axum::{Router, http::StatusCode, routing::get};
use serde_json::Value;

use crate::helpers::{flat_alert, ist_time, market_time, spawn_app_at, spawn_app_with};

const SAMPLE: &str = include_str!("../../data/scrip-master-sample.csv");

/// What the fake download server answers.
#[derive(Clone, Copy)]
enum Serve {
    Good,
    Error,
    Garbage,
}

/// A local stand-in for Dhan's file host; returns its URL and a request counter.
async fn file_server(mode: Arc<std::sync::Mutex<Serve>>) -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    let app = Router::new().route(
        "/api-scrip-master.csv",
        get(move || {
            let mode = *mode.lock().unwrap();
            counter.fetch_add(1, Ordering::SeqCst);
            async move {
                match mode {
                    Serve::Good => (StatusCode::OK, SAMPLE.to_owned()),
                    Serve::Error => (StatusCode::INTERNAL_SERVER_ERROR, "down".to_owned()),
                    Serve::Garbage => (StatusCode::OK, "<html>maintenance</html>".to_owned()),
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/api-scrip-master.csv"), hits)
}

async fn instruments_check(app: &crate::helpers::TestApp) -> Value {
    let v: Value = app.get("/ready").await.json().await.unwrap();
    v["checks"]["instruments"].clone()
}

/// Waits for the instruments check to reach `state` (and, for `stale`, for the failed
/// download that explains it).
async fn wait_for_state(app: &crate::helpers::TestApp, state: &str) -> Value {
    for _ in 0..3000 {
        let check = instruments_check(app).await;
        if check["state"] == state && (state != "stale" || check["last_error"].is_string()) {
            return check;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!(
        "instruments never became {state}: {}",
        instruments_check(app).await
    );
}

#[tokio::test]
async fn the_scrip_master_is_downloaded_in_the_background_cached_and_reported() {
    let mode = Arc::new(std::sync::Mutex::new(Serve::Good));
    let (url, hits) = file_server(Arc::clone(&mode)).await;
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let app = spawn_app_with(Arc::clone(&dir), &[("INSTRUMENTS_URL", &url)]).await;

    let check = wait_for_state(&app, "fresh").await;
    assert_eq!(check["ok"], true);
    assert!(check["rows"].as_u64().unwrap() >= 20, "{check}");
    assert!(dir.path().join("instruments/api-scrip-master.csv").exists());
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    let resp = app.post_webhook(&flat_alert()).await;
    assert_eq!(resp.status(), 200);
    let dir = app.stop().await;

    // A restart the same day reuses the cache: no download.
    let app = spawn_app_with(Arc::clone(&dir), &[("INSTRUMENTS_URL", &url)]).await;
    assert_eq!(instruments_check(&app).await["state"], "fresh");
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    let dir = app.stop().await;

    // The next morning after 08:00 IST the copy is old; the host is down or sends garbage:
    // the last good copy stays in use and is reported stale.
    for (bad, cause) in [(Serve::Error, "HTTP 500"), (Serve::Garbage, "column")] {
        *mode.lock().unwrap() = bad;
        let next_day = ist_time(2026, 12, 2, 9, 30);
        let app = spawn_app_at(Arc::clone(&dir), &[("INSTRUMENTS_URL", &url)], next_day).await;
        let check = wait_for_state(&app, "stale").await;
        assert_eq!(check["ok"], true, "a stale copy still resolves symbols");
        let last_error = check["last_error"].as_str().unwrap_or_default();
        assert!(
            last_error.contains(&url) && last_error.contains(cause),
            "the URL and the cause: {check}"
        );
        let resp = app.post_webhook(&flat_alert()).await;
        assert_eq!(resp.status(), 200);
        let cached =
            std::fs::read_to_string(dir.path().join("instruments/api-scrip-master.csv")).unwrap();
        assert_eq!(cached, SAMPLE, "the good copy was not replaced");
        app.stop().await;
    }
}

#[tokio::test]
async fn live_mode_without_a_scrip_master_is_not_ready_and_refuses_alerts_safely() {
    let mode = Arc::new(std::sync::Mutex::new(Serve::Error));
    let (url, _) = file_server(mode).await;
    let sim = crate::live::sim_at(dhan_sim::SimConfig::default(), market_time()).await;
    let app = spawn_app_with(
        Arc::new(tempfile::tempdir().unwrap()),
        &[
            ("ENABLE_DHAN", "true"),
            ("DHAN_BASE_URL", &sim.base_url()),
            ("DHAN_AUTH_URL", &sim.auth_url()),
            ("DHAN_CLIENT_ID", "1000000001"),
            ("DHAN_PIN", "123456"),
            ("DHAN_TOTP_SECRET", "JBSWY3DPEHPK3PXP"),
            ("INSTRUMENTS_URL", &url),
        ],
    )
    .await;

    let ready = app.get("/ready").await;
    assert_eq!(ready.status(), 503);
    let v: Value = ready.json().await.unwrap();
    assert_eq!(v["checks"]["instruments"]["state"], "missing");
    let resp = app.post_webhook(&flat_alert()).await;
    assert_eq!(
        resp.status(),
        503,
        "TradingView's resend is safe: nothing was journaled"
    );
    assert!(app.journal_orders().await.is_empty());
    assert!(sim.orders().is_empty());
}

#[test]
fn instruments_lookup_prints_what_a_ticker_trades() {
    // Expiries relative to today, so the answer does not depend on the day the test runs.
    let today = chrono::Utc::now().date_naive();
    let near = today + chrono::Duration::days(10);
    let far = today + chrono::Duration::days(40);
    let header = SAMPLE.lines().next().unwrap();
    let file = format!(
        "{header}\nNSE,E,2885,EQUITY,0,RELIANCE,1.0,Reliance Industries,,,,10.0000,NA,ES,EQ,RELIANCE INDUSTRIES LTD\n\
         NSE,D,70001,FUTIDX,0,NIFTY-Near-FUT,65.0,NIFTY NEAR FUT,{near} 14:30:00,-0.01000,XX,10.0000,M,FUT,,\n\
         NSE,D,70002,FUTIDX,0,NIFTY-Far-FUT,65.0,NIFTY FAR FUT,{far} 14:30:00,-0.01000,XX,10.0000,M,FUT,,\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.csv");
    std::fs::write(&path, file).unwrap();
    let lookup = |ticker: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_dhanhook"))
            .args(["instruments", "lookup", ticker])
            .current_dir(dir.path())
            .env_clear()
            .env("INSTRUMENTS_PATH", &path)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    let (ok, out, err) = lookup("NIFTY1!");
    assert!(ok, "{err}");
    assert!(out.contains("security id:     70001"), "{out}");
    assert!(out.contains("segment:         NSE_FNO"), "{out}");
    assert!(out.contains("lot size:        65"), "{out}");
    assert!(out.contains(&format!("expiry:          {near}")), "{out}");
    let (_, out, _) = lookup("NIFTY2!");
    assert!(out.contains("security id:     70002"), "{out}");
    let (ok, out, _) = lookup("NSE:RELIANCE");
    assert!(ok);
    assert!(
        out.contains("security id:     2885")
            && out.contains("segment:         NSE_EQ")
            && out.contains("lot size:        1"),
        "{out}"
    );
    let (ok, _, err) = lookup("NSE:RELIANC");
    assert!(!ok);
    assert!(err.contains("did you mean RELIANCE"), "{err}");
}
