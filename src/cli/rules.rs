//! `slogate rules`: generate Sloth-compatible Prometheus recording and alert rules.
//!
//! ```text
//! slogate rules FILES… [-o DIR] [--period 30d|28d|…] [--windows FILE] [--extra-labels k=v]…
//!               [--disable-recordings] [--disable-alerts] [--sloth-version V]
//! ```
//!
//! Without `-o`, every generated YAML stream goes to stdout, in input order. With `-o DIR`,
//! `DIR` is created and each input file gets one output file of the same name
//! (`examples/slos/checkout.yml` → `DIR/checkout.yml`), holding one YAML document per input
//! document. Loader warnings go to stderr. Bad input (spec errors, bad flags, an unknown
//! period, an unreadable windows file) exits 2 with messages naming file, field and
//! expectation.

use std::collections::{BTreeMap, HashSet};
use std::io::{Seek, Write};
use std::path::PathBuf;

use super::{CliError, ExitStatus, WindowArgs};
use crate::slo::rules::{self, RuleOptions};
use crate::slo::windows::WindowSettings;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// SLO spec files (Sloth prometheus/v1, Sloth PrometheusServiceLevel, OpenSLO), or
    /// directories (searched recursively for `*.yml`/`*.yaml` files).
    #[arg(required = true, value_name = "FILES")]
    pub files: Vec<PathBuf>,
    /// Write one rule file per input file into DIR (created if missing), named like the
    /// input file. Without it, all rules go to stdout.
    #[arg(short = 'o', long = "out", value_name = "DIR")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub windows: WindowArgs,
    /// Extra label added to every recording rule, as `key=value` (repeatable).
    #[arg(long = "extra-labels", value_name = "K=V")]
    pub extra_labels: Vec<String>,
    /// Do not generate the SLI and metadata recording rules.
    #[arg(long)]
    pub disable_recordings: bool,
    /// Do not generate the alert rules.
    #[arg(long)]
    pub disable_alerts: bool,
    /// Value of the `sloth_version` label of `sloth_slo_info` and of the header comment.
    #[arg(long, value_name = "V", default_value = env!("CARGO_PKG_VERSION"))]
    pub sloth_version: String,
}

