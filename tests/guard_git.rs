//! The error-budget guard against a real bare git remote: one revert per breach (also
//! across restarts and racing runs), the freeze with and without an override, unfreezing,
//! notify-only critical burns, and known-good tracking.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use common::git::{kustomization, GitRemote};
use slogate::adapters::git::{GitCli, RepoConfig};
use slogate::adapters::state::FileStore;
use slogate::guard::decide::{AppGuard, Trigger};
use slogate::guard::state::{self as gstate, AppGuardState};
use slogate::model::notify::Notification;
use slogate::model::trailers::{parse_trailers, trailer_values};
use slogate::ports::gitops::RevertOutcome;
use slogate::ports::notify::{Notifier, NotifyError};
use slogate::ports::state::{DecisionQuery, DecisionRecord, StateError, StateStore, Versioned};
use slogate::runtime::guard::{GuardError, GuardRuntime};
use slogate::slo::budget::{Action, BudgetReport, Source};
use slogate::slo::model::Guard;

const PROD: &str = "apps/checkout/overlays/prod/kustomization.yaml";
const PATH: &str = "apps/checkout/overlays/prod";
const SLO: &str = "checkout-availability";

#[derive(Default)]
struct Recorder(Mutex<Vec<Notification>>);

#[async_trait]
impl Notifier for Recorder {
    async fn notify(&self, n: &Notification) -> Result<(), NotifyError> {
        self.0.lock().unwrap().push(n.clone());
        Ok(())
    }
}

/// A notifier that always fails: it must not stop a revert.
struct Broken;

#[async_trait]
impl Notifier for Broken {
    async fn notify(&self, _: &Notification) -> Result<(), NotifyError> {
        Err(NotifyError::Transport {
            notifier: "broken".into(),
            message: "connection refused".into(),
            attempts: 3,
        })
    }
}

fn report(consumed: Option<f64>, burn_5m: Option<f64>) -> BudgetReport {
    BudgetReport {
        id: SLO.into(),
        service: "checkout".into(),
        slo: "availability".into(),
        objective: 0.999,
        period: "30d".into(),
        error_ratio: consumed.map(|c| c * 0.001),
        budget_consumed: consumed,
        budget_remaining: consumed.map(|c| 1.0 - c),
        burn_rates: [("5m".to_string(), burn_5m), ("1h".to_string(), burn_5m)].into(),
        action: Action::None,
        no_data: consumed.is_none(),
        source: Source::Raw,
    }
}

fn t(min: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap() + chrono::Duration::minutes(min)
}

struct Setup {
    remote: GitRemote,
    state_dir: tempfile::TempDir,
    notes: Arc<Recorder>,
    c0: String,
}

impl Setup {
    fn new() -> Self {
        let remote = GitRemote::new();
        let c0 = remote.commit(
            &[
                (PROD, &kustomization("checkout", "v1")),
                (
                    "apps/payments/overlays/prod/kustomization.yaml",
                    &kustomization("payments", "v1"),
                ),
            ],
            "checkout v1",
        );
        Setup {
            remote,
            state_dir: tempfile::tempdir().unwrap(),
            notes: Arc::new(Recorder::default()),
            c0,
        }
    }

    /// A guard "process": its own git work dir, the shared state directory.
    fn guard(&self, name: &str, rollback_on_critical: bool) -> GuardRuntime {
        let app = AppGuard {
            app: "checkout".into(),
            path: PATH.into(),
            slos: vec![SLO.into()],
            thresholds: Guard {
                rollback_on_critical,
                ..Guard::default()
            },
            soak: Duration::from_secs(600),
            verify: Default::default(),
        };
        let repo = GitCli::new(RepoConfig::new(
            self.remote.url(),
            "main",
            self.remote.workdir(name),
        ))
        .unwrap();
        GuardRuntime::new(
            vec![app],
            Arc::new(FileStore::open(self.state_dir.path()).unwrap()),
            Arc::new(repo),
            HashMap::new(),
            vec![self.notes.clone(), Arc::new(Broken)],
        )
    }

