//! [`SimHandle`]: how a test or the `dhanhook sim` command sees into and steers a running
//! simulator (clock, market state, books, tokens, faults, request log).

use std::net::SocketAddr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::fault::Fault;
use crate::orders::SimOrder;
use crate::state::{RecordedRequest, Shared};
use crate::token::TokenKind;
use crate::totp;

/// A running simulator. Cheap to clone; all clones see the same simulator.
///
/// The server keeps running (on the tokio runtime it was spawned on) whether or not a
/// handle is kept; it stops when that runtime shuts down.
#[derive(Clone)]
pub struct SimHandle {
    shared: Arc<Shared>,
    addr: SocketAddr,
}

// Only the address: the state behind the handle holds tokens and one-time ids.
impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHandle")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl SimHandle {
    pub(crate) fn new(shared: Arc<Shared>, addr: SocketAddr) -> Self {
        Self { shared, addr }
    }

    /// The address both hosts are served on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The REST base URL, standing in for `https://api.dhan.co/v2`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v2", self.addr)
    }

    /// The auth host URL, standing in for `https://auth.dhan.co`.
    pub fn auth_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The sim clock's current time.
    pub fn now(&self) -> DateTime<Utc> {
        self.shared.lock().now()
    }

    /// Sets the sim clock; it keeps running at real speed from there.
    pub fn set_now(&self, t: DateTime<Utc>) {
        self.shared.lock().clock.set(t);
    }

    /// Moves the sim clock by `d` (may be negative).
    pub fn advance(&self, d: chrono::Duration) {
        self.shared.lock().clock.advance(d);
    }

    /// Opens or closes the market (closed: regular orders refused, AMO accepted).
    pub fn set_market_open(&self, open: bool) {
        self.shared.lock().market_open = open;
    }

    /// Whether order writes come from a whitelisted static IP.
    pub fn set_whitelisted_ip(&self, ok: bool) {
        self.shared.lock().whitelisted_ip = ok;
    }

    /// The order book, oldest first.
    pub fn orders(&self) -> Vec<SimOrder> {
        self.shared
            .lock()
            .book
            .orders
            .iter()
            .map(|o| o.sim.clone())
            .collect()
    }

    /// Position rows as `GET /v2/positions` returns them.
    pub fn positions(&self) -> Vec<Value> {
        self.shared
            .lock()
            .book
            .positions_json(&self.shared.config.client_id)
    }

    /// Holding rows as `GET /v2/holdings` returns them.
    pub fn holdings(&self) -> Vec<Value> {
        self.shared.lock().book.holdings.clone()
    }

    /// Replaces the holdings (e.g. to have shares to sell). Rows should carry at least
    /// `securityId`, `totalQty` and `availableQty`.
    pub fn set_holdings(&self, rows: Vec<Value>) {
        self.shared.lock().book.holdings = rows;
    }

    /// Every request received so far (the latest 100 000), oldest first, secrets masked.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.iter().cloned().collect()
    }

    /// Tokens issued by generateAccessToken, consumeApp-consent and RenewToken.
    pub fn mint_count(&self) -> usize {
        self.shared.lock().mint_count
    }

    /// The one token the REST host currently accepts, if any (not expired).
    pub fn active_token(&self) -> Option<String> {
        let state = self.shared.lock();
        let now = state.now();
        state
            .active
            .as_ref()
            .filter(|t| now < t.expires_at)
            .map(|t| t.token.clone())
    }

    /// Simulates "Generate Access Token" on web.dhan.co: a SELF token that replaces the
    /// active one. Not counted in [`SimHandle::mint_count`].
    pub fn issue_web_token(&self) -> String {
        let mut state = self.shared.lock();
        state
            .issue_token(&self.shared.config, TokenKind::SelfWeb)
            .token
    }

    /// Issues an API token (`tokenConsumerType` APP, as a PIN+TOTP mint gives) outside any
    /// client, as a user who minted one elsewhere and pasted it; it becomes the only active
    /// token.
    pub fn issue_app_token(&self) -> String {
        let mut state = self.shared.lock();
        state.issue_token(&self.shared.config, TokenKind::App).token
    }

    /// Invalidates the active token at once (e.g. Dhan's daily forced logout).
    pub fn expire_active_token(&self) {
        self.shared.lock().active = None;
    }

    /// Makes the next `times` requests that `fault` applies to misbehave.
    pub fn inject(&self, fault: Fault, times: usize) {
        self.shared.lock().faults.inject(fault, times);
    }

    /// Removes every injected fault not yet used.
    pub fn clear_faults(&self) {
        self.shared.lock().faults.clear();
    }

    /// Unlocks the account and forgets earlier failed mints.
    pub fn reset_lockout(&self) {
        let mut state = self.shared.lock();
        state.locked = false;
        state.consecutive_failures = 0;
    }

    /// The TOTP code an authenticator app would show now for the configured secret, by
    /// the sim clock (empty if the configured secret is not valid Base32).
    pub fn current_totp(&self) -> String {
        let now = self.now();
        totp::generate(&self.shared.config.totp_secret, now.timestamp()).unwrap_or_default()
    }
}
