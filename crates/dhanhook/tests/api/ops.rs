//! Operator endpoints: `/`, `/health`, `/ready`, `/logs` and its admin check.

use serde_json::Value;

use crate::helpers::{ADMIN_TOKEN, SECRET, flat_alert, spawn_app, spawn_app_with};

#[tokio::test]
async fn root_shows_version_mode_and_config_without_secrets() {
    let app = spawn_app().await;
    let resp = app.get("/").await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert!(!text.contains(SECRET) && !text.contains(ADMIN_TOKEN));
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["service"], "dhanhook");
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["mode"], "paper");
    assert_eq!(v["config"]["broker"], "paper");
    assert_eq!(v["config"]["webhook_secret"], "from WEBHOOK_SECRET");
    assert_eq!(v["config"]["dedup_window_secs"], 120);
    // The upstream guide checks `.config.health_check_interval` (seconds).
    assert_eq!(v["config"]["health_check_interval"], 21600);
    assert!(v["endpoints"]["POST /webhook"].is_string());
}

#[tokio::test]
async fn health_is_200_and_ready_reports_the_journal() {
    let app = spawn_app().await;
    let health = app.get("/health").await;
    assert_eq!(health.status(), 200);
    let v: Value = health.json().await.unwrap();
    assert_eq!(v["status"], "healthy", "the upstream guide's check: {v}");

    let ready = app.get("/ready").await;
    assert_eq!(ready.status(), 200);
    let v: Value = ready.json().await.unwrap();
    assert_eq!(v["ready"], true);
    assert_eq!(v["checks"]["journal"]["ok"], true);
    assert_eq!(v["checks"]["dhan_client"], "disabled", "paper mode: {v}");
    assert_eq!(v["checks"]["access_token"], "not_used");
}

#[tokio::test]
async fn ready_is_503_when_the_journal_cannot_be_written() {
    let app = spawn_app().await;
    // Make the journal refuse writes underneath the running service.
    crate::helpers::refuse_writes(&app.dir, "heartbeat", "INSERT").await;
    crate::helpers::refuse_writes(&app.dir, "heartbeat", "UPDATE").await;

    let ready = app.get("/ready").await;
    assert_eq!(ready.status(), 503);
    let v: Value = ready.json().await.unwrap();
    assert_eq!(v["ready"], false);
    assert_eq!(v["checks"]["journal"]["ok"], false);
    assert_eq!(
        app.get("/health").await.status(),
        200,
        "liveness does not depend on the journal"
    );
}

#[tokio::test]
async fn logs_need_the_admin_token() {
    let app = spawn_app().await;
    app.post_webhook(&flat_alert()).await;

    assert_eq!(app.get("/logs").await.status(), 401);
    assert_eq!(app.get_admin("/logs", "wrong-token").await.status(), 401);
    assert_eq!(
        app.get_admin("/logs", &ADMIN_TOKEN[1..]).await.status(),
        401
    );

    let resp = app.get_admin("/logs", ADMIN_TOKEN).await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["count"], 1);
    assert_eq!(v["orders"][0]["symbol"], "RELIANCE");
    assert_eq!(v["orders"][0]["status"], "FILLED");
    assert_eq!(v["orders"][0]["mode"], "paper");
    assert!(
        v["orders"][0]["received_at"]
            .as_str()
            .unwrap()
            .ends_with("+05:30")
    );
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive_the_token_is_not() {
    let app = spawn_app().await;
    app.post_webhook(&flat_alert()).await;
    let logs = |authorization: String| {
        app.client
            .get(app.url("/logs"))
            .header("authorization", authorization)
            .send()
    };

    for scheme in ["bearer", "BEARER", "bEaReR"] {
        let resp = logs(format!("{scheme} {ADMIN_TOKEN}")).await.unwrap();
        assert_eq!(resp.status(), 200, "scheme {scheme}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["count"], 1, "scheme {scheme}");
    }
    for wrong in [
        format!("bearer {}", ADMIN_TOKEN.to_uppercase()),
        "bearer wrong-token".to_owned(),
        format!("Basic {ADMIN_TOKEN}"),
        format!("Bearer{ADMIN_TOKEN}"),
        "bearer".to_owned(),
    ] {
        let resp = logs(wrong.clone()).await.unwrap();
        assert_eq!(resp.status(), 401, "{wrong}");
    }
}

#[tokio::test]
async fn logs_are_403_with_advice_when_no_admin_token_is_set() {
    let app = spawn_app_with(
        std::sync::Arc::new(tempfile::tempdir().unwrap()),
        &[("ADMIN_TOKEN", "")],
    )
    .await;
    let resp = app.get_admin("/logs", "anything").await;
    assert_eq!(resp.status(), 403);
    let v: Value = resp.json().await.unwrap();
    assert!(v["error"].as_str().unwrap().contains("set ADMIN_TOKEN"));
}

#[tokio::test]
async fn logs_are_newest_first_and_limited() {
    let app = spawn_app().await;
    for i in 0..5 {
        let mut b = flat_alert();
        b["id"] = serde_json::json!(format!("n{i}"));
        b["quantity"] = serde_json::json!(i + 1);
        app.post_webhook(&b).await;
        app.clock.advance(chrono::Duration::seconds(1));
    }
    let v: Value = app
        .get_admin("/logs?limit=3", ADMIN_TOKEN)
        .await
        .json()
        .await
        .unwrap();
    let qty: Vec<i64> = v["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["quantity"].as_i64().unwrap())
        .collect();
    assert_eq!(qty, [5, 4, 3]);

    let big: Value = app
        .get_admin("/logs?limit=5000", ADMIN_TOKEN)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(big["limit"], 1000);
    assert_eq!(big["count"], 5);
    assert_eq!(
        app.get_admin("/logs?limit=abc", ADMIN_TOKEN).await.status(),
        422
    );
    assert_eq!(
        app.get_admin("/logs?limit=0", ADMIN_TOKEN).await.status(),
        422
    );
}

#[tokio::test]
async fn unknown_paths_are_404_in_json() {
    let app = spawn_app().await;
    let resp = app.get("/docs").await;
    assert_eq!(resp.status(), 404);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["status"], "error");
}
