//! One analysis interval of a Rollout, from query templates to a verdict. No I/O: the
//! runtime runs the queries this module plans and hands the samples back.
//!
//! 1. **Templates.** Queries may use `{{ namespace }}`, `{{ workload }}`, `{{ interval }}`
//!    and `{{ version }}` ([`render`]); anything else is a [`TemplateError`] naming the
//!    variable. The built-in metrics `request-success-rate` and `request-duration` (p99, ms)
//!    and the request/error counts read Istio's `istio_requests_total` and
//!    `istio_request_duration_milliseconds_bucket` ([`builtin_query`], [`REQUESTS_QUERY`],
//!    [`ERRORS_QUERY`]).
//! 2. **Plan.** [`plan`] lists every query of an interval with its variables filled in:
//!    instant queries at the window's end for thresholds and counts, range queries over the
//!    window for comparative metrics (once for the canary, once for stable).
//! 3. **Checks.** [`check_threshold`], [`check_comparative`] and [`check_error_counts`]
//!    classify one metric into [`Verdict`] `Pass | Fail | Inconclusive` with its numbers and
//!    a reason. An empty result, NaN, or too few samples is **inconclusive, never a pass**.
//!    [`evaluate`] does all of a plan's checks from the query results.
//! 4. **Interval.** [`combine`] turns the checks into the interval's verdict: a decisive
//!    failure (the anytime-valid sequential test rejecting) fails at once; otherwise fewer
//!    canary requests than `minRequests` makes the interval inconclusive before anything is
//!    judged; then any failure fails, any inconclusive check is inconclusive, else it passes.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::analysis::judge::{
    judge_metric, Alternative, ClassifierConfig, Direction, EffectSizeMeasure, ErrorBatch,
    ErrorRateSequentialTest, ErrorRateTestConfig, HorizonSequentialTest, HorizonTestConfig,
    IntervalMode, Label,
};
use crate::rollout::spec::{
    Compare, CompareDirection, EffectSize, ErrorCounts, Metric, Rollout, RolloutSpec,
    SequentialCompare,
};
use crate::rollout::status::{CountBatch, Verdict};

/// The template variables, in the order they are documented.
pub const VARIABLES: [&str; 4] = ["namespace", "workload", "interval", "version"];

/// Shared selector of the Istio queries (server-side metrics of one workload).
const ISTIO_SELECTOR: &str = r#"reporter="destination",destination_workload_namespace="{{ namespace }}",destination_workload="{{ workload }}""#;

/// Requests served by the workload in the interval.
pub const REQUESTS_QUERY: &str = r#"sum(increase(istio_requests_total{reporter="destination",destination_workload_namespace="{{ namespace }}",destination_workload="{{ workload }}"}[{{ interval }}]))"#;

/// 5xx responses of the workload in the interval.
pub const ERRORS_QUERY: &str = r#"sum(increase(istio_requests_total{reporter="destination",destination_workload_namespace="{{ namespace }}",destination_workload="{{ workload }}",response_code=~"5.."}[{{ interval }}]))"#;

/// Errors of template rendering and checking.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unknown template variable `{{{{ {name} }}}}`: expected one of {{{{ namespace }}}}, {{{{ workload }}}}, {{{{ interval }}}}, {{{{ version }}}}")]
    UnknownVariable { name: String },
    #[error("unclosed `{{{{` at byte {offset}: expected `{{{{ variable }}}}`")]
    Unclosed { offset: usize },
    #[error("unknown built-in metric `{name}`: expected request-success-rate or request-duration, or give a `query`")]
    UnknownBuiltin { name: String },
}

/// Values of the template variables for one workload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateVars {
    pub namespace: String,
    pub workload: String,
    /// Prometheus duration text, e.g. `30s`.
    pub interval: String,
    pub version: String,
}

impl TemplateVars {
    fn get(&self, name: &str) -> Option<&str> {
        match name {
            "namespace" => Some(&self.namespace),
            "workload" => Some(&self.workload),
            "interval" => Some(&self.interval),
            "version" => Some(&self.version),
            _ => None,
        }
    }
}

/// The variables a template uses, in order (duplicates kept); an error for an unclosed
/// `{{`. Unknown names are returned too: [`check_template`] rejects them.
pub fn template_variables(template: &str) -> Result<Vec<String>, TemplateError> {
    let mut out = Vec::new();
    let mut rest = template;
    let mut offset = 0;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err(TemplateError::Unclosed {
                offset: offset + start,
            });
        };
        out.push(after[..end].trim().to_string());
        let consumed = start + 2 + end + 2;
        offset += consumed;
        rest = &rest[consumed..];
    }
    Ok(out)
}

/// Check that a template only uses known variables.
pub fn check_template(template: &str) -> Result<(), TemplateError> {
    for name in template_variables(template)? {
        if !VARIABLES.contains(&name.as_str()) {
            return Err(TemplateError::UnknownVariable { name });
        }
    }
    Ok(())
}

