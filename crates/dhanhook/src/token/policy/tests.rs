//! The keeper's rules, case by case: [`decide`], the outcome bookkeeping and [`plan_refresh`].

use chrono::{Datelike, Weekday};
use secrecy::SecretString;

use super::*;
use crate::{
    dhan::DhanError,
    token::{TokenCheck, TokenSource},
};

fn ist_at(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    ist_offset()
        .with_ymd_and_hms(y, m, d, h, min, 0)
        .unwrap()
        .with_timezone(&Utc)
}

fn token_expiring(at: DateTime<Utc>) -> Token {
    Token {
        value: SecretString::from("fake.token.value"),
        expires_at: at,
        source: TokenSource::Minted,
        web_token: false,
        check: TokenCheck::Accepted,
    }
}

fn calendar() -> Calendar {
    Calendar::builtin()
}

// ---- decide ------------------------------------------------------------------------------

fn minutes(n: i64) -> chrono::Duration {
    chrono::Duration::minutes(n)
}

/// One row of the `decide` table: the situation, the request and the expected decision.
struct Case {
    name: &'static str,
    usable: Option<Token>,
    rejected: Option<Token>,
    renewable: bool,
    last_attempt_ago: Option<chrono::Duration>,
    stored_obtained_ago: Option<chrono::Duration>,
    failures: u32,
    halted: bool,
    reason: Reason,
    patience: Patience,
    want: Decision,
    lifts_halt: bool,
}

fn case(name: &'static str, reason: Reason, want: Decision) -> Case {
    Case {
        name,
        usable: None,
        rejected: None,
        renewable: true,
        last_attempt_ago: None,
        stored_obtained_ago: None,
        failures: 0,
        halted: false,
        reason,
        patience: Patience::AnswerNow,
        want,
        lifts_halt: false,
    }
}

