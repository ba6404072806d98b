//! Tests on real git: bare remotes and clones in temp dirs, no network beyond loopback.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tempfile::TempDir;
use wiremock::matchers::{body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::repo::{pr_branch_name, Prepared};
use super::runner::{GitRunner, RunOpts};
use super::*;
use crate::model::trailers::{reverted_shas, RevertTrailers, TRAILER_BREACH, TRAILER_REVERTS};
use crate::ports::gitops::GitOpsRepo;

const CHECKOUT: &str = "apps/checkout/overlays/prod";
const CHECKOUT_DEPLOY: &str = "apps/checkout/overlays/prod/deployment.yaml";
const CHECKOUT_CM: &str = "apps/checkout/overlays/prod/configmap.yaml";
const PAYMENTS_DEPLOY: &str = "apps/payments/overlays/prod/deployment.yaml";

fn deploy(app: &str, image: &str, replicas: u32) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {app}\nspec:\n  replicas: {replicas}\n  template:\n    spec:\n      containers:\n        - name: {app}\n          image: registry.local/{app}:{image}\n          ports:\n            - containerPort: 8080\n"
    )
}

/// An empty bare remote `<dir>/remote.git` on branch `main` and a developer clone
/// `<dir>/dev` with `main` checked out: `(remote, dev)`.
pub(crate) fn bare_remote_and_clone(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let remote = dir.join("remote.git");
    let dev = dir.join("dev");
    git(
        dir,
        &[
            "init",
            "-q",
            "--bare",
            "-b",
            "main",
            remote.to_str().unwrap(),
        ],
    );
    git(
        dir,
        &[
            "clone",
            "-q",
            remote.to_str().unwrap(),
            dev.to_str().unwrap(),
        ],
    );
    git(&dev, &["checkout", "-q", "-b", "main"]);
    (remote, dev)
}

/// Plain git for the test's "humans", hermetic like the adapter's.
pub(crate) fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Dev")
        .env("GIT_AUTHOR_EMAIL", "dev@example.com")
        .env("GIT_COMMITTER_NAME", "Dev")
        .env("GIT_COMMITTER_EMAIL", "dev@example.com")
        .env("LC_ALL", "C")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

struct Fixture {
    tmp: TempDir,
    remote: PathBuf,
    /// The humans' clone.
    dev: PathBuf,
    workdir: PathBuf,
    c0: String,
}

impl Fixture {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let (remote, dev) = bare_remote_and_clone(tmp.path());
        let workdir = tmp.path().join("slogate-work");
        let f = Fixture {
            tmp,
            remote,
            dev,
            workdir,
            c0: String::new(),
        };
        let c0 = f.commit(
            &[
                (CHECKOUT_DEPLOY, &deploy("checkout", "v1", 3)),
                (CHECKOUT_CM, "data:\n  FEATURE_X: \"off\"\n"),
                (PAYMENTS_DEPLOY, &deploy("payments", "v1", 2)),
                ("base/common.yaml", "labels:\n  team: shop\n"),
            ],
            "initial",
        );
        Fixture { c0, ..f }
    }

    /// A human commit (on top of the current remote head), pushed.
    fn commit(&self, files: &[(&str, &str)], msg: &str) -> String {
        let d = &self.dev;
        if git(d, &["ls-remote", "origin", "refs/heads/main"]).trim() != "" {
            git(d, &["fetch", "-q", "origin"]);
            git(d, &["reset", "-q", "--hard", "origin/main"]);
        }
        for (p, content) in files {
            let full = d.join(p);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(full, content).unwrap();
        }
        git(d, &["add", "-A"]);
        git(d, &["commit", "-q", "-m", msg]);
        git(d, &["push", "-q", "origin", "HEAD:refs/heads/main"]);
        git(d, &["rev-parse", "HEAD"]).trim().to_string()
    }

    fn remote_git(&self, args: &[&str]) -> String {
        let mut a = vec!["--git-dir", self.remote.to_str().unwrap()];
        a.extend_from_slice(args);
        git(self.tmp.path(), &a)
    }

    fn remote_head(&self) -> String {
        self.remote_git(&["rev-parse", "refs/heads/main"])
            .trim()
            .to_string()
    }

    fn remote_file(&self, rev: &str, p: &str) -> String {
        self.remote_git(&["show", &format!("{rev}:{p}")])
    }

    fn remote_has_file(&self, rev: &str, p: &str) -> bool {
        Command::new("git")
            .args([
                "--git-dir",
                self.remote.to_str().unwrap(),
                "cat-file",
                "-e",
                &format!("{rev}:{p}"),
            ])
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .status()
            .unwrap()
            .success()
    }

    /// Commits on the remote branch carrying this breach id.
    fn breach_commits(&self, breach: &str) -> Vec<String> {
        self.remote_git(&[
            "log",
            "-F",
            &format!("--grep={TRAILER_BREACH}: {breach}"),
            "--format=%H",
            "main",
        ])
        .lines()
        .map(String::from)
        .collect()
    }

    fn config(&self) -> RepoConfig {
        let mut c = RepoConfig::new(self.remote.to_str().unwrap(), "main", &self.workdir);
        c.author_name = "slogate-bot".into();
        c.author_email = "slogate@example.com".into();
        c.timeout = Duration::from_secs(30);
        c
    }

    fn cli(&self) -> GitCli {
        GitCli::new(self.config()).unwrap()
    }

    fn workdir_is_clean_at_remote_head(&self) {
        let status = git(
            &self.workdir,
            &["status", "--porcelain", "--untracked-files=all"],
        );
        assert_eq!(status.trim(), "", "work tree not clean");
        assert_eq!(
            git(&self.workdir, &["rev-parse", "HEAD"]).trim(),
            self.remote_head(),
            "work tree not at the remote head"
        );
    }
}

fn request(breach: &str, known_good: Option<&str>) -> RevertRequest {
    RevertRequest {
        app_path: CHECKOUT.into(),
        known_good: known_good.map(String::from),
        reason: "checkout-availability burned its error budget".into(),
        slo_id: Some("checkout-availability".into()),
        budget_consumed: Some(0.963),
        breach_id: breach.into(),
        extra_trailers: vec![Trailer::new("Slogate-Alert", "fp-abc123")],
        reason_code: None,
    }
}

fn parent(f: &Fixture, rev: &str) -> String {
    f.remote_git(&["rev-parse", &format!("{rev}^")])
        .trim()
        .to_string()
}

