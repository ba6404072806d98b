//! Kayenta-compatible metric classification (`MannWhitneyClassifier` and
//! `MeanInequalityClassifier` of Kayenta's NetflixACAJudge).

use super::hodges_lehmann::hodges_lehmann;
use super::kayenta::kayenta_interval;
use super::mann_whitney::{mann_whitney_u, Alternative, Method};
use super::ranks::rank_summary;
use super::{ensure_confidence, ensure_finite, JudgeError};
use serde::{Deserialize, Serialize};

/// Which change of the canary counts as a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Only an increase (High) fails.
    Increase,
    /// Only a decrease (Low) fails.
    Decrease,
    /// Both fail.
    Either,
}

/// Effect-size measure compared with the allowed / critical thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EffectSizeMeasure {
    /// mean(canary) / mean(baseline); NaN (threshold ignored) when either
    /// mean is zero. Neutral value 1.
    MeanRatio,
    /// Common-language effect size, P(canary > baseline) + ½ P(tie),
    /// i.e. U1 / (n·m). Neutral value 0.5.
    Cles,
}

impl EffectSizeMeasure {
    /// The neutral value, Kayenta's default for every threshold.
    pub fn neutral(self) -> f64 {
        match self {
            EffectSizeMeasure::MeanRatio => 1.0,
            EffectSizeMeasure::Cles => 0.5,
        }
    }
}

/// What to do with NaN values before classifying.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NanStrategy {
    /// Drop NaNs (Kayenta's `remove`, the default).
    Remove,
    /// Replace NaNs with 0 (Kayenta's `replace`).
    ReplaceWithZero,
}

/// Where the interval and estimate used for classification come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntervalMode {
    /// Kayenta's own computation ([`super::kayenta_interval`]): roots of the
    /// continuity-corrected rank statistic found to 1e-4. Two constant
    /// samples with different values, where Kayenta adds unseeded noise, get
    /// the deterministic limit instead: interval and estimate all equal to
    /// the difference of the two values.
    KayentaCompat,
    /// The exact Hodges-Lehmann estimate and order-statistic interval
    /// ([`super::hodges_lehmann`]), unit-invariant.
    Exact,
}

/// Classification label of one metric (Kayenta's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Label {
    /// No significant change in a failing direction.
    Pass,
    /// The canary is significantly higher.
    High,
    /// The canary is significantly lower.
    Low,
    /// No data for the canary or the baseline.
    Nodata,
    /// No data, for a metric configured to require data (fails the metric
    /// without failing the canary as a whole).
    NodataFailMetric,
}

/// Classifier configuration (Kayenta's metric `analysisConfigurations.canary`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClassifierConfig {
    /// Fraction of |estimate| the interval must clear (Kayenta: 0.25 in
    /// production).
    pub tolerance: f64,
    /// Confidence level of the interval (Kayenta: 0.98 in production).
    pub confidence: f64,
    /// Which direction fails.
    pub direction: Direction,
    /// Effect-size measure for the thresholds below.
    pub effect_size: EffectSizeMeasure,
    /// High requires `effect >= allowed_increase` (unless the effect is NaN).
    pub allowed_increase: f64,
    /// Low requires `effect <= allowed_decrease` (unless the effect is NaN).
    pub allowed_decrease: f64,
    /// A critical High requires `effect >= critical_increase`.
    pub critical_increase: f64,
    /// A critical Low requires `effect <= critical_decrease`.
    pub critical_decrease: f64,
    /// NaN handling.
    pub nan_strategy: NanStrategy,
    /// Whether a failure of this metric fails the whole canary.
    pub critical: bool,
    /// Whether missing data fails the metric (`NodataFailMetric`).
    pub must_have_data: bool,
    /// Interval computation.
    pub mode: IntervalMode,
    /// Alternative of the reported Mann-Whitney p-value (the classification
    /// itself is interval-based, as in Kayenta).
    pub p_value_alternative: Alternative,
}

impl ClassifierConfig {
    /// NetflixACAJudge's production defaults: tolerance 0.25, confidence
    /// 0.98, direction either, NaNs removed, every threshold at the
    /// measure's neutral value (1 for the mean ratio, 0.5 for CLES), not
    /// critical, Kayenta-compatible interval.
    pub fn kayenta_judge_defaults(effect_size: EffectSizeMeasure) -> Self {
        let neutral = effect_size.neutral();
        ClassifierConfig {
            tolerance: 0.25,
            confidence: 0.98,
            direction: Direction::Either,
            effect_size,
            allowed_increase: neutral,
            allowed_decrease: neutral,
            critical_increase: neutral,
            critical_decrease: neutral,
            nan_strategy: NanStrategy::Remove,
            critical: false,
            must_have_data: false,
            mode: IntervalMode::KayentaCompat,
            p_value_alternative: Alternative::TwoSided,
        }
    }

