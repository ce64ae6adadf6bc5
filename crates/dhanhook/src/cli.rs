//! The command line: `serve` (the default), `check`, `health`, `migrate`, `orders`, `token`,
//! `totp`, `instruments` and `sim`.

use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::{
    clock::{Clock, SystemClock, ist},
    config::Settings,
    startup::{Application, open_journal, token_keeper},
    totp::Totp,
};

#[derive(Debug, Parser)]
#[command(
    name = "dhanhook",
    version,
    about = "TradingView alerts to Dhan orders"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the webhook server (the default).
    Serve,
    /// Check everything live trading needs (configuration, journal, scrip master, holidays,
    /// the Dhan token and static IP, secrets): a checklist; exit code 0 only when all hold.
    Check,
    /// Ask the running server's /health (for container health checks): exit code 0 when healthy.
    Health,
    /// Create or upgrade the journal's tables, then exit.
    Migrate,
    /// Show the newest order legs from the journal.
    Orders {
        /// How many legs to show (1 to 1000).
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
    },
    /// Get (or reuse) a Dhan access token with the current configuration, check it with Dhan,
    /// and print it masked with its expiry.
    Token {
        /// Get a new token even if the stored one is still valid.
        #[arg(long)]
        refresh: bool,
    },
    /// Print the current TOTP code for DHAN_TOTP_SECRET (compare it with your authenticator app).
    Totp,
    /// Send one test message on every configured notification channel (Telegram, webhook).
    NotifyTest,
    /// Dhan's scrip master: download it now, or show what a ticker trades.
    Instruments {
        #[command(subcommand)]
        action: InstrumentsAction,
    },
    /// The kill switch, in the journal every instance shares: `on` refuses new entries (every
    /// order with KILL_SWITCH_MODE=all), `off` lets orders through again, `status` shows it.
    /// Flattening and Dhan's own kill switch need the running server: POST /kill-switch.
    KillSwitch {
        #[command(subcommand)]
        action: KillSwitchAction,
    },
    /// Run the Dhan simulator (fake credentials, nothing real) for trying dhanhook locally.
    Sim {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9000")]
        listen: std::net::SocketAddr,
    },
}

#[derive(Debug, Subcommand)]
pub enum KillSwitchAction {
    /// Turn it on.
    On {
        /// Why (kept in the journal and the notification).
        #[arg(long)]
        note: Option<String>,
    },
    /// Turn it off.
    Off {
        #[arg(long)]
        note: Option<String>,
    },
    /// Show it and its last changes.
    Status,
}

#[derive(Debug, Subcommand)]
pub enum InstrumentsAction {
    /// Download the scrip master into the cache now (INSTRUMENTS_URL).
    Update,
    /// Show what an alert with this ticker would trade (e.g. NSE:RELIANCE, NIFTY1!).
    Lookup {
        /// A TradingView ticker; NSE when no exchange is given.
        ticker: String,
    },
}

/// Runs the chosen command.
///
/// # Errors
/// Whatever stopped the command, with context for the one-line report in `main`.
pub async fn run(cli: Cli, settings: Settings) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let app = Application::build(settings.clone(), clock(&settings)).await?;
            app.run_until_stopped(shutdown_signal()).await
        }
        Command::Check => {
            let checks = crate::checkup::run(&settings, clock(&settings)).await;
            print!("{}", crate::checkup::render(&settings, &checks));
            if crate::checkup::all_passed(&checks) {
                Ok(())
            } else {
                Err(anyhow::anyhow!(
                    "not ready for live trading (see the ✗ lines above)"
                ))
            }
        }
        Command::Health => health_command(&settings).await,
        Command::Migrate => {
            let journal = open_journal(&settings).await?;
            journal.close().await;
            println!(
                "journal is up to date: {}",
                settings.database_url.describe()
            );
            Ok(())
        }
        Command::Token { refresh } => token_command(&settings, refresh).await,
        Command::NotifyTest => notify_test(&settings).await,
        Command::Totp => {
            let secret = settings
                .dhan
                .totp_secret
                .as_ref()
                .context("DHAN_TOTP_SECRET is not set")?;
            let totp = Totp::from_base32(secrecy::ExposeSecret::expose_secret(secret))?;
            let now = SystemClock.now().timestamp();
            println!(
                "{}  (valid for {} more seconds)",
                totp.code_at(now),
                Totp::seconds_left(now)
            );
            Ok(())
        }
        Command::Sim { listen } => sim_command(listen).await,
        Command::Instruments { action } => instruments_command(&settings, action).await,
        Command::KillSwitch { action } => kill_switch_command(&settings, action).await,
        Command::Orders { limit } => {
            let journal = open_journal(&settings).await?;
            // clap has already checked 1..=1000.
            let rows = journal
                .recent_orders(limit)
                .await
                .context("reading the journal")?;
            journal.close().await;
            print!("{}", orders_table(&rows));
            Ok(())
        }
    }
}

