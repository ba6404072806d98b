//! `slogate judge`: the statistical judge on the command line.
//!
//! - `slogate judge --canary FILE --baseline FILE [--direction …] [--tolerance …]
//!   [--confidence …] [--effect-size …] [--kayenta-compat] [-o json|table]` compares two
//!   samples (Mann-Whitney U, Hodges-Lehmann estimate and interval, Kayenta's
//!   classification) and prints `u`, `p_value`, `ci_low`, `ci_high`, `estimate`, `effect`,
//!   `classification` (and the judge's other fields). A file holds numbers one per line
//!   (blank lines and `#` comments skipped; `NaN` allowed and dropped) or one JSON array.
//! - `slogate judge --counts CE,CT --baseline-counts BE,BT [--alpha 0.02] [--dispersion
//!   estimated|binomial]` runs the anytime-valid sequential error-count test: CE errors in CT
//!   canary requests against BE errors in BT baseline requests. Repeat both flags, in order,
//!   for several intervals. The JSON adds the first rejecting interval and the dispersion
//!   estimate. Sums are checked: a total past 2^64 − 1 is bad input (exit 2).
//!
//! Exit codes: 0 when the canary passes; 1 when it fails (High/Low in a failing direction,
//! the sequential test rejecting) or there is no data to judge; 2 on bad input, naming the
//! file and line.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::{CliError, ExitStatus};
use crate::analysis::judge::{
    judge_metric, ClassifierConfig, Direction, EffectSizeMeasure, ErrorBatch,
    ErrorRateSequentialTest, ErrorRateTestConfig, IntervalMode, Label,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Json,
    Table,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DirectionArg {
    Increase,
    Decrease,
    Either,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DispersionArg {
    /// Learn the extra-binomial variance and temper the evidence by it (valid on real
    /// traffic).
    Estimated,
    /// The previous test: errors binomial given the split (invalid when errors cluster).
    Binomial,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EffectSizeArg {
    MeanRatio,
    Cles,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Canary sample: numbers one per line, or a JSON array.
    #[arg(
        long,
        value_name = "FILE",
        requires = "baseline",
        conflicts_with = "counts"
    )]
    pub canary: Option<PathBuf>,
    /// Baseline (stable) sample: numbers one per line, or a JSON array.
    #[arg(long, value_name = "FILE", requires = "canary")]
    pub baseline: Option<PathBuf>,
    /// Which change of the canary fails.
    #[arg(long, value_enum, default_value = "either")]
    pub direction: DirectionArg,
    /// Fraction of |estimate| the interval must clear to count as a change.
    #[arg(long, default_value_t = 0.25)]
    pub tolerance: f64,
    /// Confidence level of the interval, in (0, 1).
    #[arg(long, default_value_t = 0.98)]
    pub confidence: f64,
    /// Effect size compared with the allowed thresholds.
    #[arg(long, value_enum, default_value = "mean-ratio")]
    pub effect_size: EffectSizeArg,
    /// Kayenta's own interval computation instead of the exact Hodges-Lehmann interval.
    #[arg(long)]
    pub kayenta_compat: bool,
    /// Canary errors and requests of one interval, `ERRORS,REQUESTS`; repeat for several.
    // allow_hyphen_values: `--counts -1,100` reaches parse_pair, whose error names the flag
    #[arg(
        long,
        value_name = "CE,CT",
        requires = "baseline_counts",
        allow_hyphen_values = true
    )]
    pub counts: Vec<String>,
    /// Baseline errors and requests of one interval, `ERRORS,REQUESTS`; one per `--counts`.
    #[arg(
        long,
        value_name = "BE,BT",
        requires = "counts",
        allow_hyphen_values = true
    )]
    pub baseline_counts: Vec<String>,
    /// How the sequential test treats the variance of the error counts.
    #[arg(long, value_enum, default_value = "estimated")]
    pub dispersion: DispersionArg,
    /// Significance level of the sequential test.
    #[arg(long, default_value_t = 0.02)]
    pub alpha: f64,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "json")]
    pub output: Output,
}

