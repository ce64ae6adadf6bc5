//! Market hours, AMO and the durable queue, under a moved clock, against dhan-sim.

use std::{sync::Arc, time::Duration};

use dhan_sim::SimConfig;
use serde_json::{Value, json};

use crate::{
    helpers::{ADMIN_TOKEN, SECRET, flat_alert, ist_time, spawn_app_at},
    live::{Live, eventually, sim_at, start_at},
};

fn dir() -> Arc<tempfile::TempDir> {
    Arc::new(tempfile::tempdir().unwrap())
}

async fn live_at(at: chrono::DateTime<chrono::Utc>, extra: &[(&str, &str)]) -> Live {
    start_at(sim_at(SimConfig::default(), at).await, dir(), extra, at).await
}

#[tokio::test]
async fn an_alert_at_18_00_on_a_trading_day_becomes_an_amo_with_the_requested_amo_time() {
    let t = live_at(ist_time(2026, 12, 1, 18, 0), &[]).await;
    t.sim.set_market_open(false);

    let mut body = flat_alert();
    body["amo_time"] = json!("OPEN_30");
    let resp = t.app.post_webhook(&body).await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(
        v["route"],
        json!({"route": "amo", "amo_time": "OPEN_30"}),
        "{v}"
    );
    assert_eq!(v["legs"][0]["status"], "ACCEPTED", "{v}");

    // An alert naming no amoTime gets AMO_TIME (default OPEN).
    let mut plain = flat_alert();
    plain["id"] = json!("second");
    let v2: Value = t.app.post_webhook(&plain).await.json().await.unwrap();
    assert_eq!(v2["route"]["amo_time"], "OPEN");

    let orders = t.sim.orders();
    assert_eq!(orders.len(), 2);
    assert_eq!(orders[0].body["afterMarketOrder"], true);
    assert_eq!(orders[0].body["amoTime"], "OPEN_30");
    assert_eq!(orders[1].body["amoTime"], "OPEN");
    let rows = t.app.journal_orders().await;
    assert!(
        rows.iter().all(|r| r.amo),
        "the journal records the legs as AMOs"
    );
}

#[tokio::test]
async fn a_saturday_alert_with_when_closed_queue_is_placed_once_at_mondays_open() {
    let t = live_at(ist_time(2026, 12, 5, 10, 0), &[("WHEN_CLOSED", "queue")]).await;

    let resp = t.app.post_webhook(&flat_alert()).await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["status"], "queued", "{v}");
    assert_eq!(
        v["route"]["until"], "2026-12-07T03:45:00Z",
        "Monday 09:15 IST"
    );
    assert_eq!(v["legs"][0]["status"], "QUEUED");
    assert!(
        v["legs"][0]["message"]
            .as_str()
            .unwrap()
            .contains("2026-12-07 09:15"),
        "{v}"
    );
    let again: Value = t
        .app
        .post_webhook(&flat_alert())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        again["duplicate"], true,
        "a resend while queued is a duplicate"
    );

    // Sunday, then Monday 09:14: nothing yet.
    t.advance(chrono::Duration::hours(47) + chrono::Duration::minutes(14));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(t.sim.orders().len(), 0, "not before the open");

    t.advance(chrono::Duration::minutes(1));
    eventually("the queued order at the open", || t.sim.orders().len() == 1).await;
    let order = &t.sim.orders()[0];
    assert_eq!(
        order.correlation_id.as_deref(),
        v["legs"][0]["correlation_id"].as_str()
    );
    assert!(
        order.body.get("afterMarketOrder").is_none(),
        "placed as a regular order at the open"
    );

    // Not twice: an operator's manual run and more time change nothing.
    let processed: Value = t
        .app
        .post_admin("/process-queue")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(processed["processed"], 0);
    t.advance(chrono::Duration::hours(1));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(t.sim.orders().len(), 1);
    let rows = t.app.journal_orders().await;
    assert_eq!(rows[0].status.as_str(), "ACCEPTED");
    let stats: Value = t
        .app
        .get_admin("/queue-stats", ADMIN_TOKEN)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(stats["by_status"]["placed"], 1, "{stats}");
}

