//! Rollouts end to end against a REAL Prometheus (Debian's package, scrape interval 1s).
//!
//! A test app (axum, in this test) exposes Istio's `istio_requests_total` and
//! `istio_request_duration_milliseconds` for a stable and a canary workload in three
//! namespaces. A traffic generator sends 200 requests a second per namespace, split between
//! stable and canary by the weights file slogate's file router writes, so what Prometheus
//! sees follows what slogate decides. The controllers (one per namespace, sharing one state
//! store and one GitOps repository, a real bare git remote) are driven by `reconcile_once`
//! in a loop with real time; the test plays Argo CD (stable runs the canary's version once
//! the promotion commit is pushed). The three run at once:
//!
//! - `healthy`: 10→25→50→75→100, then the promotion commit, then all traffic back to stable;
//! - `faulty`: 5% of the canary's requests fail; it aborts, weights go to 0 and the canary
//!   commit is reverted (a revert commit with trailers);
//! - `idle`: the canary gets no traffic at all; it never promotes (the inconclusive limit
//!   aborts it).
//!
//! Fails (does not skip) without prometheus on PATH unless `SLOGATE_E2E=0`.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use common::git::GitRemote;
use slogate::adapters::git::{GitCli, RepoConfig};
use slogate::adapters::prometheus::Prometheus as PromClient;
use slogate::adapters::state::FileStore;
use slogate::adapters::traffic_file::FileRouter;
use slogate::model::traffic::Weights;
use slogate::model::trailers::{parse_trailers, trailer_values};
use slogate::ports::state::StateStore;
use slogate::rollout::status::Verdict;
use slogate::rollout::{PhaseName, Rollout};
use slogate::runtime::metrics::Metrics;
use slogate::runtime::rollout::{weights_file, RolloutController, RolloutDeps, StaticVersions};

const REQUESTS_PER_TICK: u32 = 20;
const TICK: Duration = Duration::from_millis(100);
/// Canary and stable latencies (ms), well under the 500ms maximum.
const STABLE_MS: f64 = 20.0;
const CANARY_MS: f64 = 30.0;
const BUCKETS: [f64; 8] = [5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0];

fn overlay(ns: &str, stable: &str, canary: &str) -> String {
    format!(
        "# {ns} production overlay\napiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nimages:\n  - name: example/checkout\n    newTag: {stable}\n  - name: example/checkout-canary\n    newTag: {canary}\n"
    )
}

fn overlay_path(ns: &str) -> String {
    format!("apps/{ns}/overlays/prod/kustomization.yaml")
}

/// How one namespace's canary behaves.
#[derive(Debug, Clone, Copy)]
struct Behaviour {
    /// Share of the canary's requests answered 500.
    canary_error_rate: f64,
    /// The canary gets traffic at all.
    canary_receives: bool,
    /// The canary's latency (ms); stable's is `STABLE_MS`.
    canary_ms: f64,
}

#[derive(Default)]
struct Series {
    ok: u64,
    errors: u64,
    buckets: [u64; BUCKETS.len()],
    sum_ms: f64,
}

/// The test app: counters per (namespace, workload, version).
#[derive(Default)]
struct App {
    series: BTreeMap<(String, String, String), Series>,
    /// Current version of each (namespace, workload), set by "Argo CD".
    versions: HashMap<(String, String), String>,
    /// Canary weights seen by the traffic generator, per namespace, deduplicated in a row.
    weights_seen: HashMap<String, Vec<u32>>,
    /// Fractional request accumulators, per (namespace, workload).
    carry: HashMap<(String, String), f64>,
    /// Requests served per (namespace, workload), to place errors deterministically.
    served: HashMap<(String, String), u64>,
}

impl App {
    fn serve(&mut self, ns: &str, workload: &str, n: u32, error_rate: f64, ms: f64) {
        let key = (ns.to_string(), workload.to_string());
        let version = self
            .versions
            .get(&key)
            .cloned()
            .unwrap_or_else(|| "v1".into());
        for _ in 0..n {
            let served = self.served.entry(key.clone()).or_default();
            *served += 1;
            // Exactly `error_rate` of the requests fail, spread evenly.
            let fails = error_rate > 0.0
                && ((*served as f64) * error_rate).floor()
                    > ((*served as f64 - 1.0) * error_rate).floor();
            let s = self
                .series
                .entry((ns.to_string(), workload.to_string(), version.clone()))
                .or_default();
            if fails {
                s.errors += 1;
            } else {
                s.ok += 1;
            }
            for (i, le) in BUCKETS.iter().enumerate() {
                if ms <= *le {
                    s.buckets[i] += 1;
                }
            }
            s.sum_ms += ms;
        }
    }

