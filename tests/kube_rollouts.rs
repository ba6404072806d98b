//! The cluster's Rollouts as a source (`adapters::kube::KubeRollouts`,
//! `rollouts.source: kube`) against a scripted API server:
//!
//! - a cluster-wide list, paged with `limit` and `continue`, exactly as requested;
//! - one list per namespace when `rollouts.namespaces` names them;
//! - each object validated like a Rollout file: server-set metadata and the `status`
//!   slogate keeps there are ignored, an invalid object is reported under its
//!   `namespace/name` with the field and what was expected, and the others still load;
//! - a failed call fails the whole reading (a partial list must not look like deletions),
//!   with an error naming the call and the RBAC it needs;
//! - `changed` watches from the list's `resourceVersion`, exactly as requested: it wakes
//!   for an added or deleted object and a spec change (a new `generation`), not for a status
//!   write or a bookmark; a watch the server ends is opened again from the last version seen;
//!   an expired version (410, as an event or refusing the watch) wakes it to list again; a
//!   watch it may not open never wakes.

#[path = "kube_common/mod.rs"]
mod common;

use std::time::Duration;

use common::{finish, serve, status, Exchange};
use serde_json::{json, Value};
use slogate::adapters::kube::KubeRollouts;
use slogate::ports::rollouts::{RolloutSet, RolloutSource, RolloutSourceError};
use slogate::rollout::load::from_yaml_str;

const ALL: &str = "/apis/slogate.dev/v1alpha1/rollouts?&limit=500";
/// A cluster-wide watch, without its `resourceVersion` value.
const WATCH_ALL: &str = "/apis/slogate.dev/v1alpha1/rollouts?&watch=true&timeoutSeconds=290&allowWatchBookmarks=true&resourceVersion=";

/// A Rollout object as the API server returns it: server-set metadata, and a status.
fn object(namespace: &str, name: &str, steps: Value) -> Value {
    json!({
        "apiVersion": "slogate.dev/v1alpha1",
        "kind": "Rollout",
        "metadata": {
            "name": name, "namespace": namespace, "resourceVersion": "8812", "generation": 2,
            "uid": "5b0c2d1e-7f7e-4c1e-9d8a-0c1b2a3d4e5f",
            "creationTimestamp": "2026-11-20T09:00:00Z",
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"},
            "managedFields": [{"manager": "kubectl", "operation": "Apply",
                               "apiVersion": "slogate.dev/v1alpha1", "fieldsType": "FieldsV1",
                               "fieldsV1": {"f:spec": {}}}],
        },
        "spec": {
            "traffic": {"httpRoute": {"name": name, "stableBackend": {"name": name},
                                      "canaryBackend": {"name": format!("{name}-canary")}}},
            "workloads": {"stable": {"name": name}, "canary": {"name": format!("{name}-canary")}},
            "steps": steps,
            "analysis": {"metrics": [{"name": "request-success-rate", "min": 0.99}]},
            "gitops": {"app": name, "path": format!("apps/{name}")},
        },
        "status": {"phase": "Progressing", "step": 1, "since": "2026-11-20T09:01:00Z",
                   "reason": "step 1: 25% to the canary", "unknownToTheSpec": true},
    })
}

fn list(items: Vec<Value>, continue_token: Option<&str>) -> Value {
    let mut meta = json!({"resourceVersion": "9001"});
    if let Some(t) = continue_token {
        meta["continue"] = json!(t);
    }
    json!({"apiVersion": "slogate.dev/v1alpha1", "kind": "RolloutList",
           "metadata": meta, "items": items})
}

/// The same Rollout written as a file, to compare with what the adapter read.
fn as_file(namespace: &str, name: &str) -> slogate::rollout::Rollout {
    from_yaml_str(&format!(
        r#"
apiVersion: slogate.dev/v1alpha1
kind: Rollout
metadata: {{name: {name}, namespace: {namespace}, generation: 2}}
spec:
  traffic:
    httpRoute: {{name: {name}, stableBackend: {{name: {name}}}, canaryBackend: {{name: {name}-canary}}}}
  workloads: {{stable: {{name: {name}}}, canary: {{name: {name}-canary}}}}
  steps: [10, 50, 100]
  analysis:
    metrics: [{{name: request-success-rate, min: 0.99}}]
  gitops: {{app: {name}, path: apps/{name}}}
"#
    ))
    .unwrap()
}

