use chrono::TimeZone;
use serde_json::json;

use super::*;
use crate::{alert::parse_signal, store::ResolvedLeg};

/// A leg as admission builds it, from a flat alert with `extra` fields; NIFTY-like when
/// `lot_size` > 1.
fn leg(extra: serde_json::Value, units: u32, lot_size: u32) -> NewLeg {
    let mut body =
        json!({"symbol":"NSE:RELIANCE","action":"buy","quantity":units,"product":"intraday"});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let signal = parse_signal(body.as_object().unwrap()).expect("valid alert");
    NewLeg {
        leg_no: 1,
        correlation_id: "DH1L1".to_owned(),
        order: signal.legs.into_iter().next().unwrap(),
        resolved: ResolvedLeg {
            security_id: "2885".to_owned(),
            exchange_segment: "NSE_EQ".to_owned(),
            trading_symbol: "RELIANCE".to_owned(),
            lot_size,
            units,
        },
        refused: None,
    }
}

fn entry(units: u32) -> NewLeg {
    leg(json!({}), units, 1)
}

/// A SELL that `pipeline::positions` worked out as closing a position.
fn exit(units: u32) -> NewLeg {
    let mut leg = leg(json!({"action":"sell"}), units, 1);
    leg.order.closes = true;
    leg
}

fn ctx() -> SendContext {
    SendContext {
        kill_switch: KillSwitch {
            on: false,
            since: None,
            by: None,
            note: None,
        },
        from: LegStatus::Received,
        strategy: Some("ema".to_owned()),
        orders_today: 0,
        strategy_orders_today: 0,
        open_instruments: Vec::new(),
        on_leg_reject: OnLegReject::Continue,
        earlier_legs: Vec::new(),
    }
}

fn killed() -> SendContext {
    SendContext {
        kill_switch: KillSwitch {
            on: true,
            since: Some(Utc.with_ymd_and_hms(2026, 12, 1, 4, 0, 0).unwrap()),
            by: Some("203.0.113.9".to_owned()),
            note: Some("drawdown".to_owned()),
        },
        ..ctx()
    }
}

/// 10:00 IST on a Tuesday.
fn ten() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 4, 30, 0).unwrap()
}

fn settings(rails: RiskRails) -> ControlSettings {
    ControlSettings {
        rails,
        ..ControlSettings::default()
    }
}

#[test]
fn only_an_explicit_flat_position_makes_an_exit() {
    assert!(is_exit(&exit(1).order));
    assert!(!is_exit(&entry(1).order));
    // A SELL alone is not an exit: it may open a short.
    assert!(!is_exit(&leg(json!({"action":"sell"}), 1, 1).order));
}

#[test]
fn the_kill_switch_refuses_entries_and_lets_exits_through_unless_mode_is_all() {
    let s = ControlSettings::default();
    let why = judge(&s, &entry(1), &killed(), ten()).expect("entry refused");
    assert!(
        why.contains("kill switch on since 2026-12-01 09:30:00 IST by 203.0.113.9 (drawdown)"),
        "{why}"
    );
    assert_eq!(judge(&s, &exit(1), &killed(), ten()), None);
    let all = ControlSettings {
        kill_switch_mode: KillSwitchMode::All,
        ..ControlSettings::default()
    };
    let why = judge(&all, &exit(1), &killed(), ten()).expect("exit refused too");
    assert!(why.contains("KILL_SWITCH_MODE=all"), "{why}");
}

#[test]
fn a_re_send_is_judged_by_the_kill_switch_only() {
    let s = settings(RiskRails {
        max_orders_per_day: Some(1),
        ..RiskRails::default()
    });
    let resend = SendContext {
        from: LegStatus::Unknown,
        orders_today: 5,
        ..ctx()
    };
    assert_eq!(judge(&s, &entry(1), &resend, ten()), None);
    let resend_killed = SendContext {
        from: LegStatus::Unknown,
        ..killed()
    };
    assert!(judge(&s, &entry(1), &resend_killed, ten()).is_some());
}

#[test]
fn size_rails_name_the_rule_and_the_numbers_and_apply_to_exits_too() {
    let s = settings(RiskRails {
        max_qty_per_leg: Some(100),
        ..RiskRails::default()
    });
    assert_eq!(judge(&s, &entry(100), &ctx(), ten()), None);
    let why = judge(&s, &exit(101), &ctx(), ten()).unwrap();
    assert_eq!(why, "blocked by MAX_QTY_PER_LEG: 101 units, limit 100");

    let s = settings(RiskRails {
        max_lots_per_leg: Some(2),
        ..RiskRails::default()
    });
    assert_eq!(judge(&s, &leg(json!({}), 150, 75), &ctx(), ten()), None);
    let why = judge(&s, &leg(json!({}), 225, 75), &ctx(), ten()).unwrap();
    assert_eq!(
        why,
        "blocked by MAX_LOTS_PER_LEG: 3 lots (225 units, lot size 75), limit 2"
    );

    let s = settings(RiskRails {
        max_order_value: Some(100_000.0),
        ..RiskRails::default()
    });
    let priced = leg(json!({"price":"2500"}), 40, 1);
    assert_eq!(judge(&s, &priced, &ctx(), ten()), None);
    let why = judge(&s, &leg(json!({"price":"2500"}), 41, 1), &ctx(), ten()).unwrap();
    assert_eq!(
        why,
        "blocked by MAX_ORDER_VALUE: 41 units × ₹2500.00 = ₹102500.00, limit ₹100000.00"
    );
    // No price known: this rail cannot judge the leg.
    assert_eq!(judge(&s, &entry(1000), &ctx(), ten()), None);
}

