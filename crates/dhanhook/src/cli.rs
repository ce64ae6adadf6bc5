//! The command line: `serve` (the default), `migrate` and `orders`.

use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::{
    clock::{SystemClock, ist},
    config::Settings,
    startup::{Application, open_journal},
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
    /// Create or upgrade the journal's tables, then exit.
    Migrate,
    /// Show the newest order legs from the journal.
    Orders {
        /// How many legs to show.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
}

/// Runs the chosen command.
///
/// # Errors
/// Whatever stopped the command, with context for the one-line report in `main`.
pub async fn run(cli: Cli, settings: Settings) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let app = Application::build(settings, Arc::new(SystemClock)).await?;
            app.run_until_stopped(shutdown_signal()).await
        }
        Command::Migrate => {
            let journal = open_journal(&settings).await?;
            journal.close().await;
            println!(
                "journal is up to date: {}",
                settings.database_url.describe()
            );
            Ok(())
        }
        Command::Orders { limit } => {
            let journal = open_journal(&settings).await?;
            let rows = journal
                .recent_orders(limit.clamp(1, 1000))
                .await
                .context("reading the journal")?;
            journal.close().await;
            print!("{}", orders_table(&rows));
            Ok(())
        }
    }
}

/// The journal rows as a plain-text table, newest first.
pub fn orders_table(rows: &[crate::store::OrderRow]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    out.push_str(&format!(
        "{:<19}  {:<5}  {:<4}  {:<16}  {:<4}  {:>8}  {:<16}  {:<10}  {:<26}  {}\n",
        "RECEIVED (IST)",
        "MODE",
        "SIDE",
        "SYMBOL",
        "EXCH",
        "QTY",
        "TYPE",
        "STATUS",
        "ORDER ID",
        "MESSAGE"
    ));
    for r in rows {
        let _ = writeln!(
            out,
            "{:<19}  {:<5}  {:<4}  {:<16}  {:<4}  {:>8}  {:<16}  {:<10}  {:<26}  {}",
            ist(r.received_at).format("%Y-%m-%d %H:%M:%S"),
            r.mode,
            r.side,
            r.symbol,
            r.exchange,
            r.quantity,
            r.order_type,
            r.status,
            r.order_id.as_deref().unwrap_or("-"),
            r.message.as_deref().unwrap_or(""),
        );
    }
    if rows.is_empty() {
        out.push_str("(no orders yet)\n");
    }
    out
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
