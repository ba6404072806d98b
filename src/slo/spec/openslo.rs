//! OpenSLO: `openslo/v1alpha` (exactly the subset Sloth reads) and `openslo/v1` (`SLO` and
//! `SLI` with ratio metrics, Occurrences budgeting and rolling time windows).
//!
//! Sloth's mapping, which slogate follows for both versions:
//! - every objective becomes its own SLO;
//! - good/total ratios become a raw SLI `1 - (good / total)`, with Sloth's exact text;
//! - no page or ticket alert is generated (both disabled).
//!
//! Naming: `v1alpha` SLOs are `<metadata.name>-<index>` (as Sloth); `v1` SLOs are
//! `<metadata.name>` when there is one objective and `<metadata.name>-<index>` otherwise.
//! Ids are `<service>-<slo name>`.

use std::collections::BTreeMap;

use crate::model::yaml::Value;

use super::checks::{self, WindowRule};
use super::yaml::{describe, index, join, quote, scalar_text, DocCtx, Map};
use super::{Candidate, DocOutput, SliDef, SliRef};
use crate::slo::duration::PromDuration;
use crate::slo::{AlertSpec, Alerting, Origin, Sli, Slo, SpecKind};

/// Sloth's good/total to error-ratio mapping, byte for byte.
pub(crate) fn good_total_error_ratio(good: &str, total: &str) -> String {
    format!("\n  1 - (\n    (\n      {good}\n    )\n    /\n    (\n      {total}\n    )\n  )\n")
}

/// Alerting of an OpenSLO SLO: Sloth generates neither page nor ticket alerts.
fn no_alerts() -> Alerting {
    let off = AlertSpec {
        disable: true,
        ..AlertSpec::default()
    };
    Alerting {
        page: off.clone(),
        ticket: off,
        ..Alerting::default()
    }
}

/// What all SLOs made from one OpenSLO document share.
struct Common {
    service: String,
    description: String,
    labels: BTreeMap<String, String>,
    period: Option<PromDuration>,
    kind: SpecKind,
}

/// One objective: its SLO name, objective, and where its target was written.
struct Objective {
    name: String,
    percent: f64,
    field: String,
}

fn build(
    ctx: &mut DocCtx,
    c: &Common,
    o: Objective,
    sli: Sli,
    sli_ref: Option<SliRef>,
) -> Candidate {
    let slo = Slo {
        id: format!("{}-{}", c.service, o.name),
        service: c.service.clone(),
        name: o.name,
        description: c.description.clone(),
        objective_percent: o.percent,
        labels: c.labels.clone().into(),
        sli,
        alerting: no_alerts(),
        kind: c.kind,
        origin: Origin {
            file: ctx.file.to_path_buf(),
            doc_index: ctx.doc,
        },
        k8s: None,
        period: c.period,
        guard: None,
    };
    checks::check_burn_rates(ctx, &o.field, &slo);
    Candidate {
        slo,
        name_field: "metadata.name".to_string(),
        sli_ref,
        plugins: Vec::new(),
    }
}

/// `metadata` with a required `name`. Returns the map too, for more fields.
fn metadata<'v>(
    ctx: &mut DocCtx,
    root: &Map<'v>,
    known: &[&str],
) -> (Option<String>, Option<Map<'v>>) {
    let Some(meta) = root.map(ctx, "metadata") else {
        if !root.has("metadata") {
            ctx.error("metadata", "missing: expected metadata with a name");
        }
        return (None, None);
    };
    meta.check_keys(ctx, known, &[]);
    let name = meta.req_str(ctx, "name", "the object name, e.g. my-service-availability");
    (name, Some(meta))
}

/// `spec`, required.
fn spec<'v>(ctx: &mut DocCtx, root: &Map<'v>) -> Option<Map<'v>> {
    let spec = root.map(ctx, "spec");
    if spec.is_none() && !root.has("spec") {
        ctx.error("spec", "missing: expected the spec mapping");
    }
    spec
}

