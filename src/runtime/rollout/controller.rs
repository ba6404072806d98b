//! [`RolloutController`]: one Rollout at run time. It drives the pure
//! [`crate::rollout::decide`] through the ports, following the runtime contract of
//! [`crate::rollout::machine`]:
//!
//! 1. **Leader only.** Nothing is read from the route, Prometheus or Git and nothing is
//!    written unless this replica leads ([`Leadership::is_leader`], asked again before every
//!    write). A replica that is not the leader reports so and waits.
//! 2. **Observe.** The status (`rollout/<ns>/<name>`, with its version for
//!    compare-and-swap), pending operator commands (`rollout-commands/<ns>/<name>`), the
//!    route's weights, the workloads' versions ([`VersionSource`]), the interval's analysis
//!    when one is due ([`crate::rollout::analysis_window`]: queries from
//!    [`crate::rollout::checks::plan`] run through the `MetricsSource`, judged by
//!    [`crate::rollout::checks::evaluate`]) and the error-budget guard's freeze of the
//!    GitOps app (`guard/<app>`).
//! 3. **Decide, store, apply.** `decide`; store `next` (compare-and-swap) *before* applying
//!    the effects; apply them idempotently (their keys are idempotency keys); call `decide`
//!    again at once with their completions, until a decision has no effects. A conflict on
//!    the status means another writer got there first: nothing more is applied and the next
//!    reconcile starts over from what is stored.
//! 4. **Requeue** after the decision's `requeue_after` (the time left in the interval, a
//!    deadline, a retry), or at once when an operator command arrives ([`RolloutController::wake`]).
//!
//! Effects:
//! - `SetWeights` through the `TrafficRouter`; a [`TrafficError::ManualChange`] becomes the
//!   `ManualChange` completion, so `decide` pauses instead of overwriting a human's change;
//! - `RevertCanary` through [`GitOpsRepo::revert`] with the effect key as `breach_id` (its
//!   `Slogate-Breach` trailer): the most recent commit under `spec.gitops.path` is reverted,
//!   at most once per key, also across restarts;
//! - `CommitPromotion` through [`GitOpsRepo::commit_edit`] on the app's manifest (see
//!   [`super::promotion`]);
//! - `Notify` on a background task (a slow or failing notifier never delays a rollout);
//! - `RecordDecision` into the decision log: kind `rollout`, or `operator` with the actor
//!   for what an operator's command did or was refused.
//!
//! When a rollout succeeds and its GitOps app is guarded, the promotion commit is marked
//! known-good through [`GuardRuntime::mark_known_good`].
//!
//! Time is a parameter: [`RolloutController::reconcile_once`] never reads the clock (the
//! daemon's [`RolloutController::run`] passes `Utc::now()`, the demo passes simulated time).
//! Every outbound call (route, Prometheus, Git, version source) runs under a timeout.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use tokio::sync::watch;
use tracing::Instrument;

use super::analysis::run_interval;
use super::commands::{self, read_queue, read_status, status_key, CommandOutcome, CommandResult};
use super::promotion::{manifest_file, promote_edit};
use crate::adapters::leader::{AlwaysLeader, Leadership};
use crate::model::commit::RevertRequest;
use crate::model::notify::{Incident, Notification, Severity};
use crate::model::traffic::{Routing, Weights};
use crate::model::trailers::Trailer;
use crate::ports::gitops::{CommitOutcome, EditError, EditFn, GitOpsRepo, RevertOutcome};
use crate::ports::metrics::MetricsSource;
use crate::ports::notify::Notifier;
use crate::ports::state::{DecisionKind, DecisionRecord, StateError, StateStore};
use crate::ports::traffic::{TrafficError, TrafficRouter};
use crate::ports::versions::{VersionSource, WorkloadVersions};
use crate::rollout::checks::{self, IntervalObservation};
use crate::rollout::status::Verdict;
use crate::rollout::{
    analysis_window, decide, CommandAction, Effect, EffectCompletion, EffectOutcome, Observations,
    OperatorCommand, Phase, PhaseName, Rejection, Rollout, RolloutStatus,
};
use crate::runtime::effects::{store_state, EffectError, Executor, StoreLog, Stored};
use crate::runtime::failpoint::{self as fp, hit};
use crate::runtime::guard::GuardRuntime;
use crate::runtime::metrics::{KindLabels, RolloutMetrics};
use crate::runtime::outbox::Outbox;

/// Errors of one reconcile. Nothing after the failing step was applied; the next reconcile
/// starts over from the stored status.
#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    #[error("rollout {rollout}: state store: {source}")]
    State {
        rollout: String,
        #[source]
        source: StateError,
    },
    #[error("rollout {rollout}: the status was changed by another writer since it was read; nothing more was applied, the next reconcile starts over")]
    Conflict { rollout: String },
    #[error("rollout {rollout}: the query templates cannot be rendered: {source}")]
    Template {
        rollout: String,
        #[source]
        source: checks::TemplateError,
    },
}

