//! Operator endpoints: `/` (what is running), `/health` (liveness), `/ready` (readiness, one
//! entry per dependency), `/logs` (the journal's recent orders, admin only) and
//! `/orders/{alert_id}` (one alert, its legs and each leg's history, admin only).

use axum::{
    Json,
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::json;

use super::{AppState, auth::Admin, error};
use crate::clock::ist;

/// `GET /`: service, version, mode, non-secret configuration and the endpoint list.
pub(super) async fn root(State(state): State<AppState>) -> Json<serde_json::Value> {
    let s = &state.inner;
    // The token's state and errors are not for strangers: GET /auth/status (admin) has them,
    // and /ready says only whether it is usable.
    Json(json!({
        "service": "dhanhook",
        "version": env!("CARGO_PKG_VERSION"),
        "status": "running",
        "mode": s.mode.as_str(),
        "time": ist(s.clock.now()).to_rfc3339(),
        "config": s.public_config,
        "endpoints": {
            "POST /webhook": "TradingView alerts (secret in the body)",
            "GET /": "this page",
            "GET /health": "liveness: 200 while the process runs",
            "GET /ready": "readiness: one entry per check, 503 when one fails",
            "GET /logs?limit=N": "recent order legs, newest first (admin)",
            "GET /orders/{alert_id}": "one alert, its legs and each leg's history (admin)",
            "GET /market-status": "sessions, next open, AMO window, holidays",
            "GET /queue-stats": "queued alerts (admin)",
            "POST /process-queue": "run the queued alerts that are due (admin)",
            "POST /refresh-token": "get a new Dhan token now (admin, live mode)",
            "POST /auth/consent": "start the API-key consent flow (admin, live mode)",
            "GET /auth/status": "token state (admin, live mode)",
            "GET /auth/callback": "where Dhan's login sends the browser (consent flow)",
            "GET /kill-switch": "the kill switch and its last changes (admin)",
            "POST /kill-switch": "{\"on\": bool, \"flatten\": bool, \"broker\": bool, \"note\": \"…\"} (admin)",
            "GET /metrics": "Prometheus metrics (admin token or METRICS_TOKEN)",
            "GET /ui": "the operator dashboard in a browser (sign in with the admin token)",
        },
    }))
}

/// `GET /health`: 200 while the process runs, `{"status":"healthy"}` as the upstream's guide
/// checks. Touches nothing, so a slow disk or broker can never make the platform restart a
/// healthy process.
pub(super) async fn health(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(json!({"status": "healthy", "mode": state.inner.mode.as_str()}))
}

/// `GET /ready`: 200 when every check passes, else 503; each check reports on its own. The
/// upstream guide's two checks come first and in its words (`dhan_client`: `initialized` or
/// `disabled` in paper mode; `access_token`: `valid`, `unchecked`, `minting`, `refused`,
/// `expired`, `none`, or `not_used` in paper mode), with the token's detail under `token`.
pub(super) async fn ready(State(state): State<AppState>) -> Response {
    let s = &state.inner;
    let journal = match journal_writable(&state).await {
        Ok(()) => json!({"ok": true}),
        Err(_) => json!({"ok": false, "error": "journal is not writable (see the service log)"}),
    };
    let instruments = s.instruments.status();
    // A stale copy still resolves symbols (and is reported); no copy at all does not.
    let instruments_ok = instruments.state != crate::instruments::source::SourceState::Missing;
    // Holiday data: the current year must be known (or every weekday would look open);
    // a missing next year is reported ahead of time but does not fail readiness.
    let today = crate::clock::ist(s.clock.now()).date_naive();
    let calendar = &s.calendar;
    let missing: std::collections::BTreeSet<i32> = crate::market::Venue::ALL
        .iter()
        .flat_map(|v| calendar.missing_years_ahead(*v, today))
        .collect();
    let calendar_ok = !missing.contains(&chrono::Datelike::year(&today));
    let mut ready = journal["ok"] == json!(true) && instruments_ok && calendar_ok;
    let mut checks = serde_json::Map::new();
    match &s.keeper {
        Some(keeper) => {
            let t = keeper.status();
            ready &= t.usable();
            checks.insert("dhan_client".to_owned(), json!("initialized"));
            checks.insert("access_token".to_owned(), json!(t.guide_state()));
            checks.insert(
                "token".to_owned(),
                json!({
                    "ok": t.usable(),
                    "state": t.state,
                    "expires_at": t.expires_at,
                    "hours_left": t.hours_left,
                    "source": t.source,
                    "renewable": t.renewable,
                    "problem": t.problem,
                    "minting_halted": t.minting_halted,
                }),
            );
        }
        None => {
            checks.insert("dhan_client".to_owned(), json!("disabled"));
            checks.insert("access_token".to_owned(), json!("not_used"));
        }
    }
    checks.insert("journal".to_owned(), journal);
    checks.insert(
        "calendar".to_owned(),
        json!({"ok": calendar_ok, "missing_holiday_years": missing}),
    );
    checks.insert(
        "instruments".to_owned(),
        json!({
            "ok": instruments_ok,
            "state": instruments.state,
            "rows": instruments.rows,
            "as_of": instruments.as_of,
            "last_error": instruments.last_error,
        }),
    );
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({"ready": ready, "mode": s.mode.as_str(), "checks": checks})),
    )
        .into_response()
}

