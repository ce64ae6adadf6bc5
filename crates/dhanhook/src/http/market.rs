//! Market endpoints: `GET /market-status` (public: what the market is doing and what an alert
//! would do now), and the queue's admin endpoints `GET /queue-stats` and `POST /process-queue`.

use axum::{
    Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::{AppState, auth::Admin, error};
use crate::{
    clock::ist,
    market::{self, Venue},
};

fn ist_text(t: DateTime<Utc>) -> String {
    ist(t).format("%Y-%m-%d %H:%M:%S").to_string()
}

/// `GET /market-status`: per venue whether it is open, today's sessions, the next open and
/// trading day, whether Dhan takes an AMO now, upcoming holidays, and any year without holiday
/// data (reported, never silently treated as all-open).
pub(super) async fn status(State(state): State<AppState>) -> Json<Value> {
    let s = &state.inner;
    let calendar = &s.calendar;
    let routing = &s.routing;
    let now = s.clock.now();
    let today = ist(now).date_naive();
    let mut venues = serde_json::Map::new();
    for venue in Venue::ALL {
        let sessions: Vec<Value> = calendar
            .sessions_on(venue, today)
            .iter()
            .map(|(open, close)| json!({"open": ist_text(*open), "close": ist_text(*close)}))
            .collect();
        venues.insert(
            venue.as_str().to_owned(),
            json!({
                "name": venue.label(),
                "open": calendar.is_open(venue, now),
                "sessions_today": sessions,
                "next_open": calendar.next_open(venue, now).map(ist_text),
                "next_trading_day": calendar.next_trading_day(venue, today).map(|d| d.to_string()),
                "amo_accepted_now": routing.amo_window.accepts(venue, now, calendar),
                "missing_holiday_years": calendar.missing_years_ahead(venue, today),
            }),
        );
    }
    let nse = Venue::NseEquity;
    let holidays: Vec<Value> = calendar
        .upcoming_holidays(nse, today, 5)
        .into_iter()
        .map(|(d, what)| json!({"date": d.to_string(), "occasion": what}))
        .collect();
    let route_now = market::route(
        now,
        &[nse],
        routing.when_closed,
        routing.amo_window,
        routing.amo_time,
        calendar,
    );
    Json(json!({
        "time": ist(now).to_rfc3339(),
        "market": {
            "status": if calendar.is_open(nse, now) { "open" } else { "closed" },
            "is_trading_day": calendar.is_trading_day(nse, today),
            "next_trading_day": calendar.next_trading_day(nse, today).map(|d| d.to_string()),
        },
        "when_closed": routing.when_closed.as_str(),
        "an_nse_equity_alert_now": route_now,
        "amo": {
            "accepted_now": routing.amo_window.accepts(nse, now, calendar),
            "window_ist": format!("{} to {} on the next trading day",
                routing.amo_window.opens.format("%H:%M"), routing.amo_window.closes.format("%H:%M")),
            "default_amo_time": routing.amo_time.as_str(),
        },
        "upcoming_holidays": holidays,
        "venues": venues,
    }))
}

/// `GET /queue-stats` (admin).
pub(super) async fn queue_stats(_admin: Admin, State(state): State<AppState>) -> Response {
    match state.inner.journal.queue_summary(20).await {
        Ok(q) => {
            let pending: Vec<Value> = q
                .pending
                .iter()
                .map(|p| {
                    json!({
                        "alert_id": p.alert_id,
                        "received_at": ist_text(p.received_at),
                        "queued_until": p.queued_until.map(ist_text),
                        "status": p.status,
                        "strategy": p.strategy,
                    })
                })
                .collect();
            Json(json!({
                "status": "ok",
                "by_status": q.by_status,
                "next_due": q.next_due.map(ist_text),
                "pending": pending,
            }))
            .into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "queue stats failed");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the journal could not be read",
            )
        }
    }
}

/// `POST /process-queue` (admin): runs the queued alerts that are due now (the queue also runs
/// by itself at each open; this is for operators who want to see it happen).
pub(super) async fn process_queue(_admin: Admin, State(state): State<AppState>) -> Response {
    match state.inner.queue.process_due().await {
        Ok(results) => {
            Json(json!({"status": "ok", "processed": results.len(), "results": results}))
                .into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "processing the queue failed");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the queue could not be processed; see the service log",
            )
        }
    }
}
