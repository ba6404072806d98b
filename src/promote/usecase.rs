//! The promote use case: move an image from one Kustomize overlay to the next (staging →
//! prod) when the source environment allows it. `slogate promote` (`crate::cli::promote`)
//! turns its flags into a [`Request`]; the demo builds one directly. Both call [`run`].
//!
//! 1. Fetch the GitOps repo, read both overlays and resolve the image (`NAME=TAG`,
//!    `NAME@DIGEST`, or the source overlay's tag). Bad input is a [`PromoteError::Input`]
//!    naming the flag, file or field.
//! 2. Gates ([`super::gate`]): the source SLOs from Prometheus, the target app's freeze,
//!    and (when required) an approval of this exact change. Any failed gate is
//!    [`Verdict::Rejected`] with the reason in the report.
//! 3. Edit the target `kustomization.yaml` (only the image entry changes; comments stay)
//!    through the effect executor (`crate::runtime::effects`) and `GitOpsRepo::commit_edit`,
//!    which re-applies the edit on a concurrent push, and push. A decision record (`promote`/`refuse`) goes to the state when there is one.
//!
//! Error messages name the `slogate promote` flags, the command's contract.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::approval::{Change, KUSTOMIZATION_FILES};
use super::gate::{self, Gate, PromoteReport};
use super::image::{self, ImageRef};
use super::kustomize::{self, ImageEdit};
use crate::adapters::git::{redact_url_userinfo, Auth, GitCli, RepoConfig};
use crate::adapters::prometheus::Prometheus;
use crate::model::trailers::TRAILER_OVERRIDE;
use crate::ports::gitops::{CommitOutcome, EditFn, GitOpsRepo};
use crate::ports::promote::PromoteState;
use crate::ports::state::{DecisionKind, DecisionRecord};
use crate::ports::BoxError;
use crate::runtime::effects::{DecisionLog, Executor, Stored};
use crate::runtime::evaluator::{self, Target};
use crate::runtime::failpoint::{self as fp, hit};

/// A promotion whose flags are checked: overlays normalized, SLO targets loaded, the state
/// opened.
pub struct Request {
    pub git: GitRequest,
    /// Local clone to work in (kept between runs); `None`: a temporary directory.
    pub workdir: Option<PathBuf>,
    /// Source overlay directory in the repo, normalized (`overlays/staging`).
    pub source: String,
    /// Target overlay directory, normalized; its kustomization is edited.
    pub target: String,
    /// `NAME=TAG`, `NAME@DIGEST`, or `NAME` alone (or `None`) to copy the source's version.
    pub image: Option<String>,
    /// Also set the entry's `newName`.
    pub new_name: Option<String>,
    /// The SLO gate; `None` skips it (`--no-slo-check`).
    pub slo: Option<SloCheck>,
    /// Every checked SLO must keep at least this ratio of its error budget.
    pub min_budget_remaining: f64,
    /// The guard app of the target: promotion is refused while it is frozen.
    pub app: Option<String>,
    /// Promote although the app is frozen (`Slogate-Override: REASON`).
    pub override_reason: Option<String>,
    pub require_approval: bool,
    /// Where freezes and approvals are read and decisions recorded.
    pub state: Option<Arc<dyn PromoteState>>,
    /// Evaluate every gate and show the edit, but do not commit.
    pub dry_run: bool,
}

/// The source environment's SLOs and the Prometheus to evaluate them on.
pub struct SloCheck {
    pub targets: Vec<Target>,
    pub prometheus: Option<String>,
    pub timeout: Duration,
    /// Evaluate at this instant instead of now.
    pub at: Option<DateTime<Utc>>,
}

/// The GitOps repository and how to reach it (`--repo`, `--branch`, credentials, author).
#[derive(Debug, Clone)]
pub struct GitRequest {
    pub url: String,
    pub branch: String,
    pub auth: Auth,
    pub author_name: String,
    pub author_email: String,
    /// Limit of each git command.
    pub timeout: Duration,
    /// How many times a push rejected by a concurrent push is redone on the new head.
    pub push_retries: u32,
}

