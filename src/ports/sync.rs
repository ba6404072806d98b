//! The `SyncTrigger` port: ask the GitOps controller to apply the repository now instead of
//! at its next poll (Argo CD's sync API, Flux's reconcile annotation).

use async_trait::async_trait;

use super::BoxError;

/// Why a sync could not be requested. `KubeCall` keeps the API call's error as its source:
/// print it with [`error_chain`](super::error_chain).
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("sync of `{app}`: HTTP {status}: {body}")]
    Http {
        app: String,
        status: u16,
        body: String,
    },
    #[error("sync of `{app}`: {message}")]
    Transport { app: String, message: String },
    /// The controller's object is not what was expected (the message says what).
    #[error("sync of `{app}`: {message}")]
    Kube { app: String, message: String },
    /// A call to the Kubernetes API failed: `what` is the call.
    #[error("sync of `{app}`: {what}")]
    KubeCall {
        app: String,
        what: String,
        #[source]
        source: BoxError,
    },
    /// The Kubernetes client could not be built.
    #[error("sync of `{app}`")]
    KubeClient {
        app: String,
        #[source]
        source: BoxError,
    },
    /// The configuration is unusable: the message names the key (no underlying error, or a
    /// secret's, whose text is all that is kept).
    #[error("sync configuration: {0}")]
    Config(String),
    /// The client could not be set up from the configuration: `what` names the setting
    /// (`argocd.ca_file <path>`, `argocd HTTP client`), its error is the source.
    #[error("sync configuration: {what}: {source}")]
    Setup {
        what: String,
        #[source]
        source: BoxError,
    },
}

#[async_trait]
pub trait SyncTrigger: Send + Sync {
    /// Request a sync (refresh + apply) of the application. `revision` is the commit that
    /// should be applied when the controller supports pinning it.
    async fn request_sync(&self, revision: Option<&str>) -> Result<(), SyncError>;
}
