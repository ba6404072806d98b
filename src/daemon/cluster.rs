//! Cluster set-up for the daemon: the Kubernetes client every `kube` key shares, leader
//! election (a Lease, or always the leader) and the state store `state.backend` names.

use std::sync::Arc;

use super::DaemonError;
use crate::adapters::leader::{AlwaysLeader, Leadership};
use crate::adapters::state::FileStore;
use crate::ports::leader::LeaderElector;
use crate::ports::state::StateStore;
use crate::runtime::config::Config;

/// The leadership handle: a Lease elector when `leader_election.enabled`, else always the
/// leader.
pub(super) fn leader_election(
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
    let identity = LeaseConfig::identity_from_env().map_err(DaemonError::LeaderElection)?;
    let elector = LeaseElector::new(
        need_kube(client, "leader_election")?,
        LeaseConfig::new(namespace, le.name.clone(), identity),
    )
    .map_err(DaemonError::LeaderElection)?;
    Ok((elector.leadership(), Some(Arc::new(elector))))
}

/// The Kubernetes client every `kube` key shares, built once when any asks for one
/// (leader election, `state.backend`, `rollouts.source`, `.router`, `.state`,
/// `.versions`). A failure names the keys that asked.
pub(super) async fn kube_client(cfg: &Config) -> Result<Option<::kube::Client>, DaemonError> {
    use crate::runtime::config::{
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
        .map_err(|source| DaemonError::Kube {
            keys: uses_kube.join(", "),
            source,
        })
}

/// The client of [`kube_client`], which exists whenever a key says `kube`.
pub(super) fn need_kube(
    client: &Option<::kube::Client>,
    key: &'static str,
) -> Result<::kube::Client, DaemonError> {
    // Unreachable: `kube_client` builds one whenever a key says kube.
    client.clone().ok_or(DaemonError::NoKubeClient { key })
}

/// The state store `state.backend` names: the file store on `state.dir`, or the shared
/// ConfigMap store (`state.namespace`, else `POD_NAMESPACE`) over the file store, which keeps
/// the decision log.
///
/// The file store is required by the guard and the rollouts; without either, a missing or
/// read-only state directory only disables the state (with a warning).
pub(super) async fn state_store(
    cfg: &Config,
    client: &Option<::kube::Client>,
) -> Result<Option<Arc<dyn StateStore>>, DaemonError> {
    use crate::runtime::config::StateBackend;
    let files: Arc<dyn StateStore> = match FileStore::open(&cfg.state.dir) {
        Ok(s) => Arc::new(s),
        Err(e) if cfg.guard.apps.is_empty() && !cfg.rollouts.enabled() => {
            tracing::warn!("state.dir: {e}; the state store and the decision log are disabled");
            return Ok(None);
        }
        Err(e) => return Err(DaemonError::StateDir(e)),
    };
    match cfg.state.backend {
        StateBackend::File => Ok(Some(files)),
        StateBackend::Kube => {
            let pod_namespace = std::env::var("POD_NAMESPACE").ok();
            let namespace = cfg
                .state
                .kube_namespace(pod_namespace)
                .map_err(DaemonError::StateNamespace)?;
            let client = need_kube(client, "state.backend")?;
            tracing::info!(%namespace, "state documents and the shared decision log in ConfigMaps; this replica's complete decision log in state.dir");
            Ok(Some(Arc::new(crate::adapters::kube::ConfigMapStore::new(
                client, namespace, files,
            ))))
        }
    }
}
