//! The shared state store (`adapters::kube::ConfigMapStore`) against a REAL Kubernetes API
//! server (etcd + kube-apiserver from `./scripts/install-tools`, tests/common/apiserver.rs),
//! authenticated as the `slogate` ServiceAccount with `deploy/` applied, so that
//! `deploy/rbac.yaml` alone authorises every call (issue 18, "State"):
//!
//! - two writers racing compare-and-swap increments of one document get real 409s from the
//!   API server, and every increment lands exactly once;
//! - the state sweep's DELETE carries a resourceVersion precondition: a stale version is
//!   refused and the document kept, the current one deletes it, and a writer holding the
//!   swept document's version can neither overwrite nor delete what is written there next
//!   (resourceVersions never repeat, the contract the file and memory stores keep with a
//!   high-water mark);
//! - `runtime::state_gc::sweep` itself on the real store: it deletes an expired document,
//!   keeps a live one, and keeps an expired one written between its read and its delete.
//!
//! The daemon's own sweep starts a fixed 60s after start (`state_gc::SWEEP_DELAY`, no
//! knob), so the binary is not run here; the sweep function the daemon calls is.
//!
//! A test binary of its own so that it gets its own API server and runs beside
//! `tests/kube_apiserver.rs`. It FAILS when the tools are missing, unless `SLOGATE_E2E=0`.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use chrono::{Duration as ChronoDuration, Utc};
use common::apiserver::{self, ApiServer};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::{json, Value};
use slogate::adapters::kube::ConfigMapStore;
use slogate::adapters::state::MemoryStore;
use slogate::ports::state::{DecisionQuery, DecisionRecord, StateError, StateStore, Versioned};
use slogate::runtime::state_gc::{self, Kind, Retention};

/// slogate's namespace in `deploy/`, where `deploy/rbac.yaml` lets it keep its state.
const NS: &str = "slogate";

fn repo_path(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// The API server with `deploy/` applied (once per test binary).
fn cluster() -> Option<&'static ApiServer> {
    static DEPLOYED: OnceLock<()> = OnceLock::new();
    let api = apiserver::shared()?;
    DEPLOYED.get_or_init(|| {
        api.kubectl_ok(&["apply", "-k", &repo_path("deploy").display().to_string()]);
    });
    Some(api)
}

