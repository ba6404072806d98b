//! `slogate promote`: the CI gate that moves an image from one Kustomize overlay to the
//! next (staging → prod) when the source environment allows it.
//!
//! 1. Check the flags, fetch the GitOps repo, read both overlays and resolve the image
//!    (`--image NAME=TAG|NAME@DIGEST`, or `--copy-tag` from the source overlay). Bad input
//!    exits 2 naming the flag, file or field.
//! 2. Gates ([`crate::promote::gate`]): the source SLOs from Prometheus, the target app's
//!    freeze, and (with `--require-approval`) an approval of this exact change. Any failed
//!    gate exits 1 with the reason.
//! 3. Edit the target `kustomization.yaml` (only the image entry changes; comments stay)
//!    through `GitOpsRepo::commit_edit`, which re-applies the edit on a concurrent push,
//!    and push. A decision record (`promote`/`refuse`) goes to the state when there is one.
//!
//! Exit 0 when promoted or when the target already has that tag.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::{CliError, ExitStatus, WindowArgs};
use crate::adapters::git::{redact_url_userinfo, Auth, GitCli, RepoConfig, SecretSource};
use crate::adapters::prometheus::Prometheus;
use crate::adapters::state::FileStore;
use crate::ports::gitops::{CommitOutcome, EditFn, GitOpsRepo, TRAILER_OVERRIDE};
use crate::ports::state::{validate_key, DecisionKind, DecisionRecord, StateStore};
use crate::promote::approval::{normalize_target, Change, KUSTOMIZATION_FILES};
use crate::promote::client::ApiClient;
use crate::promote::gate::{self, Gate, PromoteReport};
use crate::promote::image::{self, ImageRef};
use crate::promote::kustomize::{self, ImageEdit};
use crate::promote::state::{PromoteState, StoreState};
use crate::runtime::evaluator::{self, Target};
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

    /// The repository config for a work tree.
    pub fn config(&self, workdir: &Path) -> Result<RepoConfig, CliError> {
        let mut cfg = RepoConfig::new(self.repo.trim(), self.branch.trim(), workdir);
        cfg.auth = self.auth()?;
        cfg.author_name = self.author_name.clone();
        cfg.author_email = self.author_email.clone();
        cfg.timeout = Duration::from_millis(self.git_timeout.as_millis().max(1000));
        cfg.push_retries = self.push_retries;
        cfg.validate().map_err(|e| {
            CliError::Input(format!(
                "--repo {} --branch {}: {e}",
                redact_url_userinfo(&self.repo),
                self.branch
            ))
        })?;
        Ok(cfg)
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
                .map_err(|e| CliError::Input(format!("--state-dir {}: {e}", dir.display())))?;
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
    let mut report = empty_report(args.dry_run);
    let result = super::runtime().and_then(|rt| rt.block_on(execute(&args, &mut report)));
    if let Err(e) = &result {
        report.promoted = false;
        report.reason = e.to_string();
        if matches!(e, CliError::Input(_) | CliError::Inputs(_))
            && !report.gates.iter().any(|g| g.name == "input")
        {
            report.gates.insert(0, gate::input_failed(&e.to_string()));
        }
    }
    match output {
        Output::Json => match serde_json::to_string_pretty(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => return Err(CliError::Runtime(format!("cannot encode JSON: {e}"))),
        },
        // On an error `main` prints it; the text report would only repeat it.
        Output::Text if result.is_ok() => print!("{}", report.text()),
        Output::Text => {}
    }
    result
}

fn empty_report(dry_run: bool) -> PromoteReport {
    PromoteReport {
        promoted: false,
        reason: String::new(),
        gates: Vec::new(),
        commit: None,
        image: None,
        from_tag: None,
        to_tag: None,
        dry_run,
    }
}

