//! The composition root of `slogate run`: builds the adapters the configuration names,
//! wires them into the runtime's loops (the SLO evaluation loop, alert intake and handoff,
//! the state sweep, the rollout supervisor, leader election) and the HTTP server with its
//! APIs (including `promote`'s freezes and approvals), and shuts all of them down
//! gracefully on SIGTERM/SIGINT.
//!
//! Only wiring lives here; the loops are in `crate::runtime`, the implementations in
//! `crate::adapters`.

mod cluster;
mod rollouts;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};

use crate::adapters::git::GitCli;
use crate::adapters::leader::{AlwaysLeader, Leadership};
use crate::adapters::prometheus::Prometheus;
use crate::ports::gitops::GitOpsRepo;
use crate::ports::metrics::MetricsSource;
use crate::ports::notify::Notifier;
use crate::ports::state::StateStore;
use crate::runtime::alerts::{forward_alerts, take_handoffs};
use crate::runtime::coalesce::{self, Coalescer};
use crate::runtime::config::Config;
use crate::runtime::guard::GuardRuntime;
use crate::runtime::serve;
use crate::runtime::server::{self, AppState};
use crate::runtime::slo_loop::{spawn_reloader, spawn_scheduler, SloLoop};
use crate::runtime::state_gc::{sweep_state, Retention};
use crate::slo::windows::WindowSettings;
use crate::slo::AlertWindows;

pub use crate::runtime::slo_loop::{jittered, CycleSummary, GuardRequest};

