//! The Dhan account's settings (`DHAN_*`, `TOKEN_*`, the health check): read in every mode,
//! required only in live mode.

use std::time::Duration;

use chrono::NaiveTime;
use secrecy::SecretString;

use super::{ConfigError, parse_u64, unwrap_stored_token};
use crate::{dhan::DhanUrls, token::TokenSettings};

/// Which Dhan environment to trade against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DhanEnv {
    Live,
    Sandbox,
}

impl DhanEnv {
    pub fn as_str(self) -> &'static str {
        match self {
            DhanEnv::Live => "live",
            DhanEnv::Sandbox => "sandbox",
        }
    }
}

/// Everything about the Dhan account. Read in every mode; required only in live mode.
#[derive(Debug, Clone)]
pub struct DhanSettings {
    pub env: DhanEnv,
    pub urls: DhanUrls,
    pub client_id: Option<String>,
    pub pin: Option<SecretString>,
    pub totp_secret: Option<SecretString>,
    pub access_token: Option<SecretString>,
    pub api_key: Option<String>,
    pub api_secret: Option<SecretString>,
    /// `DHAN_POSTBACK_SECRET`: the last segment of the postback URL given to Dhan
    /// (`/dhan/postback/<secret>`); unset, the endpoint is off.
    pub postback_secret: Option<SecretString>,
    /// `DHAN_ORDER_FEED_URL`: where Dhan's order-update WebSocket is, or why there is none.
    pub order_feed: OrderFeedSetting,
    /// `TOKEN_KEY`: seals the stored token (base64 of 32 bytes); generated into `DATA_DIR` for
    /// SQLite when unset, required for PostgreSQL in live mode.
    pub token_key: Option<SecretString>,
    /// `DHAN_USER_ID` / `DHAN_PASSWORD` were set: accepted for the seed's `.env`, but no Dhan
    /// API uses them (minting needs the PIN).
    pub unused_login_vars: Vec<&'static str>,
    pub token: TokenSettings,
}

impl DhanSettings {
    /// Whether any way to get a token is configured.
    pub fn has_token_route(&self) -> bool {
        (self.pin.is_some() && self.totp_secret.is_some())
            || self.access_token.is_some()
            || (self.api_key.is_some() && self.api_secret.is_some())
    }
}

/// Whether orders are also followed through Dhan's order-update WebSocket (live mode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderFeedSetting {
    /// Connect to this `ws://` or `wss://` URL.
    On(String),
    /// No feed (orders are followed by polling alone); the reason is for the start-up log.
    Off(&'static str),
}

/// `DHAN_ORDER_FEED_URL`: `off`, or a `ws(s)://` URL. Unset, the feed is Dhan's own host when
/// the REST host is Dhan's own too. Against another REST host (`DHAN_BASE_URL` set, e.g. the
/// simulator or a proxy) or the sandbox (which has no feed), there is no feed unless its URL
/// is given: the account's token is never sent to a host the operator did not choose.
fn order_feed_setting(
    get: &impl Fn(&str) -> Option<String>,
    env: DhanEnv,
) -> Result<OrderFeedSetting, ConfigError> {
    match get("DHAN_ORDER_FEED_URL") {
        Some(v) if v.eq_ignore_ascii_case("off") => {
            Ok(OrderFeedSetting::Off("DHAN_ORDER_FEED_URL=off"))
        }
        Some(v) if v.starts_with("wss://") || v.starts_with("ws://") => {
            Ok(OrderFeedSetting::On(v.trim_end_matches('/').to_owned()))
        }
        Some(v) => Err(ConfigError::new(
            "DHAN_ORDER_FEED_URL",
            format!("'{v}' is not accepted; use a wss:// (or ws://) URL, or off"),
        )),
        None if env == DhanEnv::Sandbox => Ok(OrderFeedSetting::Off(
            "Dhan's sandbox has no order-update feed",
        )),
        None if get("DHAN_BASE_URL").is_some() => Ok(OrderFeedSetting::Off(
            "DHAN_BASE_URL is set and DHAN_ORDER_FEED_URL is not",
        )),
        None => Ok(OrderFeedSetting::On(
            crate::dhan::order_feed::LIVE_URL.to_owned(),
        )),
    }
}

