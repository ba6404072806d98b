//! `slogate promote`: the CI gate that moves an image from one Kustomize overlay to the
//! next (staging → prod) when the source environment allows it.
//!
//! This file checks the flags (every problem at once, exit 2), loads the source SLOs and
//! opens the state; the promotion itself (fetch, overlays, gates, commit, decision record)
//! is the use case in [`crate::promote::usecase`], which the demo calls too.
//!
//! Exit 0 when promoted or when the target already has that tag; 1 when a gate refuses.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{CliError, ExitStatus, WindowArgs};
use crate::adapters::git::{Auth, SecretSource};
use crate::adapters::promote_api::ApiClient;
use crate::adapters::state::FileStore;
use crate::ports::promote::PromoteState;
use crate::ports::state::{validate_key, StateStore};
use crate::promote::approval::normalize_target;
use crate::promote::gate::{self, PromoteReport};
use crate::promote::image;
use crate::promote::state::StoreState;
use crate::promote::usecase::{self, GitRequest, PromoteError, Request, SloCheck, Verdict};
use crate::runtime::evaluator::Target;
use crate::slo::PromDuration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Text,
    Json,
}

/// The GitOps repository and how to reach it.
#[derive(Debug, Clone, clap::Args)]
pub struct GitArgs {
    /// GitOps repository: a path, file://, git://, http(s):// or ssh:// URL (no credentials
    /// in it: use --git-token-file/--git-token-env or --git-ssh-key).
    #[arg(long, value_name = "URL", env = "SLOGATE_REPO")]
    pub repo: String,
    /// The branch Argo CD or Flux watches.
    #[arg(long, default_value = "main")]
    pub branch: String,
    /// Local clone to work in (kept between runs); default: a temporary directory.
    #[arg(long, value_name = "DIR")]
    pub workdir: Option<PathBuf>,
    /// https token read from this file (GitHub, GitLab, Gitea).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["git_token_env", "git_password_file", "git_password_env", "git_ssh_key"])]
    pub git_token_file: Option<PathBuf>,
    /// https token read from this environment variable.
    #[arg(long, value_name = "VAR", conflicts_with_all = ["git_password_file", "git_password_env", "git_ssh_key"])]
    pub git_token_env: Option<String>,
    /// Username for basic auth, or sent with the token (default x-access-token).
    #[arg(long, value_name = "NAME")]
    pub git_username: Option<String>,
    /// https basic-auth password read from this file (needs --git-username).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["git_password_env", "git_ssh_key"])]
    pub git_password_file: Option<PathBuf>,
    /// https basic-auth password read from this environment variable.
    #[arg(long, value_name = "VAR", conflicts_with = "git_ssh_key")]
    pub git_password_env: Option<String>,
    /// ssh private key file (ssh:// or user@host:path URLs).
    #[arg(long, value_name = "FILE")]
    pub git_ssh_key: Option<PathBuf>,
    /// known_hosts file for ssh (host keys are always checked).
    #[arg(long, value_name = "FILE", requires = "git_ssh_key")]
    pub git_known_hosts: Option<PathBuf>,
    /// Commit author name.
    #[arg(long, default_value = "slogate")]
    pub author_name: String,
    /// Commit author email.
    #[arg(long, default_value = "slogate@localhost")]
    pub author_email: String,
    /// Limit of each git command.
    #[arg(long, default_value = "120s")]
    pub git_timeout: PromDuration,
    /// How many times a push rejected by a concurrent push is redone on the new head.
    #[arg(long, default_value_t = 3)]
    pub push_retries: u32,
}

impl GitArgs {
    fn auth(&self) -> Result<Auth, CliError> {
        let secret = |file: &Option<PathBuf>, env: &Option<String>| match (file, env) {
            (Some(f), _) => Some(SecretSource::File(f.clone())),
            (None, Some(v)) => Some(SecretSource::Env(v.clone())),
            (None, None) => None,
        };
        if let Some(token) = secret(&self.git_token_file, &self.git_token_env) {
            return Ok(Auth::Token {
                token,
                username: self.git_username.clone(),
            });
        }
        if let Some(password) = secret(&self.git_password_file, &self.git_password_env) {
            let Some(username) = self.git_username.clone() else {
                return Err(CliError::Input(
                    "--git-password-file/--git-password-env: expected --git-username too".into(),
                ));
            };
            return Ok(Auth::Basic { username, password });
        }
        if let Some(key_file) = &self.git_ssh_key {
            return Ok(Auth::SshKey {
                key_file: key_file.clone(),
                known_hosts_file: self.git_known_hosts.clone(),
            });
        }
        Ok(Auth::None)
    }

