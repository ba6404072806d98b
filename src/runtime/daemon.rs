//! `slogate run`: wires the SLO store, the Prometheus adapter, the evaluation scheduler and
//! the HTTP server together, and shuts all of them down gracefully on SIGTERM/SIGINT.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::RngExt;
use tokio::sync::{watch, Notify};
use tracing::Instrument;

use super::config::Config;
use super::evaluator::{self, Evaluation, Target};
use super::guard::GuardRuntime;
use super::metrics::SloLabels;
use super::server::{self, AppState};
use super::slo_store::SloStore;
use crate::adapters::git::GitCli;
use crate::adapters::prometheus::Prometheus;
use crate::adapters::state::FileStore;
use crate::guard::decide::Trigger;
use crate::ports::gitops::GitOpsRepo;
use crate::ports::leader::{AlwaysLeader, LeaderElector, Leadership};
use crate::ports::metrics::MetricsSource;
use crate::ports::notify::Notifier;
use crate::ports::state::StateStore;
use crate::slo::budget::BudgetReport;
use crate::slo::windows::WindowSettings;
use crate::slo::AlertWindows;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("{0}")]
    Config(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("HTTP server failed: {0}")]
    Server(#[source] std::io::Error),
}

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

/// Everything the loops share.
struct Daemon {
    settings: WindowSettings,
    source: Arc<dyn MetricsSource>,
    store: Arc<Mutex<SloStore>>,
    state: Arc<AppState>,
    guard: Option<Arc<GuardRuntime>>,
    /// Loaded SLO ids, for the webhook's alert mapping.
    slo_ids: super::webhook::SloIds,
    /// Only the leader runs the guard and the rollouts (they write).
    leadership: Leadership,
    /// The GitOps repository, shared by the guard and the rollouts (one work tree).
    repo: Option<Arc<dyn GitOpsRepo>>,
    notifiers: Vec<Arc<dyn Notifier>>,
}

impl Daemon {
    /// `states` is [`state_store`]'s.
    fn new(
        cfg: &Config,
        leadership: Leadership,
        states: Option<Arc<dyn StateStore>>,
    ) -> Result<Self, DaemonError> {
        let catalog = match &cfg.evaluation.windows_file {
            Some(f) => Some(
                AlertWindows::from_file(f)
                    .map_err(|e| DaemonError::Config(format!("evaluation.windows_file: {e}")))?,
            ),
            None => None,
        };
        let settings = WindowSettings {
            default_period: cfg.evaluation.period,
            catalog,
        };
        let source = Prometheus::new(&cfg.prometheus.url, cfg.prometheus.timeout.as_std())
            .map_err(|e| DaemonError::Config(format!("prometheus.url: {e}")))?;
        let notifiers = crate::adapters::notify::build_notifiers(&cfg.notifications)
            .map_err(|e| DaemonError::Config(format!("notifications: {e}")))?;
        // One work tree, one adapter: the guard and the rollouts share it (and its lock).
        let repo: Option<Arc<dyn GitOpsRepo>> = match cfg.repo_config() {
            Some(rc) if !cfg.guard.apps.is_empty() || cfg.rollouts.enabled() => Some(Arc::new(
                GitCli::new(rc).map_err(|e| DaemonError::Config(format!("gitops: {e}")))?,
            )),
            _ => None,
        };
        let defaults = AppState::default();
        let guard = match (&repo, &states) {
            (Some(repo), Some(states)) if !cfg.guard.apps.is_empty() => Some(Arc::new(
                GuardRuntime::new(
                    cfg.guarded_apps(),
                    states.clone(),
                    repo.clone(),
                    sync_triggers(cfg)?,
                    notifiers.clone(),
                )
                .with_metrics(defaults.metrics.guard.clone()),
            )),
            _ => None,
        };
        let api_token = match &cfg.api.token {
            Some(src) => Some(
                src.read()
                    .map_err(|e| DaemonError::Config(format!("api.token: {e}")))?,
            ),
            None => None,
        };
        let state = AppState {
            store: states,
            guard: guard.clone(),
            api_token,
            ..defaults
        };
        Ok(Daemon {
            settings,
            source: Arc::new(source),
            store: Arc::new(Mutex::new(SloStore::new(cfg.slos.paths.clone()))),
            state: Arc::new(state),
            guard,
            slo_ids: super::webhook::SloIds::default(),
            leadership,
            repo,
            notifiers,
        })
    }

