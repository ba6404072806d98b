//! The Rollout CRD, generated from the Rust types, and a checker of YAML values against it.
//!
//! # Generation
//!
//! schemars (OpenAPI 3.0 settings, every subschema inlined) produces the spec and status
//! schemas; [`structural`] then rewrites them into a Kubernetes *structural* schema:
//! - no `$ref`, `$schema`, `title` or `additionalProperties: false`;
//! - serde's externally tagged enums (`traffic: {virtualService: …} | {httpRoute: …}`,
//!   `subset: …` | `host: …`) become one object with all the properties and a `oneOf` that
//!   holds only `required` lists (value validation, which structural schemas allow);
//! - `null` is dropped from `enum`s (`nullable: true` says it), and formats Kubernetes does
//!   not know (`uint32`…) are dropped (the `minimum` stays).
//!
//! [`crd`] wraps the result in an `apiextensions.k8s.io/v1 CustomResourceDefinition` with the
//! status subresource and printer columns; `slogate crd` prints [`crd_yaml`] and
//! `deploy/crds/rollouts.slogate.dev.yaml` holds it (checked by `tests/rollout_crd.rs`).
//!
//! # Checking values
//!
//! [`check`] walks a YAML value against the same schema, the way the API server would, and
//! reports every problem with its field path: wrong types, missing required fields, unknown
//! fields (with a "did you mean"), enum values, ranges, lengths, patterns, and "exactly one
//! of" choices. `validate` runs it before deserializing, so serde never has to report an
//! error without a path.

use crate::model::yaml::{self, Mapping as YamlMapping, Value as Yaml};
use serde_json::{json, Map as JsonMap, Value as Json};

use super::spec::{
    RolloutSpec, API_VERSION, DURATION_PATTERN, GROUP, KIND, STEP_DESCRIPTION, VERSION,
};
use super::RolloutStatus;
use crate::slo::suggest::closest;

/// The CRD's name.
pub const CRD_NAME: &str = "rollouts.slogate.dev";

fn generator() -> schemars::SchemaGenerator {
    schemars::generate::SchemaSettings::openapi3()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
        })
        .into_generator()
}

/// Structural schema of `spec`.
pub fn spec_schema() -> Json {
    let mut v = generator().into_root_schema_for::<RolloutSpec>().to_value();
    structural(&mut v);
    v
}

/// Structural schema of `status`.
pub fn status_schema() -> Json {
    let mut v = generator()
        .into_root_schema_for::<RolloutStatus>()
        .to_value();
    structural(&mut v);
    v
}

/// The `openAPIV3Schema` of the CRD: the whole object.
pub fn object_schema() -> Json {
    json!({
        "type": "object",
        "description": "A canary rollout of one workload: traffic shifted step by step on an Istio \
            VirtualService or a Gateway API HTTPRoute while canary metrics are analysed against \
            the stable version; aborted (weights back to stable, GitOps commit reverted) or \
            promoted (canary version committed as stable).",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec_schema(),
            "status": status_schema(),
        }
    })
}

/// The `apiextensions.k8s.io/v1 CustomResourceDefinition` of `rollouts.slogate.dev`.
pub fn crd() -> Json {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": CRD_NAME},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": KIND,
                "listKind": "RolloutList",
                "plural": "rollouts",
                "singular": "rollout",
                "categories": ["slogate"],
            },
            "scope": "Namespaced",
            "versions": [{
                "name": VERSION,
                "served": true,
                "storage": true,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                    {"name": "Weight", "type": "integer", "jsonPath": ".status.weights.canary",
                     "description": "Canary weight in percent"},
                    {"name": "Step", "type": "integer", "jsonPath": ".status.step",
                     "description": "Index into spec.steps"},
                    {"name": "Canary", "type": "string", "jsonPath": ".status.canaryVersion"},
                    {"name": "Reason", "type": "string", "jsonPath": ".status.reason",
                     "priority": 1},
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                ],
                "schema": {"openAPIV3Schema": object_schema()},
            }],
        }
    })
}

