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
use crate::{
    clock::ist,
    domain::Mode,
    metrics::WebhookOutcome,
    pipeline::KillSwitchChange,
    secrets::secrets_match,
    store::{LegStatus, OrderRow},
};

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
        .route("/ui", get(home))
        .route("/ui/", get(home))
        .route("/ui/login", get(login_page).post(login))
        .route("/ui/logout", post(logout))
        .route("/ui/alerts/{alert_id}", get(alert_page))
        .route("/ui/alerts/{alert_id}/replay", post(replay))
        .route("/ui/kill-switch", post(kill_switch))
        .route("/ui/refresh-token", post(refresh_token))
        .route("/ui/process-queue", post(process_queue))
        .route("/ui/app.js", get(app_js))
        .route("/ui/style.css", get(style_css))
}

// ---- sessions ------------------------------------------------------------------------------

/// The signed-in dashboard sessions, in memory.
#[derive(Debug, Default)]
pub(super) struct Sessions {
    map: Mutex<HashMap<String, Session>>,
}

#[derive(Debug, Clone)]
struct Session {
    csrf: String,
    expires: Instant,
}

fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    // The OS's randomness failing is not something to serve a page without.
    if getrandom::fill(&mut bytes).is_err() {
        tracing::error!("the system's random source failed; no session was made");
        return String::new();
    }
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

impl Sessions {
    fn create(&self) -> Option<(String, Session)> {
        let id = random_hex();
        let csrf = random_hex();
        if id.is_empty() || csrf.is_empty() {
            return None;
        }
        let session = Session {
            csrf,
            expires: Instant::now() + SESSION_TTL,
        };
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        map.retain(|_, s| s.expires > now);
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(id.clone(), session.clone());
        Some((id, session))
    }

    fn get(&self, id: &str) -> Option<Session> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        // The map's lookup compares ids by hash first; ids are 256 random bits, so timing
        // reveals nothing usable.
        map.get(id).filter(|s| s.expires > Instant::now()).cloned()
    }

    fn remove(&self, id: &str) {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A signed-in dashboard user. Without a valid session, pages redirect to the login form.
struct UiSession {
    id: String,
    csrf: String,
}

impl FromRequestParts<AppState> for UiSession {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let id = cookie_value(&parts.headers, COOKIE).unwrap_or("");
        match state.inner.sessions.get(id) {
            Some(s) if !id.is_empty() => Ok(UiSession {
                id: id.to_owned(),
                csrf: s.csrf,
            }),
            _ => Err(Redirect::to("/ui/login").into_response()),
        }
    }
}

/// Whether the request came over HTTPS: a trusted proxy said so (`X-Forwarded-Proto`).
fn over_https(state: &AppState, peer: SocketAddr, headers: &HeaderMap) -> bool {
    let from_proxy = state
        .inner
        .trusted_proxies
        .iter()
        .any(|net| net.contains(&peer.ip()));
    from_proxy
        && headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
}

/// The checks every dashboard POST passes before it acts: the session's CSRF token in the
/// form, and no cross-site `Origin`.
fn csrf_ok(session: &UiSession, headers: &HeaderMap, form: &HashMap<String, String>) -> bool {
    if let (Some(origin), Some(host)) = (
        headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
        headers.get(header::HOST).and_then(|v| v.to_str().ok()),
    ) {
        let origin_host = origin.split_once("://").map_or(origin, |(_, h)| h);
        if origin_host != host {
            return false;
        }
    }
    let given = form.get("csrf").map_or("", String::as_str);
    !given.is_empty() && secrets_match(given, &secrecy::SecretString::from(session.csrf.clone()))
}

