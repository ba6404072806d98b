//! Parsing and validation of SLO spec files into [`crate::slo::Slo`].
//!
//! Supported formats (several YAML documents per file, separated by `---`, each document
//! parsed on its own, empty documents skipped):
//! - Sloth `version: prometheus/v1` ([`sloth`]);
//! - Sloth `apiVersion: sloth.slok.dev/v1`, `kind: PrometheusServiceLevel` ([`sloth`]);
//! - OpenSLO `openslo/v1alpha` `SLO`, exactly the subset Sloth reads ([`openslo`]);
//! - OpenSLO `openslo/v1` `SLO` and `SLI` (ratio metrics, Occurrences, rolling windows)
//!   ([`openslo`]). `indicatorRef`s are resolved across every file of one load.
//!
//! Every problem becomes a [`Diagnostic`] naming the file, the document, the field path and
//! what was expected; nothing stops at the first problem and no input panics. An SLO with any
//! error is left out of [`LoadReport::slos`].
//!
//! Naming (Sloth's ids are `<service>-<slo name>`):
//! - Sloth formats: the SLO's `name`.
//! - OpenSLO `v1alpha` (as Sloth): one SLO per objective, named `<metadata.name>-<index>`.
//! - OpenSLO `v1`: `metadata.name` when the SLO has one objective, `<metadata.name>-<index>`
//!   (0-based) when it has several.
//!
//! Alerts: Sloth formats carry their `alerting` block; OpenSLO SLOs get no page or ticket
//! alert (both disabled), as Sloth does for OpenSLO.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::model::yaml::Value;

use crate::slo::{Origin, Sli, Slo};

mod checks;
mod openslo;
mod plugins;
mod sloth;
mod yaml;

use yaml::{describe, quote, shown, DocCtx, Map};

/// How serious a [`Diagnostic`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// One problem found in an input file.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: PathBuf,
    /// 0-based YAML document index inside the file, when the problem is inside a document.
    pub doc_index: Option<usize>,
    /// Field path such as `slos[0].objective` (empty for file-level problems).
    pub field: String,
    /// What is wrong and what was expected.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    /// `<file>[doc <i>]: <field>: <severity>: <message>`; the document and field parts are
    /// left out when empty.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(i) = self.doc_index {
            write!(f, "[doc {i}]")?;
        }
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        write!(f, ": {}: {}", self.severity, self.message)
    }
}

/// Everything loaded from a set of files.
#[derive(Debug, Default)]
pub struct LoadReport {
    pub slos: Vec<Slo>,
    /// The Sloth SLO plugins declared for each SLO (by id), in declaration order; SLOs
    /// without plugins are absent. Pass them to [`crate::slo::rules::RuleOptions::plugins`].
    pub plugins: HashMap<String, Vec<crate::slo::rules::PluginUse>>,
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
}

impl LoadReport {
    /// True when no error was found (warnings allowed).
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }

    /// Errors and warnings together, ordered by file and document (errors of a document
    /// before its warnings).
    pub fn diagnostics(&self) -> Vec<&Diagnostic> {
        let mut all: Vec<&Diagnostic> = self.errors.iter().chain(&self.warnings).collect();
        all.sort_by(|a, b| (&a.file, a.doc_index).cmp(&(&b.file, b.doc_index)));
        all
    }
}

/// Parse every document of one file's text. Never panics on any input. OpenSLO
/// `indicatorRef`s are resolved against the `SLI` documents of this text only.
pub fn parse_str(file: &Path, text: &str) -> LoadReport {
    let mut loader = Loader::default();
    loader.add_text(file, text);
    loader.finish()
}

/// The largest SLO spec file read (16 MiB): a 100-SLO file is about 65 KB, and parsing and
/// generating rules for a 50 MB file took gigabytes.
pub const MAX_SPEC_FILE_BYTES: u64 = 16 << 20;