// ---------------------------------------------------------------------------------------
// Reverts
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn reverts_one_commit_only_under_the_app_path_with_trailers() {
    let f = Fixture::new();
    // One commit bumps checkout AND payments.
    let c1 = f.commit(
        &[
            (CHECKOUT_DEPLOY, &deploy("checkout", "v2", 3)),
            (PAYMENTS_DEPLOY, &deploy("payments", "v2", 2)),
        ],
        "bump checkout and payments to v2",
    );
    let cli = f.cli();
    let out = cli.revert(&request("breach-1", Some(&f.c0))).await.unwrap();
    let RevertOutcome::Reverted { sha, reverted } = out else {
        panic!("unexpected {out:?}")
    };
    assert_eq!(reverted, vec![c1.clone()]);
    assert_eq!(f.remote_head(), sha);
    assert_eq!(parent(&f, &sha), c1, "exactly one commit on top");
    assert_eq!(
        f.remote_file("main", CHECKOUT_DEPLOY),
        deploy("checkout", "v1", 3)
    );
    assert_eq!(
        f.remote_file("main", PAYMENTS_DEPLOY),
        deploy("payments", "v2", 2),
        "the other app must not be rolled back"
    );
    // Only files under the app path changed in the revert commit.
    let changed = f.remote_git(&["diff", "--name-only", &format!("{sha}^"), &sha]);
    assert_eq!(changed.trim(), CHECKOUT_DEPLOY);

    // Trailers, parsed by git and by our parser.
    let trailers = cli.read_trailers(&sha).await.unwrap();
    let t = RevertTrailers::from_trailers(&trailers);
    assert_eq!(t.breach_id.as_deref(), Some("breach-1"));
    assert_eq!(t.reverts, vec![c1.clone()]);
    assert_eq!(t.slo_id.as_deref(), Some("checkout-availability"));
    assert_eq!(t.budget_consumed, Some(0.963));
    assert_eq!(t.app_path.as_deref(), Some(CHECKOUT));
    assert_eq!(t.known_good.as_deref(), Some(f.c0.as_str()));
    assert_eq!(
        t.reason.as_deref(),
        Some("checkout-availability burned its error budget")
    );
    assert!(trailers.contains(&Trailer::new("Slogate-Alert", "fp-abc123")));
    let message = f.remote_git(&["log", "-1", "--format=%B", &sha]);
    assert_eq!(RevertTrailers::from_message(&message), t);
    assert!(message.starts_with(&format!("slogate: revert 1 commit touching {CHECKOUT}\n")));
    assert!(message.contains("96.3%"));
    assert!(message.contains("bump checkout and payments to v2"));
    assert!(message.contains("Budget-Consumed: 0.963\n"));
    f.workdir_is_clean_at_remote_head();
}

#[tokio::test]
async fn reverts_several_commits_newest_first_in_one_commit() {
    let f = Fixture::new();
    let c1 = f.commit(
        &[
            (CHECKOUT_DEPLOY, &deploy("checkout", "v2", 3)),
            (PAYMENTS_DEPLOY, &deploy("payments", "v2", 2)),
        ],
        "c1: images v2",
    );
    let c2 = f.commit(
        &[(CHECKOUT_DEPLOY, &deploy("checkout", "v2", 5))],
        "c2: scale checkout",
    );
    let c3 = f.commit(
        &[(PAYMENTS_DEPLOY, &deploy("payments", "v3", 2))],
        "c3: payments only",
    );
    let c4 = f.commit(
        &[
            ("apps/checkout/overlays/prod/hpa.yaml", "maxReplicas: 10\n"),
            ("base/common.yaml", "labels:\n  team: shop\n  tier: web\n"),
        ],
        "c4: checkout hpa and shared base",
    );
    let before = f.remote_head();
    assert_eq!(before, c4);

    // Without known-good: only the newest commit touching the path.
    let cli = f.cli();
    let lone = cli
        .prepare_revert_only(&request("b-lone", None))
        .await
        .unwrap();
    let Prepared::Commit { reverted, .. } = lone else {
        panic!("unexpected {lone:?}")
    };
    assert_eq!(
        reverted.iter().map(|c| c.sha.clone()).collect::<Vec<_>>(),
        vec![c4.clone()]
    );

    let out = cli
        .revert(&request("breach-many", Some(&f.c0)))
        .await
        .unwrap();
    let RevertOutcome::Reverted { sha, reverted } = out else {
        panic!("unexpected {out:?}")
    };
    assert_eq!(
        reverted,
        vec![c4.clone(), c2.clone(), c1.clone()],
        "newest first, c3 untouched"
    );
    assert_eq!(
        parent(&f, &sha),
        before,
        "one commit on top of the old head"
    );
    assert_eq!(
        f.remote_file("main", CHECKOUT_DEPLOY),
        deploy("checkout", "v1", 3)
    );
    assert!(!f.remote_has_file("main", "apps/checkout/overlays/prod/hpa.yaml"));
    assert_eq!(
        f.remote_file("main", PAYMENTS_DEPLOY),
        deploy("payments", "v3", 2)
    );
    assert_eq!(
        f.remote_file("main", "base/common.yaml"),
        "labels:\n  team: shop\n  tier: web\n",
        "shared base outside the app path is kept"
    );
    let trailers = cli.read_trailers(&sha).await.unwrap();
    assert_eq!(reverted_shas(&trailers), vec![c4, c2, c1]);
    assert_eq!(
        trailers.iter().filter(|t| t.key == TRAILER_REVERTS).count(),
        3,
        "one Slogate-Reverts trailer per commit"
    );
    let _ = c3;
    f.workdir_is_clean_at_remote_head();
}

#[tokio::test]
async fn reverts_binary_and_non_utf8_files_byte_for_byte() {
    let f = Fixture::new();
    let bin = "apps/checkout/overlays/prod/logo.bin";
    let latin1 = "apps/checkout/overlays/prod/legacy.txt";
    let write_commit = |files: &[(&str, &[u8])], msg: &str| {
        for (p, bytes) in files {
            std::fs::write(f.dev.join(p), bytes).unwrap();
        }
        git(&f.dev, &["add", "-A"]);
        git(&f.dev, &["commit", "-q", "-m", msg]);
        git(&f.dev, &["push", "-q", "origin", "HEAD:refs/heads/main"]);
        git(&f.dev, &["rev-parse", "HEAD"]).trim().to_string()
    };
    let good_bin: Vec<u8> = (0u8..=255).collect();
    let good_txt = b"caf\xe9 cr\xe8me\n".to_vec();
    let c1 = write_commit(&[(bin, &good_bin), (latin1, &good_txt)], "add assets");
    let mut bad_bin = good_bin.clone();
    bad_bin[10] = 0;
    bad_bin.extend_from_slice(&[0xff, 0xfe, 0x00]);
    write_commit(
        &[(bin, &bad_bin), (latin1, b"caf\xe9 br\xfbl\xe9e\n")],
        "change assets",
    );
    let out = f
        .cli()
        .revert(&request("breach-bin", Some(&c1)))
        .await
        .unwrap();
    assert!(matches!(out, RevertOutcome::Reverted { .. }), "{out:?}");
    let show = |p: &str| {
        Command::new("git")
            .args([
                "--git-dir",
                f.remote.to_str().unwrap(),
                "show",
                &format!("main:{p}"),
            ])
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .output()
            .unwrap()
            .stdout
    };
    assert_eq!(show(bin), good_bin);
    assert_eq!(show(latin1), good_txt);
}

#[tokio::test]
async fn nothing_to_revert_when_the_path_is_untouched() {
    let f = Fixture::new();
    f.commit(
        &[(PAYMENTS_DEPLOY, &deploy("payments", "v2", 2))],
        "payments only",
    );
    let out = f.cli().revert(&request("b", Some(&f.c0))).await.unwrap();
    assert_eq!(out, RevertOutcome::NothingToRevert);
}