fn forbidden_csrf() -> Response {
    page(
        StatusCode::FORBIDDEN,
        "Refused",
        "<p class=\"bad\">This form was not sent from the dashboard (its CSRF token is missing or \
         wrong), so nothing was done. Reload the dashboard and try again.</p>\
         <p><a href=\"/ui\">Back to the dashboard</a></p>",
    )
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

// ---- login ---------------------------------------------------------------------------------

async fn login_page(State(state): State<AppState>) -> Response {
    login_form(&state, StatusCode::OK, None)
}

fn login_form(state: &AppState, status: StatusCode, problem: Option<&str>) -> Response {
    let body = if state.inner.admin_token.is_none() {
        "<main class=\"narrow\"><h1>dhanhook</h1><p class=\"bad\">The dashboard is off: set \
         ADMIN_TOKEN to a long random value (e.g. <code>openssl rand -hex 32</code>) and restart.</p></main>"
            .to_owned()
    } else {
        format!(
            "<main class=\"narrow\"><h1>dhanhook</h1><p>Sign in with the admin token \
             (<code>ADMIN_TOKEN</code>).</p>{}<form method=\"post\" action=\"/ui/login\">\
             <label>Admin token <input type=\"password\" name=\"token\" id=\"token\" autocomplete=\"current-password\" required></label> \
             <button type=\"submit\" id=\"sign-in\">Sign in</button></form></main>",
            problem.map_or(String::new(), |p| format!(
                "<p class=\"bad\">{}</p>",
                esc(p)
            ))
        )
    };
    page(status, "Sign in", &body)
}

async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let Some(expected) = &state.inner.admin_token else {
        return login_form(&state, StatusCode::FORBIDDEN, None);
    };
    let given = form.get("token").map_or("", |t| t.trim());
    if given.is_empty() || !secrets_match(given, expected) {
        let ip = state.client_ip(peer.ip(), &headers);
        return match state.inner.guard.wrong(ip, "admin token (dashboard)") {
            Verdict::Throttled(wait) => login_form(
                &state,
                StatusCode::TOO_MANY_REQUESTS,
                Some(&format!(
                    "Too many wrong tokens from this address; try again in {} s.",
                    wait.as_secs().max(1)
                )),
            ),
            Verdict::Unauthorized => login_form(
                &state,
                StatusCode::UNAUTHORIZED,
                Some("That is not the admin token."),
            ),
        };
    }
    let Some((id, _)) = state.inner.sessions.create() else {
        return page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Error",
            "<p class=\"bad\">No session could be made (the system's random source failed).</p>",
        );
    };
    let secure = if over_https(&state, peer, &headers) {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{COOKIE}={id}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        SESSION_TTL.as_secs()
    );
    let mut response = Redirect::to("/ui").into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(SET_COOKIE, v);
    }
    response
}

async fn logout(
    session: UiSession,
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if !csrf_ok(&session, &headers, &form) {
        return forbidden_csrf();
    }
    state.inner.sessions.remove(&session.id);
    let mut response = Redirect::to("/ui/login").into_response();
    response.headers_mut().insert(
        SET_COOKIE,
        HeaderValue::from_static(
            "dhanhook_session=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0",
        ),
    );
    response
}

// ---- acts ----------------------------------------------------------------------------------

/// The outcome of an act: back to the dashboard when it worked, else a page saying why.
fn act_result(result: Result<(), String>) -> Response {
    match result {
        Ok(()) => Redirect::to("/ui").into_response(),
        Err(problem) => page(
            StatusCode::OK,
            "Not done",
            &format!(
                "<main class=\"narrow\"><p class=\"bad\">{}</p><p><a href=\"/ui\">Back to the dashboard</a></p></main>",
                esc(&problem)
            ),
        ),
    }
}

async fn kill_switch(
    session: UiSession,
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if !csrf_ok(&session, &headers, &form) {
        return forbidden_csrf();
    }
    let on = form.get("on").map(String::as_str) == Some("true");
    let by = state.client_ip(peer.ip(), &headers).to_string();
    let change = KillSwitchChange {
        on,
        flatten: false,
        broker: false,
        note: Some("from the dashboard".to_owned()),
    };
    act_result(
        state
            .inner
            .kill_switch
            .apply(&change, &by)
            .await
            .map(|_| ())
            .map_err(|e| {
                tracing::error!(error = %e, "the kill switch change was not journaled");
                "The journal did not record the change; nothing was done.".to_owned()
            }),
    )
}

