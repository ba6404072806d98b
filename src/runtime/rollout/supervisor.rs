//! The rollout supervisor: one controller task per Rollout the [`RolloutSource`] defines,
//! kept in step with it.
//!
//! [`RolloutSupervisor::sync_once`] reads the source and, for each `namespace/name`:
//!
//! - **new and valid**: builds a controller (the daemon's factory: router, stores, ports),
//!   registers it for the API and starts its task;
//! - **spec changed**: builds the new controller first, then stops the old one (a
//!   reconcile in progress finishes: its state is stored before each effect) and starts
//!   the new one, which resumes from the stored state (same step, time left in the
//!   interval);
//! - **now invalid**: keeps running its last valid spec, and reports the problems; an
//!   invalid Rollout with no controller is not started;
//! - **out of scope** ([`crate::rollout::scope`]: a route in another namespace, a GitOps path
//!   or app its namespace may not use): refused like an invalid one (not started; a running
//!   controller keeps its last admitted spec). Its status gets the condition
//!   `Admitted=False` with the reason and message, and the decision log a `refuse` record
//!   naming the field and the rule, once per refused spec (the stored condition is the
//!   memory across restarts and replicas); counted in `slogate_rollouts{state="refused"}`.
//!   A Rollout admitted again gets `Admitted=True` (and an `admit` record) when its
//!   controller starts;
//! - **gone** (deleted object, removed file): stops its controller and drops its gauges.
//!   The route's weights and the stored state stay as they were: deleting a Rollout
//!   mid-rollout stops slogate from acting on it, it does not roll anything back. Only a
//!   complete reading ([`RolloutSet::is_complete`]) stops anything, and a failed reading
//!   changes nothing.
//!
//! [`RolloutSupervisor::run`] repeats that every `rollouts.resync_interval`, and as soon as
//! the source reports a change ([`RolloutSource::changed`], a watch in a cluster), until
//! shutdown, then stops every controller and waits for them. Problems are logged when they change,
//! not at every resync.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{watch, Mutex};
use tokio::task::JoinHandle;
use tracing::Instrument;

use super::api::RolloutRegistry;
use super::commands::{read_status, status_key};
use super::controller::RolloutController;
use crate::ports::rollouts::{RolloutSet, RolloutSource, RolloutSourceError};
use crate::ports::state::{DecisionKind, DecisionRecord, StateError, StateStore};
use crate::rollout::scope::{self, Scope, Violation};
use crate::rollout::status::{Condition, ConditionStatus, PhaseName, ADMITTED};
use crate::rollout::Rollout;
use crate::runtime::metrics::RolloutMetrics;

/// How long after a reported change the source is read, so that a burst of changes is read
/// once.
pub const CHANGE_SETTLE: Duration = Duration::from_millis(500);

/// Builds the controller of a Rollout (the daemon wires its ports); an error names what
/// could not be set up.
pub type ControllerFactory =
    Box<dyn Fn(Rollout) -> Result<Arc<RolloutController>, String> + Send + Sync>;

/// What one [`RolloutSupervisor::sync_once`] changed, by `namespace/name`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    pub started: Vec<String>,
    /// Spec changed: the controller was replaced.
    pub restarted: Vec<String>,
    pub stopped: Vec<String>,
    /// Invalid now; their controllers keep the last valid spec.
    pub kept: Vec<String>,
    /// Invalid, or their controller could not be built; not running.
    pub rejected: Vec<String>,
    /// Out of scope ([`crate::rollout::scope`]): refused (and in `rejected` when not
    /// running, in `kept` when their last admitted spec runs).
    pub refused: Vec<String>,
    /// Every problem of the reading, one line each.
    pub problems: Vec<String>,
    /// False when the reading had errors not tied to one Rollout: nothing was stopped.
    pub complete: bool,
}

struct Running {
    controller: Arc<RolloutController>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// Keeps one controller task per Rollout of a source.
pub struct RolloutSupervisor {
    source: Arc<dyn RolloutSource>,
    factory: ControllerFactory,
    registry: Arc<RolloutRegistry>,
    metrics: RolloutMetrics,
    running: Mutex<BTreeMap<String, Running>>,
    /// The problems last logged, to log only changes.
    logged: Mutex<Vec<String>>,
    admission: Admission,
    /// Refused Rollouts by key: the spec whose refusal is reported (its condition stored),
    /// so that a resync does not report it again.
    refused: Mutex<BTreeMap<String, Refusal>>,
}

/// What a Rollout may reach, and where a refusal is reported.
pub struct Admission {
    pub scope: Scope,
    /// The store of the Rollouts' statuses (the `Admitted` condition) and of the decision
    /// log; `None`: refusals are only logged and counted.
    pub store: Option<Arc<dyn StateStore>>,
}

impl Default for Admission {
    /// The default scope (routes in the Rollout's own namespace, every GitOps path), no store.
    fn default() -> Self {
        Admission {
            scope: Scope::default(),
            store: None,
        }
    }
}

/// How far a refusal has been reported.
struct Refusal {
    rollout: Rollout,
    /// The decision record is appended.
    recorded: bool,
    /// The condition is stored (or there is nowhere to store it): nothing left to do.
    done: bool,
}

impl std::fmt::Debug for RolloutSupervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RolloutSupervisor")
            .field("source", &self.source.describe())
            .field("registry", &self.registry)
            .finish_non_exhaustive()
    }
}