#[test]
fn decide_follows_the_cooldown_backoff_and_halt_rules() {
    // Default settings: cooldown 125 s, margin 1 h, halt after 3 failures.
    let s = TokenSettings::default();
    let now = ist_at(2026, 12, 1, 10, 0);
    let fresh = token_expiring(now + chrono::Duration::hours(20));
    let mut other = token_expiring(now + chrono::Duration::hours(20));
    other.value = SecretString::from("another.token.value");
    let in_margin = token_expiring(now + minutes(30));
    let cooldown = chrono::Duration::seconds(125);
    let cases = [
        case("nothing minted yet: mint", Reason::Missing, Decision::Mint),
        Case {
            usable: Some(fresh.clone()),
            ..case(
                "a usable token answers a missing one (a concurrent refresh got it)",
                Reason::Missing,
                Decision::UseCurrent,
            )
        },
        Case {
            usable: Some(other),
            rejected: Some(fresh.clone()),
            ..case(
                "a token other than the refused one answers a refusal",
                Reason::Refused,
                Decision::UseCurrent,
            )
        },
        Case {
            usable: Some(fresh.clone()),
            rejected: Some(fresh.clone()),
            ..case(
                "the refused token itself does not",
                Reason::Refused,
                Decision::Mint,
            )
        },
        Case {
            usable: Some(fresh.clone()),
            ..case(
                "a token beyond the margin answers the schedule",
                Reason::Scheduled,
                Decision::UseCurrent,
            )
        },
        Case {
            usable: Some(in_margin),
            ..case(
                "a token inside the margin does not",
                Reason::Scheduled,
                Decision::Mint,
            )
        },
        Case {
            usable: Some(fresh),
            lifts_halt: true,
            ..case(
                "an operator always gets a new token",
                Reason::Operator,
                Decision::Mint,
            )
        },
        Case {
            renewable: false,
            ..case(
                "nothing to mint with: refused",
                Reason::Missing,
                Decision::Refuse(Refusal::NoRoute),
            )
        },
        Case {
            renewable: false,
            halted: true,
            failures: 3,
            ..case(
                "nothing to mint with, even for an operator (the halt stays)",
                Reason::Operator,
                Decision::Refuse(Refusal::NoRoute),
            )
        },
        Case {
            last_attempt_ago: Some(minutes(1)),
            ..case(
                "cooldown not over, an order: told how long",
                Reason::Missing,
                Decision::Refuse(Refusal::Cooldown { wait_secs: 65 }),
            )
        },
        Case {
            last_attempt_ago: Some(minutes(1)),
            patience: Patience::WaitOutCooldown,
            ..case(
                "cooldown not over, the schedule: waits it out",
                Reason::Scheduled,
                Decision::WaitUntil(now - minutes(1) + cooldown),
            )
        },
        Case {
            stored_obtained_ago: Some(minutes(1)),
            ..case(
                "another instance's mint starts the cooldown too",
                Reason::Missing,
                Decision::Refuse(Refusal::Cooldown { wait_secs: 65 }),
            )
        },
        Case {
            last_attempt_ago: Some(minutes(5)),
            stored_obtained_ago: Some(minutes(1)),
            ..case(
                "the later of the two counts",
                Reason::Missing,
                Decision::Refuse(Refusal::Cooldown { wait_secs: 65 }),
            )
        },
        Case {
            last_attempt_ago: Some(cooldown),
            ..case("cooldown just over: mint", Reason::Missing, Decision::Mint)
        },
        Case {
            last_attempt_ago: Some(minutes(3)),
            failures: 1,
            ..case(
                "one failure: one cooldown, over",
                Reason::Missing,
                Decision::Mint,
            )
        },
        Case {
            last_attempt_ago: Some(minutes(3)),
            failures: 2,
            ..case(
                "two failures: the cooldown doubles (250 s), even for the schedule",
                Reason::Scheduled,
                Decision::Refuse(Refusal::BackingOff {
                    until: now - minutes(3) + cooldown * 2,
                }),
            )
        },
        Case {
            last_attempt_ago: Some(minutes(10)),
            failures: 2,
            ..case(
                "two failures, 250 s passed: mint",
                Reason::Missing,
                Decision::Mint,
            )
        },
        Case {
            last_attempt_ago: Some(minutes(3)),
            failures: 2,
            lifts_halt: true,
            ..case(
                "an operator is not held by the backoff, only by the plain cooldown",
                Reason::Operator,
                Decision::Mint,
            )
        },
        Case {
            last_attempt_ago: Some(chrono::Duration::hours(2)),
            failures: 9,
            ..case(
                "the backoff stops doubling at 64 cooldowns (2 h 13 min)",
                Reason::Missing,
                Decision::Refuse(Refusal::BackingOff {
                    until: now - chrono::Duration::hours(2) + cooldown * 64,
                }),
            )
        },
        Case {
            last_attempt_ago: Some(chrono::Duration::hours(5)),
            failures: 3,
            halted: true,
            ..case(
                "halted: refused however long ago",
                Reason::Missing,
                Decision::Refuse(Refusal::Halted),
            )
        },
        Case {
            last_attempt_ago: Some(chrono::Duration::hours(5)),
            failures: 3,
            halted: true,
            patience: Patience::WaitOutCooldown,
            ..case(
                "halted: the schedule too",
                Reason::Scheduled,
                Decision::Refuse(Refusal::Halted),
            )
        },
        Case {
            last_attempt_ago: Some(chrono::Duration::hours(5)),
            failures: 3,
            halted: true,
            lifts_halt: true,
            ..case(
                "an operator's request lifts the halt",
                Reason::Operator,
                Decision::Mint,
            )
        },
        Case {
            last_attempt_ago: Some(minutes(1)),
            failures: 3,
            halted: true,
            lifts_halt: true,
            ..case(
                "and still honours the cooldown (the halt is lifted all the same)",
                Reason::Operator,
                Decision::Refuse(Refusal::Cooldown { wait_secs: 65 }),
            )
        },
    ];
    for c in cases {
        let mint = MintState {
            last_attempt: c.last_attempt_ago.map(|ago| now - ago),
            failures: c.failures,
            halted: c.halted,
            last_error: None,
        };
        let situation = Situation {
            mint: &mint,
            usable: c.usable.as_ref(),
            rejected: c.rejected.as_ref(),
            renewable: c.renewable,
            stored_obtained_at: c.stored_obtained_ago.map(|ago| now - ago),
        };
        let got = decide(now, &situation, c.reason, c.patience, &s);
        assert_eq!(got, c.want, "{}", c.name);
        assert_eq!(lifts_halt(c.reason, &got), c.lifts_halt, "{}", c.name);
    }
}