/// Parse `argv` (`slogate promote …`) and run it inside this process and runtime, as
/// `slogate demo` does for its CI step: the exit code `main` would return, and the report.
pub async fn run_in_process(argv: &[&str]) -> (u8, PromoteReport) {
    use clap::Parser;
    let mut report = empty_report(false);
    let args = match super::Cli::try_parse_from(argv) {
        Ok(super::Cli {
            command: super::Command::Promote(a),
            ..
        }) => *a,
        Ok(_) => {
            report.reason = "expected a `slogate promote` command line".into();
            return (2, report);
        }
        Err(e) => {
            report.reason = e.to_string();
            return (2, report);
        }
    };
    report.dry_run = args.dry_run;
    match execute(&args, &mut report).await {
        Ok(ExitStatus::Success) => (0, report),
        Ok(ExitStatus::Rejected) => (1, report),
        Err(e) => {
            report.reason = e.to_string();
            (e.exit_code(), report)
        }
    }
}

fn input(m: impl Into<String>) -> CliError {
    CliError::Input(m.into())
}

/// A temporary work tree, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<Self, CliError> {
        use rand::RngExt;
        let n: u64 = rand::rng().random_range(0..u64::MAX);
        let p =
            std::env::temp_dir().join(format!("slogate-promote-{}-{n:016x}", std::process::id()));
        std::fs::create_dir(&p).map_err(|e| {
            CliError::Runtime(format!("cannot create a work dir {}: {e}", p.display()))
        })?;
        Ok(TempDir(p))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The kustomization file of an overlay, relative to the repo root, and its text.
fn read_overlay(
    workdir: &Path,
    flag: &str,
    dir: &str,
    where_: &str,
) -> Result<(String, String), CliError> {
    let full = workdir.join(dir);
    let meta = std::fs::symlink_metadata(&full);
    if !meta.as_ref().is_ok_and(|m| m.is_dir()) {
        return Err(input(format!(
            "{flag} {dir}: no such directory on {where_}: expected an overlay directory \
             holding a kustomization.yaml"
        )));
    }
    for name in KUSTOMIZATION_FILES {
        let p = full.join(name);
        if std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_file()) {
            let text = std::fs::read_to_string(&p)
                .map_err(|e| input(format!("{flag} {dir}/{name}: cannot read: {e}")))?;
            return Ok((format!("{dir}/{name}"), text));
        }
    }
    Err(input(format!(
        "{flag} {dir}: no kustomization.yaml, kustomization.yml or Kustomization in it \
         (on {where_})"
    )))
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
                .map_err(|e| input(format!("{}: {e}", slo.origin.file.display())))?;
            Ok(Target { slo, windows })
        })
        .collect()
}

async fn slo_gate(args: &Args, targets: &[Target]) -> Result<Gate, CliError> {
    let Some(url) = &args.prometheus else {
        return Ok(gate::slo_skipped());
    };
    let timeout = Duration::from_millis(args.prometheus_timeout.as_millis().max(1));
    let prom = Prometheus::new(url, timeout).map_err(|e| input(format!("--prometheus: {e}")))?;
    let ev = evaluator::evaluate(&prom, targets, args.at).await;
    let errors: Vec<&evaluator::EvalError> = ev.errors().collect();
    if let Some(e) = errors.iter().find(|e| e.is_unreachable()) {
        return Ok(gate::slo_unavailable(
            &e.to_string(),
            args.min_budget_remaining,
        ));
    }
    if !errors.is_empty() {
        return Err(CliError::Inputs(
            errors.iter().map(|e| e.to_string()).collect(),
        ));
    }
    let reports: Vec<_> = ev.reports().cloned().collect();
    Ok(gate::slo(&reports, args.min_budget_remaining))
}

fn ref_text(r: &Option<ImageRef>) -> String {
    r.as_ref()
        .map(|r| r.to_string())
        .unwrap_or_else(|| "(none)".into())
}

