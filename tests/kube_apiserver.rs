//! slogate against a REAL Kubernetes API server (etcd + kube-apiserver built by
//! `./scripts/install-tools`, tests/common/apiserver.rs), with the real third-party CRDs, the
//! Rollout CRD, and `deploy/` applied as the README says (`kubectl apply -k deploy/`).
//!
//! The daemon runs as the `slogate` ServiceAccount of `deploy/` (a token from the
//! TokenRequest API), so `deploy/rbac.yaml` alone authorises it, with the shipped
//! `deploy/config/slogate.yaml` changed only where a test must: URLs and paths (Prometheus,
//! listen address, SLO and state folders), the Rollout namespace the test owns, the Lease's
//! name (one per test, so a killed daemon of one test does not hold another's), a `gitops`
//! section naming the test's bare git remote, and for the guard test a `guard` section and
//! an evaluation interval of 3s.
//!
//! Metrics come from a real Prometheus (Debian's package) scraping a test app that exports
//! Istio's `istio_requests_total` for each test namespace's stable and canary workloads.
//!
//! The tests share one API server and take turns ([`serial`]): each starts daemons and a
//! Prometheus, which two cores run better one test at a time. They FAIL when the tools are
//! missing, unless `SLOGATE_E2E=0`.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use common::apiserver::{self, ApiServer};
use common::fake_api::{serve_on_thread, slogate_run};
use common::git::GitRemote;
use common::{free_port, http, require_bin, Prometheus};
use serde_json::Value;

const OVERLAY: &str = "apps/checkout/overlays/prod/kustomization.yaml";

// ---------------------------------------------------------------------------------------
// Shared set-up

/// One test at a time (see the module docs).
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn repo_path(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// The API server with `deploy/` applied (once per test binary), and what
/// `kubectl apply -k deploy/` printed.
fn cluster() -> Option<(&'static ApiServer, &'static str)> {
    static DEPLOYED: OnceLock<String> = OnceLock::new();
    let api = apiserver::shared()?;
    let out = DEPLOYED.get_or_init(|| {
        api.kubectl_ok(&["apply", "-k", &repo_path("deploy").display().to_string()])
    });
    Some((api, out))
}

/// Counters of the test app, per namespace: the share of the canary's requests that fail.
fn app() -> &'static Mutex<HashMap<String, f64>> {
    static APP: OnceLock<Mutex<HashMap<String, f64>>> = OnceLock::new();
    APP.get_or_init(Default::default)
}

/// The test app's address: `/metrics` has `istio_requests_total` for every registered
/// namespace's `checkout` (stable) and `checkout-canary` workloads, 50 requests a second
/// each since the app started.
fn app_addr() -> std::net::SocketAddr {
    static ADDR: OnceLock<std::net::SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| {
        let start = Instant::now();
        serve_on_thread(axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || async move {
                let secs = start.elapsed().as_secs_f64();
                let total = (secs * 50.0).floor();
                let mut out = String::from("# TYPE istio_requests_total counter\n");
                for (ns, canary_errors) in app().lock().unwrap().iter() {
                    for (workload, ratio) in [("checkout", 0.0), ("checkout-canary", *canary_errors)]
                    {
                        let errors = (total * ratio).floor();
                        let l = format!(
                            r#"reporter="destination",destination_workload_namespace="{ns}",destination_workload="{workload}""#
                        );
                        out.push_str(&format!(
                            "istio_requests_total{{{l},response_code=\"200\"}} {}\n",
                            total - errors
                        ));
                        out.push_str(&format!(
                            "istio_requests_total{{{l},response_code=\"500\"}} {errors}\n"
                        ));
                    }
                }
                out
            }),
        ))
    })
}

/// A Prometheus scraping the test app every second.
fn prometheus(work: &Path) -> Option<Prometheus> {
    let bin = require_bin("prometheus")?;
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: ['{}']\n",
        app_addr()
    );
    let data = work.join("prometheus-data");
    Some(Prometheus::start(&bin, work, &data, &config))
}

/// `text` with `from` replaced by `to`, which must occur exactly once (so a change of the
/// shipped file's shape fails here instead of silently testing something else).
fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "expected `{from}` exactly once in deploy/config/slogate.yaml"
    );
    text.replacen(from, to, 1)
}

/// What a daemon's configuration changes in the shipped one.
struct Setup<'a> {
    work: &'a Path,
    prometheus: &'a str,
    namespace: &'a str,
    lease: &'a str,
    remote: Option<&'a str>,
    resync: Option<&'a str>,
    /// POD_NAMESPACE: the Lease's and the state ConfigMaps' namespace (`slogate` in deploy/).
    pod_namespace: &'a str,
    /// YAML appended to the configuration (a `guard` section).
    extra: &'a str,
    /// YAML added to the `rollouts` section (its scoping keys), indented by two.
    rollouts_extra: &'a str,
}

impl<'a> Setup<'a> {
    /// A daemon of `deploy/` (POD_NAMESPACE `slogate`) for the Rollouts of `namespace`.
    fn new(work: &'a Path, prometheus: &'a str, namespace: &'a str, lease: &'a str) -> Self {
        Setup {
            work,
            prometheus,
            namespace,
            lease,
            remote: None,
            resync: None,
            pod_namespace: "slogate",
            extra: "",
            rollouts_extra: "",
        }
    }
}

/// `deploy/config/slogate.yaml` with only what [`Setup`] names changed; the listen port.
fn daemon_config(s: &Setup, name: &str) -> (PathBuf, u16) {
    let shipped = std::fs::read_to_string(repo_path("deploy/config/slogate.yaml")).unwrap();
    let port = free_port();
    let slos = s.work.join("slos");
    std::fs::create_dir_all(&slos).unwrap();
    let mut c = replace_once(
        &shipped,
        "url: http://prometheus-operated.monitoring:9090",
        &format!("url: {}", s.prometheus),
    );
    c = replace_once(
        &c,
        "paths: [/etc/slogate/slos]",
        &format!("paths: ['{}']", slos.display()),
    );
    // The daemon runs outside a pod here, reaching the API server through a kubeconfig:
    // what `cluster: auto` would resolve to in deploy/'s pods is said explicitly.
    c = replace_once(&c, "\ncluster: auto\n", "\ncluster: on\n");
    c = replace_once(
        &c,
        "listen: 0.0.0.0:8080",
        &format!("listen: 127.0.0.1:{port}"),
    );
    c = replace_once(
        &c,
        "  dir: /var/lib/slogate\n",
        &format!(
            "  dir: '{}'\n",
            s.work.join(format!("{name}-state")).display()
        ),
    );
    c = replace_once(
        &c,
        "  namespaces: []\n",
        &format!("  namespaces: [{}]\n", s.namespace),
    );
    c = replace_once(
        &c,
        "\n  name: slogate\n",
        &format!("\n  name: {}\n", s.lease),
    );
    if !s.rollouts_extra.is_empty() {
        c = replace_once(
            &c,
            "  resync_interval: 30s\n",
            &format!("  resync_interval: 30s\n{}", s.rollouts_extra),
        );
    }
    if let Some(resync) = s.resync {
        c = replace_once(
            &c,
            "resync_interval: 30s",
            &format!("resync_interval: {resync}"),
        );
    }
    if let Some(remote) = s.remote {
        c.push_str(&format!(
            "gitops:\n  url: '{remote}'\n  workdir: '{}'\n",
            s.work.join(format!("{name}-repo")).display()
        ));
    }
    if !s.extra.is_empty() {
        // The guard runs after each evaluation, on the leader only: evaluate every few
        // seconds rather than every 5 minutes, so that one falls after leadership is taken.
        c = replace_once(&c, "  interval: 5m\n", "  interval: 3s\n");
    }
    c.push_str(s.extra);
    let path = s.work.join(format!("{name}.yaml"));
    std::fs::write(&path, c).unwrap();
    (path, port)
}

