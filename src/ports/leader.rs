//! The leader-election port: only the leader writes weights, commits or status.
//!
//! The runtime holds a [`Leadership`](crate::adapters::leader::Leadership) handle, which an
//! elector grants and revokes, and asks it right before every write. The handle, and
//! `AlwaysLeader` for local runs without a cluster, are in `crate::adapters::leader`; the
//! Kubernetes Lease elector is in `crate::adapters::kube::lease`. Each elector hands out its
//! handle with an inherent `leadership()` method.

use async_trait::async_trait;
use tokio::sync::watch;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeaderError {
    #[error("leader election configuration: {0}")]
    Config(String),
    #[error("leader election: {0}")]
    Kube(String),
}

#[async_trait]
pub trait LeaderElector: Send + Sync {
    /// Campaign and renew until `stop` turns true; steps down (and releases the lease, where
    /// there is one) before returning.
    async fn run(&self, stop: watch::Receiver<bool>) -> Result<(), LeaderError>;
}
