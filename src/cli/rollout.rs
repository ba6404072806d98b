//! `slogate rollout {status|promote|abort|pause|resume|approve} NS/NAME`: operators'
//! controls, through a running daemon's API (`--url`, with `--token-file` for changes) or
//! directly in a local state directory (`--state-dir`).
//!
//! Through the API the command is applied at once by the leader and the outcome printed;
//! a command the state machine refuses (approve when nothing waits for approval…) exits 1
//! with its reason. In a state directory the command is queued for the daemon that uses it
//! (it applies it at its next reconcile); `--wait` waits that long for the outcome.
//!
//! Exit codes: 0 done or queued; 1 refused (by the state machine, or the daemon refused
//! the credentials); 2 bad input (rollout name, flags, unknown rollout).

use std::path::PathBuf;
use std::time::Duration;

use reqwest::StatusCode;

use super::{CliError, ExitStatus};
use crate::adapters::daemon_api::DaemonApi;
use crate::adapters::git::SecretSource;
use crate::adapters::state::FileStore;
use crate::ports::state::{DecisionKind, DecisionRecord, StateStore};
use crate::rollout::CommandAction;
use crate::runtime::rollout::api::{view, RolloutView};
use crate::runtime::rollout::commands::{self, CommandOutcome, CommandResult};
use crate::slo::PromDuration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Table,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: RolloutCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum RolloutCommand {
    /// Print a rollout's phase, step, weights, versions and analysis counters.
    Status(Target),
    /// Skip the remaining analysis and promote the canary now.
    Promote(Control),
    /// Abort: weights back to stable and the canary's GitOps commit reverted.
    Abort(Control),
    /// Stop moving (analysis goes on) until resume, abort or promote.
    Pause(Control),
    /// Resume a paused rollout (writes slogate's weights back if they were changed by hand).
    Resume(Control),
    /// Approve the step to 100% of a rollout waiting for approval.
    Approve(Control),
}

