//! Auth host and token life: direct PIN+TOTP mint, cooldown, one active token, lockout,
//! consent flow, RenewToken, token expiry, request-log masking and the auth faults.

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{Duration, NaiveDateTime};
use common::*;
use dhan_sim::{Fault, SimConfig};
use serde_json::{Value, json};

const INVALID_TOKEN: &str = "Client ID or user generated access token is invalid or expired.";

fn jwt_payload(token: &str) -> Value {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "JWT has three parts");
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header, json!({"typ": "JWT", "alg": "HS512"}));
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap()
}

#[tokio::test]
async fn mint_with_correct_totp_returns_a_dhan_shaped_token() {
    let sim = start(SimConfig::default()).await;
    let http = http();
    let (status, body) = mint_with(&sim, &http, CLIENT_ID, PIN, &totp_now(&sim)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["dhanClientId"], CLIENT_ID);
    assert_eq!(body["dhanClientName"], "SIM USER");
    assert_eq!(body["dhanClientUcc"], "SIMU12345X");
    assert_eq!(body["givenPowerOfAttorney"], false);
    let token = body["accessToken"].as_str().unwrap();
    let claims = jwt_payload(token);
    assert_eq!(claims["iss"], "dhan");
    assert_eq!(claims["dhanClientId"], CLIENT_ID);
    assert_eq!(claims["tokenConsumerType"], "APP");
    assert!(claims.get("partnerId").is_some());
    let iat = claims["iat"].as_i64().unwrap();
    let exp = claims["exp"].as_i64().unwrap();
    assert_eq!(exp - iat, 24 * 3600);

    // expiryTime is IST wall time with milliseconds and no offset, equal to `exp`.
    let expiry = body["expiryTime"].as_str().unwrap();
    assert_eq!(expiry.len(), "2026-01-01T09:15:00.000".len(), "{expiry}");
    let naive = NaiveDateTime::parse_from_str(expiry, "%Y-%m-%dT%H:%M:%S%.3f").unwrap();
    assert_eq!(naive.and_utc().timestamp() - 19_800, exp);

    assert_eq!(sim.mint_count(), 1);
    assert_eq!(sim.active_token().as_deref(), Some(token));

    let (status, profile) = get(&sim, &http, "/profile", token).await;
    assert_eq!(status, 200, "{profile}");
    assert_eq!(profile["dhanClientId"], CLIENT_ID);
    let validity = profile["tokenValidity"].as_str().unwrap();
    let parsed = NaiveDateTime::parse_from_str(validity, "%d/%m/%Y %H:%M").unwrap();
    assert_eq!(
        parsed.and_utc().timestamp() - 19_800,
        exp - exp.rem_euclid(60)
    );
    assert_eq!(
        profile["activeSegment"],
        "Equity, Derivative, Currency, Commodity"
    );
}

#[tokio::test]
async fn wrong_pin_wrong_totp_and_unknown_client_are_refused() {
    let sim = start(SimConfig::default()).await;
    let http = http();
    let totp = totp_now(&sim);

    let (status, body) = mint_with(&sim, &http, CLIENT_ID, "654321", &totp).await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"errorType": "Order_Error", "errorCode": "DH-906", "errorMessage": "Invalid Pin"})
    );

    // A code from ten minutes ago is outside the ±1 step window.
    let stale = dhan_sim::totp::generate(TOTP_SECRET, sim.now().timestamp() - 600).unwrap();
    let wrong = if stale == totp {
        "000000".to_owned()
    } else {
        stale
    };
    let (status, body) = mint_with(&sim, &http, CLIENT_ID, PIN, &wrong).await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"errorType": "Order_Error", "errorCode": "DH-906", "errorMessage": "Invalid TOTP"})
    );

    let (status, body) = mint_with(&sim, &http, CLIENT_ID, PIN, "abc").await;
    assert_eq!(status, 400);
    assert_eq!(body["errorMessage"], "Invalid TOTP");

    let (status, body) = mint_with(&sim, &http, "1000000002", PIN, &totp).await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"errorType": "Input_Exception", "errorCode": "DH-905", "errorMessage": "Invalid Client ID"})
    );

    assert_eq!(sim.mint_count(), 0);
    assert_eq!(sim.active_token(), None);
}

