//! Command-line front end. Each subcommand lives in its own file with its clap arguments and
//! a `run` function returning an [`ExitStatus`] or a [`CliError`].
//!
//! Exit codes: 0 success, 1 a gate or check said no, 2 bad input.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::ports::{error_chain, BoxError};

pub mod analyze;
pub mod approve;
pub mod budget;
pub mod crd;
pub mod decisions;
pub mod demo;
pub mod judge;
pub mod promote;
pub mod rollout;
pub mod rules;
pub mod run;
pub mod validate;

/// What a command decided, mapped to the process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// 0: success.
    Success,
    /// 1: a gate or check said no.
    Rejected,
}

/// Errors that end a command. Every variant maps to an exit code. [`main`] prints the error
/// with its causes ([`error_chain`]): a variant that keeps its cause as the source shows it
/// there.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad input (files, flags, queries that fail): exit 2. The message names the file, the
    /// field and what was expected.
    #[error("{0}")]
    Input(String),
    /// Bad input with its cause: exit 2. The message says which input (a directory, a
    /// flag), the cause is the source.
    #[error("{context}")]
    InputFailed {
        context: String,
        #[source]
        source: BoxError,
    },
    /// Bad input that is a lower layer's error as it is (it names the file or flag): exit 2.
    #[error(transparent)]
    InputFailure(BoxError),
    /// Several input problems, one per line: exit 2.
    #[error("{}", .0.join("\n"))]
    Inputs(Vec<String>),
    /// A runtime failure of the daemon or an I/O operation that is not the user's input,
    /// composed here with no underlying error: exit 1.
    #[error("{0}")]
    Runtime(String),
    /// A runtime failure with its cause: exit 1. The message says what failed (`cannot
    /// encode JSON`), the cause is the source.
    #[error("{context}")]
    Failed {
        context: String,
        #[source]
        source: BoxError,
    },
    /// A runtime failure that is a lower layer's error as it is (the state store's, the
    /// daemon API's): exit 1.
    #[error(transparent)]
    Failure(BoxError),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Input(_)
            | CliError::InputFailed { .. }
            | CliError::InputFailure(_)
            | CliError::Inputs(_) => 2,
            CliError::Runtime(_) | CliError::Failed { .. } | CliError::Failure(_) => 1,
        }
    }

    /// A runtime failure: `context` says what failed, `source` why.
    pub fn failed(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        CliError::Failed {
            context: context.into(),
            source: source.into(),
        }
    }

    /// Bad input: `context` names it (`--prometheus`), `source` says what is wrong.
    pub fn input_failed(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        CliError::InputFailed {
            context: context.into(),
            source: source.into(),
        }
    }

    /// A runtime failure that is `source` as it is.
    pub fn failure(source: impl Into<BoxError>) -> Self {
        CliError::Failure(source.into())
    }
}

/// A failure of the daemon's API behind `--url`: a bad URL or token file is the user's
/// input (exit 2), anything else a runtime failure (exit 1).
impl From<crate::adapters::daemon_api::DaemonApiError> for CliError {
    fn from(e: crate::adapters::daemon_api::DaemonApiError) -> Self {
        use crate::adapters::daemon_api::DaemonApiError as E;
        match e {
            E::Url { .. } | E::UrlCredentials => CliError::Input(format!("--url {e}")),
            E::Token(m) => CliError::Input(format!("--token-file: {m}")),
            e => CliError::failure(e),
        }
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "slogate",
    version,
    about = "Error-budget aware progressive delivery: SLO budgets, canary analysis, GitOps reverts"
)]
pub struct Cli {
    /// Log filter (tracing EnvFilter syntax), e.g. `info` or `slogate=debug`.
    #[arg(long, global = true, env = "SLOGATE_LOG", default_value = "info")]
    pub log: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The self-contained demo: a healthy canary promoted, a bad one aborted and reverted,
    /// a budget burn reverted and frozen, a promotion refused (no cluster, no network).
    Demo(demo::Args),
    /// Check SLO spec and Rollout files and report every problem (exit 2 when any).
    Validate(validate::Args),
    /// Generate Sloth-compatible Prometheus recording and alert rules.
    Rules(rules::Args),
    /// Compute error budgets and burn rates from Prometheus.
    Budget(budget::Args),
    /// Run the daemon.
    Run(run::Args),
    /// Print the decision log (what slogate saw, decided and did).
    Decisions(decisions::Args),
    /// Print the Rollout CustomResourceDefinition (rollouts.slogate.dev).
    Crd(crd::Args),
    /// Compare canary and baseline samples with the statistical judge, or error counts with
    /// the sequential test (exit 1 when the canary fails).
    Judge(judge::Args),
    /// CI gate: promote an image from a source to a target Kustomize overlay when the
    /// source's SLOs, the target's freeze and (optionally) an approval allow it.
    Promote(Box<promote::Args>),
    /// Approve one exact promotion (repo, target overlay, image and tag) for
    /// `promote --require-approval`.
    Approve(approve::Args),
    /// Run one interval of a Rollout's analysis against Prometheus and print every metric's
    /// result (exit 1 when the verdict is fail).
    Analyze(analyze::Args),
    /// Show a rollout, or promote, abort, pause, resume or approve it (through a daemon's
    /// API or a local state directory).
    Rollout(rollout::Args),
}

