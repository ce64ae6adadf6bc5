//! Trader controls: the rules a leg must pass at the moment it would be sent, so that what
//! reaches the broker stays inside limits the trader set, whatever an alert asks for.
//!
//! Why here, at send time, and not when the alert arrives: a queued alert is sent at the open,
//! and what matters then is the kill switch and the day's count *at the open*; and the day's
//! counts only mean something when counting and sending are one step. Every rule is judged
//! inside the journal's gate ([`crate::store::ControlJournal::gate_leg`]), which holds the
//! controls lock across instances while it reads the counts and marks the leg SUBMITTING or
//! BLOCKED. A BLOCKED leg is final and never reaches the broker; its message names the rule
//! and the numbers.
//!
//! The rules, in the order they are tried (the first that refuses wins):
//! 1. the kill switch (entries only, or every order with `KILL_SWITCH_MODE=all`);
//! 2. `on_leg_reject=stop`: an earlier leg of the alert is not at the broker;
//! 3. size: `MAX_QTY_PER_LEG`, `MAX_LOTS_PER_LEG`, `MAX_ORDER_VALUE` (exits too: a fat finger
//!    on an exit opens a position the other way);
//! 4. entries only: `SYMBOL_ALLOWLIST` / `SYMBOL_DENYLIST`, `ENTRY_WINDOW`,
//!    `MAX_ORDERS_PER_DAY`, `MAX_ORDERS_PER_DAY_PER_STRATEGY`, `MAX_OPEN_POSITIONS`. Exits are
//!    exempt so a position can always be closed.
//!
//! The reconciler's single re-send of an order the broker never got is the same order, already
//! counted: only the kill switch is applied to it.
//!
//! **Entry or exit** ([`is_exit`]): a leg is an exit when `pipeline::positions` worked it out as
//! one, from a position-aware alert (`"position":"flat"`, `"action":"exit"`, Dhan's
//! `manage_position: "EXIT_ALL"`, the square-off, or a target moving the position towards zero
//! without crossing it), against the broker's actual position. Nothing is inferred from a plain
//! order's side or product: a SELL may open a short, and guessing wrong would let an entry
//! through the kill switch.
//!
//! **Open positions** (`MAX_OPEN_POSITIONS`): counted from the journal, not the broker: the
//! instruments on which dhanhook's legs sent in the current IST day left a non-zero net filled
//! quantity, or still have an order working at the broker (or with an outcome not yet known).
//! Positions carried from earlier days, or opened outside dhanhook, are not counted. An entry on
//! an instrument already open adds to that position and is not refused by this rule.

use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveTime, TimeZone, Utc};

use crate::{
    alert::LegOrder,
    clock::{Clock, ist, ist_offset},
    config::{ControlSettings, KillSwitchMode, RiskRails},
    domain::OnLegReject,
    store::{
        ControlJournal, Gate, GateCounts, GateSpec, JournalError, KillSwitch, LegStatus, NewLeg,
        SendContext, instrument_key,
    },
};

/// Whether a leg closes a position (see the module header): set by `pipeline::positions` only.
pub fn is_exit(leg: &LegOrder) -> bool {
    leg.closes
}

/// The controls as the placer applies them. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Controls {
    journal: Arc<dyn ControlJournal>,
    settings: Arc<ControlSettings>,
    clock: Arc<dyn Clock>,
}

