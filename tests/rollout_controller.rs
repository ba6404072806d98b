//! The rollout controller at run time (`slogate::runtime::rollout::RolloutController`), in
//! simulated time, over real ports where they can run here: the file state store, the file
//! router, a real bare git remote through the git adapter, and a fake `MetricsSource`
//! returning chosen samples.
//!
//! - a healthy canary goes 10→25→50→75→100, is promoted by a commit in the remote, and the
//!   promotion commit becomes known-good for the guarded app;
//! - a failing canary goes back to 0% and its commit is reverted once, also when the process
//!   dies after storing the decision (before or after pushing the revert);
//! - a restart mid-interval resumes at the same step and takes no step early;
//! - a weight changed by hand pauses the rollout without being overwritten; resume restores;
//! - a replica that is not the leader writes nothing;
//! - the guard's freeze holds a new canary.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use common::git::GitRemote;
use slogate::adapters::git::{GitCli, RepoConfig};
use slogate::adapters::leader::leadership_channel;
use slogate::adapters::state::FileStore;
use slogate::adapters::traffic_file::FileRouter;
use slogate::guard::decide::AppGuard;
use slogate::model::commit::{CommitInfo, RevertRequest, Sha};
use slogate::model::notify::Notification;
use slogate::model::traffic::Weights;
use slogate::model::trailers::{parse_trailers, trailer_values, Trailer};
use slogate::ports::gitops::{CommitOutcome, EditFn, GitOpsError, GitOpsRepo, RevertOutcome};
use slogate::ports::metrics::{MetricsError, MetricsSource, Sample, Series};
use slogate::ports::notify::{Notifier, NotifyError};
use slogate::ports::state::{DecisionKind, DecisionQuery, StateStore};
use slogate::rollout::load::from_yaml_str;
use slogate::rollout::{CommandAction, PhaseName, Rollout};
use slogate::runtime::guard::GuardRuntime;
use slogate::runtime::metrics::Metrics;
use slogate::runtime::rollout::{CommandOutcome, RolloutController, RolloutDeps, StaticVersions};

const ROLLOUT: &str = r#"
apiVersion: slogate.dev/v1alpha1
kind: Rollout
metadata: {name: checkout, namespace: shop}
spec:
  traffic:
    virtualService: {name: checkout, route: primary, subset: {host: checkout, stable: stable, canary: canary}}
  workloads: {stable: {name: checkout}, canary: {name: checkout-canary}}
  steps: [10, 25, 50, 75, 100]
  interval: 30s
  failureLimit: 1
  inconclusiveLimit: 2
  progressDeadline: 5m
  analysis:
    metrics:
      - {name: request-success-rate, min: 0.99}
  gitops: {app: checkout, path: apps/checkout/overlays/prod}
"#;

const KEY: &str = "shop/checkout";
const OVERLAY: &str = "apps/checkout/overlays/prod/kustomization.yaml";

fn overlay(stable: &str, canary: &str) -> String {
    format!(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../../base\nimages:\n  - name: example/checkout\n    newTag: {stable} # stable\n  - name: example/checkout-canary\n    newTag: {canary} # canary\n"
    )
}

fn t(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap() + chrono::Duration::seconds(secs)
}

/// A `MetricsSource` answering every instant query with the chosen success ratio (`None`:
/// no data), counting the queries.
#[derive(Default)]
struct FakeMetrics {
    value: Mutex<Option<f64>>,
    queries: AtomicUsize,
}

