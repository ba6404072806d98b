//! Every documented mode runs: the `slogate` binary is started at least once in each value of
//! the mode keys of the README's configuration reference, and what the mode is for is
//! checked on the real component it drives.
//!
//! | key | values | what is checked |
//! | --- | --- | --- |
//! | `gitops.mode` | `push` | a breach reverts the bad deploy with one commit on the watched branch of a real bare remote |
//! | `gitops.mode` + `gitops.forge.type` | `pull-request` × `github`, `gitlab`, `gitea` | a breach opens one pull request on the (wiremock) forge from a branch of the real remote; the watched branch is untouched |
//! | `state.backend` | `file` | the guard's state document is in `state.dir` |
//! | `state.backend` | `kube` | the guard's state document is a ConfigMap on a real API server |
//! | `rollouts.router` | `file` | a Rollout's first step is written to its weights file |
//! | `rollouts.router` | `kube` | a Rollout's first step is patched into a Gateway API HTTPRoute on a real API server |
//!
//! The values are not listed by hand: [`documented_modes`] reads each mode key's row of the
//! README's configuration reference and takes its backticked lower-case words (less the few
//! that name other keys, [`NOT_VALUES`]). A value documented there without a run in
//! [`RUNS`], or one the daemon's config loader refuses, fails
//! `every_documented_mode_runs_here`, so a mode cannot be documented without being run.
//!
//! Needs Prometheus and promtool, and for the `kube` modes the API server tools
//! (`SLOGATE_TOOLS`); FAILS without them unless `SLOGATE_E2E=0`.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::daemon::{port, remote_with_bad_deploy, Burning, Daemon, PROD};
use common::forge::{FakeForge, Kind};
use common::git::{kustomization, GitRemote};
use common::slogate;
use slogate::model::trailers::{parse_trailers, trailer_values};

/// The keys whose values are modes of the daemon.
const MODE_KEYS: [&str; 4] = [
    "gitops.mode",
    "gitops.forge.type",
    "state.backend",
    "rollouts.router",
];

/// Each documented `(key, value)` and the test of this file that starts the binary in it.
const RUNS: &[(&str, &str, &str)] = &[
    ("gitops.mode", "push", "gitops_push_and_state_file"),
    (
        "gitops.mode",
        "pull-request",
        "gitops_pull_request_on_each_forge",
    ),
    (
        "gitops.forge.type",
        "github",
        "gitops_pull_request_on_each_forge",
    ),
    (
        "gitops.forge.type",
        "gitlab",
        "gitops_pull_request_on_each_forge",
    ),
    (
        "gitops.forge.type",
        "gitea",
        "gitops_pull_request_on_each_forge",
    ),
    ("state.backend", "file", "gitops_push_and_state_file"),
    ("state.backend", "kube", "state_kube_and_router_kube"),
    ("rollouts.router", "file", "router_file"),
    ("rollouts.router", "kube", "state_kube_and_router_kube"),
];

fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap()
}

/// A config in which `key: value` is the only thing that can be wrong.
fn config_with(key: &str, value: &str) -> Vec<String> {
    let base = "prometheus: {url: 'http://127.0.0.1:9'}\nslos: {paths: ['/nonexistent']}\n";
    let forge = |t: &str| match t {
        "gitlab" => {
            format!("{{type: {t}, api_url: 'https://h/api/v4', project: p, token: {{env: T}}}}")
        }
        _ => {
            format!("{{type: {t}, api_url: 'https://h/api', owner: o, repo: r, token: {{env: T}}}}")
        }
    };
    match key {
        "gitops.mode" => vec![format!(
            "{base}gitops: {{url: /x.git, mode: {value}, forge: {}}}\n",
            forge("github")
        )],
        "gitops.forge.type" => vec![format!(
            "{base}gitops: {{url: /x.git, mode: pull-request, forge: {}}}\n",
            forge(value)
        )],
        "state.backend" => vec![format!(
            "{base}state: {{backend: {value}, namespace: ns}}\n"
        )],
        "rollouts.router" => vec![format!("{base}rollouts: {{router: {value}}}\n")],
        other => panic!("no config for mode key {other}"),
    }
}

fn loads(config: &str) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.yaml");
    std::fs::write(&p, config).unwrap();
    slogate::runtime::config::Config::load_in(&p, Some(Default::default()), false).is_ok()
}

/// Backticked words in a mode key's row that are not its values (they name other keys).
const NOT_VALUES: &[(&str, &str)] = &[("state.backend", "cluster"), ("rollouts.router", "cluster")];

