//! The operator dashboard at `/ui`: one server-rendered page (plus one page per alert) so a
//! trader can look at what happened instead of reading JSON, and act (kill switch, token,
//! queue, replaying an alert in paper mode) without curl. No Node toolchain: the HTML is built here, the script and the style
//! sheet are embedded with `include_str!` and served from `/ui/app.js` and `/ui/style.css`.
//!
//! Safety, because alert fields are attacker-shaped text (`<script>`, `<img onerror>`,
//! spreadsheet formulas):
//! - every value that comes from an alert or the journal goes through [`esc`];
//! - the pages' CSP allows scripts and styles from this origin only (no inline script, no
//!   inline style), so even a missed escape could not run script;
//! - the admin token is typed once into the login form; the session is a random id in an
//!   HttpOnly, SameSite=Strict cookie limited to `/ui` (Secure when the request came over
//!   HTTPS through a trusted proxy), kept in memory (a restart signs everyone out);
//! - every state-changing form carries the session's CSRF token, compared in constant time,
//!   and a POST whose `Origin` is another site is refused.

use std::{
    collections::HashMap,
    fmt::Write as _,
    net::SocketAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

use axum::{
    Form, Router,
    extract::{ConnectInfo, FromRequestParts, Path, State},
    http::{
        HeaderMap, HeaderValue, StatusCode,
        header::{self, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, SET_COOKIE},
        request::Parts,
    },
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use chrono::{DateTime, Timelike, Utc};

use super::{AppState, guard::Verdict};

mod acts;
mod alert;
mod charts;
mod home;
mod session;

use crate::{
    clock::ist,
    domain::Mode,
    metrics::WebhookOutcome,
    pipeline::KillSwitchChange,
    secrets::secrets_match,
    store::{LegStatus, OrderRow},
};
pub(super) use session::Sessions;
use session::UiSession;

const COOKIE: &str = "dhanhook_session";
/// How long a dashboard session lasts without signing in again.
const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Most sessions kept at once (the oldest is dropped beyond it).
const MAX_SESSIONS: usize = 64;
/// Legs shown in the recent table and used for the charts.
const RECENT_LEGS: u32 = 500;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

const APP_JS: &str = include_str!("ui/app.js");
const STYLE_CSS: &str = include_str!("ui/style.css");

/// Dhan's web terminal, where the order book is (Orders); dhanhook cannot deep-link a leg.
const DHAN_ORDER_BOOK: &str = "https://web.dhan.co/";

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/ui", get(home::home))
        .route("/ui/", get(home::home))
        .route("/ui/login", get(session::login_page).post(session::login))
        .route("/ui/logout", post(session::logout))
        .route("/ui/alerts/{alert_id}", get(alert::alert_page))
        .route("/ui/alerts/{alert_id}/replay", post(acts::replay))
        .route("/ui/kill-switch", post(acts::kill_switch))
        .route("/ui/refresh-token", post(acts::refresh_token))
        .route("/ui/process-queue", post(acts::process_queue))
        .route("/ui/app.js", get(app_js))
        .route("/ui/style.css", get(style_css))
}

// ---- rendering helpers ---------------------------------------------------------------------

/// HTML-escapes text for element content and quoted attribute values.
pub(super) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn ist_text(t: DateTime<Utc>) -> String {
    ist(t).format("%Y-%m-%d %H:%M:%S").to_string()
}

/// A whole page with the dashboard's headers: strict CSP, no caching, no referrer to other sites.
fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · dhanhook</title><link rel=\"stylesheet\" href=\"/ui/style.css\">\
         <script src=\"/ui/app.js\" defer></script></head><body>{body}</body></html>",
        esc(title)
    );
    let mut response = (status, html).into_response();
    let h = response.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Not `no-referrer`: with it the browser sends `Origin: null` on the dashboard's own
    // POSTs, and the same-site check below would refuse them.
    h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    response
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    let h = response.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

async fn app_js() -> Response {
    asset(APP_JS, "text/javascript; charset=utf-8")
}

async fn style_css() -> Response {
    asset(STYLE_CSS, "text/css; charset=utf-8")
}

/// A small form that POSTs to `action` with the CSRF token (and extra hidden fields).
fn act_form(action: &str, csrf: &str, fields: &[(&str, &str)], label: &str, class: &str) -> String {
    let mut hidden = format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        esc(csrf)
    );
    for (k, v) in fields {
        let _ = write!(
            hidden,
            "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
            esc(k),
            esc(v)
        );
    }
    format!(
        "<form method=\"post\" action=\"{}\" class=\"act\">{hidden}<button type=\"submit\" class=\"{}\">{}</button></form>",
        esc(action),
        esc(class),
        esc(label)
    )
}

fn status_class(status: LegStatus) -> &'static str {
    match status {
        LegStatus::Filled | LegStatus::Accepted | LegStatus::PartTraded | LegStatus::Pending => {
            "good"
        }
        LegStatus::Rejected
        | LegStatus::Blocked
        | LegStatus::Unknown
        | LegStatus::NeedsAttention => "bad",
        _ => "meh",
    }
}

/// Percent-encodes a path segment (alert ids are ours, but may carry an alert's own `id`).
fn urlencode(text: &str) -> String {
    text.bytes().fold(String::new(), |mut out, b| {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_leaves_no_markup_or_attribute_breakout() {
        assert_eq!(
            esc("<img src=x onerror=\"alert(1)\">'&"),
            "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&#39;&amp;"
        );
    }

    #[test]
    fn alert_ids_are_percent_encoded_in_links() {
        assert_eq!(urlencode("a/b?c d"), "a%2Fb%3Fc%20d");
    }
}
