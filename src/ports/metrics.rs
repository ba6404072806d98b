//! `MetricsSource`: read-only PromQL evaluation.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

/// One element of an instant vector (a scalar result comes back as one sample with no labels).
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// One element of an instant vector reduced to one label's value (see
/// [`MetricsSource::instant_label_values`]).
#[derive(Debug, Clone, PartialEq)]
pub struct LabelValue {
    pub label: Option<Box<str>>,
    pub value: f64,
}

/// One series of a range query.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: BTreeMap<String, String>,
    /// `(unix seconds, value)` pairs, oldest first.
    pub points: Vec<(f64, f64)>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum MetricsError {
    /// The URL is not one slogate can query (the message says why, no underlying error).
    #[error("invalid Prometheus URL {url:?}: {message}")]
    InvalidUrl { url: String, message: String },
    /// No client could be set up for the URL: `what` failed (`invalid URL`, `cannot build
    /// HTTP client`), the error is the source (shared, so that the error stays `Clone`), and
    /// `hint` follows it.
    #[error("invalid Prometheus URL {url:?}: {what}: {source}{hint}")]
    Client {
        url: String,
        what: &'static str,
        hint: &'static str,
        #[source]
        source: std::sync::Arc<dyn std::error::Error + Send + Sync>,
    },
    #[error("Prometheus at {url} is unreachable: {message}; query: {query}")]
    Unreachable {
        url: String,
        query: String,
        message: String,
    },
    #[error("Prometheus at {url} did not answer within {timeout_secs}s; query: {query}")]
    Timeout {
        url: String,
        query: String,
        timeout_secs: u64,
    },
    #[error("query failed: {message}; query: {query}")]
    Query { query: String, message: String },
    #[error("unexpected answer to query {query}: {message}")]
    Unexpected { query: String, message: String },
}

/// Evaluate PromQL. Implementations must bound every call with a timeout.
#[async_trait::async_trait]
pub trait MetricsSource: Send + Sync {
    /// Instant query at `at` (now when `None`).
    async fn instant(
        &self,
        query: &str,
        at: Option<DateTime<Utc>>,
    ) -> Result<Vec<Sample>, MetricsError>;

    /// Instant query at `at`, each element reduced to the value of one label (`None` when the
    /// element lacks it) and its value. The evaluation cycle reads only `sloth_id` from
    /// vectors with one element per SLO, so an implementation can decode the answer without
    /// building a label map per element. The default projects [`MetricsSource::instant`].
    async fn instant_label_values(
        &self,
        query: &str,
        at: Option<DateTime<Utc>>,
        label: &str,
    ) -> Result<Vec<LabelValue>, MetricsError> {
        Ok(self
            .instant(query, at)
            .await?
            .into_iter()
            .map(|s| LabelValue {
                label: s.labels.get(label).map(|v| v.as_str().into()),
                value: s.value,
            })
            .collect())
    }

    /// Range query over `[start, end]` with a step.
    async fn range(
        &self,
        query: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        step: std::time::Duration,
    ) -> Result<Vec<Series>, MetricsError>;
}
