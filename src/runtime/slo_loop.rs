//! The SLO evaluation loop: reloads the SLO specs, evaluates every SLO through the
//! `MetricsSource` port on a jittered schedule, publishes the results (self-metrics, the
//! HTTP API's reports) and runs the error-budget guard after each evaluation and on each
//! alert. Built by the composition root (`crate::daemon`).

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::RngExt;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tracing::Instrument;

use super::coalesce::Coalescer;
use super::evaluator::{self, Evaluation, Target};
use super::guard::GuardRuntime;
use super::metrics::{KindLabels, SloLabels};
use super::server::AppState;
use super::slo_store::SloStore;
use super::webhook::SloIds;
use crate::adapters::leader::Leadership;
use crate::guard::decide::Trigger;
use crate::ports::metrics::MetricsSource;
use crate::slo::budget::BudgetReport;
use crate::slo::windows::WindowSettings;

/// Summary of one evaluation cycle (printed by `run --once`, logged by the daemon).
#[derive(Debug, serde::Serialize)]
pub struct CycleSummary {
    pub slos: usize,
    pub queries: u64,
    pub query_errors: u64,
    pub duration_seconds: f64,
    pub errors: Vec<String>,
    pub reached_prometheus: bool,
    /// Guard runs that failed (git or state errors), one line each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub guard_errors: Vec<String>,
}

/// A request for an immediate evaluation and guard run of one SLO's apps (an alert).
#[derive(Debug, Clone, PartialEq)]
pub struct GuardRequest {
    pub slo_id: String,
    pub trigger: Trigger,
}

/// Everything the evaluation loop and the alert handling share.
pub struct SloLoop {
    settings: WindowSettings,
    source: Arc<dyn MetricsSource>,
    store: Arc<Mutex<SloStore>>,
    state: Arc<AppState>,
    guard: Option<Arc<GuardRuntime>>,
    /// Loaded SLO ids, for the webhook's alert mapping.
    slo_ids: SloIds,
    /// Only the leader runs the guard and the rollouts (they write).
    leadership: Leadership,
}

impl SloLoop {
    /// The SLO specs are read from `slo_paths` at each [`reload`](Self::reload).
    pub fn new(
        settings: WindowSettings,
        source: Arc<dyn MetricsSource>,
        slo_paths: Vec<PathBuf>,
        state: Arc<AppState>,
        guard: Option<Arc<GuardRuntime>>,
        leadership: Leadership,
    ) -> Self {
        SloLoop {
            settings,
            source,
            store: Arc::new(Mutex::new(SloStore::new(slo_paths))),
            state,
            guard,
            slo_ids: SloIds::default(),
            leadership,
        }
    }

    /// The ids of the SLOs loaded now (replaced at each reload).
    pub fn slo_ids(&self) -> &SloIds {
        &self.slo_ids
    }

    /// Run the guard for every app (scheduled) or for the apps of one SLO (an alert).
    /// Not abandoned on shutdown: its state is stored before each effect, and git commands
    /// have their own timeouts.
    pub async fn guard(
        &self,
        reports: &[BudgetReport],
        only_slo: Option<&str>,
        trigger: Trigger,
    ) -> Vec<String> {
        let Some(g) = &self.guard else {
            return Vec::new();
        };
        if !self.leadership.is_leader() {
            tracing::debug!("not the leader: the guard does not run on this replica");
            return Vec::new();
        }
        let apps: Vec<String> = g
            .apps()
            .iter()
            .filter(|a| only_slo.is_none_or(|s| a.slos.iter().any(|x| x == s)))
            .map(|a| a.app.clone())
            .collect();
        let targets = self.targets();
        let mut errors = Vec::new();
        for app in apps {
            if let Err(e) = self
                .guard_app(g, &app, reports, &targets, trigger.clone())
                .await
            {
                errors.push(e);
            }
        }
        errors
    }