    fn reverts(&self) -> Vec<(String, BTreeMap<String, Vec<String>>)> {
        self.remote
            .log()
            .into_iter()
            .filter_map(|(sha, msg)| {
                let tr = parse_trailers(&msg);
                if trailer_values(&tr, "Slogate-Breach").is_empty() {
                    return None;
                }
                let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
                for t in tr {
                    m.entry(t.key).or_default().push(t.value);
                }
                Some((sha, m))
            })
            .collect()
    }

    async fn state(&self) -> AppGuardState {
        let store = FileStore::open(self.state_dir.path()).unwrap();
        let v = store.get(&gstate::key("checkout")).await.unwrap().unwrap();
        serde_json::from_value(v.value).unwrap()
    }

    async fn actions(&self) -> Vec<String> {
        let store = FileStore::open(self.state_dir.path()).unwrap();
        store
            .decisions(&DecisionQuery::default())
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.action)
            .collect()
    }
}

async fn known_good(s: &Setup, g: &GuardRuntime) {
    g.mark_known_good("checkout", &s.c0, "rollout", t(0))
        .await
        .unwrap();
}

#[tokio::test]
async fn emergency_reverts_once_with_trailers_and_a_repeat_does_nothing() {
    let s = Setup::new();
    let metrics = slogate::runtime::metrics::Metrics::default();
    let g = s.guard("a", false).with_metrics(metrics.guard.clone());
    known_good(&s, &g).await;
    let exported = || metrics.encode().unwrap();
    let bad = s
        .remote
        .commit(&[(PROD, &kustomization("checkout", "v2"))], "checkout v2");
    // Another app's commit is never touched.
    s.remote.commit(
        &[(
            "apps/payments/overlays/prod/kustomization.yaml",
            &kustomization("payments", "v2"),
        )],
        "payments v2",
    );

    let r = g
        .run_app(
            "checkout",
            &[report(Some(0.963), Some(30.0))],
            Trigger::Schedule,
            t(1),
        )
        .await
        .unwrap();
    assert!(r.frozen);
    assert!(
        matches!(&r.reverts[..], [RevertOutcome::Reverted { reverted, .. }] if reverted == &vec![bad.clone()])
    );
    let reverts = s.reverts();
    assert_eq!(reverts.len(), 1);
    let tr = &reverts[0].1;
    assert_eq!(tr["Slogate-Reverts"], vec![bad.clone()]);
    assert_eq!(tr["Slogate-SLO"], vec![SLO.to_string()]);
    assert_eq!(tr["Slogate-Budget-Consumed"], vec!["0.963".to_string()]);
    assert!(tr["Slogate-Reason"][0].contains("96.3%"), "{tr:?}");
    assert_eq!(s.remote.show(PROD), kustomization("checkout", "v1"));
    assert!(s
        .remote
        .show("apps/payments/overlays/prod/kustomization.yaml")
        .contains("v2"));

    // The same breach seen again (schedule, then an alert): nothing more is reverted.
    g.run_app(
        "checkout",
        &[report(Some(0.97), Some(30.0))],
        Trigger::Schedule,
        t(6),
    )
    .await
    .unwrap();
    let alert = Trigger::Alert {
        alertname: "SLOErrorBudgetBurn".into(),
        fingerprint: "abc".into(),
    };
    g.run_app("checkout", &[report(Some(0.97), Some(30.0))], alert, t(7))
        .await
        .unwrap();
    assert_eq!(s.reverts().len(), 1);
    // The dashboards' series: frozen, and exactly one revert counted.
    let text = exported();
    assert!(
        text.contains("slogate_guard_frozen{app=\"checkout\"} 1"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "slogate_guard_rollbacks_total{{app=\"checkout\",slo=\"{SLO}\"}} 1"
        )),
        "{text}"
    );
    let actions = s.actions().await;
    assert_eq!(
        actions.iter().filter(|a| *a == "rollback").count(),
        1,
        "{actions:?}"
    );
    // Notified once for the revert despite a failing second notifier.
    let notes = s.notes.0.lock().unwrap();
    assert_eq!(
        notes
            .iter()
            .filter(|n| n.title.contains("rollback"))
            .count(),
        1,
        "{notes:?}"
    );
    assert_eq!(notes[0].fields["budget_consumed"], "0.963");
}

