//! Reading Rollout files, with the same diagnostics as SLO files:
//! `<file>[doc <i>]: <field path>: error: <what was expected>`.
//!
//! Every YAML document of a file is read on its own (`---` separated, empty ones skipped).
//! A document is a Rollout when its `apiVersion` is in the `slogate.dev` group; other
//! documents are reported as "not a Rollout" (`slogate validate` hands those to the SLO
//! loader instead, see [`RolloutReport::documents`]).
//!
//! Each Rollout document goes through three passes, and every problem of a pass is
//! reported (nothing stops at the first one):
//! 1. the CRD's own schema ([`super::schema::check`]): types, required fields, unknown
//!    fields, enums, ranges, exactly-one-of choices, durations;
//! 2. deserialization into [`Rollout`] (cannot fail after pass 1 except on internal
//!    inconsistencies, reported at the document root);
//! 3. semantic checks: steps strictly increasing and ending at 100, deadlines longer than
//!    the interval, `min < max`, built-in metric names, query template variables and
//!    brackets, duplicate metric names and SLO ids, distinct stable/canary names, GitOps
//!    paths, Kubernetes names.
//!
//! Across files, two Rollouts with the same namespace and name are an error, and
//! [`RolloutReport::check_slo_ids`] warns about `slos` entries no loaded SLO has.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use crate::model::yaml::{self, Value as Yaml};

use super::schema::{self, describe};
use super::spec::{Rollout, API_VERSION, BUILTIN_METRICS, GROUP, KIND};
use crate::rollout::checks;
use crate::slo::spec::{expand_paths, Diagnostic, Severity};

/// A Rollout read from a file.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedRollout {
    pub rollout: Rollout,
    pub file: PathBuf,
    pub doc_index: usize,
}

/// Everything loaded from a set of files.
#[derive(Debug, Default)]
pub struct RolloutReport {
    /// Rollouts without errors.
    pub rollouts: Vec<LoadedRollout>,
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
    /// Every document recognised as a Rollout (valid or not), as (file, document index).
    pub documents: Vec<(PathBuf, usize)>,
}

impl RolloutReport {
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }

    fn push(&mut self, d: Diagnostic) {
        match d.severity {
            Severity::Error => self.errors.push(d),
            Severity::Warning => self.warnings.push(d),
        }
    }

    /// Warn about `spec.slos` ids that are not among `known` (the ids of the SLOs loaded
    /// alongside).
    pub fn check_slo_ids(&mut self, known: &HashSet<String>) {
        let mut sorted: Vec<&String> = known.iter().collect();
        sorted.sort();
        let list = sorted
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let mut found = Vec::new();
        for r in &self.rollouts {
            for (i, id) in r.rollout.spec.slos.iter().enumerate() {
                if !known.contains(id) {
                    found.push(Diagnostic {
                        severity: Severity::Warning,
                        file: r.file.clone(),
                        doc_index: Some(r.doc_index),
                        field: format!("spec.slos[{i}]"),
                        message: format!(
                            "unknown SLO id {id:?}: no loaded SLO has it; expected one of: {list}"
                        ),
                    });
                }
            }
        }
        for d in found {
            self.push(d);
        }
    }
}

/// True when a parsed YAML document claims to be a slogate resource (`apiVersion` in the
/// `slogate.dev` group).
pub fn is_rollout_document(v: &Yaml) -> bool {
    v.get("apiVersion")
        .and_then(Yaml::as_str)
        .is_some_and(|a| a.split('/').next() == Some(GROUP))
}

/// Parse every document of one file's text.
pub fn parse_str(file: &Path, text: &str) -> RolloutReport {
    let mut report = RolloutReport::default();
    add_text(&mut report, file, text);
    finish(&mut report);
    report
}

/// The largest Rollout file read (1 MiB, about what the API server stores for one object).
pub const MAX_ROLLOUT_FILE_BYTES: u64 = 1 << 20;

