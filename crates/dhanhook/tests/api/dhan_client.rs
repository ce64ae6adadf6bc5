//! The Dhan client against dhan-sim: every call we make, its parsing and its error kinds.

use dhan_sim::{Sim, SimConfig};
use dhanhook::dhan::{DhanClient, DhanErrorKind, DhanUrls, types::OrderBody};
use secrecy::SecretString;

async fn setup() -> (dhan_sim::SimHandle, DhanClient, SecretString) {
    setup_with(SimConfig::default()).await
}

async fn setup_with(config: SimConfig) -> (dhan_sim::SimHandle, DhanClient, SecretString) {
    let sim = Sim::spawn(SimConfig {
        fill_delay: std::time::Duration::from_millis(1),
        ..config
    })
    .await
    .unwrap();
    let client = DhanClient::new(
        DhanUrls {
            base: sim.base_url(),
            auth: sim.auth_url(),
        },
        "1000000001",
    )
    .unwrap();
    let issued = client
        .generate_access_token(&SecretString::from("123456"), &sim.current_totp())
        .await
        .unwrap();
    (sim, client, issued.access_token)
}

fn order(cid: &str, order_type: &'static str, price: Option<f64>) -> OrderBody {
    OrderBody {
        dhan_client_id: "1000000001".to_owned(),
        correlation_id: Some(cid.to_owned()),
        transaction_type: "BUY",
        exchange_segment: "NSE_EQ".to_owned(),
        product_type: "INTRADAY",
        order_type,
        validity: "DAY",
        security_id: "2885".to_owned(),
        quantity: 1,
        price,
        trigger_price: None,
        after_market_order: None,
        amo_time: None,
    }
}

