//! `slogate crd`: print the `rollouts.slogate.dev` CustomResourceDefinition, generated from
//! the Rust types (see `crate::rollout::schema`). `deploy/crds/rollouts.slogate.dev.yaml`
//! holds this output; `tests/rollout_crd.rs` fails when the two differ.

use super::{CliError, ExitStatus};

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> Result<ExitStatus, CliError> {
    print!("{}", crate::rollout::schema::crd_yaml());
    Ok(ExitStatus::Success)
}