/// The service's clock: the real one, or `DHANHOOK_CLOCK_START`'s (simulation, tests).
fn clock(settings: &Settings) -> Arc<dyn Clock> {
    match settings.clock_start {
        Some(start) => {
            tracing::warn!(
                "DHANHOOK_CLOCK_START: the service's clock starts at {start}, not the real time"
            );
            Arc::new(crate::clock::OffsetClock::starting_at(start))
        }
        None => Arc::new(SystemClock),
    }
}

/// `dhanhook health`: `GET /health` of the server on this machine's `PORT` (a container's
/// HEALTHCHECK, which has no shell or curl). Exit code 0 when it answers healthy.
async fn health_command(settings: &Settings) -> anyhow::Result<()> {
    let host = match settings.host {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    let url = format!(
        "http://{}/health",
        std::net::SocketAddr::new(host, settings.port)
    );
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(3))
        .build()
        .context("building the HTTP client")?;
    let resp = client
        .get(&url)
        .send()
        .await
        .with_context(|| format!("{url} did not answer"))?;
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    if status.is_success() && body["status"] == "healthy" {
        println!("healthy ({url})");
        Ok(())
    } else {
        anyhow::bail!("{url} answered {status}: {body}")
    }
}

/// `dhanhook token`: the Rust counterpart of the seed's `python dhan_auth.py`.
async fn token_command(settings: &Settings, refresh: bool) -> anyhow::Result<()> {
    let journal = open_journal(settings).await?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let keeper = token_keeper(
        settings,
        Arc::clone(&journal),
        Arc::clone(&clock),
        crate::startup::market_calendar(settings)?,
    )
    .await?;
    // Prove Dhan accepts it; a refused token gets one refresh.
    let result = keeper.proven(refresh).await;
    journal.close().await;
    let token = result.context("no valid Dhan token")?;
    let now = clock.now();
    println!(
        "Token:    {}",
        mask_token(secrecy::ExposeSecret::expose_secret(&token.value))
    );
    println!("Source:   {}", token.source.as_str());
    println!(
        "Expires:  {} IST ({:.1} hours left)",
        ist(token.expires_at).format("%Y-%m-%d %H:%M:%S"),
        (token.expires_at - now).num_seconds() as f64 / 3600.0
    );
    println!("Checked:  accepted by Dhan (GET /v2/profile)");
    Ok(())
}

/// A token shown as its first and last 4 characters and its length: enough to tell two tokens
/// apart, useless to anyone who reads it.
pub fn mask_token(token: &str) -> String {
    let n = token.chars().count();
    if n < 16 {
        return format!("[{n} characters]");
    }
    let head: String = token.chars().take(4).collect();
    let tail: String = token.chars().skip(n - 4).collect();
    format!("{head}…{tail} ({n} characters)")
}