#[tokio::test]
async fn a_restart_between_claim_and_placement_never_places_a_sent_leg_again() {
    let saturday = ist_time(2026, 12, 5, 10, 0);
    let sim = sim_at(SimConfig::default(), saturday).await;
    let data = dir();
    let t = start_at(
        sim.clone(),
        Arc::clone(&data),
        &[("WHEN_CLOSED", "queue")],
        saturday,
    )
    .await;
    let body = json!({"secret": SECRET, "alertType": "multi_leg_order", "order_legs": [
        {"transactionType":"B","orderType":"MKT","quantity":"1","exchange":"NSE","symbol":"INFY","productType":"I"},
        {"transactionType":"B","orderType":"MKT","quantity":"2","exchange":"NSE","symbol":"TCS","productType":"I"}]});
    let v: Value = t.app.post_webhook(&body).await.json().await.unwrap();
    assert_eq!(v["status"], "queued", "{v}");
    let data = t.app.stop().await;

    // The crash: the alert was claimed and leg 1 marked SUBMITTING (it may have reached Dhan),
    // then the process died before leg 2.
    crate::helpers::journal_sql(
        &data,
        "UPDATE alerts SET status = 'processing', claimed_at = updated_at; UPDATE order_legs SET status = 'SUBMITTING' WHERE leg_no = 1;",
    )
    .await;

    let monday = ist_time(2026, 12, 7, 9, 20);
    sim.set_now(monday);
    let t = start_at(sim.clone(), data, &[("WHEN_CLOSED", "queue")], monday).await;
    eventually("leg 2 placed after the restart", || sim.orders().len() == 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let orders = sim.orders();
    assert_eq!(orders.len(), 1, "only the leg that was never sent");
    assert_eq!(
        orders[0].correlation_id.as_deref(),
        v["legs"][1]["correlation_id"].as_str()
    );
    let rows = t.app.journal_orders().await;
    let leg1 = rows.iter().find(|r| r.leg == 1).unwrap();
    // The start-up reconciliation looked it up: Dhan does not have it, so it is UNKNOWN until
    // the settle time passes (then re-sent once), never placed again by the queue.
    assert_eq!(
        leg1.status.as_str(),
        "UNKNOWN",
        "its fate is looked up, never guessed"
    );
}

#[tokio::test]
async fn a_journal_error_while_recovering_the_queue_is_retried_in_seconds() {
    let saturday = ist_time(2026, 12, 5, 10, 0);
    let sim = sim_at(SimConfig::default(), saturday).await;
    let t = start_at(sim.clone(), dir(), &[("WHEN_CLOSED", "queue")], saturday).await;
    let v: Value = t
        .app
        .post_webhook(&flat_alert())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["status"], "queued", "{v}");
    let data = t.app.stop().await;
    // A run claimed the alert and died before sending anything; and at the restart the
    // journal refuses updates of alerts for a while (a full disk, a lock held elsewhere).
    crate::helpers::journal_sql(
        &data,
        "UPDATE alerts SET status = 'processing', claimed_at = updated_at;",
    )
    .await;
    crate::helpers::refuse_writes(&data, "alerts", "UPDATE").await;

    let monday = ist_time(2026, 12, 7, 9, 20);
    sim.set_now(monday);
    let t = start_at(sim.clone(), data, &[("WHEN_CLOSED", "queue")], monday).await;
    // The queue runner's first pass meets the refusal.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(sim.orders().is_empty());
    crate::helpers::allow_writes(&t.app.dir, "alerts", "UPDATE").await;

    // Recovered on the next try, seconds later: not at the next scheduled wake (minutes away
    // on this clock, which does not move).
    eventually("the queued alert placed once the journal recovers", || {
        sim.orders().len() == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sim.orders().len(), 1);
}

#[tokio::test]
async fn queued_alerts_older_than_the_max_age_expire_instead_of_being_placed() {
    let t = live_at(
        ist_time(2026, 12, 5, 10, 0),
        &[("WHEN_CLOSED", "queue"), ("QUEUE_MAX_AGE", "3600")],
    )
    .await;
    let v: Value = t
        .app
        .post_webhook(&flat_alert())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["status"], "queued");

    t.advance(chrono::Duration::hours(48));
    let mut rows = t.app.journal_orders().await;
    for _ in 0..3000 {
        if rows[0].status.as_str() == "REJECTED" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        rows = t.app.journal_orders().await;
    }
    assert_eq!(rows[0].status.as_str(), "REJECTED");
    assert!(
        rows[0]
            .message
            .as_deref()
            .unwrap()
            .contains("expired in the queue"),
        "{:?}",
        rows[0].message
    );
    assert_eq!(t.sim.orders().len(), 0);
}

#[tokio::test]
async fn when_closed_reject_refuses_and_names_the_next_open() {
    let app = spawn_app_at(
        dir(),
        &[("WHEN_CLOSED", "reject")],
        ist_time(2026, 12, 5, 10, 0),
    )
    .await;
    let v: Value = app.post_webhook(&flat_alert()).await.json().await.unwrap();
    assert_eq!(v["status"], "rejected", "{v}");
    assert_eq!(v["route"]["route"], "reject");
    let msg = v["legs"][0]["message"].as_str().unwrap();
    assert!(
        msg.contains("next opens at Mon 07 Dec 2026 09:15 IST"),
        "{msg}"
    );

    // A per-alert override wins over the configured policy.
    let mut queued = flat_alert();
    queued["when_closed"] = json!("queue");
    queued["id"] = json!("override");
    let q: Value = app.post_webhook(&queued).await.json().await.unwrap();
    assert_eq!(q["status"], "queued", "{q}");
}

#[tokio::test]
async fn market_status_and_ready_report_sessions_holidays_and_missing_years() {
    let app = spawn_app_at(dir(), &[], ist_time(2026, 12, 19, 10, 0)).await;
    let v: Value = app.get("/market-status").await.json().await.unwrap();
    assert_eq!(v["market"]["status"], "closed", "a Saturday: {v}");
    assert_eq!(v["market"]["next_trading_day"], "2026-12-21");
    assert_eq!(v["upcoming_holidays"][0]["date"], "2026-12-25");
    assert_eq!(v["venues"]["NSE_EQ"]["next_open"], "2026-12-21 09:15:00");
    assert_eq!(v["venues"]["NSE_EQ"]["amo_accepted_now"], true);
    assert_eq!(
        v["venues"]["NSE_EQ"]["missing_holiday_years"],
        json!([2027])
    );
    assert_eq!(v["an_nse_equity_alert_now"]["route"], "amo");

    let ready: Value = app.get("/ready").await.json().await.unwrap();
    assert_eq!(
        ready["checks"]["calendar"]["missing_holiday_years"],
        json!([2027])
    );
    assert_eq!(
        ready["checks"]["calendar"]["ok"], true,
        "2026 is known; 2027 is reported ahead"
    );
    assert_eq!(ready["checks"]["instruments"]["state"], "sample");
}
