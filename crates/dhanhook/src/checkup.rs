//! `dhanhook check`: the guide's "Verification" steps as one command, before real money is at
//! stake. Each check is a line with ✓ or ✗ (or ? when it cannot tell), and every ✗ carries one
//! line saying what to do. The exit code is 0 only when everything needed for live trading
//! holds; paper mode checks only what applies to it.
//!
//! It uses the same code as the service (settings, journal, scrip master, calendar, token
//! keeper), so what passes here is what the service will find at start-up. It may mint a token
//! (as the service would); with the journal shared with a running service it reuses that
//! service's token instead.

use std::{fmt::Write as _, sync::Arc};

use secrecy::ExposeSecret;

use crate::{
    clock::{Clock, ist},
    config::{Mode, Settings},
    instruments::source::{InstrumentSource, SourceState},
    market::{Calendar, Venue},
    startup::{check_live_settings, open_journal, token_keeper},
};

/// Webhook secrets published in guides and examples: as good as no secret.
const PUBLISHED_SECRETS: &[&str] = &["change-me-to-a-long-random-secret"];
/// The shortest webhook secret and admin token accepted as strong.
const MIN_SECRET_LEN: usize = 32;
/// How far ahead the holiday calendar must reach.
const CALENDAR_DAYS: i64 = 30;

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Pass(String),
    /// What is wrong, and the one line of advice.
    Fail(String, String),
    /// It could not tell (not a failure).
    Unknown(String),
}

/// One line of the checklist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub outcome: Outcome,
}

impl Check {
    fn pass(name: &'static str, detail: impl Into<String>) -> Self {
        Self {
            name,
            outcome: Outcome::Pass(detail.into()),
        }
    }

    fn fail(name: &'static str, what: impl Into<String>, advice: impl Into<String>) -> Self {
        Self {
            name,
            outcome: Outcome::Fail(what.into(), advice.into()),
        }
    }

    fn unknown(name: &'static str, detail: impl Into<String>) -> Self {
        Self {
            name,
            outcome: Outcome::Unknown(detail.into()),
        }
    }
}

/// Whether every check passed (an unknown is not a failure).
pub fn all_passed(checks: &[Check]) -> bool {
    !checks
        .iter()
        .any(|c| matches!(c.outcome, Outcome::Fail(..)))
}

/// The checklist as printed.
pub fn render(settings: &Settings, checks: &[Check]) -> String {
    let mut out = format!(
        "dhanhook check ({} mode{})\n",
        settings.mode,
        if settings.mode == Mode::Live {
            format!(", Dhan at {}", settings.dhan.urls.base)
        } else {
            String::new()
        }
    );
    for c in checks {
        let _ = match &c.outcome {
            Outcome::Pass(detail) => writeln!(out, "✓ {}: {detail}", c.name),
            Outcome::Fail(what, advice) => {
                writeln!(out, "✗ {}: {what}\n    → {advice}", c.name)
            }
            Outcome::Unknown(detail) => writeln!(out, "? {}: {detail}", c.name),
        };
    }
    let failed = checks
        .iter()
        .filter(|c| matches!(c.outcome, Outcome::Fail(..)))
        .count();
    let _ = if failed == 0 {
        writeln!(out, "all checks passed")
    } else {
        writeln!(
            out,
            "{failed} check{} failed",
            if failed == 1 { "" } else { "s" }
        )
    };
    out
}

/// Runs every check that applies to the configured mode.
// The checks' small file reads (the holiday folder, whether the secret file exists) stay
// inline: a one-shot command with nothing else on the runtime to hold up. The scrip master,
// large enough to matter, is loaded off the runtime by `InstrumentSource::start`.
pub async fn run(settings: &Settings, clock: Arc<dyn Clock>) -> Vec<Check> {
    let live = settings.mode == Mode::Live;
    let mut checks = vec![configuration(settings)];

    let journal = match open_journal(settings).await {
        Ok(journal) => match journal.check_writable(clock.now()).await {
            Ok(()) => {
                checks.push(Check::pass(
                    "journal",
                    format!("{} opens and is writable", settings.database_url.describe()),
                ));
                Some(journal)
            }
            Err(e) => {
                checks.push(Check::fail(
                    "journal",
                    format!("{} is not writable: {e}", settings.database_url.describe()),
                    "check that DATA_DIR (or the DATABASE_URL database) is writable by this user",
                ));
                journal.close().await;
                None
            }
        },
        Err(e) => {
            checks.push(Check::fail(
                "journal",
                format!("{e:#}"),
                "check DATABASE_URL, or that DATA_DIR exists and is writable",
            ));
            None
        }
    };

    checks.push(scrip_master(settings, Arc::clone(&clock)).await);
    checks.push(calendar(settings, clock.as_ref()));

    if live {
        match &journal {
            Some(journal) => checks.extend(token_and_ip(settings, journal, &clock).await),
            None => {
                checks.push(Check::unknown(
                    "Dhan token",
                    "not checked: the journal (where the token is kept) did not open",
                ));
            }
        }
    }
    checks.push(risk_rails(settings));
    if let Some(journal) = journal {
        checks.push(kill_switch(&journal).await);
        journal.close().await;
    }
    checks.push(webhook_secret(settings));
    checks.push(admin_token(settings));
    checks
}

