//! [`SimHandle`]: how a test or the `dhanhook sim` command sees into and steers a running
//! simulator (clock, market state, books, tokens, faults, request log).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::control;
use crate::fault::Fault;
use crate::orders::SimOrder;
use crate::state::{PostbackAttempt, RecordedRequest, Shared};
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

    /// Opens or closes the market (closed: regular orders refused, AMO accepted). Opening
    /// releases the AMO orders placed while it was closed into the fill model: a MARKET one
    /// trades after `fill_delay`, a LIMIT one when the price crosses it. The sim clock does
    /// not open or close the market; only this does.
    pub fn set_market_open(&self, open: bool) {
        control::set_market_open(&self.shared, open);
    }

    /// The order-update WebSocket URL, standing in for `wss://api-order-update.dhan.co`.
    pub fn order_update_url(&self) -> String {
        format!("ws://{}{}", self.addr, crate::server::ORDER_UPDATE_PATH)
    }

    /// Sets the price of a security. MARKET orders trade at it; working LIMIT orders on it
    /// that it crosses (buy: price ≤ limit, sell: price ≥ limit) trade now, at their limit.
    /// Until a price is set, MARKET orders trade at the price they named or 100.0, and
    /// LIMIT orders rest.
    pub fn set_price(&self, security_id: &str, price: f64) {
        control::set_price(&self.shared, security_id, price);
    }

    /// The next order placed is accepted, then REJECTED by RMS with this
    /// `omsErrorDescription` when it leaves TRANSIT. Calls queue up, one per order.
    pub fn reject_next_order(&self, reason: &str) {
        self.shared.lock().reject_next.push_back(reason.to_owned());
    }

    /// The exchange cancels a working order (TRANSIT, PENDING or PART_TRADED); false if
    /// there is no such working order.
    pub fn cancel_by_exchange(&self, order_id: &str) -> bool {
        let mut state = self.shared.lock();
        let now = state.now();
        state.book.cancel_by_exchange(order_id, now)
    }

    /// End of day: every working order becomes EXPIRED. Returns how many did.
    pub fn expire_open_orders(&self) -> usize {
        let mut state = self.shared.lock();
        let now = state.now();
        state.book.expire_open_orders(now)
    }

    /// Trades `qty` more of a working order (PART_TRADED until all has traded, then
    /// TRADED), at its limit price, or the market price for a MARKET order.
    pub fn part_fill(&self, order_id: &str, qty: u64) -> Result<(), String> {
        let mut state = self.shared.lock();
        let now = state.now();
        state.book.part_fill(order_id, qty, now)
    }

    /// Sets or clears the postback URL (dhan-api.md §8); loopback URLs are called.
    pub fn set_postback_url(&self, url: Option<&str>) {
        self.shared.lock().postback_url = url.map(str::to_owned);
    }

    /// Every postback attempted so far (the latest 10 000), oldest first.
    pub fn postbacks(&self) -> Vec<PostbackAttempt> {
        self.shared.lock().postbacks.iter().cloned().collect()
    }

    /// Closes every order-update connection abruptly (a mid-day drop); clients must
    /// reconnect and log in again.
    pub fn drop_order_update_connections(&self) {
        self.shared
            .feed_drop
            .send_modify(|generation| *generation += 1);
    }

    /// While true, new order-update connections are refused with 503 (connected ones stay).
    pub fn refuse_order_update_connections(&self, refuse: bool) {
        self.shared.lock().feed_refused = refuse;
    }

    /// Sends the feed's fields in the documented PascalCase instead of live camelCase.
    pub fn set_order_update_pascal_case(&self, pascal: bool) {
        self.shared.lock().feed_pascal_case = pascal;
    }

    /// Order-update connections that are logged in now.
    pub fn order_update_clients(&self) -> usize {
        self.shared.feed_clients.load(Ordering::SeqCst)
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

    /// The messages sent to the Telegram stand-in (`/sim/telegram/…`), oldest first.
    pub fn telegram_messages(&self) -> Vec<serde_json::Value> {
        self.shared
            .telegram
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
