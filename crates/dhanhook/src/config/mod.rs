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

use secrecy::SecretString;

mod controls;
mod dhan;
mod notify;
mod trading;

use controls::control_settings;
use dhan::dhan_settings;
use notify::notify_settings;
use trading::{instrument_settings, routing_settings};

pub use crate::domain::Mode;
pub use controls::{
    ControlSettings, DEFAULT_MAX_ORDERS_PER_DAY, EntryWindow, KillSwitchMode, RiskRails,
};
pub use dhan::{DhanEnv, DhanSettings, OrderFeedSetting};
pub use notify::{DEFAULT_TELEGRAM_API_URL, NotifySettings};
pub use trading::{DEFAULT_QUEUE_MAX_AGE_SECS, InstrumentSettings, RoutingSettings};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable, for a terminal.
    Pretty,
    /// One JSON object per line, for log collectors (Cloud Run, journald, Loki...).
    Json,
}

/// Where the journal lives: a SQLite file (the default) or a PostgreSQL server (whose URL may
/// carry a password, so it is kept secret).
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
    /// `METRICS_TOKEN`: a bearer token that reads `GET /metrics` only (for a scraper that
    /// should not hold the admin token). The admin token reads it too.
    pub metrics_token: Option<SecretString>,
    /// `METRICS_ALLOWED_IPS`: addresses that may read `GET /metrics` without a token (a
    /// Prometheus sidecar on 127.0.0.1, a private network), judged like `ALLOWED_IPS`.
    pub metrics_allowed_ips: Vec<ipnet::IpNet>,
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
    pub notify: NotifySettings,
    /// Risk rails, the kill switch's mode and the multi-leg policy.
    pub controls: ControlSettings,
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
            crate::token::TokenSettings::DEFAULT_HEALTH_CHECK.as_secs(),
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
        let metrics_allowed_ips = match get("METRICS_ALLOWED_IPS") {
            None => Vec::new(),
            Some(v) => crate::source_ip::parse_networks(&v, false)
                .map_err(|why| ConfigError::new("METRICS_ALLOWED_IPS", why))?,
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
            metrics_token: get("METRICS_TOKEN").map(SecretString::from),
            metrics_allowed_ips,
            csv_log_path,
            database_url,
            dedup_window: Duration::from_secs(dedup_secs),
            log_format,
            auto_health_check,
            health_check_interval: Duration::from_secs(health_secs),
            dhan,
            instruments,
            routing,
            notify: notify_settings(&get)?,
            controls: control_settings(&get)?,
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
    fn the_order_feed_is_dhans_own_only_when_the_rest_host_is() {
        let on = |url: &str| OrderFeedSetting::On(url.to_owned());
        let feed = |vars: &[(&str, &str)]| settings(vars).unwrap().dhan.order_feed;
        assert_eq!(feed(&[]), on("wss://api-order-update.dhan.co"));
        assert!(matches!(
            feed(&[("DHAN_ENV", "sandbox")]),
            OrderFeedSetting::Off(_)
        ));
        // A proxy or the simulator: the token is not sent to Dhan's feed host unasked.
        assert!(matches!(
            feed(&[("DHAN_BASE_URL", "http://127.0.0.1:9/v2")]),
            OrderFeedSetting::Off(_)
        ));
        assert_eq!(
            feed(&[
                ("DHAN_BASE_URL", "http://127.0.0.1:9/v2"),
                ("DHAN_ORDER_FEED_URL", "ws://127.0.0.1:9/order-update/"),
            ]),
            on("ws://127.0.0.1:9/order-update")
        );
        assert!(matches!(
            feed(&[("DHAN_ORDER_FEED_URL", "OFF")]),
            OrderFeedSetting::Off(_)
        ));
        let err = settings(&[("DHAN_ORDER_FEED_URL", "https://x")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "DHAN_ORDER_FEED_URL: 'https://x' is not accepted; use a wss:// (or ws://) URL, or off"
        );
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
