//! `slogate promote` and `slogate approve`, end to end through the real binary: a real
//! bare git remote holding a Kustomize layout (`base/`, `overlays/staging`,
//! `overlays/prod`) with commented kustomization files, a real Prometheus (Debian's
//! package) with 31 days of backfilled history for the SLO gate, the embedded file store
//! for freezes and approvals, and the daemon's promote API on a real loopback port.
//!
//! Only one test starts Prometheus; the others turn the SLO gate off with
//! `--no-slo-check` and test the other gates.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use common::*;
use serde_json::Value;
use slogate::adapters::git::SecretSource;
use slogate::adapters::state::FileStore;
use slogate::guard::state::{AppGuardState, Breach};
use slogate::ports::state::{DecisionKind, DecisionQuery, StateStore};
use slogate::slo::budget::Action;
use tempfile::TempDir;

const CHECKOUT: &str = "registry.example.com/shop/checkout";
const PROD: &str = "overlays/prod/kustomization.yaml";

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/promote")
        .join(rel)
}

fn fixture_text(rel: &str) -> String {
    std::fs::read_to_string(fixture(rel)).expect("read fixture")
}

use common::git::git;

/// A bare remote with the fixture's Kustomize layout on `main`.
struct Gitops {
    tmp: TempDir,
    remote: PathBuf,
    dev: PathBuf,
}

impl Gitops {
    fn new() -> Self {
        let common::git::GitRemote { tmp, remote, dev } = common::git::GitRemote::new();
        for rel in [
            "base/kustomization.yaml",
            "base/deployment.yaml",
            "overlays/staging/kustomization.yaml",
            "overlays/prod/kustomization.yaml",
            "overlays/prod/replicas.yaml",
        ] {
            let to = dev.join(rel);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(fixture(&format!("repo/{rel}")), &to).unwrap();
        }
        git(&dev, &["add", "-A"]);
        git(&dev, &["commit", "-q", "-m", "initial layout"]);
        git(&dev, &["push", "-q", "origin", "main"]);
        Gitops { tmp, remote, dev }
    }

    fn url(&self) -> &str {
        self.remote.to_str().unwrap()
    }

    /// A human commit of one file, pushed.
    fn commit(&self, rel: &str, content: &str, msg: &str) {
        git(&self.dev, &["pull", "-q", "--ff-only", "origin", "main"]);
        std::fs::write(self.dev.join(rel), content).unwrap();
        git(&self.dev, &["add", "-A"]);
        git(&self.dev, &["commit", "-q", "-m", msg]);
        git(&self.dev, &["push", "-q", "origin", "main"]);
    }

    fn head(&self) -> String {
        git(&self.remote, &["rev-parse", "main"]).trim().to_string()
    }

    fn file(&self, rel: &str) -> String {
        git(&self.remote, &["show", &format!("main:{rel}")])
    }

    fn message(&self) -> String {
        git(&self.remote, &["log", "-1", "--format=%B", "main"])
    }

    fn commits(&self) -> usize {
        git(&self.remote, &["rev-list", "--count", "main"])
            .trim()
            .parse()
            .unwrap()
    }

    fn state_dir(&self) -> PathBuf {
        self.tmp.path().join("state")
    }
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\n{}", self.stdout, self.stderr))
    }
}

