//! `slogate decisions`: print the decision log, from a state directory (local runs, the
//! demo) or from a running daemon's `GET /api/v1/decisions`.

use std::path::PathBuf;
use std::time::Duration;

use reqwest::StatusCode;

use super::{CliError, ExitStatus};
use crate::adapters::daemon_api::DaemonApi;
use crate::adapters::state::FileStore;
use crate::ports::state::{DecisionKind, DecisionQuery, DecisionRecord, StateStore};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Table,
    Json,
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("from").required(true).args(["state_dir", "url"])))]
pub struct Args {
    /// State directory of a local slogate (the `state.dir` setting).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Base URL of a running slogate daemon (`http://slogate.slogate.svc:8080`).
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Only decisions about this app, rollout (`ns/name`) or SLO.
    #[arg(long)]
    pub subject: Option<String>,
    /// Only this kind of decision.
    #[arg(long, value_enum)]
    pub kind: Option<KindArg>,
    /// Only decisions at or after this time (RFC 3339).
    #[arg(long, value_name = "RFC3339")]
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// At most this many (the most recent).
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    #[arg(long, short, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KindArg {
    Guard,
    Rollout,
    Promote,
    Operator,
    KnownGood,
}

impl From<KindArg> for DecisionKind {
    fn from(k: KindArg) -> Self {
        match k {
            KindArg::Guard => DecisionKind::Guard,
            KindArg::Rollout => DecisionKind::Rollout,
            KindArg::Promote => DecisionKind::Promote,
            KindArg::Operator => DecisionKind::Operator,
            KindArg::KnownGood => DecisionKind::KnownGood,
        }
    }
}

pub fn run(args: Args) -> Result<ExitStatus, CliError> {
    let query = DecisionQuery {
        subject: args.subject.clone(),
        kind: args.kind.map(Into::into),
        since: args.since,
        limit: Some(args.limit),
    };
    let rt = super::runtime()?;
    let records = match (&args.state_dir, &args.url) {
        (Some(dir), _) => {
            if !dir.is_dir() {
                return Err(CliError::Input(format!(
                    "--state-dir {}: expected an existing slogate state directory",
                    dir.display()
                )));
            }
            let store = FileStore::open(dir)
                .map_err(|e| CliError::input_failed(format!("--state-dir {}", dir.display()), e))?;
            rt.block_on(store.decisions(&query))
                .map_err(CliError::failure)?
        }
        (None, Some(url)) => rt.block_on(fetch(url, &query))?,
        (None, None) => {
            return Err(CliError::Input(
                "expected --state-dir DIR or --url URL".into(),
            ))
        }
    };
    print(&records, args.output)?;
    Ok(ExitStatus::Success)
}

/// How long `GET /api/v1/decisions` may take.
const TIMEOUT: Duration = Duration::from_secs(30);

async fn fetch(base: &str, q: &DecisionQuery) -> Result<Vec<DecisionRecord>, CliError> {
    let api = DaemonApi::new(base, TIMEOUT, TIMEOUT)?;
    let mut url = api.url(&["api", "v1", "decisions"]);
    {
        let mut p = url.query_pairs_mut();
        if let Some(s) = &q.subject {
            p.append_pair("subject", s);
        }
        if let Some(k) = q.kind {
            let k = serde_json::to_value(k).ok();
            if let Some(serde_json::Value::String(k)) = k {
                p.append_pair("kind", &k);
            }
        }
        if let Some(t) = q.since {
            p.append_pair("since", &t.to_rfc3339());
        }
        if let Some(l) = q.limit {
            p.append_pair("limit", &l.to_string());
        }
    }
    Ok(api.get(url).await?.json(&[StatusCode::OK])?)
}

fn print(records: &[DecisionRecord], output: Output) -> Result<(), CliError> {
    match output {
        Output::Json => {
            let s = serde_json::to_string_pretty(records)
                .map_err(|e| CliError::failed("cannot encode JSON", e))?;
            println!("{s}");
        }
        Output::Table => {
            if records.is_empty() {
                println!("no decisions");
            }
            for r in records {
                let commits: Vec<&str> = r.commits.iter().map(|c| &c[..c.len().min(12)]).collect();
                println!(
                    "{}  {:<10} {:<24} {:<16} {}",
                    r.time.format("%Y-%m-%d %H:%M:%S"),
                    serde_json::to_value(r.kind)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default(),
                    r.subject,
                    r.action,
                    r.reason
                );
                if !commits.is_empty() {
                    println!("{:>21}commits: {}", "", commits.join(" "));
                }
                if let Some(o) = &r.outcome {
                    println!("{:>21}outcome: {o}", "");
                }
            }
        }
    }
    Ok(())
}
