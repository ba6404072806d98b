//! The `TrafficRouter` port: read and set the stable/canary weights of one route.
//!
//! The adapters (Istio VirtualService, Gateway API HTTPRoute, and a file router for local
//! runs) live in `crate::adapters`. They change only the weights of the named route, guard
//! each write with the object's resourceVersion, read the weights back after writing, and
//! report a weight changed by someone else instead of overwriting it.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// Weights in percent; `stable + canary == 100`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Weights {
    pub stable: u32,
    pub canary: u32,
}

impl Weights {
    /// `canary` percent to the canary, the rest to stable (clamped to 100).
    pub fn canary(canary: u32) -> Self {
        let canary = canary.min(100);
        Weights {
            stable: 100 - canary,
            canary,
        }
    }
}

/// Which object and route to shift.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum TrafficTarget {
    /// An Istio `networking.istio.io/v1` VirtualService.
    VirtualService {
        namespace: String,
        name: String,
        /// `spec.http[].name` of the route to shift.
        route: String,
        destinations: IstioDestinations,
    },
    /// A Gateway API `gateway.networking.k8s.io/v1` HTTPRoute. The rule shifted is the
    /// one whose backendRefs hold both the stable and the canary backend.
    HttpRoute {
        namespace: String,
        name: String,
        stable: BackendRef,
        canary: BackendRef,
    },
}

/// How the stable and canary destinations of an Istio route are told apart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "mode")]
pub enum IstioDestinations {
    /// One host, two subsets of a DestinationRule.
    Subset {
        host: String,
        stable_subset: String,
        canary_subset: String,
    },
    /// Two hosts (two Services).
    Host {
        stable_host: String,
        canary_host: String,
    },
}

/// A Gateway API backendRef (a Service by default).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendRef {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

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