#[tokio::test]
async fn known_good_must_exist_and_be_an_ancestor() {
    let f = Fixture::new();
    f.commit(&[(CHECKOUT_DEPLOY, &deploy("checkout", "v2", 3))], "c1");
    let cli = f.cli();
    let err = cli
        .revert(&request(
            "b",
            Some("0123456789abcdef0123456789abcdef01234567"),
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, GitOpsError::UnknownCommit(_)), "{err:?}");
    // A commit on another branch is not an ancestor.
    git(&f.dev, &["checkout", "-q", "-b", "side", &f.c0]);
    std::fs::write(f.dev.join("side.txt"), "x").unwrap();
    git(&f.dev, &["add", "-A"]);
    git(&f.dev, &["commit", "-q", "-m", "side"]);
    git(&f.dev, &["push", "-q", "origin", "side"]);
    let side = git(&f.dev, &["rev-parse", "HEAD"]).trim().to_string();
    git(&f.dev, &["checkout", "-q", "main"]);
    let err = cli.revert(&request("b", Some(&side))).await.unwrap_err();
    assert!(
        matches!(err, GitOpsError::KnownGoodNotAncestor { .. }),
        "{err:?}"
    );
    let err = cli
        .revert(&request("b", Some("--upload-pack=x")))
        .await
        .unwrap_err();
    assert!(matches!(err, GitOpsError::InvalidRequest(_)), "{err:?}");
    let mut bad = request("b", None);
    bad.app_path = "../etc".into();
    assert!(matches!(
        cli.revert(&bad).await,
        Err(GitOpsError::InvalidRequest(_))
    ));
    bad.app_path = "".into();
    assert!(matches!(
        cli.revert(&bad).await,
        Err(GitOpsError::InvalidRequest(_))
    ));
}

// ---------------------------------------------------------------------------------------
// Concurrent pushes
// ---------------------------------------------------------------------------------------

/// `out` reverted exactly `reverted`, its commit is the remote's head and sits on top of
/// `concurrent` (the payments commit pushed in between, which it kept): the revert's sha.
fn landed_on_top(f: &Fixture, out: RevertOutcome, reverted: &str, concurrent: &str) -> String {
    let RevertOutcome::Reverted { sha, reverted: got } = out else {
        panic!("unexpected {out:?}")
    };
    assert_eq!(got, vec![reverted.to_string()]);
    assert_eq!(f.remote_head(), sha);
    assert_eq!(
        parent(f, &sha),
        concurrent,
        "revert sits on top of the concurrent commit"
    );
    assert_eq!(
        f.remote_file("main", PAYMENTS_DEPLOY),
        deploy("payments", "v9", 2)
    );
    sha
}

#[tokio::test]
async fn concurrent_push_between_fetch_and_push_is_retried_on_the_new_head() {
    let f = Arc::new(Fixture::new());
    let c1 = f.commit(&[(CHECKOUT_DEPLOY, &deploy("checkout", "v2", 3))], "c1");
    let calls = Arc::new(AtomicU32::new(0));
    let concurrent = Arc::new(std::sync::Mutex::new(String::new()));
    let hook: repo::BeforePushHook = {
        let (f, calls, concurrent) = (f.clone(), calls.clone(), concurrent.clone());
        Arc::new(move |attempt| {
            calls.fetch_add(1, Ordering::SeqCst);
            if attempt == 0 {
                // Someone else pushes after our fetch, before our push.
                let sha = f.commit(
                    &[(PAYMENTS_DEPLOY, &deploy("payments", "v9", 2))],
                    "concurrent",
                );
                *concurrent.lock().unwrap() = sha;
            }
        })
    };
    let cli = f.cli().with_before_push(hook);
    let out = cli
        .revert(&request("breach-race", Some(&f.c0)))
        .await
        .unwrap();
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "one rejected push, one retry"
    );
    let concurrent = concurrent.lock().unwrap().clone();
    let sha = landed_on_top(&f, out, &c1, &concurrent);
    assert_eq!(f.breach_commits("breach-race"), vec![sha]);
    assert_eq!(
        f.remote_file("main", CHECKOUT_DEPLOY),
        deploy("checkout", "v1", 3)
    );
}

