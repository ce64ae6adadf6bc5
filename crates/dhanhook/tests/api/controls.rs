//! Trader controls (issue 13) as a trader sees them: risk rails that refuse a leg with the rule
//! and its numbers (journaled BLOCKED, never sent: dhan-sim's order book stays empty), the kill
//! switch (entries refused, exits pass; persistent across a restart and shared by a second
//! instance; flatten closes the sim's positions; Dhan's own switch), and `on_leg_reject=stop`.

use std::sync::Arc;

use dhan_sim::{Fault, SimConfig};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::{
    helpers::{
        ADMIN_TOKEN, SECRET, TestApp, dhan_alert, ist_time, market_time, spawn_app, spawn_app_at,
        spawn_app_with, test_database_url,
    },
    journal_contract::{PG_URL_VAR, TestDatabase},
    live::{Live, eventually, live_vars, sim_at, start_at},
};

/// The app in live mode against a fresh dhan-sim, with `vars`, its clock at `at`.
async fn live_at(vars: &[(&str, &str)], at: chrono::DateTime<chrono::Utc>) -> Live {
    let sim = sim_at(SimConfig::default(), at).await;
    start_at(sim, Arc::new(tempfile::tempdir().unwrap()), vars, at).await
}

async fn live_with(vars: &[(&str, &str)]) -> Live {
    live_at(vars, market_time()).await
}

/// A flat-format alert; `extra` fields are added or replace the defaults.
fn alert(symbol: &str, quantity: u32, extra: Value) -> Value {
    let mut a = json!({"secret": SECRET, "symbol": symbol, "action": "buy", "quantity": quantity,
                       "product": "intraday"});
    for (k, v) in extra.as_object().unwrap() {
        a[k] = v.clone();
    }
    a
}

/// An exit: TradingView's `"position": "flat"`, which closes whatever the broker holds
/// (`action` and `quantity` are not used; see `pipeline/positions.rs`).
fn exit_alert(symbol: &str, quantity: u32) -> Value {
    alert(
        symbol,
        quantity,
        json!({"action": "sell", "position": "flat"}),
    )
}