/// Fill in a template's variables.
pub fn render(template: &str, vars: &TemplateVars) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    let mut offset = 0;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err(TemplateError::Unclosed {
                offset: offset + start,
            });
        };
        let name = after[..end].trim();
        let value = vars
            .get(name)
            .ok_or_else(|| TemplateError::UnknownVariable {
                name: name.to_string(),
            })?;
        out.push_str(value);
        let consumed = start + 2 + end + 2;
        offset += consumed;
        rest = &rest[consumed..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The query template of a built-in metric: `request-success-rate` (ratio of non-5xx
/// responses, NaN without traffic) or `request-duration` (p99 latency in ms).
pub fn builtin_query(name: &str) -> Result<String, TemplateError> {
    match name {
        "request-success-rate" => Ok(format!(
            r#"sum(rate(istio_requests_total{{{ISTIO_SELECTOR},response_code!~"5.."}}[{{{{ interval }}}}])) / sum(rate(istio_requests_total{{{ISTIO_SELECTOR}}}[{{{{ interval }}}}]))"#
        )),
        "request-duration" => Ok(format!(
            r#"histogram_quantile(0.99, sum(rate(istio_request_duration_milliseconds_bucket{{{ISTIO_SELECTOR}}}[{{{{ interval }}}}])) by (le))"#
        )),
        other => Err(TemplateError::UnknownBuiltin {
            name: other.to_string(),
        }),
    }
}

/// The query template of a metric: its own `query`, or the built-in one.
pub fn metric_template(metric: &Metric) -> Result<String, TemplateError> {
    match &metric.query {
        Some(q) => Ok(q.clone()),
        None => builtin_query(&metric.name),
    }
}

/// The time window one interval's analysis covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnalysisWindow {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// The versions under analysis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Versions {
    pub canary: String,
    pub stable: String,
}

/// What a planned query is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "camelCase")]
pub enum QueryRole {
    /// A threshold (or built-in) metric of the canary.
    Threshold {
        metric: String,
    },
    /// A comparative metric sampled for the canary.
    CompareCanary {
        metric: String,
    },
    /// A comparative metric sampled for stable.
    CompareStable {
        metric: String,
    },
    CanaryRequests,
    CanaryErrors,
    StableRequests,
    StableErrors,
}

/// How to run a planned query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum QueryKind {
    /// An instant query evaluated at `at`.
    Instant { at: DateTime<Utc> },
    /// A range query over `[start, end]` with resolution `step_ms`.
    Range {
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        step_ms: u64,
    },
}

/// One query to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedQuery {
    pub role: QueryRole,
    pub promql: String,
    pub kind: QueryKind,
}

/// The result of one planned query: every sample value it returned (all series; for a range
/// query every point), or the error that kept it from running.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryResult {
    pub role: QueryRole,
    pub outcome: Result<Vec<f64>, String>,
}

/// The queries of one interval. Comparative metrics are sampled at `interval / 10` (at least
/// one second), so a 30s interval gives about 11 points per side.
pub fn plan(
    rollout: &Rollout,
    versions: &Versions,
    window: &AnalysisWindow,
) -> Result<Vec<PlannedQuery>, TemplateError> {
    let spec = &rollout.spec;
    let interval = spec.interval.to_string();
    let vars = |workload: &str, version: &str| TemplateVars {
        namespace: rollout.namespace().to_string(),
        workload: workload.to_string(),
        interval: interval.clone(),
        version: version.to_string(),
    };
    let canary = vars(&spec.workloads.canary.name, &versions.canary);
    let stable = vars(&spec.workloads.stable.name, &versions.stable);
    let instant = QueryKind::Instant { at: window.end };
    let step_ms = (spec.interval.as_millis() / 10).max(1000);
    let range = QueryKind::Range {
        start: window.start,
        end: window.end,
        step_ms,
    };
    let mut out = Vec::new();
    for m in &spec.analysis.metrics {
        let template = metric_template(m)?;
        if m.compare.is_some() {
            out.push(PlannedQuery {
                role: QueryRole::CompareCanary {
                    metric: m.name.clone(),
                },
                promql: render(&template, &canary)?,
                kind: range,
            });
            out.push(PlannedQuery {
                role: QueryRole::CompareStable {
                    metric: m.name.clone(),
                },
                promql: render(&template, &stable)?,
                kind: range,
            });
        } else {
            out.push(PlannedQuery {
                role: QueryRole::Threshold {
                    metric: m.name.clone(),
                },
                promql: render(&template, &canary)?,
                kind: instant,
            });
        }
    }
    let needs_requests = spec.min_requests.is_some() || spec.analysis.error_counts.is_some();
    if needs_requests {
        out.push(PlannedQuery {
            role: QueryRole::CanaryRequests,
            promql: render(REQUESTS_QUERY, &canary)?,
            kind: instant,
        });
    }
    if spec.analysis.error_counts.is_some() {
        out.push(PlannedQuery {
            role: QueryRole::CanaryErrors,
            promql: render(ERRORS_QUERY, &canary)?,
            kind: instant,
        });
        out.push(PlannedQuery {
            role: QueryRole::StableRequests,
            promql: render(REQUESTS_QUERY, &stable)?,
            kind: instant,
        });
        out.push(PlannedQuery {
            role: QueryRole::StableErrors,
            promql: render(ERRORS_QUERY, &stable)?,
            kind: instant,
        });
    }
    Ok(out)
}