/// [`crd`] as YAML, with a header comment; what `slogate crd` prints.
pub fn crd_yaml() -> String {
    let body = yaml::to_string(&crd()).unwrap_or_else(|e| {
        // Any serde_json::Value serializes; this cannot happen.
        format!("# cannot serialize the CRD: {e}\n")
    });
    format!(
        "# Generated by `slogate crd` from the Rust types in src/rollout/. Do not edit.\n\
         # {API_VERSION} {KIND}\n{body}"
    )
}

// ---- structural rewrite ------------------------------------------------------------------

/// Formats the API server knows; others are dropped.
const KNOWN_FORMATS: [&str; 6] = ["int32", "int64", "float", "double", "date-time", "date"];

/// Rewrite a schemars schema into a Kubernetes structural schema (see the module docs).
pub fn structural(v: &mut Json) {
    let Some(obj) = v.as_object_mut() else {
        return;
    };
    for k in [
        "$schema",
        "$id",
        "title",
        "definitions",
        "$defs",
        "examples",
    ] {
        obj.remove(k);
    }
    if obj.get("additionalProperties") == Some(&Json::Bool(false)) {
        obj.remove("additionalProperties");
    }
    if let Some(Json::String(d)) = obj.get_mut("description") {
        // Doc comments wrap at 100 columns: keep paragraphs, join their lines.
        *d = d
            .split("\n\n")
            .map(|para| para.lines().map(str::trim).collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
            .join("\n\n");
    }
    if let Some(f) = obj.get("format").and_then(Json::as_str) {
        if !KNOWN_FORMATS.contains(&f) {
            obj.remove("format");
        }
    }
    if let Some(Json::Array(values)) = obj.get_mut("enum") {
        values.retain(|x| !x.is_null());
    }
    if let Some(c) = obj.remove("const") {
        if !c.is_null() {
            obj.insert("enum".into(), Json::Array(vec![c]));
        }
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(Json::Array(branches)) = obj.get(key) {
            if let Some(hoisted) = hoist_object_branches(branches) {
                obj.remove(key);
                obj.insert("type".into(), json!("object"));
                let props = obj
                    .entry("properties")
                    .or_insert_with(|| Json::Object(JsonMap::new()));
                if let Some(props) = props.as_object_mut() {
                    for (k, s) in hoisted.properties {
                        props.insert(k, s);
                    }
                }
                obj.insert(
                    "oneOf".into(),
                    Json::Array(
                        hoisted
                            .choices
                            .into_iter()
                            .map(|k| json!({"required": [k]}))
                            .collect(),
                    ),
                );
            }
        }
    }
    for (k, child) in obj.iter_mut() {
        match k.as_str() {
            "properties" => {
                if let Some(props) = child.as_object_mut() {
                    props.values_mut().for_each(structural);
                }
            }
            "items" | "additionalProperties" | "not" => structural(child),
            "oneOf" | "anyOf" | "allOf" => {
                if let Some(items) = child.as_array_mut() {
                    items.iter_mut().for_each(structural);
                }
            }
            _ => {}
        }
    }
}

struct Hoisted {
    properties: Vec<(String, Json)>,
    choices: Vec<String>,
}

/// `oneOf` branches that are each an object with exactly one required key (serde's
/// externally tagged enum): their properties and the keys to choose between.
fn hoist_object_branches(branches: &[Json]) -> Option<Hoisted> {
    let mut properties = Vec::new();
    let mut choices = Vec::new();
    for b in branches {
        let b = b.as_object()?;
        if b.get("type") != Some(&json!("object")) {
            return None;
        }
        let required = b.get("required")?.as_array()?;
        let [key] = required.as_slice() else {
            return None;
        };
        let key = key.as_str()?;
        let props = b.get("properties")?.as_object()?;
        if props.len() != 1 {
            return None;
        }
        properties.push((key.to_string(), props.get(key)?.clone()));
        choices.push(key.to_string());
    }
    if choices.is_empty() {
        return None;
    }
    Some(Hoisted {
        properties,
        choices,
    })
}

// ---- checking values ---------------------------------------------------------------------

/// One problem found by [`check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaProblem {
    /// Field path, `spec.steps[2]`.
    pub path: String,
    pub message: String,
}

