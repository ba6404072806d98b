//! `slogate approve`: record an approval of one exact promotion (repository, target
//! overlay, image, tag or digest), for `slogate promote --require-approval`.
//!
//! The approval is stored through the state (`--state-dir`) or the daemon's API
//! (`--slogate-url`), with the actor and the time, and logged as an `Operator` decision.
//! Approving the same change again keeps the first approval.

use super::promote::StateArgs;
use super::{CliError, ExitStatus};
use crate::promote::approval::ApprovalRequest;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The GitOps repository URL, as given to `promote --repo`.
    #[arg(long, value_name = "URL", env = "SLOGATE_REPO")]
    pub repo: String,
    /// The target overlay directory, as given to `promote --target`.
    #[arg(long, value_name = "PATH")]
    pub target: String,
    /// The exact version approved: NAME=TAG or NAME@DIGEST.
    #[arg(long, value_name = "NAME=TAG|NAME@DIGEST")]
    pub image: String,
    /// Who approves (default: $USER).
    #[arg(long, value_name = "NAME", env = "SLOGATE_ACTOR")]
    pub actor: Option<String>,
    /// A note kept with the approval.
    #[arg(long, value_name = "TEXT")]
    pub comment: Option<String>,
    #[command(flatten)]
    pub state: StateArgs,
    #[arg(short, long, value_enum, default_value = "text")]
    pub output: Output,
}

pub fn run(args: Args) -> Result<ExitStatus, CliError> {
    let actor = args
        .actor
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_default();
    let req = ApprovalRequest {
        repo: args.repo.clone(),
        target: args.target.clone(),
        image: args.image.clone(),
        actor,
        comment: args.comment.clone(),
    };
    let change = req
        .change()
        .map_err(|e| CliError::Input(format!("--{e}")))?;
    let Some(state) = args.state.open("cli")? else {
        return Err(CliError::Input(
            "expected --state-dir DIR or --slogate-url URL: where to record the approval".into(),
        ));
    };
    let approved = super::runtime()?
        .block_on(state.approve(&change, &req.actor, req.comment.as_deref()))
        .map_err(|e| CliError::failed("cannot record the approval", e))?;
    let a = &approved.approval;
    match args.output {
        Output::Json => {
            let json = serde_json::to_string_pretty(&serde_json::json!({
                "created": approved.created,
                "approval": a,
            }))
            .map_err(|e| CliError::failed("cannot encode JSON", e))?;
            println!("{json}");
        }
        Output::Text => {
            let what = if approved.created {
                "approved"
            } else {
                "already approved"
            };
            println!(
                "{what}: {} to {} in {} of {} by {} at {} (key {})",
                a.image,
                a.tag.as_deref().or(a.digest.as_deref()).unwrap_or_default(),
                a.target,
                a.repo,
                a.actor,
                a.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                a.key
            );
        }
    }
    Ok(ExitStatus::Success)
}