/// Which kind of check produced a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CheckKind {
    Threshold,
    Comparative,
    ErrorCounts,
}

/// The verdict on one metric in one interval, with its numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckResult {
    pub metric: String,
    pub kind: CheckKind,
    pub verdict: Verdict,
    /// One sentence: what was seen against what was expected.
    pub reason: String,
    /// Threshold: the worst value seen; comparative: the shift estimate (canary − stable);
    /// error counts: the canary's error rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Comparative: the Mann-Whitney p-value; error counts: the anytime-valid p-value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p_value: Option<f64>,
    /// A failure that aborts the rollout at once, without waiting for `failureLimit`: the
    /// anytime-valid sequential test rejected (its p-value never increases again, so more
    /// intervals cannot change the answer).
    #[serde(default)]
    pub decisive: bool,
    /// Error counts: the estimated dispersion of the canary's error count relative to
    /// binomial at the interval's traffic (1: binomial).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dispersion: Option<f64>,
    /// Error counts: the first interval (1-based, over the rollout) at which the sequential
    /// test rejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_reject_interval: Option<u64>,
}

impl CheckResult {
    fn new(metric: &str, kind: CheckKind, verdict: Verdict, reason: String) -> Self {
        CheckResult {
            metric: metric.to_string(),
            kind,
            verdict,
            reason,
            value: None,
            min: None,
            max: None,
            p_value: None,
            decisive: false,
            dispersion: None,
            first_reject_interval: None,
        }
    }

    /// An inconclusive result for a query that could not run (Prometheus down, bad query).
    pub fn query_failed(metric: &str, kind: CheckKind, error: &str) -> Self {
        CheckResult::new(
            metric,
            kind,
            Verdict::Inconclusive,
            format!("query failed: {error}"),
        )
    }
}