fn check_budgeting_method(ctx: &mut DocCtx, spec: &Map, required: bool) {
    let field = spec.field("budgetingMethod");
    match spec.opt_str(ctx, "budgetingMethod").as_deref() {
        Some("Occurrences") => {}
        Some(m @ ("Timeslices" | "RatioTimeslices")) => ctx.error(
            &field,
            format!("budgetingMethod {m} is not supported yet; expected Occurrences"),
        ),
        Some(m) => ctx.error(
            &field,
            format!("unknown budgetingMethod {}: expected Occurrences", quote(m)),
        ),
        None if required && !spec.has("budgetingMethod") => {
            ctx.error(&field, "missing: expected budgetingMethod: Occurrences")
        }
        None => {}
    }
}

/// The service, checked against Sloth's name rule.
fn service(ctx: &mut DocCtx, spec: &Map) -> Option<String> {
    let s = spec.req_str(ctx, "service", "the service name, e.g. my-service")?;
    checks::check_name(ctx, &spec.field("service"), "service name", &s).then_some(s)
}

// ---------------------------------------------------------------------------------------
// openslo/v1alpha

/// `apiVersion: openslo/v1alpha`, `kind: SLO`.
pub(crate) fn parse_v1alpha_slo(ctx: &mut DocCtx, root: &Map, out: &mut DocOutput) {
    let start = ctx.error_count();
    root.check_keys(ctx, &["apiVersion", "kind", "metadata", "spec"], &[]);
    let (name, _) = metadata(ctx, root, &["name", "displayName"]);
    if let Some(n) = &name {
        // Sloth checks the SLO name it builds, `<name>-<index>`.
        checks::check_name(ctx, "metadata.name", "SLO name", &format!("{n}-0"));
    }
    let Some(spec) = spec(ctx, root) else {
        return;
    };
    spec.check_keys(
        ctx,
        &[
            "service",
            "description",
            "budgetingMethod",
            "objectives",
            "timeWindows",
        ],
        &[],
    );
    let service = service(ctx, &spec);
    let description = spec.opt_str(ctx, "description").unwrap_or_default();
    check_budgeting_method(ctx, &spec, false);
    let period = v1alpha_time_windows(ctx, &spec);

    let Some((items, path)) = required_list(ctx, &spec, "objectives", "at least one objective")
    else {
        return;
    };
    let mut parsed = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let before = ctx.error_count();
        let p = index(&path, i);
        let Some(o) = Map::node(ctx, item, &p) else {
            continue;
        };
        o.check_keys(
            ctx,
            &["ratioMetrics", "target", "displayName"],
            &[
                (
                    "value",
                    "threshold objectives are not supported; the ratio metric is used",
                ),
                (
                    "op",
                    "threshold objectives are not supported; the ratio metric is used",
                ),
                ("timeSliceTarget", "only Occurrences budgeting is supported"),
            ],
        );
        let target = required_target(ctx, &o);
        let sli = v1alpha_ratio_metrics(ctx, &o);
        if let (Some(t), Some(sli)) = (target, sli) {
            if ctx.error_count() == before {
                parsed.push((i, t, o.field("target"), sli));
            }
        }
    }
    let (Some(service), Some(name), true) = (service, name, ctx.error_count() == start) else {
        return;
    };
    let common = Common {
        service,
        description,
        labels: BTreeMap::new(),
        period,
        kind: SpecKind::OpenSloV1Alpha,
    };
    for (i, percent, field, sli) in parsed {
        let o = Objective {
            name: format!("{name}-{i}"),
            percent,
            field,
        };
        let c = build(ctx, &common, o, sli, None);
        out.candidates.push(c);
    }
}

fn required_list<'v>(
    ctx: &mut DocCtx,
    m: &Map<'v>,
    key: &str,
    what: &str,
) -> Option<(&'v [Value], String)> {
    match m.seq(ctx, key) {
        Some((items, path)) if !items.is_empty() => Some((items, path)),
        Some((_, path)) => {
            ctx.error(&path, format!("empty: expected {what}"));
            None
        }
        None => {
            if !m.has(key) {
                ctx.error(&m.field(key), format!("missing: expected {what}"));
            }
            None
        }
    }
}

/// `target` as a ratio in (0, 1], returned as a percentage.
fn required_target(ctx: &mut DocCtx, o: &Map) -> Option<f64> {
    if !o.has("target") {
        ctx.error(
            &o.field("target"),
            "missing: expected the target as a ratio in (0, 1], e.g. 0.999",
        );
        return None;
    }
    let t = o.opt_f64(ctx, "target")?;
    checks::check_target_ratio(ctx, &o.field("target"), t).then(|| checks::ratio_to_percent(t))
}