/// Read and parse files; directories stand for their `*.yml`/`*.yaml` files.
pub fn load_paths(paths: &[PathBuf]) -> RolloutReport {
    let (files, diags) = expand_paths(paths);
    let mut report = RolloutReport::default();
    for d in diags {
        report.push(d);
    }
    // Files are parsed independently on every core and merged in path order (the same
    // report as a sequential load); `finish` then checks across them.
    for part in crate::slo::spec::map_in_parallel(&files, |file| {
        let mut part = RolloutReport::default();
        match crate::slo::spec::read_capped(file, MAX_ROLLOUT_FILE_BYTES, "Rollout") {
            Ok(text) => add_text(&mut part, file, &text),
            Err(message) => part.push(Diagnostic {
                severity: Severity::Error,
                file: file.clone(),
                doc_index: None,
                field: String::new(),
                message,
            }),
        }
        part
    }) {
        report.rollouts.extend(part.rollouts);
        report.errors.extend(part.errors);
        report.warnings.extend(part.warnings);
        report.documents.extend(part.documents);
    }
    finish(&mut report);
    report
}

/// Parse one Rollout document given as YAML text (the first document), for callers that
/// hold a single object (tests, the state store). Errors are joined into one message.
pub fn from_yaml_str(text: &str) -> Result<Rollout, String> {
    let r = parse_str(Path::new("<input>"), text);
    if !r.errors.is_empty() {
        return Err(r
            .errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n"));
    }
    r.rollouts
        .into_iter()
        .next()
        .map(|l| l.rollout)
        .ok_or_else(|| "no Rollout document".to_string())
}

/// Validate one Rollout object read from the Kubernetes API, with the same passes as a
/// file's document. `origin` names it in the diagnostics (e.g. `Rollout shop/checkout`).
/// The object's `status` (slogate's own state, with `rollouts.state: kube`) and the
/// server-set metadata (`uid`, `resourceVersion`, `managedFields`…) are ignored.
pub fn parse_object(origin: &Path, object: &Yaml) -> RolloutReport {
    let mut object = object.clone();
    if let Yaml::Mapping(m) = &mut object {
        m.remove("status");
    }
    let mut report = RolloutReport::default();
    add_value(&mut report, origin, 0, &object);
    finish(&mut report);
    // An object is not a document of a file: its diagnostics read `Rollout ns/name: field: …`.
    for d in report.errors.iter_mut().chain(report.warnings.iter_mut()) {
        d.doc_index = None;
    }
    report
}

fn add_value(report: &mut RolloutReport, file: &Path, doc: usize, v: &Yaml) {
    let mut ctx = Ctx {
        file,
        doc,
        diags: Vec::new(),
    };
    if is_rollout_document(v) {
        report.documents.push((file.to_path_buf(), doc));
        if let Some(rollout) = parse_document(&mut ctx, v) {
            if ctx.errors() == 0 {
                report.rollouts.push(LoadedRollout {
                    rollout,
                    file: file.to_path_buf(),
                    doc_index: doc,
                });
            }
        }
    } else {
        ctx.error(
            "apiVersion",
            format!(
                "not a Rollout: expected apiVersion {API_VERSION} and kind {KIND}, found apiVersion {}",
                v.get("apiVersion").map(describe).unwrap_or_else(|| "(missing)".into())
            ),
        );
    }
    report.diags_extend(ctx.diags);
}

fn add_text(report: &mut RolloutReport, file: &Path, text: &str) {
    let stream = yaml::parse_stream(text);
    for doc in &stream.documents {
        add_value(report, file, doc.index, &doc.value);
    }
    if let Some((i, e)) = stream.error {
        let mut ctx = Ctx {
            file,
            doc: i,
            diags: Vec::new(),
        };
        ctx.error(
            "",
            format!("not valid YAML: {e}; the rest of the file is not read"),
        );
        report.diags_extend(ctx.diags);
    }
}

impl RolloutReport {
    fn diags_extend(&mut self, diags: Vec<Diagnostic>) {
        for d in diags {
            self.push(d);
        }
    }
}

/// Cross-document checks: unique `namespace/name`.
fn finish(report: &mut RolloutReport) {
    let mut seen: HashMap<String, (PathBuf, usize)> = HashMap::new();
    let mut dups = Vec::new();
    report.rollouts.retain(|r| {
        let key = r.rollout.key();
        if let Some((file, doc)) = seen.get(&key) {
            dups.push(Diagnostic {
                severity: Severity::Error,
                file: r.file.clone(),
                doc_index: Some(r.doc_index),
                field: "metadata.name".into(),
                message: format!(
                    "duplicate Rollout {key}: already defined in {}[doc {doc}]; namespace/name must be unique",
                    file.display()
                ),
            });
            false
        } else {
            seen.insert(key, (r.file.clone(), r.doc_index));
            true
        }
    });
    report.diags_extend(dups);
}

struct Ctx<'a> {
    file: &'a Path,
    doc: usize,
    diags: Vec<Diagnostic>,
}

