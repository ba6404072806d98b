//! `slogate run`: the daemon.

use std::path::PathBuf;

use super::{CliError, ExitStatus};
use crate::daemon::{self, DaemonError};
use crate::runtime::config::Config;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Configuration file (YAML or TOML); `SLOGATE_…` environment variables override it.
    #[arg(long, short, env = "SLOGATE_CONFIG")]
    pub config: PathBuf,
    /// Run one evaluation cycle, print its summary as JSON and exit (no HTTP server).
    /// Exit 1 when any SLO failed to evaluate.
    #[arg(long)]
    pub once: bool,
}

pub fn run(args: Args) -> Result<ExitStatus, CliError> {
    let cfg = Config::load(&args.config).map_err(|e| CliError::InputFailure(Box::new(e)))?;
    tracing::info!("effective backends: {}", cfg.backends_line());
    let rt = super::runtime()?;
    if args.once {
        let summary = rt.block_on(daemon::run_once(&cfg)).map_err(daemon_error)?;
        let json = serde_json::to_string_pretty(&summary)
            .map_err(|e| CliError::failed("cannot encode JSON", e))?;
        println!("{json}");
        return Ok(if summary.errors.is_empty() {
            ExitStatus::Success
        } else {
            ExitStatus::Rejected
        });
    }
    rt.block_on(daemon::run(cfg, daemon::shutdown_signal()))
        .map_err(daemon_error)?;
    Ok(ExitStatus::Success)
}

/// A configuration problem is the user's input (exit 2), shown with its causes (some keep
/// theirs only as a source); any other failure keeps the daemon's error.
fn daemon_error(e: DaemonError) -> CliError {
    if e.is_config() {
        CliError::Input(crate::ports::error_chain(&e))
    } else {
        CliError::failure(e)
    }
}
