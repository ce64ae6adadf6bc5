//! The HTTP surface: `POST /webhook` (`webhook.rs`), the operator endpoints (`ops.rs`,
//! `market.rs`, `token.rs`, `controls.rs`: the kill switch), the admin check (`auth.rs`) and the per-address throttle of wrong
//! secrets (`guard.rs`). A webhook answer's body is `answer.rs`; every error body is one
//! [`ApiError`] (`error.rs`); `server.rs` serves the connections.
//!
//! Layers, outermost first: security headers on every response (`nosniff`, a CSP that loads
//! nothing, no framing), a request id (`x-request-id`, generated when absent and echoed
//! back), `Authorization` marked sensitive, a trace span per request carrying the request id and
//! the mode, and a request timeout. Work that must not be cut short (placing an order) runs in
//! tasks tracked by [`AppState::tasks`], outside the request future, so neither a timeout nor a
//! client hanging up can interrupt it.

mod answer;
mod auth;
mod controls;
mod dashboard;
mod error;
mod guard;
mod market;
mod metrics;
mod ops;
mod postback;
pub(crate) mod server;
mod token;
mod webhook;

use std::{sync::Arc, time::Duration};

use axum::{
    Router,
    extract::DefaultBodyLimit,
    http::{
        HeaderName, HeaderValue, Request, StatusCode,
        header::{AUTHORIZATION, CONTENT_SECURITY_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS},
    },
    response::{IntoResponse, Response},
    routing::{get, post},
};
use secrecy::SecretString;
use tokio_util::task::TaskTracker;
use tower::ServiceBuilder;
use tower_http::{
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    sensitive_headers::SetSensitiveRequestHeadersLayer,
    set_header::SetResponseHeaderLayer,
    timeout::TimeoutLayer,
    trace::{DefaultOnFailure, TraceLayer},
};

use crate::{
    clock::Clock,
    config::RoutingSettings,
    domain::Mode,
    instruments::source::InstrumentSource,
    market::Calendar,
    metrics::Metrics,
    pipeline::{KillSwitchControl, Pipeline},
    store::Journal,
    token::TokenKeeper,
    workers::{order_tracker::PostbackHints, queue::QueueRunner},
};

pub use answer::{LegView, Outcome};
pub(crate) use error::ApiError;

/// Largest accepted webhook body. Real alerts are well under 2 KiB; the cap stops memory abuse.
pub const MAX_WEBHOOK_BODY: usize = 64 * 1024;

/// How long any request may take. Order placement itself is not cut by this (see module doc).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Shared state of all handlers. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Where `/webhook` sends a parsed alert.
    pipeline: Pipeline,
    /// For `POST /process-queue`.
    queue: QueueRunner,
    calendar: Arc<Calendar>,
    routing: RoutingSettings,
    journal: Arc<dyn Journal>,
    clock: Arc<dyn Clock>,
    mode: Mode,
    webhook_secret: SecretString,
    admin_token: Option<SecretString>,
    /// Non-secret configuration shown on `/`, computed once at start-up.
    public_config: serde_json::Value,
    /// Tracks alert-processing tasks so shutdown can wait for them.
    tasks: TaskTracker,
    /// Live mode's token keeper; `None` in paper mode.
    keeper: Option<TokenKeeper>,
    /// The scrip master in use, for readiness.
    instruments: InstrumentSource,
    /// Wrong secrets and admin tokens per client IP.
    guard: guard::AuthGuard,
    /// `ALLOWED_IPS` and `TRUSTED_PROXIES` (see [`crate::source_ip`]).
    allowed_ips: Option<Vec<ipnet::IpNet>>,
    trusted_proxies: Vec<ipnet::IpNet>,
    /// The journal's last write check for `/ready`, and when: a public endpoint must not turn
    /// every call into a write.
    ready_journal: std::sync::Mutex<Option<(std::time::Instant, Result<(), String>)>>,
    /// `DHAN_POSTBACK_SECRET` and where postbacks leave their hints (live mode, when set).
    postback: Option<(SecretString, PostbackHints)>,
    /// `GET`/`POST /kill-switch`.
    kill_switch: KillSwitchControl,
    /// `GET /metrics` and the dashboard's charts.
    metrics: Arc<Metrics>,
    /// `METRICS_TOKEN`: reads `/metrics` only.
    metrics_token: Option<SecretString>,
    /// `METRICS_ALLOWED_IPS`: read `/metrics` without a token.
    metrics_allowed_ips: Vec<ipnet::IpNet>,
    /// The dashboard's signed-in sessions (in memory).
    sessions: dashboard::Sessions,
}

/// What the HTTP layer is built from (by `startup`).
#[derive(Debug)]
pub struct AppParts {
    pub pipeline: Pipeline,
    pub queue: QueueRunner,
    pub calendar: Arc<Calendar>,
    pub routing: RoutingSettings,
    pub journal: Arc<dyn Journal>,
    pub clock: Arc<dyn Clock>,
    pub mode: Mode,
    pub webhook_secret: SecretString,
    pub admin_token: Option<SecretString>,
    pub public_config: serde_json::Value,
    pub tasks: TaskTracker,
    pub keeper: Option<TokenKeeper>,
    pub instruments: InstrumentSource,
    pub allowed_ips: Option<Vec<ipnet::IpNet>>,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub postback: Option<(SecretString, PostbackHints)>,
    pub kill_switch: KillSwitchControl,
    pub metrics: Arc<Metrics>,
    pub metrics_token: Option<SecretString>,
    pub metrics_allowed_ips: Vec<ipnet::IpNet>,
}

