//! `slogate demo`: the self-contained scenario (no cluster, no Prometheus, no network):
//! slogate's real rollout controller, guard, state store, git adapter and `promote` gate
//! against a simulated service. See [`crate::demo::scenario`].

use std::io::IsTerminal;
use std::path::PathBuf;

use super::{CliError, ExitStatus};
use crate::demo::scenario::{self, DemoError, Options};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Progress as it happens, a summary and the git log.
    Text,
    /// Progress on stderr; the outcome as JSON on stdout.
    Json,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Seed of the simulated traffic: the same seed gives the same decisions.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Time compression: 1 runs a 30-second rollout interval in about a second of wall
    /// time; 2 is twice as fast; 100 barely waits.
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Keep the GitOps remote, the clones, slogate's state and the weights in DIR (new or
    /// empty) instead of a temporary directory removed at the end.
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,
    #[arg(short, long, value_enum, default_value = "text")]
    pub output: Output,
}

pub fn run(args: Args) -> Result<ExitStatus, CliError> {
    let json = args.output == Output::Json;
    let (out, tty): (Box<dyn std::io::Write + Send>, bool) = if json {
        (Box::new(std::io::stderr()), std::io::stderr().is_terminal())
    } else {
        (Box::new(std::io::stdout()), std::io::stdout().is_terminal())
    };
    let opts = Options {
        seed: args.seed,
        speed: args.speed,
        keep: args.keep,
        color: tty && std::env::var_os("NO_COLOR").is_none(),
    };
    let rt = super::runtime()?;
    let outcome = rt.block_on(scenario::run(opts, out)).map_err(cli_error)?;
    if json {
        let text = serde_json::to_string_pretty(&outcome)
            .map_err(|e| CliError::failed("cannot encode JSON", e))?;
        println!("{text}");
    }
    Ok(ExitStatus::Success)
}

/// A setup error is the user's (exit 2), printed without the `demo setup:` prefix; any
/// other is a failure of the demo (exit 1). Causes stay sources.
fn cli_error(e: DemoError) -> CliError {
    match e {
        DemoError::Setup(m) => CliError::Input(m),
        DemoError::SetupFailed { context, source } => CliError::InputFailed { context, source },
        DemoError::SetupFailure(source) => CliError::InputFailure(source),
        other => CliError::failure(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::error_chain;

    /// The setup errors exit 2 with the text printed before, and keep their cause.
    #[test]
    fn a_setup_error_is_input_and_keeps_its_cause() {
        let e = cli_error(DemoError::Setup(
            "--speed: expected a positive number".into(),
        ));
        assert_eq!(
            (e.exit_code(), error_chain(&e)),
            (2, "--speed: expected a positive number".to_string())
        );
        let e = cli_error(DemoError::SetupFailed {
            context: "cannot create /x".into(),
            source: Box::new(std::io::Error::other("read-only file system")),
        });
        assert_eq!(
            (e.exit_code(), error_chain(&e)),
            (2, "cannot create /x: read-only file system".to_string())
        );
        let source = std::error::Error::source(&e).expect("a source");
        assert!(source.is::<std::io::Error>(), "{source:?}");
        let windows =
            crate::slo::windows::AlertWindows::from_yaml("w.yml", "[").expect_err("not YAML");
        let text = windows.to_string();
        let e = cli_error(DemoError::SetupFailure(Box::new(windows)));
        assert_eq!((e.exit_code(), error_chain(&e)), (2, text));
    }

    /// A failed step is the demo's failure (exit 1) with its text, and keeps its error.
    #[test]
    fn a_failed_step_keeps_its_error() {
        let json = serde_json::from_str::<crate::model::traffic::Weights>("{").expect_err("{");
        let text = json.to_string();
        let e = cli_error(DemoError::Step(Box::new(json)));
        assert_eq!((e.exit_code(), error_chain(&e)), (1, text.clone()));
        // The CLI's error is the demo's as it is: its source is the step's error.
        let source = std::error::Error::source(&e).expect("the step's error");
        assert!(source.is::<serde_json::Error>(), "{source:?}");
        let e = cli_error(DemoError::StepFailed {
            context: "/tmp/weights.json".into(),
            source: Box::new(std::io::Error::other("permission denied")),
        });
        assert_eq!(
            (e.exit_code(), error_chain(&e)),
            (1, "/tmp/weights.json: permission denied".to_string())
        );
    }
}
