//! Error-budget maths. Pure: the numbers come in, a [`BudgetReport`] comes out.
//!
//! - budget consumed = period error ratio / (1 − objective)
//! - burn rate of a window = window error ratio / (1 − objective)
//! - action: "emergency" at consumed ≥ emergency threshold (0.95), "critical" at ≥ critical
//!   (0.80), else "none". No data is never an action: ratios are `None`, action "none".

use std::collections::BTreeMap;

use super::duration::PromDuration;
use super::model::{Guard, Slo};

/// What the guard should do about an SLO's budget.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    None,
    Critical,
    Emergency,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::None => "none",
            Action::Critical => "critical",
            Action::Emergency => "emergency",
        }
    }
}

/// Where the error ratios came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Sloth's `slo:sli_error:ratio_rate<w>` recording rules.
    RecordingRules,
    /// The SLI queries evaluated directly.
    Raw,
}

/// The budget of one SLO at one instant: the `budget -o json` contract.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BudgetReport {
    pub id: String,
    pub service: String,
    pub slo: String,
    /// Objective as a ratio (0.999).
    pub objective: f64,
    /// SLO period, Prometheus-formatted ("30d", "4w").
    pub period: String,
    pub error_ratio: Option<f64>,
    pub budget_consumed: Option<f64>,
    pub budget_remaining: Option<f64>,
    /// Burn rate per alert window, keyed by the Prometheus-formatted window.
    pub burn_rates: BTreeMap<String, Option<f64>>,
    pub action: Action,
    /// Present (and true) only when Prometheus had no data for the period.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub no_data: bool,
    pub source: Source,
}

/// A measured ratio: finite and non-negative, or no data. Prometheus answers NaN for 0/0 and
/// ±Inf for x/0; neither is a measurement.
pub fn measured(value: Option<f64>) -> Option<f64> {
    value.filter(|v| v.is_finite() && *v >= 0.0)
}

/// Classify budget consumption against a guard's thresholds.
pub fn action_for(consumed: Option<f64>, guard: &Guard) -> Action {
    match consumed {
        Some(c) if c >= guard.emergency => Action::Emergency,
        Some(c) if c >= guard.critical => Action::Critical,
        _ => Action::None,
    }
}

/// An error ratio as a multiple of the error budget ratio (a burn rate, or the budget
/// consumed for the period's ratio). An objective of 100% has no budget: any error is "all
/// of it and more", reported as `f64::MAX` (JSON has no infinity); no errors are 0.
pub fn burn_rate(error_ratio: f64, budget: f64) -> f64 {
    if budget > 0.0 {
        error_ratio / budget
    } else if error_ratio > 0.0 {
        f64::MAX
    } else {
        0.0
    }
}

/// Inputs measured for one SLO.
#[derive(Debug, Clone, Default)]
pub struct Measurements {
    /// Error ratio over the whole SLO period.
    pub period_error_ratio: Option<f64>,
    /// Error ratio per alert window.
    pub window_error_ratios: BTreeMap<PromDuration, Option<f64>>,
}

/// Build the report of one SLO from its measurements.
pub fn assess(
    slo: &Slo,
    period: PromDuration,
    windows: &[PromDuration],
    m: &Measurements,
    source: Source,
) -> BudgetReport {
    assess_named(slo, period, windows, m, source, &|w| w.to_string())
}

