//! Parsing and validation of SLO spec files into [`crate::slo::Slo`].
//!
//! Supported formats: Sloth `prometheus/v1`, Sloth `sloth.slok.dev/v1 PrometheusServiceLevel`,
//! OpenSLO `openslo/v1alpha` (Sloth's subset) and OpenSLO `openslo/v1`.
//!
//! (Being written: this file currently only fixes the public API other modules use.)

use std::path::{Path, PathBuf};

use crate::slo::Slo;

/// How serious a [`Diagnostic`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
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

/// Everything loaded from a set of files.
#[derive(Debug, Default)]
pub struct LoadReport {
    pub slos: Vec<Slo>,
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
}

/// Parse every document of one file's text. Never panics on any input.
pub fn parse_str(_file: &Path, _text: &str) -> LoadReport {
    LoadReport::default()
}

/// Read and parse files; directories are expanded to their `*.yml`/`*.yaml` files (sorted,
/// not recursive). Also reports duplicate SLO ids across all files.
pub fn load_paths(_paths: &[PathBuf]) -> LoadReport {
    LoadReport::default()
}
