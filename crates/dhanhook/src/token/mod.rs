//! The token keeper: keeps a valid Dhan access token without a human, and never risks the
//! account doing it.
//!
//! Where a token comes from, in order: the stored token (journal) or `DHAN_ACCESS_TOKEN`,
//! whichever is valid and lasts longer; then a fresh mint with PIN + TOTP
//! (`generateAccessToken`); for a web-generated (SELF) token, `RenewToken`; or the API-key
//! consent flow, which needs the user's browser once (`/auth/consent` → Dhan's login →
//! `/auth/callback`).
//!
//! What it reports is what Dhan said: a token loaded at start-up is `unchecked` until
//! `GET /v2/profile` accepts it, and a token Dhan refused (a check, an order, a lookup) is
//! `refused` and never sent again. Without a way to get a new one (no PIN, minting halted) an
//! order is refused at once with the reason and what to add, never left waiting.
//!
//! When it refreshes:
//! - *scheduled* at `exp − TOKEN_REFRESH_MARGIN` (a timer, not polling);
//! - *pre-market* (default 08:30 IST on weekdays) when the token would not last until the
//!   15:30 close, so no refresh happens mid-session;
//! - *reactively* after Dhan refuses the token (Dhan's daily forced logout, another mint);
//! - *on demand* when an operator asks (`POST /refresh-token`).
//!
//! Guards, each against a real failure: one mint at a time (a mutex: 100 callers waiting for a
//! token cause one mint), never two mint attempts within `TOKEN_MINT_COOLDOWN` (Dhan refuses
//! mints within ~2 minutes), exponential backoff after a failure, and after
//! `TOKEN_MAX_FAILURES` consecutive failures no automatic minting at all until an operator asks
//! (too many failed logins can lock the Dhan account). The token is persisted so a restart
//! does not mint; a new token kills the previous one at Dhan, so minting less is safer.
//!
//! Nothing here logs or returns a token, PIN or TOTP code.

use std::{
    collections::HashSet,
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use chrono::{DateTime, Datelike, NaiveTime, TimeZone, Utc, Weekday};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::{
    clock::{Clock, ist, ist_offset},
    dhan::{DhanClient, DhanError, DhanErrorKind, jwt, types::IssuedToken},
    store::{Journal, StoredToken},
    totp::Totp,
};

/// How the keeper behaves (from `TOKEN_*` settings).
#[derive(Debug, Clone)]
pub struct TokenSettings {
    /// Refresh this long before expiry.
    pub refresh_margin: Duration,
    /// Never two mint attempts closer than this (Dhan: about one per 2 minutes).
    pub mint_cooldown: Duration,
    /// Consecutive failed mints after which automatic minting stops.
    pub max_failures: u32,
    /// IST time of the pre-market check on weekdays; `None` disables it.
    pub premarket_refresh: Option<NaiveTime>,
    /// Lifetime assumed when neither the token nor Dhan says when it expires.
    pub fallback_ttl: Duration,
    /// `GET /v2/profile` this often to prove the token is accepted; `None` disables it.
    pub health_check: Option<Duration>,
}

impl Default for TokenSettings {
    fn default() -> Self {
        Self {
            refresh_margin: Duration::from_secs(3600),
            mint_cooldown: Duration::from_secs(125),
            max_failures: 3,
            premarket_refresh: NaiveTime::from_hms_opt(8, 30, 0),
            fallback_ttl: Duration::from_secs(24 * 3600),
            health_check: Some(Duration::from_secs(21_600)),
        }
    }
}

/// The credentials the keeper may use. Every secret is a `SecretString` or [`Totp`].
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    pub pin: Option<SecretString>,
    pub totp: Option<Totp>,
    pub access_token: Option<SecretString>,
    pub api_key: Option<String>,
    pub api_secret: Option<SecretString>,
    /// Seals the token in the journal (`TOKEN_KEY`); `None` stores it in clear (tests only).
    pub vault: Option<crate::vault::TokenVault>,
}

impl Credentials {
    fn consent(&self) -> Option<(&str, &SecretString)> {
        Some((self.api_key.as_deref()?, self.api_secret.as_ref()?))
    }

    fn can_mint(&self) -> bool {
        self.pin.is_some() && self.totp.is_some()
    }
}

/// Where the token in use came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenSource {
    /// `DHAN_ACCESS_TOKEN`.
    Env,
    /// PIN + TOTP mint.
    Minted,
    /// API-key consent flow.
    Consent,
    /// `RenewToken` of a web-generated token.
    Renewed,
}

impl TokenSource {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenSource::Env => "env",
            TokenSource::Minted => "minted",
            TokenSource::Consent => "consent",
            TokenSource::Renewed => "renewed",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "minted" => TokenSource::Minted,
            "consent" => TokenSource::Consent,
            "renewed" => TokenSource::Renewed,
            _ => TokenSource::Env,
        }
    }

    /// Whether obtaining a token of this source was a call to Dhan's auth host (which counts
    /// toward Dhan's mint throttle); a pasted `DHAN_ACCESS_TOKEN` was not.
    fn was_issued_here(self) -> bool {
        self != TokenSource::Env
    }
}

/// What Dhan said about a token the last time it was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenCheck {
    /// Loaded at start-up (`DHAN_ACCESS_TOKEN` or the journal) and not yet shown to Dhan: it
    /// is used, but not reported valid until Dhan accepts it.
    Unchecked,
    /// Issued by Dhan to this service (or another instance), or accepted by `GET /v2/profile`.
    Accepted,
    /// Dhan refused it (an order, a lookup or a check), with Dhan's reason: never used again.
    Refused(String),
}

/// A token in use. `Debug` never shows the value.
#[derive(Debug, Clone)]
pub struct Token {
    pub value: SecretString,
    pub expires_at: DateTime<Utc>,
    pub source: TokenSource,
    /// `SELF` tokens (Dhan Web) can be renewed with RenewToken.
    pub web_token: bool,
    pub check: TokenCheck,
}

impl Token {
    fn same_as(&self, other: &Token) -> bool {
        self.value.expose_secret() == other.value.expose_secret()
    }

    fn refused(&self) -> bool {
        matches!(self.check, TokenCheck::Refused(_))
    }
}

