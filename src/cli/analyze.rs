//! `slogate analyze --prometheus URL ROLLOUT_FILE`: one interval of a Rollout's analysis,
//! as the controller would run it at a step, printed per metric.
//!
//! The window is `[at − interval, at]` (`--at`, default now). Threshold and built-in metrics
//! are instant queries at its end, comparative metrics range queries over it, judged by the
//! statistical judge; the sequential error-count test judges this one interval on its own
//! (in a rollout it accumulates every interval). `{{ version }}` in a query needs
//! `--canary-version` and `--stable-version`.
//!
//! Exit codes: 0 when the verdict is pass or inconclusive, 1 when it is fail, 2 on bad input
//! (the file, the flags, a query Prometheus rejects or cannot answer; the results are
//! printed first).

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{CliError, ExitStatus};
use crate::adapters::prometheus::Prometheus;
use crate::rollout::checks::{self, AnalysisWindow, CheckKind, CheckResult, Versions};
use crate::rollout::status::Verdict;
use crate::rollout::Rollout;
use crate::runtime::rollout::analysis::run_interval;
use crate::slo::PromDuration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Json,
    Table,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Prometheus base URL, e.g. http://127.0.0.1:9090.
    #[arg(long, env = "SLOGATE_PROMETHEUS_URL")]
    pub prometheus: String,
    /// The Rollout file (one `slogate.dev/v1alpha1 Rollout` document).
    pub file: PathBuf,
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: Output,
    /// The canary's version (`{{ version }}` in the canary's queries).
    #[arg(long, value_name = "V")]
    pub canary_version: Option<String>,
    /// The stable version (`{{ version }}` in the stable side of comparative metrics).
    #[arg(long, value_name = "V")]
    pub stable_version: Option<String>,
    /// End of the interval (RFC 3339) instead of now.
    #[arg(long, value_parser = parse_time)]
    pub at: Option<DateTime<Utc>>,
    /// Timeout of each Prometheus query.
    #[arg(long, default_value = "30s")]
    pub timeout: PromDuration,
}

fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{e}: expected an RFC 3339 time such as 2026-11-23T10:00:00Z"))
}

/// One check as printed.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckLine {
    pub metric: String,
    pub kind: CheckKind,
    /// `pass`, `fail` or `inconclusive`.
    pub result: String,
    pub value: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub p_value: Option<f64>,
    pub decisive: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dispersion: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_reject_interval: Option<u64>,
    pub reason: String,
}

impl From<&CheckResult> for CheckLine {
    fn from(c: &CheckResult) -> Self {
        CheckLine {
            metric: c.metric.clone(),
            kind: c.kind,
            result: c.verdict.to_string(),
            value: c.value,
            min: c.min,
            max: c.max,
            p_value: c.p_value,
            decisive: c.decisive,
            dispersion: c.dispersion,
            first_reject_interval: c.first_reject_interval,
            reason: c.reason.clone(),
        }
    }
}

/// A query that could not run.
#[derive(Debug, Clone, Serialize)]
pub struct QueryError {
    pub promql: String,
    pub error: String,
}

/// The `-o json` document.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisOutput {
    pub rollout: String,
    pub window: AnalysisWindow,
    pub interval: String,
    pub canary_version: Option<String>,
    pub stable_version: Option<String>,
    /// `pass`, `fail` or `inconclusive`.
    pub verdict: String,
    pub decisive: bool,
    pub reason: String,
    pub canary_requests: Option<f64>,
    pub checks: Vec<CheckLine>,
    pub query_errors: Vec<QueryError>,
}

fn load(file: &PathBuf) -> Result<Rollout, CliError> {
    let report = crate::rollout::load::load_paths(std::slice::from_ref(file));
    for w in &report.warnings {
        eprintln!("{w}");
    }
    if !report.errors.is_empty() {
        return Err(CliError::Inputs(
            report.errors.iter().map(ToString::to_string).collect(),
        ));
    }
    match report.rollouts.len() {
        1 => Ok(report
            .rollouts
            .into_iter()
            .next()
            .map(|r| r.rollout)
            .ok_or_else(|| CliError::Input(format!("{}: no Rollout", file.display())))?),
        0 => Err(CliError::Input(format!(
            "{}: no Rollout found: expected one slogate.dev/v1alpha1 Rollout document",
            file.display()
        ))),
        n => Err(CliError::Input(format!(
            "{}: {n} Rollouts found: expected exactly one",
            file.display()
        ))),
    }
}

/// Whether any query of the rollout uses `{{ version }}`.
fn uses_version(r: &Rollout) -> Vec<String> {
    r.spec
        .analysis
        .metrics
        .iter()
        .filter(|m| {
            checks::metric_template(m)
                .ok()
                .and_then(|t| checks::template_variables(&t).ok())
                .is_some_and(|vars| vars.iter().any(|v| v == "version"))
        })
        .map(|m| m.name.clone())
        .collect()
}