/// Check `value` against a structural `schema`, appending every problem. Null values of
/// optional fields count as absent. Objects with `properties` are closed: other keys are
/// reported as unknown fields. Objects without `properties` (like `metadata`) are open.
pub fn check(schema: &Json, value: &Yaml, path: &str, out: &mut Vec<SchemaProblem>) {
    let mut problem = |message: String| {
        out.push(SchemaProblem {
            path: path.to_string(),
            message,
        })
    };
    if value.is_null() {
        if schema.get("nullable") != Some(&Json::Bool(true)) {
            problem(format!(
                "expected {}, found nothing (null)",
                expected_type(schema)
            ));
        }
        return;
    }
    match schema.get("type").and_then(Json::as_str) {
        Some("object") => {
            let Yaml::Mapping(m) = value else {
                problem(format!("expected a mapping, found {}", describe(value)));
                return;
            };
            check_object(schema, m, path, out);
        }
        Some("array") => {
            let Yaml::Sequence(items) = value else {
                problem(format!("expected a list, found {}", describe(value)));
                return;
            };
            if let Some(min) = schema.get("minItems").and_then(Json::as_u64) {
                if (items.len() as u64) < min {
                    problem(format!(
                        "expected at least {min} item{}, found {}",
                        if min == 1 { "" } else { "s" },
                        items.len()
                    ));
                }
            }
            if let Some(item_schema) = schema.get("items") {
                let steps =
                    item_schema.get("description").and_then(Json::as_str) == Some(STEP_DESCRIPTION);
                for (i, item) in items.iter().enumerate() {
                    let at = format!("{path}[{i}]");
                    if steps {
                        check_step(item, &at, out);
                    } else {
                        check(item_schema, item, &at, out);
                    }
                }
            }
        }
        Some("string") => {
            let Yaml::String(s) = value else {
                let hint = match value {
                    Yaml::Number(_) | Yaml::Bool(_) => " (quote it to make it a string)",
                    _ => "",
                };
                problem(format!(
                    "expected {}, found {}{hint}",
                    expected_type(schema),
                    describe(value)
                ));
                return;
            };
            check_string(schema, s, &mut problem);
        }
        Some(t @ ("integer" | "number")) => {
            let n = match value {
                Yaml::Number(n) => n,
                Yaml::String(s) if s.trim().parse::<f64>().is_ok() => {
                    problem(format!(
                        "expected a number, found the string {s:?}; remove the quotes"
                    ));
                    return;
                }
                other => {
                    problem(format!(
                        "expected {}, found {}",
                        expected_type(schema),
                        describe(other)
                    ));
                    return;
                }
            };
            if t == "integer" && !(n.is_i64() || n.is_u64()) {
                problem(format!("expected a whole number, found {n}"));
                return;
            }
            let Some(x) = n.as_f64() else {
                problem(format!("expected a number, found {n}"));
                return;
            };
            if !x.is_finite() {
                problem(format!("expected a finite number, found {n}"));
                return;
            }
            let min = schema.get("minimum").and_then(Json::as_f64);
            let max = schema.get("maximum").and_then(Json::as_f64);
            if min.is_some_and(|m| x < m) || max.is_some_and(|m| x > m) {
                problem(format!(
                    "{n} is out of range: expected {}",
                    range_text(min, max)
                ));
            }
        }
        Some("boolean") if !matches!(value, Yaml::Bool(_)) => {
            problem(format!("expected true or false, found {}", describe(value)));
        }
        _ => {}
    }
}

