//! [`VersionSource`] in a cluster: the version each workload of a Rollout runs is the value
//! of the label `spec.workloads.versionLabel` (default `version`, Istio's
//! `destination_version`) in its pod template, `spec.template.metadata.labels`.
//!
//! For each of `spec.workloads.stable` and `spec.workloads.canary` (in that order) one GET of
//! the `apps/v1` Deployment or StatefulSet (`kind`, default Deployment) of that name in the
//! Rollout's namespace. The version of a side is `None` ("unknown") when:
//!
//! - the workload does not exist (404);
//! - its pod template has no such label, or an empty one;
//! - for the **canary only**, the workload is scaled to zero (`spec.replicas: 0`): no pod
//!   runs the version, so there is nothing to shift traffic to or to analyse. The state
//!   machine ([`crate::rollout::machine`]) starts a rollout only when both versions are known
//!   and differ, and ignores an unknown version during one, so a canary Deployment parked at
//!   zero replicas between rollouts never starts one, and scaling the canary up with a new
//!   version does. Stable's version is reported whatever its replicas: promotion completes
//!   when stable's template runs the canary's version, and stable is never parked at zero
//!   while it serves traffic.
//!
//! The template is what the workload runs or is rolling out to; pods still on the previous
//! version during a rolling update are not counted by the analysis, whose queries select the
//! version label.
//!
//! Any other failure (timeout, 403, 5xx) is an error naming the workload; the controller
//! then treats both versions as unknown for that reconcile. Each GET runs under
//! `tokio::time::timeout` ([`DEFAULT_CALL_TIMEOUT`] unless set with
//! [`KubeVersions::with_timeout`]).

use std::time::Duration;

use ::kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use ::kube::Client;
use async_trait::async_trait;
use serde_json::Value;

use super::{call, CallError, DEFAULT_CALL_TIMEOUT};
use crate::ports::versions::{VersionError, VersionSource, WorkloadVersions};
use crate::rollout::spec::{WorkloadKind, WorkloadRef};
use crate::rollout::Rollout;

/// The `ApiResource` of a workload kind (`apps/v1`).
pub fn workload_resource(kind: WorkloadKind) -> ApiResource {
    let (kind, plural) = match kind {
        WorkloadKind::Deployment => ("Deployment", "deployments"),
        WorkloadKind::StatefulSet => ("StatefulSet", "statefulsets"),
    };
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("apps", "v1", kind), plural)
}

/// Reads the workloads' version label through the Kubernetes API.
pub struct KubeVersions {
    client: Client,
    timeout: Duration,
}

impl std::fmt::Debug for KubeVersions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeVersions")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Stable,
    Canary,
}

impl KubeVersions {
    /// Each GET is bounded by [`DEFAULT_CALL_TIMEOUT`].
    pub fn new(client: Client) -> Self {
        KubeVersions {
            client,
            timeout: DEFAULT_CALL_TIMEOUT,
        }
    }

    /// Bound each API call by `timeout`.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    async fn version(
        &self,
        rollout: &Rollout,
        side: Side,
        w: &WorkloadRef,
    ) -> Result<Option<String>, VersionError> {
        let namespace = rollout.namespace();
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), namespace, &workload_resource(w.kind));
        let obj = match call(self.timeout, api.get(&w.name)).await {
            Ok(obj) => obj,
            Err(CallError::NotFound) => return Ok(None),
            Err(e) => {
                return Err(VersionError::Backend {
                    rollout: rollout.key(),
                    what: format!(
                        "get {:?} {namespace}/{} ({})",
                        w.kind,
                        w.name,
                        match side {
                            Side::Stable => "stable",
                            Side::Canary => "canary",
                        },
                    ),
                    source: Box::new(e),
                })
            }
        };
        Ok(template_version(
            &obj.data,
            &rollout.spec.workloads.version_label,
            side == Side::Canary,
        ))
    }
}

/// The version label of a workload object (`data` without metadata), per the module docs;
/// `zero_is_none`: a workload scaled to zero has no version.
pub fn template_version(data: &Value, label: &str, zero_is_none: bool) -> Option<String> {
    if zero_is_none && data.pointer("/spec/replicas").and_then(Value::as_u64) == Some(0) {
        return None;
    }
    data.pointer("/spec/template/metadata/labels")
        .and_then(|labels| labels.get(label))
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

#[async_trait]
impl VersionSource for KubeVersions {
    async fn versions(&self, rollout: &Rollout) -> Result<WorkloadVersions, VersionError> {
        let w = &rollout.spec.workloads;
        let stable = self.version(rollout, Side::Stable, &w.stable).await?;
        let canary = self.version(rollout, Side::Canary, &w.canary).await?;
        Ok(WorkloadVersions { stable, canary })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_label_of_the_pod_template() {
        let d = json!({"spec": {"replicas": 2, "template": {"metadata": {"labels": {
            "app": "checkout", "version": "v2", "app.kubernetes.io/version": "2.0.1"}}}}});
        assert_eq!(template_version(&d, "version", true).as_deref(), Some("v2"));
        assert_eq!(
            template_version(&d, "app.kubernetes.io/version", true).as_deref(),
            Some("2.0.1")
        );
        assert_eq!(template_version(&d, "track", true), None);
        let zero = json!({"spec": {"replicas": 0, "template": {"metadata": {"labels": {"version": "v2"}}}}});
        assert_eq!(template_version(&zero, "version", true), None);
        assert_eq!(
            template_version(&zero, "version", false).as_deref(),
            Some("v2")
        );
        let empty = json!({"spec": {"template": {"metadata": {"labels": {"version": ""}}}}});
        assert_eq!(template_version(&empty, "version", true), None);
        assert_eq!(template_version(&json!({}), "version", false), None);
    }
}