impl RolloutError {
    /// A short, stable name of the kind of failure: the `kind` label of
    /// `slogate_rollout_reconcile_failures_total`.
    pub fn metric_label(&self) -> &'static str {
        match self {
            RolloutError::State { .. } => "state",
            RolloutError::Conflict { .. } => "conflict",
            RolloutError::Template { .. } => "template",
        }
    }
}

/// Timeouts and pacing of a controller.
#[derive(Debug, Clone, PartialEq)]
pub struct ControllerSettings {
    /// Bound on each Prometheus query of an interval.
    pub query_timeout: Duration,
    /// Bound on each read or write of the route's weights.
    pub router_timeout: Duration,
    /// Bound on one revert or promotion commit (the git adapter bounds each git command too).
    pub git_timeout: Duration,
    /// Bound on one read of the workloads' versions.
    pub versions_timeout: Duration,
    /// `decide` rounds in one reconcile (each after applying effects), a safety bound.
    pub max_rounds: u32,
    /// The run loop never sleeps less than this between reconciles.
    pub min_requeue: Duration,
    /// …nor more than this.
    pub max_requeue: Duration,
    /// Sleep after a failed reconcile.
    pub error_requeue: Duration,
    /// Sleep while not the leader (leadership changes wake the loop earlier).
    pub follower_requeue: Duration,
}

impl Default for ControllerSettings {
    fn default() -> Self {
        ControllerSettings {
            query_timeout: Duration::from_secs(30),
            router_timeout: Duration::from_secs(30),
            git_timeout: Duration::from_secs(600),
            versions_timeout: Duration::from_secs(10),
            max_rounds: 16,
            min_requeue: Duration::from_millis(200),
            max_requeue: Duration::from_secs(300),
            error_requeue: Duration::from_secs(5),
            follower_requeue: Duration::from_secs(5),
        }
    }
}

/// A controller's collaborators.
pub struct RolloutDeps {
    /// Prometheus.
    pub metrics: Arc<dyn MetricsSource>,
    /// The route's weights.
    pub router: Arc<dyn TrafficRouter>,
    /// The GitOps repository (reverts and promotions). Without one, an abort reverts nothing
    /// (and says so) and a promotion waits for stable to run the canary's version.
    pub repo: Option<Arc<dyn GitOpsRepo>>,
    /// Status, commands and the decision log.
    pub store: Arc<dyn StateStore>,
    pub notifiers: Vec<Arc<dyn Notifier>>,
    /// Versions of the stable and canary workloads.
    pub versions: Arc<dyn VersionSource>,
    /// The error-budget guard: its freeze holds rollouts, and a successful rollout marks its
    /// promotion commit known-good when the app is guarded.
    pub guard: Option<Arc<GuardRuntime>>,
    /// Only the leader acts.
    pub leadership: Leadership,
    /// `slogate_rollout_*`, `slogate_analysis_*`, `slogate_leader`, `slogate_decisions_total`.
    pub metrics_registry: RolloutMetrics,
    pub settings: ControllerSettings,
}

impl RolloutDeps {
    /// The required ports; no repository, notifiers or guard, always the leader, unregistered
    /// metrics, default settings. Set the public fields for the rest.
    pub fn new(
        metrics: Arc<dyn MetricsSource>,
        router: Arc<dyn TrafficRouter>,
        store: Arc<dyn StateStore>,
        versions: Arc<dyn VersionSource>,
    ) -> Self {
        RolloutDeps {
            metrics,
            router,
            repo: None,
            store,
            notifiers: Vec::new(),
            versions,
            guard: None,
            leadership: AlwaysLeader::new().leadership(),
            metrics_registry: RolloutMetrics::default(),
            settings: ControllerSettings::default(),
        }
    }
}

/// One effect applied in a reconcile.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AppliedEffect {
    /// The effect's idempotency key.
    pub key: String,
    /// `setWeights`, `revertCanary`, `commitPromotion`, `notify`, `recordDecision`.
    pub effect: String,
    /// What happened, one line.
    pub outcome: String,
}

/// What one reconcile saw and did.
#[derive(Debug, Clone, Serialize)]
pub struct ReconcileReport {
    /// `namespace/name`.
    pub rollout: String,
    /// False: this replica is not the leader and did nothing.
    pub leader: bool,
    /// Set when leadership was lost mid-way and the reconcile stopped before a write.
    pub stopped: Option<String>,
    /// The status after the reconcile (as stored).
    pub status: RolloutStatus,
    /// When to reconcile again if nothing happens before.
    pub requeue_after: Duration,
    /// The analysis run in this reconcile, if one was due.
    pub analysis: Option<IntervalObservation>,
    /// The interval's verdict when the analysis was judged (not ignored as stale).
    pub verdict: Option<Verdict>,
    pub effects: Vec<AppliedEffect>,
    /// Decision-log actions written, in order.
    pub decisions: Vec<String>,
    /// Titles of the notifications sent (on background tasks).
    pub notifications: Vec<String>,
    /// Outcomes of the operator commands handled.
    pub commands: Vec<CommandResult>,
    /// Commands `decide` refused.
    pub rejected: Vec<Rejection>,
    /// Observations that were ignored or could not be made.
    pub notes: Vec<String>,
    /// `decide` rounds run.
    pub rounds: u32,
}