impl GitRequest {
    /// The `slogate promote` defaults: no credentials, author `slogate <slogate@localhost>`,
    /// 120s per git command, 3 push retries.
    pub fn new(url: impl Into<String>, branch: impl Into<String>) -> Self {
        GitRequest {
            url: url.into(),
            branch: branch.into(),
            auth: Auth::None,
            author_name: "slogate".into(),
            author_email: "slogate@localhost".into(),
            timeout: Duration::from_secs(120),
            push_retries: 3,
        }
    }

    /// The repository config for a work tree.
    pub fn config(&self, workdir: &Path) -> Result<RepoConfig, PromoteError> {
        let mut cfg = RepoConfig::new(self.url.trim(), self.branch.trim(), workdir);
        cfg.auth = self.auth.clone();
        cfg.author_name = self.author_name.clone();
        cfg.author_email = self.author_email.clone();
        cfg.timeout = self.timeout;
        cfg.push_retries = self.push_retries;
        cfg.validate().map_err(|e| {
            input_failed(
                format!(
                    "--repo {} --branch {}",
                    redact_url_userinfo(&self.url),
                    self.branch
                ),
                e,
            )
        })?;
        Ok(cfg)
    }
}

/// How a promotion ended when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Promoted, or nothing to promote (the target already has that version), or a dry run
    /// whose gates all passed.
    Success,
    /// A gate refused.
    Rejected,
}

/// Why a promotion could not be decided. `Failed` keeps its cause as the source: print
/// it with [`error_chain`](crate::ports::error_chain).
#[derive(Debug, thiserror::Error)]
pub enum PromoteError {
    /// Bad input (a flag, file or field, named in the message).
    #[error("{0}")]
    Input(String),
    /// Bad input with its cause: `context` names the flag or file, the source says what is
    /// wrong with it.
    #[error("{context}")]
    InputFailed {
        context: String,
        #[source]
        source: BoxError,
    },
    /// Bad input that is a lower layer's error as it is (it names the file and the field).
    #[error(transparent)]
    InputFailure(BoxError),
    /// Several input problems, one per line.
    #[error("{}", .0.join("\n"))]
    Inputs(Vec<String>),
    /// Git, the work tree or another runtime failure: `context` says what failed, the
    /// source why.
    #[error("{context}")]
    Failed {
        context: String,
        #[source]
        source: BoxError,
    },
}

impl PromoteError {
    /// `slogate promote`'s exit code: 2 for input, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            PromoteError::Input(_)
            | PromoteError::InputFailed { .. }
            | PromoteError::InputFailure(_)
            | PromoteError::Inputs(_) => 2,
            PromoteError::Failed { .. } => 1,
        }
    }
}

/// An empty report (nothing decided yet).
pub fn empty_report(dry_run: bool) -> PromoteReport {
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

/// [`run`], its outcome as `slogate promote`'s exit code (0 promoted or nothing to do,
/// 1 refused or failed, 2 bad input) with the report.
pub async fn run_to_exit_code(req: &Request) -> (u8, PromoteReport) {
    let mut report = empty_report(req.dry_run);
    match run(req, &mut report).await {
        Ok(Verdict::Success) => (0, report),
        Ok(Verdict::Rejected) => (1, report),
        Err(e) => {
            report.reason = crate::ports::error_chain(&e);
            (e.exit_code(), report)
        }
    }
}

fn input(m: impl Into<String>) -> PromoteError {
    PromoteError::Input(m.into())
}

/// Bad input `context` (a flag, a file), with the error that says why.
fn input_failed(context: impl Into<String>, source: impl Into<BoxError>) -> PromoteError {
    PromoteError::InputFailed {
        context: context.into(),
        source: source.into(),
    }
}

/// Bad input that `source` describes as it is.
fn input_failure(source: impl Into<BoxError>) -> PromoteError {
    PromoteError::InputFailure(source.into())
}

/// A temporary work tree, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<Self, PromoteError> {
        use rand::RngExt;
        let n: u64 = rand::rng().random_range(0..u64::MAX);
        let p =
            std::env::temp_dir().join(format!("slogate-promote-{}-{n:016x}", std::process::id()));
        std::fs::create_dir(&p).map_err(|e| PromoteError::Failed {
            context: format!("cannot create a work dir {}", p.display()),
            source: Box::new(e),
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
) -> Result<(String, String), PromoteError> {
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
                .map_err(|e| input_failed(format!("{flag} {dir}/{name}: cannot read"), e))?;
            return Ok((format!("{dir}/{name}"), text));
        }
    }
    Err(input(format!(
        "{flag} {dir}: no kustomization.yaml, kustomization.yml or Kustomization in it \
         (on {where_})"
    )))
}