/// What the risk rails allow (informational: none is required). Without a size rail an alert's
/// quantity reaches Dhan as sent, which the line says.
fn risk_rails(settings: &Settings) -> Check {
    let r = &settings.controls.rails;
    let mut set = Vec::new();
    let mut add = |name: &str, value: Option<String>| {
        if let Some(v) = value {
            set.push(format!("{name}={v}"));
        }
    };
    add("MAX_QTY_PER_LEG", r.max_qty_per_leg.map(|v| v.to_string()));
    add(
        "MAX_LOTS_PER_LEG",
        r.max_lots_per_leg.map(|v| v.to_string()),
    );
    add("MAX_ORDER_VALUE", r.max_order_value.map(|v| v.to_string()));
    add(
        "MAX_ORDERS_PER_DAY",
        r.max_orders_per_day.map(|v| v.to_string()),
    );
    add(
        "MAX_ORDERS_PER_DAY_PER_STRATEGY",
        r.max_orders_per_day_per_strategy.map(|v| v.to_string()),
    );
    add(
        "MAX_OPEN_POSITIONS",
        r.max_open_positions.map(|v| v.to_string()),
    );
    add(
        "SYMBOL_ALLOWLIST",
        (!r.symbol_allowlist.is_empty()).then(|| r.symbol_allowlist.join(",")),
    );
    add(
        "SYMBOL_DENYLIST",
        (!r.symbol_denylist.is_empty()).then(|| r.symbol_denylist.join(",")),
    );
    add(
        "ENTRY_WINDOW",
        r.entry_window
            .map(|w| format!("{}-{}", w.from.format("%H:%M"), w.until.format("%H:%M"))),
    );
    let sized = r.max_qty_per_leg.is_some() || r.max_lots_per_leg.is_some();
    let mut detail = if set.is_empty() {
        "none set".to_owned()
    } else {
        set.join(", ")
    };
    if !sized {
        detail.push_str(
            "; no MAX_QTY_PER_LEG or MAX_LOTS_PER_LEG: an alert's quantity is sent as it comes",
        );
    }
    Check::pass("risk rails", detail)
}

/// The kill switch as journaled (informational: it is on on purpose).
async fn kill_switch(journal: &Arc<dyn crate::store::Journal>) -> Check {
    match journal.kill_switch().await {
        Ok(k) if k.on => Check::pass(
            "kill switch",
            format!(
                "ON since {} IST by {}: new entries are refused until `dhanhook kill-switch off`",
                k.since
                    .map(|t| ist(t).format("%Y-%m-%d %H:%M").to_string())
                    .unwrap_or_default(),
                k.by.as_deref().unwrap_or("-")
            ),
        ),
        Ok(_) => Check::pass("kill switch", "off"),
        Err(e) => Check::unknown("kill switch", format!("cannot read it: {e}")),
    }
}

fn configuration(settings: &Settings) -> Check {
    if settings.mode == Mode::Live
        && let Err(e) = check_live_settings(settings)
    {
        return Check::fail(
            "configuration",
            format!("{e:#}"),
            "set it in .env (see .env.example and the README's \"Live trading at Dhan\")",
        );
    }
    Check::pass(
        "configuration",
        format!(
            "parses ({} mode, journal {})",
            settings.mode,
            settings.database_url.kind()
        ),
    )
}

