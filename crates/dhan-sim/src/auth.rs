//! The auth host (stands in for `https://auth.dhan.co`, dhan-api.md §2.2–§2.3): direct
//! PIN+TOTP minting with its cooldown and lockout, and the three-step API-key consent flow.

use serde_json::json;

use crate::clock::ist_date;
use crate::error::ApiError;
use crate::fault::FaultPoint;
use crate::server::{Reply, Req};
use crate::state::{ConsentState, Shared, State, token_body};
use crate::token::{TokenKind, uuid_v4};
use crate::totp;

/// Consents Dhan allows per account per day.
pub(crate) const CONSENTS_PER_DAY: u32 = 25;

fn mint_refused(message: &str) -> ApiError {
    ApiError::dh(400, "Order_Error", "DH-906", message)
}

/// Counts a failed credential check; enough in a row lock the account.
fn count_failure(state: &mut State, lockout_after: u32) {
    state.consecutive_failures = state.consecutive_failures.saturating_add(1);
    if lockout_after > 0 && state.consecutive_failures >= lockout_after {
        state.locked = true;
    }
}

/// `POST /app/generateAccessToken?dhanClientId=&pin=&totp=`.
pub(crate) fn generate_access_token(shared: &Shared, req: &Req) -> Reply {
    let config = &shared.config;
    let mut state = shared.lock();
    if state.faults.take(FaultPoint::Mint).is_some() {
        return ApiError::internal().into();
    }
    if state.locked {
        return ApiError::dh(
            400,
            "Invalid_Authentication",
            "DH-901",
            "Account locked due to multiple failed attempts",
        )
        .into();
    }
    // An unknown client id is another (or no) account, so it does not count toward
    // this account's lockout.
    if req.query_param("dhanClientId") != Some(config.client_id.as_str()) {
        return ApiError::input("Invalid Client ID").into();
    }
    if req.query_param("pin") != Some(config.pin.as_str()) {
        count_failure(&mut state, config.lockout_after_failures);
        return mint_refused("Invalid Pin").into();
    }
    let now = state.now();
    let code = req.query_param("totp").unwrap_or("");
    if !totp::verify(&config.totp_secret, code, now.timestamp()) {
        count_failure(&mut state, config.lockout_after_failures);
        return mint_refused("Invalid TOTP").into();
    }
    if let Some(last) = state.last_direct_mint {
        let since = now.signed_duration_since(last);
        let cooldown =
            chrono::Duration::from_std(config.mint_cooldown).unwrap_or(chrono::Duration::MAX);
        // A clock set backwards (negative `since`) is not treated as "too soon".
        if since >= chrono::Duration::zero() && since < cooldown {
            return ApiError::input("Token can be generated once every 2 minutes.").into();
        }
    }
    state.consecutive_failures = 0;
    state.last_direct_mint = Some(now);
    state.mint_count += 1;
    let token = state.issue_token(config, TokenKind::App);
    Reply::ok(token_body(config, &token))
}

/// The consent endpoints authenticate the app with `app_id` / `app_secret` headers.
fn check_app(shared: &Shared, req: &Req) -> Result<(), ApiError> {
    let config = &shared.config;
    if req.header("app_id") == Some(config.api_key.as_str())
        && req.header("app_secret") == Some(config.api_secret.as_str())
    {
        Ok(())
    } else {
        Err(ApiError::dh(
            401,
            "Invalid_Authentication",
            "DH-901",
            "Invalid app_id or app_secret",
        ))
    }
}

/// `POST /app/generate-consent?client_id=` (step 1).
pub(crate) fn generate_consent(shared: &Shared, req: &Req) -> Reply {
    if let Err(e) = check_app(shared, req) {
        return e.into();
    }
    if req.query_param("client_id") != Some(shared.config.client_id.as_str()) {
        return ApiError::input("Invalid Client ID").into();
    }
    let mut state = shared.lock();
    let day = ist_date(state.now());
    let used = state.consents_per_day.get(&day).copied().unwrap_or(0);
    if used >= CONSENTS_PER_DAY {
        return Reply::Json(
            400,
            json!({"errorCode": "CONSENT_LIMIT_EXCEED", "errorMessage": "Consent limit Exceeded"}),
        );
    }
    state.consents_per_day.insert(day, used + 1);
    let consent_id = uuid_v4();
    state
        .consents
        .insert(consent_id.clone(), ConsentState::Generated);
    Reply::ok(json!({
        "consentAppId": consent_id,
        "consentAppStatus": "GENERATED",
        "status": "success",
    }))
}

/// `GET /login/consentApp-login?consentAppId=` (step 2): stands in for the browser login
/// and redirects at once, as if the user had typed their credentials.
pub(crate) fn consent_login(shared: &Shared, req: &Req) -> Reply {
    let Some(consent_id) = req.query_param("consentAppId") else {
        return ApiError::input("consentAppId is required").into();
    };
    let mut state = shared.lock();
    match state.consents.get_mut(consent_id) {
        Some(s) if *s == ConsentState::Generated => *s = ConsentState::LoggedIn,
        _ => return ApiError::input("Invalid or already used consentAppId").into(),
    }
    let token_id = uuid_v4();
    state.token_ids.insert(token_id.clone(), false);
    let base = &shared.config.redirect_url;
    let sep = if base.contains('?') { '&' } else { '?' };
    Reply::Redirect(format!("{base}{sep}tokenId={token_id}"))
}

/// `GET|POST /app/consumeApp-consent?tokenId=` (step 3): a tokenId buys one token.
pub(crate) fn consume_consent(shared: &Shared, req: &Req) -> Reply {
    if let Err(e) = check_app(shared, req) {
        return e.into();
    }
    let Some(token_id) = req.query_param("tokenId") else {
        return ApiError::input("tokenId is required").into();
    };
    let mut state = shared.lock();
    match state.token_ids.get_mut(token_id) {
        Some(consumed) if !*consumed => *consumed = true,
        _ => return ApiError::input("Invalid or already consumed tokenId").into(),
    }
    state.mint_count += 1;
    let token = state.issue_token(&shared.config, TokenKind::App);
    Reply::ok(token_body(&shared.config, &token))
}
