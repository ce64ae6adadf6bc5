//! Dhan's errors, classified by what the caller should do about them.
//!
//! Dhan's codes alone are not diagnostic: DH-905 covers both bad input and "Invalid IP", and
//! DH-906 covers a closed market, a not-found lookup and even "Invalid Token". So the kind is
//! decided from the HTTP status, the code *and* the message (`dhan-api.md` §2.6, §5).

use std::fmt;

/// What kind of failure this is, which decides what happens next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DhanErrorKind {
    /// The token (or the credentials used to mint one) was refused: refresh, then retry reads.
    Auth,
    /// Too many requests (DH-904 / HTTP 429), or a token minted too recently.
    RateLimit,
    /// Dhan refused the request's content (DH-905): fixing the request is the only cure.
    Input,
    /// Orders from this server's IP are refused (DH-905 "Invalid IP"): a static IP must be
    /// whitelisted at Dhan.
    StaticIp,
    /// Dhan refused the order itself (DH-906), e.g. the market is closed.
    Order,
    /// A server-side or network failure after the request may have reached Dhan (5xx,
    /// DH-908/909, timeout, reset). For an order, its fate is unknown.
    Transient,
    /// No connection could be made: the request never left this machine.
    Unreachable,
    /// Anything else.
    Unknown,
}

impl DhanErrorKind {
    /// A short fixed name, for metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            DhanErrorKind::Auth => "auth",
            DhanErrorKind::RateLimit => "rate_limit",
            DhanErrorKind::Input => "input",
            DhanErrorKind::StaticIp => "static_ip",
            DhanErrorKind::Order => "order",
            DhanErrorKind::Transient => "transient",
            DhanErrorKind::Unreachable => "unreachable",
            DhanErrorKind::Unknown => "unknown",
        }
    }
}

/// A failed Dhan call. `Display` is safe to log and to show to the user: it never contains a
/// URL (auth URLs carry the PIN and TOTP) or a credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct DhanError {
    pub kind: DhanErrorKind,
    pub http_status: Option<u16>,
    pub code: Option<String>,
    pub message: String,
}

impl fmt::Display for DhanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.code, self.http_status) {
            (Some(code), _) => write!(f, "{code}: {}", self.message),
            (None, Some(status)) => write!(f, "HTTP {status}: {}", self.message),
            (None, None) => f.write_str(&self.message),
        }
    }
}

/// The advice attached to a static-IP refusal.
pub const STATIC_IP_ADVICE: &str = "Dhan accepts orders only from a whitelisted static IP: set this server's \
     public IPv4 as the PRIMARY IP at web.dhan.co (My Profile > DhanHQ Trading APIs > Static IP), or run \
     dhanhook on a machine whose address is whitelisted (on Cloud Run: VPC egress through Cloud NAT with a \
     reserved address)";

impl DhanError {
    /// Builds an error from what Dhan answered, deciding its kind.
    pub fn from_response(http_status: u16, code: Option<String>, message: String) -> Self {
        let kind = classify(Some(http_status), code.as_deref(), &message);
        let message = if kind == DhanErrorKind::StaticIp {
            format!("{message}. {STATIC_IP_ADVICE}")
        } else {
            message
        };
        Self {
            kind,
            http_status: Some(http_status),
            code,
            message,
        }
    }

    pub fn transport(kind: DhanErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            http_status: None,
            code: None,
            message: message.into(),
        }
    }

    pub fn is_auth(&self) -> bool {
        self.kind == DhanErrorKind::Auth
    }
}