/// Judge a threshold metric on the values of its instant query (one per series). Every
/// series must be within `[min, max]`. No series or a NaN is inconclusive.
pub fn check_threshold(
    name: &str,
    min: Option<f64>,
    max: Option<f64>,
    values: &[f64],
) -> CheckResult {
    let mut r = CheckResult::new(
        name,
        CheckKind::Threshold,
        Verdict::Inconclusive,
        String::new(),
    );
    r.min = min;
    r.max = max;
    if values.is_empty() {
        r.reason = format!("{name}: the query returned no data");
        return r;
    }
    if let Some(bad) = values.iter().find(|v| !v.is_finite()) {
        r.reason = format!("{name}: the query returned {bad} (no traffic or no data)");
        return r;
    }
    // The value farthest outside the bounds, or the one closest to them.
    let below = min.and_then(|m| values.iter().copied().filter(|v| *v < m).reduce(f64::min));
    let above = max.and_then(|m| values.iter().copied().filter(|v| *v > m).reduce(f64::max));
    match (below, above) {
        (Some(v), _) => {
            r.verdict = Verdict::Fail;
            r.value = Some(v);
            r.reason = format!("{name} = {v} is below the minimum {}", fmt_opt(min));
        }
        (None, Some(v)) => {
            r.verdict = Verdict::Fail;
            r.value = Some(v);
            r.reason = format!("{name} = {v} is above the maximum {}", fmt_opt(max));
        }
        (None, None) => {
            let worst = if max.is_some() {
                values.iter().copied().fold(f64::NEG_INFINITY, f64::max)
            } else {
                values.iter().copied().fold(f64::INFINITY, f64::min)
            };
            r.verdict = Verdict::Pass;
            r.value = Some(worst);
            r.reason = format!("{name} = {worst} is within {}", bounds_text(min, max));
        }
    }
    r
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

fn bounds_text(min: Option<f64>, max: Option<f64>) -> String {
    match (min, max) {
        (Some(a), Some(b)) => format!("[{a}, {b}]"),
        (Some(a), None) => format!(">= {a}"),
        (None, Some(b)) => format!("<= {b}"),
        (None, None) => "no bounds".to_string(),
    }
}

/// The judge's configuration for a `compare` block: exact Hodges-Lehmann interval, NaNs
/// removed, thresholds at the measure's neutral value unless given.
pub fn classifier_config(compare: &Compare) -> ClassifierConfig {
    let effect_size = match compare.effect_size {
        EffectSize::MeanRatio => EffectSizeMeasure::MeanRatio,
        EffectSize::Cles => EffectSizeMeasure::Cles,
    };
    let mut c = ClassifierConfig::kayenta_judge_defaults(effect_size);
    c.tolerance = compare.tolerance;
    c.confidence = compare.confidence;
    c.direction = match compare.direction {
        CompareDirection::Increase => Direction::Increase,
        CompareDirection::Decrease => Direction::Decrease,
        CompareDirection::Either => Direction::Either,
    };
    if let Some(v) = compare.allowed_increase {
        c.allowed_increase = v;
    }
    if let Some(v) = compare.allowed_decrease {
        c.allowed_decrease = v;
    }
    c.mode = IntervalMode::Exact;
    c
}

/// Judge a comparative metric: canary samples against stable samples (Mann-Whitney U,
/// Hodges-Lehmann interval, Kayenta's classification). NaNs are dropped first; fewer than
/// `minSamples` finite values on either side is inconclusive. High (Low) in a failing
/// direction fails.
pub fn check_comparative(
    name: &str,
    compare: &Compare,
    canary: &[f64],
    stable: &[f64],
) -> CheckResult {
    let mut r = CheckResult::new(
        name,
        CheckKind::Comparative,
        Verdict::Inconclusive,
        String::new(),
    );
    let finite = |v: &[f64]| {
        v.iter()
            .copied()
            .filter(|x| x.is_finite())
            .collect::<Vec<_>>()
    };
    let (c, s) = (finite(canary), finite(stable));
    let need = compare.min_samples.max(1) as usize;
    if c.len() < need || s.len() < need {
        r.reason = format!(
            "{name}: {} canary and {} stable samples, fewer than minSamples {need}",
            c.len(),
            s.len()
        );
        return r;
    }
    if compare.sequential.is_some() {
        // One number per interval for the sequential test, which `decide` runs over the
        // rollout's history ([`judge_sequential`]); alone, one interval cannot fail.
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let d = mean(&c) - mean(&s);
        r.value = Some(d);
        r.verdict = Verdict::Pass;
        r.reason = format!(
            "{name}: canary mean minus stable mean {d:.4} over {} and {} samples (judged over the rollout)",
            c.len(),
            s.len()
        );
        return r;
    }
    match judge_metric(&c, &s, &classifier_config(compare)) {
        Err(e) => {
            r.reason = format!("{name}: the judge could not compare the samples: {e}");
        }
        Ok(j) => {
            r.value = j.estimate;
            r.p_value = j.p_value;
            let numbers = format!(
                "shift {} (CI {} to {}), p = {}, effect {}",
                fmt_num(j.estimate),
                fmt_num(j.ci_low),
                fmt_num(j.ci_high),
                fmt_num(j.p_value),
                fmt_num(j.effect)
            );
            (r.verdict, r.reason) = match j.classification {
                Label::Pass => (
                    Verdict::Pass,
                    format!("{name}: no significant change: {numbers}"),
                ),
                Label::High => (
                    Verdict::Fail,
                    format!("{name}: canary significantly higher than stable: {numbers}"),
                ),
                Label::Low => (
                    Verdict::Fail,
                    format!("{name}: canary significantly lower than stable: {numbers}"),
                ),
                Label::Nodata | Label::NodataFailMetric => (
                    Verdict::Inconclusive,
                    format!(
                        "{name}: no data: {}",
                        j.reason.unwrap_or_else(|| "no samples".to_string())
                    ),
                ),
            };
        }
    }
    r
}

/// The sequential judgement of a comparative metric over the rollout (`compare.sequential`):
/// `current` is this interval's [`check_comparative`] result, whose value is the interval's
/// difference of means; `history` holds the earlier intervals' differences and gets this one.
/// The exact horizon test ([`HorizonSequentialTest`]) fails the metric, decisively, once the
/// running sum of differences crosses its boundary; an interval without a difference (too
/// few samples, a failed query) stays inconclusive and adds nothing.
pub fn judge_sequential(
    current: &mut CheckResult,
    cfg: &SequentialCompare,
    direction: CompareDirection,
    spec: &RolloutSpec,
    history: &mut Vec<f64>,
) {
    let name = current.metric.clone();
    let Some(d) = current.value.filter(|d| d.is_finite()) else {
        return;
    };
    if current.verdict == Verdict::Inconclusive {
        return;
    }
    let horizon = cfg.horizon_for(spec);
    let variance_looks = cfg.variance_looks_for(horizon);
    let config = HorizonTestConfig {
        alpha: cfg.alpha,
        horizon,
        variance_looks: variance_looks as usize,
        alternative: match direction {
            CompareDirection::Increase => Alternative::Greater,
            CompareDirection::Decrease => Alternative::Less,
            CompareDirection::Either => Alternative::TwoSided,
        },
    };
    let mut test = match HorizonSequentialTest::new(config) {
        Ok(t) => t,
        Err(e) => {
            current.verdict = Verdict::Inconclusive;
            current.reason = format!("{name}: invalid sequential configuration: {e}");
            return;
        }
    };
    history.push(d);
    let mut last = None;
    for &x in history.iter() {
        // finite by construction: only finite differences are pushed
        match test.update(x) {
            Ok(res) => last = Some(res),
            Err(e) => {
                current.verdict = Verdict::Inconclusive;
                current.reason = format!("{name}: inconsistent history: {e}");
                return;
            }
        }
    }
    let p = last.map_or(1.0, |x| x.p_value);
    current.p_value = Some(p);
    current.first_reject_interval = last.and_then(|x| x.first_reject_look);
    let looks = history.len();
    if last.is_some_and(|x| x.reject) {
        current.verdict = Verdict::Fail;
        current.decisive = true;
        current.reason = format!(
            "{name}: the canary's mean differs from stable's in the failing direction over {looks} intervals (sequential p = {p:.4} <= alpha {}, first at interval {}; this interval {d:.4})",
            cfg.alpha,
            current.first_reject_interval.unwrap_or(looks as u64)
        );
    } else {
        current.verdict = Verdict::Pass;
        current.reason = if (looks as u64) < variance_looks {
            format!(
                "{name}: difference of means {d:.4}; interval {looks} of the first {variance_looks} that set the test's scale (horizon {horizon})"
            )
        } else {
            format!(
                "{name}: difference of means {d:.4}; no evidence of a regression over {looks} intervals (sequential p = {p:.4}, horizon {horizon})"
            )
        };
    }
}

fn fmt_num(v: Option<f64>) -> String {
    match v {
        Some(x) => format!("{x:.4}"),
        None => "n/a".to_string(),
    }
}

/// One interval's request and error counts of canary and stable (from `increase()`, so
/// possibly fractional; they are rounded).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorCountSample {
    pub canary_errors: f64,
    pub canary_requests: f64,
    pub stable_errors: f64,
    pub stable_requests: f64,
}

