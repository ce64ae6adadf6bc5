//! `POST /webhook`: a TradingView alert in, a journaled order out.
//!
//! Order of checks (each answer is final):
//! 1. body over 64 KiB → 413; not JSON (whatever the Content-Type) → 400;
//! 2. `secret` missing or wrong → 401 with a fixed body, before any validation detail is
//!    revealed, and nothing journaled;
//! 3. invalid alert → 422 listing every `{field, problem}`;
//! 4. the engine journals, dedupes and places it → 200 with the legs (202 if a leg's outcome is
//!    still unknown); 503 only if the alert could not be journaled (nothing was sent, so
//!    TradingView's resend is safe).

use std::net::SocketAddr;

use axum::{
    Json,
    body::Bytes,
    extract::{ConnectInfo, State, rejection::BytesRejection},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};
use tracing::Instrument;

use super::{AppState, error};
use crate::{
    alert::parse_signal,
    engine::{Engine, EngineError, Intake},
    secrets::secrets_match,
};

/// The 202 answer for an alert still being placed at the deadline.
async fn in_flight(state: &AppState, alert_id: &str) -> Response {
    match state.inner.engine.journal().alert(alert_id).await {
        Ok(Some(record)) => {
            tracing::warn!(%alert_id, "answering before the broker did (ACK_DEADLINE_MS); placement continues");
            (
                StatusCode::ACCEPTED,
                Json(Engine::outcome_of(&record, false)),
            )
                .into_response()
        }
        _ => (
            StatusCode::ACCEPTED,
            Json(json!({"status": "processing", "alert_id": alert_id, "duplicate": false})),
        )
            .into_response(),
    }
}

pub(super) async fn receive(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "alert body is larger than 64 KiB",
            );
        }
        Err(rejection) => return error(rejection.status(), "could not read the request body"),
    };
    let Ok(Value::Object(mut map)) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "alert body must be a JSON object");
    };

    let authorised = match map.remove("secret") {
        Some(Value::String(given)) => secrets_match(&given, &state.inner.webhook_secret),
        _ => false,
    };
    if !authorised {
        tracing::warn!(client_ip = %peer.ip(), "webhook refused: missing or wrong secret");
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"status": "unauthorized", "error": "missing or wrong secret"})),
        )
            .into_response();
    }

    let signal = match parse_signal(&map) {
        Ok(s) => s,
        Err(problems) => {
            tracing::info!(client_ip = %peer.ip(), problems = problems.len(), "webhook refused: invalid alert");
            return (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({"status": "invalid", "errors": problems})),
            )
                .into_response();
        }
    };

    let intake = Intake {
        client_ip: Some(peer.ip()),
        payload: Value::Object(map),
    };
    // Run the pipeline in its own tracked task: if the client disconnects or the request times
    // out, placement still runs to completion and shutdown still waits for it. The answer comes
    // by ACK_DEADLINE_MS at the latest (TradingView cancels at 3 s and never resends a
    // timeout): past it, the journal's view (202, legs in flight) is the answer.
    let engine = state.inner.engine.clone();
    let (admitted_tx, admitted_rx) = tokio::sync::oneshot::channel();
    let mut task = state.inner.tasks.spawn(
        async move {
            engine
                .handle_reporting(signal, intake, Some(admitted_tx))
                .await
        }
        .in_current_span(),
    );
    let deadline = tokio::time::sleep(state.inner.engine.routing().ack_deadline);
    tokio::pin!(deadline);
    let finished = tokio::select! {
        done = &mut task => Some(done),
        () = &mut deadline => None,
    };
    let result = match finished {
        Some(done) => done,
        None => match admitted_rx.await {
            // Journaled, still placing: answer from the journal; the task goes on.
            Ok(alert_id) => return in_flight(&state, &alert_id).await,
            // Not admitted (a duplicate, or an error): its own answer follows shortly.
            Err(_) => task.await,
        },
    };
    match result {
        Ok(Ok(outcome)) => {
            let status = if outcome.status == "processing" {
                StatusCode::ACCEPTED
            } else {
                StatusCode::OK
            };
            (status, Json(outcome)).into_response()
        }
        Ok(Err(EngineError::NotJournaled(e))) => {
            tracing::error!(error = %e, "alert not journaled; nothing placed");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the alert could not be recorded, so nothing was placed; it is safe to send it again",
            )
        }
        Ok(Err(EngineError::Unresolvable(problems))) => {
            tracing::info!(
                problems = problems.len(),
                "webhook refused: instruments do not resolve"
            );
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({"status": "invalid", "errors": problems})),
            )
                .into_response()
        }
        Ok(Err(EngineError::InstrumentsMissing)) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the scrip master is not loaded yet (see /ready); nothing was placed; it is safe to send the alert again",
        ),
        Ok(Err(e @ EngineError::DuplicateUnreadable(..))) => {
            tracing::error!(error = %e, "duplicate alert could not be answered");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "this alert was already received; its outcome cannot be read right now (nothing new was placed)",
            )
        }
        Err(join_error) => {
            tracing::error!(error = %join_error, "alert processing task failed");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error; see the service log",
            )
        }
    }
}