/// A token for the `slogate` ServiceAccount of `deploy/` (namespace `slogate`).
fn slogate_kubeconfig(api: &ApiServer, work: &Path) -> PathBuf {
    let path = work.join("slogate.kubeconfig");
    api.service_account_kubeconfig("slogate", "slogate", &path);
    path
}

// ---------------------------------------------------------------------------------------
// The daemon

struct Daemon {
    name: String,
    child: Child,
    url: String,
    log: PathBuf,
}

impl Daemon {
    /// `slogate run` as replica `pod` (POD_NAME) of namespace `slogate`.
    fn start(s: &Setup, name: &str, pod: &str, kubeconfig: &Path, log_filter: &str) -> Daemon {
        let (config, port) = daemon_config(s, name);
        let log = s.work.join(format!("{name}-{}.log", free_port()));
        let child = slogate_run(&config, kubeconfig, s.work, &log)
            .env("POD_NAME", pod)
            .env("POD_NAMESPACE", s.pod_namespace)
            .env("SLOGATE_LOG", log_filter)
            .spawn()
            .expect("spawn slogate run");
        Daemon {
            name: name.to_string(),
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
        }
    }

    /// The daemon's log, without its terminal colours.
    fn log(&self) -> String {
        let raw = std::fs::read_to_string(&self.log).unwrap_or_default();
        let mut out = String::with_capacity(raw.len());
        let mut chars = raw.chars();
        while let Some(c) = chars.next() {
            if c == '\x1b' {
                // An SGR sequence: ESC [ … m
                for c in chars.by_ref() {
                    if c == 'm' {
                        break;
                    }
                }
            } else {
                out.push(c);
            }
        }
        out
    }

    fn metric(&self, series: &str) -> Option<f64> {
        let body = http()
            .get(format!("{}/metrics", self.url))
            .send()
            .ok()?
            .text()
            .ok()?;
        common::metric(&body, series)
    }

    fn alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited early: {status}\n{}", self.name, self.log());
        }
    }

    fn sigkill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Poll until `check` answers `Ok` (a liveness bound, not a timing assertion); its last
/// `Err` says what was seen when it times out.
fn wait_until(what: &str, limit: Duration, mut check: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + limit;
    loop {
        match check() {
            Ok(()) => return,
            Err(seen) => assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}\n{seen}"
            ),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

// ---------------------------------------------------------------------------------------
// The application's objects

#[derive(Clone, Copy, PartialEq)]
enum Route {
    VirtualService,
    HttpRoute,
}

/// Stable and canary Deployments (versions v1 and v2), the route at 100/0, and the Rollout.
fn app_objects(ns: &str, route: Route, steps: &str, interval: &str) -> String {
    let deployment = |name: &str, version: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  replicas: 1\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}, version: {version}}}}}\n    spec:\n      containers: [{{name: app, image: 'example/checkout:{version}'}}]\n"
        )
    };
    let host = format!("checkout.{ns}.svc.cluster.local");
    let (route_yaml, traffic) = match route {
        Route::VirtualService => (
            format!(
                "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: checkout, namespace: {ns}}}\nspec:\n  host: {host}\n  subsets:\n  - {{name: stable, labels: {{app: checkout}}}}\n  - {{name: canary, labels: {{app: checkout-canary}}}}\n---\n\
                 apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: checkout, namespace: {ns}}}\nspec:\n  hosts: [{host}]\n  http:\n  - name: primary\n    route:\n    - destination: {{host: {host}, subset: stable}}\n      weight: 100\n    - destination: {{host: {host}, subset: canary}}\n      weight: 0\n"
            ),
            format!(
                "    virtualService:\n      name: checkout\n      route: primary\n      subset: {{host: {host}, stable: stable, canary: canary, destinationRule: checkout}}\n"
            ),
        ),
        Route::HttpRoute => (
            format!(
                "apiVersion: v1\nkind: Service\nmetadata: {{name: checkout, namespace: {ns}}}\nspec: {{selector: {{app: checkout}}, ports: [{{port: 80}}]}}\n---\n\
                 apiVersion: v1\nkind: Service\nmetadata: {{name: checkout-canary, namespace: {ns}}}\nspec: {{selector: {{app: checkout-canary}}, ports: [{{port: 80}}]}}\n---\n\
                 apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: checkout, namespace: {ns}}}\nspec:\n  parentRefs: [{{name: gateway, namespace: infra}}]\n  rules:\n  - backendRefs:\n    - {{name: checkout, port: 80, weight: 100}}\n    - {{name: checkout-canary, port: 80, weight: 0}}\n"
            ),
            "    httpRoute:\n      name: checkout\n      stableBackend: {name: checkout, port: 80}\n      canaryBackend: {name: checkout-canary, port: 80}\n".to_string(),
        ),
    };
    format!(
        "{}---\n{}---\n{route_yaml}---\n\
         apiVersion: slogate.dev/v1alpha1\nkind: Rollout\nmetadata: {{name: checkout, namespace: {ns}}}\nspec:\n  traffic:\n{traffic}  workloads:\n    stable: {{kind: Deployment, name: checkout}}\n    canary: {{kind: Deployment, name: checkout-canary}}\n    versionLabel: version\n  steps: {steps}\n  interval: {interval}\n  failureLimit: 1\n  inconclusiveLimit: 3\n  minRequests: 10\n  progressDeadline: 5m\n  analysis:\n    metrics:\n      - {{name: request-success-rate, min: 0.99}}\n  gitops: {{app: checkout, path: apps/checkout/overlays/prod}}\n",
        deployment("checkout", "v1"),
        deployment("checkout-canary", "v2"),
    )
}

/// The canary's weight on the route, read from the API server.
fn canary_weight(api: &ApiServer, ns: &str, route: Route) -> Option<u64> {
    match route {
        Route::VirtualService => {
            let vs = api.get(&format!(
                "/apis/networking.istio.io/v1/namespaces/{ns}/virtualservices/checkout"
            ));
            let dests = vs["spec"]["http"][0]["route"].as_array()?.clone();
            dests
                .iter()
                .find(|d| d["destination"]["subset"] == "canary")
                .map(|d| d["weight"].as_u64().unwrap_or(0))
        }
        Route::HttpRoute => {
            let r = api.get(&format!(
                "/apis/gateway.networking.k8s.io/v1/namespaces/{ns}/httproutes/checkout"
            ));
            let refs = r["spec"]["rules"][0]["backendRefs"].as_array()?.clone();
            let w = |n: &str| {
                refs.iter()
                    .find(|b| b["name"] == n)
                    .map(|b| b["weight"].as_u64().unwrap_or(1))
            };
            let (s, c) = (w("checkout")?, w("checkout-canary")?);
            assert_eq!(s + c, 100, "weights add up to 100: {r}");
            Some(c)
        }
    }
}

fn rollout_status(api: &ApiServer, ns: &str) -> Value {
    api.get(&format!(
        "/apis/slogate.dev/v1alpha1/namespaces/{ns}/rollouts/checkout"
    ))["status"]
        .clone()
}