/// The sequential test's configuration for an `errorCounts` block.
pub fn error_test_config(cfg: &ErrorCounts) -> ErrorRateTestConfig {
    ErrorRateTestConfig {
        alpha: cfg.alpha,
        ..ErrorRateTestConfig::default()
    }
}

/// Turn raw counts into a batch. `None` when a count is NaN, negative, or there are more
/// errors than requests (the interval is then inconclusive for this check).
pub fn count_batch(sample: &ErrorCountSample) -> Option<CountBatch> {
    let round = |x: f64| (x.is_finite() && x >= 0.0).then(|| x.round() as u64);
    let ce = round(sample.canary_errors)?;
    let cr = round(sample.canary_requests)?;
    let se = round(sample.stable_errors)?;
    let sr = round(sample.stable_requests)?;
    let b = ErrorBatch::from_requests(ce.min(cr), cr, se.min(sr), sr).ok()?;
    Some(CountBatch {
        canary_errors: b.canary_errors,
        stable_errors: b.stable_errors,
        canary_share: b.canary_share,
        requests: b.requests,
    })
}

/// The metric name of the sequential error-count check in results and metrics.
pub const ERROR_COUNTS_CHECK: &str = "error-counts";

/// The sequential error-count test over a rollout's whole history (`history` then
/// `current`), replayed from the counts so that it survives restarts. Rejection (p ≤ α) is
/// a decisive failure. No canary requests in the interval is inconclusive.
pub fn check_error_counts(
    cfg: &ErrorCounts,
    history: &[CountBatch],
    current: Option<&CountBatch>,
    canary_requests: f64,
) -> CheckResult {
    const NAME: &str = ERROR_COUNTS_CHECK;
    let mut r = CheckResult::new(
        NAME,
        CheckKind::ErrorCounts,
        Verdict::Inconclusive,
        String::new(),
    );
    let mut test = match ErrorRateSequentialTest::new(error_test_config(cfg)) {
        Ok(t) => t,
        Err(e) => {
            r.reason = format!("{NAME}: invalid configuration: {e}");
            return r;
        }
    };
    let mut last = None;
    for b in history.iter().chain(current) {
        let batch = ErrorBatch {
            canary_errors: b.canary_errors,
            stable_errors: b.stable_errors,
            canary_share: b.canary_share,
            requests: b.requests,
        };
        match test.update(batch) {
            Ok(res) => last = Some(res),
            Err(e) => {
                r.reason = format!("{NAME}: inconsistent counts: {e}");
                return r;
            }
        }
    }
    let Some(current) = current else {
        r.reason = format!("{NAME}: the counts were missing or invalid");
        return r;
    };
    let p = last.map(|x| x.p_value).unwrap_or(1.0);
    r.p_value = Some(p);
    let dispersion = test.dispersion();
    r.dispersion = Some(dispersion);
    r.first_reject_interval = last.and_then(|x| x.first_reject_look);
    if canary_requests > 0.0 {
        r.value = Some(current.canary_errors as f64 / canary_requests);
    }
    if last.is_some_and(|x| x.reject) {
        r.verdict = Verdict::Fail;
        r.decisive = true;
        r.reason = format!(
            "{NAME}: the canary's error rate is higher than stable's (anytime-valid p = {p:.4} <= alpha {}, first at interval {}; dispersion {dispersion:.2})",
            cfg.alpha,
            r.first_reject_interval.unwrap_or(history.len() as u64 + 1)
        );
    } else if canary_requests.is_nan() || canary_requests <= 0.0 {
        r.reason = format!("{NAME}: no canary requests in the interval");
    } else {
        r.verdict = Verdict::Pass;
        r.reason = format!(
            "{NAME}: {} canary and {} stable errors; no evidence of a higher canary error rate (p = {p:.4}; dispersion {dispersion:.2})",
            current.canary_errors, current.stable_errors
        );
    }
    r
}

