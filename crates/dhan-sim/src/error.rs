//! Error answers in the shapes Dhan's hosts use (dhan-api.md §5.1).

use serde_json::{Value, json};

/// An HTTP status with a JSON body, returned instead of the normal answer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ApiError {
    pub(crate) status: u16,
    pub(crate) body: Value,
}

impl ApiError {
    /// Dhan's trading envelope `{"errorType","errorCode","errorMessage"}`.
    pub(crate) fn dh(
        status: u16,
        error_type: &str,
        code: &str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            body: json!({
                "errorType": error_type,
                "errorCode": code,
                "errorMessage": message.into(),
            }),
        }
    }

    /// 400 DH-905: missing or bad parameters.
    pub(crate) fn input(message: impl Into<String>) -> Self {
        Self::dh(400, "Input_Exception", "DH-905", message)
    }

    /// DH-906 "Order_Error" with the given HTTP status (Dhan uses 400, 404 and 500 for it).
    pub(crate) fn order(status: u16, message: impl Into<String>) -> Self {
        Self::dh(status, "Order_Error", "DH-906", message)
    }

    /// 401 DH-901: the token is missing, invalid, expired or superseded.
    pub(crate) fn invalid_token() -> Self {
        Self::dh(
            401,
            "Invalid_Authentication",
            "DH-901",
            "Client ID or user generated access token is invalid or expired.",
        )
    }

    /// 429 DH-904: too many requests (Dhan sends no Retry-After).
    pub(crate) fn rate_limited() -> Self {
        Self::dh(429, "Rate_Limit", "DH-904", "Too many requests")
    }

    /// 500 DH-908: internal server error.
    pub(crate) fn internal() -> Self {
        Self::dh(
            500,
            "Internal_Server_Error",
            "DH-908",
            "Internal Server Error",
        )
    }

    /// 404 DH-906 for order lookups that find nothing (or find an order still in TRANSIT).
    pub(crate) fn order_lookup_miss() -> Self {
        Self::order(404, "Incorrect request for order and cannot be processed")
    }
}
