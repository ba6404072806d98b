//! The demo's simulated service: a stable and a canary workload, each running a version
//! with its own error rate and latency distribution. Traffic follows the weights slogate
//! sets. Counters are kept as Istio would export them (`istio_requests_total`,
//! `istio_request_duration_milliseconds_bucket`), and [`SimMetrics`] answers slogate's
//! queries over them through the real `MetricsSource` port.
//!
//! Time is simulated: [`SimService::advance`] moves the clock; nothing sleeps here.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use statrs::distribution::{ContinuousCDF, LogNormal};

use super::promql::{self, CounterStore, Labels, Value};
use crate::model::traffic::Weights;
use crate::ports::metrics::{MetricsError, MetricsSource, Sample, Series};

/// Istio's default duration buckets (ms), up to 10 s, then +Inf.
const BUCKETS: [f64; 13] = [
    1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
];

/// How one version behaves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Profile {
    /// Fraction of requests answered with a 5xx.
    pub error_rate: f64,
    /// Median latency (ms); latencies are log-normal.
    pub latency_median_ms: f64,
    /// Log-space standard deviation of the latency.
    pub latency_sigma: f64,
}

impl Profile {
    pub fn healthy() -> Self {
        Profile {
            error_rate: 0.001,
            latency_median_ms: 40.0,
            latency_sigma: 0.5,
        }
    }
}

/// The simulated service.
pub struct SimService {
    pub namespace: String,
    pub service: String,
    pub stable_workload: String,
    pub canary_workload: String,
    start: DateTime<Utc>,
    now: f64,
    /// Requests per second over both workloads.
    pub rps: f64,
    /// Version each workload runs (`None`: the workload is scaled to zero).
    pub stable_version: Option<String>,
    pub canary_version: Option<String>,
    pub weights: Weights,
    profiles: HashMap<String, Profile>,
    /// (metric, labels) → cumulative samples (t, value), t ascending.
    counters: BTreeMap<(String, Labels), Vec<(f64, f64)>>,
    rng: StdRng,
}

impl SimService {
    pub fn new(namespace: &str, service: &str, start: DateTime<Utc>, seed: u64) -> Self {
        SimService {
            namespace: namespace.into(),
            service: service.into(),
            stable_workload: service.into(),
            canary_workload: format!("{service}-canary"),
            start,
            now: 0.0,
            rps: 200.0,
            stable_version: None,
            canary_version: None,
            weights: Weights::canary(0),
            profiles: HashMap::new(),
            counters: BTreeMap::new(),
            rng: StdRng::seed_from_u64(seed),
        }
    }

    pub fn set_profile(&mut self, version: &str, p: Profile) {
        self.profiles.insert(version.to_string(), p);
    }

    /// The simulated wall clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.start + chrono::Duration::milliseconds((self.now * 1000.0) as i64)
    }

    pub fn secs_at(&self, t: DateTime<Utc>) -> f64 {
        (t - self.start).num_milliseconds() as f64 / 1000.0
    }

    fn add(&mut self, name: &str, labels: Labels, inc: f64, t: f64) {
        let s = self.counters.entry((name.to_string(), labels)).or_default();
        let last = s.last().map(|x| x.1).unwrap_or(0.0);
        if s.is_empty() && t > 0.0 {
            // A series starts at zero when it first sees traffic.
            s.push((self.now, 0.0));
        }
        s.push((t, last + inc));
    }

    /// Serve `dt` seconds of traffic and move the clock.
    pub fn advance(&mut self, dt: f64) {
        let end = self.now + dt;
        let workloads = [
            (
                self.stable_workload.clone(),
                self.stable_version.clone(),
                self.weights.stable,
            ),
            (
                self.canary_workload.clone(),
                self.canary_version.clone(),
                self.weights.canary,
            ),
        ];
        for (workload, version, weight) in workloads {
            let Some(version) = version else { continue };
            if weight == 0 {
                continue;
            }
            let p = self
                .profiles
                .get(&version)
                .copied()
                .unwrap_or_else(Profile::healthy);
            let n = self.rps * dt * f64::from(weight) / 100.0;
            // Binomial noise, normal approximation, seeded.
            let sd = (n * p.error_rate * (1.0 - p.error_rate)).sqrt();
            let z: f64 = self.rng.random_range(-1.0..1.0) * 1.7;
            let errors = (n * p.error_rate + z * sd).clamp(0.0, n);
            let mut base = Labels::new();
            for (k, v) in [
                ("reporter", "destination"),
                ("destination_workload_namespace", self.namespace.as_str()),
                ("destination_service_name", self.service.as_str()),
                ("destination_workload", workload.as_str()),
                ("destination_version", version.as_str()),
            ] {
                base.insert(k.into(), v.into());
            }
            let with = |k: &str, v: &str| {
                let mut l = base.clone();
                l.insert(k.into(), v.into());
                l
            };
            self.add(
                "istio_requests_total",
                with("response_code", "200"),
                n - errors,
                end,
            );
            self.add(
                "istio_requests_total",
                with("response_code", "500"),
                errors,
                end,
            );
            let dist = LogNormal::new(p.latency_median_ms.ln(), p.latency_sigma.max(1e-6));
            for le in BUCKETS {
                let frac = dist.as_ref().map(|d| d.cdf(le)).unwrap_or(1.0);
                self.add(
                    "istio_request_duration_milliseconds_bucket",
                    with("le", &le.to_string()),
                    n * frac,
                    end,
                );
            }
            self.add(
                "istio_request_duration_milliseconds_bucket",
                with("le", "+Inf"),
                n,
                end,
            );
        }
        self.now = end;
    }
}

