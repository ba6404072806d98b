//! Implementations of the [`VersionSource`] port (`crate::ports::versions`, re-exported
//! here and in `crate::runtime::rollout`) outside a cluster:
//! - [`FileVersions`]: a YAML or JSON file read on every call, for local runs and the daemon
//!   outside a cluster (`rollouts.versions: file`, `rollouts.versions_file`); whoever
//!   deploys writes it (the end-to-end tests play Argo CD that way);
//! - [`StaticVersions`]: versions held in memory and set through its methods, for tests and
//!   the demo's simulated cluster.
//!
//! In a cluster (`rollouts.versions: kube`) the versions are the workloads' pod template
//! label `spec.workloads.versionLabel` (Istio's `destination_version`), read by
//! `crate::adapters::kube::KubeVersions`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;

use crate::model::yaml::YamlError;
pub use crate::ports::versions::{VersionError, VersionSource, WorkloadVersions};
use crate::rollout::Rollout;

/// Versions in a file, read on every call so that edits are seen at once:
///
/// ```yaml
/// # <namespace>/<rollout name>: versions of its stable and canary workloads
/// shop/checkout:
///   stable: v1
///   canary: v2
/// ```
///
/// JSON with the same shape is accepted. A missing file or a rollout missing from it means
/// "unknown" (nothing starts); a file that cannot be parsed is an error.
#[derive(Debug, Clone)]
pub struct FileVersions {
    path: PathBuf,
}

impl FileVersions {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileVersions { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Write the versions of one rollout into the file (creating it), keeping the others.
    /// For tests, the demo and scripts that play the deployer.
    pub fn write(&self, key: &str, versions: &WorkloadVersions) -> Result<(), VersionError> {
        let path = || self.path.display().to_string();
        let io = |source| VersionError::File {
            path: path(),
            source,
        };
        let mut all = match std::fs::read_to_string(&self.path) {
            Ok(text) => parse(&text).map_err(|source| VersionError::Format {
                path: path(),
                source,
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(io(e)),
        };
        all.insert(key.to_string(), versions.clone());
        let text = crate::model::yaml::to_string(&all).map_err(|source| VersionError::Encode {
            path: path(),
            source,
        })?;
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, text).map_err(io)?;
        std::fs::rename(&tmp, &self.path).map_err(io)
    }
}

fn parse(text: &str) -> Result<BTreeMap<String, WorkloadVersions>, YamlError> {
    if text.trim().is_empty() {
        return Ok(BTreeMap::new());
    }
    crate::model::yaml::from_str(text)
}

#[async_trait]
impl VersionSource for FileVersions {
    async fn versions(&self, rollout: &Rollout) -> Result<WorkloadVersions, VersionError> {
        let path = || self.path.display().to_string();
        let text = match tokio::fs::read_to_string(&self.path).await {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(WorkloadVersions::default())
            }
            Err(source) => {
                return Err(VersionError::File {
                    path: path(),
                    source,
                })
            }
        };
        let all = parse(&text).map_err(|source| VersionError::Format {
            path: path(),
            source,
        })?;
        Ok(all.get(&rollout.key()).cloned().unwrap_or_default())
    }
}

/// Versions held in memory, keyed by `<namespace>/<name>`.
#[derive(Debug, Default)]
pub struct StaticVersions {
    map: Mutex<BTreeMap<String, WorkloadVersions>>,
}

impl StaticVersions {
    pub fn new() -> Self {
        Self::default()
    }

    /// Set both versions of a rollout (`key` is `<namespace>/<name>`).
    pub fn set(&self, key: &str, stable: &str, canary: &str) {
        self.lock()
            .insert(key.to_string(), WorkloadVersions::new(stable, canary));
    }

    /// Set the stable version only (a promotion landed), keeping the canary's.
    pub fn set_stable(&self, key: &str, stable: &str) {
        self.lock().entry(key.to_string()).or_default().stable = Some(stable.to_string());
    }

    /// Set the canary version only (a new canary was deployed).
    pub fn set_canary(&self, key: &str, canary: &str) {
        self.lock().entry(key.to_string()).or_default().canary = Some(canary.to_string());
    }

    pub fn get(&self, key: &str) -> WorkloadVersions {
        self.lock().get(key).cloned().unwrap_or_default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, WorkloadVersions>> {
        // Every operation leaves the map whole; a panic elsewhere cannot corrupt it.
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl VersionSource for StaticVersions {
    async fn versions(&self, rollout: &Rollout) -> Result<WorkloadVersions, VersionError> {
        Ok(self.get(&rollout.key()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rollout() -> Rollout {
        crate::rollout::load::from_yaml_str(
            "apiVersion: slogate.dev/v1alpha1\nkind: Rollout\nmetadata: {name: checkout, namespace: shop}\nspec:\n  traffic:\n    httpRoute: {name: r, stableBackend: {name: s}, canaryBackend: {name: c}}\n  workloads: {stable: {name: checkout}, canary: {name: checkout-canary}}\n  analysis:\n    metrics: [{name: request-success-rate, min: 0.99}]\n  gitops: {app: checkout, path: apps/checkout}\n",
        )
        .unwrap()
    }

    #[tokio::test]
    async fn file_versions_are_read_on_every_call() {
        let dir = tempfile::tempdir().unwrap();
        let f = FileVersions::new(dir.path().join("versions.yaml"));
        let r = rollout();
        assert_eq!(f.versions(&r).await.unwrap(), WorkloadVersions::default());
        f.write("shop/checkout", &WorkloadVersions::new("v1", "v2"))
            .unwrap();
        f.write("other/x", &WorkloadVersions::new("a", "b"))
            .unwrap();
        assert_eq!(
            f.versions(&r).await.unwrap(),
            WorkloadVersions::new("v1", "v2")
        );
        std::fs::write(
            f.path(),
            r#"{"shop/checkout": {"stable": "v2", "canary": "v2"}}"#,
        )
        .unwrap();
        assert_eq!(
            f.versions(&r).await.unwrap(),
            WorkloadVersions::new("v2", "v2")
        );
        std::fs::write(f.path(), "shop/checkout: [1, 2]\n").unwrap();
        let err = f.versions(&r).await.unwrap_err();
        let e = err.to_string();
        assert!(e.contains("versions.yaml") && e.contains("expected"), "{e}");
        // The YAML error is the source, and its text is in the message once.
        let source = std::error::Error::source(&err).expect("a source");
        assert!(source.is::<YamlError>(), "{source:?}");
        assert!(e.contains(&source.to_string()), "{e}");
        assert_eq!(crate::ports::error_chain(&err), e);
        // An unreadable file: the io::Error is the source.
        let d = FileVersions::new(dir.path());
        let err = d.versions(&r).await.unwrap_err();
        let source = std::error::Error::source(&err).expect("a source");
        assert!(source.is::<std::io::Error>(), "{source:?}");
        assert_eq!(
            err.to_string(),
            format!("versions file {}: {source}", dir.path().display())
        );
    }

    #[tokio::test]
    async fn static_versions() {
        let s = StaticVersions::new();
        let r = rollout();
        s.set("shop/checkout", "v1", "v2");
        s.set_stable("shop/checkout", "v2");
        assert_eq!(
            s.versions(&r).await.unwrap(),
            WorkloadVersions::new("v2", "v2")
        );
    }
}
