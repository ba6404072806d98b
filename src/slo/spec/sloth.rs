//! Sloth's own formats: `version: prometheus/v1` and the `sloth.slok.dev/v1
//! PrometheusServiceLevel` CRD. Both carry the same service-level content; the CRD spells
//! the fields in camelCase under `spec` and adds Kubernetes metadata.

use std::collections::BTreeMap;

use super::checks::{self, WindowRule};
use super::plugins;
use super::yaml::{index, DocCtx, Map};
use super::{Candidate, DocOutput};
use crate::slo::{AlertSpec, Alerting, K8sMeta, Origin, Sli, Slo, SpecKind};

/// Field names that differ between the two formats.
struct Keys {
    error_query: &'static str,
    total_query: &'static str,
    error_ratio_query: &'static str,
    page_alert: &'static str,
    ticket_alert: &'static str,
    info_labels: &'static str,
    slo_plugins: &'static str,
}

const PROM_V1: Keys = Keys {
    error_query: "error_query",
    total_query: "total_query",
    error_ratio_query: "error_ratio_query",
    page_alert: "page_alert",
    ticket_alert: "ticket_alert",
    info_labels: "infoLabels",
    slo_plugins: "slo_plugins",
};

const K8S_V1: Keys = Keys {
    error_query: "errorQuery",
    total_query: "totalQuery",
    error_ratio_query: "errorRatioQuery",
    page_alert: "pageAlert",
    ticket_alert: "ticketAlert",
    info_labels: "infoLabels",
    slo_plugins: "sloPlugins",
};

/// `version: prometheus/v1`.
pub(crate) fn parse_prometheus_v1(ctx: &mut DocCtx, root: &Map, out: &mut DocOutput) {
    root.check_keys(
        ctx,
        &["version", "service", "labels", "slo_plugins", "slos"],
        &[],
    );
    parse_service_level(ctx, root, &PROM_V1, SpecKind::SlothPrometheusV1, None, out);
}

/// `apiVersion: sloth.slok.dev/v1`, `kind: PrometheusServiceLevel`.
pub(crate) fn parse_k8s_v1(ctx: &mut DocCtx, root: &Map, out: &mut DocOutput) {
    root.check_keys(
        ctx,
        &["apiVersion", "kind", "metadata", "spec", "status"],
        &[],
    );
    let meta_start = ctx.error_count();
    let meta = match root.map(ctx, "metadata") {
        None => {
            if !root.has("metadata") {
                ctx.error(
                    "metadata",
                    "missing: expected Kubernetes metadata with at least a name",
                );
            }
            None
        }
        // Kubernetes metadata has many fields (uid, resourceVersion…): no unknown-field
        // warnings here.
        Some(m) => {
            let name = m.req_str(ctx, "name", "the object name, e.g. sloth-slo-my-service");
            let namespace = m.opt_str(ctx, "namespace");
            let labels = m.string_map(ctx, "labels");
            let annotations = m.string_map(ctx, "annotations");
            name.map(|name| K8sMeta {
                name,
                namespace,
                labels: labels.into(),
                annotations: annotations.into(),
            })
        }
    };
    // A CRD without usable metadata cannot produce its PrometheusRule.
    let meta = meta.filter(|_| ctx.error_count() == meta_start);
    let Some(spec) = root.map(ctx, "spec") else {
        if !root.has("spec") {
            ctx.error(
                "spec",
                "missing: expected the service level spec (service, labels, slos)",
            );
        }
        return;
    };
    spec.check_keys(ctx, &["service", "labels", "sloPlugins", "slos"], &[]);
    let mut tmp = DocOutput::default();
    parse_service_level(
        ctx,
        &spec,
        &K8S_V1,
        SpecKind::SlothK8sV1,
        meta.clone(),
        &mut tmp,
    );
    if meta.is_some() {
        out.candidates.extend(tmp.candidates);
    }
}

