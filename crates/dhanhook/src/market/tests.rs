//! Tests of the calendar and routing against the 2026 facts in `docs/market.md`, plus a
//! property-style comparison with an independently written reference for NSE equity.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};

use super::*;
use crate::{
    clock::{ist, ist_offset},
    domain::AmoTime,
};

/// The UTC instant of an IST wall-clock time.
fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    ist_offset()
        .with_ymd_and_hms(y, mo, d, h, mi, s)
        .single()
        .unwrap()
        .with_timezone(&Utc)
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

/// The 16 weekday NSE/BSE equity + F&O holidays of 2026 (§1.1), written out independently of
/// the data file.
const NSE_WEEKDAY_HOLIDAYS_2026: [(u32, u32); 16] = [
    (1, 15),
    (1, 26),
    (3, 3),
    (3, 26),
    (3, 31),
    (4, 3),
    (4, 14),
    (5, 1),
    (5, 28),
    (6, 26),
    (9, 14),
    (10, 2),
    (10, 20),
    (11, 10),
    (11, 24),
    (12, 25),
];

const EQUITY_LIKE: [Venue; 4] = [
    Venue::NseEquity,
    Venue::BseEquity,
    Venue::NseDerivatives,
    Venue::BseDerivatives,
];

/// Routes with the default AMO window and `amoTime` OPEN.
fn route_with(cal: &Calendar, at_: DateTime<Utc>, venues: &[Venue], policy: WhenClosed) -> Route {
    route(
        at_,
        venues,
        policy,
        AmoWindow::default(),
        AmoTime::Open,
        cal,
    )
}

/// The same on the built-in calendar.
fn amo(at_: DateTime<Utc>, venues: &[Venue], policy: WhenClosed) -> Route {
    route_with(&Calendar::builtin(), at_, venues, policy)
}

// ---------------------------------------------------------------- 2026 facts

#[test]
fn builtin_covers_2026_for_every_venue() {
    // A built-in file that failed to parse would be dropped and show up here as missing.
    let cal = Calendar::builtin();
    for venue in Venue::ALL {
        assert_eq!(
            cal.missing_years(venue, date(2026, 1, 1), 364),
            Vec::<i32>::new(),
            "{venue}"
        );
    }
}

#[test]
fn every_nse_holiday_is_closed() {
    let cal = Calendar::builtin();
    for (m, d) in NSE_WEEKDAY_HOLIDAYS_2026 {
        for venue in EQUITY_LIKE {
            assert!(
                !cal.is_trading_day(venue, date(2026, m, d)),
                "{venue} {m}-{d}"
            );
            assert!(
                !cal.is_open(venue, at(2026, m, d, 10, 0, 0)),
                "{venue} {m}-{d}"
            );
        }
        for venue in [Venue::NseCurrency, Venue::BseCurrency] {
            assert!(
                !cal.is_open(venue, at(2026, m, d, 10, 0, 0)),
                "{venue} {m}-{d}"
            );
        }
    }
    assert_eq!(
        cal.upcoming_holidays(Venue::NseEquity, date(2026, 1, 1), 100)
            .len(),
        16,
        "weekday closures only"
    );
}

#[test]
fn currency_has_its_extra_holidays() {
    let cal = Calendar::builtin();
    for (m, d) in [(2, 19), (3, 19), (4, 1), (8, 26)] {
        let t = at(2026, m, d, 10, 0, 0);
        assert!(!cal.is_open(Venue::NseCurrency, t), "{m}-{d}");
        assert!(!cal.is_open(Venue::BseCurrency, t), "{m}-{d}");
        assert!(cal.is_open(Venue::NseEquity, t), "{m}-{d}");
    }
    assert!(cal.is_open(Venue::NseCurrency, at(2026, 2, 18, 16, 59, 59)));
    assert!(!cal.is_open(Venue::NseCurrency, at(2026, 2, 18, 17, 0, 0)));
    assert!(cal.is_open(Venue::NseCurrency, at(2026, 2, 18, 9, 0, 0)));
}