impl ReconcileReport {
    pub fn phase(&self) -> PhaseName {
        self.status.phase.name()
    }

    pub fn weights(&self) -> Option<Weights> {
        self.status.weights
    }
}

/// The runtime of one Rollout.
pub struct RolloutController {
    rollout: Rollout,
    deps: RolloutDeps,
    /// Weights, reverts, promotion commits, notifications and the decision log.
    exec: Executor,
    /// Serialises reconciles of this rollout in this process.
    lock: tokio::sync::Mutex<()>,
    wake: tokio::sync::Notify,
}

impl std::fmt::Debug for RolloutController {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RolloutController")
            .field("rollout", &self.rollout.key())
            .finish()
    }
}

impl RolloutController {
    pub fn new(rollout: Rollout, deps: RolloutDeps) -> Self {
        let exec = Executor::new()
            .with_repo(deps.repo.clone(), Some(deps.settings.git_timeout))
            .with_router(deps.router.clone(), deps.settings.router_timeout)
            .with_notifiers(deps.notifiers.clone())
            .with_log(Arc::new(StoreLog(deps.store.clone())));
        RolloutController {
            rollout,
            deps,
            exec,
            lock: tokio::sync::Mutex::new(()),
            wake: tokio::sync::Notify::new(),
        }
    }

    pub fn rollout(&self) -> &Rollout {
        &self.rollout
    }

    /// `namespace/name`.
    pub fn key(&self) -> String {
        self.rollout.key()
    }

    pub fn store(&self) -> &Arc<dyn StateStore> {
        &self.deps.store
    }

    pub fn leadership(&self) -> &Leadership {
        &self.deps.leadership
    }

    /// Reconcile now instead of at the end of the current sleep of [`Self::run`].
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// The stored status and its version.
    pub async fn status(&self) -> Result<(RolloutStatus, Option<u64>), RolloutError> {
        read_status(
            self.deps.store.as_ref(),
            self.rollout.namespace(),
            &self.rollout.metadata.name,
        )
        .await
        .map_err(|e| self.state_err(e))
    }

    fn state_err(&self, source: StateError) -> RolloutError {
        match source {
            StateError::Conflict { .. } => RolloutError::Conflict {
                rollout: self.key(),
            },
            source => RolloutError::State {
                rollout: self.key(),
                source,
            },
        }
    }

    /// Queue an operator's command and, when this replica leads, reconcile at once so that
    /// the outcome is known: `Applied`, `Rejected` (with `decide`'s reason) or `Queued` (not
    /// the leader, or the reconcile failed; the leader applies it at its next reconcile).
    pub async fn submit(
        &self,
        action: CommandAction,
        actor: &str,
        reason: Option<String>,
        via: &str,
        now: DateTime<Utc>,
    ) -> Result<CommandResult, RolloutError> {
        let ns = self.rollout.namespace();
        let name = &self.rollout.metadata.name;
        let (cmd, stored) = commands::enqueue(
            self.deps.store.as_ref(),
            ns,
            name,
            action,
            actor,
            reason,
            via,
            now,
        )
        .await
        .map_err(|e| self.state_err(e))?;
        let why = if self.deps.leadership.is_leader() {
            match self.reconcile_once(now).await {
                Ok(r) => {
                    if let Some(found) = r.commands.into_iter().find(|c| c.id == cmd.id) {
                        self.wake();
                        return Ok(found);
                    }
                    // The controller's own loop may have handled it between the enqueue
                    // and this reconcile: its outcome is then among the settled results.
                    match commands::result_of(self.deps.store.as_ref(), ns, name, &cmd.id).await
                    {
                        Ok(Some(found)) => {
                            self.wake();
                            return Ok(found);
                        }
                        Ok(None) => "the reconcile did not reach the command".to_string(),
                        Err(e) => format!(
                            "the reconcile did not reach the command, and its result cannot be read ({e})"
                        ),
                    }
                }
                Err(e) => format!("the reconcile failed ({e}); the command stays queued"),
            }
        } else {
            "this replica is not the leader; the leader applies the command at its next reconcile"
                .to_string()
        };
        self.wake();
        let mut rec = DecisionRecord::new(
            now,
            DecisionKind::Operator,
            self.key(),
            via,
            format!("{}-requested", action.as_str()),
            format!("{} requested by {actor}: {why}", action.as_str()),
        );
        rec.actor = Some(actor.to_string());
        rec.observed = json!({"command": cmd.id, "reason": cmd.reason});
        self.append(&stored, rec).await;
        Ok(CommandResult {
            id: cmd.id,
            action,
            actor: actor.to_string(),
            outcome: CommandOutcome::Queued,
            reason: why,
            phase: None,
            at: now,
        })
    }

