//! `kill -9` at each crash point of a live order, then a restart: every alert ends with exactly
//! one order at dhan-sim. The real binary runs (the crash aborts the process, as `kill -9`
//! would); its clock is set to a market hour with DHANHOOK_CLOCK_START, like the simulator's.

use std::time::Duration;

use dhan_sim::{Sim, SimConfig, SimHandle};
use serde_json::{Value, json};

use crate::{
    cli::{as_refs, serve, sim_env},
    helpers::{SECRET, http_client, market_time},
    live::eventually,
};

fn env_for(
    sim: &SimHandle,
    crash_at: Option<&str>,
    database_url: Option<&str>,
) -> Vec<(String, String)> {
    let mut env = sim_env(sim);
    if let Some(url) = database_url {
        env.push(("DATABASE_URL".to_owned(), url.to_owned()));
    }
    env.extend([
        ("ENABLE_DHAN".to_owned(), "true".to_owned()),
        ("WEBHOOK_SECRET".to_owned(), SECRET.to_owned()),
        (
            "INSTRUMENTS_PATH".to_owned(),
            concat!(env!("CARGO_MANIFEST_DIR"), "/data/scrip-master-sample.csv").to_owned(),
        ),
        ("DHANHOOK_CLOCK_START".to_owned(), sim.now().to_rfc3339()),
        ("UNKNOWN_SETTLE_SECS".to_owned(), "5".to_owned()),
        ("RUST_LOG".to_owned(), "info".to_owned()),
        // Live mode on a PostgreSQL journal needs the token key (the same across restarts).
        (
            "TOKEN_KEY".to_owned(),
            crate::helpers::TEST_TOKEN_KEY.to_owned(),
        ),
    ]);
    if let Some(point) = crash_at {
        env.push(("DHANHOOK_CRASH_AT".to_owned(), point.to_owned()));
    }
    env
}

async fn crash_then_restart(point: &str) {
    let sim = Sim::spawn(SimConfig {
        start_time: market_time(),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let alert = json!({"secret": SECRET, "id": "crash-1", "symbol": "NSE:RELIANCE", "action": "buy",
                       "quantity": 1, "product": "intraday"});

    let database_url = crate::helpers::test_database_url(&dir).await;
    let env = env_for(&sim, Some(point), database_url.as_deref());
    let first = serve(dir.path(), &as_refs(&env));
    // Let the start-up mint finish first: the crash under test is the order's, not the mint's.
    eventually("the start-up token", || sim.mint_count() == 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = http_client()
        .post(format!("{}/webhook", first.base))
        .body(alert.to_string())
        .send()
        .await;
    assert!(sent.is_err(), "{point}: the process died before answering");
    let (status, out) = first.wait_exit();
    assert!(!status.success(), "{point}: aborted");
    assert!(out.contains(&format!("DHANHOOK_CRASH_AT={point}")), "{out}");

    // Restart without the crash point: start-up reconciliation settles the leg.
    let env = env_for(&sim, None, database_url.as_deref());
    let second = serve(dir.path(), &as_refs(&env));
    // A bound for a hang, not a timing claim: an order Dhan never got is re-sent only after
    // UNKNOWN_SETTLE_SECS (5 s here) of absence, so allow several times that.
    let waited = std::time::Instant::now();
    while waited.elapsed() < Duration::from_secs(30) && sim.orders().len() != 1 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    if sim.orders().len() != 1 {
        let (_, out) = second.terminate();
        panic!("{point}: no order after the restart; its log:\n{out}");
    }
    // TradingView (or a person) sends the alert again: a duplicate, nothing new.
    let again: Value = http_client()
        .post(format!("{}/webhook", second.base))
        .body(alert.to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["duplicate"], true, "{point}: {again}");
    // Past the settle time and a few reconciler passes: still exactly one order.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let orders = sim.orders();
    assert_eq!(orders.len(), 1, "{point}: exactly one order");
    assert_eq!(
        orders[0].correlation_id.as_deref(),
        again["legs"][0]["correlation_id"].as_str()
    );
    let (_, out) = second.terminate();
    assert!(!out.contains("PANIC"), "{out}");
}

// Each runs the binary with blocking reads while the simulator serves from this runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_the_journal_commit_places_the_order_once_after_restart() {
    crash_then_restart("after_journal").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_submitting_places_the_order_once_after_restart() {
    crash_then_restart("after_submitting").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_dhan_accepted_never_places_it_again() {
    crash_then_restart("after_broker").await;
}
