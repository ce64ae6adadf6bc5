//! How alerts become orders: routing when a market is closed (`WHEN_CLOSED`, `AMO_*`, the
//! queue, rate limits, alert age) and how instruments and quantities are read (`INSTRUMENTS_*`,
//! `FNO_QUANTITY`, `EQ_PRODUCT`).

use std::{path::PathBuf, time::Duration};

use chrono::NaiveTime;

use super::{ConfigError, parse_bool, parse_u64};
use crate::{
    domain::{AmoTime, QuantityUnit, WhenClosed},
    market::AmoWindow,
};

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
    /// `ALLOW_SHORT` (default true): an intraday or margin SELL may open a short position.
    /// With false, such a SELL may only reduce a long (`pipeline::positions`).
    pub allow_short: bool,
    /// `SQUARE_OFF_AT` (IST, unset or `off`: none): on trading days, close the intraday
    /// positions of the instruments dhanhook traded intraday that day (`workers::square_off`).
    pub square_off_at: Option<NaiveTime>,
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

/// Default `QUEUE_MAX_AGE`: 96 hours, so a signal from Friday evening still runs at Tuesday's
/// open after a Monday holiday, while anything older is expired instead of placed days late.
pub const DEFAULT_QUEUE_MAX_AGE_SECS: u64 = 96 * 3600;

pub(super) fn routing_settings(
    get: &impl Fn(&str) -> Option<String>,
) -> Result<RoutingSettings, ConfigError> {
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
    let allow_short = parse_bool(get, "ALLOW_SHORT", true)?;
    let square_off_at = match get("SQUARE_OFF_AT") {
        None => None,
        Some(v) if v.eq_ignore_ascii_case("off") => None,
        Some(v) => Some(NaiveTime::parse_from_str(&v, "%H:%M").map_err(|_| {
            ConfigError::new(
                "SQUARE_OFF_AT",
                format!("'{v}' is not accepted; use an IST time like 15:12, or off"),
            )
        })?),
    };
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
        allow_short,
        square_off_at,
    })
}

pub(super) fn instrument_settings(
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
