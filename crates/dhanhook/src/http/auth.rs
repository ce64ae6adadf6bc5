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
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if secrets_match(given.trim(), expected) {
            Ok(Admin)
        } else {
            Err(error(
                StatusCode::UNAUTHORIZED,
                "admin token required: send Authorization: Bearer <ADMIN_TOKEN>",
            ))
        }
    }
}
