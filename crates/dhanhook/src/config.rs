//! Typed settings, read once at start-up from the environment (and an optional `.env`).
//!
//! The seed's variable names keep their meaning (`WEBHOOK_SECRET`, `ENABLE_DHAN`, `PORT`, `HOST`,
//! `CSV_LOG_PATH`, `AUTO_HEALTH_CHECK`, `HEALTH_CHECK_INTERVAL`); new ones are documented in the
//! README. Parsing takes a lookup function rather than reading `std::env` itself, so tests are
//! hermetic. A bad value is a [`ConfigError`] whose one-line message names the variable and what
//! it accepts, and never echoes a secret.

use std::{
    fmt,
    net::IpAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use chrono::NaiveTime;
use secrecy::SecretString;

use crate::{
    dhan::DhanUrls,
    domain::{AmoTime, QuantityUnit, WhenClosed},
    market::AmoWindow,
    token::TokenSettings,
};

pub use crate::domain::Mode;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable, for a terminal.
    Pretty,
    /// One JSON object per line, for log collectors (Cloud Run, journald, Loki...).
    Json,
}

/// Where the journal lives. Only SQLite exists so far; the URL is kept as given so a
/// `postgres://` URL can be refused with a clear message instead of being misread.
#[derive(Clone)]
pub enum DatabaseUrl {
    Sqlite(String),
    /// Kept secret: a PostgreSQL URL usually carries a password.
    Postgres(SecretString),
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

impl DatabaseUrl {
    /// A description safe to log or show on `/`: SQLite paths are shown, PostgreSQL URLs are not.
    pub fn describe(&self) -> String {
        match self {
            DatabaseUrl::Sqlite(url) => url.clone(),
            DatabaseUrl::Postgres(_) => "postgres://[redacted]".to_owned(),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            DatabaseUrl::Sqlite(_) => "sqlite",
            DatabaseUrl::Postgres(_) => "postgres",
        }
    }
}

/// All settings of the service. Secrets are `SecretString`, so `Debug` prints `[REDACTED]`.
#[derive(Debug, Clone)]
pub struct Settings {
    pub mode: Mode,
    pub host: IpAddr,
    pub port: u16,
    /// Folder for the default journal, CSV log and generated webhook secret.
    pub data_dir: PathBuf,
    /// `None` means "not configured": paper mode then generates one in `data_dir`.
    pub webhook_secret: Option<SecretString>,
    /// `None` disables the admin endpoints (they answer 403 saying how to enable them).
    pub admin_token: Option<SecretString>,
    pub csv_log_path: PathBuf,
    pub database_url: DatabaseUrl,
    /// Identical alerts (no `id`, no `timenow`) inside this window are duplicates.
    pub dedup_window: Duration,
    pub log_format: LogFormat,
    /// Accepted now for the seed's `.env` files; used by the token keeper (live mode).
    pub auto_health_check: bool,
    pub health_check_interval: Duration,
    pub dhan: DhanSettings,
    pub instruments: InstrumentSettings,
    pub routing: RoutingSettings,
    /// `DHANHOOK_CLOCK_START`: run the service's clock from this instant (simulation, tests).
    pub clock_start: Option<chrono::DateTime<chrono::Utc>>,
    /// `SHUTDOWN_TIMEOUT`: after SIGTERM or ctrl-c the process ends within this, whatever is
    /// in flight (Cloud Run kills at 10 s, systemd at 90 s).
    pub shutdown_timeout: Duration,
    /// `ALLOWED_IPS`: who may post `/webhook` (IPs and CIDRs, `tradingview` for TradingView's
    /// addresses); `None`: everyone.
    pub allowed_ips: Option<Vec<ipnet::IpNet>>,
    /// `TRUSTED_PROXIES`: the peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `MAX_CONNECTIONS`: open connections served at once; more are closed on accept.
    pub max_connections: usize,
}

/// What happens to an alert that arrives while its market is closed.
#[derive(Debug, Clone)]
pub struct RoutingSettings {
    /// `WHEN_CLOSED`: amo (default), queue or reject; an alert may override it.
    pub when_closed: WhenClosed,
    /// `AMO_TIME`: when Dhan releases an AMO whose alert names none (default OPEN).
    pub amo_time: AmoTime,
    /// `AMO_WINDOW_OPENS` / `AMO_WINDOW_CLOSES` (IST).
    pub amo_window: AmoWindow,
    /// `HOLIDAYS_PATH`: a folder of holiday files replacing the built-in ones per year.
    pub holidays_path: Option<PathBuf>,
    /// `QUEUE_MAX_AGE`: a queued alert older than this is expired, never placed.
    pub queue_max_age: Duration,
    /// `ORDER_RATE_LIMITS`: caps on order writes (default Dhan's 10/s,250/m,1000/h,7000/d).
    pub order_rate_limits: Vec<crate::ratelimit::Window>,
    /// `ACK_DEADLINE_MS`: `/webhook` answers by then whatever the broker does (202 if a leg
    /// is still in flight); TradingView cancels a request after 3 s.
    pub ack_deadline: Duration,
    /// `RESEND_UNKNOWN`: an order whose outcome stayed unknown and that Dhan does not show
    /// after `UNKNOWN_SETTLE_SECS` is re-sent once with the same correlationId (default true);
    /// false marks it NEEDS_ATTENTION instead.
    pub resend_unknown: bool,
    pub unknown_settle: Duration,
    /// `MAX_ALERT_AGE`: an alert whose `timenow` is older than this (or more than a minute in
    /// the future) is refused and never placed; `None` (`0`) turns the check off.
    pub max_alert_age: Option<Duration>,
}

/// Where the scrip master comes from and how alert quantities are read.
#[derive(Debug, Clone)]
pub struct InstrumentSettings {
    /// `INSTRUMENTS_PATH`: a local file, used as is (no downloads).
    pub path: Option<PathBuf>,
    /// `INSTRUMENTS_URL`: Dhan's compact file by default; `None` when set to `off`.
    pub url: Option<String>,
    /// `INSTRUMENTS_REFRESH_TIME` (IST): a cached file older than this today is re-downloaded.
    pub refresh_at: NaiveTime,
    /// `FNO_QUANTITY`: derivative quantities in units (default) or lots.
    pub quantity_unit: QuantityUnit,
    /// `EQ_PRODUCT=cnc`: Dhan-format legs with `instrument` EQ are placed as CNC (delivery)
    /// whatever their `productType`, as the upstream service did; `as_sent` (default) keeps it.
    pub eq_product_cnc: bool,
}

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

/// A setting that could not be used. `Display` is the one line printed before exiting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var}: {problem}")]
pub struct ConfigError {
    pub var: &'static str,
    pub problem: String,
}

impl ConfigError {
    fn new(var: &'static str, problem: impl Into<String>) -> Self {
        Self {
            var,
            problem: problem.into(),
        }
    }
}

/// Default `DEDUP_WINDOW_SECS`. TradingView resends a 5xx at most 3 times, 5 s apart, so 120 s
/// covers every resend with a wide margin while still letting a strategy fire the same signal
/// again a few minutes later.
pub const DEFAULT_DEDUP_WINDOW_SECS: u64 = 120;

impl Settings {
    /// Reads settings from the process environment (after `.env`, which `main` loads).
    ///
    /// # Errors
    /// The first variable whose value cannot be used.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup` (a variable name to its value, if set).
    ///
    /// # Errors
    /// The first variable whose value cannot be used.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        // An empty value means "unset": `.env` templates are full of `NAME=` lines.
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };

