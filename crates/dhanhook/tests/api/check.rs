//! `dhanhook check` as a user runs it (the real binary) against dhan-sim: all ✓ and exit 0
//! when everything live trading needs holds; otherwise exit ≠ 0 with the ✗ line that names
//! the problem and one line of advice.

use dhan_sim::{Sim, SimConfig, SimHandle};

use crate::{
    cli::{run, sim_env},
    helpers::{ADMIN_TOKEN, SECRET},
};

/// Tuesday 2026-12-01 10:00 IST: 30 days ahead stay in 2026, whose holidays are built in.
const START: &str = "2026-12-01T10:00:00+05:30";

async fn sim_at(start: &str) -> SimHandle {
    Sim::spawn(SimConfig {
        start_time: chrono::DateTime::parse_from_rfc3339(start)
            .unwrap()
            .with_timezone(&chrono::Utc),
        ..SimConfig::default()
    })
    .await
    .unwrap()
}

/// Runs `dhanhook check` in a fresh folder, live against `sim`, with `vars` over the defaults
/// (a value of `""` removes one); returns the exit code and the output.
fn check(sim: &SimHandle, start: &str, vars: &[(&str, &str)]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    check_in(dir.path(), sim, start, vars)
}

fn check_in(
    dir: &std::path::Path,
    sim: &SimHandle,
    start: &str,
    vars: &[(&str, &str)],
) -> (i32, String) {
    let mut env: Vec<(String, String)> = sim_env(sim);
    env.extend(
        [
            ("ENABLE_DHAN", "true"),
            ("WEBHOOK_SECRET", SECRET),
            ("ADMIN_TOKEN", ADMIN_TOKEN),
            ("INSTRUMENTS_PATH", crate::live::FIXTURE),
            ("DHANHOOK_CLOCK_START", start),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    for (k, v) in vars {
        env.retain(|(name, _)| name != k);
        if !v.is_empty() {
            env.push(((*k).to_owned(), (*v).to_owned()));
        }
    }
    let refs = crate::cli::as_refs(&env);
    let (code, stdout, stderr) = run(dir, &["check"], &refs);
    (code, format!("{stdout}{stderr}"))
}

/// The line of the checklist for `name`, with its advice line when it failed.
fn line<'a>(out: &'a str, name: &str) -> &'a str {
    out.lines()
        .find(|l| {
            l.split_once(' ').is_some_and(|(mark, rest)| {
                mark.chars().count() == 1 && rest.starts_with(&format!("{name}:"))
            })
        })
        .unwrap_or_else(|| panic!("no line for {name}:\n{out}"))
}