/// Check one item of `spec.steps`: a canary weight (1 to 100), or a mapping `{weight, hold}`
/// or `{match: {headers: …}, hold}` ([`check`] calls it for the items of `spec.steps`,
/// recognised by their description). The CRD cannot type a number-or-object item (see
/// [`super::spec::Step`]), so this does what the schema does for other fields. The rules
/// between fields (weight or match, holds, order) are checked after deserializing.
pub fn check_step(value: &Yaml, path: &str, out: &mut Vec<SchemaProblem>) {
    let weight = json!({"type": "integer", "minimum": 1, "maximum": 100});
    match value {
        Yaml::Mapping(m) => {
            let object = json!({
                "type": "object",
                "properties": {
                    "weight": weight,
                    "hold": {"type": "string", "pattern": DURATION_PATTERN, "minLength": 2},
                    "match": {
                        "type": "object",
                        "required": ["headers"],
                        "properties": {"headers": {"type": "object"}},
                    },
                },
            });
            check(&object, value, path, out);
            let headers = m
                .get("match")
                .and_then(|x| x.get("headers"))
                .and_then(Yaml::as_mapping);
            let header_value = json!({
                "type": "object",
                "properties": {
                    "prefix": {"type": "string", "minLength": 1},
                    "regex": {"type": "string", "minLength": 1},
                },
                "oneOf": [{"required": ["prefix"]}, {"required": ["regex"]}],
            });
            for (k, v) in headers.into_iter().flatten() {
                let at = format!("{path}.match.headers.{}", k.as_str().unwrap_or("?"));
                match v {
                    Yaml::String(_) => {}
                    Yaml::Mapping(_) => check(&header_value, v, &at, out),
                    other => out.push(SchemaProblem {
                        path: at,
                        message: format!(
                            "expected a string (an exact match) or {{prefix: …}} or {{regex: …}}, found {}{}",
                            describe(other),
                            if matches!(other, Yaml::Number(_) | Yaml::Bool(_)) {
                                " (quote it to make it a string)"
                            } else {
                                ""
                            }
                        ),
                    }),
                }
            }
        }
        Yaml::Number(_) | Yaml::Null => check(&weight, value, path, out),
        Yaml::String(x) if x.trim().parse::<f64>().is_ok() => check(&weight, value, path, out),
        other => out.push(SchemaProblem {
            path: path.to_string(),
            message: format!(
                "expected a canary weight (1 to 100) or a mapping such as {{weight: 10, hold: 24h}} or {{match: {{headers: {{x-canary: \"true\"}}}}, hold: 30m}}, found {}",
                describe(other)
            ),
        }),
    }
}