/// `dhanhook instruments update|lookup`.
async fn instruments_command(settings: &Settings, action: InstrumentsAction) -> anyhow::Result<()> {
    use crate::instruments::source::InstrumentSource;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let source = InstrumentSource::start(
        // Lookups work offline on the built-in sample when nothing else is there.
        crate::startup::scrip_master_source(settings, true),
        Arc::clone(&clock),
    )
    .await?;
    match action {
        InstrumentsAction::Update => {
            let rows = source.download().await.map_err(anyhow::Error::msg)?;
            println!(
                "scrip master updated: {rows} instruments in {}",
                settings.data_dir.join("instruments").display()
            );
        }
        InstrumentsAction::Lookup { ticker } => {
            let status = source.status();
            let instruments = source
                .current()
                .context("no scrip master available; run `dhanhook instruments update`")?;
            let today = ist(clock.now()).date_naive();
            let i = instruments
                .lookup(&ticker, today)
                .map_err(anyhow::Error::msg)?;
            println!("ticker:          {}", ticker.trim().to_ascii_uppercase());
            println!("trades:          {} ({})", i.trading_symbol, i.display);
            println!("security id:     {}", i.security_id);
            println!("segment:         {}", i.exchange_segment);
            println!("instrument:      {}", i.instrument);
            println!("lot size:        {}", i.lot_size);
            println!(
                "expiry:          {}",
                i.expiry.map_or_else(|| "-".to_owned(), |e| e.to_string())
            );
            if let (Some(strike), Some(kind)) = (i.strike, i.option_type) {
                println!("option:          {strike} {kind}");
            }
            println!(
                "scrip master:    {} ({} rows)",
                status.source.unwrap_or_default(),
                status.rows
            );
        }
    }
    Ok(())
}

/// `dhanhook sim`: the simulator on `listen` until ctrl-c or SIGTERM.
async fn sim_command(listen: std::net::SocketAddr) -> anyhow::Result<()> {
    let instruments = sim_instruments_path(
        std::path::Path::new(SOURCE_SAMPLE),
        std::path::Path::new(SIM_DATA_DIR),
    )?;
    let config = dhan_sim::SimConfig::default();
    let handle = dhan_sim::Sim::spawn_at(listen, config.clone())
        .await
        .with_context(|| format!("starting the simulator on {listen}"))?;
    println!(
        "dhan-sim (a simulated Dhan; nothing real) listening on http://{}",
        handle.addr()
    );
    println!("It accepts these FAKE credentials; in another terminal run dhanhook with:");
    println!();
    println!("  ENABLE_DHAN=true \\");
    println!(
        "  DHAN_BASE_URL={} DHAN_AUTH_URL={} \\",
        handle.base_url(),
        handle.auth_url()
    );
    // Fills arrive over the simulator's order-update WebSocket, as they would from Dhan.
    println!("  DHAN_ORDER_FEED_URL={} \\", handle.order_update_url());
    println!(
        "  DHAN_CLIENT_ID={} DHAN_PIN={} DHAN_TOTP_SECRET={} \\",
        config.client_id, config.pin, config.totp_secret
    );
    println!(
        "  DHAN_API_KEY={} DHAN_API_SECRET={} \\",
        config.api_key, config.api_secret
    );
    // Its own data folder, so the simulator's journal, token and webhook secret never mix
    // with the paper-mode ones in ./data.
    println!(
        "  INSTRUMENTS_PATH={} DATA_DIR={SIM_DATA_DIR} \\",
        shell_quote(&instruments.display().to_string())
    );
    // Notifications go to the simulator's Telegram stand-in (GET /sim/telegram/messages).
    println!(
        "  TELEGRAM_API_URL=http://{}/sim/telegram TELEGRAM_BOT_TOKEN=sim-bot TELEGRAM_CHAT_ID=1 \\",
        handle.addr()
    );
    println!("  cargo run --release -- serve");
    println!();
    println!(
        "Drive it: curl -X POST http://{0}/sim/price -d '{{\"securityId\":\"3045\",\"price\":812.5}}'; \
         see its orders at http://{0}/sim/orders and the Telegram messages at http://{0}/sim/telegram/messages",
        handle.addr()
    );
    shutdown_signal().await;
    Ok(())
}

/// The sample scrip master in the source tree this binary was built from.
const SOURCE_SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/scrip-master-sample.csv");

/// The data folder the `sim` banner suggests (as the README does).
const SIM_DATA_DIR: &str = "./data/sim";

