//! The `TrafficRouter` port: read and set the stable/canary weights of one route.
//!
//! The adapters (Istio VirtualService, Gateway API HTTPRoute, and a file router for local
//! runs) live in `crate::adapters`. They change only the weights of the named route, guard
//! each write with the object's resourceVersion, read the weights back after writing, and
//! report a weight changed by someone else instead of overwriting it.

use async_trait::async_trait;

pub use crate::model::traffic::{BackendRef, IstioDestinations, TrafficTarget, Weights};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrafficError {
    /// The weights are not what slogate last set: someone changed them by hand.
    #[error(
        "{target}: weights were changed outside slogate: expected {expected:?}, found {found:?}"
    )]
    ManualChange {
        target: String,
        expected: Weights,
        found: Weights,
    },
    /// The object does not have the route or destinations the spec names.
    #[error("{target}: {message}")]
    Shape { target: String, message: String },
    #[error("{target} not found")]
    NotFound { target: String },
    /// The write kept conflicting on resourceVersion.
    #[error("{target}: write conflicted {attempts} times; gave up")]
    Conflict { target: String, attempts: u32 },
    /// The weights read back after a write are not the ones written.
    #[error("{target}: wrote {wrote:?} but read back {read:?}")]
    ReadBack {
        target: String,
        wrote: Weights,
        read: Weights,
    },
    #[error("{target}: {message}")]
    Api { target: String, message: String },
}

#[async_trait]
pub trait TrafficRouter: Send + Sync {
    /// Current weights of the route.
    async fn weights(&self) -> Result<Weights, TrafficError>;

    /// Set the weights. `expected` is what slogate last set (or `None` on the first write);
    /// when the route holds something else, nothing is written and
    /// [`TrafficError::ManualChange`] is returned. Returns the weights read back.
    async fn set_weights(
        &self,
        expected: Option<Weights>,
        weights: Weights,
    ) -> Result<Weights, TrafficError>;
}
