//! The channels a message goes out on, one HTTP call each:
//! - Telegram: `POST {TELEGRAM_API_URL}/bot<token>/sendMessage` with HTML parse mode, as the
//!   upstream sent it (`TELEGRAM_API_URL` is overridable so tests use a local fake);
//! - a JSON webhook (`NOTIFY_WEBHOOK_URL`): `{"content": …, "text": …}`, which Discord
//!   (`content`) and Slack (`text`) both accept.
//!
//! The bot token is part of Telegram's URL and a webhook URL carries its own secret: neither is
//! ever logged or put in an error message.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

pub use crate::domain::Channel;

/// Why a message was not delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ChannelError {
    /// Worth trying again (network, 429, 5xx); otherwise the request itself is wrong (a bad
    /// token or chat id) and retrying would only repeat it.
    pub retryable: bool,
    pub message: String,
}

/// How long one delivery may take.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// The configured channels and the HTTP client that reaches them.
#[derive(Debug, Clone)]
pub struct Channels {
    telegram: Option<Telegram>,
    webhook_url: Option<SecretString>,
    http: reqwest::Client,
}

#[derive(Debug, Clone)]
struct Telegram {
    api_url: String,
    bot_token: SecretString,
    chat_id: String,
}

impl Channels {
    /// Telegram when both the bot token and the chat id are given (as the upstream did), the
    /// webhook when its URL is.
    ///
    /// # Errors
    /// The HTTP client cannot be built (no TLS roots).
    pub fn new(
        telegram: Option<(SecretString, String)>,
        telegram_api_url: String,
        webhook_url: Option<SecretString>,
    ) -> Result<Self, reqwest::Error> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(SEND_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            telegram: telegram.map(|(bot_token, chat_id)| Telegram {
                api_url: telegram_api_url.trim_end_matches('/').to_owned(),
                bot_token,
                chat_id,
            }),
            webhook_url,
            http,
        })
    }

    /// The channels a message goes out on.
    pub fn configured(&self) -> Vec<Channel> {
        let mut out = Vec::new();
        if self.telegram.is_some() {
            out.push(Channel::Telegram);
        }
        if self.webhook_url.is_some() {
            out.push(Channel::Webhook);
        }
        out
    }

    /// Sends one message on `channel`.
    ///
    /// # Errors
    /// The channel is not configured, or did not take the message.
    pub async fn send(
        &self,
        channel: Channel,
        title: &str,
        body: &str,
    ) -> Result<(), ChannelError> {
        let request = match channel {
            Channel::Telegram => {
                let Some(t) = &self.telegram else {
                    return Err(not_configured(channel));
                };
                self.http
                    .post(format!(
                        "{}/bot{}/sendMessage",
                        t.api_url,
                        t.bot_token.expose_secret()
                    ))
                    .json(&json!({
                        "chat_id": t.chat_id,
                        "text": telegram_html(title, body),
                        "parse_mode": "HTML",
                        "disable_web_page_preview": true,
                    }))
            }
            Channel::Webhook => {
                let Some(url) = &self.webhook_url else {
                    return Err(not_configured(channel));
                };
                let text = format!("{title}\n{body}");
                self.http
                    .post(url.expose_secret())
                    .json(&json!({"content": text, "text": text}))
            }
        };
        // `without_url`: the URL holds the bot token or the webhook's secret.
        let response = request.send().await.map_err(|e| ChannelError {
            retryable: true,
            message: format!("{} unreachable: {}", channel.as_str(), e.without_url()),
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        Err(ChannelError {
            retryable: status.is_server_error() || status.as_u16() == 429,
            message: format!("{} answered {status}", channel.as_str()),
        })
    }
}

fn not_configured(channel: Channel) -> ChannelError {
    ChannelError {
        retryable: false,
        message: format!("{} is not configured", channel.as_str()),
    }
}

/// The message in Telegram's HTML parse mode: the title in bold, everything escaped (symbols
/// like `M&M` and broker text with `<`/`>` would otherwise break the message or be read as
/// markup).
pub fn telegram_html(title: &str, body: &str) -> String {
    format!("<b>{}</b>\n{}", escape_html(title), escape_html(body))
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn telegram_text_is_escaped_for_its_html_mode() {
        assert_eq!(
            telegram_html("✅ Filled: BUY 1 M&M", "reason <RMS> & more"),
            "<b>✅ Filled: BUY 1 M&amp;M</b>\nreason &lt;RMS&gt; &amp; more"
        );
    }

    #[test]
    fn channels_round_trip_their_names() {
        for c in [Channel::Telegram, Channel::Webhook] {
            assert_eq!(Channel::parse(c.as_str()), Some(c));
        }
    }
}