async fn read(
    namespaces: &[&str],
    script: Vec<Exchange>,
) -> Result<RolloutSet, RolloutSourceError> {
    let (client, verifier) = serve(script);
    let source = KubeRollouts::new(client, namespaces.iter().map(|s| s.to_string()).collect());
    let got = source.list().await;
    drop(source);
    finish(verifier).await;
    got
}

#[tokio::test]
async fn lists_every_namespace_page_by_page_and_validates_each_object() {
    let set = read(
        &[],
        vec![
            Exchange::get(ALL).respond(
                200,
                list(
                    vec![
                        object("shop", "checkout", json!([10, 50, 100])),
                        // Steps must end at 100.
                        object("shop", "broken", json!([10, 50])),
                    ],
                    Some("tok-1"),
                ),
            ),
            Exchange::get(format!("{ALL}&continue=tok-1")).respond(
                200,
                list(vec![object("web", "search", json!([10, 50, 100]))], None),
            ),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        set.rollouts,
        vec![as_file("shop", "checkout"), as_file("web", "search")]
    );
    assert!(set.is_complete(), "{:?}", set.errors);
    assert_eq!(set.invalid.keys().collect::<Vec<_>>(), vec!["shop/broken"]);
    let problems = &set.invalid["shop/broken"];
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("Rollout shop/broken: spec.steps[1]: error:")
            && problems[0].contains("100"),
        "{problems:?}"
    );
    // The status is slogate's own state, not part of the spec: no warning about it.
    assert!(set.warnings.is_empty(), "{:?}", set.warnings);
}

#[tokio::test]
async fn lists_only_the_namespaces_named() {
    let set = read(
        &["shop", "web"],
        vec![
            Exchange::get("/apis/slogate.dev/v1alpha1/namespaces/shop/rollouts?&limit=500")
                .respond(
                    200,
                    list(vec![object("shop", "checkout", json!([10, 50, 100]))], None),
                ),
            Exchange::get("/apis/slogate.dev/v1alpha1/namespaces/web/rollouts?&limit=500")
                .respond(200, list(vec![], None)),
        ],
    )
    .await
    .unwrap();
    assert_eq!(set.rollouts, vec![as_file("shop", "checkout")]);
    assert!(set.invalid.is_empty() && set.is_complete());
}

#[tokio::test]
async fn a_failed_page_fails_the_whole_reading() {
    let err = read(
        &[],
        vec![
            Exchange::get(ALL).respond(
                200,
                list(
                    vec![object("shop", "checkout", json!([10, 50, 100]))],
                    Some("tok-1"),
                ),
            ),
            Exchange::get(format!("{ALL}&continue=tok-1")).respond(
                410,
                status(410, "Expired", "The provided continue parameter is too old"),
            ),
        ],
    )
    .await
    .unwrap_err();
    let m = err.to_string();
    assert!(m.contains("Rollout objects in all namespaces"), "{m}");
    assert!(m.contains("410") && m.contains("too old"), "{m}");

    let err = read(
        &["shop"],
        vec![
            Exchange::get("/apis/slogate.dev/v1alpha1/namespaces/shop/rollouts?&limit=500")
                .respond(
                    403,
                    status(
                        403,
                        "Forbidden",
                        "rollouts.slogate.dev is forbidden: User \"system:serviceaccount:slogate:slogate\" cannot list resource \"rollouts\"",
                    ),
                ),
        ],
    )
    .await
    .unwrap_err();
    let m = err.to_string();
    assert!(m.contains("in namespace shop") && m.contains("403"), "{m}");
    assert!(m.contains("`list` on rollouts.slogate.dev"), "{m}");
}

fn event(kind: &str, object: Value) -> Value {
    json!({"type": kind, "object": object})
}

/// `o` as the server sends it at `resource_version`, with its spec `generation`.
fn at(mut o: Value, resource_version: &str, generation: i64) -> Value {
    o["metadata"]["resourceVersion"] = json!(resource_version);
    o["metadata"]["generation"] = json!(generation);
    o
}

/// `changed` resolves (a liveness bound: it must, and the script says when).
async fn wakes(source: &KubeRollouts) {
    tokio::time::timeout(Duration::from_secs(20), source.changed())
        .await
        .expect("the watch never reported the change");
}

