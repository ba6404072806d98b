//! Benchmark: post-deploy verification on simulated metrics, through the real guard.
//!
//! `cargo run --release --example deploy_verification` (`DEPLOYS=200` for a quicker run).
//!
//! A 30-day 99.9% SLO (the default 30d window catalog: page 14.4×, ticket 3×) at 100 req/s
//! and 0.05% errors. Each simulated deploy is driven through the real
//! `GuardRuntime::run_app_with` (the real evaluator over a simulated Prometheus, the pure
//! `decide` and `verify`, the in-memory state store), with an in-memory GitOps repository
//! that records reverts. Like the daemon while a verification window is open, the guard
//! runs once per `verification.step` (1m), starting at a random second after the deploy.
//!
//! Counts are simulated in 10-second buckets from 7 hours before the deploy to 70 minutes
//! after it; windows longer than that (1d, 3d, 30d) answer the baseline ratio. Each minute
//! draws its error rate from Beta(mean, concentration), so error counts vary more than
//! binomially between intervals, and traffic follows a day (×0.2 to ×3 around the mean,
//! deploys at random times of day) in the false-revert runs.
//!
//! Prints, in simulated time, the delay from deploy to revert for 2%, 100% and 0.5%
//! errors after the deploy, and the false reverts over healthy deploys with a 95% Wilson
//! interval. Nothing here is asserted.

#[path = "../tests/judge_common/sim.rs"]
mod sim;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rand::rngs::Xoshiro256PlusPlus;
use slogate::adapters::state::MemoryStore;
use slogate::guard::decide::{AppGuard, Trigger};
use slogate::guard::verify::VerifyPolicy;
use slogate::model::commit::{CommitInfo, RevertRequest, Sha};
use slogate::model::trailers::Trailer;
use slogate::ports::gitops::{CommitOutcome, EditFn, GitOpsError, GitOpsRepo, RevertOutcome};
use slogate::ports::metrics::{MetricsError, MetricsSource, Sample, Series};
use slogate::runtime::evaluator::{self, Target};
use slogate::runtime::guard::GuardRuntime;
use slogate::slo::windows::AlertWindows;
use slogate::slo::PromDuration;

const BUCKET: i64 = 10;
const BEFORE: i64 = 7 * 3600;
const AFTER: i64 = 70 * 60;
const BASELINE: f64 = 0.0005;
const RPS: f64 = 100.0;

const SLO: &str = r#"version: prometheus/v1
service: checkout
slos:
  - name: availability
    objective: 99.9
    sli:
      events:
        error_query: err[{{.window}}]
        total_query: tot[{{.window}}]
    alerting:
      page_alert: {disable: true}
      ticket_alert: {disable: true}
"#;

/// Cumulative error and request counts at the end of each 10 s bucket.
struct Counters {
    start: i64,
    err: Vec<f64>,
    tot: Vec<f64>,
}

impl Counters {
    fn at(&self, v: &[f64], t: f64) -> f64 {
        let x = (t - self.start as f64) / BUCKET as f64;
        if x <= 0.0 {
            return 0.0;
        }
        let i = x.floor() as usize;
        if i + 1 >= v.len() {
            return *v.last().unwrap_or(&0.0);
        }
        let f = x - i as f64;
        v[i] + (v[i + 1] - v[i]) * f
    }
}

struct SimProm(Arc<Counters>);

fn window_of(q: &str, name: &str) -> Option<PromDuration> {
    let i = q.find(&format!("{name}["))? + name.len() + 1;
    let j = q[i..].find(']')? + i;
    q[i..j].parse().ok()
}

#[async_trait]
impl MetricsSource for SimProm {
    async fn instant(
        &self,
        q: &str,
        at: Option<DateTime<Utc>>,
    ) -> Result<Vec<Sample>, MetricsError> {
        if q == "sloth_slo_info" {
            return Ok(Vec::new());
        }
        let w = window_of(q, "err").ok_or_else(|| MetricsError::Query {
            query: q.into(),
            message: "unknown query".into(),
        })?;
        let c = &self.0;
        let t = at.unwrap_or_else(Utc::now).timestamp() as f64;
        let secs = w.as_millis() as f64 / 1000.0;
        let value = if secs > (BEFORE - 600) as f64 {
            BASELINE
        } else {
            let e = c.at(&c.err, t) - c.at(&c.err, t - secs);
            let n = c.at(&c.tot, t) - c.at(&c.tot, t - secs);
            if n > 0.0 {
                e / n
            } else {
                f64::NAN
            }
        };
        Ok(vec![Sample {
            labels: Default::default(),
            value,
        }])
    }