impl AppState {
    pub fn new(p: AppParts) -> Self {
        Self {
            inner: Arc::new(Inner {
                pipeline: p.pipeline,
                queue: p.queue,
                calendar: p.calendar,
                routing: p.routing,
                journal: p.journal,
                clock: p.clock,
                mode: p.mode,
                webhook_secret: p.webhook_secret,
                admin_token: p.admin_token,
                public_config: p.public_config,
                tasks: p.tasks,
                keeper: p.keeper,
                instruments: p.instruments,
                guard: guard::AuthGuard::default(),
                allowed_ips: p.allowed_ips,
                trusted_proxies: p.trusted_proxies,
                ready_journal: std::sync::Mutex::new(None),
                postback: p.postback,
                kill_switch: p.kill_switch,
                metrics: p.metrics,
                metrics_token: p.metrics_token,
                metrics_allowed_ips: p.metrics_allowed_ips,
                sessions: dashboard::Sessions::default(),
            }),
        }
    }
}

impl AppState {
    /// The client's address under `TRUSTED_PROXIES`.
    pub(crate) fn client_ip(
        &self,
        peer: std::net::IpAddr,
        headers: &axum::http::HeaderMap,
    ) -> std::net::IpAddr {
        crate::source_ip::client_ip(peer, headers, &self.inner.trusted_proxies)
    }
}

/// Builds the router with all routes and layers.
pub fn router(state: AppState) -> Router {
    let mode = state.inner.mode;
    let request_id = HeaderName::from_static("x-request-id");
    let layers = ServiceBuilder::new()
        // On every response (errors and timeouts too): no content sniffing, no framing, and
        // nothing loaded by a page (the /auth/callback page has an inline style attribute).
        .layer(SetResponseHeaderLayer::if_not_present(
            X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
            ),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        // A client's own x-request-id is kept only when short and plain: it is logged and echoed,
        // and a 390 KB one per request filled the disk with log.
        .layer(axum::middleware::map_request(drop_unusable_request_id))
        .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
        .layer(SetSensitiveRequestHeadersLayer::new([AUTHORIZATION]))
        .layer(TraceLayer::new_for_http().make_span_with(move |req: &Request<_>| {
            let id = req
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-");
            // The path only: query strings are not logged.
            tracing::info_span!("request", method = %req.method(), path = req.uri().path(), request_id = id, mode = mode.as_str())
        })
        // A 5xx is logged at WARN, not tower-http's default ERROR: /ready answers 503 by design
        // while the token or scrip master is missing (start-up, every probe), and handlers log
        // their real failures themselves at ERROR with the reason.
        .on_failure(DefaultOnFailure::new().level(tracing::Level::WARN)))
        .layer(PropagateRequestIdLayer::new(request_id))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, REQUEST_TIMEOUT));

    Router::new()
        .route("/", get(ops::root))
        .route("/health", get(ops::health))
        .route("/ready", get(ops::ready))
        .route("/logs", get(ops::logs))
        .route("/orders/{alert_id}", get(ops::order))
        .route("/market-status", get(market::status))
        .route("/queue-stats", get(market::queue_stats))
        .route("/process-queue", post(market::process_queue))
        .route("/refresh-token", post(token::refresh))
        .route("/auth/consent", post(token::consent))
        .route("/auth/status", get(token::status))
        .route("/auth/callback", get(token::callback))
        .route("/dhan/postback/{secret}", post(postback::receive))
        .route("/kill-switch", get(controls::status).post(controls::change))
        .route("/metrics", get(metrics::scrape))
        .merge(dashboard::routes())
        .route(
            "/webhook",
            post(webhook::receive).layer(DefaultBodyLimit::max(MAX_WEBHOOK_BODY)),
        )
        .fallback(not_found)
        .layer(layers)
        .with_state(state)
}

/// Longest client request id kept (else one is generated).
const MAX_REQUEST_ID: usize = 64;

/// Removes an `x-request-id` that is long or not plain (`[A-Za-z0-9._-]`), so one is generated.
async fn drop_unusable_request_id<B>(mut req: Request<B>) -> Request<B> {
    let plain = |v: &axum::http::HeaderValue| {
        let b = v.as_bytes();
        !b.is_empty()
            && b.len() <= MAX_REQUEST_ID
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || b"._-".contains(c))
    };
    let ids = req.headers().get_all("x-request-id");
    if ids.iter().count() > 1 || ids.iter().any(|v| !plain(v)) {
        req.headers_mut().remove("x-request-id");
    }
    req
}

pub(crate) async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such endpoint; GET / lists them")
}

/// The answer to a wrong secret or admin token from an address that sent too many.
pub(crate) fn too_many_wrong(wait: Duration) -> Response {
    ApiError::throttled(wait).into_response()
}

/// A JSON error body: `{"status":"error","error":"..."}` (see [`ApiError`]).
pub(crate) fn error(status: StatusCode, message: &'static str) -> Response {
    ApiError::new(status, message).into_response()
}