/// Read a text file of at most `limit` bytes (`what` names the kind of file in the error),
/// checked on its size and again while reading, so a file that grows is cut off too.
pub fn read_capped(file: &Path, limit: u64, what: &str) -> Result<String, String> {
    use std::io::Read;
    let too_big = |size: String| {
        format!(
            "the file is {size}; {what} files are limited to {} MiB",
            limit >> 20
        )
    };
    let f = std::fs::File::open(file).map_err(|e| format!("cannot read the file: {e}"))?;
    if let Ok(m) = f.metadata() {
        if m.len() > limit {
            return Err(too_big(format!("{} bytes", m.len())));
        }
    }
    let mut bytes = Vec::new();
    f.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read the file: {e}"))?;
    if bytes.len() as u64 > limit {
        return Err(too_big(format!("more than {limit} bytes")));
    }
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "not a UTF-8 text file (invalid byte at offset {}): expected YAML",
            e.utf8_error().valid_up_to()
        )
    })
}

/// Read and parse files; directories are searched recursively for `*.yml`/`*.yaml` files
/// (see [`expand_paths`]). Also reports duplicate SLO ids across all files and resolves
/// OpenSLO `indicatorRef`s across all files.
pub fn load_paths(paths: &[PathBuf]) -> LoadReport {
    let (files, diags) = expand_paths(paths);
    let mut loader = Loader {
        diags,
        ..Loader::default()
    };
    // Files are read and checked independently (YAML, the specs, their PromQL), on every
    // core; the cross-file checks of `finish` then see them in path order, so the report is
    // the same as a sequential load's.
    for part in map_in_parallel(&files, |file| {
        let mut part = Loader::default();
        match read_capped(file, MAX_SPEC_FILE_BYTES, "SLO spec") {
            Ok(text) => part.add_text(file, &text),
            Err(message) => part.file_error(file, message),
        }
        part
    }) {
        loader.candidates.extend(part.candidates);
        loader.slis.extend(part.slis);
        loader.diags.extend(part.diags);
    }
    loader.finish()
}

/// `items.iter().map(f).collect()`, on up to as many threads as there are cores, each taking
/// one contiguous run of `items`; the results keep `items`' order. (std's scoped threads:
/// one call per load needs no pool, so rayon would add a dependency for nothing.)
pub(crate) fn map_in_parallel<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let workers = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .min(items.len());
    if workers <= 1 {
        return items.iter().map(f).collect();
    }
    let chunk = items.len().div_ceil(workers);
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(f).collect::<Vec<R>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| match h.join() {
                Ok(results) => results,
                // A panic in `f` is a bug: re-raise it here, as a sequential map would.
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    })
}

/// The files a load reads: files as given, directories searched recursively (as Sloth's
/// `--input` discovery does) for files ending in `.yml` or `.yaml` (any case), sorted by
/// path; the same file named twice is read once. Symbolic links to directories are not
/// followed (no loops). A path that does not exist or cannot be listed is an error, a
/// directory without any such file a warning.
pub fn expand_paths(paths: &[PathBuf]) -> (Vec<PathBuf>, Vec<Diagnostic>) {
    let mut files = Vec::new();
    let mut diags = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found = Vec::new();
            walk_dir(p, &mut found, &mut diags);
            found.sort();
            if found.is_empty() {
                // A warning here (a daemon may watch a directory that is still empty); the
                // CLI commands fail when they find no file at all, as Sloth does.
                diags.push(Diagnostic {
                    severity: Severity::Warning,
                    ..file_diag(
                        p,
                        "no .yml or .yaml files in this directory or its subdirectories"
                            .to_string(),
                    )
                });
            }
            files.extend(found);
        } else if p.exists() {
            files.push(p.clone());
        } else {
            diags.push(file_diag(
                p,
                "cannot read the file: no such file or directory".to_string(),
            ));
        }
    }
    let mut seen = std::collections::HashSet::new();
    files.retain(|f| seen.insert(std::fs::canonicalize(f).unwrap_or_else(|_| f.clone())));
    (files, diags)
}

fn file_diag(file: &Path, message: String) -> Diagnostic {
    Diagnostic {
        severity: Severity::Error,
        file: file.to_path_buf(),
        doc_index: None,
        field: String::new(),
        message,
    }
}

