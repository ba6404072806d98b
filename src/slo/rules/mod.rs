//! Prometheus rule generation, conformant with Sloth v0.16.
//!
//! For every SLO three rule groups are generated, with Sloth's names, expressions and labels
//! (so that Sloth's Grafana dashboards and alert routing work unchanged):
//!
//! - `sloth-slo-sli-recordings-<id>`: `slo:sli_error:ratio_rate<w>` for every window of the
//!   alert window catalog, plus the period rule `slo:sli_error:ratio_rate<period>`, computed
//!   from the page-quick short window's rule (Sloth's "optimized" period SLI);
//! - `sloth-slo-meta-recordings-<id>`: objective, error budget, period, current and period burn
//!   rates, remaining budget and the `sloth_slo_info` series;
//! - `sloth-slo-alerts-<id>`: the page and ticket multiwindow multi-burn-rate alerts.
//!
//! Generation is a pure function of the [`Slo`]s and [`RuleOptions`]: [`generate`] groups the
//! SLOs by input file and document (one output document per input document, in input order)
//! and [`OutputFile::render`] writes the YAML stream. SLOs from Sloth's
//! `PrometheusServiceLevel` CRD become a prometheus-operator `PrometheusRule` object; all other
//! formats become a plain Prometheus rule file.
//!
//! Differences from Sloth, all in cases Sloth rejects or leaves undefined:
//! - when a catalog's long window equals the SLO period, the period SLI rule is the plain
//!   window rule (Sloth would emit the same record twice).
//!
//! An enabled alert without a name is an error ([`RuleError`]), as in Sloth.
//!
//! Sloth v0.16's declarative SLO plugins that slogate implements are applied after the
//! default rules, in Sloth's order ([`SlothPlugin`]); the loader refuses every other plugin.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use crate::slo::model::{K8sMeta, Slo, SpecKind};
use crate::slo::windows::{AlertWindows, WindowPair, WindowSettings};
use crate::slo::PromDuration;

pub mod gofmt;
mod render;

pub use render::{HEADER_NOTE, HEADER_TOOL};

/// Sloth's label names.
pub const LABEL_SLO_ID: &str = "sloth_id";
pub const LABEL_SLO_SERVICE: &str = "sloth_service";
pub const LABEL_SLO_NAME: &str = "sloth_slo";
pub const LABEL_WINDOW: &str = "sloth_window";
pub const LABEL_SEVERITY: &str = "sloth_severity";
pub const LABEL_VERSION: &str = "sloth_version";
pub const LABEL_MODE: &str = "sloth_mode";
pub const LABEL_SPEC: &str = "sloth_spec";
pub const LABEL_OBJECTIVE: &str = "sloth_objective";

/// Sloth's metric names.
pub const METRIC_OBJECTIVE: &str = "slo:objective:ratio";
pub const METRIC_ERROR_BUDGET: &str = "slo:error_budget:ratio";
pub const METRIC_TIME_PERIOD_DAYS: &str = "slo:time_period:days";
pub const METRIC_CURRENT_BURN_RATE: &str = "slo:current_burn_rate:ratio";
pub const METRIC_PERIOD_BURN_RATE: &str = "slo:period_burn_rate:ratio";
pub const METRIC_PERIOD_BUDGET_REMAINING: &str = "slo:period_error_budget_remaining:ratio";
pub const METRIC_INFO: &str = "sloth_slo_info";

/// The SLI error-ratio recording rule name for a window: `slo:sli_error:ratio_rate<w>`.
pub fn sli_error_metric(window: PromDuration) -> String {
    format!("slo:sli_error:ratio_rate{window}")
}

