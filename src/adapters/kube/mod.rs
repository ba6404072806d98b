//! Everything that talks to the Kubernetes API, through kube-rs.
//!
//! - [`traffic`]: the `TrafficRouter` adapters for Istio VirtualServices and Gateway API
//!   HTTPRoutes (JSON patches of the two weights, guarded by resourceVersion, read back);
//! - [`lease`]: leader election on a `coordination.k8s.io/v1` Lease;
//! - [`flux`]: the `SyncTrigger` that asks Flux to reconcile a Kustomization now;
//! - [`rollout_status`]: the `StateStore` that keeps each rollout's state in its Rollout's
//!   status subresource (everything else in an inner store);
//! - [`rollouts`]: the `RolloutSource` that lists the Rollout objects (`rollouts.source: kube`);
//! - [`versions`]: the `VersionSource` that reads the workloads' version label.
//!
//! [`API_CALLS`] lists every API call these adapters make.
//! The RBAC manifest is written from it and tested against it, and the adapters' tests check
//! that every request they observe is in it ([`covers`]).
//!
//! Every call is bounded twice: the client built by [`client`] has connect, read and write
//! timeouts, and each adapter wraps each call in `tokio::time::timeout` (default
//! [`DEFAULT_CALL_TIMEOUT`]), which also bounds clients built elsewhere (tests, callers).

pub mod configmap_store;
pub mod flux;
pub mod lease;
pub mod rollout_status;
pub mod rollouts;
pub mod traffic;
pub mod versions;

use std::time::Duration;

pub use configmap_store::{ConfigMapStore, ConfigMapStoreError};
pub use flux::{FluxSync, LazyFlux};
pub use lease::{LeaseConfig, LeaseElector};
pub use rollout_status::{RolloutStatusError, RolloutStatusStore};
pub use rollouts::KubeRollouts;
pub use traffic::KubeTrafficRouter;
pub use versions::KubeVersions;

/// Default bound on one API call made by the adapters.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The field manager slogate's writes are recorded under (`metadata.managedFields`).
pub const FIELD_MANAGER: &str = "slogate";

/// A wall clock for the times written into objects, injectable for tests.
pub type WallClock = std::sync::Arc<dyn Fn() -> k8s_openapi::jiff::Timestamp + Send + Sync>;

/// One kind of Kubernetes API call, for RBAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiCall {
    /// API group; `""` is the core group.
    pub group: &'static str,
    pub version: &'static str,
    /// Plural resource name, with `/subresource` where one is used (`rollouts/status`).
    pub resource: &'static str,
    /// RBAC verbs: get, list, watch, create, update, patch, delete.
    pub verbs: &'static [&'static str],
    /// Why slogate needs it.
    pub why: &'static str,
}

/// Resources of [`API_CALLS`] used only in slogate's own namespace (a Role there, not the
/// ClusterRole): the leader election Lease and the shared state ConfigMaps.
pub const OWN_NAMESPACE_RESOURCES: &[&str] = &["leases", "configmaps"];

/// Every Kubernetes API call slogate makes. All are namespaced.
pub const API_CALLS: &[ApiCall] = &[
    ApiCall {
        group: "networking.istio.io",
        version: "v1",
        resource: "virtualservices",
        verbs: &["get", "patch"],
        why: "read and shift the stable/canary weights of a Rollout's route",
    },
    ApiCall {
        group: "gateway.networking.k8s.io",
        version: "v1",
        resource: "httproutes",
        verbs: &["get", "patch"],
        why: "read and shift the stable/canary backendRef weights of a Rollout's HTTPRoute",
    },
    ApiCall {
        group: "coordination.k8s.io",
        version: "v1",
        resource: "leases",
        verbs: &["get", "create", "update"],
        why: "leader election: only the leader writes weights, commits or status",
    },
    ApiCall {
        group: "",
        version: "v1",
        resource: "configmaps",
        verbs: &["get", "list", "create", "update", "delete"],
        why: "shared state (state.backend: kube): one ConfigMap per document, read, listed by \
              label, created, replaced and (expired documents) deleted guarded by its \
              resourceVersion",
    },
    ApiCall {
        group: "kustomize.toolkit.fluxcd.io",
        version: "v1",
        resource: "kustomizations",
        verbs: &["get", "patch"],
        why: "find a Kustomization's source and annotate it with reconcile.fluxcd.io/requestedAt",
    },
    ApiCall {
        group: "source.toolkit.fluxcd.io",
        version: "v1",
        resource: "gitrepositories",
        verbs: &["patch"],
        why: "ask Flux to fetch a revert commit now (reconcile.fluxcd.io/requestedAt)",
    },
    ApiCall {
        group: "source.toolkit.fluxcd.io",
        version: "v1",
        resource: "ocirepositories",
        verbs: &["patch"],
        why: "ask Flux to fetch the source of a Kustomization now",
    },
    ApiCall {
        group: "source.toolkit.fluxcd.io",
        version: "v1",
        resource: "buckets",
        verbs: &["patch"],
        why: "ask Flux to fetch the source of a Kustomization now",
    },
    ApiCall {
        group: "slogate.dev",
        version: "v1alpha1",
        resource: "rollouts",
        verbs: &["get", "list", "watch"],
        why: "list the Rollouts to run (rollouts.source: kube), watch them to list again at \
              once when one is added, deleted or its spec changes, and read the state \
              machine's state stored in their status",
    },
    ApiCall {
        group: "slogate.dev",
        version: "v1alpha1",
        resource: "rollouts/status",
        verbs: &["patch"],
        why: "record the rollout state machine's state before applying its effects",
    },
    ApiCall {
        group: "apps",
        version: "v1",
        resource: "deployments",
        verbs: &["get"],
        why: "read the version label of a Rollout's stable and canary Deployments' pod template",
    },
    ApiCall {
        group: "apps",
        version: "v1",
        resource: "statefulsets",
        verbs: &["get"],
        why: "read the version label of a Rollout's stable and canary StatefulSets' pod template",
    },
];