fn is_spec_file_name(path: &Path) -> bool {
    path.extension()
        .and_then(|x| x.to_str())
        .is_some_and(|x| x.eq_ignore_ascii_case("yml") || x.eq_ignore_ascii_case("yaml"))
}

/// Collect the spec files under `dir`, recursively, without following directory symlinks.
fn walk_dir(dir: &Path, found: &mut Vec<PathBuf>, diags: &mut Vec<Diagnostic>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            diags.push(file_diag(dir, format!("cannot list the directory: {e}")));
            return;
        }
    };
    for entry in entries {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                diags.push(file_diag(dir, format!("cannot list the directory: {e}")));
                continue;
            }
        };
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => walk_dir(&path, found, diags),
            // A symlink counts when it points at a file.
            Ok(_) if path.is_file() && is_spec_file_name(&path) => found.push(path),
            Ok(_) => {}
            Err(e) => diags.push(file_diag(&path, format!("cannot read the file type: {e}"))),
        }
    }
}

/// An SLO parsed from one document, before cross-file checks.
pub(crate) struct Candidate {
    pub slo: Slo,
    /// Field path naming the SLO (for duplicate-id errors), e.g. `slos[1].name`.
    pub name_field: String,
    /// An OpenSLO v1 `indicatorRef` still to resolve; `slo.sli` is a placeholder until then.
    pub sli_ref: Option<SliRef>,
    /// Sloth SLO plugins of this SLO (service-level ones first).
    pub plugins: Vec<crate::slo::rules::PluginUse>,
}

/// A reference to an OpenSLO v1 `SLI` document by name.
pub(crate) struct SliRef {
    pub name: String,
    pub field: String,
}

/// An OpenSLO v1 `SLI` document. `sli` is `None` when the document has errors.
pub(crate) struct SliDef {
    pub name: String,
    pub sli: Option<Sli>,
    pub origin: Origin,
    pub field: String,
}

/// What one document produced.
#[derive(Default)]
pub(crate) struct DocOutput {
    pub candidates: Vec<Candidate>,
    pub slis: Vec<SliDef>,
}

#[derive(Default)]
struct Loader {
    candidates: Vec<Candidate>,
    slis: Vec<SliDef>,
    diags: Vec<Diagnostic>,
}

const EXPECTED_KINDS: &str = "expected version prometheus/v1, apiVersion sloth.slok.dev/v1 kind PrometheusServiceLevel, or apiVersion openslo/v1alpha|openslo/v1 kind SLO|SLI";

impl Loader {
    fn file_error(&mut self, file: &Path, message: String) {
        self.diags.push(Diagnostic {
            severity: Severity::Error,
            file: file.to_path_buf(),
            doc_index: None,
            field: String::new(),
            message,
        });
    }

    fn add_text(&mut self, file: &Path, text: &str) {
        let stream = crate::model::yaml::parse_stream(text);
        let docs = stream.count;
        let mut non_empty = stream.documents.len();
        for doc in stream.documents {
            let mut ctx = DocCtx::new(file, doc.index);
            let mut out = DocOutput::default();
            parse_document(&mut ctx, &doc.value, &mut out);
            self.candidates.extend(out.candidates);
            self.slis.extend(out.slis);
            self.diags.append(&mut ctx.diags);
        }
        if let Some((i, e)) = stream.error {
            non_empty += 1;
            let mut ctx = DocCtx::new(file, i);
            ctx.error(
                "",
                format!("not valid YAML: {e}; the rest of the file is not read"),
            );
            self.diags.append(&mut ctx.diags);
        }
        if non_empty == 0 {
            self.diags.push(file_diag(
                file,
                if docs == 0 {
                    "the file is empty: expected at least one SLO spec document".to_string()
                } else {
                    "the file has only empty YAML documents: expected at least one SLO spec document"
                        .to_string()
                },
            ));
        }
    }