    /// Run the guard for every app (scheduled) or for the apps of one SLO (an alert).
    /// Not abandoned on shutdown: its state is stored before each effect, and git commands
    /// have their own timeouts.
    async fn guard(
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
        let mut errors = Vec::new();
        for app in apps {
            if let Err(e) = self.guard_app(g, &app, reports, trigger.clone()).await {
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
        trigger: Trigger,
    ) -> Result<(), String> {
        let span = tracing::info_span!("guard", app = %app, trigger = trigger.as_str());
        match g
            .run_app(app, reports, trigger, chrono::Utc::now())
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
                Ok(())
            }
            Err(e) => {
                tracing::error!(app = %app, "guard run failed: {e}");
                Err(format!("guard {app}: {e}"))
            }
        }
    }

    /// The alerts waiting at once (coalesced, at most one per SLO): one evaluation of the
    /// SLOs of every app concerned, then one guard run per app, with the trigger of the first
    /// alert that concerned it.
    async fn on_alerts(&self, batch: Vec<GuardRequest>) {
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
        for e in ev.errors() {
            tracing::warn!("{e}");
        }
        let reports: Vec<BudgetReport> = ev.reports().cloned().collect();
        for (app, trigger) in apps {
            // Failures are logged by guard_app; the schedule retries.
            let _ = self.guard_app(g, &app, &reports, trigger).await;
        }
    }

