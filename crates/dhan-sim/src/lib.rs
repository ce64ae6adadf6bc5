//! dhan-sim: a stateful simulator of the two Dhan API v2 hosts dhanhook talks to — the
//! auth host (`https://auth.dhan.co`) and the REST host (`https://api.dhan.co/v2`) — served
//! over real HTTP on one local listener.
//!
//! It follows the facts in `shared/docs/dhan-api.md` (§1–§5, §10): one active token at a
//! time, the 2-minute mint cooldown, TOTP checked on the sim clock, DH-9xx error bodies,
//! orders that are accepted in TRANSIT and only later become PENDING, TRADED or REJECTED,
//! and the odd live behaviours a client must survive (`200 []` for an unknown order id,
//! 404 for an order still in TRANSIT, 500 for empty holdings). Faults can be injected to
//! test retries and idempotency.
//!
//! Beyond the REST host it simulates how order outcomes reach a client (§8, §9): the
//! order-update WebSocket (`ws://…/order-update`, see `feed.rs`) and the postback sender
//! (see `postback.rs`), fed by a fill model driven by per-security prices a test sets
//! (`fills.rs`, `control.rs`; also reachable over HTTP under `/sim/`, which is not Dhan's).
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let sim = dhan_sim::Sim::spawn(dhan_sim::SimConfig::default()).await?;
//! let _rest = sim.base_url(); // http://127.0.0.1:PORT/v2
//! let _auth = sim.auth_url(); // http://127.0.0.1:PORT
//! # Ok(()) }
//! ```

mod auth;
mod book;
mod clock;
mod config;
mod control;
mod error;
mod fault;
mod feed;
mod fills;
mod handle;
mod orders;
mod postback;
mod rest;
mod server;
mod split;
mod state;
mod telegram;
mod token;
pub mod totp;
mod views;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use tokio::net::TcpListener;

pub use config::SimConfig;
pub use fault::Fault;
pub use handle::SimHandle;
pub use orders::SimOrder;
pub use state::{PostbackAttempt, RecordedRequest};

use state::Shared;

/// Starts simulators.
#[derive(Debug)]
pub struct Sim;

impl Sim {
    /// Binds `127.0.0.1` on a free port and serves both hosts on a background task of the
    /// current tokio runtime.
    pub async fn spawn(config: SimConfig) -> std::io::Result<SimHandle> {
        Self::spawn_at(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), config).await
    }

    /// Like [`Sim::spawn`], on a chosen address.
    pub async fn spawn_at(addr: SocketAddr, config: SimConfig) -> std::io::Result<SimHandle> {
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let shared = Arc::new(Shared::new(config));
        tokio::spawn(postback::run(shared.clone(), shared.events.subscribe()));
        tokio::spawn(server::accept_loop(listener, shared.clone()));
        Ok(SimHandle::new(shared, local))
    }
}

/// Serves a simulator on `addr` until ctrl-c (for the `dhanhook sim` command).
pub async fn serve(addr: SocketAddr, config: SimConfig) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tracing::info!(
        auth_url = %format!("http://{local}"),
        rest_url = %format!("http://{local}/v2"),
        order_update_url = %format!("ws://{local}/order-update"),
        client_id = %config.client_id,
        "dhan-sim listening"
    );
    let shared = Arc::new(Shared::new(config));
    tokio::spawn(postback::run(shared.clone(), shared.events.subscribe()));
    tokio::select! {
        () = server::accept_loop(listener, shared) => Ok(()),
        signal = tokio::signal::ctrl_c() => {
            tracing::info!("dhan-sim stopping");
            signal
        }
    }
}