fn check_object(schema: &Json, m: &YamlMapping, path: &str, out: &mut Vec<SchemaProblem>) {
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    let props = schema.get("properties").and_then(Json::as_object);
    let present = |k: &str| m.get(k).is_some_and(|v| !v.is_null());
    if let Some(required) = schema.get("required").and_then(Json::as_array) {
        for k in required.iter().filter_map(Json::as_str) {
            if !present(k) {
                let what = props
                    .and_then(|p| p.get(k))
                    .map(|s| format!(": expected {}", describe_schema(s)))
                    .unwrap_or_default();
                out.push(SchemaProblem {
                    path: join(k),
                    message: format!("missing required field{what}"),
                });
            }
        }
    }
    if let Some(Json::Array(choices)) = schema.get("oneOf") {
        let keys: Vec<&str> = choices
            .iter()
            .filter_map(|c| c.get("required")?.as_array()?.first()?.as_str())
            .collect();
        let found: Vec<&str> = keys.iter().copied().filter(|k| present(k)).collect();
        let listed = keys
            .iter()
            .map(|k| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(" or ");
        match found.len() {
            1 => {}
            0 => out.push(SchemaProblem {
                path: path.to_string(),
                message: format!("expected exactly one of {listed}, found neither"),
            }),
            _ => out.push(SchemaProblem {
                path: path.to_string(),
                message: format!(
                    "expected exactly one of {listed}, found {}",
                    found
                        .iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(" and ")
                ),
            }),
        }
    }
    let Some(props) = props else {
        return;
    };
    for (k, v) in m {
        let Some(key) = k.as_str() else {
            out.push(SchemaProblem {
                path: path.to_string(),
                message: format!("expected string keys, found {}", describe(k)),
            });
            continue;
        };
        match props.get(key) {
            Some(s) => check(s, v, &join(key), out),
            None => {
                let known: Vec<&str> = props.keys().map(String::as_str).collect();
                let hint = closest(key, &known)
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                out.push(SchemaProblem {
                    path: join(key),
                    message: format!(
                        "unknown field `{key}`{hint}; expected one of: {}",
                        known.join(", ")
                    ),
                });
            }
        }
    }
}

fn check_string(schema: &Json, s: &str, problem: &mut impl FnMut(String)) {
    if let Some(values) = schema.get("enum").and_then(Json::as_array) {
        let allowed: Vec<&str> = values.iter().filter_map(Json::as_str).collect();
        if !allowed.contains(&s) {
            let hint = closest(s, &allowed)
                .map(|c| format!(" (did you mean {c:?}?)"))
                .unwrap_or_default();
            problem(format!(
                "unknown value {s:?}{hint}: expected one of {}",
                allowed.join(", ")
            ));
        }
        return;
    }
    let pattern = schema.get("pattern").and_then(Json::as_str);
    if pattern == Some(DURATION_PATTERN) {
        if s.parse::<crate::slo::PromDuration>().is_err() {
            problem(format!(
                "invalid duration {s:?}: expected a Prometheus duration such as 30s, 5m or 1h30m"
            ));
        }
        return;
    }
    if let Some(min) = schema.get("minLength").and_then(Json::as_u64) {
        if (s.chars().count() as u64) < min {
            problem(if min == 1 {
                "empty: expected a non-empty string".to_string()
            } else {
                format!("expected at least {min} characters, found {s:?}")
            });
            return;
        }
    }
    if let Some(p) = pattern {
        match regex::Regex::new(p) {
            Ok(re) if !re.is_match(s) => {
                problem(format!("{s:?} does not match the pattern {p}"));
            }
            _ => {}
        }
    }
}

fn range_text(min: Option<f64>, max: Option<f64>) -> String {
    match (min, max) {
        (Some(a), Some(b)) => format!("a value from {a} to {b}"),
        (Some(a), None) => format!("a value of at least {a}"),
        (None, Some(b)) => format!("a value of at most {b}"),
        (None, None) => "a number".to_string(),
    }
}

fn expected_type(schema: &Json) -> &'static str {
    match schema.get("type").and_then(Json::as_str) {
        Some("object") => "a mapping",
        Some("array") => "a list",
        Some("string")
            if schema.get("pattern").and_then(Json::as_str) == Some(DURATION_PATTERN) =>
        {
            "a duration such as 30s"
        }
        Some("string") => "a string",
        Some("integer") => "a whole number",
        Some("number") => "a number",
        Some("boolean") => "true or false",
        _ => "a value",
    }
}

/// "a mapping (The GitOps app of the canary.)": the type and the first sentence of the
/// description.
fn describe_schema(schema: &Json) -> String {
    let ty = expected_type(schema);
    match schema.get("description").and_then(Json::as_str) {
        Some(d) => {
            let d = d.replace('\n', " ");
            let first = d.split(". ").next().unwrap_or(&d);
            format!("{ty} ({})", first.trim_end_matches('.'))
        }
        None => ty.to_string(),
    }
}

