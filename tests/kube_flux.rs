//! The Flux sync trigger against a scripted API server: the exact requests that annotate a
//! Kustomization (and its source) with `reconcile.fluxcd.io/requestedAt`.

#[path = "kube_common/mod.rs"]
mod common;

use std::sync::Arc;

use common::{finish, not_found, serve, Exchange, MERGE_PATCH};
use k8s_openapi::jiff::Timestamp;
use serde_json::{json, Value};
use slogate::adapters::kube::FluxSync;
use slogate::ports::error_chain;
use slogate::ports::sync::{SyncError, SyncTrigger};

const KS: &str = "/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/apps/kustomizations/checkout";
const KS_PATCH: &str =
    "/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/apps/kustomizations/checkout?&fieldManager=slogate";
const GIT_PATCH: &str = "/apis/source.toolkit.fluxcd.io/v1/namespaces/flux-system/gitrepositories/platform?&fieldManager=slogate";

fn flux(client: kube::Client) -> FluxSync {
    let clock: Arc<dyn Fn() -> Timestamp + Send + Sync> =
        Arc::new(|| "2026-11-23T08:00:00.123456789Z".parse().expect("timestamp"));
    FluxSync::new(client, "apps", "checkout").with_clock(clock)
}

fn annotation() -> Value {
    json!({"metadata": {"annotations": {
        "reconcile.fluxcd.io/requestedAt": "2026-11-23T08:00:00.123456789Z"
    }}})
}

fn kustomization() -> Value {
    json!({
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": "checkout", "namespace": "apps", "resourceVersion": "3"},
        "spec": {
            "interval": "10m",
            "path": "./apps/checkout/overlays/prod",
            "prune": true,
            "sourceRef": {"kind": "GitRepository", "name": "platform", "namespace": "flux-system"},
        },
    })
}

#[tokio::test]
async fn annotates_the_source_then_the_kustomization() {
    let (client, verifier) = serve(vec![
        Exchange::get(KS).respond(200, kustomization()),
        Exchange::patch(GIT_PATCH, MERGE_PATCH, annotation()).respond(200, json!({})),
        Exchange::patch(KS_PATCH, MERGE_PATCH, annotation()).respond(200, kustomization()),
    ]);
    let flux = flux(client);
    let result = flux.request_sync(Some("0123abcd")).await;
    drop(flux);
    finish(verifier).await;
    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn source_namespace_defaults_to_the_kustomizations() {
    let mut ks = kustomization();
    ks["spec"]["sourceRef"] = json!({"kind": "GitRepository", "name": "apps-repo"});
    let (client, verifier) = serve(vec![
        Exchange::get(KS).respond(200, ks.clone()),
        Exchange::patch(
            "/apis/source.toolkit.fluxcd.io/v1/namespaces/apps/gitrepositories/apps-repo?&fieldManager=slogate",
            MERGE_PATCH,
            annotation(),
        )
        .respond(200, json!({})),
        Exchange::patch(KS_PATCH, MERGE_PATCH, annotation()).respond(200, ks),
    ]);
    let flux = flux(client);
    let result = flux.request_sync(None).await;
    drop(flux);
    finish(verifier).await;
    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn annotates_only_the_kustomization_without_source() {
    let (client, verifier) = serve(vec![
        Exchange::patch(KS_PATCH, MERGE_PATCH, annotation()).respond(200, kustomization())
    ]);
    let flux = flux(client).with_source(false);
    let result = flux.request_sync(None).await;
    drop(flux);
    finish(verifier).await;
    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn a_missing_kustomization_is_an_error() {
    let (client, verifier) = serve(vec![Exchange::get(KS).respond(
        404,
        not_found("kustomizations.kustomize.toolkit.fluxcd.io", "checkout"),
    )]);
    let flux = flux(client);
    let result = flux.request_sync(None).await;
    drop(flux);
    finish(verifier).await;
    let Err(e) = result else {
        panic!("a missing Kustomization was synced");
    };
    assert!(
        matches!(&e, SyncError::KubeCall { app, what, .. }
            if app == "flux kustomization apps/checkout" && what == "get"),
        "{e:?}"
    );
    assert_eq!(
        error_chain(&e),
        "sync of `flux kustomization apps/checkout`: get: not found"
    );
}
