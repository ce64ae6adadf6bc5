//! The simulator's settings: the fake account's credentials and the knobs that make the
//! simulated Dhan behave in the ways dhanhook must cope with.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};

/// Settings for one simulated Dhan account and its two hosts.
///
/// The defaults are obviously fake credentials; nothing here is ever a real secret.
/// `Debug` still masks the PIN, TOTP secret and API secret, so that printing a config
/// never teaches anyone to print secrets.
#[derive(Clone)]
pub struct SimConfig {
    /// The account's Dhan client id.
    pub client_id: String,
    /// The 6-digit Dhan PIN checked by `generateAccessToken`.
    pub pin: String,
    /// The account's TOTP secret, Base32 (padding, spaces and lower case accepted).
    pub totp_secret: String,
    /// API key for the consent flow (`app_id` header).
    pub api_key: String,
    /// API secret for the consent flow (`app_secret` header).
    pub api_secret: String,
    /// Where the consent login page redirects with `?tokenId=...`.
    pub redirect_url: String,
    /// Minimum sim-clock time between two successful `generateAccessToken` mints.
    pub mint_cooldown: Duration,
    /// Lifetime of every issued token, on the sim clock.
    pub token_ttl: Duration,
    /// Real time from TRANSIT to PENDING, and again from PENDING to TRADED for MARKET orders.
    pub fill_delay: Duration,
    /// Orders for these security ids are accepted, then REJECTED by "RMS" for lack of funds.
    pub rms_reject_security_ids: Vec<String>,
    /// When false, regular orders are refused with DH-906 "Market is Closed!..."; AMO is accepted.
    pub market_open: bool,
    /// When false, order writes are refused with DH-905 "Invalid IP".
    pub whitelisted_ip: bool,
    /// Order writes allowed in any one-second window (real time); more get 429 DH-904.
    pub orders_per_second: u32,
    /// Consecutive failed mints after which the account is locked; 0 disables the lockout.
    pub lockout_after_failures: u32,
    /// The sim clock's initial value; it then runs at real speed.
    pub start_time: DateTime<Utc>,
    /// Where every order status change is POSTed (dhan-api.md §8). Unlike Dhan, loopback
    /// URLs are called: tests run on loopback. Only `http://` is supported.
    pub postback_url: Option<String>,
    /// The order-update feed sends the documented PascalCase fields instead of the
    /// camelCase the live feed sends (dhan-api.md §9).
    pub order_update_pascal_case: bool,
    /// Every response is written in two writes, head then body, as some servers do; with
    /// Nagle's algorithm on (the simulator never sets `TCP_NODELAY`) a keep-alive client then
    /// waits for its own delayed ACK before the body arrives (see `split.rs`).
    pub split_writes: bool,
}

impl fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimConfig")
            .field("client_id", &self.client_id)
            .field("pin", &"***")
            .field("totp_secret", &"***")
            .field("api_key", &self.api_key)
            .field("api_secret", &"***")
            .field("redirect_url", &self.redirect_url)
            .field("mint_cooldown", &self.mint_cooldown)
            .field("token_ttl", &self.token_ttl)
            .field("fill_delay", &self.fill_delay)
            .field("rms_reject_security_ids", &self.rms_reject_security_ids)
            .field("market_open", &self.market_open)
            .field("whitelisted_ip", &self.whitelisted_ip)
            .field("orders_per_second", &self.orders_per_second)
            .field("lockout_after_failures", &self.lockout_after_failures)
            .field("start_time", &self.start_time)
            .field("postback_url", &self.postback_url)
            .field("order_update_pascal_case", &self.order_update_pascal_case)
            .field("split_writes", &self.split_writes)
            .finish()
    }
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            client_id: "1000000001".into(),
            pin: "123456".into(),
            totp_secret: "JBSWY3DPEHPK3PXP".into(),
            api_key: "sim-api-key".into(),
            api_secret: "sim-api-secret".into(),
            redirect_url: "http://127.0.0.1:8080/auth/callback".into(),
            mint_cooldown: Duration::from_secs(120),
            token_ttl: Duration::from_secs(24 * 60 * 60),
            fill_delay: Duration::from_millis(50),
            rms_reject_security_ids: Vec::new(),
            market_open: true,
            whitelisted_ip: true,
            orders_per_second: 10,
            lockout_after_failures: 5,
            start_time: Utc::now(),
            postback_url: None,
            order_update_pascal_case: false,
            split_writes: false,
        }
    }
}