fn dhan_error(kind: DhanErrorKind) -> DhanError {
    DhanError {
        kind,
        http_status: Some(400),
        code: Some("DH-906".to_owned()),
        message: "Invalid Pin".to_owned(),
    }
}

#[test]
fn failures_halt_minting_at_the_limit_and_dhans_throttle_does_not_count() {
    let now = ist_at(2026, 12, 1, 10, 0);
    let mut st = MintState::default();
    assert!(!st.record_failure(now, &dhan_error(DhanErrorKind::Auth), 3));
    assert!(!st.record_failure(now, &dhan_error(DhanErrorKind::RateLimit), 3));
    assert_eq!(
        st.failures, 1,
        "a throttled attempt is not a credential failure"
    );
    assert!(!st.record_failure(now, &dhan_error(DhanErrorKind::Auth), 3));
    assert!(st.record_failure(now, &dhan_error(DhanErrorKind::Auth), 3));
    assert_eq!((st.failures, st.halted), (3, true));
    assert_eq!(st.last_error.as_deref(), Some("DH-906: Invalid Pin"));
    assert_eq!(st.last_attempt, Some(now));

    st.record_success(now + minutes(5));
    assert_eq!((st.failures, st.halted, st.last_error), (0, false, None));
    assert_eq!(st.last_attempt, Some(now + minutes(5)));
}

// ---- plan_refresh ------------------------------------------------------------------------

#[test]
fn refresh_is_planned_one_margin_before_expiry() {
    let s = TokenSettings::default();
    // Minted Tuesday 09:00 IST, valid 24 h: refresh Wednesday 08:00, before the 08:30 check.
    let now = ist_at(2026, 12, 1, 9, 0);
    let t = token_expiring(ist_at(2026, 12, 2, 9, 0));
    assert_eq!(
        plan_refresh(now, Some(&t), &s, false, &calendar()),
        Some(ist_at(2026, 12, 2, 8, 0))
    );
}

#[test]
fn a_token_that_would_die_mid_session_is_refreshed_before_the_open() {
    let s = TokenSettings::default();
    // Expires Wednesday 12:00 IST: the margin alone would refresh at 11:00, mid-session.
    let now = ist_at(2026, 12, 1, 20, 0);
    let t = token_expiring(ist_at(2026, 12, 2, 12, 0));
    assert_eq!(
        plan_refresh(now, Some(&t), &s, false, &calendar()),
        Some(ist_at(2026, 12, 2, 8, 30))
    );
}

#[test]
fn weekends_have_no_premarket_check() {
    let s = TokenSettings::default();
    // Friday 20:00, token expires Saturday 12:00: refresh Saturday 11:00 (no Saturday check).
    let now = ist_at(2026, 12, 4, 20, 0);
    let t = token_expiring(ist_at(2026, 12, 5, 12, 0));
    assert_eq!(
        plan_refresh(now, Some(&t), &s, false, &calendar()),
        Some(ist_at(2026, 12, 5, 11, 0))
    );
}

/// Holi, Tuesday 3 March 2026, is an NSE holiday (`data/holidays/nse-2026.csv`): no session,
/// so no pre-market check. The check that matters is Wednesday's.
#[test]
fn holidays_have_no_premarket_check_the_next_trading_day_has() {
    let s = TokenSettings::default();
    let holiday = chrono::NaiveDate::from_ymd_opt(2026, 3, 3).unwrap();
    assert_eq!(holiday.weekday(), Weekday::Tue);
    assert!(!calendar().is_trading_day(Venue::NseEquity, holiday));
    let now = ist_at(2026, 3, 2, 20, 0);

    // Dies Wednesday 12:00, mid-session: refreshed at Wednesday's 08:30 check. Counting the
    // holiday as the next check day found nothing to do on it, and left the margin's 11:00.
    let t = token_expiring(ist_at(2026, 3, 4, 12, 0));
    assert_eq!(
        plan_refresh(now, Some(&t), &s, false, &calendar()),
        Some(ist_at(2026, 3, 4, 8, 30)),
        "refreshed before Wednesday's open"
    );

    // Dies on the holiday itself: the margin (11:00) is enough, no holiday-morning check.
    let t = token_expiring(ist_at(2026, 3, 3, 12, 0));
    assert_eq!(
        plan_refresh(now, Some(&t), &s, false, &calendar()),
        Some(ist_at(2026, 3, 3, 11, 0)),
        "no pre-market check on the holiday"
    );
}