fn slogate_run(args: &[&str]) -> Run {
    let out: Output = slogate()
        .args(args)
        .env("SLOGATE_LOG", "warn")
        .env_remove("SLOGATE_REPO")
        .env_remove("SLOGATE_PROMETHEUS_URL")
        .env_remove("SLOGATE_ACTOR")
        .output()
        .expect("run slogate");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `slogate promote` staging → prod with the common flags and `extra`.
fn promote(g: &Gitops, extra: &[&str]) -> Run {
    let mut args = vec![
        "promote",
        "--repo",
        g.url(),
        "--source",
        "overlays/staging",
        "--target",
        "overlays/prod",
    ];
    args.extend_from_slice(extra);
    slogate_run(&args)
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

fn freeze(store: &FileStore, app: &str) {
    let state = AppGuardState {
        breach: Some(Breach {
            id: "breach-42".into(),
            slo: "checkout-availability".into(),
            level: Action::Emergency,
            budget_consumed: 0.963,
            since: chrono::Utc::now(),
            base: None,
            reverts: vec![],
        }),
        ..Default::default()
    };
    let key = format!("guard/{app}");
    block_on(async {
        let expected = store.get(&key).await.unwrap().map(|v| v.version);
        store
            .put(&key, serde_json::to_value(&state).unwrap(), expected)
            .await
            .unwrap();
    });
}

fn thaw(store: &FileStore, app: &str) {
    let key = format!("guard/{app}");
    block_on(async {
        let v = store.get(&key).await.unwrap().unwrap();
        let state = AppGuardState::default();
        store
            .put(&key, serde_json::to_value(&state).unwrap(), Some(v.version))
            .await
            .unwrap();
    });
}

fn decisions(store: &FileStore) -> Vec<(DecisionKind, String)> {
    block_on(store.decisions(&DecisionQuery::default()))
        .unwrap()
        .into_iter()
        .map(|r| (r.kind, r.action))
        .collect()
}

// ---------------------------------------------------------------------------------------
// The SLO gate, against a real Prometheus
// ---------------------------------------------------------------------------------------

const STEP: i64 = 300;
const DAY: i64 = 86_400;

/// `http_requests_total{job="checkout",code}` every 5 minutes over `[start, end]`: 10
/// requests per second, 0.05% failing.
fn history(start: i64, end: i64) -> String {
    let per_step = 10.0 * STEP as f64;
    let (mut ok, mut err) = (String::new(), String::new());
    let (mut n_ok, mut n_err) = (0.0f64, 0.0f64);
    let mut t = start;
    while t <= end {
        n_ok += per_step * 0.9995;
        n_err += per_step * 0.0005;
        ok.push_str(&format!(
            "http_requests_total{{job=\"checkout\",code=\"200\"}} {n_ok} {t}\n"
        ));
        err.push_str(&format!(
            "http_requests_total{{job=\"checkout\",code=\"500\"}} {n_err} {t}\n"
        ));
        t += STEP;
    }
    format!("# HELP http_requests Requests.\n# TYPE http_requests counter\n{ok}{err}# EOF\n")
}

/// `promtool tsdb create-blocks-from openmetrics` with one block for the whole history
/// (the default two-hour blocks make 372 of them and take half a minute).
fn backfill(promtool: &Path, work: &Path, data: &Path, om: &str) {
    let input = work.join("history.om");
    std::fs::write(&input, om).expect("write openmetrics");
    std::fs::create_dir_all(data).expect("create data dir");
    run_ok(
        Command::new(promtool)
            .args([
                "tsdb",
                "create-blocks-from",
                "openmetrics",
                "--max-block-duration=768h",
            ])
            .arg(&input)
            .arg(data),
    );
}

#[test]
fn slo_gate_against_real_prometheus() {
    let (Some(prometheus), Some(promtool)) = (require_bin("prometheus"), require_bin("promtool"))
    else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let now = chrono::Utc::now().timestamp();
    let t_end = now - now % STEP;
    backfill(
        &promtool,
        dir.path(),
        &data,
        &history(t_end - 31 * DAY, t_end),
    );
    let prom = Prometheus::start(&prometheus, dir.path(), &data, &prom_config(&[]));
    let at = chrono::DateTime::from_timestamp(t_end, 0)
        .unwrap()
        .to_rfc3339();
    let slos = fixture("slos.yml");
    let slos = slos.to_str().unwrap();
    let g = Gitops::new();
    let before = g.commits();
    let slo_flags = |id: &'static str, min: &'static str| -> Vec<String> {
        vec![
            "--slo".into(),
            slos.into(),
            "--slo-id".into(),
            id.into(),
            "--prometheus".into(),
            prom.url.clone(),
            "--at".into(),
            at.clone(),
            "--min-budget-remaining".into(),
            min.into(),
        ]
    };
    let run = |flags: Vec<String>, more: &[&str]| {
        let mut all: Vec<&str> = flags.iter().map(String::as_str).collect();
        all.extend_from_slice(more);
        promote(&g, &all)
    };

    // Half of the budget left, below a 60% minimum: exit 1 with the numbers, nothing pushed.
    let r = run(
        slo_flags("checkout-availability", "0.6"),
        &["--copy-tag", "--image", CHECKOUT, "-o", "json"],
    );
    assert_eq!(r.code, Some(1), "{}\n{}", r.stdout, r.stderr);
    let j = r.json();
    assert_eq!(j["promoted"], false);
    let slo = &j["gates"][1];
    assert_eq!(slo["name"], "slo");
    assert_eq!(slo["passed"], false);
    assert!(
        slo["detail"]
            .as_str()
            .unwrap()
            .contains("50.0% of the budget remains, below the minimum 60.0%"),
        "{slo}"
    );
    let remaining = slo["numbers"]["slos"][0]["budget_remaining"]
        .as_f64()
        .unwrap();
    assert!((remaining - 0.5).abs() < 0.01, "{remaining}");
    assert!(j["reason"].as_str().unwrap().starts_with("slo: "), "{j}");
    assert_eq!(g.commits(), before, "nothing pushed");

    // Budget exhausted (125% consumed): exit 1.
    let r = run(
        slo_flags("checkout-availability-strict", "0"),
        &["--copy-tag", "--image", CHECKOUT],
    );
    assert_eq!(r.code, Some(1), "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("[FAIL] slo: checkout-availability-strict: the error budget is exhausted (125.0% consumed)"), "{}", r.stdout);

    // No data: a failure of the gate, said so.
    let r = run(
        slo_flags("checkout-ghost", "0"),
        &["--copy-tag", "--image", CHECKOUT],
    );
    assert_eq!(r.code, Some(1), "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("checkout-ghost: no data in Prometheus")
            && r.stdout.contains("never a pass"),
        "{}",
        r.stdout
    );
    assert_eq!(g.commits(), before, "nothing pushed");

    // Healthy SLOs, but the version asked for is not what staging runs: exit 1.
    let r = run(
        slo_flags("checkout-availability", "0.2"),
        &["--image", &format!("{CHECKOUT}=v1.9.9")],
    );
    assert_eq!(r.code, Some(1), "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains(&format!(
            "[FAIL] slo: overlays/staging runs {CHECKOUT} at v1.5.0, not v1.9.9"
        )),
        "{}",
        r.stdout
    );
    assert_eq!(g.commits(), before, "nothing pushed");

    // Healthy: promoted, one commit, only the tag changed, comments kept.
    let r = run(
        slo_flags("checkout-availability", "0.2"),
        &["--copy-tag", "--image", CHECKOUT, "-o", "json"],
    );
    assert_eq!(r.code, Some(0), "{}\n{}", r.stdout, r.stderr);
    let j = r.json();
    assert_eq!(j["promoted"], true);
    assert_eq!(j["image"], CHECKOUT);
    assert_eq!(j["from_tag"], "v1.4.0");
    assert_eq!(j["to_tag"], "v1.5.0");
    assert_eq!(j["dry_run"], false);
    assert_eq!(j["commit"], g.head());
    let names: Vec<&str> = j["gates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["input", "slo", "freeze", "approval"]);
    for gate in j["gates"].as_array().unwrap() {
        assert_eq!(gate["passed"], true, "{gate}");
        assert!(
            gate["detail"].is_string() && gate["numbers"].is_object(),
            "{gate}"
        );
    }
    assert_eq!(g.commits(), before + 1);
    let want = fixture_text("repo/overlays/prod/kustomization.yaml").replacen(
        "    newTag: \"v1.4.0\"   # current prod version",
        "    newTag: \"v1.5.0\"   # current prod version",
        1,
    );
    assert_eq!(
        g.file(PROD),
        want,
        "only the tag changed, comments and quotes kept"
    );
    let msg = g.message();
    assert!(
        msg.starts_with(&format!(
            "promote {CHECKOUT} v1.4.0 -> v1.5.0 to overlays/prod\n"
        )),
        "{msg}"
    );
    assert!(msg.contains("as in overlays/staging"), "{msg}");
    assert!(
        msg.contains("- slo: checkout-availability: 50.0% of the budget remains (min 20.0%)"),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("Slogate-Promote: {CHECKOUT}\n")),
        "{msg}"
    );
    assert!(
        msg.contains("Slogate-Promote-From: v1.4.0\nSlogate-Promote-To: v1.5.0\n"),
        "{msg}"
    );

    // Again: already there, exit 0, nothing pushed.
    let r = run(
        slo_flags("checkout-availability", "0.2"),
        &["--copy-tag", "--image", CHECKOUT],
    );
    assert_eq!(r.code, Some(0), "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("already has") && r.stdout.contains("nothing to promote"),
        "{}",
        r.stdout
    );
    assert_eq!(g.commits(), before + 1);

    // Prometheus down: the gate fails (exit 1), it never passes.
    let port = free_port();
    let r = promote(
        &g,
        &[
            "--slo",
            slos,
            "--prometheus",
            &format!("http://127.0.0.1:{port}"),
            "--prometheus-timeout",
            "5s",
            "--image",
            &format!("{CHECKOUT}=v9"),
        ],
    );
    assert_eq!(r.code, Some(1), "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("could not be evaluated") && r.stdout.contains("unreachable"),
        "{}",
        r.stdout
    );
    drop(prom);
}

// ---------------------------------------------------------------------------------------
// Freeze, approvals, input errors
// ---------------------------------------------------------------------------------------

#[test]
fn a_frozen_target_refuses_and_an_override_goes_through_with_a_trailer() {
    let g = Gitops::new();
    let state = g.state_dir();
    let store = FileStore::open(&state).unwrap();
    freeze(&store, "checkout-prod");
    let before = g.commits();
    let image = format!("{CHECKOUT}=v1.6.0");
    let flags = [
        "--no-slo-check",
        "--image",
        &image,
        "--app",
        "checkout-prod",
        "--state-dir",
        state.to_str().unwrap(),
    ];
    let r = promote(&g, &flags);
    assert_eq!(r.code, Some(1), "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("[FAIL] freeze: checkout-prod is frozen: breach breach-42 of SLO checkout-availability (emergency, 96.3% of the budget consumed)"), "{}", r.stdout);
    assert!(
        r.stdout.contains("[skip] slo: skipped: --no-slo-check"),
        "{}",
        r.stdout
    );
    assert_eq!(g.commits(), before);

    let mut with_override = flags.to_vec();
    with_override.extend(["--override", "hotfix for INC-1234", "-o", "json"]);
    let r = promote(&g, &with_override);
    assert_eq!(r.code, Some(0), "{}\n{}", r.stdout, r.stderr);
    let j = r.json();
    assert_eq!(j["promoted"], true);
    assert_eq!(j["gates"][2]["numbers"]["frozen"], true);
    assert!(
        g.message()
            .contains("Slogate-Override: hotfix for INC-1234\n"),
        "{}",
        g.message()
    );
    assert!(g
        .file(PROD)
        .contains("newTag: \"v1.6.0\"   # current prod version"));

    let log = decisions(&store);
    assert_eq!(
        log,
        vec![
            (DecisionKind::Promote, "refuse".to_string()),
            (DecisionKind::Promote, "promote".to_string())
        ]
    );
    let full = block_on(store.decisions(&DecisionQuery::default())).unwrap();
    assert_eq!(full[1].subject, "checkout-prod");
    assert_eq!(full[1].commits, vec![g.head()]);
    assert_eq!(full[1].observed["to"], "v1.6.0");
}

#[test]
fn an_approval_counts_only_for_the_exact_change() {
    let g = Gitops::new();
    let state = g.state_dir();
    let sd = state.to_str().unwrap();
    let image = format!("{CHECKOUT}=v2.0.0");
    let flags = [
        "--no-slo-check",
        "--image",
        &image,
        "--require-approval",
        "--state-dir",
        sd,
    ];
    let before = g.commits();

    let r = promote(&g, &flags);
    assert_eq!(r.code, Some(1), "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("[FAIL] approval: no approval recorded for this change"),
        "{}",
        r.stdout
    );

    // An approval of another tag, and of another target, do not count.
    for (target, img) in [
        ("overlays/prod", format!("{CHECKOUT}=v2.0.1")),
        ("overlays/staging", image.clone()),
    ] {
        let r = slogate_run(&[
            "approve",
            "--repo",
            g.url(),
            "--target",
            target,
            "--image",
            &img,
            "--actor",
            "alice",
            "--state-dir",
            sd,
        ]);
        assert_eq!(r.code, Some(0), "{}\n{}", r.stdout, r.stderr);
        assert!(r.stdout.starts_with("approved: "), "{}", r.stdout);
    }
    let r = promote(&g, &flags);
    assert_eq!(r.code, Some(1), "{}\n{}", r.stdout, r.stderr);
    assert_eq!(g.commits(), before);

    // The exact change, with the repo spelled differently (trailing .git/ and ./target/).
    let repo_alt = format!("{}/", g.url());
    let r = slogate_run(&[
        "approve",
        "--repo",
        &repo_alt,
        "--target",
        "./overlays/prod/",
        "--image",
        &image,
        "--actor",
        "bob",
        "--comment",
        "CAB-77",
        "--state-dir",
        sd,
        "-o",
        "json",
    ]);
    assert_eq!(r.code, Some(0), "{}\n{}", r.stdout, r.stderr);
    let a = r.json();
    assert_eq!(a["created"], true);
    assert_eq!(a["approval"]["actor"], "bob");
    let r = promote(&g, &[&flags[..], &["-o", "json"]].concat());
    assert_eq!(r.code, Some(0), "{}\n{}", r.stdout, r.stderr);
    let j = r.json();
    assert_eq!(j["gates"][3]["numbers"]["actor"], "bob");
    assert_eq!(j["gates"][3]["numbers"]["key"], a["approval"]["key"]);
    assert!(
        g.message().contains("- approval: approved by bob at "),
        "{}",
        g.message()
    );

    // Approvals are Operator decisions; the promote decisions follow.
    let log = decisions(&FileStore::open(&state).unwrap());
    let approvals = log
        .iter()
        .filter(|(k, a)| *k == DecisionKind::Operator && a == "approve")
        .count();
    assert_eq!(approvals, 3);
    assert_eq!(
        log.last().unwrap(),
        &(DecisionKind::Promote, "promote".to_string())
    );

    // Approving needs an exact version and somewhere to store it.
    let r = slogate_run(&[
        "approve",
        "--repo",
        g.url(),
        "--target",
        "overlays/prod",
        "--image",
        CHECKOUT,
        "--actor",
        "a",
        "--state-dir",
        sd,
    ]);
    assert_eq!(r.code, Some(2));
    assert!(
        r.stderr.contains("--image") && r.stderr.contains("one exact version"),
        "{}",
        r.stderr
    );
    let r = slogate_run(&[
        "approve",
        "--repo",
        g.url(),
        "--target",
        "overlays/prod",
        "--image",
        &image,
        "--actor",
        "a",
    ]);
    assert_eq!(r.code, Some(2));
    assert!(r.stderr.contains("--state-dir"), "{}", r.stderr);
}

#[test]
fn bad_input_exits_2_naming_the_flag_file_or_field() {
    let g = Gitops::new();
    let img = format!("{CHECKOUT}=v2");
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (
            vec!["--no-slo-check", "--image", "Checkout=v2"],
            vec!["--image", "invalid image name `Checkout`"],
        ),
        (
            vec!["--no-slo-check", "--image", "checkout=v 2"],
            vec!["--image", "invalid tag `v 2`"],
        ),
        (
            vec!["--no-slo-check", "--image", "checkout@sha256:12"],
            vec!["--image", "invalid digest"],
        ),
        (
            vec!["--no-slo-check", "--image", "checkout"],
            vec!["--image", "--copy-tag"],
        ),
        (
            vec!["--no-slo-check", "--image", &img, "--copy-tag"],
            vec!["--copy-tag", "one or the other"],
        ),
        (
            vec!["--image", &img],
            vec!["--slo", "--no-slo-check", "--prometheus"],
        ),
        (
            vec![
                "--no-slo-check",
                "--image",
                &img,
                "--min-budget-remaining",
                "1.5",
            ],
            vec!["--min-budget-remaining 1.5", "between 0 and 1"],
        ),
        (
            vec!["--no-slo-check", "--image", &img, "--require-approval"],
            vec!["--require-approval", "--state-dir"],
        ),
        (
            vec![
                "--no-slo-check",
                "--image",
                &img,
                "--app",
                "a/b",
                "--state-dir",
                "/tmp",
            ],
            vec!["--app `a/b`"],
        ),
        (
            vec![
                "--no-slo-check",
                "--image",
                &img,
                "--slogate-url",
                "http://127.0.0.1:1",
            ],
            vec!["--slogate-url", "--slogate-token-file"],
        ),
        (
            vec![
                "--no-slo-check",
                "--copy-tag",
                "--image",
                "registry.example.com/shop/cart",
            ],
            vec![
                "--copy-tag",
                "overlays/staging/kustomization.yaml",
                "`registry.example.com/shop/cart` is not listed",
                "registry.example.com/shop/checkout, registry.example.com/shop/payments",
            ],
        ),
        (
            vec!["--no-slo-check", "--copy-tag"],
            vec!["--image", "lists 2 images"],
        ),
    ];
    for (extra, needles) in cases {
        let r = promote(&g, &extra);
        assert_eq!(r.code, Some(2), "{extra:?}: {}\n{}", r.stdout, r.stderr);
        for n in needles {
            assert!(
                r.stderr.contains(n),
                "{extra:?}: want `{n}` in:\n{}",
                r.stderr
            );
        }
    }

    // A missing overlay.
    let r = slogate_run(&[
        "promote",
        "--repo",
        g.url(),
        "--source",
        "overlays/stagin",
        "--target",
        "overlays/prod",
        "--no-slo-check",
        "--image",
        &img,
    ]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("--source overlays/stagin: no such directory on branch main of"),
        "{}",
        r.stderr
    );
    let r = slogate_run(&[
        "promote",
        "--repo",
        g.url(),
        "--source",
        "overlays/staging",
        "--target",
        "base/../../etc",
        "--no-slo-check",
        "--image",
        &img,
    ]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(
        r.stderr.contains("--target `base/../../etc`"),
        "{}",
        r.stderr
    );
    // A missing repository or branch.
    let r = slogate_run(&[
        "promote",
        "--repo",
        "/nonexistent/gitops.git",
        "--source",
        "overlays/staging",
        "--target",
        "overlays/prod",
        "--no-slo-check",
        "--image",
        &img,
    ]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(
        r.stderr.contains("--repo /nonexistent/gitops.git"),
        "{}",
        r.stderr
    );
    let r = promote(&g, &["--branch", "nope", "--no-slo-check", "--image", &img]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(
        r.stderr.contains("--branch nope") && r.stderr.contains("does not exist"),
        "{}",
        r.stderr
    );

    // Bad YAML in the target, then a target without `images`: named with the file.
    g.commit(PROD, "images:\n  - name: x\n  newTag: [\n", "break prod");
    let r = promote(&g, &["--no-slo-check", "--image", &img, "-o", "json"]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("overlays/prod/kustomization.yaml: invalid YAML"),
        "{}",
        r.stderr
    );
    let j = r.json();
    assert_eq!(j["promoted"], false);
    assert_eq!(j["gates"][0]["name"], "input");
    assert_eq!(j["gates"][0]["passed"], false);
    assert!(j["reason"].as_str().unwrap().contains("invalid YAML"));
    // A target without `images`: the field is added, as `kustomize edit set image` does.
    g.commit(PROD, "resources:\n  - ../../base\n", "no images");
    let r = promote(&g, &["--no-slo-check", "--image", &img]);
    assert_eq!(r.code, Some(0), "{}\n{}", r.stdout, r.stderr);
    assert_eq!(
        g.file(PROD),
        format!("resources:\n  - ../../base\nimages:\n- name: {CHECKOUT}\n  newTag: v2\n")
    );
    g.commit(
        PROD,
        "images: [{name: registry.example.com/shop/checkout, newTag: v1}]\n",
        "flow",
    );
    let r = promote(&g, &["--no-slo-check", "--image", &img]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(
        r.stderr.contains("line 1: a flow-style list"),
        "{}",
        r.stderr
    );
}

#[test]
fn dry_run_digest_and_a_new_entry() {
    let g = Gitops::new();
    let before = g.commits();
    let digest = format!("sha256:{}", "ab".repeat(32));
    let r = promote(
        &g,
        &[
            "--no-slo-check",
            "--image",
            &format!("{CHECKOUT}@{digest}"),
            "--dry-run",
            "-o",
            "json",
        ],
    );
    assert_eq!(r.code, Some(0), "{}\n{}", r.stdout, r.stderr);
    let j = r.json();
    assert_eq!(
        (j["promoted"].clone(), j["dry_run"].clone()),
        (Value::Bool(false), Value::Bool(true))
    );
    assert!(
        j["reason"].as_str().unwrap().contains("not committed"),
        "{j}"
    );
    assert_eq!(g.commits(), before);

    let r = promote(
        &g,
        &["--no-slo-check", "--image", &format!("{CHECKOUT}@{digest}")],
    );
    assert_eq!(r.code, Some(0), "{}\n{}", r.stdout, r.stderr);
    // The digest takes the tag's line: its quoting and inline comment stay.
    let prod = g.file(PROD);
    assert!(
        !prod.contains("    newTag: \"v1.4.0\"   # current prod version\n")
            && prod.contains(&format!(
                "    digest: \"{digest}\"   # current prod version\n"
            )),
        "{prod}"
    );

    // An image the target does not list yet gets an entry.
    let r = promote(
        &g,
        &[
            "--no-slo-check",
            "--image",
            "registry.example.com/shop/cart=v0.1.0",
        ],
    );
    assert_eq!(r.code, Some(0), "{}\n{}", r.stdout, r.stderr);
    assert!(g.file(PROD).contains("    newTag: v3.0.0\n  - name: registry.example.com/shop/cart\n    newTag: v0.1.0\n\npatches:"), "{}", g.file(PROD));
}

// ---------------------------------------------------------------------------------------
// The daemon API path
// ---------------------------------------------------------------------------------------

/// The promote API router on a loopback port, in a thread of its own, over a file store.
fn serve_api(state: &Path, token_file: &Path) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    let state = state.to_path_buf();
    let token_file = token_file.to_path_buf();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let store: Arc<dyn StateStore> = Arc::new(FileStore::open(&state).expect("store"));
            let app =
                slogate::promote::api::router_with_token(store, SecretSource::File(token_file));
            let l = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            tx.send(l.local_addr().expect("addr")).expect("send addr");
            axum::serve(l, app).await.expect("serve");
        });
    });
    let addr = rx.recv().expect("server address");
    format!("http://{addr}")
}