#[test]
fn special_and_weekend_sessions() {
    let cal = Calendar::builtin();
    // Budget Sunday: normal timings for equity and F&O.
    for venue in EQUITY_LIKE {
        assert!(cal.is_open(venue, at(2026, 2, 1, 9, 15, 0)), "{venue}");
        assert!(!cal.is_open(venue, at(2026, 2, 1, 9, 14, 59)), "{venue}");
        assert!(!cal.is_open(venue, at(2026, 2, 1, 15, 30, 0)), "{venue}");
    }
    // Not sourced for currency or MCX.
    assert!(!cal.is_open(Venue::NseCurrency, at(2026, 2, 1, 10, 0, 0)));
    assert!(!cal.is_open(Venue::Mcx, at(2026, 2, 1, 10, 0, 0)));
    // A normal Saturday and Sunday.
    for venue in Venue::ALL {
        assert!(!cal.is_open(venue, at(2026, 12, 5, 10, 0, 0)), "{venue}");
        assert!(!cal.is_trading_day(venue, date(2026, 12, 6)), "{venue}");
    }
    // Muhurat Sunday (tentative 18:00-19:00).
    assert!(cal.is_open(Venue::NseEquity, at(2026, 11, 8, 18, 30, 0)));
    assert!(!cal.is_open(Venue::NseEquity, at(2026, 11, 8, 17, 59, 59)));
    assert!(!cal.is_open(Venue::NseEquity, at(2026, 11, 8, 19, 0, 0)));
    assert!(!cal.is_open(Venue::NseEquity, at(2026, 11, 8, 10, 0, 0)));
}

#[test]
fn fno_closes_at_1540_from_august_2026() {
    let cal = Calendar::builtin();
    for venue in [Venue::NseDerivatives, Venue::BseDerivatives] {
        assert!(cal.is_open(venue, at(2026, 8, 4, 15, 35, 0)), "{venue}");
        assert!(!cal.is_open(venue, at(2026, 8, 4, 15, 40, 0)), "{venue}");
        assert!(!cal.is_open(venue, at(2026, 7, 30, 15, 35, 0)), "{venue}");
        assert!(!cal.is_open(venue, at(2026, 7, 31, 15, 30, 0)), "{venue}");
        assert!(cal.is_open(venue, at(2026, 8, 3, 15, 39, 59)), "{venue}");
    }
    // Cash keeps 15:30.
    assert!(!cal.is_open(Venue::NseEquity, at(2026, 8, 4, 15, 35, 0)));
}

#[test]
fn mcx_close_follows_us_daylight_saving() {
    let cal = Calendar::builtin();
    let mcx = |y, m, d| cal.is_open(Venue::Mcx, at(y, m, d, 23, 40, 0));
    assert!(mcx(2026, 11, 3), "23:55 close in November");
    assert!(!mcx(2026, 10, 29), "23:30 close in October");
    // The 2026 edges from the circular: 23:30 from Mon 9 Mar to Fri 30 Oct.
    assert!(mcx(2026, 3, 6));
    assert!(!mcx(2026, 3, 9));
    assert!(!mcx(2026, 10, 30));
    assert!(mcx(2026, 11, 2));
    // The derived 2027 edges (Mon 15 Mar – Fri 5 Nov); 2027 has no holiday file.
    assert!(mcx(2027, 3, 12));
    assert!(!mcx(2027, 3, 15));
    assert!(!mcx(2027, 11, 5));
    assert!(mcx(2027, 11, 8));
    // One seamless window on a normal day.
    assert_eq!(
        cal.sessions_on(Venue::Mcx, date(2026, 11, 3)),
        vec![(at(2026, 11, 3, 9, 0, 0), at(2026, 11, 3, 23, 55, 0))]
    );
}

