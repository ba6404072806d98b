//! The guard at run time: reads an app's state and commits, calls the pure
//! [`crate::guard::decide::decide`], stores the next state (compare-and-swap) *before*
//! applying the effects, then reverts through the GitOps port, requests a sync, notifies and
//! writes the decision log, all through the effect executor ([`super::effects`]).
//!
//! Runs for one app are serialised in this process by a per-app mutex; across processes and
//! restarts the compare-and-swap on the state document and the revert's idempotency key
//! (`Slogate-Breach` trailer, checked on the remote by the git adapter) make sure a breach
//! is never reverted twice. The decision's records are staged in an outbox
//! ([`super::outbox`]) before the state is stored, and a revert's result is recorded before
//! its outcome is stored, so a crash at any point loses no decision record.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::guard::decide::{self, AppGuard, DeployObservation, Effect, Observation, Trigger};
use crate::guard::state::{self as gstate, AppGuardState, KnownGood, Override};
use crate::guard::verify::{self, field_name, OnRegression, PageBurn};
use crate::model::notify::{Incident, Notification, Severity};
use crate::ports::gitops::{GitOpsError, GitOpsRepo, RevertOutcome};
use crate::ports::metrics::MetricsSource;
use crate::ports::notify::Notifier;
use crate::ports::state::{DecisionKind, DecisionRecord, StateError, StateStore, Versioned};
use crate::ports::sync::SyncTrigger;
use crate::runtime::effects::{store_state, Executor, StoreLog, Stored};
use crate::runtime::evaluator::Target;
use crate::runtime::failpoint::{self as fp, hit};
use crate::runtime::metrics::{AppLabels, AppSloLabels, GuardMetrics};
use crate::runtime::outbox::Outbox;
use crate::slo::budget::BudgetReport;
use crate::slo::model::{expand_window, Sli};

#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    #[error("unknown guarded app `{0}`")]
    UnknownApp(String),
    #[error("guard state: {0}")]
    State(#[from] StateError),
    #[error("state document `{key}` is not a guard state: {source}")]
    Decode {
        key: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("GitOps repository: {0}")]
    Git(#[from] GitOpsError),
    /// The compare-and-swap of the app's state kept losing: the last conflict is the
    /// source (the message is the one printed before, without it).
    #[error("guard state of `{app}` kept changing concurrently; gave up")]
    Contended {
        app: String,
        #[source]
        source: StateError,
    },
}

impl GuardError {
    /// A short, stable name of the kind of failure: the `kind` label of
    /// `slogate_guard_failures_total`.
    pub fn metric_label(&self) -> &'static str {
        match self {
            GuardError::UnknownApp(_) => "unknown_app",
            GuardError::State(_) => "state",
            GuardError::Decode { .. } => "decode",
            GuardError::Git(_) => "git",
            GuardError::Contended { .. } => "contended",
        }
    }
}

/// What one run did, for logs, tests and the demo.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunReport {
    pub app: String,
    pub frozen: bool,
    /// Decision-log actions written, in order.
    pub actions: Vec<String>,
    /// Revert outcomes, in order.
    pub reverts: Vec<RevertOutcome>,
}

/// The guard's collaborators.
pub struct GuardRuntime {
    apps: Vec<AppGuard>,
    store: Arc<dyn StateStore>,
    repo: Arc<dyn GitOpsRepo>,
    /// Reverts, syncs, notifications and the decision log.
    exec: Executor,
    locks: HashMap<String, tokio::sync::Mutex<()>>,
    metrics: GuardMetrics,
    /// Where post-deploy verification reads the SLIs (none: no verification).
    verifier: Option<Arc<dyn MetricsSource>>,
    /// Apps with a deploy whose verification window is open, and their slice length: the
    /// schedule evaluates that often until the windows close.
    verifying: std::sync::Mutex<HashMap<String, std::time::Duration>>,
}

/// At most this many deploys per app are verified in one run (newest first).
const MAX_VERIFIED: usize = 5;