/// What the runtime observed for one interval: its window, the threshold and comparative
/// check results, and the counts. `decide` adds the sequential test (it holds the history)
/// and combines everything with [`combine`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IntervalObservation {
    pub window: AnalysisWindow,
    pub checks: Vec<CheckResult>,
    /// Canary requests in the interval (`None`: not measured or the query failed).
    #[serde(default)]
    pub canary_requests: Option<f64>,
    /// Error counts for the sequential test (`None`: not configured or the queries failed).
    #[serde(default)]
    pub error_counts: Option<ErrorCountSample>,
}

/// Run every check of a plan on its results. Missing results and failed queries make their
/// checks inconclusive.
pub fn evaluate(
    rollout: &Rollout,
    window: AnalysisWindow,
    results: &[QueryResult],
) -> IntervalObservation {
    let find = |role: &QueryRole| results.iter().find(|r| &r.role == role).map(|r| &r.outcome);
    let mut checks = Vec::new();
    for m in &rollout.spec.analysis.metrics {
        let metric = m.name.clone();
        match &m.compare {
            None => {
                let role = QueryRole::Threshold {
                    metric: metric.clone(),
                };
                checks.push(match find(&role) {
                    Some(Ok(values)) => check_threshold(&metric, m.min, m.max, values),
                    Some(Err(e)) => CheckResult::query_failed(&metric, CheckKind::Threshold, e),
                    None => CheckResult::query_failed(&metric, CheckKind::Threshold, "no result"),
                });
            }
            Some(compare) => {
                let c = find(&QueryRole::CompareCanary {
                    metric: metric.clone(),
                });
                let s = find(&QueryRole::CompareStable {
                    metric: metric.clone(),
                });
                checks.push(match (c, s) {
                    (Some(Ok(c)), Some(Ok(s))) => check_comparative(&metric, compare, c, s),
                    (Some(Err(e)), _) | (_, Some(Err(e))) => {
                        CheckResult::query_failed(&metric, CheckKind::Comparative, e)
                    }
                    _ => CheckResult::query_failed(&metric, CheckKind::Comparative, "no result"),
                });
            }
        }
    }
    let scalar = |role: QueryRole| match find(&role) {
        // `sum()` of nothing returns no series: no requests were recorded.
        Some(Ok(v)) if v.is_empty() => Some(0.0),
        Some(Ok(v)) => Some(v.iter().sum::<f64>()),
        _ => None,
    };
    let canary_requests = scalar(QueryRole::CanaryRequests);
    let error_counts = if rollout.spec.analysis.error_counts.is_some() {
        match (
            scalar(QueryRole::CanaryErrors),
            canary_requests,
            scalar(QueryRole::StableErrors),
            scalar(QueryRole::StableRequests),
        ) {
            (Some(ce), Some(cr), Some(se), Some(sr)) => Some(ErrorCountSample {
                canary_errors: ce,
                canary_requests: cr,
                stable_errors: se,
                stable_requests: sr,
            }),
            _ => None,
        }
    } else {
        None
    };
    IntervalObservation {
        window,
        checks,
        canary_requests,
        error_counts,
    }
}

/// The verdict of one interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IntervalVerdict {
    pub verdict: Verdict,
    /// Abort at once (a decisive check failed).
    pub decisive: bool,
    pub reason: String,
    pub checks: Vec<CheckResult>,
}