#[test]
fn mcx_partial_holidays() {
    let cal = Calendar::builtin();
    // Holi: morning closed, evening open.
    assert!(cal.is_open(Venue::Mcx, at(2026, 3, 3, 18, 0, 0)));
    assert!(!cal.is_open(Venue::Mcx, at(2026, 3, 3, 10, 0, 0)));
    assert!(cal.is_open(Venue::Mcx, at(2026, 3, 3, 17, 0, 0)));
    assert_eq!(
        cal.sessions_on(Venue::Mcx, date(2026, 3, 3)),
        vec![(at(2026, 3, 3, 17, 0, 0), at(2026, 3, 3, 23, 55, 0))]
    );
    // New Year: morning open, evening closed. Equity trades on 1 Jan.
    assert!(cal.is_open(Venue::Mcx, at(2026, 1, 1, 10, 0, 0)));
    assert!(!cal.is_open(Venue::Mcx, at(2026, 1, 1, 18, 0, 0)));
    assert!(!cal.is_open(Venue::Mcx, at(2026, 1, 1, 17, 0, 0)));
    assert!(cal.is_open(Venue::NseEquity, at(2026, 1, 1, 10, 0, 0)));
    // Fully closed days.
    for (m, d) in [(1, 26), (4, 3), (10, 2), (12, 25)] {
        assert!(!cal.is_trading_day(Venue::Mcx, date(2026, m, d)), "{m}-{d}");
    }
    assert_eq!(
        cal.upcoming_holidays(Venue::Mcx, date(2026, 3, 1), 1),
        vec![(date(2026, 3, 3), "Holi (morning session closed)".to_owned())]
    );
}

#[test]
fn session_edges_to_the_second() {
    let cal = Calendar::builtin();
    let open = |h, m, s| cal.is_open(Venue::NseEquity, at(2026, 12, 1, h, m, s));
    assert!(!open(9, 14, 59));
    assert!(open(9, 15, 0));
    assert!(open(15, 29, 59));
    assert!(!open(15, 30, 0));
    // Pre-open is closed for routing.
    assert!(!open(9, 0, 0));
    assert!(!open(9, 7, 0));
}

#[test]
fn next_open_and_trading_days() {
    let cal = Calendar::builtin();
    // Thu 24 Dec evening: Christmas Friday, then the weekend.
    assert_eq!(
        cal.next_open(Venue::NseEquity, at(2026, 12, 24, 18, 0, 0)),
        Some(at(2026, 12, 28, 9, 15, 0))
    );
    assert_eq!(
        cal.next_trading_day(Venue::NseEquity, date(2026, 12, 24)),
        Some(date(2026, 12, 28))
    );
    // Strictly after: at the open itself, the next open is the next day's.
    assert_eq!(
        cal.next_open(Venue::NseEquity, at(2026, 12, 1, 9, 15, 0)),
        Some(at(2026, 12, 2, 9, 15, 0))
    );
    // The Budget Sunday is a trading day.
    assert_eq!(
        cal.next_trading_day(Venue::NseEquity, date(2026, 1, 31)),
        Some(date(2026, 2, 1))
    );
    // Holi: MCX opens for the evening session.
    assert_eq!(
        cal.next_open(Venue::Mcx, at(2026, 3, 3, 8, 0, 0)),
        Some(at(2026, 3, 3, 17, 0, 0))
    );
    // Across into 2027, which has no data: weekdays count as trading days.
    assert_eq!(
        cal.next_open(Venue::NseEquity, at(2026, 12, 31, 16, 0, 0)),
        Some(at(2027, 1, 1, 9, 15, 0))
    );
    assert!(cal.is_open(Venue::NseEquity, at(2027, 1, 26, 10, 0, 0)));
    assert!(!cal.is_open(Venue::NseEquity, at(2027, 1, 2, 10, 0, 0)));
}

#[test]
fn upcoming_holidays_skip_weekends_and_stop_at_the_data() {
    let cal = Calendar::builtin();
    let names = |from, n| -> Vec<NaiveDate> {
        cal.upcoming_holidays(Venue::NseEquity, from, n)
            .into_iter()
            .map(|(d, _)| d)
            .collect()
    };
    // Sun 15 Feb (Mahashivratri) is in the file but is not a weekday closure.
    assert_eq!(
        names(date(2026, 2, 10), 3),
        vec![date(2026, 3, 3), date(2026, 3, 26), date(2026, 3, 31)]
    );
    assert_eq!(
        cal.upcoming_holidays(Venue::NseEquity, date(2026, 12, 1), 5),
        vec![(date(2026, 12, 25), "Christmas".to_owned())]
    );
    // `from` is inclusive.
    assert_eq!(names(date(2026, 12, 25), 1), vec![date(2026, 12, 25)]);
}

