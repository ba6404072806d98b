//! Tenant scoping of Rollouts through the binary (`slogate run` with `rollouts.paths`, the
//! file router and the file state store, a real Prometheus and a bare git remote):
//!
//! - three Rollouts in namespace `shop`, with `rollouts.gitops_paths: {shop: [apps/shop]}`:
//!   `ok` (its route in `shop`, its path under `apps/shop`) runs, fails its analysis and
//!   reverts its commit, which shows that reverts happen here; `cross` names an HTTPRoute in
//!   `payments` and `outside` the path `apps/payments`: neither runs (no weights file, no
//!   commit under `apps/payments`, although `outside`'s analysis would fail as `ok`'s does);
//! - each refused one has `Admitted=False` with its reason in `slogate rollout status` (the
//!   state directory, and the daemon's API), one
//!   `refuse` record in `slogate decisions` naming the field and the rule (after several
//!   resyncs and a restart), and `slogate_rollouts{state="refused"}` counts them;
//! - without `rollouts.gitops_paths`, `slogate run` warns at start that Rollouts are not
//!   scoped, and `outside` runs.

mod common;

use std::path::Path;
use std::time::Duration;

use common::daemon::{port, Daemon};
use common::git::{kustomization, GitRemote};
use common::{metric, prom_config, require_bin, run_ok, slogate, Prometheus};
use serde_json::Value;

const SHOP: &str = "apps/shop/kustomization.yaml";
const PAYMENTS: &str = "apps/payments/kustomization.yaml";

/// A Rollout in `shop` whose analysis fails at once when `failing` (and then aborts and
/// reverts the newest commit under `path`), with its route in `route_ns` (none: `shop`).
fn rollout(name: &str, route_ns: Option<&str>, path: &str, failing: bool) -> String {
    let ns = route_ns
        .map(|n| format!(", namespace: {n}"))
        .unwrap_or_default();
    let value = if failing { 0 } else { 1 };
    format!(
        r#"apiVersion: slogate.dev/v1alpha1
kind: Rollout
metadata: {{name: {name}, namespace: shop}}
spec:
  traffic:
    httpRoute: {{name: {name}{ns}, stableBackend: {{name: {name}, port: 80}}, canaryBackend: {{name: {name}-canary, port: 80}}}}
  workloads: {{stable: {{name: {name}}}, canary: {{name: {name}-canary}}}}
  steps: [50, 100]
  interval: 2s
  failureLimit: 0
  progressDeadline: 1h
  analysis:
    metrics:
      - {{name: success, query: "vector({value})", min: 0.99}}
  gitops: {{app: {name}, path: {path}}}
"#
    )
}

struct Setup {
    _prom: Prometheus,
    prom_url: String,
    remote: GitRemote,
    dir: tempfile::TempDir,
}

fn setup() -> Option<Setup> {
    let prometheus = require_bin("prometheus")?;
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path();
    let data = work.join("prom-data");
    let prom = Prometheus::start(&prometheus, work, &data, &prom_config(&[]));
    let remote = GitRemote::new();
    remote.commit(
        &[
            (SHOP, &kustomization("shop", "v1")),
            (PAYMENTS, &kustomization("payments", "v1")),
        ],
        "shop and payments v1",
    );
    remote.commit(&[(SHOP, &kustomization("shop", "v2"))], "shop v2");
    remote.commit(
        &[(PAYMENTS, &kustomization("payments", "v2"))],
        "payments v2",
    );
    let rollouts = work.join("rollouts");
    std::fs::create_dir_all(&rollouts).unwrap();
    for (name, text) in [
        ("ok", rollout("ok", None, "apps/shop", true)),
        (
            "cross",
            rollout("cross", Some("payments"), "apps/shop", false),
        ),
        ("outside", rollout("outside", None, "apps/payments", true)),
    ] {
        std::fs::write(rollouts.join(format!("{name}.yaml")), text).unwrap();
    }
    std::fs::write(
        work.join("versions.yaml"),
        "shop/ok: {stable: v1, canary: v2}\nshop/cross: {stable: v1, canary: v2}\nshop/outside: {stable: v1, canary: v2}\n",
    )
    .unwrap();
    Some(Setup {
        prom_url: prom.url.clone(),
        _prom: prom,
        remote,
        dir,
    })
}

impl Setup {
    fn work(&self) -> &Path {
        self.dir.path()
    }

    fn config(&self, state: &str, scoping: &str) -> String {
        let w = self.work();
        format!(
            "cluster: off\nprometheus:\n  url: {prom}\nslos:\n  paths: [{slos}]\nserver:\n  listen: 127.0.0.1:{port}\nstate:\n  dir: {state}\ngitops:\n  url: {remote}\n  workdir: {repo}\nrollouts:\n  paths: [{rollouts}]\n  router: file\n  weights_dir: {weights}\n  versions_file: {versions}\n  resync_interval: 1s\n{scoping}",
            prom = self.prom_url,
            slos = w.join("slos").display(),
            port = port(),
            state = w.join(state).display(),
            remote = self.remote.url(),
            repo = w.join(format!("{state}-repo")).display(),
            rollouts = w.join("rollouts").display(),
            weights = w.join(format!("{state}-weights")).display(),
            versions = w.join("versions.yaml").display(),
        )
    }

    /// Commits on the remote whose message carries `Slogate-Rollout: shop/<name>`.
    fn reverts_of(&self, name: &str) -> Vec<String> {
        self.remote
            .log()
            .into_iter()
            .filter(|(_, msg)| msg.contains(&format!("Slogate-Rollout: shop/{name}")))
            .map(|(sha, _)| sha)
            .collect()
    }
}