async fn execute(args: &Args, report: &mut PromoteReport) -> Result<ExitStatus, CliError> {
    check_flags(args)?;
    let source = normalize_target(&args.source).map_err(input)?;
    let target = normalize_target(&args.target).map_err(input)?;
    let targets = if args.no_slo_check {
        Vec::new()
    } else {
        slo_targets(args)?
    };
    let state = args.state.open("cli")?;

    // The repository.
    let _temp;
    let workdir = match &args.git.workdir {
        Some(w) => w.clone(),
        None => {
            let t = TempDir::new()?;
            let p = t.0.clone();
            _temp = t;
            p
        }
    };
    let cfg = args.git.config(&workdir)?;
    let repo_shown = redact_url_userinfo(&cfg.url);
    let where_ = format!("branch {} of {repo_shown}", cfg.branch);
    let git = GitCli::new(cfg.clone()).map_err(|e| input(format!("--repo {repo_shown}: {e}")))?;
    let head = git.sync().await.map_err(|e| {
        input(format!(
            "--repo {repo_shown} --branch {}: cannot fetch: {e}",
            cfg.branch
        ))
    })?;

    // The overlays and the image.
    let (source_file, source_text) = read_overlay(&workdir, "--source", &source, &where_)?;
    let (target_file, target_text) = read_overlay(&workdir, "--target", &target, &where_)?;
    let spec = match &args.image {
        Some(i) => Some(image::parse(i).map_err(|e| input(format!("--image {e}")))?),
        None => None,
    };
    let name = match &spec {
        Some(s) => s.name.clone(),
        None => {
            let entries = kustomize::read_images(&source_file, &source_text)
                .map_err(|e| input(e.to_string()))?;
            match entries.as_slice() {
                [one] => one.name.clone(),
                _ => {
                    return Err(input(format!(
                        "--image: {source_file} lists {} images ({}): expected --image NAME to say which",
                        entries.len(),
                        entries.iter().map(|e| e.name.as_str()).collect::<Vec<_>>().join(", ")
                    )))
                }
            }
        }
    };
    let to = match spec.and_then(|s| s.to) {
        Some(to) => to,
        None => {
            let entry = kustomize::read_image(&source_file, &source_text, &name)
                .map_err(|e| input(format!("--copy-tag: {e}")))?;
            let to = entry.current().ok_or_else(|| {
                input(format!(
                    "--copy-tag: {source_file}: image `{name}` has neither `newTag` nor \
                     `digest`: expected one to copy"
                ))
            })?;
            image::check_ref(&format!("{source_file}: {name}"), Some(&to))
                .map_err(|e| input(format!("--copy-tag: {e}")))?;
            to
        }
    };
    let from = match kustomize::read_image(&target_file, &target_text, &name) {
        Ok(e) => e.current(),
        Err(
            kustomize::KustomizeError::NotListed { .. }
            | kustomize::KustomizeError::NoImages { .. },
        ) => None,
        Err(e) => return Err(input(e.to_string())),
    };
    report.image = Some(name.clone());
    report.from_tag = from.as_ref().map(|r| r.to_string());
    report.to_tag = Some(to.to_string());
    let edit = ImageEdit {
        name: name.clone(),
        new_name: args.new_name.clone(),
        to: Some(to.clone()),
    };
    let edited = kustomize::set_image(&target_file, &target_text, &edit)
        .map_err(|e| input(e.to_string()))?;
    let change = Change::new(&cfg.url, &target, &name, to.clone()).map_err(input)?;
    report.gates.push(gate::input_ok(
        format!(
            "{source_file} -> {target_file} on {} at {}",
            cfg.branch,
            head.get(..12).unwrap_or(&head)
        ),
        json!({
            "repo": repo_shown,
            "branch": cfg.branch,
            "head": head,
            "source": source_file,
            "target": target_file,
            "image": name,
            "from": report.from_tag,
            "to": report.to_tag,
            "approval_key": change.key(),
        }),
    ));
    let subject = args.app.clone().unwrap_or_else(|| target.clone());

    if edited == target_text {
        report.commit = Some(head.clone());
        report.reason = format!("{target_file} already has {name} at {to}: nothing to promote");
        if !args.dry_run {
            record(state.as_deref(), &subject, "none", report, None).await;
        }
        return Ok(ExitStatus::Success);
    }

    // The gates.
    let slo = if args.no_slo_check {
        gate::slo_skipped()
    } else {
        let source_runs = match kustomize::read_image(&source_file, &source_text, &name) {
            Ok(e) => e.current().map(|r| r.to_string()),
            Err(
                kustomize::KustomizeError::NotListed { .. }
                | kustomize::KustomizeError::NoImages { .. },
            ) => None,
            Err(e) => return Err(input(e.to_string())),
        };
        gate::with_source_version(
            slo_gate(args, &targets).await?,
            &gate::SourceVersion {
                overlay: source.clone(),
                image: name.clone(),
                runs: source_runs,
                promoting: to.to_string(),
            },
        )
    };
    report.gates.push(slo);
    let freeze_lookup = match (&args.app, &state) {
        (Some(app), Some(st)) => Some(st.guard(app).await.map_err(|e| e.to_string())),
        _ => None,
    };
    report.gates.push(gate::freeze(
        args.app.as_deref(),
        freeze_lookup,
        args.override_reason.as_deref(),
    ));
    let approval_lookup = match (&state, args.require_approval) {
        (Some(st), true) => Some(st.approval(&change.key()).await.map_err(|e| e.to_string())),
        _ => None,
    };
    report.gates.push(gate::approval(
        args.require_approval,
        &change.key(),
        approval_lookup,
    ));

    if report.gates.iter().any(|g| !g.passed) {
        report.reason = PromoteReport::failures(&report.gates);
        if !args.dry_run {
            record(state.as_deref(), &subject, "refuse", report, None).await;
        }
        return Ok(ExitStatus::Rejected);
    }
    if args.dry_run {
        report.reason = format!(
            "every gate passed; would set {name} {} -> {to} in {target_file} (not committed: --dry-run)",
            ref_text(&from)
        );
        return Ok(ExitStatus::Success);
    }

    // Commit and push; on a concurrent push the edit is re-applied to the new head.
    let message = commit_message(args, &source, &name, &from, &to, &target, &report.gates);
    let edit_fn = image_edit_fn(target_file.clone(), edit);
    match git.commit_edit(&target_file, edit_fn, &message).await {
        Ok(CommitOutcome::Pushed { sha }) => {
            report.promoted = true;
            report.commit = Some(sha.clone());
            report.reason = format!(
                "set {name} {} -> {to} in {target_file}; pushed {sha} to {}",
                ref_text(&from),
                cfg.branch
            );
            record(
                state.as_deref(),
                &subject,
                "promote",
                report,
                Some(format!("pushed {sha}")),
            )
            .await;
            Ok(ExitStatus::Success)
        }
        Ok(CommitOutcome::Unchanged { head }) => {
            report.commit = Some(head);
            report.reason = format!(
                "{target_file} already has {name} at {to} (changed concurrently): nothing to promote"
            );
            record(state.as_deref(), &subject, "none", report, None).await;
            Ok(ExitStatus::Success)
        }
        Err(e) => {
            let msg = format!("commit or push to {repo_shown} failed: {e}");
            report.reason = msg.clone();
            record(
                state.as_deref(),
                &subject,
                "promote",
                report,
                Some(format!("error: {e}")),
            )
            .await;
            Err(CliError::Runtime(msg))
        }
    }
}

