//! `slogate validate FILES…`: check SLO spec files and report every problem.
//!
//! Every error and warning is printed on stdout, one per line, as
//! `<file>[doc <i>]: <field>: <severity>: <message>` (`-o text`, the default) or as one JSON
//! array of `{severity, file, doc_index, field, message}` objects (`-o json`). With no error
//! the command prints `N SLOs in M files OK` (on stderr with `-o json`, so that stdout stays
//! JSON) and exits 0; warnings do not fail it. Any error exits 2.

use std::path::PathBuf;

use super::{CliError, ExitStatus};
use crate::slo::spec;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// SLO spec files or directories (their *.yml and *.yaml files, not recursive).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Output format of the problem list.
    #[arg(short, long, value_enum, default_value = "text")]
    pub output: Output,
}

pub fn run(args: Args) -> Result<ExitStatus, CliError> {
    let (files, _) = spec::expand_paths(&args.files);
    let report = spec::load_paths(&args.files);
    let diags = report.diagnostics();

    match args.output {
        Output::Text => {
            for d in &diags {
                println!("{d}");
            }
        }
        Output::Json => {
            let json = serde_json::to_string_pretty(&diags)
                .map_err(|e| CliError::Runtime(format!("cannot encode JSON: {e}")))?;
            println!("{json}");
        }
    }

    let plural =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let slos = plural(report.slos.len(), "SLO", "SLOs");
    let in_files = plural(files.len(), "file", "files");
    let warnings = if report.warnings.is_empty() {
        String::new()
    } else {
        format!(
            " ({})",
            plural(report.warnings.len(), "warning", "warnings")
        )
    };
    if report.is_ok() {
        let summary = format!("{slos} in {in_files} OK{warnings}");
        match args.output {
            Output::Text => println!("{summary}"),
            Output::Json => eprintln!("{summary}"),
        }
        Ok(ExitStatus::Success)
    } else {
        Err(CliError::Input(format!(
            "{} in {in_files}{warnings}: see the list above",
            plural(report.errors.len(), "error", "errors"),
        )))
    }
}