#[test]
fn missing_years_reports_2027() {
    let cal = Calendar::builtin();
    assert_eq!(
        cal.missing_years(Venue::NseEquity, date(2026, 12, 20), 30),
        vec![2027]
    );
    assert!(
        cal.missing_years(Venue::NseEquity, date(2026, 6, 1), 30)
            .is_empty()
    );
    assert_eq!(
        cal.missing_years(Venue::Mcx, date(2026, 12, 20), 700),
        vec![2027, 2028]
    );
    assert_eq!(
        cal.missing_years(Venue::Mcx, date(2027, 1, 10), -30),
        vec![2027]
    );
    // A window too large for chrono does not panic.
    assert_eq!(
        cal.missing_years(Venue::Mcx, date(2026, 1, 1), i64::MAX),
        Vec::<i32>::new()
    );
}

#[test]
fn venues_and_policies_round_trip() {
    for venue in Venue::ALL {
        assert_eq!(Venue::from_segment(venue.as_str()), Some(venue));
        assert_eq!(
            serde_json::to_value(venue).unwrap(),
            serde_json::json!(venue.as_str())
        );
    }
    assert_eq!(Venue::from_segment("IDX_I"), None);
    assert_eq!(Venue::from_segment("nse_eq"), None);
    for policy in [WhenClosed::Amo, WhenClosed::Queue, WhenClosed::Reject] {
        assert_eq!(WhenClosed::parse(policy.as_str()), Some(policy));
        assert_eq!(
            WhenClosed::parse(&policy.as_str().to_uppercase()),
            Some(policy)
        );
        assert_eq!(
            serde_json::to_value(policy).unwrap(),
            serde_json::json!(policy.as_str())
        );
    }
    assert_eq!(WhenClosed::parse("later"), None);
}

#[test]
fn routes_serialise_with_a_route_tag() {
    let json = |r: Route| serde_json::to_value(r).unwrap();
    assert_eq!(json(Route::Now), serde_json::json!({"route": "now"}));
    assert_eq!(
        json(Route::Amo {
            amo_time: AmoTime::Open30
        }),
        serde_json::json!({"route": "amo", "amo_time": "OPEN_30"})
    );
    assert_eq!(
        json(Route::Queue {
            until: at(2026, 12, 7, 9, 15, 0)
        }),
        serde_json::json!({"route": "queue", "until": "2026-12-07T03:45:00Z"})
    );
}

// ---------------------------------------------------------------- routing table

