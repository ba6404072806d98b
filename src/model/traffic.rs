//! Traffic weights and the route they apply to: what the Rollout spec names and the
//! `TrafficRouter` port reads and writes.

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
