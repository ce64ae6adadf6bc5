//! Helpers shared by the integration tests: start a simulator, mint a token over HTTP,
//! send orders, and wait for an order to reach a status.

#![allow(dead_code)] // each test binary uses a different subset

use std::time::Duration;

use dhan_sim::{Sim, SimConfig, SimHandle};
use serde_json::{Value, json};

pub const CLIENT_ID: &str = "1000000001";
pub const PIN: &str = "123456";
pub const TOTP_SECRET: &str = "JBSWY3DPEHPK3PXP";

/// An HTTP client that does not follow redirects (the consent login page is a 302).
pub fn http() -> reqwest::Client {
    // In a workspace-wide build reqwest is compiled with dhanhook's `rustls-no-provider`
    // feature, so a crypto provider must be chosen before any client is built (even for the
    // plain-HTTP calls made here). Installing twice is refused harmlessly.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

pub async fn start(config: SimConfig) -> SimHandle {
    Sim::spawn(config).await.expect("spawn simulator")
}

/// A config with a short fill delay so order tests finish quickly.
pub fn fast_config() -> SimConfig {
    SimConfig {
        fill_delay: Duration::from_millis(5),
        ..SimConfig::default()
    }
}

/// The TOTP an authenticator app would show at the simulator's current time.
pub fn totp_now(sim: &SimHandle) -> String {
    dhan_sim::totp::generate(TOTP_SECRET, sim.now().timestamp()).expect("valid secret")
}

/// `POST /app/generateAccessToken` with the given PIN and TOTP; returns status and body.
pub async fn mint_with(
    sim: &SimHandle,
    http: &reqwest::Client,
    client_id: &str,
    pin: &str,
    totp: &str,
) -> (u16, Value) {
    let url = format!(
        "{}/app/generateAccessToken?dhanClientId={client_id}&pin={pin}&totp={totp}",
        sim.auth_url()
    );
    let resp = http.post(url).send().await.expect("send");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("json body"))
}

/// Mints with the right credentials and returns the token.
pub async fn mint(sim: &SimHandle, http: &reqwest::Client) -> String {
    let (status, body) = mint_with(sim, http, CLIENT_ID, PIN, &totp_now(sim)).await;
    assert_eq!(status, 200, "mint failed: {body}");
    body["accessToken"]
        .as_str()
        .expect("accessToken")
        .to_owned()
}

/// Sends a REST request with `access-token`; returns status and JSON body.
pub async fn rest(
    sim: &SimHandle,
    http: &reqwest::Client,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut req = http
        .request(method, format!("{}{path}", sim.base_url()))
        .header("access-token", token);
    if let Some(body) = body {
        req = req.json(body);
    }
    let resp = req.send().await.expect("send");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, json)
}

pub async fn get(sim: &SimHandle, http: &reqwest::Client, path: &str, token: &str) -> (u16, Value) {
    rest(sim, http, reqwest::Method::GET, path, token, None).await
}

pub async fn place(
    sim: &SimHandle,
    http: &reqwest::Client,
    token: &str,
    body: &Value,
) -> (u16, Value) {
    rest(
        sim,
        http,
        reqwest::Method::POST,
        "/orders",
        token,
        Some(body),
    )
    .await
}

/// A valid market intraday buy of one share of security 2885.
pub fn market_order() -> Value {
    json!({
        "dhanClientId": CLIENT_ID,
        "transactionType": "BUY",
        "exchangeSegment": "NSE_EQ",
        "productType": "INTRADAY",
        "orderType": "MARKET",
        "validity": "DAY",
        "securityId": "2885",
        "quantity": 1
    })
}

/// Polls the order book until `order_id` has `status`; gives up (panics) after many tries.
pub async fn wait_for_status(sim: &SimHandle, order_id: &str, status: &str) {
    for _ in 0..1000 {
        if sim
            .orders()
            .iter()
            .any(|o| o.order_id == order_id && o.status == status)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "order {order_id} never reached {status}: {:?}",
        sim.orders()
    );
}