/// A short human description of a YAML value, for "found …" in messages.
pub(crate) fn describe(v: &Yaml) -> String {
    match v {
        Yaml::Null => "nothing (null)".to_string(),
        Yaml::Bool(b) => format!("the boolean {b}"),
        Yaml::Number(n) => format!("the number {n}"),
        Yaml::String(s) => format!("the string {s:?}"),
        Yaml::Sequence(_) => "a list".to_string(),
        Yaml::Mapping(_) => "a mapping".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every keyword left anywhere in the schema, to prove it is structural.
    fn keywords(v: &Json, in_properties: bool, out: &mut std::collections::BTreeSet<String>) {
        match v {
            Json::Object(m) => {
                for (k, child) in m {
                    if !in_properties {
                        out.insert(k.clone());
                    }
                    match k.as_str() {
                        "properties" => {
                            for s in child.as_object().into_iter().flat_map(|p| p.values()) {
                                keywords(s, false, out);
                            }
                        }
                        "default" | "enum" | "required" => {}
                        _ => keywords(child, false, out),
                    }
                }
            }
            Json::Array(items) => items.iter().for_each(|i| keywords(i, false, out)),
            _ => {}
        }
    }

    #[test]
    fn schema_uses_only_structural_keywords() {
        let mut found = std::collections::BTreeSet::new();
        keywords(&object_schema(), false, &mut found);
        let allowed = [
            "type",
            "description",
            "properties",
            "required",
            "items",
            "enum",
            "default",
            "nullable",
            "minimum",
            "maximum",
            "minLength",
            "minItems",
            "pattern",
            "format",
            "oneOf",
            "x-kubernetes-preserve-unknown-fields",
        ];
        for k in &found {
            assert!(allowed.contains(&k.as_str()), "keyword {k} in the schema");
        }
        let text = object_schema().to_string();
        assert!(!text.contains("$ref") && !text.contains("additionalProperties"));
    }

    #[test]
    fn oneof_branches_hold_only_required() {
        fn visit(v: &Json) {
            if let Some(m) = v.as_object() {
                if let Some(Json::Array(branches)) = m.get("oneOf") {
                    assert_eq!(m.get("type"), Some(&json!("object")));
                    for b in branches {
                        let keys: Vec<&String> = b.as_object().unwrap().keys().collect();
                        assert_eq!(keys, vec!["required"], "{b}");
                        let k = b["required"][0].as_str().unwrap();
                        assert!(m["properties"].get(k).is_some(), "{k} hoisted");
                    }
                }
                m.values().for_each(visit);
            }
        }
        let s = spec_schema();
        visit(&s);
        let vs = &s["properties"]["traffic"]["properties"]["virtualService"];
        assert!(vs["properties"]["subset"].is_object());
        assert!(vs["properties"]["host"].is_object());
        assert!(vs["properties"]["route"].is_object());
    }

    fn problems(doc: &str) -> Vec<String> {
        let v: Yaml = yaml::from_str(doc).unwrap();
        let mut out = Vec::new();
        check(&spec_schema(), &v, "spec", &mut out);
        out.iter()
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect()
    }

    #[test]
    fn reports_paths_types_unknown_fields_and_choices() {
        let p = problems(
            "traffic: {virtualService: {name: vs, route: r}, httpRoute: {name: x, stableBackend: {name: a}, canaryBackend: {name: b}}}\n\
             workloads: {stable: {name: s, kind: Deploymnt}, canary: {name: 7}}\n\
             steps: [10, \"20\", 200]\n\
             interval: 1h1d\n\
             failurLimit: 3\n\
             analysis: {metrics: []}\n",
        );
        let want = [
            "spec.gitops: missing required field: expected a mapping (The GitOps app: its commit",
            "spec.traffic: expected exactly one of `virtualService` or `httpRoute`, found `virtualService` and `httpRoute`",
            "spec.traffic.virtualService: expected exactly one of `subset` or `host`, found neither",
            "spec.workloads.stable.kind: unknown value \"Deploymnt\" (did you mean \"Deployment\"?): expected one of Deployment, StatefulSet",
            "spec.workloads.canary.name: expected a string, found the number 7 (quote it to make it a string)",
            "spec.steps[1]: expected a number, found the string \"20\"; remove the quotes",
            "spec.steps[2]: 200 is out of range: expected a value from 1 to 100",
            "spec.interval: invalid duration \"1h1d\": expected a Prometheus duration such as 30s, 5m or 1h30m",
            "spec.failurLimit: unknown field `failurLimit` (did you mean `failureLimit`?)",
            "spec.analysis.metrics: expected at least 1 item, found 0",
        ];
        for w in want {
            assert!(
                p.iter().any(|x| x.starts_with(w)),
                "missing {w:?} in\n{}",
                p.join("\n")
            );
        }
        assert_eq!(p.len(), want.len(), "{}", p.join("\n"));
    }

    #[test]
    fn crd_has_status_subresource_and_columns() {
        let c = crd();
        let v = &c["spec"]["versions"][0];
        assert_eq!(v["subresources"], json!({"status": {}}));
        let cols: Vec<&str> = v["additionalPrinterColumns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["jsonPath"].as_str().unwrap())
            .collect();
        assert!(cols.contains(&".status.phase"));
        assert!(cols.contains(&".status.weights.canary"));
        assert!(cols.contains(&".status.step"));
        assert_eq!(c["metadata"]["name"], "rollouts.slogate.dev");
        assert!(crd_yaml().starts_with("# Generated by `slogate crd`"));
    }
}