/// Options of one generation run (the `slogate rules` flags).
#[derive(Debug, Clone)]
pub struct RuleOptions {
    /// Period and alert-window catalog selection.
    pub windows: WindowSettings,
    /// Labels added to every recording rule (Sloth's `--extra-labels`); they override SLO
    /// labels of the same name.
    pub extra_labels: BTreeMap<String, String>,
    /// Omit the SLI and metadata recording rule groups.
    pub disable_recordings: bool,
    /// Omit the alert rule groups.
    pub disable_alerts: bool,
    /// Value of the `sloth_version` info label and of the header comment.
    pub version: String,
    /// Sloth SLO plugins declared in the specs, by SLO id ([`LoadReport::plugins`]).
    ///
    /// [`LoadReport::plugins`]: crate::slo::spec::LoadReport::plugins
    pub plugins: HashMap<String, Vec<PluginUse>>,
}

impl Default for RuleOptions {
    fn default() -> Self {
        RuleOptions {
            windows: WindowSettings::default(),
            extra_labels: BTreeMap::new(),
            disable_recordings: false,
            disable_alerts: false,
            version: env!("CARGO_PKG_VERSION").to_string(),
            plugins: HashMap::new(),
        }
    }
}

/// Sloth v0.16's `sloth.dev/contrib/info_labels/v1` plugin id.
pub const PLUGIN_INFO_LABELS: &str = "sloth.dev/contrib/info_labels/v1";
/// Sloth v0.16's `sloth.dev/core/noop/v1` plugin id.
pub const PLUGIN_NOOP: &str = "sloth.dev/core/noop/v1";
/// Sloth v0.16's `sloth.dev/core/debug/v1` plugin id (it only logs).
pub const PLUGIN_DEBUG: &str = "sloth.dev/core/debug/v1";
/// Sloth v0.16's `sloth.dev/contrib/rule_intervals/v1` plugin id.
pub const PLUGIN_RULE_INTERVALS: &str = "sloth.dev/contrib/rule_intervals/v1";

/// A Sloth v0.16 SLO plugin that slogate implements. Sloth ships these as Go code run by an
/// interpreter; the declarative ones are re-implemented here, and the loader refuses every
/// other plugin id by name.
#[derive(Debug, Clone, PartialEq)]
pub enum SlothPlugin {
    /// `sloth.dev/core/noop/v1`, `sloth.dev/core/debug/v1`: no effect on the rules.
    NoEffect { id: String },
    /// `sloth.dev/contrib/info_labels/v1`: `labels` are merged (winning) into the first
    /// metadata recording rule recording `metric_name` (default `sloth_slo_info`).
    InfoLabels {
        labels: BTreeMap<String, String>,
        metric_name: String,
    },
    /// `sloth.dev/contrib/rule_intervals/v1`: the groups' evaluation intervals, `default`
    /// for each group without its own (SLI recordings, metadata recordings, alerts).
    RuleIntervals {
        default: PromDuration,
        sli_error: Option<PromDuration>,
        metadata: Option<PromDuration>,
        alert: Option<PromDuration>,
    },
}

/// One plugin of an SLO's chain, with Sloth's `priority`: Sloth's default rule plugins run
/// at priority 0, plugins with a negative priority before them, the others after them, in
/// ascending (stable) priority order.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginUse {
    pub plugin: SlothPlugin,
    pub priority: i64,
}