#[tokio::test]
async fn racing_runs_from_two_processes_revert_once() {
    let s = Setup::new();
    let a = s.guard("a", false);
    let b = s.guard("b", false);
    known_good(&s, &a).await;
    s.remote
        .commit(&[(PROD, &kustomization("checkout", "v2"))], "checkout v2");
    let reports = [report(Some(0.99), Some(40.0))];
    let alert = Trigger::Alert {
        alertname: "SLOErrorBudgetBurn".into(),
        fingerprint: "f1".into(),
    };
    let (ra, rb) = tokio::join!(
        a.run_app("checkout", &reports, Trigger::Schedule, t(1)),
        b.run_app("checkout", &reports, alert, t(1)),
    );
    ra.unwrap();
    rb.unwrap();
    assert_eq!(s.reverts().len(), 1, "{:?}", s.remote.log());
    assert_eq!(
        s.actions()
            .await
            .iter()
            .filter(|a| *a == "rollback")
            .count(),
        1
    );
}

#[tokio::test]
async fn a_restart_between_decision_and_push_or_after_push_reverts_once() {
    let s = Setup::new();
    let g = s.guard("a", false);
    known_good(&s, &g).await;
    let bad = s
        .remote
        .commit(&[(PROD, &kustomization("checkout", "v2"))], "checkout v2");
    g.run_app(
        "checkout",
        &[report(Some(0.96), Some(30.0))],
        Trigger::Schedule,
        t(1),
    )
    .await
    .unwrap();
    assert_eq!(s.reverts().len(), 1);

    // Crash after the push, before the outcome was stored: forget the outcome.
    let store = FileStore::open(s.state_dir.path()).unwrap();
    let v = store.get(&gstate::key("checkout")).await.unwrap().unwrap();
    let mut st: AppGuardState = serde_json::from_value(v.value).unwrap();
    let breach_id = st.breach.as_ref().unwrap().id.clone();
    st.breach.as_mut().unwrap().reverts[0].outcome = None;
    st.breach.as_mut().unwrap().reverts[0].sha = None;
    store
        .put(
            &gstate::key("checkout"),
            serde_json::to_value(&st).unwrap(),
            Some(v.version),
        )
        .await
        .unwrap();

    // A new process (fresh work dir) resumes: it finds the pushed revert by its breach id.
    let g2 = s.guard("restarted", false);
    let r = g2
        .run_app(
            "checkout",
            &[report(Some(0.96), Some(30.0))],
            Trigger::Schedule,
            t(6),
        )
        .await
        .unwrap();
    assert!(
        matches!(&r.reverts[..], [RevertOutcome::AlreadyReverted { .. }]),
        "{r:?}"
    );
    assert_eq!(s.reverts().len(), 1);
    let st = s.state().await;
    assert_eq!(st.breach.as_ref().unwrap().id, breach_id);
    assert_eq!(
        st.breach.as_ref().unwrap().reverts[0].outcome.as_deref(),
        Some("already_reverted")
    );
    assert_eq!(s.reverts()[0].1["Slogate-Reverts"], vec![bad]);
}

#[tokio::test]
async fn a_crash_before_the_push_is_finished_by_the_next_run() {
    let s = Setup::new();
    let g = s.guard("a", false);
    known_good(&s, &g).await;
    let bad = s
        .remote
        .commit(&[(PROD, &kustomization("checkout", "v2"))], "checkout v2");
    // The decision was stored, then the process died before reverting: write that state.
    let app = g.apps()[0].clone();
    let (state, version) = g.state("checkout").await.unwrap();
    let commits = vec![];
    let reports = [report(Some(0.96), Some(30.0))];
    let d = slogate::guard::decide::decide(
        &app,
        &state,
        &slogate::guard::decide::Observation {
            reports: &reports,
            commits: &commits,
            trigger: Trigger::Schedule,
            deploys: &[],
            pages: &[],
        },
        t(1),
    );
    let store = FileStore::open(s.state_dir.path()).unwrap();
    store
        .put(
            &gstate::key("checkout"),
            serde_json::to_value(&d.next).unwrap(),
            version,
        )
        .await
        .unwrap();
    assert!(s.reverts().is_empty());

    let g2 = s.guard("restarted", false);
    g2.run_app("checkout", &reports, Trigger::Schedule, t(6))
        .await
        .unwrap();
    g2.run_app("checkout", &reports, Trigger::Schedule, t(11))
        .await
        .unwrap();
    let reverts = s.reverts();
    assert_eq!(reverts.len(), 1);
    assert_eq!(
        reverts[0].1["Slogate-Breach"],
        vec![d.next.breach.unwrap().id]
    );
    assert_eq!(reverts[0].1["Slogate-Reverts"], vec![bad]);
}