#[test]
fn no_token_means_now_and_a_halt_means_never() {
    let s = TokenSettings::default();
    let now = ist_at(2026, 12, 1, 9, 0);
    assert_eq!(plan_refresh(now, None, &s, false, &calendar()), Some(now));
    assert_eq!(plan_refresh(now, None, &s, true, &calendar()), None);
    let overdue = token_expiring(now + chrono::Duration::minutes(59));
    assert_eq!(
        plan_refresh(now, Some(&overdue), &s, false, &calendar()),
        Some(now),
        "inside the margin: now"
    );
}

/// Reliability bar §6.9: over 30 days, with tokens living 20–24 h and Dhan logging every
/// session out at 07:00 IST, a token with 30 minutes of headroom exists at every minute of
/// 08:45–15:45 IST on weekdays, with at most 3 mints a day. A forced logout is seen by the
/// keeper as "expired" (the health check or the next order reports it).
#[test]
fn thirty_days_of_schedule_keep_headroom_through_every_session() {
    let s = TokenSettings::default();
    let calendar = calendar();
    let result = simulate_days(30, |now, token| {
        token.is_none_or(|t| t.expires_at <= now)
            || plan_refresh(now, token, &s, false, &calendar).is_some_and(|at| at <= now)
    });
    assert_eq!(result, Ok(()));
}

/// The seed's scheme (poll every 6 h, renew under 1 h left) must fail the same test.
#[test]
fn the_seeds_polling_scheme_fails_that_test() {
    let result = simulate_days(30, |now, token| {
        use chrono::Timelike;
        let local = ist(now);
        let poll = local.minute() == 0 && local.hour().is_multiple_of(6);
        poll && token.is_none_or(|t| t.expires_at - chrono::Duration::hours(1) <= now)
    });
    assert!(
        result.is_err(),
        "the seed's scheme leaves sessions without a token"
    );
}

/// Runs a refresh policy minute by minute for `days` days and checks session headroom and
/// the number of mints per day.
fn simulate_days(
    days: i64,
    due: impl Fn(DateTime<Utc>, Option<&Token>) -> bool,
) -> Result<(), String> {
    let start = ist_at(2026, 12, 1, 0, 0);
    let mut now = start;
    let mut token: Option<Token> = None;
    let mut mints_by_day = std::collections::HashMap::<chrono::NaiveDate, u32>::new();
    let mut lifetime_hours = [20, 24, 22, 21, 23].into_iter().cycle();
    let (open, close) = (
        NaiveTime::from_hms_opt(8, 45, 0).unwrap(),
        NaiveTime::from_hms_opt(15, 45, 0).unwrap(),
    );
    while now < start + chrono::Duration::days(days) {
        let local = ist(now);
        if local.time() == NaiveTime::from_hms_opt(7, 0, 0).unwrap() {
            token = token.map(|t| token_expiring(t.expires_at.min(now)));
        }
        if due(now, token.as_ref()) {
            token = Some(token_expiring(
                now + chrono::Duration::hours(lifetime_hours.next().unwrap()),
            ));
            *mints_by_day.entry(local.date_naive()).or_default() += 1;
        }
        let weekday = !matches!(local.weekday(), Weekday::Sat | Weekday::Sun);
        if weekday && local.time() >= open && local.time() <= close {
            let ok = token
                .as_ref()
                .is_some_and(|t| t.expires_at - now >= chrono::Duration::minutes(30));
            if !ok {
                return Err(format!("no headroom at {local}"));
            }
        }
        now += chrono::Duration::minutes(1);
    }
    match mints_by_day.iter().find(|(_, n)| **n > 3) {
        Some((day, n)) => Err(format!("{n} mints on {day}")),
        None => Ok(()),
    }
}