        let mode = if parse_bool(&get, "ENABLE_DHAN", false)? {
            Mode::Live
        } else {
            Mode::Paper
        };
        let host = match get("HOST") {
            None => IpAddr::from([0, 0, 0, 0]),
            Some(v) => v.parse().map_err(|_| {
                ConfigError::new(
                    "HOST",
                    format!("'{v}' is not an IP address (e.g. 0.0.0.0 or 127.0.0.1)"),
                )
            })?,
        };
        let port = match get("PORT") {
            None => 8080,
            Some(v) => v.parse().map_err(|_| {
                ConfigError::new("PORT", format!("'{v}' is not a port number (0-65535)"))
            })?,
        };
        let data_dir = PathBuf::from(get("DATA_DIR").unwrap_or_else(|| "./data".to_owned()));
        let csv_log_path = get("CSV_LOG_PATH")
            .map(PathBuf::from)
            .unwrap_or_else(|| data_dir.join("webhook_orders.csv"));
        let database_url = match get("DATABASE_URL") {
            None => DatabaseUrl::Sqlite(default_sqlite_url(&data_dir)),
            Some(v) => parse_database_url(v)?,
        };
        let dedup_secs = parse_u64(
            &get,
            "DEDUP_WINDOW_SECS",
            DEFAULT_DEDUP_WINDOW_SECS,
            1,
            86_400,
        )?;
        let log_format = match get("LOG_FORMAT").map(|v| v.to_ascii_lowercase()).as_deref() {
            None | Some("pretty") => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError::new(
                    "LOG_FORMAT",
                    format!("'{other}' is not accepted; use pretty or json"),
                ));
            }
        };
        let auto_health_check = parse_bool(&get, "AUTO_HEALTH_CHECK", true)?;
        let health_secs = parse_u64(
            &get,
            "HEALTH_CHECK_INTERVAL",
            TokenSettings::DEFAULT_HEALTH_CHECK.as_secs(),
            60,
            7 * 86_400,
        )?;
        let dhan = dhan_settings(&get, auto_health_check, Duration::from_secs(health_secs))?;
        let instruments = instrument_settings(&get)?;
        let routing = routing_settings(&get)?;
        let clock_start = match get("DHANHOOK_CLOCK_START") {
            None => None,
            Some(v) => Some(
                chrono::DateTime::parse_from_rfc3339(&v)
                    .map_err(|_| {
                        ConfigError::new(
                            "DHANHOOK_CLOCK_START",
                            format!(
                                "'{v}' is not an RFC 3339 instant like 2026-12-01T10:00:00+05:30"
                            ),
                        )
                    })?
                    .with_timezone(&chrono::Utc),
            ),
        };

        let shutdown_timeout = Duration::from_secs(parse_u64(&get, "SHUTDOWN_TIMEOUT", 8, 1, 300)?);
        let allowed_ips = match get("ALLOWED_IPS") {
            None => None,
            Some(v) => Some(
                crate::source_ip::parse_networks(&v, true)
                    .map_err(|why| ConfigError::new("ALLOWED_IPS", why))?,
            ),
        };
        let trusted_proxies = match get("TRUSTED_PROXIES") {
            None => Vec::new(),
            Some(v) => crate::source_ip::parse_networks(&v, false)
                .map_err(|why| ConfigError::new("TRUSTED_PROXIES", why))?,
        };
        // High by default: idle or slow connections are closed within 10 s, and a cap reached by
        // a flood of them refuses legitimate alerts too (start-up lowers it to what the
        // open-file limit allows).
        let max_connections = match get("MAX_CONNECTIONS") {
            None => 8192,
            Some(v) => match v.parse::<usize>() {
                Ok(n) if (16..=1_000_000).contains(&n) => n,
                _ => {
                    return Err(ConfigError::new(
                        "MAX_CONNECTIONS",
                        format!("'{v}' is not accepted; use a whole number from 16 to 1000000"),
                    ));
                }
            },
        };

        Ok(Settings {
            mode,
            host,
            port,
            data_dir,
            webhook_secret: get("WEBHOOK_SECRET").map(SecretString::from),
            admin_token: get("ADMIN_TOKEN").map(SecretString::from),
            csv_log_path,
            database_url,
            dedup_window: Duration::from_secs(dedup_secs),
            log_format,
            auto_health_check,
            health_check_interval: Duration::from_secs(health_secs),
            dhan,
            instruments,
            routing,
            clock_start,
            shutdown_timeout,
            allowed_ips,
            trusted_proxies,
            max_connections,
        })
    }

    /// Where a generated webhook secret is kept (paper mode without `WEBHOOK_SECRET`).
    pub fn generated_secret_path(&self) -> PathBuf {
        self.data_dir.join("webhook_secret")
    }
}

