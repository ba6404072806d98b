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

use super::{error_chain, BoxError};
use crate::model::yaml::YamlError;
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

/// Why the versions could not be read. Each variant keeps its cause as the source and
/// shows it in its message too (the controller prints these with `{e}`).
#[derive(Debug, thiserror::Error)]
pub enum VersionError {
    /// The versions file could not be read or written.
    #[error("versions file {path}: {source}")]
    File {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The versions file does not hold the expected entries.
    #[error(
        "versions file {path}: {source}; expected `<namespace>/<name>: {{stable: <version>, \
         canary: <version>}}` entries"
    )]
    Format {
        path: String,
        #[source]
        source: YamlError,
    },
    /// The versions could not be written as YAML.
    #[error("versions file {path}: {source}")]
    Encode {
        path: String,
        #[source]
        source: YamlError,
    },
    /// The backend's call failed: `what` is the call, the adapter's error is the source.
    #[error("reading the versions of {rollout}: {what}: {}", error_chain(.source.as_ref()))]
    Backend {
        rollout: String,
        what: String,
        #[source]
        source: BoxError,
    },
}

/// Reads the versions of a Rollout's workloads. Implementations must be quick or bounded
/// (the controller also wraps every call in a timeout).
#[async_trait]
pub trait VersionSource: Send + Sync {
    async fn versions(&self, rollout: &Rollout) -> Result<WorkloadVersions, VersionError>;
}