    /// One tick of traffic for a namespace at `weights`.
    fn tick(&mut self, ns: &str, weights: Weights, b: Behaviour) {
        let seen = self.weights_seen.entry(ns.to_string()).or_default();
        if seen.last() != Some(&weights.canary) {
            seen.push(weights.canary);
        }
        let canary_share = if b.canary_receives {
            f64::from(weights.canary) / 100.0
        } else {
            0.0
        };
        let mut split = |workload: &str, share: f64| {
            let c = self
                .carry
                .entry((ns.to_string(), workload.to_string()))
                .or_default();
            *c += f64::from(REQUESTS_PER_TICK) * share;
            let n = c.floor();
            *c -= n;
            n as u32
        };
        let canary = split("checkout-canary", canary_share);
        let stable = split("checkout", 1.0 - canary_share);
        self.serve(ns, "checkout", stable, 0.0, STABLE_MS);
        self.serve(
            ns,
            "checkout-canary",
            canary,
            b.canary_error_rate,
            b.canary_ms,
        );
    }

    fn exposition(&self) -> String {
        let labels = |(ns, wl, v): &(String, String, String)| {
            format!(
                r#"reporter="destination",destination_workload_namespace="{ns}",destination_workload="{wl}",destination_version="{v}""#
            )
        };
        let mut out = String::from("# TYPE istio_requests_total counter\n");
        for (k, s) in &self.series {
            let l = labels(k);
            out.push_str(&format!(
                "istio_requests_total{{{l},response_code=\"200\"}} {}\n",
                s.ok
            ));
            out.push_str(&format!(
                "istio_requests_total{{{l},response_code=\"500\"}} {}\n",
                s.errors
            ));
        }
        out.push_str("# TYPE istio_request_duration_milliseconds histogram\n");
        for (k, s) in &self.series {
            let l = labels(k);
            for (i, le) in BUCKETS.iter().enumerate() {
                out.push_str(&format!(
                    "istio_request_duration_milliseconds_bucket{{{l},le=\"{le}\"}} {}\n",
                    s.buckets[i]
                ));
            }
            let count = s.ok + s.errors;
            out.push_str(&format!(
                "istio_request_duration_milliseconds_bucket{{{l},le=\"+Inf\"}} {count}\n"
            ));
            out.push_str(&format!(
                "istio_request_duration_milliseconds_sum{{{l}}} {}\n",
                s.sum_ms
            ));
            out.push_str(&format!(
                "istio_request_duration_milliseconds_count{{{l}}} {count}\n"
            ));
        }
        out
    }
}

fn read_weights(path: &Path) -> Weights {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Weights::canary(0))
}

struct Scenario {
    ns: &'static str,
    weights: PathBuf,
    controller: Arc<RolloutController>,
}

/// What a drive saw: phases in order (deduplicated), verdicts, the last report.
struct Outcome {
    phases: Vec<PhaseName>,
    verdicts: Vec<Verdict>,
    last: slogate::runtime::rollout::ReconcileReport,
}