/// Records the distinct canary weights in the order they are read.
struct Weights {
    seen: Vec<u64>,
}

impl Weights {
    fn poll(&mut self, api: &ApiServer, ns: &str, route: Route) -> Option<u64> {
        let w = canary_weight(api, ns, route);
        if let Some(w) = w {
            if self.seen.last() != Some(&w) {
                self.seen.push(w);
            }
        }
        w
    }
}

/// A remote whose overlay runs `checkout` v1, and a newest commit deploying canary v2.
fn gitops_remote() -> GitRemote {
    let remote = GitRemote::new();
    let overlay = |canary: &str| {
        format!(
            "# prod overlay\napiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nimages:\n  - name: example/checkout\n    newTag: v1\n  - name: example/checkout-canary\n    newTag: {canary}\n"
        )
    };
    remote.commit(&[(OVERLAY, &overlay("v1"))], "checkout v1");
    remote.commit(&[(OVERLAY, &overlay("v2"))], "checkout canary v2");
    remote
}

/// How many promotion commits the remote has.
fn promotions(remote: &GitRemote) -> usize {
    remote
        .log()
        .iter()
        .filter(|(_, m)| m.contains("Slogate-Promotion:"))
        .count()
}

/// Play Argo CD syncing a promotion: the stable Deployment now runs v2.
fn stable_runs_v2(api: &ApiServer, ns: &str) {
    api.kubectl_ok(&[
        "-n",
        ns,
        "patch",
        "deployment",
        "checkout",
        "--type=merge",
        "-p",
        r#"{"spec":{"template":{"metadata":{"labels":{"version":"v2"}}}}}"#,
    ]);
}

/// The audited writes of the `slogate` ServiceAccount to `resource` in `ns` (verb, name,
/// response code).
fn writes_by_slogate(api: &ApiServer, ns: &str, resource: &str) -> Vec<(String, String, u64)> {
    api.audit(|e| {
        e["user"]["username"] == "system:serviceaccount:slogate:slogate"
            && e["objectRef"]["namespace"] == ns
            && e["objectRef"]["resource"] == resource
    })
    .iter()
    .map(|e| {
        (
            e["verb"].as_str().unwrap_or("").to_string(),
            e["objectRef"]["name"].as_str().unwrap_or("").to_string(),
            e["responseStatus"]["code"].as_u64().unwrap_or(0),
        )
    })
    .collect()
}

/// slogate's writes to the route object in `ns`, each checked to be a successful patch.
fn route_patches(api: &ApiServer, ns: &str, route: Route) -> Vec<(String, String, u64)> {
    let resource = match route {
        Route::VirtualService => "virtualservices",
        Route::HttpRoute => "httproutes",
    };
    let writes = writes_by_slogate(api, ns, resource);
    assert!(
        writes
            .iter()
            .all(|(verb, _, code)| verb == "patch" && *code == 200),
        "{writes:?}"
    );
    writes
}

// ---------------------------------------------------------------------------------------
// Tests

