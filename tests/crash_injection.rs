//! Crash injection: the real `slogate` binary (a debug build: failpoints exist only there,
//! see `src/runtime/failpoint.rs`) is killed with SIGKILL at every failpoint of
//! [`failpoint::ALL`] in turn (`SLOGATE_FAILPOINTS=<name>[@<hit>]`), then run again without
//! failpoints, and the outcome is checked on the real bare git remote and the file state
//! store against an uninterrupted run of the same scenario:
//!
//! - **guard** (`slogate run --once`, a real Prometheus whose history burns the budget, a
//!   bad deploy on the remote, a notifier and an Argo CD sync target that both fail):
//!   exactly one revert commit for the breach (no double revert), the bad deploy undone,
//!   the breach's revert stored with that commit's sha, and every decision record of the
//!   uninterrupted run present (none lost);
//! - **rollouts** (`slogate run`, Rollout and versions files, the file router): a healthy
//!   canary walks the same weights as the uninterrupted run (it resumes at the step it was
//!   at: never back to an earlier one, never skipping one) and ends Succeeded with exactly
//!   one promotion commit; a failing canary ends Failed with exactly one revert commit and
//!   weights back on stable; every decision record of the uninterrupted run present;
//! - **promote and approve** (`slogate promote` / `slogate approve` with `--state-dir`):
//!   running the same command again gives exactly one promotion commit (one approval) and
//!   its decision record.
//!
//! A failpoint of `ALL` that no run reaches fails the test (the marker line
//! `slogate failpoint hit: <name>` must be on the killed process's stderr, and the process
//! must have died of SIGKILL), so the list cannot rot. The test prints
//! `failpoints tried: N, double actions: D`, which `scripts/reliability` reads.
//!
//! Needs Prometheus and promtool (Debian's packages); FAILS without them unless
//! `SLOGATE_E2E=0`.

mod common;

use std::collections::BTreeSet;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::daemon::{port, remote_with_bad_deploy, Burning, PROD};
use common::git::{git, kustomization, GitRemote};
use common::{free_port, slogate};
use serde_json::Value;
use slogate::adapters::state::FileStore;
use slogate::model::trailers::{parse_trailers, trailer_values};
use slogate::ports::state::{DecisionQuery, StateStore};
use slogate::runtime::failpoint::{self, marker, ENV};

/// What the runs found, over every scenario.
#[derive(Default)]
struct Tally {
    /// Failpoints whose marker was seen on a killed process.
    hit: BTreeSet<String>,
    /// Crash runs (a failpoint spec each).
    tried: usize,
    /// Git or state actions found more than once where one was due.
    double_actions: usize,
    /// Everything that went wrong, with the failpoint it followed.
    problems: Vec<String>,
}

impl Tally {
    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.problems.push(what());
        }
    }

    /// `n` actions found where exactly one was due.
    fn once(&mut self, spec: &str, what: &str, n: usize) {
        if n > 1 {
            self.double_actions += n - 1;
        }
        self.check(n == 1, || {
            format!("{spec}: {n} {what}, expected exactly one")
        });
    }

    fn merge(&mut self, o: Tally) {
        self.hit.extend(o.hit);
        self.tried += o.tried;
        self.double_actions += o.double_actions;
        self.problems.extend(o.problems);
    }
}

/// The failpoint name of a spec (`name@N`).
fn name_of(spec: &str) -> &str {
    spec.split('@').next().unwrap_or(spec)
}

/// Whether a finished process died of SIGKILL after writing the marker of `spec`.
fn killed_at(t: &mut Tally, spec: &str, status: std::process::ExitStatus, stderr: &str) -> bool {
    t.tried += 1;
    let name = name_of(spec);
    let marked = stderr.contains(&marker(name));
    let killed = status.signal() == Some(SIGKILL);
    if marked && killed {
        t.hit.insert(name.to_string());
        true
    } else {
        t.problems.push(format!(
            "{spec}: not reached or not killed (exit {status}, marker seen: {marked}):\n{}",
            tail(stderr)
        ));
        false
    }
}

