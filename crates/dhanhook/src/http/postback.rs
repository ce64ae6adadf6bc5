//! `POST /dhan/postback/<DHAN_POSTBACK_SECRET>`: Dhan's order-status postback, taken as a
//! hint only. Its body names an order; the order tracker then re-reads that order from Dhan and
//! journals what Dhan says (source `postback`). Nothing in the body is believed, so a forged
//! postback changes nothing; the unguessable path only keeps strangers from making us look.
//! Without `DHAN_POSTBACK_SECRET`, or with another path, the answer is the ordinary 404.

use axum::{
    body::Bytes,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::Value;

use super::{AppState, error};
use crate::secrets::secrets_match;

/// Longest order id taken from a postback (Dhan's are 12–16 digits).
const MAX_ORDER_ID: usize = 32;

pub(super) async fn receive(
    State(state): State<AppState>,
    Path(secret): Path<String>,
    body: Bytes,
) -> Response {
    let Some((expected, hints)) = &state.inner.postback else {
        return super::not_found().await;
    };
    if !secrets_match(&secret, expected) {
        return super::not_found().await;
    }
    let order_id = serde_json::from_slice::<Value>(&body).ok().and_then(|v| {
        ["orderId", "order_id", "orderNo"]
            .iter()
            .find_map(|k| match &v[*k] {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
    });
    match order_id {
        Some(id)
            if !id.is_empty()
                && id.len() <= MAX_ORDER_ID
                && id.chars().all(|c| c.is_ascii_alphanumeric()) =>
        {
            hints.hint(&id);
            StatusCode::OK.into_response()
        }
        _ => error(
            StatusCode::BAD_REQUEST,
            "a postback names an order (orderId)",
        ),
    }
}
