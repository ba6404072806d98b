//! The `VersionSource` port: which version the stable and the canary workload of a Rollout
//! run. The state machine starts a rollout when the canary runs a version that differs from
//! stable's, restarts it when the canary's version changes, and finishes a promotion once
//! stable runs the canary's version.
//!
//! Implementations: `crate::adapters::kube::KubeVersions` (the workloads' pod template
//! label, in a cluster), and `FileVersions` / `StaticVersions` in
//! `crate::adapters::versions` (a file for local runs, memory for tests and the
//! demo).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::rollout::Rollout;

/// The versions the two workloads run; `None` where unknown (no such workload, no label).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadVersions {
    #[serde(default)]
    pub stable: Option<String>,
    #[serde(default)]
    pub canary: Option<String>,
}

impl WorkloadVersions {
    pub fn new(stable: impl Into<String>, canary: impl Into<String>) -> Self {
        WorkloadVersions {
            stable: Some(stable.into()),
            canary: Some(canary.into()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    #[error("versions file {path}: {message}")]
    File { path: String, message: String },
    #[error("reading the versions of {rollout}: {message}")]
    Backend { rollout: String, message: String },
}

/// Reads the versions of a Rollout's workloads. Implementations must be quick or bounded
/// (the controller also wraps every call in a timeout).
#[async_trait]
pub trait VersionSource: Send + Sync {
    async fn versions(&self, rollout: &Rollout) -> Result<WorkloadVersions, VersionError>;
}