    fn validate(&self) -> Result<(), JudgeError> {
        ensure_confidence(self.confidence)?;
        if !(self.tolerance.is_finite() && self.tolerance >= 0.0) {
            return Err(JudgeError::InvalidParameter {
                name: "tolerance",
                reason: format!("expected a finite number >= 0, got {}", self.tolerance),
            });
        }
        for (name, v) in [
            ("allowed_increase", self.allowed_increase),
            ("allowed_decrease", self.allowed_decrease),
            ("critical_increase", self.critical_increase),
            ("critical_decrease", self.critical_decrease),
        ] {
            if !v.is_finite() {
                return Err(JudgeError::InvalidParameter {
                    name,
                    reason: format!("expected a finite number, got {v}"),
                });
            }
        }
        Ok(())
    }
}

impl Default for ClassifierConfig {
    fn default() -> Self {
        Self::kayenta_judge_defaults(EffectSizeMeasure::MeanRatio)
    }
}

/// Label and flags of a classified metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Classification {
    /// The label.
    pub label: Label,
    /// Whether this result fails the whole canary (Kayenta's `critical`).
    pub critical: bool,
    /// Human-readable reason, when there is one.
    pub reason: Option<String>,
    /// Kayenta's `deviation`: mean(canary) / mean(baseline), NaN when a
    /// mean is 0, 1 when there was nothing to compare.
    pub deviation: f64,
}

/// The judge's verdict on one metric: the fields of `slogate judge -o json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MannWhitneyResult {
    /// U1 of the canary sample (scipy's statistic); `None` when not computed.
    pub u: Option<f64>,
    /// Mann-Whitney p-value for `p_value_alternative` (scipy semantics).
    pub p_value: Option<f64>,
    /// Lower bound of the interval for canary − baseline.
    pub ci_low: Option<f64>,
    /// Upper bound of the interval for canary − baseline.
    pub ci_high: Option<f64>,
    /// Shift estimate (Hodges-Lehmann, or Kayenta's root in compat mode).
    pub estimate: Option<f64>,
    /// Effect size in the configured measure (JSON `null` when NaN).
    pub effect: Option<f64>,
    /// The label.
    pub classification: Label,
    /// Whether this result fails the whole canary.
    pub critical: bool,
    /// Reason for the label, when there is one.
    pub reason: Option<String>,
    /// Kayenta's mean-ratio deviation (JSON `null` when NaN).
    pub deviation: Option<f64>,
    /// Method of the p-value.
    pub method: Option<Method>,
    /// Interval computation used.
    pub interval_mode: IntervalMode,
    /// Canary values after NaN handling.
    pub n_canary: usize,
    /// Baseline values after NaN handling.
    pub n_baseline: usize,
}

fn finite_or_none(v: f64) -> Option<f64> {
    if v.is_finite() {
        Some(v)
    } else {
        None
    }
}

