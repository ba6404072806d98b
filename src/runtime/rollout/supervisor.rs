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
use super::controller::RolloutController;
use crate::ports::rollouts::{RolloutSet, RolloutSource, RolloutSourceError};
use crate::rollout::status::PhaseName;
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
        }
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
        self.metrics
            .set_rollout_specs(running.len(), report.rejected.len());
        report.kept.sort();
        report.rejected.sort();
        report
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

async fn stop(r: Running) {
    let _ = r.stop.send(true);
    if let Err(e) = r.task.await {
        tracing::error!(rollout = %r.controller.key(), "rollout controller task failed: {e}");
    }
}