/// `timeWindows` (v1alpha, as Sloth: at most one, in days).
fn v1alpha_time_windows(ctx: &mut DocCtx, spec: &Map) -> Option<PromDuration> {
    let (items, path) = spec.seq(ctx, "timeWindows")?;
    if items.len() > 1 {
        ctx.error(
            &path,
            format!(
                "{} time windows: expected exactly one (as in Sloth)",
                items.len()
            ),
        );
        return None;
    }
    let tw = Map::node(ctx, items.first()?, &index(&path, 0))?;
    tw.check_keys(ctx, &["count", "unit", "isRolling", "calendar"], &[]);
    let unit = tw.req_str(ctx, "unit", "the unit Day")?;
    if !unit.eq_ignore_ascii_case("day") {
        ctx.error(
            &tw.field("unit"),
            format!(
                "unit {}: only Day time windows are supported (as in Sloth)",
                quote(&unit)
            ),
        );
        return None;
    }
    if !tw.has("count") {
        ctx.error(
            &tw.field("count"),
            "missing: expected a number of days, e.g. 30",
        );
        return None;
    }
    let count = tw.opt_f64(ctx, "count")?;
    if !(count.fract() == 0.0 && (1.0..=3650.0).contains(&count)) {
        ctx.error(
            &tw.field("count"),
            format!(
                "count {}: expected a whole number of days between 1 and 3650",
                checks::fmt_num(count)
            ),
        );
        return None;
    }
    if tw.has("calendar") || matches!(tw.get("isRolling"), Some(Value::Bool(false))) {
        ctx.warn(
            &tw.field("isRolling"),
            "calendar-aligned windows are treated as rolling windows (as in Sloth)",
        );
    }
    Some(PromDuration::from_days(count as u64))
}

/// v1alpha `ratioMetrics` with `good` (Sloth) or `bad` (slogate extension) and `total`.
fn v1alpha_ratio_metrics(ctx: &mut DocCtx, o: &Map) -> Option<Sli> {
    let Some(rm) = o.map(ctx, "ratioMetrics") else {
        if !o.has("ratioMetrics") {
            ctx.error(
                &o.field("ratioMetrics"),
                "missing: expected ratioMetrics with good and total queries (only ratio objectives are supported)",
            );
        }
        return None;
    };
    rm.check_keys(
        ctx,
        &["good", "bad", "total"],
        &[(
            "incremental",
            "slogate always computes rates from the queries",
        )],
    );
    let query = |ctx: &mut DocCtx, key: &str| -> Option<String> {
        let m = rm.map(ctx, key)?;
        m.check_keys(ctx, &["source", "queryType", "query", "metadata"], &[]);
        let source = m.opt_str(ctx, "source");
        if !matches!(source.as_deref(), Some("prometheus" | "sloth")) {
            ctx.error(
                &m.field("source"),
                format!(
                    "source {}: expected prometheus (or sloth)",
                    source
                        .as_deref()
                        .map(quote)
                        .unwrap_or_else(|| "missing".into())
                ),
            );
        }
        let qt = m.opt_str(ctx, "queryType");
        if qt.as_deref() != Some("promql") {
            ctx.error(
                &m.field("queryType"),
                format!(
                    "queryType {}: expected promql",
                    qt.as_deref().map(quote).unwrap_or_else(|| "missing".into())
                ),
            );
        }
        m.req_str(ctx, "query", "a PromQL query")
    };
    ratio_to_sli(ctx, &rm, query, false)
}

