//! Evaluates SLO error budgets through the [`MetricsSource`] port.
//!
//! Two sources, chosen per SLO:
//! - **Recording rules.** When Prometheus has Sloth's `sloth_slo_info` series for the SLO's
//!   `sloth_id`, its ratios are read from `slo:sli_error:ratio_rate<w>`. These are fetched with
//!   one query per distinct window for *all* SLOs at once, so the number of queries per cycle
//!   does not grow with the number of SLOs.
//! - **Raw.** Otherwise the SLI queries are evaluated directly, with `{{.window}}` set to each
//!   alert window and to the period: one query per window per SLO, run with bounded
//!   concurrency.
//!
//! An SLO never mixes sources: if its info series exists, a missing window series is reported
//! as no data for that window rather than silently recomputed from raw data.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt};

use crate::ports::metrics::{LabelValue, MetricsError, MetricsSource, Sample};
use crate::slo::budget::{self, BudgetReport, Measurements, Source};
use crate::slo::duration::PromDuration;
use crate::slo::windows::AlertWindows;
use crate::slo::Slo;

/// An SLO together with the window catalog that applies to it.
#[derive(Debug, Clone)]
pub struct Target {
    /// Shared with the SLO store: a cycle over 10,000 SLOs copies none of them.
    pub slo: std::sync::Arc<Slo>,
    pub windows: AlertWindows,
}

/// Why one SLO could not be evaluated.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("SLO {slo}: {source}")]
    Metrics {
        slo: String,
        #[source]
        source: MetricsError,
    },
    #[error("SLO {slo}: query returned {series} series; expected one (aggregate the SLI, e.g. with sum()); query: {query}")]
    Ambiguous {
        slo: String,
        query: String,
        series: usize,
    },
}

impl EvalError {
    /// True when the failure is about reaching Prometheus rather than one SLO's query.
    pub fn is_unreachable(&self) -> bool {
        let src = match self {
            EvalError::Metrics { source, .. } => source,
            EvalError::Ambiguous { .. } => return false,
        };
        matches!(
            src,
            MetricsError::Unreachable { .. } | MetricsError::Timeout { .. }
        )
    }
}

/// The outcome of one evaluation cycle.
#[derive(Debug)]
pub struct Evaluation {
    /// One entry per target, in target order.
    pub results: Vec<(String, Result<BudgetReport, EvalError>)>,
    /// Queries sent to the metrics source.
    pub queries: u64,
    /// Queries that failed.
    pub query_errors: u64,
    pub elapsed: Duration,
    /// The metrics source could not be reached (or timed out) at all. Set even when there
    /// are no targets, so that an empty catalog does not hide an unreachable Prometheus.
    pub unreachable: bool,
}

impl Evaluation {
    pub fn reports(&self) -> impl Iterator<Item = &BudgetReport> {
        self.results.iter().filter_map(|(_, r)| r.as_ref().ok())
    }
    pub fn errors(&self) -> impl Iterator<Item = &EvalError> {
        self.results.iter().filter_map(|(_, r)| r.as_ref().err())
    }
}

/// The Sloth recording rule holding the error ratio of one window.
pub fn ratio_rule(window: PromDuration) -> String {
    format!("slo:sli_error:ratio_rate{window}")
}

struct Counter<'a> {
    source: &'a dyn MetricsSource,
    queries: AtomicU64,
    errors: AtomicU64,
}