/// Combine one interval's checks (see the module docs for the order of the rules).
pub fn combine(
    checks: Vec<CheckResult>,
    canary_requests: Option<f64>,
    min_requests: Option<u64>,
) -> IntervalVerdict {
    let join = |v: Verdict, checks: &[CheckResult]| {
        checks
            .iter()
            .filter(|c| c.verdict == v)
            .map(|c| c.reason.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    };
    if let Some(d) = checks
        .iter()
        .find(|c| c.decisive && c.verdict == Verdict::Fail)
    {
        let reason = d.reason.clone();
        return IntervalVerdict {
            verdict: Verdict::Fail,
            decisive: true,
            reason,
            checks,
        };
    }
    if let Some(min) = min_requests {
        let seen = canary_requests.filter(|r| r.is_finite());
        if seen.is_none_or(|r| r < min as f64) {
            let reason = match seen {
                Some(r) => format!(
                    "only {r:.0} canary requests in the interval, fewer than minRequests {min}: nothing judged"
                ),
                None => format!(
                    "the canary request count is unknown (minRequests {min}): nothing judged"
                ),
            };
            return IntervalVerdict {
                verdict: Verdict::Inconclusive,
                decisive: false,
                reason,
                checks,
            };
        }
    }
    let (verdict, reason) = if checks.iter().any(|c| c.verdict == Verdict::Fail) {
        (Verdict::Fail, join(Verdict::Fail, &checks))
    } else if checks.iter().any(|c| c.verdict == Verdict::Inconclusive) {
        (Verdict::Inconclusive, join(Verdict::Inconclusive, &checks))
    } else if checks.is_empty() {
        (Verdict::Inconclusive, "no checks ran".to_string())
    } else {
        (Verdict::Pass, format!("{} checks passed", checks.len()))
    };
    IntervalVerdict {
        verdict,
        decisive: false,
        reason,
        checks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> TemplateVars {
        TemplateVars {
            namespace: "shop".into(),
            workload: "checkout-canary".into(),
            interval: "30s".into(),
            version: "1.4.2".into(),
        }
    }

    #[test]
    fn renders_variables_with_and_without_spaces() {
        let q = render(
            r#"rate(x{ns="{{ namespace }}",w="{{workload}}",v="{{  version }}"}[{{ interval }}])"#,
            &vars(),
        )
        .unwrap();
        assert_eq!(
            q,
            r#"rate(x{ns="shop",w="checkout-canary",v="1.4.2"}[30s])"#
        );
    }

    #[test]
    fn unknown_and_unclosed_variables_are_errors() {
        let e = render("x{{ foo }}", &vars()).unwrap_err();
        assert_eq!(e, TemplateError::UnknownVariable { name: "foo".into() });
        assert!(e.to_string().contains("{{ foo }}"), "{e}");
        assert!(e.to_string().contains("{{ namespace }}"), "{e}");
        assert_eq!(
            render("ab{{ namespace", &vars()).unwrap_err(),
            TemplateError::Unclosed { offset: 2 }
        );
        assert_eq!(
            check_template("{{.window}}"),
            Err(TemplateError::UnknownVariable {
                name: ".window".into()
            })
        );
        assert!(check_template("x{{ interval }}y").is_ok());
    }

    #[test]
    fn builtin_queries_render_istio_selectors() {
        let q = render(&builtin_query("request-success-rate").unwrap(), &vars()).unwrap();
        assert_eq!(
            q,
            r#"sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace="shop",destination_workload="checkout-canary",response_code!~"5.."}[30s])) / sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace="shop",destination_workload="checkout-canary"}[30s]))"#
        );
        let q = render(&builtin_query("request-duration").unwrap(), &vars()).unwrap();
        assert_eq!(
            q,
            r#"histogram_quantile(0.99, sum(rate(istio_request_duration_milliseconds_bucket{reporter="destination",destination_workload_namespace="shop",destination_workload="checkout-canary"}[30s])) by (le))"#
        );
        assert!(matches!(
            builtin_query("request-rate"),
            Err(TemplateError::UnknownBuiltin { .. })
        ));
    }

    #[test]
    fn threshold_no_data_and_nan_are_inconclusive_never_pass() {
        let r = check_threshold("sr", Some(0.99), None, &[]);
        assert_eq!(r.verdict, Verdict::Inconclusive);
        assert!(r.reason.contains("no data"), "{}", r.reason);
        let r = check_threshold("sr", Some(0.99), None, &[f64::NAN]);
        assert_eq!(r.verdict, Verdict::Inconclusive);
        let r = check_threshold("sr", Some(0.99), None, &[0.999, f64::NAN]);
        assert_eq!(r.verdict, Verdict::Inconclusive);
    }

    #[test]
    fn threshold_bounds() {
        let r = check_threshold("sr", Some(0.99), None, &[0.995, 0.98]);
        assert_eq!((r.verdict, r.value), (Verdict::Fail, Some(0.98)));
        assert!(r.reason.contains("below the minimum 0.99"), "{}", r.reason);
        let r = check_threshold("p99", None, Some(500.0), &[420.0, 510.0]);
        assert_eq!((r.verdict, r.value), (Verdict::Fail, Some(510.0)));
        let r = check_threshold("p99", None, Some(500.0), &[420.0, 500.0]);
        assert_eq!((r.verdict, r.value), (Verdict::Pass, Some(500.0)));
        let r = check_threshold("x", Some(1.0), Some(2.0), &[1.0]);
        assert_eq!(r.verdict, Verdict::Pass);
    }

    #[test]
    fn comparative_uses_the_judge() {
        let cmp = Compare {
            direction: CompareDirection::Increase,
            ..Compare::default()
        };
        let stable: Vec<f64> = (0..30).map(|i| 100.0 + (i % 7) as f64).collect();
        let slower: Vec<f64> = stable.iter().map(|v| v * 1.5).collect();
        let r = check_comparative("lat", &cmp, &slower, &stable);
        assert_eq!(r.verdict, Verdict::Fail, "{}", r.reason);
        assert!(r.value.unwrap() > 40.0 && r.p_value.unwrap() < 1e-6);
        // Faster is fine when only an increase fails.
        let faster: Vec<f64> = stable.iter().map(|v| v * 0.5).collect();
        assert_eq!(
            check_comparative("lat", &cmp, &faster, &stable).verdict,
            Verdict::Pass
        );
        let either = Compare::default();
        assert_eq!(
            check_comparative("lat", &either, &faster, &stable).verdict,
            Verdict::Fail
        );
        // Same distribution passes.
        let same: Vec<f64> = stable.iter().rev().copied().collect();
        assert_eq!(
            check_comparative("lat", &cmp, &same, &stable).verdict,
            Verdict::Pass
        );
        // Too few samples (after dropping NaN) is inconclusive.
        let r = check_comparative("lat", &cmp, &[1.0, f64::NAN, 2.0], &stable);
        assert_eq!(r.verdict, Verdict::Inconclusive);
        assert!(r.reason.contains("fewer than minSamples 3"), "{}", r.reason);
    }

    #[test]
    fn error_counts_reject_decisively_and_replay_history() {
        let cfg = ErrorCounts::default();
        let healthy = count_batch(&ErrorCountSample {
            canary_errors: 1.0,
            canary_requests: 100.0,
            stable_errors: 9.0,
            stable_requests: 900.0,
        })
        .unwrap();
        let r = check_error_counts(&cfg, &[], Some(&healthy), 100.0);
        assert_eq!(r.verdict, Verdict::Pass, "{}", r.reason);
        let bad = count_batch(&ErrorCountSample {
            canary_errors: 30.0,
            canary_requests: 300.0,
            stable_errors: 7.0,
            stable_requests: 700.0,
        })
        .unwrap();
        // One bad interval is not enough: it adds at most e^1.5 of evidence.
        let r = check_error_counts(&cfg, &[healthy], Some(&bad), 300.0);
        assert_eq!(r.verdict, Verdict::Pass, "{}", r.reason);
        let history = [healthy, bad, bad, bad, bad];
        let r = check_error_counts(&cfg, &history, Some(&bad), 300.0);
        assert_eq!(r.verdict, Verdict::Fail, "{}", r.reason);
        assert!(r.decisive && r.p_value.unwrap() <= 0.02, "{r:?}");
        let first = r.first_reject_interval.expect("rejected");
        assert!((4..=6).contains(&first), "{r:?}");
        assert!(
            r.reason.contains(&format!("first at interval {first}")),
            "{r:?}"
        );
        assert!(r.dispersion.is_some_and(|d| d >= 1.0), "{r:?}");
        // No canary traffic: inconclusive, never a pass.
        let none = count_batch(&ErrorCountSample {
            canary_errors: 0.0,
            canary_requests: 0.0,
            stable_errors: 0.0,
            stable_requests: 500.0,
        })
        .unwrap();
        assert_eq!(
            check_error_counts(&cfg, &[], Some(&none), 0.0).verdict,
            Verdict::Inconclusive
        );
        assert!(count_batch(&ErrorCountSample {
            canary_errors: f64::NAN,
            canary_requests: 1.0,
            stable_errors: 0.0,
            stable_requests: 1.0
        })
        .is_none());
    }

    fn pass(name: &str) -> CheckResult {
        check_threshold(name, Some(0.0), None, &[1.0])
    }

    #[test]
    fn combine_rules() {
        let v = combine(vec![pass("a"), pass("b")], Some(500.0), Some(100));
        assert_eq!(v.verdict, Verdict::Pass);
        // Too little traffic: nothing judged, even if the checks passed.
        let v = combine(vec![pass("a")], Some(99.0), Some(100));
        assert_eq!(v.verdict, Verdict::Inconclusive);
        assert!(
            v.reason.contains("fewer than minRequests 100"),
            "{}",
            v.reason
        );
        let v = combine(vec![pass("a")], None, Some(100));
        assert_eq!(v.verdict, Verdict::Inconclusive);
        // A plain failure under minRequests is not judged either…
        let fail = check_threshold("sr", Some(0.99), None, &[0.5]);
        let v = combine(vec![fail.clone()], Some(3.0), Some(100));
        assert_eq!(v.verdict, Verdict::Inconclusive);
        // …but a decisive one is: the sequential test is valid at any sample size.
        let mut decisive = fail.clone();
        decisive.decisive = true;
        let v = combine(vec![decisive], Some(3.0), Some(100));
        assert_eq!((v.verdict, v.decisive), (Verdict::Fail, true));
        let v = combine(vec![pass("a"), fail], None, None);
        assert_eq!((v.verdict, v.decisive), (Verdict::Fail, false));
        let v = combine(
            vec![pass("a"), check_threshold("x", None, Some(1.0), &[])],
            None,
            None,
        );
        assert_eq!(v.verdict, Verdict::Inconclusive);
        assert_eq!(combine(vec![], None, None).verdict, Verdict::Inconclusive);
    }
}