    /// One reconcile at `now` (see the module docs).
    pub async fn reconcile_once(
        &self,
        now: DateTime<Utc>,
    ) -> Result<ReconcileReport, RolloutError> {
        let _serial = self.lock.lock().await;
        let leader = self.deps.leadership.is_leader();
        self.deps.metrics_registry.set_leader(leader);
        if !leader {
            let (status, _) = self.status().await?;
            return Ok(self.report(false, status, self.deps.settings.follower_requeue));
        }
        let (status, version) = self.status().await?;
        let span = tracing::info_span!(
            "rollout_step",
            rollout = %self.key(),
            attempt = status.attempt,
            phase = %status.phase.name(),
            step = ?status.phase.step(),
        );
        self.reconcile_locked(status, version, now)
            .instrument(span)
            .await
    }

    fn report(
        &self,
        leader: bool,
        status: RolloutStatus,
        requeue_after: Duration,
    ) -> ReconcileReport {
        ReconcileReport {
            rollout: self.key(),
            leader,
            stopped: None,
            status,
            requeue_after,
            analysis: None,
            verdict: None,
            effects: Vec::new(),
            decisions: Vec::new(),
            notifications: Vec::new(),
            commands: Vec::new(),
            rejected: Vec::new(),
            notes: Vec::new(),
            rounds: 0,
        }
    }