/// A position opened by hand at "Dhan" (a market BUY of RELIANCE, outside dhanhook), so that
/// an exit has something to close whatever the controls let dhanhook do.
async fn by_hand(sim: &dhan_sim::SimHandle, quantity: u32) {
    let token = sim.active_token().expect("a token");
    let resp = crate::helpers::http_client()
        .post(format!("{}/orders", sim.base_url()))
        .header("access-token", token)
        .json(&json!({"dhanClientId": SimConfig::default().client_id,
            "correlationId": "placed-by-hand", "transactionType": "BUY",
            "exchangeSegment": "NSE_EQ", "productType": "INTRADAY", "orderType": "MARKET",
            "validity": "DAY", "securityId": "2885", "quantity": quantity}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    eventually("the by-hand order trades", || {
        sim.orders()
            .iter()
            .any(|o| o.correlation_id.as_deref() == Some("placed-by-hand") && o.status == "TRADED")
    })
    .await;
}

async fn post(app: &TestApp, body: &Value) -> (u16, Value) {
    let resp = app.post_webhook(body).await;
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

/// `POST /kill-switch` with the admin token.
async fn kill_switch(app: &TestApp, body: Value) -> (u16, Value) {
    let resp = app
        .client
        .post(app.url("/kill-switch"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

/// The first leg's status of each answer, for a short failure message.
fn statuses(answers: &[(u16, Value)]) -> String {
    answers
        .iter()
        .map(|(code, b)| format!("{code}:{}", b["legs"][0]["status"]))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Order writes (`POST /v2/orders`) the sim received.
fn order_posts(live: &Live) -> usize {
    live.sim
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/v2/orders")
        .count()
}

/// Asserts the answer refused the alert's only leg as BLOCKED with `reason`, and that the
/// journal says the same.
async fn assert_blocked(app: &TestApp, answer: &(u16, Value), reason: &str) {
    let (status, body) = answer;
    assert_eq!(*status, 200, "{body}");
    assert_eq!(body["status"], "rejected", "{body}");
    let leg = &body["legs"][0];
    assert_eq!(leg["status"], "BLOCKED", "{body}");
    assert_eq!(leg["order_id"], Value::Null, "{body}");
    let message = leg["message"].as_str().unwrap_or_default();
    assert!(message.contains(reason), "{message:?} lacks {reason:?}");
    let rows = app.journal_orders().await;
    let row = rows
        .iter()
        .find(|r| r.alert_id == body["alert_id"].as_str().unwrap())
        .expect("the alert's leg is journaled");
    assert_eq!(row.status.as_str(), "BLOCKED");
    assert_eq!(row.message.as_deref(), Some(message));
}

#[tokio::test]
async fn each_risk_rail_refuses_with_its_rule_and_numbers_and_nothing_reaches_dhan() {
    // (settings, alert, what the refusal says)
    type Case = (Vec<(&'static str, &'static str)>, Value, &'static str);
    let cases: Vec<Case> = vec![
        (
            vec![("MAX_QTY_PER_LEG", "10")],
            alert("NSE:RELIANCE", 11, json!({})),
            "blocked by MAX_QTY_PER_LEG: 11 units, limit 10",
        ),
        (
            vec![("MAX_LOTS_PER_LEG", "1"), ("FNO_QUANTITY", "lots")],
            alert("NSE:NIFTY1!", 2, json!({"product": "margin"})),
            "blocked by MAX_LOTS_PER_LEG: 2 lots (130 units, lot size 65), limit 1",
        ),
        (
            vec![("MAX_ORDER_VALUE", "1000")],
            alert("NSE:RELIANCE", 1, json!({"price": "2500.5"})),
            "blocked by MAX_ORDER_VALUE: 1 units × ₹2500.50 = ₹2500.50, limit ₹1000.00",
        ),
        (
            vec![("SYMBOL_DENYLIST", "TCS,NSE:RELIANCE")],
            alert("NSE:RELIANCE", 1, json!({})),
            "blocked by SYMBOL_DENYLIST: RELIANCE is listed (NSE:RELIANCE)",
        ),
        (
            vec![("SYMBOL_ALLOWLIST", "TCS,INFY")],
            alert("NSE:RELIANCE", 1, json!({})),
            "blocked by SYMBOL_ALLOWLIST: RELIANCE is not in it (TCS,INFY)",
        ),
        (
            // The test clock says 10:00 IST.
            vec![("ENTRY_WINDOW", "09:20-09:45")],
            alert("NSE:RELIANCE", 1, json!({})),
            "blocked by ENTRY_WINDOW: no new entries at 10:00 IST (entries 09:20-09:45 IST)",
        ),
    ];
    for (vars, body, reason) in cases {
        let live = live_with(&vars).await;
        let answer = post(&live.app, &body).await;
        assert_blocked(&live.app, &answer, reason).await;
        assert!(
            live.sim.orders().is_empty(),
            "{vars:?}: the sim got an order"
        );
        assert_eq!(order_posts(&live), 0, "{vars:?}");
    }
}

#[tokio::test]
async fn exits_pass_the_entry_window_and_the_kill_switch() {
    let live = live_with(&[("ENTRY_WINDOW", "09:20-09:45")]).await;
    by_hand(&live.sim, 1).await;
    let (status, body) = post(&live.app, &exit_alert("NSE:RELIANCE", 1)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["legs"][0]["status"], "ACCEPTED", "{body}");
    assert_eq!(body["legs"][0]["side"], "SELL", "{body}");
    assert_eq!(live.sim.orders().len(), 2);
}

#[tokio::test]
async fn the_day_counts_stop_entries_at_the_limit_in_total_and_per_strategy() {
    let live = live_with(&[
        ("MAX_ORDERS_PER_DAY", "3"),
        ("MAX_ORDERS_PER_DAY_PER_STRATEGY", "2"),
    ])
    .await;
    let of = |strategy: &str, n: u32| {
        alert(
            "NSE:RELIANCE",
            n,
            json!({"strategy": strategy, "id": format!("{strategy}-{n}")}),
        )
    };
    for n in 1..=2 {
        let (_, body) = post(&live.app, &of("ema", n)).await;
        assert_eq!(body["legs"][0]["status"], "ACCEPTED", "{body}");
    }
    let third = post(&live.app, &of("ema", 3)).await;
    assert_blocked(
        &live.app,
        &third,
        "blocked by MAX_ORDERS_PER_DAY_PER_STRATEGY: 2 orders of strategy ema already sent today (IST), limit 2",
    )
    .await;
    let (_, body) = post(&live.app, &of("rsi", 1)).await;
    assert_eq!(body["legs"][0]["status"], "ACCEPTED", "{body}");
    let fifth = post(&live.app, &of("rsi", 2)).await;
    assert_blocked(
        &live.app,
        &fifth,
        "blocked by MAX_ORDERS_PER_DAY: 3 orders already sent today (IST), limit 3",
    )
    .await;
    assert_eq!(
        live.sim.orders().len(),
        3,
        "only the three allowed reached Dhan"
    );
    assert_eq!(order_posts(&live), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_alerts_cannot_together_pass_the_daily_limit() {
    let live = live_with(&[("MAX_ORDERS_PER_DAY", "5")]).await;
    let sends = (0..20).map(|i| {
        let body = alert("NSE:RELIANCE", 1, json!({"id": format!("burst-{i}")}));
        let app = &live.app;
        async move { post(app, &body).await }
    });
    let answers = futures::future::join_all(sends).await;
    let status = |s: &str| {
        answers
            .iter()
            .filter(|(_, b)| b["legs"][0]["status"] == s)
            .count()
    };
    assert_eq!(status("ACCEPTED"), 5, "{}", statuses(&answers));
    assert_eq!(status("BLOCKED"), 15, "{}", statuses(&answers));
    assert_eq!(order_posts(&live), 5, "exactly the limit reached Dhan");
}

#[tokio::test]
async fn max_open_positions_refuses_a_new_instrument_but_not_adding_to_an_open_one() {
    let live = live_with(&[("MAX_OPEN_POSITIONS", "1")]).await;
    let (_, first) = post(&live.app, &alert("NSE:RELIANCE", 1, json!({"id": "a"}))).await;
    assert_eq!(first["legs"][0]["status"], "ACCEPTED", "{first}");
    let second = post(&live.app, &alert("NSE:TCS", 1, json!({"id": "b"}))).await;
    assert_blocked(
        &live.app,
        &second,
        "blocked by MAX_OPEN_POSITIONS: 1 instruments already open today, limit 1; TCS would be one more",
    )
    .await;
    let (_, third) = post(&live.app, &alert("NSE:RELIANCE", 2, json!({"id": "c"}))).await;
    assert_eq!(third["legs"][0]["status"], "ACCEPTED", "{third}");
    let symbols: Vec<String> = live
        .sim
        .orders()
        .iter()
        .map(|o| o.body["securityId"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(symbols.len(), 2, "{symbols:?}");
    assert!(
        symbols.iter().all(|s| s == &symbols[0]),
        "only RELIANCE: {symbols:?}"
    );

    // Closed to flat (3 bought, 3 sold, every leg filled): RELIANCE is no longer open, so TCS
    // may open.
    let (_, exit) = post(&live.app, &exit_alert("NSE:RELIANCE", 3)).await;
    assert_eq!(exit["legs"][0]["status"], "ACCEPTED", "{exit}");
    let mut filled = 0;
    for _ in 0..300 {
        live.advance(chrono::Duration::seconds(5));
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        filled = live
            .app
            .journal_orders()
            .await
            .iter()
            .filter(|r| r.status.as_str() == "FILLED")
            .count();
        if filled == 3 {
            break;
        }
    }
    assert_eq!(filled, 3, "the tracker journaled the three fills");
    let (_, fourth) = post(&live.app, &alert("NSE:TCS", 1, json!({"id": "d"}))).await;
    assert_eq!(fourth["legs"][0]["status"], "ACCEPTED", "{fourth}");
}

#[tokio::test]
async fn the_kill_switch_refuses_entries_passes_exits_and_survives_a_restart() {
    let live = live_with(&[]).await;
    // Not for anyone on the internet (the upstream's was).
    let resp = live
        .app
        .client
        .post(live.app.url("/kill-switch"))
        .json(&json!({"on": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);

    by_hand(&live.sim, 1).await;
    let (status, body) = kill_switch(&live.app, json!({"on": true, "note": "drawdown"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["kill_switch"]["on"], true);
    assert_eq!(body["kill_switch"]["by"], "127.0.0.1");
    assert_eq!(body["mode"], "entries");

    let entry = post(&live.app, &alert("NSE:RELIANCE", 1, json!({"id": "e1"}))).await;
    assert_blocked(
        &live.app,
        &entry,
        "blocked: kill switch on since 2026-12-01 10:00:00 IST by 127.0.0.1 (drawdown); entries are refused, exits pass",
    )
    .await;
    assert_eq!(live.sim.orders().len(), 1, "only the by-hand order");
    let (_, exit) = post(&live.app, &exit_alert("NSE:RELIANCE", 1)).await;
    assert_eq!(exit["legs"][0]["status"], "ACCEPTED", "{exit}");
    assert_eq!(live.sim.orders().len(), 2, "the exit reached Dhan");

    // A restart on the same journal: still on.
    let Live { sim, app } = live;
    let dir = app.stop().await;
    let live = start_at(sim, dir, &[], market_time()).await;
    let (status, state) = {
        let resp = live.app.get_admin("/kill-switch", ADMIN_TOKEN).await;
        (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
    };
    assert_eq!(status, 200, "{state}");
    assert_eq!(state["kill_switch"]["on"], true, "{state}");
    assert_eq!(state["history"][0]["by"], "127.0.0.1", "{state}");
    let again = post(&live.app, &alert("NSE:RELIANCE", 1, json!({"id": "e2"}))).await;
    assert_blocked(&live.app, &again, "kill switch on since").await;
    assert_eq!(live.sim.orders().len(), 2, "the by-hand order and the exit");

    // Off: entries go through again; both changes are in the history.
    let (status, body) = kill_switch(&live.app, json!({"on": false})).await;
    assert_eq!(status, 200, "{body}");
    let (_, after) = post(&live.app, &alert("NSE:RELIANCE", 1, json!({"id": "e3"}))).await;
    assert_eq!(after["legs"][0]["status"], "ACCEPTED", "{after}");
    assert_eq!(live.sim.orders().len(), 3);
    let state: Value = live
        .app
        .get_admin("/kill-switch", ADMIN_TOKEN)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(state["kill_switch"]["on"], false);
    assert_eq!(state["history"].as_array().unwrap().len(), 2, "{state}");
}

#[tokio::test]
async fn kill_switch_mode_all_refuses_exits_too() {
    let live = live_with(&[("KILL_SWITCH_MODE", "all")]).await;
    by_hand(&live.sim, 1).await;
    kill_switch(&live.app, json!({"on": true})).await;
    let answer = post(&live.app, &exit_alert("NSE:RELIANCE", 1)).await;
    assert_blocked(
        &live.app,
        &answer,
        "every order is refused (KILL_SWITCH_MODE=all)",
    )
    .await;
    assert_eq!(order_posts(&live), 1, "only the by-hand order");
}

#[tokio::test]
async fn flatten_closes_every_position_at_dhan_and_broker_activates_dhans_own_switch() {
    let live = live_with(&[]).await;
    let (_, body) = post(&live.app, &alert("NSE:RELIANCE", 3, json!({"id": "long"}))).await;
    assert_eq!(body["legs"][0]["status"], "ACCEPTED", "{body}");
    eventually("a RELIANCE position at the sim", || {
        live.sim.positions().iter().any(|p| p["netQty"] == 3)
    })
    .await;

    let (status, body) = kill_switch(
        &live.app,
        json!({"on": true, "flatten": true, "broker": true}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["flatten"]["ok"], true, "{body}");
    assert_eq!(body["broker"]["ok"], true, "{body}");
    assert_eq!(
        body["broker"]["message"],
        "Kill Switch has been successfully activated"
    );
    assert!(
        live.sim.positions().iter().all(|p| p["netQty"] == 0),
        "no open position left: {:?}",
        live.sim.positions()
    );
    let calls: Vec<(String, String)> = live
        .sim
        .requests()
        .iter()
        .filter(|r| r.path == "/v2/positions" || r.path == "/v2/killswitch")
        .map(|r| (r.method.clone(), r.query.clone()))
        .collect();
    assert_eq!(
        calls,
        vec![
            ("DELETE".to_owned(), String::new()),
            ("POST".to_owned(), "killSwitchStatus=ACTIVATE".to_owned())
        ]
    );
    // GET /kill-switch shows Dhan's own switch as Dhan reports it.
    let state: Value = live
        .app
        .get_admin("/kill-switch", ADMIN_TOKEN)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        state["broker"],
        json!({"ok": true, "message": "ACTIVATE"}),
        "{state}"
    );
    // Dhan's own switch now refuses what dhanhook lets through (its own switch turned off).
    kill_switch(&live.app, json!({"on": false})).await;
    let (_, exit) = post(&live.app, &alert("NSE:RELIANCE", 1, json!({"id": "after"}))).await;
    assert_eq!(exit["legs"][0]["status"], "REJECTED", "{exit}");
    assert!(
        exit["legs"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("Kill Switch is active"),
        "{exit}"
    );
}

#[tokio::test]
async fn flatten_in_paper_mode_closes_paper_positions_and_cancels_resting_orders() {
    let app = spawn_app().await;
    // `/` shows the controls in force (the defaults here).
    let root: Value = app.get("/").await.json().await.unwrap();
    let controls = &root["config"]["controls"];
    assert_eq!(controls["max_orders_per_day"], 7000, "{root}");
    assert_eq!(controls["max_qty_per_leg"], Value::Null);
    assert_eq!(controls["kill_switch_mode"], "entries");
    assert_eq!(controls["on_leg_reject"], "continue");
    // A paper position (a market order fills at once), which flatten closes.
    let (_, filled) = post(&app, &alert("NSE:TCS", 1, json!({"id": "held"}))).await;
    assert_eq!(filled["legs"][0]["status"], "FILLED", "{filled}");
    // A resting paper limit order, which flatten cancels as Dhan's exit-all would.
    let (_, resting) = post(
        &app,
        &alert(
            "NSE:RELIANCE",
            1,
            json!({"order_type": "limit", "price": 2400, "id": "rest"}),
        ),
    )
    .await;
    assert_eq!(resting["legs"][0]["status"], "PENDING", "{resting}");
    let (status, body) = kill_switch(&app, json!({"on": true, "flatten": true})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["flatten"]["ok"], true);
    assert_eq!(
        body["flatten"]["message"],
        "1 paper position(s) closed; 1 resting paper order(s) cancelled",
        "{body}"
    );
    // The order tracker (on the app's clock) journals the cancellation.
    let mut status = String::new();
    for _ in 0..200 {
        app.clock.advance(chrono::Duration::seconds(5));
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        status = app
            .journal_orders()
            .await
            .into_iter()
            .find(|r| r.order_type.as_str() == "LIMIT")
            .map(|r| r.status.as_str().to_owned())
            .unwrap_or_default();
        if status == "CANCELLED" {
            break;
        }
    }
    assert_eq!(status, "CANCELLED");
    let state: Value = app
        .get_admin("/kill-switch", ADMIN_TOKEN)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(state["kill_switch"]["on"], true, "{state}");
    assert_eq!(
        state["broker"],
        json!({"ok": false, "message": "the paper broker has no kill switch"}),
        "{state}"
    );
    // Flatten without turning the switch on is refused, naming the field.
    let (status, body) = kill_switch(&app, json!({"on": false, "flatten": true})).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["errors"][0]["field"], "flatten", "{body}");
    let (status, _) = kill_switch(&app, json!({"on": "yes"})).await;
    assert_eq!(status, 422);
}

#[tokio::test]
async fn the_cli_turns_the_kill_switch_on_in_the_journal_the_server_reads() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let data = dir.path().display().to_string();
    let mut vars = vec![("DATA_DIR", data.as_str())];
    let url = test_database_url(&dir).await;
    if let Some(url) = &url {
        vars.push(("DATABASE_URL", url.as_str()));
    }
    let (code, out, err) =
        crate::cli::run(dir.path(), &["kill-switch", "on", "--note", "lunch"], &vars);
    assert_eq!(code, 0, "{out}{err}");
    // (Log lines go to the same output; the report is its own line.)
    assert!(
        out.lines().any(|l| l.starts_with("kill switch: ON")),
        "{out}"
    );
    assert!(out.contains("by cli): lunch"), "{out}");

    let app = spawn_app_with(Arc::clone(&dir), &[]).await;
    let answer = post(&app, &alert("NSE:RELIANCE", 1, json!({"price": 2500}))).await;
    assert_blocked(&app, &answer, "by cli (lunch); entries are refused").await;
    app.stop().await;

    let (code, out, err) = crate::cli::run(dir.path(), &["kill-switch", "off"], &vars);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, _) = crate::cli::run(dir.path(), &["kill-switch", "status"], &vars);
    assert_eq!(code, 0);
    assert!(
        out.lines().any(|l| l.starts_with("kill switch: off")),
        "{out}"
    );
}

#[tokio::test]
async fn on_leg_reject_stop_sends_no_leg_after_one_the_controls_refused() {
    // Leg 1 (INFY, 10 units) is over MAX_QTY_PER_LEG; leg 2 (TCS, 5 units) is not.
    let vars = [("MAX_QTY_PER_LEG", "6")];
    let live = live_with(&vars).await;
    let mut body = dhan_alert();
    body["on_leg_reject"] = json!("stop");
    let (_, answer) = post(&live.app, &body).await;
    assert_eq!(answer["legs"][0]["status"], "BLOCKED", "{answer}");
    assert_eq!(answer["legs"][1]["status"], "BLOCKED", "{answer}");
    assert_eq!(
        answer["legs"][1]["message"],
        "blocked by on_leg_reject=stop: leg 1 is BLOCKED, so the remaining legs are not sent"
    );
    assert_eq!(order_posts(&live), 0);

    // The default (continue) sends leg 2 all the same: the policy is what made the difference.
    let live = live_with(&vars).await;
    let (_, answer) = post(&live.app, &dhan_alert()).await;
    assert_eq!(answer["legs"][0]["status"], "BLOCKED", "{answer}");
    assert_ne!(answer["legs"][1]["status"], "BLOCKED", "{answer}");
    assert_eq!(order_posts(&live), 1);
}

#[tokio::test]
async fn on_leg_reject_stop_from_the_environment_holds_back_the_hedge_when_dhan_refuses_leg_one() {
    let live = live_with(&[("ON_LEG_REJECT", "stop")]).await;
    // Dhan answers the first order with a 500 and creates nothing: its outcome is unknown.
    live.sim.inject(Fault::Order5xxBeforeAccept, 1);
    let (_, answer) = post(&live.app, &dhan_alert()).await;
    assert_eq!(answer["legs"][0]["status"], "UNKNOWN", "{answer}");
    assert_eq!(answer["legs"][1]["status"], "BLOCKED", "{answer}");
    assert_eq!(
        answer["legs"][1]["message"],
        "blocked by on_leg_reject=stop: leg 1 is UNKNOWN, so the remaining legs are not sent"
    );
    assert_eq!(order_posts(&live), 1, "only leg 1 was ever sent");
    assert!(live.sim.orders().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_kill_switch_holds_on_a_second_instance_sharing_the_postgres_journal() {
    let Ok(server) = std::env::var(PG_URL_VAR) else {
        eprintln!("skipping the two-instance kill switch test: {PG_URL_VAR} is not set");
        return;
    };
    let db = TestDatabase::create(&server).await;
    let sim = sim_at(SimConfig::default(), market_time()).await;
    let mut env = live_vars(&sim);
    env.push(("DATABASE_URL".into(), db.url.expose_secret().to_owned()));
    let vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let a = spawn_app_at(Arc::new(tempfile::tempdir().unwrap()), &vars, market_time()).await;
    let b = spawn_app_at(Arc::new(tempfile::tempdir().unwrap()), &vars, market_time()).await;
    eventually("a token for both", || sim.mint_count() >= 1).await;

    let (status, body) = kill_switch(&a, json!({"on": true})).await;
    assert_eq!(status, 200, "{body}");
    let answer = post(&b, &alert("NSE:RELIANCE", 1, json!({"id": "on-b"}))).await;
    assert_blocked(&b, &answer, "kill switch on since").await;
    by_hand(&sim, 1).await;
    let (_, exit) = post(&b, &exit_alert("NSE:RELIANCE", 1)).await;
    assert_eq!(exit["legs"][0]["status"], "ACCEPTED", "{exit}");
    assert_eq!(
        sim.orders().len(),
        2,
        "only the exit (and the by-hand order) reached Dhan"
    );

    kill_switch(&b, json!({"on": false})).await;
    let (_, body) = post(&a, &alert("NSE:RELIANCE", 1, json!({"id": "off-a"}))).await;
    assert_eq!(body["legs"][0]["status"], "ACCEPTED", "{body}");
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_together_send_no_more_than_the_daily_limit() {
    let Ok(server) = std::env::var(PG_URL_VAR) else {
        eprintln!("skipping the two-instance daily limit test: {PG_URL_VAR} is not set");
        return;
    };
    let db = TestDatabase::create(&server).await;
    let sim = sim_at(SimConfig::default(), market_time()).await;
    let mut env = live_vars(&sim);
    env.push(("DATABASE_URL".into(), db.url.expose_secret().to_owned()));
    env.push(("MAX_ORDERS_PER_DAY".into(), "6".into()));
    let vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let a = spawn_app_at(Arc::new(tempfile::tempdir().unwrap()), &vars, market_time()).await;
    let b = spawn_app_at(Arc::new(tempfile::tempdir().unwrap()), &vars, market_time()).await;
    eventually("a token for both", || sim.mint_count() >= 1).await;
    let sends = (0..24).map(|i| {
        let app = if i % 2 == 0 { &a } else { &b };
        let body = alert("NSE:RELIANCE", 1, json!({"id": format!("pair-{i}")}));
        async move { post(app, &body).await }
    });
    let answers = futures::future::join_all(sends).await;
    let blocked = answers
        .iter()
        .filter(|(_, b)| b["legs"][0]["status"] == "BLOCKED")
        .count();
    assert_eq!(blocked, 18, "{}", statuses(&answers));
    let posts = sim
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/v2/orders")
        .count();
    assert_eq!(
        posts, 6,
        "exactly the limit reached Dhan, from both instances"
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_queued_entry_meets_the_kill_switch_at_the_open() {
    // Before the open (08:00 IST) with WHEN_CLOSED=queue: the alert waits in the queue.
    let at = ist_time(2026, 12, 1, 8, 0);
    let live = live_at(&[("WHEN_CLOSED", "queue")], at).await;
    let (_, body) = post(&live.app, &alert("NSE:RELIANCE", 1, json!({"id": "q"}))).await;
    assert_eq!(body["legs"][0]["status"], "QUEUED", "{body}");
    kill_switch(&live.app, json!({"on": true})).await;
    live.advance(chrono::Duration::minutes(80));
    let resp = live.app.post_admin("/process-queue").await;
    assert_eq!(resp.status().as_u16(), 200);
    // The queue worker may have taken it first; either way it ends BLOCKED.
    let mut rows = live.app.journal_orders().await;
    for _ in 0..300 {
        if rows[0].status.as_str() != "QUEUED" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        rows = live.app.journal_orders().await;
    }
    assert_eq!(rows[0].status.as_str(), "BLOCKED", "{:?}", rows[0]);
    assert!(
        rows[0]
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("kill switch on since"),
        "{:?}",
        rows[0]
    );
    assert_eq!(
        order_posts(&live),
        0,
        "a queued entry is not sent while the switch is on"
    );
}

#[tokio::test]
async fn kill_switch_changes_and_blocked_legs_are_told_unless_switched_off_in_notify_events() {
    use crate::notify::{borrowed, fake_telegram, telegram_vars, until};
    let (url, fake) = fake_telegram().await;
    let mut vars = telegram_vars(&url);
    vars.push(("NOTIFY_EVENTS", "kill_switch,rejected".to_owned()));
    let app = spawn_app_with(Arc::new(tempfile::tempdir().unwrap()), &borrowed(&vars)).await;
    kill_switch(&app, json!({"on": true, "note": "drawdown"})).await;
    post(&app, &alert("NSE:RELIANCE", 1, json!({"price": 2500}))).await;
    until("two messages", || fake.taken().len() >= 2).await;
    let texts: Vec<String> = fake
        .taken()
        .iter()
        .map(|m| m.body["text"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(
        texts[0].contains("Kill switch ON (paper)")
            && texts[0]
                .contains("Turned on by 127.0.0.1. New entries are refused; exits still pass.")
            && texts[0].contains("Note: drawdown"),
        "{texts:?}"
    );
    assert!(
        texts[1].contains("Blocked by dhanhook (paper): BUY 1 RELIANCE")
            && texts[1].contains("kill switch on since"),
        "{texts:?}"
    );

    // Switched off in NOTIFY_EVENTS: the changes are not told, the fill after them is.
    let (url, fake) = fake_telegram().await;
    let mut vars = telegram_vars(&url);
    vars.push(("NOTIFY_EVENTS", "filled".to_owned()));
    let app = spawn_app_with(Arc::new(tempfile::tempdir().unwrap()), &borrowed(&vars)).await;
    kill_switch(&app, json!({"on": true})).await;
    kill_switch(&app, json!({"on": false})).await;
    post(&app, &alert("NSE:RELIANCE", 1, json!({"price": 2500}))).await;
    until("the fill", || !fake.taken().is_empty()).await;
    let taken = fake.taken();
    assert_eq!(taken.len(), 1, "{taken:?}");
    assert!(
        taken[0].body["text"]
            .as_str()
            .unwrap_or_default()
            .contains("Filled"),
        "{taken:?}"
    );
}