async fn refresh_token(
    session: UiSession,
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if !csrf_ok(&session, &headers, &form) {
        return forbidden_csrf();
    }
    let Some(keeper) = &state.inner.keeper else {
        return act_result(Err("Paper mode has no Dhan token.".to_owned()));
    };
    act_result(
        keeper
            .refresh_now()
            .await
            .map(|_| ())
            .map_err(|e| format!("No new token: {e}")),
    )
}

async fn process_queue(
    session: UiSession,
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if !csrf_ok(&session, &headers, &form) {
        return forbidden_csrf();
    }
    act_result(
        state
            .inner
            .queue
            .process_due()
            .await
            .map(|_| ())
            .map_err(|e| {
                tracing::error!(error = %e, "processing the queue failed");
                "The queue could not be processed; see the service log.".to_owned()
            }),
    )
}

/// Replays a stored alert as a new alert (a fresh `id`, so it is not its own duplicate),
/// **in paper mode only**: a replay in live mode would place a real order again. It runs in
/// a tracked task like a webhook's placement, so a closed tab does not cut it short.
async fn replay(
    session: UiSession,
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(alert_id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if !csrf_ok(&session, &headers, &form) {
        return forbidden_csrf();
    }
    if state.inner.mode != Mode::Paper {
        return act_result(Err(
            "Replay is for paper mode only: in live mode it would place a real order again."
                .to_owned(),
        ));
    }
    let record = match state.inner.journal.alert(&alert_id).await {
        Ok(Some(r)) => r,
        Ok(None) => return act_result(Err("No alert with this id.".to_owned())),
        Err(e) => {
            tracing::error!(error = %e, "the dashboard could not read an alert to replay");
            return act_result(Err("The journal could not be read.".to_owned()));
        }
    };
    if record.mode != Mode::Paper {
        return act_result(Err(
            "This alert was journaled in live mode; only paper alerts are replayed.".to_owned(),
        ));
    }
    let Ok(serde_json::Value::Object(mut map)) =
        serde_json::from_str::<serde_json::Value>(&record.payload)
    else {
        return act_result(Err("The stored alert is not a JSON object.".to_owned()));
    };
    map.insert(
        "id".to_owned(),
        serde_json::Value::String(format!("replay-{}", uuid::Uuid::now_v7())),
    );
    let signal = match crate::alert::parse_signal(&map) {
        Ok(s) => s,
        Err(problems) => {
            let list: Vec<String> = problems
                .iter()
                .map(|p| format!("{}: {}", p.field, p.problem))
                .collect();
            return act_result(Err(format!(
                "The stored alert no longer passes the checks: {}",
                list.join("; ")
            )));
        }
    };
    let intake = crate::pipeline::Intake {
        client_ip: Some(state.client_ip(peer.ip(), &headers)),
        payload: serde_json::Value::Object(map),
    };
    let pipeline = state.inner.pipeline.clone();
    let handled = state
        .inner
        .tasks
        .spawn(async move { pipeline.handle(signal, intake).await })
        .await;
    match handled {
        Ok(Ok(h)) => {
            tracing::info!(from = %record.id, alert_id = %h.record.id, "alert replayed from the dashboard (paper)");
            Redirect::to(&format!("/ui/alerts/{}", urlencode(&h.record.id))).into_response()
        }
        Ok(Err(e)) => act_result(Err(format!("The replay was refused: {e}"))),
        Err(e) => {
            tracing::error!(error = %e, "the replay task failed");
            act_result(Err("The replay failed; see the service log.".to_owned()))
        }
    }
}

// ---- the dashboard -------------------------------------------------------------------------

async fn home(session: UiSession, State(state): State<AppState>) -> Response {
    let s = &state.inner;
    let now = s.clock.now();
    let mut body = String::new();

    // Mode and readiness, from /ready itself.
    let ready = super::ops::ready(State(state.clone())).await;
    let ready_ok = ready.status().is_success();
    let ready_json: serde_json::Value = axum::body::to_bytes(ready.into_body(), 1 << 20)
        .await
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let _ = write!(
        body,
        "<header><h1>dhanhook</h1><span class=\"pill {mode_class}\" id=\"mode\">{mode} mode</span>\
         <span class=\"pill {ready_class}\" id=\"readiness\">{ready_text}</span>\
         <span class=\"muted\">{time} IST</span>{logout}</header><main>",
        mode_class = if s.mode == Mode::Live { "bad" } else { "meh" },
        mode = s.mode.as_str(),
        ready_class = if ready_ok { "good" } else { "bad" },
        ready_text = if ready_ok { "ready" } else { "not ready" },
        time = ist_text(now),
        logout = act_form("/ui/logout", &session.csrf, &[], "Sign out", "plain"),
    );
    if !ready_ok && let Some(checks) = ready_json["checks"].as_object() {
        let failing: Vec<String> = checks
            .iter()
            .filter(|(_, v)| v.get("ok") == Some(&serde_json::Value::Bool(false)))
            .map(|(k, v)| {
                let detail = v
                    .get("problem")
                    .or_else(|| v.get("error"))
                    .and_then(|p| p.as_str())
                    .unwrap_or("");
                format!("<li><b>{}</b> {}</li>", esc(k), esc(detail))
            })
            .collect();
        let _ = write!(
            body,
            "<section class=\"warn\"><h2>Not ready</h2><ul>{}</ul></section>",
            failing.join("")
        );
    }

    body.push_str("<div class=\"grid\">");
    token_card(&state, now, &mut body);
    market_card(&state, &mut body).await;
    controls_card(&state, &session, &mut body).await;
    body.push_str("</div>");

    let rows = match s.journal.recent_orders(RECENT_LEGS).await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::error!(error = %e, "the dashboard could not read the journal");
            let _ = write!(
                body,
                "<section class=\"warn\"><p>The journal could not be read; see the service log.</p></section>"
            );
            Vec::new()
        }
    };
    attention_card(&rows, &mut body);
    charts(&state, &rows, now, &mut body);
    queue_card(&state, &session, &mut body).await;
    recent_table(&rows, &mut body);
    body.push_str("</main>");
    page(StatusCode::OK, "Dashboard", &body)
}

