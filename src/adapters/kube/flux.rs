//! `SyncTrigger` for Flux: annotate a `kustomize.toolkit.fluxcd.io/v1` Kustomization with
//! `reconcile.fluxcd.io/requestedAt: <now>`, as `flux reconcile kustomization` does.
//!
//! Flux reconciles an object whenever that annotation's value differs from the
//! `status.lastHandledReconcileAt` it recorded, so any new value works; the current time in
//! RFC 3339 with nanoseconds is what the Flux CLI writes. The annotation is set with a JSON
//! merge patch, which touches only that one key (no resourceVersion guard: the write is
//! idempotent and concurrent requests all mean "reconcile now").
//!
//! A revert commit only reaches the cluster once the Kustomization's *source* has fetched it.
//! So by default the source named by `spec.sourceRef` (a `source.toolkit.fluxcd.io/v1`
//! GitRepository, OCIRepository or Bucket) is annotated first, as `flux reconcile
//! kustomization --with-source` does. Flux's kustomize-controller applies a source's new
//! revision on its own, so the trigger does not wait for the source to become ready.
//! Flux cannot be asked for a particular revision; `revision` is only logged.

use std::sync::Arc;
use std::time::Duration;

use ::kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use ::kube::Client;
use async_trait::async_trait;
use k8s_openapi::jiff::Timestamp;
use serde_json::{json, Value};

use super::{call, CallError, WallClock, DEFAULT_CALL_TIMEOUT, FIELD_MANAGER};
use crate::ports::sync::{SyncError, SyncTrigger};

/// The annotation Flux watches for on-demand reconciles.
pub const REQUESTED_AT: &str = "reconcile.fluxcd.io/requestedAt";

/// Source kinds (`source.toolkit.fluxcd.io/v1`) and their plurals.
const SOURCE_KINDS: &[(&str, &str)] = &[
    ("GitRepository", "gitrepositories"),
    ("OCIRepository", "ocirepositories"),
    ("Bucket", "buckets"),
];

/// Requests a reconcile of one Flux Kustomization (and, by default, its source).
pub struct FluxSync {
    client: Client,
    namespace: String,
    name: String,
    with_source: bool,
    timeout: Duration,
    clock: WallClock,
}

impl std::fmt::Debug for FluxSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FluxSync")
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .field("with_source", &self.with_source)
            .finish()
    }
}

fn kustomization_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("kustomize.toolkit.fluxcd.io", "v1", "Kustomization"),
        "kustomizations",
    )
}

impl FluxSync {
    /// The Kustomization `namespace/name`; its source is reconciled too.
    pub fn new(client: Client, namespace: impl Into<String>, name: impl Into<String>) -> Self {
        FluxSync {
            client,
            namespace: namespace.into(),
            name: name.into(),
            with_source: true,
            timeout: DEFAULT_CALL_TIMEOUT,
            clock: Arc::new(Timestamp::now),
        }
    }

    /// Whether to annotate the Kustomization's source first (default true).
    pub fn with_source(mut self, with_source: bool) -> Self {
        self.with_source = with_source;
        self
    }

    /// Bound each API call by `timeout`.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Use another clock for the annotation's value (tests).
    pub fn with_clock(mut self, clock: WallClock) -> Self {
        self.clock = clock;
        self
    }

    fn app(&self) -> String {
        format!("flux kustomization {}/{}", self.namespace, self.name)
    }

    fn err(&self, what: &str, e: CallError) -> SyncError {
        SyncError::KubeCall {
            app: self.app(),
            what: what.to_string(),
            source: Box::new(e),
        }
    }

    /// The merge patch that sets the annotation to `at`.
    pub fn annotation_patch(at: Timestamp) -> Value {
        json!({"metadata": {"annotations": {REQUESTED_AT: at.to_string()}}})
    }

    async fn annotate(
        &self,
        api: &Api<DynamicObject>,
        name: &str,
        body: &Value,
    ) -> Result<(), CallError> {
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_string()),
            ..PatchParams::default()
        };
        call(self.timeout, api.patch(name, &params, &Patch::Merge(body)))
            .await
            .map(|_| ())
    }

    /// The Kustomization's `spec.sourceRef` as (api, name, kind), when its kind is known.
    async fn source(
        &self,
        ks_api: &Api<DynamicObject>,
    ) -> Result<Option<(Api<DynamicObject>, String, String)>, SyncError> {
        let ks = call(self.timeout, ks_api.get(&self.name))
            .await
            .map_err(|e| self.err("get", e))?;
        let source_ref = ks.data.pointer("/spec/sourceRef");
        let kind = source_ref
            .and_then(|r| r.get("kind"))
            .and_then(Value::as_str);
        let name = source_ref
            .and_then(|r| r.get("name"))
            .and_then(Value::as_str);
        let (Some(kind), Some(name)) = (kind, name) else {
            return Err(SyncError::Kube {
                app: self.app(),
                message: "spec.sourceRef has no kind and name".into(),
            });
        };
        let namespace = source_ref
            .and_then(|r| r.get("namespace"))
            .and_then(Value::as_str)
            .unwrap_or(&self.namespace);
        let Some((_, plural)) = SOURCE_KINDS.iter().find(|(k, _)| *k == kind) else {
            tracing::warn!(app = %self.app(), kind, "unknown Flux source kind; reconciling the Kustomization only");
            return Ok(None);
        };
        let ar = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("source.toolkit.fluxcd.io", "v1", kind),
            plural,
        );
        Ok(Some((
            Api::namespaced_with(self.client.clone(), namespace, &ar),
            name.to_string(),
            kind.to_string(),
        )))
    }
}

#[async_trait]
impl SyncTrigger for FluxSync {
    async fn request_sync(&self, revision: Option<&str>) -> Result<(), SyncError> {
        let ks_api: Api<DynamicObject> = Api::namespaced_with(
            self.client.clone(),
            &self.namespace,
            &kustomization_resource(),
        );
        let body = Self::annotation_patch((self.clock)());
        if self.with_source {
            if let Some((api, name, kind)) = self.source(&ks_api).await? {
                self.annotate(&api, &name, &body)
                    .await
                    .map_err(|e| self.err(&format!("annotate source {kind} {name}"), e))?;
            }
        }
        self.annotate(&ks_api, &self.name, &body)
            .await
            .map_err(|e| self.err("annotate", e))?;
        tracing::info!(app = %self.app(), revision = revision.unwrap_or("-"), "flux reconcile requested");
        Ok(())
    }
}

/// A Flux sync trigger that connects to the cluster on first use, so that a missing
/// kubeconfig is reported on use, not at start (local runs have none).
#[derive(Debug, Clone)]
pub struct LazyFlux {
    namespace: String,
    name: String,
}

impl LazyFlux {
    /// The Kustomization `namespace/name`.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        LazyFlux {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

#[async_trait]
impl SyncTrigger for LazyFlux {
    async fn request_sync(&self, revision: Option<&str>) -> Result<(), SyncError> {
        let client =
            super::client(Duration::from_secs(30))
                .await
                .map_err(|e| SyncError::KubeClient {
                    app: format!("{}/{}", self.namespace, self.name),
                    source: Box::new(e),
                })?;
        FluxSync::new(client, &self.namespace, &self.name)
            .request_sync(revision)
            .await
    }
}