pub fn run(args: Args) -> Result<ExitStatus, CliError> {
    if !args.counts.is_empty() {
        return run_counts(&args);
    }
    let (Some(canary), Some(baseline)) = (&args.canary, &args.baseline) else {
        return Err(CliError::Input(
            "expected --canary FILE --baseline FILE, or --counts CE,CT --baseline-counts BE,BT"
                .into(),
        ));
    };
    let c = read_sample(canary)?;
    let b = read_sample(baseline)?;
    let effect_size = match args.effect_size {
        EffectSizeArg::MeanRatio => EffectSizeMeasure::MeanRatio,
        EffectSizeArg::Cles => EffectSizeMeasure::Cles,
    };
    let mut config = ClassifierConfig::kayenta_judge_defaults(effect_size);
    config.tolerance = args.tolerance;
    config.confidence = args.confidence;
    config.direction = match args.direction {
        DirectionArg::Increase => Direction::Increase,
        DirectionArg::Decrease => Direction::Decrease,
        DirectionArg::Either => Direction::Either,
    };
    config.mode = if args.kayenta_compat {
        IntervalMode::KayentaCompat
    } else {
        IntervalMode::Exact
    };
    let result = judge_metric(&c, &b, &config).map_err(|e| CliError::InputFailure(Box::new(e)))?;
    let value =
        serde_json::to_value(&result).map_err(|e| CliError::failed("cannot encode JSON", e))?;
    print_value(
        &value,
        args.output,
        &[
            "classification",
            "u",
            "p_value",
            "ci_low",
            "ci_high",
            "estimate",
            "effect",
            "deviation",
            "method",
            "interval_mode",
            "n_canary",
            "n_baseline",
            "reason",
        ],
    )?;
    Ok(match result.classification {
        Label::Pass => ExitStatus::Success,
        Label::High | Label::Low | Label::Nodata | Label::NodataFailMetric => ExitStatus::Rejected,
    })
}

fn run_counts(args: &Args) -> Result<ExitStatus, CliError> {
    if args.counts.len() != args.baseline_counts.len() {
        return Err(CliError::Input(format!(
            "{} --counts but {} --baseline-counts: expected one --baseline-counts per --counts",
            args.counts.len(),
            args.baseline_counts.len()
        )));
    }
    let config = match args.dispersion {
        DispersionArg::Estimated => ErrorRateTestConfig {
            alpha: args.alpha,
            ..ErrorRateTestConfig::default()
        },
        DispersionArg::Binomial => ErrorRateTestConfig::binomial(args.alpha),
    };
    let mut test =
        ErrorRateSequentialTest::new(config).map_err(|e| CliError::input_failed("--alpha", e))?;
    let mut last = None;
    let (mut ce_sum, mut ct_sum, mut be_sum, mut bt_sum) = (0u64, 0u64, 0u64, 0u64);
    for (i, (c, b)) in args.counts.iter().zip(&args.baseline_counts).enumerate() {
        let (ce, ct) = parse_pair("--counts", i, c)?;
        let (be, bt) = parse_pair("--baseline-counts", i, b)?;
        if ct.checked_add(bt).is_none() {
            return Err(CliError::Input(format!(
                "interval {}: canary requests {ct} plus baseline requests {bt} overflow a 64-bit count: expected a total below {}",
                i + 1,
                u64::MAX
            )));
        }
        let batch = ErrorBatch::from_requests(ce, ct, be, bt).map_err(|e| {
            CliError::Input(format!(
                "interval {}: {e}: expected errors <= requests",
                i + 1
            ))
        })?;
        last = Some(
            test.update(batch)
                .map_err(|e| CliError::input_failed(format!("interval {}", i + 1), e))?,
        );
        let add = |sum: u64, x: u64, what: &str| {
            sum.checked_add(x).ok_or_else(|| {
                CliError::Input(format!(
                    "interval {}: the total of {what} overflows a 64-bit count: expected totals below {}",
                    i + 1,
                    u64::MAX
                ))
            })
        };
        ce_sum = add(ce_sum, ce, "canary errors")?;
        ct_sum = add(ct_sum, ct, "canary requests")?;
        be_sum = add(be_sum, be, "baseline errors")?;
        bt_sum = add(bt_sum, bt, "baseline requests")?;
    }
    // At least one pair was given (clap requires --counts to get here).
    let Some(r) = last else {
        return Err(CliError::Input("expected --counts CE,CT".into()));
    };
    let rate = |e: u64, t: u64| {
        if t == 0 {
            None
        } else {
            Some(e as f64 / t as f64)
        }
    };
    let classification = if r.reject { "High" } else { "Pass" };
    let value = json!({
        "classification": classification,
        "p_value": r.p_value,
        "reject": r.reject,
        "alpha": r.alpha,
        "log_e_value": r.log_e_value,
        "intervals": r.looks,
        "first_reject_interval": r.first_reject_look,
        "dispersion": test.dispersion(),
        "dispersion_model": match args.dispersion {
            DispersionArg::Estimated => "estimated",
            DispersionArg::Binomial => "binomial",
        },
        "canary_error_rate": rate(ce_sum, ct_sum),
        "baseline_error_rate": rate(be_sum, bt_sum),
    });
    print_value(
        &value,
        args.output,
        &[
            "classification",
            "p_value",
            "reject",
            "alpha",
            "log_e_value",
            "intervals",
            "first_reject_interval",
            "dispersion",
            "dispersion_model",
            "canary_error_rate",
            "baseline_error_rate",
        ],
    )?;
    Ok(if r.reject {
        ExitStatus::Rejected
    } else {
        ExitStatus::Success
    })
}