/// Decides the kind of a Dhan error from its HTTP status, code and message.
pub fn classify(http_status: Option<u16>, code: Option<&str>, message: &str) -> DhanErrorKind {
    let msg = message.to_ascii_lowercase();
    let code = code.unwrap_or("").to_ascii_uppercase();
    // The mint throttle mentions "token" but is a rate limit, not an auth failure.
    if msg.contains("once every") || msg.contains("too many") {
        return DhanErrorKind::RateLimit;
    }
    if code == "DH-904" || http_status == Some(429) || code == "805" {
        return DhanErrorKind::RateLimit;
    }
    if msg.contains("invalid ip") || msg.contains("ip not") || msg.contains("static ip") {
        return DhanErrorKind::StaticIp;
    }
    let mentions_auth = [
        "token",
        "totp",
        "invalid pin",
        "authenticat",
        "client id",
        "locked",
    ]
    .iter()
    .any(|w| msg.contains(w));
    if code == "DH-901" || matches!(code.as_str(), "807" | "808" | "809" | "810") {
        return DhanErrorKind::Auth;
    }
    // DH-905/906 are misused for auth failures; errors without a code (the mint endpoint's
    // `{"status":"error","message":"Invalid TOTP"}`) are judged by their message too.
    if (code.is_empty() || code == "DH-905" || code == "DH-906") && mentions_auth {
        return DhanErrorKind::Auth;
    }
    if http_status == Some(401) || (http_status == Some(403) && code.is_empty()) {
        return DhanErrorKind::Auth;
    }
    match code.as_str() {
        "DH-905" => return DhanErrorKind::Input,
        "DH-906" => return DhanErrorKind::Order,
        "DH-908" | "DH-909" | "800" => return DhanErrorKind::Transient,
        _ => {}
    }
    match http_status {
        Some(500..=599) => DhanErrorKind::Transient,
        Some(400 | 404 | 422) if code.is_empty() => DhanErrorKind::Input,
        _ => DhanErrorKind::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::{DhanErrorKind::*, *};

    #[test]
    fn classification_table() {
        let cases: &[(Option<u16>, Option<&str>, &str, DhanErrorKind)] = &[
            (
                Some(401),
                Some("DH-901"),
                "Client ID or user generated access token is invalid or expired.",
                Auth,
            ),
            (Some(400), Some("DH-906"), "Invalid Token", Auth),
            (Some(400), Some("DH-906"), "Invalid TOTP", Auth),
            (Some(400), Some("DH-906"), "Invalid Pin", Auth),
            (
                Some(400),
                Some("DH-901"),
                "Account locked due to multiple failed attempts",
                Auth,
            ),
            (
                Some(401),
                None,
                "Authentication Failed - Client ID or Token invalid",
                Auth,
            ),
            (Some(401), Some("808"), "Authentication Failed", Auth),
            (
                Some(400),
                Some("DH-905"),
                "Token can be generated once every 2 minutes.",
                RateLimit,
            ),
            (Some(429), Some("DH-904"), "Too many requests", RateLimit),
            (Some(429), None, "", RateLimit),
            (Some(400), Some("DH-905"), "Invalid IP", StaticIp),
            (
                Some(400),
                Some("DH-905"),
                "Missing required fields, bad values for parameters etc.",
                Input,
            ),
            (Some(400), Some("DH-905"), "quantity is required", Input),
            (
                Some(400),
                Some("DH-906"),
                "Market is Closed! Want to place an offline order?",
                Order,
            ),
            (
                Some(404),
                Some("DH-906"),
                "Incorrect request for order and cannot be processed",
                Order,
            ),
            (
                Some(500),
                Some("DH-908"),
                "Internal Server Error",
                Transient,
            ),
            (Some(502), Some("DH-909"), "Network Error", Transient),
            (Some(503), None, "Service Unavailable", Transient),
            (Some(418), Some("DH-910"), "Other", Unknown),
            (Some(200), None, "Invalid TOTP", Auth),
        ];
        for (status, code, message, expected) in cases {
            assert_eq!(
                classify(*status, *code, message),
                *expected,
                "{status:?} {code:?} {message}"
            );
        }
    }

    #[test]
    fn a_static_ip_refusal_tells_the_user_what_to_do() {
        let e = DhanError::from_response(400, Some("DH-905".to_owned()), "Invalid IP".to_owned());
        assert_eq!(e.kind, StaticIp);
        assert!(e.to_string().contains("whitelisted static IP"), "{e}");
    }
}