    /// Reload specs off the async runtime (file I/O). Returns whether the set changed.
    async fn reload(&self) -> bool {
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
                    slo: slo.clone(),
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
    async fn evaluate(&self) -> (CycleSummary, Vec<BudgetReport>) {
        let targets = self.targets();
        let span = tracing::info_span!("evaluation", slos = targets.len());
        let ev: Evaluation = evaluator::evaluate(self.source.as_ref(), &targets, None)
            .instrument(span)
            .await;
        let summary = self.record(&targets, &ev);
        (summary, ev.reports().cloned().collect())
    }

    /// One full cycle: evaluation, then the guard.
    async fn cycle(&self) -> CycleSummary {
        let (mut summary, reports) = self.evaluate().await;
        summary.guard_errors = self.guard(&reports, None, Trigger::Schedule).await;
        summary
    }

    fn record(&self, targets: &[Target], ev: &Evaluation) -> CycleSummary {
        let m = &self.state.metrics;
        let label = |t: &Target| SloLabels {
            sloth_id: t.slo.id.clone(),
            sloth_service: t.slo.service.clone(),
            sloth_slo: t.slo.name.clone(),
        };
        let current: Vec<SloLabels> = targets.iter().map(label).collect();
        let failed: Vec<SloLabels> = targets
            .iter()
            .zip(&ev.results)
            .filter(|(_, (_, r))| r.is_err())
            .map(|(t, _)| label(t))
            .collect();
        let reports: Vec<_> = ev.reports().collect();
        m.publish(&reports, &failed, &current);
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
        {
            let mut latest = self
                .state
                .reports
                .write()
                .unwrap_or_else(|p| p.into_inner());
            // Keep the last good report of SLOs that failed this cycle.
            let mut next: Vec<_> = reports.iter().map(|r| (*r).clone()).collect();
            for l in &failed {
                if let Some(old) = latest.iter().find(|r| r.id == l.sloth_id) {
                    next.push(old.clone());
                }
            }
            *latest = next;
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
        tracing::info!(
            slos = summary.slos,
            queries = summary.queries,
            errors = summary.errors.len(),
            seconds = summary.duration_seconds,
            "evaluation cycle done"
        );
        summary
    }
}

/// The sync trigger of every guarded app that asks for one.
fn sync_triggers(
    cfg: &Config,
) -> Result<std::collections::HashMap<String, Arc<dyn crate::ports::sync::SyncTrigger>>, DaemonError>
{
    use crate::ports::sync::SyncTrigger;
    let mut out: std::collections::HashMap<String, Arc<dyn SyncTrigger>> = Default::default();
    let argocd = match &cfg.argocd {
        Some(a) if cfg.guard.apps.iter().any(|x| x.argocd.is_some()) => Some(
            crate::adapters::argocd::ArgoCdClient::new(a)
                .map_err(|e| DaemonError::Config(format!("argocd: {e}")))?,
        ),
        _ => None,
    };
    for (i, app) in cfg.guard.apps.iter().enumerate() {
        if let (Some(a), Some(client)) = (&app.argocd, &argocd) {
            let t = client
                .app(a.clone())
                .map_err(|e| DaemonError::Config(format!("guard.apps[{i}].argocd: {e}")))?;
            out.insert(app.name.clone(), Arc::new(t));
        }
        if let Some(f) = &app.flux {
            // Flux needs the cluster; the client is created lazily per request so that a
            // missing kubeconfig is reported on use, not at start (local runs have none).
            out.insert(
                app.name.clone(),
                Arc::new(LazyFlux {
                    namespace: f.namespace.clone(),
                    name: f.name.clone(),
                }),
            );
        }
    }
    Ok(out)
}

/// A Flux sync trigger that connects to the cluster on first use.
struct LazyFlux {
    namespace: String,
    name: String,
}

#[async_trait::async_trait]
impl crate::ports::sync::SyncTrigger for LazyFlux {
    async fn request_sync(
        &self,
        revision: Option<&str>,
    ) -> Result<(), crate::ports::sync::SyncError> {
        use crate::ports::sync::SyncError;
        let client = crate::adapters::kube::client(Duration::from_secs(30))
            .await
            .map_err(|e| SyncError::Kube {
                app: format!("{}/{}", self.namespace, self.name),
                message: e.to_string(),
            })?;
        crate::adapters::kube::flux::FluxSync::new(client, &self.namespace, &self.name)
            .request_sync(revision)
            .await
    }
}

/// The state store `state.backend` names: the file store on `state.dir`, or the shared
/// ConfigMap store (`state.namespace`, else `POD_NAMESPACE`) over the file store, which keeps
/// the decision log.
///
/// The file store is required by the guard and the rollouts; without either, a missing or
/// read-only state directory only disables the state (with a warning).
async fn state_store(
    cfg: &Config,
    client: &Option<::kube::Client>,
) -> Result<Option<Arc<dyn StateStore>>, DaemonError> {
    use super::config::StateBackend;
    let files: Arc<dyn StateStore> = match FileStore::open(&cfg.state.dir) {
        Ok(s) => Arc::new(s),
        Err(e) if cfg.guard.apps.is_empty() && !cfg.rollouts.enabled() => {
            tracing::warn!("state.dir: {e}; the state store and the decision log are disabled");
            return Ok(None);
        }
        Err(e) => return Err(DaemonError::Config(format!("state.dir: {e}"))),
    };
    match cfg.state.backend {
        StateBackend::File => Ok(Some(files)),
        StateBackend::Kube => {
            let pod_namespace = std::env::var("POD_NAMESPACE").ok();
            let namespace = cfg
                .state
                .kube_namespace(pod_namespace)
                .map_err(DaemonError::Config)?;
            let client = need_kube(client, "state.backend")?;
            tracing::info!(%namespace, "state documents and the shared decision log in ConfigMaps; this replica's complete decision log in state.dir");
            Ok(Some(Arc::new(crate::adapters::kube::ConfigMapStore::new(
                client, namespace, files,
            ))))
        }
    }
}

/// One reload and one evaluation cycle, without the server (`slogate run --once`).
pub async fn run_once(cfg: &Config) -> Result<CycleSummary, DaemonError> {
    // Only the state store may need a client here: no leader, no rollouts.
    let client = match cfg.state.backend {
        super::config::StateBackend::Kube => kube_client(cfg).await?,
        super::config::StateBackend::File => None,
    };
    let states = state_store(cfg, &client).await?;
    let d = Daemon::new(cfg, AlwaysLeader::new().leadership(), states)?;
    d.reload().await;
    Ok(d.cycle().await)
}

/// Run until `shutdown` resolves.
pub async fn run(
    cfg: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), DaemonError> {
    let (_alert_tx, alert_rx) = tokio::sync::mpsc::channel::<GuardRequest>(256);
    run_with_alerts(cfg, shutdown, alert_rx).await
}

/// Alertmanager triggers become guard requests (firing alerts only: a resolved alert
/// changes nothing the schedule would not see). On a follower, with a shared `handoff`
/// store, they are handed to the leader instead ([`super::webhook::handoff`]).
fn forward_alerts(
    mut triggers: tokio::sync::mpsc::Receiver<super::webhook::AlertTrigger>,
    out: tokio::sync::mpsc::Sender<GuardRequest>,
    leadership: Leadership,
    handoff: Option<Arc<dyn StateStore>>,
) {
    tokio::spawn(async move {
        while let Some(t) = triggers.recv().await {
            if t.status != super::webhook::AlertStatus::Firing {
                continue;
            }
            if let Some(store) = handoff.as_ref().filter(|_| !leadership.is_leader()) {
                let alertname = t.alertname.clone();
                match super::webhook::handoff::push(
                    store.as_ref(),
                    &t.slo_id,
                    alertname,
                    &t.fingerprint,
                    chrono::Utc::now(),
                )
                .await
                {
                    Ok(seq) => {
                        tracing::info!(slo = %t.slo_id, seq, "alert handed to the leader");
                    }
                    Err(e) => {
                        tracing::error!(slo = %t.slo_id, "cannot hand the alert to the leader, which acts at its next evaluation: {e}");
                    }
                }
                continue;
            }
            let req = GuardRequest {
                slo_id: t.slo_id,
                trigger: Trigger::Alert {
                    alertname: t.alertname.unwrap_or_default(),
                    fingerprint: t.fingerprint,
                },
            };
            if out.send(req).await.is_err() {
                break;
            }
        }
    });
}

/// Like [`run`], with alert-triggered guard runs arriving on `alerts`.
pub async fn run_with_alerts(
    cfg: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
    alerts: tokio::sync::mpsc::Receiver<GuardRequest>,
) -> Result<(), DaemonError> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let client = kube_client(&cfg).await?;
    let (leadership, elector) = leader_election(&cfg, &client)?;
    let states = state_store(&cfg, &client).await?;
    let d = Arc::new(Daemon::new(&cfg, leadership.clone(), states)?);
    let registry = Arc::new(super::rollout::RolloutRegistry::default());
    let supervisor = build_rollouts(&cfg, &d, &client, registry.clone()).await?;
    // The webhook's triggers join the externally given alert channel.
    let (alert_tx, alerts) = {
        let (tx, rx) = tokio::sync::mpsc::channel::<GuardRequest>(256);
        let mut given = alerts;
        let fwd = tx.clone();
        tokio::spawn(async move {
            while let Some(r) = given.recv().await {
                if fwd.send(r).await.is_err() {
                    break;
                }
            }
        });
        (tx, rx)
    };
    // Alerts a follower receives reach the leader through the shared store.
    let handoff_store = match (cfg.state.backend, cfg.leader_election.enabled) {
        (super::config::StateBackend::Kube, true) => d.state.store.clone(),
        _ => None,
    };
    let handoff_task = handoff_store
        .clone()
        .filter(|_| cfg.webhook.enabled)
        .map(|store| {
            take_handoffs(
                store,
                leadership.clone(),
                alert_tx.clone(),
                cfg.evaluation.interval.as_std(),
                stop_rx.clone(),
            )
        });
    let extra = if cfg.webhook.enabled {
        let Some(store) = d.state.store.clone() else {
            return Err(DaemonError::Config(format!(
                "webhook: alerts are recorded in state.dir ({}), which cannot be opened",
                cfg.state.dir.display()
            )));
        };
        let (ws, triggers) = super::webhook::WebhookState::from_config(
            &cfg.webhook,
            store,
            Arc::new(d.slo_ids.clone()),
            d.state.metrics.webhook.clone(),
        )
        .map_err(|e| DaemonError::Config(format!("webhook: {e}")))?;
        forward_alerts(
            triggers,
            alert_tx.clone(),
            leadership.clone(),
            handoff_store.clone(),
        );
        super::webhook::router(ws)
    } else {
        axum::Router::new()
    };
    // Freezes and approvals for `slogate promote --slogate-url`, behind api.token.
    let extra = match (&cfg.api.token, d.state.store.clone()) {
        (Some(token), Some(store)) => {
            extra.merge(crate::promote::api::router_with_token(store, token.clone()))
        }
        _ => extra,
    };
    drop(alert_tx);
    // Expired approvals, alert records and orphaned command queues are deleted hourly.
    let sweep_task = d.state.store.clone().map(|store| {
        let running = registry.clone();
        sweep_state(
            store,
            leadership.clone(),
            super::state_gc::Retention {
                retention: cfg.state.retention.as_std(),
                dedupe_ttl: cfg.webhook.dedupe_ttl.as_std(),
            },
            Arc::new(move |ns: &str, name: &str| running.get(ns, name).is_some()),
            stop_rx.clone(),
        )
    });
    let extra = extra.merge(super::rollout::api::router(d.state.clone(), registry));
    let listener = tokio::net::TcpListener::bind(cfg.server.listen)
        .await
        .map_err(|source| DaemonError::Bind {
            addr: cfg.server.listen,
            source,
        })?;
    tracing::info!(addr = %cfg.server.listen, "listening");

    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
    });

    let elector_task = elector.map(|e| {
        let stop = stop_rx.clone();
        tokio::spawn(async move {
            if let Err(e) = e.run(stop).await {
                tracing::error!("leader election: {e}");
            }
        })
    });
    let leader_gauge = {
        let metrics = d.state.metrics.rollout.clone();
        let mut changes = leadership.changes();
        let mut stop = stop_rx.clone();
        let leadership = leadership.clone();
        tokio::spawn(async move {
            loop {
                metrics.set_leader(leadership.is_leader());
                tokio::select! {
                    r = changes.changed() => if r.is_err() { break },
                    // `is_leader` expires on its own: look again now and then.
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                    _ = stop.changed() => break,
                }
            }
        })
    };
    // Starts a controller per Rollout, keeps them in step with the source, and on shutdown
    // stops them and waits for each.
    let rollout_task = supervisor.map(|s| {
        let every = cfg.rollouts.resync();
        tokio::spawn(s.run(every, stop_rx.clone()))
    });

    let wake = Arc::new(Notify::new());
    d.reload().await;

    let reloader = {
        let d = d.clone();
        let wake = wake.clone();
        let mut stop = stop_rx.clone();
        let every = cfg.slos.reload_interval.as_std();
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
    };

    // However many alerts arrive, at most one evaluation waits per SLO (runtime::coalesce).
    let pending = Arc::new(super::coalesce::Coalescer::new(
        d.state.metrics.webhook.triggers_coalesced.clone(),
    ));
    let collector =
        super::coalesce::collect(alerts, pending.clone(), |r: &GuardRequest| r.slo_id.clone());
    let scheduler = {
        let d = d.clone();
        let pending = pending.clone();
        let wake = wake.clone();
        let mut stop = stop_rx.clone();
        let interval = cfg.evaluation.interval.as_std();
        let jitter = cfg.evaluation.jitter;
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
                d.guard(&reports, None, Trigger::Schedule).await;
                let sleep = tokio::time::sleep(jittered(interval, jitter));
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
    };

    // Bounded connections, header/body timeouts, graceful shutdown: runtime::serve.
    super::serve::serve(
        listener,
        server::router_with(d.state.clone(), extra),
        cfg.server.limits().fitted_to_fd_limit(),
        d.state.metrics.http.clone(),
        stop_rx.clone(),
    )
    .await;
    let _ = scheduler.await;
    collector.abort();
    let _ = reloader.await;
    if let Some(t) = rollout_task {
        let _ = t.await;
    }
    if let Some(t) = handoff_task {
        let _ = t.await;
    }
    if let Some(t) = sweep_task {
        let _ = t.await;
    }
    let _ = leader_gauge.await;
    // Last: the elector steps down and releases the Lease once nothing acts any more.
    if let Some(t) = elector_task {
        let _ = t.await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// On the leader, every [`super::webhook::handoff::POLL`]: the alerts followers handed over,
/// each sent once to the scheduler as a guard request. A replica that becomes leader takes
/// those received within `window` (the evaluation interval) and skips older ones.
fn take_handoffs(
    store: Arc<dyn StateStore>,
    leadership: Leadership,
    out: tokio::sync::mpsc::Sender<GuardRequest>,
    window: Duration,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    use super::webhook::handoff;
    tokio::spawn(async move {
        let mut cursor = handoff::Cursor::default();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(handoff::POLL) => {}
                _ = stop.changed() => break,
            }
            if !leadership.is_leader() {
                cursor.reset();
                continue;
            }
            let entries = match handoff::read(store.as_ref()).await {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!("cannot read the alerts handed over by followers: {e}");
                    continue;
                }
            };
            for h in cursor.take(&entries, chrono::Utc::now(), window) {
                tracing::info!(slo = %h.slo_id, seq = h.seq, "alert handed over by a follower");
                let req = GuardRequest {
                    slo_id: h.slo_id,
                    trigger: Trigger::Alert {
                        alertname: h.alertname.unwrap_or_default(),
                        fingerprint: h.fingerprint,
                    },
                };
                if out.send(req).await.is_err() {
                    return;
                }
            }
        }
    })
}