impl Ctx<'_> {
    fn push(&mut self, severity: Severity, field: &str, message: String) {
        self.diags.push(Diagnostic {
            severity,
            file: self.file.to_path_buf(),
            doc_index: Some(self.doc),
            field: field.to_string(),
            message,
        });
    }
    fn error(&mut self, field: &str, message: impl Into<String>) {
        self.push(Severity::Error, field, message.into());
    }
    fn warn(&mut self, field: &str, message: impl Into<String>) {
        self.push(Severity::Warning, field, message.into());
    }
    fn errors(&self) -> usize {
        self.diags
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count()
    }
}

fn parse_document(ctx: &mut Ctx, v: &Yaml) -> Option<Rollout> {
    let Yaml::Mapping(root) = v else {
        ctx.error("", format!("expected a mapping, found {}", describe(v)));
        return None;
    };
    let api = root.get("apiVersion").and_then(Yaml::as_str).unwrap_or("");
    if api != API_VERSION {
        ctx.error(
            "apiVersion",
            format!("unsupported apiVersion {api:?}: expected {API_VERSION}"),
        );
    }
    match root.get("kind") {
        Some(Yaml::String(k)) if k == KIND => {}
        other => ctx.error(
            "kind",
            format!(
                "unsupported kind {}: expected {KIND}",
                other.map(describe).unwrap_or_else(|| "(missing)".into())
            ),
        ),
    }
    let mut doc = root.clone();
    if doc.remove("status").is_some_and(|s| !s.is_null()) {
        ctx.warn(
            "status",
            "ignored: slogate keeps a rollout's status in the cluster or its state store, not in files",
        );
    }
    check_metadata(ctx, doc.get("metadata"));

    let mut problems = Vec::new();
    schema::check(
        &schema::object_schema(),
        &Yaml::Mapping(doc.clone()),
        "",
        &mut problems,
    );
    for p in problems {
        ctx.error(&p.path, p.message);
    }
    if ctx.errors() > 0 {
        return None;
    }
    let json = match serde_json::to_value(strip_nulls(Yaml::Mapping(doc))) {
        Ok(j) => j,
        Err(e) => {
            ctx.error("", format!("cannot read the document: {e}"));
            return None;
        }
    };
    let rollout: Rollout = match serde_json::from_value(json) {
        Ok(r) => r,
        Err(e) => {
            ctx.error("", format!("cannot read the document: {e}"));
            return None;
        }
    };
    check_semantics(ctx, &rollout);
    Some(rollout)
}

/// Null-valued mapping entries count as absent (so serde applies the defaults, as the API
/// server does when it prunes them).
fn strip_nulls(v: Yaml) -> Yaml {
    match v {
        Yaml::Mapping(m) => Yaml::Mapping(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect(),
        ),
        Yaml::Sequence(s) => Yaml::Sequence(s.into_iter().map(strip_nulls).collect()),
        other => other,
    }
}

