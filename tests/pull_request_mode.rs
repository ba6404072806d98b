//! `gitops.mode: pull-request` through the `slogate run` binary, for GitHub, GitLab and Gitea:
//! a real Prometheus whose history burns the budget, a real bare git remote, and a fake
//! forge on wiremock (`tests/common/forge.rs`) that keeps the pull requests it opens and
//! refuses a second open one from the same branch, as the forges do.
//!
//! For each forge, a breach opens exactly one pull request from `slogate/revert-<breach>`:
//! - at the daemon's first evaluation, with the decision in the API and `slogate decisions`;
//! - not again on repeated Alertmanager pages;
//! - not again after a restart;
//! - not again after a crash between opening it and storing that it was opened (the state's
//!   outcome cleared), while it was merged meanwhile: slogate finds it by its branch and the
//!   decision log says `pull_request_merged`;
//! - with two replicas on one state store acting at the same moment, still one.
//!
//! And the configuration: `mode: pull-request` without `gitops.forge` is refused at start
//! (exit 2, naming the key), as is an http forge URL without `allow_http`.

mod common;

use std::path::Path;

use common::daemon::{port, remote_with_bad_deploy, Burning, Daemon, PROD};
use common::forge::{FakeForge, Kind};
use common::git::{kustomization, GitRemote};
use common::slogate;

const FORGE_TOKEN: &str = "forge-token-0123456789abcdef";

fn gitops(remote: &GitRemote, workdir: &Path, forge: &FakeForge, token_file: &Path) -> String {
    format!(
        "gitops:\n  url: {}\n  workdir: {}\n  mode: pull-request\n{}",
        remote.url(),
        workdir.display(),
        forge.config(token_file)
    )
}

/// Guard decisions whose outcome starts with `prefix`.
fn outcomes(decisions: &serde_json::Value, prefix: &str) -> Vec<String> {
    decisions
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["outcome"].as_str())
        .filter(|o| o.starts_with(prefix))
        .map(str::to_string)
        .collect()
}