/// Which rollout, and where it lives.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("from").required(true).args(["state_dir", "url"])))]
pub struct Target {
    /// The rollout, as `namespace/name`.
    #[arg(value_name = "NS/NAME")]
    pub rollout: String,
    /// Base URL of a running slogate daemon (`http://slogate.slogate.svc:8080`).
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// File holding the API bearer token (the daemon's `api.token`); required for changes
    /// through `--url`.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// State directory of a local slogate (the `state.dir` setting).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    #[arg(long, short, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// A control command.
#[derive(Debug, clap::Args)]
pub struct Control {
    #[command(flatten)]
    pub target: Target,
    /// Why (recorded in the decision log and the notifications).
    #[arg(long)]
    pub reason: Option<String>,
    /// Who acts (default: `$USER`).
    #[arg(long, env = "SLOGATE_ACTOR")]
    pub actor: Option<String>,
    /// With `--state-dir`: how long to wait for the daemon to apply the command.
    #[arg(long, default_value = "0s", value_name = "DURATION")]
    pub wait: PromDuration,
}

pub fn run(args: Args) -> Result<ExitStatus, CliError> {
    let rt = super::runtime()?;
    match args.command {
        RolloutCommand::Status(t) => rt.block_on(status(t)),
        RolloutCommand::Promote(c) => rt.block_on(control(CommandAction::Promote, c)),
        RolloutCommand::Abort(c) => rt.block_on(control(CommandAction::Abort, c)),
        RolloutCommand::Pause(c) => rt.block_on(control(CommandAction::Pause, c)),
        RolloutCommand::Resume(c) => rt.block_on(control(CommandAction::Resume, c)),
        RolloutCommand::Approve(c) => rt.block_on(control(CommandAction::Approve, c)),
    }
}

/// `namespace/name` → (namespace, name), checked like state keys and Kubernetes names.
pub fn parse_rollout(s: &str) -> Result<(String, String), CliError> {
    let bad = || {
        CliError::Input(format!(
            "{s:?}: expected a rollout as NAMESPACE/NAME (lowercase letters, digits, '-' and '.')"
        ))
    };
    let (ns, name) = s.split_once('/').ok_or_else(bad)?;
    let ok = |p: &str| {
        !p.is_empty()
            && p.len() <= 253
            && p.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
            && !p.starts_with(['-', '.'])
    };
    if !ok(ns) || !ok(name) {
        return Err(bad());
    }
    Ok((ns.to_string(), name.to_string()))
}

fn open_state(dir: &std::path::Path) -> Result<FileStore, CliError> {
    if !dir.is_dir() {
        return Err(CliError::Input(format!(
            "--state-dir {}: expected an existing slogate state directory",
            dir.display()
        )));
    }
    FileStore::open(dir)
        .map_err(|e| CliError::input_failed(format!("--state-dir {}", dir.display()), e))
}

/// A client of the daemon at `--url`. The daemon applies a command with one reconcile
/// (Prometheus queries, a git push): allow for it.
fn daemon_api(base: &str) -> Result<DaemonApi, CliError> {
    Ok(DaemonApi::new(
        base,
        Duration::from_secs(120),
        Duration::from_secs(10),
    )?)
}

async fn status(t: Target) -> Result<ExitStatus, CliError> {
    let (ns, name) = parse_rollout(&t.rollout)?;
    let v: RolloutView = match (&t.state_dir, &t.url) {
        (Some(dir), _) => {
            let store = open_state(dir)?;
            let key = commands::status_key(&ns, &name);
            let exists = store.get(&key).await.map_err(CliError::failure)?.is_some();
            let v = view(&store, &ns, &name).await.map_err(CliError::failure)?;
            if !exists && v.pending_commands.is_empty() && v.command_results.is_empty() {
                return Err(CliError::Input(format!(
                    "{ns}/{name}: no such rollout in {} (it has no stored status yet)",
                    dir.display()
                )));
            }
            v
        }
        (None, Some(base)) => {
            let api = daemon_api(base)?;
            let reply = api
                .get(api.url(&["api", "v1", "rollouts", &ns, &name]))
                .await?;
            if reply.status == StatusCode::NOT_FOUND {
                return Err(CliError::Input(format!("{ns}/{name}: {}", reply.message())));
            }
            reply.json(&[StatusCode::OK])?
        }
        (None, None) => {
            return Err(CliError::Input(
                "expected --state-dir DIR or --url URL".into(),
            ))
        }
    };
    match t.output {
        Output::Json => println!("{}", to_json(&v)?),
        Output::Table => print!("{}", table(&v)),
    }
    Ok(ExitStatus::Success)
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String, CliError> {
    serde_json::to_string_pretty(v).map_err(|e| CliError::failed("cannot encode JSON", e))
}

/// The status as aligned `key  value` lines.
pub fn table(v: &RolloutView) -> String {
    let s = &v.status;
    let mut rows: Vec<(&str, String)> = vec![
        ("rollout", format!("{}/{}", v.namespace, v.name)),
        (
            "phase",
            match s.phase.step() {
                Some(step) => format!("{} (step {})", s.phase.name(), step + 1),
                None => s.phase.name().to_string(),
            },
        ),
        ("reason", s.reason.clone()),
        (
            "weights",
            s.weights
                .map(|w| format!("{}/{} stable/canary", w.stable, w.canary))
                .unwrap_or_else(|| "-".into()),
        ),
        (
            "header route",
            s.header_match
                .as_ref()
                .map(|h| format!("requests with {} go to the canary", h.describe()))
                .unwrap_or_else(|| "-".into()),
        ),
        (
            "time left",
            match s.hold_until {
                Some(until) => {
                    let left = (until - chrono::Utc::now()).num_seconds().max(0);
                    format!(
                        "{} at this step (hold until {})",
                        PromDuration::from_secs(left as u64),
                        until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    )
                }
                None => "-".into(),
            },
        ),
        (
            "versions",
            format!(
                "canary {}, stable {}",
                s.canary_version.as_deref().unwrap_or("-"),
                s.stable_version.as_deref().unwrap_or("-")
            ),
        ),
        (
            "analysis",
            format!(
                "{} passed, {} failed, {} inconclusive",
                s.passes, s.failures, s.inconclusive
            ),
        ),
    ];
    if let Some(a) = &s.last_analysis {
        rows.push((
            "last interval",
            format!(
                "{} at {}: {}",
                a.verdict,
                a.window_end.to_rfc3339(),
                a.reason
            ),
        ));
    }
    if let Some(p) = s.p_value {
        rows.push(("p-value", format!("{p:.4}")));
    }
    if let Some(c) = &s.promotion_commit {
        rows.push(("promotion", c.clone()));
    }
    if let Some(c) = &s.revert_commit {
        rows.push(("revert", c.clone()));
    }
    if !s.pending.is_empty() {
        let p: Vec<String> = s
            .pending
            .iter()
            .map(|p| format!("{:?} {}", p.kind, p.key))
            .collect();
        rows.push(("effects pending", p.join(", ")));
    }
    if !v.pending_commands.is_empty() {
        let p: Vec<String> = v
            .pending_commands
            .iter()
            .map(|c| format!("{} by {}", c.command.action.as_str(), c.command.actor))
            .collect();
        rows.push(("commands queued", p.join(", ")));
    }
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    rows.iter()
        .map(|(k, v)| format!("{k:width$}  {v}\n"))
        .collect()
}

fn actor(given: Option<String>) -> String {
    given
        .or_else(|| std::env::var("USER").ok())
        .filter(|a| !a.trim().is_empty())
        .unwrap_or_else(|| "cli".to_string())
}

async fn control(action: CommandAction, c: Control) -> Result<ExitStatus, CliError> {
    let (ns, name) = parse_rollout(&c.target.rollout)?;
    let actor = actor(c.actor.clone());
    let result = match (&c.target.state_dir, &c.target.url) {
        (Some(dir), _) => local(action, &c, dir, &ns, &name, &actor).await?,
        (None, Some(base)) => remote(action, &c, base, &ns, &name, &actor).await?,
        (None, None) => {
            return Err(CliError::Input(
                "expected --state-dir DIR or --url URL".into(),
            ))
        }
    };
    match c.target.output {
        Output::Json => println!("{}", to_json(&result)?),
        Output::Table => {
            let line = match result.outcome {
                CommandOutcome::Applied => format!(
                    "{} {ns}/{name}: applied; phase {}: {}",
                    action.as_str(),
                    result.phase.as_deref().unwrap_or("?"),
                    result.reason
                ),
                CommandOutcome::Queued => {
                    format!(
                        "{} {ns}/{name}: queued ({}): {}",
                        action.as_str(),
                        result.id,
                        result.reason
                    )
                }
                CommandOutcome::Rejected => format!(
                    "{} {ns}/{name}: refused: {}",
                    action.as_str(),
                    result.reason
                ),
            };
            if result.outcome == CommandOutcome::Rejected {
                eprintln!("{line}");
            } else {
                println!("{line}");
            }
        }
    }
    Ok(if result.outcome == CommandOutcome::Rejected {
        ExitStatus::Rejected
    } else {
        ExitStatus::Success
    })
}

async fn local(
    action: CommandAction,
    c: &Control,
    dir: &std::path::Path,
    ns: &str,
    name: &str,
    actor: &str,
) -> Result<CommandResult, CliError> {
    let store = open_state(dir)?;
    let now = chrono::Utc::now();
    let (cmd, _stored) = commands::enqueue(
        &store,
        ns,
        name,
        action,
        actor,
        c.reason.clone(),
        "cli",
        now,
    )
    .await
    .map_err(CliError::failure)?;
    let mut rec = DecisionRecord::new(
        now,
        DecisionKind::Operator,
        format!("{ns}/{name}"),
        "cli",
        format!("{}-requested", action.as_str()),
        format!(
            "{} requested by {actor}{}: queued for the daemon",
            action.as_str(),
            cmd.reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        ),
    );
    rec.actor = Some(actor.to_string());
    rec.observed = serde_json::json!({"command": cmd.id});
    store
        .append_decision(&rec)
        .await
        .map_err(CliError::failure)?;
    let deadline = tokio::time::Instant::now() + c.wait.as_std();
    loop {
        if let Some(r) = commands::result_of(&store, ns, name, &cmd.id)
            .await
            .map_err(CliError::failure)?
        {
            return Ok(r);
        }
        if tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(CommandResult {
        id: cmd.id,
        action,
        actor: actor.to_string(),
        outcome: CommandOutcome::Queued,
        reason: "the daemon using this state directory applies it at its next reconcile".into(),
        phase: None,
        at: now,
    })
}

async fn remote(
    action: CommandAction,
    c: &Control,
    base: &str,
    ns: &str,
    name: &str,
    actor: &str,
) -> Result<CommandResult, CliError> {
    let Some(token_file) = &c.target.token_file else {
        return Err(CliError::Input(
            "--token-file: expected the file holding the API token to change a rollout through --url".into(),
        ));
    };
    // Read now, so that a missing or empty file is bad input (exit 2); the client reads
    // it again for the request.
    let token = SecretSource::File(token_file.clone());
    token
        .read()
        .map_err(|e| CliError::Input(format!("--token-file {}: {e}", token_file.display())))?;
    let api = daemon_api(base)?.with_token(token);
    let url = api.url(&["api", "v1", "rollouts", ns, name, action.as_str()]);
    let body = match &c.reason {
        Some(r) => serde_json::json!({ "reason": r }),
        None => serde_json::json!({}),
    };
    let reply = api.post(url, &body, &[("x-slogate-actor", actor)]).await?;
    match reply.status.as_u16() {
        200 | 202 | 409 => Ok(reply.json(&[reply.status])?),
        400 | 404 => Err(CliError::Input(format!("{ns}/{name}: {}", reply.message()))),
        401 | 403 => Err(CliError::Runtime(format!(
            "the daemon refused the credentials (HTTP {}): {}",
            reply.status,
            reply.message()
        ))),
        _ => Err(CliError::failure(reply.status_error())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollout_names_are_checked() {
        assert_eq!(
            parse_rollout("shop/checkout").unwrap(),
            ("shop".into(), "checkout".into())
        );
        for bad in [
            "checkout", "shop/", "/x", "Shop/x", "a/b/c", "a/../b", "a/-x",
        ] {
            let e = parse_rollout(bad).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad}");
            assert!(e.to_string().contains("NAMESPACE/NAME"), "{e}");
        }
    }
}