/// A `ConfigMapStore` in `slogate` authenticated as the `slogate` ServiceAccount, with a
/// token of its own (as one replica has), through the client the daemon builds from a
/// kubeconfig.
async fn replica(api: &ApiServer, dir: &Path, name: &str) -> ConfigMapStore {
    let path = dir.join(format!("{name}.kubeconfig"));
    // The harness is blocking (reqwest's blocking client, kubectl).
    tokio::task::block_in_place(|| api.service_account_kubeconfig(NS, "slogate", &path));
    let kubeconfig = Kubeconfig::read_from(&path).expect("read the ServiceAccount kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("client config from the kubeconfig");
    let client = kube::Client::try_from(config).expect("kube client");
    ConfigMapStore::new(client, NS, Arc::new(MemoryStore::new()))
}

fn count(doc: &Versioned) -> u64 {
    doc.value["count"].as_u64().expect("count is a number")
}

/// Add one to `key`'s `count` with compare-and-swap, retrying on conflicts. Returns the
/// count written and how many conflicts this increment lost.
async fn increment(store: &ConfigMapStore, key: &str) -> (u64, usize) {
    let mut conflicts = 0;
    loop {
        let doc = store
            .get(key)
            .await
            .expect("get")
            .expect("the counter exists");
        let next = count(&doc) + 1;
        match store
            .put(key, json!({ "count": next }), Some(doc.version))
            .await
        {
            Ok(_) => return (next, conflicts),
            Err(StateError::Conflict {
                expected, found, ..
            }) => {
                assert_eq!(expected, Some(doc.version));
                assert_ne!(found, Some(doc.version), "a conflict finds another version");
                conflicts += 1;
            }
            Err(e) => panic!("increment {key}: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configmap_state_two_writers_get_real_conflicts_and_lose_no_increment() {
    let Some(api) = tokio::task::block_in_place(cluster) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let a = Arc::new(replica(api, dir.path(), "a").await);
    let b = Arc::new(replica(api, dir.path(), "b").await);
    let key = "test/counter-two-writers";

    // Created once: the second create is a lost compare-and-swap (409 AlreadyExists).
    let v0 = a
        .put(key, json!({ "count": 0 }), None)
        .await
        .expect("create");
    match b.put(key, json!({ "count": 0 }), None).await {
        Err(StateError::Conflict {
            expected: None,
            found: Some(found),
            ..
        }) => assert_eq!(found, v0),
        other => panic!("a second create must conflict, got {other:?}"),
    }

    // Forced race: both read the same version, both write; the API server takes one.
    let ra = a.get(key).await.unwrap().unwrap();
    let rb = b.get(key).await.unwrap().unwrap();
    assert_eq!(ra.version, rb.version);
    let va = a
        .put(key, json!({ "count": count(&ra) + 1 }), Some(ra.version))
        .await
        .expect("the first writer wins");
    match b
        .put(key, json!({ "count": count(&rb) + 1 }), Some(rb.version))
        .await
    {
        Err(StateError::Conflict {
            expected, found, ..
        }) => {
            assert_eq!(expected, Some(rb.version));
            assert_eq!(found, Some(va), "the loser is told the winner's version");
        }
        other => panic!("the stale write must get a 409, got {other:?}"),
    }
    let after = b.get(key).await.unwrap().unwrap();
    assert_eq!(
        (count(&after), after.version),
        (1, va),
        "the loser wrote nothing"
    );
    let forced = 1;

    // Free race: N increments each, concurrently, retrying on conflicts.
    const N: usize = 15;
    let conflicts = Arc::new(AtomicUsize::new(0));
    let writer = |store: Arc<ConfigMapStore>, conflicts: Arc<AtomicUsize>| async move {
        let mut written = Vec::new();
        for _ in 0..N {
            let (value, lost) = increment(&store, key).await;
            conflicts.fetch_add(lost, Ordering::Relaxed);
            written.push(value);
        }
        written
    };
    let (wa, wb) = tokio::join!(
        tokio::spawn(writer(a.clone(), conflicts.clone())),
        tokio::spawn(writer(b.clone(), conflicts.clone())),
    );
    let (wa, wb) = (wa.unwrap(), wb.unwrap());

    // Every increment landed exactly once: the values the two writers wrote are 2..=2N+1,
    // each written once, and the document holds the last.
    let mut all: Vec<u64> = wa.iter().chain(&wb).copied().collect();
    all.sort_unstable();
    let expected: Vec<u64> = (2..=(2 * N as u64 + 1)).collect();
    assert_eq!(all, expected, "a: {wa:?}, b: {wb:?}");
    let last = a.get(key).await.unwrap().unwrap();
    assert_eq!(count(&last), 2 * N as u64 + 1);
    let raced = conflicts.load(Ordering::Relaxed);
    eprintln!("conflicts: {forced} forced, {raced} in the free race of 2x{N} increments");
    assert!(forced + raced > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configmap_state_delete_has_a_resource_version_precondition() {
    let Some(api) = tokio::task::block_in_place(cluster) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = replica(api, dir.path(), "sweeper").await;
    let writer = replica(api, dir.path(), "writer").await;
    let key = "test/delete-precondition";

    let v1 = store.put(key, json!({ "n": 1 }), None).await.unwrap();
    let v2 = writer.put(key, json!({ "n": 2 }), Some(v1)).await.unwrap();

    // A stale version is refused (409 on the precondition) and the document is kept.
    match store.delete(key, v1).await {
        Err(StateError::Conflict {
            expected, found, ..
        }) => {
            assert_eq!(expected, Some(v1));
            assert_eq!(found, Some(v2));
        }
        other => panic!("a delete at a stale version must conflict, got {other:?}"),
    }
    let kept = store.get(key).await.unwrap().expect("the document is kept");
    assert_eq!((kept.version, kept.value.clone()), (v2, json!({ "n": 2 })));

    // The current version deletes it; deleting again finds nothing.
    store
        .delete(key, v2)
        .await
        .expect("delete at the current version");
    assert!(store.get(key).await.unwrap().is_none());
    match store.delete(key, v2).await {
        Err(StateError::Conflict { found: None, .. }) => {}
        other => panic!("deleting a missing document must conflict, got {other:?}"),
    }

    // A writer that read the swept document cannot bring it back with its old version.
    match writer.put(key, json!({ "n": 3 }), Some(v2)).await {
        Err(StateError::Conflict {
            expected, found, ..
        }) => {
            assert_eq!(expected, Some(v2));
            assert_eq!(found, None);
        }
        other => panic!("a write at the swept version must conflict, got {other:?}"),
    }
    assert!(store.get(key).await.unwrap().is_none(), "nothing recreated");

    // A new document there gets a version never used before, so the old version can
    // neither overwrite nor delete it.
    let v3 = store.put(key, json!({ "n": 10 }), None).await.unwrap();
    assert!(![v1, v2].contains(&v3), "resourceVersions do not repeat");
    assert!(matches!(
        writer.put(key, json!({ "n": 3 }), Some(v2)).await,
        Err(StateError::Conflict { found: Some(f), .. }) if f == v3
    ));
    assert!(matches!(
        writer.delete(key, v2).await,
        Err(StateError::Conflict { found: Some(f), .. }) if f == v3
    ));
    let now = store.get(key).await.unwrap().unwrap();
    assert_eq!((now.version, now.value), (v3, json!({ "n": 10 })));
}

/// A store that, before forwarding the delete of `key`, lets another replica write it: a
/// write landing between the sweep's read and its delete.
struct WriteBeforeDelete {
    store: Arc<ConfigMapStore>,
    other: Arc<ConfigMapStore>,
    key: String,
    value: Value,
}

#[async_trait]
impl StateStore for WriteBeforeDelete {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StateError> {
        self.store.get(key).await
    }
    async fn put(&self, key: &str, value: Value, expected: Option<u64>) -> Result<u64, StateError> {
        self.store.put(key, value, expected).await
    }
    async fn delete(&self, key: &str, expected: u64) -> Result<(), StateError> {
        if key == self.key {
            let current = self.other.get(key).await?.expect("still there").version;
            self.other
                .put(key, self.value.clone(), Some(current))
                .await?;
        }
        self.store.delete(key, expected).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StateError> {
        self.store.list(prefix).await
    }
    async fn append_decision(&self, record: &DecisionRecord) -> Result<(), StateError> {
        self.store.append_decision(record).await
    }
    async fn decisions(&self, query: &DecisionQuery) -> Result<Vec<DecisionRecord>, StateError> {
        self.store.decisions(query).await
    }
}

fn alert_record(fingerprint: &str, received_days_ago: i64) -> Value {
    let at = (Utc::now() - ChronoDuration::days(received_days_ago)).to_rfc3339();
    json!({
        "fingerprint": fingerprint,
        "slo_id": "checkout-availability",
        "events": [{ "status": "firing", "starts_at": at, "received_at": at }],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_sweep_deletes_on_the_real_api_server_and_keeps_what_changed() {
    let Some(api) = tokio::task::block_in_place(cluster) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(replica(api, dir.path(), "leader").await);
    let other = Arc::new(replica(api, dir.path(), "follower").await);

    let expired = "webhook/alerts/sweep-expired";
    let live = "webhook/alerts/sweep-live";
    let raced = "webhook/alerts/sweep-raced";
    store
        .put(expired, alert_record("sweep-expired", 40), None)
        .await
        .unwrap();
    store
        .put(live, alert_record("sweep-live", 0), None)
        .await
        .unwrap();
    store
        .put(raced, alert_record("sweep-raced", 40), None)
        .await
        .unwrap();

    // A new event for `raced` arrives on the follower after the sweep judged it expired.
    let fresh = alert_record("sweep-raced", 0);
    let sweeper = WriteBeforeDelete {
        store: store.clone(),
        other,
        key: raced.to_string(),
        value: fresh.clone(),
    };
    let keep = Retention {
        retention: std::time::Duration::from_secs(30 * 86_400),
        dedupe_ttl: std::time::Duration::from_secs(7 * 86_400),
    };
    let report = state_gc::sweep(&sweeper, Utc::now(), keep, &|_: &str, _: &str| false)
        .await
        .expect("sweep");

    assert_eq!(
        report.deleted,
        vec![(expired.to_string(), Kind::AlertRecord)]
    );
    assert_eq!(report.changed, vec![raced.to_string()]);
    assert!(report.unreadable.is_empty(), "{:?}", report.unreadable);
    let left: BTreeSet<String> = store
        .list("webhook/alerts/")
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(
        left,
        BTreeSet::from([live.to_string(), raced.to_string()]),
        "the expired record is gone, the live and the rewritten ones kept"
    );
    assert_eq!(store.get(raced).await.unwrap().unwrap().value, fresh);
}