#[tokio::test]
async fn orders_are_placed_found_listed_and_cancelled() {
    let (_sim, client, token) = setup().await;

    let limit = client
        .place_order(&token, &order("DHtestLIMIT1", "LIMIT", Some(2400.0)))
        .await
        .unwrap();
    assert_eq!(limit.order_status, "TRANSIT");
    let market = client
        .place_order(&token, &order("DHtestMKT1", "MARKET", None))
        .await
        .unwrap();

    // Lookups by id and correlationId; unknown ones are None, not errors.
    let mut found = None;
    for _ in 0..200 {
        found = client
            .order_by_correlation_id(&token, "DHtestMKT1")
            .await
            .unwrap();
        if found.as_ref().is_some_and(|o| o.order_status == "TRADED") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let found = found.expect("found by correlationId");
    assert_eq!(
        (found.order_id.as_str(), found.order_status.as_str()),
        (market.order_id.as_str(), "TRADED")
    );
    assert_eq!(found.correlation_id.as_deref(), Some("DHtestMKT1"));
    assert!(
        client
            .order_by_correlation_id(&token, "DHnoSuchOrder")
            .await
            .unwrap()
            .is_none()
    );
    assert!(client.order(&token, "999999").await.unwrap().is_none());
    assert_eq!(
        client
            .order(&token, &limit.order_id)
            .await
            .unwrap()
            .unwrap()
            .order_status,
        "PENDING"
    );
    assert_eq!(client.order_book(&token).await.unwrap().len(), 2);

    let cancelled = client.cancel_order(&token, &limit.order_id).await.unwrap();
    assert_eq!(cancelled.order_status, "CANCELLED");
    let again = client
        .cancel_order(&token, &limit.order_id)
        .await
        .unwrap_err();
    assert_eq!(again.kind, DhanErrorKind::Order);

    assert_eq!(client.trades(&token).await.unwrap().len(), 1);
    assert_eq!(client.positions(&token).await.unwrap().len(), 1);
}

/// A server that sends each answer's head and body in two writes (Nagle on): every call on
/// the kept-alive connection still gets its whole answer, parsed as usual, errors included.
/// (What it costs in time is measured by `examples/bench_split_writes.rs`, not asserted.)
#[tokio::test]
async fn calls_work_against_a_server_that_splits_head_and_body() {
    let (sim, client, token) = setup_with(SimConfig {
        split_writes: true,
        ..SimConfig::default()
    })
    .await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let ack = client
            .place_order(
                &token,
                &order(&format!("DHsplit{i}"), "LIMIT", Some(2400.0)),
            )
            .await
            .unwrap();
        assert_eq!(ack.order_status, "TRANSIT");
        ids.push(ack.order_id);
    }
    let book = client.order_book(&token).await.unwrap();
    assert_eq!(book.len(), 5);
    // Dhan (and the simulator) shows an order by correlationId only once it leaves TRANSIT.
    let mut found = None;
    for _ in 0..1000 {
        found = client
            .order_by_correlation_id(&token, "DHsplit3")
            .await
            .unwrap();
        if found.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(found.expect("found by correlationId").order_id, ids[3]);
    assert_eq!(
        client
            .cancel_order(&token, &ids[0])
            .await
            .unwrap()
            .order_status,
        "CANCELLED"
    );
    let again = client.cancel_order(&token, &ids[0]).await.unwrap_err();
    assert_eq!(
        again.kind,
        DhanErrorKind::Order,
        "an error answer parsed too"
    );
    let profile = client.profile(&token).await.unwrap();
    assert_eq!(profile.dhan_client_id.as_deref(), Some("1000000001"));
    assert_eq!(sim.orders().len(), 5, "each order placed exactly once");
}

#[tokio::test]
async fn portfolio_funds_profile_and_kill_switch() {
    let (sim, client, token) = setup().await;
    assert!(
        client.holdings(&token).await.unwrap().is_empty(),
        "Dhan's 500 DH-1111 means no holdings"
    );
    sim.set_holdings(vec![
        serde_json::json!({"exchange":"NSE","tradingSymbol":"RELIANCE","securityId":"2885",
        "totalQty":5,"availableQty":5,"avgCostPrice":2400.0}),
    ]);
    assert_eq!(client.holdings(&token).await.unwrap().len(), 1);
    let funds = client.fund_limit(&token).await.unwrap();
    assert!(funds.get("availabelBalance").is_some(), "{funds}");
    let profile = client.profile(&token).await.unwrap();
    assert_eq!(profile.dhan_client_id.as_deref(), Some("1000000001"));
    assert!(profile.token_validity.is_some());
    assert_eq!(
        client.kill_switch_status(&token).await.unwrap(),
        "DEACTIVATE"
    );
    client.set_kill_switch(&token, true).await.unwrap();
    assert_eq!(client.kill_switch_status(&token).await.unwrap(), "ACTIVATE");
}

#[tokio::test]
async fn errors_are_classified() {
    let (sim, client, token) = setup().await;
    let bad = SecretString::from("not.a.token");
    assert_eq!(
        client.profile(&bad).await.unwrap_err().kind,
        DhanErrorKind::Auth
    );
    let mut invalid = order("DHbad1", "LIMIT", None);
    invalid.quantity = 1;
    let e = client.place_order(&token, &invalid).await.unwrap_err();
    assert_eq!(e.kind, DhanErrorKind::Input, "{e}");
    sim.inject(dhan_sim::Fault::OrderRateLimited, 1);
    let e = client
        .place_order(&token, &order("DHrl1", "MARKET", None))
        .await
        .unwrap_err();
    assert_eq!(e.kind, DhanErrorKind::RateLimit);
    sim.inject(dhan_sim::Fault::OrderDropAfterAccept, 1);
    let e = client
        .place_order(&token, &order("DHdrop1", "MARKET", None))
        .await
        .unwrap_err();
    assert_eq!(
        e.kind,
        DhanErrorKind::Transient,
        "a dropped answer is an unknown outcome: {e}"
    );
    let e = client
        .generate_access_token(&SecretString::from("123456"), &sim.current_totp())
        .await
        .unwrap_err();
    assert_eq!(e.kind, DhanErrorKind::RateLimit, "the mint cooldown: {e}");
    let e = client
        .generate_access_token(&SecretString::from("000000"), &sim.current_totp())
        .await
        .unwrap_err();
    assert_eq!(e.kind, DhanErrorKind::Auth, "{e}");
    assert!(
        !e.to_string().contains("000000") && !e.to_string().contains("pin="),
        "{e}"
    );

    let nowhere = DhanClient::new(
        DhanUrls {
            base: "http://127.0.0.1:9/v2".to_owned(),
            auth: "http://127.0.0.1:9".to_owned(),
        },
        "1000000001",
    )
    .unwrap();
    let e = nowhere.profile(&token).await.unwrap_err();
    assert_eq!(e.kind, DhanErrorKind::Unreachable);
}

#[tokio::test]
async fn the_consent_steps_and_renew_token() {
    let (sim, client, _) = setup().await;
    let c = SimConfig::default();
    let secret = SecretString::from(c.api_secret.clone());
    let consent_id = client.generate_consent(&c.api_key, &secret).await.unwrap();
    let url = client.consent_login_url(&consent_id);
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = no_redirect.get(url).send().await.unwrap();
    let token_id = login.headers()["location"]
        .to_str()
        .unwrap()
        .split("tokenId=")
        .nth(1)
        .unwrap()
        .to_owned();
    let issued = client
        .consume_consent(&c.api_key, &secret, &token_id)
        .await
        .unwrap();
    assert!(issued.expiry_time.is_some());
    assert!(client.profile(&issued.access_token).await.is_ok());

    let web = SecretString::from(sim.issue_web_token());
    let renewed = client.renew_token(&web).await.unwrap();
    assert!(client.profile(&renewed.access_token).await.is_ok());
    assert_eq!(
        client.profile(&web).await.unwrap_err().kind,
        DhanErrorKind::Auth,
        "the old token expired"
    );
}

#[tokio::test]
async fn reads_are_retried_through_passing_server_failures_and_writes_are_not() {
    let (sim, client, token) = setup().await;
    sim.inject(dhan_sim::Fault::Read5xx, 2);
    let book = client.order_book(&token).await;
    assert!(book.is_ok(), "the third attempt succeeds: {book:?}");
    let reads = sim
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path == "/v2/orders")
        .count();
    assert_eq!(reads, 3);

    sim.inject(dhan_sim::Fault::Read5xx, 3);
    let e = client.order_book(&token).await.unwrap_err();
    assert_eq!(
        e.kind,
        DhanErrorKind::Transient,
        "gives up after three attempts: {e}"
    );

    sim.inject(dhan_sim::Fault::Order5xxBeforeAccept, 1);
    let e = client
        .place_order(&token, &order("DHnoRetry1", "MARKET", None))
        .await
        .unwrap_err();
    assert_eq!(e.kind, DhanErrorKind::Transient);
    let writes = sim
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/v2/orders")
        .count();
    assert_eq!(writes, 1, "an order write is never retried by the client");
}