impl Controls {
    pub fn new(
        journal: Arc<dyn ControlJournal>,
        settings: ControlSettings,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            journal,
            settings: Arc::new(settings),
            clock,
        }
    }

    /// Judges `leg` of `alert_id` and marks it SUBMITTING ([`Gate::Send`]) or BLOCKED.
    ///
    /// # Errors
    /// The journal failed or refused the transition: the leg must not be sent.
    pub async fn gate(&self, alert_id: &str, leg: &NewLeg) -> Result<Gate, JournalError> {
        self.journal.gate_leg(alert_id, self.spec(leg)).await
    }

    /// What the journal needs to judge `leg` now: by itself ([`Controls::gate`]) or inside its
    /// alert's admission ([`crate::store::AlertJournal::admit_gated`]).
    pub fn spec(&self, leg: &NewLeg) -> GateSpec {
        let now = self.clock.now();
        let (settings, leg_owned) = (Arc::clone(&self.settings), leg.clone());
        GateSpec {
            leg_no: leg.leg_no,
            day: ist_day(now),
            counts: GateCounts {
                orders_today: self.settings.rails.max_orders_per_day.is_some(),
                strategy_orders_today: self
                    .settings
                    .rails
                    .max_orders_per_day_per_strategy
                    .is_some(),
                open_instruments: self.settings.rails.max_open_positions.is_some(),
            },
            rule: Arc::new(move |ctx: &SendContext| judge(&settings, &leg_owned, ctx, now)),
            now,
        }
    }
}

/// The IST calendar day holding `now`, as UTC instants `[start, end)`.
pub fn ist_day(now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let date = ist(now).date_naive();
    let start = ist_offset()
        .from_local_datetime(&date.and_time(NaiveTime::MIN))
        .single()
        .map_or(now, |t| t.with_timezone(&Utc));
    (start, start + Duration::days(1))
}

/// Why `leg` may not be sent now, or `None` when it may (the rules of the module header).
pub fn judge(
    settings: &ControlSettings,
    leg: &NewLeg,
    ctx: &SendContext,
    now: DateTime<Utc>,
) -> Option<String> {
    let exit = is_exit(&leg.order);
    if let Some(why) = kill_switch(&ctx.kill_switch, settings.kill_switch_mode, exit) {
        return Some(why);
    }
    // A re-send is the order already judged and counted when it was first sent.
    if ctx.from == LegStatus::Unknown {
        return None;
    }
    if ctx.on_leg_reject == OnLegReject::Stop
        && let Some((n, status)) = ctx.earlier_legs.iter().find(|(_, s)| !at_broker(*s))
    {
        return Some(format!(
            "blocked by on_leg_reject=stop: leg {n} is {status}, so the remaining legs are not sent"
        ));
    }
    let rails = &settings.rails;
    if let Some(why) = size(rails, leg) {
        return Some(why);
    }
    if exit {
        return None;
    }
    if let Some(why) = symbol(rails, leg) {
        return Some(why);
    }
    if let Some(w) = rails.entry_window {
        let t = ist(now).time();
        if !w.contains(t) {
            return Some(format!(
                "blocked by ENTRY_WINDOW: no new entries at {} IST (entries {}-{} IST); exits still pass",
                t.format("%H:%M"),
                w.from.format("%H:%M"),
                w.until.format("%H:%M")
            ));
        }
    }
    if let Some(max) = rails.max_orders_per_day
        && count(ctx.orders_today) >= max
    {
        return Some(format!(
            "blocked by MAX_ORDERS_PER_DAY: {} orders already sent today (IST), limit {max}",
            ctx.orders_today
        ));
    }
    if let Some(max) = rails.max_orders_per_day_per_strategy
        && count(ctx.strategy_orders_today) >= max
    {
        return Some(format!(
            "blocked by MAX_ORDERS_PER_DAY_PER_STRATEGY: {} orders of strategy {} already sent today (IST), limit {max}",
            ctx.strategy_orders_today,
            ctx.strategy.as_deref().unwrap_or("(none)")
        ));
    }
    if let Some(max) = rails.max_open_positions {
        let key = instrument_key(&leg.resolved.security_id, &leg.resolved.exchange_segment);
        let open = ctx.open_instruments.len();
        if !ctx.open_instruments.contains(&key)
            && count(i64::try_from(open).unwrap_or(i64::MAX)) >= max
        {
            return Some(format!(
                "blocked by MAX_OPEN_POSITIONS: {open} instruments already open today, limit {max}; {} would be one more",
                leg.resolved.trading_symbol
            ));
        }
    }
    None
}