/// `slogate decisions --state-dir DIR -o json`.
fn decisions_cli(state: &Path) -> serde_json::Value {
    let out = slogate()
        .args(["decisions", "--state-dir"])
        .arg(state)
        .args(["-o", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Forget that the revert was done, as if slogate had crashed after the forge opened the
/// pull request and before the outcome was stored (state first, effects after: the
/// request stays, its outcome is missing, so the next run asks again).
fn forget_revert_outcome(state: &Path) {
    let doc = state.join("docs/guard/checkout.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&doc).unwrap()).unwrap();
    let shown = v.to_string();
    let reverts = v["value"]["breach"]["reverts"]
        .as_array_mut()
        .unwrap_or_else(|| panic!("no reverts in {shown}"));
    assert_eq!(reverts.len(), 1, "{shown}");
    assert!(reverts[0]["outcome"]
        .as_str()
        .unwrap()
        .starts_with("pull_request_opened"));
    reverts[0]["outcome"] = serde_json::Value::Null;
    std::fs::write(&doc, serde_json::to_string(&v).unwrap()).unwrap();
}

fn one_pull_request_per_breach(kind: Kind) {
    let Some(b) = Burning::start() else { return };
    let work = b.work().to_path_buf();
    let token_file = work.join("forge-token");
    std::fs::write(&token_file, format!("{FORGE_TOKEN}\n")).unwrap();

    // --- One replica: start, alerts, restart, crash after opening ----------------------
    let (remote, bad) = remote_with_bad_deploy();
    let main_head = remote.remote_git(&["rev-parse", "main"]).trim().to_string();
    let forge = FakeForge::start(kind, remote.remote.clone(), FORGE_TOKEN);
    let state = work.join("state");
    let cfg = b.config(
        port(),
        &state,
        &gitops(&remote, &work.join("repo-a"), &forge, &token_file),
    );
    let mut d = Daemon::start(&work, "a", &cfg, &[]);
    d.wait("the revert pull request", |_| {
        (!forge.prs().is_empty()).then_some(())
    });
    d.wait("the guard run at start", |d| {
        (d.guard_runs("schedule") >= 1).then_some(())
    });
    let prs = forge.prs();
    assert_eq!(prs.len(), 1, "{prs:?}");
    let pr = &prs[0];
    assert!(
        pr.head
            .starts_with("slogate/revert-checkout-checkout-availa"),
        "the branch carries the breach id (shortened, with a hash of it): {}",
        pr.head
    );
    assert_eq!(pr.base, "main");
    assert!(pr.body.contains(&bad[..12]), "{}", pr.body);
    assert!(pr
        .body
        .contains("Slogate-Breach: checkout/checkout-availability/emergency/"));
    // The branch holds one revert of the bad deploy; the watched branch is untouched.
    assert_eq!(
        remote.remote_git(&["rev-parse", "main"]).trim(),
        main_head,
        "pull-request mode never pushes to the watched branch"
    );
    assert_eq!(
        remote.remote_git(&["show", &format!("{}:{PROD}", pr.head)]),
        kustomization("checkout", "v1")
    );
    assert_eq!(
        remote
            .remote_git(&["rev-parse", &format!("refs/heads/{}", pr.head)])
            .trim(),
        pr.sha
    );
    // The decision, through the API.
    let opened = outcomes(&d.decisions(), "pull_request_opened ");
    assert_eq!(opened.len(), 1, "{}", d.decisions());
    assert!(
        opened[0].ends_with(&format!("/{}", pr.number)),
        "{opened:?} names the pull request"
    );

    // Repeated pages: each runs the guard (evaluated again), none opens a second one.
    for (i, at) in [
        "2026-11-23T09:00:00Z",
        "2026-11-23T09:00:05Z",
        "2026-11-23T09:00:10Z",
    ]
    .iter()
    .enumerate()
    {
        d.alert(at);
        d.wait("the alert's guard run", |d| {
            (d.guard_runs("alert") > i).then_some(())
        });
    }
    assert_eq!(forge.prs().len(), 1, "{:?}", forge.prs());
    assert!(d.terminate().success());

    // A restart on the same state: the breach is known, its pull request too.
    let mut d = Daemon::start(&work, "a-restarted", &cfg, &[]);
    d.wait("the guard run at start", |d| {
        (d.guard_runs("schedule") >= 1).then_some(())
    });
    assert!(d.terminate().success());
    assert_eq!(forge.prs().len(), 1, "{:?}", forge.prs());
    let opens_before = forge.open_requests();

    // A crash between opening it and storing that: the next run finds it on the forge by
    // its branch (merged in the meantime) and says so, opening nothing.
    forget_revert_outcome(&state);
    forge.set_state(pr.number, "merged");
    let mut d = Daemon::start(&work, "a-after-crash", &cfg, &[]);
    d.wait("the guard run at start", |d| {
        (d.guard_runs("schedule") >= 1).then_some(())
    });
    let merged = outcomes(&d.decisions(), "pull_request_merged ");
    assert_eq!(merged.len(), 1, "{}", d.decisions());
    assert!(
        merged[0].ends_with(&format!("/{}", pr.number)),
        "{merged:?}"
    );
    assert!(d.terminate().success());
    assert_eq!(forge.prs().len(), 1, "{:?}", forge.prs());
    assert_eq!(
        forge.open_requests(),
        opens_before,
        "no pull request was even asked for"
    );
    // The same decisions through the CLI.
    let cli = decisions_cli(&state);
    assert_eq!(outcomes(&cli, "pull_request_opened ").len(), 1, "{cli}");
    assert_eq!(outcomes(&cli, "pull_request_merged ").len(), 1, "{cli}");

    // --- Two replicas on one state store, acting at the same moment -------------------
    let (remote2, _) = remote_with_bad_deploy();
    let forge2 = FakeForge::start(kind, remote2.remote.clone(), FORGE_TOKEN);
    let shared = work.join("state-shared");
    let cfg1 = b.config(
        port(),
        &shared,
        &gitops(&remote2, &work.join("repo-r1"), &forge2, &token_file),
    );
    let cfg2 = b.config(
        port(),
        &shared,
        &gitops(&remote2, &work.join("repo-r2"), &forge2, &token_file),
    );
    let mut r1 = Daemon::start(&work, "r1", &cfg1, &[]);
    let mut r2 = Daemon::start(&work, "r2", &cfg2, &[]);
    for r in [&mut r1, &mut r2] {
        r.wait("the guard run at start", |d| {
            (d.guard_runs("schedule") >= 1).then_some(())
        });
    }
    // And an alert to each at once (two events: the shared store drops a repeat).
    r1.alert("2026-11-23T10:00:00Z");
    r2.alert("2026-11-23T10:00:01Z");
    for r in [&mut r1, &mut r2] {
        r.wait("the alert's guard run", |d| {
            (d.guard_runs("alert") >= 1).then_some(())
        });
    }
    let logs = format!("{}\n{}", r1.log(), r2.log());
    assert!(r1.terminate().success());
    assert!(r2.terminate().success());
    let prs = forge2.prs();
    assert_eq!(
        prs.len(),
        1,
        "two replicas, one pull request: {prs:?}\n{logs}"
    );
    assert_eq!(
        outcomes(&decisions_cli(&shared), "pull_request_opened ").len(),
        1
    );
    // Nothing was pushed to the watched branch by either replica.
    assert!(remote2
        .log()
        .iter()
        .all(|(_, msg)| !msg.contains("Slogate-Breach")));
    drop(b);
}

#[test]
fn github_a_breach_opens_exactly_one_pull_request() {
    one_pull_request_per_breach(Kind::Github);
}

#[test]
fn gitlab_a_breach_opens_exactly_one_merge_request() {
    one_pull_request_per_breach(Kind::Gitlab);
}

#[test]
fn gitea_a_breach_opens_exactly_one_pull_request() {
    one_pull_request_per_breach(Kind::Gitea);
}

/// `slogate run` with `config`; its exit code and stderr.
fn run_fails(config: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("slogate.yaml");
    std::fs::write(&path, config).unwrap();
    let out = slogate()
        .args(["run", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn pull_request_mode_without_a_forge_or_over_http_is_refused_at_start() {
    let base = "prometheus:\n  url: http://127.0.0.1:1\nslos:\n  paths: [/nonexistent]\nguard:\n  apps:\n    - name: checkout\n      path: apps/checkout\n      slos: [checkout-availability]\n";
    let (code, err) = run_fails(&format!(
        "{base}gitops:\n  url: /tmp/x.git\n  mode: pull-request\n"
    ));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("gitops.forge: expected a forge section"),
        "{err}"
    );

    let (code, err) = run_fails(&format!(
        "{base}gitops:\n  url: /tmp/x.git\n  mode: pull-request\n  forge:\n    type: gitea\n    api_url: http://gitea.example.com/api/v1\n    owner: a\n    repo: b\n    token: {{env: SLOGATE_TEST_UNSET_TOKEN}}\n"
    ));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(
            "gitops.forge.api_url: expected an https URL, found http://gitea.example.com/api/v1"
        ),
        "{err}"
    );

    // An https forge whose token cannot be read: refused at start, naming the key and the
    // token's source.
    let (code, err) = run_fails(&format!(
        "{base}state:\n  dir: /tmp/slogate-test-forge-token-{}\ngitops:\n  url: /tmp/x.git\n  mode: pull-request\n  forge:\n    type: github\n    owner: a\n    repo: b\n    token: {{env: SLOGATE_TEST_UNSET_TOKEN}}\n",
        std::process::id()
    ));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("gitops.forge.token") && err.contains("SLOGATE_TEST_UNSET_TOKEN"),
        "{err}"
    );
}

const ROLLOUT: &str = r#"apiVersion: slogate.dev/v1alpha1
kind: Rollout
metadata: {name: checkout, namespace: shop}
spec:
  traffic:
    httpRoute: {name: checkout, stableBackend: {name: checkout}, canaryBackend: {name: checkout-canary}}
  workloads: {stable: {name: checkout}, canary: {name: checkout-canary}}
  steps: [50, 100]
  interval: 1s
  failureLimit: 1
  progressDeadline: 1m
  analysis:
    metrics:
      # The canary's success rate, as Prometheus answers it: 50%.
      - {name: canary-success-rate, query: "vector(0.5)", min: 0.99}
  gitops: {app: checkout, path: apps/checkout/overlays/prod}
"#;

/// A failing canary in pull-request mode: the rollout aborts and its canary commit is
/// reverted through exactly one pull request, on each forge.
#[test]
fn a_failing_canary_opens_exactly_one_pull_request() {
    let Some(b) = Burning::start() else { return };
    let work = b.work().to_path_buf();
    let token_file = work.join("forge-token");
    std::fs::write(&token_file, FORGE_TOKEN).unwrap();
    for kind in [Kind::Github, Kind::Gitlab, Kind::Gitea] {
        let dir = work.join(format!("rollout-{}", kind.name()));
        let (remote, canary_commit) = remote_with_bad_deploy();
        let main_head = remote.remote_git(&["rev-parse", "main"]).trim().to_string();
        let forge = FakeForge::start(kind, remote.remote.clone(), FORGE_TOKEN);
        let config = b.rollout_config(
            &dir,
            "shop",
            ROLLOUT,
            "file",
            &gitops(&remote, &dir.join("repo"), &forge, &token_file),
        );
        let mut d = Daemon::start(&dir, "rollout", &config, &[]);
        let status = d.wait("the rollout's abort", |d| {
            let v: serde_json::Value = common::http()
                .get(format!("{}/api/v1/rollouts/shop/checkout", d.base))
                .send()
                .ok()?
                .json()
                .ok()?;
            let done = v["status"]["phase"] == "Failed" || v["status"]["phase"] == "Aborted";
            (done && v["status"]["revertCommit"].is_string()).then_some(v)
        });
        // More reconciles of the aborted rollout (every second) change nothing.
        let seen = forge.open_requests();
        std::thread::sleep(std::time::Duration::from_secs(3));
        let decisions = d.decisions();
        assert!(d.terminate().success());
        let prs = forge.prs();
        assert_eq!(prs.len(), 1, "{}: {prs:?}\n{status}", kind.name());
        assert_eq!(forge.open_requests(), seen, "{}", kind.name());
        let pr = &prs[0];
        assert!(pr.body.contains(&canary_commit[..12]), "{}", pr.body);
        assert_eq!(
            status["status"]["revertCommit"],
            pr.sha.as_str(),
            "{status}"
        );
        assert_eq!(
            remote.remote_git(&["show", &format!("{}:{PROD}", pr.head)]),
            kustomization("checkout", "v1")
        );
        assert_eq!(remote.remote_git(&["rev-parse", "main"]).trim(), main_head);
        // The decision log names the pull request.
        let shown = decisions.to_string();
        assert!(
            shown.contains(&format!("/{}", pr.number)) && shown.contains("revert pull request"),
            "{shown}"
        );
    }
}