/// Whether a Rollout (namespace, name) runs here, for the state sweep.
type Running = Arc<dyn Fn(&str, &str) -> bool + Send + Sync>;

/// On the leader, [`SWEEP_DELAY`] after start and then every
/// [`super::state_gc::INTERVAL`]: delete expired state documents
/// ([`super::state_gc::sweep`]). The delay lets the rollout source be read first, so that a
/// running Rollout's command queue is known to be in use.
fn sweep_state(
    store: Arc<dyn StateStore>,
    leadership: Leadership,
    keep: super::state_gc::Retention,
    running: Running,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    use super::state_gc;
    tokio::spawn(async move {
        let mut wait = SWEEP_DELAY;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => break,
            }
            wait = state_gc::INTERVAL;
            if !leadership.is_leader() {
                continue;
            }
            let swept = tokio::select! {
                r = state_gc::sweep(store.as_ref(), chrono::Utc::now(), keep, running.as_ref()) => r,
                _ = stop.changed() => break,
            };
            match swept {
                Ok(report) => {
                    for (key, kind) in &report.deleted {
                        tracing::info!(%key, kind = kind.as_str(), "expired state document deleted");
                    }
                    for why in &report.unreadable {
                        tracing::warn!("state document kept, it cannot be read: {why}");
                    }
                    for key in &report.changed {
                        tracing::debug!(%key, "expired state document changed since it was read; kept");
                    }
                }
                Err(e) => tracing::warn!("state sweep stopped, retried in an hour: {e}"),
            }
        }
    })
}