fn json(cmd: &mut std::process::Command) -> Value {
    let out = run_ok(cmd);
    let start = out.find(['{', '[']).expect("JSON output");
    serde_json::Deserializer::from_str(&out[start..])
        .into_iter::<Value>()
        .next()
        .unwrap()
        .unwrap()
}

#[test]
fn out_of_scope_rollouts_are_refused_in_file_mode() {
    let Some(s) = setup() else { return };
    std::fs::create_dir_all(s.work().join("slos")).unwrap();
    let scoping = "  gitops_paths:\n    shop: [apps/shop]\n";
    let config = s.config("state", scoping);
    let mut d = Daemon::start(s.work(), "scoped", &config, &[]);

    // `ok` runs: its weights are written, its analysis fails and its commit is reverted.
    d.wait("the revert of ok's commit", |_| {
        (!s.reverts_of("ok").is_empty()).then_some(())
    });
    let weights = s.work().join("state-weights/shop");
    assert!(weights.join("ok.json").exists());
    // Let a few resyncs (every second) pass before counting records.
    std::thread::sleep(Duration::from_secs(3));
    let metrics = d.metrics();
    assert_eq!(
        metric(&metrics, "slogate_rollouts{state=\"refused\"}"),
        Some(2.0),
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "slogate_rollouts{state=\"running\"}"),
        Some(1.0),
        "{metrics}"
    );
    assert!(!d.log().contains("Rollouts are not scoped"), "{}", d.log());
    // The daemon's API shows a refused Rollout too, with the condition.
    let v = json(slogate().args([
        "rollout",
        "status",
        "shop/cross",
        "-o",
        "json",
        "--url",
        &d.base,
    ]));
    assert_eq!(
        v["status"]["conditions"][0]["reason"], "RouteOutsideNamespace",
        "{v}"
    );
    assert!(d.terminate().success());

    // Restarted over the same state: still refused, nothing recorded twice.
    let mut d = Daemon::start(s.work(), "scoped-again", &config, &[]);
    d.wait("the refusals counted again", |d| {
        (metric(&d.metrics(), "slogate_rollouts{state=\"refused\"}") == Some(2.0)).then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    assert!(d.terminate().success());

    // Neither refused Rollout ran: no weights, no commit under apps/payments.
    assert!(!weights.join("cross.json").exists());
    assert!(!weights.join("outside.json").exists());
    assert!(s.reverts_of("outside").is_empty() && s.reverts_of("cross").is_empty());
    let head_payments =
        s.remote
            .remote_git(&["log", "-1", "--format=%s", "main", "--", "apps/payments"]);
    assert_eq!(head_payments.trim(), "payments v2");
    assert_eq!(s.reverts_of("ok").len(), 1);

    // Their status says why, and the decision log has one record each.
    let state = s.work().join("state");
    for (name, reason, field) in [
        (
            "cross",
            "RouteOutsideNamespace",
            "spec.traffic.httpRoute.namespace",
        ),
        ("outside", "GitOpsPathNotAllowed", "spec.gitops.path"),
    ] {
        let v = json(
            slogate()
                .args([
                    "rollout",
                    "status",
                    &format!("shop/{name}"),
                    "-o",
                    "json",
                    "--state-dir",
                ])
                .arg(&state),
        );
        let c = &v["status"]["conditions"][0];
        assert_eq!(c["type"], "Admitted", "{v}");
        assert_eq!(c["status"], "False", "{v}");
        assert_eq!(c["reason"], reason, "{v}");
        assert!(c["message"].as_str().unwrap().contains(field), "{v}");
        assert_eq!(v["status"]["phase"], "Pending", "{v}");

        let records = json(
            slogate()
                .args([
                    "decisions",
                    "-o",
                    "json",
                    "--subject",
                    &format!("shop/{name}"),
                    "--state-dir",
                ])
                .arg(&state),
        );
        let records = records.as_array().unwrap();
        assert_eq!(records.len(), 1, "{records:?}");
        let r = &records[0];
        assert_eq!(
            (r["kind"].as_str(), r["action"].as_str()),
            (Some("rollout"), Some("refuse"))
        );
        assert_eq!(r["observed"]["violations"][0]["field"], field, "{r}");
        let rule = if name == "cross" {
            "rollouts.route_namespaces"
        } else {
            "rollouts.gitops_paths"
        };
        assert_eq!(r["observed"]["violations"][0]["rule"], rule, "{r}");
        assert!(
            r["reason"]
                .as_str()
                .unwrap()
                .contains(&format!("shop/{name}")),
            "{r}"
        );
    }
}

#[test]
fn without_gitops_paths_the_daemon_warns_and_paths_are_not_scoped() {
    let Some(s) = setup() else { return };
    std::fs::create_dir_all(s.work().join("slos")).unwrap();
    let mut d = Daemon::start(s.work(), "unscoped", &s.config("unscoped", ""), &[]);
    // `outside` runs now (its path is not scoped) and reverts its commit; `cross` is still
    // refused: routes are scoped by default.
    d.wait("the revert of outside's commit", |_| {
        (!s.reverts_of("outside").is_empty()).then_some(())
    });
    d.wait("cross refused", |d| {
        (metric(&d.metrics(), "slogate_rollouts{state=\"refused\"}") == Some(1.0)).then_some(())
    });
    let log = d.log();
    assert!(d.terminate().success());
    assert!(
        log.contains("rollouts.gitops_paths is not set: Rollouts are not scoped"),
        "{log}"
    );
    assert!(!s.work().join("unscoped-weights/shop/cross.json").exists());
}