    fn finish(mut self) -> LoadReport {
        let mut report = LoadReport::default();

        // OpenSLO v1 SLI documents by name.
        let mut slis: HashMap<String, usize> = HashMap::new();
        for (i, def) in self.slis.iter().enumerate() {
            if let Some(&first) = slis.get(&def.name) {
                let prev = &self.slis[first];
                self.diags.push(Diagnostic {
                    severity: Severity::Error,
                    file: def.origin.file.clone(),
                    doc_index: Some(def.origin.doc_index),
                    field: def.field.clone(),
                    message: format!(
                        "duplicate SLI name {}: already defined in {}[doc {}] at {}",
                        quote(&def.name),
                        prev.origin.file.display(),
                        prev.origin.doc_index,
                        prev.field
                    ),
                });
            } else {
                slis.insert(def.name.clone(), i);
            }
        }

        // Resolve indicatorRefs, then check ids are unique.
        let mut ids: HashMap<String, (Origin, String)> = HashMap::new();
        for mut c in std::mem::take(&mut self.candidates) {
            if let Some(r) = &c.sli_ref {
                let found = slis.get(&r.name).map(|&i| &self.slis[i]);
                let problem = match found {
                    None => {
                        let mut known: Vec<&str> =
                            self.slis.iter().map(|s| s.name.as_str()).collect();
                        known.sort();
                        known.dedup();
                        Some(format!(
                            "indicatorRef {}: no SLI of that name (apiVersion openslo/v1, kind SLI) in the loaded files; expected one of: {}",
                            quote(&r.name),
                            if known.is_empty() {
                                "(no SLI documents were loaded)".to_string()
                            } else {
                                known.join(", ")
                            }
                        ))
                    }
                    Some(SliDef {
                        sli: None, origin, ..
                    }) => Some(format!(
                        "indicatorRef {}: the SLI in {}[doc {}] has errors",
                        quote(&r.name),
                        origin.file.display(),
                        origin.doc_index
                    )),
                    Some(SliDef { sli: Some(sli), .. }) => {
                        c.slo.sli = sli.clone();
                        None
                    }
                };
                if let Some(message) = problem {
                    self.diags.push(Diagnostic {
                        severity: Severity::Error,
                        file: c.slo.origin.file.clone(),
                        doc_index: Some(c.slo.origin.doc_index),
                        field: r.field.clone(),
                        message,
                    });
                    continue;
                }
            }
            if let Some((origin, field)) = ids.get(&c.slo.id) {
                self.diags.push(Diagnostic {
                    severity: Severity::Error,
                    file: c.slo.origin.file.clone(),
                    doc_index: Some(c.slo.origin.doc_index),
                    field: c.name_field.clone(),
                    message: format!(
                        "duplicate SLO id {}: already defined in {}[doc {}] at {}; SLO ids (<service>-<slo name>) must be unique",
                        quote(&c.slo.id),
                        origin.file.display(),
                        origin.doc_index,
                        field
                    ),
                });
                continue;
            }
            ids.insert(
                c.slo.id.clone(),
                (c.slo.origin.clone(), c.name_field.clone()),
            );
            if !c.plugins.is_empty() {
                report.plugins.insert(c.slo.id.clone(), c.plugins);
            }
            report.slos.push(c.slo);
        }

        for d in self.diags {
            match d.severity {
                Severity::Error => report.errors.push(d),
                Severity::Warning => report.warnings.push(d),
            }
        }
        report
    }
}