fn token_card(state: &AppState, now: DateTime<Utc>, body: &mut String) {
    let s = &state.inner;
    body.push_str("<section class=\"card\" id=\"token\"><h2>Dhan token</h2>");
    let Some(keeper) = &s.keeper else {
        body.push_str("<p class=\"muted\">Paper mode: no Dhan token is used.</p></section>");
        return;
    };
    let t = keeper.status();
    let class = if t.usable() { "good" } else { "bad" };
    let _ = write!(
        body,
        "<p><span class=\"pill {class}\" id=\"token-state\">{}</span></p>",
        esc(t.state.as_str())
    );
    if let Some((_, expires)) = keeper.token_times() {
        let left = (expires - now).num_seconds();
        let _ = write!(
            body,
            "<p>Expires {} IST, in <b class=\"countdown\" data-seconds=\"{left}\">{}</b></p>",
            esc(&ist_text(expires)),
            esc(&duration_text(left))
        );
    }
    let _ = write!(
        body,
        "<p class=\"muted\">{} · consecutive failures: {}</p>",
        if t.renewable {
            "renews by itself"
        } else {
            "cannot renew by itself"
        },
        t.consecutive_failures
    );
    if let Some(problem) = &t.problem {
        let _ = write!(body, "<p class=\"bad\">{}</p>", esc(problem));
    }
    body.push_str("</section>");
}