/// How long after start the first state sweep runs.
const SWEEP_DELAY: Duration = Duration::from_secs(60);

/// The leadership handle: a Lease elector when `leader_election.enabled`, else always the
/// leader.
fn leader_election(
    cfg: &Config,
    client: &Option<::kube::Client>,
) -> Result<(Leadership, Option<Arc<dyn LeaderElector>>), DaemonError> {
    let le = &cfg.leader_election;
    if !le.enabled {
        return Ok((AlwaysLeader::new().leadership(), None));
    }
    use crate::adapters::kube::{LeaseConfig, LeaseElector};
    let namespace = le
        .namespace
        .clone()
        .or_else(|| {
            std::env::var("POD_NAMESPACE")
                .ok()
                .filter(|v| !v.trim().is_empty())
        })
        .unwrap_or_else(|| "slogate".to_string());
    let identity = LeaseConfig::identity_from_env()
        .map_err(|e| DaemonError::Config(format!("leader_election: {e}")))?;
    let elector = LeaseElector::new(
        need_kube(client, "leader_election")?,
        LeaseConfig::new(namespace, le.name.clone(), identity),
    )
    .map_err(|e| DaemonError::Config(format!("leader_election: {e}")))?;
    Ok((elector.leadership(), Some(Arc::new(elector))))
}

