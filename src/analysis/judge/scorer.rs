//! Kayenta's weighted-sum canary score (`WeightedSumScorer` with
//! `ThresholdScoreClassifier`).
//!
//! * Muted metrics are ignored.
//! * Group score = 100 × Σ weight(Pass) / Σ weight(Pass, High, Low,
//!   NodataFailMetric); `Nodata` metrics do not count. Kayenta has no metric
//!   weights: with every weight 1 this is its count ratio. A group with no
//!   counted metric is a no-data group and counts as 100 in the summary.
//! * Summary score = Σ group score × group weight / 100, where group weights
//!   are percentages from the configuration; groups without a configured
//!   weight share what is left of 100 equally. Rounded half-up to 2
//!   decimals.
//! * Any critical metric that is not `Pass` (a critical High/Low, or Nodata
//!   of a critical metric) makes the score 0 and the result Fail, whatever
//!   the thresholds; so does `Nodata` for 50% or more of the metrics.
//! * Pass when score ≥ pass threshold, Marginal when ≥ marginal threshold,
//!   Fail below.

use super::classifier::Label;
use super::JudgeError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Share of `Nodata` metrics at which the canary fails outright (percent).
const NODATA_THRESHOLD_PERCENT: f64 = 50.0;

/// One classified metric as the scorer sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricOutcome {
    /// Metric name (used in reasons).
    pub name: String,
    /// Groups the metric belongs to.
    pub groups: Vec<String>,
    /// Its label.
    pub label: Label,
    /// Its `critical` flag as set by the classifier.
    pub critical: bool,
    /// Weight within its groups (1 reproduces Kayenta).
    pub weight: f64,
    /// Muted metrics are reported but not scored.
    pub muted: bool,
}

impl MetricOutcome {
    /// A non-critical, unmuted metric of weight 1.
    pub fn new(name: impl Into<String>, groups: &[&str], label: Label) -> Self {
        MetricOutcome {
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            label,
            critical: false,
            weight: 1.0,
            muted: false,
        }
    }
}

/// Score thresholds (Kayenta's `scoreThresholds`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ScoreThresholds {
    /// Minimum score to pass.
    pub pass: f64,
    /// Minimum score to be marginal.
    pub marginal: f64,
}

/// Overall classification of the canary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ScoreClassification {
    /// Score ≥ pass threshold.
    Pass,
    /// Marginal threshold ≤ score < pass threshold.
    Marginal,
    /// Score below the marginal threshold, or a critical failure.
    Fail,
}

/// Score of one group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupScore {
    /// Group name.
    pub name: String,
    /// 100 × passing weight / counted weight (0 for a no-data group).
    pub score: f64,
    /// No metric of the group had data.
    pub no_data: bool,
    /// Weight (percent) the group got in the summary.
    pub weight: f64,
    /// Number of metrics in the group (Nodata included).
    pub metrics: usize,
}

/// Result of [`score_canary`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CanaryScore {
    /// Summary score, 0..=100, two decimals.
    pub score: f64,
    /// Pass / Marginal / Fail.
    pub classification: ScoreClassification,
    /// Why the canary failed outright, if it did.
    pub reason: Option<String>,
    /// Per-group scores, sorted by name.
    pub groups: Vec<GroupScore>,
}

/// Round half-up to two decimals, treating values within 1e-9 of a half as
/// halves (Kayenta rounds the decimal representation with HALF_UP).
fn round2(x: f64) -> f64 {
    let s = x * 100.0;
    let floor = s.floor();
    let r = if (s - floor - 0.5).abs() < 1e-9 {
        floor + 1.0
    } else {
        s.round()
    };
    r / 100.0
}

/// Scores classified metrics as Kayenta does (see the module docs).
/// `group_weights` are percentages per group name.
pub fn score_canary(
    metrics: &[MetricOutcome],
    group_weights: &BTreeMap<String, f64>,
    thresholds: ScoreThresholds,
) -> Result<CanaryScore, JudgeError> {
    for (name, w) in group_weights {
        if !(w.is_finite() && *w >= 0.0) {
            return Err(JudgeError::InvalidParameter {
                name: "group_weights",
                reason: format!("weight of group `{name}` must be finite and >= 0, got {w}"),
            });
        }
    }
    for m in metrics {
        if !(m.weight.is_finite() && m.weight > 0.0) {
            return Err(JudgeError::InvalidParameter {
                name: "weight",
                reason: format!("weight of metric `{}` must be finite and > 0", m.name),
            });
        }
    }
    let scored: Vec<&MetricOutcome> = metrics.iter().filter(|m| !m.muted).collect();

    // group name -> (passing weight, counted weight, number of metrics)
    let mut tallies: BTreeMap<&str, (f64, f64, usize)> = BTreeMap::new();
    for m in &scored {
        for g in &m.groups {
            let entry = tallies.entry(g.as_str()).or_insert((0.0, 0.0, 0));
            entry.2 += 1;
            match m.label {
                Label::Pass => {
                    entry.0 += m.weight;
                    entry.1 += m.weight;
                }
                Label::High | Label::Low | Label::NodataFailMetric => entry.1 += m.weight,
                Label::Nodata => {}
            }
        }
    }
    let configured_sum: f64 = group_weights.values().sum();
    let unweighted = tallies
        .keys()
        .filter(|g| !group_weights.contains_key(**g))
        .count();
    let share = if unweighted > 0 {
        (100.0 - configured_sum) / unweighted as f64
    } else {
        0.0
    };
    let groups: Vec<GroupScore> = tallies
        .iter()
        .map(|(name, &(pass, counted, n))| {
            let no_data = counted == 0.0;
            GroupScore {
                name: name.to_string(),
                score: if no_data { 0.0 } else { 100.0 * pass / counted },
                no_data,
                weight: group_weights.get(*name).copied().unwrap_or(share),
                metrics: n,
            }
        })
        .collect();

    let classify = |score: f64| {
        if score >= thresholds.pass {
            ScoreClassification::Pass
        } else if score >= thresholds.marginal {
            ScoreClassification::Marginal
        } else {
            ScoreClassification::Fail
        }
    };

    if let Some(failure) = scored.iter().find(|m| m.critical && m.label != Label::Pass) {
        return Ok(CanaryScore {
            score: 0.0,
            classification: ScoreClassification::Fail,
            reason: Some(format!(
                "Canary Failed: critical metric `{}` was classified as {:?}",
                failure.name, failure.label
            )),
            groups,
        });
    }
    let nodata = scored.iter().filter(|m| m.label == Label::Nodata).count();
    if !scored.is_empty() && nodata as f64 / scored.len() as f64 * 100.0 >= NODATA_THRESHOLD_PERCENT
    {
        return Ok(CanaryScore {
            score: 0.0,
            classification: ScoreClassification::Fail,
            reason: Some(format!(
                "Canary Failed: {NODATA_THRESHOLD_PERCENT}% or more metrics returned NODATA"
            )),
            groups,
        });
    }
    let summary: f64 = groups
        .iter()
        .map(|g| {
            let effective = if g.no_data { 100.0 } else { g.score };
            effective * (g.weight / 100.0)
        })
        .sum();
    let score = round2(summary);
    Ok(CanaryScore {
        score,
        classification: classify(score),
        reason: None,
        groups,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding() {
        assert_eq!(round2(33.333_333), 33.33);
        assert_eq!(round2(12.345), 12.35);
        assert_eq!(round2(100.0), 100.0);
    }
}
