//! The `TrafficRouter` port: read and set the stable/canary weights of one route, and the
//! header-match route to the canary that a header step places ahead of it.
//!
//! The adapters (Istio VirtualService, Gateway API HTTPRoute, and a file router for local
//! runs) live in `crate::adapters`. They change only the weights of the named route, guard
//! each write with the object's resourceVersion, read the weights back after writing, and
//! report a weight changed by someone else instead of overwriting it.

use async_trait::async_trait;

use crate::model::traffic::{Routing, Weights};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrafficError {
    /// The weights (or the header route) are not what slogate last set: someone changed
    /// them by hand.
    #[error(
        "{target}: routing was changed outside slogate: expected {}, found {}",
        expected.describe(),
        found.describe()
    )]
    ManualChange {
        target: String,
        expected: Routing,
        found: Routing,
    },
    /// The object does not have the route or destinations the spec names.
    #[error("{target}: {message}")]
    Shape { target: String, message: String },
    #[error("{target} not found")]
    NotFound { target: String },
    /// The write kept conflicting on resourceVersion.
    #[error("{target}: write conflicted {attempts} times; gave up")]
    Conflict { target: String, attempts: u32 },
    /// The routing read back after a write is not the one written.
    #[error("{target}: wrote {} but read back {}", wrote.describe(), read.describe())]
    ReadBack {
        target: String,
        wrote: Routing,
        read: Routing,
    },
    #[error("{target}: {message}")]
    Api { target: String, message: String },
}

#[async_trait]
pub trait TrafficRouter: Send + Sync {
    /// Current weights of the route and slogate's header route, if there is one.
    async fn routing(&self) -> Result<Routing, TrafficError>;

    /// Set the weights and add, change or remove slogate's header route, in one guarded
    /// write. `expected` is what slogate last set (or `None` on the first write); when the
    /// route holds something else, nothing is written and [`TrafficError::ManualChange`] is
    /// returned. Returns the routing read back.
    async fn set_routing(
        &self,
        expected: Option<&Routing>,
        routing: &Routing,
    ) -> Result<Routing, TrafficError>;

    /// Current weights of the route.
    async fn weights(&self) -> Result<Weights, TrafficError> {
        Ok(self.routing().await?.weights)
    }

    /// Set the weights, with no header route (one is removed).
    async fn set_weights(
        &self,
        expected: Option<Weights>,
        weights: Weights,
    ) -> Result<Weights, TrafficError> {
        let expected = expected.map(Routing::weights);
        Ok(self
            .set_routing(expected.as_ref(), &Routing::weights(weights))
            .await?
            .weights)
    }
}