/// The edit handed to `commit_edit`: a pure function of the file's current content, so
/// that after a concurrent push it is applied again to the new head's content.
pub fn image_edit_fn(file: String, edit: ImageEdit) -> EditFn {
    Arc::new(move |current: &str| kustomize::set_image(&file, current, &edit).map_err(|e| e.into()))
}

/// The commit message: what, from where, and the numbers of every gate; trailers last.
fn commit_message(
    args: &Args,
    source: &str,
    name: &str,
    from: &Option<ImageRef>,
    to: &ImageRef,
    target: &str,
    gates: &[Gate],
) -> String {
    let short = |r: &ImageRef| match r {
        ImageRef::Tag(t) => t.clone(),
        ImageRef::Digest(d) => d.chars().take(19).collect(),
    };
    let from_short = from.as_ref().map(short).unwrap_or_else(|| "(none)".into());
    let mut m = format!(
        "promote {name} {from_short} -> {} to {target}\n\n\
         Set {} of image {name} in {target} from {} to {to}, as in {source}.\n\nGates:\n",
        short(to),
        to.field(),
        ref_text(from),
    );
    for g in gates {
        m.push_str(&format!("- {}: {}\n", g.name, g.detail.replace('\n', " ")));
    }
    m.push_str(&format!(
        "\nSlogate-Promote: {name}\nSlogate-Promote-From: {}\nSlogate-Promote-To: {to}\nSlogate-Promote-Source: {source}\n",
        ref_text(from)
    ));
    if let Some(r) = &args.override_reason {
        m.push_str(&format!("{TRAILER_OVERRIDE}: {r}\n"));
    }
    m
}