impl CounterStore for SimService {
    fn series(&self, name: &str) -> Vec<Labels> {
        self.counters
            .keys()
            .filter(|(n, _)| n == name)
            .map(|(_, l)| l.clone())
            .collect()
    }

    fn value_at(&self, name: &str, labels: &Labels, t: f64) -> Option<f64> {
        let s = self.counters.get(&(name.to_string(), labels.clone()))?;
        let first = s.first()?;
        if t > self.now + 1e-9 {
            return None;
        }
        if t <= first.0 {
            return Some(0.0);
        }
        let i = s.partition_point(|x| x.0 <= t);
        let (t0, v0) = s[i - 1];
        match s.get(i) {
            Some(&(t1, v1)) if t1 > t0 => Some(v0 + (v1 - v0) * (t - t0) / (t1 - t0)),
            _ => Some(v0),
        }
    }
}

/// `MetricsSource` over a shared simulated service.
#[derive(Clone)]
pub struct SimMetrics(pub Arc<Mutex<SimService>>);

impl SimMetrics {
    fn query(&self, q: &str, at: Option<DateTime<Utc>>) -> Result<Value, MetricsError> {
        // The simulation is only mutated between ticks; a poisoned lock still holds
        // consistent counters.
        let sim = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let t = at.map(|a| sim.secs_at(a)).unwrap_or(sim.now);
        promql::eval(q, &*sim, t).map_err(|e| MetricsError::Query {
            query: q.to_string(),
            message: e.to_string(),
        })
    }
}

#[async_trait]
impl MetricsSource for SimMetrics {
    async fn instant(
        &self,
        query: &str,
        at: Option<DateTime<Utc>>,
    ) -> Result<Vec<Sample>, MetricsError> {
        Ok(match self.query(query, at)? {
            Value::Scalar(v) => vec![Sample {
                labels: Default::default(),
                value: v,
            }],
            Value::Vector(v) => v
                .into_iter()
                .map(|(labels, value)| Sample { labels, value })
                .collect(),
        })
    }

    async fn range(
        &self,
        query: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        step: std::time::Duration,
    ) -> Result<Vec<Series>, MetricsError> {
        let step = chrono::Duration::from_std(step)
            .unwrap_or(chrono::Duration::seconds(1))
            .max(chrono::Duration::milliseconds(100));
        let mut out: BTreeMap<Labels, Vec<(f64, f64)>> = BTreeMap::new();
        let mut t = start;
        while t <= end {
            let ts = t.timestamp_millis() as f64 / 1000.0;
            match self.query(query, Some(t))? {
                Value::Scalar(v) => out.entry(Labels::new()).or_default().push((ts, v)),
                Value::Vector(v) => {
                    for (l, x) in v {
                        out.entry(l).or_default().push((ts, x));
                    }
                }
            }
            t += step;
        }
        Ok(out
            .into_iter()
            .map(|(labels, points)| Series { labels, points })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn traffic_follows_weights_and_errors_follow_profiles() {
        let start = DateTime::parse_from_rfc3339("2026-11-23T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut s = SimService::new("shop", "checkout", start, 7);
        s.stable_version = Some("v1".into());
        s.canary_version = Some("v2".into());
        s.set_profile(
            "v2",
            Profile {
                error_rate: 0.08,
                latency_median_ms: 80.0,
                latency_sigma: 0.4,
            },
        );
        s.weights = Weights::canary(25);
        for _ in 0..120 {
            s.advance(1.0);
        }
        let now = s.now();
        let m = SimMetrics(Arc::new(Mutex::new(s)));
        let q = |w: &str, codes: &str| {
            format!("sum(rate(istio_requests_total{{destination_workload=\"{w}\",response_code=~\"{codes}\"}}[1m]))")
        };
        let get = |v: Vec<Sample>| v.first().map(|s| s.value).unwrap();
        let canary_total = get(m.instant(&q("checkout-canary", ".*"), None).await.unwrap());
        let stable_total = get(m.instant(&q("checkout", ".*"), None).await.unwrap());
        assert!((canary_total - 50.0).abs() < 1e-6 && (stable_total - 150.0).abs() < 1e-6);
        let canary_err =
            get(m.instant(&q("checkout-canary", "5.."), None).await.unwrap()) / canary_total;
        assert!((canary_err - 0.08).abs() < 0.02, "{canary_err}");
        let p99 = "histogram_quantile(0.99, sum by (le) (rate(istio_request_duration_milliseconds_bucket{destination_workload=\"checkout-canary\"}[1m])))";
        let p = get(m.instant(p99, Some(now)).await.unwrap());
        // Log-normal p99 = median · e^(2.326σ) ≈ 203 ms, interpolated inside the 100–250 bucket.
        assert!((100.0..250.0).contains(&p), "{p}");
        let series = m
            .range(
                &q("checkout-canary", ".*"),
                now - chrono::Duration::seconds(30),
                now,
                std::time::Duration::from_secs(10),
            )
            .await
            .unwrap();
        assert_eq!(series[0].points.len(), 4);
        // No canary traffic: no series, which analysis must treat as no data.
        assert!(m
            .instant(&q("checkout-nope", ".*"), None)
            .await
            .unwrap()
            .is_empty());
    }
}
