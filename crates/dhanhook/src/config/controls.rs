//! Trader controls from the environment: the risk rails (`MAX_*`, `SYMBOL_*`, `ENTRY_WINDOW`),
//! what the kill switch refuses (`KILL_SWITCH_MODE`) and the multi-leg policy
//! (`ON_LEG_REJECT`). The rules themselves are in `pipeline::controls`.

use chrono::NaiveTime;

use super::ConfigError;
use crate::domain::OnLegReject;

/// What the kill switch refuses while it is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KillSwitchMode {
    /// New entries are refused; exits (and cancels) still pass, so a position can be closed.
    #[default]
    Entries,
    /// Every order is refused.
    All,
}

impl KillSwitchMode {
    pub fn as_str(self) -> &'static str {
        match self {
            KillSwitchMode::Entries => "entries",
            KillSwitchMode::All => "all",
        }
    }
}

/// An IST window of the day (`09:20-15:15`): new entries are sent only inside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryWindow {
    pub from: NaiveTime,
    /// Exclusive: at 15:15 exactly, `09:20-15:15` is closed.
    pub until: NaiveTime,
}

impl EntryWindow {
    pub fn contains(&self, t: NaiveTime) -> bool {
        self.from <= t && t < self.until
    }
}

/// The risk rails. `None` (or an empty list) turns a rail off.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RiskRails {
    /// `MAX_QTY_PER_LEG`: most units (shares, contracts × lot size) in one leg.
    pub max_qty_per_leg: Option<u64>,
    /// `MAX_LOTS_PER_LEG`: most lots in one leg (units ÷ lot size; equities have lots of 1).
    pub max_lots_per_leg: Option<u64>,
    /// `MAX_ORDER_VALUE`: most rupees in one leg (units × the limit price, or the alert's
    /// price); a leg with no known price is not judged by it.
    pub max_order_value: Option<f64>,
    /// `MAX_ORDERS_PER_DAY`: most legs sent in an IST day (default Dhan's own 7000).
    pub max_orders_per_day: Option<u64>,
    /// `MAX_ORDERS_PER_DAY_PER_STRATEGY`: likewise, per alert `strategy`.
    pub max_orders_per_day_per_strategy: Option<u64>,
    /// `MAX_OPEN_POSITIONS`: most instruments open at once (see `pipeline::controls`).
    pub max_open_positions: Option<u64>,
    /// `SYMBOL_ALLOWLIST`: when set, only these symbols are traded (upper case; `NSE:RELIANCE`
    /// or `RELIANCE`).
    pub symbol_allowlist: Vec<String>,
    /// `SYMBOL_DENYLIST`: never these.
    pub symbol_denylist: Vec<String>,
    /// `ENTRY_WINDOW`: new entries only inside this IST window.
    pub entry_window: Option<EntryWindow>,
}

/// Default `MAX_ORDERS_PER_DAY`: Dhan's own daily cap on order writes. Beyond it Dhan refuses
/// anyway; refusing here says why, and stops a runaway strategy at the same point.
pub const DEFAULT_MAX_ORDERS_PER_DAY: u64 = 7000;

/// Every control setting.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ControlSettings {
    pub rails: RiskRails,
    /// `KILL_SWITCH_MODE`: entries (default) or all.
    pub kill_switch_mode: KillSwitchMode,
    /// `ON_LEG_REJECT`: continue (default) or stop; an alert may say otherwise.
    pub on_leg_reject: OnLegReject,
}

pub(super) fn control_settings(
    get: &impl Fn(&str) -> Option<String>,
) -> Result<ControlSettings, ConfigError> {
    let whole = |var: &'static str| -> Result<Option<u64>, ConfigError> {
        match get(var) {
            None => Ok(None),
            Some(v) if v.eq_ignore_ascii_case("off") => Ok(None),
            Some(v) => match v.replace('_', "").parse::<u64>() {
                Ok(n) if n >= 1 => Ok(Some(n)),
                _ => Err(ConfigError::new(
                    var,
                    format!("'{v}' is not accepted; use a whole number of at least 1, or off"),
                )),
            },
        }
    };
    let max_order_value = match get("MAX_ORDER_VALUE") {
        None => None,
        Some(v) if v.eq_ignore_ascii_case("off") => None,
        Some(v) => match v.replace('_', "").parse::<f64>() {
            Ok(n) if n.is_finite() && n > 0.0 => Some(n),
            _ => {
                return Err(ConfigError::new(
                    "MAX_ORDER_VALUE",
                    format!(
                        "'{v}' is not accepted; use rupees greater than 0 (e.g. 200000), or off"
                    ),
                ));
            }
        },
    };
    let max_orders_per_day = match get("MAX_ORDERS_PER_DAY") {
        None => Some(DEFAULT_MAX_ORDERS_PER_DAY),
        Some(_) => whole("MAX_ORDERS_PER_DAY")?,
    };
    let entry_window = match get("ENTRY_WINDOW") {
        None => None,
        Some(v) => Some(parse_window(&v).ok_or_else(|| {
            ConfigError::new(
                "ENTRY_WINDOW",
                format!(
                    "'{v}' is not accepted; use an IST window like 09:20-15:15 (start before end)"
                ),
            )
        })?),
    };
    let kill_switch_mode = match get("KILL_SWITCH_MODE")
        .map(|v| v.to_ascii_lowercase())
        .as_deref()
    {
        None | Some("entries") => KillSwitchMode::Entries,
        Some("all") => KillSwitchMode::All,
        Some(other) => {
            return Err(ConfigError::new(
                "KILL_SWITCH_MODE",
                format!("'{other}' is not accepted; use entries or all"),
            ));
        }
    };
    let on_leg_reject = match get("ON_LEG_REJECT") {
        None => OnLegReject::Continue,
        Some(v) => OnLegReject::parse(&v).ok_or_else(|| {
            ConfigError::new(
                "ON_LEG_REJECT",
                format!("'{v}' is not accepted; use {}", OnLegReject::ACCEPTED),
            )
        })?,
    };
    Ok(ControlSettings {
        rails: RiskRails {
            max_qty_per_leg: whole("MAX_QTY_PER_LEG")?,
            max_lots_per_leg: whole("MAX_LOTS_PER_LEG")?,
            max_order_value,
            max_orders_per_day,
            max_orders_per_day_per_strategy: whole("MAX_ORDERS_PER_DAY_PER_STRATEGY")?,
            max_open_positions: whole("MAX_OPEN_POSITIONS")?,
            symbol_allowlist: symbols(get, "SYMBOL_ALLOWLIST")?,
            symbol_denylist: symbols(get, "SYMBOL_DENYLIST")?,
            entry_window,
        },
        kill_switch_mode,
        on_leg_reject,
    })
}