/// Append a `Promote` decision record. A failure is reported on stderr; it never changes
/// the outcome (the commit, if any, is already pushed).
async fn record(
    state: Option<&dyn PromoteState>,
    subject: &str,
    action: &str,
    report: &PromoteReport,
    outcome: Option<String>,
) {
    let Some(state) = state else { return };
    let mut rec = DecisionRecord::new(
        Utc::now(),
        DecisionKind::Promote,
        subject,
        "cli",
        action,
        report.reason.clone(),
    );
    rec.observed = json!({
        "image": report.image,
        "from": report.from_tag,
        "to": report.to_tag,
        "gates": report.gates,
    });
    rec.commits = report.commit.iter().cloned().collect();
    rec.outcome = outcome;
    if let Err(e) = state.record(&rec).await {
        eprintln!("warning: cannot record the decision: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    // The git adapter's hermetic test helper (no user or system git config).
    use crate::adapters::git::tests::git;

    fn push_file(dev: &Path, rel: &str, text: &str, msg: &str) {
        git(dev, &["pull", "-q", "--ff-only", "origin", "main"]);
        std::fs::create_dir_all(dev.join(rel).parent().unwrap()).unwrap();
        std::fs::write(dev.join(rel), text).unwrap();
        git(dev, &["add", "-A"]);
        git(dev, &["commit", "-q", "-m", msg]);
        git(dev, &["push", "-q", "origin", "main"]);
    }

    /// A human pushes to the same kustomization between slogate's fetch and push: the
    /// push is rejected, the image edit is applied again on the new head, and both changes
    /// are kept.
    #[tokio::test]
    async fn a_concurrent_push_is_retried_with_the_edit_reapplied() {
        let tmp = tempfile::tempdir().unwrap();
        let (remote, dev) = crate::adapters::git::tests::bare_remote_and_clone(tmp.path());
        let file = "overlays/prod/kustomization.yaml";
        let v1 = "# prod\nnamespace: shop # ns\nimages:\n  - name: checkout # app\n    newTag: v1 # tag\n";
        std::fs::create_dir_all(dev.join("overlays/prod")).unwrap();
        std::fs::write(dev.join(file), v1).unwrap();
        git(&dev, &["add", "-A"]);
        git(&dev, &["commit", "-q", "-m", "init"]);
        git(&dev, &["push", "-q", "origin", "main"]);

        let mut cfg = RepoConfig::new(remote.to_str().unwrap(), "main", tmp.path().join("work"));
        cfg.timeout = Duration::from_secs(60);
        let dev_hook = dev.clone();
        let hook = Arc::new(move |attempt: u32| {
            if attempt == 0 {
                let text = "# prod\nnamespace: shop-prod # ns renamed\nimages:\n  - name: checkout # app\n    newTag: v1 # tag\n";
                push_file(
                    &dev_hook,
                    "overlays/prod/kustomization.yaml",
                    text,
                    "rename ns",
                );
            }
        });
        let cli = GitCli::new(cfg).unwrap().with_before_push(hook);
        let edit = ImageEdit {
            name: "checkout".into(),
            new_name: None,
            to: Some(ImageRef::Tag("v2".into())),
        };
        let out = cli
            .commit_edit(
                file,
                image_edit_fn(file.into(), edit),
                "promote checkout v1 -> v2",
            )
            .await
            .unwrap();
        assert!(matches!(out, CommitOutcome::Pushed { .. }), "{out:?}");
        let remote_text = git(&remote, &["show", &format!("main:{file}")]);
        assert_eq!(
            remote_text,
            "# prod\nnamespace: shop-prod # ns renamed\nimages:\n  - name: checkout # app\n    newTag: v2 # tag\n"
        );
        let log = git(&remote, &["log", "--format=%s", "main"]);
        assert_eq!(log, "promote checkout v1 -> v2\nrename ns\ninit\n");
    }
}