const CAS_ATTEMPTS: u32 = 5;

impl GuardRuntime {
    pub fn new(
        apps: Vec<AppGuard>,
        store: Arc<dyn StateStore>,
        repo: Arc<dyn GitOpsRepo>,
        syncs: HashMap<String, Arc<dyn SyncTrigger>>,
        notifiers: Vec<Arc<dyn Notifier>>,
    ) -> Self {
        let locks = apps
            .iter()
            .map(|a| (a.app.clone(), tokio::sync::Mutex::new(())))
            .collect();
        // No bound on the revert itself: the git adapter bounds each git command.
        let exec = Executor::new()
            .with_repo(Some(repo.clone()), None)
            .with_syncs(syncs)
            .with_notifiers(notifiers)
            .with_log(Arc::new(StoreLog(store.clone())));
        GuardRuntime {
            apps,
            store,
            repo,
            exec,
            locks,
            metrics: GuardMetrics::default(),
            verifier: None,
            verifying: Default::default(),
        }
    }

    /// The shortest slice length among apps with an open verification window, if any: how
    /// soon the next evaluation should come.
    pub fn verification_cadence(&self) -> Option<std::time::Duration> {
        self.verifying
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .min()
            .copied()
    }

    /// Verify deploys after they land, reading the SLIs through `source`.
    pub fn with_verifier(mut self, source: Arc<dyn MetricsSource>) -> Self {
        self.verifier = Some(source);
        self
    }