#[tokio::test]
async fn gives_up_after_bounded_retries_without_forcing() {
    let f = Arc::new(Fixture::new());
    f.commit(&[(CHECKOUT_DEPLOY, &deploy("checkout", "v2", 3))], "c1");
    let calls = Arc::new(AtomicU32::new(0));
    let hook: repo::BeforePushHook = {
        let (f, calls) = (f.clone(), calls.clone());
        Arc::new(move |attempt| {
            calls.fetch_add(1, Ordering::SeqCst);
            f.commit(
                &[(
                    PAYMENTS_DEPLOY,
                    &deploy("payments", &format!("r{attempt}"), 2),
                )],
                "busy",
            );
        })
    };
    let mut cfg = f.config();
    cfg.push_retries = 2;
    let cli = GitCli::new(cfg).unwrap().with_before_push(hook);
    let err = cli
        .revert(&request("breach-busy", Some(&f.c0)))
        .await
        .unwrap_err();
    assert!(
        matches!(err, GitOpsError::PushRejected { attempts: 3, .. }),
        "{err:?}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert!(f.breach_commits("breach-busy").is_empty());
    assert_eq!(
        f.remote_file("main", CHECKOUT_DEPLOY),
        deploy("checkout", "v2", 3)
    );
}

// ---------------------------------------------------------------------------------------
// Conflicts
// ---------------------------------------------------------------------------------------

/// A merge whose conflict resolution (`v7`) touches the same line as both merged
/// commits: reverting them conflicts. Returns (m1, f1, merge).
fn conflicting_history(f: &Fixture) -> (String, String, String) {
    let d = &f.dev;
    git(d, &["fetch", "-q", "origin"]);
    git(d, &["reset", "-q", "--hard", "origin/main"]);
    git(d, &["checkout", "-q", "-b", "feature"]);
    std::fs::write(d.join(CHECKOUT_DEPLOY), deploy("checkout", "v2", 3)).unwrap();
    git(d, &["commit", "-q", "-am", "feature: checkout v2"]);
    let f1 = git(d, &["rev-parse", "HEAD"]).trim().to_string();
    git(d, &["checkout", "-q", "main"]);
    std::fs::write(d.join(CHECKOUT_DEPLOY), deploy("checkout", "v5", 3)).unwrap();
    git(d, &["commit", "-q", "-am", "main: checkout v5"]);
    let m1 = git(d, &["rev-parse", "HEAD"]).trim().to_string();
    let merge = Command::new("git")
        .args(["merge", "-q", "--no-edit", "feature"])
        .current_dir(d)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Dev")
        .env("GIT_AUTHOR_EMAIL", "dev@example.com")
        .env("GIT_COMMITTER_NAME", "Dev")
        .env("GIT_COMMITTER_EMAIL", "dev@example.com")
        .output()
        .unwrap();
    assert!(!merge.status.success(), "the merge must conflict");
    std::fs::write(d.join(CHECKOUT_DEPLOY), deploy("checkout", "v7", 3)).unwrap();
    git(d, &["commit", "-q", "-am", "merge feature, resolve to v7"]);
    git(d, &["push", "-q", "origin", "HEAD:refs/heads/main"]);
    let merge = git(d, &["rev-parse", "HEAD"]).trim().to_string();
    (m1, f1, merge)
}

#[tokio::test]
async fn conflict_pushes_nothing_and_names_shas_and_files() {
    let f = Fixture::new();
    let (m1, f1, _) = conflicting_history(&f);
    let head = f.remote_head();
    let cli = f.cli();
    let out = cli
        .revert(&request("breach-conflict", Some(&f.c0)))
        .await
        .unwrap();
    let RevertOutcome::Conflict { mut shas, files } = out else {
        panic!("unexpected {out:?}")
    };
    shas.sort();
    let mut expected = vec![m1, f1];
    expected.sort();
    assert_eq!(shas, expected);
    assert_eq!(files, vec![CHECKOUT_DEPLOY.to_string()]);
    assert_eq!(f.remote_head(), head, "remote untouched");
    assert!(f.breach_commits("breach-conflict").is_empty());
    f.workdir_is_clean_at_remote_head();
    // The work tree is usable afterwards.
    let out = cli
        .commit_files(vec![("notes.txt".into(), "ok\n".into())], "note")
        .await
        .unwrap();
    assert!(matches!(out, CommitOutcome::Pushed { .. }));
}

// ---------------------------------------------------------------------------------------
// Idempotence
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn same_breach_twice_gives_one_revert_commit() {
    let f = Fixture::new();
    f.commit(&[(CHECKOUT_DEPLOY, &deploy("checkout", "v2", 3))], "c1");
    let cli = f.cli();
    let first = cli.revert(&request("breach-7", Some(&f.c0))).await.unwrap();
    let RevertOutcome::Reverted { sha, .. } = first else {
        panic!("unexpected {first:?}")
    };
    // Someone commits elsewhere in between; the breach is still recognised.
    f.commit(
        &[(PAYMENTS_DEPLOY, &deploy("payments", "v2", 2))],
        "payments",
    );
    let second = cli.revert(&request("breach-7", Some(&f.c0))).await.unwrap();
    assert_eq!(second, RevertOutcome::AlreadyReverted { sha: sha.clone() });
    // Also without known-good (bounded scan) and from a brand-new adapter.
    let third = f.cli().revert(&request("breach-7", None)).await.unwrap();
    assert_eq!(third, RevertOutcome::AlreadyReverted { sha: sha.clone() });
    assert_eq!(f.breach_commits("breach-7"), vec![sha]);
    // An id that is a prefix of the first one is a different breach.
    let other = cli.revert(&request("breach-", Some(&f.c0))).await.unwrap();
    assert_eq!(
        other,
        RevertOutcome::NothingToRevert,
        "c1 is already reverted"
    );
}

#[tokio::test]
async fn crash_between_local_commit_and_push_still_gives_one_revert() {
    let f = Fixture::new();
    let c1 = f.commit(&[(CHECKOUT_DEPLOY, &deploy("checkout", "v2", 3))], "c1");
    let head = f.remote_head();
    {
        let cli = f.cli();
        let prepared = cli
            .prepare_revert_only(&request("breach-crash", Some(&f.c0)))
            .await
            .unwrap();
        assert!(matches!(prepared, Prepared::Commit { .. }), "{prepared:?}");
        // The local branch now has an unpushed revert commit; the process "dies".
        assert_ne!(git(&f.workdir, &["rev-parse", "HEAD"]).trim(), head);
    }
    assert_eq!(f.remote_head(), head, "nothing was pushed");
    let cli = f.cli(); // restart on the same work tree
    let out = cli
        .revert(&request("breach-crash", Some(&f.c0)))
        .await
        .unwrap();
    let RevertOutcome::Reverted { sha, reverted } = out else {
        panic!("unexpected {out:?}")
    };
    assert_eq!(reverted, vec![c1]);
    assert_eq!(parent(&f, &sha), head, "exactly one commit on top");
    assert_eq!(f.breach_commits("breach-crash"), vec![sha.clone()]);
    // A crash after the push (outcome lost) followed by a retry: still one.
    let again = f
        .cli()
        .revert(&request("breach-crash", Some(&f.c0)))
        .await
        .unwrap();
    assert_eq!(again, RevertOutcome::AlreadyReverted { sha: sha.clone() });
    assert_eq!(f.breach_commits("breach-crash").len(), 1);
    // A stale index.lock from a killed git does not wedge the next run.
    std::fs::write(f.workdir.join(".git/index.lock"), "").unwrap();
    assert_eq!(f.cli().head().await.unwrap(), sha);
}

// ---------------------------------------------------------------------------------------
// Overrides and slogate's own reverts
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn override_trailer_is_detected() {
    let f = Fixture::new();
    let c1 = f.commit(
        &[(CHECKOUT_DEPLOY, &deploy("checkout", "v2", 3))],
        "hotfix checkout\n\nApproved during the incident.\n\nSlogate-Override: hotfix approved by SRE on call\nSigned-off-by: Dev <dev@example.com>",
    );
    let c2 = f.commit(
        &[(CHECKOUT_CM, "data:\n  FEATURE_X: \"on\"\n")],
        "feature x on",
    );
    let cli = f.cli();
    assert_eq!(
        cli.override_reason(&c1).await.unwrap().as_deref(),
        Some("hotfix approved by SRE on call")
    );
    assert_eq!(cli.override_reason(&c2).await.unwrap(), None);
    let commits = cli.commits_touching(CHECKOUT, Some(&f.c0)).await.unwrap();
    assert_eq!(
        commits.iter().map(|c| c.sha.clone()).collect::<Vec<_>>(),
        vec![c2, c1]
    );
    assert_eq!(
        commits[1].override_reason().as_deref(),
        Some("hotfix approved by SRE on call")
    );
    assert_eq!(commits[1].subject, "hotfix checkout");
    assert_eq!(commits[1].author, "Dev <dev@example.com>");
    assert!(commits[0].override_reason().is_none());
    assert!(matches!(
        cli.read_trailers("deadbeefdeadbeef").await,
        Err(GitOpsError::UnknownCommit(_))
    ));
}

#[tokio::test]
async fn history_reads_see_every_push_made_before_the_call_and_share_later_fetches() {
    let f = Fixture::new();
    let cli = f.cli();
    assert!(cli
        .commits_touching(CHECKOUT, Some(&f.c0))
        .await
        .unwrap()
        .is_empty());
    // A push after the last read: the next read fetches and sees it.
    let c1 = f.commit(&[(CHECKOUT_DEPLOY, &deploy("checkout", "v2", 3))], "c1");
    let shas = |v: Vec<CommitInfo>| v.into_iter().map(|c| c.sha).collect::<Vec<_>>();
    assert_eq!(
        shas(cli.commits_touching(CHECKOUT, Some(&f.c0)).await.unwrap()),
        std::slice::from_ref(&c1)
    );
    // Many reads at once, after another push: every one sees it (a read skips its fetch
    // only when one that started after the read was asked for has succeeded).
    let c2 = f.commit(&[(CHECKOUT_DEPLOY, &deploy("checkout", "v3", 3))], "c2");
    let reads = (0..8).map(|_| {
        let cli = cli.clone();
        let c0 = f.c0.clone();
        tokio::spawn(async move { cli.commits_touching(CHECKOUT, Some(&c0)).await })
    });
    for r in futures::future::join_all(reads).await {
        assert_eq!(shas(r.unwrap().unwrap()), [c2.clone(), c1.clone()]);
    }
    // Reads leave the work tree alone: a revert still starts from the remote head.
    let RevertOutcome::Reverted { .. } = cli
        .revert(&request("b-history", Some(&f.c0)))
        .await
        .unwrap()
    else {
        panic!("expected a revert");
    };
    f.workdir_is_clean_at_remote_head();
}

#[test]
fn a_read_skips_its_fetch_only_after_one_that_started_later() {
    let f = Fixture::new();
    let cfg = f.config();
    let fetched = std::sync::Mutex::new(None);
    let repo = super::repo::Repo {
        cfg: &cfg,
        git: super::runner::GitRunner::new(&cfg).unwrap(),
        hook: None,
        fetched: &fetched,
    };
    let listed =
        |repo: &super::repo::Repo<'_>| repo.commits_touching(CHECKOUT, Some(&f.c0)).unwrap().len();
    let asked = std::time::Instant::now();
    repo.fetch_since(asked).unwrap();
    assert_eq!(listed(&repo), 0);
    let started = fetched.lock().unwrap().expect("a fetch was recorded");
    assert!(started >= asked);
    // A push now; a read asked for before that fetch started shares it, and so does not
    // see the push (which it could not have been promised)...
    f.commit(&[(CHECKOUT_DEPLOY, &deploy("checkout", "v2", 3))], "c1");
    repo.fetch_since(asked).unwrap();
    assert_eq!(listed(&repo), 0);
    // ...while a read asked for after it fetches again and sees it.
    repo.fetch_since(std::time::Instant::now()).unwrap();
    assert_eq!(listed(&repo), 1);
    assert!(fetched.lock().unwrap().unwrap() > started);
}

#[tokio::test]
async fn slogate_reverts_are_never_reverted_again() {
    let f = Fixture::new();
    let c1 = f.commit(&[(CHECKOUT_DEPLOY, &deploy("checkout", "v2", 3))], "c1");
    let cli = f.cli();
    let RevertOutcome::Reverted { sha: r1, .. } =
        cli.revert(&request("breach-a", None)).await.unwrap()
    else {
        panic!()
    };
    // The newest commit touching the path is now slogate's revert: it is skipped, and c1
    // (already reverted) too.
    assert_eq!(
        cli.revert(&request("breach-b", None)).await.unwrap(),
        RevertOutcome::NothingToRevert
    );
    assert_eq!(
        cli.revert(&request("breach-c", Some(&f.c0))).await.unwrap(),
        RevertOutcome::NothingToRevert
    );
    // A new bad commit: only it is reverted, not r1, not c1.
    let c2 = f.commit(&[(CHECKOUT_DEPLOY, &deploy("checkout", "v1", 9))], "c2");
    let out = cli.revert(&request("breach-d", Some(&f.c0))).await.unwrap();
    let RevertOutcome::Reverted { reverted, .. } = out else {
        panic!("unexpected {out:?}")
    };
    assert_eq!(reverted, vec![c2]);
    assert_eq!(
        f.remote_file("main", CHECKOUT_DEPLOY),
        deploy("checkout", "v1", 3)
    );
    let listed = cli.commits_touching(CHECKOUT, Some(&f.c0)).await.unwrap();
    assert!(listed.iter().any(|c| c.sha == r1 && c.is_slogate_revert()));
    assert!(listed.iter().any(|c| c.sha == c1 && !c.is_slogate_revert()));
}

// ---------------------------------------------------------------------------------------
// commit_files / commit_edit
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn commit_edit_reapplies_the_edit_on_the_fresh_content_after_a_rejection() {
    let f = Arc::new(Fixture::new());
    let kust = "apps/checkout/overlays/staging/kustomization.yaml";
    f.commit(
        &[(kust, "images:\n  - name: checkout\n    newTag: v1\n")],
        "staging",
    );
    let hook: repo::BeforePushHook = {
        let f = f.clone();
        Arc::new(move |attempt| {
            if attempt == 0 {
                f.commit(
                    &[(kust, "commonLabels:\n  env: staging\nimages:\n  - name: checkout\n    newTag: v1\n")],
                    "someone adds labels",
                );
            }
        })
    };
    let calls = Arc::new(AtomicU32::new(0));
    let edit: EditFn = {
        let calls = calls.clone();
        Arc::new(move |current: &str| {
            calls.fetch_add(1, Ordering::SeqCst);
            if !current.contains("newTag: v1") {
                return Err("no v1 tag".into());
            }
            Ok(current.replace("newTag: v1", "newTag: v2"))
        })
    };
    let cli = f.cli().with_before_push(hook);
    let out = cli
        .commit_edit(kust, edit.clone(), "promote checkout v2 to staging")
        .await
        .unwrap();
    let CommitOutcome::Pushed { sha } = out else {
        panic!("unexpected {out:?}")
    };
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "edit re-applied after the rejection"
    );
    assert_eq!(f.remote_head(), sha);
    assert_eq!(
        f.remote_file("main", kust),
        "commonLabels:\n  env: staging\nimages:\n  - name: checkout\n    newTag: v2\n",
        "both the concurrent change and the edit are kept"
    );
    // Same edit again: the closure refuses (no v1 any more) → an Edit error, nothing pushed.
    let err = f.cli().commit_edit(kust, edit, "again").await.unwrap_err();
    assert!(matches!(err, GitOpsError::Edit { .. }), "{err:?}");
    assert_eq!(f.remote_head(), sha);
    // A missing file is an error for commit_edit.
    let noop: EditFn = Arc::new(|s: &str| Ok(s.to_string()));
    assert!(matches!(
        f.cli().commit_edit("nope.yaml", noop, "x").await,
        Err(GitOpsError::Edit { .. })
    ));
}