async fn slo_gate(check: &SloCheck, min_budget_remaining: f64) -> Result<Gate, PromoteError> {
    let Some(url) = &check.prometheus else {
        return Ok(gate::slo_skipped());
    };
    let prom = Prometheus::new(url, check.timeout).map_err(|e| input_failed("--prometheus", e))?;
    let ev = evaluator::evaluate(&prom, &check.targets, check.at).await;
    let errors: Vec<&evaluator::EvalError> = ev.errors().collect();
    if let Some(e) = errors.iter().find(|e| e.is_unreachable()) {
        return Ok(gate::slo_unavailable(&e.to_string(), min_budget_remaining));
    }
    if !errors.is_empty() {
        return Err(PromoteError::Inputs(
            errors.iter().map(|e| e.to_string()).collect(),
        ));
    }
    let reports: Vec<_> = ev.reports().cloned().collect();
    Ok(gate::slo(&reports, min_budget_remaining))
}

fn ref_text(r: &Option<ImageRef>) -> String {
    r.as_ref()
        .map(|r| r.to_string())
        .unwrap_or_else(|| "(none)".into())
}

/// Run one promotion: resolve, gate, commit. The report says what was decided and why;
/// on an error its `reason` is left for the caller to fill.
pub async fn run(req: &Request, report: &mut PromoteReport) -> Result<Verdict, PromoteError> {
    let source = req.source.as_str();
    let target = req.target.as_str();
    let state = req.state.clone();

    // The repository.
    let _temp;
    let workdir = match &req.workdir {
        Some(w) => w.clone(),
        None => {
            let t = TempDir::new()?;
            let p = t.0.clone();
            _temp = t;
            p
        }
    };
    let cfg = req.git.config(&workdir)?;
    let repo_shown = redact_url_userinfo(&cfg.url);
    let where_ = format!("branch {} of {repo_shown}", cfg.branch);
    let git =
        GitCli::new(cfg.clone()).map_err(|e| input_failed(format!("--repo {repo_shown}"), e))?;
    let head = git.sync().await.map_err(|e| {
        input_failed(
            format!("--repo {repo_shown} --branch {}: cannot fetch", cfg.branch),
            e,
        )
    })?;

    // The overlays and the image.
    let (source_file, source_text) = read_overlay(&workdir, "--source", source, &where_)?;
    let (target_file, target_text) = read_overlay(&workdir, "--target", target, &where_)?;
    let spec = match &req.image {
        Some(i) => Some(image::parse(i).map_err(|e| input(format!("--image {e}")))?),
        None => None,
    };
    let name = match &spec {
        Some(s) => s.name.clone(),
        None => {
            let entries =
                kustomize::read_images(&source_file, &source_text).map_err(input_failure)?;
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
                .map_err(|e| input_failed("--copy-tag", e))?;
            let to = entry.current().ok_or_else(|| {
                input(format!(
                    "--copy-tag: {source_file}: image `{name}` has neither `newTag` nor \
                     `digest`: expected one to copy"
                ))
            })?;
            image::check_ref(&format!("{source_file}: {name}"), Some(&to))
                .map_err(|e| input_failed("--copy-tag", e))?;
            to
        }
    };
    let from = match kustomize::read_image(&target_file, &target_text, &name) {
        Ok(e) => e.current(),
        Err(
            kustomize::KustomizeError::NotListed { .. }
            | kustomize::KustomizeError::NoImages { .. },
        ) => None,
        Err(e) => return Err(input_failure(e)),
    };
    report.image = Some(name.clone());
    report.from_tag = from.as_ref().map(|r| r.to_string());
    report.to_tag = Some(to.to_string());
    let edit = ImageEdit {
        name: name.clone(),
        new_name: req.new_name.clone(),
        to: Some(to.clone()),
    };
    let edited = kustomize::set_image(&target_file, &target_text, &edit).map_err(input_failure)?;
    let change = Change::new(&cfg.url, target, &name, to.clone()).map_err(input)?;
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
    let subject = req.app.clone().unwrap_or_else(|| target.to_string());
    // Every effect goes through the effect executor, as the guard's and the rollouts': the
    // commit (no bound on the commit itself: the git adapter bounds each git command) and
    // the decision record, to the promote state when there is one. Promote keeps no state
    // document of its own: its proof for the executor is `Stored::no_state`.
    let repo: Arc<dyn GitOpsRepo> = Arc::new(git);
    let mut exec = Executor::new().with_repo(Some(repo.clone()), None);
    if let Some(st) = &state {
        exec = exec.with_log(Arc::new(PromoteLog(st.clone())));
    }
    let stored = Stored::no_state();

    if edited == target_text {
        report.commit = Some(head.clone());
        report.reason = format!("{target_file} already has {name} at {to}: nothing to promote");
        if !req.dry_run {
            record_unrecorded(
                repo.as_ref(),
                state.as_deref(),
                &exec,
                &stored,
                &subject,
                &target_file,
                &name,
                &to,
                report,
            )
            .await;
            record(&exec, &stored, &subject, "none", report, None).await;
        }
        return Ok(Verdict::Success);
    }

    // The gates.
    let slo = if let Some(check) = &req.slo {
        let source_runs = match kustomize::read_image(&source_file, &source_text, &name) {
            Ok(e) => e.current().map(|r| r.to_string()),
            Err(
                kustomize::KustomizeError::NotListed { .. }
                | kustomize::KustomizeError::NoImages { .. },
            ) => None,
            Err(e) => return Err(input_failure(e)),
        };
        gate::with_source_version(
            slo_gate(check, req.min_budget_remaining).await?,
            &gate::SourceVersion {
                overlay: source.to_string(),
                image: name.clone(),
                runs: source_runs,
                promoting: to.to_string(),
            },
        )
    } else {
        gate::slo_skipped()
    };
    report.gates.push(slo);
    let freeze_lookup = match (&req.app, &state) {
        (Some(app), Some(st)) => Some(st.guard(app).await.map_err(|e| e.to_string())),
        _ => None,
    };
    report.gates.push(gate::freeze(
        req.app.as_deref(),
        freeze_lookup,
        req.override_reason.as_deref(),
    ));
    let approval_lookup = match (&state, req.require_approval) {
        (Some(st), true) => Some(st.approval(&change.key()).await.map_err(|e| e.to_string())),
        _ => None,
    };
    report.gates.push(gate::approval(
        req.require_approval,
        &change.key(),
        approval_lookup,
    ));

    if report.gates.iter().any(|g| !g.passed) {
        report.reason = PromoteReport::failures(&report.gates);
        if !req.dry_run {
            record(&exec, &stored, &subject, "refuse", report, None).await;
        }
        return Ok(Verdict::Rejected);
    }
    if req.dry_run {
        report.reason = format!(
            "every gate passed; would set {name} {} -> {to} in {target_file} (not committed: --dry-run)",
            ref_text(&from)
        );
        return Ok(Verdict::Success);
    }

    // Commit and push; on a concurrent push the edit is re-applied to the new head.
    let message = commit_message(req, source, &name, &from, &to, target, &report.gates);
    let edit_fn = image_edit_fn(target_file.clone(), edit);
    match exec
        .commit_edit(&stored, &target_file, edit_fn, &message)
        .await
    {
        Ok(CommitOutcome::Pushed { sha }) => {
            report.promoted = true;
            report.commit = Some(sha.clone());
            report.reason = format!(
                "set {name} {} -> {to} in {target_file}; pushed {sha} to {}",
                ref_text(&from),
                cfg.branch
            );
            record(
                &exec,
                &stored,
                &subject,
                "promote",
                report,
                Some(format!("pushed {sha}")),
            )
            .await;
            Ok(Verdict::Success)
        }
        Ok(CommitOutcome::Unchanged { head }) => {
            report.commit = Some(head);
            report.reason = format!(
                "{target_file} already has {name} at {to} (changed concurrently): nothing to promote"
            );
            record(&exec, &stored, &subject, "none", report, None).await;
            Ok(Verdict::Success)
        }
        Err(e) => {
            let context = format!("commit or push to {repo_shown} failed");
            report.reason = format!("{context}: {e}");
            record(
                &exec,
                &stored,
                &subject,
                "promote",
                report,
                Some(format!("error: {e}")),
            )
            .await;
            Err(PromoteError::Failed {
                context,
                source: Box::new(e),
            })
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
    req: &Request,
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
    if let Some(r) = &req.override_reason {
        m.push_str(&format!("{TRAILER_OVERRIDE}: {r}\n"));
    }
    m
}

/// The target already has the version. When it was set by slogate's own promotion commit
/// of this very change (the newest commit touching the target file) and no `promote` record
/// names that commit, a run that pushed it stopped before recording it: record it now
/// (found by tests/crash_injection.rs). Failures are reported on stderr.
#[allow(clippy::too_many_arguments)] // one call site; the promote run's context, passed as it is
async fn record_unrecorded(
    git: &dyn GitOpsRepo,
    state: Option<&dyn PromoteState>,
    exec: &Executor,
    stored: &Stored,
    subject: &str,
    target_file: &str,
    name: &str,
    to: &ImageRef,
    report: &PromoteReport,
) {
    let Some(st) = state else { return };
    let newest = match git.commits_touching(target_file, None).await {
        Ok(c) => c.into_iter().next(),
        Err(e) => {
            eprintln!("warning: cannot read the history of {target_file}: {e}");
            return;
        }
    };
    let to_text = to.to_string();
    let Some(commit) = newest.filter(|c| {
        let has = |k: &str, v: &str| c.trailers.iter().any(|t| t.key == k && t.value == v);
        has("Slogate-Promote", name) && has("Slogate-Promote-To", &to_text)
    }) else {
        return;
    };
    match st.promote_records(subject).await {
        Ok(records)
            if records
                .iter()
                .any(|r| r.action == "promote" && r.commits.contains(&commit.sha)) => {}
        Ok(_) => {
            let mut found = report.clone();
            found.promoted = true;
            found.commit = Some(commit.sha.clone());
            found.reason = format!(
                "set {name} -> {to} in {target_file}; {} was pushed by an earlier run that stopped before recording it",
                commit.sha
            );
            record(
                exec,
                stored,
                subject,
                "promote",
                &found,
                Some(format!("pushed {}", commit.sha)),
            )
            .await;
        }
        Err(e) => eprintln!("warning: cannot read the decision log: {e}"),
    }
}

/// Append a `Promote` decision record. A failure is reported on stderr; it never changes
/// the outcome (the commit, if any, is already pushed).
/// The promote state as the executor's decision log.
struct PromoteLog(Arc<dyn PromoteState>);

#[async_trait::async_trait]
impl DecisionLog for PromoteLog {
    async fn append(&self, record: &DecisionRecord) -> Result<(), BoxError> {
        Ok(self.0.record(record).await?)
    }
}

/// Append a `Promote` decision record through the executor (nowhere when there is no
/// promote state). A failure is reported on stderr; it never changes the outcome (the
/// commit, if any, is already pushed).
async fn record(
    exec: &Executor,
    stored: &Stored,
    subject: &str,
    action: &str,
    report: &PromoteReport,
    outcome: Option<String>,
) {
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
    hit(fp::PROMOTE_RECORD_BEFORE);
    if let Err(e) = exec.try_record(stored, &rec).await {
        eprintln!("warning: cannot record the decision: {e}");
    }
    hit(fp::PROMOTE_RECORD_AFTER);
}

#[cfg(test)]
mod tests {
    use super::*;
    // The git adapter's hermetic test helper (no user or system git config).
    use crate::adapters::git::tests::git;

    /// Bad input with a cause exits 2 and prints the text composed before, the cause kept.
    #[test]
    fn an_input_error_keeps_its_cause() {
        let e = input_failed(
            "--source apps/x/kustomization.yaml: cannot read",
            std::io::Error::other("permission denied"),
        );
        assert_eq!(
            (e.exit_code(), crate::ports::error_chain(&e)),
            (
                2,
                "--source apps/x/kustomization.yaml: cannot read: permission denied".to_string()
            )
        );
        let source = std::error::Error::source(&e).expect("a source");
        assert!(source.is::<std::io::Error>(), "{source:?}");
        let e = input_failure(std::io::Error::other("apps/x: no images"));
        assert_eq!(
            (e.exit_code(), crate::ports::error_chain(&e)),
            (2, "apps/x: no images".to_string())
        );
    }

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
