//! Prometheus metrics (`GET /metrics`) and the short in-memory history the dashboard charts.
//!
//! Why this shape: the guide asks traders to watch four numbers (token age, health checks,
//! refresh success, order success) and to grep logs for them. These are now counters, gauges
//! and histograms with bounded labels (outcomes, call kinds, states; never symbols or alert
//! ids), so Prometheus or Cloud Monitoring can alert on them.
//!
//! Each application owns its own [`Metrics`] (a `prometheus-client` registry, no global
//! recorder): many apps run in one test process, and each test reads exact deltas of its own.
//! Counters and histograms are moved where the event happens (the webhook handler, the Dhan
//! client, the token keeper, the rate limiter, admission); numbers that describe the state now
//! (token expiry, queue depth, legs by state, the scrip master) are read when scraped, from the
//! same sources `/ready` and `/queue-stats` use, so they cannot drift from them.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::{DateTime, Utc};
use prometheus_client::{
    encoding::text::encode,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

/// Label sets: a few `(name, value)` pairs, each value from a fixed set.
type Labels = Vec<(&'static str, String)>;
type HistogramMaker = fn() -> Histogram;

/// How long the dashboard's latency history reaches back, and its size cap.
const HISTORY: chrono::Duration = chrono::Duration::hours(24);
const HISTORY_CAP: usize = 20_000;

/// Latency buckets from 5 ms to about 20 s: a webhook answer, a broker call, a journal commit.
fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 13))
}

/// The webhook's outcome, as counted by `dhanhook_webhooks_received_total{outcome}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookOutcome {
    /// Journaled and handled (its legs sent, queued, or refused by the broker).
    Placed,
    /// A redelivery of an alert already journaled: nothing new was sent.
    Duplicate,
    /// Not an alert dhanhook can read (not JSON, a field wrong, a key twice, too large).
    Invalid,
    /// Wrong or missing secret, an address outside `ALLOWED_IPS`, or throttled.
    Unauthorized,
    /// A valid alert refused before placing (stale, instruments that do not resolve).
    Refused,
    /// dhanhook could not handle it (the journal failed or was too slow).
    Error,
}

impl WebhookOutcome {
    pub const ALL: [WebhookOutcome; 6] = [
        WebhookOutcome::Placed,
        WebhookOutcome::Duplicate,
        WebhookOutcome::Invalid,
        WebhookOutcome::Unauthorized,
        WebhookOutcome::Refused,
        WebhookOutcome::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WebhookOutcome::Placed => "placed",
            WebhookOutcome::Duplicate => "duplicate",
            WebhookOutcome::Invalid => "invalid",
            WebhookOutcome::Unauthorized => "unauthorized",
            WebhookOutcome::Refused => "refused",
            WebhookOutcome::Error => "error",
        }
    }
}

/// One webhook answer remembered for the dashboard's charts.
#[derive(Debug, Clone, Copy)]
pub struct AnswerSample {
    pub at: DateTime<Utc>,
    pub seconds: f64,
    pub outcome: WebhookOutcome,
}

/// The application's metrics. Cheap to share (`Arc`).
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    webhooks: Family<Labels, Counter>,
    answer: Histogram,
    broker: Family<Labels, Histogram, HistogramMaker>,
    mint_attempts: Counter,
    mint_failures: Family<Labels, Counter>,
    health_checks: Family<Labels, Counter>,
    rate_limit_wait: Histogram,
    journal_commit: Histogram,
    // Read at scrape time (see `crate::http::metrics`).
    pub(crate) token_expiry: Gauge<f64, std::sync::atomic::AtomicU64>,
    pub(crate) token_age: Gauge<f64, std::sync::atomic::AtomicU64>,
    pub(crate) token_state: Family<Labels, Gauge>,
    pub(crate) queue_depth: Gauge,
    pub(crate) queue_oldest: Gauge<f64, std::sync::atomic::AtomicU64>,
    pub(crate) legs: Family<Labels, Gauge>,
    pub(crate) scrip_age: Gauge<f64, std::sync::atomic::AtomicU64>,
    pub(crate) scrip_rows: Gauge,
    pub(crate) kill_switch: Gauge,
    /// Recent webhook answers for the dashboard (bounded by [`HISTORY`] and [`HISTORY_CAP`]).
    answers: Mutex<VecDeque<AnswerSample>>,
    /// Serialises scrapes: the state gauges are set and then encoded as one step.
    pub(crate) scrape: tokio::sync::Mutex<()>,
}

