//! The kube version source (`adapters::kube::KubeVersions`) against a scripted API server:
//! one GET per workload (stable first, then canary) of the Deployment or StatefulSet the
//! Rollout names, and the mapping of what it finds to versions: the pod template's version
//! label, `None` for a missing workload, a missing label or a canary scaled to zero, and an
//! error naming the workload otherwise.

#[path = "kube_common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{finish, not_found, serve, status, Exchange};
use serde_json::{json, Value};
use slogate::adapters::kube::KubeVersions;
use slogate::rollout::load::from_yaml_str;
use slogate::rollout::Rollout;
use slogate::runtime::rollout::{VersionError, VersionSource, WorkloadVersions};

const STABLE: &str = "/apis/apps/v1/namespaces/shop/deployments/checkout";
const CANARY: &str = "/apis/apps/v1/namespaces/shop/deployments/checkout-canary";

fn rollout(workloads: &str) -> Rollout {
    from_yaml_str(&format!(
        r#"
apiVersion: slogate.dev/v1alpha1
kind: Rollout
metadata: {{name: checkout, namespace: shop}}
spec:
  traffic:
    httpRoute: {{name: checkout, stableBackend: {{name: checkout}}, canaryBackend: {{name: checkout-canary}}}}
  workloads: {workloads}
  analysis:
    metrics: [{{name: request-success-rate, min: 0.99}}]
  gitops: {{app: checkout, path: apps/checkout}}
"#
    ))
    .unwrap()
}

fn deployments() -> Rollout {
    rollout("{stable: {name: checkout}, canary: {name: checkout-canary}}")
}

/// An `apps/v1` workload as the API server returns it, with `labels` on its pod template.
fn workload(kind: &str, name: &str, replicas: u32, labels: Value) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": "shop", "resourceVersion": "4711",
                     "generation": 7, "labels": {"app": "checkout", "version": "ignored"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "checkout"}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "checkout", "image": "example/checkout:v0"}]},
            },
        },
        "status": {"observedGeneration": 7, "replicas": replicas, "readyReplicas": replicas},
    })
}

fn deployment(name: &str, replicas: u32, version: &str) -> Value {
    workload(
        "Deployment",
        name,
        replicas,
        json!({"app": "checkout", "version": version}),
    )
}

/// A `Backend` error of `shop/checkout` for the call `what`, whose source (the call's
/// error) reads `cause`, and whose message shows both.
fn assert_backend(got: Result<WorkloadVersions, VersionError>, what: &str, cause: &str) {
    let e = got.unwrap_err();
    match &e {
        VersionError::Backend {
            rollout,
            what: w,
            source,
        } => {
            assert_eq!((rollout.as_str(), w.as_str()), ("shop/checkout", what));
            assert_eq!(slogate::ports::error_chain(source.as_ref()), cause);
        }
        other => panic!("expected a Backend error, got {other:?}"),
    }
    assert_eq!(
        e.to_string(),
        format!("reading the versions of shop/checkout: {what}: {cause}")
    );
    assert_eq!(slogate::ports::error_chain(&e), e.to_string());
}

async fn versions(script: Vec<Exchange>, r: &Rollout) -> Result<WorkloadVersions, VersionError> {
    let (client, verifier) = serve(script);
    let source = KubeVersions::new(client);
    let got = source.versions(r).await;
    drop(source);
    finish(verifier).await;
    got
}

#[tokio::test]
async fn reads_the_version_label_of_both_pod_templates() {
    let got = versions(
        vec![
            Exchange::get(STABLE).respond(200, deployment("checkout", 3, "v1")),
            Exchange::get(CANARY).respond(200, deployment("checkout-canary", 1, "v2")),
        ],
        &deployments(),
    )
    .await;
    assert_eq!(got.unwrap(), WorkloadVersions::new("v1", "v2"));
}

#[tokio::test]
async fn statefulsets_and_a_custom_label() {
    let r = rollout(
        "{stable: {kind: StatefulSet, name: ledger}, canary: {kind: StatefulSet, name: ledger-canary}, versionLabel: app.kubernetes.io/version}",
    );
    let labels =
        |v: &str| json!({"app": "ledger", "version": "wrong", "app.kubernetes.io/version": v});
    let got = versions(
        vec![
            Exchange::get("/apis/apps/v1/namespaces/shop/statefulsets/ledger")
                .respond(200, workload("StatefulSet", "ledger", 3, labels("1.4.0"))),
            Exchange::get("/apis/apps/v1/namespaces/shop/statefulsets/ledger-canary").respond(
                200,
                workload("StatefulSet", "ledger-canary", 1, labels("1.5.0")),
            ),
        ],
        &r,
    )
    .await;
    assert_eq!(got.unwrap(), WorkloadVersions::new("1.4.0", "1.5.0"));
}

#[tokio::test]
async fn a_missing_workload_or_label_is_unknown() {
    let got = versions(
        vec![
            Exchange::get(STABLE).respond(
                200,
                workload("Deployment", "checkout", 3, json!({"app": "checkout"})),
            ),
            Exchange::get(CANARY).respond(404, not_found("deployments.apps", "checkout-canary")),
        ],
        &deployments(),
    )
    .await;
    assert_eq!(got.unwrap(), WorkloadVersions::default());
}

#[tokio::test]
async fn a_canary_scaled_to_zero_runs_no_version_a_stable_one_does() {
    let got = versions(
        vec![
            Exchange::get(STABLE).respond(200, deployment("checkout", 0, "v1")),
            Exchange::get(CANARY).respond(200, deployment("checkout-canary", 0, "v2")),
        ],
        &deployments(),
    )
    .await;
    assert_eq!(
        got.unwrap(),
        WorkloadVersions {
            stable: Some("v1".into()),
            canary: None,
        }
    );
}

#[tokio::test]
async fn other_api_errors_name_the_workload() {
    let got = versions(
        vec![Exchange::get(STABLE).respond(
            403,
            status(
                403,
                "Forbidden",
                "deployments.apps \"checkout\" is forbidden",
            ),
        )],
        &deployments(),
    )
    .await;
    assert_backend(
        got,
        "get Deployment shop/checkout (stable)",
        "HTTP 403 Forbidden: deployments.apps \"checkout\" is forbidden",
    );
    let got = versions(
        vec![
            Exchange::get(STABLE).respond(200, deployment("checkout", 3, "v1")),
            Exchange::get(CANARY).respond(
                500,
                status(500, "InternalError", "etcdserver: request timed out"),
            ),
        ],
        &deployments(),
    )
    .await;
    let e = got.unwrap_err().to_string();
    assert_eq!(
        e,
        "reading the versions of shop/checkout: get Deployment shop/checkout-canary (canary): HTTP 500 InternalError: etcdserver: request timed out"
    );
}

#[tokio::test]
async fn each_get_is_bounded_by_the_timeout() {
    let (service, mut handle) = tower_test::mock::pair::<
        http::Request<kube::client::Body>,
        http::Response<kube::client::Body>,
    >();
    let client = kube::Client::new(service, "default");
    let source = Arc::new(KubeVersions::new(client).with_timeout(Duration::from_millis(50)));
    let held = tokio::spawn(async move {
        let mut uris = Vec::new();
        while let Some((req, send)) = handle.next_request().await {
            uris.push(req.uri().to_string());
            // Never answered.
            std::mem::forget(send);
        }
        uris
    });
    let got = source.versions(&deployments()).await;
    drop(source);
    assert_eq!(held.await.unwrap(), vec![STABLE.to_string()]);
    assert_backend(
        got,
        "get Deployment shop/checkout (stable)",
        "timed out after 50ms",
    );
}
