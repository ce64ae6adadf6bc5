//! The `dhanhook` binary: load `.env` and settings, start logging, run the chosen command.
//! Everything else lives in the library (see `lib.rs`).

use std::process::ExitCode;

use clap::Parser;
use dhanhook::{
    cli,
    config::{LogFormat, Settings},
    telemetry,
};

#[tokio::main]
async fn main() -> ExitCode {
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
    telemetry::init(log_format);
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
