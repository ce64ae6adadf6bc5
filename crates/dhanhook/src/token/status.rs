//! What `/ready`, `/` and `/auth/status` say about the token: its state in Dhan's terms, and
//! when it is not usable or will not be renewed, why and what to do about it.

use std::sync::atomic::Ordering;

use serde::Serialize;

use super::{EXPIRY_SKEW, Token, TokenCheck, TokenKeeper, TokenSource, hours_left, to_chrono};
use crate::clock::ist;

/// Where the token stands, as `/ready`, `/` and `/auth/status` name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenState {
    /// Dhan accepts it and it lasts beyond the refresh margin.
    Valid,
    /// Valid, inside the refresh margin.
    Expiring,
    /// Loaded at start-up, not yet accepted by Dhan.
    Unchecked,
    /// None usable; a new one is being obtained.
    Minting,
    /// Dhan refused it.
    Refused,
    Expired,
    None,
}

impl TokenState {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenState::Valid => "valid",
            TokenState::Expiring => "expiring",
            TokenState::Unchecked => "unchecked",
            TokenState::Minting => "minting",
            TokenState::Refused => "refused",
            TokenState::Expired => "expired",
            TokenState::None => "none",
        }
    }
}

impl std::fmt::Display for TokenState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The token's state as reported on `/ready`, `/` and `/auth/status`.
#[derive(Debug, Clone, Serialize)]
pub struct TokenStatus {
    pub state: TokenState,
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
            TokenState::Expiring => "valid",
            other => other.as_str(),
        }
    }

    /// Whether orders can be sent with it now.
    pub fn usable(&self) -> bool {
        matches!(self.state, TokenState::Valid | TokenState::Expiring)
    }
}

impl TokenKeeper {
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
            _ if minting && self.usable().is_none() => TokenState::Minting,
            None => TokenState::None,
            Some(t) if t.refused() => TokenState::Refused,
            Some(t) if t.expires_at <= now => TokenState::Expired,
            Some(t) if t.check == TokenCheck::Unchecked => TokenState::Unchecked,
            Some(t) if t.expires_at - to_chrono(self.inner.settings.refresh_margin) <= now => {
                TokenState::Expiring
            }
            Some(_) => TokenState::Valid,
        };
        let advice = (!renewable).then(|| self.no_route_advice());
        let problem = match (state, &current) {
            (TokenState::Refused | TokenState::None | TokenState::Expired, _)
                if advice.is_some() =>
            {
                Some(self.unusable_reason())
            }
            (
                TokenState::Refused,
                Some(Token {
                    check: TokenCheck::Refused(why),
                    ..
                }),
            ) => Some(format!(
                "Dhan refused the token ({why}); a new one is being obtained"
            )),
            (TokenState::None | TokenState::Expired, _) => {
                Some(report.last_error.clone().map_or_else(
                    || "a new token is being obtained".to_owned(),
                    |e| format!("getting a new token failed: {e}"),
                ))
            }
            (TokenState::Unchecked, _) => Some(format!(
                "not yet accepted by Dhan (it is checked with GET /v2/profile at start-up, then every \
                 minute until Dhan answers){}",
                advice
                    .as_ref()
                    .map(|a| format!("; it will not be renewed: {a}"))
                    .unwrap_or_default()
            )),
            (TokenState::Valid | TokenState::Expiring, Some(t)) => advice.map(|a| {
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

    /// Why there is no usable token and none can be had: what Dhan said about the last one,
    /// then what is missing and how to add it.
    pub(super) fn unusable_reason(&self) -> String {
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
    pub(super) fn no_route_advice(&self) -> String {
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
}