#[test]
fn deploy_applies_to_a_real_api_server_with_the_third_party_crds() {
    let _serial = serial();
    let Some((api, applied)) = cluster() else {
        return;
    };
    // Every object `kubectl kustomize deploy/` renders was accepted.
    let rendered = api.kubectl_ok(&["kustomize", &repo_path("deploy").display().to_string()]);
    let mut objects = 0;
    for doc in slogate::model::yaml::documents(&rendered).unwrap() {
        let v: Value = slogate::model::yaml::from_value(doc).unwrap();
        let kind = v["kind"].as_str().unwrap().to_lowercase();
        let name = v["metadata"]["name"].as_str().unwrap();
        let group = v["apiVersion"]
            .as_str()
            .unwrap()
            .rsplit_once('/')
            .map(|(g, _)| format!(".{g}"))
            .unwrap_or_default();
        let line = format!("{kind}{group}/{name} ");
        assert!(
            applied.contains(&line),
            "`kubectl apply -k deploy/` did not report {line}:\n{applied}"
        );
        objects += 1;
    }
    assert!(objects >= 12, "{rendered}");
    // The Rollout CRD (structural schema, status subresource) is established.
    let crd =
        api.get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/rollouts.slogate.dev");
    let established = crd["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["type"] == "Established" && c["status"] == "True");
    assert!(established, "{crd}");
    // A second apply changes nothing.
    let again = api.kubectl_ok(&["apply", "-k", &repo_path("deploy").display().to_string()]);
    assert!(!again.contains(" created"), "{again}");
    // The example Rollout is valid for the real API server too.
    let ns = api.namespace("shop");
    let example = std::fs::read_to_string(repo_path("examples/rollouts/checkout.yaml"))
        .unwrap()
        .replace("namespace: shop", &format!("namespace: {ns}"));
    let out = api.apply(&example);
    assert!(
        out.contains("rollout.slogate.dev/checkout serverside-applied"),
        "{out}"
    );
    // So is the 24h policy (a header step, a step that holds, plain steps), and the API
    // server keeps both step forms as written.
    let policy = std::fs::read_to_string(repo_path("examples/rollouts/checkout-24h.yaml"))
        .unwrap()
        .replace("namespace: shop", &format!("namespace: {ns}"));
    let out = api.apply(&policy);
    assert!(
        out.contains("rollout.slogate.dev/checkout-24h serverside-applied"),
        "{out}"
    );
    let stored = api.get(&format!(
        "/apis/slogate.dev/v1alpha1/namespaces/{ns}/rollouts/checkout-24h"
    ));
    assert_eq!(
        stored["spec"]["steps"],
        serde_json::json!([
            {"match": {"headers": {"x-canary": "true"}}, "hold": "30m"},
            {"weight": 10, "hold": "24h"},
            50,
            100
        ]),
        "{stored}"
    );
}

/// Run a healthy rollout on `route` to 100%, restarting (SIGKILL) the daemon once the
/// canary is at `kill_at`; then play Argo CD (stable runs v2) and see it succeed. Returns the
/// weights read from the API server, in order.
fn healthy_rollout(route: Route, kill_at: Option<u64>) -> Option<Vec<u64>> {
    let _serial = serial();
    let (api, _) = cluster()?;
    let work = tempfile::tempdir().unwrap();
    let ns = api.namespace(match route {
        Route::VirtualService => "vs",
        Route::HttpRoute => "route",
    });
    app().lock().unwrap().insert(ns.clone(), 0.0);
    let prom = prometheus(work.path())?;
    let remote = gitops_remote();
    let kubeconfig = slogate_kubeconfig(api, work.path());
    api.apply(&app_objects(&ns, route, "[10, 25, 50, 75, 100]", "3s"));
    let remote_url = remote.url();
    let lease = format!("slogate-{ns}");
    let mut setup = Setup::new(work.path(), &prom.url, &ns, &lease);
    setup.remote = Some(&remote_url);
    let mut daemon = Daemon::start(&setup, "a", "slogate-a", &kubeconfig, "info");
    let mut weights = Weights { seen: Vec::new() };
    let mut restarted = kill_at.is_none();
    wait_until(
        "the canary at 100% and its promotion commit",
        Duration::from_secs(180),
        || {
            daemon.alive();
            let w = weights.poll(api, &ns, route);
            if !restarted && w == kill_at {
                // A crash mid-rollout: the new process resumes from the Rollout's status.
                daemon.sigkill();
                // The status holds the step the weights show: either already confirmed in
                // `weights`, or as the pending setWeights effect that was stored before it was
                // applied (state before effects), which the new process confirms.
                let before = rollout_status(api, &ns);
                let want = kill_at.unwrap();
                let confirmed = before["weights"]["canary"] == want;
                let pending = before["pending"].as_array().is_some_and(|p| {
                    p.iter()
                        .any(|e| e["kind"] == "setWeights" && e["weights"]["canary"] == want)
                });
                assert!(
                    confirmed || pending,
                    "status does not hold {want}%: {before}"
                );
                daemon = Daemon::start(&setup, "b", "slogate-a", &kubeconfig, "info");
                restarted = true;
            }
            if w == Some(100) && promotions(&remote) == 1 {
                return Ok(());
            }
            Err(format!("weights {:?}\n{}", weights.seen, daemon.log()))
        },
    );
    assert_eq!(
        remote.show(OVERLAY).matches("newTag: v2").count(),
        2,
        "the promotion commit makes v2 stable:\n{}",
        remote.show(OVERLAY)
    );
    // Argo CD syncs the promotion: stable runs v2, and traffic returns to stable.
    stable_runs_v2(api, &ns);
    wait_until(
        "the rollout to succeed with all traffic on stable",
        Duration::from_secs(120),
        || {
            daemon.alive();
            let w = weights.poll(api, &ns, route);
            let status = rollout_status(api, &ns);
            if w == Some(0) && status["phase"] == "Succeeded" {
                return Ok(());
            }
            Err(format!(
                "weights {:?}\n{status}\n{}",
                weights.seen,
                daemon.log()
            ))
        },
    );
    assert_eq!(promotions(&remote), 1, "one promotion commit");
    // Every weight write went through the route's API once: no write was repeated after the
    // restart, and nothing but the route and the Rollout's status was written.
    let writes = route_patches(api, &ns, route);
    assert_eq!(
        writes.len(),
        6,
        "10, 25, 50, 75, 100 and back to 0: {writes:?}"
    );
    let status_writes = api.audit(|e| {
        e["objectRef"]["namespace"] == ns.as_str()
            && e["objectRef"]["resource"] == "rollouts"
            && e["user"]["username"] == "system:serviceaccount:slogate:slogate"
    });
    assert!(
        status_writes
            .iter()
            .all(|e| e["objectRef"]["subresource"] == "status" && e["verb"] == "patch"),
        "only the status subresource is written: {status_writes:?}"
    );
    app().lock().unwrap().remove(&ns);
    Some(weights.seen)
}

#[test]
fn rollout_on_a_real_virtual_service_steps_survives_a_restart_and_promotes() {
    let Some(seen) = healthy_rollout(Route::VirtualService, Some(25)) else {
        return;
    };
    assert_eq!(
        seen,
        [0, 10, 25, 50, 75, 100, 0],
        "weights read at each step"
    );
}

#[test]
fn rollout_on_a_real_http_route_steps_and_promotes() {
    let Some(seen) = healthy_rollout(Route::HttpRoute, None) else {
        return;
    };
    assert_eq!(
        seen,
        [0, 10, 25, 50, 75, 100, 0],
        "weights read at each step"
    );
}

#[test]
fn failing_canary_aborts_weights_back_to_stable_and_its_commit_reverted() {
    let _serial = serial();
    let Some((api, _)) = cluster() else { return };
    let work = tempfile::tempdir().unwrap();
    let ns = api.namespace("faulty");
    // A fifth of the canary's requests fail.
    app().lock().unwrap().insert(ns.clone(), 0.2);
    let Some(prom) = prometheus(work.path()) else {
        return;
    };
    let remote = gitops_remote();
    let canary_commit = remote.log()[0].0.clone();
    let kubeconfig = slogate_kubeconfig(api, work.path());
    api.apply(&app_objects(
        &ns,
        Route::VirtualService,
        "[10, 50, 100]",
        "3s",
    ));
    let remote_url = remote.url();
    let lease = format!("slogate-{ns}");
    let mut setup = Setup::new(work.path(), &prom.url, &ns, &lease);
    setup.remote = Some(&remote_url);
    let mut daemon = Daemon::start(&setup, "a", "slogate-a", &kubeconfig, "info");
    let mut weights = Weights { seen: Vec::new() };
    wait_until("the rollout to fail", Duration::from_secs(120), || {
        daemon.alive();
        weights.poll(api, &ns, Route::VirtualService);
        let status = rollout_status(api, &ns);
        if status["phase"] == "Failed" {
            return Ok(());
        }
        Err(format!(
            "weights {:?}\n{status}\n{}",
            weights.seen,
            daemon.log()
        ))
    });
    assert_eq!(
        canary_weight(api, &ns, Route::VirtualService),
        Some(0),
        "all traffic back on stable"
    );
    assert_eq!(weights.seen.first(), Some(&0));
    assert_eq!(weights.seen.last(), Some(&0));
    assert!(weights.seen.contains(&10), "{:?}", weights.seen);
    assert!(!weights.seen.contains(&100), "{:?}", weights.seen);
    // The canary's commit is reverted, once, in the bare remote.
    let log = remote.log();
    let reverts: Vec<_> = log
        .iter()
        .filter(|(_, m)| m.contains(&format!("Slogate-Reverts: {canary_commit}")))
        .collect();
    assert_eq!(reverts.len(), 1, "{log:?}");
    assert!(
        remote
            .show(OVERLAY)
            .contains("newTag: v1\n  - name: example/checkout-canary\n    newTag: v1"),
        "the overlay is back at v1:\n{}",
        remote.show(OVERLAY)
    );
    app().lock().unwrap().remove(&ns);
}

/// Tenant scoping (issue 16): a Rollout in namespace `tenant` naming the VirtualService of
/// namespace `victim`, and a Rollout (in `paths`, with a failing canary) whose GitOps path is
/// outside its namespace's `rollouts.gitops_paths`, are refused by the daemon running as
/// deploy/'s ServiceAccount: the victim's VirtualService and the HTTPRoute are never
/// written (the audit log), nothing is reverted, each Rollout's status has `Admitted=False`
/// with its reason, and `slogate decisions` has one `refuse` record each. Re-applied with
/// its route in its own namespace, the first one runs and turns `Admitted=True`, and the
/// victim's route is still untouched.
#[test]
fn rollouts_reaching_beyond_their_namespace_are_refused() {
    let _serial = serial();
    let Some((api, _)) = cluster() else { return };
    let work = tempfile::tempdir().unwrap();
    let tenant = api.namespace("tenant");
    let victim = api.namespace("victim");
    let paths = api.namespace("paths");
    // The `paths` canary fails: had it run, it would abort and revert its commit.
    app().lock().unwrap().insert(paths.clone(), 0.2);
    app().lock().unwrap().insert(tenant.clone(), 0.0);
    let Some(prom) = prometheus(work.path()) else {
        return;
    };
    let remote = gitops_remote();
    let head = remote.log()[0].0.clone();
    let kubeconfig = slogate_kubeconfig(api, work.path());

    // The victim's VirtualService, at 100/0.
    let victim_objects = app_objects(&victim, Route::VirtualService, "[10, 100]", "3s");
    let victim_route: String = victim_objects
        .split("---\n")
        .filter(|d| d.contains("kind: VirtualService") || d.contains("kind: DestinationRule"))
        .collect::<Vec<_>>()
        .join("---\n");
    api.apply(&victim_route);
    // The tenant's Rollout names it.
    let own = app_objects(&tenant, Route::VirtualService, "[10, 100]", "30s");
    let cross = replace_once(
        &own,
        "    virtualService:\n      name: checkout\n",
        &format!("    virtualService:\n      name: checkout\n      namespace: {victim}\n"),
    );
    api.apply(&cross);
    api.apply(&app_objects(
        &paths,
        Route::HttpRoute,
        "[10, 50, 100]",
        "3s",
    ));

    let remote_url = remote.url();
    let lease = format!("slogate-{tenant}");
    let namespaces = format!("{tenant}, {paths}");
    let scoping =
        format!("  gitops_paths:\n    {tenant}: [apps/checkout]\n    {paths}: [apps/other]\n");
    let mut setup = Setup::new(work.path(), &prom.url, &namespaces, &lease);
    setup.remote = Some(&remote_url);
    setup.rollouts_extra = &scoping;
    let mut daemon = Daemon::start(&setup, "scoped", "slogate-scoped", &kubeconfig, "info");

    let admitted = |ns: &str| rollout_status(api, ns)["conditions"][0].clone();
    wait_until("both Rollouts refused", Duration::from_secs(120), || {
        daemon.alive();
        let (a, b) = (admitted(&tenant), admitted(&paths));
        if a["status"] == "False" && b["status"] == "False" {
            return Ok(());
        }
        Err(format!("{a}\n{b}\n{}", daemon.log()))
    });
    let c = admitted(&tenant);
    assert_eq!(c["type"], "Admitted");
    assert_eq!(c["reason"], "RouteOutsideNamespace", "{c}");
    assert!(
        c["message"]
            .as_str()
            .unwrap()
            .contains("spec.traffic.virtualService.namespace"),
        "{c}"
    );
    assert!(c["observedGeneration"].as_i64().is_some(), "{c}");
    let c = admitted(&paths);
    assert_eq!(c["reason"], "GitOpsPathNotAllowed", "{c}");
    assert!(
        c["message"].as_str().unwrap().contains("spec.gitops.path"),
        "{c}"
    );

    // Long enough for the failing canary to have aborted had it run (two failed 3s
    // intervals), and for several resyncs and watch events (the status writes).
    std::thread::sleep(Duration::from_secs(12));
    daemon.alive();
    assert_eq!(
        daemon.metric("slogate_rollouts{state=\"refused\"}"),
        Some(2.0)
    );
    assert_eq!(
        daemon.metric("slogate_rollouts{state=\"running\"}"),
        Some(0.0)
    );
    for (ns, resource) in [(&victim, "virtualservices"), (&paths, "httproutes")] {
        let writes = writes_by_slogate(api, ns, resource);
        assert!(writes.is_empty(), "{ns}/{resource}: {writes:?}");
    }
    assert_eq!(canary_weight(api, &victim, Route::VirtualService), Some(0));
    assert_eq!(
        remote.log()[0].0,
        head,
        "nothing was committed: {:?}",
        remote.log()
    );
    for ns in [&tenant, &paths] {
        let out = common::run_ok(common::slogate().args([
            "decisions",
            "--url",
            &daemon.url,
            "--subject",
            &format!("{ns}/checkout"),
            "-o",
            "json",
        ]));
        let records: Vec<Value> = serde_json::from_str(&out[out.find('[').unwrap()..]).unwrap();
        let refusals: Vec<&Value> = records.iter().filter(|r| r["action"] == "refuse").collect();
        assert_eq!(refusals.len(), 1, "{ns}: {records:?}");
        assert_eq!(refusals[0]["kind"], "rollout");
        assert!(refusals[0]["observed"]["violations"][0]["rule"].is_string());
    }

    // Re-applied with its route in its own namespace: it runs on its own VirtualService.
    api.apply(&own);
    wait_until(
        "the tenant's Rollout to run",
        Duration::from_secs(120),
        || {
            daemon.alive();
            let w = canary_weight(api, &tenant, Route::VirtualService);
            let c = admitted(&tenant);
            if w == Some(10) && c["status"] == "True" {
                return Ok(());
            }
            Err(format!("weight {w:?}, {c}\n{}", daemon.log()))
        },
    );
    assert!(!route_patches(api, &tenant, Route::VirtualService).is_empty());
    assert!(writes_by_slogate(api, &victim, "virtualservices").is_empty());
    assert_eq!(canary_weight(api, &victim, Route::VirtualService), Some(0));
    app().lock().unwrap().remove(&paths);
    app().lock().unwrap().remove(&tenant);
}

/// `deploy/rbac.yaml` for ServiceAccount `ns/slogate`: namespaced objects in `ns`,
/// cluster-scoped ones renamed `NAME-ns`, and without the rules `drop` matches.
fn rbac_copy(ns: &str, drop: impl Fn(&Value) -> bool) -> String {
    let text = std::fs::read_to_string(repo_path("deploy/rbac.yaml")).unwrap();
    let mut docs = Vec::new();
    for doc in slogate::model::yaml::documents(&text).unwrap() {
        let mut v: Value = slogate::model::yaml::from_value(doc).unwrap();
        match v["kind"].as_str().unwrap() {
            "ClusterRole" | "ClusterRoleBinding" => {
                let name = format!("{}-{ns}", v["metadata"]["name"].as_str().unwrap());
                v["metadata"]["name"] = Value::from(name);
            }
            _ => v["metadata"]["namespace"] = Value::from(ns),
        }
        if v["kind"] == "ClusterRoleBinding" {
            let role = format!("{}-{ns}", v["roleRef"]["name"].as_str().unwrap());
            v["roleRef"]["name"] = Value::from(role);
        }
        if let Some(subjects) = v.get_mut("subjects").and_then(Value::as_array_mut) {
            for s in subjects {
                s["namespace"] = Value::from(ns);
            }
        }
        if let Some(rules) = v.get_mut("rules").and_then(Value::as_array_mut) {
            rules.retain(|r| !drop(r));
        }
        docs.push(v.to_string());
    }
    docs.join("\n---\n")
}

#[test]
fn rbac_without_one_rule_is_refused_with_a_403_naming_verb_and_resource() {
    let _serial = serial();
    let Some((api, _)) = cluster() else { return };
    let work = tempfile::tempdir().unwrap();
    let ns = api.namespace("rbac");
    let leases = |r: &Value| {
        r["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x == "leases")
    };
    let without_leases = rbac_copy(&ns, leases);
    assert!(!without_leases.contains("leases"), "{without_leases}");
    api.apply(&without_leases);
    let kubeconfig = work.path().join("kubeconfig");
    api.service_account_kubeconfig(&ns, "slogate", &kubeconfig);
    let mut setup = Setup::new(work.path(), "http://127.0.0.1:9", &ns, "slogate");
    setup.pod_namespace = &ns;
    let mut daemon = Daemon::start(&setup, "a", "slogate-a", &kubeconfig, "info");
    let refused = format!(
        "User \"system:serviceaccount:{ns}:slogate\" cannot get resource \"leases\" in API group \"coordination.k8s.io\" in the namespace \"{ns}\""
    );
    wait_until(
        "the Lease call to be refused",
        Duration::from_secs(60),
        || {
            daemon.alive();
            let log = daemon.log();
            if log.contains(&refused) && log.contains("403") {
                return Ok(());
            }
            Err(log)
        },
    );
    assert_eq!(
        daemon.metric("slogate_leader"),
        Some(0.0),
        "{}",
        daemon.log()
    );
    // The rule given back, the same daemon leads: the missing rule was the whole reason.
    api.apply(&rbac_copy(&ns, |_| false));
    wait_until("leadership", Duration::from_secs(60), || {
        daemon.alive();
        match daemon.metric("slogate_leader") {
            Some(1.0) => Ok(()),
            other => Err(format!("slogate_leader {other:?}\n{}", daemon.log())),
        }
    });
    let lease = api.get(&format!(
        "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/slogate"
    ));
    assert_eq!(lease["spec"]["holderIdentity"], "slogate-a", "{lease}");
}

/// Parse a Lease's MicroTime.
fn micro_time(v: &Value) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("a time: {v}")))
        .unwrap()
        .with_timezone(&chrono::Utc)
}