/// A request as RBAC sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRbac {
    pub group: String,
    pub version: String,
    /// Plural resource, with `/subresource` when the path has one.
    pub resource: String,
    pub verb: &'static str,
    pub namespace: Option<String>,
}

/// Map an API request (method and path with optional query) to its RBAC attributes.
/// `None` for paths that are not resource paths (discovery, `/version`, …).
pub fn classify_request(method: &str, uri: &str) -> Option<RequestRbac> {
    let (path, query) = match uri.split_once('?') {
        Some((p, q)) => (p, q),
        None => (uri, ""),
    };
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segments.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(ns.to_string()), rest),
        _ => (None, rest),
    };
    let (resource, named) = match rest {
        [resource] => (resource.to_string(), false),
        [resource, _name] => (resource.to_string(), true),
        [resource, _name, sub] => (format!("{resource}/{sub}"), true),
        _ => return None,
    };
    let watch = query
        .split('&')
        .any(|kv| kv == "watch=true" || kv == "watch=1");
    let verb = match (method.to_ascii_uppercase().as_str(), named) {
        ("GET", _) if watch => "watch",
        ("GET", true) => "get",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => return None,
    };
    Some(RequestRbac {
        group: group.to_string(),
        version: version.to_string(),
        resource,
        verb,
        namespace,
    })
}

/// Whether [`API_CALLS`] grants the request. Unclassifiable requests are not covered.
pub fn covers(method: &str, uri: &str) -> bool {
    let Some(req) = classify_request(method, uri) else {
        return false;
    };
    API_CALLS.iter().any(|c| {
        c.group == req.group
            && c.version == req.version
            && c.resource == req.resource
            && c.verbs.contains(&req.verb)
    })
}

/// Why a client could not be built. Print it with [`error_chain`]: `Build`'s cause is its
/// source.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The cause shows inside the message, before the hint, and is the source too.
    #[error(
        "no Kubernetes configuration found: not in a cluster (KUBERNETES_SERVICE_HOST unset or no \
         service account token) and no usable kubeconfig (KUBECONFIG or ~/.kube/config): {source}; \
         to run without a cluster, use the file router and the file state store"
    )]
    NoConfig {
        #[source]
        source: ::kube::config::InferConfigError,
    },
    #[error("building the Kubernetes client")]
    Build(#[source] ::kube::Error),
}

/// Connect and write timeout of [`client`].
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A client from the in-cluster service account or the local kubeconfig, inferred as
/// `kube::Client::try_default()` does, with a connect and write timeout of
/// [`CONNECT_TIMEOUT`] and a read timeout of `read_timeout`.
///
/// For a client that only makes request/response calls (the adapters here), pass
/// [`DEFAULT_CALL_TIMEOUT`]. A client shared with watches needs a read timeout above the
/// watch's server-side timeout (kube-runtime's watcher asks for 290s; kube's default is
/// 295s), and then relies on the per-call `tokio::time::timeout` every adapter applies.
pub async fn client(read_timeout: Duration) -> Result<::kube::Client, ClientError> {
    let mut config = ::kube::Config::infer()
        .await
        .map_err(|source| ClientError::NoConfig { source })?;
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    config.write_timeout = Some(CONNECT_TIMEOUT);
    config.read_timeout = Some(read_timeout);
    ::kube::Client::try_from(config).map_err(ClientError::Build)
}