/// Loaded, and fresh: a copy older than today's refresh time is downloaded now, as the service
/// would at start-up.
async fn scrip_master(settings: &Settings, clock: Arc<dyn Clock>) -> Check {
    const NAME: &str = "scrip master";
    let paper = settings.mode == Mode::Paper;
    let source = match InstrumentSource::start(
        crate::startup::scrip_master_source(settings, paper),
        Arc::clone(&clock),
    )
    .await
    {
        Ok(s) => s,
        Err(e) => {
            return Check::fail(
                NAME,
                format!("INSTRUMENTS_PATH cannot be loaded: {e}"),
                "point INSTRUMENTS_PATH at Dhan's scrip master CSV, or unset it to have it downloaded daily",
            );
        }
    };
    if source.needs_download(clock.now())
        && let Err(e) = source.download().await
    {
        tracing::debug!(error = %e, "scrip master download failed during the check");
    }
    let status = source.status();
    let rows = status.rows;
    match status.state {
        SourceState::Fresh => Check::pass(
            NAME,
            format!(
                "{rows} instruments, downloaded {}",
                status.as_of.unwrap_or_default()
            ),
        ),
        SourceState::File => Check::pass(
            NAME,
            format!(
                "{rows} instruments from INSTRUMENTS_PATH (you keep it current: derivative ids change at every expiry)"
            ),
        ),
        SourceState::Sample => Check::pass(
            NAME,
            format!("the built-in sample ({rows} instruments; paper mode only)"),
        ),
        SourceState::Stale => Check::fail(
            NAME,
            format!(
                "the copy in use is from {} and today's download failed: {}",
                status.as_of.unwrap_or_default(),
                status.last_error.unwrap_or_default()
            ),
            "run `dhanhook instruments update` (INSTRUMENTS_URL must be reachable), or set INSTRUMENTS_PATH to a current file",
        ),
        SourceState::Missing => Check::fail(
            NAME,
            format!(
                "none is loaded{}",
                status
                    .last_error
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ),
            "run `dhanhook instruments update` (INSTRUMENTS_URL must be reachable), or set INSTRUMENTS_PATH",
        ),
    }
}

/// Holiday data for today and the next 30 days on every venue.
fn calendar(settings: &Settings, clock: &dyn Clock) -> Check {
    const NAME: &str = "holiday calendar";
    let calendar = match &settings.routing.holidays_path {
        Some(dir) => match Calendar::with_overrides(dir) {
            Ok(c) => c,
            Err(e) => {
                return Check::fail(
                    NAME,
                    format!("HOLIDAYS_PATH cannot be read: {e}"),
                    "fix or remove the files in HOLIDAYS_PATH (columns date,kind,description)",
                );
            }
        },
        None => Calendar::builtin(),
    };
    let today = ist(clock.now()).date_naive();
    let until = today + chrono::Duration::days(CALENDAR_DAYS);
    let mut by_year: std::collections::BTreeMap<i32, Vec<&str>> = Default::default();
    for venue in Venue::ALL {
        for year in calendar.missing_years(venue, today, CALENDAR_DAYS) {
            by_year.entry(year).or_default().push(venue.as_str());
        }
    }
    let missing: Vec<String> = by_year
        .into_iter()
        .map(|(year, venues)| {
            if venues.len() == Venue::ALL.len() {
                format!("{year} (every venue)")
            } else {
                format!("{year} ({})", venues.join(", "))
            }
        })
        .collect();
    if missing.is_empty() {
        Check::pass(NAME, format!("covers {today} to {until}"))
    } else {
        Check::fail(
            NAME,
            format!(
                "no holiday list for {} within the next {CALENDAR_DAYS} days: those days would look like trading days",
                missing.join(", ")
            ),
            "exchanges publish next year's list in mid-December: put nse-YYYY.csv (and bse-, mcx-, cds-) in a folder and set HOLIDAYS_PATH (README, \"Market hours\")",
        )
    }
}

