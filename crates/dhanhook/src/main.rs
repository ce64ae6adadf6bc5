//! The `dhanhook` binary: load `.env` and settings, start logging, run the chosen command.
//! Everything else lives in the library (see `lib.rs`).

use std::process::ExitCode;

use clap::Parser;
use dhanhook::{cli, config::Settings, telemetry};

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
    telemetry::init(settings.log_format);
    match cli::run(args, settings).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}` prints the whole context chain on one line.
            tracing::error!("{e:#}");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
