//! `slogate budget`: error budgets and burn rates of SLOs, from Prometheus.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{CliError, ExitStatus, WindowArgs};
use crate::adapters::prometheus::Prometheus;
use crate::runtime::evaluator::{self, Target};
use crate::slo::budget::BudgetReport;
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
    /// SLO spec files or directories.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Evaluate at this instant (RFC 3339) instead of now.
    #[arg(long, value_parser = parse_time)]
    pub at: Option<DateTime<Utc>>,
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: Output,
    /// Timeout of each Prometheus query.
    #[arg(long, default_value = "30s")]
    pub timeout: PromDuration,
    #[command(flatten)]
    pub windows: WindowArgs,
}

fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{e}: expected an RFC 3339 time such as 2026-11-23T10:00:00Z"))
}

pub fn run(args: Args) -> Result<ExitStatus, CliError> {
    let slos = super::load_slos(&args.files)?;
    let settings = args.windows.settings()?;
    let targets = slos
        .into_iter()
        .map(|slo| {
            let windows = settings
                .for_slo(&slo)
                .map_err(|e| format!("{}: {e}", slo.origin.file.display()))?;
            Ok(Target {
                slo: std::sync::Arc::new(slo),
                windows,
            })
        })
        .collect::<Result<Vec<_>, String>>()
        .map_err(CliError::Input)?;
    let timeout = Duration::from_millis(args.timeout.as_millis().max(1));
    let prom = Prometheus::new(&args.prometheus, timeout)
        .map_err(|e| CliError::input_failed("--prometheus", e))?;

    let evaluation = super::runtime()?.block_on(evaluator::evaluate(&prom, &targets, args.at));

    let errors: Vec<String> = evaluation.errors().map(|e| e.to_string()).collect();
    if !errors.is_empty() {
        return Err(CliError::Inputs(errors));
    }
    let reports: Vec<&BudgetReport> = evaluation.reports().collect();
    match args.output {
        Output::Json => {
            let json = serde_json::to_string_pretty(&reports)
                .map_err(|e| CliError::failed("cannot encode JSON", e))?;
            println!("{json}");
        }
        Output::Table => print!("{}", table(&reports)),
    }
    Ok(ExitStatus::Success)
}

fn pct(v: Option<f64>) -> String {
    v.map(|v| format!("{:.2}%", v * 100.0))
        .unwrap_or_else(|| "no data".into())
}

fn rate(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.2}")).unwrap_or_else(|| "-".into())
}

/// A plain-text table: one row per SLO.
pub fn table(reports: &[&BudgetReport]) -> String {
    let mut windows: Vec<String> = Vec::new();
    for r in reports {
        for w in r.burn_rates.keys() {
            if !windows.contains(w) {
                windows.push(w.clone());
            }
        }
    }
    windows.sort_by_key(|w| w.parse::<PromDuration>().unwrap_or_default());
    let mut header = vec![
        "SLO".to_string(),
        "OBJECTIVE".into(),
        "PERIOD".into(),
        "ERRORS".into(),
        "CONSUMED".into(),
        "REMAINING".into(),
    ];
    header.extend(windows.iter().map(|w| format!("BURN {w}")));
    header.extend(["ACTION".to_string(), "SOURCE".into()]);
    let mut rows = vec![header];
    for r in reports {
        let mut row = vec![
            r.id.clone(),
            format!("{}%", r.objective * 100.0),
            r.period.clone(),
            pct(r.error_ratio),
            pct(r.budget_consumed),
            pct(r.budget_remaining),
        ];
        row.extend(
            windows
                .iter()
                .map(|w| rate(r.burn_rates.get(w).copied().flatten())),
        );
        row.push(r.action.as_str().to_string());
        row.push(
            match r.source {
                crate::slo::budget::Source::RecordingRules => "recording_rules",
                crate::slo::budget::Source::Raw => "raw",
            }
            .to_string(),
        );
        rows.push(row);
    }
    // `rows` always holds the header row pushed above.
    let cols = rows[0].len();
    let widths: Vec<usize> = (0..cols)
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}
