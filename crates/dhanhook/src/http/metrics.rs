//! `GET /metrics`: the Prometheus exposition ([`crate::metrics`]), for a scraper holding the
//! admin token or `METRICS_TOKEN` (a token that reads this page and nothing else, so
//! Prometheus never holds the admin token), or sending from `METRICS_ALLOWED_IPS` (a collector
//! that cannot send a token, such as a sidecar on 127.0.0.1). The page holds counts and
//! states, never a secret, an alert id or a symbol.
//!
//! The state gauges (token, queue, legs, scrip master, kill switch) are refreshed here, at
//! scrape time, from the same sources `/ready` and `/queue-stats` read.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};

use super::{AppState, auth, error};
use crate::{secrets::secrets_match, store::LegStatus, token::TokenState};

/// How many of the newest legs a scrape reads to count legs by state.
pub(super) const LEG_SCAN: u32 = 5000;

/// The OpenMetrics text format that `prometheus-client` writes (Prometheus reads it).
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub(super) async fn scrape(
    axum::extract::State(state): axum::extract::State<AppState>,
    parts: axum::http::request::Parts,
) -> Response {
    if let Err(refused) = allowed(&state, parts).await {
        return refused;
    }
    let m = &state.inner.metrics;
    let _one_at_a_time = m.scrape.lock().await;
    refresh(&state).await;
    let mut response = m.render().into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}

/// An allowed address, the metrics token, or else the admin token (with its wrong-token
/// throttle).
async fn allowed(state: &AppState, mut parts: axum::http::request::Parts) -> Result<(), Response> {
    let client = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| state.client_ip(c.0.ip(), &parts.headers));
    if client.is_some_and(|ip| {
        state
            .inner
            .metrics_allowed_ips
            .iter()
            .any(|net| net.contains(&ip))
    }) {
        return Ok(());
    }
    let given = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(auth::bearer_token)
        .unwrap_or("");
    if let Some(expected) = &state.inner.metrics_token
        && !given.is_empty()
        && secrets_match(given, expected)
    {
        return Ok(());
    }
    if state.inner.admin_token.is_none() && state.inner.metrics_token.is_some() {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "metrics token required: send Authorization: Bearer <METRICS_TOKEN>",
        ));
    }
    use axum::extract::FromRequestParts;
    auth::Admin::from_request_parts(&mut parts, state)
        .await
        .map(|_| ())
}

/// Sets the gauges that describe the state now.
pub(super) async fn refresh(state: &AppState) {
    let s = &state.inner;
    let m = &s.metrics;
    let now = s.clock.now();
    let secs = |d: chrono::Duration| d.num_milliseconds() as f64 / 1000.0;

    if let Some(keeper) = &s.keeper {
        let status = keeper.status();
        for st in [
            TokenState::Valid,
            TokenState::Expiring,
            TokenState::Unchecked,
            TokenState::Minting,
            TokenState::Refused,
            TokenState::Expired,
            TokenState::None,
        ] {
            m.token_state
                .get_or_create(&vec![("state", st.as_str().to_owned())])
                .set(i64::from(status.state == st));
        }
        // No token: 0 left, so "about to expire" alerts fire rather than go quiet.
        let (expiry, age) = keeper
            .token_times()
            .map_or((0.0, 0.0), |(issued, expires)| {
                (secs(expires - now), issued.map_or(0.0, |i| secs(now - i)))
            });
        m.token_expiry.set(expiry);
        m.token_age.set(age);
    }

    match s.journal.queue_summary(LEG_SCAN).await {
        Ok(q) => {
            m.queue_depth.set(q.pending.len() as i64);
            let oldest: Option<DateTime<Utc>> = q.pending.iter().map(|a| a.received_at).min();
            m.queue_oldest.set(oldest.map_or(0.0, |o| secs(now - o)));
        }
        Err(e) => tracing::warn!(error = %e, "metrics: the queue could not be read"),
    }

    match s.journal.recent_orders(LEG_SCAN).await {
        Ok(rows) => {
            let day_ago = now - chrono::Duration::hours(24);
            for status in LegStatus::ALL {
                let unresolved = matches!(status, LegStatus::Unknown | LegStatus::NeedsAttention);
                let n = rows
                    .iter()
                    .filter(|r| r.status == status && (unresolved || r.received_at >= day_ago))
                    .count();
                m.legs
                    .get_or_create(&vec![("state", status.as_str().to_owned())])
                    .set(n as i64);
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: the journal could not be read"),
    }

    if let Some((as_of, rows)) = s.instruments.loaded() {
        m.scrip_age.set(secs(now - as_of));
        m.scrip_rows.set(rows as i64);
    }

    if let Ok(k) = s.kill_switch.status().await {
        m.kill_switch.set(i64::from(k.on));
    }
}