#[test]
fn routing_table() {
    use WhenClosed::{Amo, Queue, Reject};
    let eq = [Venue::NseEquity];
    let queue = |t| Route::Queue { until: t };
    let amo_open = || Route::Amo {
        amo_time: AmoTime::Open,
    };
    // (name, instant, venues, policy, expected)
    type Case<'a> = (&'a str, DateTime<Utc>, &'a [Venue], WhenClosed, Route);
    let cases: Vec<Case> = vec![
        ("Tue 10:00", at(2026, 12, 1, 10, 0, 0), &eq, Amo, Route::Now),
        (
            "Tue 10:00 reject",
            at(2026, 12, 1, 10, 0, 0),
            &eq,
            Reject,
            Route::Now,
        ),
        (
            "Tue 18:00 amo",
            at(2026, 12, 1, 18, 0, 0),
            &eq,
            Amo,
            amo_open(),
        ),
        (
            "Tue 18:00 queue",
            at(2026, 12, 1, 18, 0, 0),
            &eq,
            Queue,
            queue(at(2026, 12, 2, 9, 15, 0)),
        ),
        (
            "Sat 10:00 queue",
            at(2026, 12, 5, 10, 0, 0),
            &eq,
            Queue,
            queue(at(2026, 12, 7, 9, 15, 0)),
        ),
        (
            "Sat 10:00 amo",
            at(2026, 12, 5, 10, 0, 0),
            &eq,
            Amo,
            amo_open(),
        ),
        (
            "Tue 15:45 amo: before the window opens",
            at(2026, 12, 1, 15, 45, 0),
            &eq,
            Amo,
            queue(at(2026, 12, 2, 9, 15, 0)),
        ),
        (
            "Tue 09:05 pre-open",
            at(2026, 12, 1, 9, 5, 0),
            &eq,
            Amo,
            queue(at(2026, 12, 1, 9, 15, 0)),
        ),
        (
            "Tue 08:54:59 amo",
            at(2026, 12, 1, 8, 54, 59),
            &eq,
            Amo,
            amo_open(),
        ),
        (
            "Tue 08:55 amo: window closed",
            at(2026, 12, 1, 8, 55, 0),
            &eq,
            Amo,
            queue(at(2026, 12, 1, 9, 15, 0)),
        ),
        (
            "Thu 24 Dec 18:00 queue: Christmas Friday",
            at(2026, 12, 24, 18, 0, 0),
            &eq,
            Queue,
            queue(at(2026, 12, 28, 9, 15, 0)),
        ),
        (
            "Christmas 10:00 amo",
            at(2026, 12, 25, 10, 0, 0),
            &eq,
            Amo,
            amo_open(),
        ),
        (
            "NSE + MCX 16:00: MCX is open, equity is not",
            at(2026, 12, 1, 16, 0, 0),
            &[Venue::NseEquity, Venue::Mcx],
            Amo,
            queue(at(2026, 12, 2, 9, 15, 0)),
        ),
        (
            "NSE + MCX 23:58: both closed, both take AMOs",
            at(2026, 12, 1, 23, 58, 0),
            &[Venue::NseEquity, Venue::Mcx],
            Amo,
            amo_open(),
        ),
        (
            "NSE + MCX on Holi: NSE is shut all day, so both next open on Wednesday",
            at(2026, 3, 3, 10, 0, 0),
            &[Venue::NseEquity, Venue::Mcx],
            Queue,
            queue(at(2026, 3, 4, 9, 15, 0)),
        ),
        (
            "MCX 08:00: closed, AMO any time",
            at(2026, 12, 1, 8, 0, 0),
            &[Venue::Mcx],
            Amo,
            amo_open(),
        ),
        (
            "MCX + NSE 09:05: NSE pre-open, MCX open",
            at(2026, 12, 1, 9, 5, 0),
            &[Venue::Mcx, Venue::NseEquity],
            Queue,
            queue(at(2026, 12, 1, 9, 15, 0)),
        ),
        (
            "currency 16:30: still trading",
            at(2026, 12, 1, 16, 30, 0),
            &[Venue::NseCurrency],
            Reject,
            Route::Now,
        ),
        (
            "equity + currency 16:30: currency open, so no AMO",
            at(2026, 12, 1, 16, 30, 0),
            &[Venue::NseEquity, Venue::NseCurrency],
            Amo,
            queue(at(2026, 12, 2, 9, 15, 0)),
        ),
        (
            "Muhurat Sunday 17:00: session still to come, so queue",
            at(2026, 11, 8, 17, 0, 0),
            &eq,
            Amo,
            queue(at(2026, 11, 8, 18, 0, 0)),
        ),
        (
            "Muhurat Sunday 19:30: AMO for Monday",
            at(2026, 11, 8, 19, 30, 0),
            &eq,
            Amo,
            amo_open(),
        ),
        (
            "no venues",
            at(2026, 12, 5, 10, 0, 0),
            &[],
            Reject,
            Route::Now,
        ),
    ];
    for (name, t, venues, policy, expected) in cases {
        assert_eq!(amo(t, venues, policy), expected, "{name}");
    }
}

#[test]
fn routing_passes_the_amo_time_through() {
    let cal = Calendar::builtin();
    let r = route(
        at(2026, 12, 1, 18, 0, 0),
        &[Venue::NseEquity],
        WhenClosed::Amo,
        AmoWindow::default(),
        AmoTime::PreOpen,
        &cal,
    );
    assert_eq!(
        r,
        Route::Amo {
            amo_time: AmoTime::PreOpen
        }
    );
}

