//! The leader-election port: only the leader writes weights, commits or status.
//!
//! The runtime holds a [`Leadership`](crate::adapters::leader::Leadership) handle, which an
//! elector grants and revokes, and asks it right before every write. The handle, and
//! `AlwaysLeader` for local runs without a cluster, are in `crate::adapters::leader`; the
//! Kubernetes Lease elector is in `crate::adapters::kube::lease`. Each elector hands out its
//! handle with an inherent `leadership()` method.

use async_trait::async_trait;
use tokio::sync::watch;

use super::BoxError;

/// Why leader election could not start or stopped. Print it with
/// [`error_chain`](super::error_chain): `Kube`'s message is what was being done, the API
/// call's error is its source.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// The message is the error: it names the setting at fault.
    #[error("leader election configuration: {0}")]
    Config(String),
    #[error("leader election: {what}")]
    Kube {
        /// What was being done: `releasing the lease`.
        what: &'static str,
        #[source]
        source: BoxError,
    },
}

#[async_trait]
pub trait LeaderElector: Send + Sync {
    /// Campaign and renew until `stop` turns true; steps down (and releases the lease, where
    /// there is one) before returning.
    async fn run(&self, stop: watch::Receiver<bool>) -> Result<(), LeaderError>;
}