// The binary runs with blocking calls while the simulator serves from this runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_well_is_all_ticks_and_exit_0() {
    let sim = sim_at(START).await;
    let (code, out) = check(&sim, START, &[]);
    assert_eq!(code, 0, "{out}");
    for name in [
        "configuration",
        "journal",
        "scrip master",
        "holiday calendar",
        "Dhan token",
        "static IP",
        "webhook secret",
        "admin token",
        "risk rails",
        "kill switch",
    ] {
        assert!(line(&out, name).starts_with('✓'), "{name}:\n{out}");
    }
    assert!(
        line(&out, "risk rails").contains("MAX_ORDERS_PER_DAY=7000; no MAX_QTY_PER_LEG"),
        "{out}"
    );
    assert_eq!(line(&out, "kill switch"), "✓ kill switch: off");
    assert!(
        line(&out, "static IP")
            .contains("Dhan sees this server as 127.0.0.1, which is whitelisted"),
        "{out}"
    );
    assert!(out.contains("all checks passed"), "{out}");
    assert!(
        !out.contains(SECRET) && !out.contains(ADMIN_TOKEN),
        "no secret printed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_pin_is_a_failed_token_check() {
    let sim = sim_at(START).await;
    let (code, out) = check(&sim, START, &[("DHAN_PIN", "654321")]);
    assert_ne!(code, 0, "{out}");
    let token = line(&out, "Dhan token");
    assert!(
        token.starts_with('✗') && token.contains("Invalid Pin"),
        "{out}"
    );
    assert!(
        out.contains("→ check DHAN_PIN and DHAN_TOTP_SECRET"),
        "{out}"
    );
    assert!(!out.contains("654321"), "the PIN is never printed:\n{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_that_is_not_whitelisted_is_a_failed_static_ip_check() {
    let sim = sim_at(START).await;
    sim.set_whitelisted_ip(false);
    let (code, out) = check(&sim, START, &[]);
    assert_ne!(code, 0, "{out}");
    let ip = line(&out, "static IP");
    assert!(
        ip.starts_with('✗')
            && ip.contains(
                "Dhan sees this server as 127.0.0.1, but the whitelisted IPs are 203.0.113.45"
            ),
        "{out}"
    );
    assert!(out.contains("DhanHQ Trading APIs > Static IP"), "{out}");
    assert!(line(&out, "Dhan token").starts_with('✓'), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_scrip_master_is_a_failed_check() {
    let sim = sim_at(START).await;
    let dir = tempfile::tempdir().unwrap();
    // Yesterday's download in the cache, and today's cannot be had (nothing listens there).
    let cache = dir.path().join("data/instruments");
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::copy(crate::live::FIXTURE, cache.join("api-scrip-master.csv")).unwrap();
    std::fs::write(cache.join("downloaded_at"), "2026-11-30T04:00:00+00:00").unwrap();
    let (code, out) = check_in(
        dir.path(),
        &sim,
        START,
        &[
            ("INSTRUMENTS_PATH", ""),
            ("INSTRUMENTS_URL", "http://127.0.0.1:9/api-scrip-master.csv"),
        ],
    );
    assert_ne!(code, 0, "{out}");
    let master = line(&out, "scrip master");
    assert!(
        master.starts_with('✗')
            && master.contains("the copy in use is from 2026-11-30")
            && master.contains("127.0.0.1:9"),
        "{out}"
    );
    assert!(out.contains("→ run `dhanhook instruments update`"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_holiday_year_is_a_failed_calendar_check() {
    // 15 December: the next 30 days reach into 2027, for which nothing is built in.
    let start = "2026-12-15T10:00:00+05:30";
    let sim = sim_at(start).await;
    let (code, out) = check(&sim, start, &[]);
    assert_ne!(code, 0, "{out}");
    let calendar = line(&out, "holiday calendar");
    assert!(
        calendar.starts_with('✗') && calendar.contains("no holiday list for 2027 (every venue)"),
        "{out}"
    );
    assert!(out.contains("set HOLIDAYS_PATH"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weak_or_published_secret_is_a_failed_check() {
    let sim = sim_at(START).await;
    for (secret, says) in [
        ("short-secret", "12 characters: too short"),
        (
            "change-me-to-a-long-random-secret",
            "the example value from a published guide",
        ),
    ] {
        let (code, out) = check(&sim, START, &[("WEBHOOK_SECRET", secret)]);
        assert_ne!(code, 0, "{out}");
        let line = line(&out, "webhook secret");
        assert!(line.starts_with('✗') && line.contains(says), "{out}");
        assert!(!out.contains(secret), "the secret is never printed:\n{out}");
    }
}

/// Paper mode checks only what applies: no token, no static IP.
#[test]
fn paper_mode_checks_what_applies() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = run(
        dir.path(),
        &["check"],
        &[
            ("INSTRUMENTS_URL", "off"),
            ("ADMIN_TOKEN", ADMIN_TOKEN),
            ("DHANHOOK_CLOCK_START", START),
        ],
    );
    let out = format!("{stdout}{stderr}");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("dhanhook check (paper mode)"), "{out}");
    assert!(
        !out.contains("Dhan token") && !out.contains("static IP"),
        "{out}"
    );
    assert!(
        line(&out, "scrip master").contains("built-in sample"),
        "{out}"
    );
    assert!(line(&out, "webhook secret").contains("generated"), "{out}");
}