/// An absolute path to a scrip master for the `sim` banner, valid from any working directory:
/// `source_sample` when it exists (the binary runs where it was built), else the built-in
/// sample written to `dir` (the binary was copied elsewhere).
///
/// # Errors
/// The sample cannot be written to `dir`.
// Blocking file calls in `sim_command` on purpose: a 3 KB file, once, before the simulator
// starts serving.
fn sim_instruments_path(
    source_sample: &std::path::Path,
    dir: &std::path::Path,
) -> anyhow::Result<std::path::PathBuf> {
    if source_sample.is_file() {
        return Ok(source_sample.to_owned());
    }
    let path = dir.join("scrip-master-sample.csv");
    std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(&path, crate::instruments::master::SAMPLE))
        .with_context(|| format!("writing the sample scrip master to {}", path.display()))?;
    std::path::absolute(&path)
        .with_context(|| format!("finding the absolute path of {}", path.display()))
}

/// `text` as one shell word: unchanged when it is plainly safe, else in single quotes.
fn shell_quote(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@".contains(c));
    if plain {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// The journal rows as a plain-text table, newest first.
///
/// Each column is as wide as its widest cell (at least its header, and for STATUS the longest
/// status, so the layout does not shift when a leg needs attention): long option symbols or
/// order ids widen their column instead of pushing the rest of the row out of line.
pub fn orders_table(rows: &[crate::store::OrderRow]) -> String {
    use std::fmt::Write;

    use crate::store::LegStatus;
    const HEADER: [&str; 12] = [
        "RECEIVED (IST)",
        "MODE",
        "SIDE",
        "SYMBOL",
        "EXCH",
        "QTY",
        "TYPE",
        "STATUS",
        "FILLED",
        "AVG PRICE",
        "ORDER ID",
        "MESSAGE",
    ];
    /// QTY is right-aligned; every other column left-aligned.
    const QTY: usize = 5;
    const STATUS: usize = 7;
    let cells: Vec<[String; 12]> = rows
        .iter()
        .map(|r| {
            [
                ist(r.received_at).format("%Y-%m-%d %H:%M:%S").to_string(),
                r.mode.as_str().to_owned(),
                r.side.as_str().to_owned(),
                r.symbol.clone(),
                r.exchange.as_str().to_owned(),
                r.units.unwrap_or(r.quantity).to_string(),
                r.order_type.as_str().to_owned(),
                r.status.as_str().to_owned(),
                r.detail
                    .filled_qty
                    .map_or_else(|| "-".to_owned(), |q| q.to_string()),
                r.fill_price
                    .map_or_else(|| "-".to_owned(), |p| p.to_string()),
                r.order_id.clone().unwrap_or_else(|| "-".to_owned()),
                message_with_reason(r),
            ]
        })
        .collect();
    let mut widths = HEADER.map(|h| h.chars().count());
    widths[STATUS] = LegStatus::ALL
        .iter()
        .map(|s| s.as_str().len())
        .fold(widths[STATUS], usize::max);
    for row in &cells {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 12]| {
        let mut out = String::new();
        for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
            if i == cells.len() - 1 {
                // The last column (MESSAGE) is not padded: no trailing spaces.
                out.push_str(cell);
            } else if i == QTY {
                let _ = write!(out, "{cell:>width$}  ");
            } else {
                let _ = write!(out, "{cell:<width$}  ");
            }
        }
        out.push('\n');
        out
    };
    let mut out = line(HEADER);
    for row in &cells {
        out.push_str(&line(row.each_ref().map(String::as_str)));
    }
    if rows.is_empty() {
        out.push_str("(no orders yet)\n");
    }
    out
}

/// The leg's message, with the broker's reason when the message does not already carry it.
fn message_with_reason(r: &crate::store::OrderRow) -> String {
    let message = r.message.clone().unwrap_or_default();
    match &r.detail.reason {
        Some(reason) if !message.contains(reason.as_str()) => {
            format!("{message} (reason: {reason})").trim().to_owned()
        }
        _ => message,
    }
}

/// Completes on ctrl-c or SIGTERM (what Cloud Run, systemd and docker send).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received");
}