    async fn range(
        &self,
        q: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        step: Duration,
    ) -> Result<Vec<Series>, MetricsError> {
        let (v, w) = match (window_of(q, "err"), window_of(q, "tot")) {
            (Some(w), _) => (&self.0.err, w),
            (_, Some(w)) => (&self.0.tot, w),
            _ => {
                return Err(MetricsError::Query {
                    query: q.into(),
                    message: "unknown query".into(),
                })
            }
        };
        let secs = w.as_millis() as f64 / 1000.0;
        let mut points = Vec::new();
        let mut t = start.timestamp() as f64;
        let step = step.as_secs_f64().max(1.0);
        while t <= end.timestamp() as f64 {
            let rate = (self.0.at(v, t) - self.0.at(v, t - secs)) / secs;
            points.push((t, rate));
            t += step;
        }
        Ok(vec![Series {
            labels: Default::default(),
            points,
        }])
    }
}

/// The GitOps repository: one old commit and the deploy; reverts are recorded.
struct Repo {
    commits: Vec<CommitInfo>,
    reverts: Mutex<Vec<(RevertRequest, DateTime<Utc>)>>,
    now: Mutex<DateTime<Utc>>,
}

#[async_trait]
impl GitOpsRepo for Repo {
    async fn sync(&self) -> Result<Sha, GitOpsError> {
        Ok(self.commits[0].sha.clone())
    }
    async fn head(&self) -> Result<Sha, GitOpsError> {
        Ok(self.commits[0].sha.clone())
    }
    async fn commits_touching(
        &self,
        _path: &str,
        _since: Option<&str>,
    ) -> Result<Vec<CommitInfo>, GitOpsError> {
        Ok(self.commits.clone())
    }
    async fn read_trailers(&self, _sha: &str) -> Result<Vec<Trailer>, GitOpsError> {
        Ok(Vec::new())
    }
    async fn revert(&self, req: &RevertRequest) -> Result<RevertOutcome, GitOpsError> {
        let now = *self.now.lock().unwrap();
        self.reverts.lock().unwrap().push((req.clone(), now));
        Ok(RevertOutcome::Reverted {
            sha: "f".repeat(40),
            reverted: vec![self.commits[0].sha.clone()],
        })
    }
    async fn commit_files(
        &self,
        _changes: Vec<(String, String)>,
        _message: &str,
    ) -> Result<CommitOutcome, GitOpsError> {
        Err(GitOpsError::Config("not part of the benchmark".into()))
    }
    async fn commit_edit(
        &self,
        _path: &str,
        _edit: EditFn,
        _message: &str,
    ) -> Result<CommitOutcome, GitOpsError> {
        Err(GitOpsError::Config("not part of the benchmark".into()))
    }
}

/// How a simulated deploy behaves.
#[derive(Clone, Copy)]
struct Case {
    /// Error ratio after the deploy.
    after: f64,
    /// Beta concentration of the per-minute error rate.
    concentration: f64,
    diurnal: bool,
}

fn counters(rng: &mut Xoshiro256PlusPlus, case: Case, deploy: i64) -> Counters {
    let start = deploy - BEFORE;
    let buckets = ((BEFORE + AFTER) / BUCKET) as usize;
    let (mut err, mut tot) = (vec![0.0], vec![0.0]);
    let mut rate = BASELINE;
    for k in 0..buckets {
        let t = start + (k as i64 + 1) * BUCKET;
        let mean = if t > deploy { case.after } else { BASELINE };
        if k % 6 == 0 || (t > deploy && t - BUCKET <= deploy) {
            rate = if mean >= 0.999 {
                1.0
            } else {
                sim::beta_mean_concentration(rng, mean, case.concentration)
            };
        }
        let m = if case.diurnal {
            // ×0.2 at night to ×3 at the peak of the day.
            let phase = 2.0 * std::f64::consts::PI * (t.rem_euclid(86_400)) as f64 / 86_400.0;
            0.2 + 2.8 * (0.5 + 0.5 * phase.sin())
        } else {
            1.0
        };
        let n = (RPS * m * BUCKET as f64).round() as u64;
        let e = sim::binomial(rng, n, rate);
        err.push(err[k] + e as f64);
        tot.push(tot[k] + n as f64);
    }
    Counters { start, err, tot }
}

fn commit(sha: char, time: i64) -> CommitInfo {
    CommitInfo {
        sha: sha.to_string().repeat(40),
        subject: "deploy".into(),
        author: "Dev <dev@example.com>".into(),
        time: DateTime::from_timestamp(time, 0).unwrap(),
        trailers: Vec::new(),
    }
}

