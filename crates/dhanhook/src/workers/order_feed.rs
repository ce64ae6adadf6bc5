//! The order feed: Dhan's live order-update WebSocket (`docs/dhan-api.md` §9), the fastest of
//! the three ways a leg is followed past ACCEPTED (the order tracker's polling is the safety
//! net, a postback a hint).
//!
//! - **One connection per account.** Across instances sharing the journal, the one holding the
//!   `order-feed` lease connects; the others wait to take over.
//! - **Ours only.** The feed reports every order on the account, from any platform; an update
//!   is matched to a leg by the correlationId dhanhook sent, and checked against the leg's
//!   order id. Everything else is ignored.
//! - **Believed as it comes.** Unlike a postback, the feed is Dhan speaking over a connection we
//!   opened and logged in to, so an update is journaled (source `websocket`) through the same
//!   step as a poll's ([`LegProgress`]): the same legal moves, CSV row and notification.
//! - **Early updates wait.** A market order can fill before the placer has journaled Dhan's
//!   answer; such an update is parked and retried for a while, never applied to a leg that has
//!   no order id yet (the placer and the reconciler own that step).
//! - **Reconnects** with a doubling backoff (1 s to 1 min, back to 1 s once a connection has
//!   lasted), and when the token in hand changes. A silent connection is pinged; one that
//!   answers nothing is dropped. Nothing is missed while it is down: polling goes on.
//! - **Never mints.** It logs in with the token in hand; with none, it waits.

use std::{collections::HashMap, sync::Arc, time::Instant};

use chrono::{DateTime, Duration, Utc};
use futures_util::{SinkExt as _, StreamExt as _};
use secrecy::ExposeSecret as _;
use tokio_tungstenite::tungstenite::{self, Message, protocol::CloseFrame};
use tokio_util::sync::CancellationToken;

use super::{lease::HeldLease, leg_progress::LegProgress};
use crate::{
    broker::{OrderState, live::order_state},
    clock::Clock,
    dhan::order_feed::{self, FeedUpdate},
    pipeline::keys,
    store::{Journal, JournalError, Leases, LegSource, TrackJournal},
    token::TokenKeeper,
};

/// The lease's name in the journal.
const LEASE: &str = "order-feed";
/// How long the lease lasts without renewal.
const LEASE_FOR: Duration = Duration::seconds(30);
/// The first wait before reconnecting, and the longest.
const MIN_BACKOFF: std::time::Duration = std::time::Duration::from_secs(1);
const MAX_BACKOFF: std::time::Duration = std::time::Duration::from_secs(60);
/// A connection that lasted this long was a good one: the next wait starts again from the
/// first.
const HEALTHY_AFTER: std::time::Duration = std::time::Duration::from_secs(60);
/// Connecting (TCP, TLS and the upgrade) may take this long.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// A connection silent this long is pinged; one silent for twice as long is dropped.
const PING_AFTER: std::time::Duration = std::time::Duration::from_secs(30);
/// How often parked updates are tried again, and for how long.
const PARKED_RETRY: std::time::Duration = std::time::Duration::from_millis(200);
const PARKED_FOR: std::time::Duration = std::time::Duration::from_secs(60);
/// With no usable token, how often to look again.
const TOKEN_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// The parts of the journal the feed uses.
#[derive(Debug, Clone)]
pub struct FeedJournal {
    /// Legs by correlationId.
    pub legs: Arc<dyn TrackJournal>,
    /// One feed at a time across instances.
    pub leases: Arc<dyn Leases>,
}

impl FeedJournal {
    pub fn of(journal: &Arc<dyn Journal>) -> Self {
        Self {
            legs: journal.clone(),
            leases: journal.clone(),
        }
    }
}

/// Why a connection ended.
#[derive(Debug)]
enum Ended {
    Stopped,
    /// Another instance holds the feed now.
    LeaseLost,
    /// A new token is in hand: log in again with it.
    TokenChanged,
    Closed(String),
    Lost(String),
}

/// An update that came before its leg had an order id.
#[derive(Debug)]
struct Parked {
    state: OrderState,
    since: Instant,
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The order feed worker (live mode, when the feed is configured).
#[derive(Debug)]
pub struct OrderFeed {
    url: String,
    keeper: TokenKeeper,
    journal: FeedJournal,
    progress: LegProgress,
    clock: Arc<dyn Clock>,
    lease: HeldLease,
    /// By correlationId.
    parked: HashMap<String, Parked>,
}

impl OrderFeed {
    pub fn new(
        url: String,
        keeper: TokenKeeper,
        journal: FeedJournal,
        progress: LegProgress,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            url,
            keeper,
            journal,
            progress,
            clock,
            lease: HeldLease::new(LEASE, LEASE_FOR),
            parked: HashMap::new(),
        }
    }

