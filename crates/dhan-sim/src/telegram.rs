//! A stand-in for Telegram's Bot API, so a person trying dhanhook against the simulator can see
//! its notifications without a bot: point `TELEGRAM_API_URL` at `http://<sim>/sim/telegram`
//! (any `TELEGRAM_BOT_TOKEN`, any `TELEGRAM_CHAT_ID`) and read what was sent at
//! `GET /sim/telegram/messages`. Not part of Dhan's API; nothing leaves the machine.

use serde_json::{Value, json};

use crate::{
    server::{Reply, Req},
    state::Shared,
};

/// `POST /sim/telegram/bot<token>/sendMessage`: records the message as Telegram would take it.
pub(crate) fn send_message(shared: &Shared, req: &Req) -> Reply {
    let Ok(body) = serde_json::from_slice::<Value>(&req.body) else {
        return Reply::Json(
            400,
            json!({"ok": false, "error_code": 400, "description": "Bad Request: invalid JSON"}),
        );
    };
    if body["chat_id"].is_null() || !body["text"].is_string() {
        return Reply::Json(
            400,
            json!({"ok": false, "error_code": 400, "description": "Bad Request: chat_id and text are required"}),
        );
    }
    let mut messages = shared.telegram.lock().unwrap_or_else(|e| e.into_inner());
    messages.push(json!({
        "chat_id": body["chat_id"],
        "text": body["text"],
        "parse_mode": body["parse_mode"],
    }));
    Reply::Json(
        200,
        json!({"ok": true, "result": {"message_id": messages.len()}}),
    )
}

/// `GET /sim/telegram/messages`: every message received, oldest first.
pub(crate) fn messages(shared: &Shared, _req: &Req) -> Reply {
    let messages = shared
        .telegram
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    Reply::Json(200, Value::Array(messages))
}
