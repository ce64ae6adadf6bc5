//! `POST /webhook`: both formats, the secret check, size cap and validation errors.

use serde_json::{Value, json};

use crate::helpers::{SECRET, dhan_alert, flat_alert, spawn_app};

#[tokio::test]
async fn flat_alert_is_placed_with_the_paper_broker_and_journaled() {
    let app = spawn_app().await;

    let resp = app.post_webhook(&flat_alert()).await;

    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "placed");
    assert_eq!(body["duplicate"], false);
    assert_eq!(body["mode"], "paper");
    let leg = &body["legs"][0];
    assert_eq!(leg["leg"], 1);
    assert_eq!(leg["symbol"], "RELIANCE");
    assert_eq!(leg["exchange"], "NSE");
    assert_eq!(leg["side"], "BUY");
    assert_eq!(leg["quantity"], 1);
    assert_eq!(leg["order_type"], "MARKET");
    assert_eq!(leg["product"], "INTRADAY");
    assert_eq!(leg["status"], "FILLED");
    assert!(
        leg["order_id"].as_str().unwrap().starts_with("PAPER-"),
        "{leg}"
    );
    assert_eq!(leg["message"], "paper fill at 2500.5");

    let rows = app.journal_orders().await;
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(row.alert_id, body["alert_id"].as_str().unwrap());
    assert_eq!(row.status.as_str(), "FILLED");
    assert_eq!(row.fill_price, Some(2500.5));
    assert_eq!(row.mode.as_str(), "paper");
    assert_eq!(row.client_ip.as_deref(), Some("127.0.0.1"));
    let cid = &row.correlation_id;
    assert!(
        cid.len() <= 25
            && cid
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
        "{cid}"
    );
}

#[tokio::test]
async fn dhan_format_legs_run_in_sort_order_with_their_own_outcomes() {
    let app = spawn_app().await;

    let resp = app.post_webhook(&dhan_alert()).await;

    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let legs = body["legs"].as_array().unwrap();
    assert_eq!(legs.len(), 2);
    assert_eq!(
        (legs[0]["symbol"].as_str(), legs[0]["status"].as_str()),
        (Some("INFY"), Some("FILLED"))
    );
    assert_eq!(legs[0]["product"], "INTRADAY");
    assert_eq!(
        (legs[1]["symbol"].as_str(), legs[1]["status"].as_str()),
        (Some("TCS"), Some("PENDING"))
    );
    assert_eq!(
        (legs[1]["side"].as_str(), legs[1]["order_type"].as_str()),
        (Some("BUY"), Some("LIMIT"))
    );
    assert_eq!(legs[1]["product"], "CNC");
    assert_ne!(legs[0]["correlation_id"], legs[1]["correlation_id"]);
    assert_eq!(app.journal_orders().await.len(), 2);
}