/// What a failed call means to the adapters. Print it with [`error_chain`]: a transport
/// failure's message is only the context, its cause (kube's error and the reasons below
/// it, e.g. rustls') is the source.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CallError {
    #[error("not found")]
    NotFound,
    /// 409: resourceVersion conflict on update/patch, or AlreadyExists on create. The
    /// message is the API server's.
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The API server was not reached, or not trusted: connection refused, DNS, a TLS
    /// handshake that failed.
    #[error("cannot reach the API server")]
    Transport(#[source] ::kube::Error),
    /// The API server answered with another error status (403 from RBAC, 422, 500, …).
    #[error("HTTP {code} {reason}: {message}")]
    Status {
        code: u16,
        reason: String,
        message: String,
    },
    /// Any other failure of the call, e.g. an answer that could not be read.
    #[error(transparent)]
    Other(::kube::Error),
}

impl CallError {
    /// Whether the API server answered at all (a status), so that RBAC or a missing CRD can
    /// be the reason; a transport failure (TLS, connection) never is.
    pub(crate) fn answered(&self) -> bool {
        !matches!(self, CallError::Transport(_) | CallError::Timeout(_))
    }
}

pub(crate) use crate::ports::error_chain;

/// Run one API call under `timeout`, classifying its error.
pub(crate) async fn call<T>(
    timeout: Duration,
    fut: impl std::future::Future<Output = Result<T, ::kube::Error>>,
) -> Result<T, CallError> {
    match tokio::time::timeout(timeout, fut).await {
        Err(_) => Err(CallError::Timeout(timeout)),
        Ok(Ok(v)) => Ok(v),
        Ok(Err(::kube::Error::Api(status))) => Err(match status.code {
            404 => CallError::NotFound,
            409 => CallError::Conflict(status.message.clone()),
            code => CallError::Status {
                code,
                reason: status.reason.clone(),
                message: status.message.clone(),
            },
        }),
        Ok(Err(e @ (::kube::Error::HyperError(_) | ::kube::Error::Service(_)))) => {
            Err(CallError::Transport(e))
        }
        Ok(Err(e)) => Err(CallError::Other(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_paths_and_verbs() {
        let r = classify_request(
            "PATCH",
            "/apis/networking.istio.io/v1/namespaces/shop/virtualservices/checkout?fieldManager=slogate",
        )
        .unwrap();
        assert_eq!(
            r,
            RequestRbac {
                group: "networking.istio.io".into(),
                version: "v1".into(),
                resource: "virtualservices".into(),
                verb: "patch",
                namespace: Some("shop".into()),
            }
        );
        let r = classify_request("GET", "/apis/slogate.dev/v1alpha1/rollouts?watch=true").unwrap();
        assert_eq!(
            (r.resource.as_str(), r.verb, r.namespace),
            ("rollouts", "watch", None)
        );
        let r = classify_request(
            "PATCH",
            "/apis/slogate.dev/v1alpha1/namespaces/a/rollouts/x/status?",
        )
        .unwrap();
        assert_eq!((r.resource.as_str(), r.verb), ("rollouts/status", "patch"));
        let r = classify_request("GET", "/api/v1/namespaces/a/pods").unwrap();
        assert_eq!(
            (r.group.as_str(), r.resource.as_str(), r.verb),
            ("", "pods", "list")
        );
        let r =
            classify_request("POST", "/apis/coordination.k8s.io/v1/namespaces/a/leases?").unwrap();
        assert_eq!((r.resource.as_str(), r.verb), ("leases", "create"));
        assert_eq!(classify_request("GET", "/version"), None);
        assert_eq!(classify_request("GET", "/apis"), None);
    }

    #[test]
    fn registry_covers_what_it_lists_and_nothing_else() {
        assert!(covers(
            "PUT",
            "/apis/coordination.k8s.io/v1/namespaces/a/leases/slogate"
        ));
        assert!(!covers(
            "DELETE",
            "/apis/coordination.k8s.io/v1/namespaces/a/leases/slogate"
        ));
        assert!(!covers("GET", "/api/v1/namespaces/a/secrets/x"));
        assert!(!covers(
            "PATCH",
            "/apis/networking.istio.io/v1beta1/namespaces/a/virtualservices/x"
        ));
        for call in API_CALLS {
            assert!(!call.verbs.is_empty(), "{call:?}");
            assert!(!call.why.is_empty(), "{call:?}");
        }
    }
}