fn dhan_settings(
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
        client_id: get("DHAN_CLIENT_ID"),
        pin: pin.map(SecretString::from),
        totp_secret: totp_secret.map(SecretString::from),
        access_token: get("DHAN_ACCESS_TOKEN").map(|t| SecretString::from(unwrap_stored_token(&t))),
        api_key: get("DHAN_API_KEY"),
        api_secret: get("DHAN_API_SECRET").map(SecretString::from),
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

/// Default `QUEUE_MAX_AGE`: 96 hours, so a signal from Friday evening still runs at Tuesday's
/// open after a Monday holiday, while anything older is expired instead of placed days late.
pub const DEFAULT_QUEUE_MAX_AGE_SECS: u64 = 96 * 3600;

fn routing_settings(get: &impl Fn(&str) -> Option<String>) -> Result<RoutingSettings, ConfigError> {
    let when_closed = match get("WHEN_CLOSED") {
        None => WhenClosed::Amo,
        Some(v) => WhenClosed::parse(&v).ok_or_else(|| {
            ConfigError::new(
                "WHEN_CLOSED",
                format!("'{v}' is not accepted; use amo, queue or reject"),
            )
        })?,
    };
    let amo_time = match get("AMO_TIME") {
        None => AmoTime::Open,
        Some(v) => AmoTime::parse(&v.to_ascii_uppercase()).ok_or_else(|| {
            ConfigError::new(
                "AMO_TIME",
                format!("'{v}' is not accepted; use {}", AmoTime::ACCEPTED),
            )
        })?,
    };
    let time = |var: &'static str, default: NaiveTime| -> Result<NaiveTime, ConfigError> {
        match get(var) {
            None => Ok(default),
            Some(v) => NaiveTime::parse_from_str(&v, "%H:%M").map_err(|_| {
                ConfigError::new(
                    var,
                    format!("'{v}' is not accepted; use an IST time like 16:00"),
                )
            }),
        }
    };
    let defaults = AmoWindow::default();
    let amo_window = AmoWindow {
        opens: time("AMO_WINDOW_OPENS", defaults.opens)?,
        closes: time("AMO_WINDOW_CLOSES", defaults.closes)?,
    };
    let max_age = parse_u64(
        get,
        "QUEUE_MAX_AGE",
        DEFAULT_QUEUE_MAX_AGE_SECS,
        60,
        30 * 86_400,
    )?;
    let order_rate_limits = match get("ORDER_RATE_LIMITS") {
        None => crate::ratelimit::dhan_default(),
        Some(v) => crate::ratelimit::parse_windows(&v).map_err(|why| {
            ConfigError::new(
                "ORDER_RATE_LIMITS",
                format!("{why}; use e.g. 10/s,250/m,1000/h,7000/d"),
            )
        })?,
    };
    // Above 2900 the answer can come after TradingView has given up (3 s); allowed for tests and
    // for senders with longer timeouts.
    let ack_deadline = Duration::from_millis(parse_u64(get, "ACK_DEADLINE_MS", 2000, 100, 60_000)?);
    let resend_unknown = parse_bool(get, "RESEND_UNKNOWN", true)?;
    let unknown_settle = Duration::from_secs(parse_u64(get, "UNKNOWN_SETTLE_SECS", 30, 5, 3600)?);
    let max_alert_age = match parse_u64(get, "MAX_ALERT_AGE", 600, 0, 7 * 86_400)? {
        0 => None,
        secs => Some(Duration::from_secs(secs)),
    };
    Ok(RoutingSettings {
        when_closed,
        amo_time,
        amo_window,
        holidays_path: get("HOLIDAYS_PATH").map(PathBuf::from),
        queue_max_age: Duration::from_secs(max_age),
        order_rate_limits,
        ack_deadline,
        resend_unknown,
        unknown_settle,
        max_alert_age,
    })
}