#[tokio::test]
async fn freeze_reverts_each_new_deploy_once_and_lets_overrides_through() {
    let s = Setup::new();
    let g = s.guard("a", false);
    known_good(&s, &g).await;
    s.remote
        .commit(&[(PROD, &kustomization("checkout", "v2"))], "checkout v2");
    let hot = [report(Some(0.97), Some(5.0))];
    g.run_app("checkout", &hot, Trigger::Schedule, t(1))
        .await
        .unwrap();
    assert_eq!(s.reverts().len(), 1);

    // A deploy during the freeze is reverted, once.
    let d3 = s
        .remote
        .commit(&[(PROD, &kustomization("checkout", "v3"))], "checkout v3");
    g.run_app("checkout", &hot, Trigger::Schedule, t(6))
        .await
        .unwrap();
    g.run_app("checkout", &hot, Trigger::Schedule, t(11))
        .await
        .unwrap();
    let reverts = s.reverts();
    assert_eq!(reverts.len(), 2, "{:?}", s.remote.log());
    assert_eq!(reverts[0].1["Slogate-Reverts"], vec![d3]);
    assert_eq!(s.remote.show(PROD), kustomization("checkout", "v1"));

    // A hotfix with the override trailer is let through and logged.
    let hotfix = s.remote.commit(
        &[(PROD, &kustomization("checkout", "v1-hotfix"))],
        "checkout hotfix\n\nSlogate-Override: INC-42 hotfix approved by on-call",
    );
    g.run_app("checkout", &hot, Trigger::Schedule, t(16))
        .await
        .unwrap();
    assert_eq!(s.reverts().len(), 2);
    assert_eq!(s.remote.show(PROD), kustomization("checkout", "v1-hotfix"));
    let st = s.state().await;
    assert_eq!(
        st.breach.as_ref().unwrap().base.as_deref(),
        Some(hotfix.as_str())
    );

    // A deploy after the hotfix, without an override: reverted back to the hotfix.
    s.remote
        .commit(&[(PROD, &kustomization("checkout", "v4"))], "checkout v4");
    g.run_app("checkout", &hot, Trigger::Schedule, t(21))
        .await
        .unwrap();
    assert_eq!(s.reverts().len(), 3);
    assert_eq!(s.remote.show(PROD), kustomization("checkout", "v1-hotfix"));

    // An override through the API lets the next deploy through.
    s.remote
        .commit(&[(PROD, &kustomization("checkout", "v5"))], "checkout v5");
    assert!(g
        .override_freeze("checkout", "customer demo", "alice", t(22))
        .await
        .unwrap());
    g.run_app("checkout", &hot, Trigger::Schedule, t(26))
        .await
        .unwrap();
    assert_eq!(s.reverts().len(), 3);
    assert_eq!(s.remote.show(PROD), kustomization("checkout", "v5"));

    let actions = s.actions().await;
    assert_eq!(
        actions.iter().filter(|a| *a == "freeze-revert").count(),
        2,
        "{actions:?}"
    );
    assert_eq!(
        actions.iter().filter(|a| *a == "override").count(),
        3,
        "{actions:?}"
    );

    // Recovery ends the freeze; later deploys are left alone.
    g.run_app(
        "checkout",
        &[report(Some(0.5), Some(0.5))],
        Trigger::Schedule,
        t(31),
    )
    .await
    .unwrap();
    assert!(!s.state().await.frozen());
    s.remote
        .commit(&[(PROD, &kustomization("checkout", "v6"))], "checkout v6");
    g.run_app(
        "checkout",
        &[report(Some(0.5), Some(0.5))],
        Trigger::Schedule,
        t(36),
    )
    .await
    .unwrap();
    assert_eq!(s.reverts().len(), 3);
    assert!(s.actions().await.contains(&"unfreeze".to_string()));
}

