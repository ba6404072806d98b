//! The `SyncTrigger` port: ask the GitOps controller to apply the repository now instead of
//! at its next poll (Argo CD's sync API, Flux's reconcile annotation).

use async_trait::async_trait;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyncError {
    #[error("sync of `{app}`: HTTP {status}: {body}")]
    Http {
        app: String,
        status: u16,
        body: String,
    },
    #[error("sync of `{app}`: {message}")]
    Transport { app: String, message: String },
    #[error("sync of `{app}`: {message}")]
    Kube { app: String, message: String },
    #[error("sync configuration: {0}")]
    Config(String),
}

#[async_trait]
pub trait SyncTrigger: Send + Sync {
    /// Request a sync (refresh + apply) of the application. `revision` is the commit that
    /// should be applied when the controller supports pinning it.
    async fn request_sync(&self, revision: Option<&str>) -> Result<(), SyncError>;
}