/// The documented values of every mode key: the backticked lower-case words of its row in
/// the README's configuration reference (less [`NOT_VALUES`]).
fn documented_modes() -> BTreeSet<(String, String)> {
    let text = readme();
    let mut out = BTreeSet::new();
    for key in MODE_KEYS {
        let row = text
            .lines()
            .find(|l| l.starts_with(&format!("| `{key}` |")))
            .unwrap_or_else(|| panic!("README's configuration reference has no row for {key}"));
        let words: BTreeSet<&str> = row
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|w| {
                !w.is_empty()
                    && w.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            })
            .filter(|w| !NOT_VALUES.contains(&(key, *w)))
            .collect();
        assert!(
            words.len() >= 2,
            "fewer than two values for {key} in: {row}"
        );
        out.extend(words.into_iter().map(|w| (key.to_string(), w.to_string())));
    }
    out
}

#[test]
fn every_documented_mode_runs_here() {
    let documented = documented_modes();
    let run: BTreeSet<(String, String)> = RUNS
        .iter()
        .map(|(k, v, _)| (k.to_string(), v.to_string()))
        .collect();
    let missing: Vec<_> = documented.difference(&run).collect();
    assert!(
        missing.is_empty(),
        "documented in README but never run by tests/modes_matrix.rs: {missing:?}"
    );
    let stale: Vec<_> = run.difference(&documented).collect();
    assert!(stale.is_empty(), "run here but not documented: {stale:?}");
    // Every documented value is one the daemon's config loader takes…
    for (key, value) in &documented {
        assert!(
            config_with(key, value).iter().any(|c| loads(c)),
            "README documents {key}: {value}, which the daemon refuses"
        );
    }
    // …and the loader refuses what is not a value, so that check can fail.
    assert!(!config_with("state.backend", "cluster")
        .iter()
        .any(|c| loads(c)));
    assert!(!config_with("gitops.forge.type", "bitbucket")
        .iter()
        .any(|c| loads(c)));
}

/// `slogate run --once --config <dir>/<name>.yaml` with `env`; must exit 0.
fn run_once(dir: &Path, name: &str, config: &str, env: &[(&str, &std::ffi::OsStr)]) -> String {
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, config).unwrap();
    let mut cmd = slogate();
    cmd.args(["run", "--once", "--config"])
        .arg(&path)
        .env_remove("KUBERNETES_SERVICE_HOST");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let shown = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "slogate run --once: {shown}");
    shown
}

#[test]
fn gitops_push_and_state_file() {
    let Some(b) = Burning::start() else { return };
    let work = b.work().to_path_buf();
    let (remote, bad) = remote_with_bad_deploy();
    let state = work.join("state");
    let extra = format!(
        "gitops:\n  url: {}\n  workdir: {}\n  mode: push\n",
        remote.url(),
        work.join("repo").display()
    );
    let config = b
        .config(port(), &state, &extra)
        .replace("  dir: ", "  backend: file\n  dir: ");
    run_once(&work, "push", &config, &[]);
    let reverts: Vec<_> = remote
        .log()
        .into_iter()
        .map(|(sha, msg)| (sha, parse_trailers(&msg)))
        .filter(|(_, t)| !trailer_values(t, "Slogate-Breach").is_empty())
        .collect();
    assert_eq!(reverts.len(), 1, "{reverts:?}");
    assert_eq!(
        trailer_values(&reverts[0].1, "Slogate-Reverts"),
        vec![bad.as_str()]
    );
    assert_eq!(remote.show(PROD), kustomization("checkout", "v1"));
    // state.backend: file
    let doc: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(state.join("docs/guard/checkout.json")).unwrap(),
    )
    .unwrap();
    assert!(
        doc["value"]["breach"]["id"]
            .as_str()
            .unwrap()
            .starts_with("checkout/checkout-availability/emergency/"),
        "{doc}"
    );
}

#[test]
fn gitops_pull_request_on_each_forge() {
    let Some(b) = Burning::start() else { return };
    let work = b.work().to_path_buf();
    let token = work.join("forge-token");
    std::fs::write(&token, "forge-token-for-the-matrix").unwrap();
    for kind in [Kind::Github, Kind::Gitlab, Kind::Gitea] {
        let (remote, bad) = remote_with_bad_deploy();
        let head = remote.remote_git(&["rev-parse", "main"]).trim().to_string();
        let forge = FakeForge::start(kind, remote.remote.clone(), "forge-token-for-the-matrix");
        let extra = format!(
            "gitops:\n  url: {}\n  workdir: {}\n  mode: pull-request\n{}",
            remote.url(),
            work.join(format!("repo-{}", kind.name())).display(),
            forge.config(&token)
        );
        let state = work.join(format!("state-{}", kind.name()));
        run_once(&work, kind.name(), &b.config(port(), &state, &extra), &[]);
        let prs = forge.prs();
        assert_eq!(prs.len(), 1, "{}: {prs:?}", kind.name());
        assert!(prs[0].body.contains(&bad[..12]), "{}", prs[0].body);
        assert_eq!(remote.remote_git(&["rev-parse", "main"]).trim(), head);
    }
}