/// `09:20-15:15`.
fn parse_window(v: &str) -> Option<EntryWindow> {
    let (a, b) = v.split_once('-')?;
    let from = NaiveTime::parse_from_str(a.trim(), "%H:%M").ok()?;
    let until = NaiveTime::parse_from_str(b.trim(), "%H:%M").ok()?;
    (from < until).then_some(EntryWindow { from, until })
}

/// A comma-separated list of symbols, upper-cased: `RELIANCE, NSE:TCS, NIFTY1!`.
fn symbols(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
) -> Result<Vec<String>, ConfigError> {
    let Some(v) = get(var) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let ok = item.len() <= 80
            && item
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "&-_.!:".contains(c));
        if !ok {
            return Err(ConfigError::new(
                var,
                format!(
                    "'{}' is not a symbol; use a comma-separated list like RELIANCE,NSE:TCS,NIFTY1!",
                    item.chars().take(40).collect::<String>()
                ),
            ));
        }
        out.push(item.to_ascii_uppercase());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn read(vars: &[(&str, &str)]) -> Result<ControlSettings, ConfigError> {
        let map: HashMap<&str, &str> = vars.iter().copied().collect();
        control_settings(&|k: &str| map.get(k).map(|v| (*v).to_owned()))
    }

    #[test]
    fn defaults_are_off_except_dhans_daily_cap() {
        let c = read(&[]).unwrap();
        assert_eq!(c.rails.max_orders_per_day, Some(DEFAULT_MAX_ORDERS_PER_DAY));
        assert_eq!(c.rails.max_qty_per_leg, None);
        assert_eq!(c.rails.entry_window, None);
        assert_eq!(c.kill_switch_mode, KillSwitchMode::Entries);
        assert_eq!(c.on_leg_reject, OnLegReject::Continue);
        assert_eq!(
            read(&[("MAX_ORDERS_PER_DAY", "off")])
                .unwrap()
                .rails
                .max_orders_per_day,
            None
        );
    }

    #[test]
    fn values_are_read() {
        let c = read(&[
            ("MAX_QTY_PER_LEG", "500"),
            ("MAX_LOTS_PER_LEG", "2"),
            ("MAX_ORDER_VALUE", "200_000"),
            ("SYMBOL_ALLOWLIST", "reliance, NSE:TCS"),
            ("ENTRY_WINDOW", "09:20-15:15"),
            ("KILL_SWITCH_MODE", "ALL"),
            ("ON_LEG_REJECT", "stop"),
        ])
        .unwrap();
        assert_eq!(c.rails.max_qty_per_leg, Some(500));
        assert_eq!(c.rails.max_lots_per_leg, Some(2));
        assert_eq!(c.rails.max_order_value, Some(200_000.0));
        assert_eq!(c.rails.symbol_allowlist, vec!["RELIANCE", "NSE:TCS"]);
        let w = c.rails.entry_window.unwrap();
        assert!(w.contains(NaiveTime::from_hms_opt(15, 14, 59).unwrap()));
        assert!(!w.contains(NaiveTime::from_hms_opt(15, 15, 0).unwrap()));
        assert_eq!(c.kill_switch_mode, KillSwitchMode::All);
        assert_eq!(c.on_leg_reject, OnLegReject::Stop);
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (var, value) in [
            ("MAX_QTY_PER_LEG", "0"),
            ("MAX_LOTS_PER_LEG", "-1"),
            ("MAX_ORDER_VALUE", "lots"),
            ("MAX_ORDERS_PER_DAY", "1.5"),
            ("MAX_ORDERS_PER_DAY_PER_STRATEGY", "x"),
            ("MAX_OPEN_POSITIONS", ""),
            ("SYMBOL_DENYLIST", "RELI ANCE"),
            ("ENTRY_WINDOW", "15:15-09:20"),
            ("KILL_SWITCH_MODE", "some"),
            ("ON_LEG_REJECT", "maybe"),
        ] {
            // An empty value counts as unset in Settings; here it is a bad number.
            let e = read(&[(var, value)]).unwrap_err();
            assert_eq!(e.var, var, "{value}");
        }
    }
}