#[tokio::test]
async fn the_watch_wakes_for_a_spec_change_not_for_a_status_write() {
    let checkout = object("shop", "checkout", json!([10, 50, 100]));
    let (client, verifier) = serve(vec![
        Exchange::get(ALL).respond(200, list(vec![checkout.clone()], None)),
        // slogate's own status write keeps the generation, a bookmark moves the version on:
        // neither is a change. Then the server ends the watch.
        Exchange::get(format!("{WATCH_ALL}9001")).respond_events(vec![
            event("MODIFIED", at(checkout.clone(), "9002", 2)),
            event(
                "BOOKMARK",
                json!({"apiVersion": "slogate.dev/v1alpha1", "kind": "Rollout",
                       "metadata": {"resourceVersion": "9010"}}),
            ),
        ]),
        // Opened again from the last version seen; `kubectl apply` of a new spec wakes it.
        Exchange::get(format!("{WATCH_ALL}9010"))
            .respond_events(vec![event("MODIFIED", at(checkout.clone(), "9011", 3))]),
    ]);
    let source = KubeRollouts::new(client, vec![]);
    source.list().await.unwrap();
    wakes(&source).await;
    drop(source);
    finish(verifier).await;
}

#[tokio::test]
async fn the_watch_wakes_for_added_and_deleted_rollouts_and_an_expired_version() {
    let checkout = object("shop", "checkout", json!([10, 50, 100]));
    let mut search = object("web", "search", json!([10, 50, 100]));
    search["metadata"]["uid"] = json!("0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6");
    let with_version = |items: Vec<Value>, rv: &str| {
        let mut l = list(items, None);
        l["metadata"]["resourceVersion"] = json!(rv);
        l
    };
    let (client, verifier) = serve(vec![
        Exchange::get(ALL).respond(200, with_version(vec![checkout.clone()], "9001")),
        // The version is too old for the watch cache: list again.
        Exchange::get(format!("{WATCH_ALL}9001")).respond_events(vec![event(
            "ERROR",
            status(410, "Expired", "too old resource version: 9001 (9500)"),
        )]),
        Exchange::get(ALL).respond(200, with_version(vec![checkout.clone()], "9600")),
        Exchange::get(format!("{WATCH_ALL}9600"))
            .respond_events(vec![event("ADDED", at(search.clone(), "9601", 1))]),
        Exchange::get(ALL).respond(
            200,
            with_version(vec![checkout.clone(), search.clone()], "9601"),
        ),
        Exchange::get(format!("{WATCH_ALL}9601"))
            .respond_events(vec![event("DELETED", at(checkout.clone(), "9700", 2))]),
        Exchange::get(ALL).respond(200, with_version(vec![search.clone()], "9700")),
        // Too old, refused when opening rather than as an event: list again too.
        Exchange::get(format!("{WATCH_ALL}9700")).respond(
            410,
            status(410, "Expired", "too old resource version: 9700 (9800)"),
        ),
    ]);
    let source = KubeRollouts::new(client, vec![]);
    for _ in 0..4 {
        source.list().await.unwrap();
        wakes(&source).await;
    }
    drop(source);
    finish(verifier).await;
}

#[tokio::test]
async fn a_watch_it_may_not_open_never_wakes() {
    let (client, verifier) = serve(vec![
        Exchange::get("/apis/slogate.dev/v1alpha1/namespaces/shop/rollouts?&limit=500")
            .respond(200, list(vec![object("shop", "checkout", json!([10, 50, 100]))], None)),
        Exchange::get(
            "/apis/slogate.dev/v1alpha1/namespaces/shop/rollouts?&watch=true&timeoutSeconds=290&allowWatchBookmarks=true&resourceVersion=9001",
        )
        .respond(
            403,
            status(
                403,
                "Forbidden",
                "rollouts.slogate.dev is forbidden: cannot watch resource \"rollouts\"",
            ),
        ),
    ]);
    let source = KubeRollouts::new(client, vec!["shop".into()]);
    source.list().await.unwrap();
    // Refused: it leaves the resync to pick changes up rather than retrying in a loop (the
    // verifier fails on any request after these two).
    assert!(
        tokio::time::timeout(Duration::from_secs(3), source.changed())
            .await
            .is_err(),
        "a refused watch must not report a change"
    );
    drop(source);
    finish(verifier).await;
}

#[tokio::test]
async fn nothing_is_watched_before_a_list_succeeds() {
    let (client, verifier) = serve(vec![Exchange::get(ALL).respond(
        503,
        status(503, "ServiceUnavailable", "etcd is unavailable"),
    )]);
    let source = KubeRollouts::new(client, vec![]);
    assert!(source.list().await.is_err());
    assert!(
        tokio::time::timeout(Duration::from_millis(500), source.changed())
            .await
            .is_err(),
        "no version to watch from"
    );
    drop(source);
    finish(verifier).await;
}
