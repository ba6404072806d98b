//! YAML output, in Sloth's layouts.
//!
//! - Plain rule files: `groups: [{name, rules: [{record|alert, expr, labels, annotations}]}]`,
//!   the field order of Prometheus' `rulefmt.Rule`, as Sloth writes them.
//! - `PrometheusRule` objects: Kubernetes' serializer sorts keys, so Sloth's k8s output has
//!   `apiVersion, kind, metadata{annotations, labels, name, namespace}, spec{groups}` and
//!   rules as `alert, annotations, expr, labels, record`. Metadata labels are the input
//!   object's labels plus `app.kubernetes.io/component: SLO` and
//!   `app.kubernetes.io/managed-by: sloth` (kept for Sloth compatibility: dashboards and
//!   selectors look for it); annotations are the input object's.
//!
//! Every document starts with `---` and a generated-code header comment.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{OutputDocument, OutputFile, Rule, RuleGroup, RuleKind};

/// Tool name in the header comment.
pub const HEADER_TOOL: &str = "slogate";
/// What the header comment says the file is.
pub const HEADER_NOTE: &str = "Sloth-compatible SLO rules";

type Labels = BTreeMap<String, String>;

fn is_empty(m: &&Labels) -> bool {
    m.is_empty()
}

#[derive(Serialize)]
struct PlainFile<'a> {
    groups: Vec<PlainGroup<'a>>,
}

#[derive(Serialize)]
struct PlainGroup<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    interval: Option<String>,
    rules: Vec<PlainRule<'a>>,
}

#[derive(Serialize)]
struct PlainRule<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    record: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    alert: Option<&'a str>,
    expr: &'a str,
    #[serde(skip_serializing_if = "is_empty")]
    labels: &'a Labels,
    #[serde(skip_serializing_if = "is_empty")]
    annotations: &'a Labels,
}

// Field order = Kubernetes' sorted-key order.
#[derive(Serialize)]
struct K8sMetadata<'a> {
    #[serde(skip_serializing_if = "is_empty")]
    annotations: &'a Labels,
    labels: Labels,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<&'a str>,
}

// Field order = Kubernetes' sorted-key order.
#[derive(Serialize)]
struct K8sGroup<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    interval: Option<String>,
    name: &'a str,
    rules: Vec<K8sRule<'a>>,
}

#[derive(Serialize)]
struct K8sSpec<'a> {
    groups: Vec<K8sGroup<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PrometheusRuleK8s<'a> {
    api_version: &'static str,
    kind: &'static str,
    metadata: K8sMetadata<'a>,
    spec: K8sSpec<'a>,
}

// Field order = Kubernetes' sorted-key order.
#[derive(Serialize)]
struct K8sRule<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    alert: Option<&'a str>,
    #[serde(skip_serializing_if = "is_empty")]
    annotations: &'a Labels,
    expr: &'a str,
    #[serde(skip_serializing_if = "is_empty")]
    labels: &'a Labels,
    #[serde(skip_serializing_if = "Option::is_none")]
    record: Option<&'a str>,
}

fn names(rule: &Rule) -> (Option<&str>, Option<&str>) {
    match &rule.kind {
        RuleKind::Record(r) => (Some(r.as_str()), None),
        RuleKind::Alert(a) => (None, Some(a.as_str())),
    }
}

fn plain_groups(groups: &[RuleGroup]) -> Vec<PlainGroup<'_>> {
    groups
        .iter()
        .map(|g| PlainGroup {
            name: &g.name,
            interval: g.interval.map(|i| i.to_string()),
            rules: g
                .rules
                .iter()
                .map(|r| {
                    let (record, alert) = names(r);
                    PlainRule {
                        record,
                        alert,
                        expr: &r.expr,
                        labels: &r.labels,
                        annotations: &r.annotations,
                    }
                })
                .collect(),
        })
        .collect()
}

fn k8s_groups(groups: &[RuleGroup]) -> Vec<K8sGroup<'_>> {
    groups
        .iter()
        .map(|g| K8sGroup {
            interval: g.interval.map(|i| i.to_string()),
            name: &g.name,
            rules: g
                .rules
                .iter()
                .map(|r| {
                    let (record, alert) = names(r);
                    K8sRule {
                        alert,
                        annotations: &r.annotations,
                        expr: &r.expr,
                        labels: &r.labels,
                        record,
                    }
                })
                .collect(),
        })
        .collect()
}

fn render_document(doc: &OutputDocument) -> String {
    let yaml = match &doc.k8s {
        None => crate::model::yaml::to_string(&PlainFile {
            groups: plain_groups(&doc.groups),
        }),
        Some(meta) => {
            let mut labels = Labels::from([
                ("app.kubernetes.io/component".to_string(), "SLO".to_string()),
                (
                    "app.kubernetes.io/managed-by".to_string(),
                    "sloth".to_string(),
                ),
            ]);
            // Input labels win, as in Sloth.
            labels.extend(meta.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
            crate::model::yaml::to_string(&PrometheusRuleK8s {
                api_version: "monitoring.coreos.com/v1",
                kind: "PrometheusRule",
                metadata: K8sMetadata {
                    annotations: &meta.annotations.to_btree_map(),
                    labels,
                    name: &meta.name,
                    namespace: meta.namespace.as_deref(),
                },
                spec: K8sSpec {
                    groups: k8s_groups(&doc.groups),
                },
            })
        }
    };
    // Serialising plain structs of strings and maps cannot fail.
    yaml.expect("rule structs serialise to YAML")
}

pub(super) fn render_file(file: &OutputFile) -> String {
    let mut out = String::new();
    for doc in &file.documents {
        out.push_str("---\n# Code generated by ");
        out.push_str(HEADER_TOOL);
        out.push_str(" (");
        out.push_str(&file.version);
        out.push_str("): ");
        out.push_str(HEADER_NOTE);
        out.push_str(".\n# DO NOT EDIT.\n\n");
        out.push_str(&render_document(doc));
    }
    out
}