    /// The repository and credentials, for the use case (which adds the work tree).
    fn request(&self) -> Result<GitRequest, CliError> {
        Ok(GitRequest {
            url: self.repo.clone(),
            branch: self.branch.clone(),
            auth: self.auth()?,
            author_name: self.author_name.clone(),
            author_email: self.author_email.clone(),
            timeout: Duration::from_millis(self.git_timeout.as_millis().max(1000)),
            push_retries: self.push_retries,
        })
    }
}

/// Where freezes and approvals are read from (and approvals written to).
#[derive(Debug, Clone, clap::Args)]
pub struct StateArgs {
    /// A slogate state directory (the embedded file store), shared with a local daemon.
    #[arg(long, value_name = "DIR", conflicts_with = "slogate_url")]
    pub state_dir: Option<PathBuf>,
    /// The slogate daemon's URL, to use its API (`/api/v1/guard`, `/api/v1/approvals`).
    #[arg(long, value_name = "URL")]
    pub slogate_url: Option<String>,
    /// File holding the daemon API's bearer token.
    #[arg(long, value_name = "FILE", conflicts_with = "slogate_token_env")]
    pub slogate_token_file: Option<PathBuf>,
    /// Environment variable holding the daemon API's bearer token.
    #[arg(long, value_name = "VAR")]
    pub slogate_token_env: Option<String>,
    /// Timeout of each request to the daemon's API.
    #[arg(long, default_value = "10s")]
    pub api_timeout: PromDuration,
}

impl StateArgs {
    /// Open the state, if any was given. Errors name the flag.
    pub fn open(&self, trigger: &'static str) -> Result<Option<Arc<dyn PromoteState>>, CliError> {
        if let Some(dir) = &self.state_dir {
            let store = FileStore::open(dir)
                .map_err(|e| CliError::input_failed(format!("--state-dir {}", dir.display()), e))?;
            let store: Arc<dyn StateStore> = Arc::new(store);
            return Ok(Some(Arc::new(StoreState::new(store, trigger))));
        }
        let Some(url) = &self.slogate_url else {
            return Ok(None);
        };
        let token = match (&self.slogate_token_file, &self.slogate_token_env) {
            (Some(f), _) => SecretSource::File(f.clone()),
            (None, Some(v)) => SecretSource::Env(v.clone()),
            (None, None) => {
                return Err(CliError::Input(
                    "--slogate-url: expected --slogate-token-file or --slogate-token-env with \
                     the API's bearer token"
                        .into(),
                ))
            }
        };
        let timeout = Duration::from_millis(self.api_timeout.as_millis().max(1));
        let client = ApiClient::new(url, token, timeout)
            .map_err(|e| CliError::Input(format!("--slogate-url {e}")))?;
        Ok(Some(Arc::new(client)))
    }