fn parse_service_level(
    ctx: &mut DocCtx,
    spec: &Map,
    keys: &Keys,
    kind: SpecKind,
    k8s: Option<K8sMeta>,
    out: &mut DocOutput,
) {
    let start = ctx.error_count();
    let service = spec.req_str(ctx, "service", "the service name, e.g. myservice");
    if let Some(s) = &service {
        checks::check_name(ctx, &spec.field("service"), "service name", s);
    }
    let labels = spec.string_map(ctx, "labels");
    checks::check_labels(ctx, &spec.field("labels"), &labels);
    let group_plugins = plugins::parse_block(ctx, spec, keys.slo_plugins);
    let slos = spec.seq(ctx, "slos");
    let doc_ok = ctx.error_count() == start;

    let items = match slos {
        Some((items, _)) if !items.is_empty() => items,
        Some(_) | None => {
            if !spec.has("slos") || slos.is_some() {
                ctx.error(
                    &spec.field("slos"),
                    "missing: expected a list with at least one SLO",
                );
            }
            return;
        }
    };
    for (i, item) in items.iter().enumerate() {
        let path = index(&spec.field("slos"), i);
        let Some(m) = Map::node(ctx, item, &path) else {
            continue;
        };
        let before = ctx.error_count();
        let parsed = parse_slo(ctx, &m, service.as_deref(), &labels, keys, kind, &k8s);
        // Sloth's order: the service's plugins, then the SLO's.
        let mut slo_plugins = group_plugins.clone();
        slo_plugins.extend(plugins::parse_block(ctx, &m, "plugins"));
        if let Some(slo) = parsed {
            if doc_ok && ctx.error_count() == before {
                checks::check_burn_rates(ctx, &m.field("objective"), &slo);
                out.candidates.push(Candidate {
                    slo,
                    name_field: m.field("name"),
                    sli_ref: None,
                    plugins: slo_plugins,
                });
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn parse_slo(
    ctx: &mut DocCtx,
    m: &Map,
    service: Option<&str>,
    service_labels: &BTreeMap<String, String>,
    keys: &Keys,
    kind: SpecKind,
    k8s: &Option<K8sMeta>,
) -> Option<Slo> {
    m.check_keys(
        ctx,
        &[
            "name",
            "objective",
            "description",
            "labels",
            "sli",
            "alerting",
            "plugins",
        ],
        &[
            (
                keys.info_labels,
                "extra sloth_slo_info labels are not supported by slogate yet",
            ),
            (
                "interval",
                "custom rule group intervals are not supported by slogate yet",
            ),
        ],
    );
    let name = m.req_str(ctx, "name", "the SLO name, e.g. requests-availability");
    if let Some(n) = &name {
        checks::check_name(ctx, &m.field("name"), "SLO name", n);
    }
    let objective = if m.has("objective") {
        m.opt_f64(ctx, "objective")
            .filter(|o| checks::check_objective_percent(ctx, &m.field("objective"), *o))
    } else {
        ctx.error(
            &m.field("objective"),
            "missing: expected the objective as a percentage in (0, 100], e.g. 99.9",
        );
        None
    };
    let description = m.opt_str(ctx, "description").unwrap_or_default();
    let slo_labels = m.string_map(ctx, "labels");
    checks::check_labels(ctx, &m.field("labels"), &slo_labels);
    let mut labels = service_labels.clone();
    labels.extend(slo_labels);

    let sli = parse_sli(ctx, m, keys);
    let alerting = parse_alerting(ctx, m, keys);

    let (service, name, objective, sli, alerting) = (service?, name?, objective?, sli?, alerting?);
    Some(Slo {
        id: format!("{service}-{name}"),
        service: service.to_string(),
        name,
        description,
        objective_percent: objective,
        labels: labels.into(),
        sli,
        alerting,
        kind,
        origin: Origin {
            file: ctx.file.to_path_buf(),
            doc_index: ctx.doc,
        },
        k8s: k8s.clone(),
        period: None,
        guard: None,
    })
}

fn parse_sli(ctx: &mut DocCtx, m: &Map, keys: &Keys) -> Option<Sli> {
    let Some(sli) = m.map(ctx, "sli") else {
        if !m.has("sli") {
            ctx.error(
                &m.field("sli"),
                "missing: expected an SLI with events (error and total queries) or raw (an error ratio query)",
            );
        }
        return None;
    };
    sli.check_keys(ctx, &["events", "raw", "plugin"], &[]);
    let set: Vec<&str> = ["events", "raw", "plugin"]
        .into_iter()
        .filter(|k| sli.has(k))
        .collect();
    if set.len() > 1 {
        ctx.error(
            &sli.path,
            format!(
                "{} are all set: expected exactly one SLI type (events or raw)",
                set.join(" and ")
            ),
        );
        return None;
    }
    if sli.has("plugin") {
        ctx.error(
            &sli.field("plugin"),
            "SLI plugins are not supported: slogate has no Go plugin runtime; use events or raw with the plugin's PromQL",
        );
        return None;
    }
    if let Some(ev) = sli.map(ctx, "events") {
        ev.check_keys(ctx, &[keys.error_query, keys.total_query], &[]);
        let error = ev.req_str(ctx, keys.error_query, "a PromQL query counting bad events");
        let total = ev.req_str(ctx, keys.total_query, "a PromQL query counting all events");
        let error_ok = error.as_deref().is_some_and(|q| {
            checks::check_query(ctx, &ev.field(keys.error_query), q, WindowRule::Required)
        });
        let total_ok = total.as_deref().is_some_and(|q| {
            checks::check_query(ctx, &ev.field(keys.total_query), q, WindowRule::Required)
        });
        let (error, total) = (error?, total?);
        if error.trim() == total.trim() {
            ctx.error(
                &ev.field(keys.total_query),
                format!(
                    "{} and {} are the same query: expected different queries for bad and total events",
                    keys.error_query, keys.total_query
                ),
            );
            return None;
        }
        if !(error_ok && total_ok) {
            return None;
        }
        return Some(Sli::Events {
            error_query: error,
            total_query: total,
        });
    }
    if let Some(raw) = sli.map(ctx, "raw") {
        raw.check_keys(ctx, &[keys.error_ratio_query], &[]);
        let q = raw.req_str(
            ctx,
            keys.error_ratio_query,
            "a PromQL query returning the error ratio (0-1)",
        )?;
        if !checks::check_query(
            ctx,
            &raw.field(keys.error_ratio_query),
            &q,
            WindowRule::Required,
        ) {
            return None;
        }
        return Some(Sli::Raw {
            error_ratio_query: q,
        });
    }
    if set.is_empty() {
        ctx.error(
            &sli.path,
            "expected an SLI type: events (error and total queries) or raw (an error ratio query)",
        );
    }
    None
}

fn parse_alerting(ctx: &mut DocCtx, m: &Map, keys: &Keys) -> Option<Alerting> {
    let before = ctx.error_count();
    let mut alerting = Alerting::default();
    let field = m.field("alerting");
    if let Some(a) = m.map(ctx, "alerting") {
        a.check_keys(
            ctx,
            &[
                "name",
                "labels",
                "annotations",
                keys.page_alert,
                keys.ticket_alert,
            ],
            &[],
        );
        alerting.name = a.opt_str(ctx, "name").unwrap_or_default();
        alerting.labels = a.string_map(ctx, "labels").into();
        alerting.annotations = a.string_map(ctx, "annotations").into();
        alerting.page = parse_alert(ctx, &a, keys.page_alert);
        alerting.ticket = parse_alert(ctx, &a, keys.ticket_alert);
    }
    checks::check_alerting(
        ctx,
        &field,
        &alerting,
        [
            "name",
            "labels",
            "annotations",
            keys.page_alert,
            keys.ticket_alert,
        ],
    );
    (ctx.error_count() == before).then_some(alerting)
}

fn parse_alert(ctx: &mut DocCtx, a: &Map, key: &str) -> AlertSpec {
    let Some(m) = a.map(ctx, key) else {
        return AlertSpec::default();
    };
    m.check_keys(ctx, &["disable", "labels", "annotations"], &[]);
    AlertSpec {
        disable: m.opt_bool(ctx, "disable", false),
        labels: m.string_map(ctx, "labels").into(),
        annotations: m.string_map(ctx, "annotations").into(),
    }
}
