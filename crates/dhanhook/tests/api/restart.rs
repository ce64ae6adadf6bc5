//! What must survive a restart: the journal, dedupe keys and the generated webhook secret.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::helpers::{flat_alert, spawn_app_with};

#[tokio::test]
async fn journal_and_dedupe_keys_survive_a_restart() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let app = spawn_app_with(Arc::clone(&dir), &[]).await;
    let mut body = flat_alert();
    body["timenow"] = json!("2026-12-01T04:30:00Z");
    let first: Value = app.post_webhook(&body).await.json().await.unwrap();
    let dir = app.stop().await;

    let app = spawn_app_with(dir, &[]).await;
    let again: Value = app.post_webhook(&body).await.json().await.unwrap();

    assert_eq!(
        again["duplicate"], true,
        "a redelivery after a restart places nothing"
    );
    assert_eq!(again["alert_id"], first["alert_id"]);
    let rows = app.journal_orders().await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].status.as_str(), "FILLED");
}

#[tokio::test]
async fn a_generated_webhook_secret_is_private_and_reused_after_a_restart() {
    use std::os::unix::fs::PermissionsExt;

    let dir = Arc::new(tempfile::tempdir().unwrap());
    let app = spawn_app_with(Arc::clone(&dir), &[("WEBHOOK_SECRET", "")]).await;
    let path = dir.path().join("webhook_secret");
    let secret = std::fs::read_to_string(&path).unwrap();
    assert_eq!(secret.len(), 64, "256 random bits, hex");
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let root: Value = app.get("/").await.json().await.unwrap();
    assert!(
        root["config"]["webhook_secret"]
            .as_str()
            .unwrap()
            .starts_with("generated, in ")
    );
    let dir = app.stop().await;

    let app = spawn_app_with(dir, &[("WEBHOOK_SECRET", "")]).await;
    assert_eq!(std::fs::read_to_string(&path).unwrap(), secret);
    let mut body = flat_alert();
    body["secret"] = json!(secret);
    assert_eq!(
        app.post_webhook(&body).await.status(),
        200,
        "the stored secret is accepted"
    );
    body["secret"] = json!(crate::helpers::SECRET);
    assert_eq!(app.post_webhook(&body).await.status(), 401);
}