#[test]
fn a_custom_amo_window_moves_the_boundaries() {
    let cal = Calendar::builtin();
    let window = AmoWindow {
        opens: chrono::NaiveTime::from_hms_opt(15, 45, 0).unwrap(),
        closes: chrono::NaiveTime::from_hms_opt(9, 10, 0).unwrap(),
    };
    let r = |t| {
        route(
            t,
            &[Venue::NseDerivatives],
            WhenClosed::Amo,
            window,
            AmoTime::Open,
            &cal,
        )
    };
    assert!(matches!(r(at(2026, 12, 1, 15, 45, 0)), Route::Amo { .. }));
    assert!(matches!(r(at(2026, 12, 1, 15, 41, 0)), Route::Queue { .. }));
    assert!(matches!(r(at(2026, 12, 1, 9, 5, 0)), Route::Amo { .. }));
    assert!(matches!(r(at(2026, 12, 1, 9, 10, 0)), Route::Queue { .. }));
}

#[test]
fn reject_names_the_venue_and_the_next_open() {
    let Route::Reject { reason } = amo(
        at(2026, 12, 5, 10, 0, 0),
        &[Venue::NseEquity],
        WhenClosed::Reject,
    ) else {
        panic!("expected a rejection");
    };
    assert_eq!(
        reason,
        "NSE equity is closed at Sat 05 Dec 2026 10:00 IST; it next opens at Mon 07 Dec 2026 09:15 IST."
    );

    let Route::Reject { reason } = amo(
        at(2026, 12, 1, 16, 0, 0),
        &[Venue::NseEquity, Venue::Mcx, Venue::NseDerivatives],
        WhenClosed::Reject,
    ) else {
        panic!("expected a rejection");
    };
    assert!(
        reason.starts_with("NSE equity and NSE F&O are closed"),
        "{reason}"
    );
    assert!(reason.contains("Wed 02 Dec 2026 09:15 IST"), "{reason}");
}

#[test]
fn no_session_within_a_month_rejects_for_missing_data() {
    // An override that shuts NSE for all of January and February 2026.
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("date,kind,description\n");
    let mut d = date(2026, 1, 1);
    while d < date(2026, 3, 1) {
        text.push_str(&format!("{d},holiday,Shut\n"));
        d = d.succ_opt().unwrap();
    }
    std::fs::write(dir.path().join("nse-2026.csv"), text).unwrap();
    let cal = Calendar::with_overrides(dir.path()).unwrap();
    let t = at(2026, 1, 2, 10, 0, 0);
    assert_eq!(cal.next_open(Venue::NseEquity, t), None);
    for policy in [WhenClosed::Amo, WhenClosed::Queue, WhenClosed::Reject] {
        // Amo would be fine on a holiday; check Queue and Reject report the data problem.
        let r = route(
            t,
            &[Venue::NseEquity],
            policy,
            AmoWindow::default(),
            AmoTime::Open,
            &cal,
        );
        if policy == WhenClosed::Amo {
            assert!(matches!(r, Route::Amo { .. }), "{r:?}");
            continue;
        }
        let Route::Reject { reason } = r else {
            panic!("expected a rejection, got {r:?}");
        };
        assert!(reason.contains("holiday data is missing"), "{reason}");
        assert!(reason.starts_with("NSE equity is closed"), "{reason}");
    }
}

// ---------------------------------------------------------------- overrides

#[test]
fn overrides_replace_one_year_of_one_list() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("nse-2026.csv"),
        "# replacement\ndate,kind,description,open,close\n2026-12-01,holiday,Test closure\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("nse-2027.csv"),
        "date,kind,description\n2027-01-26,holiday,Republic Day\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("README.md"), "not a csv").unwrap();
    let cal = Calendar::with_overrides(dir.path()).unwrap();

    let tue = at(2026, 12, 1, 10, 0, 0);
    assert!(!cal.is_open(Venue::NseEquity, tue));
    assert!(!cal.is_open(Venue::NseDerivatives, tue));
    assert!(
        cal.is_open(Venue::BseEquity, tue),
        "BSE keeps its built-in file"
    );
    // The whole built-in NSE 2026 file is gone, Christmas included.
    assert!(cal.is_open(Venue::NseEquity, at(2026, 12, 25, 10, 0, 0)));
    assert!(!cal.is_open(Venue::BseEquity, at(2026, 12, 25, 10, 0, 0)));
    // ...and 2027 is now known for NSE only.
    assert!(!cal.is_open(Venue::NseEquity, at(2027, 1, 26, 10, 0, 0)));
    assert!(
        cal.missing_years(Venue::NseEquity, date(2026, 12, 20), 30)
            .is_empty()
    );
    assert_eq!(
        cal.missing_years(Venue::BseEquity, date(2026, 12, 20), 30),
        vec![2027]
    );
}

