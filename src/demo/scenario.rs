//! The demo's scenario, run on slogate's real decision code, state store and git:
//!
//! 0. checkout v1 has been serving for 30 simulated minutes (the SLO's history);
//! 1. a developer releases v2 to the canary; it is healthy and slogate takes it through
//!    every step (10→25→50→75→100), commits the promotion and marks it known-good;
//! 2. v3 fails 8% of its requests: the judge fails it, the rollout aborts, the weights go
//!    back to stable and slogate reverts the release commit;
//! 3. a configuration change (the database pool cut from 20 to 2 connections) reaches
//!    production without a canary and fails 12% of all requests. Post-deploy verification
//!    compares the SLI after the deploy with before it and reverts the change within a
//!    simulated minute, while the budget is still well below 80%;
//! 4. a downstream dependency degrades (no deploy): 6% of requests fail. The burn-rate page
//!    finds no deploy in its window and only notifies; the budget burns past 80% (slogate
//!    notifies) and 95% (the guard rolls back since the known-good commit and freezes the
//!    app), and `slogate promote` of the next release (v4, from staging) is refused;
//! 5. the dependency recovers, the budget falls below 95% and the freeze ends.
//!
//! Time is simulated. Every tick serves 10 simulated seconds of traffic at the weights the
//! rollout set (read from the real file router's weights file), lets a simulated Argo CD
//! apply what the remote's production overlay says, then runs the rollout controller's
//! `reconcile_once` and the guard's scheduled evaluation at the simulated time. A rollout
//! interval (30 simulated seconds) takes about a second of wall time at `--speed 1`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};
use serde::Serialize;

use super::gitops::{self, LogEntry, CANARY_IMAGE, PROD, STAGING};
use super::sim::{Profile, SimMetrics, SimService};
use super::view::{bar, pct, Tone, View};
use crate::adapters::git::{GitCli, RepoConfig};
use crate::adapters::state::FileStore;
use crate::adapters::traffic_file::FileRouter;
use crate::guard::decide::{AppGuard, Trigger};
use crate::guard::verify::VerifyPolicy;
use crate::model::notify::{Notification, Severity};
use crate::model::traffic::Weights;
use crate::ports::gitops::GitOpsRepo;
use crate::ports::notify::{Notifier, NotifyError};
use crate::ports::state::{DecisionQuery, DecisionRecord, StateStore};
use crate::ports::BoxError;
use crate::promote::state::StoreState;
use crate::promote::usecase;
use crate::rollout::{PhaseName, Rollout};
use crate::runtime::evaluator::{self, Target};
use crate::runtime::guard::GuardRuntime;
use crate::runtime::rollout::{weights_file, RolloutController, RolloutDeps, StaticVersions};
use crate::slo::budget::BudgetReport;
use crate::slo::windows::AlertWindows;

pub const SLOS: &str = include_str!("assets/slos.yml");
pub const ROLLOUT: &str = include_str!("assets/rollout.yaml");
pub const WINDOWS: &str = include_str!("assets/windows.yml");

/// Simulated seconds per tick.
const TICK_SECS: f64 = 10.0;
/// Simulated seconds of history before the first release.
const HISTORY_SECS: f64 = 30.0 * 60.0;
/// A phase that takes longer than this many ticks is a failed demo, not a hang.
const MAX_TICKS: u32 = 200;
const APP: &str = "checkout";
const DEVELOPER: &str = "Dana Developer";