    fn given(&self) -> bool {
        self.state_dir.is_some() || self.slogate_url.is_some()
    }
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub git: GitArgs,
    /// Source overlay directory in the repo (e.g. overlays/staging).
    #[arg(long, value_name = "PATH")]
    pub source: String,
    /// Target overlay directory in the repo (e.g. overlays/prod); its kustomization.yaml is edited.
    #[arg(long, value_name = "PATH")]
    pub target: String,
    /// The image: NAME=TAG or NAME@DIGEST, or NAME alone with --copy-tag. NAME is the
    /// `name` of the kustomization's `images:` entry.
    #[arg(long, value_name = "NAME[=TAG|@DIGEST]")]
    pub image: Option<String>,
    /// Take the tag (or digest) from the source overlay's entry for the image.
    #[arg(long)]
    pub copy_tag: bool,
    /// Also set the entry's newName.
    #[arg(long, value_name = "NAME")]
    pub new_name: Option<String>,
    /// SLO spec files or directories of the source environment (repeatable).
    #[arg(long = "slo", value_name = "FILE_OR_DIR", num_args = 1.., conflicts_with = "no_slo_check")]
    pub slos: Vec<PathBuf>,
    /// Check only these SLO ids (Sloth `service-slo`); default all in --slo (repeatable).
    #[arg(long = "slo-id", value_name = "ID")]
    pub slo_ids: Vec<String>,
    /// Prometheus of the source environment.
    #[arg(long, value_name = "URL", env = "SLOGATE_PROMETHEUS_URL")]
    pub prometheus: Option<String>,
    /// Evaluate the SLOs at this instant (RFC 3339) instead of now.
    #[arg(long, value_parser = parse_time)]
    pub at: Option<DateTime<Utc>>,
    /// Timeout of each Prometheus query.
    #[arg(long, default_value = "30s")]
    pub prometheus_timeout: PromDuration,
    #[command(flatten)]
    pub windows: WindowArgs,
    /// Skip the SLO gate (no --slo). The output says it was skipped.
    #[arg(long)]
    pub no_slo_check: bool,
    /// Every checked SLO must keep at least this ratio of its error budget (0 to 1).
    #[arg(long, default_value_t = 0.0, value_name = "RATIO")]
    pub min_budget_remaining: f64,
    /// The guard app of the target: promotion is refused while it is frozen.
    #[arg(long, value_name = "NAME")]
    pub app: Option<String>,
    /// Promote although the app is frozen; the commit carries `Slogate-Override: REASON`
    /// so the guard lets it through.
    #[arg(long = "override", value_name = "REASON", requires = "app")]
    pub override_reason: Option<String>,
    /// Require an approval of this exact change (`slogate approve` or POST /api/v1/approvals).
    #[arg(long)]
    pub require_approval: bool,
    #[command(flatten)]
    pub state: StateArgs,
    #[arg(short, long, value_enum, default_value = "text")]
    pub output: Output,
    /// Evaluate every gate and show the edit, but do not commit.
    #[arg(long)]
    pub dry_run: bool,
}

fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{e}: expected an RFC 3339 time such as 2026-11-23T10:00:00Z"))
}

pub fn run(args: Args) -> Result<ExitStatus, CliError> {
    let output = args.output;
    let mut report = usecase::empty_report(args.dry_run);
    let result = super::runtime().and_then(|rt| rt.block_on(execute(&args, &mut report)));
    if let Err(e) = &result {
        report.promoted = false;
        report.reason = crate::ports::error_chain(e);
        if matches!(
            e,
            CliError::Input(_)
                | CliError::InputFailed { .. }
                | CliError::InputFailure(_)
                | CliError::Inputs(_)
        ) && !report.gates.iter().any(|g| g.name == "input")
        {
            // The whole message: an input error's cause is its source.
            report.gates.insert(0, gate::input_failed(&report.reason));
        }
    }
    match output {
        Output::Json => match serde_json::to_string_pretty(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => return Err(CliError::failed("cannot encode JSON", e)),
        },
        // On an error `main` prints it; the text report would only repeat it.
        Output::Text if result.is_ok() => print!("{}", report.text()),
        Output::Text => {}
    }
    result
}

fn input(m: impl Into<String>) -> CliError {
    CliError::Input(m.into())
}

impl From<PromoteError> for CliError {
    fn from(e: PromoteError) -> Self {
        match e {
            PromoteError::Input(m) => CliError::Input(m),
            PromoteError::InputFailed { context, source } => {
                CliError::InputFailed { context, source }
            }
            PromoteError::InputFailure(source) => CliError::InputFailure(source),
            PromoteError::Inputs(m) => CliError::Inputs(m),
            PromoteError::Failed { context, source } => CliError::Failed { context, source },
        }
    }
}