/// One deploy: the seconds from the deploy to the revert and its reason, if reverted
/// within the hour.
async fn one(seed: u64, case: Case, target: &Target) -> Option<(f64, String)> {
    let mut rng = sim::rng(seed);
    // A deploy at a random second of a day in 2026 (fixed epoch + random offset).
    let deploy = 1_790_000_000 + (sim::uniform(&mut rng) * 86_400.0) as i64;
    let c = Arc::new(counters(&mut rng, case, deploy));
    let source = Arc::new(SimProm(c));
    let repo = Arc::new(Repo {
        commits: vec![commit('b', deploy), commit('a', deploy - 86_400)],
        reverts: Mutex::new(Vec::new()),
        now: Mutex::new(DateTime::from_timestamp(deploy, 0).unwrap()),
    });
    let app = AppGuard {
        app: "checkout".into(),
        path: "apps/checkout/overlays/prod".into(),
        slos: vec![target.slo.id.clone()],
        thresholds: Default::default(),
        soak: Duration::from_secs(3600),
        verify: VerifyPolicy::default(),
    };
    let guard = GuardRuntime::new(
        vec![app],
        Arc::new(MemoryStore::new()),
        repo.clone(),
        Default::default(),
        Vec::new(),
    )
    .with_verifier(source.clone());
    let first = deploy + 1 + (sim::uniform(&mut rng) * 59.0) as i64;
    let mut t = first;
    while t <= deploy + 3600 + 60 {
        let now = DateTime::from_timestamp(t, 0).unwrap();
        *repo.now.lock().unwrap() = now;
        let ev =
            evaluator::evaluate(source.as_ref(), std::slice::from_ref(target), Some(now)).await;
        let reports: Vec<_> = ev.reports().cloned().collect();
        guard
            .run_app_with(
                "checkout",
                &reports,
                std::slice::from_ref(target),
                Trigger::Schedule,
                now,
            )
            .await
            .expect("guard run");
        if let Some((req, at)) = repo.reverts.lock().unwrap().first() {
            return Some((
                (at.timestamp() - deploy) as f64,
                req.reason_code.clone().unwrap_or_default(),
            ));
        }
        t += 60;
    }
    None
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i]
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let deploys: u64 = std::env::var("DEPLOYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let slo = slogate::slo::spec::parse_str(std::path::Path::new("bench.yml"), SLO)
        .slos
        .into_iter()
        .next()
        .expect("the benchmark SLO parses");
    let target = Target {
        slo: Arc::new(slo),
        windows: AlertWindows::default_30d(),
    };
    println!(
        "30-day 99.9% SLO, {RPS} req/s, baseline {:.2}% errors; guard every 1m while a window is open",
        BASELINE * 100.0
    );
    println!(
        "== time from deploy to revert (simulated), per-minute Beta(concentration 5000) noise"
    );
    let runs = (deploys / 10).max(20);
    for after in [0.02, 1.0, 0.005] {
        let case = Case {
            after,
            concentration: 5000.0,
            diurnal: false,
        };
        let mut delays = Vec::new();
        let mut reasons: std::collections::BTreeMap<String, usize> = Default::default();
        for seed in 0..runs {
            if let Some((d, why)) = one(seed, case, &target).await {
                delays.push(d);
                *reasons.entry(why).or_default() += 1;
            }
        }
        delays.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        let reverted = delays.len();
        if reverted == 0 {
            println!(
                "  {:>5.1}% errors ({:>4.0}x burn): 0/{runs} reverted within the 1h window",
                after * 100.0,
                after / 0.001
            );
            continue;
        }
        println!(
            "  {:>5.1}% errors ({:>4.0}x burn): {reverted}/{runs} reverted; delay median {:.1} min, p90 {:.1} min, max {:.1} min; by {:?}",
            after * 100.0,
            after / 0.001,
            quantile(&delays, 0.5) / 60.0,
            quantile(&delays, 0.9) / 60.0,
            delays[reverted - 1] / 60.0,
            reasons
        );
    }
    println!(
        "== false reverts over healthy deploys (diurnal traffic x0.2..x3, overdispersed errors)"
    );
    for concentration in [500.0, 5000.0] {
        let case = Case {
            after: BASELINE,
            concentration,
            diurnal: true,
        };
        let mut k = 0;
        for seed in 0..deploys {
            if one(1_000_000 + seed, case, &target).await.is_some() {
                k += 1;
            }
        }
        let (lo, hi) = sim::wilson(k, deploys as usize);
        println!(
            "  per-minute Beta(concentration {concentration}): {k}/{deploys} = {:.2}% [{lo:.2}, {hi:.2}]",
            100.0 * k as f64 / deploys as f64
        );
    }
}