    /// One guard run of one app; `Err` is the line for the cycle summary.
    async fn guard_app(
        &self,
        g: &GuardRuntime,
        app: &str,
        reports: &[BudgetReport],
        targets: &[Target],
        trigger: Trigger,
    ) -> Result<(), String> {
        let span = tracing::info_span!("guard", app = %app, trigger = trigger.as_str());
        let how = trigger.as_str();
        match g
            .run_app_with(app, reports, targets, trigger, chrono::Utc::now())
            .instrument(span)
            .await
        {
            Ok(r) => {
                for a in &r.actions {
                    let kind = if a == "known-good" {
                        "known_good"
                    } else {
                        "guard"
                    };
                    self.state.metrics.rollout.decision(kind, a);
                }
                if !r.actions.is_empty() {
                    tracing::info!(app = %app, frozen = r.frozen, actions = ?r.actions, "guard acted");
                }
                tracing::debug!(app = %app, trigger = how, "guard run finished");
                Ok(())
            }
            Err(e) => {
                tracing::error!(app = %app, kind = e.metric_label(), "guard run failed: {e}");
                self.state
                    .metrics
                    .guard
                    .failures
                    .get_or_create(&KindLabels {
                        kind: e.metric_label().into(),
                    })
                    .inc();
                Err(format!("guard {app}: {e}"))
            }
        }
    }

    /// The alerts waiting at once (coalesced, at most one per SLO: `runtime::coalesce`): one
    /// evaluation of the SLOs of every app concerned, then one guard run per app, with the
    /// trigger of the first alert that concerned it.
    pub async fn on_alerts(&self, batch: Vec<GuardRequest>) {
        let Some(g) = &self.guard else {
            for req in &batch {
                tracing::info!(slo = %req.slo_id, "alert for an SLO no guarded app uses (guard.apps is empty)");
            }
            return;
        };
        if !self.leadership.is_leader() {
            tracing::debug!("not the leader: the guard does not run on this replica");
            return;
        }
        let mut apps: Vec<(String, Trigger)> = Vec::new();
        let mut wanted = std::collections::HashSet::new();
        for req in batch {
            let concerned = g.apps_for_slo(&req.slo_id);
            if concerned.is_empty() {
                tracing::info!(slo = %req.slo_id, "alert for an SLO no guarded app uses");
            }
            for a in concerned {
                wanted.extend(a.slos.iter().cloned());
                if !apps.iter().any(|(x, _)| *x == a.app) {
                    apps.push((a.app.clone(), req.trigger.clone()));
                }
            }
        }
        if apps.is_empty() {
            return;
        }
        let targets: Vec<Target> = self
            .targets()
            .into_iter()
            .filter(|t| wanted.contains(&t.slo.id))
            .collect();
        let ev = evaluator::evaluate(self.source.as_ref(), &targets, None).await;
        // Counted like the schedule's queries: the metric says what Prometheus was sent.
        let m = &self.state.metrics;
        m.queries.inc_by(ev.queries);
        m.query_errors.inc_by(ev.query_errors);
        for e in ev.errors() {
            tracing::warn!("{e}");
        }
        let reports: Vec<BudgetReport> =
            ev.results.into_iter().filter_map(|(_, r)| r.ok()).collect();
        for (app, trigger) in apps {
            // Failures are logged and counted by guard_app; the schedule retries.
            let _ = self.guard_app(g, &app, &reports, &targets, trigger).await;
        }
    }

    /// Reload specs off the async runtime (file I/O). Returns whether the set changed.
    pub async fn reload(&self) -> bool {
        let store = self.store.clone();
        let res = tokio::task::spawn_blocking(move || {
            // The store is only touched here and in `targets`; a poisoned lock still holds
            // a consistent SLO list (reload replaces it in one assignment).
            let mut s = store.lock().unwrap_or_else(|p| p.into_inner());
            let r = s.reload();
            let ids: Vec<String> = s.slos().iter().map(|x| x.id.clone()).collect();
            (r, ids, s.failing_files().len())
        })
        .await;
        let Ok((r, ids, failing)) = res else {
            tracing::error!("SLO reload task panicked; keeping the previous SLOs");
            return false;
        };
        let loaded = ids.len();
        self.slo_ids.replace(ids);
        for d in &r.errors {
            tracing::error!(file = %d.file.display(), doc = ?d.doc_index, field = %d.field, "{}", d.message);
        }
        for d in &r.warnings {
            tracing::warn!(file = %d.file.display(), doc = ?d.doc_index, field = %d.field, "{}", d.message);
        }
        let m = &self.state.metrics;
        m.slos_loaded.set(i64::try_from(loaded).unwrap_or(i64::MAX));
        m.spec_errors
            .set(i64::try_from(failing).unwrap_or(i64::MAX));
        if r.changed {
            m.spec_reloads.inc();
            tracing::info!(slos = loaded, "SLO specs loaded");
        }
        r.changed
    }

