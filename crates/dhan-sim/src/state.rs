//! The simulator's shared, mutable state: clock, tokens, consent flow, books, faults,
//! rate-limit window and request log, all behind one mutex.
//!
//! One lock keeps every request atomic with respect to the others (a mint and an order
//! never see half of each other), and the load is far too small for contention to matter.
//! The lock is never held across an `.await`.
//!
//! The lock's guard also publishes: when it is released, the order snapshots the book
//! collected ([`crate::book::Book::changes`]) go out on a broadcast channel to the
//! order-update feed and the postback sender. Publishing on release means no code path
//! that changes an order can forget to, and the events keep the order of the changes.

use std::collections::{HashMap, VecDeque};
use std::ops::{Deref, DerefMut};
use std::sync::atomic::AtomicUsize;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};

use crate::book::Book;
use crate::clock::{SimClock, expiry_time};
use crate::config::SimConfig;
use crate::error::ApiError;
use crate::fault::FaultQueue;
use crate::token::{ActiveToken, TokenKind, mint_jwt};

/// How many requests the log keeps; older ones are dropped so long runs stay bounded.
pub(crate) const REQUEST_LOG_CAP: usize = 100_000;

/// How many unsent order events a slow feed client or postback sender may fall behind by.
const EVENT_BUFFER: usize = 4096;

/// One postback the simulator tried to deliver.
#[derive(Clone, Debug, Serialize)]
pub struct PostbackAttempt {
    /// The URL posted to.
    pub url: String,
    /// The order's id.
    pub order_id: String,
    /// The order's status in the payload, e.g. "TRADED".
    pub order_status: String,
    /// The receiver's HTTP status, if it answered.
    pub status: Option<u16>,
    /// Why delivery failed, if it did.
    pub error: Option<String>,
}

/// One request as the simulator saw it, with secrets masked.
#[derive(Clone, Debug, Serialize)]
pub struct RecordedRequest {
    /// HTTP method, e.g. "POST".
    pub method: String,
    /// Path without the query, e.g. "/v2/orders".
    pub path: String,
    /// The raw query string with the values of `pin` and `totp` replaced by `***`.
    pub query: String,
    /// The status answered; 0 when the connection was dropped without a response.
    pub status: u16,
    /// When the request arrived (sim clock).
    pub at: DateTime<Utc>,
}

/// The state of a consent started with `generate-consent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConsentState {
    /// Generated, login page not yet completed.
    Generated,
    /// The login page has redirected with a tokenId.
    LoggedIn,
}

/// Everything that changes while the simulator runs.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) clock: SimClock,
    pub(crate) market_open: bool,
    pub(crate) whitelisted_ip: bool,
    /// The account's static IPs as `POST /v2/ip/setIP` left them (PRIMARY, SECONDARY). While
    /// none is set, `GET /v2/ip/getIP` shows the connecting address as PRIMARY when
    /// `whitelisted_ip` is on, and a documentation address (not this machine) when it is off.
    pub(crate) static_ips: [Option<String>; 2],
    pub(crate) active: Option<ActiveToken>,
    /// Last successful `generateAccessToken` (the only mint with a cooldown).
    pub(crate) last_direct_mint: Option<DateTime<Utc>>,
    pub(crate) consecutive_failures: u32,
    pub(crate) locked: bool,
    pub(crate) mint_count: usize,
    pub(crate) consents: HashMap<String, ConsentState>,
    pub(crate) consents_per_day: HashMap<NaiveDate, u32>,
    /// tokenId → already consumed?
    pub(crate) token_ids: HashMap<String, bool>,
    pub(crate) book: Book,
    /// Real-time instants of recent order writes, for the per-second limit.
    pub(crate) order_writes: VecDeque<Instant>,
    pub(crate) faults: FaultQueue,
    pub(crate) requests: VecDeque<RecordedRequest>,
    /// Rejection reasons for the next orders placed, one each (`reject_next_order`).
    pub(crate) reject_next: VecDeque<String>,
    pub(crate) postback_url: Option<String>,
    pub(crate) postbacks: VecDeque<PostbackAttempt>,
    /// New order-update feed connections are refused (an outage of the feed alone).
    pub(crate) feed_refused: bool,
    pub(crate) feed_pascal_case: bool,
}

/// The configuration plus the locked state; one per simulator.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: SimConfig,
    state: Mutex<State>,
    /// Order-book rows of every status change, in order.
    pub(crate) events: broadcast::Sender<Value>,
    /// Bumped to make every order-update connection drop.
    pub(crate) feed_drop: watch::Sender<u64>,
    /// Logged-in order-update connections.
    pub(crate) feed_clients: AtomicUsize,
    /// Messages sent to the Telegram stand-in (`telegram.rs`).
    pub(crate) telegram: std::sync::Mutex<Vec<Value>>,
}