#[test]
fn a_malformed_override_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("mcx-2026.csv"),
        "date,kind,description\n# fine\n2026-01-26,holiday,Republic Day\n2026-02-30,holiday,No such day\n",
    )
    .unwrap();
    let err = Calendar::with_overrides(dir.path()).unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(err, CalendarError::Line { line: 4, .. }),
        "{message}"
    );
    assert!(message.contains("mcx-2026.csv:4:"), "{message}");
    assert!(message.contains("2026-02-30"), "{message}");
}

#[test]
fn overrides_reject_unknown_names_and_missing_directories() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("nasdaq-2026.csv"),
        "date,kind,description\n",
    )
    .unwrap();
    let message = Calendar::with_overrides(dir.path())
        .unwrap_err()
        .to_string();
    assert!(message.contains("nasdaq-2026.csv"), "{message}");

    let gone = dir.path().join("does-not-exist");
    let err = Calendar::with_overrides(&gone).unwrap_err();
    assert!(matches!(err, CalendarError::Io { .. }), "{err}");
    assert!(err.to_string().contains("does-not-exist"), "{err}");
}

// ---------------------------------------------------------------- property-style

/// A tiny deterministic xorshift64, so the "random" instants are the same on every run.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// An independent model of NSE equity, in plain integer arithmetic on Unix seconds: it does not
/// call anything in `market`, and it reads the facts from this file, not the data files.
mod reference {
    use super::NSE_WEEKDAY_HOLIDAYS_2026;

    pub const DAY: i64 = 86_400;
    const IST: i64 = 5 * 3600 + 30 * 60;
    const fn hms(h: i64, m: i64, s: i64) -> i64 {
        h * 3600 + m * 60 + s
    }
    pub const OPEN: i64 = hms(9, 15, 0);
    pub const CLOSE: i64 = hms(15, 30, 0);
    const AMO_OPENS: i64 = hms(16, 0, 0);
    const AMO_CLOSES: i64 = hms(8, 55, 0);

    /// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
    pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (m + 9) % 12;
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    /// (IST day number, seconds into the IST day).
    pub fn local(unix: i64) -> (i64, i64) {
        let t = unix + IST;
        (t.div_euclid(DAY), t.rem_euclid(DAY))
    }

    /// The continuous session of IST day `day`, in seconds of the day.
    pub fn session(day: i64) -> Option<(i64, i64)> {
        if day == days_from_civil(2026, 2, 1) {
            return Some((OPEN, CLOSE)); // Budget Sunday
        }
        if day == days_from_civil(2026, 11, 8) {
            return Some((hms(18, 0, 0), hms(19, 0, 0))); // Muhurat (tentative)
        }
        // 1970-01-01 was a Thursday: day 0 → index 3 with Monday = 0.
        let weekday = (day + 3).rem_euclid(7);
        if weekday >= 5 {
            return None;
        }
        if NSE_WEEKDAY_HOLIDAYS_2026
            .iter()
            .any(|&(m, d)| day == days_from_civil(2026, i64::from(m), i64::from(d)))
        {
            return None;
        }
        Some((OPEN, CLOSE))
    }

    pub fn is_open(unix: i64) -> bool {
        let (day, sec) = local(unix);
        session(day).is_some_and(|(o, c)| o <= sec && sec < c)
    }