/// Check every flag that needs no I/O; report all problems at once.
fn check_flags(args: &Args) -> Result<(), CliError> {
    let mut errors = Vec::new();
    if !(args.min_budget_remaining.is_finite() && (0.0..=1.0).contains(&args.min_budget_remaining))
    {
        errors.push(format!(
            "--min-budget-remaining {}: expected a ratio between 0 and 1, such as 0.2",
            args.min_budget_remaining
        ));
    }
    if let Some(app) = &args.app {
        if app.contains('/') || validate_key(app).is_err() {
            errors.push(format!(
                "--app `{app}`: expected a guard app name of [A-Za-z0-9._-]"
            ));
        }
        if !args.state.given() {
            errors.push(
                "--app: expected --state-dir or --slogate-url to read the app's freeze from".into(),
            );
        }
    }
    if let Some(r) = &args.override_reason {
        if r.trim().is_empty() || r.contains(['\n', '\r']) {
            errors.push("--override: expected a reason on one line".into());
        }
    }
    if args.require_approval && !args.state.given() {
        errors.push(
            "--require-approval: expected --state-dir or --slogate-url to read approvals from"
                .into(),
        );
    }
    if !args.no_slo_check {
        if args.slos.is_empty() {
            errors.push(
                "--slo: expected the source environment's SLO spec files (or --no-slo-check \
                 to skip the SLO gate)"
                    .into(),
            );
        }
        if args.prometheus.is_none() {
            errors.push("--prometheus: expected the source environment's Prometheus URL".into());
        }
    }
    if let Some(n) = &args.new_name {
        if !image::valid_name(n) {
            errors.push(format!(
                "--new-name `{n}`: expected an image name such as registry.example.com/team/app"
            ));
        }
    }
    match &args.image {
        None if !args.copy_tag => errors.push(
            "--image: expected NAME=TAG or NAME@DIGEST, or --copy-tag to take the tag from --source"
                .into(),
        ),
        None => {}
        Some(i) => match image::parse(i) {
            Err(e) => errors.push(format!("--image {e}")),
            Ok(spec) if spec.to.is_some() && args.copy_tag => errors.push(format!(
                "--copy-tag: --image `{i}` already names the version: expected one or the other"
            )),
            Ok(spec) if spec.to.is_none() && !args.copy_tag => errors.push(format!(
                "--image `{i}`: no tag or digest: expected NAME=TAG, NAME@DIGEST, or --copy-tag"
            )),
            Ok(_) => {}
        },
    }
    let source = normalize_target(&args.source).map_err(|e| format!("--source {e}"));
    let target = normalize_target(&args.target).map_err(|e| format!("--target {e}"));
    match (&source, &target) {
        (Ok(s), Ok(t)) if s == t => errors.push(format!(
            "--source and --target are both {s}: expected two different overlays"
        )),
        _ => {}
    }
    errors.extend(source.err());
    errors.extend(target.err());
    match errors.len() {
        0 => Ok(()),
        1 => Err(CliError::Input(errors.remove(0))),
        _ => Err(CliError::Inputs(errors)),
    }
}

/// The SLO targets to evaluate, from the flags.
fn slo_targets(args: &Args) -> Result<Vec<Target>, CliError> {
    let mut slos = super::load_slos(&args.slos)?;
    if !args.slo_ids.is_empty() {
        let known: Vec<String> = slos.iter().map(|s| s.id.clone()).collect();
        let missing: Vec<&String> = args
            .slo_ids
            .iter()
            .filter(|id| !known.contains(id))
            .collect();
        if !missing.is_empty() {
            return Err(input(format!(
                "--slo-id {}: not in the --slo files (they define: {})",
                missing
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                known.join(", ")
            )));
        }
        slos.retain(|s| args.slo_ids.contains(&s.id));
    }
    let settings = args.windows.settings()?;
    slos.into_iter()
        .map(|slo| {
            let windows = settings
                .for_slo(&slo)
                .map_err(|e| CliError::input_failed(slo.origin.file.display().to_string(), e))?;
            Ok(Target {
                slo: std::sync::Arc::new(slo),
                windows,
            })
        })
        .collect()
}

/// Check the flags, load the SLOs, open the state, then run the use case.
async fn execute(args: &Args, report: &mut PromoteReport) -> Result<ExitStatus, CliError> {
    check_flags(args)?;
    let source = normalize_target(&args.source).map_err(input)?;
    let target = normalize_target(&args.target).map_err(input)?;
    let slo = if args.no_slo_check {
        None
    } else {
        Some(SloCheck {
            targets: slo_targets(args)?,
            prometheus: args.prometheus.clone(),
            timeout: Duration::from_millis(args.prometheus_timeout.as_millis().max(1)),
            at: args.at,
        })
    };
    let state = args.state.open("cli")?;
    let req = Request {
        git: args.git.request()?,
        workdir: args.git.workdir.clone(),
        source,
        target,
        image: args.image.clone(),
        new_name: args.new_name.clone(),
        slo,
        min_budget_remaining: args.min_budget_remaining,
        app: args.app.clone(),
        override_reason: args.override_reason.clone(),
        require_approval: args.require_approval,
        state,
        dry_run: args.dry_run,
    };
    match usecase::run(&req, report).await? {
        Verdict::Success => Ok(ExitStatus::Success),
        Verdict::Rejected => Ok(ExitStatus::Rejected),
    }
}