/// Run an SLO's plugins on its generated rules, as Sloth's chain does.
fn apply_plugins(plugins: &[PluginUse], rules: &mut SloRules) {
    let mut ordered: Vec<&PluginUse> = plugins.iter().collect();
    ordered.sort_by_key(|p| p.priority);
    for p in ordered {
        match &p.plugin {
            SlothPlugin::NoEffect { .. } => {}
            // Before the default plugins there are no rules to change yet: the default
            // plugins create them afterwards (a no-op in Sloth too).
            SlothPlugin::InfoLabels { .. } | SlothPlugin::RuleIntervals { .. }
                if p.priority < 0 => {}
            SlothPlugin::RuleIntervals {
                default,
                sli_error,
                metadata,
                alert,
            } => {
                rules.intervals = [
                    Some(sli_error.unwrap_or(*default)),
                    Some(metadata.unwrap_or(*default)),
                    Some(alert.unwrap_or(*default)),
                ];
            }
            SlothPlugin::InfoLabels {
                labels,
                metric_name,
            } => {
                if let Some(rule) = rules
                    .meta_recordings
                    .iter_mut()
                    .find(|r| r.kind == RuleKind::Record(metric_name.clone()))
                {
                    rule.labels
                        .extend(labels.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
            }
        }
    }
}

/// One Prometheus rule: a recording rule (`record`) or an alerting rule (`alert`).
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub kind: RuleKind,
    pub expr: String,
    pub labels: BTreeMap<String, String>,
    /// Always empty for recording rules.
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleKind {
    Record(String),
    Alert(String),
}

impl Rule {
    /// The recorded metric or the alert name.
    pub fn name(&self) -> &str {
        match &self.kind {
            RuleKind::Record(n) | RuleKind::Alert(n) => n,
        }
    }
}

/// A named rule group.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleGroup {
    pub name: String,
    pub rules: Vec<Rule>,
    /// The group's evaluation `interval` (set by Sloth's `rule_intervals` plugin); `None`
    /// leaves Prometheus' global interval.
    pub interval: Option<PromDuration>,
}

/// The rules of one SLO, split as Sloth splits them.
#[derive(Debug, Clone, PartialEq)]
pub struct SloRules {
    pub slo_id: String,
    pub sli_recordings: Vec<Rule>,
    pub meta_recordings: Vec<Rule>,
    pub alerts: Vec<Rule>,
    /// Group intervals of (SLI recordings, metadata recordings, alerts).
    pub intervals: [Option<PromDuration>; 3],
}

impl SloRules {
    /// Sloth's groups for this SLO, skipping empty ones.
    pub fn groups(self) -> Vec<RuleGroup> {
        let id = self.slo_id;
        let [sli, meta, alert] = self.intervals;
        [
            ("sloth-slo-sli-recordings", self.sli_recordings, sli),
            ("sloth-slo-meta-recordings", self.meta_recordings, meta),
            ("sloth-slo-alerts", self.alerts, alert),
        ]
        .into_iter()
        .filter(|(_, rules, _)| !rules.is_empty())
        .map(|(prefix, rules, interval)| RuleGroup {
            name: format!("{prefix}-{id}"),
            rules,
            interval,
        })
        .collect()
    }
}

/// The output of one input document.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputDocument {
    /// 0-based index of the input document.
    pub doc_index: usize,
    /// `Some` for `PrometheusServiceLevel` input: the output is a `PrometheusRule` object.
    pub k8s: Option<K8sMeta>,
    pub groups: Vec<RuleGroup>,
}

/// The output of one input file: one document per input document that declared SLOs.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputFile {
    /// The input file.
    pub source: PathBuf,
    pub documents: Vec<OutputDocument>,
    /// Header version (`RuleOptions::version`).
    pub version: String,
}

impl OutputFile {
    /// The file name used with `slogate rules -o DIR`: the input's file name unchanged (so that
    /// `examples/slos/checkout.yml` becomes `DIR/checkout.yml`, as Sloth's examples do).
    pub fn output_name(&self) -> std::ffi::OsString {
        output_name(&self.source)
    }

    /// The YAML stream: one document per input document, each with the generated-code header.
    pub fn render(&self) -> String {
        render::render_file(self)
    }
}

/// [`OutputFile::output_name`] of an input file.
pub fn output_name(source: &std::path::Path) -> std::ffi::OsString {
    source
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "rules.yml".into())
}

/// A generation problem, tied to the SLO's input.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}: {message}", file.display())]
pub struct RuleError {
    pub file: PathBuf,
    pub doc_index: Option<usize>,
    pub slo_id: Option<String>,
    pub message: String,
}

