//! The journal's copy of the token: the starting token at start-up, adopting a token another
//! instance obtained, and storing (sealed with `TOKEN_KEY`) every token obtained here, so a
//! restart or a second instance does not mint again.

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};

use super::{EXPIRY_SKEW, Token, TokenCheck, TokenKeeper, TokenSource, hours_left, is_web_token};
use crate::{dhan::jwt, store::StoredToken};

impl TokenKeeper {
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

    /// Adopts the journal's token when it is valid and newer than the one in use (another
    /// instance minted it). Returns when the stored token was obtained, if obtaining it was a
    /// call to Dhan's auth host (here or by another instance), valid or not: the start of
    /// Dhan's mint cooldown. A pasted `DHAN_ACCESS_TOKEN`, stored at start-up, started none.
    ///
    /// A journal that cannot be read adopts nothing and reports no cooldown start: the token
    /// in use and this process's own last attempt still count.
    pub(super) async fn adopt_stored(&self) -> Option<DateTime<Utc>> {
        let Ok(Some(mut stored)) = self
            .inner
            .journal
            .load_token(self.inner.client.client_id())
            .await
        else {
            return None;
        };
        let obtained_at = TokenSource::parse(&stored.source)
            .was_issued_here()
            .then_some(stored.obtained_at);
        let now = self.now();
        if stored.expires_at <= now + EXPIRY_SKEW {
            return obtained_at;
        }
        let Some((value, _)) = self.unseal(&stored.token) else {
            return obtained_at;
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
        obtained_at
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

    /// Stores `token` (sealed) as the account's token, replacing the previous one.
    pub(super) async fn persist(&self, token: &Token) {
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
}