#[tokio::test]
async fn totp_of_the_neighbouring_steps_is_accepted() {
    let sim = start(SimConfig::default()).await;
    let http = http();
    let previous = dhan_sim::totp::generate(TOTP_SECRET, sim.now().timestamp() - 30).unwrap();
    let (status, body) = mint_with(&sim, &http, CLIENT_ID, PIN, &previous).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn totp_follows_the_sim_clock() {
    let sim = start(SimConfig::default()).await;
    let http = http();
    let real_code = totp_now(&sim);
    sim.advance(Duration::hours(3));
    let sim_code = totp_now(&sim);
    if real_code != sim_code {
        let (status, body) = mint_with(&sim, &http, CLIENT_ID, PIN, &real_code).await;
        assert_eq!(status, 400);
        assert_eq!(body["errorMessage"], "Invalid TOTP");
    }
    let (status, body) = mint_with(&sim, &http, CLIENT_ID, PIN, &sim_code).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn second_mint_inside_the_cooldown_is_refused() {
    let sim = start(SimConfig::default()).await;
    let http = http();
    let first = mint(&sim, &http).await;

    sim.advance(Duration::seconds(60));
    let (status, body) = mint_with(&sim, &http, CLIENT_ID, PIN, &totp_now(&sim)).await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({
            "errorType": "Input_Exception",
            "errorCode": "DH-905",
            "errorMessage": "Token can be generated once every 2 minutes."
        })
    );
    // The refused mint did not touch the active token.
    assert_eq!(sim.active_token().as_deref(), Some(first.as_str()));
    assert_eq!(sim.mint_count(), 1);

    sim.advance(Duration::seconds(61));
    let second = mint(&sim, &http).await;
    assert_ne!(first, second);
    assert_eq!(sim.mint_count(), 2);
}

#[tokio::test]
async fn a_new_token_invalidates_the_old_one() {
    let sim = start(SimConfig::default()).await;
    let http = http();
    let old = mint(&sim, &http).await;
    assert_eq!(get(&sim, &http, "/profile", &old).await.0, 200);

    sim.advance(Duration::minutes(3));
    let new = mint(&sim, &http).await;

    let (status, body) = get(&sim, &http, "/profile", &old).await;
    assert_eq!(status, 401);
    assert_eq!(
        body,
        json!({"errorType": "Invalid_Authentication", "errorCode": "DH-901", "errorMessage": INVALID_TOKEN})
    );
    assert_eq!(get(&sim, &http, "/profile", &new).await.0, 200);
}

#[tokio::test]
async fn a_web_token_also_kills_the_app_token() {
    let sim = start(SimConfig::default()).await;
    let http = http();
    let app = mint(&sim, &http).await;
    let web = sim.issue_web_token();
    assert_eq!(jwt_payload(&web)["tokenConsumerType"], "SELF");
    assert_eq!(get(&sim, &http, "/profile", &app).await.0, 401);
    assert_eq!(get(&sim, &http, "/profile", &web).await.0, 200);
    assert_eq!(sim.mint_count(), 1, "web tokens are not API mints");
}

#[tokio::test]
async fn consecutive_failures_lock_the_account_until_reset() {
    let sim = start(SimConfig::default()).await;
    let http = http();
    for _ in 0..5 {
        let (status, body) = mint_with(&sim, &http, CLIENT_ID, "000000", &totp_now(&sim)).await;
        assert_eq!(status, 400);
        assert_eq!(body["errorMessage"], "Invalid Pin");
    }
    let locked = json!({
        "errorType": "Invalid_Authentication",
        "errorCode": "DH-901",
        "errorMessage": "Account locked due to multiple failed attempts"
    });
    let (status, body) = mint_with(&sim, &http, CLIENT_ID, PIN, &totp_now(&sim)).await;
    assert_eq!((status, body), (400, locked.clone()));
    // Still locked much later: only reset_lockout unlocks.
    sim.advance(Duration::hours(2));
    let (status, body) = mint_with(&sim, &http, CLIENT_ID, PIN, &totp_now(&sim)).await;
    assert_eq!((status, body), (400, locked));
    assert_eq!(sim.mint_count(), 0);

    sim.reset_lockout();
    mint(&sim, &http).await;
    assert_eq!(sim.mint_count(), 1);
}

#[tokio::test]
async fn a_success_resets_the_failure_count() {
    let sim = start(SimConfig {
        lockout_after_failures: 3,
        ..SimConfig::default()
    })
    .await;
    let http = http();
    for _ in 0..2 {
        assert_eq!(
            mint_with(&sim, &http, CLIENT_ID, "000000", "000000")
                .await
                .0,
            400
        );
    }
    mint(&sim, &http).await;
    sim.advance(Duration::minutes(3));
    for _ in 0..2 {
        assert_eq!(
            mint_with(&sim, &http, CLIENT_ID, "000000", "000000")
                .await
                .0,
            400
        );
    }
    mint(&sim, &http).await;
}

#[tokio::test]
async fn tokens_expire_after_their_ttl_and_on_forced_logout() {
    let sim = start(SimConfig::default()).await;
    let http = http();
    let token = mint(&sim, &http).await;
    sim.advance(Duration::hours(23));
    assert_eq!(get(&sim, &http, "/profile", &token).await.0, 200);
    sim.advance(Duration::hours(1) + Duration::seconds(1));
    assert_eq!(get(&sim, &http, "/profile", &token).await.0, 401);
    assert_eq!(sim.active_token(), None);

    let token = mint(&sim, &http).await;
    assert_eq!(get(&sim, &http, "/profile", &token).await.0, 200);
    sim.expire_active_token();
    assert_eq!(sim.active_token(), None);
    let (status, body) = get(&sim, &http, "/profile", &token).await;
    assert_eq!(status, 401);
    assert_eq!(body["errorCode"], "DH-901");
}

#[tokio::test]
async fn rest_calls_need_a_token() {
    let sim = start(SimConfig::default()).await;
    let http = http();
    let resp = http
        .get(format!("{}/profile", sim.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["errorMessage"], INVALID_TOKEN);
    assert_eq!(get(&sim, &http, "/orders", "not-a-token").await.0, 401);
}

#[tokio::test]
async fn mint_5xx_fault_issues_no_token() {
    let sim = start(SimConfig::default()).await;
    let http = http();
    sim.inject(Fault::Mint5xx, 1);
    let (status, body) = mint_with(&sim, &http, CLIENT_ID, PIN, &totp_now(&sim)).await;
    assert_eq!(status, 500);
    assert_eq!(body["errorCode"], "DH-908");
    assert_eq!(sim.mint_count(), 0);
    assert_eq!(sim.active_token(), None);
    // The fault is used up and a failed mint starts no cooldown.
    mint(&sim, &http).await;
    assert_eq!(sim.mint_count(), 1);
}

#[tokio::test]
async fn auth_failure_fault_fails_the_next_rest_calls_only() {
    let sim = start(SimConfig::default()).await;
    let http = http();
    let token = mint(&sim, &http).await;
    sim.inject(Fault::AuthFailure, 2);
    for _ in 0..2 {
        let (status, body) = get(&sim, &http, "/profile", &token).await;
        assert_eq!(status, 401);
        assert_eq!(body["errorCode"], "DH-901");
    }
    assert_eq!(get(&sim, &http, "/profile", &token).await.0, 200);

    sim.inject(Fault::AuthFailure, 5);
    sim.clear_faults();
    assert_eq!(get(&sim, &http, "/profile", &token).await.0, 200);
}

async fn generate_consent(
    sim: &dhan_sim::SimHandle,
    http: &reqwest::Client,
    key: &str,
    secret: &str,
) -> (u16, Value) {
    let resp = http
        .post(format!(
            "{}/app/generate-consent?client_id={CLIENT_ID}",
            sim.auth_url()
        ))
        .header("app_id", key)
        .header("app_secret", secret)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

async fn consume(
    sim: &dhan_sim::SimHandle,
    http: &reqwest::Client,
    method: reqwest::Method,
    token_id: &str,
) -> (u16, Value) {
    let resp = http
        .request(
            method,
            format!(
                "{}/app/consumeApp-consent?tokenId={token_id}",
                sim.auth_url()
            ),
        )
        .header("app_id", "sim-api-key")
        .header("app_secret", "sim-api-secret")
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

async fn login(
    sim: &dhan_sim::SimHandle,
    http: &reqwest::Client,
    consent_id: &str,
) -> reqwest::Response {
    http.get(format!(
        "{}/login/consentApp-login?consentAppId={consent_id}",
        sim.auth_url()
    ))
    .send()
    .await
    .unwrap()
}

#[tokio::test]
async fn consent_flow_end_to_end() {
    let sim = start(SimConfig::default()).await;
    let http = http();

    let (status, body) = generate_consent(&sim, &http, "sim-api-key", "wrong-secret").await;
    assert_eq!(status, 401);
    assert_eq!(body["errorCode"], "DH-901");

    let (status, body) = generate_consent(&sim, &http, "sim-api-key", "sim-api-secret").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["consentAppStatus"], "GENERATED");
    assert_eq!(body["status"], "success");
    let consent_id = body["consentAppId"].as_str().unwrap().to_owned();
    assert_eq!(consent_id.len(), 36);

    let resp = login(&sim, &http, &consent_id).await;
    assert_eq!(resp.status().as_u16(), 302);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let prefix = "http://127.0.0.1:8080/auth/callback?tokenId=";
    assert!(location.starts_with(prefix), "{location}");
    let token_id = &location[prefix.len()..];
    assert!(!token_id.is_empty());

    // The consent is spent by the login; unknown consents are refused too.
    assert_eq!(login(&sim, &http, &consent_id).await.status().as_u16(), 400);
    assert_eq!(
        login(&sim, &http, "no-such-consent")
            .await
            .status()
            .as_u16(),
        400
    );

    let (status, body) = consume(&sim, &http, reqwest::Method::GET, token_id).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["dhanClientId"], CLIENT_ID);
    let token = body["accessToken"].as_str().unwrap();
    assert_eq!(jwt_payload(token)["tokenConsumerType"], "APP");
    assert!(body["expiryTime"].is_string());
    assert_eq!(sim.mint_count(), 1);
    assert_eq!(get(&sim, &http, "/profile", token).await.0, 200);

    let (status, body) = consume(&sim, &http, reqwest::Method::GET, token_id).await;
    assert_eq!(status, 400);
    assert_eq!(body["errorCode"], "DH-905");
    let (status, _) = consume(&sim, &http, reqwest::Method::POST, "unknown").await;
    assert_eq!(status, 400);
    assert_eq!(sim.mint_count(), 1);

    // POST works as well as GET (the method is disputed in Dhan's sources).
    let (_, body) = generate_consent(&sim, &http, "sim-api-key", "sim-api-secret").await;
    let resp = login(&sim, &http, body["consentAppId"].as_str().unwrap()).await;
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let token_id2 = location.split("tokenId=").nth(1).unwrap();
    let (status, body) = consume(&sim, &http, reqwest::Method::POST, token_id2).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(sim.mint_count(), 2);
    // ...and the new token replaced the first consent token.
    assert_eq!(get(&sim, &http, "/profile", token).await.0, 401);
}

#[tokio::test]
async fn consent_limit_is_25_per_day() {
    let sim = start(SimConfig::default()).await;
    let http = http();
    for _ in 0..25 {
        assert_eq!(
            generate_consent(&sim, &http, "sim-api-key", "sim-api-secret")
                .await
                .0,
            200
        );
    }
    let (status, body) = generate_consent(&sim, &http, "sim-api-key", "sim-api-secret").await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"errorCode": "CONSENT_LIMIT_EXCEED", "errorMessage": "Consent limit Exceeded"})
    );
    sim.advance(Duration::days(1));
    assert_eq!(
        generate_consent(&sim, &http, "sim-api-key", "sim-api-secret")
            .await
            .0,
        200
    );
}