fn duration_text(secs: i64) -> String {
    if secs <= 0 {
        return "expired".to_owned();
    }
    format!(
        "{}h {:02}m {:02}s",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

async fn market_card(state: &AppState, body: &mut String) {
    let v = super::market::status(State(state.clone())).await.0;
    let nse = &v["venues"]["NSE_EQ"];
    let open = v["market"]["status"] == "open";
    let _ = write!(
        body,
        "<section class=\"card\" id=\"market\"><h2>Market (NSE)</h2>\
         <p><span class=\"pill {}\">{}</span></p><p>Next open: {}</p>\
         <p>AMO: {} <span class=\"muted\">({})</span></p><p class=\"muted\">When closed: {}</p></section>",
        if open { "good" } else { "meh" },
        if open { "open" } else { "closed" },
        esc(nse["next_open"].as_str().unwrap_or("unknown")),
        if v["amo"]["accepted_now"] == true {
            "accepted now"
        } else {
            "not accepted now"
        },
        esc(v["amo"]["window_ist"].as_str().unwrap_or("")),
        esc(v["when_closed"].as_str().unwrap_or("")),
    );
}

async fn controls_card(state: &AppState, session: &UiSession, body: &mut String) {
    let s = &state.inner;
    body.push_str("<section class=\"card\" id=\"controls\"><h2>Controls</h2>");
    match s.kill_switch.status().await {
        Ok(k) => {
            let _ = write!(
                body,
                "<p>Kill switch: <span class=\"pill {}\" id=\"kill-switch-state\">{}</span></p>",
                if k.on { "bad" } else { "good" },
                if k.on {
                    "ON: new orders are refused"
                } else {
                    "off"
                }
            );
            if let Some(since) = k.since {
                let _ = write!(
                    body,
                    "<p class=\"muted\">since {} IST by {}</p>",
                    esc(&ist_text(since)),
                    esc(k.by.as_deref().unwrap_or("?"))
                );
            }
            body.push_str(&if k.on {
                act_form(
                    "/ui/kill-switch",
                    &session.csrf,
                    &[("on", "false")],
                    "Turn the kill switch off",
                    "kill-off",
                )
            } else {
                act_form(
                    "/ui/kill-switch",
                    &session.csrf,
                    &[("on", "true")],
                    "Turn the kill switch on",
                    "kill-on danger",
                )
            });
        }
        Err(e) => {
            tracing::error!(error = %e, "reading the kill switch failed");
            body.push_str("<p class=\"bad\">The kill switch could not be read.</p>");
        }
    }
    if s.keeper.is_some() {
        body.push_str(&act_form(
            "/ui/refresh-token",
            &session.csrf,
            &[],
            "Get a new token now",
            "refresh-token",
        ));
    }
    body.push_str("</section>");
}

fn attention_card(rows: &[OrderRow], body: &mut String) {
    let open: Vec<&OrderRow> = rows
        .iter()
        .filter(|r| matches!(r.status, LegStatus::NeedsAttention | LegStatus::Unknown))
        .collect();
    if open.is_empty() {
        return;
    }
    let _ = write!(
        body,
        "<section class=\"warn\" id=\"attention\"><h2>Needs your attention</h2><p>dhanhook could not \
         settle these legs by itself: check them in <a href=\"{DHAN_ORDER_BOOK}\" rel=\"noreferrer\" \
         target=\"_blank\">Dhan's order book</a> (Orders) by their correlation id.</p><table><tr>\
         <th>Alert</th><th>Leg</th><th>Symbol</th><th>Status</th><th>Correlation id</th><th>Message</th></tr>"
    );
    for r in open {
        let _ = write!(
            body,
            "<tr><td><a href=\"/ui/alerts/{id}\">{id_text}</a></td><td>{}</td><td>{}</td><td class=\"bad\">{}</td><td><code>{}</code></td><td>{}</td></tr>",
            r.leg,
            esc(&r.symbol),
            r.status.as_str(),
            esc(&r.correlation_id),
            esc(r.message.as_deref().unwrap_or("")),
            id = esc(&urlencode(&r.alert_id)),
            id_text = esc(&r.alert_id),
        );
    }
    body.push_str("</table></section>");
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

async fn queue_card(state: &AppState, session: &UiSession, body: &mut String) {
    body.push_str("<section id=\"queue\"><h2>Queue</h2>");
    match state.inner.journal.queue_summary(50).await {
        Ok(q) if q.pending.is_empty() => {
            body.push_str("<p class=\"muted\">No alert is waiting for the market to open.</p>");
        }
        Ok(q) => {
            let _ = write!(
                body,
                "<p>{} alert(s) waiting{}.</p><table><tr><th>Alert</th><th>Received (IST)</th><th>Until (IST)</th><th>Strategy</th><th>Status</th></tr>",
                q.pending.len(),
                q.next_due
                    .map(|d| format!("; the next is due {} IST", ist_text(d)))
                    .unwrap_or_default()
            );
            for a in &q.pending {
                let _ = write!(
                    body,
                    "<tr><td><a href=\"/ui/alerts/{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&urlencode(&a.alert_id)),
                    esc(&a.alert_id),
                    esc(&ist_text(a.received_at)),
                    esc(&a.queued_until.map(ist_text).unwrap_or_default()),
                    esc(a.strategy.as_deref().unwrap_or("")),
                    esc(a.status.as_str()),
                );
            }
            body.push_str("</table>");
        }
        Err(e) => {
            tracing::error!(error = %e, "the dashboard could not read the queue");
            body.push_str("<p class=\"bad\">The queue could not be read.</p>");
        }
    }
    body.push_str(&act_form(
        "/ui/process-queue",
        &session.csrf,
        &[],
        "Run the queued alerts that are due",
        "process-queue",
    ));
    body.push_str("</section>");
}

fn recent_table(rows: &[OrderRow], body: &mut String) {
    body.push_str(
        "<section id=\"recent\"><h2>Recent alerts and their legs</h2>\
         <div class=\"filters\"><label>Status <select id=\"f-status\"><option value=\"\">any</option>",
    );
    for st in LegStatus::ALL {
        let _ = write!(body, "<option value=\"{0}\">{0}</option>", st.as_str());
    }
    body.push_str(
        "</select></label> <label>Symbol <input id=\"f-symbol\" size=\"12\"></label> \
         <label>Strategy <input id=\"f-strategy\" size=\"12\"></label> \
         <label>Date <input id=\"f-date\" type=\"date\"></label></div>",
    );
    if rows.is_empty() {
        body.push_str("<p class=\"muted\">No alert yet. Send one to <code>POST /webhook</code>.</p></section>");
        return;
    }
    body.push_str(
        "<table id=\"legs\"><thead><tr><th>Received (IST)</th><th>Alert</th><th>Strategy</th><th>Leg</th>\
         <th>Symbol</th><th>Side</th><th>Qty</th><th>Status</th><th>Message</th></tr></thead><tbody>",
    );
    for r in rows {
        let received = ist_text(r.received_at);
        let strategy = r.strategy.as_deref().unwrap_or("");
        let _ = write!(
            body,
            "<tr data-status=\"{status}\" data-symbol=\"{symbol}\" data-strategy=\"{strategy}\" data-date=\"{date}\">\
             <td>{received}</td><td><a href=\"/ui/alerts/{link}\">{id}</a></td><td>{strategy}</td><td>{leg}</td>\
             <td>{symbol}</td><td>{side}</td><td>{qty}</td><td class=\"{class}\">{status}</td><td>{message}</td></tr>",
            status = r.status.as_str(),
            symbol = esc(&r.symbol),
            strategy = esc(strategy),
            date = esc(received.get(..10).unwrap_or("")),
            received = esc(&received),
            link = esc(&urlencode(&r.alert_id)),
            id = esc(&r.alert_id),
            leg = r.leg,
            side = esc(r.side.as_str()),
            qty = r.quantity,
            class = status_class(r.status),
            message = esc(r.message.as_deref().unwrap_or("")),
        );
    }
    body.push_str("</tbody></table></section>");
}

// ---- charts (inline SVG, server-rendered) ---------------------------------------------------

/// A bar chart of `values` (one bar each, labelled under it), `unit` after the top value.
fn bar_chart(id: &str, title: &str, values: &[(String, f64)], unit: &str) -> String {
    let (w, h, pad) = (480.0_f64, 140.0_f64, 18.0_f64);
    let max = values.iter().map(|(_, v)| *v).fold(0.0_f64, f64::max);
    let n = values.len().max(1) as f64;
    let bar_w = (w - 2.0 * pad) / n;
    let mut svg = format!(
        "<figure class=\"chart\" id=\"{id}\"><figcaption>{}</figcaption>\
         <svg viewBox=\"0 0 {w} {}\" role=\"img\" aria-label=\"{}\">",
        esc(title),
        h + 30.0,
        esc(title)
    );
    for (i, (label, v)) in values.iter().enumerate() {
        let bh = if max > 0.0 { v / max * (h - pad) } else { 0.0 };
        let x = pad + i as f64 * bar_w;
        let _ = write!(
            svg,
            "<rect class=\"bar\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\"><title>{}: {}</title></rect>",
            h - bh,
            (bar_w - 2.0).max(1.0),
            esc(label),
            trim_number(*v)
        );
        // Label every bar when few, else every third.
        if values.len() <= 13 || i % 3 == 0 {
            let _ = write!(
                svg,
                "<text x=\"{:.1}\" y=\"{:.1}\" class=\"axis\">{}</text>",
                x + bar_w / 2.0,
                h + 14.0,
                esc(label)
            );
        }
    }
    let _ = write!(
        svg,
        "<text x=\"{pad}\" y=\"12\" class=\"axis top\">max {}{}</text></svg></figure>",
        trim_number(max),
        esc(unit)
    );
    svg
}

fn trim_number(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

fn charts(state: &AppState, rows: &[OrderRow], now: DateTime<Utc>, body: &mut String) {
    let day_ago = now - chrono::Duration::hours(24);
    // The last 24 hours by IST hour, oldest first.
    let hour_start = |t: DateTime<Utc>| {
        t.with_minute(0)
            .and_then(|t| t.with_second(0))
            .and_then(|t| t.with_nanosecond(0))
            .unwrap_or(t)
    };
    let first = hour_start(now) - chrono::Duration::hours(23);
    let slot = |t: DateTime<Utc>| -> Option<usize> {
        let i = (t - first).num_hours();
        (0..24).contains(&i).then_some(i as usize)
    };
    let hour_label = |i: usize| {
        ist(first + chrono::Duration::hours(i as i64))
            .format("%H")
            .to_string()
    };

    let mut alerts = [0.0_f64; 24];
    let mut seen = std::collections::HashSet::new();
    for r in rows.iter().filter(|r| r.received_at >= day_ago) {
        if seen.insert(&r.alert_id)
            && let Some(i) = slot(r.received_at)
        {
            alerts[i] += 1.0;
        }
    }
    let mut worst = [0.0_f64; 24];
    let answers = state.inner.metrics.recent_answers();
    for a in answers
        .iter()
        .filter(|a| a.outcome != WebhookOutcome::Unauthorized)
    {
        if let Some(i) = slot(a.at) {
            worst[i] = worst[i].max(a.seconds);
        }
    }
    let mut by_state: Vec<(String, f64)> = LegStatus::ALL
        .iter()
        .map(|st| {
            let n = rows
                .iter()
                .filter(|r| r.received_at >= day_ago && r.status == *st)
                .count();
            (st.as_str().to_owned(), n as f64)
        })
        .filter(|(_, n)| *n > 0.0)
        .collect();
    if by_state.is_empty() {
        by_state.push(("none yet".to_owned(), 0.0));
    }
    body.push_str("<section id=\"charts\"><h2>The last 24 hours</h2><div class=\"charts\">");
    body.push_str(&bar_chart(
        "chart-alerts",
        "Alerts per hour (IST)",
        &alerts
            .iter()
            .enumerate()
            .map(|(i, v)| (hour_label(i), *v))
            .collect::<Vec<_>>(),
        " alerts",
    ));
    body.push_str(&bar_chart(
        "chart-latency",
        "Slowest webhook answer per hour (since start)",
        &worst
            .iter()
            .enumerate()
            .map(|(i, v)| (hour_label(i), *v))
            .collect::<Vec<_>>(),
        " s",
    ));
    body.push_str(&bar_chart(
        "chart-outcomes",
        "Order legs by state",
        &by_state,
        " legs",
    ));
    body.push_str("</div></section>");
}

// ---- one alert -----------------------------------------------------------------------------

async fn alert_page(
    session: UiSession,
    State(state): State<AppState>,
    Path(alert_id): Path<String>,
) -> Response {
    let journal = &state.inner.journal;
    let read = async {
        let Some(record) = journal.alert(&alert_id).await? else {
            return Ok(None);
        };
        let events = journal.leg_events(&alert_id).await?;
        Ok::<_, crate::store::JournalError>(Some((record, events)))
    };
    let (record, events) = match read.await {
        Ok(Some(found)) => found,
        Ok(None) => {
            return page(
                StatusCode::NOT_FOUND,
                "No such alert",
                "<main class=\"narrow\"><p>No alert with this id.</p><p><a href=\"/ui\">Back</a></p></main>",
            );
        }
        Err(e) => {
            tracing::error!(error = %e, "the dashboard could not read an alert");
            return page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Error",
                "<main class=\"narrow\"><p class=\"bad\">The journal could not be read.</p></main>",
            );
        }
    };
    let mut body = format!(
        "<header><h1><a href=\"/ui\">dhanhook</a> · alert</h1></header><main>\
         <section class=\"card\" id=\"alert\"><h2><code>{}</code></h2>\
         <p>Received {} IST · {} · {} mode · status <b id=\"alert-status\">{}</b> · duplicates {}</p></section>",
        esc(&record.id),
        esc(&ist_text(record.received_at)),
        esc(&record.alert_type),
        record.mode.as_str(),
        esc(super::ops::shown_status(&record).as_str()),
        record.duplicates
    );
    if state.inner.mode == Mode::Paper && record.mode == Mode::Paper {
        body.push_str(&act_form(
            &format!("/ui/alerts/{}/replay", urlencode(&record.id)),
            &session.csrf,
            &[],
            "Replay this alert as a new one (paper)",
            "replay",
        ));
    }
    for leg in &record.legs {
        let _ = write!(
            body,
            "<section class=\"leg\"><h3>Leg {} · {} {} {} · <span class=\"{}\">{}</span></h3>\
             <p class=\"muted\">correlation id <code>{}</code>{}</p>{}\
             <table><tr><th>At (IST)</th><th>Source</th><th>Status</th><th>Filled</th><th>Message</th></tr>",
            leg.leg,
            esc(leg.side.as_str()),
            leg.quantity,
            esc(&leg.symbol),
            status_class(leg.status),
            leg.status.as_str(),
            esc(&leg.correlation_id),
            leg.order_id
                .as_deref()
                .map(|o| format!(" · Dhan order id <code>{}</code>", esc(o)))
                .unwrap_or_default(),
            leg.message
                .as_deref()
                .map(|m| format!("<p class=\"message\">{}</p>", esc(m)))
                .unwrap_or_default(),
        );
        for e in events.iter().filter(|e| e.leg == leg.leg) {
            let source = serde_json::to_value(e.source).unwrap_or_default();
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&ist_text(e.at)),
                esc(source.as_str().unwrap_or("")),
                e.status.as_str(),
                e.filled_qty.map(|q| q.to_string()).unwrap_or_default(),
                esc(e.message.as_deref().unwrap_or("")),
            );
        }
        body.push_str("</table></section>");
    }
    let pretty = serde_json::from_str::<serde_json::Value>(&record.payload)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_else(|_| record.payload.clone());
    let _ = write!(
        body,
        "<section id=\"payload\"><h2>The alert as received (secret removed)</h2><pre>{}</pre></section></main>",
        esc(&pretty)
    );
    page(StatusCode::OK, "Alert", &body)
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
    fn a_session_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; dhanhook_session=abc; b=2"),
        );
        assert_eq!(cookie_value(&h, COOKIE), Some("abc"));
        assert_eq!(cookie_value(&h, "dhanhook"), None);
    }

    #[test]
    fn alert_ids_are_percent_encoded_in_links() {
        assert_eq!(urlencode("a/b?c d"), "a%2Fb%3Fc%20d");
    }

    #[test]
    fn sessions_expire_and_can_be_removed() {
        let sessions = Sessions::default();
        let (id, s) = sessions.create().unwrap();
        assert_eq!(id.len(), 64);
        assert_ne!(id, s.csrf);
        assert!(sessions.get(&id).is_some());
        sessions.remove(&id);
        assert!(sessions.get(&id).is_none());
        assert!(sessions.get("").is_none());
    }
}
