//! Reading a Dhan access token's claims (payload only, unverified).
//!
//! Dhan signs its tokens; we only need to know when one expires and what kind it is, so the
//! payload is base64-decoded without checking the signature. The result is untrusted input:
//! anything malformed gives `None`, never a panic, and callers fall back to Dhan's
//! `expiryTime` or a configured lifetime.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, TimeZone, Utc};
use serde::Deserialize;

/// The claims we use. Every field is optional: tokens from other flows may lack some.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Claims {
    pub exp: Option<i64>,
    pub iat: Option<i64>,
    #[serde(rename = "dhanClientId")]
    pub dhan_client_id: Option<String>,
    /// `APP` (PIN + TOTP or API key) or `SELF` (generated on Dhan Web; renewable).
    #[serde(rename = "tokenConsumerType")]
    pub token_consumer_type: Option<String>,
}

impl Claims {
    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.exp.and_then(|s| Utc.timestamp_opt(s, 0).single())
    }

    pub fn issued_at(&self) -> Option<DateTime<Utc>> {
        self.iat.and_then(|s| Utc.timestamp_opt(s, 0).single())
    }
}

/// The claims of a JWT-shaped token, or `None` if it is not one we can read.
pub fn read_claims(token: &str) -> Option<Claims> {
    // A real token is well under 2 KiB; refuse to decode anything absurd.
    if token.len() > 16 * 1024 {
        return None;
    }
    let mut parts = token.trim().split('.');
    let (_header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    // Some encoders pad; the JWT spec says not to. Accept both.
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: Claims = serde_json::from_slice(&bytes).ok()?;
    Some(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(payload: &str) -> String {
        format!(
            "{}.{}.c2lnbmF0dXJl",
            URL_SAFE_NO_PAD.encode(r#"{"typ":"JWT","alg":"HS512"}"#),
            URL_SAFE_NO_PAD.encode(payload)
        )
    }

    #[test]
    fn reads_dhan_claims() {
        let t = token(
            r#"{"iss":"dhan","iat":1764547200,"exp":1764633600,"dhanClientId":"1000000001","tokenConsumerType":"APP","partnerId":"x"}"#,
        );
        let c = read_claims(&t).unwrap();
        assert_eq!(c.exp, Some(1_764_633_600));
        assert_eq!(c.dhan_client_id.as_deref(), Some("1000000001"));
        assert_eq!(c.token_consumer_type.as_deref(), Some("APP"));
        assert_eq!(c.expires_at().unwrap().timestamp(), 1_764_633_600);
    }

    #[test]
    fn garbage_is_none_never_a_panic() {
        let long = "a.".repeat(20_000);
        for bad in [
            "",
            "abc",
            "a.b",
            "a.b.c.d",
            "!!!.@@@.###",
            "eyJ.eyJ.x",
            long.as_str(),
            "\u{0}.\u{1}.\u{2}",
        ] {
            assert_eq!(read_claims(bad), None, "{bad:?}");
        }
        assert_eq!(read_claims(&token("[1,2,3]")), None);
        assert_eq!(read_claims(&token(r#"{"exp":"soon"}"#)), None);
    }

    #[test]
    fn missing_claims_are_none_fields() {
        let c = read_claims(&token("{}")).unwrap();
        assert_eq!(c, Claims::default());
        assert_eq!(c.expires_at(), None);
    }
}