/// Why a token could not be had. Each message says what to do about it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TokenError {
    // Dhan's message is part of this one, so it is not also a `source()` (no `#[from]`):
    // otherwise `{:#}` printed it twice ("DH-906: Invalid Pin: DH-906: Invalid Pin").
    #[error("Dhan refused to issue a token: {0}")]
    Dhan(DhanError),
    #[error("Dhan allows a new token about every 2 minutes; the next can be had in {wait_secs} s")]
    Cooldown { wait_secs: u64 },
    #[error(
        "token minting stopped after {failures} failed attempts in a row (last: {last_error}); \
         fix the credentials, then POST /refresh-token"
    )]
    Halted { failures: u32, last_error: String },
    #[error("the last mint failed ({last_error}); the next attempt is at {next_attempt} IST")]
    BackingOff {
        last_error: String,
        next_attempt: String,
    },
    /// No configured way to get a new token; the text says what is missing and how to add it.
    #[error("{0}")]
    NoRoute(String),
    #[error("the consent flow failed: {0}")]
    Consent(String),
}

impl From<DhanError> for TokenError {
    fn from(e: DhanError) -> Self {
        TokenError::Dhan(e)
    }
}

/// The token's state as reported on `/ready`, `/` and `/auth/status`.
#[derive(Debug, Clone, Serialize)]
pub struct TokenStatus {
    /// `valid`, `expiring` (valid, inside the refresh margin), `unchecked` (loaded at start-up,
    /// not yet accepted by Dhan), `minting` (none usable; a new one is being obtained),
    /// `refused` (Dhan refused it), `expired` or `none`.
    pub state: &'static str,
    /// IST.
    pub expires_at: Option<String>,
    pub hours_left: Option<f64>,
    pub source: Option<TokenSource>,
    /// Whether dhanhook can get a new token by itself (PIN + TOTP, or a renewable web token).
    pub renewable: bool,
    /// Why the token is not usable, or will not be renewed, and what to do; `None` when all is
    /// well.
    pub problem: Option<String>,
    pub consecutive_failures: u32,
    pub minting_halted: bool,
    pub last_error: Option<String>,
    pub last_mint_attempt: Option<String>,
}

impl TokenStatus {
    /// The state in the words of the upstream's guide (`/ready`'s `checks.access_token`):
    /// a token inside its refresh margin is still `valid`.
    pub fn guide_state(&self) -> &'static str {
        match self.state {
            "expiring" => "valid",
            other => other,
        }
    }

    /// Whether orders can be sent with it now.
    pub fn usable(&self) -> bool {
        matches!(self.state, "valid" | "expiring")
    }
}

/// Mint bookkeeping, guarded by the single-flight mutex.
#[derive(Debug, Default, Clone)]
struct MintState {
    last_attempt: Option<DateTime<Utc>>,
    failures: u32,
    halted: bool,
    last_error: Option<String>,
}

#[derive(Debug, Default)]
struct ConsentState {
    /// consentAppId and when it was created; Dhan's login link is short-lived.
    pending: Option<(String, DateTime<Utc>)>,
    /// tokenIds already presented to the callback: each is used at most once.
    used_token_ids: HashSet<String>,
    /// Calls to Dhan made for the pending consent; at [`CONSENT_TRIES`] it is cancelled, so
    /// forged callbacks cannot make Dhan calls that carry the API secret without end.
    tries: u32,
}

/// How long one instance holds the mint lease: a mint takes a second (the client gives up after
/// 8 s), and a crashed holder's lease must lapse soon. If the crashed holder did get a token it
/// never stored, the next mint meets Dhan's own 2-minute throttle and backs off.
const MINT_LEASE: chrono::Duration = chrono::Duration::seconds(30);
/// Polls (every 500 ms) while another instance mints.
const WAIT_FOR_OTHER_MINTER_POLLS: u32 = 60;

/// Most callbacks (calls to Dhan) one consent gets before it is cancelled.
const CONSENT_TRIES: u32 = 5;

/// Whether `token_id` looks like one Dhan issues (letters, digits, `-`, `_`; 8 to 128 of them):
/// anything else is refused without calling Dhan.
fn plausible_token_id(token_id: &str) -> bool {
    (8..=128).contains(&token_id.len())
        && token_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// How long a started consent waits for its callback.
const CONSENT_WINDOW: chrono::Duration = chrono::Duration::minutes(10);
/// A token this close to expiry is not handed out: a request could outlive it.
const EXPIRY_SKEW: chrono::Duration = chrono::Duration::seconds(30);
/// How often a token Dhan could not be asked about (network) is checked again.
const RECHECK_UNCHECKED: chrono::Duration = chrono::Duration::seconds(60);

/// Why a refresh is wanted; decides whether a concurrent refresh already satisfied it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reason {
    /// No usable token (none, expired or refused).
    Missing,
    /// The schedule says so (margin or pre-market).
    Scheduled,
    /// Dhan refused the token we hold.
    Refused,
    /// An operator asked.
    Operator,
}

/// Whether a refresh may wait out Dhan's mint cooldown. Only the background schedule does:
/// an order never hangs for minutes behind it (it is refused at once, saying when a token can
/// be had), and an operator is told how long to wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Patience {
    WaitOutCooldown,
    AnswerNow,
}

/// Keeps the Dhan token. Cheap to clone.
#[derive(Debug, Clone)]
pub struct TokenKeeper {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: DhanClient,
    creds: Credentials,
    settings: TokenSettings,
    journal: Arc<dyn Journal>,
    clock: Arc<dyn Clock>,
    /// The token in use; read on every order, so a std lock (never held across `.await`).
    current: RwLock<Option<Token>>,
    /// Single flight: whoever holds it is the only one talking to Dhan's auth host. Held only
    /// while a token is being obtained, never while waiting out the cooldown.
    mint: tokio::sync::Mutex<MintState>,
    /// A copy of the mint state for status reports (readable while a mint is in flight).
    report: Mutex<MintState>,
    /// A call to Dhan's auth host is in flight (the `minting` state).
    minting: AtomicBool,
    consent: Mutex<ConsentState>,
    /// Wakes the scheduler to re-plan (a new token, a refusal, an operator action).
    replan: Notify,
    /// This process's name as a lease holder.
    instance: String,
}