/// Generate the rules of every SLO, grouped per input file and document, in input order.
///
/// Linear in the number of SLOs: SLOs are bucketed with hash maps, never searched.
pub fn generate(slos: &[Slo], opts: &RuleOptions) -> Result<Vec<OutputFile>, Vec<RuleError>> {
    let mut files = Vec::new();
    let errors = generate_each(slos, opts, |f| files.push(f));
    if errors.is_empty() {
        Ok(files)
    } else {
        Err(errors)
    }
}

/// The input files of `slos`, in order of first appearance, each with its SLOs' indices.
pub fn input_files(slos: &[Slo]) -> Vec<(&std::path::Path, Vec<usize>)> {
    let mut order: Vec<(&std::path::Path, Vec<usize>)> = Vec::new();
    let mut index: HashMap<&std::path::Path, usize> = HashMap::new();
    for (i, slo) in slos.iter().enumerate() {
        let fi = *index.entry(slo.origin.file.as_path()).or_insert_with(|| {
            order.push((slo.origin.file.as_path(), Vec::new()));
            order.len() - 1
        });
        order[fi].1.push(i);
    }
    order
}

/// [`generate`], one input file at a time: each file's rules go to `sink` as soon as they
/// are complete, so a caller that writes and drops them holds one file's rules, not all of
/// them (`slogate rules` at 10,000 SLOs). Returns every problem found; files with problems
/// are still handed over, and a caller must not publish anything when the list is non-empty.
pub fn generate_each(
    slos: &[Slo],
    opts: &RuleOptions,
    mut sink: impl FnMut(OutputFile),
) -> Vec<RuleError> {
    let mut errors = Vec::new();
    for (source, members) in input_files(slos) {
        let mut file = OutputFile {
            source: source.to_path_buf(),
            documents: Vec::new(),
            version: opts.version.clone(),
        };
        // doc index -> position in `file.documents`.
        let mut doc_pos: HashMap<usize, usize> = HashMap::new();
        for i in members {
            let slo = &slos[i];
            let windows = match opts.windows.for_slo(slo) {
                Ok(w) => w,
                Err(e) => {
                    errors.push(RuleError {
                        file: slo.origin.file.clone(),
                        doc_index: Some(slo.origin.doc_index),
                        slo_id: Some(slo.id.clone()),
                        message: format!("SLO {}: {e}", slo.id),
                    });
                    continue;
                }
            };
            if slo.alerting.name.is_empty()
                && !opts.disable_alerts
                && (!slo.alerting.page.disable || !slo.alerting.ticket.disable)
            {
                errors.push(RuleError {
                    file: slo.origin.file.clone(),
                    doc_index: Some(slo.origin.doc_index),
                    slo_id: Some(slo.id.clone()),
                    message: format!(
                        "SLO {}: an enabled page or ticket alert needs a name, as in Sloth",
                        slo.id
                    ),
                });
                continue;
            }
            let mut slo_rules = generate_slo(slo, &windows, opts);
            if let Some(plugins) = opts.plugins.get(&slo.id) {
                apply_plugins(plugins, &mut slo_rules);
            }
            let groups = slo_rules.groups();
            let di = *doc_pos.entry(slo.origin.doc_index).or_insert_with(|| {
                file.documents.push(OutputDocument {
                    doc_index: slo.origin.doc_index,
                    k8s: (slo.kind == SpecKind::SlothK8sV1)
                        .then(|| slo.k8s.clone().unwrap_or_default()),
                    groups: Vec::new(),
                });
                file.documents.len() - 1
            });
            file.documents[di].groups.extend(groups);
        }
        // Input order of documents, whatever order the SLOs came in.
        file.documents.sort_by_key(|d| d.doc_index);
        for doc in &file.documents {
            if doc.groups.is_empty() {
                errors.push(RuleError {
                    file: file.source.clone(),
                    doc_index: Some(doc.doc_index),
                    slo_id: None,
                    message: format!(
                        "document {}: 0 rules generated: every recording and alert rule is \
                         disabled; expected at least one enabled alert or recording rules",
                        doc.doc_index
                    ),
                });
            }
        }
        if !file.documents.is_empty() {
            sink(file);
        }
    }
    errors
}