impl Metrics {
    /// A fresh registry with every metric registered (at zero), labelled with the build and
    /// mode. The token's metrics exist in live mode only: paper mode has no token, and a
    /// token gauge at zero would set off "token about to expire" alerts.
    pub fn new(mode: &str) -> Arc<Self> {
        let live = mode == "live";
        let mut registry = Registry::default();
        let webhooks = Family::<Labels, Counter>::default();
        registry.register(
            "dhanhook_webhooks_received",
            "Webhook deliveries by outcome (placed, duplicate, invalid, unauthorized, refused, error)",
            webhooks.clone(),
        );
        for outcome in WebhookOutcome::ALL {
            // Every outcome is exposed from the start, so rate() and alert rules see a zero.
            let _ = webhooks.get_or_create(&vec![("outcome", outcome.as_str().to_owned())]);
        }
        let answer = latency();
        registry.register(
            "dhanhook_webhook_answer_seconds",
            "Time from a webhook's arrival to its answer",
            answer.clone(),
        );
        let broker = Family::<Labels, Histogram, HistogramMaker>::new_with_constructor(latency);
        registry.register(
            "dhanhook_broker_call_seconds",
            "Round trip of each call to Dhan, by call kind and result (ok or error)",
            broker.clone(),
        );
        let mint_attempts = Counter::default();
        if live {
            registry.register(
                "dhanhook_token_mint_attempts",
                "Calls to Dhan's auth host for a new token (PIN + TOTP, or RenewToken)",
                mint_attempts.clone(),
            );
        }
        let mint_failures = Family::<Labels, Counter>::default();
        if live {
            registry.register(
                "dhanhook_token_mint_failures",
                "Failed token mints by reason (auth, rate_limit, transient, unreachable, ...)",
                mint_failures.clone(),
            );
        }
        // Every reason at zero from the start, so increase() sees the first failure.
        for reason in [
            "auth",
            "rate_limit",
            "input",
            "static_ip",
            "order",
            "transient",
            "unreachable",
            "unknown",
        ] {
            let _ = mint_failures.get_or_create(&vec![("reason", reason.to_owned())]);
        }
        let health_checks = Family::<Labels, Counter>::default();
        if live {
            registry.register(
                "dhanhook_token_health_checks",
                "Token checks with GET /v2/profile by result (ok, refused, unreachable, no_token)",
                health_checks.clone(),
            );
        }
        for result in ["ok", "refused", "unreachable", "no_token"] {
            let _ = health_checks.get_or_create(&vec![("result", result.to_owned())]);
        }
        let rate_limit_wait = latency();
        registry.register(
            "dhanhook_rate_limit_wait_seconds",
            "Time an order waited for the order-rate limiter before being sent",
            rate_limit_wait.clone(),
        );
        let journal_commit = latency();
        registry.register(
            "dhanhook_journal_commit_seconds",
            "Time the journal took to record (admit) an alert",
            journal_commit.clone(),
        );
        let token_expiry = Gauge::<f64, _>::default();
        if live {
            registry.register(
                "dhanhook_token_expiry_seconds",
                "Seconds until the Dhan token in use expires (0 while there is none, negative once expired; live mode only)",
                token_expiry.clone(),
            );
        }
        let token_age = Gauge::<f64, _>::default();
        if live {
            registry.register(
                "dhanhook_token_age_seconds",
                "Seconds since Dhan issued the token in use (0 while there is none or its issue time is unknown; live mode only)",
                token_age.clone(),
            );
        }
        let token_state = Family::<Labels, Gauge>::default();
        if live {
            registry.register(
                "dhanhook_token_state",
                "1 for the token's current state (valid, expiring, unchecked, minting, refused, expired, none), 0 for the others",
                token_state.clone(),
            );
        }
        let queue_depth = Gauge::default();
        registry.register(
            "dhanhook_queue_depth",
            "Alerts waiting in the durable queue for their market to open",
            queue_depth.clone(),
        );
        let queue_oldest = Gauge::<f64, _>::default();
        registry.register(
            "dhanhook_queue_oldest_age_seconds",
            "Age of the oldest alert waiting in the queue (0 when empty)",
            queue_oldest.clone(),
        );
        let legs = Family::<Labels, Gauge>::default();
        registry.register(
            "dhanhook_order_legs",
            "Order legs by current state: legs of alerts received in the last 24 hours, except UNKNOWN and NEEDS_ATTENTION which count every such leg",
            legs.clone(),
        );
        let scrip_age = Gauge::<f64, _>::default();
        registry.register(
            "dhanhook_scrip_master_age_seconds",
            "Age of the scrip master (instrument list) in use",
            scrip_age.clone(),
        );
        let scrip_rows = Gauge::default();
        registry.register(
            "dhanhook_scrip_master_rows",
            "Instruments in the scrip master in use",
            scrip_rows.clone(),
        );
        let kill_switch = Gauge::default();
        registry.register(
            "dhanhook_kill_switch_on",
            "1 while dhanhook's kill switch refuses new orders",
            kill_switch.clone(),
        );
        let info = Family::<Labels, Gauge>::default();
        info.get_or_create(&vec![
            ("version", env!("CARGO_PKG_VERSION").to_owned()),
            ("mode", mode.to_owned()),
        ])
        .set(1);
        registry.register(
            "dhanhook_build_info",
            "Always 1; the labels say the version and the mode",
            info,
        );
        Arc::new(Self {
            registry,
            webhooks,
            answer,
            broker,
            mint_attempts,
            mint_failures,
            health_checks,
            rate_limit_wait,
            journal_commit,
            token_expiry,
            token_age,
            token_state,
            queue_depth,
            queue_oldest,
            legs,
            scrip_age,
            scrip_rows,
            kill_switch,
            answers: Mutex::new(VecDeque::new()),
            scrape: tokio::sync::Mutex::new(()),
        })
    }

