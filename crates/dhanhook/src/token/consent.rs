//! The API-key consent flow, for accounts without PIN + TOTP: `POST /auth/consent` starts it
//! and gives Dhan's login URL for the user's browser; Dhan then redirects the browser to the
//! public `/auth/callback` with a `tokenId`, which is exchanged for a token.
//!
//! The callback is public, and every exchange carries the API secret and spends Dhan's daily
//! consent quota, so a callback is only acted on while a consent started here is fresh, each
//! `tokenId` once, a few tries per consent, and only for a `tokenId` shaped like Dhan's.

use std::{collections::HashSet, sync::atomic::Ordering};

use chrono::{DateTime, Utc};

use super::{Token, TokenError, TokenKeeper, TokenSource, hours_left};

#[derive(Debug, Default)]
pub(super) struct ConsentState {
    /// consentAppId and when it was created; Dhan's login link is short-lived.
    pending: Option<(String, DateTime<Utc>)>,
    /// tokenIds already presented to the callback: each is used at most once.
    used_token_ids: HashSet<String>,
    /// Calls to Dhan made for the pending consent; at [`CONSENT_TRIES`] it is cancelled, so
    /// forged callbacks cannot make Dhan calls that carry the API secret without end.
    tries: u32,
}

/// Most callbacks (calls to Dhan) one consent gets before it is cancelled.
const CONSENT_TRIES: u32 = 5;

/// How long a started consent waits for its callback.
const CONSENT_WINDOW: chrono::Duration = chrono::Duration::minutes(10);

/// Whether `token_id` looks like one Dhan issues (letters, digits, `-`, `_`; 8 to 128 of them):
/// anything else is refused without calling Dhan.
fn plausible_token_id(token_id: &str) -> bool {
    (8..=128).contains(&token_id.len())
        && token_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl TokenKeeper {
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
        // The single-flight lock: a consent token and a mint must not cross at Dhan.
        let mut st = self.inner.mint.lock().await;
        self.inner.minting.store(true, Ordering::SeqCst);
        let issued = self
            .inner
            .client
            .consume_consent(key, secret, token_id)
            .await;
        self.inner.minting.store(false, Ordering::SeqCst);
        let token = self.token_from(issued?, TokenSource::Consent);
        // A person logged in: whatever failed before, minting may resume.
        st.record_success(self.now());
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
}

#[cfg(test)]
mod tests {
    use super::plausible_token_id;

    #[test]
    fn only_token_ids_shaped_like_dhans_are_sent_to_dhan() {
        assert!(plausible_token_id("abcDEF12-_xyz"));
        assert!(plausible_token_id(&"a".repeat(128)));
        for bad in [
            "",
            "short",
            &"a".repeat(129),
            "has space1",
            "semi;colon",
            "ünïcödé12",
        ] {
            assert!(!plausible_token_id(bad), "{bad:?}");
        }
    }
}