    /// Export `slogate_guard_frozen` and `slogate_guard_rollbacks_total` through these
    /// (shared) series.
    pub fn with_metrics(mut self, metrics: GuardMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    pub fn apps(&self) -> &[AppGuard] {
        &self.apps
    }

    pub fn store(&self) -> &Arc<dyn StateStore> {
        &self.store
    }

    /// Apps guarded by an SLO.
    pub fn apps_for_slo(&self, slo_id: &str) -> Vec<&AppGuard> {
        self.apps
            .iter()
            .filter(|a| a.slos.iter().any(|s| s == slo_id))
            .collect()
    }

    fn app(&self, name: &str) -> Result<&AppGuard, GuardError> {
        self.apps
            .iter()
            .find(|a| a.app == name)
            .ok_or_else(|| GuardError::UnknownApp(name.to_string()))
    }

    /// The stored state of an app (default when none was stored yet) and its version.
    pub async fn state(&self, app: &str) -> Result<(AppGuardState, Option<u64>), GuardError> {
        read_state(self.store.as_ref(), app).await
    }

    /// One guard run for `app` with fresh budget reports of (at least) its SLOs, without
    /// post-deploy verification or page handling (no SLO specs given).
    pub async fn run_app(
        &self,
        app: &str,
        reports: &[BudgetReport],
        trigger: Trigger,
        now: DateTime<Utc>,
    ) -> Result<RunReport, GuardError> {
        self.run_app_with(app, reports, &[], trigger, now).await
    }

    /// One guard run for `app` with fresh budget reports of (at least) its SLOs and the
    /// loaded SLO specs with their window catalogs (`targets`): the budget thresholds,
    /// post-deploy verification (with a verifier) and burn-rate pages.
    pub async fn run_app_with(
        &self,
        app: &str,
        reports: &[BudgetReport],
        targets: &[Target],
        trigger: Trigger,
        now: DateTime<Utc>,
    ) -> Result<RunReport, GuardError> {
        let cfg = self.app(app)?.clone();
        let targets: Vec<&Target> = targets
            .iter()
            .filter(|t| cfg.slos.contains(&t.slo.id))
            .collect();
        let pages: Vec<PageBurn> = if cfg.verify.on_regression == OnRegression::Off {
            Vec::new()
        } else {
            targets
                .iter()
                .filter_map(|t| {
                    let r = reports.iter().find(|r| r.id == t.slo.id)?;
                    verify::page_burn(r, &t.windows)
                })
                .collect()
        };
        let mut observed: HashMap<String, DeployObservation> = HashMap::new();
        let _serial = match self.locks.get(app) {
            Some(l) => Some(l.lock().await),
            None => None,
        };
        let reports: Vec<BudgetReport> = reports
            .iter()
            .filter(|r| cfg.slos.contains(&r.id))
            .cloned()
            .collect();
        let mut open_window;
        let mut attempt = 0;
        // A run that stopped after storing its state left its decision records here.
        let outbox = Outbox::new(self.store.clone(), &gstate::key(app));
        let (current_state, current) = self.state(app).await?;
        // The state read is the stored one: the proof the staged records' writes ask for.
        if let Some(proof) = Stored::unchanged(&current_state, &current_state, current) {
            if let Err(e) = outbox.flush(&proof, &self.exec).await {
                tracing::warn!(app = %app, "cannot flush the decision outbox: {e}");
            }
        }
        let mut staged = false;
        let (decision, stored) = loop {
            attempt += 1;
            let (state, version) = self.state(app).await?;
            let since = state.breach.as_ref().and_then(|b| b.base.clone());
            let commits = self
                .repo
                .commits_touching(&cfg.path, since.as_deref())
                .await?;
            let deploys = self
                .observe_deploys(&cfg, &state, &commits, &targets, &pages, now, &mut observed)
                .await;
            open_window = deploys.iter().any(|d| !d.window_over);
            let obs = Observation {
                reports: &reports,
                commits: &commits,
                trigger: trigger.clone(),
                deploys: &deploys,
                pages: &pages,
            };
            let d = decide::decide(&cfg, &state, &obs, now);
            if let Some(stored) = Stored::unchanged(&state, &d.next, version) {
                break (d, stored);
            }
            // The decision's records, where a crash after the state is stored cannot lose
            // them; then the state; the effects after.
            let records = d
                .effects
                .iter()
                .filter_map(|e| record_of(&cfg, e, &trigger, now))
                .collect();
            staged = match outbox.stage(version, records).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(app = %app, "cannot stage the decision records: {e}");
                    false
                }
            };
            hit(fp::GUARD_STATE_BEFORE);
            // State first, effects after: the effects below need the proof it returns.
            let key = gstate::key(app);
            match store_state(self.store.as_ref(), &key, to_json(&d.next), version).await {
                Ok(stored) => {
                    hit(fp::GUARD_STATE_AFTER);
                    break (d, stored);
                }
                Err(StateError::Conflict { .. }) if attempt < CAS_ATTEMPTS => continue,
                Err(source @ StateError::Conflict { .. }) => {
                    return Err(GuardError::Contended {
                        app: app.to_string(),
                        source,
                    })
                }
                Err(e) => return Err(e.into()),
            }
        };
        {
            // A poisoned lock still holds a whole map (one insert or remove at a time).
            let mut v = self.verifying.lock().unwrap_or_else(|p| p.into_inner());
            if open_window && !decision.next.frozen() {
                v.insert(app.to_string(), cfg.verify.step);
            } else {
                v.remove(app);
            }
        }
        let mut report = RunReport {
            app: app.to_string(),
            frozen: decision.next.frozen(),
            ..Default::default()
        };
        // Every revert during a breach belongs to its incident.
        let breach = decision.next.breach.as_ref().map(|b| b.id.clone());
        for effect in decision.effects {
            self.apply(
                &stored,
                &cfg,
                effect,
                &trigger,
                breach.as_deref(),
                now,
                &mut report,
            )
            .await;
        }
        if staged {
            if let Err(e) = outbox.clear().await {
                tracing::warn!(app = %app, "cannot clear the decision outbox: {e}");
            }
        }
        let labels = AppLabels {
            app: app.to_string(),
        };
        self.metrics
            .frozen
            .get_or_create(&labels)
            .set(i64::from(report.frozen));
        let pushed = report
            .reverts
            .iter()
            .filter(|o| matches!(o, RevertOutcome::Reverted { .. }))
            .count();
        if pushed > 0 {
            let slo = decision
                .next
                .breach
                .as_ref()
                .map(|b| b.slo.clone())
                .unwrap_or_default();
            self.metrics
                .rollbacks
                .get_or_create(&AppSloLabels {
                    app: app.to_string(),
                    slo,
                })
                .inc_by(pushed as u64);
        }
        Ok(report)
    }

    /// The deploys under verification, newest first, with a verdict per SLO measured
    /// through the verifier. A deploy whose SLIs cannot be read this run is left out (it is
    /// judged at the next run); `cache` keeps verdicts across compare-and-swap retries.
    #[allow(clippy::too_many_arguments)]
    async fn observe_deploys(
        &self,
        cfg: &AppGuard,
        state: &AppGuardState,
        commits: &[crate::model::commit::CommitInfo],
        targets: &[&Target],
        pages: &[PageBurn],
        now: DateTime<Utc>,
        cache: &mut HashMap<String, DeployObservation>,
    ) -> Vec<DeployObservation> {
        let policy = &cfg.verify;
        let Some(source) = &self.verifier else {
            return Vec::new();
        };
        if policy.on_regression == OnRegression::Off || state.breach.is_some() {
            return Vec::new();
        }
        let page_back = pages
            .iter()
            .map(|p| p.long_window.as_std())
            .max()
            .unwrap_or_default();
        let back = chrono::Duration::from_std(policy.window.max(page_back))
            .unwrap_or_else(|_| chrono::Duration::hours(1));
        let mut out = Vec::new();
        for d in verify::deploys_since(commits, now - back)
            .into_iter()
            .filter(|d| !state.deploys.iter().any(|x| x.sha == d.commit.sha))
            .take(MAX_VERIFIED)
        {
            if let Some(o) = cache.get(&d.commit.sha).filter(|o| o.deploy == d) {
                out.push(o.clone());
                continue;
            }
            match self.verdicts(source.as_ref(), cfg, &d, targets, now).await {
                Ok(verdicts) => {
                    let window = chrono::Duration::from_std(policy.window)
                        .unwrap_or_else(|_| chrono::Duration::hours(1));
                    let mut end = d.commit.time + window;
                    if let Some(n) = d.next_deploy {
                        end = end.min(n);
                    }
                    let o = DeployObservation {
                        window_over: now >= end,
                        deploy: d,
                        verdicts,
                    };
                    cache.insert(o.deploy.commit.sha.clone(), o.clone());
                    out.push(o);
                }
                Err(e) => {
                    tracing::warn!(app = %cfg.app, deploy = %d.commit.sha, "post-deploy verification could not read the SLIs; judged at the next run: {e}");
                }
            }
        }
        out
    }

    /// One verdict per SLO of the app with an events SLI (a raw SLI has no counts).
    async fn verdicts(
        &self,
        source: &dyn MetricsSource,
        cfg: &AppGuard,
        d: &verify::DeployCandidate,
        targets: &[&Target],
        now: DateTime<Utc>,
    ) -> Result<Vec<verify::Verdict>, crate::ports::metrics::MetricsError> {
        let policy = &cfg.verify;
        let g = verify::grid(policy, d, now);
        let step = format!("{}s", g.step.as_secs());
        let mut out = Vec::new();
        for t in targets {
            let Sli::Events {
                error_query,
                total_query,
            } = &t.slo.sli
            else {
                tracing::debug!(slo = %t.slo.id, "raw SLI: no counts for post-deploy verification");
                continue;
            };
            let mut slices = Vec::new();
            for q in [error_query, total_query] {
                let expr = expand_window(q, &step);
                let series = source.range(&expr, g.start, g.end, g.step).await?;
                if series.len() > 1 {
                    tracing::warn!(slo = %t.slo.id, series = series.len(), "post-deploy verification: the SLI query returns several series; aggregate it (e.g. with sum())");
                }
                let points = series.first().map(|s| s.points.clone()).unwrap_or_default();
                slices.push(g.split(d.commit.time, &points, verify::count_scale(q, g.step)));
            }
            let [(eb, ea), (tb, ta)] = [slices[0].clone(), slices[1].clone()];
            let before = verify::counts(&eb, &tb);
            let after = verify::counts(&ea, &ta);
            out.push(verify::judge(
                &t.slo.id,
                &d.commit,
                t.slo.error_budget_ratio(),
                verify::Factors::of(policy, &t.windows),
                policy,
                &before,
                &after,
            ));
        }
        Ok(out)
    }

    async fn record(&self, stored: &Stored, rec: DecisionRecord, report: &mut RunReport) {
        report.actions.push(rec.action.clone());
        self.exec.record(stored, &rec).await;
    }

    async fn notify(&self, stored: &Stored, n: &Notification) {
        self.exec.notify(stored, n.clone(), false).await;
    }

    #[allow(clippy::too_many_arguments)]
    async fn apply(
        &self,
        stored: &Stored,
        app: &AppGuard,
        effect: Effect,
        trigger: &Trigger,
        breach: Option<&str>,
        now: DateTime<Utc>,
        report: &mut RunReport,
    ) {
        match effect {
            e @ Effect::Record { .. } => {
                if let Some(rec) = record_of(app, &e, trigger, now) {
                    self.record(stored, rec, report).await;
                }
            }
            Effect::Notify(n) => self.notify(stored, &n).await,
            Effect::Revert { request, action } => {
                let key = request.breach_id.clone();
                let result = self.exec.revert(stored, &request).await;
                let (outcome, sha, reverted) = match &result {
                    Ok(o) => describe(o),
                    Err(e) => (format!("error: {e}"), None, Vec::new()),
                };
                let mut rec = DecisionRecord::new(
                    Utc::now(),
                    DecisionKind::Guard,
                    &app.app,
                    trigger.as_str(),
                    format!("{action}-result"),
                    format!("revert {key}: {outcome}"),
                );
                rec.commits = sha
                    .iter()
                    .cloned()
                    .chain(reverted.iter().cloned())
                    .collect();
                rec.outcome = Some(outcome.clone());
                rec.observed = json!({
                    "breach": key,
                    "slo": request.slo_id,
                    "budget_consumed": request.budget_consumed,
                    "known_good": request.known_good,
                });
                if let Some(code) = &request.reason_code {
                    rec.observed["reason"] = json!(code);
                }
                for t in request
                    .extra_trailers
                    .iter()
                    .filter(|t| t.key.starts_with("Slogate-"))
                {
                    rec.observed[field_name(&t.key)] = json!(t.value);
                }
                // The record before the outcome is stored: a crash in between repeats the
                // (idempotent) revert and its record at the next run instead of losing the
                // record (found by tests/crash_injection.rs).
                self.record(stored, rec, report).await;
                if let Err(e) = self
                    .update_revert(&app.app, &key, &outcome, sha.clone(), reverted.clone())
                    .await
                {
                    tracing::error!(app = %app.app, breach = %key, "cannot store the revert outcome: {e}");
                }
                if matches!(result, Ok(RevertOutcome::Reverted { .. })) {
                    self.exec
                        .request_sync(stored, &app.app, sha.as_deref())
                        .await;
                }
                // A rollback and a rollback that could not be made (conflict, error) are
                // equally urgent; only "nothing to revert" is informational.
                let severity = if matches!(result, Ok(RevertOutcome::NothingToRevert)) {
                    Severity::Warning
                } else {
                    Severity::Critical
                };
                // A repeat of an existing revert is not news.
                if !matches!(
                    result,
                    Ok(RevertOutcome::AlreadyReverted { .. }
                        | RevertOutcome::PullRequestExists { .. })
                ) {
                    let mut fields = std::collections::BTreeMap::new();
                    fields.insert("breach".into(), key.clone());
                    if let Some(s) = &request.slo_id {
                        fields.insert("slo".into(), s.clone());
                    }
                    if let Some(b) = request.budget_consumed {
                        fields.insert("budget_consumed".into(), format!("{b:.3}"));
                    }
                    if let Some(s) = &sha {
                        fields.insert("revert_commit".into(), s.clone());
                    }
                    if !reverted.is_empty() {
                        fields.insert("reverted".into(), reverted.join(" "));
                    }
                    if let Some(code) = &request.reason_code {
                        fields.insert("reason".into(), code.clone());
                    }
                    for t in &request.extra_trailers {
                        fields.insert(field_name(&t.key), t.value.clone());
                    }
                    self.notify(
                        stored,
                        &Notification {
                            severity,
                            subject: app.app.clone(),
                            title: format!("{}: {action} {outcome}", app.app),
                            text: request.reason.clone(),
                            fields,
                            incident: Some(Incident::trigger(breach.unwrap_or(&key))),
                        },
                    )
                    .await;
                }
                if let Ok(o) = result {
                    report.reverts.push(o);
                }
            }
        }
    }

    /// Store a revert's outcome in the breach it belongs to.
    async fn update_revert(
        &self,
        app: &str,
        key: &str,
        outcome: &str,
        sha: Option<String>,
        reverted: Vec<String>,
    ) -> Result<(), GuardError> {
        self.modify(app, |s| {
            let in_breach = s
                .breach
                .as_mut()
                .and_then(|b| b.reverts.iter_mut().find(|r| r.key == key));
            let r = match in_breach {
                Some(r) => r,
                None => match s
                    .deploys
                    .iter_mut()
                    .filter_map(|d| d.revert.as_mut())
                    .find(|r| r.key == key)
                {
                    Some(r) => r,
                    None => return false,
                },
            };
            r.outcome = Some(outcome.to_string());
            if outcome.starts_with("error") {
                r.attempts += 1;
            }
            if sha.is_some() {
                r.sha = sha.clone();
            }
            if !reverted.is_empty() {
                r.reverted = reverted.clone();
            }
            true
        })
        .await
        .map(drop)
    }

    /// Read-modify-write of an app's state with compare-and-swap retries. `f` returns
    /// whether it changed anything. The proof of the stored state (or of the state read,
    /// when `f` changed nothing) is what the effects that follow ask for.
    async fn modify(
        &self,
        app: &str,
        f: impl Fn(&mut AppGuardState) -> bool,
    ) -> Result<Stored, GuardError> {
        let mut last = None;
        for _ in 0..CAS_ATTEMPTS {
            let (mut s, version) = self.state(app).await?;
            let read = s.clone();
            if !f(&mut s) {
                if let Some(stored) = Stored::unchanged(&read, &s, version) {
                    return Ok(stored);
                }
            }
            hit(fp::GUARD_STATE_BEFORE);
            match store_state(self.store.as_ref(), &gstate::key(app), to_json(&s), version).await {
                Ok(stored) => {
                    hit(fp::GUARD_STATE_AFTER);
                    return Ok(stored);
                }
                Err(e @ StateError::Conflict { .. }) => last = Some(e),
                Err(e) => return Err(e.into()),
            }
        }
        Err(match last {
            Some(source) => GuardError::Contended {
                app: app.to_string(),
                source,
            },
            // CAS_ATTEMPTS is not 0: every round either returned or lost a conflict.
            None => StateError::Backend(format!(
                "{}: no compare-and-swap round ran",
                gstate::key(app)
            ))
            .into(),
        })
    }

    /// An override through the API: the next run lets the current deploys through.
    pub async fn override_freeze(
        &self,
        app: &str,
        reason: &str,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, GuardError> {
        self.app(app)?;
        let (state, _) = self.state(app).await?;
        if !state.frozen() {
            return Ok(false);
        }
        let o = Override {
            reason: reason.to_string(),
            actor: actor.to_string(),
            at: now,
        };
        let stored = self
            .modify(app, |s| {
                s.pending_override = Some(o.clone());
                true
            })
            .await?;
        let mut rec = DecisionRecord::new(
            now,
            DecisionKind::Operator,
            app,
            "api",
            "override",
            format!("override of the freeze requested by {actor}: {reason}"),
        );
        rec.actor = Some(actor.to_string());
        let mut r = RunReport::default();
        self.record(&stored, rec, &mut r).await;
        Ok(true)
    }

    /// Mark a deploy commit known-good (its rollout succeeded).
    pub async fn mark_known_good(
        &self,
        app: &str,
        sha: &str,
        how: &str,
        now: DateTime<Utc>,
    ) -> Result<(), GuardError> {
        self.app(app)?;
        let kg = KnownGood {
            sha: sha.to_string(),
            since: now,
            how: how.to_string(),
        };
        let stored = self
            .modify(app, |s| {
                if s.known_good.as_ref().is_some_and(|k| k.sha == sha) {
                    return false;
                }
                s.known_good = Some(kg.clone());
                s.candidate = None;
                true
            })
            .await?;
        let mut rec = DecisionRecord::new(
            now,
            DecisionKind::KnownGood,
            app,
            how,
            "known-good",
            format!("{sha} is known-good ({how})"),
        );
        rec.commits = vec![sha.to_string()];
        let mut r = RunReport::default();
        self.record(&stored, rec, &mut r).await;
        Ok(())
    }
}