#[tokio::test]
async fn commit_files_writes_pushes_and_is_unchanged_when_identical() {
    let f = Fixture::new();
    let cli = f.cli();
    let changes = vec![
        (
            "apps/checkout/overlays/canary/kustomization.yaml".to_string(),
            "newTag: v3\n".to_string(),
        ),
        (
            CHECKOUT_CM.to_string(),
            "data:\n  FEATURE_X: \"on\"\n".to_string(),
        ),
    ];
    let out = cli
        .commit_files(changes.clone(), "promote v3 to canary")
        .await
        .unwrap();
    let CommitOutcome::Pushed { sha } = out else {
        panic!("unexpected {out:?}")
    };
    assert_eq!(f.remote_head(), sha);
    assert_eq!(
        f.remote_file("main", "apps/checkout/overlays/canary/kustomization.yaml"),
        "newTag: v3\n"
    );
    assert_eq!(
        f.remote_git(&["log", "-1", "--format=%an <%ae>|%s", "main"])
            .trim(),
        "slogate-bot <slogate@example.com>|promote v3 to canary"
    );
    let again = cli
        .commit_files(changes, "promote v3 to canary")
        .await
        .unwrap();
    assert_eq!(again, CommitOutcome::Unchanged { head: sha.clone() });
    assert!(matches!(
        cli.commit_files(vec![(".git/config".into(), "x".into())], "evil")
            .await,
        Err(GitOpsError::InvalidRequest(_))
    ));
}

// ---------------------------------------------------------------------------------------
// Pull-request mode
// ---------------------------------------------------------------------------------------

fn token_file(dir: &Path, token: &str) -> SecretSource {
    let p = dir.join("forge-token");
    std::fs::write(&p, format!("{token}\n")).unwrap();
    SecretSource::File(p)
}

/// The forge has no pull request yet: every list answers `[]`.
async fn no_pull_requests_listed(server: &MockServer) {
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(server)
        .await;
}

/// The POST requests `server` received (the pull requests it was asked to open).
async fn posts(server: &MockServer) -> Vec<wiremock::Request> {
    server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.method == wiremock::http::Method::POST)
        .collect()
}

