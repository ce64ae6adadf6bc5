//! The `dhanhook` binary: load `.env` and settings, start logging, run the chosen command.
//! Everything else lives in the library (see `lib.rs`).

use std::{process::ExitCode, time::Duration};

use clap::Parser;
use dhanhook::{
    cli,
    config::{LogFormat, Settings},
    telemetry,
};

/// How long the runtime waits for leftover blocking work (a file write, a database thread) once
/// the command has returned: the shutdown deadline has been kept by then, and the process must
/// not outstay it.
const RUNTIME_SHUTDOWN: Duration = Duration::from_millis(500);

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(run());
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN);
    code
}

async fn run() -> ExitCode {
    let args = cli::Cli::parse();
    if let Err(e) = dotenvy::dotenv()
        && !e.not_found()
    {
        eprintln!("error: .env could not be read: {e}");
        return ExitCode::from(2);
    }
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let log_format = settings.log_format;
    // A checklist or a health probe prints its own answer: only warnings and errors beside it.
    let quiet = matches!(
        args.command,
        Some(cli::Command::Check | cli::Command::Health)
    );
    telemetry::init(
        log_format,
        if quiet {
            "warn"
        } else {
            telemetry::DEFAULT_FILTER
        },
    );
    match cli::run(args, settings).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Said once, where its reader looks: a log collector reads the JSON lines (stdout),
            // a person at a terminal reads stderr. `{:#}` puts the context chain on one line.
            match log_format {
                LogFormat::Json => tracing::error!("{e:#}"),
                LogFormat::Pretty => eprintln!("error: {e:#}"),
            }
            ExitCode::FAILURE
        }
    }
}
