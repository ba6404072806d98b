//! The `RolloutSource` port: which Rollouts the daemon runs. The rollout supervisor
//! (`crate::runtime::rollout::supervisor`) reads it at start, every
//! `rollouts.resync_interval`, and as soon as the source says it changed
//! ([`RolloutSource::changed`]), and starts, restarts or stops one controller per Rollout to
//! match.
//!
//! Implementations: `crate::adapters::rollout_files::FileRollouts` (`rollouts.paths`, files
//! or a mounted ConfigMap) and `crate::adapters::kube::KubeRollouts` (the cluster's
//! `slogate.dev/v1alpha1` Rollout objects).

use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::rollout::Rollout;

/// One reading of a source.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RolloutSet {
    /// Valid Rollouts, unique by `namespace/name`.
    pub rollouts: Vec<Rollout>,
    /// Rollouts that exist but are invalid, by `namespace/name`, with every problem found.
    /// A controller already running one keeps its last valid spec; none is started.
    pub invalid: BTreeMap<String, Vec<String>>,
    /// Problems not tied to one Rollout (an unreadable file, a document without a name).
    /// While there are any, the reading may be incomplete, so no controller is stopped.
    pub errors: Vec<String>,
    /// Warnings, for the log.
    pub warnings: Vec<String>,
}

impl RolloutSet {
    /// True when the reading is complete: every Rollout that exists is in `rollouts` or
    /// `invalid`, so a running controller missing from both was deleted.
    pub fn is_complete(&self) -> bool {
        self.errors.is_empty()
    }
}

/// The source could not be read at all (API down, RBAC); nothing is changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("reading the Rollouts from {source_name}: {message}")]
pub struct RolloutSourceError {
    /// What was read (`rollouts.paths`, `Rollouts in all namespaces`…).
    pub source_name: String,
    pub message: String,
}

#[async_trait]
pub trait RolloutSource: Send + Sync {
    /// What this source reads, for logs and errors.
    fn describe(&self) -> String;

    /// Every Rollout the source defines now.
    async fn list(&self) -> Result<RolloutSet, RolloutSourceError>;

    /// Resolves when a Rollout may have been added, changed or deleted since the last
    /// successful [`list`](Self::list): a hint to list again now rather than at the next
    /// resync. It carries no data (the next `list` is the truth), may resolve spuriously,
    /// and must be cancel-safe. A source that cannot tell never resolves (the default).
    async fn changed(&self) {
        std::future::pending::<()>().await
    }
}