    /// A webhook was answered.
    pub fn webhook(&self, outcome: WebhookOutcome, took: Duration, at: DateTime<Utc>) {
        self.webhooks
            .get_or_create(&vec![("outcome", outcome.as_str().to_owned())])
            .inc();
        self.answer.observe(took.as_secs_f64());
        let mut answers = self.answers.lock().unwrap_or_else(|e| e.into_inner());
        answers.push_back(AnswerSample {
            at,
            seconds: took.as_secs_f64(),
            outcome,
        });
        while answers.len() > HISTORY_CAP || answers.front().is_some_and(|a| at - a.at > HISTORY) {
            answers.pop_front();
        }
    }

    /// Webhook answers of the last 24 hours, oldest first (for the dashboard).
    pub fn recent_answers(&self) -> Vec<AnswerSample> {
        self.answers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .copied()
            .collect()
    }

    /// A call to Dhan ended. `call` is the client's fixed name for it (never a URL).
    pub fn broker_call(&self, call: &'static str, ok: bool, took: Duration) {
        self.broker
            .get_or_create(&vec![
                ("call", call.to_owned()),
                ("result", if ok { "ok" } else { "error" }.to_owned()),
            ])
            .observe(took.as_secs_f64());
    }

    /// A call to Dhan's auth host for a new token; `failure` is the reason when it failed.
    pub fn mint(&self, failure: Option<&'static str>) {
        self.mint_attempts.inc();
        if let Some(reason) = failure {
            self.mint_failures
                .get_or_create(&vec![("reason", reason.to_owned())])
                .inc();
        }
    }

    /// A token check with `GET /v2/profile`: `ok`, `refused`, `unreachable` or `no_token`.
    pub fn health_check(&self, result: &'static str) {
        self.health_checks
            .get_or_create(&vec![("result", result.to_owned())])
            .inc();
    }

    pub fn rate_limit_wait(&self, took: Duration) {
        self.rate_limit_wait.observe(took.as_secs_f64());
    }

    pub fn journal_commit(&self, took: Duration) {
        self.journal_commit.observe(took.as_secs_f64());
    }

    /// The exposition text (OpenMetrics, which Prometheus reads).
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; an encoding bug would show as a short body.
        if let Err(e) = encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "encoding the metrics failed");
        }
        out
    }
}