/// A journal count as the rules compare it (never negative).
fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// The broker has the order (the only earlier-leg states `on_leg_reject=stop` goes on after).
fn at_broker(status: LegStatus) -> bool {
    matches!(
        status,
        LegStatus::Accepted | LegStatus::Pending | LegStatus::PartTraded | LegStatus::Filled
    )
}

fn kill_switch(ks: &KillSwitch, mode: KillSwitchMode, exit: bool) -> Option<String> {
    if !ks.on || (exit && mode == KillSwitchMode::Entries) {
        return None;
    }
    let since = ks.since.map_or_else(
        || "an unknown time".to_owned(),
        |t| format!("{} IST", ist(t).format("%Y-%m-%d %H:%M:%S")),
    );
    let by = ks.by.as_deref().unwrap_or("unknown");
    let note = ks
        .note
        .as_deref()
        .map(|n| format!(" ({n})"))
        .unwrap_or_default();
    Some(match mode {
        KillSwitchMode::Entries => {
            format!(
                "blocked: kill switch on since {since} by {by}{note}; entries are refused, exits pass"
            )
        }
        KillSwitchMode::All => format!(
            "blocked: kill switch on since {since} by {by}{note}; every order is refused (KILL_SWITCH_MODE=all)"
        ),
    })
}

fn size(rails: &RiskRails, leg: &NewLeg) -> Option<String> {
    let units = u64::from(leg.resolved.units);
    let lot = u64::from(leg.resolved.lot_size.max(1));
    if let Some(max) = rails.max_qty_per_leg
        && units > max
    {
        return Some(format!(
            "blocked by MAX_QTY_PER_LEG: {units} units, limit {max}"
        ));
    }
    if let Some(max) = rails.max_lots_per_leg {
        let lots = units.div_ceil(lot);
        if lots > max {
            return Some(format!(
                "blocked by MAX_LOTS_PER_LEG: {lots} lots ({units} units, lot size {lot}), limit {max}"
            ));
        }
    }
    if let Some(max) = rails.max_order_value {
        // The limit price, or the alert's price on a market order; an SL-M's trigger.
        let price = leg.order.price.or(leg.order.trigger_price);
        if let Some(price) = price {
            #[allow(clippy::cast_precision_loss)] // units are far below 2^52
            let value = units as f64 * price;
            if value > max {
                return Some(format!(
                    "blocked by MAX_ORDER_VALUE: {units} units × ₹{price:.2} = ₹{value:.2}, limit ₹{max:.2}"
                ));
            }
        }
    }
    None
}

/// The names a leg goes by in the lists: the alert's symbol and the resolved trading symbol,
/// each bare and with the exchange (`RELIANCE`, `NSE:RELIANCE`).
fn names(leg: &NewLeg) -> Vec<String> {
    let ex = leg.order.exchange.as_str();
    let mut out = vec![
        leg.order.symbol.to_ascii_uppercase(),
        format!("{ex}:{}", leg.order.symbol.to_ascii_uppercase()),
    ];
    let ts = leg.resolved.trading_symbol.to_ascii_uppercase();
    if !out.contains(&ts) {
        out.push(format!("{ex}:{ts}"));
        out.push(ts);
    }
    out
}

fn symbol(rails: &RiskRails, leg: &NewLeg) -> Option<String> {
    let names = names(leg);
    if let Some(hit) = rails.symbol_denylist.iter().find(|d| names.contains(d)) {
        return Some(format!(
            "blocked by SYMBOL_DENYLIST: {} is listed ({hit})",
            leg.order.symbol
        ));
    }
    if !rails.symbol_allowlist.is_empty()
        && !rails.symbol_allowlist.iter().any(|a| names.contains(a))
    {
        return Some(format!(
            "blocked by SYMBOL_ALLOWLIST: {} is not in it ({})",
            leg.order.symbol,
            rails.symbol_allowlist.join(",")
        ));
    }
    None
}

#[cfg(test)]
mod tests;