/// Why the daemon could not start or stopped. Every variant but `Bind` and `Server` is a
/// configuration problem (exit 2), named by its key; the cause is kept as the source.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("evaluation.windows_file: {0}")]
    Windows(#[source] crate::slo::windows::WindowsError),
    #[error("prometheus.url: {0}")]
    Prometheus(#[source] crate::ports::metrics::MetricsError),
    #[error("notifications: {0}")]
    Notifications(#[source] crate::ports::notify::NotifyError),
    #[error("gitops: {0}")]
    GitOps(#[source] crate::ports::gitops::GitOpsError),
    /// The message names the `gitops.forge` key at fault.
    #[error("{0}")]
    Forge(#[source] crate::ports::gitops::PullRequestError),
    /// The API token could not be read (the message names the secret's source, never its
    /// value).
    #[error("api.token: {0}")]
    ApiToken(#[source] crate::ports::gitops::GitOpsError),
    #[error("argocd: {0}")]
    ArgoCd(#[source] crate::ports::sync::SyncError),
    #[error("guard.apps[{index}].argocd: {source}")]
    GuardArgoCd {
        index: usize,
        #[source]
        source: crate::ports::sync::SyncError,
    },
    #[error("state.dir: {0}")]
    StateDir(#[source] crate::ports::state::StateError),
    /// `state.namespace` (or `POD_NAMESPACE`) is missing or invalid; the message names it.
    #[error("{0}")]
    StateNamespace(String),
    #[error("leader_election: {0}")]
    LeaderElection(#[source] crate::ports::leader::LeaderError),
    /// The Kubernetes client the `keys` asked for could not be built.
    #[error("{keys}: kube: {source}")]
    Kube {
        keys: String,
        #[source]
        source: crate::adapters::kube::ClientError,
    },
    #[error("{key}: kube: no Kubernetes client")]
    NoKubeClient { key: &'static str },
    #[error("webhook: alerts are recorded in state.dir ({}), which cannot be opened", .dir.display())]
    WebhookStateDir { dir: std::path::PathBuf },
    #[error("webhook: {0}")]
    Webhook(#[source] crate::runtime::webhook::WebhookError),
    #[error("{0}")]
    RolloutSource(#[source] crate::ports::rollouts::RolloutSourceError),
    /// Problems in the Rollout files at start, one per line.
    #[error("rollouts.paths: {}", .0.join("\n"))]
    RolloutFiles(Vec<String>),
    #[error("rollouts: their decision log is kept in state.dir ({}), which cannot be opened", .dir.display())]
    RolloutsStateDir { dir: std::path::PathBuf },
    #[error("rollouts.versions_file: expected a file naming each rollout's versions, or `rollouts.versions: kube`")]
    NoVersionsFile,
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("HTTP server failed: {0}")]
    Server(#[source] std::io::Error),
}

impl DaemonError {
    /// Whether the configuration is at fault (exit 2) rather than the machine (exit 1).
    pub fn is_config(&self) -> bool {
        !matches!(self, DaemonError::Bind { .. } | DaemonError::Server(_))
    }

    /// A short, stable name of the kind of failure, for logs and metrics labels.
    pub fn metric_label(&self) -> &'static str {
        match self {
            DaemonError::Windows(_) => "windows",
            DaemonError::Prometheus(_) => "prometheus",
            DaemonError::Notifications(_) => "notifications",
            DaemonError::GitOps(_) | DaemonError::Forge(_) => "gitops",
            DaemonError::ApiToken(_) => "api_token",
            DaemonError::ArgoCd(_) | DaemonError::GuardArgoCd { .. } => "argocd",
            DaemonError::StateDir(_) => "state_dir",
            DaemonError::StateNamespace(_) => "state_namespace",
            DaemonError::LeaderElection(_) => "leader_election",
            DaemonError::Kube { .. } | DaemonError::NoKubeClient { .. } => "kube",
            DaemonError::WebhookStateDir { .. } | DaemonError::Webhook(_) => "webhook",
            DaemonError::RolloutSource(_) | DaemonError::RolloutFiles(_) => "rollout_source",
            DaemonError::RolloutsStateDir { .. } | DaemonError::NoVersionsFile => "rollouts",
            DaemonError::Bind { .. } => "bind",
            DaemonError::Server(_) => "server",
        }
    }
}

/// What the configuration wires together, shared by the loops and the rollouts.
struct Wired {
    slos: Arc<SloLoop>,
    source: Arc<dyn MetricsSource>,
    state: Arc<AppState>,
    guard: Option<Arc<GuardRuntime>>,
    leadership: Leadership,
    /// The GitOps repository, shared by the guard and the rollouts (one work tree).
    repo: Option<Arc<dyn GitOpsRepo>>,
    notifiers: Vec<Arc<dyn Notifier>>,
}

/// Build the adapters and the evaluation loop. `states` is [`cluster::state_store`]'s.
fn wire(
    cfg: &Config,
    leadership: Leadership,
    states: Option<Arc<dyn StateStore>>,
) -> Result<Wired, DaemonError> {
    let catalog = match &cfg.evaluation.windows_file {
        Some(f) => Some(AlertWindows::from_file(f).map_err(DaemonError::Windows)?),
        None => None,
    };
    let settings = WindowSettings {
        default_period: cfg.evaluation.period,
        catalog,
    };
    let source: Arc<dyn MetricsSource> = Arc::new(
        Prometheus::new(&cfg.prometheus.url, cfg.prometheus.timeout.as_std())
            .map_err(DaemonError::Prometheus)?,
    );
    let notifiers = crate::adapters::notify::build_notifiers(&cfg.notifications)
        .map_err(DaemonError::Notifications)?;
    // One work tree, one adapter: the guard and the rollouts share it (and its lock).
    let repo: Option<Arc<dyn GitOpsRepo>> = match cfg.repo_config() {
        Some(rc) if !cfg.guard.apps.is_empty() || cfg.rollouts.enabled() => {
            let git = GitCli::new(rc).map_err(DaemonError::GitOps)?;
            // Reverts in `mode: pull-request` (the guard's and the rollouts') open pull
            // requests through the forge; the config check made sure one is configured.
            let git = match cfg.gitops.as_ref().and_then(|g| g.forge.as_ref()) {
                Some(f) => {
                    git.with_pull_requests(f.build("gitops.forge").map_err(DaemonError::Forge)?)
                }
                None => git,
            };
            Some(Arc::new(git))
        }
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
            .with_metrics(defaults.metrics.guard.clone())
            .with_verifier(source.clone()),
        )),
        _ => None,
    };
    let api_token = match &cfg.api.token {
        Some(src) => Some(src.read().map_err(DaemonError::ApiToken)?),
        None => None,
    };
    let state = AppState {
        store: states,
        guard: guard.clone(),
        api_token,
        ..defaults
    };
    let state = Arc::new(state);
    let slos = Arc::new(SloLoop::new(
        settings,
        source.clone(),
        cfg.slos.paths.clone(),
        state.clone(),
        guard.clone(),
        leadership.clone(),
    ));
    Ok(Wired {
        slos,
        source,
        state,
        guard,
        leadership,
        repo,
        notifiers,
    })
}

/// The sync trigger of every guarded app that asks for one.
fn sync_triggers(
    cfg: &Config,
) -> Result<std::collections::HashMap<String, Arc<dyn crate::ports::sync::SyncTrigger>>, DaemonError>
{
    use crate::ports::sync::SyncTrigger;
    let mut out: std::collections::HashMap<String, Arc<dyn SyncTrigger>> = Default::default();
    let argocd = match &cfg.argocd {
        Some(a) if cfg.guard.apps.iter().any(|x| x.argocd.is_some()) => {
            Some(crate::adapters::argocd::ArgoCdClient::new(a).map_err(DaemonError::ArgoCd)?)
        }
        _ => None,
    };
    for (i, app) in cfg.guard.apps.iter().enumerate() {
        if let (Some(a), Some(client)) = (&app.argocd, &argocd) {
            let t = client
                .app(a.clone())
                .map_err(|source| DaemonError::GuardArgoCd { index: i, source })?;
            out.insert(app.name.clone(), Arc::new(t));
        }
        if let Some(f) = &app.flux {
            // Flux needs the cluster; the client is created lazily per request so that a
            // missing kubeconfig is reported on use, not at start (local runs have none).
            out.insert(
                app.name.clone(),
                Arc::new(crate::adapters::kube::LazyFlux::new(
                    f.namespace.clone(),
                    f.name.clone(),
                )),
            );
        }
    }
    Ok(out)
}

/// One reload and one evaluation cycle, without the server (`slogate run --once`).
pub async fn run_once(cfg: &Config) -> Result<CycleSummary, DaemonError> {
    // Only the state store may need a client here: no leader, no rollouts.
    let client = match cfg.state.backend {
        crate::runtime::config::StateBackend::Kube => cluster::kube_client(cfg).await?,
        crate::runtime::config::StateBackend::File => None,
    };
    let states = cluster::state_store(cfg, &client).await?;
    let d = wire(cfg, AlwaysLeader::new().leadership(), states)?;
    d.slos.reload().await;
    let summary = d.slos.cycle().await;
    // The process exits once the summary is printed: freeing the SLOs, reports and metric
    // rows one by one would only delay that (about 15 ms at 10,000 SLOs). Nothing in `d`
    // has work left to do on drop: no buffered writes, no temporary files.
    std::mem::forget(d);
    Ok(summary)
}

/// Run until `shutdown` resolves.
pub async fn run(
    cfg: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), DaemonError> {
    let (_alert_tx, alert_rx) = tokio::sync::mpsc::channel::<GuardRequest>(256);
    run_with_alerts(cfg, shutdown, alert_rx).await
}

/// Like [`run`], with alert-triggered guard runs arriving on `alerts`.
pub async fn run_with_alerts(
    cfg: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
    alerts: tokio::sync::mpsc::Receiver<GuardRequest>,
) -> Result<(), DaemonError> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let client = cluster::kube_client(&cfg).await?;
    let (leadership, elector) = cluster::leader_election(&cfg, &client)?;
    let states = cluster::state_store(&cfg, &client).await?;
    let d = wire(&cfg, leadership.clone(), states)?;
    let registry = Arc::new(crate::runtime::rollout::RolloutRegistry::default());
    let supervisor = rollouts::build_rollouts(&cfg, &d, &client, registry.clone()).await?;
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
        (crate::runtime::config::StateBackend::Kube, true) => d.state.store.clone(),
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
            return Err(DaemonError::WebhookStateDir {
                dir: cfg.state.dir.clone(),
            });
        };
        let (ws, triggers) = crate::runtime::webhook::WebhookState::from_config(
            &cfg.webhook,
            store,
            Arc::new(d.slos.slo_ids().clone()),
            d.state.metrics.webhook.clone(),
        )
        .map_err(DaemonError::Webhook)?;
        forward_alerts(
            triggers,
            alert_tx.clone(),
            leadership.clone(),
            handoff_store.clone(),
        );
        crate::runtime::webhook::router(ws)
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
            Retention {
                retention: cfg.state.retention.as_std(),
                dedupe_ttl: cfg.webhook.dedupe_ttl.as_std(),
            },
            Arc::new(move |ns: &str, name: &str| running.get(ns, name).is_some()),
            stop_rx.clone(),
        )
    });
    let extra = extra.merge(crate::runtime::rollout::api::router(
        d.state.clone(),
        registry,
    ));
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
                tracing::error!("leader election: {}", crate::ports::error_chain(&e));
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
    d.slos.reload().await;

    let reloader = spawn_reloader(
        d.slos.clone(),
        cfg.slos.reload_interval.as_std(),
        wake.clone(),
        stop_rx.clone(),
    );
    // However many alerts arrive, at most one evaluation waits per SLO (runtime::coalesce).
    let pending = Arc::new(Coalescer::new(
        d.state.metrics.webhook.triggers_coalesced.clone(),
    ));
    let collector = coalesce::collect(alerts, pending.clone(), |r: &GuardRequest| r.slo_id.clone());
    let scheduler = spawn_scheduler(
        d.slos.clone(),
        cfg.evaluation.interval.as_std(),
        cfg.evaluation.jitter,
        wake.clone(),
        pending,
        stop_rx.clone(),
    );

    // Bounded connections, header/body timeouts, graceful shutdown: runtime::serve.
    serve::serve(
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