    /// Holds the feed (under its lease) until `stop`, reconnecting as needed.
    pub async fn run_until_stopped(mut self, stop: CancellationToken) {
        let mut backoff = MIN_BACKOFF;
        loop {
            if stop.is_cancelled() {
                break;
            }
            let now = self.clock.now();
            if !self.lease.hold(self.journal.leases.as_ref(), now).await {
                let next = self.lease.next_check();
                if self.pause_until(next, &stop).await {
                    break;
                }
                continue;
            }
            let Some(token) = self.keeper.usable() else {
                tracing::debug!("order feed: no usable Dhan token in hand; waiting");
                // Real time: this waits on the keeper (a mint in flight at start-up), not on
                // the market.
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(TOKEN_WAIT) => continue,
                }
            };
            let started = Instant::now();
            let ended = match self.connect(&token).await {
                Ok(socket) => {
                    tracing::info!(url = %self.url, "order feed: connected to Dhan's order updates; login sent");
                    self.serve(socket, token.expires_at, &stop).await
                }
                Err(e) => Ended::Lost(e),
            };
            match ended {
                Ended::Stopped => break,
                Ended::LeaseLost => {
                    tracing::info!("order feed: another instance holds the feed now");
                    continue;
                }
                Ended::TokenChanged => {
                    tracing::info!("order feed: a new token is in hand; logging in again");
                    backoff = MIN_BACKOFF;
                    continue;
                }
                Ended::Closed(why) | Ended::Lost(why) => {
                    if started.elapsed() >= HEALTHY_AFTER {
                        backoff = MIN_BACKOFF;
                    }
                    tracing::warn!(url = %self.url, retry_in_secs = backoff.as_secs(), "order feed: {why}; polling follows orders meanwhile");
                }
            }
            let next = self.clock.now() + Duration::from_std(backoff).unwrap_or(Duration::MAX);
            backoff = (backoff * 2).min(MAX_BACKOFF);
            if self.pause_until(next, &stop).await {
                break;
            }
        }
        self.lease.release(self.journal.leases.as_ref()).await;
    }

    /// Waits until `at` or `stop`; `true` when stopped.
    async fn pause_until(&self, at: DateTime<Utc>, stop: &CancellationToken) -> bool {
        tokio::select! {
            () = stop.cancelled() => true,
            () = self.clock.sleep_until(at) => false,
        }
    }

    /// Connects and logs in. The error is for the log: it never holds the token.
    async fn connect(&self, token: &crate::token::Token) -> Result<Socket, String> {
        let connect =
            tokio_tungstenite::connect_async_tls_with_config(self.url.as_str(), None, true, None);
        let (mut socket, _) = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            Ok(Ok(connected)) => connected,
            Ok(Err(e)) => return Err(format!("could not connect: {}", connect_error(&e))),
            Err(_) => return Err("could not connect within 10 s".to_owned()),
        };
        let login = order_feed::login_frame(self.keeper.client().client_id(), &token.value);
        socket
            .send(Message::text(login.expose_secret()))
            .await
            .map_err(|e| format!("could not log in: {}", connect_error(&e)))?;
        Ok(socket)
    }

    /// Reads the feed until the connection ends, the lease is lost, the token changes or
    /// `stop`.
    async fn serve(
        &mut self,
        mut socket: Socket,
        token_expiry: DateTime<Utc>,
        stop: &CancellationToken,
    ) -> Ended {
        let mut last_heard = Instant::now();
        let mut pinged = false;
        let mut retry = tokio::time::interval(PARKED_RETRY);
        retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let clock = Arc::clone(&self.clock);
        let ended = loop {
            let renew_at = self.lease.next_check();
            let quiet_until = tokio::time::Instant::from_std(last_heard + PING_AFTER);
            tokio::select! {
                () = stop.cancelled() => break Ended::Stopped,
                frame = socket.next() => {
                    last_heard = Instant::now();
                    pinged = false;
                    match frame {
                        Some(Ok(Message::Text(text))) => self.on_text(text.as_str()).await,
                        Some(Ok(Message::Close(frame))) => break Ended::Closed(closed_why(frame.as_ref())),
                        Some(Ok(_)) => {}
                        Some(Err(e)) => break Ended::Lost(format!("connection lost: {}", connect_error(&e))),
                        None => break Ended::Lost("connection ended".to_owned()),
                    }
                }
                () = clock.sleep_until(renew_at) => {
                    let now = self.clock.now();
                    if !self.lease.hold(self.journal.leases.as_ref(), now).await {
                        break Ended::LeaseLost;
                    }
                    if self.keeper.usable().is_some_and(|t| t.expires_at != token_expiry) {
                        break Ended::TokenChanged;
                    }
                }
                () = tokio::time::sleep_until(quiet_until) => {
                    if pinged {
                        break Ended::Lost(format!("no answer to a ping for {} s", PING_AFTER.as_secs()));
                    }
                    if let Err(e) = socket.send(Message::Ping(Vec::new().into())).await {
                        break Ended::Lost(format!("connection lost: {}", connect_error(&e)));
                    }
                    pinged = true;
                    last_heard = Instant::now();
                }
                _ = retry.tick(), if !self.parked.is_empty() => self.retry_parked().await,
            }
        };
        if matches!(
            ended,
            Ended::Stopped | Ended::LeaseLost | Ended::TokenChanged
        ) {
            let _ = socket.close(None).await;
        }
        ended
    }

    /// Acts on one text frame.
    async fn on_text(&mut self, text: &str) {
        let Some(FeedUpdate {
            correlation_id: Some(cid),
            record,
        }) = order_feed::parse_frame(text)
        else {
            return;
        };
        if !keys::is_correlation_id(&cid) {
            return;
        }
        let state = order_state(&record);
        if let Err(e) = self.apply(&cid, state).await {
            tracing::warn!(correlation_id = %cid, error = %e, "order feed: could not journal an update; polling will");
        }
    }

    /// Journals `state` for the leg sent with `cid`, or parks it while that leg has no order
    /// id yet.
    async fn apply(&mut self, cid: &str, state: OrderState) -> Result<(), JournalError> {
        let Some(row) = self.journal.legs.leg_by_correlation(cid).await? else {
            // Not in this journal: another system's order with a look-alike id.
            return Ok(());
        };
        match row.order_id.as_deref() {
            Some(id) if id == state.order_id => {
                self.parked.remove(cid);
                self.progress.record(&row, &state, LegSource::Feed).await?;
            }
            // The placer has not journaled Dhan's answer yet (or the reconciler is settling
            // the leg): wait for the order id rather than move a leg nobody has matched.
            None if !row.status.is_final() => {
                let since = self.parked.get(cid).map_or_else(Instant::now, |p| p.since);
                self.parked.insert(cid.to_owned(), Parked { state, since });
            }
            _ => {
                tracing::debug!(correlation_id = %cid, "order feed: update for another order id; ignored");
                self.parked.remove(cid);
            }
        }
        Ok(())
    }

    async fn retry_parked(&mut self) {
        self.parked.retain(|cid, p| {
            let keep = p.since.elapsed() < PARKED_FOR;
            if !keep {
                tracing::debug!(correlation_id = %cid, "order feed: update still unmatched; polling will follow the order");
            }
            keep
        });
        let parked: Vec<(String, OrderState)> = self
            .parked
            .iter()
            .map(|(cid, p)| (cid.clone(), p.state.clone()))
            .collect();
        for (cid, state) in parked {
            if let Err(e) = self.apply(&cid, state).await {
                tracing::warn!(correlation_id = %cid, error = %e, "order feed: could not journal an update; polling will");
            }
        }
    }
}

/// A connection error for the log. tungstenite's HTTP errors carry the response, never the
/// request, so the login frame (and its token) cannot appear here.
fn connect_error(e: &tungstenite::Error) -> String {
    match e {
        tungstenite::Error::Http(resp) => format!("Dhan answered HTTP {}", resp.status()),
        other => other.to_string(),
    }
}

fn closed_why(frame: Option<&CloseFrame>) -> String {
    match frame {
        // What the feed answers a login it does not accept (the token in hand was replaced or
        // revoked); the token keeper finds out at its next check or order.
        Some(f) if u16::from(f.code) == 1008 => format!(
            "Dhan refused the login with the token in hand ({} {})",
            u16::from(f.code),
            f.reason
        ),
        Some(f) if f.reason.is_empty() => format!("closed by Dhan ({})", u16::from(f.code)),
        Some(f) => format!("closed by Dhan ({} {})", u16::from(f.code), f.reason),
        None => "closed by Dhan".to_owned(),
    }
}