#[test]
fn through_the_daemon_api() {
    let g = Gitops::new();
    let state = g.state_dir();
    let token = g.tmp.path().join("api-token");
    std::fs::write(&token, "t0ken-for-ci\n").unwrap();
    let url = serve_api(&state, &token);
    let store = FileStore::open(&state).unwrap();
    freeze(&store, "checkout-prod");
    let tf = token.to_str().unwrap();
    let image = format!("{CHECKOUT}=v1.7.0");
    let api = ["--slogate-url", &url, "--slogate-token-file", tf];
    let flags: Vec<&str> = [
        &[
            "--no-slo-check",
            "--image",
            &image,
            "--app",
            "checkout-prod",
            "--require-approval",
        ][..],
        &api[..],
    ]
    .concat();

    // Frozen and not approved: both gates fail, through the API.
    let r = promote(&g, &[&flags[..], &["-o", "json"]].concat());
    assert_eq!(r.code, Some(1), "{}\n{}", r.stdout, r.stderr);
    let j = r.json();
    assert_eq!(j["gates"][2]["passed"], false);
    assert_eq!(j["gates"][2]["numbers"]["breach"], "breach-42");
    assert_eq!(j["gates"][3]["passed"], false);

    // Approve through the API, thaw: promoted.
    let r = slogate_run(
        &[
            &[
                "approve",
                "--repo",
                g.url(),
                "--target",
                "overlays/prod",
                "--image",
                &image,
                "--actor",
                "carol",
            ][..],
            &api[..],
        ]
        .concat(),
    );
    assert_eq!(r.code, Some(0), "{}\n{}", r.stdout, r.stderr);
    thaw(&store, "checkout-prod");
    let r = promote(&g, &flags);
    assert_eq!(r.code, Some(0), "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("[pass] approval: approved by carol"),
        "{}",
        r.stdout
    );
    assert!(g.file(PROD).contains("newTag: \"v1.7.0\""));

    // The decisions went through the API into the daemon's store.
    let log = decisions(&store);
    assert_eq!(
        log,
        vec![
            (DecisionKind::Promote, "refuse".to_string()),
            (DecisionKind::Operator, "approve".to_string()),
            (DecisionKind::Promote, "promote".to_string()),
        ]
    );
    let full = block_on(store.decisions(&DecisionQuery::default())).unwrap();
    assert_eq!(full[1].actor.as_deref(), Some("carol"));
    assert_eq!(full[1].trigger, "api");

    // A wrong token: the freeze cannot be read, so the gate fails closed (exit 1).
    let wrong = g.tmp.path().join("wrong-token");
    std::fs::write(&wrong, "nope").unwrap();
    let r = promote(
        &g,
        &[
            "--no-slo-check",
            "--image",
            &format!("{CHECKOUT}=v1.8.0"),
            "--app",
            "checkout-prod",
            "--slogate-url",
            &url,
            "--slogate-token-file",
            wrong.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, Some(1), "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("cannot read the guard state") && r.stdout.contains("HTTP 401"),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("t0ken") && !r.stderr.contains("t0ken"));
}