#[test]
fn two_daemons_share_a_real_lease_and_the_survivor_finishes_without_double_action() {
    let _serial = serial();
    let Some((api, _)) = cluster() else { return };
    let work = tempfile::tempdir().unwrap();
    let ns = api.namespace("ha");
    app().lock().unwrap().insert(ns.clone(), 0.0);
    let Some(prom) = prometheus(work.path()) else {
        return;
    };
    let remote = gitops_remote();
    let kubeconfig = slogate_kubeconfig(api, work.path());
    api.apply(&app_objects(
        &ns,
        Route::VirtualService,
        "[10, 50, 100]",
        "3s",
    ));
    let remote_url = remote.url();
    let lease_name = format!("slogate-{ns}");
    let mut setup = Setup::new(work.path(), &prom.url, &ns, &lease_name);
    setup.remote = Some(&remote_url);
    let lease_path = format!("/apis/coordination.k8s.io/v1/namespaces/slogate/leases/{lease_name}");
    let mut a = Daemon::start(&setup, "a", "slogate-a", &kubeconfig, "info");
    wait_until("a to lead", Duration::from_secs(60), || {
        a.alive();
        match a.metric("slogate_leader") {
            Some(1.0) => Ok(()),
            other => Err(format!("{other:?}\n{}", a.log())),
        }
    });
    let mut b = Daemon::start(&setup, "b", "slogate-b", &kubeconfig, "info");
    wait_until("b to follow", Duration::from_secs(60), || {
        b.alive();
        match b.metric("slogate_leader") {
            Some(0.0) => Ok(()),
            other => Err(format!("{other:?}\n{}", b.log())),
        }
    });
    let mut weights = Weights { seen: Vec::new() };
    wait_until("the first step", Duration::from_secs(90), || {
        a.alive();
        match weights.poll(api, &ns, Route::VirtualService) {
            Some(10) => Ok(()),
            w => Err(format!("{w:?}\n{}", a.log())),
        }
    });
    assert_eq!(b.metric("slogate_leader"), Some(0.0), "one leader");
    // SIGKILL: A cannot release the Lease; its last renewal is what B waits out.
    a.sigkill();
    let held = api.get(&lease_path);
    assert_eq!(held["spec"]["holderIdentity"], "slogate-a", "{held}");
    let last_renew = micro_time(&held["spec"]["renewTime"]);
    let duration = held["spec"]["leaseDurationSeconds"].as_i64().unwrap();
    wait_until("b to take over", Duration::from_secs(90), || {
        b.alive();
        weights.poll(api, &ns, Route::VirtualService);
        match b.metric("slogate_leader") {
            Some(1.0) => Ok(()),
            other => Err(format!("{other:?}\n{}", b.log())),
        }
    });
    let taken = api.get(&lease_path);
    assert_eq!(taken["spec"]["holderIdentity"], "slogate-b", "{taken}");
    // On the Lease's own timestamps: B acquired it no earlier than a lease duration after
    // A's last renewal (it never overlaps A's term), and within the lease duration plus the
    // retry period counted from when B first read that renewal (B reads the Lease every
    // renew period, 5s, so that read is at most 5s after the renewal): at most
    // duration + 2 × 5s after it, with 1s for the reads themselves.
    let acquired = micro_time(&taken["spec"]["acquireTime"]);
    let gap = (acquired - last_renew).num_milliseconds();
    assert!(
        gap >= duration * 1000 && gap <= (duration + 2 * 5 + 1) * 1000,
        "acquired {gap}ms after the last renewal (lease {duration}s): {held}\n{taken}"
    );
    // B finishes the rollout.
    wait_until("the promotion commit", Duration::from_secs(120), || {
        b.alive();
        weights.poll(api, &ns, Route::VirtualService);
        if promotions(&remote) >= 1 {
            return Ok(());
        }
        Err(format!("weights {:?}\n{}", weights.seen, b.log()))
    });
    stable_runs_v2(api, &ns);
    wait_until("the rollout to succeed", Duration::from_secs(120), || {
        b.alive();
        weights.poll(api, &ns, Route::VirtualService);
        let status = rollout_status(api, &ns);
        if status["phase"] == "Succeeded" && weights.seen.last() == Some(&0) {
            return Ok(());
        }
        Err(format!("weights {:?}\n{status}\n{}", weights.seen, b.log()))
    });
    // (Read from the first poll on, which may come after the first step.)
    let steps: Vec<u64> = weights
        .seen
        .iter()
        .copied()
        .skip_while(|w| *w == 0)
        .collect();
    assert_eq!(steps, [10, 50, 100, 0], "{:?}", weights.seen);
    // No double action: one promotion commit, and one weight write per step.
    assert_eq!(promotions(&remote), 1, "{:?}", remote.log());
    let writes = writes_by_slogate(api, &ns, "virtualservices");
    assert_eq!(writes.len(), 4, "10, 50, 100, then 0: {writes:?}");
    // The README's command lists the state documents (the shared decision log is among
    // them) with their keys, as a shell runs it.
    let readme = std::fs::read_to_string(repo_path("README.md")).unwrap();
    let command = readme
        .lines()
        .find(|l| {
            l.starts_with("kubectl -n slogate get configmaps") && l.contains("custom-columns")
        })
        .expect("the README's command listing the state ConfigMaps");
    let tools_bin = common::tools::tools_dir().join("bin");
    let path = format!(
        "{}:{}",
        tools_bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = common::run_ok(
        std::process::Command::new("sh")
            .args(["-c", command])
            .env("PATH", path)
            .env("KUBECONFIG", &api.admin_kubeconfig),
    );
    let rows: Vec<&str> = out
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert!(!rows.is_empty(), "{command}\n{out}");
    assert!(
        rows.iter().all(|r| !r.contains("<none>")),
        "every state ConfigMap shows its key: {command}\n{out}"
    );
    app().lock().unwrap().remove(&ns);
}

#[test]
fn flux_reconcile_annotation_lands_on_a_real_kustomization_after_a_revert() {
    let _serial = serial();
    let Some((api, _)) = cluster() else { return };
    let work = tempfile::tempdir().unwrap();
    let ns = api.namespace("flux");
    // Half of the canary's requests fail: the SLO below is far past its budget.
    app().lock().unwrap().insert(ns.clone(), 0.5);
    let Some(prom) = prometheus(work.path()) else {
        return;
    };
    let remote = gitops_remote();
    let bad_commit = remote.log()[0].0.clone();
    api.apply(&format!(
        "apiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata: {{name: gitops, namespace: {ns}}}\nspec: {{url: 'https://git.example/shop/gitops.git', interval: 1m, ref: {{branch: main}}}}\n---\n\
         apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata: {{name: checkout, namespace: {ns}}}\nspec: {{interval: 10m, path: ./apps/checkout/overlays/prod, prune: true, sourceRef: {{kind: GitRepository, name: gitops}}}}\n"
    ));
    std::fs::create_dir_all(work.path().join("slos")).unwrap();
    let selector =
        format!(r#"destination_workload_namespace="{ns}",destination_workload="checkout-canary""#);
    std::fs::write(
        work.path().join("slos/checkout.yml"),
        format!(
            "version: prometheus/v1\nservice: checkout\nslos:\n- name: availability\n  objective: 99.9\n  sli:\n    events:\n      error_query: sum(rate(istio_requests_total{{{selector},response_code=~\"5..\"}}[{{{{.window}}}}]))\n      total_query: sum(rate(istio_requests_total{{{selector}}}[{{{{.window}}}}]))\n  alerting:\n    name: CheckoutAvailability\n    page_alert: {{disable: true}}\n    ticket_alert: {{disable: true}}\n"
        ),
    )
    .unwrap();
    // Prometheus has a rate to give before the daemon's first evaluation.
    wait_until("two scrapes", Duration::from_secs(60), || {
        let now = chrono::Utc::now().timestamp() as f64;
        let r = prom.query_at(
            &format!("rate(istio_requests_total{{{selector}}}[1m])"),
            now,
        );
        if r.len() == 2 {
            return Ok(());
        }
        Err(format!("{r:?}"))
    });
    let remote_url = remote.url();
    // The guarded app is named after the namespace: guard state is shared in `slogate`'s
    // ConfigMaps, and the app frozen here must not be another test's Rollout's app.
    let guard = format!(
        "guard:\n  apps:\n    - name: {ns}\n      path: apps/checkout/overlays/prod\n      slos: [checkout-availability]\n      flux: {{namespace: {ns}, name: checkout}}\n"
    );
    let lease = format!("slogate-{ns}");
    let mut setup = Setup::new(work.path(), &prom.url, &ns, &lease);
    setup.remote = Some(&remote_url);
    setup.extra = &guard;
    let kubeconfig = slogate_kubeconfig(api, work.path());
    let mut daemon = Daemon::start(&setup, "a", "slogate-a", &kubeconfig, "info");
    let annotation = |kind: &str, name: &str| {
        api.get(&format!("/apis/{kind}/namespaces/{ns}/{name}"))["metadata"]["annotations"]
            ["reconcile.fluxcd.io/requestedAt"]
            .as_str()
            .map(str::to_string)
    };
    wait_until(
        "the revert and the Flux annotation",
        Duration::from_secs(120),
        || {
            daemon.alive();
            let k = annotation("kustomize.toolkit.fluxcd.io/v1", "kustomizations/checkout");
            if k.is_some() {
                return Ok(());
            }
            Err(daemon.log())
        },
    );
    let reverted = remote
        .log()
        .iter()
        .filter(|(_, m)| m.contains(&format!("Slogate-Reverts: {bad_commit}")))
        .count();
    assert_eq!(reverted, 1, "{:?}", remote.log());
    // The source was asked first, as `flux reconcile kustomization --with-source` does.
    assert!(
        annotation("source.toolkit.fluxcd.io/v1", "gitrepositories/gitops").is_some(),
        "{}",
        daemon.log()
    );
    // Both as the slogate ServiceAccount, which deploy/rbac.yaml allows.
    for resource in ["kustomizations", "gitrepositories"] {
        let writes = writes_by_slogate(api, &ns, resource);
        assert!(
            !writes.is_empty()
                && writes
                    .iter()
                    .all(|(v, _, code)| v == "patch" && *code == 200),
            "{resource}: {writes:?}"
        );
    }
    app().lock().unwrap().remove(&ns);
}

#[test]
fn rollout_watch_lists_again_after_an_etcd_compaction() {
    let _serial = serial();
    let Some((api, _)) = cluster() else { return };
    let work = tempfile::tempdir().unwrap();
    let ns = api.namespace("compact");
    // Rollouts whose workloads do not exist: they run (a controller each) but never start.
    let rollout = |name: &str| {
        app_objects(&ns, Route::HttpRoute, "[50, 100]", "30s")
            .split("---\n")
            .last()
            .unwrap()
            .replace(
                "name: checkout, namespace",
                &format!("name: {name}, namespace"),
            )
    };
    api.apply(&rollout("first"));
    let setup = Setup {
        work: work.path(),
        prometheus: "http://127.0.0.1:9",
        namespace: &ns,
        lease: &format!("slogate-{ns}"),
        remote: None,
        // Only the watch can pick a new Rollout up within the test.
        resync: Some("1h"),
        pod_namespace: "slogate",
        extra: "",
        rollouts_extra: "",
    };
    let kubeconfig = slogate_kubeconfig(api, work.path());
    let mut daemon = Daemon::start(
        &setup,
        "a",
        "slogate-a",
        &kubeconfig,
        "info,slogate::adapters::kube::rollouts=debug",
    );
    let runs = |d: &Daemon, name: &str| {
        http()
            .get(format!("{}/api/v1/rollouts", d.url))
            .send()
            .ok()
            .and_then(|r| r.text().ok())
            .is_some_and(|b| b.contains(&format!("\"{name}\"")))
    };
    wait_until("the first Rollout", Duration::from_secs(60), || {
        daemon.alive();
        if runs(&daemon, "first") {
            return Ok(());
        }
        Err(daemon.log())
    });
    // The control plane restarts while etcd moves on and compacts its history: the
    // daemon's watch breaks, and the version it watched from is gone.
    api.restart_apiserver(|| {
        api.etcd_bump();
        api.compact_etcd();
    });
    api.apply(&rollout("second"));
    wait_until("the second Rollout", Duration::from_secs(90), || {
        daemon.alive();
        if runs(&daemon, "second") {
            return Ok(());
        }
        Err(daemon.log())
    });
    let log = daemon.log();
    assert!(
        log.contains("Rollout watch: list again") && log.contains("code=410"),
        "the watch saw 410 Gone and listed again:\n{log}"
    );
}

#[test]
fn a_tls_failure_logs_its_cause_and_does_not_blame_rbac() {
    // A self-signed CA certificate used as the server's own (kubectl accepts it; rustls
    // refuses a CA certificate as an end-entity certificate).
    let Some(openssl) = require_bin("openssl") else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    apiserver::make_certificates(dir);
    let port = free_port();
    let mut server = std::process::Command::new(&openssl)
        .args([
            "s_server", "-quiet", "-www", "-cert", "ca.crt", "-key", "ca.key",
        ])
        .arg("-accept")
        .arg(format!("127.0.0.1:{port}"))
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("openssl s_server");
    wait_until("openssl s_server", Duration::from_secs(30), || {
        std::net::TcpStream::connect(("127.0.0.1", port))
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        apiserver::kubeconfig(
            &format!("https://127.0.0.1:{port}"),
            &dir.join("ca.crt"),
            "some-token",
            "default",
        ),
    )
    .unwrap();
    let setup = Setup::new(dir, "http://127.0.0.1:9", "default", "slogate");
    let mut daemon = Daemon::start(&setup, "a", "slogate-a", &kubeconfig, "info");
    wait_until("the Rollout list to fail", Duration::from_secs(60), || {
        daemon.alive();
        let log = daemon.log();
        if log.contains("list slogate.dev/v1alpha1 rollouts") {
            return Ok(());
        }
        Err(log)
    });
    let _ = server.kill();
    let _ = server.wait();
    let log = daemon.log();
    let failures: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("list slogate.dev/v1alpha1 rollouts"))
        .collect();
    for line in &failures {
        assert!(
            line.contains("CaUsedAsEndEntity"),
            "the rustls reason is logged: {line}"
        );
        assert!(
            !line.contains("rbac") && !line.contains("CRD"),
            "a TLS failure is not blamed on RBAC or the CRD: {line}"
        );
    }
    // The Lease calls say why too.
    assert!(
        log.lines()
            .filter(|l| l.to_lowercase().contains("lease"))
            .any(|l| l.contains("CaUsedAsEndEntity")),
        "{log}"
    );
}

/// The weighted entry's canary weight and slogate's header route (the VirtualService route
/// named `primary-slogate-canary`, or the HTTPRoute rule sending only to the canary), read
/// from the API server.
fn routing_on(api: &ApiServer, ns: &str, route: Route) -> (Option<u64>, Option<Value>) {
    match route {
        Route::VirtualService => {
            let vs = api.get(&format!(
                "/apis/networking.istio.io/v1/namespaces/{ns}/virtualservices/checkout"
            ));
            let http = vs["spec"]["http"].as_array().cloned().unwrap_or_default();
            let primary = http.iter().find(|r| r["name"] == "primary");
            let weight = primary.and_then(|p| {
                p["route"]
                    .as_array()?
                    .iter()
                    .find(|d| d["destination"]["subset"] == "canary")
                    .map(|d| d["weight"].as_u64().unwrap_or(0))
            });
            let header = http
                .iter()
                .find(|r| r["name"] == "primary-slogate-canary")
                .cloned();
            (weight, header)
        }
        Route::HttpRoute => {
            let r = api.get(&format!(
                "/apis/gateway.networking.k8s.io/v1/namespaces/{ns}/httproutes/checkout"
            ));
            let rules = r["spec"]["rules"].as_array().cloned().unwrap_or_default();
            let header = rules
                .iter()
                .find(|rule| rule["backendRefs"].as_array().is_some_and(|b| b.len() == 1))
                .cloned();
            (canary_weight_http(&rules), header)
        }
    }
}

fn canary_weight_http(rules: &[Value]) -> Option<u64> {
    let weighted = rules
        .iter()
        .find(|rule| rule["backendRefs"].as_array().is_some_and(|b| b.len() == 2))?;
    weighted["backendRefs"]
        .as_array()?
        .iter()
        .find(|b| b["name"] == "checkout-canary")
        .map(|b| b["weight"].as_u64().unwrap_or(1))
}

/// A header step (requests with `x-canary: "true"`, held 9s) then 50% and 100% on a real
/// route: the header route is written ahead of the weighted one, kept through the hold (the
/// status, read back from the API server, holds it and when the hold ends), removed with
/// the step to 50%, and the rollout promotes.
fn header_step_then_weights(route: Route) -> Option<Vec<String>> {
    let _serial = serial();
    let (api, _) = cluster()?;
    let work = tempfile::tempdir().unwrap();
    let ns = api.namespace(match route {
        Route::VirtualService => "hdr-vs",
        Route::HttpRoute => "hdr-route",
    });
    app().lock().unwrap().insert(ns.clone(), 0.0);
    let prom = prometheus(work.path())?;
    let remote = gitops_remote();
    let kubeconfig = slogate_kubeconfig(api, work.path());
    api.apply(&app_objects(
        &ns,
        route,
        "[{match: {headers: {x-canary: \"true\"}}, hold: 9s}, 50, 100]",
        "3s",
    ));
    let remote_url = remote.url();
    let lease = format!("slogate-{ns}");
    let mut setup = Setup::new(work.path(), &prom.url, &ns, &lease);
    setup.remote = Some(&remote_url);
    let mut daemon = Daemon::start(&setup, "a", "slogate-a", &kubeconfig, "info");
    // What the route held, in order: "0+header", "50", "100", "0".
    let mut seen: Vec<String> = Vec::new();
    let poll = |api: &ApiServer, seen: &mut Vec<String>| {
        let (w, h) = routing_on(api, &ns, route);
        let state = match (w, &h) {
            (Some(w), Some(_)) => format!("{w}+header"),
            (Some(w), None) => w.to_string(),
            (None, _) => "?".into(),
        };
        if seen.last() != Some(&state) {
            seen.push(state);
        }
        h
    };
    let mut header_route = None;
    wait_until(
        "the header step with its header route and hold",
        Duration::from_secs(120),
        || {
            daemon.alive();
            let h = poll(api, &mut seen);
            let status = rollout_status(api, &ns);
            // The dashboard's gauge: seconds left in the 9s hold.
            let left = daemon.metric(&format!(
                "slogate_rollout_step_remaining_seconds{{namespace=\"{ns}\",rollout=\"checkout\"}}"
            ));
            if h.is_some()
                && status["headerMatch"].is_object()
                && !status["holdUntil"].is_null()
                && left.is_some_and(|s| s <= 9.0)
            {
                header_route = h;
                return Ok(());
            }
            Err(format!("{status}\n{}", daemon.log()))
        },
    );
    let status = rollout_status(api, &ns);
    assert_eq!(status["step"], 0, "{status}");
    // The status subresource kept the header match (the CRD's status schema knows it).
    assert_eq!(
        status["headerMatch"],
        serde_json::json!({"headers": {"x-canary": "true"}}),
        "{status}"
    );
    let header_route = header_route.unwrap();
    match route {
        Route::VirtualService => {
            assert_eq!(
                header_route["match"],
                serde_json::json!([{"headers": {"x-canary": {"exact": "true"}}}]),
                "{header_route}"
            );
            assert_eq!(
                header_route["route"][0]["destination"]["subset"], "canary",
                "{header_route}"
            );
        }
        Route::HttpRoute => {
            let headers = &header_route["matches"][0]["headers"];
            assert_eq!(
                headers,
                &serde_json::json!([{"type": "Exact", "name": "x-canary", "value": "true"}]),
                "{header_route}"
            );
            assert_eq!(header_route["backendRefs"][0]["name"], "checkout-canary");
        }
    }
    wait_until(
        "the canary at 100% and its promotion commit",
        Duration::from_secs(180),
        || {
            daemon.alive();
            poll(api, &mut seen);
            let (w, _) = routing_on(api, &ns, route);
            if w == Some(100) && promotions(&remote) == 1 {
                return Ok(());
            }
            Err(format!("routing {seen:?}\n{}", daemon.log()))
        },
    );
    stable_runs_v2(api, &ns);
    wait_until("the rollout to succeed", Duration::from_secs(120), || {
        daemon.alive();
        poll(api, &mut seen);
        let status = rollout_status(api, &ns);
        if status["phase"] == "Succeeded" && routing_on(api, &ns, route) == (Some(0), None) {
            return Ok(());
        }
        Err(format!("routing {seen:?}\n{status}\n{}", daemon.log()))
    });
    let status = rollout_status(api, &ns);
    assert!(status["headerMatch"].is_null(), "{status}");
    let writes = route_patches(api, &ns, route);
    assert_eq!(
        writes.len(),
        4,
        "header route, 50 (header route removed), 100, 0: {writes:?}"
    );
    app().lock().unwrap().remove(&ns);
    Some(seen)
}

#[test]
fn header_step_then_weights_on_a_real_virtual_service() {
    let Some(seen) = header_step_then_weights(Route::VirtualService) else {
        return;
    };
    assert_eq!(seen, ["0", "0+header", "50", "100", "0"]);
}

#[test]
fn header_step_then_weights_on_a_real_http_route() {
    let Some(seen) = header_step_then_weights(Route::HttpRoute) else {
        return;
    };
    assert_eq!(seen, ["0", "0+header", "50", "100", "0"]);
}