fn apply_nan_strategy(values: &[f64], strategy: NanStrategy) -> Vec<f64> {
    match strategy {
        NanStrategy::Remove => values.iter().copied().filter(|v| !v.is_nan()).collect(),
        NanStrategy::ReplaceWithZero => values
            .iter()
            .map(|&v| if v.is_nan() { 0.0 } else { v })
            .collect(),
    }
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

/// mean(experiment) / mean(control), NaN when either mean is 0.
fn mean_ratio(experiment: &[f64], control: &[f64]) -> f64 {
    let e = mean(experiment);
    let c = mean(control);
    if e == 0.0 || c == 0.0 {
        f64::NAN
    } else {
        e / c
    }
}

/// U1 / (n·m): the probability that a canary value exceeds a baseline value,
/// ties counting ½.
fn cles(experiment: &[f64], control: &[f64]) -> f64 {
    let m = experiment.len() as f64;
    let n = control.len() as f64;
    let r1 = rank_summary(experiment, control).rank_sum_first;
    (2.0 * r1 - m * (m + 1.0)) / (2.0 * n * m)
}

fn sorted(values: &[f64]) -> Vec<f64> {
    let mut v = values.to_vec();
    v.sort_unstable_by(f64::total_cmp);
    v
}

/// All values equal (false for an empty slice).
fn is_constant(values: &[f64]) -> bool {
    values
        .first()
        .is_some_and(|first| values.iter().all(|v| v == first))
}

/// Classifies one metric, canary against baseline, as Kayenta's
/// `MannWhitneyClassifier` does, and reports the U test alongside.
///
/// In order: NaNs are removed or replaced; missing data gives `Nodata`
/// (`NodataFailMetric` for a non-critical metric that must have data; `Pass`
/// with the replace strategy); identical samples or a single distinct value
/// pass; otherwise the metric is `High` when the interval's lower bound
/// exceeds `tolerance·|estimate|` and the effect is at least
/// `allowed_increase`, `Low` when the upper bound is below
/// `−tolerance·|estimate|` and the effect is at most `allowed_decrease`
/// (each only in a failing direction; a NaN effect skips its threshold), and
/// `Pass` otherwise. A critical metric's High (Low) is critical when the
/// effect also reaches `critical_increase` (`critical_decrease`).
///
/// Infinite values are rejected ([`JudgeError::NonFinite`]).
pub fn judge_metric(
    canary: &[f64],
    baseline: &[f64],
    config: &ClassifierConfig,
) -> Result<MannWhitneyResult, JudgeError> {
    config.validate()?;
    let experiment = apply_nan_strategy(canary, config.nan_strategy);
    let control = apply_nan_strategy(baseline, config.nan_strategy);
    ensure_finite("canary", &experiment)?;
    ensure_finite("baseline", &control)?;

    let mut result = MannWhitneyResult {
        u: None,
        p_value: None,
        ci_low: None,
        ci_high: None,
        estimate: None,
        effect: None,
        classification: Label::Pass,
        critical: false,
        reason: None,
        deviation: Some(1.0),
        method: None,
        interval_mode: config.mode,
        n_canary: experiment.len(),
        n_baseline: control.len(),
    };

    if experiment.is_empty() || control.is_empty() {
        match config.nan_strategy {
            NanStrategy::Remove => {
                let which = if experiment.is_empty() {
                    "canary"
                } else {
                    "baseline"
                };
                result.reason = Some(format!("Missing data for the {which}"));
                if config.must_have_data && !config.critical {
                    result.classification = Label::NodataFailMetric;
                } else {
                    result.classification = Label::Nodata;
                    result.critical = config.critical;
                }
            }
            NanStrategy::ReplaceWithZero => result.classification = Label::Pass,
        }
        return Ok(result);
    }

    let u_test = mann_whitney_u(
        &experiment,
        &control,
        config.p_value_alternative,
        Method::Auto,
    )?;
    result.u = Some(u_test.u);
    result.p_value = Some(u_test.p_value);
    result.method = Some(u_test.method);

    if sorted(&experiment) == sorted(&control) {
        result.reason = Some("The canary and baseline data are identical".to_string());
        return Ok(result);
    }
    // Both samples are non-empty here (checked above), so `[0]` exists.
    let pooled_constant =
        is_constant(&experiment) && is_constant(&control) && experiment[0] == control[0];
    if pooled_constant {
        result.reason = Some("The canary and baseline have a single distinct value".to_string());
        return Ok(result);
    }

    let (ci_low, ci_high, estimate) = match config.mode {
        IntervalMode::KayentaCompat if is_constant(&experiment) && is_constant(&control) => {
            // Kayenta adds unseeded Gaussian noise here; use its limit.
            // Both samples are non-empty (checked above).
            let d = experiment[0] - control[0];
            (d, d, d)
        }
        IntervalMode::KayentaCompat => {
            let k = kayenta_interval(&experiment, &control, config.confidence)?;
            (k.ci_low, k.ci_high, k.estimate)
        }
        IntervalMode::Exact => {
            let hl = hodges_lehmann(&experiment, &control, config.confidence, Method::Auto)?;
            (hl.ci_low, hl.ci_high, hl.estimate)
        }
    };
    let deviation = mean_ratio(&experiment, &control);
    let effect = match config.effect_size {
        EffectSizeMeasure::MeanRatio => deviation,
        EffectSizeMeasure::Cles => cles(&experiment, &control),
    };
    result.ci_low = Some(ci_low);
    result.ci_high = Some(ci_high);
    result.estimate = Some(estimate);
    result.effect = finite_or_none(effect);
    result.deviation = finite_or_none(deviation);

    let bound = config.tolerance * estimate.abs();
    let increase_ok = matches!(config.direction, Direction::Increase | Direction::Either);
    let decrease_ok = matches!(config.direction, Direction::Decrease | Direction::Either);
    let is_high =
        increase_ok && ci_low > bound && (effect.is_nan() || effect >= config.allowed_increase);
    let is_low =
        decrease_ok && ci_high < -bound && (effect.is_nan() || effect <= config.allowed_decrease);
    if is_high {
        result.classification = Label::High;
        result.critical =
            config.critical && (effect.is_nan() || effect >= config.critical_increase);
    } else if is_low {
        result.classification = Label::Low;
        result.critical =
            config.critical && (effect.is_nan() || effect <= config.critical_decrease);
    }
    if result.classification != Label::Pass {
        let label = if is_high { "High" } else { "Low" };
        let suffix = if result.critical { " (Critical)" } else { "" };
        result.reason = Some(format!("The metric was classified as {label}{suffix}"));
    }
    Ok(result)
}

/// Kayenta's `MeanInequalityClassifier` (a benchmarking baseline): High when
/// the canary mean is greater, Low when smaller, in the failing directions.
pub fn classify_mean_inequality(
    canary: &[f64],
    baseline: &[f64],
    direction: Direction,
    nan_strategy: NanStrategy,
    critical: bool,
    must_have_data: bool,
) -> Result<Classification, JudgeError> {
    let experiment = apply_nan_strategy(canary, nan_strategy);
    let control = apply_nan_strategy(baseline, nan_strategy);
    ensure_finite("canary", &experiment)?;
    ensure_finite("baseline", &control)?;
    if experiment.is_empty() || control.is_empty() {
        return Ok(match nan_strategy {
            NanStrategy::Remove if must_have_data && !critical => Classification {
                label: Label::NodataFailMetric,
                critical: false,
                reason: None,
                deviation: 1.0,
            },
            NanStrategy::Remove => Classification {
                label: Label::Nodata,
                critical,
                reason: None,
                deviation: 0.0,
            },
            NanStrategy::ReplaceWithZero => Classification {
                label: Label::Pass,
                critical: false,
                reason: None,
                deviation: 1.0,
            },
        });
    }
    let e = mean(&experiment);
    let c = mean(&control);
    let ratio = e / c;
    let increase_ok = matches!(direction, Direction::Increase | Direction::Either);
    let decrease_ok = matches!(direction, Direction::Decrease | Direction::Either);
    Ok(if increase_ok && e > c {
        Classification {
            label: Label::High,
            critical,
            reason: Some("The canary mean was greater than the baseline mean".to_string()),
            deviation: ratio,
        }
    } else if decrease_ok && e < c {
        Classification {
            label: Label::Low,
            critical,
            reason: Some("The canary mean was less than the baseline mean".to_string()),
            deviation: ratio,
        }
    } else {
        Classification {
            label: Label::Pass,
            critical: false,
            reason: None,
            deviation: 1.0,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> ClassifierConfig {
        ClassifierConfig {
            tolerance: 0.10,
            confidence: 0.95,
            ..ClassifierConfig::default()
        }
    }

    #[test]
    fn nodata_variants() {
        let r = judge_metric(&[], &[1.0, 2.0], &cfg()).expect("valid");
        assert_eq!(r.classification, Label::Nodata);
        assert!(!r.critical);
        let r = judge_metric(
            &[f64::NAN],
            &[1.0],
            &ClassifierConfig {
                critical: true,
                ..cfg()
            },
        )
        .expect("valid");
        assert_eq!(r.classification, Label::Nodata);
        assert!(r.critical);
        let r = judge_metric(
            &[],
            &[1.0],
            &ClassifierConfig {
                must_have_data: true,
                ..cfg()
            },
        )
        .expect("valid");
        assert_eq!(r.classification, Label::NodataFailMetric);
        let r = judge_metric(
            &[],
            &[1.0],
            &ClassifierConfig {
                nan_strategy: NanStrategy::ReplaceWithZero,
                ..cfg()
            },
        )
        .expect("valid");
        assert_eq!(r.classification, Label::Pass);
    }

    #[test]
    fn nan_replacement_feeds_zeros() {
        let r = judge_metric(
            &[f64::NAN, f64::NAN, f64::NAN],
            &[0.0, 0.0, 0.0],
            &ClassifierConfig {
                nan_strategy: NanStrategy::ReplaceWithZero,
                ..cfg()
            },
        )
        .expect("valid");
        assert_eq!(r.n_canary, 3);
        assert_eq!(r.classification, Label::Pass);
    }

    #[test]
    fn cles_effect() {
        // all canary values above all baseline values -> CLES 1
        assert_eq!(cles(&[5.0, 6.0], &[1.0, 2.0, 3.0]), 1.0);
        assert_eq!(cles(&[1.0], &[1.0]), 0.5);
    }

    #[test]
    fn infinities_are_rejected() {
        assert!(judge_metric(&[f64::INFINITY], &[1.0], &cfg()).is_err());
    }
}