/// `metadata.name` (a DNS subdomain) and `metadata.namespace` (a DNS label); other
/// Kubernetes metadata is accepted and ignored.
fn check_metadata(ctx: &mut Ctx, meta: Option<&Yaml>) {
    let Some(meta) = meta.filter(|m| !m.is_null()) else {
        ctx.error(
            "metadata",
            "missing: expected metadata with at least a name",
        );
        return;
    };
    let Yaml::Mapping(m) = meta else {
        ctx.error(
            "metadata",
            format!("expected a mapping, found {}", describe(meta)),
        );
        return;
    };
    match m.get("name") {
        None | Some(Yaml::Null) => ctx.error(
            "metadata.name",
            "missing: expected the Rollout's name, e.g. checkout",
        ),
        Some(Yaml::String(n)) => {
            if !is_dns_subdomain(n) {
                ctx.error(
                    "metadata.name",
                    format!("invalid name {n:?}: expected lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253 characters"),
                );
            }
        }
        Some(other) => ctx.error(
            "metadata.name",
            format!("expected a string, found {}", describe(other)),
        ),
    }
    match m.get("namespace") {
        None | Some(Yaml::Null) => {}
        Some(Yaml::String(n)) => {
            if !is_dns_label(n) {
                ctx.error(
                    "metadata.namespace",
                    format!("invalid namespace {n:?}: expected lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters"),
                );
            }
        }
        Some(other) => ctx.error(
            "metadata.namespace",
            format!("expected a string, found {}", describe(other)),
        ),
    }
}

/// A Kubernetes DNS label (RFC 1123), the form of a namespace name: 1 to 63 lowercase
/// letters, digits and `-`, starting and ending with a letter or digit. The one check of
/// it, used by the daemon's config for `rollouts.namespaces` and `state.namespace` too.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

