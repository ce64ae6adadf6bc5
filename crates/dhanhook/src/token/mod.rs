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
//! - *pre-market* (default 08:30 IST on NSE trading days, from the market calendar, so not on
//!   weekends or exchange holidays) when the token would not last until the 15:30 close, so no
//!   refresh happens mid-session;
//! - *reactively* after Dhan refuses the token (Dhan's daily forced logout, another mint);
//! - *on demand* when an operator asks (`POST /refresh-token`).
//!
//! Guards, each against a real failure: one mint at a time (a mutex: 100 callers waiting for a
//! token cause one mint; and a journal lease across instances sharing the journal), never two
//! mint attempts within `TOKEN_MINT_COOLDOWN` (Dhan refuses mints within ~2 minutes),
//! exponential backoff after a failure, and after `TOKEN_MAX_FAILURES` consecutive failures no
//! automatic minting at all until an operator asks (too many failed logins can lock the Dhan
//! account). The token is persisted so a restart does not mint; a new token kills the previous
//! one at Dhan, so minting less is safer. When the journal cannot be asked who may mint, no one
//! mints (see `mint.rs`).
//!
//! The parts: `policy` (the rules above as pure functions), `mint` (single flight, the
//! lease, obtaining a token), `stored` (the journal's copy), `consent` (the API-key flow),
//! `schedule` (the background task) and `status` (what `/ready` shows).
//!
//! Nothing here logs or returns a token, PIN or TOTP code.

use std::{
    sync::{Arc, Mutex, RwLock, atomic::AtomicBool},
    time::Duration,
};

use chrono::{DateTime, NaiveTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use tokio::sync::Notify;

use crate::{
    clock::Clock,
    dhan::{DhanClient, DhanError, jwt},
    market::Calendar,
    store::TokenJournal,
    totp::Totp,
};

mod consent;
mod mint;
mod policy;
mod schedule;
mod status;
mod stored;
#[cfg(test)]
mod tests;
mod trouble;

pub use status::{TokenState, TokenStatus};

use consent::ConsentState;
use policy::{MintState, Patience, Reason};

/// How the keeper behaves (from `TOKEN_*` settings).
#[derive(Debug, Clone)]
pub struct TokenSettings {
    /// Refresh this long before expiry.
    pub refresh_margin: Duration,
    /// Never two mint attempts closer than this (Dhan: about one per 2 minutes).
    pub mint_cooldown: Duration,
    /// Consecutive failed mints after which automatic minting stops.
    pub max_failures: u32,
    /// IST time of the pre-market check on NSE trading days; `None` disables it.
    pub premarket_refresh: Option<NaiveTime>,
    /// Lifetime assumed when neither the token nor Dhan says when it expires.
    pub fallback_ttl: Duration,
    /// `GET /v2/profile` this often to prove the token is accepted; `None` disables it.
    pub health_check: Option<Duration>,
}

// The defaults are written here once; config.rs reads them for the `TOKEN_*` settings and
// `HEALTH_CHECK_INTERVAL`.
impl TokenSettings {
    pub const DEFAULT_REFRESH_MARGIN: Duration = Duration::from_secs(3600);
    /// A little over Dhan's own ~120 s throttle, so the first retry is not refused by it.
    pub const DEFAULT_MINT_COOLDOWN: Duration = Duration::from_secs(125);
    pub const DEFAULT_MAX_FAILURES: u32 = 3;
    pub const DEFAULT_PREMARKET_REFRESH: NaiveTime = match NaiveTime::from_hms_opt(8, 30, 0) {
        Some(t) => t,
        None => panic!("08:30 is a valid time"),
    };
    pub const DEFAULT_FALLBACK_TTL: Duration = Duration::from_secs(24 * 3600);
    pub const DEFAULT_HEALTH_CHECK: Duration = Duration::from_secs(21_600);
}

impl Default for TokenSettings {
    fn default() -> Self {
        Self {
            refresh_margin: Self::DEFAULT_REFRESH_MARGIN,
            mint_cooldown: Self::DEFAULT_MINT_COOLDOWN,
            max_failures: Self::DEFAULT_MAX_FAILURES,
            premarket_refresh: Some(Self::DEFAULT_PREMARKET_REFRESH),
            fallback_ttl: Self::DEFAULT_FALLBACK_TTL,
            health_check: Some(Self::DEFAULT_HEALTH_CHECK),
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
    /// The journal could not be asked who may mint (its error's text). Nothing was sent to
    /// Dhan; the schedule tries again after the cooldown.
    #[error(
        "the journal (DATABASE_URL) could not be asked whether another instance is getting a \
         token ({0}), so none is minted until it answers"
    )]
    JournalUnavailable(String),
}

impl From<DhanError> for TokenError {
    fn from(e: DhanError) -> Self {
        TokenError::Dhan(e)
    }
}

/// A token this close to expiry is not handed out: a request could outlive it.
const EXPIRY_SKEW: chrono::Duration = chrono::Duration::seconds(30);

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
    /// The stored token and the mint lease.
    journal: Arc<dyn TokenJournal>,
    clock: Arc<dyn Clock>,
    /// Which days have a session, for the pre-market check.
    calendar: Arc<Calendar>,
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
    /// Tells the trader when no usable token can be had, and when one is again (set once by
    /// `startup`; the CLI's keepers tell nobody).
    notifier: std::sync::OnceLock<crate::notify::Notifier>,
    /// Whether the trader was told of trouble not yet resolved.
    trouble_told: AtomicBool,
}

impl TokenKeeper {
    pub fn new(
        client: DhanClient,
        creds: Credentials,
        settings: TokenSettings,
        journal: Arc<dyn TokenJournal>,
        clock: Arc<dyn Clock>,
        calendar: Arc<Calendar>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                client,
                creds,
                settings,
                journal,
                clock,
                calendar,
                current: RwLock::new(None),
                mint: tokio::sync::Mutex::new(MintState::default()),
                report: Mutex::new(MintState::default()),
                minting: AtomicBool::new(false),
                consent: Mutex::new(ConsentState::default()),
                replan: Notify::new(),
                instance: uuid::Uuid::now_v7().to_string(),
                notifier: std::sync::OnceLock::new(),
                trouble_told: AtomicBool::new(false),
            }),
        }
    }

    /// When the token in use was issued and when it expires (the `iat` of Dhan's JWT, when it
    /// carries one), for the metrics; never the token itself.
    pub fn token_times(&self) -> Option<(Option<DateTime<Utc>>, DateTime<Utc>)> {
        let token = self.current()?;
        let issued =
            crate::dhan::jwt::read_claims(token.value.expose_secret()).and_then(|c| c.issued_at());
        Some((issued, token.expires_at))
    }

    pub fn client(&self) -> &DhanClient {
        &self.inner.client
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

    /// Whether a new token can be had without a person: PIN + TOTP, or RenewToken of a web
    /// token Dhan has not refused.
    pub fn renewable(&self) -> bool {
        self.inner.creds.can_mint() || self.usable().is_some_and(|t| t.web_token)
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

    /// Makes `token` the one in use and wakes the schedule.
    fn install(&self, token: Token) {
        *self
            .inner
            .current
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Some(token);
        self.inner.replan.notify_one();
    }

    /// The current token, if it may be sent: not refused and not about to expire.
    pub(crate) fn usable(&self) -> Option<Token> {
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

    /// Publishes the mint state for status reports.
    fn sync_report(&self, st: &MintState) {
        *self.inner.report.lock().unwrap_or_else(|e| e.into_inner()) = st.clone();
    }
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
