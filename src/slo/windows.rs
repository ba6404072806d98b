//! Multiwindow multi-burn-rate alert windows (Google SRE workbook, chapter 5), in Sloth's
//! `sloth.slok.dev/v1 AlertWindows` format. Built-in catalogs exist for 30d and 28d periods;
//! users can supply their own with `--windows FILE`.
//!
//! The burn-rate factor of a window pair is `budget% / 100 × period / long_window`.

use std::path::Path;

use super::duration::PromDuration;

/// One short/long window pair with the share of the budget it alerts on.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WindowPair {
    pub error_budget_percent: f64,
    pub short_window: PromDuration,
    pub long_window: PromDuration,
}

impl WindowPair {
    /// The burn-rate factor this pair alerts at, for an SLO period.
    pub fn burn_rate_factor(&self, period: PromDuration) -> f64 {
        self.error_budget_percent / 100.0 * period.as_millis() as f64
            / self.long_window.as_millis() as f64
    }
}

/// The quick and slow pair of one severity.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeverityWindows {
    pub quick: WindowPair,
    pub slow: WindowPair,
}

/// A full window catalog for one SLO period.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AlertWindows {
    pub slo_period: PromDuration,
    pub page: SeverityWindows,
    pub ticket: SeverityWindows,
}

#[derive(Debug, thiserror::Error)]
pub enum WindowsError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
    /// The file is not YAML, or its spec does not read as alert windows: `what` says
    /// which, the YAML error is the source.
    #[error("{file}: {what}: {source}")]
    Yaml {
        file: String,
        what: &'static str,
        #[source]
        source: crate::model::yaml::YamlError,
    },
    #[error("no built-in alert windows for period {0}: built-in periods are 30d and 28d; pass --windows FILE with a sloth.slok.dev/v1 AlertWindows catalog")]
    UnknownPeriod(PromDuration),
    #[error("SLO {slo} declares period {declared}, but the --windows catalog is for {catalog}: expected the same period")]
    PeriodMismatch {
        slo: String,
        declared: PromDuration,
        catalog: PromDuration,
    },
}

/// How the SLO period and alert windows are chosen for an SLO, from command-line or
/// configuration settings.
#[derive(Debug, Clone, Default)]
pub struct WindowSettings {
    /// Default period for SLOs that declare none (30d when unset).
    pub default_period: Option<PromDuration>,
    /// A custom catalog (`--windows FILE`); it applies to every SLO.
    pub catalog: Option<AlertWindows>,
}

impl WindowSettings {
    /// The window catalog for one SLO. The SLO's own period (OpenSLO time window) wins over
    /// the default period; a custom catalog must agree with the SLO's own period.
    pub fn for_slo(&self, slo: &crate::slo::Slo) -> Result<AlertWindows, WindowsError> {
        if let Some(cat) = self.catalog {
            return match slo.period {
                Some(p) if p != cat.slo_period => Err(WindowsError::PeriodMismatch {
                    slo: slo.id.clone(),
                    declared: p,
                    catalog: cat.slo_period,
                }),
                _ => Ok(cat),
            };
        }
        let period = slo
            .period
            .or(self.default_period)
            .unwrap_or(PromDuration::from_days(30));
        AlertWindows::builtin(period)
    }
}

fn pair(pct: f64, short: PromDuration, long: PromDuration) -> WindowPair {
    WindowPair {
        error_budget_percent: pct,
        short_window: short,
        long_window: long,
    }
}

impl AlertWindows {
    /// Sloth's default catalog for a 30-day period: 14.4/6 (page) and 3/1 (ticket).
    pub fn default_30d() -> Self {
        Self::standard(PromDuration::from_days(30))
    }

    /// Sloth's default catalog for a 28-day period.
    pub fn default_28d() -> Self {
        Self::standard(PromDuration::from_days(28))
    }