#[test]
fn symbol_lists_match_bare_or_exchange_prefixed_names_and_spare_exits() {
    let deny = settings(RiskRails {
        symbol_denylist: vec!["NSE:RELIANCE".to_owned()],
        ..RiskRails::default()
    });
    let why = judge(&deny, &entry(1), &ctx(), ten()).unwrap();
    assert!(
        why.starts_with("blocked by SYMBOL_DENYLIST: RELIANCE"),
        "{why}"
    );
    assert_eq!(judge(&deny, &exit(1), &ctx(), ten()), None);

    let allow = settings(RiskRails {
        symbol_allowlist: vec!["TCS".to_owned(), "INFY".to_owned()],
        ..RiskRails::default()
    });
    let why = judge(&allow, &entry(1), &ctx(), ten()).unwrap();
    assert_eq!(
        why,
        "blocked by SYMBOL_ALLOWLIST: RELIANCE is not in it (TCS,INFY)"
    );
    let allow = settings(RiskRails {
        symbol_allowlist: vec!["RELIANCE".to_owned()],
        ..RiskRails::default()
    });
    assert_eq!(judge(&allow, &entry(1), &ctx(), ten()), None);
}

#[test]
fn the_entry_window_is_in_ist_and_exits_are_always_allowed() {
    let s = settings(RiskRails {
        entry_window: Some(crate::config::EntryWindow {
            from: NaiveTime::from_hms_opt(9, 20, 0).unwrap(),
            until: NaiveTime::from_hms_opt(15, 15, 0).unwrap(),
        }),
        ..RiskRails::default()
    });
    assert_eq!(judge(&s, &entry(1), &ctx(), ten()), None);
    // 15:20 IST.
    let late = Utc.with_ymd_and_hms(2026, 12, 1, 9, 50, 0).unwrap();
    let why = judge(&s, &entry(1), &ctx(), late).unwrap();
    assert_eq!(
        why,
        "blocked by ENTRY_WINDOW: no new entries at 15:20 IST (entries 09:20-15:15 IST); exits still pass"
    );
    assert_eq!(judge(&s, &exit(1), &ctx(), late), None);
}

#[test]
fn day_counts_refuse_entries_at_the_limit() {
    let s = settings(RiskRails {
        max_orders_per_day: Some(3),
        max_orders_per_day_per_strategy: Some(2),
        ..RiskRails::default()
    });
    let at = |total, strategy| SendContext {
        orders_today: total,
        strategy_orders_today: strategy,
        ..ctx()
    };
    assert_eq!(judge(&s, &entry(1), &at(1, 1), ten()), None);
    assert_eq!(
        judge(&s, &entry(1), &at(3, 0), ten()).unwrap(),
        "blocked by MAX_ORDERS_PER_DAY: 3 orders already sent today (IST), limit 3"
    );
    assert_eq!(
        judge(&s, &entry(1), &at(2, 2), ten()).unwrap(),
        "blocked by MAX_ORDERS_PER_DAY_PER_STRATEGY: 2 orders of strategy ema already sent today (IST), limit 2"
    );
    assert_eq!(judge(&s, &exit(1), &at(3, 2), ten()), None);
}

#[test]
fn open_positions_refuse_a_new_instrument_but_not_adding_to_an_open_one() {
    let s = settings(RiskRails {
        max_open_positions: Some(1),
        ..RiskRails::default()
    });
    let other = SendContext {
        open_instruments: vec![instrument_key("11536", "NSE_EQ")],
        ..ctx()
    };
    let why = judge(&s, &entry(1), &other, ten()).unwrap();
    assert_eq!(
        why,
        "blocked by MAX_OPEN_POSITIONS: 1 instruments already open today, limit 1; RELIANCE would be one more"
    );
    let same = SendContext {
        open_instruments: vec![instrument_key("2885", "NSE_EQ")],
        ..ctx()
    };
    assert_eq!(judge(&s, &entry(1), &same, ten()), None);
}

#[test]
fn stop_sends_a_leg_only_while_every_earlier_leg_is_at_the_broker() {
    let s = ControlSettings::default();
    let after = |status| SendContext {
        on_leg_reject: OnLegReject::Stop,
        earlier_legs: vec![(1, LegStatus::Filled), (2, status)],
        ..ctx()
    };
    assert_eq!(
        judge(&s, &entry(1), &after(LegStatus::Accepted), ten()),
        None
    );
    for status in [LegStatus::Rejected, LegStatus::Blocked, LegStatus::Unknown] {
        let why = judge(&s, &entry(1), &after(status), ten()).unwrap();
        assert_eq!(
            why,
            format!(
                "blocked by on_leg_reject=stop: leg 2 is {status}, so the remaining legs are not sent"
            )
        );
    }
    let carry_on = SendContext {
        on_leg_reject: OnLegReject::Continue,
        ..after(LegStatus::Rejected)
    };
    assert_eq!(judge(&s, &entry(1), &carry_on, ten()), None);
}

#[test]
fn the_ist_day_starts_at_ist_midnight() {
    // 00:10 IST on 2 Dec is 18:40 UTC on 1 Dec.
    let (start, end) = ist_day(Utc.with_ymd_and_hms(2026, 12, 1, 18, 40, 0).unwrap());
    assert_eq!(start, Utc.with_ymd_and_hms(2026, 12, 1, 18, 30, 0).unwrap());
    assert_eq!(end - start, Duration::days(1));
}