fn instrument_settings(
    get: &impl Fn(&str) -> Option<String>,
) -> Result<InstrumentSettings, ConfigError> {
    let url = match get("INSTRUMENTS_URL") {
        None => Some(crate::instruments::source::DEFAULT_URL.to_owned()),
        Some(v) if v.eq_ignore_ascii_case("off") => None,
        Some(v) if v.starts_with("https://") || v.starts_with("http://") => Some(v),
        Some(v) => {
            return Err(ConfigError::new(
                "INSTRUMENTS_URL",
                format!("'{v}' is not accepted; use an http(s) URL, or off"),
            ));
        }
    };
    let refresh_at = match get("INSTRUMENTS_REFRESH_TIME") {
        None => NaiveTime::from_hms_opt(8, 0, 0).unwrap_or_default(),
        Some(v) => NaiveTime::parse_from_str(&v, "%H:%M").map_err(|_| {
            ConfigError::new(
                "INSTRUMENTS_REFRESH_TIME",
                format!("'{v}' is not accepted; use an IST time like 08:00"),
            )
        })?,
    };
    let quantity_unit = match get("FNO_QUANTITY")
        .map(|v| v.to_ascii_lowercase())
        .as_deref()
    {
        None | Some("units") => QuantityUnit::Units,
        Some("lots") => QuantityUnit::Lots,
        Some(other) => {
            return Err(ConfigError::new(
                "FNO_QUANTITY",
                format!("'{other}' is not accepted; use units or lots"),
            ));
        }
    };
    let eq_product_cnc = match get("EQ_PRODUCT").map(|v| v.to_ascii_lowercase()).as_deref() {
        None | Some("as_sent") => false,
        Some("cnc") => true,
        Some(other) => {
            return Err(ConfigError::new(
                "EQ_PRODUCT",
                format!("'{other}' is not accepted; use as_sent or cnc"),
            ));
        }
    };
    Ok(InstrumentSettings {
        path: get("INSTRUMENTS_PATH").map(PathBuf::from),
        url,
        refresh_at,
        quantity_unit,
        eq_product_cnc,
    })
}

