//! dhanhook: TradingView webhook alerts in, Dhan orders out.
//!
//! The service is one binary (`src/main.rs` is only the CLI entry point); everything lives in this
//! library so the integration tests can build and drive the real application.
//! `docs/ARCHITECTURE.md` draws the same map with the states and where each lives.
//!
//! # The path of one alert
//! 1. `http/server.rs` accepts the connection; [`http`]'s `/webhook` handler
//!    (`http/webhook.rs`) checks the source address ([`source_ip`]) and the secret
//!    ([`secrets`]), then parses the body into a [`alert::Signal`] ([`alert`]).
//! 2. [`pipeline`] takes it: [`pipeline::Admitter`] resolves each leg in the scrip master
//!    ([`instruments`]), routes it by the market's hours ([`market`]) and journals it with its
//!    dedupe key ([`store`]); a repeat stops here. A position-aware alert or a checked SELL
//!    is first worked out against the broker's positions (`pipeline/positions.rs`).
//! 3. [`pipeline::LegPlacer`] has each leg judged by the trader controls
//!    ([`pipeline::controls`]: kill switch, risk rails, multi-leg policy; a refused leg is
//!    BLOCKED and never sent) as it marks it SUBMITTING, calls the [`broker`] (paper, or live:
//!    [`broker::live`] → [`dhan`] with a token from [`token`], paced by [`ratelimit`]), journals
//!    the answer and writes the CSV row ([`csvlog`]).
//! 4. The handler answers with the legs as journaled (`http/answer.rs`).
//! 5. The order tracker ([`workers::order_tracker`]) follows each leg the broker holds to its
//!    final state by polling, journaling each transition with its source.
//!
//! # Modules
//! Bottom layer (import nothing of the crate): [`domain`] (order enums, mode, closed-market
//! policy) and [`clock`] (the one source of "now").
//! - Alert in: [`alert`] (both alert formats → [`alert::Signal`]), [`source_ip`], [`secrets`].
//! - Deciding: [`instruments`] (scrip master), [`market`] (calendar and routing).
//! - Recording: [`store`] (the journal: SQLite or PostgreSQL), [`csvlog`], [`vault`] (the
//!   token sealed at rest).
//! - Acting: [`pipeline`] (admission, positions and placement), [`broker`], [`dhan`] (Dhan API v2 client),
//!   [`token`] (keeping the Dhan token alive), [`totp`], [`ratelimit`].
//! - Running on their own: [`workers`] (queue, reconciler, order tracker, token refresh,
//!   scrip-master refresh, square-off).
//! - Around it: [`config`] (settings from the environment), [`telemetry`] (logging),
//!   [`metrics`] (the Prometheus metrics behind `GET /metrics` and the dashboard's charts),
//!   [`http`] (routes, answers, errors, connection serving), [`startup`] (the one place that
//!   wires settings into components, builds and runs the application), [`cli`] (the commands),
//!   [`checkup`] (`dhanhook check`), [`crash`] (crash points for fault tests).

pub mod alert;
pub mod broker;
pub mod checkup;
pub mod cli;
pub mod clock;
pub mod config;
pub mod crash;
pub mod csvlog;
pub mod dhan;
pub mod domain;
pub mod http;
pub mod instruments;
pub mod market;
pub mod metrics;
pub mod notify;
pub mod pipeline;
pub mod ratelimit;
pub mod secrets;
pub mod source_ip;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod token;
pub mod totp;
pub mod vault;
pub mod workers;