/// Build an SLI from good/bad/total queries. `read` reads one of them (None when absent or
/// invalid; it reports its own errors). With `per_query_window`, every query must contain
/// `{{.window}}`; otherwise (Sloth's v1alpha rule) only the combined good/total query must.
fn ratio_to_sli(
    ctx: &mut DocCtx,
    rm: &Map,
    mut read: impl FnMut(&mut DocCtx, &str) -> Option<String>,
    per_query_window: bool,
) -> Option<Sli> {
    let (has_good, has_bad, has_total) = (rm.has("good"), rm.has("bad"), rm.has("total"));
    if has_good && has_bad {
        ctx.error(
            &rm.path,
            "both good and bad are set: expected good and total, or bad and total",
        );
        return None;
    }
    if !has_good && !has_bad {
        ctx.error(
            &rm.field("good"),
            "missing: expected good (or bad) and total",
        );
    }
    if !has_total {
        ctx.error(&rm.field("total"), "missing: expected the total query");
    }
    let numerator_key = if has_bad { "bad" } else { "good" };
    let numerator = if has_good || has_bad {
        read(ctx, numerator_key)
    } else {
        None
    };
    let total = if has_total { read(ctx, "total") } else { None };
    let (numerator, total) = (numerator?, total?);
    let num_field = join(&rm.field(numerator_key), query_suffix(rm, numerator_key));
    let total_field = join(&rm.field("total"), query_suffix(rm, "total"));
    let rule = if per_query_window
        || has_bad
        || !(checks::has_window(&numerator) || checks::has_window(&total))
    {
        WindowRule::Required
    } else {
        WindowRule::Warn
    };
    let ok_n = checks::check_query(ctx, &num_field, &numerator, rule);
    let ok_t = checks::check_query(ctx, &total_field, &total, rule);
    if !(ok_n && ok_t) {
        return None;
    }
    if numerator.trim() == total.trim() {
        ctx.error(
            &total_field,
            format!("{numerator_key} and total are the same query: expected different queries"),
        );
        return None;
    }
    if has_bad {
        Some(Sli::Events {
            error_query: numerator,
            total_query: total,
        })
    } else {
        Some(Sli::Raw {
            error_ratio_query: good_total_error_ratio(&numerator, &total),
        })
    }
}

/// Where the query text sits inside a good/bad/total entry, for field paths.
fn query_suffix(rm: &Map, key: &str) -> &'static str {
    match rm.get(key) {
        Some(Value::Mapping(m)) if m.contains_key("metricSource") => "metricSource.spec.query",
        _ => "query",
    }
}

// ---------------------------------------------------------------------------------------
// openslo/v1

/// `apiVersion: openslo/v1`, `kind: SLI`.
pub(crate) fn parse_v1_sli(ctx: &mut DocCtx, root: &Map, out: &mut DocOutput) {
    root.check_keys(ctx, &["apiVersion", "kind", "metadata", "spec"], &[]);
    let (name, _) = metadata(ctx, root, &["name", "displayName", "labels", "annotations"]);
    let before = ctx.error_count();
    let sli = spec(ctx, root).and_then(|s| v1_sli_spec(ctx, &s));
    let sli = sli.filter(|_| ctx.error_count() == before);
    if let Some(name) = name {
        out.slis.push(SliDef {
            name,
            sli,
            origin: Origin {
                file: ctx.file.to_path_buf(),
                doc_index: ctx.doc,
            },
            field: "metadata.name".to_string(),
        });
    }
}

/// An SLI `spec` (of a `kind: SLI` document or an inline `indicator`).
fn v1_sli_spec(ctx: &mut DocCtx, spec: &Map) -> Option<Sli> {
    spec.check_keys(ctx, &["description", "thresholdMetric", "ratioMetric"], &[]);
    if spec.has("thresholdMetric") {
        ctx.error(
            &spec.field("thresholdMetric"),
            "thresholdMetric is not supported: slogate needs a ratioMetric (good and total, or bad and total)",
        );
        return None;
    }
    let Some(rm) = spec.map(ctx, "ratioMetric") else {
        if !spec.has("ratioMetric") {
            ctx.error(
                &spec.field("ratioMetric"),
                "missing: expected a ratioMetric with good and total, or bad and total",
            );
        }
        return None;
    };
    rm.check_keys(
        ctx,
        &["counter", "good", "bad", "total", "raw", "rawType"],
        &[],
    );
    if rm.has("counter") {
        rm.opt_bool(ctx, "counter", false);
    }
    if rm.has("raw") {
        return v1_raw_ratio(ctx, &rm);
    }
    let read = |ctx: &mut DocCtx, key: &str| -> Option<String> {
        let holder = rm.map(ctx, key)?;
        metric_source_query(ctx, &holder)
    };
    ratio_to_sli(ctx, &rm, read, true)
}