/// The Kubernetes client every `kube` key shares, built once when any asks for one
/// (leader election, `state.backend`, `rollouts.source`, `.router`, `.state`,
/// `.versions`). A failure names the keys that asked.
async fn kube_client(cfg: &Config) -> Result<Option<::kube::Client>, DaemonError> {
    use super::config::{
        RolloutSourceKind, RolloutStateKind, RouterKind, StateBackend, VersionsKind,
    };
    let rc = &cfg.rollouts;
    let rollouts = rc.enabled();
    let uses_kube: Vec<&str> = [
        ("leader_election", cfg.leader_election.enabled),
        ("state.backend", cfg.state.backend == StateBackend::Kube),
        ("rollouts.source", rc.source == RolloutSourceKind::Kube),
        ("rollouts.router", rollouts && rc.router == RouterKind::Kube),
        (
            "rollouts.state",
            rollouts && rc.state == RolloutStateKind::Kube,
        ),
        (
            "rollouts.versions",
            rollouts && rc.versions == VersionsKind::Kube,
        ),
    ]
    .into_iter()
    .filter_map(|(key, kube)| kube.then_some(key))
    .collect();
    if uses_kube.is_empty() {
        return Ok(None);
    }
    crate::adapters::kube::client(crate::adapters::kube::DEFAULT_CALL_TIMEOUT)
        .await
        .map(Some)
        .map_err(|e| DaemonError::Config(format!("{}: kube: {e}", uses_kube.join(", "))))
}

/// The client of [`kube_client`], which exists whenever a key says `kube`.
fn need_kube(client: &Option<::kube::Client>, key: &str) -> Result<::kube::Client, DaemonError> {
    client.clone().ok_or_else(|| {
        // Unreachable: `kube_client` builds one whenever a key says kube.
        DaemonError::Config(format!("{key}: kube: no Kubernetes client"))
    })
}