/// The upstream stored tokens in Secret Manager as `{"access_token": "..."}` and some users
/// paste that whole value into `DHAN_ACCESS_TOKEN`; accept both forms.
fn unwrap_stored_token(value: &str) -> String {
    serde_json::from_str::<serde_json::Value>(value)
        .ok()
        .and_then(|v| {
            v.get("access_token")
                .and_then(|t| t.as_str())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| value.to_owned())
}

fn default_sqlite_url(data_dir: &Path) -> String {
    format!("sqlite://{}", data_dir.join("dhanhook.db").display())
}

fn parse_database_url(v: String) -> Result<DatabaseUrl, ConfigError> {
    if v.starts_with("sqlite:") {
        Ok(DatabaseUrl::Sqlite(v))
    } else if v.starts_with("postgres://") || v.starts_with("postgresql://") {
        Ok(DatabaseUrl::Postgres(SecretString::from(v)))
    } else {
        // The value may hold a password, so it is not echoed.
        Err(ConfigError::new(
            "DATABASE_URL",
            "must start with sqlite: (e.g. sqlite://./data/dhanhook.db) or postgres://",
        ))
    }
}

fn parse_bool(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    default: bool,
) -> Result<bool, ConfigError> {
    match get(var).map(|v| v.to_ascii_lowercase()).as_deref() {
        None => Ok(default),
        Some("true" | "1" | "yes" | "on") => Ok(true),
        Some("false" | "0" | "no" | "off") => Ok(false),
        Some(other) => Err(ConfigError::new(
            var,
            format!("'{other}' is not accepted; use true or false"),
        )),
    }
}

fn parse_u64(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, ConfigError> {
    let Some(v) = get(var) else {
        return Ok(default);
    };
    match v.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(ConfigError::new(
            var,
            format!("'{v}' is not accepted; use a whole number of seconds from {min} to {max}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use secrecy::ExposeSecret;

    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn max_connections_defaults_to_8192_and_is_at_least_16() {
        assert_eq!(settings(&[]).unwrap().max_connections, 8192);
        assert_eq!(
            settings(&[("MAX_CONNECTIONS", "16")])
                .unwrap()
                .max_connections,
            16
        );
        for bad in ["15", "0", "many"] {
            let e = settings(&[("MAX_CONNECTIONS", bad)]).unwrap_err();
            assert!(e.to_string().contains("MAX_CONNECTIONS"), "{e}");
        }
    }

    #[test]
    fn defaults_are_paper_mode_on_8080_with_sqlite_under_data() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.mode, Mode::Paper);
        assert_eq!(s.port, 8080);
        assert_eq!(s.host.to_string(), "0.0.0.0");
        assert_eq!(s.csv_log_path, PathBuf::from("./data/webhook_orders.csv"));
        assert_eq!(s.database_url.describe(), "sqlite://./data/dhanhook.db");
        assert_eq!(s.dedup_window, Duration::from_secs(120));
        assert_eq!(s.log_format, LogFormat::Pretty);
        assert!(s.webhook_secret.is_none());
        assert!(s.auto_health_check);
        assert_eq!(s.health_check_interval, Duration::from_secs(21_600));
    }

    #[test]
    fn seed_values_keep_their_meaning() {
        let s = settings(&[
            ("ENABLE_DHAN", "true"),
            ("PORT", "9000"),
            ("WEBHOOK_SECRET", "fake-secret-for-tests"),
            ("CSV_LOG_PATH", "/tmp/x.csv"),
            ("AUTO_HEALTH_CHECK", "false"),
            ("HEALTH_CHECK_INTERVAL", "3600"),
        ])
        .unwrap();
        assert_eq!(s.mode, Mode::Live);
        assert_eq!(s.port, 9000);
        assert_eq!(
            s.webhook_secret.unwrap().expose_secret(),
            "fake-secret-for-tests"
        );
        assert_eq!(s.csv_log_path, PathBuf::from("/tmp/x.csv"));
        assert!(!s.auto_health_check);
        assert_eq!(s.health_check_interval, Duration::from_secs(3600));
    }

    #[test]
    fn bad_values_name_the_variable_and_what_it_accepts() {
        let cases = [
            (
                "PORT",
                "eighty",
                "PORT: 'eighty' is not a port number (0-65535)",
            ),
            (
                "ENABLE_DHAN",
                "maybe",
                "ENABLE_DHAN: 'maybe' is not accepted; use true or false",
            ),
            (
                "LOG_FORMAT",
                "xml",
                "LOG_FORMAT: 'xml' is not accepted; use pretty or json",
            ),
            (
                "DEDUP_WINDOW_SECS",
                "0",
                "DEDUP_WINDOW_SECS: '0' is not accepted; use a whole number of seconds from 1 to 86400",
            ),
            (
                "HOST",
                "localhost:80",
                "HOST: 'localhost:80' is not an IP address (e.g. 0.0.0.0 or 127.0.0.1)",
            ),
        ];
        for (var, value, expected) in cases {
            let err = settings(&[(var, value)]).unwrap_err();
            assert_eq!(err.to_string(), expected, "{var}={value}");
        }
    }

    #[test]
    fn a_database_url_with_a_password_is_never_echoed() {
        let err = settings(&[("DATABASE_URL", "mysql://u:hunter2-canary@h/db")]).unwrap_err();
        assert!(!err.to_string().contains("hunter2-canary"));
        let s = settings(&[("DATABASE_URL", "postgres://u:hunter2-canary@h/db")]).unwrap();
        assert!(!format!("{s:?}").contains("hunter2-canary"));
        assert_eq!(s.database_url.kind(), "postgres");
    }

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let s = settings(&[
            ("WEBHOOK_SECRET", "canary-webhook-0001"),
            ("ADMIN_TOKEN", "canary-admin-0001"),
        ])
        .unwrap();
        let dbg = format!("{s:?}");
        assert!(!dbg.contains("canary-webhook-0001"));
        assert!(!dbg.contains("canary-admin-0001"));
    }

    #[test]
    fn dhan_settings_default_to_live_hosts_and_accept_overrides() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.dhan.urls.base, "https://api.dhan.co/v2");
        assert_eq!(s.dhan.urls.auth, "https://auth.dhan.co");
        let sandbox = settings(&[("DHAN_ENV", "sandbox")]).unwrap();
        assert_eq!(sandbox.dhan.urls.base, "https://sandbox.dhan.co/v2");
        let over = settings(&[
            ("DHAN_BASE_URL", "http://127.0.0.1:9/v2/"),
            ("DHAN_AUTH_URL", "http://127.0.0.1:9"),
        ])
        .unwrap();
        assert_eq!(over.dhan.urls.base, "http://127.0.0.1:9/v2");
        assert_eq!(over.dhan.urls.auth, "http://127.0.0.1:9");
        assert!(!s.dhan.has_token_route());
    }

    #[test]
    fn dhan_credentials_are_checked_without_being_echoed() {
        let err = settings(&[("DHAN_PIN", "12a4")]).unwrap_err();
        assert_eq!(err.to_string(), "DHAN_PIN: must be your 6-digit Dhan PIN");
        let err = settings(&[("DHAN_TOTP_SECRET", "canary!!secret")]).unwrap_err();
        assert!(!err.to_string().contains("canary"), "{err}");
        let s = settings(&[
            ("DHAN_PIN", "123456"),
            ("DHAN_TOTP_SECRET", "JBSWY3DPEHPK3PXP"),
            ("DHAN_PASSWORD", "x"),
        ])
        .unwrap();
        assert!(s.dhan.has_token_route());
        assert_eq!(s.dhan.unused_login_vars, ["DHAN_PASSWORD"]);
        let dbg = format!("{:?}", s.dhan);
        assert!(
            !dbg.contains("123456") && !dbg.contains("JBSWY3DPEHPK3PXP"),
            "{dbg}"
        );
    }

    #[test]
    fn a_secret_manager_json_token_is_unwrapped() {
        use secrecy::ExposeSecret;
        let s = settings(&[(
            "DHAN_ACCESS_TOKEN",
            r#"{"access_token":"a.b.c","expiry":"x"}"#,
        )])
        .unwrap();
        assert_eq!(s.dhan.access_token.unwrap().expose_secret(), "a.b.c");
    }

    #[test]
    fn empty_values_count_as_unset() {
        let s = settings(&[("WEBHOOK_SECRET", ""), ("PORT", " ")]).unwrap();
        assert!(s.webhook_secret.is_none());
        assert_eq!(s.port, 8080);
    }

    /// The `TOKEN_*` defaults are written once, on `TokenSettings`: an empty environment gives
    /// exactly `crate::token::TokenSettings::default()`.
    #[test]
    fn unset_token_settings_are_the_keepers_defaults() {
        let settings = Settings::from_lookup(|_| None).unwrap();
        assert_eq!(
            format!("{:?}", settings.dhan.token),
            format!("{:?}", crate::token::TokenSettings::default())
        );
    }
}