/// `ratioMetric.raw` with `rawType: failure` (an error ratio) or `success` (a good ratio).
fn v1_raw_ratio(ctx: &mut DocCtx, rm: &Map) -> Option<Sli> {
    for k in ["good", "bad", "total"] {
        if rm.has(k) {
            ctx.error(
                &rm.field(k),
                "raw cannot be combined with good, bad or total",
            );
            return None;
        }
    }
    let raw_type = rm.req_str(ctx, "rawType", "rawType failure or success");
    let holder = rm.map(ctx, "raw")?;
    let q = metric_source_query(ctx, &holder)?;
    let field = join(&holder.field("metricSource"), "spec.query");
    let raw_type = raw_type?;
    let query = match raw_type.as_str() {
        "failure" => q.clone(),
        "success" => format!("1 - (\n  {q}\n)"),
        other => {
            ctx.error(
                &rm.field("rawType"),
                format!("rawType {}: expected failure or success", quote(other)),
            );
            return None;
        }
    };
    checks::check_query(ctx, &field, &q, WindowRule::Required).then_some(Sli::Raw {
        error_ratio_query: query,
    })
}

/// `{metricSource: {type: Prometheus, spec: {query: …}}}`.
fn metric_source_query(ctx: &mut DocCtx, holder: &Map) -> Option<String> {
    holder.check_keys(ctx, &["metricSource"], &[]);
    let Some(ms) = holder.map(ctx, "metricSource") else {
        if !holder.has("metricSource") {
            ctx.error(
                &holder.field("metricSource"),
                "missing: expected metricSource with type Prometheus and spec.query",
            );
        }
        return None;
    };
    ms.check_keys(ctx, &["type", "metricSourceRef", "spec"], &[]);
    if let Some(t) = ms.opt_str(ctx, "type") {
        if !t.eq_ignore_ascii_case("prometheus") {
            ctx.error(
                &ms.field("type"),
                format!("metricSource type {}: expected Prometheus", quote(&t)),
            );
            return None;
        }
    }
    let Some(spec) = ms.map(ctx, "spec") else {
        if !ms.has("spec") {
            ctx.error(
                &ms.field("spec"),
                "missing: expected spec with a PromQL query",
            );
        }
        return None;
    };
    spec.check_keys(ctx, &["query"], &[]);
    spec.req_str(ctx, "query", "a PromQL query")
}