pub(super) fn dhan_settings(
    get: &impl Fn(&str) -> Option<String>,
    auto_health_check: bool,
    health_check_interval: Duration,
) -> Result<DhanSettings, ConfigError> {
    let env = match get("DHAN_ENV").map(|v| v.to_ascii_lowercase()).as_deref() {
        None | Some("live" | "prod" | "production") => DhanEnv::Live,
        Some("sandbox") => DhanEnv::Sandbox,
        Some(other) => {
            return Err(ConfigError::new(
                "DHAN_ENV",
                format!("'{other}' is not accepted; use live or sandbox"),
            ));
        }
    };
    let default_base = match env {
        DhanEnv::Live => DhanUrls::LIVE_BASE,
        DhanEnv::Sandbox => DhanUrls::SANDBOX_BASE,
    };
    let url = |var: &'static str, default: &str| -> Result<String, ConfigError> {
        match get(var) {
            None => Ok(default.to_owned()),
            Some(v) if v.starts_with("https://") || v.starts_with("http://") => {
                Ok(v.trim_end_matches('/').to_owned())
            }
            Some(v) => Err(ConfigError::new(
                var,
                format!("'{v}' is not an http(s) URL"),
            )),
        }
    };
    let urls = DhanUrls {
        base: url("DHAN_BASE_URL", default_base)?,
        auth: url("DHAN_AUTH_URL", DhanUrls::AUTH)?,
    };
    let order_feed = order_feed_setting(get, env)?;
    let pin = get("DHAN_PIN");
    if let Some(p) = &pin
        && (p.len() != 6 || !p.chars().all(|c| c.is_ascii_digit()))
    {
        // The value is a secret: not echoed.
        return Err(ConfigError::new(
            "DHAN_PIN",
            "must be your 6-digit Dhan PIN",
        ));
    }
    let totp_secret = get("DHAN_TOTP_SECRET");
    if let Some(t) = &totp_secret
        && let Err(e) = crate::totp::Totp::from_base32(t)
    {
        return Err(ConfigError::new(
            "DHAN_TOTP_SECRET",
            e.to_string().replace("DHAN_TOTP_SECRET is ", "is "),
        ));
    }
    let premarket_refresh = match get("TOKEN_PREMARKET_REFRESH")
        .map(|v| v.to_ascii_lowercase())
        .as_deref()
    {
        None => Some(TokenSettings::DEFAULT_PREMARKET_REFRESH),
        Some("off" | "none" | "false") => None,
        Some(v) => Some(NaiveTime::parse_from_str(v, "%H:%M").map_err(|_| {
            ConfigError::new(
                "TOKEN_PREMARKET_REFRESH",
                format!("'{v}' is not accepted; use an IST time like 08:30, or off"),
            )
        })?),
    };
    let unused_login_vars = ["DHAN_USER_ID", "DHAN_PASSWORD"]
        .into_iter()
        .filter(|v| get(v).is_some())
        .collect();
    Ok(DhanSettings {
        env,
        urls,
        order_feed,
        client_id: get("DHAN_CLIENT_ID"),
        pin: pin.map(SecretString::from),
        totp_secret: totp_secret.map(SecretString::from),
        access_token: get("DHAN_ACCESS_TOKEN").map(|t| SecretString::from(unwrap_stored_token(&t))),
        api_key: get("DHAN_API_KEY"),
        api_secret: get("DHAN_API_SECRET").map(SecretString::from),
        postback_secret: get("DHAN_POSTBACK_SECRET").map(SecretString::from),
        token_key: get("TOKEN_KEY").map(SecretString::from),
        unused_login_vars,
        token: TokenSettings {
            refresh_margin: Duration::from_secs(parse_u64(
                get,
                "TOKEN_REFRESH_MARGIN",
                TokenSettings::DEFAULT_REFRESH_MARGIN.as_secs(),
                300,
                12 * 3600,
            )?),
            // Never below Dhan's own ~120 s throttle.
            mint_cooldown: Duration::from_secs(parse_u64(
                get,
                "TOKEN_MINT_COOLDOWN",
                TokenSettings::DEFAULT_MINT_COOLDOWN.as_secs(),
                120,
                3600,
            )?),
            max_failures: u32::try_from(parse_u64(
                get,
                "TOKEN_MAX_FAILURES",
                TokenSettings::DEFAULT_MAX_FAILURES.into(),
                1,
                10,
            )?)
            .unwrap_or(TokenSettings::DEFAULT_MAX_FAILURES),
            premarket_refresh,
            fallback_ttl: TokenSettings::DEFAULT_FALLBACK_TTL,
            health_check: auto_health_check.then_some(health_check_interval),
        },
    })
}
