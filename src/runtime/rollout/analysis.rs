//! One analysis interval through the `MetricsSource` port: the queries of
//! [`checks::plan`] are run (instant queries at the window's end, range queries over the
//! window, all at once, each under a timeout) and their samples handed to
//! [`checks::evaluate`]. Used by the rollout controller and by `slogate analyze`.
//!
//! A query that fails or times out is not an error of the interval: its check becomes
//! inconclusive with the error as the reason, exactly like an empty result.

use std::time::Duration;

use crate::ports::metrics::MetricsSource;
use crate::rollout::checks::{
    self, AnalysisWindow, IntervalObservation, PlannedQuery, QueryKind, QueryResult, TemplateError,
    Versions,
};
use crate::rollout::Rollout;

/// Run every query of one interval and evaluate the checks. `timeout` bounds each query
/// (the adapter has its own as well). Fails only on a template error (a Rollout that passed
/// validation has none).
pub async fn run_interval(
    source: &dyn MetricsSource,
    rollout: &Rollout,
    versions: &Versions,
    window: AnalysisWindow,
    timeout: Duration,
) -> Result<(IntervalObservation, Vec<(PlannedQuery, QueryResult)>), TemplateError> {
    let plan = checks::plan(rollout, versions, &window)?;
    let results =
        futures::future::join_all(plan.iter().map(|q| run_query(source, q, timeout))).await;
    let obs = checks::evaluate(rollout, window, &results);
    Ok((obs, plan.into_iter().zip(results).collect()))
}

/// Run one planned query: every sample value of every series (for a range query, every
/// point), or the error as text.
pub async fn run_query(
    source: &dyn MetricsSource,
    q: &PlannedQuery,
    timeout: Duration,
) -> QueryResult {
    let outcome = match q.kind {
        QueryKind::Instant { at } => {
            match tokio::time::timeout(timeout, source.instant(&q.promql, Some(at))).await {
                Ok(Ok(samples)) => Ok(samples.into_iter().map(|s| s.value).collect()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!(
                    "no answer within {}s; query: {}",
                    timeout.as_secs(),
                    q.promql
                )),
            }
        }
        QueryKind::Range {
            start,
            end,
            step_ms,
        } => {
            let step = Duration::from_millis(step_ms.max(1));
            match tokio::time::timeout(timeout, source.range(&q.promql, start, end, step)).await {
                Ok(Ok(series)) => Ok(series
                    .into_iter()
                    .flat_map(|s| s.points.into_iter().map(|(_, v)| v))
                    .collect()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!(
                    "no answer within {}s; query: {}",
                    timeout.as_secs(),
                    q.promql
                )),
            }
        }
    };
    QueryResult {
        role: q.role.clone(),
        outcome,
    }
}