pub fn run(args: Args) -> Result<ExitStatus, CliError> {
    let rollout = load(&args.file)?;
    let need = uses_version(&rollout);
    if !need.is_empty() && (args.canary_version.is_none() || args.stable_version.is_none()) {
        return Err(CliError::Input(format!(
            "--canary-version and --stable-version: expected both, the queries of {} use {{{{ version }}}}",
            need.join(", ")
        )));
    }
    let timeout = Duration::from_millis(args.timeout.as_millis().max(1));
    let prom = Prometheus::new(&args.prometheus, timeout)
        .map_err(|e| CliError::input_failed("--prometheus", e))?;
    let at = args.at.unwrap_or_else(Utc::now);
    let interval = chrono::Duration::milliseconds(
        i64::try_from(rollout.spec.interval.as_millis()).unwrap_or(i64::MAX / 2),
    );
    let window = AnalysisWindow {
        start: at - interval,
        end: at,
    };
    let versions = Versions {
        canary: args.canary_version.clone().unwrap_or_default(),
        stable: args.stable_version.clone().unwrap_or_default(),
    };
    let (obs, queries) = super::runtime()?
        .block_on(run_interval(&prom, &rollout, &versions, window, timeout))
        .map_err(|e| CliError::input_failed(args.file.display().to_string(), e))?;
    let mut all = obs.checks.clone();
    if let Some(cfg) = &rollout.spec.analysis.error_counts {
        let batch = obs.error_counts.as_ref().and_then(checks::count_batch);
        let requests = obs
            .error_counts
            .map(|c| c.canary_requests)
            .or(obs.canary_requests)
            .unwrap_or(0.0);
        all.push(checks::check_error_counts(
            cfg,
            &[],
            batch.as_ref(),
            requests,
        ));
    }
    let v = checks::combine(all, obs.canary_requests, rollout.spec.min_requests);
    let query_errors: Vec<QueryError> = queries
        .iter()
        .filter_map(|(q, r)| {
            r.outcome.as_ref().err().map(|e| QueryError {
                promql: q.promql.clone(),
                error: e.clone(),
            })
        })
        .collect();
    let out = AnalysisOutput {
        rollout: rollout.key(),
        window,
        interval: rollout.spec.interval.to_string(),
        canary_version: args.canary_version,
        stable_version: args.stable_version,
        verdict: v.verdict.to_string(),
        decisive: v.decisive,
        reason: v.reason.clone(),
        canary_requests: obs.canary_requests,
        checks: v.checks.iter().map(CheckLine::from).collect(),
        query_errors,
    };
    match args.output {
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(&out)
                .map_err(|e| CliError::failed("cannot encode JSON", e))?
        ),
        Output::Table => print!("{}", table(&out)),
    }
    if !out.query_errors.is_empty() {
        return Err(CliError::Inputs(
            out.query_errors
                .iter()
                .map(|q| format!("{}: query failed: {}", args.file.display(), q.error))
                .collect(),
        ));
    }
    Ok(if v.verdict == Verdict::Fail {
        ExitStatus::Rejected
    } else {
        ExitStatus::Success
    })
}

fn num(v: Option<f64>) -> String {
    match v {
        Some(x) if x.abs() >= 1000.0 || x == x.trunc() => format!("{x}"),
        Some(x) => format!("{x:.4}"),
        None => "-".to_string(),
    }
}

/// The results as a table and a verdict line.
pub fn table(o: &AnalysisOutput) -> String {
    let mut s = format!(
        "rollout {}: interval {} from {} to {}\n",
        o.rollout,
        o.interval,
        o.window.start.to_rfc3339(),
        o.window.end.to_rfc3339()
    );
    let rows: Vec<[String; 6]> = o
        .checks
        .iter()
        .map(|c| {
            [
                c.metric.clone(),
                format!("{:?}", c.kind).to_lowercase(),
                c.result.clone(),
                num(c.value),
                num(c.p_value),
                c.reason.clone(),
            ]
        })
        .collect();
    let head = ["METRIC", "KIND", "RESULT", "VALUE", "P-VALUE", "REASON"];
    let mut widths = head.map(str::len);
    for r in &rows {
        for (i, cell) in r.iter().enumerate().take(5) {
            widths[i] = widths[i].max(cell.len());
        }
    }
    let line = |cells: [&str; 6]| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i < 5 {
                l.push_str(&format!("{c:w$}  ", w = widths[i]));
            } else {
                l.push_str(c);
            }
        }
        l.trim_end().to_string() + "\n"
    };
    s.push_str(&line(head));
    for r in &rows {
        s.push_str(&line([&r[0], &r[1], &r[2], &r[3], &r[4], &r[5]]));
    }
    if let Some(n) = o.canary_requests {
        s.push_str(&format!("canary requests: {n:.0}\n"));
    }
    s.push_str(&format!("verdict: {} ({})\n", o.verdict, o.reason));
    s
}
