//! Token endpoints. Admin: `POST /refresh-token` (mint now), `POST /auth/consent` (start the
//! API-key flow), `GET /auth/status`. Public: `GET /auth/callback?tokenId=…`, where Dhan's
//! login page sends the user's browser (it must be reachable without our admin token); it
//! consumes a tokenId only while a consent started here is waiting, and each tokenId once.

use axum::{
    Json,
    extract::{Query, State},
    http::StatusCode,
    response::{Html, IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, AppState, auth::Admin, error};
use crate::token::TokenError;

fn not_live() -> Response {
    error(
        StatusCode::CONFLICT,
        "paper mode has no Dhan token; set ENABLE_DHAN=true and the Dhan credentials for live mode",
    )
}

/// `POST /refresh-token` (admin): a new token now. Clears a halt after repeated failures.
pub(super) async fn refresh(_admin: Admin, State(state): State<AppState>) -> Response {
    let Some(keeper) = state.inner.keeper.as_ref() else {
        return not_live();
    };
    match keeper.refresh_now().await {
        Ok(_) => Json(json!({"status": "ok", "token": keeper.status()})).into_response(),
        Err(TokenError::Cooldown { wait_secs }) => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!("a token was requested too recently; Dhan allows one about every 2 minutes. Try again in {wait_secs} s"),
        )
        .retry_after(wait_secs)
        .into_response(),
        Err(e) => ApiError::new(StatusCode::BAD_GATEWAY, e.to_string())
            .with("token", json!(keeper.status()))
            .into_response(),
    }
}

/// `POST /auth/consent` (admin): starts the API-key consent flow.
pub(super) async fn consent(_admin: Admin, State(state): State<AppState>) -> Response {
    let Some(keeper) = state.inner.keeper.as_ref() else {
        return not_live();
    };
    match keeper.start_consent().await {
        Ok(login_url) => Json(json!({
            "status": "pending_login",
            "login_url": login_url,
            "instructions": "Open login_url in a browser within 10 minutes and log in to Dhan. Dhan then sends \
                the browser to this service's /auth/callback (the redirect URL registered with your API key), \
                which completes the flow.",
        }))
        .into_response(),
        Err(e) => ApiError::new(StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

/// `GET /auth/status` (admin): the token's state and the keeper's bookkeeping.
pub(super) async fn status(_admin: Admin, State(state): State<AppState>) -> Response {
    match state.inner.keeper.as_ref() {
        Some(k) => Json(json!({"status": "ok", "token": k.status()})).into_response(),
        None => not_live(),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct Callback {
    #[serde(rename = "tokenId", alias = "token_id")]
    token_id: Option<String>,
    error: Option<String>,
}

/// `GET /auth/callback?tokenId=…` (public): the end of Dhan's login, shown as a plain page.
pub(super) async fn callback(State(state): State<AppState>, Query(q): Query<Callback>) -> Response {
    let page = |status: StatusCode, title: &str, text: &str| {
        (
            status,
            Html(format!(
                "<!doctype html><meta charset=utf-8><title>dhanhook: {title}</title>\
                 <body style=\"font-family:sans-serif;max-width:40em;margin:3em auto\"><h1>{title}</h1><p>{}</p></body>",
                html_escape(text)
            )),
        )
            .into_response()
    };
    let Some(keeper) = state.inner.keeper.as_ref() else {
        return page(
            StatusCode::CONFLICT,
            "Not in live mode",
            "This dhanhook runs in paper mode.",
        );
    };
    if q.error.is_some() {
        return page(
            StatusCode::BAD_REQUEST,
            "Login not completed",
            "Dhan reported an error; start again with POST /auth/consent.",
        );
    }
    let Some(token_id) = q.token_id.filter(|t| !t.trim().is_empty()) else {
        return page(
            StatusCode::BAD_REQUEST,
            "Missing tokenId",
            "This page expects Dhan's redirect with a tokenId.",
        );
    };
    match keeper.complete_consent(token_id.trim()).await {
        Ok(_) => {
            let s = keeper.status();
            page(
                StatusCode::OK,
                "Dhan token received",
                &format!(
                    "dhanhook now has a Dhan access token, valid until {} IST. You can close this page.",
                    s.expires_at.unwrap_or_default()
                ),
            )
        }
        Err(e) => {
            tracing::warn!(error = %e, "consent callback refused");
            page(
                StatusCode::BAD_REQUEST,
                "Token not accepted",
                &e.to_string(),
            )
        }
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
