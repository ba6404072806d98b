//! The rollout supervisor as `rollouts.*` configures it: the source of Rollouts, and per
//! Rollout a controller with its router, state store and version source.

use std::sync::Arc;

use super::cluster::need_kube;
use super::{DaemonError, Wired};
use crate::ports::state::StateStore;
use crate::runtime::config::Config;

/// The rollout supervisor: the Rollouts of `rollouts.source` (files or the cluster), each
/// run by a controller with the router, state store and version source `rollouts.router`,
/// `rollouts.state` and `rollouts.versions` name. `None` without rollouts.
///
/// With `source: file`, an error in the files at start is fatal (exit 2), as a bad config
/// file is; later ones, and every problem of cluster objects, are logged and leave the
/// running controllers as they are. Every Rollout is checked against `rollouts.route_namespaces`
/// and `rollouts.gitops_paths` before it runs (a refusal goes to its status and the decision
/// log); without `gitops_paths` a warning says that GitOps paths are not scoped.
pub(super) async fn build_rollouts(
    cfg: &Config,
    d: &Wired,
    client: &Option<::kube::Client>,
    registry: Arc<crate::runtime::rollout::RolloutRegistry>,
) -> Result<Option<Arc<crate::runtime::rollout::RolloutSupervisor>>, DaemonError> {
    use crate::ports::rollouts::RolloutSource;
    use crate::runtime::config::{RolloutSourceKind, RolloutStateKind, RouterKind, VersionsKind};
    use crate::runtime::rollout::{
        weights_file, ControllerFactory, ControllerSettings, FileVersions, RolloutController,
        RolloutDeps, RolloutSupervisor,
    };
    let rc = &cfg.rollouts;
    if !rc.enabled() {
        return Ok(None);
    }
    let source: Arc<dyn RolloutSource> = match rc.source {
        RolloutSourceKind::File => {
            let files = crate::adapters::rollout_files::FileRollouts::new(rc.paths.clone());
            let set = files.list().await.map_err(DaemonError::RolloutSource)?;
            for w in &set.warnings {
                tracing::warn!("{w}");
            }
            if !set.errors.is_empty() {
                return Err(DaemonError::RolloutFiles(set.errors));
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
        return Err(DaemonError::RolloutsStateDir {
            dir: cfg.state.dir.clone(),
        });
    };
    let store: Arc<dyn StateStore> = match rc.state {
        RolloutStateKind::File => documents,
        RolloutStateKind::Kube => Arc::new(crate::adapters::kube::RolloutStatusStore::new(
            need_kube(client, "rollouts.state")?,
            documents,
        )),
    };
    let versions: Arc<dyn crate::runtime::rollout::VersionSource> =
        match (rc.versions, &rc.versions_file) {
            (VersionsKind::Kube, _) => Arc::new(crate::adapters::kube::KubeVersions::new(
                need_kube(client, "rollouts.versions")?,
            )),
            (VersionsKind::File, Some(f)) => Arc::new(FileVersions::new(f.clone())),
            (VersionsKind::File, None) => return Err(DaemonError::NoVersionsFile),
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
    let admission_store = store.clone();
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
    let scope = rc.scope(&cfg.guard.apps);
    if scope.gitops_unscoped() && d.repo.is_some() {
        tracing::warn!(
            "rollouts.gitops_paths is not set: Rollouts are not scoped to GitOps paths, so a Rollout in any namespace may revert and commit under any path of the GitOps repository; list each namespace's paths to scope them"
        );
    }
    let admission = crate::runtime::rollout::Admission {
        scope,
        store: Some(admission_store),
    };
    Ok(Some(Arc::new(
        RolloutSupervisor::new(source, factory, registry)
            .with_metrics(d.state.metrics.rollout.clone())
            .with_admission(admission),
    )))
}