fn check_semantics(ctx: &mut Ctx, r: &Rollout) {
    let spec = &r.spec;

    check_steps(ctx, spec);

    // Durations.
    if spec.interval.as_millis() == 0 {
        ctx.error(
            "spec.interval",
            "0s: expected a positive duration such as 30s",
        );
    }
    if spec.progress_deadline < spec.interval {
        ctx.error(
            "spec.progressDeadline",
            format!(
                "progressDeadline {} is shorter than interval {}: no step could ever complete; expected at least the interval",
                spec.progress_deadline, spec.interval
            ),
        );
    }
    if let Some(a) = &spec.approval {
        if a.deadline.as_millis() == 0 {
            ctx.error(
                "spec.approval.deadline",
                "0s: expected a positive duration such as 1h",
            );
        }
        if spec.steps.len() < 2 {
            ctx.error(
                "spec.approval",
                "the approval gates the step to 100%: expected at least one step before 100",
            );
        }
    }
    if spec.min_requests == Some(0) {
        ctx.warn(
            "spec.minRequests",
            "0 has no effect: leave it out, or set the number of canary requests an interval needs",
        );
    }

    // Traffic and workloads.
    use super::spec::{Destinations, Traffic};
    match &spec.traffic {
        Traffic::VirtualService(vs) => match &vs.destinations {
            Destinations::Subset(s) if s.stable == s.canary => ctx.error(
                "spec.traffic.virtualService.subset.canary",
                format!(
                    "the canary subset {:?} is the stable subset: expected two different subsets",
                    s.canary
                ),
            ),
            Destinations::Host(h) if h.stable == h.canary => ctx.error(
                "spec.traffic.virtualService.host.canary",
                format!(
                    "the canary host {:?} is the stable host: expected two different hosts",
                    h.canary
                ),
            ),
            _ => {}
        },
        Traffic::HttpRoute(h) => {
            if h.stable_backend == h.canary_backend {
                ctx.error(
                    "spec.traffic.httpRoute.canaryBackend",
                    "the canary backend is the stable backend: expected two different backendRefs",
                );
            }
        }
    }
    let w = &spec.workloads;
    if w.stable.name == w.canary.name && w.stable.kind == w.canary.kind {
        ctx.error(
            "spec.workloads.canary.name",
            format!(
                "the canary workload {:?} is the stable workload: expected two different workloads",
                w.canary.name
            ),
        );
    }
    if !is_label_key(&w.version_label) {
        ctx.error(
            "spec.workloads.versionLabel",
            format!("{:?} is not a Kubernetes label key: expected e.g. version or app.kubernetes.io/version", w.version_label),
        );
    }

    // Metrics.
    let mut names: HashMap<&str, usize> = HashMap::new();
    for (i, m) in spec.analysis.metrics.iter().enumerate() {
        let path = format!("spec.analysis.metrics[{i}]");
        if let Some(first) = names.insert(m.name.as_str(), i) {
            ctx.error(
                &format!("{path}.name"),
                format!(
                    "duplicate metric name {:?}: already used by metrics[{first}]",
                    m.name
                ),
            );
        }
        let builtin = BUILTIN_METRICS.contains(&m.name.as_str());
        match &m.query {
            None if !builtin => ctx.error(
                &format!("{path}.name"),
                format!(
                    "unknown built-in metric {:?}: expected {} or a metric with a `query`",
                    m.name,
                    BUILTIN_METRICS.join(" or ")
                ),
            ),
            None => {}
            Some(_) if builtin => ctx.error(
                &format!("{path}.query"),
                format!("{:?} is a built-in metric: leave out `query` to use it, or give the metric another name", m.name),
            ),
            Some(q) => check_query(ctx, &format!("{path}.query"), q),
        }
        match (&m.compare, m.min, m.max) {
            (None, None, None) => ctx.error(
                &path,
                "expected `min` and/or `max` (a threshold metric) or `compare` (canary against stable)",
            ),
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => ctx.error(
                &path,
                "`compare` and `min`/`max` cannot be combined: expected a threshold metric or a comparative one; use two metrics for both",
            ),
            (None, Some(lo), Some(hi)) if lo >= hi => ctx.error(
                &format!("{path}.min"),
                format!("min {lo} is not below max {hi}: expected min < max"),
            ),
            _ => {}
        }
        if m.query.is_none() && m.name == "request-success-rate" {
            for (k, v) in [("min", m.min), ("max", m.max)] {
                if let Some(x) = v.filter(|x| !(0.0..=1.0).contains(x)) {
                    ctx.error(
                        &format!("{path}.{k}"),
                        format!("{x}: request-success-rate is a ratio: expected a value in [0, 1], e.g. 0.99"),
                    );
                }
            }
        }
        if let Some(c) = &m.compare {
            if !(c.confidence > 0.0 && c.confidence < 1.0) {
                ctx.error(
                    &format!("{path}.compare.confidence"),
                    format!(
                        "{}: expected a number strictly between 0 and 1, e.g. 0.98",
                        c.confidence
                    ),
                );
            }
            if let Some(q) = &c.sequential {
                let at = format!("{path}.compare.sequential");
                if !(q.alpha > 0.0 && q.alpha < 1.0) {
                    ctx.error(
                        &format!("{at}.alpha"),
                        format!(
                            "{}: expected a number strictly between 0 and 1, e.g. 0.02",
                            q.alpha
                        ),
                    );
                }
                let horizon = q.horizon_for(spec);
                let looks = q.variance_looks_for(horizon);
                if horizon < 3 {
                    let (key, what) = match q.horizon {
                        Some(h) => (format!("{at}.horizon"), format!("{h}")),
                        None => (
                            at.clone(),
                            format!(
                                "the rollout makes {horizon} analysis interval(s) (one per plain step, hold ÷ interval per held step)"
                            ),
                        ),
                    };
                    ctx.error(
                        &key,
                        format!("{what}: the sequential test needs a horizon of at least 3 intervals: add steps or holds, or set horizon"),
                    );
                } else if looks < 2 || looks > horizon {
                    ctx.error(
                        &format!("{at}.varianceLooks"),
                        format!("{looks}: expected at least 2 and at most the horizon ({horizon})"),
                    );
                }
            }
        }
    }
    if let Some(ec) = &spec.analysis.error_counts {
        if !(ec.alpha > 0.0 && ec.alpha < 1.0) {
            ctx.error(
                "spec.analysis.errorCounts.alpha",
                format!(
                    "{}: expected a number strictly between 0 and 1, e.g. 0.02",
                    ec.alpha
                ),
            );
        }
    }

    // GitOps.
    let p = &spec.gitops.path;
    if p.starts_with('/') || p.split('/').any(|s| s == "..") {
        ctx.error(
            "spec.gitops.path",
            format!("{p:?}: expected a path relative to the repository root, without `..`, e.g. apps/checkout/overlays/prod"),
        );
    }

    // SLO ids.
    let mut ids: HashMap<&str, usize> = HashMap::new();
    for (i, id) in spec.slos.iter().enumerate() {
        if id.trim().is_empty() {
            ctx.error(
                &format!("spec.slos[{i}]"),
                "empty: expected an SLO id such as checkout-requests-availability",
            );
        } else if let Some(first) = ids.insert(id.as_str(), i) {
            ctx.error(
                &format!("spec.slos[{i}]"),
                format!("duplicate SLO id {id:?}: already listed at slos[{first}]"),
            );
        }
    }
}