async fn drive(
    sc: &Scenario,
    versions: &StaticVersions,
    app: &Mutex<App>,
    deadline: Instant,
) -> Outcome {
    let key = format!("{}/checkout", sc.ns);
    let mut phases = Vec::new();
    let mut verdicts = Vec::new();
    loop {
        let r = sc
            .controller
            .reconcile_once(Utc::now())
            .await
            .unwrap_or_else(|e| panic!("{}: reconcile failed: {e}", sc.ns));
        if phases.last() != Some(&r.phase()) {
            phases.push(r.phase());
        }
        if let Some(v) = r.verdict {
            verdicts.push(v);
            if let Some(a) = &r.status.last_analysis {
                eprintln!("{}: {v:?} at {}: {}", sc.ns, a.window_end, a.reason);
            }
        }
        // Argo CD: once the promotion commit is pushed, stable runs the canary's version.
        if r.phase() == PhaseName::Promoting
            && r.status.promotion_commit.is_some()
            && versions.get(&key).stable.as_deref() != Some("v2")
        {
            app.lock()
                .unwrap()
                .versions
                .insert((sc.ns.to_string(), "checkout".into()), "v2".into());
            versions.set_stable(&key, "v2");
        }
        if matches!(r.phase(), PhaseName::Succeeded | PhaseName::Failed)
            || Instant::now() > deadline
        {
            return Outcome {
                phases,
                verdicts,
                last: r,
            };
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The test app on a loopback port, its traffic split by the weights files under
/// `<work>/weights` (as the file router writes them) for each namespace's behaviour, and a
/// real Prometheus scraping it every second, returned once it has scraped the app twice.
async fn serve_and_scrape(
    prom_bin: PathBuf,
    work: &Path,
    behaviours: &[(&'static str, Behaviour)],
) -> (Arc<Mutex<App>>, common::Prometheus) {
    // ---- the test app and its traffic ----------------------------------------------------
    let app = Arc::new(Mutex::new(App::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app_addr = listener.local_addr().unwrap();
    {
        let app = app.clone();
        let router = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let app = app.clone();
                async move { app.lock().unwrap().exposition() }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    }
    let weights_dir = work.join("weights");
    {
        let app = app.clone();
        let files: Vec<(&str, PathBuf, Behaviour)> = behaviours
            .iter()
            .map(|(ns, b)| (*ns, weights_file(&weights_dir, ns, "checkout"), *b))
            .collect();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(TICK);
            loop {
                every.tick().await;
                let mut a = app.lock().unwrap();
                for (ns, file, b) in &files {
                    a.tick(ns, read_weights(file), *b);
                }
            }
        });
    }

    // ---- Prometheus scraping it every second -------------------------------------------
    let data = work.join("prom-data");
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: ['{app_addr}']\n"
    );
    let dir = work.to_path_buf();
    // The harness waits with a blocking HTTP client: off the async runtime.
    let prom = tokio::task::spawn_blocking(move || {
        common::Prometheus::start(&prom_bin, &dir, &data, &config)
    })
    .await
    .unwrap();
    // Prometheus hands new targets to its scrape loop after a few seconds: wait until the
    // app has been scraped twice, so that the canaries' first interval has data.
    let client = reqwest::Client::new();
    let ready_by = Instant::now() + Duration::from_secs(30);
    loop {
        let v: serde_json::Value = client
            .post(format!("{}/api/v1/query", prom.url))
            .form(&[("query", "count_over_time(up[10s])")])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let scrapes = v["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|x| x.parse::<f64>().ok())
            .unwrap_or(0.0);
        if scrapes >= 2.0 {
            break;
        }
        assert!(
            Instant::now() < ready_by,
            "the app was never scraped:\n{}",
            prom.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    (app, prom)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthy_faulty_and_idle_canaries_against_a_real_prometheus() {
    let Some(prom_bin) = common::require_bin("prometheus") else {
        return;
    };
    let started = Instant::now();
    let work = tempfile::tempdir().unwrap();

    let behaviours = [
        (
            "healthy",
            Behaviour {
                canary_error_rate: 0.0,
                canary_receives: true,
                canary_ms: CANARY_MS,
            },
        ),
        (
            "faulty",
            Behaviour {
                canary_error_rate: 0.05,
                canary_receives: true,
                canary_ms: CANARY_MS,
            },
        ),
        (
            "idle",
            Behaviour {
                canary_error_rate: 0.0,
                canary_receives: false,
                canary_ms: CANARY_MS,
            },
        ),
    ];
    let (app, prom) = serve_and_scrape(prom_bin, work.path(), &behaviours).await;
    let weights_dir = work.path().join("weights");

    // ---- GitOps repository: each namespace's canary commit is the newest on its path ----
    let remote = GitRemote::new();
    let mut canary_commits = HashMap::new();
    for (ns, _) in &behaviours {
        remote.commit(
            &[(&overlay_path(ns), &overlay(ns, "v1", "v1"))],
            &format!("{ns}: checkout v1"),
        );
    }
    for (ns, _) in &behaviours {
        let sha = remote.commit(
            &[(&overlay_path(ns), &overlay(ns, "v1", "v2"))],
            &format!("{ns}: checkout canary v2"),
        );
        canary_commits.insert(*ns, sha);
    }
    let repo = Arc::new(
        GitCli::new(RepoConfig::new(
            remote.url(),
            "main",
            remote.workdir("slogate"),
        ))
        .unwrap(),
    );

    // ---- the controllers, as the daemon wires them -------------------------------------
    let store = Arc::new(FileStore::open(work.path().join("state")).unwrap());
    let versions = Arc::new(StaticVersions::new());
    let metrics = Metrics::new();
    let source = Arc::new(PromClient::new(&prom.url, Duration::from_secs(10)).unwrap());
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rollouts/e2e");
    let mut scenarios = Vec::new();
    for (ns, _) in &behaviours {
        let report = slogate::rollout::load::load_paths(&[fixtures.join(format!("{ns}.yaml"))]);
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        let rollout: Rollout = report.rollouts[0].rollout.clone();
        versions.set(&rollout.key(), "v1", "v2");
        let weights = weights_file(&weights_dir, ns, "checkout");
        std::fs::create_dir_all(weights.parent().unwrap()).unwrap();
        let mut deps = RolloutDeps::new(
            source.clone(),
            Arc::new(FileRouter::new(&weights)),
            store.clone(),
            versions.clone(),
        );
        deps.repo = Some(repo.clone());
        deps.metrics_registry = metrics.rollout.clone();
        deps.settings.query_timeout = Duration::from_secs(5);
        scenarios.push(Scenario {
            ns,
            weights,
            controller: Arc::new(RolloutController::new(rollout, deps)),
        });
    }

    let deadline = Instant::now() + Duration::from_secs(60);
    let (healthy, faulty, idle) = tokio::join!(
        drive(&scenarios[0], &versions, &app, deadline),
        drive(&scenarios[1], &versions, &app, deadline),
        drive(&scenarios[2], &versions, &app, deadline),
    );
    // Let the traffic generator see the last weights written.
    tokio::time::sleep(TICK * 3).await;
    let seen = |ns: &str| {
        app.lock()
            .unwrap()
            .weights_seen
            .get(ns)
            .cloned()
            .unwrap_or_default()
    };

    // (a) healthy: every step, a promotion commit, traffic back to stable.
    assert_eq!(
        healthy.last.phase(),
        PhaseName::Succeeded,
        "healthy: {:#?}\nprometheus log:\n{}",
        healthy.last.status,
        prom.log()
    );
    assert_eq!(
        healthy.phases,
        [
            PhaseName::Progressing,
            PhaseName::Promoting,
            PhaseName::Succeeded
        ]
    );
    assert_eq!(seen("healthy"), [0, 10, 25, 50, 75, 100, 0]);
    // Every step passed (an interval a late scrape left without data may be inconclusive,
    // within inconclusiveLimit; none failed).
    assert!(
        !healthy.verdicts.contains(&Verdict::Fail),
        "{:?}",
        healthy.verdicts
    );
    assert!(
        healthy
            .verdicts
            .iter()
            .filter(|v| **v == Verdict::Pass)
            .count()
            >= 5,
        "{:?}",
        healthy.verdicts
    );
    let log = remote.log();
    let promotion = log
        .iter()
        .find(|(_, m)| {
            trailer_values(&parse_trailers(m), "Slogate-Rollout") == ["healthy/checkout"]
                && !trailer_values(&parse_trailers(m), "Slogate-Promotion").is_empty()
        })
        .expect("a promotion commit for healthy/checkout");
    assert_eq!(
        healthy.last.status.promotion_commit.as_ref(),
        Some(&promotion.0)
    );
    assert_eq!(
        remote.show(&overlay_path("healthy")),
        overlay("healthy", "v2", "v2")
    );
    assert_eq!(read_weights(&scenarios[0].weights), Weights::canary(0));

    // (b) faulty: aborted, weights to 0, its canary commit reverted with trailers.
    assert_eq!(
        faulty.last.phase(),
        PhaseName::Failed,
        "faulty: {:#?}",
        faulty.last.status
    );
    assert!(
        faulty.verdicts.contains(&Verdict::Fail),
        "{:?}",
        faulty.verdicts
    );
    assert_eq!(read_weights(&scenarios[1].weights), Weights::canary(0));
    assert_eq!(*seen("faulty").last().unwrap(), 0);
    assert!(!seen("faulty").contains(&100), "{:?}", seen("faulty"));
    let reverts: Vec<_> = log
        .iter()
        .map(|(sha, m)| (sha, parse_trailers(m)))
        .filter(|(_, t)| trailer_values(t, "Slogate-Rollout") == ["faulty/checkout"])
        .filter(|(_, t)| !trailer_values(t, "Slogate-Breach").is_empty())
        .collect();
    assert_eq!(reverts.len(), 1, "{log:#?}");
    let (revert_sha, trailers) = &reverts[0];
    assert_eq!(
        trailer_values(trailers, "Slogate-Reverts"),
        [canary_commits["faulty"].as_str()]
    );
    assert_eq!(
        trailer_values(trailers, "Slogate-App-Path"),
        ["apps/faulty/overlays/prod"]
    );
    assert_eq!(trailer_values(trailers, "Slogate-Canary-Version"), ["v2"]);
    assert_eq!(faulty.last.status.revert_commit.as_ref(), Some(*revert_sha));
    assert_eq!(
        remote.show(&overlay_path("faulty")),
        overlay("faulty", "v1", "v1")
    );
    let reason = &faulty.last.status.reason;
    assert!(
        reason.contains("request-success-rate") || reason.contains("error-counts"),
        "{reason}"
    );

    // (c) idle: never promoted; the inconclusive limit aborts it.
    assert_ne!(idle.last.phase(), PhaseName::Succeeded);
    assert!(
        !idle.phases.contains(&PhaseName::Promoting),
        "{:?}",
        idle.phases
    );
    assert!(
        !idle.verdicts.contains(&Verdict::Pass),
        "{:?}",
        idle.verdicts
    );
    assert_eq!(
        idle.last.phase(),
        PhaseName::Failed,
        "idle: {:#?}",
        idle.last.status
    );
    assert!(
        idle.last.status.reason.contains("inconclusiveLimit"),
        "{}",
        idle.last.status.reason
    );
    assert_eq!(seen("idle"), [0, 10, 0]);

    // The decision log and the metrics tell the same story.
    let healthy_log = store
        .decisions(&slogate::ports::state::DecisionQuery {
            subject: Some("healthy/checkout".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let actions: Vec<&str> = healthy_log.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(
        actions.iter().filter(|a| **a == "step").count(),
        4,
        "{actions:?}"
    );
    assert!(
        actions.ends_with(&["promote", "promotion-committed", "promoted"]),
        "{actions:?}"
    );
    let text = metrics.encode().unwrap();
    for line in [
        r#"slogate_rollout_phase{namespace="healthy",rollout="checkout",phase="Succeeded"} 1"#,
        r#"slogate_rollout_phase{namespace="faulty",rollout="checkout",phase="Failed"} 1"#,
        r#"slogate_rollout_phase{namespace="idle",rollout="checkout",phase="Failed"} 1"#,
        r#"slogate_analysis_result_total{namespace="healthy",rollout="checkout",metric="request-duration",result="pass"}"#,
        r#"slogate_analysis_result_total{namespace="idle",rollout="checkout",metric="request-success-rate",result="inconclusive"}"#,
        r#"slogate_analysis_p_value{namespace="healthy",rollout="checkout",metric="error-counts"}"#,
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
    // `slogate analyze` judges the same intervals the same way (the binary, exit codes).
    let at = |o: &Outcome| {
        o.last
            .status
            .last_analysis
            .as_ref()
            .map(|a| a.window_end.to_rfc3339())
            .unwrap()
    };
    let run = |args: Vec<String>| async move {
        tokio::task::spawn_blocking(move || common::slogate().args(&args).output().unwrap())
            .await
            .unwrap()
    };
    let file = |ns: &str| fixtures.join(format!("{ns}.yaml")).display().to_string();
    let out = run(vec![
        "analyze".into(),
        "--prometheus".into(),
        prom.url.clone(),
        file("faulty"),
        "-o".into(),
        "json".into(),
        "--at".into(),
        at(&faulty),
        "--canary-version".into(),
        "v2".into(),
        "--stable-version".into(),
        "v1".into(),
    ])
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["verdict"], "fail", "{v}");
    assert_eq!(v["rollout"], "faulty/checkout");
    let rate = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["metric"] == "request-success-rate")
        .unwrap();
    assert!(rate["value"].as_f64().unwrap() < 0.99, "{rate}");
    // The error-count check carries its p-value and dispersion estimate, as in the
    // decision log's details.
    let counts = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["metric"] == "error-counts")
        .unwrap();
    assert!(counts["pValue"].as_f64().is_some(), "{counts}");
    let dispersion = counts["dispersion"].as_f64().expect("dispersion");
    assert!(dispersion >= 1.0 && dispersion.is_finite(), "{counts}");
    assert!(
        counts["reason"]
            .as_str()
            .unwrap()
            .contains(&format!("dispersion {dispersion:.2}")),
        "{counts}"
    );
    let out = run(vec![
        "analyze".into(),
        "--prometheus".into(),
        prom.url.clone(),
        file("healthy"),
        "--at".into(),
        at(&healthy),
    ])
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("request-duration") && stdout.contains("verdict: pass"),
        "{stdout}"
    );
    let out = run(vec![
        "analyze".into(),
        "--prometheus".into(),
        prom.url.clone(),
        file("missing"),
    ])
    .await;
    assert_eq!(out.status.code(), Some(2));

    let elapsed = started.elapsed();
    eprintln!("rollout e2e took {elapsed:?}");
    assert!(elapsed < Duration::from_secs(90), "took {elapsed:?}");
}

/// A Rollout judged by a sequential latency comparison (`compare.sequential`) whose canary
/// runs in `ns`, with the daemon's file router.
fn sequential_rollout(ns: &str) -> String {
    format!(
        r#"apiVersion: slogate.dev/v1alpha1
kind: Rollout
metadata: {{name: checkout, namespace: {ns}}}
spec:
  traffic:
    virtualService: {{name: checkout, route: primary, subset: {{host: checkout, stable: stable, canary: canary}}}}
  workloads: {{stable: {{name: checkout}}, canary: {{name: checkout-canary}}}}
  steps: [10, 25, 50, 75, 100]
  interval: 3s
  failureLimit: 2
  inconclusiveLimit: 3
  minRequests: 10
  progressDeadline: 30s
  analysis:
    metrics:
      - {{name: request-success-rate, min: 0.99}}
      - {{name: request-duration, compare: {{direction: increase, sequential: {{alpha: 0.02}}}}}}
  gitops: {{app: {ns}-checkout, path: apps/{ns}/overlays/prod}}
"#
    )
}

/// `compare.sequential` through `slogate run` (file Rollouts, file router, a real Prometheus
/// scraping the test app, a real bare remote). The latency metric is the built-in p99 from
/// Istio's histogram, so each version's value repeats exactly while its requests stay in one
/// bucket: `steady`'s canary is as fast as stable (every difference 0) and is promoted;
/// `slower`'s canary answers in 40 ms against 20 (p99 49.75 against 24.85 ms in every
/// interval) and is rolled back by the sequential test, with its canary commit reverted.
/// (Before identical differences were given a scale, the test waited for differences that
/// varied: these, 24.9 each, varied only by the rounding of their mean, at the third
/// interval; a difference whose sums round exactly, such as 25, was never judged.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_judges_latency_with_the_sequential_comparison() {
    use common::daemon::{port, Daemon};
    let Some(prom_bin) = common::require_bin("prometheus") else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let behaviours = [
        (
            "steady",
            Behaviour {
                canary_error_rate: 0.0,
                canary_receives: true,
                canary_ms: STABLE_MS,
            },
        ),
        (
            "slower",
            Behaviour {
                canary_error_rate: 0.0,
                canary_receives: true,
                canary_ms: 40.0,
            },
        ),
    ];
    let (app, prom) = serve_and_scrape(prom_bin, work.path(), &behaviours).await;

    let remote = GitRemote::new();
    let mut canary_commits = HashMap::new();
    let rollouts = work.path().join("rollouts");
    std::fs::create_dir_all(&rollouts).unwrap();
    let mut versions = String::new();
    for (ns, _) in &behaviours {
        remote.commit(
            &[(&overlay_path(ns), &overlay(ns, "v1", "v1"))],
            &format!("{ns}: checkout v1"),
        );
        let sha = remote.commit(
            &[(&overlay_path(ns), &overlay(ns, "v1", "v2"))],
            &format!("{ns}: checkout canary v2"),
        );
        canary_commits.insert(*ns, sha);
        std::fs::write(rollouts.join(format!("{ns}.yaml")), sequential_rollout(ns)).unwrap();
        versions.push_str(&format!("{ns}/checkout: {{stable: v1, canary: v2}}\n"));
    }
    let versions_file = work.path().join("versions.yaml");
    std::fs::write(&versions_file, versions).unwrap();
    let slos = work.path().join("slos");
    std::fs::create_dir_all(&slos).unwrap();
    let config = format!(
        "cluster: off\nprometheus:\n  url: {prom}\nslos:\n  paths: [{slos}]\nserver:\n  listen: 127.0.0.1:{port}\nstate:\n  dir: {state}\nrollouts:\n  paths: [{rollouts}]\n  router: file\n  weights_dir: {weights}\n  versions_file: {versions}\n  resync_interval: 1s\ngitops:\n  url: {remote}\n  workdir: {repo}\n",
        prom = prom.url,
        slos = slos.display(),
        port = port(),
        state = work.path().join("state").display(),
        rollouts = rollouts.display(),
        weights = work.path().join("weights").display(),
        versions = versions_file.display(),
        remote = remote.url(),
        repo = work.path().join("repo").display(),
    );

    let dir = work.path().to_path_buf();
    let (d, statuses) = tokio::task::spawn_blocking(move || {
        let mut d = Daemon::start(&dir, "sequential", &config, &[]);
        let status = |d: &Daemon, ns: &str| -> Option<serde_json::Value> {
            common::http()
                .get(format!("{}/api/v1/rollouts/{ns}/checkout", d.base))
                .send()
                .ok()?
                .json()
                .ok()
        };
        let phase = |v: &serde_json::Value| v["status"]["phase"].as_str().unwrap_or("").to_string();
        // Plays Argo CD for `steady`: once its promotion commit is pushed, stable runs v2.
        let statuses = d.wait("both rollouts to finish", |d| {
            let steady = status(d, "steady")?;
            let slower = status(d, "slower")?;
            if !steady["status"]["promotionCommit"].is_null()
                && std::fs::read_to_string(&versions_file)
                    .is_ok_and(|t| t.contains("steady/checkout: {stable: v1"))
            {
                let t = std::fs::read_to_string(&versions_file).unwrap();
                std::fs::write(
                    &versions_file,
                    t.replace(
                        "steady/checkout: {stable: v1, canary: v2}",
                        "steady/checkout: {stable: v2, canary: v2}",
                    ),
                )
                .unwrap();
            }
            let done = |p: String| p == "Succeeded" || p == "Failed";
            (done(phase(&steady)) && done(phase(&slower))).then_some((steady, slower))
        });
        (d, statuses)
    })
    .await
    .unwrap();
    let (steady, slower) = statuses;

    // steady: promoted; the latency comparison passed and never failed.
    assert_eq!(
        steady["status"]["phase"],
        "Succeeded",
        "{steady:#}\n{}",
        d.log()
    );
    let log = remote.log();
    assert!(
        log.iter().any(|(_, m)| {
            let t = parse_trailers(m);
            trailer_values(&t, "Slogate-Rollout") == ["steady/checkout"]
                && !trailer_values(&t, "Slogate-Promotion").is_empty()
        }),
        "a promotion commit for steady/checkout: {log:#?}"
    );
    // slower: rolled back by the sequential latency test, its canary commit reverted once.
    assert_eq!(
        slower["status"]["phase"],
        "Failed",
        "{slower:#}\n{}",
        d.log()
    );
    let reason = slower["status"]["reason"].as_str().unwrap_or("");
    assert!(
        reason.contains("request-duration") && reason.contains("sequential p"),
        "{reason}"
    );
    // Decided at the second interval, the variance looks of a 5-interval horizon: identical
    // differences are a shift, not a missing variance.
    assert!(reason.contains("first at interval 2;"), "{reason}");
    let reverts: Vec<_> = log
        .iter()
        .map(|(_, m)| parse_trailers(m))
        .filter(|t| trailer_values(t, "Slogate-Rollout") == ["slower/checkout"])
        .filter(|t| !trailer_values(t, "Slogate-Breach").is_empty())
        .collect();
    assert_eq!(reverts.len(), 1, "{log:#?}");
    assert_eq!(
        trailer_values(&reverts[0], "Slogate-Reverts"),
        [canary_commits["slower"].as_str()]
    );
    assert_eq!(
        remote.show(&overlay_path("slower")),
        overlay("slower", "v1", "v1")
    );
    let slower_weights = app.lock().unwrap().weights_seen["slower"].clone();
    assert!(!slower_weights.contains(&100), "{slower_weights:?}");
    // The history the test ran on is in the status (a restart resumes it).
    let diffs = &slower["status"]["metricDifferences"];
    assert!(diffs.to_string().contains("request-duration"), "{slower:#}");
    assert!(tokio::task::spawn_blocking(move || d.terminate().success())
        .await
        .unwrap());
}
