//! The rollout supervisor keeps one controller task per Rollout of its source, with real
//! controllers over a file state store and file routers, and a scripted source:
//!
//! - new Rollouts start (their controllers reconcile and store a status);
//! - a changed spec replaces the controller, whose task ends, and the new one resumes from
//!   the stored status (same phase, step and start time);
//! - an invalid Rollout keeps its running controller, and a new invalid one is not started;
//! - an incomplete reading or a failed one stops nothing;
//! - a Rollout gone from a complete reading stops its controller, leaves the registry and
//!   drops its gauges; `stop_all` ends every task;
//! - a Rollout out of its namespace's scope is refused: not started, `Admitted=False` in its
//!   stored status and one `refuse` decision record per spec (not per resync, nor after a
//!   restart); fixed, it starts and turns `Admitted=True`.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use common::Healthy;
use slogate::adapters::state::FileStore;
use slogate::adapters::traffic_file::FileRouter;
use slogate::ports::rollouts::{RolloutSet, RolloutSource, RolloutSourceError};
use slogate::ports::state::{DecisionQuery, DecisionRecord, StateStore};
use slogate::rollout::load::from_yaml_str;
use slogate::rollout::scope::Scope;
use slogate::rollout::status::{ConditionStatus, ADMITTED};
use slogate::rollout::{PhaseName, Rollout, RolloutStatus};
use slogate::runtime::metrics::{RolloutLabels, RolloutMetrics, SpecStateLabels};
use slogate::runtime::rollout::{
    weights_file, Admission, ControllerFactory, RolloutController, RolloutDeps, RolloutRegistry,
    RolloutSupervisor, StaticVersions, SyncReport,
};

fn rollout(name: &str, interval: &str) -> Rollout {
    from_yaml_str(&format!(
        r#"
apiVersion: slogate.dev/v1alpha1
kind: Rollout
metadata: {{name: {name}, namespace: shop}}
spec:
  traffic:
    httpRoute: {{name: {name}, stableBackend: {{name: {name}}}, canaryBackend: {{name: {name}-canary}}}}
  workloads: {{stable: {{name: {name}}}, canary: {{name: {name}-canary}}}}
  interval: {interval}
  progressDeadline: 1h
  analysis:
    metrics:
      - {{name: request-success-rate, min: 0.99}}
  gitops: {{app: {name}, path: apps/{name}}}
"#
    ))
    .unwrap()
}

/// A source whose next reading the test sets, and which reports a change when the test
/// notifies `changes`.
struct Scripted(
    Mutex<Result<RolloutSet, RolloutSourceError>>,
    tokio::sync::Notify,
);

impl Scripted {
    fn set(&self, reading: Result<RolloutSet, RolloutSourceError>) {
        *self.0.lock().unwrap() = reading;
    }
}

#[async_trait]
impl RolloutSource for Scripted {
    fn describe(&self) -> String {
        "scripted".into()
    }
    async fn list(&self) -> Result<RolloutSet, RolloutSourceError> {
        self.0.lock().unwrap().clone()
    }
    async fn changed(&self) {
        self.1.notified().await
    }
}