/// [`assess`], with the Prometheus-formatted name of each window (and of the period) from
/// `name`: an evaluation of many SLOs formats each distinct window once, not once per SLO.
pub fn assess_named(
    slo: &Slo,
    period: PromDuration,
    windows: &[PromDuration],
    m: &Measurements,
    source: Source,
    name: &dyn Fn(PromDuration) -> String,
) -> BudgetReport {
    let budget = slo.error_budget_ratio();
    let per_budget = |r: Option<f64>| measured(r).map(|r| burn_rate(r, budget));
    let error_ratio = measured(m.period_error_ratio);
    let consumed = per_budget(error_ratio);
    let burn_rates = windows
        .iter()
        .map(|w| {
            let r = m.window_error_ratios.get(w).copied().flatten();
            (name(*w), per_budget(r))
        })
        .collect();
    let guard = slo.guard.clone().unwrap_or_default();
    BudgetReport {
        id: slo.id.clone(),
        service: slo.service.clone(),
        slo: slo.name.clone(),
        objective: slo.objective_ratio(),
        period: name(period),
        error_ratio,
        budget_consumed: consumed,
        budget_remaining: consumed.map(|c| 1.0 - c),
        burn_rates,
        action: action_for(consumed, &guard),
        no_data: error_ratio.is_none(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slo::model::*;
    use std::path::PathBuf;

    pub(crate) fn slo(objective_percent: f64) -> Slo {
        Slo {
            id: "svc-avail".into(),
            service: "svc".into(),
            name: "avail".into(),
            description: String::new(),
            objective_percent,
            labels: Default::default(),
            sli: Sli::Raw {
                error_ratio_query: "x".into(),
            },
            alerting: Alerting::default(),
            kind: SpecKind::SlothPrometheusV1,
            origin: Origin {
                file: PathBuf::from("f.yml"),
                doc_index: 0,
            },
            k8s: None,
            period: None,
            guard: None,
        }
    }

    fn windows() -> Vec<PromDuration> {
        crate::slo::AlertWindows::default_30d().windows()
    }

    fn report(
        objective: f64,
        period_ratio: Option<f64>,
        window_ratio: Option<f64>,
    ) -> BudgetReport {
        let ws = windows();
        let m = Measurements {
            period_error_ratio: period_ratio,
            window_error_ratios: ws.iter().map(|w| (*w, window_ratio)).collect(),
        };
        assess(
            &slo(objective),
            PromDuration::from_days(30),
            &ws,
            &m,
            Source::Raw,
        )
    }

    #[test]
    fn consumed_is_error_ratio_over_budget() {
        let r = report(99.9, Some(0.0005), Some(0.002));
        assert!((r.budget_consumed.unwrap() - 0.5).abs() < 1e-12);
        assert!((r.budget_remaining.unwrap() - 0.5).abs() < 1e-12);
        assert!((r.burn_rates["1h"].unwrap() - 2.0).abs() < 1e-12);
        assert_eq!(r.action, Action::None);
        assert!(!r.no_data);
        assert_eq!(r.period, "30d");
        assert!((r.objective - 0.999).abs() < 1e-15);
    }

    #[test]
    fn thresholds_are_inclusive() {
        // 0.8 and 0.95 of a 1% budget.
        assert_eq!(report(99.0, Some(0.008), None).action, Action::Critical);
        assert_eq!(report(99.0, Some(0.0095), None).action, Action::Emergency);
        assert_eq!(report(99.0, Some(0.00799), None).action, Action::None);
        assert_eq!(report(99.0, Some(0.5), None).action, Action::Emergency);
    }

    #[test]
    fn guard_thresholds_override_defaults() {
        let mut s = slo(99.0);
        s.guard = Some(Guard {
            emergency: 0.5,
            critical: 0.25,
            rollback_on_critical: true,
        });
        let m = Measurements {
            period_error_ratio: Some(0.003),
            ..Default::default()
        };
        let r = assess(&s, PromDuration::from_days(30), &[], &m, Source::Raw);
        assert_eq!(r.action, Action::Critical);
    }

    #[test]
    fn no_data_is_null_and_never_an_action() {
        for bad in [None, Some(f64::NAN), Some(f64::INFINITY), Some(-1.0)] {
            let r = report(99.9, bad, bad);
            assert!(r.no_data);
            assert_eq!(r.error_ratio, None);
            assert_eq!(r.budget_consumed, None);
            assert_eq!(r.budget_remaining, None);
            assert!(r.burn_rates.values().all(|v| v.is_none()));
            assert_eq!(r.action, Action::None);
            let json = serde_json::to_string(&r).unwrap();
            assert!(
                !json.contains("NaN") && json.contains("\"no_data\":true"),
                "{json}"
            );
        }
    }

    #[test]
    fn json_has_the_contract_fields() {
        let v = serde_json::to_value(report(99.9, Some(0.0001), Some(0.0))).unwrap();
        for k in [
            "id",
            "service",
            "slo",
            "objective",
            "period",
            "error_ratio",
            "budget_consumed",
            "budget_remaining",
            "burn_rates",
            "action",
            "source",
        ] {
            assert!(v.get(k).is_some(), "missing {k}: {v}");
        }
        assert!(v.get("no_data").is_none());
        let keys: Vec<&String> = v["burn_rates"].as_object().unwrap().keys().collect();
        let mut expected = vec!["5m", "30m", "1h", "2h", "6h", "1d", "3d"];
        expected.sort();
        assert_eq!(keys, expected);
        assert_eq!(v["action"], "none");
        assert_eq!(v["source"], "raw");
    }

    #[test]
    fn hundred_percent_objective() {
        let r = report(100.0, Some(0.0), Some(0.0));
        assert_eq!(r.budget_consumed, Some(0.0));
        assert_eq!(r.action, Action::None);
        let r = report(100.0, Some(0.01), Some(0.01));
        assert_eq!(r.action, Action::Emergency);
        assert!(serde_json::to_string(&r).is_ok());
    }
}
