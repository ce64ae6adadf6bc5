//! `POST /webhook`: a TradingView alert in, a journaled order out.
//!
//! Order of checks (each answer is final):
//! 1. body over 64 KiB → 413; not JSON (whatever the Content-Type) → 400;
//! 2. `secret` missing or wrong → 401 with a fixed body, before any validation detail is
//!    revealed, and nothing journaled;
//! 3. a key that appears twice (`"quantity":1,"quantity":100`) → 422 naming it; an invalid
//!    alert → 422 listing every `{field, problem}`;
//! 4. the pipeline journals, dedupes and places it → 200 with the legs (202 if a leg's outcome is
//!    still unknown at `ACK_DEADLINE_MS`, or at once when a leg is queued in the order rate
//!    limiter for longer than [`HOLD_FOR_TURN`]); 503 only if the alert could not be journaled,
//!    or the journal had not taken it by the deadline. Nothing was sent then, and TradingView's
//!    resend (after 5 s) is safe either way: a late admission makes the resend a recognised
//!    duplicate.

use std::{net::SocketAddr, time::Duration};

use axum::{
    Json,
    body::Bytes,
    extract::{ConnectInfo, State, rejection::BytesRejection},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};
use tokio::sync::oneshot::error::TryRecvError;
use tracing::Instrument;

use super::{ApiError, AppState, Outcome, error};
use crate::{
    alert::{FieldProblem, parse_signal},
    metrics::WebhookOutcome,
    pipeline::{Admitted, Handled, Intake, PipelineError},
    ratelimit::{QueuedOrder, TurnReporter},
    secrets::secrets_match,
    store::AlertStatus,
};