const SIGKILL: i32 = 9;

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// The decision log of a state directory: (subject, action, commits) in order.
fn decisions(state: &Path) -> Vec<(String, String, Vec<String>)> {
    let store = FileStore::open(state).unwrap();
    block_on(store.decisions(&DecisionQuery::default()))
        .unwrap_or_default()
        .into_iter()
        .map(|r| (r.subject, r.action, r.commits))
        .collect()
}

fn actions(state: &Path) -> BTreeSet<String> {
    decisions(state).into_iter().map(|(_, a, _)| a).collect()
}

/// A state document's value (file store layout: `docs/<key>.json`).
fn doc(state: &Path, key: &str) -> Option<Value> {
    let store = FileStore::open(state).unwrap();
    block_on(store.get(key)).ok().flatten().map(|v| v.value)
}

/// Commits of the remote with a non-empty `trailer`, newest first: (sha, value).
fn with_trailer(remote: &GitRemote, trailer: &str) -> Vec<(String, String)> {
    remote
        .log()
        .into_iter()
        .filter_map(|(sha, msg)| {
            let t = parse_trailers(&msg);
            trailer_values(&t, trailer)
                .first()
                .map(|v| (sha.clone(), v.to_string()))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Guard
// ---------------------------------------------------------------------------------------

/// The guard's failpoints, in the order a breach reaches them: the decision stored, its
/// record, the revert, its outcome stored, the result record, the sync request, the
/// notification.
const GUARD: &[&str] = &[
    "guard.state.before",
    "guard.state.after",
    "effect.record.before",
    "effect.record.after",
    "effect.revert.before",
    "effect.revert.after",
    "guard.state.before@2",
    "guard.state.after@2",
    "effect.record.before@2",
    "effect.record.after@2",
    "effect.sync.before",
    "effect.sync.after",
    "effect.notify.before",
    "effect.notify.after",
];

/// Runs `cmd` with the failpoint `spec` armed (none: disarmed): its exit status and its
/// stdout followed by its stderr.
fn armed(cmd: &mut Command, spec: Option<&str>) -> (std::process::ExitStatus, String) {
    if let Some(s) = spec {
        cmd.env(ENV, s);
    }
    let out = cmd.output().expect("run slogate");
    (
        out.status,
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// `slogate run --once` for one guard case; `spec` arms a failpoint.
fn guard_once(dir: &Path, config: &str, spec: Option<&str>) -> (std::process::ExitStatus, String) {
    let path = dir.join("slogate.yaml");
    std::fs::write(&path, config).unwrap();
    let mut cmd = slogate();
    cmd.args(["run", "--once", "--config"])
        .arg(&path)
        .env("SLOGATE_LOG", "info")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove(ENV);
    armed(&mut cmd, spec)
}

/// A fresh guard case: a remote with a bad deploy and a daemon config for it.
fn guard_case(b: &Burning, dir: &Path) -> (GitRemote, String, PathBuf, String) {
    std::fs::create_dir_all(dir).unwrap();
    let (remote, bad) = remote_with_bad_deploy();
    let state = dir.join("state");
    let argocd_token = dir.join("argocd-token");
    std::fs::write(&argocd_token, "argocd-token-for-the-test").unwrap();
    // A notifier and an Argo CD that refuse connections: the effects are attempted (their
    // failpoints reached) and fail fast; their failures never block the guard.
    let extra = format!(
        "gitops:\n  url: {url}\n  workdir: {work}\nnotifications:\n  - type: webhook\n    url: http://127.0.0.1:{closed}/hook\n    max_attempts: 1\n    timeout: 1s\nargocd:\n  server: http://127.0.0.1:{closed}\n  token_file: {token}\n  timeout: 1s\n",
        url = remote.url(),
        work = dir.join("repo").display(),
        closed = free_port(),
        token = argocd_token.display(),
    );
    let config = b.config(port(), &state, &extra).replace(
        "      slos: [checkout-availability]\n",
        "      slos: [checkout-availability]\n      argocd: {name: checkout}\n",
    );
    (remote, bad, state, config)
}

/// The outcome of a guard case after its runs: one revert of the bad deploy, stored in the
/// breach, and the decision records of `baseline` (an uninterrupted run's actions).
fn check_guard(
    t: &mut Tally,
    spec: &str,
    remote: &GitRemote,
    bad: &str,
    state: &Path,
    baseline: &BTreeSet<String>,
) {
    let reverts = with_trailer(remote, "Slogate-Breach");
    t.once(spec, "revert commits for the breach", reverts.len());
    let Some((revert_sha, _)) = reverts.first() else {
        return;
    };
    let reverted: Vec<String> = remote
        .log()
        .into_iter()
        .find(|(sha, _)| sha == revert_sha)
        .map(|(_, msg)| {
            trailer_values(&parse_trailers(&msg), "Slogate-Reverts")
                .into_iter()
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    t.check(reverted == vec![bad.to_string()], || {
        format!("{spec}: the revert names {reverted:?}, not the bad deploy {bad}")
    });
    t.check(remote.show(PROD) == kustomization("checkout", "v1"), || {
        format!("{spec}: the bad deploy is still on the branch")
    });
    let guard = doc(state, "guard/checkout").unwrap_or(Value::Null);
    let stored = &guard["breach"]["reverts"][0];
    let outcome = stored["outcome"].as_str().unwrap_or("");
    t.check(
        matches!(outcome, "reverted" | "already_reverted")
            && stored["sha"].as_str() == Some(revert_sha.as_str()),
        || format!("{spec}: the stored breach does not hold the revert {revert_sha}: {guard}"),
    );
    let log = decisions(state);
    let seen: BTreeSet<String> = log.iter().map(|(_, a, _)| a.clone()).collect();
    let lost: Vec<&String> = baseline.difference(&seen).collect();
    t.check(lost.is_empty(), || {
        format!("{spec}: decision records lost: {lost:?} (log: {log:?})")
    });
    t.check(
        log.iter()
            .any(|(_, a, c)| a == "rollback-result" && c.contains(revert_sha)),
        || format!("{spec}: no rollback-result record naming {revert_sha}: {log:?}"),
    );
}

fn guard_scenarios(b: &Burning, root: &Path) -> Tally {
    let mut t = Tally::default();
    // The uninterrupted run: what every crashed one must end with.
    let dir = root.join("guard-baseline");
    let (remote, bad, state, config) = guard_case(b, &dir);
    let (status, out) = guard_once(&dir, &config, None);
    assert!(status.success(), "uninterrupted guard run: {out}");
    let baseline = actions(&state);
    assert!(
        baseline.contains("rollback") && baseline.contains("rollback-result"),
        "{baseline:?}"
    );
    let mut clean = Tally::default();
    check_guard(&mut clean, "baseline", &remote, &bad, &state, &baseline);
    assert!(clean.problems.is_empty(), "{:?}", clean.problems);

    for (i, spec) in GUARD.iter().enumerate() {
        let dir = root.join(format!("guard-{i}"));
        let (remote, bad, state, config) = guard_case(b, &dir);
        let (status, out) = guard_once(&dir, &config, Some(spec));
        if !killed_at(&mut t, spec, status, &out) {
            continue;
        }
        let (status, out) = guard_once(&dir, &config, None);
        t.check(status.success(), || {
            format!("{spec}: the run after the crash failed: {}", tail(&out))
        });
        check_guard(&mut t, spec, &remote, &bad, &state, &baseline);
    }
    t
}

// ---------------------------------------------------------------------------------------
// Rollouts
// ---------------------------------------------------------------------------------------

const HEALTHY: &str = r#"apiVersion: slogate.dev/v1alpha1
kind: Rollout
metadata: {name: checkout, namespace: shop}
spec:
  traffic:
    httpRoute: {name: checkout, stableBackend: {name: checkout}, canaryBackend: {name: checkout-canary}}
  workloads: {stable: {name: checkout}, canary: {name: checkout-canary}}
  steps: [20, 50, 100]
  interval: 1s
  progressDeadline: 5m
  analysis:
    metrics:
      - {name: canary-success-rate, query: "vector(1)", min: 0.99}
  gitops: {app: checkout, path: apps/checkout/overlays/prod}
"#;

/// Fails every interval: aborted after the second.
const FAILING: &str = r#"apiVersion: slogate.dev/v1alpha1
kind: Rollout
metadata: {name: checkout, namespace: shop}
spec:
  traffic:
    httpRoute: {name: checkout, stableBackend: {name: checkout}, canaryBackend: {name: checkout-canary}}
  workloads: {stable: {name: checkout}, canary: {name: checkout-canary}}
  steps: [50, 100]
  interval: 1s
  failureLimit: 1
  progressDeadline: 5m
  analysis:
    metrics:
      - {name: canary-success-rate, query: "vector(0.5)", min: 0.99}
  gitops: {app: checkout, path: apps/checkout/overlays/prod}
"#;

/// The healthy rollout's failpoints: statuses stored (the start, a weights confirmation,
/// later steps), weight writes, decision records, the promotion commit, the notification.
const ROLLOUT_HEALTHY: &[&str] = &[
    "rollout.state.before",
    "rollout.state.after",
    "rollout.state.before@3",
    "rollout.state.after@3",
    "rollout.state.after@6",
    "effect.set_weights.before",
    "effect.set_weights.after",
    "effect.set_weights.before@2",
    "effect.set_weights.after@3",
    "effect.record.before",
    "effect.record.after",
    "effect.record.after@3",
    "effect.commit_edit.before",
    "effect.commit_edit.after",
    "effect.notify.before",
    "effect.notify.after",
];

/// The failing rollout's: the revert of the canary commit, the weights back to stable, the
/// abort stored and recorded.
const ROLLOUT_FAILING: &[&str] = &[
    "effect.revert.before",
    "effect.revert.after",
    "effect.set_weights.after@2",
    "rollout.state.after@4",
    "effect.notify.before",
    "effect.record.after@2",
];

struct RolloutCase {
    dir: PathBuf,
    remote: GitRemote,
    config: String,
    failing: bool,
}

impl RolloutCase {
    fn new(b: &Burning, dir: &Path, failing: bool) -> RolloutCase {
        std::fs::create_dir_all(dir).unwrap();
        let remote = if failing {
            remote_with_bad_deploy().0
        } else {
            let r = GitRemote::new();
            r.commit(&[(PROD, &kustomization("checkout", "v1"))], "checkout v1");
            r
        };
        let gitops = format!(
            "gitops:\n  url: {}\n  workdir: {}\nnotifications:\n  - type: webhook\n    url: http://127.0.0.1:{}/hook\n    max_attempts: 1\n    timeout: 1s\n",
            remote.url(),
            dir.join("repo").display(),
            free_port(),
        );
        let config = b.rollout_config(
            dir,
            "shop",
            if failing { FAILING } else { HEALTHY },
            "file",
            &gitops,
        );
        RolloutCase {
            dir: dir.to_path_buf(),
            remote,
            config,
            failing,
        }
    }

    fn state(&self) -> PathBuf {
        self.dir.join("state")
    }

    fn status(&self) -> Value {
        doc(&self.state(), "rollout/shop/checkout").unwrap_or(Value::Null)
    }

    fn done(&self) -> bool {
        let s = self.status();
        let phase = s["phase"].as_str().unwrap_or("");
        let canary = self.weights().map(|w| w.1);
        let target = if self.failing { "Failed" } else { "Succeeded" };
        phase == target && canary == Some(0) && s["pending"].as_array().is_none_or(Vec::is_empty)
    }

    /// (stable, canary) on the route (the file router's weights file).
    fn weights(&self) -> Option<(u64, u64)> {
        let text = std::fs::read_to_string(self.dir.join("weights/shop/checkout.json")).ok()?;
        let v: Value = serde_json::from_str(&text).ok()?;
        Some((v["stable"].as_u64()?, v["canary"].as_u64()?))
    }

    /// Play Argo CD: once the promotion commit is on the remote, stable runs the canary's
    /// version.
    fn deploy(&self) {
        if !self.failing && !with_trailer(&self.remote, "Slogate-Promotion").is_empty() {
            std::fs::write(
                self.dir.join("versions.yaml"),
                "shop/checkout: {stable: v2, canary: v2}\n",
            )
            .unwrap();
        }
    }

    /// Run `slogate run` until it dies (with a failpoint armed) or the rollout is done (then
    /// SIGTERM: the reconcile in progress finishes). Returns the exit status, the log and
    /// the canary weights seen on the route, consecutive repeats dropped.
    fn run(
        &self,
        name: &str,
        spec: Option<&str>,
        seen: &mut Vec<u64>,
    ) -> (Option<std::process::ExitStatus>, String) {
        let path = self.dir.join(format!("{name}.yaml"));
        std::fs::write(&path, &self.config).unwrap();
        let log = self.dir.join(format!("{name}.log"));
        let mut cmd = slogate();
        cmd.args(["run", "--config"])
            .arg(&path)
            .env("SLOGATE_LOG", "info")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove(ENV)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        if let Some(s) = spec {
            cmd.env(ENV, s);
        }
        let mut child = cmd.spawn().expect("spawn slogate run");
        let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
        // Liveness bounds, not timing assertions.
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut done_since: Option<Instant> = None;
        loop {
            if let Some((_, canary)) = self.weights() {
                if seen.last() != Some(&canary) {
                    seen.push(canary);
                }
            }
            self.deploy();
            if let Ok(Some(status)) = child.try_wait() {
                return (Some(status), read_log());
            }
            if self.done() {
                // The last write (back to stable) may have landed since the read above.
                if let Some((_, canary)) = self.weights() {
                    if seen.last() != Some(&canary) {
                        seen.push(canary);
                    }
                }
                let since = *done_since.get_or_insert_with(Instant::now);
                // With a failpoint armed, give it a moment to be reached after the end.
                if spec.is_none() || since.elapsed() > Duration::from_secs(3) {
                    let _ = Command::new("kill")
                        .args(["-TERM", &child.id().to_string()])
                        .status();
                    let status = child.wait().ok();
                    return (status, read_log());
                }
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return (None, read_log());
            }
            std::thread::sleep(Duration::from_millis(40));
        }
    }
}

fn check_rollout(
    t: &mut Tally,
    spec: &str,
    c: &RolloutCase,
    seen: &[u64],
    baseline: &(Vec<u64>, BTreeSet<String>),
) {
    t.check(c.done(), || {
        format!(
            "{spec}: the rollout did not finish: {} weights {:?}",
            c.status(),
            c.weights()
        )
    });
    t.check(seen == baseline.0.as_slice(), || {
        format!(
            "{spec}: canary weights {seen:?} on the route, the uninterrupted run walked {:?}",
            baseline.0
        )
    });
    if c.failing {
        let reverts = with_trailer(&c.remote, "Slogate-Breach");
        t.once(spec, "revert commits of the canary", reverts.len());
        t.check(
            c.remote.show(PROD) == kustomization("checkout", "v1"),
            || format!("{spec}: the canary commit is still on the branch"),
        );
        let status = c.status();
        t.check(
            reverts.first().map(|r| r.0.as_str()) == status["revertCommit"].as_str(),
            || format!("{spec}: the status names another revert commit: {status}"),
        );
    } else {
        let promotions = with_trailer(&c.remote, "Slogate-Promotion");
        t.once(spec, "promotion commits", promotions.len());
        t.check(with_trailer(&c.remote, "Slogate-Breach").is_empty(), || {
            format!("{spec}: a healthy canary was reverted")
        });
        t.check(
            c.remote.show(PROD) == kustomization("checkout", "v2"),
            || {
                format!(
                    "{spec}: the branch does not run v2: {}",
                    c.remote.show(PROD)
                )
            },
        );
    }
    let seen_actions = actions(&c.state());
    let lost: Vec<&String> = baseline.1.difference(&seen_actions).collect();
    t.check(lost.is_empty(), || {
        format!(
            "{spec}: decision records lost: {lost:?} (log: {:?})",
            decisions(&c.state())
        )
    });
}

fn rollout_scenarios(b: &Burning, root: &Path, failing: bool) -> Tally {
    let mut t = Tally::default();
    let kind = if failing { "failing" } else { "healthy" };
    let c = RolloutCase::new(b, &root.join(format!("rollout-{kind}-baseline")), failing);
    let mut seen = Vec::new();
    let (status, log) = c.run("baseline", None, &mut seen);
    assert!(
        c.done(),
        "uninterrupted {kind} rollout did not finish ({status:?}): {}\n{log}",
        c.status()
    );
    let baseline = (seen, actions(&c.state()));
    let mut clean = Tally::default();
    check_rollout(&mut clean, "baseline", &c, &baseline.0, &baseline);
    assert!(clean.problems.is_empty(), "{:?}", clean.problems);

    let specs = if failing {
        ROLLOUT_FAILING
    } else {
        ROLLOUT_HEALTHY
    };
    for (i, spec) in specs.iter().enumerate() {
        let c = RolloutCase::new(b, &root.join(format!("rollout-{kind}-{i}")), failing);
        let mut seen = Vec::new();
        let (status, log) = c.run("crash", Some(spec), &mut seen);
        let Some(status) = status else {
            t.tried += 1;
            t.problems.push(format!(
                "{spec}: {kind} rollout neither died nor finished:\n{}",
                tail(&log)
            ));
            continue;
        };
        if !killed_at(&mut t, spec, status, &log) {
            continue;
        }
        let (status, log) = c.run("restart", None, &mut seen);
        t.check(status.is_some_and(|s| s.success()), || {
            format!("{spec}: the restarted daemon ({status:?}): {}", tail(&log))
        });
        check_rollout(&mut t, spec, &c, &seen, &baseline);
    }
    t
}

// ---------------------------------------------------------------------------------------
// Promote and approve
// ---------------------------------------------------------------------------------------

const TARGET: &str = "overlays/prod/kustomization.yaml";

const PROMOTE: &[&str] = &[
    "effect.commit_edit.before",
    "effect.commit_edit.after",
    "promote.record.before",
    "promote.record.after",
];

const APPROVE: &[&str] = &[
    "approve.state.before",
    "approve.state.after",
    "approve.record.before",
    "approve.record.after",
];

/// A bare remote with the promote fixture's Kustomize layout.
fn promote_remote() -> GitRemote {
    let r = GitRemote::new();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/promote/repo");
    for rel in [
        "base/kustomization.yaml",
        "base/deployment.yaml",
        "overlays/staging/kustomization.yaml",
        "overlays/prod/kustomization.yaml",
        "overlays/prod/replicas.yaml",
    ] {
        let to = r.dev.join(rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(fixture.join(rel), &to).unwrap();
    }
    git(&r.dev, &["add", "-A"]);
    git(&r.dev, &["commit", "-q", "-m", "initial layout"]);
    git(&r.dev, &["push", "-q", "origin", "main"]);
    r
}

fn cli(args: &[&str], spec: Option<&str>) -> (std::process::ExitStatus, String) {
    let mut cmd = slogate();
    cmd.args(args)
        .env("SLOGATE_LOG", "warn")
        .env_remove("SLOGATE_REPO")
        .env_remove("SLOGATE_PROMETHEUS_URL")
        .env_remove("SLOGATE_ACTOR")
        .env_remove(ENV);
    armed(&mut cmd, spec)
}

fn promote_args<'a>(remote: &'a str, state: &'a str, approval: bool) -> Vec<&'a str> {
    let mut a = vec![
        "promote",
        "--repo",
        remote,
        "--source",
        "overlays/staging",
        "--target",
        "overlays/prod",
        "--no-slo-check",
        "--image",
        "registry.example.com/shop/checkout=v1.6.0",
        "--app",
        "checkout-prod",
        "--state-dir",
        state,
    ];
    if approval {
        a.push("--require-approval");
    }
    a
}

fn approve_args<'a>(remote: &'a str, state: &'a str) -> Vec<&'a str> {
    vec![
        "approve",
        "--repo",
        remote,
        "--target",
        "overlays/prod",
        "--image",
        "registry.example.com/shop/checkout=v1.6.0",
        "--actor",
        "alice",
        "--state-dir",
        state,
    ]
}

/// One promotion commit setting v1.6.0, and a `promote` record naming it.
fn check_promotion(t: &mut Tally, spec: &str, remote: &GitRemote, state: &Path) {
    let promotions: Vec<_> = with_trailer(remote, "Slogate-Promote-To")
        .into_iter()
        .filter(|(_, to)| to.contains("v1.6.0"))
        .collect();
    t.once(spec, "promotion commits", promotions.len());
    t.check(remote.show(TARGET).contains("v1.6.0"), || {
        format!("{spec}: the target does not name v1.6.0")
    });
    let log = decisions(state);
    let recorded = promotions.first().is_some_and(|(sha, _)| {
        log.iter()
            .any(|(s, a, c)| s == "checkout-prod" && a == "promote" && c.contains(sha))
    });
    t.check(recorded, || {
        format!("{spec}: no promote record naming the promotion commit: {log:?}")
    });
}

fn promote_scenarios(root: &Path) -> Tally {
    let mut t = Tally::default();
    for (i, spec) in PROMOTE.iter().enumerate() {
        let remote = promote_remote();
        let state = root.join(format!("promote-{i}"));
        let (url, sd) = (remote.url(), state.display().to_string());
        let (status, out) = cli(&promote_args(&url, &sd, false), Some(spec));
        if !killed_at(&mut t, spec, status, &out) {
            continue;
        }
        let (status, out) = cli(&promote_args(&url, &sd, false), None);
        t.check(status.success(), || format!("{spec}: promote again: {out}"));
        check_promotion(&mut t, spec, &remote, &state);
    }
    for (i, spec) in APPROVE.iter().enumerate() {
        let remote = promote_remote();
        let state = root.join(format!("approve-{i}"));
        let (url, sd) = (remote.url(), state.display().to_string());
        let (status, out) = cli(&approve_args(&url, &sd), Some(spec));
        if !killed_at(&mut t, spec, status, &out) {
            continue;
        }
        let (status, out) = cli(&approve_args(&url, &sd), None);
        t.check(status.success(), || format!("{spec}: approve again: {out}"));
        let store = FileStore::open(&state).unwrap();
        let approvals = block_on(store.list(slogate::model::approval::PREFIX)).unwrap_or_default();
        t.once(spec, "approvals", approvals.len());
        let records = decisions(&state)
            .into_iter()
            .filter(|(_, a, _)| a == "approve")
            .count();
        t.check(records >= 1, || {
            format!("{spec}: the approval was not recorded")
        });
        // The approval counts: the promotion that requires it goes through once.
        let (status, out) = cli(&promote_args(&url, &sd, true), None);
        t.check(status.success(), || {
            format!("{spec}: promote with the approval: {out}")
        });
        check_promotion(&mut t, spec, &remote, &state);
    }
    t
}

// ---------------------------------------------------------------------------------------

#[test]
fn every_failpoint_killed_and_recovered() {
    let Some(b) = Burning::start() else { return };
    let root = b.work().join("crash");
    let mut total = Tally::default();
    std::thread::scope(|s| {
        let guard = s.spawn(|| guard_scenarios(&b, &root));
        let healthy = s.spawn(|| rollout_scenarios(&b, &root, false));
        let failing = s.spawn(|| rollout_scenarios(&b, &root, true));
        let promote = s.spawn(|| promote_scenarios(&root));
        for h in [guard, healthy, failing, promote] {
            total.merge(h.join().expect("scenario thread"));
        }
    });
    let never: Vec<&&str> = failpoint::ALL
        .iter()
        .filter(|n| !total.hit.contains(**n))
        .collect();
    println!(
        "failpoints tried: {}, double actions: {}",
        total.tried, total.double_actions
    );
    println!(
        "distinct failpoints hit: {} of {}",
        total.hit.len(),
        failpoint::ALL.len()
    );
    assert!(never.is_empty(), "failpoints never reached: {never:?}");
    assert!(
        total.problems.is_empty(),
        "{} problem(s):\n{}",
        total.problems.len(),
        total.problems.join("\n---\n")
    );
    assert_eq!(total.double_actions, 0);
}