/// Why the demo stopped. The setup errors are the user's (exit 2); `SetupFailed` and
/// `SetupFailure` keep a step's error as the source and show it in their message.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// A setup problem composed here, with no underlying error (a flag, a bundled spec).
    #[error("demo setup: {0}")]
    Setup(String),
    /// A setup step failed: `context` says which (`cannot create <dir>`), the step's error
    /// is the source.
    #[error("demo setup: {context}: {source}")]
    SetupFailed {
        context: String,
        #[source]
        source: BoxError,
    },
    /// A setup step's own error as it is (it names what failed).
    #[error("demo setup: {0}")]
    SetupFailure(#[source] BoxError),
    #[error("demo git: {0}")]
    Git(#[from] gitops::GitError),
    /// A step of the scenario failed: its error as it is, the source (a message composed
    /// here when there is none).
    #[error("{0}")]
    Step(#[source] BoxError),
    /// A step failed on a file: `context` names it, the step's error is the source.
    #[error("{context}: {source}")]
    StepFailed {
        context: String,
        #[source]
        source: BoxError,
    },
    #[error("the demo did not reach its expected outcome: {0}")]
    Outcome(String),
}

fn step(e: impl Into<BoxError>) -> DemoError {
    DemoError::Step(e.into())
}

#[derive(Debug, Clone)]
pub struct Options {
    pub seed: u64,
    /// Time compression: 1.0 = one rollout interval (30 simulated seconds) per wall second.
    pub speed: f64,
    /// Keep the work directory (remote, clones, state, weights) here.
    pub keep: Option<PathBuf>,
    pub color: bool,
}

/// What happened, for `-o json` and the integration test.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub seed: u64,
    /// Where the repository, the state and the weights are (removed unless `--keep`).
    pub dir: PathBuf,
    pub kept: bool,
    pub releases: Vec<ReleaseOutcome>,
    pub guard: GuardOutcome,
    /// The freeze ended in the last act (the one-hour budget recovered).
    pub unfrozen: bool,
    pub promote: PromoteOutcome,
    pub final_weights: Weights,
    pub budget_consumed: Option<f64>,
    /// `(kind, subject, action)` of every decision-log record, oldest first.
    pub decisions: Vec<DecisionSummary>,
    /// The remote's history, newest first.
    pub commits: Vec<LogEntry>,
    pub notifications: Vec<String>,
    pub simulated_seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReleaseOutcome {
    pub version: String,
    pub phase: PhaseName,
    pub weights_seen: Vec<u32>,
    pub promotion_commit: Option<String>,
    pub revert_commit: Option<String>,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct GuardOutcome {
    pub frozen: bool,
    pub breach_commit: Option<String>,
    pub reverted: Vec<String>,
    pub budget_consumed_at_revert: Option<f64>,
    /// Simulated seconds from the DB pool commit to its revert.
    pub verification_seconds: f64,
    /// Budget consumed when the slow burn froze the app.
    pub budget_consumed_at_freeze: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PromoteOutcome {
    pub promoted: bool,
    pub reason: String,
    pub exit_code: u8,
}

#[derive(Debug, Clone, Serialize)]
pub struct DecisionSummary {
    pub kind: String,
    pub subject: String,
    pub action: String,
}

/// Collects notifications; the scenario prints them.
#[derive(Default)]
struct Inbox(Mutex<Vec<Notification>>);

#[async_trait]
impl Notifier for Inbox {
    async fn notify(&self, n: &Notification) -> Result<(), NotifyError> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(n.clone());
        Ok(())
    }
}

/// How each version behaves, and what a tiny database pool does to any of them.
fn profile(version: &str, db_pool_size: u32, dependency_errors: f64) -> Profile {
    let mut p = Profile::healthy();
    p.error_rate += dependency_errors;
    if version == "v3" {
        p.error_rate = 0.08;
        p.latency_median_ms = 55.0;
    }
    if db_pool_size < 5 {
        // Requests queue for a connection and time out.
        p.error_rate += 0.12;
        p.latency_median_ms *= 3.0;
    }
    p
}

struct Demo {
    opts: Options,
    view: View,
    dir: PathBuf,
    remote: PathBuf,
    sim: Arc<Mutex<SimService>>,
    weights_path: PathBuf,
    versions: Arc<StaticVersions>,
    store: Arc<FileStore>,
    controller: Arc<RolloutController>,
    guard: Arc<GuardRuntime>,
    targets: Vec<Target>,
    inbox: Arc<Inbox>,
    rollout_key: String,
    decisions_seen: usize,
    notifications: Vec<String>,
    last_budget: Option<f64>,
    last_weight: Option<u32>,
    last_phase: Option<PhaseName>,
    /// Extra error rate of every version while a downstream dependency is degraded.
    dependency_errors: f64,
}

impl Demo {
    fn now(&self) -> DateTime<Utc> {
        self.sim.lock().unwrap_or_else(|p| p.into_inner()).now()
    }

    /// Sleep for `ticks` of wall time at the chosen speed.
    async fn pace(&self) {
        let secs = TICK_SECS / 30.0 / self.opts.speed;
        if secs > 0.001 {
            tokio::time::sleep(Duration::from_secs_f64(secs)).await;
        }
    }

    /// The weights file could not be read: its path, the error as the source.
    fn weights_failed(&self, e: impl Into<BoxError>) -> DemoError {
        DemoError::StepFailed {
            context: self.weights_path.display().to_string(),
            source: e.into(),
        }
    }

    /// Serve one tick of traffic at the weights slogate set.
    async fn serve(&self) -> Result<(), DemoError> {
        let w = match tokio::fs::read_to_string(&self.weights_path).await {
            Ok(t) => serde_json::from_str::<Weights>(&t).map_err(|e| self.weights_failed(e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Weights::canary(0),
            Err(e) => return Err(self.weights_failed(e)),
        };
        let mut sim = self.sim.lock().unwrap_or_else(|p| p.into_inner());
        sim.weights = w;
        sim.advance(TICK_SECS);
        Ok(())
    }

    /// The simulated Argo CD: the cluster runs what the remote's production overlay says.
    async fn argo_sync(&self) -> Result<(), DemoError> {
        let remote = self.remote.clone();
        let text = tokio::task::spawn_blocking(move || {
            gitops::show(&remote, &format!("{PROD}/kustomization.yaml"))
        })
        .await
        .map_err(step)??;
        let d = gitops::deployed(&text).map_err(step)?;
        let mut sim = self.sim.lock().unwrap_or_else(|p| p.into_inner());
        for v in [&d.stable, &d.canary] {
            sim.set_profile(v, profile(v, d.db_pool_size, self.dependency_errors));
        }
        sim.stable_version = Some(d.stable.clone());
        sim.canary_version = Some(d.canary.clone());
        self.versions.set(&self.rollout_key, &d.stable, &d.canary);
        Ok(())
    }

    async fn budget(&self, now: DateTime<Utc>) -> Vec<BudgetReport> {
        let source = SimMetrics(self.sim.clone());
        let eval = evaluator::evaluate(&source, &self.targets, Some(now)).await;
        eval.reports().cloned().collect()
    }

    /// One tick: traffic, Argo CD, the rollout controller, the guard, and what they did.
    async fn tick(&mut self) -> Result<TickReport, DemoError> {
        self.serve().await?;
        self.argo_sync().await?;
        let now = self.now();
        let r = self.controller.reconcile_once(now).await.map_err(step)?;
        let reports = self.budget(now).await;
        let g = self
            .guard
            .run_app_with(APP, &reports, &self.targets, Trigger::Schedule, now)
            .await
            .map_err(step)?;
        let consumed = reports.first().and_then(|r| r.budget_consumed);
        self.show_rollout(now, &r);
        self.show_budget(now, consumed, g.frozen);
        self.show_decisions(now).await?;
        self.show_notifications(now);
        self.pace().await;
        Ok(TickReport {
            phase: r.phase(),
            weights: r.weights(),
            guard_reverted: g
                .reverts
                .iter()
                .flat_map(|o| match o {
                    crate::ports::gitops::RevertOutcome::Reverted { reverted, .. } => {
                        reverted.clone()
                    }
                    _ => Vec::new(),
                })
                .collect(),
            frozen: g.frozen,
            consumed,
            promotion_commit: r.status.promotion_commit.clone(),
            revert_commit: r.status.revert_commit.clone(),
            reason: r.status.reason.clone(),
        })
    }

    /// `, dispersion φ` of the error-count test over the rollout's counts (the same number
    /// as the check's `dispersion` in `slogate decisions` and `slogate analyze`).
    fn dispersion(&self, status: &crate::rollout::status::RolloutStatus) -> String {
        let cfg = self
            .controller
            .rollout()
            .spec
            .analysis
            .error_counts
            .as_ref();
        match (cfg, status.count_batches.split_last()) {
            (Some(cfg), Some((last, history))) => {
                let c = crate::rollout::checks::check_error_counts(cfg, history, Some(last), 1.0);
                c.dispersion
                    .map(|d| format!(", dispersion {d:.2}"))
                    .unwrap_or_default()
            }
            _ => String::new(),
        }
    }

    fn show_rollout(&mut self, now: DateTime<Utc>, r: &crate::runtime::rollout::ReconcileReport) {
        let weight = r.weights().map(|w| w.canary);
        let phase = r.phase();
        if let (Some(v), Some(a)) = (r.verdict, &r.status.last_analysis) {
            let tone = match v {
                crate::rollout::status::Verdict::Pass => Tone::Good,
                crate::rollout::status::Verdict::Fail => Tone::Bad,
                _ => Tone::Warn,
            };
            let p = r
                .status
                .p_value
                .map(|p| format!(" (sequential p = {p:.3}{})", self.dispersion(&r.status)))
                .unwrap_or_default();
            let numbers = r
                .analysis
                .as_ref()
                .map(analysis_numbers)
                .unwrap_or_default();
            let text = format!(
                "{}: {}{p}{numbers}",
                format!("{v:?}").to_lowercase(),
                a.reason
            );
            self.view.event(now, "analysis", tone, &text);
        }
        if weight == self.last_weight && Some(phase) == self.last_phase {
            return;
        }
        self.last_weight = weight;
        self.last_phase = Some(phase);
        let w = weight.unwrap_or(0);
        let steps = &self.controller.rollout().spec.steps;
        let step = steps
            .iter()
            .position(|s| s.weight == Some(w))
            .map(|i| i + 1);
        let step = match step {
            Some(i) if w > 0 => format!("step {i}/{}", steps.len()),
            _ => "          ".to_string(),
        };
        let versions = format!(
            "{}→{}",
            r.status.stable_version.as_deref().unwrap_or("?"),
            r.status.canary_version.as_deref().unwrap_or("?")
        );
        let tone = match phase {
            PhaseName::Failed | PhaseName::Aborting => Tone::Bad,
            PhaseName::Succeeded | PhaseName::Promoting => Tone::Good,
            _ => Tone::Plain,
        };
        let text = format!(
            "{} {versions}  {} canary {w:>3}%  {step}  {}",
            self.rollout_key,
            bar(f64::from(w) / 100.0, 20),
            self.view.paint(tone, &format!("{phase:?}"))
        );
        self.view.event(now, "rollout", Tone::Bold, &text);
    }

    fn show_budget(&mut self, now: DateTime<Utc>, consumed: Option<f64>, frozen: bool) {
        let Some(c) = consumed else { return };
        let moved = self.last_budget.is_none_or(|b| (c - b).abs() >= 0.05);
        if !moved {
            return;
        }
        self.last_budget = Some(c);
        let tone = if c >= 0.95 {
            Tone::Bad
        } else if c >= 0.8 {
            Tone::Warn
        } else {
            Tone::Good
        };
        let text = format!(
            "{} {} {} of the error budget consumed{}",
            self.targets[0].slo.id,
            bar(c, 20),
            self.view.paint(tone, &pct(c)),
            if frozen { "  FROZEN" } else { "" }
        );
        self.view.event(now, "budget", Tone::Bold, &text);
    }

    async fn show_decisions(&mut self, now: DateTime<Utc>) -> Result<(), DemoError> {
        let all = self
            .store
            .decisions(&DecisionQuery::default())
            .await
            .map_err(step)?;
        for d in all.iter().skip(self.decisions_seen) {
            let tone = match d.action.as_str() {
                "abort" | "rollback" | "freeze-revert" | "refuse" | "revert" => Tone::Bad,
                "notify" => Tone::Warn,
                "promote" | "succeeded" | "known-good" => Tone::Good,
                _ => Tone::Plain,
            };
            let commits = if d.commits.is_empty() {
                String::new()
            } else {
                let short: Vec<&str> = d.commits.iter().map(|c| c.get(..8).unwrap_or(c)).collect();
                format!(" [{}]", short.join(", "))
            };
            let text = format!(
                "{} {}: {}{commits}",
                self.view.paint(tone, &d.action),
                d.subject,
                d.reason
            );
            self.view.event(now, "decision", Tone::Bold, &text);
        }
        self.decisions_seen = all.len();
        Ok(())
    }

    fn show_notifications(&mut self, now: DateTime<Utc>) {
        let new: Vec<Notification> =
            std::mem::take(&mut *self.inbox.0.lock().unwrap_or_else(|p| p.into_inner()));
        for n in new {
            let tone = match n.severity {
                Severity::Critical => Tone::Bad,
                Severity::Warning => Tone::Warn,
                _ => Tone::Plain,
            };
            self.view.event(now, "notify", tone, &n.title);
            self.notifications.push(n.title);
        }
    }

    /// A developer's commit, pushed with plain git.
    async fn commit(
        &mut self,
        files: Vec<(String, String)>,
        message: &str,
    ) -> Result<String, DemoError> {
        // Dated at the simulated time: the guard verifies deploys from their commit time.
        let now = self.now();
        let (remote, work, msg) = (
            self.remote.clone(),
            self.dir.join("developer-clone"),
            message.to_string(),
        );
        let sha = tokio::task::spawn_blocking(move || {
            gitops::commit_at(
                &remote,
                &work,
                &files,
                &msg,
                (DEVELOPER, "dana@example.com"),
                now,
            )
        })
        .await
        .map_err(step)??;
        let text = format!("{} {DEVELOPER}: {message}", short(Some(&sha)));
        self.view.event(now, "git", Tone::Plain, &text);
        Ok(sha)
    }

    /// Tick until `done` says so (or fail after MAX_TICKS).
    async fn until(
        &mut self,
        what: &str,
        mut done: impl FnMut(&TickReport) -> bool,
    ) -> Result<Vec<TickReport>, DemoError> {
        let mut seen = Vec::new();
        for _ in 0..MAX_TICKS {
            let t = self.tick().await?;
            let stop = done(&t);
            seen.push(t);
            if stop {
                return Ok(seen);
            }
        }
        Err(DemoError::Outcome(format!(
            "{what} did not happen within {MAX_TICKS} ticks"
        )))
    }
}

struct TickReport {
    phase: PhaseName,
    weights: Option<Weights>,
    /// Commits the guard reverted in this tick.
    guard_reverted: Vec<String>,
    frozen: bool,
    consumed: Option<f64>,
    promotion_commit: Option<String>,
    revert_commit: Option<String>,
    reason: String,
}

fn release(version: &str, ticks: &[TickReport]) -> ReleaseOutcome {
    let mut weights_seen: Vec<u32> = Vec::new();
    for t in ticks {
        let w = t.weights.map(|w| w.canary).unwrap_or(0);
        if weights_seen.last() != Some(&w) {
            weights_seen.push(w);
        }
    }
    let last = ticks.last();
    ReleaseOutcome {
        version: version.into(),
        phase: last.map(|t| t.phase).unwrap_or(PhaseName::Pending),
        weights_seen,
        promotion_commit: last.and_then(|t| t.promotion_commit.clone()),
        revert_commit: last.and_then(|t| t.revert_commit.clone()),
        reason: last.map(|t| t.reason.clone()).unwrap_or_default(),
    }
}

fn work_dir(keep: Option<&Path>) -> Result<PathBuf, DemoError> {
    let dir = match keep {
        Some(d) => {
            if d.exists()
                && std::fs::read_dir(d)
                    .map(|mut r| r.next().is_some())
                    .unwrap_or(true)
            {
                return Err(DemoError::Setup(format!(
                    "--keep {}: expected a new or empty directory (the demo writes a repository and state there)",
                    d.display()
                )));
            }
            d.to_path_buf()
        }
        None => {
            use rand::RngExt;
            let n: u64 = rand::rng().random_range(0..u64::MAX);
            std::env::temp_dir().join(format!("slogate-demo-{}-{n:016x}", std::process::id()))
        }
    };
    std::fs::create_dir_all(&dir).map_err(|e| DemoError::SetupFailed {
        context: format!("cannot create {}", dir.display()),
        source: Box::new(e),
    })?;
    Ok(dir)
}

/// Run the scenario, writing progress to `out`.
pub async fn run(opts: Options, out: Box<dyn std::io::Write + Send>) -> Result<Outcome, DemoError> {
    if !(opts.speed.is_finite() && opts.speed > 0.0) {
        return Err(DemoError::Setup(format!(
            "--speed: expected a positive number, found {}",
            opts.speed
        )));
    }
    let dir = work_dir(opts.keep.as_deref())?;
    let result = run_in(opts.clone(), out, &dir).await;
    if opts.keep.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

async fn run_in(
    opts: Options,
    out: Box<dyn std::io::Write + Send>,
    dir: &Path,
) -> Result<Outcome, DemoError> {
    // Specs: the same loaders as `slogate validate`.
    let slos = crate::slo::spec::parse_str(Path::new("slogate/slos.yml"), SLOS);
    let slo = match (slos.is_ok(), slos.slos.first()) {
        (true, Some(s)) => s.clone(),
        _ => {
            return Err(DemoError::Setup(format!(
                "slogate/slos.yml: {:?}",
                slos.errors
            )))
        }
    };
    let windows = AlertWindows::from_yaml("slogate/windows.yml", WINDOWS)
        .map_err(|e| DemoError::SetupFailure(Box::new(e)))?;
    let rollout: Rollout = crate::rollout::load::from_yaml_str(ROLLOUT)
        .map_err(|e| DemoError::Setup(format!("slogate/rollout.yaml: {e}")))?;
    let rollout_key = rollout.key();

    let remote = {
        let dir = dir.to_path_buf();
        tokio::task::spawn_blocking(move || gitops::seed(&dir, SLOS, ROLLOUT, WINDOWS))
            .await
            .map_err(|e| DemoError::SetupFailure(Box::new(e)))??
    };
    let url = remote.display().to_string();
    let git = |workdir: &str, name: &str, email: &str| -> Result<GitCli, DemoError> {
        let mut cfg = RepoConfig::new(url.clone(), "main", dir.join(workdir));
        cfg.author_name = name.into();
        cfg.author_email = email.into();
        cfg.timeout = Duration::from_secs(60);
        GitCli::new(cfg).map_err(|e| DemoError::SetupFailure(Box::new(e)))
    };
    let slogate_repo: Arc<dyn GitOpsRepo> =
        Arc::new(git("slogate-clone", "slogate", "slogate@localhost")?);

    // The clock starts 30 minutes before the first release (the SLO's history).
    let start = Utc::now().trunc_subsecs(0);
    let mut sim = SimService::new("shop", APP, start, opts.seed);
    sim.stable_version = Some("v1".into());
    sim.canary_version = Some("v1".into());
    let sim = Arc::new(Mutex::new(sim));
    let metrics: Arc<dyn crate::ports::metrics::MetricsSource> = Arc::new(SimMetrics(sim.clone()));

    let store = Arc::new(
        FileStore::open(dir.join("state")).map_err(|e| DemoError::SetupFailure(Box::new(e)))?,
    );
    let inbox = Arc::new(Inbox::default());
    let app = AppGuard {
        app: APP.into(),
        path: PROD.into(),
        slos: vec![slo.id.clone()],
        thresholds: slo.guard.clone().unwrap_or_default(),
        soak: Duration::from_secs(120),
        // The demo's hour is its SLO period (time is compressed 60-fold against a 30-day
        // SLO's page windows): verify each deploy for 3 minutes in 3-second slices, with the
        // factors of its window catalog (page 1.2, ticket 1).
        verify: VerifyPolicy {
            window: Duration::from_secs(180),
            step: Duration::from_secs(3),
            ticket_after: Duration::from_secs(60),
            ..VerifyPolicy::default()
        },
    };
    let guard = Arc::new(
        GuardRuntime::new(
            vec![app],
            store.clone(),
            slogate_repo.clone(),
            Default::default(),
            vec![inbox.clone()],
        )
        .with_verifier(metrics.clone()),
    );
    let weights_path = weights_file(
        &dir.join("weights"),
        rollout.namespace(),
        &rollout.metadata.name,
    );
    if let Some(parent) = weights_path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| DemoError::SetupFailed {
            context: parent.display().to_string(),
            source: Box::new(e),
        })?;
    }
    let versions = Arc::new(StaticVersions::new());
    let mut deps = RolloutDeps::new(
        metrics,
        Arc::new(FileRouter::new(&weights_path)),
        store.clone(),
        versions.clone(),
    );
    deps.repo = Some(slogate_repo.clone());
    deps.guard = Some(guard.clone());
    deps.notifiers = vec![inbox.clone()];
    deps.settings.git_timeout = Duration::from_secs(60);
    let controller = Arc::new(RolloutController::new(rollout, deps));

    let color = opts.color;
    let mut d = Demo {
        opts: opts.clone(),
        view: View::new(out, color, start),
        dir: dir.to_path_buf(),
        remote: remote.clone(),
        sim,
        weights_path,
        versions,
        store,
        controller,
        guard,
        targets: vec![Target {
            slo: std::sync::Arc::new(slo),
            windows,
        }],
        inbox,
        rollout_key,
        decisions_seen: 0,
        notifications: Vec::new(),
        last_budget: None,
        last_weight: None,
        last_phase: None,
        dependency_errors: 0.0,
    };
    d.view.heading(&format!(
        "slogate demo — seed {}, speed {}× (a 30s rollout interval takes {:.1}s)",
        opts.seed,
        opts.speed,
        1.0 / opts.speed
    ));
    d.view.line(&format!(
        "GitOps repo {} (bare): apps/checkout/{{base, overlays/staging, overlays/prod}}",
        remote.display()
    ));
    d.view.line(&format!(
        "SLO {} (99% over 1h), Rollout {} (steps 10→25→50→75→100, 30s intervals)",
        d.targets[0].slo.id, d.rollout_key
    ));

    // 0. History: v1 serves for 30 simulated minutes.
    {
        let mut sim = d.sim.lock().unwrap_or_else(|p| p.into_inner());
        sim.set_profile("v1", profile("v1", 20, 0.0));
        let mut t = 0.0;
        while t < HISTORY_SECS {
            sim.weights = Weights::canary(0);
            sim.advance(TICK_SECS);
            t += TICK_SECS;
        }
    }
    d.argo_sync().await?;
    d.view
        .line("v1 has served 200 requests/s for 30 simulated minutes.");

    // 1. v2, healthy.
    d.view
        .heading("1. v2 is released to the canary; it is healthy");
    d.commit(
        vec![(
            format!("{PROD}/kustomization.yaml"),
            gitops::prod_overlay("v1", "v2", 20),
        )],
        "checkout: release v2 to the canary",
    )
    .await?;
    let v2 = d
        .until("the promotion of v2", |t| {
            matches!(t.phase, PhaseName::Succeeded | PhaseName::Failed)
        })
        .await?;
    let v2 = release("v2", &v2);

    // 2. v3, 8% errors.
    d.view
        .heading("2. v3 is released to the canary; it fails 8% of its requests");
    d.commit(
        vec![(
            format!("{PROD}/kustomization.yaml"),
            gitops::prod_overlay("v2", "v3", 20),
        )],
        "checkout: release v3 to the canary",
    )
    .await?;
    let v3 = d
        .until("the abort of v3", |t| {
            matches!(t.phase, PhaseName::Failed | PhaseName::Succeeded) && t.revert_commit.is_some()
        })
        .await?;
    let v3 = release("v3", &v3);
    // Let Argo CD apply the revert before the next change.
    d.tick().await?;

    // 3. A config change without a canary burns the budget.
    d.view
        .heading("3. a config change (DB pool 20 → 2) reaches production without a canary");
    d.commit(
        vec![(
            format!("{STAGING}/kustomization.yaml"),
            gitops::staging_overlay("v4"),
        )],
        "checkout: release v4 to staging",
    )
    .await?;
    let breach = d
        .commit(
            vec![(
                format!("{PROD}/kustomization.yaml"),
                gitops::prod_overlay("v2", "v2", 2),
            )],
            "checkout: cut the DB pool to 2 connections per pod",
        )
        .await?;
    let deployed_at = d.now();
    let caught = d
        .until("the post-deploy verification's revert", |t| {
            !t.guard_reverted.is_empty()
        })
        .await?;
    let at_revert = caught.last().and_then(|t| t.consumed);
    let reverted: Vec<String> = caught
        .iter()
        .flat_map(|t| t.guard_reverted.clone())
        .collect();
    let verification_seconds = (d.now() - deployed_at).num_seconds() as f64;
    // Argo CD applies the revert.
    for _ in 0..3 {
        d.tick().await?;
    }

    // 4. A slow burn without a deploy: the page notifies, the budget thresholds freeze.
    d.view.heading(
        "4. a downstream dependency degrades (no deploy): 6% of requests fail, a slow burn",
    );
    d.dependency_errors = 0.06;
    let burn = d.until("the freeze", |t| t.frozen).await?;
    let at_freeze = burn.last().and_then(|t| t.consumed);

    // 5. The next release is refused while the app is frozen.
    d.view
        .heading("5. CI tries to promote v4 from staging to production");
    let promote = d.promote().await?;
    let frozen = d.guard.state(APP).await.map_err(step)?.0.breach.is_some();

    // The dependency recovers.
    d.view
        .heading("6. the dependency recovers; errors stop and the budget falls below 95%");
    d.view.line(
        "(the demo's SLO period is one hour, so its budget recovers in minutes; over 30 days a freeze lasts)",
    );
    d.dependency_errors = 0.0;
    let mut unfrozen = false;
    for i in 0..30 {
        if i % 3 == 0 {
            // One budget line per rollout interval while it recovers.
            d.last_budget = None;
        }
        let t = d.tick().await?;
        if !t.frozen {
            unfrozen = true;
            break;
        }
    }

    let guard = GuardOutcome {
        frozen,
        breach_commit: Some(breach),
        reverted,
        budget_consumed_at_revert: at_revert,
        verification_seconds,
        budget_consumed_at_freeze: at_freeze,
    };
    summary(d, v2, v3, guard, promote, unfrozen).await
}

impl Demo {
    /// `slogate promote` as CI would run it, against the demo's repository and state.
    async fn promote(&mut self) -> Result<PromoteOutcome, DemoError> {
        let remote = self.remote.display().to_string();
        let workdir = self.dir.join("promote-clone").display().to_string();
        let state = self.dir.join("state").display().to_string();
        let argv = [
            "slogate",
            "promote",
            "--repo",
            &remote,
            "--workdir",
            &workdir,
            "--source",
            STAGING,
            "--target",
            PROD,
            "--image",
            &format!("{CANARY_IMAGE}=v4"),
            "--no-slo-check",
            "--app",
            APP,
            "--state-dir",
            &state,
        ];
        let now = self.now();
        self.view.event(
            now,
            "ci",
            Tone::Plain,
            &format!("$ {}", shell_words(&argv[..])),
        );
        // What the command line above asks for, run by the promote use case in-process.
        let store = FileStore::open(&state).map_err(step)?;
        let req = usecase::Request {
            git: usecase::GitRequest::new(remote.clone(), "main"),
            workdir: Some(PathBuf::from(&workdir)),
            source: STAGING.into(),
            target: PROD.into(),
            image: Some(format!("{CANARY_IMAGE}=v4")),
            new_name: None,
            slo: None,
            min_budget_remaining: 0.0,
            app: Some(APP.into()),
            override_reason: None,
            require_approval: false,
            state: Some(Arc::new(StoreState::new(Arc::new(store), "cli"))),
            dry_run: false,
        };
        let (code, report) = usecase::run_to_exit_code(&req).await;
        for l in report.text().lines() {
            self.view.line(&format!("           {l}"));
        }
        self.show_decisions(now).await?;
        Ok(PromoteOutcome {
            promoted: report.promoted,
            reason: report.reason.clone(),
            exit_code: code,
        })
    }
}

/// The numbers an interval was judged on, for the analysis line.
fn analysis_numbers(o: &crate::rollout::checks::IntervalObservation) -> String {
    let mut parts = Vec::new();
    if let Some(e) = &o.error_counts {
        parts.push(format!(
            "canary {:.0}/{:.0} errors, stable {:.0}/{:.0}",
            e.canary_errors, e.canary_requests, e.stable_errors, e.stable_requests
        ));
    }
    for c in &o.checks {
        let Some(v) = c.value else { continue };
        let bound = match (c.min, c.max) {
            (Some(m), _) => format!(" (min {})", number(&c.metric, m)),
            (_, Some(m)) => format!(" (max {})", number(&c.metric, m)),
            _ => String::new(),
        };
        parts.push(format!("{} {}{bound}", c.metric, number(&c.metric, v)));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("\n           {}", parts.join("; "))
    }
}

fn number(metric: &str, v: f64) -> String {
    if metric.contains("success") {
        format!("{:.2}%", v * 100.0)
    } else if metric.contains("duration") {
        format!("{v:.0} ms")
    } else {
        format!("{v:.4}")
    }
}

fn shell_words(argv: &[&str]) -> String {
    argv.iter()
        .map(|a| {
            if a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./=:".contains(c))
            {
                a.to_string()
            } else {
                format!("'{a}'")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[allow(clippy::too_many_arguments)]
async fn summary(
    mut d: Demo,
    v2: ReleaseOutcome,
    v3: ReleaseOutcome,
    guard: GuardOutcome,
    promote: PromoteOutcome,
    unfrozen: bool,
) -> Result<Outcome, DemoError> {
    let breach = guard.breach_commit.clone().unwrap_or_default();
    let remote = d.remote.clone();
    let commits = tokio::task::spawn_blocking(move || gitops::log(&remote))
        .await
        .map_err(step)??;
    let records: Vec<DecisionRecord> = d
        .store
        .decisions(&DecisionQuery::default())
        .await
        .map_err(step)?;
    let final_weights = match std::fs::read_to_string(&d.weights_path) {
        Ok(t) => serde_json::from_str(&t).map_err(step)?,
        Err(_) => Weights::canary(0),
    };
    let now = d.now();
    let budget = d.budget(now).await.first().and_then(|r| r.budget_consumed);
    let simulated_seconds = {
        let sim = d.sim.lock().unwrap_or_else(|p| p.into_inner());
        sim.secs_at(now)
    };

    d.view.heading("Summary");
    let ok = |b: bool| if b { "✔" } else { "✘" };
    let lines = [
        format!(
            "{} v2 promoted: canary weights {:?}, promotion commit {}",
            ok(v2.phase == PhaseName::Succeeded),
            v2.weights_seen,
            short(v2.promotion_commit.as_deref())
        ),
        format!(
            "{} v3 aborted ({}), weights back to 0, release reverted by {}",
            ok(v3.phase == PhaseName::Failed && v3.revert_commit.is_some()),
            v3.reason.split("; revert:").next().unwrap_or_default(),
            short(v3.revert_commit.as_deref())
        ),
        format!(
            "{} the DB pool change {} was reverted by post-deploy verification {}s after it landed, at {} of the budget",
            ok(guard.reverted.contains(&breach)
                && guard.budget_consumed_at_revert.is_some_and(|c| c < 0.8)),
            short(Some(&breach)),
            guard.verification_seconds,
            guard
                .budget_consumed_at_revert
                .map(pct)
                .unwrap_or_else(|| "?".into()),
        ),
        format!(
            "{} the slow burn (no deploy) froze {APP} at {} of the budget",
            ok(guard.frozen),
            guard
                .budget_consumed_at_freeze
                .map(pct)
                .unwrap_or_else(|| "?".into()),
        ),
        format!(
            "{} slogate promote of v4 refused while frozen (exit {})",
            ok(!promote.promoted && promote.exit_code == 1),
            promote.exit_code
        ),
        format!(
            "  {APP} {} after the budget recovered below the rollback threshold",
            if unfrozen { "was unfrozen" } else { "is still frozen" }
        ),
        format!(
            "  final weights: stable {} / canary {}; {} decisions in {}",
            final_weights.stable,
            final_weights.canary,
            records.len(),
            d.dir.join("state").display()
        ),
    ];
    for l in &lines {
        d.view.line(l);
    }
    d.view
        .heading("git log of the GitOps repository (newest first)");
    for c in &commits {
        let trailers: Vec<String> = c
            .trailers
            .iter()
            .filter(|(k, _)| {
                [
                    "Slogate-Reverts",
                    "Slogate-Budget-Consumed",
                    "Slogate-Version",
                ]
                .contains(&k.as_str())
            })
            .map(|(k, v)| {
                format!(
                    "{k}: {}",
                    if v.len() == 40 {
                        v.get(..8).unwrap_or(v)
                    } else {
                        v
                    }
                )
            })
            .collect();
        let t = if trailers.is_empty() {
            String::new()
        } else {
            d.view
                .paint(Tone::Dim, &format!("  ({})", trailers.join("; ")))
        };
        let sha = d.view.paint(Tone::Warn, &short(Some(&c.sha)));
        d.view
            .line(&format!("{sha} {:<15} {}{t}", c.author, c.subject));
    }
    if d.opts.keep.is_some() {
        d.view.line("");
        d.view.line(&format!(
            "Kept in {}: remote.git, state/ (slogate decisions --state-dir {}/state), weights/",
            d.dir.display(),
            d.dir.display()
        ));
    }
    let outcome = Outcome {
        seed: d.opts.seed,
        dir: d.dir.clone(),
        kept: d.opts.keep.is_some(),
        releases: vec![v2, v3],
        guard,
        unfrozen,
        promote,
        final_weights,
        budget_consumed: budget,
        decisions: records
            .iter()
            .map(|r| DecisionSummary {
                kind: serde_json::to_value(r.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                subject: r.subject.clone(),
                action: r.action.clone(),
            })
            .collect(),
        commits,
        notifications: d.notifications.clone(),
        simulated_seconds,
    };
    check(&outcome)?;
    Ok(outcome)
}

fn short(sha: Option<&str>) -> String {
    sha.map(|s| s.get(..8).unwrap_or(s).to_string())
        .unwrap_or_else(|| "none".into())
}

/// The demo exits non-zero when slogate did not do what the scenario shows.
fn check(o: &Outcome) -> Result<(), DemoError> {
    let mut wrong = Vec::new();
    if o.releases[0].phase != PhaseName::Succeeded {
        wrong.push(format!(
            "v2 ended {:?}, expected Succeeded",
            o.releases[0].phase
        ));
    }
    if o.releases[1].phase != PhaseName::Failed || o.releases[1].revert_commit.is_none() {
        wrong.push(format!(
            "v3 ended {:?} (revert {:?}), expected Failed with a revert",
            o.releases[1].phase, o.releases[1].revert_commit
        ));
    }
    if let Some(b) = &o.guard.breach_commit {
        if !o.guard.reverted.contains(b) {
            wrong.push(format!(
                "the guard reverted {:?}, expected {b}",
                o.guard.reverted
            ));
        }
    }
    if !o.guard.budget_consumed_at_revert.is_some_and(|c| c < 0.8) {
        wrong.push(format!(
            "the DB pool change was reverted at {:?} of the budget, expected well below 80%",
            o.guard.budget_consumed_at_revert
        ));
    }
    if !o.guard.frozen {
        wrong.push("the slow burn did not freeze the app".to_string());
    }
    if o.promote.promoted || o.promote.exit_code != 1 {
        wrong.push(format!(
            "promote of v4: promoted {} exit {}, expected a refusal (exit 1)",
            o.promote.promoted, o.promote.exit_code
        ));
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(DemoError::Outcome(wrong.join("; ")))
    }
}
