//! The kill switch over HTTP (admin token): `GET /kill-switch` (where it stands, and its recent
//! history) and `POST /kill-switch` with `{"on": true|false, "flatten": bool, "broker": bool,
//! "note": "..."}`. The change is journaled with the caller's IP (after `TRUSTED_PROXIES`);
//! see [`crate::pipeline::kill_switch`] for what each step does.

use std::net::SocketAddr;

use axum::{
    Json,
    body::Bytes,
    extract::{ConnectInfo, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, AppState, auth::Admin};
use crate::{alert::FieldProblem, pipeline::KillSwitchChange};

/// Longest note kept with a change.
const MAX_NOTE: usize = 200;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    on: bool,
    #[serde(default)]
    flatten: bool,
    #[serde(default)]
    broker: bool,
    #[serde(default)]
    note: Option<String>,
}

/// `GET /kill-switch` (admin).
pub(super) async fn status(_admin: Admin, State(state): State<AppState>) -> Response {
    let s = &state.inner;
    let current = s.kill_switch.status().await;
    let history = s.journal.kill_switch_history(10).await;
    match (current, history) {
        (Ok(current), Ok(history)) => Json(json!({
            "status": "ok",
            "kill_switch": current,
            "mode": s.kill_switch.mode().as_str(),
            "history": history,
            // Dhan's own switch, as Dhan reports it now (paper: there is none).
            "broker": s.kill_switch.broker_status().await,
        }))
        .into_response(),
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!(error = %e, "reading the kill switch failed");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the journal could not be read",
            )
            .into_response()
        }
    }
}

/// `POST /kill-switch` (admin).
pub(super) async fn change(
    _admin: Admin,
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Body = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return ApiError::invalid(vec![FieldProblem {
                field: "body".to_owned(),
                problem: format!(
                    "{e}; send {{\"on\": true|false, \"flatten\": bool, \"broker\": bool, \"note\": \"why\"}}"
                ),
            }])
            .into_response();
        }
    };
    let note = body
        .note
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty());
    if note
        .as_ref()
        .is_some_and(|n| n.chars().count() > MAX_NOTE || n.chars().any(char::is_control))
    {
        return ApiError::invalid(vec![FieldProblem {
            field: "note".to_owned(),
            problem: format!("must be printable text of at most {MAX_NOTE} characters"),
        }])
        .into_response();
    }
    if body.flatten && !body.on {
        return ApiError::invalid(vec![FieldProblem {
            field: "flatten".to_owned(),
            problem: "only applies when turning the kill switch on".to_owned(),
        }])
        .into_response();
    }
    let by = state.client_ip(peer.ip(), &headers).to_string();
    let change = KillSwitchChange {
        on: body.on,
        flatten: body.flatten,
        broker: body.broker,
        note,
    };
    match state.inner.kill_switch.apply(&change, &by).await {
        Ok(outcome) => {
            let failed = [&outcome.flatten, &outcome.broker]
                .into_iter()
                .any(|o| o.as_ref().is_some_and(|o| !o.ok));
            // The switch itself is recorded either way; a failed step is a 502 so scripts notice.
            let status = if failed {
                StatusCode::BAD_GATEWAY
            } else {
                StatusCode::OK
            };
            (
                status,
                Json(json!({
                    "status": if failed { "partial" } else { "ok" },
                    "kill_switch": outcome.kill_switch,
                    "mode": outcome.mode,
                    "flatten": outcome.flatten,
                    "broker": outcome.broker,
                })),
            )
                .into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "the kill switch change was not journaled");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the journal did not record the change; nothing was done",
            )
            .into_response()
        }
    }
}