    fn standard(period: PromDuration) -> Self {
        AlertWindows {
            slo_period: period,
            page: SeverityWindows {
                quick: pair(2.0, PromDuration::from_mins(5), PromDuration::from_hours(1)),
                slow: pair(
                    5.0,
                    PromDuration::from_mins(30),
                    PromDuration::from_hours(6),
                ),
            },
            ticket: SeverityWindows {
                quick: pair(
                    10.0,
                    PromDuration::from_hours(2),
                    PromDuration::from_days(1),
                ),
                slow: pair(
                    10.0,
                    PromDuration::from_hours(6),
                    PromDuration::from_days(3),
                ),
            },
        }
    }

    /// The built-in catalog for a period, if there is one.
    pub fn builtin(period: PromDuration) -> Result<Self, WindowsError> {
        if period == PromDuration::from_days(30) {
            Ok(Self::default_30d())
        } else if period == PromDuration::from_days(28) {
            Ok(Self::default_28d())
        } else {
            Err(WindowsError::UnknownPeriod(period))
        }
    }

    /// The four pairs in Sloth's order: page quick, page slow, ticket quick, ticket slow.
    pub fn pairs(&self) -> [WindowPair; 4] {
        [
            self.page.quick,
            self.page.slow,
            self.ticket.quick,
            self.ticket.slow,
        ]
    }

    /// Every distinct short and long window, shortest first. These are the windows that get an
    /// `slo:sli_error:ratio_rate<w>` recording rule and a burn rate in `budget` output.
    pub fn windows(&self) -> Vec<PromDuration> {
        let mut w: Vec<PromDuration> = self
            .pairs()
            .iter()
            .flat_map(|p| [p.short_window, p.long_window])
            .collect();
        w.sort();
        w.dedup();
        w
    }

    /// The shortest window (Sloth uses it for `slo:current_burn_rate:ratio` and as the base of
    /// the period ratio).
    pub fn shortest(&self) -> PromDuration {
        self.windows()[0]
    }

    /// Parse a Sloth `AlertWindows` document from YAML text.
    pub fn from_yaml(file: &str, text: &str) -> Result<Self, WindowsError> {
        let invalid = |message: String| WindowsError::Invalid {
            file: file.to_string(),
            message,
        };
        let yaml = |what| {
            move |source| WindowsError::Yaml {
                file: file.to_string(),
                what,
                source,
            }
        };
        let doc: crate::model::yaml::Value =
            crate::model::yaml::from_str(text).map_err(yaml("not valid YAML"))?;
        let api = doc.get("apiVersion").and_then(|v| v.as_str());
        let kind = doc.get("kind").and_then(|v| v.as_str());
        if api != Some("sloth.slok.dev/v1") || kind != Some("AlertWindows") {
            return Err(invalid(format!(
                "apiVersion/kind: expected sloth.slok.dev/v1 AlertWindows, found {}/{}",
                api.unwrap_or("<missing>"),
                kind.unwrap_or("<missing>")
            )));
        }
        let spec = doc
            .get("spec")
            .cloned()
            .ok_or_else(|| invalid("spec: expected a mapping, found nothing".into()))?;
        let w: AlertWindows = crate::model::yaml::from_value(spec).map_err(yaml("spec"))?;
        w.check().map_err(invalid)?;
        Ok(w)
    }

