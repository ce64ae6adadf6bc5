//! Admin authentication: `Authorization: Bearer <ADMIN_TOKEN>`, compared in constant time.
//! With no `ADMIN_TOKEN` configured the admin endpoints are off (403 saying how to turn them on).

use axum::{
    extract::FromRequestParts,
    http::{StatusCode, header::AUTHORIZATION, request::Parts},
    response::Response,
};

use super::{AppState, error};
use crate::secrets::secrets_match;

/// Proof that the request carried the admin token. Add it as a handler argument.
#[derive(Debug)]
pub(crate) struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(expected) = &state.inner.admin_token else {
            return Err(error(
                StatusCode::FORBIDDEN,
                "admin endpoints are disabled; set ADMIN_TOKEN to a long random value to enable them",
            ));
        };
        let given = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token)
            .unwrap_or("");
        if secrets_match(given, expected) {
            return Ok(Admin);
        }
        let ip = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| state.client_ip(c.0.ip(), &parts.headers));
        let verdict = ip.map(|ip| state.inner.guard.wrong(ip, "admin token"));
        match verdict {
            Some(super::guard::Verdict::Throttled(wait)) => Err(super::too_many_wrong(wait)),
            _ => Err(error(
                StatusCode::UNAUTHORIZED,
                "admin token required: send Authorization: Bearer <ADMIN_TOKEN>",
            )),
        }
    }
}

/// The token of an `Authorization` value using the Bearer scheme. The scheme name is
/// case-insensitive (RFC 7235 §2.1), so `bearer` and `BEARER` from curl scripts or proxies work
/// too; the token itself is compared exactly.
pub(super) fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}