impl TokenKeeper {
    pub fn new(
        client: DhanClient,
        creds: Credentials,
        settings: TokenSettings,
        journal: Arc<dyn Journal>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                client,
                creds,
                settings,
                journal,
                clock,
                current: RwLock::new(None),
                mint: tokio::sync::Mutex::new(MintState::default()),
                report: Mutex::new(MintState::default()),
                minting: AtomicBool::new(false),
                consent: Mutex::new(ConsentState::default()),
                replan: Notify::new(),
                instance: uuid::Uuid::now_v7().to_string(),
            }),
        }
    }

    pub fn client(&self) -> &DhanClient {
        &self.inner.client
    }

    /// Picks the starting token without minting or calling Dhan: the stored one or
    /// `DHAN_ACCESS_TOKEN`, whichever is still valid and lasts longer (a freshly pasted env
    /// token is newer than a stored one it replaced). It starts `unchecked`: the schedule asks
    /// Dhan about it first thing, and mints if neither is usable.
    ///
    /// # Errors
    /// The journal could not be read.
    pub async fn load(&self) -> Result<(), crate::store::JournalError> {
        let now = self.now();
        let mut legacy = false;
        let stored = self
            .inner
            .journal
            .load_token(self.inner.client.client_id())
            .await?
            .and_then(|s| {
                let (value, was_legacy) = self.unseal(&s.token)?;
                legacy = was_legacy;
                Some(Token {
                    web_token: is_web_token(&value),
                    value,
                    expires_at: s.expires_at,
                    source: TokenSource::parse(&s.source),
                    check: TokenCheck::Unchecked,
                })
            })
            .filter(|t| t.expires_at > now + EXPIRY_SKEW);
        // Stored in clear by an earlier version: sealed now, so it does not stay readable.
        if legacy && let Some(t) = &stored {
            self.persist(t).await;
        }
        // An env token's expiry is known only when it is a JWT with `exp`; otherwise (a
        // placeholder such as the guide's `eyJ0eXAi...`) it would look like the newest token at
        // every start and push a good stored one aside.
        let env = self.inner.creds.access_token.as_ref().map(|t| {
            let known = jwt::read_claims(t.expose_secret()).and_then(|c| c.expires_at());
            let token = Token {
                expires_at: self.expiry_of(t, None),
                web_token: is_web_token(t),
                value: t.clone(),
                source: TokenSource::Env,
                check: TokenCheck::Unchecked,
            };
            (token, known.is_some())
        });
        let env = env.filter(|(t, _)| t.expires_at > now + EXPIRY_SKEW);
        let best = match (stored, env) {
            // The stored token is the pasted one (stored at an earlier start), or the pasted
            // one says nothing of its expiry: the stored one is the better bet.
            (Some(s), Some((e, known))) if s.same_as(&e) || !known => Some(s),
            (Some(s), Some((e, _))) => Some(if e.expires_at > s.expires_at { e } else { s }),
            (s, e) => s.or(e.map(|(e, _)| e)),
        };
        match &best {
            Some(t) => {
                tracing::info!(
                    source = t.source.as_str(),
                    "using a Dhan token that expires in {:.1} hours; checking it with Dhan",
                    hours_left(t.expires_at, now)
                );
                if t.source == TokenSource::Env {
                    self.persist(t).await;
                }
            }
            None => tracing::info!("no valid Dhan token stored or configured"),
        }
        *self
            .inner
            .current
            .write()
            .unwrap_or_else(|e| e.into_inner()) = best;
        Ok(())
    }

    /// A token for an order or a lookup, right now. If none is usable it is minted when that
    /// can be done now; otherwise (no PIN, minting halted, Dhan's cooldown) the error says why
    /// at once, instead of keeping the order waiting for minutes. A mint already in flight is
    /// waited for (it takes about a second).
    ///
    /// # Errors
    /// No token could be had; the error says why and what to do.
    pub async fn token(&self) -> Result<Token, TokenError> {
        if let Some(t) = self.usable() {
            return Ok(t);
        }
        self.refresh(Reason::Missing, None, Patience::AnswerNow)
            .await
    }

    /// Called after Dhan refused `rejected` (saying `why`): marks it refused, then returns a
    /// newer token, minting at most once however many callers report the same refusal, and
    /// never waiting out the mint cooldown.
    ///
    /// # Errors
    /// No new token could be had.
    pub async fn refresh_after_refusal(
        &self,
        rejected: &Token,
        why: &str,
    ) -> Result<Token, TokenError> {
        self.mark_refused(rejected, why);
        self.refresh(Reason::Refused, Some(rejected), Patience::AnswerNow)
            .await
    }

    /// An operator's refresh (`POST /refresh-token`, `dhanhook token --refresh`): clears a halt,
    /// but still honours the cooldown.
    ///
    /// # Errors
    /// Inside the cooldown ([`TokenError::Cooldown`]), or the mint failed.
    pub async fn refresh_now(&self) -> Result<Token, TokenError> {
        self.refresh(Reason::Operator, None, Patience::AnswerNow)
            .await
    }

    /// A token Dhan accepts right now, proved with `GET /v2/profile`: the one in use (minted if
    /// needed, or a new one when `refresh`), replaced once if Dhan refuses it. For the
    /// `token` and `check` commands.
    ///
    /// # Errors
    /// No token could be had, or Dhan refused it, or Dhan could not be asked.
    pub async fn proven(&self, refresh: bool) -> anyhow::Result<Token> {
        let token = if refresh {
            self.refresh_now().await?
        } else {
            self.token().await?
        };
        match self.inner.client.profile(&token.value).await {
            Ok(_) => {
                self.mark_accepted(&token);
                Ok(token)
            }
            Err(e) if e.is_auth() => {
                let fresh = self.refresh_after_refusal(&token, &e.to_string()).await?;
                self.inner.client.profile(&fresh.value).await?;
                self.mark_accepted(&fresh);
                Ok(fresh)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Records that Dhan refused `token`, so nothing sends it again and `/ready` says so.
    fn mark_refused(&self, token: &Token, why: &str) {
        let mut current = self
            .inner
            .current
            .write()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(cur) = current
            .as_mut()
            .filter(|c| c.same_as(token) && !c.refused())
        {
            tracing::warn!(reason = why, "Dhan refused the access token");
            cur.check = TokenCheck::Refused(why.to_owned());
            self.inner.replan.notify_one();
        }
    }

    /// Records that Dhan accepted `token` (a profile check).
    fn mark_accepted(&self, token: &Token) {
        let mut current = self
            .inner
            .current
            .write()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(cur) = current.as_mut().filter(|c| c.same_as(token)) {
            cur.check = TokenCheck::Accepted;
        }
    }

    /// The current token, if it may be sent: not refused and not about to expire.
    fn usable(&self) -> Option<Token> {
        let now = self.now();
        self.current()
            .filter(|t| !t.refused() && t.expires_at > now + EXPIRY_SKEW)
    }

    fn current(&self) -> Option<Token> {
        self.inner
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    /// Whether a new token can be had without a person: PIN + TOTP, or RenewToken of a web
    /// token Dhan has not refused.
    pub fn renewable(&self) -> bool {
        self.inner.creds.can_mint() || self.usable().is_some_and(|t| t.web_token)
    }

    /// Why there is no usable token and none can be had: what Dhan said about the last one,
    /// then what is missing and how to add it.
    fn unusable_reason(&self) -> String {
        let advice = self.no_route_advice();
        match self.current() {
            Some(Token {
                check: TokenCheck::Refused(why),
                ..
            }) => format!("Dhan refused the token ({why}). {advice}"),
            Some(t) if t.expires_at <= self.now() + EXPIRY_SKEW => format!(
                "the token expired at {} IST. {advice}",
                ist(t.expires_at).format("%Y-%m-%d %H:%M")
            ),
            _ => advice,
        }
    }

    /// What is missing for dhanhook to get tokens by itself, and how to add it.
    fn no_route_advice(&self) -> String {
        let creds = &self.inner.creds;
        let missing: Vec<&str> = [
            ("DHAN_PIN", creds.pin.is_none()),
            ("DHAN_TOTP_SECRET", creds.totp.is_none()),
        ]
        .into_iter()
        .filter_map(|(name, missing)| missing.then_some(name))
        .collect();
        let names = missing.join(" and ");
        let verb = if missing.len() == 1 { "is" } else { "are" };
        let add: Vec<&str> = missing
            .iter()
            .map(|name| match *name {
                "DHAN_PIN" => "DHAN_PIN=<your 6-digit Dhan PIN>",
                _ => "DHAN_TOTP_SECRET=<the base32 secret shown when you enabled TOTP>",
            })
            .collect();
        let mut advice = format!(
            "{names} {verb} not set, so dhanhook cannot get a Dhan token by itself: Dhan mints tokens only \
             from your client id, your 6-digit Dhan PIN and a TOTP code (DHAN_USER_ID and DHAN_PASSWORD \
             are not used by any Dhan API). Add {} to .env and restart",
            add.join(" and ")
        );
        if creds.consent().is_some() {
            advice.push_str("; or log in once through the API-key flow (POST /auth/consent)");
        }
        advice
    }

    async fn refresh(
        &self,
        reason: Reason,
        rejected: Option<&Token>,
        patience: Patience,
    ) -> Result<Token, TokenError> {
        loop {
            let mut st = self.inner.mint.lock().await;

            // Someone may have refreshed while we waited: this process (the lock) or another
            // instance sharing the journal (the stored token).
            if let Some(cur) = self.stored_answer(reason, rejected).await {
                return Ok(cur);
            }
            if !self.renewable() {
                return Err(TokenError::NoRoute(self.unusable_reason()));
            }

            if reason == Reason::Operator {
                st.halted = false;
                st.failures = 0;
                self.sync_report(&st);
            } else if st.halted {
                return Err(TokenError::Halted {
                    failures: st.failures,
                    last_error: st.last_error.clone().unwrap_or_default(),
                });
            }

            let now = self.now();
            if let Some(ready) = self.next_attempt_at(&st).await.filter(|r| *r > now) {
                let wait_secs = u64::try_from((ready - now).num_seconds().max(1)).unwrap_or(1);
                if st.failures > 0 && reason != Reason::Operator {
                    return Err(TokenError::BackingOff {
                        last_error: st.last_error.clone().unwrap_or_default(),
                        next_attempt: ist(ready).format("%H:%M:%S").to_string(),
                    });
                }
                if patience == Patience::AnswerNow {
                    return Err(TokenError::Cooldown { wait_secs });
                }
                // The schedule waits out Dhan's throttle, without the lock: an order that
                // arrives meanwhile is answered at once instead of queueing behind the wait.
                drop(st);
                tracing::info!(
                    wait_secs,
                    "waiting for the mint cooldown before getting a new token"
                );
                // The mint that started the cooldown may be another instance's, just
                // stored: its token ends the wait.
                let stored_token = async {
                    loop {
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                        if let Some(t) = self.stored_answer(reason, rejected).await {
                            return t;
                        }
                    }
                };
                tokio::select! {
                    () = self.inner.clock.sleep_until(ready) => continue,
                    t = stored_token => return Ok(t),
                }
            }

            match reason {
                Reason::Scheduled => tracing::warn!("Token expiring soon, generating new token..."),
                Reason::Missing => tracing::warn!("No valid token, generating new token..."),
                Reason::Refused | Reason::Operator => tracing::info!("Generating new token..."),
            }
            return self.mint_under_lease(&mut st, reason, rejected).await;
        }
    }

    /// When the next mint may be attempted: the cooldown after the last attempt (here, or a
    /// token another instance obtained), doubled after each failure.
    async fn next_attempt_at(&self, st: &MintState) -> Option<DateTime<Utc>> {
        let last = match (st.last_attempt, self.stored_obtained_at().await) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }?;
        let cooldown = to_chrono(self.inner.settings.mint_cooldown);
        Some(last + cooldown * 2i32.saturating_pow(st.failures.saturating_sub(1).min(6)))
    }

    /// Obtains a token holding the mint lock and the journal's mint lease, and records the
    /// outcome.
    async fn mint_under_lease(
        &self,
        st: &mut MintState,
        reason: Reason,
        rejected: Option<&Token>,
    ) -> Result<Token, TokenError> {
        // One minter across every instance sharing the journal: a new token kills the old
        // one, so two instances minting would knock each other out.
        let lease = format!("dhan-token-mint:{}", self.inner.client.client_id());
        let leased = self
            .inner
            .journal
            .try_lease(
                &lease,
                &self.inner.instance,
                self.now() + MINT_LEASE,
                self.now(),
            )
            .await
            .unwrap_or(false);
        if !leased {
            return self.wait_for_other_minter(reason, rejected).await;
        }
        // Another instance may have minted between the check above (or the cooldown wait) and
        // this lease: it stores its token before giving the lease up, so look again now.
        if let Some(cur) = self.stored_answer(reason, rejected).await {
            let _ = self
                .inner
                .journal
                .release_lease(&lease, &self.inner.instance)
                .await;
            return Ok(cur);
        }
        let attempt_at = self.now();
        self.inner.minting.store(true, Ordering::SeqCst);
        let result = self.obtain().await;
        self.inner.minting.store(false, Ordering::SeqCst);
        // Stored before the lease is released, so the next lease holder sees it.
        if let Ok(token) = &result {
            self.persist(token).await;
        }
        let _ = self
            .inner
            .journal
            .release_lease(&lease, &self.inner.instance)
            .await;
        st.last_attempt = Some(attempt_at);
        match result {
            Ok(token) => {
                st.failures = 0;
                st.last_error = None;
                self.sync_report(st);
                tracing::info!(
                    source = token.source.as_str(),
                    "New token generated, valid for {:.1} hours",
                    hours_left(token.expires_at, self.now())
                );
                self.install(token.clone());
                Ok(token)
            }
            Err(TokenError::Dhan(e)) => {
                // Dhan's own throttle is not a credential failure: it does not count toward the halt.
                if e.kind != DhanErrorKind::RateLimit {
                    st.failures += 1;
                }
                st.last_error = Some(e.to_string());
                if st.failures >= self.inner.settings.max_failures {
                    st.halted = true;
                    tracing::error!(
                        failures = st.failures,
                        "Token generation failed ({e}); minting stopped to protect the account. Fix the \
                         credentials, then POST /refresh-token"
                    );
                } else {
                    tracing::error!(failures = st.failures, "Token generation failed: {e}");
                }
                self.sync_report(st);
                Err(TokenError::Dhan(e))
            }
            Err(other) => {
                st.last_error = Some(other.to_string());
                self.sync_report(st);
                Err(other)
            }
        }
    }

    /// Makes `token` the one in use and wakes the schedule.
    fn install(&self, token: Token) {
        *self
            .inner
            .current
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Some(token);
        self.inner.replan.notify_one();
    }

    /// Adopts the newest stored token (this process or another instance may have minted
    /// one), then answers as [`Self::satisfying`].
    async fn stored_answer(&self, reason: Reason, rejected: Option<&Token>) -> Option<Token> {
        self.adopt_stored().await;
        self.satisfying(reason, rejected, self.now())
    }

    /// The current token if it already answers this refresh's reason.
    fn satisfying(
        &self,
        reason: Reason,
        rejected: Option<&Token>,
        now: DateTime<Utc>,
    ) -> Option<Token> {
        let cur = self.usable()?;
        let satisfied = match reason {
            Reason::Missing => true,
            Reason::Refused => rejected.is_some_and(|r| !cur.same_as(r)),
            Reason::Scheduled => {
                cur.expires_at - to_chrono(self.inner.settings.refresh_margin) > now
            }
            Reason::Operator => false,
        };
        satisfied.then_some(cur)
    }

    /// Adopts the journal's token when it is valid and newer than the one in use (another
    /// instance minted it).
    async fn adopt_stored(&self) {
        let Ok(Some(mut stored)) = self
            .inner
            .journal
            .load_token(self.inner.client.client_id())
            .await
        else {
            return;
        };
        let now = self.now();
        if stored.expires_at <= now + EXPIRY_SKEW {
            return;
        }
        let Some((value, _)) = self.unseal(&stored.token) else {
            return;
        };
        stored.token = value;
        let newer = match self.current() {
            None => true,
            Some(cur) => {
                !cur.value.expose_secret().eq(stored.token.expose_secret())
                    && stored.expires_at >= cur.expires_at
            }
        };
        if newer {
            tracing::info!("using the token another instance obtained");
            self.install(Token {
                web_token: is_web_token(&stored.token),
                value: stored.token,
                expires_at: stored.expires_at,
                source: TokenSource::parse(&stored.source),
                // Dhan issued it to the other instance moments ago.
                check: TokenCheck::Accepted,
            });
        }
    }

    /// When the stored token was obtained, if obtaining it was a call to Dhan's auth host
    /// (here or by another instance): the start of Dhan's mint cooldown. A pasted
    /// `DHAN_ACCESS_TOKEN`, stored at start-up, started none.
    async fn stored_obtained_at(&self) -> Option<DateTime<Utc>> {
        self.inner
            .journal
            .load_token(self.inner.client.client_id())
            .await
            .ok()
            .flatten()
            .filter(|t| TokenSource::parse(&t.source).was_issued_here())
            .map(|t| t.obtained_at)
    }

    /// Another instance holds the mint lease: wait (bounded, real time) for its token.
    async fn wait_for_other_minter(
        &self,
        reason: Reason,
        rejected: Option<&Token>,
    ) -> Result<Token, TokenError> {
        tracing::info!("another instance is getting a new token; waiting for it");
        for _ in 0..WAIT_FOR_OTHER_MINTER_POLLS {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            if let Some(t) = self.stored_answer(reason, rejected).await {
                return Ok(t);
            }
        }
        Err(TokenError::BackingOff {
            last_error: "another instance was getting a new token and none appeared".to_owned(),
            next_attempt: ist(self.now() + MINT_LEASE).format("%H:%M:%S").to_string(),
        })
    }

    /// Gets a new token by the best route available. Called with the mint lock held.
    async fn obtain(&self) -> Result<Token, TokenError> {
        let creds = &self.inner.creds;
        if let (Some(pin), Some(totp)) = (&creds.pin, &creds.totp) {
            // A code about to roll over may be stale when it arrives; wait for the next step.
            let now = self.now();
            if Totp::seconds_left(now.timestamp()) <= 2 {
                let next = now + chrono::Duration::seconds(Totp::seconds_left(now.timestamp()));
                self.inner.clock.sleep_until(next).await;
            }
            let code = totp.code_at(self.now().timestamp());
            let issued = self.inner.client.generate_access_token(pin, &code).await?;
            return Ok(self.token_from(issued, TokenSource::Minted));
        }
        if let Some(current) = self.usable().filter(|t| t.web_token) {
            let issued = self.inner.client.renew_token(&current.value).await?;
            return Ok(self.token_from(issued, TokenSource::Renewed));
        }
        Err(TokenError::NoRoute(self.no_route_advice()))
    }

    fn token_from(&self, issued: IssuedToken, source: TokenSource) -> Token {
        Token {
            expires_at: self.expiry_of(&issued.access_token, issued.expiry_time),
            web_token: is_web_token(&issued.access_token),
            value: issued.access_token,
            source,
            check: TokenCheck::Accepted,
        }
    }

    /// Expiry from the JWT's `exp`, else Dhan's `expiryTime`, else now + the fallback lifetime.
    fn expiry_of(&self, token: &SecretString, expiry_time: Option<DateTime<Utc>>) -> DateTime<Utc> {
        jwt::read_claims(token.expose_secret())
            .and_then(|c| c.expires_at())
            .or(expiry_time)
            .unwrap_or_else(|| self.now() + to_chrono(self.inner.settings.fallback_ttl))
    }

    /// A stored token's value: opened with the vault (and whether it was a legacy clear one),
    /// or `None`, with one clear line, when this key cannot open it (the key changed): the
    /// token is then treated as absent and a new one is obtained.
    fn unseal(&self, stored: &SecretString) -> Option<(SecretString, bool)> {
        let Some(vault) = &self.inner.creds.vault else {
            return Some((stored.clone(), false));
        };
        match vault.open(stored, self.inner.client.client_id()) {
            Ok(crate::vault::Opened::Sealed(t)) => Some((t, false)),
            Ok(crate::vault::Opened::Legacy(t)) => Some((t, true)),
            Err(e) => {
                tracing::warn!("{e}: it is dropped, and a new token is obtained");
                None
            }
        }
    }

    async fn persist(&self, token: &Token) {
        let client_id = self.inner.client.client_id();
        let value = match &self.inner.creds.vault {
            Some(vault) => vault.seal(&token.value, client_id),
            None => token.value.clone(),
        };
        let stored = StoredToken {
            client_id: client_id.to_owned(),
            token: value,
            expires_at: token.expires_at,
            source: token.source.as_str().to_owned(),
            obtained_at: self.now(),
        };
        if let Err(e) = self.inner.journal.save_token(&stored).await {
            // Not fatal: the token works; a restart would mint again.
            tracing::error!(error = %e, "could not store the new token; a restart will need a new one");
        }
    }

    fn sync_report(&self, st: &MintState) {
        *self.inner.report.lock().unwrap_or_else(|e| e.into_inner()) = st.clone();
    }

    /// The token's state for status pages. Never includes the token.
    pub fn status(&self) -> TokenStatus {
        let now = self.now();
        let report = self
            .inner
            .report
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let current = self.current();
        let minting = self.inner.minting.load(Ordering::SeqCst);
        let renewable = self.renewable();
        let state = match &current {
            _ if minting && self.usable().is_none() => "minting",
            None => "none",
            Some(t) if t.refused() => "refused",
            Some(t) if t.expires_at <= now => "expired",
            Some(t) if t.check == TokenCheck::Unchecked => "unchecked",
            Some(t) if t.expires_at - to_chrono(self.inner.settings.refresh_margin) <= now => {
                "expiring"
            }
            Some(_) => "valid",
        };
        let advice = (!renewable).then(|| self.no_route_advice());
        let problem = match (state, &current) {
            ("refused" | "none" | "expired", _) if advice.is_some() => Some(self.unusable_reason()),
            (
                "refused",
                Some(Token {
                    check: TokenCheck::Refused(why),
                    ..
                }),
            ) => Some(format!(
                "Dhan refused the token ({why}); a new one is being obtained"
            )),
            ("none" | "expired", _) => Some(report.last_error.clone().map_or_else(
                || "a new token is being obtained".to_owned(),
                |e| format!("getting a new token failed: {e}"),
            )),
            ("unchecked", _) => Some(format!(
                "not yet accepted by Dhan (it is checked with GET /v2/profile at start-up, then every \
                 minute until Dhan answers){}",
                advice
                    .as_ref()
                    .map(|a| format!("; it will not be renewed: {a}"))
                    .unwrap_or_default()
            )),
            ("valid" | "expiring", Some(t)) => advice.map(|a| {
                format!(
                    "it will not be renewed: {a} before it expires at {} IST",
                    ist(t.expires_at).format("%Y-%m-%d %H:%M")
                )
            }),
            _ => None,
        };
        TokenStatus {
            state,
            expires_at: current
                .as_ref()
                .map(|t| ist(t.expires_at).format("%Y-%m-%d %H:%M:%S").to_string()),
            hours_left: current
                .as_ref()
                .map(|t| (hours_left(t.expires_at, now) * 10.0).round() / 10.0),
            source: current.map(|t| t.source),
            renewable,
            problem,
            consecutive_failures: report.failures,
            minting_halted: report.halted,
            last_error: report.last_error,
            last_mint_attempt: report
                .last_attempt
                .map(|t| ist(t).format("%Y-%m-%d %H:%M:%S").to_string()),
        }
    }

    // ---- consent flow ------------------------------------------------------------------

    /// Starts the API-key consent flow; returns Dhan's login URL for the user's browser.
    ///
    /// # Errors
    /// No API key configured, or Dhan refused (e.g. 25 consents a day).
    pub async fn start_consent(&self) -> Result<String, TokenError> {
        let (key, secret) = self.inner.creds.consent().ok_or_else(|| {
            TokenError::Consent(
                "set DHAN_API_KEY and DHAN_API_SECRET to use the consent flow".to_owned(),
            )
        })?;
        let consent_app_id = self.inner.client.generate_consent(key, secret).await?;
        let url = self.inner.client.consent_login_url(&consent_app_id);
        self.inner
            .consent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pending = Some((consent_app_id, self.now()));
        self.inner
            .consent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .tries = 0;
        Ok(url)
    }

    /// Completes the consent flow with the `tokenId` Dhan redirected the browser with. Each
    /// tokenId is tried once; without a consent started in the last 10 minutes nothing is sent
    /// to Dhan (so strangers cannot burn the daily consent quota through the public callback).
    ///
    /// # Errors
    /// No consent pending, a reused tokenId, or Dhan refused it.
    pub async fn complete_consent(&self, token_id: &str) -> Result<Token, TokenError> {
        let (key, secret) =
            self.inner.creds.consent().ok_or_else(|| {
                TokenError::Consent("the consent flow is not configured".to_owned())
            })?;
        {
            let mut consent = self.inner.consent.lock().unwrap_or_else(|e| e.into_inner());
            let fresh = consent
                .pending
                .as_ref()
                .is_some_and(|(_, at)| self.now() - *at <= CONSENT_WINDOW);
            if !fresh {
                return Err(TokenError::Consent(
                    "no consent is waiting for a callback; start one with POST /auth/consent"
                        .to_owned(),
                ));
            }
            if !plausible_token_id(token_id) || !consent.used_token_ids.insert(token_id.to_owned())
            {
                return Err(TokenError::Consent(
                    "this tokenId was already used or is not valid".to_owned(),
                ));
            }
            consent.tries += 1;
            if consent.tries >= CONSENT_TRIES {
                // This is the last try: whatever Dhan says, the next callback needs a new consent.
                consent.pending = None;
            }
        }
        let mut st = self.inner.mint.lock().await;
        self.inner.minting.store(true, Ordering::SeqCst);
        let issued = self
            .inner
            .client
            .consume_consent(key, secret, token_id)
            .await;
        self.inner.minting.store(false, Ordering::SeqCst);
        let token = self.token_from(issued?, TokenSource::Consent);
        st.last_attempt = Some(self.now());
        st.failures = 0;
        st.halted = false;
        st.last_error = None;
        self.sync_report(&st);
        drop(st);
        self.persist(&token).await;
        self.install(token.clone());
        self.inner
            .consent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pending = None;
        tracing::info!(
            "New token generated, valid for {:.1} hours",
            hours_left(token.expires_at, self.now())
        );
        Ok(token)
    }

    // ---- the schedule ------------------------------------------------------------------

    /// Checks the starting token with Dhan, says in one line what the token situation is, then
    /// runs the refresh schedule and health checks until `stop` is cancelled.
    pub async fn run_until_stopped(self, stop: CancellationToken) {
        tokio::select! {
            () = stop.cancelled() => return,
            () = self.check_current() => {}
        }
        self.announce();
        let mut next_health = self.next_health_check();
        loop {
            let now = self.now();
            let refresh_at = plan_refresh(
                now,
                self.usable().as_ref(),
                &self.inner.settings,
                self.halted() || !self.renewable(),
            );
            let (at, health) = match (refresh_at, next_health) {
                (Some(r), Some(h)) if h < r => (Some(h), true),
                (None, Some(h)) => (Some(h), true),
                (r, _) => (r, false),
            };
            let sleep = async {
                match at {
                    Some(at) => self.inner.clock.sleep_until(at).await,
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = stop.cancelled() => return,
                () = self.inner.replan.notified() => continue,
                () = sleep => {}
            }
            if health {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = self.health_check() => {}
                }
                next_health = self.next_health_check();
            } else {
                let reason = if self.usable().is_some() {
                    Reason::Scheduled
                } else {
                    Reason::Missing
                };
                // A refresh may wait out Dhan's mint cooldown (minutes): shutdown does not.
                let refreshed = tokio::select! {
                    () = stop.cancelled() => return,
                    r = self.refresh(reason, None, Patience::WaitOutCooldown) => r,
                };
                if let Err(e) = refreshed {
                    tracing::error!("scheduled token refresh failed: {e}");
                    // Backoff and halts are enforced in refresh(); re-plan after the cooldown.
                    let retry = self.now() + to_chrono(self.inner.settings.mint_cooldown);
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = self.inner.replan.notified() => {}
                        () = self.inner.clock.sleep_until(retry) => {}
                    }
                }
            }
        }
    }

    /// The next health check: the configured interval, or soon while the token in use could
    /// not be checked yet (Dhan was unreachable at start-up).
    fn next_health_check(&self) -> Option<DateTime<Utc>> {
        let unchecked = self
            .current()
            .is_some_and(|t| t.check == TokenCheck::Unchecked);
        if unchecked {
            return Some(self.now() + RECHECK_UNCHECKED);
        }
        self.inner
            .settings
            .health_check
            .map(|every| self.now() + to_chrono(every))
    }

    /// Asks Dhan about a token loaded at start-up (`GET /v2/profile`) before anything reports
    /// it valid.
    async fn check_current(&self) {
        let Some(token) = self.current().filter(|t| t.check == TokenCheck::Unchecked) else {
            return;
        };
        match self.inner.client.profile(&token.value).await {
            Ok(_) => {
                self.mark_accepted(&token);
                tracing::info!(
                    source = token.source.as_str(),
                    "Token valid ({:.1} hours remaining)",
                    hours_left(token.expires_at, self.now())
                );
            }
            Err(e) if e.is_auth() => self.mark_refused(&token, &e.to_string()),
            Err(e) => tracing::warn!(
                "could not check the Dhan token with Dhan ({e}); it is used meanwhile and checked again in a minute"
            ),
        }
    }

    /// The start-up line for a token dhanhook cannot renew by itself: what is missing and how
    /// to add it (a token that renews itself needs no line of its own).
    fn announce(&self) {
        if self.renewable() {
            return;
        }
        let status = self.status();
        let problem = status.problem.clone().unwrap_or_default();
        if status.usable() {
            tracing::warn!(
                "Token valid ({:.1} hours remaining), but {problem}",
                status.hours_left.unwrap_or_default()
            );
        } else if status.state == "unchecked" {
            tracing::warn!("Dhan token {problem}");
        } else {
            tracing::error!("No usable Dhan token ({}): {problem}", status.state);
        }
    }

    fn halted(&self) -> bool {
        self.inner
            .report
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .halted
    }

    /// `GET /v2/profile` with the current token: logs its state, refreshes if Dhan refuses it.
    async fn health_check(&self) {
        let Some(token) = self.current().filter(|t| !t.refused()) else {
            tracing::warn!(
                "Periodic health check: no usable Dhan token ({})",
                self.status().state
            );
            return;
        };
        match self.inner.client.profile(&token.value).await {
            Ok(_) => {
                self.mark_accepted(&token);
                tracing::info!(
                    "Periodic health check: Token valid ({:.1} hours remaining)",
                    hours_left(token.expires_at, self.now())
                );
            }
            Err(e) if e.is_auth() => {
                tracing::warn!("Periodic health check: Dhan refused the token ({e})");
                if let Err(e) = self.refresh_after_refusal(&token, &e.to_string()).await {
                    tracing::error!("token refresh after a failed health check failed: {e}");
                }
            }
            Err(e) => tracing::warn!("Periodic health check: could not reach Dhan ({e})"),
        }
    }
}

/// When the next refresh should happen, or `None` (halted: only an operator can restart it).
/// A pure function of the time, the token and the settings, so it is tested directly.
pub(crate) fn plan_refresh(
    now: DateTime<Utc>,
    token: Option<&Token>,
    settings: &TokenSettings,
    halted: bool,
) -> Option<DateTime<Utc>> {
    if halted {
        return None;
    }
    let Some(token) = token else { return Some(now) };
    let mut at = token.expires_at - to_chrono(settings.refresh_margin);
    if let Some(premarket) = settings.premarket_refresh
        && let Some(check) = next_premarket(now, premarket)
    {
        // Refresh at the pre-market check if the token would not last through the session.
        let close = ist_offset()
            .from_local_datetime(&ist(check).date_naive().and_time(MARKET_CLOSE))
            .single()
            .map(|c| c.with_timezone(&Utc));
        if close.is_some_and(|c| token.expires_at < c + to_chrono(settings.refresh_margin))
            && check < at
        {
            at = check;
        }
    }
    Some(at.max(now))
}

/// The NSE equity close: the token must last at least until then (plus the margin).
const MARKET_CLOSE: NaiveTime = match NaiveTime::from_hms_opt(15, 30, 0) {
    Some(t) => t,
    None => panic!("15:30 is a valid time"),
};

/// The next weekday pre-market check at `time` IST, strictly after `now`. Holidays are not
/// known here yet (the market calendar comes with the instruments work); refreshing on a
/// holiday morning is harmless.
fn next_premarket(now: DateTime<Utc>, time: NaiveTime) -> Option<DateTime<Utc>> {
    let today = ist(now).date_naive();
    (0..8).find_map(|d| {
        let day = today + chrono::Duration::days(d);
        if matches!(day.weekday(), Weekday::Sat | Weekday::Sun) {
            return None;
        }
        let at = ist_offset()
            .from_local_datetime(&day.and_time(time))
            .single()?
            .with_timezone(&Utc);
        (at > now).then_some(at)
    })
}

fn is_web_token(token: &SecretString) -> bool {
    jwt::read_claims(token.expose_secret())
        .and_then(|c| c.token_consumer_type)
        .as_deref()
        == Some("SELF")
}

fn hours_left(expires_at: DateTime<Utc>, now: DateTime<Utc>) -> f64 {
    (expires_at - now).num_seconds() as f64 / 3600.0
}

fn to_chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ist_at(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        ist_offset()
            .with_ymd_and_hms(y, m, d, h, min, 0)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn token_expiring(at: DateTime<Utc>) -> Token {
        Token {
            value: SecretString::from("fake.token.value"),
            expires_at: at,
            source: TokenSource::Minted,
            web_token: false,
            check: TokenCheck::Accepted,
        }
    }

    #[test]
    fn refresh_is_planned_one_margin_before_expiry() {
        let s = TokenSettings::default();
        // Minted Tuesday 09:00 IST, valid 24 h: refresh Wednesday 08:00, before the 08:30 check.
        let now = ist_at(2026, 12, 1, 9, 0);
        let t = token_expiring(ist_at(2026, 12, 2, 9, 0));
        assert_eq!(
            plan_refresh(now, Some(&t), &s, false),
            Some(ist_at(2026, 12, 2, 8, 0))
        );
    }

    #[test]
    fn a_token_that_would_die_mid_session_is_refreshed_before_the_open() {
        let s = TokenSettings::default();
        // Expires Wednesday 12:00 IST: the margin alone would refresh at 11:00, mid-session.
        let now = ist_at(2026, 12, 1, 20, 0);
        let t = token_expiring(ist_at(2026, 12, 2, 12, 0));
        assert_eq!(
            plan_refresh(now, Some(&t), &s, false),
            Some(ist_at(2026, 12, 2, 8, 30))
        );
    }

    #[test]
    fn weekends_have_no_premarket_check() {
        let s = TokenSettings::default();
        // Friday 20:00, token expires Saturday 12:00: refresh Saturday 11:00 (no Saturday check).
        let now = ist_at(2026, 12, 4, 20, 0);
        let t = token_expiring(ist_at(2026, 12, 5, 12, 0));
        assert_eq!(
            plan_refresh(now, Some(&t), &s, false),
            Some(ist_at(2026, 12, 5, 11, 0))
        );
    }

    #[test]
    fn no_token_means_now_and_a_halt_means_never() {
        let s = TokenSettings::default();
        let now = ist_at(2026, 12, 1, 9, 0);
        assert_eq!(plan_refresh(now, None, &s, false), Some(now));
        assert_eq!(plan_refresh(now, None, &s, true), None);
        let overdue = token_expiring(now + chrono::Duration::minutes(59));
        assert_eq!(
            plan_refresh(now, Some(&overdue), &s, false),
            Some(now),
            "inside the margin: now"
        );
    }

    /// Reliability bar §6.9: over 30 days, with tokens living 20–24 h and Dhan logging every
    /// session out at 07:00 IST, a token with 30 minutes of headroom exists at every minute of
    /// 08:45–15:45 IST on weekdays, with at most 3 mints a day. A forced logout is seen by the
    /// keeper as "expired" (the health check or the next order reports it).
    #[test]
    fn thirty_days_of_schedule_keep_headroom_through_every_session() {
        let s = TokenSettings::default();
        let result = simulate_days(30, |now, token| {
            token.is_none_or(|t| t.expires_at <= now)
                || plan_refresh(now, token, &s, false).is_some_and(|at| at <= now)
        });
        assert_eq!(result, Ok(()));
    }

    /// The seed's scheme (poll every 6 h, renew under 1 h left) must fail the same test.
    #[test]
    fn the_seeds_polling_scheme_fails_that_test() {
        let result = simulate_days(30, |now, token| {
            use chrono::Timelike;
            let local = ist(now);
            let poll = local.minute() == 0 && local.hour().is_multiple_of(6);
            poll && token.is_none_or(|t| t.expires_at - chrono::Duration::hours(1) <= now)
        });
        assert!(
            result.is_err(),
            "the seed's scheme leaves sessions without a token"
        );
    }

    /// Runs a refresh policy minute by minute for `days` days and checks session headroom and
    /// the number of mints per day.
    fn simulate_days(
        days: i64,
        due: impl Fn(DateTime<Utc>, Option<&Token>) -> bool,
    ) -> Result<(), String> {
        let start = ist_at(2026, 12, 1, 0, 0);
        let mut now = start;
        let mut token: Option<Token> = None;
        let mut mints_by_day = std::collections::HashMap::<chrono::NaiveDate, u32>::new();
        let mut lifetime_hours = [20, 24, 22, 21, 23].into_iter().cycle();
        let (open, close) = (
            NaiveTime::from_hms_opt(8, 45, 0).unwrap(),
            NaiveTime::from_hms_opt(15, 45, 0).unwrap(),
        );
        while now < start + chrono::Duration::days(days) {
            let local = ist(now);
            if local.time() == NaiveTime::from_hms_opt(7, 0, 0).unwrap() {
                token = token.map(|t| token_expiring(t.expires_at.min(now)));
            }
            if due(now, token.as_ref()) {
                token = Some(token_expiring(
                    now + chrono::Duration::hours(lifetime_hours.next().unwrap()),
                ));
                *mints_by_day.entry(local.date_naive()).or_default() += 1;
            }
            let weekday = !matches!(local.weekday(), Weekday::Sat | Weekday::Sun);
            if weekday && local.time() >= open && local.time() <= close {
                let ok = token
                    .as_ref()
                    .is_some_and(|t| t.expires_at - now >= chrono::Duration::minutes(30));
                if !ok {
                    return Err(format!("no headroom at {local}"));
                }
            }
            now += chrono::Duration::minutes(1);
        }
        match mints_by_day.iter().find(|(_, n)| **n > 3) {
            Some((day, n)) => Err(format!("{n} mints on {day}")),
            None => Ok(()),
        }
    }
}
