//! Getting a new token: one caller at a time in this process (the single-flight mutex), one
//! instance at a time across the journal (the mint lease), waiting for another instance's mint
//! instead of racing it, and recording the outcome. Whether to mint at all is
//! [`super::policy::decide`]'s answer.

use std::sync::atomic::Ordering;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};

use super::{
    Token, TokenCheck, TokenError, TokenKeeper, TokenSource, hours_left, is_web_token,
    policy::{self, Decision, MintState, Patience, Reason, Refusal, Situation},
    to_chrono,
};
use crate::{
    clock::ist,
    dhan::{jwt, types::IssuedToken},
    totp::Totp,
};

/// How long one instance holds the mint lease: a mint takes a second (the client gives up after
/// 8 s), and a crashed holder's lease must lapse soon. If the crashed holder did get a token it
/// never stored, the next mint meets Dhan's own 2-minute throttle and backs off.
const MINT_LEASE: chrono::Duration = chrono::Duration::seconds(30);
/// Polls (every 500 ms) while another instance mints.
const WAIT_FOR_OTHER_MINTER_POLLS: u32 = 60;

impl TokenKeeper {
    /// Gets a token for `reason`, or says why not: see [`policy::decide`] for the rules.
    pub(super) async fn refresh(
        &self,
        reason: Reason,
        rejected: Option<&Token>,
        patience: Patience,
    ) -> Result<Token, TokenError> {
        loop {
            let mut st = self.inner.mint.lock().await;

            // Someone may have refreshed while we waited: this process (the lock) or another
            // instance sharing the journal (the stored token).
            let stored_obtained_at = self.adopt_stored().await;
            let usable = self.usable();
            let renewable = self.renewable();
            let now = self.now();
            let decision = policy::decide(
                now,
                &Situation {
                    mint: &st,
                    usable: usable.as_ref(),
                    rejected,
                    renewable,
                    stored_obtained_at,
                },
                reason,
                patience,
                &self.inner.settings,
            );
            if policy::lifts_halt(reason, &decision) {
                st.lift_halt();
                self.sync_report(&st);
            }
            match decision {
                // `decide` says so only with a usable token; were it gone, deciding again is
                // right.
                Decision::UseCurrent => {
                    if let Some(cur) = usable {
                        return Ok(cur);
                    }
                }
                Decision::Mint => {
                    match reason {
                        Reason::Scheduled => {
                            tracing::warn!("Token expiring soon, generating new token...");
                        }
                        Reason::Missing => {
                            tracing::warn!("No valid token, generating new token...")
                        }
                        Reason::Refused | Reason::Operator => {
                            tracing::info!("Generating new token...");
                        }
                    }
                    return self.mint_under_lease(&mut st, reason, rejected).await;
                }
                Decision::Refuse(why) => return Err(self.refusal(why, &st)),
                Decision::WaitUntil(ready) => {
                    // The schedule waits out Dhan's throttle, without the lock: an order that
                    // arrives meanwhile is answered at once instead of queueing behind the wait.
                    drop(st);
                    let wait_secs = (ready - now).num_seconds().max(1);
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
                        () = self.inner.clock.sleep_until(ready) => {}
                        t = stored_token => return Ok(t),
                    }
                }
            }
        }
    }

    /// The error for a refusal, in words that say what to do.
    fn refusal(&self, why: Refusal, st: &MintState) -> TokenError {
        match why {
            Refusal::NoRoute => TokenError::NoRoute(self.unusable_reason()),
            Refusal::Halted => TokenError::Halted {
                failures: st.failures,
                last_error: st.last_error.clone().unwrap_or_default(),
            },
            Refusal::BackingOff { until } => TokenError::BackingOff {
                last_error: st.last_error.clone().unwrap_or_default(),
                next_attempt: ist(until).format("%H:%M:%S").to_string(),
            },
            Refusal::Cooldown { wait_secs } => TokenError::Cooldown { wait_secs },
        }
    }

    /// Adopts the newest stored token (this process or another instance may have minted
    /// one), then returns the token in use if it already answers `reason`.
    pub(super) async fn stored_answer(
        &self,
        reason: Reason,
        rejected: Option<&Token>,
    ) -> Option<Token> {
        self.adopt_stored().await;
        let now = self.now();
        self.usable()
            .filter(|cur| policy::satisfies(cur, reason, rejected, now, &self.inner.settings))
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
            .await;
        let leased = match leased {
            Ok(leased) => leased,
            // A journal that cannot answer is not "another instance holds the lease": waiting
            // for that phantom minter only delayed the same failure by 30 s and blamed it on
            // someone else. Nor does this mint without the lease: instances sharing this
            // journal could mint over each other (each new token kills the last), the token
            // could not be stored for them or for a restart, and no alert can be journaled,
            // hence none placed, until the journal answers again. So the refresh fails now,
            // saying so, without calling Dhan (it is no credential failure: no count toward
            // the halt, no cooldown); the schedule tries again after the cooldown.
            Err(e) => {
                tracing::error!(
                    error = %e,
                    lease = %lease,
                    "the journal could not be asked for the token-mint lease; no token is minted until it answers"
                );
                let err = TokenError::JournalUnavailable(e.to_string());
                st.last_error = Some(err.to_string());
                self.sync_report(st);
                return Err(err);
            }
        };
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
        if let Some(m) = self.inner.client.metrics() {
            // Only calls that reached for Dhan's auth host count as attempts.
            match &result {
                Ok(_) => m.mint(None),
                Err(TokenError::Dhan(e)) => m.mint(Some(e.kind.as_str())),
                Err(_) => {}
            }
        }
        // Stored before the lease is released, so the next lease holder sees it.
        if let Ok(token) = &result {
            self.persist(token).await;
        }
        let _ = self
            .inner
            .journal
            .release_lease(&lease, &self.inner.instance)
            .await;
        match result {
            Ok(token) => {
                st.record_success(attempt_at);
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
                if st.record_failure(attempt_at, &e, self.inner.settings.max_failures) {
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
                st.last_attempt = Some(attempt_at);
                st.last_error = Some(other.to_string());
                self.sync_report(st);
                Err(other)
            }
        }
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

    pub(super) fn token_from(&self, issued: IssuedToken, source: TokenSource) -> Token {
        Token {
            expires_at: self.expiry_of(&issued.access_token, issued.expiry_time),
            web_token: is_web_token(&issued.access_token),
            value: issued.access_token,
            source,
            check: TokenCheck::Accepted,
        }
    }

    /// Expiry from the JWT's `exp`, else Dhan's `expiryTime`, else now + the fallback lifetime.
    pub(super) fn expiry_of(
        &self,
        token: &SecretString,
        expiry_time: Option<DateTime<Utc>>,
    ) -> DateTime<Utc> {
        jwt::read_claims(token.expose_secret())
            .and_then(|c| c.expires_at())
            .or(expiry_time)
            .unwrap_or_else(|| self.now() + to_chrono(self.inner.settings.fallback_ttl))
    }
}