    fn targets(&self) -> Vec<Target> {
        let store = self.store.lock().unwrap_or_else(|p| p.into_inner());
        store
            .slos()
            .iter()
            .filter_map(|slo| match self.settings.for_slo(slo) {
                Ok(windows) => Some(Target {
                    slo: std::sync::Arc::clone(slo),
                    windows,
                }),
                Err(e) => {
                    tracing::error!(slo = %slo.id, "{e}; SLO skipped");
                    None
                }
            })
            .collect()
    }

    /// Evaluate every SLO (abandonable: it only reads) and publish the results.
    pub async fn evaluate(&self) -> (CycleSummary, CycleReports) {
        let targets = self.targets();
        let span = tracing::info_span!("evaluation", slos = targets.len());
        let ev: Evaluation = evaluator::evaluate(self.source.as_ref(), &targets, None)
            .instrument(span)
            .await;
        self.record(&targets, ev)
    }

    /// One full cycle: evaluation, then the guard.
    pub async fn cycle(&self) -> CycleSummary {
        let (mut summary, reports) = self.evaluate().await;
        summary.guard_errors = self.guard(reports.fresh(), None, Trigger::Schedule).await;
        summary
    }

    /// Publish one evaluation: the self-metrics, the HTTP API's reports (this cycle's, and
    /// the last good one of each SLO that failed it) and the summary. The reports are moved
    /// out of `ev` and shared with the caller, not copied: at 10,000 SLOs a copy is megabytes.
    fn record(&self, targets: &[Target], ev: Evaluation) -> (CycleSummary, CycleReports) {
        let m = &self.state.metrics;
        let label = |t: &Target| SloLabels::new(&t.slo.id, &t.slo.service, &t.slo.name);
        let current: Vec<SloLabels> = targets.iter().map(label).collect();
        let failed: Vec<SloLabels> = targets
            .iter()
            .zip(&ev.results)
            .filter(|(_, (_, r))| r.is_err())
            .map(|(t, _)| label(t))
            .collect();
        {
            let reports: Vec<_> = ev.reports().collect();
            m.publish(&reports, &failed, &current);
        }
        drop(current);
        m.evaluations.inc();
        m.queries.inc_by(ev.queries);
        m.query_errors.inc_by(ev.query_errors);
        m.evaluation_duration.observe(ev.elapsed.as_secs_f64());
        m.last_evaluation
            .set(chrono::Utc::now().timestamp_millis() as f64 / 1000.0);
        let mut errors: Vec<String> = ev.errors().map(|e| e.to_string()).collect();
        if ev.unreachable && targets.is_empty() {
            // No SLO carries the failure: say it once, so `run --once` exits 1.
            errors.push("Prometheus could not be reached (no SLOs are loaded)".into());
        }
        if !errors.is_empty() {
            m.evaluation_errors.inc();
        }
        for e in &errors {
            tracing::warn!("{e}");
        }
        let reached = !ev.unreachable && !ev.errors().any(|e| e.is_unreachable());
        if reached {
            self.state.ready.store(true, Ordering::Release);
        }
        let summary = CycleSummary {
            slos: targets.len(),
            queries: ev.queries,
            query_errors: ev.query_errors,
            duration_seconds: ev.elapsed.as_secs_f64(),
            errors,
            reached_prometheus: reached,
            guard_errors: Vec::new(),
        };
        let reports = {
            let mut latest = self
                .state
                .reports
                .write()
                .unwrap_or_else(|p| p.into_inner());
            let mut next: Vec<BudgetReport> =
                ev.results.into_iter().filter_map(|(_, r)| r.ok()).collect();
            let fresh = next.len();
            // Keep the last good report of SLOs that failed this cycle.
            for l in &failed {
                if let Some(old) = latest.iter().find(|r| r.id == *l.sloth_id) {
                    next.push(old.clone());
                }
            }
            let all = Arc::new(next);
            *latest = all.clone();
            CycleReports { all, fresh }
        };
        tracing::info!(
            slos = summary.slos,
            queries = summary.queries,
            errors = summary.errors.len(),
            seconds = summary.duration_seconds,
            "evaluation cycle done"
        );
        (summary, reports)
    }
}