#[tokio::test]
async fn pull_request_mode_pushes_a_branch_and_opens_a_github_pr_once() {
    let f = Fixture::new();
    let c1 = f.commit(
        &[
            (CHECKOUT_DEPLOY, &deploy("checkout", "v2", 3)),
            (PAYMENTS_DEPLOY, &deploy("payments", "v2", 2)),
        ],
        "c1",
    );
    let head = f.remote_head();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/gitops/pulls"))
        .and(header("authorization", "Bearer gh-token-1"))
        .and(body_partial_json(json!({
            "head": "slogate/revert-breach-pr",
            "base": "main",
            "title": format!("slogate: revert 1 commit touching {CHECKOUT}"),
        })))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "number": 12, "html_url": "https://github.com/acme/gitops/pull/12"
        })))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/gitops/pulls"))
        .respond_with(ResponseTemplate::new(422).set_body_json(json!({
            "message": "Validation Failed",
            "errors": [{"message": "A pull request already exists for acme:slogate/revert-breach-pr."}]
        })))
        .mount(&server)
        .await;
    no_pull_requests_listed(&server).await;
    let api = GitHubPulls::new(
        server.uri(),
        "acme",
        "gitops",
        token_file(f.tmp.path(), "gh-token-1"),
        Duration::from_secs(5),
    )
    .unwrap();
    let mut cfg = f.config();
    cfg.mode = RevertMode::PullRequest;
    let cli = GitCli::new(cfg.clone())
        .unwrap()
        .with_pull_requests(Arc::new(api));
    let out = cli
        .revert(&request("breach-pr", Some(&f.c0)))
        .await
        .unwrap();
    let RevertOutcome::PullRequestOpened {
        sha,
        branch,
        url,
        number,
        reverted,
        unreverted,
    } = out
    else {
        panic!("unexpected {out:?}")
    };
    assert_eq!(branch, "slogate/revert-breach-pr");
    assert_eq!(
        (number, url.as_str()),
        (12, "https://github.com/acme/gitops/pull/12")
    );
    assert_eq!(reverted, vec![c1.clone()]);
    assert!(unreverted.is_empty());
    assert_eq!(f.remote_head(), head, "the watched branch is untouched");
    assert_eq!(
        f.remote_git(&["rev-parse", &format!("refs/heads/{branch}")])
            .trim(),
        sha
    );
    assert_eq!(parent(&f, &sha), head);
    assert_eq!(
        f.remote_file(&branch, CHECKOUT_DEPLOY),
        deploy("checkout", "v1", 3)
    );
    assert_eq!(
        f.remote_file(&branch, PAYMENTS_DEPLOY),
        deploy("payments", "v2", 2)
    );
    let reqs = posts(&server).await;
    let body: serde_json::Value = serde_json::from_slice(&reqs[0].body).unwrap();
    let text = body["body"].as_str().unwrap();
    assert!(text.contains(&c1[..12]), "{text}");
    assert!(text.contains("Slogate-Breach: breach-pr"), "{text}");
    f.workdir_is_clean_at_remote_head();

    // Second alert for the same breach: the branch exists, the forge says the PR exists
    // (this forge's list does not show it, so the answer to the POST decides).
    let again = cli
        .revert(&request("breach-pr", Some(&f.c0)))
        .await
        .unwrap();
    assert_eq!(again, RevertOutcome::AlreadyReverted { sha: sha.clone() });
    assert_eq!(posts(&server).await.len(), 2);
    assert_eq!(f.remote_head(), head);
}

#[tokio::test]
async fn pull_request_mode_with_conflicts_opens_a_gitlab_mr_with_what_can_be_reverted() {
    let f = Fixture::new();
    let (m1, f1, _) = conflicting_history(&f);
    let c2 = f.commit(
        &[(CHECKOUT_CM, "data:\n  FEATURE_X: \"on\"\n")],
        "c2: feature x on",
    );
    let head = f.remote_head();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v4/projects/platform%2Fgitops/merge_requests"))
        .and(header("private-token", "gl-token-1"))
        .and(body_partial_json(json!({
            "source_branch": "slogate/revert-breach-mr",
            "target_branch": "main",
            "remove_source_branch": true,
        })))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "iid": 4, "web_url": "https://gitlab.example.com/platform/gitops/-/merge_requests/4"
        })))
        .expect(1)
        .mount(&server)
        .await;
    no_pull_requests_listed(&server).await;
    let api = GitLabMergeRequests::new(
        format!("{}/api/v4", server.uri()),
        "platform/gitops",
        token_file(f.tmp.path(), "gl-token-1"),
        Duration::from_secs(5),
    )
    .unwrap();
    let mut cfg = f.config();
    cfg.mode = RevertMode::PullRequest;
    let cli = GitCli::new(cfg).unwrap().with_pull_requests(Arc::new(api));
    let out = cli
        .revert(&request("breach-mr", Some(&f.c0)))
        .await
        .unwrap();
    let RevertOutcome::PullRequestOpened {
        sha,
        branch,
        reverted,
        mut unreverted,
        number,
        ..
    } = out
    else {
        panic!("unexpected {out:?}")
    };
    assert_eq!(number, 4);
    assert_eq!(reverted, vec![c2.clone()]);
    unreverted.sort();
    let mut expected = vec![m1.clone(), f1.clone()];
    expected.sort();
    assert_eq!(unreverted, expected);
    assert_eq!(f.remote_head(), head);
    assert_eq!(
        f.remote_file(&branch, CHECKOUT_CM),
        "data:\n  FEATURE_X: \"off\"\n"
    );
    assert_eq!(
        f.remote_file(&branch, CHECKOUT_DEPLOY),
        deploy("checkout", "v7", 3)
    );
    let reqs = posts(&server).await;
    let body: serde_json::Value = serde_json::from_slice(&reqs[0].body).unwrap();
    let description = body["description"].as_str().unwrap();
    assert!(
        description.contains("Not reverted because they conflict"),
        "{description}"
    );
    assert!(
        description.contains(&m1[..12]) && description.contains(&f1[..12]),
        "{description}"
    );
    assert!(description.contains(CHECKOUT_DEPLOY), "{description}");
    let t = RevertTrailers::from_trailers(&cli.read_trailers(&sha).await.unwrap());
    assert_eq!(t.reverts, vec![c2]);
    assert_eq!(t.unreverted.len(), 2);
}

#[tokio::test]
async fn pull_request_mode_recovers_from_a_crash_between_branch_push_and_pr() {
    let f = Fixture::new();
    f.commit(&[(CHECKOUT_DEPLOY, &deploy("checkout", "v2", 3))], "c1");
    let mut cfg = f.config();
    cfg.mode = RevertMode::PullRequest;
    // First run: the forge is down after the branch was pushed.
    let down = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&down)
        .await;
    no_pull_requests_listed(&down).await;
    let api = GiteaPulls::new(
        format!("{}/api/v1", down.uri()),
        "acme",
        "gitops",
        token_file(f.tmp.path(), "gt"),
        Duration::from_secs(5),
    )
    .unwrap();
    let cli = GitCli::new(cfg.clone())
        .unwrap()
        .with_pull_requests(Arc::new(api));
    let err = cli
        .revert(&request("breach-gt", Some(&f.c0)))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            GitOpsError::PullRequest(PullRequestError::Http { status: 503, .. })
        ),
        "{err:?}"
    );
    let branch = pr_branch_name("breach-gt");
    let tip = f
        .remote_git(&["rev-parse", &format!("refs/heads/{branch}")])
        .trim()
        .to_string();
    // Second run: the PR is opened from the existing branch; no second revert commit.
    let up = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v1/repos/acme/gitops/pulls"))
        .and(header("authorization", "token gt"))
        .and(body_partial_json(json!({"head": branch, "base": "main"})))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "number": 9, "html_url": "https://gitea.example.com/acme/gitops/pulls/9"
        })))
        .expect(1)
        .mount(&up)
        .await;
    no_pull_requests_listed(&up).await;
    let api = GiteaPulls::new(
        format!("{}/api/v1", up.uri()),
        "acme",
        "gitops",
        token_file(f.tmp.path(), "gt"),
        Duration::from_secs(5),
    )
    .unwrap();
    let cli = GitCli::new(cfg).unwrap().with_pull_requests(Arc::new(api));
    let out = cli
        .revert(&request("breach-gt", Some(&f.c0)))
        .await
        .unwrap();
    let RevertOutcome::PullRequestOpened { sha, number, .. } = out else {
        panic!("unexpected {out:?}")
    };
    assert_eq!((sha, number), (tip.clone(), 9));
    assert_eq!(
        f.remote_git(&["rev-parse", &format!("refs/heads/{branch}")])
            .trim(),
        tip
    );
}