impl Counter<'_> {
    async fn instant(
        &self,
        q: &str,
        at: Option<DateTime<Utc>>,
    ) -> Result<Vec<Sample>, MetricsError> {
        self.queries.fetch_add(1, Ordering::Relaxed);
        let r = self.source.instant(q, at).await;
        if r.is_err() {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        r
    }

    /// [`MetricsSource::instant_label_values`] on `sloth_id`, counted.
    async fn by_sloth_id(
        &self,
        q: &str,
        at: Option<DateTime<Utc>>,
    ) -> Result<Vec<LabelValue>, MetricsError> {
        self.queries.fetch_add(1, Ordering::Relaxed);
        let r = self.source.instant_label_values(q, at, "sloth_id").await;
        if r.is_err() {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        r
    }
}

/// The recorded ratios of one window, indexed like the targets: how many series carried
/// the target's `sloth_id` (0: none; one is the normal case; more is an error) and the
/// last value.
type Recorded = Vec<(u32, f64)>;

/// The answer of each window read, by window (a handful: searched in order).
type Windows = Vec<(PromDuration, Result<Recorded, MetricsError>)>;

/// One raw SLI query's answer: the window, the query text and the result.
type RawAnswer = (PromDuration, String, Result<Vec<Sample>, MetricsError>);

/// How many raw SLI queries may be in flight at once.
pub const RAW_CONCURRENCY: usize = 8;

/// Evaluate every target at `at` (now when `None`).
pub async fn evaluate(
    source: &dyn MetricsSource,
    targets: &[Target],
    at: Option<DateTime<Utc>>,
) -> Evaluation {
    evaluate_with(source, targets, at, targets.len() >= SPECULATE_FROM).await
}

/// [`evaluate`], sending the window reads together with `sloth_slo_info` when `speculate`.
async fn evaluate_with(
    source: &dyn MetricsSource,
    targets: &[Target],
    at: Option<DateTime<Utc>>,
    speculate: bool,
) -> Evaluation {
    let started = Instant::now();
    let counter = Counter {
        source,
        queries: AtomicU64::new(0),
        errors: AtomicU64::new(0),
    };

    // Every target by id, the ids copied into one string: the lookups of steps 1 and 2
    // (one per series, 90,000 at 10,000 SLOs) then compare against memory close together,
    // not against 10,000 separately allocated ids.
    let packed: String = targets.iter().map(|t| t.slo.id.as_str()).collect();
    let mut index: HashMap<&str, usize> = HashMap::with_capacity(targets.len());
    let mut at_byte = 0;
    for (i, t) in targets.iter().enumerate() {
        let end = at_byte + t.slo.id.len();
        // The ids were copied in this order, so `at_byte..end` is this one's, whole.
        index.insert(&packed[at_byte..end], i);
        at_byte = end;
    }

    // 1. Which SLOs have Sloth recording rules in Prometheus? With many targets, the
    //    window reads of step 2 are sent at once with this question, for every target's
    //    windows: at most one query per distinct window is wasted when no SLO has rules,
    //    and the cycle takes one round trip instead of two.
    let all_windows = if speculate {
        windows_of(targets.iter())
    } else {
        BTreeSet::new()
    };
    let info = async {
        counter.by_sloth_id("sloth_slo_info", at).await.map(|v| {
            let mut ruled = vec![false; targets.len()];
            for id in v.iter().filter_map(|s| s.label.as_deref()) {
                if let Some(&i) = index.get(id) {
                    ruled[i] = true;
                }
            }
            ruled
        })
    };
    let (ruled, speculative) = futures::join!(
        info,
        read_windows(&counter, &all_windows, &index, targets.len(), at)
    );
    let ruled = match ruled {
        Ok(ruled) => ruled,
        Err(e) => {
            let unreachable = matches!(
                e,
                MetricsError::Unreachable { .. } | MetricsError::Timeout { .. }
            );
            // Prometheus unreachable or broken: every SLO fails with the same cause.
            let results = targets
                .iter()
                .map(|t| {
                    let err = EvalError::Metrics {
                        slo: t.slo.id.clone(),
                        source: e.clone(),
                    };
                    (t.slo.id.clone(), Err(err))
                })
                .collect();
            return Evaluation {
                results,
                queries: counter.queries.load(Ordering::Relaxed),
                query_errors: counter.errors.load(Ordering::Relaxed),
                elapsed: started.elapsed(),
                unreachable,
            };
        }
    };

    // 2. Batched recording-rule reads: one query per distinct window of the ruled SLOs
    //    (already sent in step 1 when speculating, for every window). Each answer is folded
    //    into per-target values as soon as it arrives, so at most the in-flight answers are
    //    held, never all of them. Values are folded for every target; only the ruled ones
    //    are read (step 4).
    let recorded = if speculate {
        speculative
    } else {
        let rule_windows = windows_of(
            targets
                .iter()
                .zip(&ruled)
                .filter(|(_, r)| **r)
                .map(|(t, _)| t),
        );
        read_windows(&counter, &rule_windows, &index, targets.len(), at).await
    };
    drop(index);

    // 3. Raw SLI queries for the rest, bounded concurrency.
    let raw_jobs: Vec<(usize, PromDuration, String)> = targets
        .iter()
        .enumerate()
        .filter(|(i, _)| !ruled[*i])
        .flat_map(|(i, t)| {
            let mut ws = t.windows.windows();
            ws.push(t.windows.slo_period);
            ws.into_iter()
                .map(move |w| (i, w, t.slo.sli.error_ratio_query(&w.to_string())))
        })
        .collect();
    let raw_results = stream::iter(raw_jobs)
        .map(|(i, w, q)| {
            let counter = &counter;
            async move {
                let r = counter.instant(&q, at).await;
                (i, w, q, r)
            }
        })
        .buffer_unordered(RAW_CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    let mut raw: HashMap<usize, Vec<RawAnswer>> = HashMap::new();
    for (i, w, q, r) in raw_results {
        raw.entry(i).or_default().push((w, q, r));
    }

    // 4. Assemble one report per target. Each distinct window is formatted once (a
    //    handful), not once per target and window (80,000 at 10,000 SLOs).
    let mut names: Vec<(PromDuration, String)> = Vec::new();
    let mut results = Vec::with_capacity(targets.len());
    for (i, t) in targets.iter().enumerate() {
        let id = t.slo.id.clone();
        let windows = t.windows.windows();
        let period = t.windows.slo_period;
        for &w in windows.iter().chain([&period]) {
            if !names.iter().any(|(d, _)| *d == w) {
                names.push((w, w.to_string()));
            }
        }
        let name = |w: PromDuration| match names.iter().find(|(d, _)| *d == w) {
            Some((_, n)) => n.clone(),
            None => w.to_string(),
        };
        let outcome = if ruled[i] {
            from_recorded(i, t, &recorded, &windows, period, &name)
        } else {
            from_raw(
                t,
                raw.remove(&i).unwrap_or_default(),
                &windows,
                period,
                &name,
            )
        };
        results.push((id, outcome));
    }

    Evaluation {
        results,
        queries: counter.queries.load(Ordering::Relaxed),
        query_errors: counter.errors.load(Ordering::Relaxed),
        elapsed: started.elapsed(),
        unreachable: false,
    }
}

/// From how many targets on the window reads are sent together with `sloth_slo_info`
/// (step 1 of [`evaluate`]). Below it, a cycle sends no query it does not need (tests and
/// small catalogs count them); above it, the at most one wasted query per window is under
/// 2% of the raw queries the same targets would send without rules.
pub const SPECULATE_FROM: usize = 64;

/// Every distinct window (alert windows and SLO period) of `targets`.
fn windows_of<'a>(targets: impl Iterator<Item = &'a Target>) -> BTreeSet<PromDuration> {
    let mut ws = BTreeSet::new();
    for t in targets {
        ws.extend(t.windows.windows());
        ws.insert(t.windows.slo_period);
    }
    ws
}

/// One `slo:sli_error:ratio_rate<w>` query per window, at most [`RAW_CONCURRENCY`] at once,
/// each answer folded as it arrives into the values of the `targets` targets, found by id
/// in `ids`.
async fn read_windows(
    counter: &Counter<'_>,
    windows: &BTreeSet<PromDuration>,
    ids: &HashMap<&str, usize>,
    targets: usize,
    at: Option<DateTime<Utc>>,
) -> Windows {
    stream::iter(windows.iter().copied())
        .map(|w| async move {
            let r = counter.by_sloth_id(&ratio_rule(w), at).await;
            let folded = r.map(|samples| {
                let mut by_target: Recorded = vec![(0, 0.0); targets];
                for s in samples {
                    let found = s.label.as_deref().and_then(|id| ids.get(id));
                    // Every index of `ids` is a target's, within `by_target`.
                    if let Some(e) = found.and_then(|&i| by_target.get_mut(i)) {
                        e.0 += 1;
                        e.1 = s.value;
                    }
                }
                by_target
            });
            (w, folded)
        })
        .buffer_unordered(RAW_CONCURRENCY)
        .collect()
        .await
}

fn single(slo: &str, query: &str, values: &[f64]) -> Result<Option<f64>, EvalError> {
    match values {
        [] => Ok(None),
        [v] => Ok(Some(*v)),
        many => Err(EvalError::Ambiguous {
            slo: slo.to_string(),
            query: query.to_string(),
            series: many.len(),
        }),
    }
}

fn from_recorded(
    index: usize,
    t: &Target,
    recorded: &Windows,
    windows: &[PromDuration],
    period: PromDuration,
    name: &dyn Fn(PromDuration) -> String,
) -> Result<BudgetReport, EvalError> {
    let id = &t.slo.id;
    let value = |w: PromDuration| -> Result<Option<f64>, EvalError> {
        match recorded.iter().find(|(d, _)| *d == w).map(|(_, r)| r) {
            Some(Ok(by_target)) => match by_target.get(index) {
                None | Some((0, _)) => Ok(None),
                Some((1, v)) => Ok(Some(*v)),
                Some((n, _)) => Err(EvalError::Ambiguous {
                    slo: id.clone(),
                    query: ratio_rule(w),
                    series: *n as usize,
                }),
            },
            Some(Err(e)) => Err(EvalError::Metrics {
                slo: id.clone(),
                source: e.clone(),
            }),
            None => Ok(None),
        }
    };
    let mut m = Measurements {
        period_error_ratio: value(period)?,
        window_error_ratios: BTreeMap::new(),
    };
    for w in windows {
        m.window_error_ratios.insert(*w, value(*w)?);
    }
    Ok(budget::assess_named(
        &t.slo,
        period,
        windows,
        &m,
        Source::RecordingRules,
        name,
    ))
}

fn from_raw(
    t: &Target,
    answers: Vec<RawAnswer>,
    windows: &[PromDuration],
    period: PromDuration,
    name: &dyn Fn(PromDuration) -> String,
) -> Result<BudgetReport, EvalError> {
    let id = &t.slo.id;
    let mut by_window: HashMap<PromDuration, Option<f64>> = HashMap::new();
    for (w, q, r) in answers {
        let samples = r.map_err(|source| EvalError::Metrics {
            slo: id.clone(),
            source,
        })?;
        let values: Vec<f64> = samples.iter().map(|s| s.value).collect();
        by_window.insert(w, single(id, &q, &values)?);
    }
    let m = Measurements {
        period_error_ratio: by_window.get(&period).copied().flatten(),
        window_error_ratios: windows
            .iter()
            .map(|w| (*w, by_window.get(w).copied().flatten()))
            .collect(),
    };
    Ok(budget::assess_named(
        &t.slo,
        period,
        windows,
        &m,
        Source::Raw,
        name,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slo::model::*;
    use std::path::PathBuf;
    use std::sync::Mutex;

    /// An in-memory metrics source: answers from a table, records every query.
    #[derive(Default)]
    struct Fake {
        answers: HashMap<String, Result<Vec<Sample>, MetricsError>>,
        asked: Mutex<Vec<String>>,
    }

    #[async_trait::async_trait]
    impl MetricsSource for Fake {
        async fn instant(
            &self,
            query: &str,
            _at: Option<DateTime<Utc>>,
        ) -> Result<Vec<Sample>, MetricsError> {
            self.asked.lock().unwrap().push(query.to_string());
            self.answers.get(query).cloned().unwrap_or(Ok(vec![]))
        }
        async fn range(
            &self,
            _q: &str,
            _s: DateTime<Utc>,
            _e: DateTime<Utc>,
            _step: Duration,
        ) -> Result<Vec<crate::ports::metrics::Series>, MetricsError> {
            Ok(vec![])
        }
    }

    fn sample(labels: &[(&str, &str)], value: f64) -> Sample {
        Sample {
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            value,
        }
    }

    fn target(name: &str, objective: f64) -> Target {
        Target {
            slo: std::sync::Arc::new(Slo {
                id: format!("svc-{name}"),
                service: "svc".into(),
                name: name.into(),
                description: String::new(),
                objective_percent: objective,
                labels: Default::default(),
                sli: Sli::Events {
                    error_query: format!("err_{name}[{{{{.window}}}}]"),
                    total_query: format!("tot_{name}[{{{{.window}}}}]"),
                },
                alerting: Alerting::default(),
                kind: SpecKind::SlothPrometheusV1,
                origin: Origin {
                    file: PathBuf::from("x.yml"),
                    doc_index: 0,
                },
                k8s: None,
                period: None,
                guard: None,
            }),
            windows: AlertWindows::default_30d(),
        }
    }

    /// A source where every given SLO has recording rules with the same ratio everywhere.
    fn recorded(targets: &[Target], ratio: f64) -> Fake {
        let mut f = Fake::default();
        let ids: Vec<&str> = targets.iter().map(|t| t.slo.id.as_str()).collect();
        f.answers.insert(
            "sloth_slo_info".into(),
            Ok(ids
                .iter()
                .map(|id| sample(&[("sloth_id", id)], 1.0))
                .collect()),
        );
        let mut ws = AlertWindows::default_30d().windows();
        ws.push(PromDuration::from_days(30));
        for w in ws {
            f.answers.insert(
                ratio_rule(w),
                Ok(ids
                    .iter()
                    .map(|id| sample(&[("sloth_id", id), ("sloth_window", &w.to_string())], ratio))
                    .collect()),
            );
        }
        f
    }

    fn run(f: &Fake, targets: &[Target]) -> Evaluation {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(evaluate(f, targets, None))
    }

    fn run_with(f: &Fake, targets: &[Target], speculate: bool) -> Evaluation {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(evaluate_with(f, targets, None, speculate))
    }

    /// The results of a cycle, printed: what a caller sees, errors included.
    fn outcome(ev: &Evaluation) -> Vec<String> {
        ev.results
            .iter()
            .map(|(id, r)| match r {
                Ok(report) => format!("{id} {report:?}"),
                Err(e) => format!("{id} error {e}"),
            })
            .collect()
    }

    #[test]
    fn speculative_window_reads_change_no_result() {
        // 100 targets: the first 60 have rules (one of them twice, one failing window), the
        // rest are raw with answers for some windows.
        let targets: Vec<Target> = (0..100).map(|i| target(&format!("s{i}"), 99.9)).collect();
        let mut f = recorded(&targets[..60], 0.0005);
        let w1h = ratio_rule(PromDuration::from_hours(1));
        if let Some(Ok(v)) = f.answers.get_mut(&w1h) {
            v.push(sample(&[("sloth_id", "svc-s7")], 0.9));
            v.push(sample(&[("sloth_id", "svc-s80")], 0.9));
        }
        f.answers.insert(
            ratio_rule(PromDuration::from_hours(6)),
            Err(MetricsError::Query {
                query: "slo:sli_error:ratio_rate6h".into(),
                message: "boom".into(),
            }),
        );
        for t in &targets[60..90] {
            f.answers.insert(
                t.slo.sli.error_ratio_query("1h"),
                Ok(vec![sample(&[], 0.01)]),
            );
        }
        let plain = run_with(&f, &targets, false);
        let spec = run_with(&f, &targets, true);
        assert_eq!(outcome(&plain), outcome(&spec));
        assert!(outcome(&spec)
            .iter()
            .any(|r| r.contains("svc-s7 error") && r.contains("2 series")));
        assert!(outcome(&spec)
            .iter()
            .any(|r| r.contains("svc-s1 error") && r.contains("boom")));
        // The same windows are read: nothing is wasted when some SLO has rules.
        assert_eq!(plain.queries, spec.queries);
        assert_eq!(plain.query_errors, spec.query_errors);
    }

    #[test]
    fn speculation_starts_at_its_threshold_and_costs_one_query_per_window_at_most() {
        let targets: Vec<Target> = (0..SPECULATE_FROM)
            .map(|i| target(&format!("s{i}"), 99.9))
            .collect();
        // No SLO has rules: the 8 window reads are wasted, on top of 8 raw queries each.
        let f = Fake::default();
        let ev = run(&f, &targets);
        assert_eq!(ev.queries as usize, 1 + 8 + 8 * SPECULATE_FROM);
        let asked = f.asked.lock().unwrap();
        assert_eq!(
            asked
                .iter()
                .filter(|q| q.starts_with("slo:sli_error:ratio_rate"))
                .count(),
            8
        );
        drop(asked);
        // One target fewer: no speculation.
        let f = Fake::default();
        let ev = run(&f, &targets[1..]);
        assert_eq!(ev.queries as usize, 1 + 8 * (SPECULATE_FROM - 1));
    }

    #[test]
    fn unreachable_prometheus_fails_every_slo_when_speculating_too() {
        let targets: Vec<Target> = (0..SPECULATE_FROM)
            .map(|i| target(&format!("s{i}"), 99.9))
            .collect();
        let mut f = Fake::default();
        let down = |q: &str| {
            Err(MetricsError::Unreachable {
                url: "http://p".into(),
                query: q.into(),
                message: "connection refused".into(),
            })
        };
        f.answers
            .insert("sloth_slo_info".into(), down("sloth_slo_info"));
        let mut ws = AlertWindows::default_30d().windows();
        ws.push(PromDuration::from_days(30));
        for w in ws {
            f.answers.insert(ratio_rule(w), down(&ratio_rule(w)));
        }
        let ev = run(&f, &targets);
        assert!(ev.unreachable);
        assert_eq!(ev.queries, 9);
        assert_eq!(ev.query_errors, 9);
        assert_eq!(ev.errors().count(), SPECULATE_FROM);
        assert!(ev.errors().all(|e| e.is_unreachable()));
    }

    #[test]
    fn recording_rules_use_one_query_per_window_whatever_the_slo_count() {
        let mut counts = Vec::new();
        for n in [1usize, 10, 500] {
            let targets: Vec<Target> = (0..n).map(|i| target(&format!("s{i}"), 99.9)).collect();
            let f = recorded(&targets, 0.0005);
            let ev = run(&f, &targets);
            assert_eq!(ev.reports().count(), n);
            for r in ev.reports() {
                assert_eq!(r.source, Source::RecordingRules);
                assert!((r.budget_consumed.unwrap() - 0.5).abs() < 1e-9);
            }
            counts.push(ev.queries);
            let asked = f.asked.lock().unwrap();
            assert!(asked
                .iter()
                .all(|q| q == "sloth_slo_info" || q.starts_with("slo:sli_error:ratio_rate")));
        }
        // info + 7 windows + the 30d period.
        assert_eq!(counts, vec![9, 9, 9]);
    }

    #[test]
    fn raw_queries_expand_the_window_for_each_window_and_the_period() {
        let targets = vec![target("a", 99.0)];
        let mut f = Fake::default();
        f.answers.insert(
            targets[0].slo.sli.error_ratio_query("30d"),
            Ok(vec![sample(&[], 0.002)]),
        );
        f.answers.insert(
            targets[0].slo.sli.error_ratio_query("1h"),
            Ok(vec![sample(&[], 0.05)]),
        );
        let ev = run(&f, &targets);
        let r = ev.reports().next().unwrap();
        assert_eq!(r.source, Source::Raw);
        assert!((r.budget_consumed.unwrap() - 0.2).abs() < 1e-12);
        assert!((r.burn_rates["1h"].unwrap() - 5.0).abs() < 1e-12);
        assert_eq!(r.burn_rates["5m"], None, "no answer means no data");
        // info + 7 windows + period
        assert_eq!(ev.queries, 9);
        let asked = f.asked.lock().unwrap();
        assert!(
            asked.contains(&"(err_a[3d])\n/\n(tot_a[3d])\n".to_string()),
            "{asked:?}"
        );
    }

    #[test]
    fn sources_are_chosen_per_slo() {
        let targets = vec![target("ruled", 99.9), target("raw", 99.9)];
        let f = recorded(&targets[..1], 0.001);
        let ev = run(&f, &targets);
        let sources: Vec<Source> = ev.reports().map(|r| r.source).collect();
        assert_eq!(sources, vec![Source::RecordingRules, Source::Raw]);
        let raw = ev.reports().nth(1).unwrap();
        assert!(raw.no_data);
    }

    #[test]
    fn several_series_for_one_slo_is_an_error_naming_the_query() {
        let targets = vec![target("a", 99.0)];
        let mut f = Fake::default();
        f.answers.insert(
            targets[0].slo.sli.error_ratio_query("1h"),
            Ok(vec![
                sample(&[("pod", "1")], 0.1),
                sample(&[("pod", "2")], 0.2),
            ]),
        );
        let ev = run(&f, &targets);
        let e = ev.errors().next().expect("an error").to_string();
        assert!(
            e.contains("svc-a") && e.contains("2 series") && e.contains("err_a[1h]"),
            "{e}"
        );
    }

    #[test]
    fn unreachable_prometheus_fails_every_slo_after_one_query() {
        let targets = vec![target("a", 99.0), target("b", 99.0)];
        let mut f = Fake::default();
        f.answers.insert(
            "sloth_slo_info".into(),
            Err(MetricsError::Unreachable {
                url: "http://p".into(),
                query: "sloth_slo_info".into(),
                message: "connection refused".into(),
            }),
        );
        let ev = run(&f, &targets);
        assert_eq!(ev.queries, 1);
        assert_eq!(ev.query_errors, 1);
        let errs: Vec<String> = ev.errors().map(|e| e.to_string()).collect();
        assert_eq!(errs.len(), 2);
        assert!(errs[0].contains("svc-a") && errs[0].contains("connection refused"));
        assert!(ev.errors().all(|e| e.is_unreachable()));
    }

    #[test]
    fn a_failing_window_query_fails_only_the_slos_that_need_it() {
        let targets = vec![target("ruled", 99.9), target("raw", 99.9)];
        let mut f = recorded(&targets[..1], 0.001);
        f.answers.insert(
            ratio_rule(PromDuration::from_hours(6)),
            Err(MetricsError::Query {
                query: "slo:sli_error:ratio_rate6h".into(),
                message: "boom".into(),
            }),
        );
        let ev = run(&f, &targets);
        assert!(ev.results[0].1.is_err());
        assert!(ev.results[1].1.is_ok());
        assert!(!ev.errors().any(|e| e.is_unreachable()));
    }
}