/// The reports of one evaluation cycle, shared with the HTTP API: this cycle's, then the
/// last good report of each SLO that failed it.
#[derive(Debug, Clone, Default)]
pub struct CycleReports {
    all: Arc<Vec<BudgetReport>>,
    fresh: usize,
}

impl CycleReports {
    /// The reports this cycle made (what the guard acts on).
    pub fn fresh(&self) -> &[BudgetReport] {
        self.all.get(..self.fresh).unwrap_or_default()
    }
}

/// Every `every`: reload the SLO specs; a change wakes the scheduler, so that new or
/// changed SLOs are evaluated right away. Ends when `stop` turns true.
pub fn spawn_reloader(
    d: Arc<SloLoop>,
    every: Duration,
    wake: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => break,
            }
            if d.reload().await {
                // New or changed SLOs are evaluated right away.
                wake.notify_one();
            }
        }
    })
}

/// The schedule: evaluate every SLO and run the guard, then wait `interval` (±`jitter`),
/// a reload's wake-up or alerts (coalesced per SLO, acted on at once, for their SLOs only). Ends when `stop`
/// turns true.
pub fn spawn_scheduler(
    d: Arc<SloLoop>,
    interval: Duration,
    jitter: f64,
    wake: Arc<Notify>,
    pending: Arc<Coalescer<String, GuardRequest>>,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if *stop.borrow() {
                break;
            }
            // Evaluation only reads, so shutdown abandons one in progress rather than
            // wait for slow Prometheus queries past the pod's termination grace period.
            let reports = tokio::select! {
                (_, reports) = d.evaluate() => reports,
                _ = stop.changed() => break,
            };
            d.guard(reports.fresh(), None, Trigger::Schedule).await;
            // While a deploy is under verification, evaluate once per slice.
            let every = match d.guard.as_ref().and_then(|g| g.verification_cadence()) {
                Some(step) => interval.min(step.max(Duration::from_secs(1))),
                None => interval,
            };
            let sleep = tokio::time::sleep(jittered(every, jitter));
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    _ = &mut sleep => break,
                    _ = wake.notified() => break,
                    _ = pending.ready() => {
                        // Alerts: act on their SLOs now, then keep the schedule.
                        let batch = pending.take_all().into_iter().map(|(_, r)| r).collect();
                        tokio::select! {
                            _ = d.on_alerts(batch) => {}
                            _ = stop.changed() => return,
                        }
                    }
                    _ = stop.changed() => return,
                }
            }
        }
    })
}

/// `interval` spread uniformly by ±`jitter` (a fraction), so replicas and restarts do not
/// query Prometheus in lockstep.
pub fn jittered(interval: Duration, jitter: f64) -> Duration {
    if jitter <= 0.0 {
        return interval;
    }
    let f = rand::rng().random_range(-jitter..=jitter);
    interval.mul_f64((1.0 + f).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_bounds() {
        let base = Duration::from_secs(300);
        for _ in 0..1000 {
            let d = jittered(base, 0.1);
            assert!(
                d >= Duration::from_secs(270) && d <= Duration::from_secs(330),
                "{d:?}"
            );
        }
        assert_eq!(jittered(base, 0.0), base);
    }
}
