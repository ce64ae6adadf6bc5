//! Dhan-shaped access tokens and random identifiers.
//!
//! Tokens look like Dhan's (a JWT with an HS512 header and Dhan's claims) so that clients
//! that read `exp` from the payload work unchanged; the signature is random bytes because
//! clients never verify it, and the simulator only ever compares whole token strings.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde_json::json;

/// Who a token was issued to, as Dhan's `tokenConsumerType` claim says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenKind {
    /// Minted by an API call (PIN+TOTP or consent flow).
    App,
    /// Generated on web.dhan.co; the only kind RenewToken accepts.
    SelfWeb,
}

/// The token currently accepted by the REST host.
#[derive(Clone)]
pub(crate) struct ActiveToken {
    pub(crate) token: String,
    pub(crate) kind: TokenKind,
    pub(crate) expires_at: DateTime<Utc>,
}

// Hand-written so that debug output never contains the token itself.
impl std::fmt::Debug for ActiveToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActiveToken")
            .field("token", &"***")
            .field("kind", &self.kind)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Fills a buffer with OS randomness. If the OS source fails (it does not on supported
/// platforms), fall back to bytes derived from the clock so that no request crashes.
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    if getrandom::fill(&mut buf).is_err() {
        let nanos = Utc::now().timestamp_nanos_opt().unwrap_or_default();
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (nanos >> ((i % 8) * 8)) as u8 ^ (i as u8).wrapping_mul(31);
        }
    }
    buf
}

/// A random version-4 UUID in the usual hyphenated form (Dhan's consent and token ids).
pub(crate) fn uuid_v4() -> String {
    let mut b = random_bytes::<16>();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Builds a JWT-shaped token for `client_id`, valid from `iat` to `exp`.
pub(crate) fn mint_jwt(
    client_id: &str,
    kind: TokenKind,
    iat: DateTime<Utc>,
    exp: DateTime<Utc>,
) -> String {
    let header = json!({"typ": "JWT", "alg": "HS512"});
    let payload = match kind {
        TokenKind::App => json!({
            "iss": "dhan",
            "partnerId": "",
            "exp": exp.timestamp(),
            "iat": iat.timestamp(),
            "tokenConsumerType": "APP",
            "dhanClientId": client_id,
        }),
        TokenKind::SelfWeb => json!({
            "iss": "dhan",
            "partnerId": "",
            "webhookUrl": "",
            "exp": exp.timestamp(),
            "iat": iat.timestamp(),
            "tokenConsumerType": "SELF",
            "dhanClientId": client_id,
        }),
    };
    let signature = random_bytes::<64>();
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(payload.to_string()),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwt_has_dhan_header_and_claims() {
        let iat = DateTime::from_timestamp(1_767_225_600, 0).unwrap();
        let exp = iat + chrono::Duration::hours(24);
        let token = mint_jwt("1000000001", TokenKind::App, iat, exp);
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header, json!({"typ": "JWT", "alg": "HS512"}));
        let payload: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(payload["iss"], "dhan");
        assert_eq!(payload["iat"], 1_767_225_600);
        assert_eq!(payload["exp"], 1_767_225_600 + 86_400);
        assert_eq!(payload["dhanClientId"], "1000000001");
        assert_eq!(payload["tokenConsumerType"], "APP");
        assert!(payload.get("partnerId").is_some());
        let other = mint_jwt("1000000001", TokenKind::App, iat, exp);
        assert_ne!(token, other, "two tokens with the same claims still differ");
    }

    #[test]
    fn uuid_shape() {
        let id = uuid_v4();
        assert_eq!(id.len(), 36);
        assert_eq!(id.as_bytes()[14], b'4');
        assert_eq!(id.matches('-').count(), 4);
    }
}