/// `dhanhook notify-test`: one test message on each configured channel, sent at once (not
/// through the outbox), with what each channel answered.
async fn notify_test(settings: &Settings) -> anyhow::Result<()> {
    use crate::notify::{Channels, Event};
    let n = &settings.notify;
    let channels = Channels::new(
        n.telegram(),
        n.telegram_api_url.clone(),
        n.webhook_url.clone(),
    )?;
    let configured = channels.configured();
    if configured.is_empty() {
        anyhow::bail!(
            "no notification channel is configured: set TELEGRAM_BOT_TOKEN and TELEGRAM_CHAT_ID, or NOTIFY_WEBHOOK_URL"
        );
    }
    let (title, body) = Event::Test.text(settings.mode);
    let mut failed = 0;
    for channel in configured {
        match channels.send(channel, &title, &body).await {
            Ok(()) => println!("✓ {}: test message sent", channel.as_str()),
            Err(e) => {
                failed += 1;
                println!("✗ {}: {e}", channel.as_str());
            }
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} channel(s) did not take the test message");
    }
    Ok(())
}

/// `dhanhook kill-switch on|off|status`: straight to the journal, so it works while the server
/// is down too; every instance sees the change at its next order. Recorded as made by `cli`.
async fn kill_switch_command(settings: &Settings, action: KillSwitchAction) -> anyhow::Result<()> {
    let journal = open_journal(settings).await?;
    let clock = clock(settings);
    let result = async {
        let (notifier, _worker) = crate::startup::notifications(settings, &journal, &clock)?;
        let control = crate::pipeline::KillSwitchControl::new(
            journal.clone(),
            None,
            notifier,
            Arc::clone(&clock),
            settings.controls.kill_switch_mode,
        );
        let change = |on: bool, note: Option<String>| crate::pipeline::KillSwitchChange {
            on,
            // As the HTTP endpoint keeps it: one printable line of at most 200 characters.
            note: note
                .map(|n| {
                    n.trim()
                        .chars()
                        .filter(|c| !c.is_control())
                        .take(200)
                        .collect::<String>()
                })
                .filter(|n| !n.is_empty()),
            ..Default::default()
        };
        let state = match action {
            KillSwitchAction::On { note } => {
                control.apply(&change(true, note), "cli").await?.kill_switch
            }
            KillSwitchAction::Off { note } => {
                control
                    .apply(&change(false, note), "cli")
                    .await?
                    .kill_switch
            }
            KillSwitchAction::Status => control.status().await?,
        };
        let mode = settings.controls.kill_switch_mode;
        let since = state.since.map_or_else(
            || "never switched".to_owned(),
            |t| {
                format!(
                    "since {} IST",
                    crate::clock::ist(t).format("%Y-%m-%d %H:%M:%S")
                )
            },
        );
        println!(
            "kill switch: {} ({since}, by {}){}",
            if state.on { "ON" } else { "off" },
            state.by.as_deref().unwrap_or("-"),
            state
                .note
                .as_deref()
                .map(|n| format!(": {n}"))
                .unwrap_or_default()
        );
        if state.on {
            println!(
                "refusing: {}",
                match mode {
                    crate::config::KillSwitchMode::Entries => "new entries (exits pass)",
                    crate::config::KillSwitchMode::All => "every order (KILL_SWITCH_MODE=all)",
                }
            );
        }
        anyhow::Ok(())
    }
    .await;
    journal.close().await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sim_writes_the_built_in_sample_when_the_source_tree_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no-such-checkout/scrip-master-sample.csv");
        let sim_dir = dir.path().join("data/sim");

        let path = sim_instruments_path(&missing, &sim_dir).unwrap();

        assert!(path.is_absolute(), "{}", path.display());
        assert_eq!(path, sim_dir.join("scrip-master-sample.csv"));
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            crate::instruments::master::SAMPLE
        );
    }

    #[test]
    fn sim_points_at_the_source_sample_when_it_exists() {
        let dir = tempfile::tempdir().unwrap();
        let sim_dir = dir.path().join("data/sim");
        let path = sim_instruments_path(std::path::Path::new(SOURCE_SAMPLE), &sim_dir).unwrap();
        assert_eq!(path, std::path::Path::new(SOURCE_SAMPLE));
        assert!(!sim_dir.exists(), "nothing is written");
    }

    #[test]
    fn shell_quote_keeps_a_path_with_spaces_one_word() {
        assert_eq!(shell_quote("/a/b-c_d.csv"), "/a/b-c_d.csv");
        assert_eq!(shell_quote("/my dir/x.csv"), "'/my dir/x.csv'");
        assert_eq!(shell_quote("/it's"), r"'/it'\''s'");
    }
}