/// `apiVersion: openslo/v1`, `kind: SLO`.
pub(crate) fn parse_v1_slo(ctx: &mut DocCtx, root: &Map, out: &mut DocOutput) {
    let start = ctx.error_count();
    root.check_keys(ctx, &["apiVersion", "kind", "metadata", "spec"], &[]);
    let (name, meta) = metadata(ctx, root, &["name", "displayName", "labels", "annotations"]);
    if let Some(n) = &name {
        checks::check_name(ctx, "metadata.name", "SLO name", n);
    }
    let labels = meta.map(|m| v1_labels(ctx, &m)).unwrap_or_default();
    let Some(spec) = spec(ctx, root) else {
        return;
    };
    spec.check_keys(
        ctx,
        &[
            "description",
            "service",
            "indicator",
            "indicatorRef",
            "budgetingMethod",
            "timeWindow",
            "objectives",
        ],
        &[(
            "alertPolicies",
            "OpenSLO alert policies are not supported; no alerts are generated for OpenSLO SLOs",
        )],
    );
    let service = service(ctx, &spec);
    let description = spec.opt_str(ctx, "description").unwrap_or_default();
    check_budgeting_method(ctx, &spec, true);
    let period = v1_time_window(ctx, &spec);

    // The indicator: inline or by reference, not both.
    let mut sli: Option<Sli> = None;
    let mut sli_ref: Option<SliRef> = None;
    match (spec.has("indicator"), spec.has("indicatorRef")) {
        (true, true) => ctx.error(
            &spec.field("indicatorRef"),
            "both indicator and indicatorRef are set: expected exactly one",
        ),
        (true, false) => {
            if let Some(ind) = spec.map(ctx, "indicator") {
                ind.check_keys(ctx, &["metadata", "spec"], &[]);
                if let Some(m) = ind.map(ctx, "metadata") {
                    m.check_keys(ctx, &["name", "displayName", "labels", "annotations"], &[]);
                    m.opt_str(ctx, "name");
                }
                match ind.map(ctx, "spec") {
                    Some(s) => sli = v1_sli_spec(ctx, &s),
                    None if !ind.has("spec") => ctx.error(
                        &ind.field("spec"),
                        "missing: expected the SLI spec with a ratioMetric",
                    ),
                    None => {}
                }
            }
        }
        (false, true) => {
            if let Some(r) = spec.req_str(ctx, "indicatorRef", "the name of an SLI document") {
                sli_ref = Some(SliRef {
                    name: r,
                    field: spec.field("indicatorRef"),
                });
            }
        }
        (false, false) => ctx.error(
            &spec.field("indicator"),
            "missing: expected indicator (an inline SLI) or indicatorRef (the name of a kind: SLI document)",
        ),
    }

    let Some((items, path)) = required_list(ctx, &spec, "objectives", "at least one objective")
    else {
        return;
    };
    let several = items.len() > 1;
    let mut parsed = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let before = ctx.error_count();
        let p = index(&path, i);
        let Some(o) = Map::node(ctx, item, &p) else {
            continue;
        };
        let threshold =
            "threshold objectives (op, value) are only used with thresholdMetric; ignored";
        let timeslices = "only used with Timeslices budgeting; ignored";
        o.check_keys(
            ctx,
            &["displayName", "name", "target", "targetPercent"],
            &[
                ("op", threshold),
                ("value", threshold),
                ("timeSliceTarget", timeslices),
                ("timeSliceWindow", timeslices),
                (
                    "compositeWeight",
                    "composite SLOs are not supported; ignored",
                ),
            ],
        );
        o.opt_str(ctx, "displayName");
        o.opt_str(ctx, "name");
        for k in ["indicator", "indicatorRef"] {
            if o.has(k) {
                ctx.error(
                    &o.field(k),
                    "composite SLOs (an indicator per objective) are not supported: expected spec.indicator or spec.indicatorRef",
                );
            }
        }
        let percent = match (o.has("target"), o.has("targetPercent")) {
            (true, true) => {
                ctx.error(
                    &o.field("targetPercent"),
                    "both target and targetPercent are set: expected exactly one",
                );
                None
            }
            (true, false) => required_target(ctx, &o),
            (false, true) => o
                .opt_f64(ctx, "targetPercent")
                .filter(|p| checks::check_objective_percent(ctx, &o.field("targetPercent"), *p)),
            (false, false) => {
                ctx.error(
                    &o.field("target"),
                    "missing: expected target (a ratio in (0, 1], e.g. 0.999) or targetPercent (e.g. 99.9)",
                );
                None
            }
        };
        let field = if o.has("targetPercent") {
            o.field("targetPercent")
        } else {
            o.field("target")
        };
        if let Some(percent) = percent {
            if ctx.error_count() == before {
                parsed.push((i, percent, field));
            }
        }
    }

    if ctx.error_count() != start {
        return;
    }
    let (Some(service), Some(name)) = (service, name) else {
        return;
    };
    let placeholder = Sli::Raw {
        error_ratio_query: String::new(),
    };
    let sli = match (sli, &sli_ref) {
        (Some(s), _) => s,
        (None, Some(_)) => placeholder,
        (None, None) => return,
    };
    let common = Common {
        service,
        description,
        labels,
        period,
        kind: SpecKind::OpenSloV1,
    };
    for (i, percent, field) in parsed {
        let o = Objective {
            name: if several {
                format!("{name}-{i}")
            } else {
                name.clone()
            },
            percent,
            field,
        };
        let r = sli_ref.as_ref().map(|r| SliRef {
            name: r.name.clone(),
            field: r.field.clone(),
        });
        let c = build(ctx, &common, o, sli.clone(), r);
        out.candidates.push(c);
    }
}