async fn renew(
    sim: &dhan_sim::SimHandle,
    http: &reqwest::Client,
    method: reqwest::Method,
    token: &str,
) -> (u16, Value) {
    let resp = http
        .request(method, format!("{}/RenewToken", sim.base_url()))
        .header("access-token", token)
        .header("dhanClientId", CLIENT_ID)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

#[tokio::test]
async fn renew_token_works_only_for_web_tokens() {
    let sim = start(SimConfig::default()).await;
    let http = http();

    let app = mint(&sim, &http).await;
    let (status, body) = renew(&sim, &http, reqwest::Method::GET, &app).await;
    assert_eq!(status, 400);
    assert_eq!(body["errorCode"], "DH-905");
    assert_eq!(
        get(&sim, &http, "/profile", &app).await.0,
        200,
        "a refused renew keeps the token"
    );

    let web = sim.issue_web_token();
    let (status, body) = renew(&sim, &http, reqwest::Method::POST, &web).await;
    assert_eq!(status, 400, "POST is refused as on live");
    assert_eq!(body["errorCode"], "DH-905");

    let before = sim.mint_count();
    let (status, body) = renew(&sim, &http, reqwest::Method::GET, &web).await;
    assert_eq!(status, 200, "{body}");
    let renewed = body["accessToken"].as_str().unwrap();
    assert_ne!(renewed, web);
    assert_eq!(jwt_payload(renewed)["tokenConsumerType"], "SELF");
    assert!(body["expiryTime"].is_string());
    assert_eq!(sim.mint_count(), before + 1);
    assert_eq!(
        get(&sim, &http, "/profile", &web).await.0,
        401,
        "the old token expires"
    );
    assert_eq!(get(&sim, &http, "/profile", renewed).await.0, 200);

    // A superseded web token cannot be renewed.
    assert_eq!(renew(&sim, &http, reqwest::Method::GET, &web).await.0, 401);
}

#[tokio::test]
async fn request_log_masks_pin_and_totp() {
    let sim = start(SimConfig::default()).await;
    let http = http();
    let code = totp_now(&sim);
    let (status, body) = mint_with(&sim, &http, CLIENT_ID, PIN, &code).await;
    assert_eq!(status, 200);
    let token = body["accessToken"].as_str().unwrap().to_owned();
    get(&sim, &http, "/profile", &token).await;

    let log = sim.requests();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].method, "POST");
    assert_eq!(log[0].path, "/app/generateAccessToken");
    assert_eq!(
        log[0].query,
        format!("dhanClientId={CLIENT_ID}&pin=***&totp=***")
    );
    assert_eq!(log[0].status, 200);
    assert_eq!(log[1].path, "/v2/profile");
    assert_eq!(log[1].status, 200);
    let dump = serde_json::to_string(&log).unwrap();
    assert!(!dump.contains(PIN), "{dump}");
    assert!(!dump.contains(&code), "{dump}");
    assert!(!dump.contains(&token));
}

#[tokio::test]
async fn unknown_paths_get_the_gateway_404() {
    let sim = start(SimConfig::default()).await;
    let http = http();
    for url in [
        format!("{}/nope", sim.base_url()),
        format!("{}/orders/1/2/3", sim.base_url()),
        format!("{}/whatever", sim.auth_url()),
    ] {
        let resp = http.get(&url).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 404, "{url}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["status"], 404);
        assert_eq!(body["error"], "Not Found");
        assert!(body["timestamp"].is_string());
        assert!(url.ends_with(body["path"].as_str().unwrap()), "{body}");
    }
    let resp = http
        .get(format!("{}/app/generateAccessToken", sim.auth_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 405);
}

#[tokio::test]
async fn debug_output_hides_secrets() {
    let config = SimConfig::default();
    let printed = format!("{config:?}");
    assert!(!printed.contains("123456"), "{printed}");
    assert!(!printed.contains("JBSWY3DPEHPK3PXP"), "{printed}");
    assert!(!printed.contains("sim-api-secret"), "{printed}");
    let sim = start(config).await;
    let token = mint(&sim, &http()).await;
    let printed = format!("{sim:?}");
    assert!(!printed.contains(&token), "{printed}");
}
