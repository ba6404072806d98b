//! `slogate validate` (to be written).

use super::{CliError, ExitStatus};

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> Result<ExitStatus, CliError> {
    Err(CliError::Runtime("not implemented yet".into()))
}