const ROLLOUT_FILE: &str = r#"apiVersion: slogate.dev/v1alpha1
kind: Rollout
metadata: {name: checkout, namespace: NS}
spec:
  traffic:
    httpRoute: {name: checkout, stableBackend: {name: checkout, port: 80}, canaryBackend: {name: checkout-canary, port: 80}}
  workloads: {stable: {name: checkout}, canary: {name: checkout-canary}}
  steps: [30, 100]
  interval: 1h
  progressDeadline: 2h
  analysis:
    metrics:
      - {name: canary-success-rate, query: "vector(1)", min: 0.99}
  gitops: {app: checkout, path: apps/checkout/overlays/prod}
"#;

/// A daemon config that runs one Rollout in `ns` from a file (no guard), `router` as
/// given, and the GitOps remote it names.
fn rollout_config(b: &Burning, dir: &Path, ns: &str, router: &str) -> (String, GitRemote) {
    let remote = GitRemote::new();
    remote.commit(&[(PROD, &kustomization("checkout", "v1"))], "checkout v1");
    let gitops = format!(
        "gitops:\n  url: {}\n  workdir: {}\n",
        remote.url(),
        dir.join("repo").display()
    );
    let config = b.rollout_config(dir, ns, &ROLLOUT_FILE.replace("NS", ns), router, &gitops);
    (config, remote)
}

#[test]
fn router_file() {
    let Some(b) = Burning::start() else { return };
    let dir = b.work().join("router-file");
    let (config, _remote) = rollout_config(&b, &dir, "shop", "file");
    let mut d = Daemon::start(b.work(), "router-file", &config, &[]);
    let weights = d.wait("the weights file", |_| {
        let text = std::fs::read_to_string(dir.join("weights/shop/checkout.json")).ok()?;
        serde_json::from_str::<serde_json::Value>(&text).ok()
    });
    assert!(d.terminate().success());
    assert_eq!(weights, serde_json::json!({"stable": 70, "canary": 30}));
}

#[test]
fn state_kube_and_router_kube() {
    let Some(api) = common::apiserver::shared() else {
        return;
    };
    let Some(b) = Burning::start() else { return };
    let work = b.work().to_path_buf();
    let ns = api.namespace("matrix");
    let kubeconfig = api.admin_kubeconfig.clone();
    let kube_env: [(&str, &std::ffi::OsStr); 2] = [
        ("KUBECONFIG", kubeconfig.as_os_str()),
        ("HOME", work.as_os_str()),
    ];

    // state.backend: kube — the guard's state document is a ConfigMap.
    let (remote, _) = remote_with_bad_deploy();
    let extra = format!(
        "gitops:\n  url: {}\n  workdir: {}\n",
        remote.url(),
        work.join("repo").display()
    );
    let config = b.config(port(), &work.join("state"), &extra).replace(
        "  dir: ",
        &format!("  backend: kube\n  namespace: {ns}\n  dir: "),
    );
    run_once(&work, "state-kube", &config, &kube_env);
    let name = slogate::adapters::kube::configmap_store::configmap_name("guard/checkout");
    let cm = api.get(&format!("/api/v1/namespaces/{ns}/configmaps/{name}"));
    assert_eq!(
        cm["metadata"]["annotations"]["slogate.dev/key"], "guard/checkout",
        "{cm}"
    );
    assert!(
        cm.to_string()
            .contains("checkout/checkout-availability/emergency/"),
        "the breach is in the ConfigMap: {cm}"
    );
    assert!(!work.join("state/docs/guard/checkout.json").exists());

    // rollouts.router: kube — the first step is patched into the HTTPRoute.
    api.apply(&format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: checkout, namespace: {ns}}}\nspec:\n  parentRefs: [{{name: gateway, namespace: infra}}]\n  rules:\n  - backendRefs:\n    - {{name: checkout, port: 80, weight: 100}}\n    - {{name: checkout-canary, port: 80, weight: 0}}\n"
    ));
    let dir = work.join("router-kube");
    let (config, _remote) = rollout_config(&b, &dir, &ns, "kube");
    let env: Vec<(&str, &str)> = vec![
        ("KUBECONFIG", kubeconfig.to_str().unwrap()),
        ("HOME", work.to_str().unwrap()),
    ];
    let mut d = Daemon::start(&work, "router-kube", &config, &env);
    let weights = d.wait("the HTTPRoute's weights", |_| {
        let route = api.get(&format!(
            "/apis/gateway.networking.k8s.io/v1/namespaces/{ns}/httproutes/checkout"
        ));
        let refs = route["spec"]["rules"][0]["backendRefs"].as_array()?.clone();
        let w: Vec<u64> = refs.iter().filter_map(|r| r["weight"].as_u64()).collect();
        (w == [70, 30]).then_some(w)
    });
    assert!(d.terminate().success());
    assert_eq!(weights, [70, 30]);
    assert!(
        !dir.join("weights").exists(),
        "the kube router writes no weights file"
    );
}