/// Read an app's guard state from a store.
pub async fn read_state(
    store: &dyn StateStore,
    app: &str,
) -> Result<(AppGuardState, Option<u64>), GuardError> {
    let key = gstate::key(app);
    match store.get(&key).await? {
        None => Ok((AppGuardState::default(), None)),
        Some(Versioned { version, value }) => serde_json::from_value(value)
            .map(|s| (s, Some(version)))
            .map_err(|source| GuardError::Decode { key, source }),
    }
}

fn to_json(s: &AppGuardState) -> serde_json::Value {
    // Serialising plain data (strings, numbers, options, vectors) cannot fail.
    serde_json::to_value(s).unwrap_or(serde_json::Value::Null)
}

/// The decision-log entry of a `Record` effect (none for the other effects).
fn record_of(
    app: &AppGuard,
    effect: &Effect,
    trigger: &Trigger,
    now: DateTime<Utc>,
) -> Option<DecisionRecord> {
    let Effect::Record {
        action,
        reason,
        observed,
        commits,
    } = effect
    else {
        return None;
    };
    let kind = if *action == "known-good" {
        DecisionKind::KnownGood
    } else {
        DecisionKind::Guard
    };
    let mut rec = DecisionRecord::new(now, kind, &app.app, trigger.as_str(), *action, reason);
    rec.observed = observed.clone();
    rec.commits = commits.clone();
    if let Trigger::Operator { actor } = trigger {
        rec.actor = Some(actor.clone());
    }
    Some(rec)
}

/// (outcome word, revert commit, reverted commits)
fn describe(o: &RevertOutcome) -> (String, Option<String>, Vec<String>) {
    match o {
        RevertOutcome::Reverted { sha, reverted } => {
            ("reverted".into(), Some(sha.clone()), reverted.clone())
        }
        RevertOutcome::PullRequestOpened {
            sha, url, reverted, ..
        } => (
            format!("pull_request_opened {url}"),
            Some(sha.clone()),
            reverted.clone(),
        ),
        RevertOutcome::PullRequestExists {
            sha, url, state, ..
        } => (
            format!("pull_request_{} {url}", state.as_str()),
            Some(sha.clone()),
            Vec::new(),
        ),
        RevertOutcome::AlreadyReverted { sha } => {
            ("already_reverted".into(), Some(sha.clone()), Vec::new())
        }
        RevertOutcome::NothingToRevert => ("nothing_to_revert".into(), None, Vec::new()),
        RevertOutcome::Conflict { shas, files } => (
            format!("conflict in {}", files.join(", ")),
            None,
            shas.clone(),
        ),
    }
}