impl Shared {
    pub(crate) fn new(config: SimConfig) -> Self {
        let state = State {
            clock: SimClock::new(config.start_time),
            market_open: config.market_open,
            whitelisted_ip: config.whitelisted_ip,
            static_ips: [None, None],
            active: None,
            last_direct_mint: None,
            consecutive_failures: 0,
            locked: false,
            mint_count: 0,
            consents: HashMap::new(),
            consents_per_day: HashMap::new(),
            token_ids: HashMap::new(),
            book: Book::default(),
            order_writes: VecDeque::new(),
            faults: FaultQueue::default(),
            requests: VecDeque::new(),
            reject_next: VecDeque::new(),
            postback_url: config.postback_url.clone(),
            postbacks: VecDeque::new(),
            feed_refused: false,
            feed_pascal_case: config.order_update_pascal_case,
        };
        Self {
            config,
            state: Mutex::new(state),
            events: broadcast::channel(EVENT_BUFFER).0,
            feed_drop: watch::channel(0).0,
            feed_clients: AtomicUsize::new(0),
            telegram: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Locks the state. A panic elsewhere while holding the lock must not take the whole
    /// simulator down with it, so a poisoned lock is simply taken over.
    pub(crate) fn lock(&self) -> StateGuard<'_> {
        StateGuard {
            guard: self.state.lock().unwrap_or_else(PoisonError::into_inner),
            shared: self,
        }
    }
}

/// The locked state; publishes the order changes made under it when dropped.
#[derive(Debug)]
pub(crate) struct StateGuard<'a> {
    guard: MutexGuard<'a, State>,
    shared: &'a Shared,
}

impl Deref for StateGuard<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        &self.guard
    }
}

impl DerefMut for StateGuard<'_> {
    fn deref_mut(&mut self) -> &mut State {
        &mut self.guard
    }
}

impl Drop for StateGuard<'_> {
    fn drop(&mut self) {
        let changes = std::mem::take(&mut self.guard.book.changes);
        for order in &changes {
            let row = self
                .guard
                .book
                .order_json(order, &self.shared.config.client_id);
            // No subscriber (no feed client, no postback task yet) is not an error.
            let _ = self.shared.events.send(row);
        }
    }
}

impl State {
    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Issues a token of `kind`, making it the only valid one (a new token kills the old).
    pub(crate) fn issue_token(&mut self, config: &SimConfig, kind: TokenKind) -> ActiveToken {
        let now = self.now();
        let ttl = chrono::Duration::from_std(config.token_ttl)
            .unwrap_or_else(|_| chrono::Duration::hours(24));
        let expires_at = now.checked_add_signed(ttl).unwrap_or(now);
        let token = ActiveToken {
            token: mint_jwt(&config.client_id, kind, now, expires_at),
            kind,
            expires_at,
        };
        self.active = Some(token.clone());
        token
    }

    /// The active token if `presented` is it and it has not expired.
    pub(crate) fn check_token(&self, presented: Option<&str>) -> Result<ActiveToken, ApiError> {
        match (&self.active, presented) {
            (Some(active), Some(p)) if active.token == p && self.now() < active.expires_at => {
                Ok(active.clone())
            }
            _ => Err(ApiError::invalid_token()),
        }
    }

    /// Admits one order write if fewer than `limit` happened in the last real second.
    pub(crate) fn admit_order_write(&mut self, limit: u32) -> bool {
        let now = Instant::now();
        while let Some(first) = self.order_writes.front() {
            if now.duration_since(*first).as_secs_f64() >= 1.0 {
                self.order_writes.pop_front();
            } else {
                break;
            }
        }
        if self.order_writes.len() >= limit as usize {
            return false;
        }
        self.order_writes.push_back(now);
        true
    }

    pub(crate) fn record(&mut self, request: RecordedRequest) {
        if self.requests.len() >= REQUEST_LOG_CAP {
            self.requests.pop_front();
        }
        self.requests.push_back(request);
    }
}

/// The body every token-issuing call answers with (dhan-api.md §2.2).
pub(crate) fn token_body(config: &SimConfig, token: &ActiveToken) -> Value {
    json!({
        "dhanClientId": config.client_id,
        "dhanClientName": "SIM USER",
        "dhanClientUcc": "SIMU12345X",
        "givenPowerOfAttorney": false,
        "accessToken": token.token,
        "expiryTime": expiry_time(token.expires_at),
    })
}