/// All rules of one SLO for a window catalog.
pub fn generate_slo(slo: &Slo, windows: &AlertWindows, opts: &RuleOptions) -> SloRules {
    let period = windows.slo_period;
    // Sloth merges the extra labels into the SLO labels, extra labels winning.
    let mut slo_labels = slo.labels.to_btree_map();
    slo_labels.extend(
        opts.extra_labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    let ids = IdLabels::new(slo);

    let (sli_recordings, meta_recordings) = if opts.disable_recordings {
        (Vec::new(), Vec::new())
    } else {
        (
            sli_recording_rules(slo, windows, &ids, &slo_labels),
            meta_recording_rules(slo, windows, period, &ids, &slo_labels, opts),
        )
    };
    let alerts = if opts.disable_alerts {
        Vec::new()
    } else {
        alert_rules(slo, windows, &ids)
    };

    SloRules {
        slo_id: slo.id.clone(),
        sli_recordings,
        meta_recordings,
        alerts,
        intervals: [None; 3],
    }
}

/// The three identifying labels and their PromQL filter.
struct IdLabels {
    labels: BTreeMap<String, String>,
    /// `{sloth_id="…", sloth_service="…", sloth_slo="…"}`
    filter: String,
}

impl IdLabels {
    fn new(slo: &Slo) -> Self {
        let labels: BTreeMap<String, String> = [
            (LABEL_SLO_ID, &slo.id),
            (LABEL_SLO_SERVICE, &slo.service),
            (LABEL_SLO_NAME, &slo.name),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
        let filter = prom_filter(&labels);
        IdLabels { labels, filter }
    }
}

/// Sloth's `labelsToPromFilter`: `{a="x", b="y"}`, keys sorted, values Go-quoted.
fn prom_filter(labels: &BTreeMap<String, String>) -> String {
    let parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}={}", go_quote(v)))
        .collect();
    format!("{{{}}}", parts.join(", "))
}

/// A double-quoted PromQL string literal (Go's `%q` for the printable ASCII/UTF-8 cases).
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Later maps win, like Sloth's `mergeLabels`.
fn merge<'a>(
    maps: impl IntoIterator<Item = &'a BTreeMap<String, String>>,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for m in maps {
        out.extend(m.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    out
}

fn one(k: &str, v: impl Into<String>) -> BTreeMap<String, String> {
    BTreeMap::from([(k.to_string(), v.into())])
}

fn record(name: impl Into<String>, expr: String, labels: BTreeMap<String, String>) -> Rule {
    Rule {
        kind: RuleKind::Record(name.into()),
        expr,
        labels,
        annotations: BTreeMap::new(),
    }
}

fn sli_recording_rules(
    slo: &Slo,
    windows: &AlertWindows,
    ids: &IdLabels,
    slo_labels: &BTreeMap<String, String>,
) -> Vec<Rule> {
    let period = windows.slo_period;
    let catalog = windows.windows();
    let labels_for =
        |w: PromDuration| merge([&ids.labels, &one(LABEL_WINDOW, w.to_string()), slo_labels]);

    let mut rules: Vec<Rule> = catalog
        .iter()
        .map(|&w| {
            record(
                sli_error_metric(w),
                slo.sli.error_ratio_query(&w.to_string()),
                labels_for(w),
            )
        })
        .collect();

    if !catalog.contains(&period) {
        // Sloth's optimized period SLI: the ratio of ratios of the page-quick short window.
        let base = sli_error_metric(windows.page.quick.short_window);
        let expr = format!(
            "sum_over_time({base}{f}[{period}])\n/ ignoring ({LABEL_WINDOW})\ncount_over_time({base}{f}[{period}])\n",
            f = ids.filter
        );
        rules.push(record(sli_error_metric(period), expr, labels_for(period)));
    }
    rules
}

fn burn_rate_expr(sli_metric: &str, filter: &str) -> String {
    format!(
        "{sli_metric}{filter}\n/ on({LABEL_SLO_ID}, {LABEL_SLO_NAME}, {LABEL_SLO_SERVICE}) group_left\n{METRIC_ERROR_BUDGET}{filter}\n"
    )
}

fn meta_recording_rules(
    slo: &Slo,
    windows: &AlertWindows,
    period: PromDuration,
    ids: &IdLabels,
    slo_labels: &BTreeMap<String, String>,
    opts: &RuleOptions,
) -> Vec<Rule> {
    let labels = merge([&ids.labels, slo_labels]);
    let objective_ratio = gofmt::format_g(slo.objective_percent / 100.0);
    let f = &ids.filter;

    let info_labels = merge([
        &labels,
        &BTreeMap::from([
            (LABEL_VERSION.to_string(), opts.version.clone()),
            (LABEL_MODE.to_string(), slo.kind.sloth_mode().to_string()),
            (LABEL_SPEC.to_string(), slo.kind.sloth_spec().to_string()),
            (
                LABEL_OBJECTIVE.to_string(),
                gofmt::format_f(slo.objective_percent),
            ),
        ]),
    ]);

    vec![
        record(
            METRIC_OBJECTIVE,
            format!("vector({objective_ratio})"),
            labels.clone(),
        ),
        record(
            METRIC_ERROR_BUDGET,
            format!("vector(1-{objective_ratio})"),
            labels.clone(),
        ),
        record(
            METRIC_TIME_PERIOD_DAYS,
            format!("vector({})", gofmt::format_g(period.as_days_f64())),
            labels.clone(),
        ),
        record(
            METRIC_CURRENT_BURN_RATE,
            burn_rate_expr(&sli_error_metric(windows.page.quick.short_window), f),
            labels.clone(),
        ),
        record(
            METRIC_PERIOD_BURN_RATE,
            burn_rate_expr(&sli_error_metric(period), f),
            labels.clone(),
        ),
        record(
            METRIC_PERIOD_BUDGET_REMAINING,
            format!("1 - {METRIC_PERIOD_BURN_RATE}{f}"),
            labels,
        ),
        record(METRIC_INFO, "vector(1)".to_string(), info_labels),
    ]
}

/// Sloth's burn-rate factor, computed as Sloth computes it (hours based), so that the printed
/// factors are Sloth's (`14.4`, `6`, `3`, `1` for the 30-day catalog). Equal, up to float
/// rounding, to [`WindowPair::burn_rate_factor`].
pub fn sloth_burn_rate_factor(pair: &WindowPair, period: PromDuration) -> f64 {
    const HOUR_MS: f64 = 3_600_000.0;
    let period_hours = period.as_millis() as f64 / HOUR_MS;
    let long_hours = pair.long_window.as_millis() as f64 / HOUR_MS;
    (pair.error_budget_percent * period_hours / 100.0) / long_hours
}

fn alert_rules(slo: &Slo, windows: &AlertWindows, ids: &IdLabels) -> Vec<Rule> {
    let period = windows.slo_period;
    let budget = gofmt::format_g(slo.error_budget_ratio());
    let name = slo.alerting.name.clone();
    let mut rules = Vec::new();
    let severities = [
        ("page", &slo.alerting.page, windows.page),
        ("ticket", &slo.alerting.ticket, windows.ticket),
    ];
    for (severity, spec, sev_windows) in severities {
        if spec.disable {
            continue;
        }
        let cond = |p: &WindowPair| {
            let factor = gofmt::format_g(sloth_burn_rate_factor(p, period));
            let one = |w: PromDuration| {
                format!(
                    "max({}{} > ({factor} * {budget})) without ({LABEL_WINDOW})",
                    sli_error_metric(w),
                    ids.filter
                )
            };
            format!(
                "(\n    {}\n    and\n    {}\n)",
                one(p.short_window),
                one(p.long_window)
            )
        };
        let expr = format!(
            "{}\nor\n{}\n",
            cond(&sev_windows.quick),
            cond(&sev_windows.slow)
        );

        let defaults = BTreeMap::from([
            (
                "title".to_string(),
                format!(
                    "({severity}) {{{{$labels.{LABEL_SLO_SERVICE}}}}} {{{{$labels.{LABEL_SLO_NAME}}}}} SLO error budget burn rate is too fast."
                ),
            ),
            (
                "summary".to_string(),
                format!(
                    "{{{{$labels.{LABEL_SLO_SERVICE}}}}} {{{{$labels.{LABEL_SLO_NAME}}}}} SLO error budget burn rate is over expected."
                ),
            ),
        ]);
        rules.push(Rule {
            kind: RuleKind::Alert(name.clone()),
            expr,
            labels: merge([
                &one(LABEL_SEVERITY, severity),
                &slo.alerting.labels.to_btree_map(),
                &spec.labels.to_btree_map(),
            ]),
            annotations: merge([
                &defaults,
                &slo.alerting.annotations.to_btree_map(),
                &spec.annotations.to_btree_map(),
            ]),
        });
    }
    rules
}

/// Whether `name` is a label name Sloth v0.16 accepts (the one label-name check of slogate,
/// used for spec labels and `--extra-labels`): Prometheus 3's UTF-8 rule, any non-empty
/// string, except `__name__`, which holds the metric name and cannot be set as a label.
pub fn is_valid_label_name(name: &str) -> bool {
    !name.is_empty() && name != "__name__"
}

/// Whether `name` is also a classic label name (`[a-zA-Z_][a-zA-Z0-9_]*`), the only kind
/// Prometheus 2 accepts in a rule file. Other valid names only get a warning.
pub fn is_legacy_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `n` synthetic SLOs (events SLIs, alternating 99.9 and 99.5 objectives, spread over
/// `n / 10 + 1` files and several documents per file), for benchmarks and scale tests.
pub fn synthetic_slos(n: usize) -> Vec<Slo> {
    use crate::slo::model::{AlertSpec, Alerting, LabelMap, Origin, Sli};
    (0..n)
        .map(|i| {
            let service = format!("svc{}", i / 10);
            let name = format!("slo{}", i % 10);
            Slo {
                id: format!("{service}-{name}"),
                service: service.clone(),
                name,
                description: format!("synthetic SLO {i}"),
                objective_percent: if i % 2 == 0 { 99.9 } else { 99.5 },
                labels: LabelMap::from([("team".to_string(), format!("team{}", i % 7))]),
                sli: Sli::Events {
                    error_query: format!(
                        "sum(rate(http_requests_total{{job=\"{service}\",code=~\"5..\"}}[{{{{.window}}}}]))"
                    ),
                    total_query: format!(
                        "sum(rate(http_requests_total{{job=\"{service}\"}}[{{{{.window}}}}]))"
                    ),
                },
                alerting: Alerting {
                    name: "HighErrorRate".into(),
                    labels: LabelMap::from([("category".to_string(), "availability".to_string())]),
                    annotations: LabelMap::new(),
                    page: AlertSpec {
                        labels: LabelMap::from([("severity".to_string(), "critical".to_string())]),
                        ..AlertSpec::default()
                    },
                    ticket: AlertSpec {
                        labels: LabelMap::from([("severity".to_string(), "warning".to_string())]),
                        ..AlertSpec::default()
                    },
                },
                kind: SpecKind::SlothPrometheusV1,
                origin: Origin {
                    file: PathBuf::from(format!("synthetic/file{}.yml", i / 10)),
                    doc_index: (i % 10) / 5,
                },
                k8s: None,
                period: None,
                guard: None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