fn parse_pair(flag: &str, i: usize, text: &str) -> Result<(u64, u64), CliError> {
    let bad = || {
        CliError::Input(format!(
            "{flag} {text:?} (number {}): expected ERRORS,REQUESTS as two whole numbers, e.g. 3,1000",
            i + 1
        ))
    };
    let (a, b) = text.split_once(',').ok_or_else(bad)?;
    let a = a.trim().parse().map_err(|_| bad())?;
    let b = b.trim().parse().map_err(|_| bad())?;
    Ok((a, b))
}

fn print_value(value: &serde_json::Value, output: Output, keys: &[&str]) -> Result<(), CliError> {
    match output {
        Output::Json => {
            let text = serde_json::to_string_pretty(value)
                .map_err(|e| CliError::failed("cannot encode JSON", e))?;
            println!("{text}");
        }
        Output::Table => {
            let width = keys.iter().map(|k| k.len()).max().unwrap_or(0);
            for k in keys {
                let v = match value.get(*k) {
                    None | Some(serde_json::Value::Null) => "-".to_string(),
                    Some(serde_json::Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                };
                println!("{k:<width$}  {v}");
            }
        }
    }
    Ok(())
}

/// Read a sample file: one number per line (blank lines and `#` comments skipped) or a JSON
/// array of numbers. Errors name the file and line (or array element).
pub fn read_sample(path: &Path) -> Result<Vec<f64>, CliError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        CliError::input_failed(format!("{}: cannot read the file", path.display()), e)
    })?;
    parse_sample(path, &text)
}

fn parse_sample(path: &Path, text: &str) -> Result<Vec<f64>, CliError> {
    let shown = path.display();
    let values = if text.trim_start().starts_with('[') {
        let v: Vec<serde_json::Value> = serde_json::from_str(text).map_err(|e| {
            CliError::input_failed(
                format!("{shown}:{}: not a JSON array of numbers", e.line()),
                e,
            )
        })?;
        v.iter()
            .enumerate()
            .map(|(i, x)| match x {
                serde_json::Value::Number(n) => n.as_f64().ok_or(i),
                serde_json::Value::Null => Ok(f64::NAN),
                _ => Err(i),
            })
            .collect::<Result<Vec<f64>, usize>>()
            .map_err(|i| {
                CliError::Input(format!(
                    "{shown}: element {i} is {}: expected a number",
                    v[i]
                ))
            })?
    } else {
        let mut out = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let l = line.split('#').next().unwrap_or("").trim();
            if l.is_empty() {
                continue;
            }
            match l.parse::<f64>() {
                Ok(x) if !x.is_infinite() => out.push(x),
                _ => {
                    return Err(CliError::Input(format!(
                        "{shown}:{}: expected a number, found {l:?}",
                        n + 1
                    )))
                }
            }
        }
        out
    };
    if values.is_empty() {
        return Err(CliError::Input(format!(
            "{shown}: no numbers: expected one number per line or a JSON array"
        )));
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines_and_arrays() {
        let p = Path::new("s.txt");
        assert_eq!(
            parse_sample(p, "1\n\n# c\n2.5 # x\nNaN\n").unwrap()[..2],
            [1.0, 2.5]
        );
        assert_eq!(parse_sample(p, "[1, 2, null]").unwrap().len(), 3);
        let e = parse_sample(p, "1\nabc\n").unwrap_err().to_string();
        assert_eq!(e, "s.txt:2: expected a number, found \"abc\"");
        let e = parse_sample(p, "[1, \"x\"]").unwrap_err().to_string();
        assert!(e.starts_with("s.txt: element 1"), "{e}");
        assert!(parse_sample(p, "# nothing\n").is_err());
        assert!(parse_sample(p, "inf\n").is_err());
        // Malformed JSON: the file and line, serde's error as the source; exit 2.
        let e = parse_sample(p, "[1,\n").unwrap_err();
        let serde = std::error::Error::source(&e).expect("serde's error");
        assert!(serde.is::<serde_json::Error>(), "{serde:?}");
        assert_eq!(
            (e.exit_code(), crate::ports::error_chain(&e)),
            (2, format!("s.txt:2: not a JSON array of numbers: {serde}"))
        );
    }

    #[test]
    fn count_pairs() {
        assert_eq!(parse_pair("--counts", 0, "3, 100").unwrap(), (3, 100));
        assert!(parse_pair("--counts", 0, "3").is_err());
        assert!(parse_pair("--counts", 0, "a,1").is_err());
    }
}