/// How long `/ready` reuses its journal write check.
const READY_CACHE: std::time::Duration = std::time::Duration::from_secs(5);

/// Whether the journal takes a write, checked at most every [`READY_CACHE`]: `/ready` is public,
/// and a write per call let 10,000 calls slow the webhook down fivefold.
async fn journal_writable(state: &AppState) -> Result<(), String> {
    let s = &state.inner;
    let cached = s
        .ready_journal
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .filter(|(at, _)| at.elapsed() < READY_CACHE)
        .map(|(_, r)| r.clone());
    if let Some(result) = cached {
        return result;
    }
    let result = s
        .journal
        .check_writable(s.clock.now())
        .await
        .map_err(|e| e.to_string());
    if let Err(e) = &result {
        tracing::error!(error = %e, "readiness: journal not writable");
    }
    *s.ready_journal.lock().unwrap_or_else(|e| e.into_inner()) =
        Some((std::time::Instant::now(), result.clone()));
    result
}

#[derive(Debug, Deserialize)]
pub(super) struct LogsQuery {
    limit: Option<String>,
}

/// Default and largest `limit` of `/logs`.
const DEFAULT_LOGS: u32 = 100;
const MAX_LOGS: u32 = 1000;

/// `GET /logs?limit=N` (admin): the newest order legs with their alert's context.
pub(super) async fn logs(
    _admin: Admin,
    State(state): State<AppState>,
    Query(q): Query<LogsQuery>,
) -> Response {
    let limit = match q.limit.as_deref().map(str::trim) {
        None | Some("") => DEFAULT_LOGS,
        Some(v) => match v.parse::<u32>() {
            Ok(n) if n >= 1 => n.min(MAX_LOGS),
            _ => {
                return error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "limit must be a whole number from 1 to 1000",
                );
            }
        },
    };
    match state.inner.journal.recent_orders(limit).await {
        Ok(rows) => {
            let orders: Vec<_> = rows.iter().map(leg_json).collect();
            Json(json!({
                "status": "ok",
                "mode": state.inner.mode.as_str(),
                "count": orders.len(),
                "limit": limit,
                "orders": orders,
            }))
            .into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "could not read the journal for /logs");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the journal could not be read",
            )
        }
    }
}

/// A leg as `/logs` and `/orders/{alert_id}` show it: instants in IST, the market's time zone.
fn leg_json(r: &crate::store::OrderRow) -> serde_json::Value {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    v["received_at"] = json!(ist(r.received_at).to_rfc3339());
    v["updated_at"] = json!(ist(r.updated_at).to_rfc3339());
    v["exchange_time"] = json!(r.detail.exchange_time.map(|t| ist(t).to_rfc3339()));
    v
}

/// `GET /orders/{alert_id}` (admin): one alert with its legs, and each leg's transitions
/// (time, source, status) oldest first.
pub(super) async fn order(
    _admin: Admin,
    State(state): State<AppState>,
    Path(alert_id): Path<String>,
) -> Response {
    let read = state.inner.journal.alert_history(&alert_id);
    match read.await {
        Ok(Some((record, events))) => {
            let legs: Vec<_> = record
                .legs
                .iter()
                .map(|leg| {
                    let mut v = leg_json(leg);
                    v["events"] = events
                        .iter()
                        .filter(|e| e.leg == leg.leg)
                        .map(|e| {
                            json!({
                                "at": ist(e.at).to_rfc3339(),
                                "source": e.source,
                                "status": e.status,
                                "filled_qty": e.filled_qty,
                                "fill_price": e.fill_price,
                                "message": e.message,
                            })
                        })
                        .collect();
                    v
                })
                .collect();
            Json(json!({
                "status": "ok",
                "alert": {
                    "id": record.id,
                    "received_at": ist(record.received_at).to_rfc3339(),
                    "alert_type": record.alert_type,
                    "mode": record.mode.as_str(),
                    "status": shown_status(&record),
                    "duplicates": record.duplicates,
                },
                "legs": legs,
            }))
            .into_response()
        }
        Ok(None) => error(StatusCode::NOT_FOUND, "no alert with this id"),
        Err(e) => {
            tracing::error!(error = %e, "could not read the journal for /orders");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the journal could not be read",
            )
        }
    }
}

/// The alert's status as its legs say it now, like a `/webhook` answer: the journal's column is
/// written just after a leg moves, and a reader must not see the two disagree. While legs wait
/// in the queue the journal's view (queued, or processing when claimed) is the one to show.
pub(super) fn shown_status(record: &crate::store::AlertRecord) -> crate::store::AlertStatus {
    if record
        .legs
        .iter()
        .any(|l| l.status == crate::store::LegStatus::Queued)
    {
        record.status
    } else {
        crate::store::AlertStatus::from_legs(record.legs.iter().map(|l| l.status))
    }
}