    /// Unix seconds of the first session start strictly after `unix`.
    pub fn next_open(unix: i64) -> i64 {
        let (today, _) = local(unix);
        (today..today + 40)
            .filter_map(|day| session(day).map(|(o, _)| day * DAY + o - IST))
            .find(|start| *start > unix)
            .expect("a session within 40 days")
    }

    /// Whether an AMO is taken (default window 16:00–08:55).
    pub fn amo(unix: i64) -> bool {
        if is_open(unix) {
            return false;
        }
        let (day, sec) = local(unix);
        match session(day) {
            None => true,
            Some((o, c)) => (sec >= AMO_OPENS && sec >= c) || (sec < AMO_CLOSES && sec < o),
        }
    }
}

#[test]
fn nse_equity_matches_an_independent_reference_across_2026() {
    let cal = Calendar::builtin();
    let mut rng = XorShift(0x5eed_2026_d4a1_u64);
    let year_start = reference::days_from_civil(2026, 1, 1) * reference::DAY;
    let year_secs = 365 * reference::DAY;
    // Instants near the boundaries, where off-by-one mistakes live (seconds of the IST day).
    let edges: [i64; 14] = [
        reference::OPEN - 1,
        reference::OPEN,
        reference::CLOSE - 1,
        reference::CLOSE,
        8 * 3600 + 55 * 60 - 1,
        8 * 3600 + 55 * 60,
        16 * 3600 - 1,
        16 * 3600,
        18 * 3600 - 1,
        18 * 3600,
        19 * 3600 - 1,
        19 * 3600,
        0,
        reference::DAY - 1,
    ];
    let ist_secs = 5 * 3600 + 30 * 60;
    let (mut open_seen, mut amo_seen, mut queue_seen) = (0, 0, 0);
    for i in 0..5_000 {
        // Three in four uniformly over the year, one in four on an edge of a random IST day.
        let unix = if i % 4 == 3 {
            let day = reference::days_from_civil(2026, 1, 1) + rng.below(365) as i64;
            let edge = edges[rng.below(edges.len() as u64) as usize];
            day * reference::DAY + edge - ist_secs
        } else {
            year_start + rng.below(year_secs as u64) as i64
        };
        let t = DateTime::<Utc>::from_timestamp(unix, 0).unwrap();
        let shown = ist(t).format("%a %Y-%m-%d %H:%M:%S IST");

        let open = reference::is_open(unix);
        assert_eq!(cal.is_open(Venue::NseEquity, t), open, "is_open at {shown}");

        let next = DateTime::<Utc>::from_timestamp(reference::next_open(unix), 0).unwrap();
        assert_eq!(
            cal.next_open(Venue::NseEquity, t),
            Some(next),
            "next_open at {shown}"
        );

        let expected_queue = if open {
            Route::Now
        } else {
            Route::Queue { until: next }
        };
        assert_eq!(
            route_with(&cal, t, &[Venue::NseEquity], WhenClosed::Queue),
            expected_queue,
            "queue at {shown}"
        );
        let expected_amo = if open {
            Route::Now
        } else if reference::amo(unix) {
            Route::Amo {
                amo_time: AmoTime::Open,
            }
        } else {
            Route::Queue { until: next }
        };
        assert_eq!(
            route_with(&cal, t, &[Venue::NseEquity], WhenClosed::Amo),
            expected_amo,
            "amo at {shown}"
        );
        match route_with(&cal, t, &[Venue::NseEquity], WhenClosed::Reject) {
            Route::Now => assert!(open, "reject at {shown}"),
            Route::Reject { reason } => {
                assert!(!open, "reject at {shown}");
                let next_shown = ist(next).format("%d %b %Y %H:%M IST").to_string();
                assert!(reason.contains(&next_shown), "{shown}: {reason}");
            }
            other => panic!("reject policy gave {other:?} at {shown}"),
        }

        match expected_amo {
            Route::Now => open_seen += 1,
            Route::Amo { .. } => amo_seen += 1,
            _ => queue_seen += 1,
        }
    }
    // The sample must exercise every outcome, or the comparison proves little.
    assert!(
        open_seen > 300 && amo_seen > 1_000 && queue_seen > 100,
        "{open_seen} {amo_seen} {queue_seen}"
    );
}