/// A token Dhan accepts, then whether Dhan takes orders from this machine's address.
async fn token_and_ip(
    settings: &Settings,
    journal: &Arc<dyn crate::store::Journal>,
    clock: &Arc<dyn Clock>,
) -> Vec<Check> {
    const TOKEN: &str = "Dhan token";
    const IP: &str = "static IP";
    let keeper = match token_keeper(
        settings,
        Arc::clone(journal),
        Arc::clone(clock),
        // A HOLIDAYS_PATH that cannot be read is the calendar check's failure, not this one's.
        crate::startup::market_calendar(settings)
            .unwrap_or_else(|_| Arc::new(crate::market::Calendar::builtin())),
    )
    .await
    {
        Ok(k) => k,
        Err(e) => {
            return vec![Check::fail(
                TOKEN,
                format!("{e:#}"),
                "set DHAN_CLIENT_ID (web.dhan.co > My Profile)",
            )];
        }
    };
    let token = match keeper.proven(false).await {
        Ok(t) => t,
        Err(e) => {
            return vec![
                Check::fail(
                    TOKEN,
                    format!("{e:#}"),
                    "check DHAN_PIN and DHAN_TOTP_SECRET (`dhanhook totp` prints the code your authenticator app should show), or set a fresh DHAN_ACCESS_TOKEN",
                ),
                Check::unknown(IP, "not checked: no token to ask Dhan with"),
            ];
        }
    };
    let now = clock.now();
    let mut checks = vec![Check::pass(
        TOKEN,
        format!(
            "accepted by Dhan (GET /v2/profile); {} token, expires {} IST ({:.1} hours left)",
            token.source.as_str(),
            ist(token.expires_at).format("%Y-%m-%d %H:%M"),
            (token.expires_at - now).num_seconds() as f64 / 3600.0
        ),
    )];
    const WHERE: &str = "set this server's public IP as the PRIMARY static IP at web.dhan.co > My Profile > DhanHQ Trading APIs > Static IP (it cannot be changed for 7 days after), or run dhanhook where the whitelisted address is";
    checks.push(match keeper.client().static_ip(&token.value).await {
        Err(e) => Check::unknown(IP, format!("Dhan could not be asked (GET /v2/ip/getIP): {e}")),
        Ok(ip) => {
            let listed = ip.listed();
            match (&ip.detected, listed.is_empty()) {
                (_, true) => Check::fail(IP, "no static IP is set at Dhan, so Dhan refuses every order", WHERE),
                (Some(seen), false) if listed.contains(&seen.as_str()) && ip.orders_allowed != Some(false) => {
                    Check::pass(IP, format!("Dhan sees this server as {seen}, which is whitelisted"))
                }
                (Some(seen), false) => Check::fail(
                    IP,
                    format!(
                        "Dhan sees this server as {seen}, but the whitelisted IPs are {}: Dhan refuses its orders",
                        listed.join(", ")
                    ),
                    WHERE,
                ),
                (None, false) => Check::unknown(
                    IP,
                    format!(
                        "the whitelisted IPs are {}; Dhan does not say which address it sees, so compare them with this server's public IP",
                        listed.join(", ")
                    ),
                ),
            }
        }
    });
    checks
}

fn webhook_secret(settings: &Settings) -> Check {
    const NAME: &str = "webhook secret";
    const ADVICE: &str = "set WEBHOOK_SECRET to a long random value (openssl rand -hex 32), or unset it to have one generated, and put the same value in your TradingView alerts";
    let Some(secret) = &settings.webhook_secret else {
        let path = settings.generated_secret_path();
        return Check::pass(
            NAME,
            format!(
                "generated (in {}{})",
                path.display(),
                if path.exists() {
                    ""
                } else {
                    ", made at the first start"
                }
            ),
        );
    };
    let secret = secret.expose_secret();
    let length = secret.chars().count();
    if PUBLISHED_SECRETS.contains(&secret) {
        Check::fail(
            NAME,
            "it is the example value from a published guide: anyone can place orders with it",
            ADVICE,
        )
    } else if length < MIN_SECRET_LEN {
        Check::fail(
            NAME,
            format!(
                "{length} characters: too short to resist guessing (at least {MIN_SECRET_LEN})"
            ),
            ADVICE,
        )
    } else {
        Check::pass(NAME, format!("set, {length} characters"))
    }
}

fn admin_token(settings: &Settings) -> Check {
    const NAME: &str = "admin token";
    const ADVICE: &str = "set ADMIN_TOKEN to a long random value (openssl rand -hex 32) for /logs, /queue-stats and /refresh-token";
    match &settings.admin_token {
        None => Check::fail(
            NAME,
            "not set: the admin endpoints (/logs, /queue-stats, /refresh-token) are off",
            ADVICE,
        ),
        Some(t) if t.expose_secret().chars().count() < MIN_SECRET_LEN => Check::fail(
            NAME,
            format!(
                "{} characters: too short (at least {MIN_SECRET_LEN})",
                t.expose_secret().chars().count()
            ),
            ADVICE,
        ),
        Some(t) => Check::pass(
            NAME,
            format!("set, {} characters", t.expose_secret().chars().count()),
        ),
    }
}