impl FakeMetrics {
    fn healthy() -> Arc<Self> {
        let m = FakeMetrics::default();
        *m.value.lock().unwrap() = Some(0.999);
        Arc::new(m)
    }
    fn set(&self, v: Option<f64>) {
        *self.value.lock().unwrap() = v;
    }
    fn queries(&self) -> usize {
        self.queries.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl MetricsSource for FakeMetrics {
    async fn instant(
        &self,
        query: &str,
        _at: Option<DateTime<Utc>>,
    ) -> Result<Vec<Sample>, MetricsError> {
        self.queries.fetch_add(1, Ordering::SeqCst);
        assert!(
            query.contains(r#"destination_workload="checkout-canary""#),
            "{query}"
        );
        Ok(self
            .value
            .lock()
            .unwrap()
            .map(|value| Sample {
                labels: Default::default(),
                value,
            })
            .into_iter()
            .collect())
    }

    async fn range(
        &self,
        _query: &str,
        _start: DateTime<Utc>,
        _end: DateTime<Utc>,
        _step: Duration,
    ) -> Result<Vec<Series>, MetricsError> {
        self.queries.fetch_add(1, Ordering::SeqCst);
        Ok(Vec::new())
    }
}

#[derive(Default)]
struct Recorder(Mutex<Vec<Notification>>);

#[async_trait]
impl Notifier for Recorder {
    async fn notify(&self, n: &Notification) -> Result<(), NotifyError> {
        self.0.lock().unwrap().push(n.clone());
        Ok(())
    }
}

/// A GitOps repo that "crashes the process" (panics) around a revert.
struct CrashingRepo {
    inner: GitCli,
    /// Push the revert before panicking.
    after_push: bool,
}

#[async_trait]
impl GitOpsRepo for CrashingRepo {
    async fn sync(&self) -> Result<Sha, GitOpsError> {
        self.inner.sync().await
    }
    async fn head(&self) -> Result<Sha, GitOpsError> {
        self.inner.head().await
    }
    async fn commits_touching(
        &self,
        path: &str,
        since: Option<&str>,
    ) -> Result<Vec<CommitInfo>, GitOpsError> {
        self.inner.commits_touching(path, since).await
    }
    async fn read_trailers(&self, sha: &str) -> Result<Vec<Trailer>, GitOpsError> {
        self.inner.read_trailers(sha).await
    }
    async fn revert(&self, req: &RevertRequest) -> Result<RevertOutcome, GitOpsError> {
        if self.after_push {
            let _ = self.inner.revert(req).await;
        }
        panic!("simulated crash during the revert");
    }
    async fn commit_files(
        &self,
        changes: Vec<(String, String)>,
        message: &str,
    ) -> Result<CommitOutcome, GitOpsError> {
        self.inner.commit_files(changes, message).await
    }
    async fn commit_edit(
        &self,
        path: &str,
        edit: EditFn,
        message: &str,
    ) -> Result<CommitOutcome, GitOpsError> {
        self.inner.commit_edit(path, edit, message).await
    }
}

struct Setup {
    remote: GitRemote,
    state: tempfile::TempDir,
    weights: PathBuf,
    versions: Arc<StaticVersions>,
    metrics: Arc<FakeMetrics>,
    notes: Arc<Recorder>,
    registry: Metrics,
    processes: AtomicUsize,
}

impl Setup {
    fn new() -> Self {
        let remote = GitRemote::new();
        remote.commit(&[(OVERLAY, &overlay("v1", "v1"))], "checkout v1");
        remote.commit(&[(OVERLAY, &overlay("v1", "v2"))], "checkout canary v2");
        let state = tempfile::tempdir().unwrap();
        let weights = state.path().join("weights.json");
        let versions = Arc::new(StaticVersions::new());
        versions.set(KEY, "v1", "v2");
        Setup {
            remote,
            weights,
            state,
            versions,
            metrics: FakeMetrics::healthy(),
            notes: Arc::new(Recorder::default()),
            registry: Metrics::new(),
            processes: AtomicUsize::new(0),
        }
    }

    fn rollout(&self) -> Rollout {
        from_yaml_str(ROLLOUT).unwrap()
    }

    fn store(&self) -> Arc<FileStore> {
        Arc::new(FileStore::open(self.state.path()).unwrap())
    }

    fn git(&self) -> GitCli {
        // Every "process" has its own clone, as after a restart on another node.
        let n = self.processes.fetch_add(1, Ordering::SeqCst);
        GitCli::new(RepoConfig::new(
            self.remote.url(),
            "main",
            self.remote.workdir(&format!("work-{n}")),
        ))
        .unwrap()
    }

    fn deps(&self, repo: Arc<dyn GitOpsRepo>) -> RolloutDeps {
        let mut deps = RolloutDeps::new(
            self.metrics.clone(),
            Arc::new(FileRouter::new(&self.weights)),
            self.store(),
            self.versions.clone(),
        );
        deps.repo = Some(repo);
        deps.notifiers = vec![self.notes.clone()];
        deps.metrics_registry = self.registry.rollout.clone();
        deps
    }

    /// A controller "process" over the shared state directory and remote.
    fn controller(&self) -> Arc<RolloutController> {
        Arc::new(RolloutController::new(
            self.rollout(),
            self.deps(Arc::new(self.git())),
        ))
    }

    fn weights(&self) -> Option<Weights> {
        let text = std::fs::read_to_string(&self.weights).ok()?;
        serde_json::from_str(&text).ok()
    }

    fn write_weights(&self, canary: u32) {
        std::fs::write(
            &self.weights,
            serde_json::to_string(&Weights::canary(canary)).unwrap(),
        )
        .unwrap();
    }

    async fn actions(&self) -> Vec<(DecisionKind, String)> {
        self.store()
            .decisions(&DecisionQuery::default())
            .await
            .unwrap()
            .into_iter()
            .map(|r| (r.kind, r.action))
            .collect()
    }

    /// (sha, trailers) of the remote's commits carrying `key`, newest first.
    fn commits_with(&self, key: &str) -> Vec<(String, Vec<Trailer>)> {
        self.remote
            .log()
            .into_iter()
            .map(|(sha, msg)| (sha, parse_trailers(&msg)))
            .filter(|(_, tr)| !trailer_values(tr, key).is_empty())
            .collect()
    }
}

async fn reconcile(c: &RolloutController, at: i64) -> slogate::runtime::rollout::ReconcileReport {
    c.reconcile_once(t(at))
        .await
        .unwrap_or_else(|e| panic!("reconcile at t+{at}s: {e}"))
}

fn step_of(r: &slogate::runtime::rollout::ReconcileReport) -> Option<u32> {
    r.status.phase.step()
}

#[tokio::test]
async fn a_healthy_canary_steps_through_every_weight_and_is_promoted() {
    let s = Setup::new();
    let store = s.store();
    // The app is guarded: the promotion commit becomes known-good.
    let guard = Arc::new(GuardRuntime::new(
        vec![AppGuard {
            app: "checkout".into(),
            path: "apps/checkout/overlays/prod".into(),
            slos: vec!["checkout-availability".into()],
            thresholds: Default::default(),
            soak: Duration::from_secs(600),
            verify: Default::default(),
        }],
        store.clone(),
        Arc::new(s.git()),
        HashMap::new(),
        Vec::new(),
    ));
    let mut deps = s.deps(Arc::new(s.git()));
    deps.guard = Some(guard.clone());
    let c = RolloutController::new(s.rollout(), deps);

    let r = reconcile(&c, 0).await;
    assert_eq!(r.phase(), PhaseName::Progressing);
    assert_eq!(step_of(&r), Some(0));
    assert_eq!(s.weights(), Some(Weights::canary(10)));
    assert_eq!(r.requeue_after, Duration::from_secs(30));
    assert_eq!(s.metrics.queries(), 0, "no analysis before a full interval");

    let mut seen = vec![10];
    for (i, weight) in [25, 50, 75, 100].into_iter().enumerate() {
        let at = 30 * (i as i64 + 1);
        // Just before the interval ends nothing moves.
        let early = reconcile(&c, at - 1).await;
        assert_eq!(step_of(&early), Some(i as u32), "early at t+{}", at - 1);
        assert_eq!(early.requeue_after, Duration::from_secs(1));
        let r = reconcile(&c, at).await;
        assert_eq!(r.verdict, Some(slogate::rollout::status::Verdict::Pass));
        assert_eq!(step_of(&r), Some(i as u32 + 1), "{:#?}", r.status);
        assert_eq!(s.weights(), Some(Weights::canary(weight)));
        seen.push(weight);
    }
    assert_eq!(seen, [10, 25, 50, 75, 100]);

    // A passing interval at 100%: the canary version is committed as stable.
    let r = reconcile(&c, 150).await;
    assert_eq!(r.phase(), PhaseName::Promoting, "{:#?}", r.status);
    let promotions = s.commits_with("Slogate-Promotion");
    assert_eq!(promotions.len(), 1, "{:?}", s.remote.log());
    let (sha, trailers) = &promotions[0];
    assert_eq!(trailer_values(trailers, "Slogate-Rollout"), [KEY]);
    assert_eq!(trailer_values(trailers, "Slogate-Version"), ["v2"]);
    assert_eq!(s.remote.show(OVERLAY), overlay("v2", "v2"));
    assert_eq!(r.status.promotion_commit.as_ref(), Some(sha));
    // Still on the canary until stable runs the new version.
    assert_eq!(s.weights(), Some(Weights::canary(100)));
    let r = reconcile(&c, 160).await;
    assert_eq!(r.phase(), PhaseName::Promoting);
    assert_eq!(s.commits_with("Slogate-Promotion").len(), 1);

    // Argo CD synced: stable runs v2. Traffic goes back to stable, the rollout succeeded.
    s.versions.set_stable(KEY, "v2");
    let r = reconcile(&c, 170).await;
    assert_eq!(r.phase(), PhaseName::Succeeded, "{:#?}", r.status);
    assert_eq!(s.weights(), Some(Weights::canary(0)));
    let (gs, _) = guard.state("checkout").await.unwrap();
    assert_eq!(gs.known_good.map(|k| k.sha), Some(sha.clone()));

    // Nothing more happens.
    let r = reconcile(&c, 500).await;
    assert_eq!(r.phase(), PhaseName::Succeeded);
    assert!(r.effects.is_empty(), "{:?}", r.effects);

    let actions: Vec<String> = s
        .actions()
        .await
        .into_iter()
        .filter(|(k, _)| *k == DecisionKind::Rollout)
        .map(|(_, a)| a)
        .collect();
    assert_eq!(
        actions,
        [
            "start",
            "step",
            "step",
            "step",
            "step",
            "promote",
            "promotion-committed",
            "promoted"
        ]
    );
    let text = s.registry.encode().unwrap();
    for line in [
        r#"slogate_rollout_phase{namespace="shop",rollout="checkout",phase="Succeeded"} 1"#,
        r#"slogate_rollout_phase{namespace="shop",rollout="checkout",phase="Progressing"} 0"#,
        r#"slogate_rollout_weight{namespace="shop",rollout="checkout"} 0"#,
        r#"slogate_rollout_step{namespace="shop",rollout="checkout"} 4"#,
        r#"slogate_analysis_result_total{namespace="shop",rollout="checkout",metric="request-success-rate",result="pass"} 5"#,
        r#"slogate_decisions_total{kind="rollout",action="step"} 4"#,
        "slogate_leader 1",
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
}

#[tokio::test]
async fn a_failing_canary_goes_to_zero_and_its_commit_is_reverted_once() {
    let s = Setup::new();
    let canary_commit = s.remote.log()[0].0.clone();
    let c = s.controller();
    reconcile(&c, 0).await;
    s.metrics.set(Some(0.5));
    let r = reconcile(&c, 30).await;
    assert_eq!(r.verdict, Some(slogate::rollout::status::Verdict::Fail));
    assert_eq!(
        r.phase(),
        PhaseName::Progressing,
        "one failure is tolerated"
    );
    let r = reconcile(&c, 60).await;
    assert_eq!(r.phase(), PhaseName::Failed, "{:#?}", r.status);
    assert_eq!(s.weights(), Some(Weights::canary(0)));
    let reverts = s.commits_with("Slogate-Breach");
    assert_eq!(reverts.len(), 1);
    let tr = &reverts[0].1;
    assert_eq!(
        trailer_values(tr, "Slogate-Reverts"),
        [canary_commit.as_str()]
    );
    assert_eq!(trailer_values(tr, "Slogate-Rollout"), [KEY]);
    assert_eq!(trailer_values(tr, "Slogate-Canary-Version"), ["v2"]);
    assert!(trailer_values(tr, "Slogate-Reason")[0].contains("failureLimit"));
    assert_eq!(s.remote.show(OVERLAY), overlay("v1", "v1"));
    assert_eq!(
        r.status.revert_commit.as_deref(),
        Some(reverts[0].0.as_str())
    );

    // Later reconciles and a restarted process revert nothing more.
    reconcile(&c, 90).await;
    reconcile(&s.controller(), 120).await;
    assert_eq!(s.commits_with("Slogate-Breach").len(), 1);
    let actions: Vec<String> = s.actions().await.into_iter().map(|(_, a)| a).collect();
    for a in ["analysis", "abort", "reverted", "failed"] {
        assert_eq!(
            actions.iter().filter(|x| *x == a).count(),
            1,
            "{a}: {actions:?}"
        );
    }
    // Critical notification of the abort (sent on a background task).
    for _ in 0..100 {
        if s.notes
            .0
            .lock()
            .unwrap()
            .iter()
            .any(|n| n.title.contains("aborted"))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let notes = s.notes.0.lock().unwrap();
    let abort = notes.iter().find(|n| n.title.contains("aborted")).unwrap();
    assert_eq!(abort.severity, slogate::model::notify::Severity::Critical);
    assert_eq!(abort.subject, KEY);
}

/// The process dies inside the revert: before pushing, or after pushing but before the
/// outcome was stored. The decision (weights to 0, revert pending) was stored first, so the
/// next process finishes the abort, and the revert's key finds an earlier push.
#[tokio::test]
async fn a_crash_around_the_revert_still_reverts_exactly_once() {
    for after_push in [false, true] {
        let s = Setup::new();
        let c = s.controller();
        reconcile(&c, 0).await;
        s.metrics.set(None);
        // Inconclusive ×3 > inconclusiveLimit 2: abort at t+90.
        reconcile(&c, 30).await;
        reconcile(&c, 60).await;
        let crashing = Arc::new(RolloutController::new(
            s.rollout(),
            s.deps(Arc::new(CrashingRepo {
                inner: s.git(),
                after_push,
            })),
        ));
        let died = tokio::spawn(async move { crashing.reconcile_once(t(90)).await }).await;
        assert!(died.is_err_and(|e| e.is_panic()), "the process crashed");
        assert_eq!(
            s.commits_with("Slogate-Breach").len(),
            usize::from(after_push)
        );
        // What was stored before the crash: aborting, revert pending.
        let (status, _) = s.controller().status().await.unwrap();
        assert_eq!(status.phase.name(), PhaseName::Aborting, "{status:#?}");
        let revert_key = status
            .pending
            .iter()
            .find(|p| p.kind == slogate::rollout::status::PendingKind::RevertCanary)
            .map(|p| p.key.clone())
            .expect("revert pending");

        let restarted = s.controller();
        let r = reconcile(&restarted, 95).await;
        assert_eq!(r.phase(), PhaseName::Failed, "{:#?}", r.status);
        reconcile(&s.controller(), 200).await;
        let reverts = s.commits_with("Slogate-Breach");
        assert_eq!(reverts.len(), 1, "after_push={after_push}");
        assert_eq!(
            trailer_values(&reverts[0].1, "Slogate-Breach"),
            [revert_key.as_str()]
        );
        assert_eq!(s.weights(), Some(Weights::canary(0)));
        assert_eq!(s.remote.show(OVERLAY), overlay("v1", "v1"));
        let detail = r
            .effects
            .iter()
            .find(|e| e.effect == "revertCanary")
            .map(|e| e.outcome.clone())
            .unwrap();
        assert_eq!(detail.contains("already reverted"), after_push, "{detail}");
    }
}

#[tokio::test]
async fn a_restart_mid_interval_resumes_at_the_same_step_without_an_early_step() {
    let s = Setup::new();
    let a = s.controller();
    reconcile(&a, 0).await;
    let r = reconcile(&a, 30).await;
    assert_eq!(step_of(&r), Some(1));
    let queries = s.metrics.queries();
    drop(a);

    // A new process at t+45: same step, 15s left, nothing queried or written.
    let b = s.controller();
    let r = reconcile(&b, 45).await;
    assert_eq!(step_of(&r), Some(1));
    assert_eq!(r.requeue_after, Duration::from_secs(15));
    assert!(r.effects.is_empty(), "{:?}", r.effects);
    assert_eq!(
        s.metrics.queries(),
        queries,
        "no analysis before the interval ends"
    );
    let r = reconcile(&b, 59).await;
    assert_eq!(step_of(&r), Some(1));
    assert_eq!(s.weights(), Some(Weights::canary(25)));
    // The interval ends 30s after the step's weights took effect (t+30), not after the restart.
    let r = reconcile(&b, 60).await;
    assert_eq!(step_of(&r), Some(2));
    assert_eq!(s.weights(), Some(Weights::canary(50)));
}

#[tokio::test]
async fn a_weight_changed_by_hand_pauses_without_overwriting_and_resume_restores() {
    let s = Setup::new();
    let c = s.controller();
    reconcile(&c, 0).await;
    s.write_weights(50);
    let r = reconcile(&c, 10).await;
    assert_eq!(r.phase(), PhaseName::Paused, "{:#?}", r.status);
    assert!(
        r.status.reason.contains("50/50") && r.status.reason.contains("90/10"),
        "{}",
        r.status.reason
    );
    assert_eq!(s.weights(), Some(Weights::canary(50)), "not overwritten");
    // Time passes: nothing moves while paused.
    let r = reconcile(&c, 100).await;
    assert_eq!(r.phase(), PhaseName::Paused);
    assert_eq!(s.weights(), Some(Weights::canary(50)));

    let res = c
        .submit(
            CommandAction::Resume,
            "alice",
            Some("checked".into()),
            "api",
            t(110),
        )
        .await
        .unwrap();
    assert_eq!(res.outcome, CommandOutcome::Applied, "{res:?}");
    assert_eq!(res.phase.as_deref(), Some("Progressing"));
    assert_eq!(
        s.weights(),
        Some(Weights::canary(10)),
        "slogate's weights back"
    );
    let ops: Vec<String> = s
        .actions()
        .await
        .into_iter()
        .filter(|(k, _)| *k == DecisionKind::Operator)
        .map(|(_, a)| a)
        .collect();
    assert_eq!(ops, ["resume"]);
}

#[tokio::test]
async fn a_replica_that_is_not_the_leader_writes_nothing() {
    let s = Setup::new();
    let (signal, leadership) = leadership_channel();
    let mut deps = s.deps(Arc::new(s.git()));
    deps.leadership = leadership;
    let c = RolloutController::new(s.rollout(), deps);
    let r = reconcile(&c, 0).await;
    assert!(!r.leader);
    assert_eq!(r.phase(), PhaseName::Pending);
    assert_eq!(s.weights(), None, "no weights written");
    assert_eq!(s.metrics.queries(), 0);
    assert!(s
        .store()
        .get("rollout/shop/checkout")
        .await
        .unwrap()
        .is_none());
    assert!(s.actions().await.is_empty());
    // A command is queued, not applied.
    let res = c
        .submit(CommandAction::Pause, "bob", None, "api", t(1))
        .await
        .unwrap();
    assert_eq!(res.outcome, CommandOutcome::Queued);
    assert!(s
        .store()
        .get("rollout/shop/checkout")
        .await
        .unwrap()
        .is_none());
    assert!(s.registry.encode().unwrap().contains("slogate_leader 0"));

    signal.grant_forever();
    let r = reconcile(&c, 5).await;
    assert!(r.leader);
    assert_eq!(r.phase(), PhaseName::Progressing);
    assert_eq!(s.weights(), Some(Weights::canary(10)));
    // The queued pause was refused (nothing to pause when it was handled) or applied; either
    // way it was handled once, by the leader.
    assert_eq!(r.commands.len(), 1, "{:?}", r.commands);
    signal.revoke();
    s.write_weights(10);
    let r = reconcile(&c, 60).await;
    assert!(!r.leader);
    assert_eq!(step_of(&r), Some(0), "no step taken by a follower");
}

#[tokio::test]
async fn the_guard_freeze_holds_a_new_canary() {
    let s = Setup::new();
    let store = s.store();
    let frozen = serde_json::json!({
        "breach": {
            "id": "b-1", "slo": "checkout-availability", "level": "emergency",
            "budget_consumed": 0.97, "since": "2026-03-01T11:00:00Z"
        }
    });
    store.put("guard/checkout", frozen, None).await.unwrap();
    let c = s.controller();
    let r = reconcile(&c, 0).await;
    assert_eq!(r.phase(), PhaseName::Pending);
    assert!(r.status.reason.contains("frozen"), "{}", r.status.reason);
    assert_eq!(s.weights(), None);
    let v = store.get("guard/checkout").await.unwrap().unwrap();
    store
        .put("guard/checkout", serde_json::json!({}), Some(v.version))
        .await
        .unwrap();
    let r = reconcile(&c, 10).await;
    assert_eq!(r.phase(), PhaseName::Progressing);
}