impl RolloutSupervisor {
    pub fn new(
        source: Arc<dyn RolloutSource>,
        factory: ControllerFactory,
        registry: Arc<RolloutRegistry>,
    ) -> Self {
        RolloutSupervisor {
            source,
            factory,
            registry,
            metrics: RolloutMetrics::default(),
            running: Mutex::new(BTreeMap::new()),
            logged: Mutex::new(Vec::new()),
            admission: Admission::default(),
            refused: Mutex::new(BTreeMap::new()),
        }
    }

    /// Check every Rollout against `admission.scope` before it runs, and report refusals in
    /// `admission.store` (default: the default scope, no store).
    pub fn with_admission(mut self, admission: Admission) -> Self {
        self.admission = admission;
        self
    }

    /// Publish `slogate_rollouts` and drop a stopped rollout's gauges in `metrics` (the
    /// controllers' own series).
    pub fn with_metrics(mut self, metrics: RolloutMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    pub fn registry(&self) -> &Arc<RolloutRegistry> {
        &self.registry
    }

    /// What the source is.
    pub fn describe(&self) -> String {
        self.source.describe()
    }

    /// The specs of the running controllers, by `namespace/name`.
    pub async fn running(&self) -> BTreeMap<String, Rollout> {
        self.running
            .lock()
            .await
            .iter()
            .map(|(k, r)| (k.clone(), r.controller.rollout().clone()))
            .collect()
    }

    /// Read the source once and bring the controllers in step with it.
    pub async fn sync_once(&self) -> Result<SyncReport, RolloutSourceError> {
        let set = self.source.list().await?;
        Ok(self.apply(set).await)
    }

    async fn apply(&self, set: RolloutSet) -> SyncReport {
        let mut report = SyncReport {
            complete: set.is_complete(),
            problems: set.errors.clone(),
            ..SyncReport::default()
        };
        for problems in set.invalid.values() {
            report.problems.extend(problems.iter().cloned());
        }
        let mut running = self.running.lock().await;
        let mut defined: BTreeSet<String> = set.invalid.keys().cloned().collect();
        for rollout in set.rollouts {
            let key = rollout.key();
            defined.insert(key.clone());
            let changed = match running.get(&key) {
                Some(r) if r.controller.rollout() == &rollout => continue,
                Some(_) => true,
                None => false,
            };
            let violations = scope::check(&rollout, &self.admission.scope);
            if !violations.is_empty() {
                for v in &violations {
                    report
                        .problems
                        .push(format!("Rollout {key}: refused: {}", v.message));
                }
                report.refused.push(key.clone());
                if changed {
                    report.kept.push(key.clone());
                } else {
                    report.rejected.push(key.clone());
                }
                self.refuse(&rollout, &violations).await;
                continue;
            }
            let was_refused = self.refused.lock().await.remove(&key).is_some();
            let admitted = rollout.clone();
            let controller = match (self.factory)(rollout) {
                Ok(c) => c,
                Err(e) => {
                    report
                        .problems
                        .push(format!("Rollout {key}: cannot start its controller: {e}"));
                    if changed {
                        // The old spec keeps running: a spec that cannot be wired must not
                        // stop a rollout in flight.
                        report.kept.push(key);
                    } else {
                        report.rejected.push(key);
                    }
                    continue;
                }
            };
            if was_refused || !changed {
                // Admitted now: a condition a refusal stored says so (also after a restart).
                self.admit(&admitted).await;
            }
            if let Some(old) = running.remove(&key) {
                stop(old).await;
                report.restarted.push(key.clone());
            } else {
                report.started.push(key.clone());
            }
            running.insert(key, self.start(controller));
        }
        for key in set.invalid.keys() {
            if running.contains_key(key) {
                report.kept.push(key.clone());
            } else {
                report.rejected.push(key.clone());
            }
        }
        if report.complete {
            self.refused
                .lock()
                .await
                .retain(|k, _| defined.contains(k) && report.refused.contains(k));
            let gone: Vec<String> = running
                .keys()
                .filter(|k| !defined.contains(*k))
                .cloned()
                .collect();
            for key in gone {
                if let Some(old) = running.remove(&key) {
                    self.registry.remove(&key);
                    let r = old.controller.rollout().clone();
                    stop(old).await;
                    self.forget(&r);
                    report.stopped.push(key);
                }
            }
        }
        let refused_idle: Vec<&String> = report
            .rejected
            .iter()
            .filter(|k| report.refused.contains(k))
            .collect();
        if let Some(store) = &self.admission.store {
            self.registry.set_refused(
                refused_idle
                    .iter()
                    .map(|k| ((*k).clone(), store.clone()))
                    .collect(),
            );
        }
        let refused_idle = refused_idle.len();
        self.metrics.set_rollout_specs(
            running.len(),
            report.rejected.len() - refused_idle,
            report.refused.len(),
        );
        report.kept.sort();
        report.rejected.sort();
        report.refused.sort();
        report
    }

    /// Report the refusal of `rollout`: the decision record, then the `Admitted=False`
    /// condition in its status, each once per refused spec. A failed write is tried again at
    /// the next resync.
    async fn refuse(&self, rollout: &Rollout, violations: &[Violation]) {
        let key = rollout.key();
        let mut refused = self.refused.lock().await;
        if refused.get(&key).is_none_or(|r| &r.rollout != rollout) {
            refused.insert(
                key.clone(),
                Refusal {
                    rollout: rollout.clone(),
                    recorded: false,
                    done: false,
                },
            );
        }
        let Some(entry) = refused.get_mut(&key) else {
            return; // inserted just above
        };
        if entry.done {
            return;
        }
        let Some(store) = &self.admission.store else {
            entry.done = true;
            return;
        };
        let now = chrono::Utc::now();
        let first = &violations[0];
        let message: Vec<&str> = violations.iter().map(|v| v.message.as_str()).collect();
        let condition = Condition {
            type_: ADMITTED.to_string(),
            status: ConditionStatus::False,
            reason: first.reason.to_string(),
            message: message.join("; "),
            last_transition_time: now,
            observed_generation: rollout.metadata.generation,
        };
        let (ns, name) = (rollout.namespace(), rollout.metadata.name.as_str());
        let (mut status, version) = match read_status(store.as_ref(), ns, name).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(rollout = %key, "cannot read the status of a refused Rollout: {e}");
                return;
            }
        };
        if !status.set_condition(condition.clone()) {
            // Already reported (before a restart, or by another replica).
            entry.done = true;
            return;
        }
        if !entry.recorded {
            let mut rec = DecisionRecord::new(
                now,
                DecisionKind::Rollout,
                &key,
                "admission",
                "refuse",
                format!("Rollout {key} is not run: {}", condition.message),
            );
            rec.observed = serde_json::json!({
                "condition": ADMITTED,
                "reason": first.reason,
                "generation": rollout.metadata.generation,
                "violations": violations,
            });
            rec.outcome = Some("refused".into());
            match store.append_decision(&rec).await {
                Ok(()) => entry.recorded = true,
                Err(e) => {
                    tracing::warn!(rollout = %key, "cannot record the refusal: {e}");
                    return;
                }
            }
        }
        match put_status(store.as_ref(), ns, name, &status, version).await {
            Ok(()) => entry.done = true,
            Err(e) => {
                tracing::warn!(rollout = %key, "cannot store the Admitted condition of a refused Rollout (tried again at the next resync): {e}")
            }
        }
    }

    /// A Rollout about to run: if its status says it was refused, say it is admitted.
    async fn admit(&self, rollout: &Rollout) {
        let Some(store) = &self.admission.store else {
            return;
        };
        let key = rollout.key();
        let (ns, name) = (rollout.namespace(), rollout.metadata.name.as_str());
        let (mut status, version) = match read_status(store.as_ref(), ns, name).await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(rollout = %key, "cannot read the status before starting: {e}");
                return;
            }
        };
        if status
            .condition(ADMITTED)
            .is_none_or(|c| c.status == ConditionStatus::True)
        {
            return;
        }
        let now = chrono::Utc::now();
        status.set_condition(Condition {
            type_: ADMITTED.to_string(),
            status: ConditionStatus::True,
            reason: "WithinScope".into(),
            message: "the Rollout reaches only what its namespace may use".into(),
            last_transition_time: now,
            observed_generation: rollout.metadata.generation,
        });
        match put_status(store.as_ref(), ns, name, &status, version).await {
            Ok(()) => {
                let rec = DecisionRecord::new(
                    now,
                    DecisionKind::Rollout,
                    &key,
                    "admission",
                    "admit",
                    format!("Rollout {key} was refused and is now within its scope: it runs"),
                );
                if let Err(e) = store.append_decision(&rec).await {
                    tracing::warn!(rollout = %key, "cannot record the admission: {e}");
                }
            }
            Err(e) => {
                tracing::warn!(rollout = %key, "cannot store the Admitted condition: {e}")
            }
        }
    }

    fn start(&self, controller: Arc<RolloutController>) -> Running {
        let (stop, stop_rx) = watch::channel(false);
        self.registry.insert(controller.clone());
        let span = tracing::info_span!("rollout", rollout = %controller.key());
        let task = tokio::spawn(controller.clone().run(stop_rx).instrument(span));
        Running {
            controller,
            stop,
            task,
        }
    }

    fn forget(&self, r: &Rollout) {
        let phases: Vec<&str> = PhaseName::ALL.iter().map(|p| p.as_str()).collect();
        let mut metrics: Vec<&str> = r
            .spec
            .analysis
            .metrics
            .iter()
            .map(|m| m.name.as_str())
            .collect();
        metrics.push(crate::rollout::checks::ERROR_COUNTS_CHECK);
        self.metrics
            .forget_rollout(r.namespace(), &r.metadata.name, &phases, &metrics);
    }

    /// Log a sync's outcome: changes at info, problems at error when they differ from the
    /// last ones logged.
    async fn log(&self, report: &SyncReport) {
        for (what, keys) in [
            ("started", &report.started),
            ("restarted with a new spec", &report.restarted),
            ("stopped: its Rollout is gone", &report.stopped),
        ] {
            for key in keys {
                tracing::info!(rollout = %key, "rollout controller {what}");
            }
        }
        let mut logged = self.logged.lock().await;
        if *logged != report.problems {
            for p in &report.problems {
                tracing::error!("{p}");
            }
            if !report.kept.is_empty() {
                tracing::warn!(
                    rollouts = %report.kept.join(", "),
                    "invalid specs: these rollouts keep running their last valid spec"
                );
            }
            if !report.complete {
                tracing::warn!(
                    "{}: not every Rollout could be read; no controller is stopped until it can",
                    self.source.describe()
                );
            }
            logged.clone_from(&report.problems);
        }
    }

    /// Sync now and every `every` until `stop` turns true, then stop every controller and
    /// wait for them. A failed reading is logged and changes nothing.
    pub async fn run(self: Arc<Self>, every: Duration, mut stop_rx: watch::Receiver<bool>) {
        loop {
            if *stop_rx.borrow() {
                break;
            }
            match self.sync_once().await {
                Ok(report) => self.log(&report).await,
                Err(e) => {
                    self.metrics.rollout_source_error();
                    tracing::error!("{e}; the rollout controllers stay as they are");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = self.source.changed() => {
                    tracing::debug!("the Rollouts changed: reading them now");
                    // Let a burst of changes (`kubectl apply -f dir/`) land: one reading.
                    tokio::select! {
                        _ = tokio::time::sleep(CHANGE_SETTLE) => {}
                        _ = stop_rx.changed() => break,
                    }
                }
                _ = stop_rx.changed() => break,
            }
        }
        self.stop_all().await;
    }

    /// Stop every controller and wait for each (a reconcile in progress finishes).
    pub async fn stop_all(&self) {
        let mut running = self.running.lock().await;
        for r in running.values() {
            let _ = r.stop.send(true);
        }
        for (key, r) in std::mem::take(&mut *running) {
            self.registry.remove(&key);
            if let Err(e) = r.task.await {
                tracing::error!(rollout = %key, "rollout controller task failed: {e}");
            }
        }
    }
}

/// Store `status` under the rollout's key, guarded by `version`.
async fn put_status(
    store: &dyn StateStore,
    namespace: &str,
    name: &str,
    status: &crate::rollout::RolloutStatus,
    version: Option<u64>,
) -> Result<(), StateError> {
    let value = serde_json::to_value(status).map_err(|e| StateError::Api {
        source: Box::new(e),
    })?;
    store
        .put(&status_key(namespace, name), value, version)
        .await
        .map(|_| ())
}

async fn stop(r: Running) {
    let _ = r.stop.send(true);
    if let Err(e) = r.task.await {
        tracing::error!(rollout = %r.controller.key(), "rollout controller task failed: {e}");
    }
}