fn reading(rollouts: &[&Rollout], invalid: &[&str], errors: &[&str]) -> RolloutSet {
    RolloutSet {
        rollouts: rollouts.iter().map(|r| (*r).clone()).collect(),
        invalid: invalid
            .iter()
            .map(|k| {
                (
                    k.to_string(),
                    vec![format!("Rollout {k}: spec.steps: error: bad")],
                )
            })
            .collect::<BTreeMap<_, _>>(),
        errors: errors.iter().map(|e| e.to_string()).collect(),
        warnings: Vec::new(),
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    source: Arc<Scripted>,
    supervisor: RolloutSupervisor,
    registry: Arc<RolloutRegistry>,
    metrics: RolloutMetrics,
}

fn fixture() -> Fixture {
    fixture_with(None, None)
}

/// A fixture whose supervisor checks `scope` and reports refusals in its store; `dir`
/// reuses a state directory (a restarted daemon).
fn fixture_with(scope: Option<Scope>, dir: Option<tempfile::TempDir>) -> Fixture {
    let dir = dir.unwrap_or_else(|| tempfile::tempdir().unwrap());
    let store = Arc::new(FileStore::open(dir.path().join("state")).unwrap());
    let admission = scope.map(|scope| Admission {
        scope,
        store: Some(store.clone() as Arc<dyn StateStore>),
    });
    let versions = Arc::new(StaticVersions::new());
    for name in ["a", "b", "c"] {
        versions.set(&format!("shop/{name}"), "v1", "v2");
    }
    let metrics = RolloutMetrics::default();
    let weights = dir.path().join("weights");
    let m = metrics.clone();
    let factory: ControllerFactory = Box::new(move |r: Rollout| {
        let file = weights_file(&weights, r.namespace(), &r.metadata.name);
        std::fs::create_dir_all(file.parent().unwrap()).map_err(|e| e.to_string())?;
        let mut deps = RolloutDeps::new(
            Arc::new(Healthy),
            Arc::new(FileRouter::new(file)),
            store.clone(),
            versions.clone(),
        );
        deps.metrics_registry = m.clone();
        Ok(Arc::new(RolloutController::new(r, deps)))
    });
    let source = Arc::new(Scripted(
        Mutex::new(Ok(RolloutSet::default())),
        tokio::sync::Notify::new(),
    ));
    let registry = Arc::new(RolloutRegistry::default());
    let mut supervisor = RolloutSupervisor::new(source.clone(), factory, registry.clone())
        .with_metrics(metrics.clone());
    if let Some(a) = admission {
        supervisor = supervisor.with_admission(a);
    }
    Fixture {
        _dir: dir,
        source,
        supervisor,
        registry,
        metrics,
    }
}

/// The stored status once the controller has started its rollout.
async fn progressing(c: &RolloutController) -> RolloutStatus {
    for _ in 0..300 {
        let (status, _) = c.status().await.unwrap();
        if status.phase.name() == PhaseName::Progressing {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{} never started progressing", c.key());
}

fn keys(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// A stopped controller's task has ended once only the test holds its `Arc` (the task and
/// the registry held the others).
fn ended(c: &Arc<RolloutController>) -> bool {
    Arc::strong_count(c) == 1
}

#[tokio::test]
async fn controllers_follow_the_source() {
    let f = fixture();
    let (a, b) = (rollout("a", "30s"), rollout("b", "30s"));

    // Two new Rollouts: both start and reconcile.
    f.source.set(Ok(reading(&[&a, &b], &[], &[])));
    let r = f.supervisor.sync_once().await.unwrap();
    assert_eq!(
        r,
        SyncReport {
            started: keys(&["shop/a", "shop/b"]),
            complete: true,
            ..SyncReport::default()
        }
    );
    assert_eq!(f.registry.len(), 2);
    let old_a = f.registry.get("shop", "a").unwrap();
    let before = progressing(&old_a).await;
    progressing(&f.registry.get("shop", "b").unwrap()).await;
    let labels = |name: &str| RolloutLabels {
        namespace: "shop".into(),
        rollout: name.into(),
    };
    assert!(f.metrics.weight.get(&labels("b")).is_some());

    // The same reading again changes nothing.
    let r = f.supervisor.sync_once().await.unwrap();
    assert!(
        r.started.is_empty() && r.restarted.is_empty() && r.stopped.is_empty(),
        "{r:?}"
    );
    assert!(Arc::ptr_eq(&old_a, &f.registry.get("shop", "a").unwrap()));

    // A changed spec: a new controller with the new spec; the old task ends; the stored
    // status carries over (same step, same start of the step).
    let a2 = rollout("a", "45s");
    f.source.set(Ok(reading(&[&a2, &b], &[], &[])));
    let r = f.supervisor.sync_once().await.unwrap();
    assert_eq!(r.restarted, keys(&["shop/a"]), "{r:?}");
    assert!(r.started.is_empty() && r.stopped.is_empty(), "{r:?}");
    let new_a = f.registry.get("shop", "a").unwrap();
    assert!(!Arc::ptr_eq(&old_a, &new_a));
    assert_eq!(new_a.rollout(), &a2);
    assert_eq!(f.supervisor.running().await["shop/a"], a2);
    assert!(ended(&old_a), "the replaced controller's task still runs");
    drop(old_a);
    let after = progressing(&new_a).await;
    assert_eq!(
        after.phase, before.phase,
        "the restart did not resume the stored step"
    );

    // b turns invalid: it keeps running its last valid spec. A new invalid c is not started.
    f.source
        .set(Ok(reading(&[&a2], &["shop/b", "shop/c"], &[])));
    let r = f.supervisor.sync_once().await.unwrap();
    assert_eq!(r.kept, keys(&["shop/b"]), "{r:?}");
    assert_eq!(r.rejected, keys(&["shop/c"]), "{r:?}");
    assert!(r.stopped.is_empty(), "{r:?}");
    assert_eq!(r.problems.len(), 2, "{r:?}");
    assert_eq!(f.registry.get("shop", "b").unwrap().rollout(), &b);
    assert!(f.registry.get("shop", "c").is_none());

    // An incomplete reading (an unreadable file) that misses b: nothing stops.
    f.source
        .set(Ok(reading(&[&a2], &[], &["x.yaml: cannot read the file"])));
    let r = f.supervisor.sync_once().await.unwrap();
    assert!(!r.complete && r.stopped.is_empty(), "{r:?}");
    assert_eq!(f.registry.len(), 2);

    // A failed reading: an error, nothing changes.
    f.source.set(Err(RolloutSourceError {
        source_name: "scripted".into(),
        message: "HTTP 503".into(),
    }));
    let e = f.supervisor.sync_once().await.unwrap_err();
    assert!(e.to_string().contains("HTTP 503"), "{e}");
    assert_eq!(f.registry.len(), 2);

    // b is gone from a complete reading: stopped, unregistered, gauges dropped.
    let old_b = f.registry.get("shop", "b").unwrap();
    f.source.set(Ok(reading(&[&a2], &[], &[])));
    let r = f.supervisor.sync_once().await.unwrap();
    assert_eq!(r.stopped, keys(&["shop/b"]), "{r:?}");
    assert!(f.registry.get("shop", "b").is_none());
    assert!(
        ended(&old_b),
        "the deleted rollout's controller task still runs"
    );
    assert!(f.metrics.weight.get(&labels("b")).is_none());
    assert!(f.metrics.weight.get(&labels("a")).is_some());
    // Its stored status stays (deleting a Rollout does not roll anything back).
    assert_eq!(
        old_b.status().await.unwrap().0.phase.name(),
        PhaseName::Progressing
    );

    // Shutdown: every task ends and the registry empties.
    f.supervisor.stop_all().await;
    assert!(f.registry.is_empty());
    assert!(ended(&new_a), "stop_all left a controller task running");
}

/// `run` syncs at once and again every interval, and stops every controller on shutdown.
#[tokio::test]
async fn run_resyncs_until_shutdown() {
    let f = fixture();
    let a = rollout("a", "30s");
    f.source.set(Ok(reading(&[&a], &[], &[])));
    let supervisor = Arc::new(f.supervisor);
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(supervisor.clone().run(Duration::from_millis(50), stop_rx));
    let first = wait_for(|| f.registry.get("shop", "a")).await;
    // A Rollout added to the source is picked up by a later resync, without a call.
    let b = rollout("b", "30s");
    f.source.set(Ok(reading(&[&a, &b], &[], &[])));
    wait_for(|| f.registry.get("shop", "b")).await;
    stop.send(true).unwrap();
    task.await.unwrap();
    assert!(f.registry.is_empty());
    assert!(ended(&first), "shutdown left a controller task running");
}

#[tokio::test]
async fn run_reads_the_source_at_once_when_it_reports_a_change() {
    let f = fixture();
    let a = rollout("a", "30s");
    f.source.set(Ok(reading(&[&a], &[], &[])));
    let supervisor = Arc::new(f.supervisor);
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    // A resync the test never reaches: only the reported change can start b.
    let task = tokio::spawn(supervisor.clone().run(Duration::from_secs(3600), stop_rx));
    wait_for(|| f.registry.get("shop", "a")).await;
    let b = rollout("b", "30s");
    f.source.set(Ok(reading(&[&a, &b], &[], &[])));
    f.source.1.notify_one();
    wait_for(|| f.registry.get("shop", "b")).await;
    stop.send(true).unwrap();
    task.await.unwrap();
    assert!(f.registry.is_empty());
}

async fn wait_for<T>(mut f: impl FnMut() -> Option<T>) -> T {
    for _ in 0..300 {
        if let Some(v) = f() {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition never met");
}

/// A Rollout in `shop` whose route is in `route_ns` (none: its own) and whose GitOps path
/// is `path`.
fn scoped(name: &str, route_ns: Option<&str>, path: &str) -> Rollout {
    let ns = route_ns
        .map(|n| format!(", namespace: {n}"))
        .unwrap_or_default();
    from_yaml_str(&format!(
        r#"
apiVersion: slogate.dev/v1alpha1
kind: Rollout
metadata: {{name: {name}, namespace: shop}}
spec:
  traffic:
    httpRoute: {{name: {name}{ns}, stableBackend: {{name: {name}}}, canaryBackend: {{name: {name}-canary}}}}
  workloads: {{stable: {{name: {name}}}, canary: {{name: {name}-canary}}}}
  interval: 30s
  progressDeadline: 1h
  analysis:
    metrics:
      - {{name: request-success-rate, min: 0.99}}
  gitops: {{app: {name}, path: {path}}}
"#
    ))
    .unwrap()
}

async fn stored(store: &FileStore, name: &str) -> Option<RolloutStatus> {
    store
        .get(&format!("rollout/shop/{name}"))
        .await
        .unwrap()
        .map(|v| serde_json::from_value(v.value).unwrap())
}

async fn decisions(store: &FileStore, name: &str) -> Vec<DecisionRecord> {
    store
        .decisions(&DecisionQuery {
            subject: Some(format!("shop/{name}")),
            ..DecisionQuery::default()
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn out_of_scope_rollouts_are_refused_once_and_admitted_when_fixed() {
    let scope = || Scope {
        gitops_paths: Some(BTreeMap::from([(
            "shop".to_string(),
            vec!["apps/shop".to_string()],
        )])),
        ..Scope::default()
    };
    let f = fixture_with(Some(scope()), None);
    let store = FileStore::open(f._dir.path().join("state")).unwrap();
    let cross = scoped("a", Some("payments"), "apps/shop/a");
    let elsewhere = scoped("b", None, "apps/payments");
    let fine = scoped("c", Some("shop"), "apps/shop/c");
    f.source
        .set(Ok(reading(&[&cross, &elsewhere, &fine], &[], &[])));
    let r = f.supervisor.sync_once().await.unwrap();
    assert_eq!(r.started, keys(&["shop/c"]), "{r:?}");
    assert_eq!(r.refused, keys(&["shop/a", "shop/b"]), "{r:?}");
    assert_eq!(r.rejected, keys(&["shop/a", "shop/b"]), "{r:?}");
    assert!(f.registry.get("shop", "a").is_none() && f.registry.get("shop", "b").is_none());
    assert!(
        r.problems
            .iter()
            .any(|p| p.contains("Rollout shop/a: refused: spec.traffic.httpRoute.namespace")),
        "{r:?}"
    );
    let specs = |state: &str| {
        f.metrics
            .specs
            .get(&SpecStateLabels {
                state: state.into(),
            })
            .map(|g| g.get())
    };
    assert_eq!(
        (specs("running"), specs("rejected"), specs("refused")),
        (Some(1), Some(0), Some(2))
    );

    for (name, reason, field) in [
        (
            "a",
            "RouteOutsideNamespace",
            "spec.traffic.httpRoute.namespace",
        ),
        ("b", "GitOpsPathNotAllowed", "spec.gitops.path"),
    ] {
        let s = stored(&store, name).await.unwrap();
        let c = s.condition(ADMITTED).unwrap();
        assert_eq!(c.status, ConditionStatus::False, "{name}");
        assert_eq!(c.reason, reason);
        assert!(c.message.contains(field), "{}", c.message);
        assert_eq!(s.phase.name(), PhaseName::Pending, "refused: nothing ran");
        let d = decisions(&store, name).await;
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(
            (d[0].action.as_str(), d[0].trigger.as_str()),
            ("refuse", "admission")
        );
        assert_eq!(d[0].observed["violations"][0]["field"], field);
        assert!(d[0].observed["violations"][0]["rule"].is_string());
    }
    assert!(!f._dir.path().join("weights/shop/a.json").exists());

    // A resync: nothing new is recorded.
    f.supervisor.sync_once().await.unwrap();
    assert_eq!(decisions(&store, "a").await.len(), 1);
    f.supervisor.stop_all().await;

    // A restarted daemon over the same state: the stored condition says it was reported.
    let Fixture { _dir: dir, .. } = f;
    let f = fixture_with(Some(scope()), Some(dir));
    f.source
        .set(Ok(reading(&[&cross, &elsewhere, &fine], &[], &[])));
    let r = f.supervisor.sync_once().await.unwrap();
    assert_eq!(r.refused, keys(&["shop/a", "shop/b"]), "{r:?}");
    assert_eq!(decisions(&store, "a").await.len(), 1);

    // Fixed: a starts, its condition turns True, and the admission is recorded.
    let fixed = scoped("a", None, "apps/shop/a");
    f.source
        .set(Ok(reading(&[&fixed, &elsewhere, &fine], &[], &[])));
    let r = f.supervisor.sync_once().await.unwrap();
    assert_eq!(r.started, keys(&["shop/a"]), "{r:?}");
    assert_eq!(r.refused, keys(&["shop/b"]), "{r:?}");
    let a = f.registry.get("shop", "a").unwrap();
    let s = progressing(&a).await;
    assert_eq!(s.condition(ADMITTED).unwrap().status, ConditionStatus::True);
    let d = decisions(&store, "a").await;
    // (The controller then records its own decisions, `start` first.)
    assert_eq!(
        d.iter()
            .map(|d| d.action.as_str())
            .take(2)
            .collect::<Vec<_>>(),
        ["refuse", "admit"],
        "{d:?}"
    );
    f.supervisor.stop_all().await;
}