#[tokio::test]
async fn critical_notifies_once_unless_rollback_on_critical() {
    let s = Setup::new();
    let g = s.guard("a", false);
    known_good(&s, &g).await;
    s.remote
        .commit(&[(PROD, &kustomization("checkout", "v2"))], "checkout v2");
    for m in [1, 6, 11] {
        g.run_app(
            "checkout",
            &[report(Some(0.85), Some(3.0))],
            Trigger::Schedule,
            t(m),
        )
        .await
        .unwrap();
    }
    assert!(s.reverts().is_empty());
    assert!(!s.state().await.frozen());
    let notes: Vec<_> = s
        .notes
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|n| n.title.clone())
        .collect();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(notes[0].contains("critical"));

    // The same budget with rollback_on_critical reverts.
    let g2 = s.guard("b", true);
    g2.run_app(
        "checkout",
        &[report(Some(0.85), Some(3.0))],
        Trigger::Schedule,
        t(16),
    )
    .await
    .unwrap();
    assert_eq!(s.reverts().len(), 1);
}

#[tokio::test]
async fn no_data_neither_reverts_nor_unfreezes() {
    let s = Setup::new();
    let g = s.guard("a", false);
    known_good(&s, &g).await;
    s.remote
        .commit(&[(PROD, &kustomization("checkout", "v2"))], "checkout v2");
    g.run_app("checkout", &[report(None, None)], Trigger::Schedule, t(1))
        .await
        .unwrap();
    assert!(s.reverts().is_empty());
    g.run_app(
        "checkout",
        &[report(Some(0.99), Some(9.0))],
        Trigger::Schedule,
        t(2),
    )
    .await
    .unwrap();
    assert!(s.state().await.frozen());
    g.run_app("checkout", &[report(None, None)], Trigger::Schedule, t(3))
        .await
        .unwrap();
    assert!(s.state().await.frozen(), "no data must not end a freeze");
}

#[tokio::test]
async fn a_deploy_becomes_known_good_after_a_clean_soak() {
    let s = Setup::new();
    let g = s.guard("a", false);
    let c1 = s
        .remote
        .commit(&[(PROD, &kustomization("checkout", "v2"))], "checkout v2");
    let calm = [report(Some(0.1), Some(0.5))];
    g.run_app("checkout", &calm, Trigger::Schedule, t(0))
        .await
        .unwrap();
    assert!(s.state().await.known_good.is_none());
    // A burn of 2 during the soak restarts it.
    g.run_app(
        "checkout",
        &[report(Some(0.1), Some(2.0))],
        Trigger::Schedule,
        t(5),
    )
    .await
    .unwrap();
    g.run_app("checkout", &calm, Trigger::Schedule, t(14))
        .await
        .unwrap();
    assert!(
        s.state().await.known_good.is_none(),
        "soak restarted at +5m, 10m not over at +14m"
    );
    g.run_app("checkout", &calm, Trigger::Schedule, t(15))
        .await
        .unwrap();
    let kg = s.state().await.known_good.unwrap();
    assert_eq!((kg.sha.as_str(), kg.how.as_str()), (c1.as_str(), "soak"));

    // A breach now reverts only what came after the known-good commit.
    let c2 = s
        .remote
        .commit(&[(PROD, &kustomization("checkout", "v3"))], "checkout v3");
    let c3 = s
        .remote
        .commit(&[(PROD, &kustomization("checkout", "v4"))], "checkout v4");
    g.run_app(
        "checkout",
        &[report(Some(0.96), Some(20.0))],
        Trigger::Schedule,
        t(20),
    )
    .await
    .unwrap();
    let r = s.reverts();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].1["Slogate-Reverts"], vec![c3, c2]);
    assert_eq!(s.remote.show(PROD), kustomization("checkout", "v2"));
}