    async fn reconcile_locked(
        &self,
        mut status: RolloutStatus,
        mut version: Option<u64>,
        now: DateTime<Utc>,
    ) -> Result<ReconcileReport, RolloutError> {
        let ns = self.rollout.namespace().to_string();
        let name = self.rollout.metadata.name.clone();
        let store = self.deps.store.as_ref();
        let mut report = self.report(true, status.clone(), self.deps.settings.follower_requeue);

        // ---- observe ----------------------------------------------------------------------
        let (queue, _) = read_queue(store, &ns, &name)
            .await
            .map_err(|e| self.state_err(e))?;
        let queued: Vec<OperatorCommand> =
            queue.pending.iter().map(|q| q.command.clone()).collect();
        let routing = self.read_routing(&mut report.notes).await;
        let versions = self.read_versions(&mut report.notes).await;
        let freeze = self.freeze(&mut report.notes).await;
        let analysis = match (
            analysis_window(&self.rollout, &status, now),
            crate::rollout::machine::versions(&status),
        ) {
            (Some(window), Some(v)) => {
                let (obs, _) = run_interval(
                    self.deps.metrics.as_ref(),
                    &self.rollout,
                    &v,
                    window,
                    self.deps.settings.query_timeout,
                )
                .await
                .map_err(|source| RolloutError::Template {
                    rollout: self.key(),
                    source,
                })?;
                Some(obs)
            }
            _ => None,
        };
        report.analysis = analysis.clone();
        let before = status.clone();
        let mut obs = Observations {
            canary_version: versions.canary.clone(),
            stable_version: versions.stable.clone(),
            weights: routing.as_ref().map(|r| r.weights),
            header_match: routing.and_then(|r| r.header_match),
            analysis,
            commands: queued.clone(),
            completions: Vec::new(),
            freeze: freeze.clone(),
        };

        // ---- decide, store, apply, until no effects ---------------------------------------
        // A reconcile that stopped after storing a status left its decision records here.
        let outbox = Outbox::new(self.deps.store.clone(), &status_key(&ns, &name));
        // The status read is the stored one: the proof the staged records' writes ask for.
        if let Some(proof) = Stored::unchanged(&status, &status, version) {
            if let Err(e) = outbox.flush(&proof, &self.exec).await {
                tracing::warn!(rollout = %self.key(), "cannot flush the decision outbox: {e}");
            }
        }
        let mut requeue = self.deps.settings.follower_requeue;
        'rounds: for round in 0..self.deps.settings.max_rounds {
            report.rounds = round + 1;
            let d = decide(&self.rollout, &status, &obs, now);
            let mut staged = false;
            let stored = match Stored::unchanged(&status, &d.next, version) {
                Some(stored) => stored,
                None => {
                    if !self.deps.leadership.is_leader() {
                        report.stopped =
                            Some("leadership lost before storing the next status".to_string());
                        break;
                    }
                    let value = serde_json::to_value(&d.next).map_err(|e| RolloutError::State {
                        rollout: self.key(),
                        source: StateError::Undecodable {
                            key: status_key(&ns, &name),
                            at: None,
                            source: Box::new(e),
                        },
                    })?;
                    // The round's records first, where a crash after the status is stored
                    // cannot lose them.
                    let records = d
                        .effects
                        .iter()
                        .filter_map(|e| self.record_of(e, &d.next, now))
                        .collect();
                    staged = match outbox.stage(version, records).await {
                        Ok(s) => s,
                        Err(e) => {
                            tracing::warn!(rollout = %self.key(), "cannot stage the decision records: {e}");
                            false
                        }
                    };
                    hit(fp::ROLLOUT_STATE_BEFORE);
                    // State first: the effects below need the proof the write returns.
                    let stored = store_state(store, &status_key(&ns, &name), value, version)
                        .await
                        .map_err(|e| self.state_err(e))?;
                    hit(fp::ROLLOUT_STATE_AFTER);
                    version = stored.version();
                    stored
                }
            };
            for n in &d.notes {
                tracing::debug!(rollout = %self.key(), "{n}");
            }
            report.notes.extend(d.notes.iter().cloned());
            if round == 0 {
                self.after_first_round(&before, &d.next, &obs, &d.rejected, now, &mut report)
                    .await;
            }
            report.rejected.extend(d.rejected.iter().cloned());
            let moved = d.next.phase.name() != status.phase.name()
                || d.next.phase.step() != status.phase.step();
            if moved {
                tracing::info!(
                    rollout = %self.key(),
                    phase = %d.next.phase.name(),
                    step = ?d.next.phase.step(),
                    weights = ?d.next.weights,
                    "{}",
                    d.next.reason
                );
            }
            if d.next.phase.name() == PhaseName::Succeeded
                && status.phase.name() != PhaseName::Succeeded
            {
                self.mark_known_good(&d.next, now, &mut report.notes).await;
            }
            status = d.next;
            requeue = d.requeue_after;
            self.publish(&status, now);
            if d.effects.is_empty() {
                break;
            }
            let mut completions = Vec::new();
            for effect in d.effects {
                if !self.deps.leadership.is_leader() {
                    report.stopped = Some(format!(
                        "leadership lost before applying {}; the next leader issues it again",
                        effect.key()
                    ));
                    break 'rounds;
                }
                if let Some(c) = self.apply(&stored, effect, &status, now, &mut report).await {
                    completions.push(c);
                }
            }
            if staged {
                if let Err(e) = outbox.clear().await {
                    tracing::warn!(rollout = %self.key(), "cannot clear the decision outbox: {e}");
                }
            }
            if completions.is_empty() {
                break;
            }
            obs = Observations {
                canary_version: versions.canary.clone(),
                stable_version: versions.stable.clone(),
                // The weights read before the writes are stale now; the completions say
                // what the route holds.
                weights: None,
                header_match: None,
                analysis: None,
                commands: Vec::new(),
                completions,
                freeze: freeze.clone(),
            };
            if round + 1 == self.deps.settings.max_rounds {
                tracing::warn!(rollout = %self.key(), "still issuing effects after {} decide rounds; continuing at the next reconcile", round + 1);
            }
        }
        report.status = status;
        report.requeue_after = requeue;
        Ok(report)
    }

    /// Analysis metrics and the outcome of the commands of the first round (stored by now).
    async fn after_first_round(
        &self,
        before: &RolloutStatus,
        next: &RolloutStatus,
        obs: &Observations,
        rejected: &[Rejection],
        now: DateTime<Utc>,
        report: &mut ReconcileReport,
    ) {
        let ns = self.rollout.namespace();
        let name = &self.rollout.metadata.name;
        if let Some(a) = &obs.analysis {
            let judged = next.last_analysis.as_ref().map(|l| l.window_end) == Some(a.window.end)
                && before.last_analysis.as_ref().map(|l| l.window_end) != Some(a.window.end);
            if judged {
                report.verdict = next.last_analysis.as_ref().map(|l| l.verdict);
                let m = &self.deps.metrics_registry;
                for c in &a.checks {
                    m.analysis(ns, name, &c.metric, &c.verdict.to_string(), c.p_value);
                }
                if let Some(cfg) = &self.rollout.spec.analysis.error_counts {
                    let batch = a.error_counts.as_ref().and_then(checks::count_batch);
                    let requests = a
                        .error_counts
                        .map(|c| c.canary_requests)
                        .or(a.canary_requests)
                        .unwrap_or(0.0);
                    let r = checks::check_error_counts(
                        cfg,
                        &before.count_batches,
                        batch.as_ref(),
                        requests,
                    );
                    m.analysis(ns, name, &r.metric, &r.verdict.to_string(), r.p_value);
                }
            }
        }
        if obs.commands.is_empty() {
            return;
        }
        let results: Vec<CommandResult> = obs
            .commands
            .iter()
            .map(|c| {
                let (outcome, reason) = if before.handled_commands.contains(&c.id) {
                    (
                        CommandOutcome::Applied,
                        "handled by an earlier reconcile (see the decision log)".to_string(),
                    )
                } else if let Some(r) = rejected.iter().find(|r| r.id == c.id) {
                    (CommandOutcome::Rejected, r.reason.clone())
                } else {
                    (CommandOutcome::Applied, next.reason.clone())
                };
                CommandResult {
                    id: c.id.clone(),
                    action: c.action,
                    actor: c.actor.clone(),
                    outcome,
                    reason,
                    phase: Some(next.phase.name().to_string()),
                    at: now,
                }
            })
            .collect();
        if let Err(e) = commands::settle(self.deps.store.as_ref(), ns, name, &results).await {
            // Harmless: decide handles each id once; the next reconcile settles them.
            tracing::warn!(rollout = %self.key(), "cannot settle the command queue: {e}");
        }
        report.commands = results;
    }

    /// Publish phase, step, weight and the time left at the step.
    fn publish(&self, s: &RolloutStatus, now: DateTime<Utc>) {
        let remaining = crate::rollout::step_remaining(&self.rollout, s, now)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        self.deps.metrics_registry.set_step_remaining(
            self.rollout.namespace(),
            &self.rollout.metadata.name,
            remaining,
        );
        let last = self.rollout.spec.steps.len().saturating_sub(1) as i64;
        let step = match &s.phase {
            Phase::Progressing { step, .. } | Phase::WaitingForApproval { step, .. } => {
                i64::from(*step)
            }
            Phase::Paused {
                step: Some(step), ..
            } => i64::from(*step),
            Phase::Paused { step: None, .. }
            | Phase::Promoting { .. }
            | Phase::Succeeded { .. } => last,
            Phase::Pending | Phase::Aborting { .. } | Phase::Failed { .. } => 0,
        };
        let weight = s.weights.map(|w| i64::from(w.canary)).unwrap_or(0);
        let phases: Vec<&str> = PhaseName::ALL.iter().map(|p| p.as_str()).collect();
        self.deps.metrics_registry.set_rollout(
            self.rollout.namespace(),
            &self.rollout.metadata.name,
            s.phase.name().as_str(),
            &phases,
            step,
            weight,
        );
    }

    async fn read_routing(&self, notes: &mut Vec<String>) -> Option<Routing> {
        let t = self.deps.settings.router_timeout;
        match tokio::time::timeout(t, self.deps.router.routing()).await {
            Ok(Ok(w)) => Some(w),
            Ok(Err(TrafficError::NotFound { .. })) => None,
            Ok(Err(e)) => {
                tracing::warn!(rollout = %self.key(), "cannot read the weights: {e}");
                notes.push(format!("weights unknown: {e}"));
                None
            }
            Err(_) => {
                notes.push(format!("weights unknown: no answer within {t:?}"));
                None
            }
        }
    }

    async fn read_versions(&self, notes: &mut Vec<String>) -> WorkloadVersions {
        let t = self.deps.settings.versions_timeout;
        match tokio::time::timeout(t, self.deps.versions.versions(&self.rollout)).await {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                tracing::warn!(rollout = %self.key(), "cannot read the workloads' versions: {e}");
                notes.push(format!("versions unknown: {e}"));
                WorkloadVersions::default()
            }
            Err(_) => {
                notes.push(format!("versions unknown: no answer within {t:?}"));
                WorkloadVersions::default()
            }
        }
    }

    /// The guard's freeze of the GitOps app, as a reason.
    async fn freeze(&self, notes: &mut Vec<String>) -> Option<String> {
        let app = &self.rollout.spec.gitops.app;
        let store = match &self.deps.guard {
            Some(g) => g.store().clone(),
            None => self.deps.store.clone(),
        };
        match crate::runtime::guard::read_state(store.as_ref(), app).await {
            Ok((s, _)) => s.breach.map(|b| {
                format!(
                    "SLO {} of app {app} breached its error budget ({:.1}% consumed) at {}",
                    b.slo,
                    b.budget_consumed * 100.0,
                    b.since.format("%Y-%m-%dT%H:%M:%SZ")
                )
            }),
            Err(e) => {
                tracing::warn!(rollout = %self.key(), app = %app, "cannot read the guard's state: {e}");
                notes.push(format!("guard state of {app} unreadable: {e}"));
                None
            }
        }
    }

    async fn mark_known_good(
        &self,
        s: &RolloutStatus,
        now: DateTime<Utc>,
        notes: &mut Vec<String>,
    ) {
        let Some(g) = &self.deps.guard else {
            return;
        };
        let app = &self.rollout.spec.gitops.app;
        if !g.apps().iter().any(|a| &a.app == app) {
            return;
        }
        let Some(sha) = &s.promotion_commit else {
            notes.push(
                "succeeded without a promotion commit of slogate's: nothing marked known-good"
                    .into(),
            );
            return;
        };
        if let Err(e) = g.mark_known_good(app, sha, "rollout", now).await {
            tracing::warn!(rollout = %self.key(), "cannot mark {sha} known-good: {e}");
            notes.push(format!("known-good mark of {sha} failed: {e}"));
        }
    }

    async fn append(&self, stored: &Stored, rec: DecisionRecord) {
        let kind = serde_json::to_value(rec.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        self.deps.metrics_registry.decision(&kind, &rec.action);
        self.exec.record(stored, &rec).await;
    }

    /// Apply one effect; the completion to feed back to `decide`, for the effects that have
    /// one.
    async fn apply(
        &self,
        stored: &Stored,
        effect: Effect,
        status: &RolloutStatus,
        now: DateTime<Utc>,
        report: &mut ReconcileReport,
    ) -> Option<EffectCompletion> {
        match effect {
            Effect::SetWeights { ref key, .. } => {
                let key = key.clone();
                let Some((routing, expected)) = effect.routing() else {
                    // `routing()` is Some for every SetWeights.
                    return None;
                };
                let outcome = match self
                    .exec
                    .set_routing(stored, expected.as_ref(), &routing)
                    .await
                {
                    Ok(read) => EffectOutcome::WeightsSet {
                        weights: read.weights,
                    },
                    Err(EffectError::Traffic(TrafficError::ManualChange { found, .. })) => {
                        EffectOutcome::ManualChange {
                            found: found.weights,
                            header_match: found.header_match,
                        }
                    }
                    Err(e) => EffectOutcome::Failed {
                        error: e.to_string(),
                    },
                };
                report.effects.push(AppliedEffect {
                    key: key.clone(),
                    effect: "setWeights".into(),
                    outcome: format!("{outcome:?}"),
                });
                Some(EffectCompletion {
                    key,
                    at: now,
                    outcome,
                })
            }
            Effect::RevertCanary {
                key,
                path,
                version,
                reason,
                ..
            } => {
                let outcome = self.revert(stored, &key, &path, &version, &reason).await;
                report.effects.push(AppliedEffect {
                    key: key.clone(),
                    effect: "revertCanary".into(),
                    outcome: format!("{outcome:?}"),
                });
                Some(EffectCompletion {
                    key,
                    at: now,
                    outcome,
                })
            }
            Effect::CommitPromotion {
                key, path, version, ..
            } => {
                let outcome = self
                    .commit_promotion(
                        stored,
                        &key,
                        &path,
                        &version,
                        status.stable_version.as_deref(),
                    )
                    .await;
                report.effects.push(AppliedEffect {
                    key: key.clone(),
                    effect: "commitPromotion".into(),
                    outcome: format!("{outcome:?}"),
                });
                Some(EffectCompletion {
                    key,
                    at: now,
                    outcome,
                })
            }
            Effect::Notify {
                key,
                severity,
                title,
                text,
            } => {
                let mut fields = std::collections::BTreeMap::new();
                fields.insert("phase".to_string(), status.phase.name().to_string());
                if let Some(w) = status.weights {
                    fields.insert(
                        "weights".into(),
                        format!("{}/{} stable/canary", w.stable, w.canary),
                    );
                }
                if let Some(v) = &status.canary_version {
                    fields.insert("canary_version".into(), v.clone());
                }
                if let Some(v) = &status.stable_version {
                    fields.insert("stable_version".into(), v.clone());
                }
                if let Some(c) = &status.revert_commit {
                    fields.insert("revert_commit".into(), c.clone());
                }
                if let Some(c) = &status.promotion_commit {
                    fields.insert("promotion_commit".into(), c.clone());
                }
                // A critical rollout message is an abort (its canary commit reverted): an
                // incident of its own, keyed by the effect's idempotency key.
                let incident = (severity == Severity::Critical)
                    .then(|| Incident::trigger(format!("{}/{key}", self.key())));
                let n = Notification {
                    severity,
                    subject: self.key(),
                    title: title.clone(),
                    text,
                    fields,
                    incident,
                };
                report.notifications.push(title);
                report.effects.push(AppliedEffect {
                    key,
                    effect: "notify".into(),
                    outcome: "sent in the background".into(),
                });
                // On a background task: a rollout never waits for the notifiers.
                self.exec.notify(stored, n, true).await;
                None
            }
            Effect::RecordDecision {
                ref key,
                ref action,
                ..
            } => {
                report.decisions.push(action.clone());
                report.effects.push(AppliedEffect {
                    key: key.clone(),
                    effect: "recordDecision".into(),
                    outcome: action.clone(),
                });
                if let Some(rec) = self.record_of(&effect, status, now) {
                    self.append(stored, rec).await;
                }
                None
            }
        }
    }

    /// The decision-log entry of a `RecordDecision` effect (none for the other effects).
    fn record_of(
        &self,
        effect: &Effect,
        status: &RolloutStatus,
        now: DateTime<Utc>,
    ) -> Option<DecisionRecord> {
        let Effect::RecordDecision {
            key,
            action,
            reason,
            actor,
            observed,
        } = effect
        else {
            return None;
        };
        let (kind, trigger) = match actor {
            Some(_) => (DecisionKind::Operator, "operator"),
            None => (DecisionKind::Rollout, "reconcile"),
        };
        let mut observed = observed.clone();
        if let Some(o) = observed.as_object_mut() {
            o.insert("effectKey".into(), json!(key));
        }
        let mut rec = DecisionRecord::new(now, kind, self.key(), trigger, action, reason.clone());
        rec.observed = observed;
        rec.actor = actor.clone();
        rec.commits = match action.as_str() {
            "reverted" => status.revert_commit.iter().cloned().collect(),
            "promotion-committed" | "promoted" => status.promotion_commit.iter().cloned().collect(),
            _ => Vec::new(),
        };
        Some(rec)
    }

    async fn revert(
        &self,
        stored: &Stored,
        key: &str,
        path: &str,
        version: &str,
        reason: &str,
    ) -> EffectOutcome {
        if !self.exec.has_repo() {
            return EffectOutcome::Reverted {
                sha: None,
                detail: "no GitOps repository is configured: the canary commit was not reverted"
                    .into(),
            };
        }
        let req = RevertRequest {
            app_path: path.trim_matches('/').to_string(),
            // The canary's commit is the most recent one under the app path (the git
            // adapter never picks slogate's own reverts).
            known_good: None,
            reason: format!("rollout {} of {version} aborted: {reason}", self.key()),
            slo_id: None,
            budget_consumed: None,
            breach_id: key.to_string(),
            extra_trailers: vec![
                Trailer::new("Slogate-Rollout", self.key()),
                Trailer::new("Slogate-Canary-Version", version),
            ],
            reason_code: None,
        };
        match self.exec.revert(stored, &req).await {
            Ok(o) => match o {
                RevertOutcome::Reverted { sha, reverted } => EffectOutcome::Reverted {
                    sha: Some(sha),
                    detail: format!("reverted {}", reverted.join(", ")),
                },
                RevertOutcome::PullRequestOpened { sha, url, .. } => EffectOutcome::Reverted {
                    sha: Some(sha),
                    detail: format!("revert pull request {url} opened"),
                },
                RevertOutcome::PullRequestExists {
                    sha, url, state, ..
                } => EffectOutcome::Reverted {
                    sha: Some(sha),
                    detail: format!("revert pull request {url} exists ({})", state.as_str()),
                },
                RevertOutcome::AlreadyReverted { sha } => EffectOutcome::Reverted {
                    sha: Some(sha),
                    detail: "already reverted".into(),
                },
                RevertOutcome::NothingToRevert => EffectOutcome::Reverted {
                    sha: None,
                    detail: format!("nothing to revert under {path}"),
                },
                RevertOutcome::Conflict { shas, files } => EffectOutcome::RevertConflict {
                    detail: format!(
                        "commits {} conflict in {}",
                        shas.join(", "),
                        files.join(", ")
                    ),
                },
            },
            Err(e) => EffectOutcome::Failed {
                error: e.to_string(),
            },
        }
    }

    async fn commit_promotion(
        &self,
        stored: &Stored,
        key: &str,
        path: &str,
        version: &str,
        stable: Option<&str>,
    ) -> EffectOutcome {
        if !self.exec.has_repo() {
            return EffectOutcome::Failed {
                error: format!(
                    "no GitOps repository is configured: commit {version} as the stable version by hand"
                ),
            };
        }
        let file = manifest_file(path);
        let from = stable.map(str::to_string);
        let to = version.to_string();
        let label = self.rollout.spec.workloads.version_label.clone();
        let edit: EditFn = Arc::new(move |content: &str| {
            promote_edit(content, from.as_deref(), &to, &label)
                .map_err(|e| -> EditError { Box::new(e) })
        });
        let message = format!(
            "slogate: promote {rollout} to {version}\n\nThe canary {version} of rollout {rollout} passed its analysis at every step; it becomes the stable version in {file}.\n\nSlogate-Rollout: {rollout}\nSlogate-Promotion: {key}\nSlogate-Version: {version}\n",
            rollout = self.key()
        );
        match self.exec.commit_edit(stored, &file, edit, &message).await {
            Ok(CommitOutcome::Pushed { sha }) => EffectOutcome::PromotionCommitted { sha },
            Ok(CommitOutcome::Unchanged { head }) => {
                EffectOutcome::PromotionCommitted { sha: head }
            }
            Err(EffectError::Timeout { after, .. }) => EffectOutcome::Failed {
                error: format!("the promotion commit took longer than {after:?}"),
            },
            Err(e) => EffectOutcome::Failed {
                error: e.to_string(),
            },
        }
    }

    /// Reconcile until `stop` turns true: sleep `requeue_after` between reconciles, wake
    /// early for commands ([`Self::wake`]) and leadership changes. A reconcile in progress
    /// is finished, not abandoned, on stop (its state is stored before each effect).
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let s = self.deps.settings.clone();
        let mut changes = Some(self.deps.leadership.changes());
        loop {
            if *stop.borrow() {
                break;
            }
            let wait = match self.reconcile_once(Utc::now()).await {
                Ok(r) => r.requeue_after,
                Err(e) => {
                    tracing::error!(rollout = %self.key(), kind = e.metric_label(), "reconcile failed: {e}");
                    self.deps
                        .metrics_registry
                        .reconcile_failures
                        .get_or_create(&KindLabels {
                            kind: e.metric_label().into(),
                        })
                        .inc();
                    s.error_requeue
                }
            }
            .clamp(s.min_requeue, s.max_requeue.max(s.min_requeue));
            let leader_changed = async {
                match changes.as_mut() {
                    Some(rx) => rx.changed().await.is_ok(),
                    None => std::future::pending().await,
                }
            };
            let mut elector_gone = false;
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.wake.notified() => {}
                ok = leader_changed => elector_gone = !ok,
                _ = stop.changed() => break,
            }
            if elector_gone {
                // The elector is gone; `is_leader` still answers from its deadline.
                changes = None;
            }
        }
        tracing::info!(rollout = %self.key(), "rollout controller stopped");
    }
}