#[test]
fn pr_branch_names_are_valid_and_distinct() {
    assert_eq!(pr_branch_name("b-42"), "slogate/revert-b-42");
    let long =
        pr_branch_name("alertname=ErrorBudgetBurn,sloth_id=checkout-availability,severity=page");
    let long2 =
        pr_branch_name("alertname=ErrorBudgetBurn,sloth_id=checkout-availability,severity=ticket");
    assert_ne!(long, long2);
    for b in [long, long2, pr_branch_name("a b/c..d~e^f:g")] {
        assert!(super::config::valid_branch_name(&b), "{b}");
        assert!(b.len() < 60, "{b}");
    }
}

// ---------------------------------------------------------------------------------------
// Credentials
// ---------------------------------------------------------------------------------------

const SECRET: &str = "ghp_S3cretT0kenValue1234567890";

fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[tokio::test]
async fn https_token_goes_through_the_credential_helper_and_never_into_args_config_or_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let token = token_file(tmp.path(), SECRET);
    // A loopback "git server" that demands basic auth, then refuses the (correct) creds.
    let server = MockServer::start().await;
    let expected = format!(
        "Basic {}",
        base64(format!("x-access-token:{SECRET}").as_bytes())
    );
    Mock::given(method("GET"))
        .and(path("/acme/gitops.git/info/refs"))
        .and(header("authorization", expected.as_str()))
        .respond_with(ResponseTemplate::new(403).set_body_string(format!("denied for {SECRET}")))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/acme/gitops.git/info/refs"))
        .respond_with(
            ResponseTemplate::new(401).insert_header("WWW-Authenticate", "Basic realm=\"git\""),
        )
        .mount(&server)
        .await;
    let url = format!("{}/acme/gitops.git", server.uri());
    let workdir = tmp.path().join("work");
    let mut cfg = RepoConfig::new(&url, "main", &workdir);
    cfg.auth = Auth::Token {
        token,
        username: None,
    };
    cfg.timeout = Duration::from_secs(20);
    let cli = GitCli::new(cfg.clone()).unwrap();
    let err = cli.sync().await.unwrap_err();
    let shown = format!("{err} | {err:?}");
    assert!(
        !shown.contains(SECRET),
        "secret leaked into the error: {shown}"
    );
    assert!(matches!(err, GitOpsError::Command { .. }), "{shown}");
    assert!(
        shown.contains("fetch"),
        "the error names the command: {shown}"
    );
    // The helper answered git with exactly our credentials.
    let reqs = server.received_requests().await.unwrap();
    assert!(
        reqs.iter().any(|r| r
            .headers
            .get("authorization")
            .map(|v| v.to_str().unwrap() == expected)
            .unwrap_or(false)),
        "git never sent the token"
    );
    // Nothing on disk.
    let config = std::fs::read_to_string(workdir.join(".git/config")).unwrap();
    assert!(!config.contains(SECRET), "{config}");
    assert!(config.contains(&url), "{config}");
    assert!(!format!("{cli:?} {cfg:?}").contains(SECRET));

    // Nothing in any command line: arguments carry no secret, and the secret env is only
    // given to network commands.
    let runner = GitRunner::new(&cfg).unwrap();
    for (args, network) in [
        (vec!["fetch", "--prune", "origin"], true),
        (
            vec!["push", "--porcelain", "origin", "HEAD:refs/heads/main"],
            true,
        ),
        (vec!["log", "-1"], false),
    ] {
        let cmd = runner.command(
            &args,
            &RunOpts {
                network,
                ..Default::default()
            },
        );
        let argv: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(!argv.join(" ").contains(SECRET));
        let envs: Vec<(String, Option<String>)> = cmd
            .get_envs()
            .map(|(k, v)| {
                (
                    k.to_string_lossy().into_owned(),
                    v.map(|v| v.to_string_lossy().into_owned()),
                )
            })
            .collect();
        let holders: Vec<&String> = envs
            .iter()
            .filter(|(_, v)| v.as_deref() == Some(SECRET))
            .map(|(k, _)| k)
            .collect();
        if network {
            assert_eq!(holders, vec![super::runner::ENV_PASSWORD]);
        } else {
            assert!(holders.is_empty());
        }
        // Git config passed through the environment names no secret either.
        assert!(envs
            .iter()
            .filter(|(k, _)| k.starts_with("GIT_CONFIG_"))
            .all(|(_, v)| !v.as_deref().unwrap_or("").contains(SECRET)));
        assert!(envs.iter().any(|(k, v)| k.starts_with("GIT_CONFIG_KEY_")
            && v.as_deref() == Some(&format!("credential.{}.helper", server.uri()))));
    }
}

#[test]
fn errors_redact_secrets_even_when_git_echoes_them() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = RepoConfig::new(
        "https://git.example.com/acme/gitops.git",
        "main",
        tmp.path(),
    );
    cfg.auth = Auth::Basic {
        username: "deploy".into(),
        password: token_file(tmp.path(), SECRET),
    };
    git(tmp.path(), &["init", "-q"]);
    let runner = GitRunner::new(&cfg).unwrap();
    // git repeats an unknown revision in its error message.
    let err = runner.run(&["rev-parse", SECRET]).unwrap_err();
    let shown = format!("{err} | {err:?}");
    assert!(!shown.contains(SECRET), "{shown}");
    assert!(shown.contains("***"), "{shown}");
    assert!(matches!(err, GitOpsError::Command { code: Some(_), .. }));
    // URL userinfo is redacted too.
    assert_eq!(
        redact_url_userinfo("fatal: unable to access 'https://bob:hunter2@host/x.git/': 403"),
        "fatal: unable to access 'https://***@host/x.git/': 403"
    );
}

#[test]
fn urls_with_credentials_are_refused_without_echoing_them() {
    let cfg = RepoConfig::new(
        "https://bob:hunter2-pw@git.example.com/x.git",
        "main",
        "/tmp/x",
    );
    let err = GitCli::new(cfg).unwrap_err().to_string();
    assert!(!err.contains("hunter2-pw"), "{err}");
    assert!(err.contains("auth"), "{err}");
    let mut cfg = RepoConfig::new("file:///srv/git/x.git", "main", "/tmp/x");
    cfg.auth = Auth::Token {
        token: SecretSource::Env("X".into()),
        username: None,
    };
    assert!(matches!(GitCli::new(cfg), Err(GitOpsError::Config(_))));
    let cfg = RepoConfig::new("file:///srv/git/x.git", "main..x", "/tmp/x");
    assert!(matches!(GitCli::new(cfg), Err(GitOpsError::Config(_))));
}

