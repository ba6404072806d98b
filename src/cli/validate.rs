//! `slogate validate FILES…`: check SLO spec files and Rollout files and report every
//! problem. Files may mix both: each YAML document goes to the SLO loader or, when its
//! `apiVersion` is in the `slogate.dev` group, to the Rollout loader. When SLOs are loaded
//! too, Rollouts' `spec.slos` ids that no SLO has are warned about.
//!
//! Every error and warning is printed on stdout, one per line, as
//! `<file>[doc <i>]: <field>: <severity>: <message>` (`-o text`, the default) or as one JSON
//! array of `{severity, file, doc_index, field, message}` objects (`-o json`). With no error
//! the command prints `N SLOs in M files OK` (`N SLOs, K Rollouts in M files OK` when there
//! are Rollouts; on stderr with `-o json`, so that stdout stays
//! JSON) and exits 0; warnings do not fail it. Any error exits 2, and so does finding no
//! file at all (directories are searched recursively), as in Sloth.

use std::collections::HashSet;
use std::path::PathBuf;

use super::{CliError, ExitStatus};
use crate::rollout;
use crate::slo::spec::{self, Diagnostic};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// SLO spec and Rollout files or directories (searched recursively for *.yml and *.yaml
    /// files).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Output format of the problem list.
    #[arg(short, long, value_enum, default_value = "text")]
    pub output: Output,
}

pub fn run(args: Args) -> Result<ExitStatus, CliError> {
    let (files, _) = spec::expand_paths(&args.files);
    if files.is_empty() {
        let names: Vec<String> = args.files.iter().map(|f| f.display().to_string()).collect();
        return Err(CliError::Input(format!(
            "{}: no .yml or .yaml files found (directories are searched recursively): \
             expected SLO spec or Rollout files",
            names.join(", ")
        )));
    }
    let report = spec::load_paths(&args.files);
    let mut rollouts = rollout::load::load_paths(&args.files);
    if !report.slos.is_empty() {
        let ids: HashSet<String> = report.slos.iter().map(|s| s.id.clone()).collect();
        rollouts.check_slo_ids(&ids);
    }
    // Each document belongs to one loader: the SLO loader's problems with Rollout documents
    // and the Rollout loader's problems with anything else (other documents, file-level
    // problems, which the SLO loader reports too) are dropped.
    let rollout_docs: HashSet<(PathBuf, usize)> = rollouts.documents.iter().cloned().collect();
    let is_rollout_doc = |d: &Diagnostic| {
        d.doc_index
            .is_some_and(|i| rollout_docs.contains(&(d.file.clone(), i)))
    };
    let errors: Vec<&Diagnostic> = report
        .errors
        .iter()
        .filter(|d| !is_rollout_doc(d))
        .chain(rollouts.errors.iter().filter(|d| is_rollout_doc(d)))
        .collect();
    let warnings: Vec<&Diagnostic> = report
        .warnings
        .iter()
        .filter(|d| !is_rollout_doc(d))
        .chain(rollouts.warnings.iter().filter(|d| is_rollout_doc(d)))
        .collect();
    let mut diags: Vec<&Diagnostic> = errors.iter().chain(&warnings).copied().collect();
    diags.sort_by(|a, b| (&a.file, a.doc_index).cmp(&(&b.file, b.doc_index)));

    match args.output {
        Output::Text => {
            for d in &diags {
                println!("{d}");
            }
        }
        Output::Json => {
            let json = serde_json::to_string_pretty(&diags)
                .map_err(|e| CliError::failed("cannot encode JSON", e))?;
            println!("{json}");
        }
    }

    let plural =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let mut found = Vec::new();
    if !report.slos.is_empty() || rollouts.rollouts.is_empty() {
        found.push(plural(report.slos.len(), "SLO", "SLOs"));
    }
    if !rollouts.rollouts.is_empty() {
        found.push(plural(rollouts.rollouts.len(), "Rollout", "Rollouts"));
    }
    let found = found.join(", ");
    let in_files = plural(files.len(), "file", "files");
    let warning_text = if warnings.is_empty() {
        String::new()
    } else {
        format!(" ({})", plural(warnings.len(), "warning", "warnings"))
    };
    if errors.is_empty() {
        let summary = format!("{found} in {in_files} OK{warning_text}");
        match args.output {
            Output::Text => println!("{summary}"),
            Output::Json => eprintln!("{summary}"),
        }
        Ok(ExitStatus::Success)
    } else {
        Err(CliError::Input(format!(
            "{} in {in_files}{warning_text}: see the list above",
            plural(errors.len(), "error", "errors"),
        )))
    }
}