/// Steps: each a weight or a header match, header steps first, weights strictly increasing
/// and ending at 100, holds between the interval and `progressDeadline`, header names and
/// regexes valid.
fn check_steps(ctx: &mut Ctx, spec: &super::spec::RolloutSpec) {
    let mut last_weight: Option<(usize, u32)> = None;
    for (i, step) in spec.steps.iter().enumerate() {
        let path = format!("spec.steps[{i}]");
        match (step.weight, &step.header_match) {
            (Some(_), Some(_)) => ctx.error(
                &path,
                "both `weight` and `match`: expected a weight step {weight: 10} or a header step {match: {headers: …}}, not both",
            ),
            (None, None) => ctx.error(
                &path,
                "neither `weight` nor `match`: expected e.g. {weight: 10, hold: 24h} or {match: {headers: {x-canary: \"true\"}}, hold: 30m}",
            ),
            (Some(w), None) => {
                if let Some((j, prev)) = last_weight {
                    if w <= prev {
                        let at = if step.hold.is_some() {
                            format!("{path}.weight")
                        } else {
                            path.clone()
                        };
                        ctx.error(
                            &at,
                            format!(
                                "step {w} after {prev}: expected strictly increasing canary weights, e.g. [10, 25, 50, 75, 100] (steps[{j}] is {prev})"
                            ),
                        );
                    }
                }
                last_weight = Some((i, w));
            }
            (None, Some(m)) => {
                if let Some((j, _)) = last_weight {
                    ctx.error(
                        &format!("{path}.match"),
                        format!("a header step after the weighted step steps[{j}]: expected header steps before every weighted step (their canary weight is 0)"),
                    );
                }
                if m.headers.is_empty() {
                    ctx.error(
                        &format!("{path}.match.headers"),
                        "empty: expected at least one header, e.g. {x-canary: \"true\"}",
                    );
                }
                for (name, v) in &m.headers {
                    let at = format!("{path}.match.headers.{name}");
                    let token = !name.is_empty()
                        && name.chars().all(|c| {
                            c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.!#$%&'*+^`|~".contains(c)
                        });
                    if !token {
                        ctx.error(
                            &at,
                            format!("{name:?} is not a lowercase HTTP header name: expected e.g. x-canary (Istio matches lowercase names)"),
                        );
                    }
                    if let crate::model::traffic::HeaderValue::Regex { regex } = v {
                        if let Err(e) = regex::Regex::new(regex) {
                            // regex's syntax errors span lines (pattern, caret, message).
                            let text = e.to_string();
                            let why = text
                                .lines()
                                .rev()
                                .find_map(|l| l.strip_prefix("error: "))
                                .unwrap_or(&text)
                                .to_string();
                            ctx.error(
                                &format!("{at}.regex"),
                                format!("invalid regex {regex:?}: {why}; expected an RE2 regular expression"),
                            );
                        }
                    }
                }
            }
        }
        if let Some(hold) = step.hold {
            if hold < spec.interval {
                ctx.error(
                    &format!("{path}.hold"),
                    format!(
                        "step {} holds {hold}, shorter than interval {}: expected a hold of at least one interval (analysis runs every interval)",
                        i + 1,
                        spec.interval
                    ),
                );
            }
            if hold > spec.progress_deadline {
                ctx.error(
                    &format!("{path}.hold"),
                    format!(
                        "step {} holds {hold}, longer than progressDeadline {}: expected progressDeadline at least as long as the longest hold",
                        i + 1,
                        spec.progress_deadline
                    ),
                );
            }
        }
    }
    match spec.steps.last() {
        Some(last) if last.weight != Some(100) => ctx.error(
            &format!("spec.steps[{}]", spec.steps.len() - 1),
            match last.weight {
                Some(w) => format!("the last step is {w}: expected the steps to end at 100"),
                None => "the last step is a header step: expected the steps to end at weight 100"
                    .to_string(),
            },
        ),
        _ => {}
    }
}

