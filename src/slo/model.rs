//! The internal SLO model that every input format is parsed into.
//!
//! Pure data: no I/O. Parsers live in `slo::spec`, rule generation in `slo::rules`,
//! budget maths in `slo::budget`.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// Which input format an SLO came from. It decides the `sloth_spec`/`sloth_mode` info labels
/// and whether rules are written as a plain rule file or a `PrometheusRule` object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum SpecKind {
    /// Sloth `version: prometheus/v1`.
    SlothPrometheusV1,
    /// Sloth `sloth.slok.dev/v1 PrometheusServiceLevel` CRD.
    SlothK8sV1,
    /// OpenSLO `openslo/v1alpha` (the subset Sloth reads).
    OpenSloV1Alpha,
    /// OpenSLO `openslo/v1` (SLO + SLI, ratioMetric, Occurrences, rolling window).
    OpenSloV1,
}

impl SpecKind {
    /// Value of Sloth's `sloth_spec` info label.
    pub fn sloth_spec(self) -> &'static str {
        match self {
            SpecKind::SlothPrometheusV1 => "prometheus/v1",
            SpecKind::SlothK8sV1 => "sloth.slok.dev/v1",
            SpecKind::OpenSloV1Alpha => "openslo/v1alpha",
            SpecKind::OpenSloV1 => "openslo/v1",
        }
    }

    /// Value of Sloth's `sloth_mode` info label.
    pub fn sloth_mode(self) -> &'static str {
        match self {
            SpecKind::SlothPrometheusV1 => "cli-gen-prom",
            SpecKind::SlothK8sV1 => "cli-gen-k8s",
            SpecKind::OpenSloV1Alpha | SpecKind::OpenSloV1 => "cli-gen-openslo",
        }
    }
}

/// Label or annotation names and their values, sorted by name, each name once: what a
/// `BTreeMap<String, String>` gives the model (the same order, lookups and JSON), held in one
/// allocation sized to its entries. A `BTreeMap` allocates an 11-entry node for even one
/// label (544 bytes): 10,000 SLOs with a page and a ticket label held 11 MB in those nodes.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct LabelMap(Box<[(String, String)]>);

impl LabelMap {
    pub fn new() -> Self {
        LabelMap::default()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The entries in name order, as `BTreeMap::iter` gives them.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&String, &String)> + ExactSizeIterator {
        self.0.iter().map(|(k, v)| (k, v))
    }

    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &String> + ExactSizeIterator {
        self.0.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl DoubleEndedIterator<Item = &String> + ExactSizeIterator {
        self.0.iter().map(|(_, v)| v)
    }

    pub fn get(&self, name: &str) -> Option<&String> {
        self.0
            .binary_search_by(|(k, _)| k.as_str().cmp(name))
            .ok()
            .map(|i| &self.0[i].1)
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// The same entries in a `BTreeMap`, to merge or extend.
    pub fn to_btree_map(&self) -> BTreeMap<String, String> {
        self.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// The entries of `self` and `over`, those of `over` winning on equal names.
    pub fn merged(&self, over: &LabelMap) -> LabelMap {
        self.iter()
            .chain(over.iter())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

impl From<BTreeMap<String, String>> for LabelMap {
    fn from(m: BTreeMap<String, String>) -> Self {
        LabelMap(m.into_iter().collect())
    }
}

impl<const N: usize> From<[(String, String); N]> for LabelMap {
    fn from(pairs: [(String, String); N]) -> Self {
        pairs.into_iter().collect()
    }
}

/// Later entries win on equal names, as inserting them into a `BTreeMap` in turn would.
impl FromIterator<(String, String)> for LabelMap {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Self {
        let mut m = BTreeMap::new();
        for (k, v) in iter {
            m.insert(k, v);
        }
        m.into()
    }
}

impl<'a> IntoIterator for &'a LabelMap {
    type Item = (&'a String, &'a String);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (String, String)>,
        fn(&'a (String, String)) -> (&'a String, &'a String),
    >;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(k, v)| (k, v))
    }
}

/// Printed as a map, as the `BTreeMap` it replaces was.
impl std::fmt::Debug for LabelMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// A JSON (or YAML) mapping, as the `BTreeMap` it replaces was.
impl serde::Serialize for LabelMap {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

/// Where a spec came from, for error messages and for grouping generated output.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Origin {
    pub file: PathBuf,
    /// 0-based index of the YAML document inside the file.
    pub doc_index: usize,
}

/// Kubernetes object metadata of a CRD input (`PrometheusServiceLevel`), carried through so
/// that the generated `PrometheusRule` gets the same name, namespace and labels.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct K8sMeta {
    pub name: String,
    pub namespace: Option<String>,
    pub labels: LabelMap,
    pub annotations: LabelMap,
}

/// The service level indicator, always expressed as an error ratio in the end.
/// Queries contain Sloth's `{{.window}}` placeholder.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub enum Sli {
    /// Sloth `events`: error_query / total_query.
    Events {
        error_query: String,
        total_query: String,
    },
    /// Sloth `raw`: a query that already returns the error ratio.
    Raw { error_ratio_query: String },
}

/// One page or ticket alert. `disable` drops it from the output.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct AlertSpec {
    pub disable: bool,
    pub labels: LabelMap,
    pub annotations: LabelMap,
}

/// Sloth's alerting block.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Alerting {
    /// Alert name; Sloth's default is used when empty.
    pub name: String,
    pub labels: LabelMap,
    pub annotations: LabelMap,
    pub page: AlertSpec,
    pub ticket: AlertSpec,
}

