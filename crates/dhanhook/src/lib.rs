//! dhanhook: TradingView webhook alerts in, Dhan orders out.
//!
//! The service is one binary (`src/main.rs` is only the CLI entry point); everything lives in this
//! library so the integration tests can build and drive the real application.
//!
//! # Layout
//! - [`config`]: typed settings read from the environment (plus an optional `.env`).
//! - [`telemetry`]: the tracing subscriber, pretty or JSON.
//! - [`clock`]: the one source of "now", so tests can move time.
//! - [`alert`]: the two accepted alert formats, parsed into one validated [`alert::Signal`].
//! - [`store`]: the durable journal ([`store::Journal`]) and its SQLite implementation.
//! - [`broker`]: where orders go ([`broker::Broker`]); for now the paper broker.
//! - [`engine`]: the pipeline of one alert: dedupe, journal, place, record.
//! - [`csvlog`]: the upstream-compatible CSV order log.
//! - [`secrets`]: constant-time secret comparison and the generated webhook secret.
//! - [`http`]: the axum routes (`/webhook` and the operator endpoints).
//! - [`startup`]: builds and runs the application (used by `serve` and by the tests).
//! - [`cli`]: the command-line interface; [`checkup`]: `dhanhook check`.

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