fn check_query(ctx: &mut Ctx, path: &str, q: &str) {
    if q.trim().is_empty() {
        ctx.error(path, "empty: expected a PromQL query");
        return;
    }
    if let Err(e) = checks::check_template(q) {
        ctx.error(path, e.to_string());
    }
    if let Some(problem) = bracket_problem(q) {
        ctx.error(path, problem);
    }
}

/// Unbalanced `()`, `[]` or `{}` outside string literals.
fn bracket_problem(q: &str) -> Option<String> {
    let mut stack = Vec::new();
    let mut quote: Option<char> = None;
    let mut escaped = false;
    // Template braces are not PromQL brackets.
    let q = q.replace("{{", "\u{1}").replace("}}", "\u{2}");
    for c in q.chars() {
        if let Some(qc) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == qc {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' | '`' => quote = Some(c),
            '(' | '[' | '{' => stack.push(c),
            ')' | ']' | '}' => {
                let open = match c {
                    ')' => '(',
                    ']' => '[',
                    _ => '{',
                };
                if stack.pop() != Some(open) {
                    return Some(format!(
                        "unbalanced `{c}`: expected a valid PromQL expression"
                    ));
                }
            }
            _ => {}
        }
    }
    if let Some(qc) = quote {
        return Some(format!(
            "unterminated string starting with {qc}: expected a valid PromQL expression"
        ));
    }
    stack
        .last()
        .map(|c| format!("unclosed `{c}`: expected a valid PromQL expression"))
}

fn is_label_key(s: &str) -> bool {
    let (prefix, name) = match s.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    name_ok && prefix.is_none_or(is_dns_subdomain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels() {
        for good in ["a", "shop", "team-a", "0", "a1-b2", &"a".repeat(63)] {
            assert!(is_dns_label(good), "{good}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "Shop",
            "a.b",
            "a_b",
            "a b",
            "ä",
            &"a".repeat(64),
        ] {
            assert!(!is_dns_label(bad), "{bad}");
        }
    }

    const GOOD: &str = r#"
apiVersion: slogate.dev/v1alpha1
kind: Rollout
metadata: {name: checkout, namespace: shop, labels: {team: pay}}
spec:
  traffic:
    virtualService: {name: checkout, route: primary, subset: {host: checkout, stable: stable, canary: canary}}
  workloads: {stable: {name: checkout}, canary: {name: checkout-canary}}
  analysis:
    metrics:
      - {name: request-success-rate, min: 0.99}
      - {name: request-duration, max: 500}
      - name: p95
        query: histogram_quantile(0.95, sum(rate(x_bucket{ns="{{ namespace }}",w="{{ workload }}"}[{{ interval }}])) by (le))
        compare: {direction: increase}
    errorCounts: {}
  gitops: {app: checkout, path: apps/checkout}
"#;

    #[test]
    fn good_document_loads_with_defaults() {
        let r = parse_str(Path::new("g.yaml"), GOOD);
        assert!(r.is_ok(), "{:#?}", r.errors);
        assert!(r.warnings.is_empty(), "{:#?}", r.warnings);
        let ro = &r.rollouts[0].rollout;
        assert_eq!(ro.key(), "shop/checkout");
        assert_eq!(ro.spec.steps, vec![10, 25, 50, 75, 100]);
        assert_eq!(ro.spec.analysis.error_counts.as_ref().unwrap().alpha, 0.02);
        assert_eq!(r.documents, vec![(PathBuf::from("g.yaml"), 0)]);
    }

    fn errors_of(text: &str) -> Vec<String> {
        let r = parse_str(Path::new("b.yaml"), text);
        r.errors
            .iter()
            .map(|d| format!("{}: {}", d.field, d.message))
            .collect()
    }

    #[test]
    fn semantic_errors_name_the_field() {
        let bad = GOOD
            .replace("metrics:\n", "metrics:\n      - {name: request-rate, min: 1}\n      - {name: p95, query: 'x{a=\"{{ foo }}\"}', min: 2, max: 1}\n")
            .replace("path: apps/checkout", "path: ../x")
            .replace("analysis:", "steps: [10, 50, 50, 90]\n  progressDeadline: 10s\n  analysis:");
        let e = errors_of(&bad);
        let want = [
            "spec.steps[2]: step 50 after 50: expected strictly increasing",
            "spec.steps[3]: the last step is 90: expected the steps to end at 100",
            "spec.progressDeadline: progressDeadline 10s is shorter than interval 30s",
            "spec.analysis.metrics[0].name: unknown built-in metric \"request-rate\"",
            "spec.analysis.metrics[1].query: unknown template variable `{{ foo }}`",
            "spec.analysis.metrics[1].min: min 2 is not below max 1",
            "spec.analysis.metrics[4].name: duplicate metric name \"p95\": already used by metrics[1]",
            "spec.gitops.path: \"../x\": expected a path relative",
        ];
        for w in want {
            assert!(
                e.iter().any(|x| x.starts_with(w)),
                "missing {w:?} in\n{}",
                e.join("\n")
            );
        }
        assert_eq!(e.len(), want.len(), "{}", e.join("\n"));
    }

    #[test]
    fn not_a_rollout_and_wrong_version() {
        let e = errors_of("version: prometheus/v1\nservice: x\n");
        assert!(e[0].starts_with("apiVersion: not a Rollout"), "{e:?}");
        let r = parse_str(
            Path::new("v.yaml"),
            &GOOD.replace("slogate.dev/v1alpha1", "slogate.dev/v2"),
        );
        assert_eq!(r.documents.len(), 1);
        assert!(r.errors[0]
            .to_string()
            .contains("expected slogate.dev/v1alpha1"));
    }

    #[test]
    fn duplicates_across_documents_and_unknown_slo_ids() {
        let text = format!(
            "{}  slos: [checkout-availability, nope]\n---\n{GOOD}",
            GOOD.trim_start()
        );
        let mut r = parse_str(Path::new("d.yaml"), &text);
        assert_eq!(r.rollouts.len(), 1);
        assert_eq!(r.errors.len(), 1);
        assert!(r.errors[0]
            .message
            .starts_with("duplicate Rollout shop/checkout"));
        assert_eq!(r.errors[0].doc_index, Some(1));
        r.check_slo_ids(&HashSet::from(["checkout-availability".to_string()]));
        assert_eq!(r.warnings.len(), 1);
        assert_eq!(r.warnings[0].field, "spec.slos[1]");
    }

    #[test]
    fn brackets() {
        assert_eq!(
            bracket_problem(r#"sum(rate(x{a="{{ workload }}"}[5m]))"#),
            None
        );
        assert!(bracket_problem("sum(rate(x[5m])").is_some());
        assert!(bracket_problem("x{a=\"(\"}").is_none());
        assert!(bracket_problem("x]").is_some());
    }

    #[test]
    fn label_keys() {
        assert!(is_label_key("version"));
        assert!(is_label_key("app.kubernetes.io/version"));
        assert!(!is_label_key("-version"));
        assert!(!is_label_key("a b"));
    }
}