/// Parse `k=v` extra labels, collecting one message per bad flag.
pub fn parse_extra_labels(raw: &[String]) -> Result<BTreeMap<String, String>, Vec<String>> {
    let mut out = BTreeMap::new();
    let mut errors = Vec::new();
    for item in raw {
        match item.split_once('=') {
            Some((k, v)) if rules::is_valid_label_name(k) => {
                out.insert(k.to_string(), v.to_string());
            }
            Some((k, _)) => errors.push(format!(
                "--extra-labels {item:?}: invalid label name {k:?}: expected a non-empty \
                 Prometheus label name other than __name__"
            )),
            None => errors.push(format!(
                "--extra-labels {item:?}: expected key=value, e.g. --extra-labels env=prod"
            )),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

pub fn run(args: Args) -> Result<ExitStatus, CliError> {
    let mut errors = Vec::new();
    let extra_labels = parse_extra_labels(&args.extra_labels).unwrap_or_else(|e| {
        errors.extend(e);
        BTreeMap::new()
    });
    let windows = match args.windows.settings() {
        Ok(w) => w,
        Err(CliError::Inputs(e)) => {
            errors.extend(e);
            WindowSettings::default()
        }
        Err(e) => {
            errors.push(e.to_string());
            WindowSettings::default()
        }
    };
    if !errors.is_empty() {
        return Err(CliError::Inputs(errors));
    }
    let report = super::load_specs(&args.files)?;
    let slos = report.slos;

    let opts = RuleOptions {
        windows,
        extra_labels,
        disable_recordings: args.disable_recordings,
        disable_alerts: args.disable_alerts,
        version: args.sloth_version,
        plugins: report.plugins,
    };
    // Rules are generated, rendered and written one input file at a time (10,000 SLOs make
    // tens of megabytes of rules), into a spool that is published only when every file
    // generated cleanly: a failing run writes nothing.
    match &args.out {
        None => {
            let io = |e: std::io::Error| CliError::failed("cannot write rules", e);
            let mut spool = std::io::BufWriter::new(tempfile::tempfile().map_err(io)?);
            let mut write_error = None;
            let errs = rules::generate_each(&slos, &opts, |f| {
                if write_error.is_none() {
                    write_error = spool.write_all(f.render().as_bytes()).err();
                }
            });
            if !errs.is_empty() {
                return Err(CliError::Inputs(
                    errs.iter().map(|e| e.to_string()).collect(),
                ));
            }
            if let Some(e) = write_error {
                return Err(io(e));
            }
            let mut spool = spool.into_inner().map_err(|e| io(e.into_error()))?;
            spool.seek(std::io::SeekFrom::Start(0)).map_err(io)?;
            let mut stdout = std::io::stdout().lock();
            std::io::copy(&mut spool, &mut stdout)
                .and_then(|_| stdout.flush())
                .map_err(|e| CliError::failed("cannot write to stdout", e))?;
        }
        Some(dir) => {
            let mut seen = HashSet::new();
            let mut dupes = Vec::new();
            for (source, _) in rules::input_files(&slos) {
                let name = rules::output_name(source);
                if !seen.insert(name.clone()) {
                    dupes.push(format!(
                        "{}: another input file has the same name {:?}: -o DIR writes one file \
                         per input named after it, expected distinct input file names",
                        source.display(),
                        name
                    ));
                }
            }
            if !dupes.is_empty() {
                return Err(CliError::Inputs(dupes));
            }
            std::fs::create_dir_all(dir).map_err(|e| {
                CliError::failed(format!("{}: cannot create directory", dir.display()), e)
            })?;
            // Each file is written to a temporary file in DIR, renamed into place once all
            // generated cleanly (and removed otherwise).
            let mut staged: Vec<(tempfile::TempPath, PathBuf)> = Vec::new();
            let mut write_error = None;
            let errs = rules::generate_each(&slos, &opts, |f| {
                if write_error.is_some() {
                    return;
                }
                let path = dir.join(f.output_name());
                let written = tempfile::Builder::new()
                    .prefix(".slogate-rules-")
                    .tempfile_in(dir)
                    .and_then(|mut tmp| {
                        tmp.write_all(f.render().as_bytes())?;
                        Ok(tmp.into_temp_path())
                    });
                match written {
                    Ok(tmp) => staged.push((tmp, path)),
                    Err(e) => {
                        write_error = Some(CliError::failed(
                            format!("{}: cannot write", path.display()),
                            e,
                        ))
                    }
                }
            });
            if !errs.is_empty() {
                return Err(CliError::Inputs(
                    errs.iter().map(|e| e.to_string()).collect(),
                ));
            }
            if let Some(e) = write_error {
                return Err(e);
            }
            for (tmp, path) in staged {
                tmp.persist(&path).map_err(|e| {
                    CliError::failed(format!("{}: cannot write", path.display()), e)
                })?;
                eprintln!("wrote {}", path.display());
            }
        }
    }
    Ok(ExitStatus::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_labels_parse() {
        let ok = parse_extra_labels(&["a=b".into(), "cmd=x=y".into(), "e=".into()]).unwrap();
        assert_eq!(ok["a"], "b");
        assert_eq!(ok["cmd"], "x=y");
        assert_eq!(ok["e"], "");
        let errs = parse_extra_labels(&["nokv".into(), "__name__=1".into()]).unwrap_err();
        assert_eq!(errs.len(), 2);
        assert!(errs[0].contains("--extra-labels") && errs[0].contains("key=value"));
        assert!(errs[1].contains("invalid label name"));
    }
}