/// The rollout supervisor: the Rollouts of `rollouts.source` (files or the cluster), each
/// run by a controller with the router, state store and version source `rollouts.router`,
/// `rollouts.state` and `rollouts.versions` name. `None` without rollouts.
///
/// With `source: file`, an error in the files at start is fatal (exit 2), as a bad config
/// file is; later ones, and every problem of cluster objects, are logged and leave the
/// running controllers as they are.
async fn build_rollouts(
    cfg: &Config,
    d: &Daemon,
    client: &Option<::kube::Client>,
    registry: Arc<super::rollout::RolloutRegistry>,
) -> Result<Option<Arc<super::rollout::RolloutSupervisor>>, DaemonError> {
    use super::config::{RolloutSourceKind, RolloutStateKind, RouterKind, VersionsKind};
    use super::rollout::{
        weights_file, ControllerFactory, ControllerSettings, FileVersions, RolloutController,
        RolloutDeps, RolloutSupervisor,
    };
    use crate::ports::rollouts::RolloutSource;
    let rc = &cfg.rollouts;
    if !rc.enabled() {
        return Ok(None);
    }
    let source: Arc<dyn RolloutSource> = match rc.source {
        RolloutSourceKind::File => {
            let files = crate::adapters::rollout_files::FileRollouts::new(rc.paths.clone());
            let set = files
                .list()
                .await
                .map_err(|e| DaemonError::Config(e.to_string()))?;
            for w in &set.warnings {
                tracing::warn!("{w}");
            }
            if !set.errors.is_empty() {
                return Err(DaemonError::Config(format!(
                    "rollouts.paths: {}",
                    set.errors.join("\n")
                )));
            }
            Arc::new(files)
        }
        RolloutSourceKind::Kube => Arc::new(crate::adapters::kube::KubeRollouts::new(
            need_kube(client, "rollouts.source")?,
            rc.namespaces.clone(),
        )),
    };
    // Commands are in the `state.backend` store and the decision log in state.dir, whatever
    // `rollouts.state` says.
    let Some(documents) = d.state.store.clone() else {
        return Err(DaemonError::Config(format!(
            "rollouts: their decision log is kept in state.dir ({}), which cannot be opened",
            cfg.state.dir.display()
        )));
    };
    let store: Arc<dyn StateStore> = match rc.state {
        RolloutStateKind::File => documents,
        RolloutStateKind::Kube => Arc::new(crate::adapters::kube::RolloutStatusStore::new(
            need_kube(client, "rollouts.state")?,
            documents,
        )),
    };
    let versions: Arc<dyn super::rollout::VersionSource> = match (rc.versions, &rc.versions_file)
    {
        (VersionsKind::Kube, _) => Arc::new(crate::adapters::kube::KubeVersions::new(
            need_kube(client, "rollouts.versions")?,
        )),
        (VersionsKind::File, Some(f)) => Arc::new(FileVersions::new(f.clone())),
        (VersionsKind::File, None) => {
            return Err(DaemonError::Config(
                "rollouts.versions_file: expected a file naming each rollout's versions, or `rollouts.versions: kube`".into(),
            ))
        }
    };
    let router_client = match rc.router {
        RouterKind::Kube => Some(need_kube(client, "rollouts.router")?),
        RouterKind::File => None,
    };
    let weights_dir = rc.weights_dir(&cfg.state.dir);
    let mut settings = ControllerSettings::default();
    if let Some(t) = rc.git_timeout {
        settings.git_timeout = t.as_std();
    }
    settings.query_timeout = cfg.prometheus.timeout.as_std();
    let metrics = d.source.clone();
    let repo = d.repo.clone();
    let notifiers = d.notifiers.clone();
    let guard = d.guard.clone();
    let leadership = d.leadership.clone();
    let metrics_registry = d.state.metrics.rollout.clone();
    let factory: ControllerFactory = Box::new(move |r| {
        let router: Arc<dyn crate::ports::traffic::TrafficRouter> = match &router_client {
            Some(client) => Arc::new(crate::adapters::kube::KubeTrafficRouter::new(
                client.clone(),
                &r.traffic_target(),
            )),
            None => {
                let file = weights_file(&weights_dir, r.namespace(), &r.metadata.name);
                if let Some(parent) = file.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| {
                        format!(
                            "rollouts.weights_dir: cannot create {}: {e}",
                            parent.display()
                        )
                    })?;
                }
                Arc::new(crate::adapters::traffic_file::FileRouter::new(file))
            }
        };
        let mut deps = RolloutDeps::new(metrics.clone(), router, store.clone(), versions.clone());
        deps.repo = repo.clone();
        deps.notifiers = notifiers.clone();
        deps.guard = guard.clone();
        deps.leadership = leadership.clone();
        deps.metrics_registry = metrics_registry.clone();
        deps.settings = settings.clone();
        if deps.repo.is_none() {
            tracing::warn!(rollout = %r.key(), "no gitops section: aborts revert nothing and promotions wait for stable to run the canary's version");
        }
        Ok(Arc::new(RolloutController::new(r, deps)))
    });
    tracing::info!(source = %source.describe(), every = ?rc.resync(), "rollouts");
    Ok(Some(Arc::new(
        RolloutSupervisor::new(source, factory, registry)
            .with_metrics(d.state.metrics.rollout.clone()),
    )))
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

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::state::MemoryStore;
    use crate::ports::leader::leadership_channel;
    use crate::runtime::webhook::{handoff, AlertStatus, AlertTrigger};

    fn trigger(slo: &str) -> AlertTrigger {
        AlertTrigger {
            slo_id: slo.into(),
            status: AlertStatus::Firing,
            fingerprint: "4e1a2b3c4d5e6f70".into(),
            alertname: Some("SlothErrorBudgetBurn".into()),
            severity: Some("page".into()),
            starts_at: chrono::Utc::now(),
        }
    }

    /// The sweep runs on the leader only, after its start delay and then hourly, and keeps
    /// the command queue of a running Rollout.
    #[tokio::test(start_paused = true)]
    async fn the_leader_sweeps_expired_state_and_a_follower_does_not() {
        use crate::runtime::state_gc::Retention;
        let old = chrono::Utc::now() - chrono::Duration::days(40);
        let queue = serde_json::json!({"results": [{
            "id": "cmd-0", "action": "abort", "actor": "bob", "outcome": "applied",
            "reason": "aborted by bob", "at": old,
        }]});
        let approval = serde_json::json!({
            "key": "k", "repo": "https://git.example/shop.git", "target": "overlays/prod",
            "image": "shop/checkout", "tag": "v2", "actor": "alice", "at": old,
        });
        let keys = [
            "promote-approval/0a",
            "rollout-commands/shop/checkout",
            "rollout-commands/shop/gone",
        ];
        let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
        let put = |k: &'static str, v: serde_json::Value| {
            let s = store.clone();
            async move { s.put(k, v, None).await.unwrap() }
        };
        put(keys[0], approval).await;
        put(keys[1], queue.clone()).await;
        put(keys[2], queue).await;
        let keep = Retention {
            retention: Duration::from_secs(30 * 86_400),
            dedupe_ttl: Duration::from_secs(7 * 86_400),
        };
        let running: Running = Arc::new(|ns: &str, name: &str| (ns, name) == ("shop", "checkout"));
        let left = || {
            let s = store.clone();
            async move {
                let mut k = s.list("promote-approval/").await.unwrap();
                k.extend(s.list("rollout-commands/").await.unwrap());
                k
            }
        };

        let (follower_signal, follower) = leadership_channel();
        let (stop_tx, stop_rx) = watch::channel(false);
        let f = sweep_state(
            store.clone(),
            follower,
            keep,
            running.clone(),
            stop_rx.clone(),
        );
        tokio::time::sleep(SWEEP_DELAY + crate::runtime::state_gc::INTERVAL * 2).await;
        assert_eq!(left().await, keys, "a follower deletes nothing");

        let (leader_signal, leader) = leadership_channel();
        leader_signal.grant_forever();
        let l = sweep_state(store.clone(), leader, keep, running, stop_rx);
        tokio::time::sleep(SWEEP_DELAY / 2).await;
        assert_eq!(left().await, keys, "nothing before the start delay");
        tokio::time::sleep(SWEEP_DELAY).await;
        assert_eq!(
            left().await,
            vec!["rollout-commands/shop/checkout".to_string()]
        );

        stop_tx.send(true).unwrap();
        f.await.unwrap();
        l.await.unwrap();
        drop(follower_signal);
    }

    /// A follower hands a firing alert to the leader through the shared store instead of
    /// running the guard itself; the leader's poller turns it into one guard request. Then
    /// the follower becomes leader and acts on its own alerts directly.
    #[tokio::test(start_paused = true)]
    async fn a_follower_hands_alerts_to_the_leader() {
        let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
        let (follower_signal, follower) = leadership_channel();
        let (leader_signal, leader) = leadership_channel();
        leader_signal.grant_forever();

        let (trig_tx, trig_rx) = tokio::sync::mpsc::channel(8);
        let (follower_out, mut follower_in) = tokio::sync::mpsc::channel(8);
        forward_alerts(trig_rx, follower_out, follower.clone(), Some(store.clone()));
        let (leader_out, mut leader_in) = tokio::sync::mpsc::channel(8);
        let (_stop_tx, stop_rx) = watch::channel(false);
        let poller = take_handoffs(
            store.clone(),
            leader,
            leader_out,
            Duration::from_secs(60),
            stop_rx,
        );

        trig_tx
            .send(trigger("checkout-availability"))
            .await
            .unwrap();
        let req = tokio::time::timeout(Duration::from_secs(30), leader_in.recv())
            .await
            .expect("the leader never got the alert")
            .unwrap();
        assert_eq!(req.slo_id, "checkout-availability");
        assert_eq!(
            req.trigger,
            Trigger::Alert {
                alertname: "SlothErrorBudgetBurn".into(),
                fingerprint: "4e1a2b3c4d5e6f70".into(),
            }
        );
        assert!(follower_in.try_recv().is_err(), "the follower acted itself");
        // Taken once: later polls send nothing more.
        tokio::time::sleep(handoff::POLL * 5).await;
        assert!(leader_in.try_recv().is_err());

        // The follower now leads: its alerts go straight to its own scheduler.
        follower_signal.grant_forever();
        trig_tx.send(trigger("search-latency")).await.unwrap();
        let req = tokio::time::timeout(Duration::from_secs(30), follower_in.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(req.slo_id, "search-latency");
        assert_eq!(handoff::read(store.as_ref()).await.unwrap().len(), 1);
        poller.abort();
    }

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
