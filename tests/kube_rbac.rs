//! The RBAC registry `adapters::kube::API_CALLS`: well formed, and enforced by the scripted
//! API server every kube test uses (a request outside it fails the test).

#[path = "kube_common/mod.rs"]
mod common;

use std::collections::BTreeSet;

use common::{finish, serve, Exchange};
use slogate::adapters::kube::{classify_request, covers, API_CALLS};

const VERBS: &[&str] = &[
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
];

#[test]
fn registry_is_well_formed() {
    let mut keys = BTreeSet::new();
    for call in API_CALLS {
        assert!(
            keys.insert((call.group, call.resource)),
            "{}/{} listed twice",
            call.group,
            call.resource
        );
        assert!(
            !call.version.is_empty() && !call.resource.is_empty(),
            "{call:?}"
        );
        assert!(!call.why.trim().is_empty(), "{call:?} says why");
        for verb in call.verbs {
            assert!(VERBS.contains(verb), "{call:?}: unknown verb {verb}");
        }
    }
    // Rollouts: listed and watched (adapters::kube::rollouts), read with their status and
    // status written (adapters::kube::rollout_status).
    assert!(covers(
        "GET",
        "/apis/slogate.dev/v1alpha1/rollouts?&limit=500"
    ));
    assert!(covers(
        "GET",
        "/apis/slogate.dev/v1alpha1/rollouts?&watch=true&timeoutSeconds=290&allowWatchBookmarks=true&resourceVersion=9"
    ));
    assert!(covers(
        "GET",
        "/apis/slogate.dev/v1alpha1/namespaces/shop/rollouts"
    ));
    assert!(covers(
        "PATCH",
        "/apis/slogate.dev/v1alpha1/namespaces/shop/rollouts/checkout/status?&fieldManager=slogate"
    ));
    assert!(!covers(
        "PATCH",
        "/apis/slogate.dev/v1alpha1/namespaces/shop/rollouts/checkout?&fieldManager=slogate"
    ));
    // Workloads are only read, for their version label (adapters::kube::versions).
    assert!(covers(
        "GET",
        "/apis/apps/v1/namespaces/shop/deployments/checkout"
    ));
    assert!(covers(
        "GET",
        "/apis/apps/v1/namespaces/shop/statefulsets/checkout"
    ));
    assert!(!covers(
        "PATCH",
        "/apis/apps/v1/namespaces/shop/deployments/checkout?&fieldManager=slogate"
    ));
    // Shared state documents (adapters::kube::configmap_store): read, listed, created and
    // replaced; never patched or deleted.
    let cm = "/api/v1/namespaces/slogate/configmaps";
    assert!(covers(
        "GET",
        &format!("{cm}/slogate-state-0123456789abcdef0123")
    ));
    assert!(covers(
        "GET",
        &format!("{cm}?&labelSelector=slogate.dev%2Fstate%3Dtrue")
    ));
    assert!(covers("POST", &format!("{cm}?&fieldManager=slogate")));
    assert!(covers(
        "PUT",
        &format!("{cm}/slogate-state-0123456789abcdef0123")
    ));
    assert!(!covers(
        "PATCH",
        &format!("{cm}/slogate-state-0123456789abcdef0123")
    ));
    // Deleted by the state sweep, with a resourceVersion precondition.
    assert!(covers(
        "DELETE",
        &format!("{cm}/slogate-state-0123456789abcdef0123?")
    ));
    // Nothing else is ever deleted.
    assert!(!covers(
        "DELETE",
        "/apis/networking.istio.io/v1/namespaces/shop/virtualservices/checkout"
    ));
    assert!(!covers(
        "DELETE",
        "/apis/coordination.k8s.io/v1/namespaces/slogate/leases/slogate"
    ));
    assert!(!covers("GET", &format!("{cm}?&watch=true")));
    // Nothing slogate does needs Secrets or events.
    assert!(!covers("GET", "/api/v1/namespaces/shop/secrets/token"));
    assert!(!covers("POST", "/api/v1/namespaces/shop/events"));
    let r = classify_request(
        "PUT",
        "/apis/coordination.k8s.io/v1/namespaces/a/leases/l?&x=y",
    )
    .expect("resource path");
    assert_eq!((r.resource.as_str(), r.verb), ("leases", "update"));
}

#[tokio::test]
async fn the_mock_api_server_fails_a_request_outside_the_registry() {
    let (client, verifier) = serve(vec![Exchange::get("/api/v1/namespaces/shop/secrets/token")]);
    let request = http::Request::get("/api/v1/namespaces/shop/secrets/token")
        .body(Vec::new())
        .expect("request");
    let result = client.request_text(request).await;
    drop(client);
    assert!(result.is_err(), "the verifier answers nothing");
    let joined = tokio::spawn(finish(verifier)).await;
    let panic = joined.expect_err("the verifier fails").into_panic();
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        message.contains("is not covered by adapters::kube::API_CALLS"),
        "{message}"
    );
}