/// `metadata.labels` of an OpenSLO v1 SLO become Prometheus labels of its rules where they
/// can: single string values with valid Prometheus label names.
fn v1_labels(ctx: &mut DocCtx, meta: &Map) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Some(labels) = meta.map(ctx, "labels") else {
        return out;
    };
    for (k, v) in labels.m {
        let Some(key) = scalar_text(k) else {
            ctx.warn(
                &labels.path,
                format!("label key {} is not a string; ignored", describe(k)),
            );
            continue;
        };
        let field = labels.field(&key);
        let value = match v {
            Value::Sequence(items) if items.len() == 1 => items.first().and_then(scalar_text),
            other => scalar_text(other),
        };
        let Some(value) = value.filter(|s| !s.is_empty()) else {
            ctx.warn(
                &field,
                format!(
                    "only labels with one non-empty value become Prometheus labels; found {}; ignored",
                    describe(v)
                ),
            );
            continue;
        };
        if !checks::is_valid_label_name(&key) {
            ctx.warn(
                &field,
                format!(
                    "{} is not a valid Prometheus label name (a non-empty name other than __name__); it is not added to the generated rules",
                    quote(&key)
                ),
            );
            continue;
        }
        out.insert(key, value);
    }
    out
}

/// `timeWindow` (v1): exactly one rolling window with a duration shorthand.
fn v1_time_window(ctx: &mut DocCtx, spec: &Map) -> Option<PromDuration> {
    let (items, path) = spec.seq(ctx, "timeWindow")?;
    if items.len() != 1 {
        if !items.is_empty() {
            ctx.error(
                &path,
                format!("{} time windows: expected exactly one", items.len()),
            );
        }
        return None;
    }
    let tw = Map::node(ctx, items.first()?, &index(&path, 0))?;
    tw.check_keys(ctx, &["duration", "isRolling", "calendar"], &[]);
    let rolling = tw.opt_bool(ctx, "isRolling", true);
    if tw.has("calendar") || !rolling {
        ctx.error(
            &tw.field("isRolling"),
            "calendar-aligned time windows are not supported yet; expected a rolling window (isRolling: true)",
        );
        return None;
    }
    if !tw.has("isRolling") {
        ctx.warn(
            &tw.field("isRolling"),
            "missing: assuming a rolling window (isRolling: true)",
        );
    }
    let d = tw.req_str(ctx, "duration", "a duration such as 28d or 4w")?;
    match parse_shorthand(&d) {
        Ok(p) => Some(p),
        Err(msg) => {
            ctx.error(&tw.field("duration"), msg);
            None
        }
    }
}

/// OpenSLO's duration shorthand (`28d`, `4w`, `12h`); `M`, `Q` and `Y` are calendar units.
fn parse_shorthand(s: &str) -> Result<PromDuration, String> {
    let digits = s.bytes().take_while(|b| b.is_ascii_digit()).count();
    let (num, unit) = s.split_at(digits);
    let bad = || {
        format!(
            "duration {}: expected a number and one unit of m, h, d or w, e.g. 28d",
            quote(s)
        )
    };
    if num.is_empty() {
        return Err(bad());
    }
    match unit {
        "m" | "h" | "d" | "w" => {
            let d: PromDuration = s.parse().map_err(|_| bad())?;
            if d.as_millis() == 0 {
                return Err(format!("duration {}: expected a positive duration", quote(s)));
            }
            Ok(d)
        }
        "M" | "Q" | "Y" => Err(format!(
            "duration {}: months, quarters and years are calendar periods, which are not supported yet; expected a rolling duration such as 28d or 4w",
            quote(s)
        )),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shorthand_durations() {
        assert_eq!(parse_shorthand("28d"), Ok(PromDuration::from_days(28)));
        assert_eq!(parse_shorthand("4w"), Ok(PromDuration::from_days(28)));
        assert_eq!(parse_shorthand("90m"), Ok(PromDuration::from_mins(90)));
        assert!(parse_shorthand("1M").unwrap_err().contains("calendar"));
        for bad in [
            "",
            "d",
            "28",
            "28x",
            "1.5d",
            "0d",
            "-1d",
            "99999999999999999999w",
        ] {
            assert!(parse_shorthand(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sloth_raw_text() {
        let q = good_total_error_ratio("G", "T");
        assert_eq!(
            q,
            "\n  1 - (\n    (\n      G\n    )\n    /\n    (\n      T\n    )\n  )\n"
        );
    }
}