#[tokio::test]
async fn slogate_decisions_prints_the_log_with_numbers_and_shas() {
    let s = Setup::new();
    let g = s.guard("a", false);
    known_good(&s, &g).await;
    let bad = s
        .remote
        .commit(&[(PROD, &kustomization("checkout", "v2"))], "checkout v2");
    g.run_app(
        "checkout",
        &[report(Some(0.963), Some(30.0))],
        Trigger::Schedule,
        t(1),
    )
    .await
    .unwrap();
    let revert = s.reverts()[0].0.clone();
    let dir = s.state_dir.path().to_str().unwrap().to_string();

    let out = common::slogate()
        .args([
            "decisions",
            "--state-dir",
            &dir,
            "--kind",
            "guard",
            "-o",
            "json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let recs = v.as_array().unwrap();
    let actions: Vec<&str> = recs.iter().map(|r| r["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["rollback", "rollback-result"]);
    assert_eq!(recs[0]["observed"]["slos"][0]["budget_consumed"], 0.963);
    assert_eq!(recs[0]["commits"][0], s.c0.as_str(), "the known-good base");
    let result_commits: Vec<&str> = recs[1]["commits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(result_commits, [revert.as_str(), bad.as_str()]);
    assert_eq!(recs[1]["outcome"], "reverted");

    let table = common::run_ok(common::slogate().args([
        "decisions",
        "--state-dir",
        &dir,
        "--subject",
        "checkout",
    ]));
    assert!(
        table.contains("rollback") && table.contains("96.3%") && table.contains(&revert[..12]),
        "{table}"
    );

    // Bad input: exit 2 with the flag named.
    let out = common::slogate()
        .args(["decisions", "--state-dir", "/nonexistent/slogate"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--state-dir /nonexistent/slogate"));
    let out = common::slogate().args(["decisions"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// A store on which every write of a guard state loses the compare-and-swap.
struct AlwaysChanged(FileStore);

#[async_trait]
impl StateStore for AlwaysChanged {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StateError> {
        self.0.get(key).await
    }
    async fn put(
        &self,
        key: &str,
        value: serde_json::Value,
        expected: Option<u64>,
    ) -> Result<u64, StateError> {
        if key.starts_with("guard/") {
            return Err(StateError::Conflict {
                key: key.into(),
                expected,
                found: Some(expected.unwrap_or(0) + 1),
            });
        }
        self.0.put(key, value, expected).await
    }
    async fn delete(&self, key: &str, expected: u64) -> Result<(), StateError> {
        self.0.delete(key, expected).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StateError> {
        self.0.list(prefix).await
    }
    async fn append_decision(&self, record: &DecisionRecord) -> Result<(), StateError> {
        self.0.append_decision(record).await
    }
    async fn decisions(&self, query: &DecisionQuery) -> Result<Vec<DecisionRecord>, StateError> {
        self.0.decisions(query).await
    }
}

/// A guard state that keeps changing under the guard: it gives up with the message printed
/// before, and the last conflict is the error's source.
#[tokio::test]
async fn a_contended_state_gives_up_and_keeps_the_last_conflict() {
    let s = Setup::new();
    let app = AppGuard {
        app: "checkout".into(),
        path: PATH.into(),
        slos: vec![SLO.into()],
        thresholds: Guard::default(),
        soak: Duration::from_secs(600),
        verify: Default::default(),
    };
    let repo = GitCli::new(RepoConfig::new(
        s.remote.url(),
        "main",
        s.remote.workdir("a"),
    ))
    .unwrap();
    let g = GuardRuntime::new(
        vec![app],
        Arc::new(AlwaysChanged(FileStore::open(s.state_dir.path()).unwrap())),
        Arc::new(repo),
        HashMap::new(),
        vec![],
    );
    let err = g
        .mark_known_good("checkout", &s.c0, "rollout", t(0))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "guard state of `checkout` kept changing concurrently; gave up"
    );
    assert_eq!(err.metric_label(), "contended");
    let GuardError::Contended { app, source } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(app, "checkout");
    assert!(
        matches!(source, StateError::Conflict { key, .. } if key == "guard/checkout"),
        "{source:?}"
    );
}
