//! Duplicates: redeliveries are answered from the journal and place nothing, under concurrency
//! and whatever the dedupe key (explicit id, timenow, or identical payload within the window).

use serde_json::{Value, json};

use crate::helpers::{TestApp, dhan_alert, flat_alert, spawn_app};

/// The CSV rows written before a fresh marker alert's row. The log keeps append order, so
/// once the marker's row is there every row appended before it (a duplicate's, if one were
/// wrongly written) is there too: the count is final, not a snapshot.
async fn csv_rows_before_a_marker(app: &TestApp) -> usize {
    let mut marker = flat_alert();
    marker["id"] = json!("csv-marker");
    let answer: Value = app.post_webhook(&marker).await.json().await.unwrap();
    assert_eq!(answer["duplicate"], false, "{answer}");
    let marker_id = answer["alert_id"].as_str().unwrap().to_owned();
    for _ in 0..1000 {
        let (_, rows) = app.csv();
        if let Some(at) = rows.iter().position(|r| r["alert_id"] == marker_id) {
            assert_eq!(at + 1, rows.len(), "the marker's row is the last: {rows:?}");
            return at;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the marker's CSV row never came: {:?}", app.csv().1);
}

#[tokio::test]
async fn the_same_alert_twice_places_one_order_and_says_duplicate() {
    let app = spawn_app().await;

    let first: Value = app.post_webhook(&flat_alert()).await.json().await.unwrap();
    let second_resp = app.post_webhook(&flat_alert()).await;

    assert_eq!(second_resp.status(), 200);
    let second: Value = second_resp.json().await.unwrap();
    assert_eq!(second["duplicate"], true);
    assert_eq!(second["alert_id"], first["alert_id"]);
    assert_eq!(
        second["legs"], first["legs"],
        "the first delivery's outcome"
    );
    assert_eq!(second["status"], first["status"]);
    let rows = app.journal_orders().await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].duplicates, 1);
    assert_eq!(
        csv_rows_before_a_marker(&app).await,
        1,
        "a duplicate writes no CSV row"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_copies_produce_exactly_one_order() {
    let app = spawn_app().await;
    let body = dhan_alert();

    let responses = futures::future::join_all((0..50).map(|_| async {
        let resp = app.post_webhook(&body).await;
        let status = resp.status();
        (status, resp.json::<Value>().await.unwrap())
    }))
    .await;

    assert!(responses.iter().all(|(s, _)| *s == 200), "{responses:?}");
    let firsts = responses
        .iter()
        .filter(|(_, b)| b["duplicate"] == false)
        .count();
    assert_eq!(firsts, 1, "exactly one delivery is the original");
    let ids: std::collections::HashSet<_> = responses
        .iter()
        .map(|(_, b)| b["alert_id"].clone())
        .collect();
    assert_eq!(ids.len(), 1, "every copy names the same alert");
    let rows = app.journal_orders().await;
    assert_eq!(rows.len(), 2, "one alert with two legs, once");
    assert!(rows.iter().all(|r| r.duplicates == 49));
    assert_eq!(csv_rows_before_a_marker(&app).await, 2);
}

#[tokio::test]
async fn identical_payloads_are_one_alert_only_within_the_window() {
    let app = spawn_app().await;
    let first: Value = app.post_webhook(&flat_alert()).await.json().await.unwrap();

    app.clock.advance(chrono::Duration::seconds(119));
    let inside: Value = app.post_webhook(&flat_alert()).await.json().await.unwrap();
    assert_eq!(inside["duplicate"], true);

    app.clock.advance(chrono::Duration::seconds(2));
    let outside: Value = app.post_webhook(&flat_alert()).await.json().await.unwrap();
    assert_eq!(
        outside["duplicate"], false,
        "121 s later the same signal is a new alert"
    );
    assert_ne!(outside["alert_id"], first["alert_id"]);
    assert_eq!(app.journal_orders().await.len(), 2);
}

#[tokio::test]
async fn timenow_makes_each_firing_distinct_and_each_replay_a_duplicate_forever() {
    let app = spawn_app().await;
    let at = |t: &str| {
        let mut b = flat_alert();
        b["timenow"] = json!(t);
        b
    };
    let a: Value = app
        .post_webhook(&at("2026-12-01T04:30:00Z"))
        .await
        .json()
        .await
        .unwrap();
    let b: Value = app
        .post_webhook(&at("2026-12-01T04:25:00Z"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (a["duplicate"].clone(), b["duplicate"].clone()),
        (json!(false), json!(false))
    );

    app.clock.advance(chrono::Duration::days(3));
    let replay: Value = app
        .post_webhook(&at("2026-12-01T04:30:00Z"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(replay["duplicate"], true);
    assert_eq!(replay["alert_id"], a["alert_id"]);
    assert_eq!(app.journal_orders().await.len(), 2);
}

#[tokio::test]
async fn an_explicit_id_is_the_key_within_its_strategy() {
    let app = spawn_app().await;
    let with = |strategy: &str, id: &str, qty: u32| {
        let mut b = flat_alert();
        b["strategy"] = json!(strategy);
        b["id"] = json!(id);
        b["quantity"] = json!(qty);
        b
    };
    let first: Value = app
        .post_webhook(&with("ema", "sig-1", 1))
        .await
        .json()
        .await
        .unwrap();
    // Same strategy and id, even with another body: the sender says it is the same alert.
    let again: Value = app
        .post_webhook(&with("ema", "sig-1", 5))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["duplicate"], true);
    assert_eq!(
        again["legs"][0]["quantity"], 1,
        "the first delivery's order"
    );
    let other_strategy: Value = app
        .post_webhook(&with("rsi", "sig-1", 1))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(other_strategy["duplicate"], false);
    assert_ne!(other_strategy["alert_id"], first["alert_id"]);
    assert_eq!(app.journal_orders().await.len(), 2);
}

#[tokio::test]
async fn the_same_order_written_differently_is_still_a_duplicate() {
    let app = spawn_app().await;
    app.post_webhook(&flat_alert()).await;
    let mut respelled = flat_alert();
    respelled["symbol"] = json!("RELIANCE");
    respelled["exchange"] = json!("NSE");
    respelled["action"] = json!("BUY");
    respelled["quantity"] = json!(1);
    respelled["price"] = json!(2500.5);
    let v: Value = app.post_webhook(&respelled).await.json().await.unwrap();
    assert_eq!(v["duplicate"], true);
}