/// Parse arguments, run the command, and map the outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo narrates on its own; its logs stay at warnings unless --log/SLOGATE_LOG
    // asks for more.
    let demo_default = matches!(cli.command, Command::Demo(_))
        && cli.log == "info"
        && std::env::var_os("SLOGATE_LOG").is_none();
    init_tracing(if demo_default { "warn" } else { &cli.log });
    let result = match cli.command {
        Command::Demo(a) => demo::run(a),
        Command::Validate(a) => validate::run(a),
        Command::Rules(a) => rules::run(a),
        Command::Budget(a) => budget::run(a),
        Command::Run(a) => run::run(a),
        Command::Decisions(a) => decisions::run(a),
        Command::Crd(a) => crd::run(a),
        Command::Judge(a) => judge::run(a),
        Command::Promote(a) => promote::run(*a),
        Command::Approve(a) => approve::run(a),
        Command::Analyze(a) => analyze::run(a),
        Command::Rollout(a) => rollout::run(a),
    };
    match result {
        Ok(ExitStatus::Success) => ExitCode::SUCCESS,
        Ok(ExitStatus::Rejected) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            ExitCode::from(e.exit_code())
        }
    }
}

fn init_tracing(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Logs go to stderr so that stdout stays machine-readable (`-o json`).
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Build the tokio runtime for async commands.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::failed("cannot start the async runtime", e))
}

/// `--period` and `--windows`, shared by the commands that need alert windows.
#[derive(Debug, Clone, clap::Args)]
pub struct WindowArgs {
    /// Default SLO period for SLOs that declare none (built-in catalogs: 30d, 28d).
    #[arg(long, value_name = "DURATION")]
    pub period: Option<crate::slo::PromDuration>,
    /// A custom alert-window catalog (Sloth `sloth.slok.dev/v1 AlertWindows` YAML).
    #[arg(long, value_name = "FILE")]
    pub windows: Option<std::path::PathBuf>,
}

impl WindowArgs {
    /// Build the period/window settings, reporting every problem with the flags.
    pub fn settings(&self) -> Result<crate::slo::windows::WindowSettings, CliError> {
        use crate::slo::AlertWindows;
        let mut errors = Vec::new();
        let period = match self.period {
            Some(p) if p.as_millis() == 0 => {
                errors.push("--period 0s: expected a positive duration such as 30d".to_string());
                None
            }
            other => other,
        };
        let catalog = match &self.windows {
            None => None,
            Some(path) => match AlertWindows::from_file(path) {
                Ok(w) => Some(w),
                Err(e) => {
                    errors.push(format!("--windows {e}"));
                    None
                }
            },
        };
        if let Some(p) = period {
            match catalog {
                Some(c) if c.slo_period != p => errors.push(format!(
                    "--period {p}: the --windows catalog {} is for period {}: expected the same \
                     period (or leave out --period)",
                    self.windows
                        .as_ref()
                        .map(|w| w.display().to_string())
                        .unwrap_or_default(),
                    c.slo_period
                )),
                Some(_) => {}
                None => {
                    if let Err(e) = AlertWindows::builtin(p) {
                        errors.push(format!("--period {p}: {e}"));
                    }
                }
            }
        }
        if !errors.is_empty() {
            return Err(CliError::Inputs(errors));
        }
        Ok(crate::slo::windows::WindowSettings {
            default_period: period,
            catalog,
        })
    }
}

/// Load SLO specs from files and directories. Warnings go to stderr; any error ends the
/// command with exit 2, listing every problem.
pub fn load_slos(paths: &[std::path::PathBuf]) -> Result<Vec<crate::slo::Slo>, CliError> {
    load_specs(paths).map(|report| report.slos)
}

/// [`load_slos`] with everything the load found (the SLOs' Sloth plugins too).
pub fn load_specs(paths: &[std::path::PathBuf]) -> Result<crate::slo::spec::LoadReport, CliError> {
    let report = crate::slo::spec::load_paths(paths);
    for w in &report.warnings {
        eprintln!("{w}");
    }
    if !report.errors.is_empty() {
        return Err(CliError::Inputs(
            report.errors.iter().map(ToString::to_string).collect(),
        ));
    }
    if report.slos.is_empty() {
        let names: Vec<String> = paths.iter().map(|f| f.display().to_string()).collect();
        return Err(CliError::Input(format!(
            "{}: no SLOs found: expected Sloth prometheus/v1, sloth.slok.dev/v1 \
             PrometheusServiceLevel or OpenSLO SLO documents",
            names.join(", ")
        )));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A runtime failure keeps its cause as the source, and `main` prints both.
    #[test]
    fn a_runtime_failure_keeps_its_cause() {
        let cause = serde_json::from_str::<u8>("x").unwrap_err();
        let text = cause.to_string();
        let e = CliError::failed("cannot encode JSON", cause);
        assert_eq!(e.exit_code(), 1);
        assert_eq!(error_chain(&e), format!("cannot encode JSON: {text}"));
        let source = std::error::Error::source(&e).expect("a source");
        assert!(source.is::<serde_json::Error>(), "{source:?}");
        // A lower layer's error as it is: its own text, its own causes.
        let e = CliError::failure(std::io::Error::other("disk full"));
        assert_eq!(
            (e.exit_code(), error_chain(&e)),
            (1, "disk full".to_string())
        );
    }

    fn settings(period: Option<&str>, windows: Option<&str>) -> Result<(), String> {
        WindowArgs {
            period: period.map(|p| p.parse().unwrap()),
            windows: windows.map(PathBuf::from),
        }
        .settings()
        .map(|_| ())
        .map_err(|e| e.to_string())
    }

    #[test]
    fn window_flags_are_checked() {
        assert!(settings(Some("28d"), None).is_ok());
        assert!(settings(None, None).is_ok());
        let e = settings(Some("7d"), None).unwrap_err();
        assert!(e.contains("--period 1w") && e.contains("--windows"), "{e}");
        let e = settings(None, Some("/nonexistent/w.yaml")).unwrap_err();
        assert!(e.contains("--windows /nonexistent/w.yaml"), "{e}");
        let e = settings(Some("0s"), None).unwrap_err();
        assert!(e.contains("positive"), "{e}");
    }
}
