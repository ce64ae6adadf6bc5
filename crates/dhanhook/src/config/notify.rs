//! Notification settings: Telegram (`TELEGRAM_BOT_TOKEN`, `TELEGRAM_CHAT_ID`, the upstream's
//! names; `TELEGRAM_API_URL` for a self-hosted Bot API server or a test fake), a JSON webhook
//! (`NOTIFY_WEBHOOK_URL`, Discord or Slack), and which events to send (`NOTIFY_EVENTS`).

use secrecy::SecretString;

use super::ConfigError;
use crate::domain::EventKind;

/// Telegram's Bot API.
pub const DEFAULT_TELEGRAM_API_URL: &str = "https://api.telegram.org";

#[derive(Debug, Clone)]
pub struct NotifySettings {
    /// Secret: it is part of every Bot API URL.
    pub telegram_bot_token: Option<SecretString>,
    pub telegram_chat_id: Option<String>,
    pub telegram_api_url: String,
    /// Secret: a Discord or Slack webhook URL is its own credential.
    pub webhook_url: Option<SecretString>,
    /// The event kinds sent (`NOTIFY_EVENTS`; all by default).
    pub events: Vec<EventKind>,
}

impl NotifySettings {
    /// Telegram is on only when both the bot token and the chat id are set (as upstream).
    pub fn telegram(&self) -> Option<(SecretString, String)> {
        Some((
            self.telegram_bot_token.clone()?,
            self.telegram_chat_id.clone()?,
        ))
    }
}

pub(super) fn notify_settings(
    get: &impl Fn(&str) -> Option<String>,
) -> Result<NotifySettings, ConfigError> {
    let http_url = |var: &'static str, v: &str| {
        if v.starts_with("https://") || v.starts_with("http://") {
            Ok(())
        } else {
            // Not echoed: a webhook URL is a credential.
            Err(ConfigError::new(var, "must be an http(s) URL"))
        }
    };
    let telegram_api_url = match get("TELEGRAM_API_URL") {
        None => DEFAULT_TELEGRAM_API_URL.to_owned(),
        Some(v) => {
            http_url("TELEGRAM_API_URL", &v)?;
            v
        }
    };
    let webhook_url = match get("NOTIFY_WEBHOOK_URL") {
        None => None,
        Some(v) => {
            http_url("NOTIFY_WEBHOOK_URL", &v)?;
            Some(SecretString::from(v))
        }
    };
    let events = match get("NOTIFY_EVENTS").map(|v| v.to_ascii_lowercase()) {
        None => EventKind::ALL.to_vec(),
        Some(v) if v == "all" => EventKind::ALL.to_vec(),
        Some(v) if v == "none" => Vec::new(),
        Some(v) => {
            let mut kinds = vec![EventKind::Test];
            for name in v.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                let kind = EventKind::parse(name).ok_or_else(|| {
                    let names: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
                    ConfigError::new(
                        "NOTIFY_EVENTS",
                        format!(
                            "'{name}' is not an event; use all, none, or a list of {}",
                            names.join(", ")
                        ),
                    )
                })?;
                if !kinds.contains(&kind) {
                    kinds.push(kind);
                }
            }
            kinds
        }
    };
    Ok(NotifySettings {
        telegram_bot_token: get("TELEGRAM_BOT_TOKEN").map(SecretString::from),
        telegram_chat_id: get("TELEGRAM_CHAT_ID"),
        telegram_api_url,
        webhook_url,
        events,
    })
}