#[tokio::test]
async fn a_text_plain_body_is_parsed_as_json() {
    let app = spawn_app().await;
    let resp = app
        .post_raw(flat_alert().to_string(), "text/plain; charset=utf-8")
        .await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn wrong_or_missing_secret_gets_401_and_nothing_is_journaled() {
    let app = spawn_app().await;
    let cases: Vec<(&str, Value)> = vec![
        ("wrong", json!("not-the-secret")),
        ("empty", json!("")),
        ("one byte short", json!(&SECRET[..SECRET.len() - 1])),
        ("one byte longer", json!(format!("{SECRET}x"))),
        ("different case", json!(SECRET.to_uppercase())),
        ("a number", json!(12345)),
        ("missing", Value::Null),
    ];
    for (why, secret) in cases {
        let mut body = flat_alert();
        if secret.is_null() {
            body.as_object_mut().unwrap().remove("secret");
        } else {
            body["secret"] = secret;
        }
        // An invalid quantity too: the answer must not reveal validation details.
        body["quantity"] = json!("1.5");
        let resp = app.post_webhook(&body).await;
        assert_eq!(resp.status(), 401, "{why}");
        let text = resp.text().await.unwrap();
        assert_eq!(
            text, r#"{"error":"missing or wrong secret","status":"unauthorized"}"#,
            "{why}"
        );
    }
    assert!(app.journal_orders().await.is_empty());
}

#[tokio::test]
async fn non_json_bodies_get_400_and_nothing_is_journaled() {
    let app = spawn_app().await;
    for body in ["BUY RELIANCE 1", "", "[1,2]", "{\"secret\":", "\u{0}\u{1}"] {
        let resp = app.post_raw(body.to_owned(), "text/plain").await;
        assert_eq!(resp.status(), 400, "{body:?}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["error"], "alert body must be a JSON object");
    }
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    assert_eq!(app.post_raw(deep, "application/json").await.status(), 400);
    assert!(app.journal_orders().await.is_empty());
}

#[tokio::test]
async fn bodies_over_64_kib_get_413() {
    let app = spawn_app().await;
    let mut body = flat_alert();
    body["strategy"] = json!("x".repeat(70 * 1024));
    let resp = app.post_webhook(&body).await;
    assert_eq!(resp.status(), 413);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"], "alert body is larger than 64 KiB");
    assert!(app.journal_orders().await.is_empty());
}

#[tokio::test]
async fn invalid_alerts_get_422_naming_each_field() {
    let app = spawn_app().await;
    let with = |k: &str, v: Value| {
        let mut b = flat_alert();
        b[k] = v;
        b
    };
    let cases = vec![
        (
            "fractional quantity",
            with("quantity", json!("1.5")),
            vec!["quantity"],
        ),
        (
            "negative quantity",
            with("quantity", json!("-5")),
            vec!["quantity"],
        ),
        (
            "zero quantity",
            with("quantity", json!("0")),
            vec!["quantity"],
        ),
        (
            "empty quantity",
            with("quantity", json!("")),
            vec!["quantity"],
        ),
        (
            "unknown action",
            with("action", json!("hold")),
            vec!["action"],
        ),
        ("negative price", with("price", json!("-1")), vec!["price"]),
        (
            "sl without trigger",
            with("order_type", json!("sl")),
            vec!["trigger_price"],
        ),
        ("unknown field", with("qty", json!(1)), vec!["qty"]),
        (
            "bad exchange",
            with("symbol", json!("NYSE:IBM")),
            vec!["symbol"],
        ),
    ];
    for (why, body, fields) in cases {
        let resp = app.post_webhook(&body).await;
        assert_eq!(resp.status(), 422, "{why}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["status"], "invalid", "{why}");
        let got: Vec<&str> = v["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert_eq!(got, fields, "{why}: {v}");
        assert!(
            v["errors"][0]["problem"]
                .as_str()
                .is_some_and(|p| !p.is_empty()),
            "{why}"
        );
    }
    assert!(
        app.journal_orders().await.is_empty(),
        "invalid alerts are not journaled"
    );
}

#[tokio::test]
async fn a_limit_order_without_a_price_names_price() {
    let app = spawn_app().await;
    let mut body = flat_alert();
    body["order_type"] = json!("limit");
    body.as_object_mut().unwrap().remove("price");
    let resp = app.post_webhook(&body).await;
    assert_eq!(resp.status(), 422);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["errors"][0]["field"], "price");
}

#[tokio::test]
async fn dhan_cancel_order_alerts_cancel_and_are_never_placed_as_orders() {
    let app = spawn_app().await;
    let mut body = dhan_alert();
    body["alertType"] = json!("cancel_order");
    let resp = app.post_webhook(&body).await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["legs"], json!([]), "{v}");
    assert_eq!(v["cancels"], json!([]), "nothing of ours was open: {v}");
    assert!(app.journal_orders().await.is_empty());
}

#[tokio::test]
async fn every_leg_outcome_is_a_csv_row_under_one_header() {
    let app = spawn_app().await;
    app.post_webhook(&flat_alert()).await;
    app.post_webhook(&dhan_alert()).await;

    let (header, rows) = app.csv_rows(3).await;
    assert_eq!(
        &header[..21],
        [
            "timestamp",
            "date",
            "time",
            "alert_type",
            "leg_number",
            "symbol",
            "exchange",
            "transaction_type",
            "quantity",
            "order_type",
            "product_type",
            "alert_price",
            "execution_price",
            "price_diff",
            "slippage_pct",
            "status",
            "message",
            "order_id",
            "security_id",
            "execution_mode",
            "source_ip"
        ],
        "the upstream's columns come first, in its order"
    );
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["symbol"], "RELIANCE");
    assert_eq!(rows[0]["status"], "FILLED");
    assert_eq!(
        rows[0]["security_id"], "2885",
        "NSE:RELIANCE's id in the scrip master"
    );
    assert_eq!(rows[0]["execution_price"], "2500.5");
    assert_eq!(rows[0]["mode"], "paper");
    assert_eq!(
        rows[0]["date"], "2026-12-01",
        "IST date of the manual clock"
    );
    assert_eq!(rows[1]["symbol"], "INFY");
    assert_eq!(rows[2]["symbol"], "TCS");
    assert_eq!(rows[2]["status"], "PENDING");
    assert!(
        rows.iter().all(|r| !r["security_id"].is_empty()),
        "every placed leg names its security id: {rows:?}"
    );
    let text = std::fs::read_to_string(app.data_dir().join("webhook_orders.csv")).unwrap();
    assert_eq!(
        text.matches("timestamp,date,time").count(),
        1,
        "header written once"
    );
}

#[tokio::test]
async fn concurrent_distinct_alerts_each_get_one_intact_csv_row() {
    let app = spawn_app().await;
    let sends = (0..40).map(|i| {
        let mut body = flat_alert();
        body["id"] = json!(format!("alert-{i}"));
        let app = &app;
        async move { app.post_webhook(&body).await.status() }
    });
    let statuses = futures::future::join_all(sends).await;
    assert!(statuses.iter().all(|s| *s == 200));
    let (_, rows) = app.csv_rows(40).await;
    assert_eq!(rows.len(), 40);
    assert_eq!(app.journal_orders().await.len(), 40);
}

/// A key that appears twice makes an alert say two things: refused, naming the key, after
/// the secret (a stranger learns nothing), and nothing is journaled.
#[tokio::test]
async fn a_duplicate_key_is_refused_naming_it() {
    let app = spawn_app().await;
    for (body, key) in [
        (
            format!(
                r#"{{"secret":"{SECRET}","symbol":"NSE:SBIN","action":"buy","quantity":1,"quantity":100,"product":"intraday"}}"#
            ),
            "quantity",
        ),
        (
            format!(
                r#"{{"secret":"{SECRET}","symbol":"NSE:SBIN","action":"buy","action":"sell","quantity":1,"product":"intraday"}}"#
            ),
            "action",
        ),
        (
            format!(
                r#"{{"secret":"{SECRET}","alertType":"single_order","order_legs":[{{"transactionType":"B","orderType":"MKT","quantity":"1","quantity":"9","exchange":"NSE","symbol":"SBIN","productType":"I"}}]}}"#
            ),
            "order_legs[0].quantity",
        ),
    ] {
        let resp = app.post_raw(body, "application/json").await;
        assert_eq!(resp.status(), 422);
        let v: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(v["errors"][0]["field"], key, "{v}");
    }
    // Without the right secret: 401, no detail.
    let resp = app
        .post_raw(
            r#"{"secret":"wrong","quantity":1,"quantity":100}"#,
            "application/json",
        )
        .await;
    assert_eq!(resp.status(), 401);
    assert!(app.journal_orders().await.is_empty());
    app.stop().await;
}

/// The CSV log holds order history and client IPs: readable by the service's user only.
#[tokio::test]
async fn the_csv_log_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let app = spawn_app().await;
    app.post_webhook(&flat_alert()).await;
    let mode = std::fs::metadata(app.data_dir().join("webhook_orders.csv"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    app.stop().await;
}

/// A client's x-request-id is logged and echoed: kept only when short and plain, otherwise
/// replaced by a generated one (390 KB ids once wrote 78 MB of log in 0.3 s).
#[tokio::test]
async fn only_a_short_plain_request_id_is_kept() {
    let app = spawn_app().await;
    let echo = |id: String| {
        let client = app.client.clone();
        let url = app.url("/health");
        async move {
            let resp = client
                .get(url)
                .header("x-request-id", &id)
                .send()
                .await
                .unwrap();
            resp.headers()["x-request-id"].to_str().unwrap().to_owned()
        }
    };
    assert_eq!(echo("tv-alert-42.a_b".to_owned()).await, "tv-alert-42.a_b");
    for bad in [
        "x".repeat(65),
        "has space".to_owned(),
        "semi;colon".to_owned(),
    ] {
        let got = echo(bad.clone()).await;
        assert_ne!(got, bad);
        assert!(uuid::Uuid::parse_str(&got).is_ok(), "a generated id: {got}");
    }
    app.stop().await;
}

/// A captured alert replayed later, or one from a broken clock: judged by `timenow` (the fire
/// time), refused with 422 and a reason, journaled as refused, never placed. `MAX_ALERT_AGE=0`
/// turns the check off.
#[tokio::test]
async fn stale_and_future_alerts_are_refused_by_their_timenow() {
    let app = spawn_app().await; // the clock: 2026-12-01 04:30 UTC
    let at = |t: &str| {
        let mut b = flat_alert();
        b["timenow"] = json!(t);
        b
    };
    for (timenow, says) in [
        ("2020-01-01T04:30:00Z", "older than MAX_ALERT_AGE (600 s)"),
        ("2026-12-01T04:19:00Z", "11 min ago"),
        ("2099-01-01T00:00:00Z", "check the sender's clock"),
        ("{{timenow}}", "is not a time like"),
    ] {
        let resp = app.post_webhook(&at(timenow)).await;
        assert_eq!(resp.status(), 422, "{timenow}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["errors"][0]["field"], "timenow", "{v}");
        let problem = v["errors"][0]["problem"].as_str().unwrap();
        assert!(problem.contains(says), "{timenow}: {problem}");
    }
    // Inside the window (and a little clock skew ahead) it is placed.
    for timenow in ["2026-12-01T04:25:00Z", "2026-12-01T04:30:30Z"] {
        let resp = app.post_webhook(&at(timenow)).await;
        assert_eq!(resp.status(), 200, "{timenow}");
    }
    let rows = app.journal_orders().await;
    let refused = rows
        .iter()
        .filter(|r| r.status.as_str() == "REJECTED")
        .count();
    assert_eq!(refused, 4, "journaled as refused");
    assert_eq!(rows.len(), 6);
    // Meta's timenow in Dhan's format counts the same.
    let mut dhan = dhan_alert();
    dhan["meta"]["timenow"] = json!("2020-01-01T04:30:00Z");
    let v: Value = app.post_webhook(&dhan).await.json().await.unwrap();
    assert_eq!(v["errors"][0]["field"], "meta.timenow", "{v}");
    let dir = app.stop().await;

    let off = crate::helpers::spawn_app_with(dir, &[("MAX_ALERT_AGE", "0")]).await;
    let resp = off.post_webhook(&at("2020-06-01T04:30:00Z")).await;
    assert_eq!(resp.status(), 200, "the check is off");
    off.stop().await;
}

/// A guesser is slowed down: past 20 wrong secrets a minute from one address, wrong ones get
/// 429 for a cool-off. The right secret from that same address always gets through (behind a
/// proxy every client shares one address: an attacker must not lock TradingView out). Wrong
/// admin tokens count the same way.
#[tokio::test]
async fn wrong_secrets_from_one_address_are_throttled_but_the_right_one_always_passes() {
    let app = spawn_app().await;
    let mut wrong = flat_alert();
    wrong["secret"] = json!("not-the-secret");
    let mut statuses = Vec::new();
    for _ in 0..25 {
        statuses.push(app.post_webhook(&wrong).await.status().as_u16());
    }
    assert!(statuses[..20].iter().all(|s| *s == 401), "{statuses:?}");
    assert!(statuses[21..].iter().all(|s| *s == 429), "{statuses:?}");
    let throttled = app.post_webhook(&wrong).await;
    assert_eq!(throttled.status(), 429);
    let wait: u64 = throttled.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((250..=300).contains(&wait), "{wait}");

    let right = app.post_webhook(&flat_alert()).await;
    assert_eq!(right.status(), 200, "the right secret is never refused");

    for _ in 0..25 {
        app.get_admin("/logs", "not-the-admin-token").await;
    }
    assert_eq!(
        app.get_admin("/logs", "not-the-admin-token").await.status(),
        429
    );
    assert_eq!(
        app.get_admin("/logs", crate::helpers::ADMIN_TOKEN)
            .await
            .status(),
        200
    );
    app.stop().await;
}

/// `/ready` is public: its journal write check is reused for a few seconds instead of
/// writing on every call.
#[tokio::test]
async fn ready_does_not_write_the_journal_on_every_call() {
    let app = spawn_app().await;
    assert_eq!(app.get("/ready").await.status(), 200);
    crate::helpers::refuse_writes(&app.dir, "heartbeat", "INSERT").await;
    crate::helpers::refuse_writes(&app.dir, "heartbeat", "UPDATE").await;
    for _ in 0..20 {
        assert_eq!(
            app.get("/ready").await.status(),
            200,
            "served from the check just made"
        );
    }
    app.stop().await;
}

/// `ALLOWED_IPS` limits who may post alerts; `TRUSTED_PROXIES` says whose X-Forwarded-For to
/// believe (without it anyone could write TradingView's address into the header). The address
/// these rules produce is the one the journal records.
#[tokio::test]
async fn only_allowed_sources_may_post_alerts_judged_behind_trusted_proxies_only() {
    let post_from = |app: &crate::helpers::TestApp, xff: Option<&str>, id: &str| {
        let mut body = flat_alert();
        body["id"] = json!(id);
        let mut req = app.client.post(app.url("/webhook")).body(body.to_string());
        if let Some(xff) = xff {
            req = req.header("x-forwarded-for", xff);
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());

    // Direct (no proxy trusted): the TCP peer 127.0.0.1 is the client; the header is ignored.
    let app = crate::helpers::spawn_app_with(
        std::sync::Arc::clone(&dir),
        &[("ALLOWED_IPS", "tradingview")],
    )
    .await;
    assert_eq!(post_from(&app, None, "a").await, 403);
    assert_eq!(
        post_from(&app, Some("52.89.214.238"), "b").await,
        403,
        "a header from an untrusted peer proves nothing"
    );
    let dir = app.stop().await;

    // Behind a trusted proxy (127.0.0.1 here): the forwarded client decides.
    let app = crate::helpers::spawn_app_with(
        dir,
        &[
            ("ALLOWED_IPS", "tradingview"),
            ("TRUSTED_PROXIES", "127.0.0.1"),
        ],
    )
    .await;
    assert_eq!(post_from(&app, Some("52.89.214.238"), "c").await, 200);
    assert_eq!(post_from(&app, Some("198.51.100.23"), "d").await, 403);
    assert_eq!(
        post_from(&app, Some("52.89.214.238, 198.51.100.23"), "e").await,
        403,
        "the right-most untrusted address is the client"
    );
    let rows = app.journal_orders().await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].client_ip.as_deref(), Some("52.89.214.238"));
    app.stop().await;
}