/// slogate's error-budget guard settings for an SLO (the guard issue fills in the rest).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Guard {
    /// Budget consumed at or above which slogate always rolls back (default 0.95).
    pub emergency: f64,
    /// Budget consumed at or above which slogate alerts, and rolls back when
    /// `rollback_on_critical` is set (default 0.80).
    pub critical: f64,
    pub rollback_on_critical: bool,
}

impl Default for Guard {
    fn default() -> Self {
        Guard {
            emergency: 0.95,
            critical: 0.80,
            rollback_on_critical: false,
        }
    }
}

/// One SLO, normalised from any input format.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Slo {
    /// Sloth id: `<service>-<name>`.
    pub id: String,
    pub service: String,
    pub name: String,
    pub description: String,
    /// Objective as a percentage exactly as written (99.9 means 99.9%), in (0, 100].
    pub objective_percent: f64,
    /// Service labels merged with SLO labels (SLO labels win).
    pub labels: LabelMap,
    pub sli: Sli,
    pub alerting: Alerting,
    pub kind: SpecKind,
    pub origin: Origin,
    /// Present for CRD input only.
    pub k8s: Option<K8sMeta>,
    /// The SLO period from the spec where the format has one (OpenSLO time windows).
    /// `None` means "use the catalog/CLI period" (30d by default).
    pub period: Option<crate::slo::duration::PromDuration>,
    /// slogate extension: the error-budget guard. `None` means no automatic rollback.
    pub guard: Option<Guard>,
}

impl Slo {
    /// Objective as a ratio, e.g. 0.999.
    pub fn objective_ratio(&self) -> f64 {
        self.objective_percent / 100.0
    }

    /// Error budget as a ratio, `1 - objective`, e.g. 0.001. Computed as
    /// `(100 - objective%) / 100`, as Sloth does, so that 99% gives exactly 0.01.
    pub fn error_budget_ratio(&self) -> f64 {
        (100.0 - self.objective_percent) / 100.0
    }
}

impl Sli {
    /// The SLI's error-ratio expression for one window, exactly as Sloth renders it in the
    /// `slo:sli_error:ratio_rate<window>` recording rule: `(error)\n/\n(total)\n` for events
    /// and `(raw)` for raw SLIs. `{{.window}}` (with optional spaces) is replaced by `window`.
    pub fn error_ratio_query(&self, window: &str) -> String {
        match self {
            Sli::Events {
                error_query,
                total_query,
            } => format!(
                "({})\n/\n({})\n",
                expand_window(error_query, window),
                expand_window(total_query, window)
            ),
            Sli::Raw { error_ratio_query } => {
                format!("({})", expand_window(error_ratio_query, window))
            }
        }
    }
}

/// Replace Sloth's Go-template window placeholder (`{{.window}}`, `{{ .window }}`).
pub fn expand_window(query: &str, window: &str) -> String {
    let mut out = String::with_capacity(query.len());
    let mut rest = query;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start..].find("}}") else {
            break;
        };
        let inner = rest[start + 2..start + len].trim();
        out.push_str(&rest[..start]);
        if inner == ".window" {
            out.push_str(window);
        } else {
            out.push_str(&rest[start..start + len + 2]);
        }
        rest = &rest[start + len + 2..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_window_placeholders() {
        assert_eq!(
            expand_window(
                "rate(x[{{.window}}]) / rate(y[{{ .window }}]) {{.other}}",
                "5m"
            ),
            "rate(x[5m]) / rate(y[5m]) {{.other}}"
        );
        assert_eq!(
            expand_window("no placeholder {{", "5m"),
            "no placeholder {{"
        );
    }

    #[test]
    fn renders_like_sloth() {
        let ev = Sli::Events {
            error_query: "sum(rate(e[{{.window}}]))".into(),
            total_query: "sum(rate(t[{{.window}}]))".into(),
        };
        assert_eq!(
            ev.error_ratio_query("1h"),
            "(sum(rate(e[1h])))\n/\n(sum(rate(t[1h])))\n"
        );
        let raw = Sli::Raw {
            error_ratio_query: "1 - avg(x[{{.window}}])\n".into(),
        };
        assert_eq!(raw.error_ratio_query("5m"), "(1 - avg(x[5m])\n)");
    }
}