/// The answer with the legs: 202 while any leg's outcome is open, else 200.
fn answer(outcome: Outcome) -> Response {
    let status = if outcome.status == AlertStatus::Processing {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    let duplicate = outcome.duplicate;
    let mut response = (status, Json(outcome)).into_response();
    if duplicate {
        response.extensions_mut().insert(WebhookOutcome::Duplicate);
    }
    response
}

/// What the metrics count an answer as: said by the handler where the status alone does not
/// tell (a duplicate, a refused alert), else read from the status.
fn outcome_of(response: &Response) -> WebhookOutcome {
    if let Some(outcome) = response.extensions().get::<WebhookOutcome>() {
        return *outcome;
    }
    match response.status() {
        s if s.is_success() => WebhookOutcome::Placed,
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::TOO_MANY_REQUESTS => {
            WebhookOutcome::Unauthorized
        }
        s if s.is_client_error() => WebhookOutcome::Invalid,
        _ => WebhookOutcome::Error,
    }
}

/// `POST /webhook`, counted and timed for `/metrics` and the dashboard.
pub(super) async fn receive(
    state: State<AppState>,
    peer: ConnectInfo<SocketAddr>,
    headers: axum::http::HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = std::time::Instant::now();
    let metrics = std::sync::Arc::clone(&state.inner.metrics);
    let clock = std::sync::Arc::clone(&state.inner.clock);
    let response = handle(state, peer, headers, body).await;
    metrics.webhook(outcome_of(&response), started.elapsed(), clock.now());
    response
}

/// How long the deadline answer may spend reading the journal: a journal slow enough to miss
/// the deadline must not also hold the answer past TradingView's 3 s.
const DEADLINE_READ: Duration = Duration::from_millis(500);

/// The answer at the deadline for an alert the journal has taken but whose placement (or, for
/// a duplicate, the first delivery's placement) is still under way: the legs as they stand,
/// 202 while any is open.
async fn at_deadline(state: &AppState, admitted: Admitted) -> Response {
    from_journal(state, admitted, None).await
}

/// A leg whose turn in the order rate limiter is at most this far off is waited for, so the
/// answer carries Dhan's; one queued longer is answered 202 at once. Dhan's 10/s means a turn
/// is either now or about a second away; a second of an open connection per alert buys
/// nothing (TradingView treats 200 and 202 alike), and in a burst it held hundreds of
/// connections open.
const HOLD_FOR_TURN: Duration = Duration::from_millis(100);

/// The answer, given at once, for an alert one of whose orders is queued in the order rate
/// limiter for longer than [`HOLD_FOR_TURN`]: waiting would only hold the connection open to
/// answer later. The legs as journaled (the queued one `SUBMITTING`), and a note
/// saying when the order is expected to leave.
async fn queued_past_the_deadline(
    state: &AppState,
    admitted: Admitted,
    queued: &QueuedOrder,
) -> Response {
    let wait = queued
        .turn
        .at
        .saturating_duration_since(tokio::time::Instant::now());
    tracing::info!(
        alert_id = %admitted.alert_id,
        correlation_id = %queued.correlation_id,
        wait_ms = wait.as_millis(),
        "an order waits its turn in the rate limiter; answered 202 at once, placement continues"
    );
    from_journal(state, admitted, Some(queued)).await
}

/// What the note of a 202 says about an order queued behind the rate limit (`leg`: its number,
/// when the journal was read).
fn queued_note(queued: &QueuedOrder, leg: Option<u32>, alert_id: &str) -> String {
    let wait = queued
        .turn
        .at
        .saturating_duration_since(tokio::time::Instant::now());
    let which = leg.map_or_else(|| "an order".to_owned(), |n| format!("leg {n}"));
    let cap = queued.turn.limited_by.map_or_else(
        || "ORDER_RATE_LIMITS".to_owned(),
        |w| format!("{w}, ORDER_RATE_LIMITS"),
    );
    format!(
        "{which} is queued behind Dhan's order rate limit ({cap}); expected to be sent in ~{:.1} s. \
         Placement continues: GET /orders/{alert_id} shows the broker's answer",
        wait.as_secs_f64()
    )
}

/// The legs as the journal has them, 202 while any is open; `queued` adds the note about an
/// order waiting for the rate limit.
async fn from_journal(
    state: &AppState,
    admitted: Admitted,
    queued: Option<&QueuedOrder>,
) -> Response {
    let Admitted {
        alert_id,
        duplicate,
        warnings,
    } = admitted;
    let read = tokio::time::timeout(DEADLINE_READ, state.inner.journal.alert(&alert_id)).await;
    if let Ok(Ok(Some(record))) = read {
        if queued.is_none() {
            tracing::warn!(%alert_id, duplicate, "answering before the broker did (ACK_DEADLINE_MS); placement continues");
        }
        let mut outcome = Outcome::of(&record, duplicate, warnings);
        // Only while the leg still awaits its turn: should Dhan's answer already be journaled
        // (a very short deadline), the leg's own state says it all.
        outcome.note = queued.and_then(|q| {
            let leg = record
                .legs
                .iter()
                .find(|l| l.correlation_id == q.correlation_id && l.status.awaits_broker())?;
            Some(queued_note(q, Some(leg.leg), &alert_id))
        });
        return answer(outcome);
    }
    let note = queued.map(|q| queued_note(q, None, &alert_id));
    let mut body = json!({"status": "processing", "alert_id": alert_id, "duplicate": duplicate});
    if let Some(note) = note {
        body["note"] = json!(note);
    }
    let mut response = (StatusCode::ACCEPTED, Json(body)).into_response();
    if duplicate {
        response.extensions_mut().insert(WebhookOutcome::Duplicate);
    }
    response
}

async fn handle(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: axum::http::HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    // The client behind trusted proxies: what the allowlist, the journal, the logs and the
    // failed-secret counts use.
    let client = state.client_ip(peer.ip(), &headers);
    if !crate::source_ip::allowed(client, state.inner.allowed_ips.as_deref()) {
        // Counted (and logged as summaries) like a wrong secret.
        let _ = state
            .inner
            .guard
            .wrong(client, "alert from an address outside ALLOWED_IPS");
        return error(
            StatusCode::FORBIDDEN,
            "this address may not send alerts (ALLOWED_IPS)",
        );
    }
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
        return match state.inner.guard.wrong(client, "webhook secret") {
            super::guard::Verdict::Unauthorized => ApiError::WrongSecret.into_response(),
            super::guard::Verdict::Throttled(wait) => super::too_many_wrong(wait),
        };
    }

    // After the secret, so a stranger learns nothing about what a valid alert looks like.
    if let Some(key) = crate::alert::first_duplicate_key(&body) {
        tracing::info!(client_ip = %client, key = %key, "webhook refused: a key appears twice");
        return ApiError::invalid(vec![FieldProblem {
            field: key,
            problem: "appears more than once: the alert is ambiguous, so nothing was placed"
                .to_owned(),
        }])
        .into_response();
    }

    let signal = match parse_signal(&map) {
        Ok(s) => s,
        Err(problems) => {
            tracing::info!(client_ip = %client, problems = problems.len(), "webhook refused: invalid alert");
            return ApiError::invalid(problems).into_response();
        }
    };

    let intake = Intake {
        client_ip: Some(client),
        payload: Value::Object(map),
    };
    // Run the pipeline in its own tracked task: if the client disconnects or the request times
    // out, placement still runs to completion and shutdown still waits for it. The answer comes
    // by ACK_DEADLINE_MS at the latest (TradingView cancels at 3 s and never resends a
    // timeout): past it, the journal's view (202, legs in flight) is the answer.
    //
    // Sooner than the deadline: an order that must wait in the rate limiter reports its turn
    // as it joins (`TurnReporter`, scoped around the task), and the answer is then the 202 at
    // once. Turns within `HOLD_FOR_TURN` (and the deadline) are waited for: 200 with Dhan's
    // answer. Legs are placed one after another, so a later leg's turn is reported (and
    // judged) when it joins.
    let pipeline = state.inner.pipeline.clone();
    let (admitted_tx, mut admitted_rx) = tokio::sync::oneshot::channel();
    let (reporter, mut turns) = TurnReporter::new();
    let deadline_at = tokio::time::Instant::now() + state.inner.routing.ack_deadline;
    let mut task = state.inner.tasks.spawn(
        reporter
            .scope(async move {
                pipeline
                    .handle_reporting(signal, intake, Some(admitted_tx))
                    .await
            })
            .in_current_span(),
    );
    let deadline = tokio::time::sleep_until(deadline_at);
    tokio::pin!(deadline);
    let finished = loop {
        tokio::select! {
            done = &mut task => break Some(done),
            () = &mut deadline => break None,
            Some(queued) = turns.recv() => {
                let hold_until = (tokio::time::Instant::now() + HOLD_FOR_TURN).min(deadline_at);
                if queued.turn.at <= hold_until {
                    continue;
                }
                // An order joins the limiter only after the alert was journaled (and its leg
                // marked SUBMITTING), so `Admitted` is there.
                if let Ok(admitted) = admitted_rx.try_recv() {
                    return queued_past_the_deadline(&state, admitted, &queued).await;
                }
            }
        }
    };
    let result = match finished {
        Some(done) => done,
        None => match admitted_rx.try_recv() {
            // Journaled, still placing: answer from the journal; the task goes on.
            Ok(admitted) => return at_deadline(&state, admitted).await,
            // The task ended at this very moment: its own answer.
            Err(TryRecvError::Closed) => task.await,
            // The journal has not taken the alert yet (it is stalled: a lock, a full disk, a
            // slow network to PostgreSQL). Waiting longer would run into TradingView's 3 s
            // cut-off, after which it never resends; a 503 now makes it resend in 5 s. If
            // the admission still completes, the resend is answered as a duplicate.
            Err(TryRecvError::Empty) => {
                tracing::error!(
                    "the journal did not take the alert within ACK_DEADLINE_MS; answered 503 so TradingView resends"
                );
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the journal did not record the alert in time; nothing was placed yet. It is safe to send it again: a repeat is recognised and never placed twice",
                );
            }
        },
    };
    match result {
        Ok(Ok(Handled {
            record,
            duplicate,
            warnings,
            positions,
            cancels,
        })) => {
            let mut outcome = Outcome::of(&record, duplicate, warnings);
            outcome.positions = positions;
            outcome.cancels = cancels;
            answer(outcome)
        }
        Ok(Err(e)) => {
            let refused = matches!(
                e,
                PipelineError::Unresolvable(_) | PipelineError::Stale { .. }
            );
            match &e {
                PipelineError::NotJournaled(e) => {
                    tracing::error!(error = %e, "alert not journaled; nothing placed");
                }
                PipelineError::Unresolvable(problems) => tracing::info!(
                    problems = problems.len(),
                    "webhook refused: instruments do not resolve"
                ),
                PipelineError::Stale { alert_id, problem } => {
                    tracing::info!(%alert_id, problem = %problem.problem, "webhook refused: stale alert (journaled, not placed)");
                }
                PipelineError::InstrumentsMissing => {}
                PipelineError::PositionsUnreadable(why) => {
                    tracing::warn!(%why, "webhook refused: positions unreadable; nothing placed (fail closed)");
                }
                PipelineError::DuplicateUnreadable(..) => {
                    tracing::error!(error = %e, "duplicate alert could not be answered");
                }
            }
            let mut response = ApiError::from(e).into_response();
            if refused {
                response.extensions_mut().insert(WebhookOutcome::Refused);
            }
            response
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
