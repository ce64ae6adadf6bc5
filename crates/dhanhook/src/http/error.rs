//! Every error answer of every handler, in one place: what went wrong → status, headers and
//! JSON body. Handlers say *what* went wrong ([`ApiError`]); how that looks on the wire is
//! decided here, so the bodies cannot drift apart between endpoints.
//!
//! The bodies: `{"status":"error","error":…}` for a failure (plus `retry_after_secs` when the
//! caller should wait, and any context the endpoint adds); `{"status":"invalid","errors":[…]}`
//! for an alert refused for what it says; `{"status":"unauthorized",…}` for a wrong webhook
//! secret (fixed text: nothing about a valid alert is revealed before the secret).

use std::{borrow::Cow, time::Duration};

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::{Map, Value, json};

use crate::{alert::FieldProblem, pipeline::PipelineError};

/// What went wrong, as a handler sees it.
#[derive(Debug)]
pub(crate) enum ApiError {
    /// A failure with its status and a message for the caller.
    Failed {
        status: StatusCode,
        message: Cow<'static, str>,
        /// Seconds the caller should wait (a `retry-after` header and `retry_after_secs`).
        retry_after: Option<u64>,
        /// Context the endpoint adds to the body (e.g. the token's state).
        context: Map<String, Value>,
    },
    /// The alert is refused for what it says (422). `alert_id` when it was journaled anyway.
    Invalid {
        alert_id: Option<String>,
        errors: Vec<FieldProblem>,
    },
    /// The webhook secret is missing or wrong (401).
    WrongSecret,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<Cow<'static, str>>) -> Self {
        ApiError::Failed {
            status,
            message: message.into(),
            retry_after: None,
            context: Map::new(),
        }
    }

    /// Too many wrong secrets or admin tokens from one address.
    pub(crate) fn throttled(wait: Duration) -> Self {
        let secs = wait.as_secs().max(1);
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!("too many wrong secrets or tokens from this address; try again in {secs} s"),
        )
        .retry_after(secs)
    }

    /// The caller should try again in `secs` seconds.
    pub(crate) fn retry_after(mut self, secs: u64) -> Self {
        if let ApiError::Failed { retry_after, .. } = &mut self {
            *retry_after = Some(secs);
        }
        self
    }

    /// Adds `key: value` to the body.
    pub(crate) fn with(mut self, key: &str, value: Value) -> Self {
        if let ApiError::Failed { context, .. } = &mut self {
            context.insert(key.to_owned(), value);
        }
        self
    }

    /// An alert refused for what it says, not journaled.
    pub(crate) fn invalid(errors: Vec<FieldProblem>) -> Self {
        ApiError::Invalid {
            alert_id: None,
            errors,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Failed {
                status,
                message,
                retry_after,
                context,
            } => {
                let mut body = Map::new();
                body.insert("status".to_owned(), json!("error"));
                body.insert("error".to_owned(), json!(message));
                if let Some(secs) = retry_after {
                    body.insert("retry_after_secs".to_owned(), json!(secs));
                }
                body.extend(context);
                match retry_after {
                    Some(secs) => (
                        status,
                        [("retry-after", secs.to_string())],
                        Json(Value::Object(body)),
                    )
                        .into_response(),
                    None => (status, Json(Value::Object(body))).into_response(),
                }
            }
            ApiError::Invalid { alert_id, errors } => {
                let body = match alert_id {
                    Some(id) => json!({"status": "invalid", "alert_id": id, "errors": errors}),
                    None => json!({"status": "invalid", "errors": errors}),
                };
                (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response()
            }
            ApiError::WrongSecret => (
                StatusCode::UNAUTHORIZED,
                Json(json!({"status": "unauthorized", "error": "missing or wrong secret"})),
            )
                .into_response(),
        }
    }
}

impl From<PipelineError> for ApiError {
    fn from(e: PipelineError) -> Self {
        match e {
            PipelineError::NotJournaled(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the alert could not be recorded, so nothing was placed; it is safe to send it again",
            ),
            PipelineError::Unresolvable(problems) => ApiError::invalid(problems),
            PipelineError::Stale { alert_id, problem } => ApiError::Invalid {
                alert_id: Some(alert_id),
                errors: vec![problem],
            },
            PipelineError::InstrumentsMissing => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the scrip master is not loaded yet (see /ready); nothing was placed; it is safe to send the alert again",
            ),
            PipelineError::PositionsUnreadable(why) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "nothing was placed: the alert depends on the account's position, which could not be read ({why}). dhanhook never guesses a position; it is safe to send the alert again"
                ),
            ),
            PipelineError::DuplicateUnreadable(..) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "this alert was already received; its outcome cannot be read right now (nothing new was placed)",
            ),
        }
    }
}