/// Dispatch one non-empty document on its `version` / `apiVersion` and `kind`.
fn parse_document(ctx: &mut DocCtx, v: &Value, out: &mut DocOutput) {
    let Some(root) = Map::root(v) else {
        ctx.error(
            "",
            format!(
                "expected a mapping, found {}: {EXPECTED_KINDS}",
                describe(v)
            ),
        );
        return;
    };
    let text = |key: &str| root.get(key).and_then(yaml::scalar_text);
    if let Some(version) = root.get("version") {
        match yaml::scalar_text(version).as_deref() {
            Some("prometheus/v1") => sloth::parse_prometheus_v1(ctx, &root, out),
            _ => ctx.error(
                "version",
                format!("unsupported version {}: {EXPECTED_KINDS}", shown(version)),
            ),
        }
        return;
    }
    let Some(api) = root.get("apiVersion") else {
        ctx.error("", format!("missing version/apiVersion: {EXPECTED_KINDS}"));
        return;
    };
    let kind = text("kind");
    match (yaml::scalar_text(api).as_deref(), kind.as_deref()) {
        (Some("sloth.slok.dev/v1"), Some("PrometheusServiceLevel")) => {
            sloth::parse_k8s_v1(ctx, &root, out)
        }
        (Some("openslo/v1alpha"), Some("SLO")) => openslo::parse_v1alpha_slo(ctx, &root, out),
        (Some("openslo/v1"), Some("SLO")) => openslo::parse_v1_slo(ctx, &root, out),
        (Some("openslo/v1"), Some("SLI")) => openslo::parse_v1_sli(ctx, &root, out),
        (Some("openslo/v1alpha"), Some(k @ "Service"))
        | (
            Some("openslo/v1"),
            Some(
                k @ ("Service"
                | "DataSource"
                | "AlertPolicy"
                | "AlertCondition"
                | "AlertNotificationTarget"),
            ),
        ) => ctx.warn(
            "kind",
            format!("OpenSLO kind {k} is not used by slogate; the document is ignored"),
        ),
        (Some("sloth.slok.dev/v1" | "openslo/v1alpha" | "openslo/v1"), _) => ctx.error(
            "kind",
            format!(
                "unsupported kind {}: {EXPECTED_KINDS}",
                root.get("kind")
                    .map(shown)
                    .unwrap_or_else(|| "(missing)".to_string())
            ),
        ),
        _ => ctx.error(
            "apiVersion",
            format!("unsupported apiVersion {}: {EXPECTED_KINDS}", shown(api)),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_in_parallel_keeps_the_order_and_every_item() {
        for n in [0usize, 1, 2, 3, 7, 100, 1001] {
            let items: Vec<usize> = (0..n).collect();
            let out = map_in_parallel(&items, |i| i * 2);
            assert_eq!(
                out,
                items.iter().map(|i| i * 2).collect::<Vec<_>>(),
                "n = {n}"
            );
        }
    }

    #[test]
    fn diagnostic_display() {
        let d = Diagnostic {
            severity: Severity::Error,
            file: PathBuf::from("a.yml"),
            doc_index: Some(1),
            field: "slos[0].objective".into(),
            message: "bad".into(),
        };
        assert_eq!(d.to_string(), "a.yml[doc 1]: slos[0].objective: error: bad");
        let d = Diagnostic {
            severity: Severity::Warning,
            doc_index: None,
            field: String::new(),
            ..d
        };
        assert_eq!(d.to_string(), "a.yml: warning: bad");
    }

    #[test]
    fn empty_and_comment_only_texts_are_errors() {
        for text in ["", "# just a comment\n", "---\n---\n"] {
            let r = parse_str(Path::new("e.yml"), text);
            assert!(r.slos.is_empty());
            assert_eq!(r.errors.len(), 1, "{text:?}: {:?}", r.errors);
            assert!(r.errors[0]
                .message
                .contains("expected at least one SLO spec document"));
        }
    }

    #[test]
    fn directories_are_searched_recursively() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        std::fs::write(dir.path().join("a/b/x.YAML"), "x: 1\n").unwrap();
        std::fs::write(dir.path().join("a/y.yml"), "x: 1\n").unwrap();
        std::fs::write(dir.path().join("a/z.txt"), "x: 1\n").unwrap();
        let (files, diags) = expand_paths(&[dir.path().to_path_buf()]);
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(
            files,
            vec![dir.path().join("a/b/x.YAML"), dir.path().join("a/y.yml")]
        );
        let empty = tempfile::tempdir().unwrap();
        std::fs::create_dir(empty.path().join("sub")).unwrap();
        let (files, diags) = expand_paths(&[empty.path().to_path_buf()]);
        assert!(files.is_empty());
        assert_eq!(diags.len(), 1);
        assert_eq!(diags[0].severity, Severity::Warning);
    }
}