    /// Read and parse an `AlertWindows` file.
    pub fn from_file(path: &Path) -> Result<Self, WindowsError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| WindowsError::Read {
            file: file.clone(),
            source,
        })?;
        Self::from_yaml(&file, &text)
    }

    fn check(&self) -> Result<(), String> {
        if self.slo_period.as_millis() == 0 {
            return Err("spec.sloPeriod: expected a positive duration".into());
        }
        let names = ["page.quick", "page.slow", "ticket.quick", "ticket.slow"];
        for (name, p) in names.iter().zip(self.pairs()) {
            if !(p.error_budget_percent > 0.0 && p.error_budget_percent <= 100.0) {
                return Err(format!(
                    "spec.{name}.errorBudgetPercent: expected a number in (0, 100], found {}",
                    p.error_budget_percent
                ));
            }
            if p.short_window.as_millis() == 0 || p.short_window >= p.long_window {
                return Err(format!(
                    "spec.{name}: expected 0 < shortWindow < longWindow, found {} and {}",
                    p.short_window, p.long_window
                ));
            }
            if p.long_window > self.slo_period {
                return Err(format!(
                    "spec.{name}.longWindow: expected at most the SLO period {}, found {}",
                    self.slo_period, p.long_window
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_30d_factors_match_the_workbook() {
        let w = AlertWindows::default_30d();
        let f: Vec<f64> = w
            .pairs()
            .iter()
            .map(|p| p.burn_rate_factor(w.slo_period))
            .collect();
        let expected = [14.4, 6.0, 3.0, 1.0];
        for (a, b) in f.iter().zip(expected) {
            assert!((a - b).abs() < 1e-9, "{f:?}");
        }
    }

    #[test]
    fn default_28d_factors() {
        let w = AlertWindows::default_28d();
        let f: Vec<f64> = w
            .pairs()
            .iter()
            .map(|p| p.burn_rate_factor(w.slo_period))
            .collect();
        let expected = [13.44, 5.6, 2.8, 28.0 * 24.0 * 0.1 / 72.0];
        for (a, b) in f.iter().zip(expected) {
            assert!((a - b).abs() < 1e-9, "{f:?}");
        }
    }

    #[test]
    fn windows_are_sorted_and_distinct() {
        let got: Vec<String> = AlertWindows::default_30d()
            .windows()
            .iter()
            .map(|d| d.to_string())
            .collect();
        assert_eq!(got, ["5m", "30m", "1h", "2h", "6h", "1d", "3d"]);
    }

    #[test]
    fn parses_a_custom_catalog() {
        let text = r#"
apiVersion: sloth.slok.dev/v1
kind: AlertWindows
spec:
  sloPeriod: 7d
  page:
    quick: {errorBudgetPercent: 8, shortWindow: 5m, longWindow: 1h}
    slow: {errorBudgetPercent: 12.5, shortWindow: 30m, longWindow: 6h}
  ticket:
    quick: {errorBudgetPercent: 20, shortWindow: 2h, longWindow: 1d}
    slow: {errorBudgetPercent: 42, shortWindow: 6h, longWindow: 3d}
"#;
        let w = AlertWindows::from_yaml("w.yaml", text).unwrap();
        assert_eq!(w.slo_period.to_string(), "1w");
        assert!((w.page.quick.burn_rate_factor(w.slo_period) - 13.44).abs() < 1e-9);
    }

    /// Text that is not YAML, or a spec that does not read as windows: the YAML error is
    /// the source, its text after the file and what was read.
    #[test]
    fn a_yaml_error_is_the_source() {
        for (text, what) in [
            ("[", "not valid YAML"),
            (
                "apiVersion: sloth.slok.dev/v1\nkind: AlertWindows\nspec: [1]\n",
                "spec",
            ),
        ] {
            let e = AlertWindows::from_yaml("w.yaml", text).unwrap_err();
            let source = std::error::Error::source(&e).expect("a source");
            assert!(source.is::<crate::model::yaml::YamlError>(), "{source:?}");
            assert_eq!(e.to_string(), format!("w.yaml: {what}: {source}"));
        }
    }

    #[test]
    fn rejects_bad_catalogs_with_field_paths() {
        let text = "apiVersion: sloth.slok.dev/v1\nkind: AlertWindows\nspec:\n  sloPeriod: 30d\n  page:\n    quick: {errorBudgetPercent: 2, shortWindow: 1h, longWindow: 5m}\n    slow: {errorBudgetPercent: 5, shortWindow: 30m, longWindow: 6h}\n  ticket:\n    quick: {errorBudgetPercent: 10, shortWindow: 2h, longWindow: 1d}\n    slow: {errorBudgetPercent: 10, shortWindow: 6h, longWindow: 3d}\n";
        let e = AlertWindows::from_yaml("w.yaml", text)
            .unwrap_err()
            .to_string();
        assert!(e.contains("w.yaml") && e.contains("spec.page.quick"), "{e}");
        let e = AlertWindows::from_yaml("w.yaml", "kind: Foo")
            .unwrap_err()
            .to_string();
        assert!(e.contains("expected sloth.slok.dev/v1 AlertWindows"), "{e}");
        assert!(AlertWindows::builtin(PromDuration::from_days(7)).is_err());
    }
}