#[test]
fn secret_sources_read_files_and_env_and_never_show_content() {
    let tmp = tempfile::tempdir().unwrap();
    let s = token_file(tmp.path(), SECRET).read().unwrap();
    assert_eq!(s.expose(), SECRET);
    assert_eq!(format!("{s:?} {s}"), "*** ***");
    // An always-present variable stands in for a token variable (tests never set env vars).
    assert!(!SecretSource::Env("PATH".into())
        .read()
        .unwrap()
        .expose()
        .is_empty());
    let err = SecretSource::Env("SLOGATE_SURELY_UNSET_VAR".into())
        .read()
        .unwrap_err();
    assert!(err.to_string().contains("SLOGATE_SURELY_UNSET_VAR"));
    std::fs::write(tmp.path().join("empty"), "\n").unwrap();
    assert!(SecretSource::File(tmp.path().join("empty")).read().is_err());
}

#[tokio::test]
async fn ssh_key_auth_uses_git_ssh_command_with_strict_host_keys() {
    let f = Fixture::new();
    let dir = f.tmp.path().join("ssh");
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("id_ed25519");
    let known = dir.join("known hosts"); // a space, to check quoting
    std::fs::write(&key, "not a real key").unwrap();
    std::fs::write(&known, "").unwrap();
    let log = dir.join("ssh.log");
    // A stand-in for ssh that records its arguments and runs the remote command locally.
    let fake = dir.join("fake-ssh");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" >> '{}'\nfor last; do :; done\nexec sh -c \"$last\"\n",
            log.display()
        ),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let mut cfg = f.config();
    cfg.url = format!("ssh://git@gitops.example.com{}", f.remote.display());
    cfg.auth = Auth::SshKey {
        key_file: key.clone(),
        known_hosts_file: Some(known.clone()),
    };
    cfg.ssh_program = Some(fake);
    let cli = GitCli::new(cfg).unwrap();
    f.commit(&[(CHECKOUT_DEPLOY, &deploy("checkout", "v2", 3))], "c1");
    let out = cli
        .revert(&request("breach-ssh", Some(&f.c0)))
        .await
        .unwrap();
    assert!(matches!(out, RevertOutcome::Reverted { .. }), "{out:?}");
    let args: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    let joined = args.join("\n");
    for needle in [
        "-i".to_string(),
        key.display().to_string(),
        "IdentitiesOnly=yes".into(),
        "BatchMode=yes".into(),
        "StrictHostKeyChecking=yes".into(),
        format!("UserKnownHostsFile={}", known.display()),
        "git@gitops.example.com".into(),
    ] {
        assert!(args.contains(&needle), "missing {needle:?} in\n{joined}");
    }
    assert!(
        joined.contains("git-receive-pack"),
        "pushed over ssh:\n{joined}"
    );
}

// ---------------------------------------------------------------------------------------
// Timeouts and guards
// ---------------------------------------------------------------------------------------

#[test]
fn a_hanging_git_is_killed_after_the_timeout() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accept and say nothing.
    let _held = std::thread::spawn(move || {
        let conns: Vec<_> = listener.incoming().take(2).collect();
        std::thread::sleep(Duration::from_secs(10));
        drop(conns);
    });
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = RepoConfig::new(
        format!("git://127.0.0.1:{port}/x.git"),
        "main",
        tmp.path().join("w"),
    );
    cfg.timeout = Duration::from_millis(500);
    let cli = GitCli::new(cfg).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Without the timeout, fetch would wait for the server to close the connection and fail
    // with a transport error, not `Timeout`.
    let err = rt.block_on(cli.sync()).unwrap_err();
    assert!(matches!(err, GitOpsError::Timeout { .. }), "{err:?}");
    assert!(err.to_string().contains("git fetch"), "{err}");
}

#[test]
fn the_module_never_force_pushes() {
    // Needles are built so that this file does not match itself.
    let force = concat!("\"--", "force");
    let lease = concat!("force-", "with-lease");
    let plus_refspec = concat!("\"+", "refs/");
    for (name, src) in [
        ("mod.rs", include_str!("mod.rs")),
        ("repo.rs", include_str!("repo.rs")),
        ("runner.rs", include_str!("runner.rs")),
        ("config.rs", include_str!("config.rs")),
        ("pr.rs", include_str!("pr.rs")),
        ("tests.rs", include_str!("tests.rs")),
    ] {
        assert!(!src.contains(force), "{name} mentions a force flag");
        assert!(
            !src.contains(lease),
            "{name} mentions a lease-based forced push"
        );
        assert!(!src.contains(plus_refspec), "{name} has a forced refspec");
    }
    // The only push command line.
    let repo_src = include_str!("repo.rs");
    assert_eq!(repo_src.matches("\"push\".to_string()").count(), 1);
}

/// The guard reads the app's history (fetching) and asks for the revert right after: the
/// revert builds on that fetch. A push made in between (to another app here) makes the
/// remote refuse the first push; the revert is redone on a new fetch, on top of that push,
/// and the refusal does not count against `push_retries` (0 here).
#[tokio::test]
async fn a_revert_right_after_a_read_shares_its_fetch_and_misses_no_push() {
    let f = Arc::new(Fixture::new());
    let c1 = f.commit(&[(CHECKOUT_DEPLOY, &deploy("checkout", "v2", 3))], "c1");
    let calls = Arc::new(AtomicU32::new(0));
    let hook: repo::BeforePushHook = {
        let calls = calls.clone();
        Arc::new(move |_| {
            calls.fetch_add(1, Ordering::SeqCst);
        })
    };
    let mut cfg = f.config();
    cfg.push_retries = 0;
    let cli = GitCli::new(cfg).unwrap().with_before_push(hook);
    let read = cli.commits_touching(CHECKOUT, Some(&f.c0)).await.unwrap();
    assert_eq!(read.len(), 1);
    let other = f.commit(
        &[(PAYMENTS_DEPLOY, &deploy("payments", "v9", 2))],
        "payments v9",
    );
    let out = cli
        .revert(&request("breach-shared", Some(&f.c0)))
        .await
        .unwrap();
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "the push built on the shared fetch is refused, the one on a new fetch lands"
    );
    landed_on_top(&f, out, &c1, &other);

    // Nothing pushed since the read: one push, on the shared fetch.
    let c2 = f.commit(&[(CHECKOUT_DEPLOY, &deploy("checkout", "v3", 3))], "c2");
    assert_eq!(
        cli.commits_touching(CHECKOUT, Some(&f.c0)).await.unwrap()[0].sha,
        c2
    );
    calls.store(0, Ordering::SeqCst);
    let out = cli.revert(&request("breach-c2", None)).await.unwrap();
    assert!(
        matches!(&out, RevertOutcome::Reverted { reverted, .. } if reverted == &vec![c2.clone()]),
        "{out:?}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // A commit to the app pushed after the last read is not missed: the shared view's
    // "nothing to revert" is not trusted, a new fetch finds it.
    let c3 = f.commit(&[(CHECKOUT_DEPLOY, &deploy("checkout", "v4", 3))], "c3");
    let out = cli.revert(&request("breach-c3", None)).await.unwrap();
    assert!(
        matches!(&out, RevertOutcome::Reverted { reverted, .. } if reverted == &vec![c3.clone()]),
        "{out:?}"
    );
}
