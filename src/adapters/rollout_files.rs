//! [`RolloutSource`] from files (`rollouts.paths`: files or directories of Rollout YAML,
//! e.g. a mounted ConfigMap), read again at every resync so an edit takes effect without a
//! restart.
//!
//! Files are read in `spawn_blocking`. Any error in any file makes the reading incomplete
//! ([`RolloutSet::errors`]): the valid Rollouts are still returned, but the supervisor stops
//! no controller until every file reads cleanly again, because a file that does not parse
//! may still define the Rollouts that seem to be missing.

use std::path::PathBuf;

use async_trait::async_trait;

use crate::ports::rollouts::{RolloutSet, RolloutSource, RolloutSourceError};

/// Rollouts read from `rollouts.paths`.
#[derive(Debug, Clone)]
pub struct FileRollouts {
    paths: Vec<PathBuf>,
}

impl FileRollouts {
    pub fn new(paths: Vec<PathBuf>) -> Self {
        FileRollouts { paths }
    }
}

#[async_trait]
impl RolloutSource for FileRollouts {
    fn describe(&self) -> String {
        let paths: Vec<String> = self.paths.iter().map(|p| p.display().to_string()).collect();
        format!("rollouts.paths ({})", paths.join(", "))
    }

    async fn list(&self) -> Result<RolloutSet, RolloutSourceError> {
        let paths = self.paths.clone();
        let report = tokio::task::spawn_blocking(move || crate::rollout::load::load_paths(&paths))
            .await
            .map_err(|e| RolloutSourceError {
                source_name: self.describe(),
                message: format!("the reading task failed: {e}"),
            })?;
        Ok(RolloutSet {
            rollouts: report.rollouts.into_iter().map(|l| l.rollout).collect(),
            invalid: Default::default(),
            errors: report.errors.iter().map(ToString::to_string).collect(),
            warnings: report.warnings.iter().map(ToString::to_string).collect(),
        })
    }
}
