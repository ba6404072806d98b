//! `MetricsSource` on a real Prometheus, through prometheus-http-query.
//!
//! Every call is bounded by the configured timeout: the reqwest client carries it, and
//! Prometheus is asked to stop evaluating at the same deadline (`timeout` parameter).
//! Queries are sent as POST so that long PromQL expressions are not limited by URL length.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use prometheus_http_query::response::Data;
use prometheus_http_query::{Client, Error as PromError};

use crate::ports::metrics::{MetricsError, MetricsSource, Sample, Series};

/// A Prometheus HTTP API client.
#[derive(Clone)]
pub struct Prometheus {
    client: Client,
    url: String,
    timeout: Duration,
}

impl std::fmt::Debug for Prometheus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prometheus")
            .field("url", &self.url)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Prometheus {
    /// Build a client for `url` (e.g. `http://prometheus:9090`). Fails on a malformed URL.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, MetricsError> {
        let bad_url = |message: String| MetricsError::InvalidUrl {
            url: url.to_string(),
            message,
        };
        let parsed = url::Url::parse(url)
            .map_err(|e| bad_url(format!("invalid URL: {e}; expected e.g. http://host:9090")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(bad_url(format!(
                "unsupported scheme {:?}; expected http or https",
                parsed.scheme()
            )));
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| bad_url(format!("cannot build HTTP client: {e}")))?;
        let client = Client::from(http, url.trim_end_matches('/'))
            .map_err(|e| bad_url(format!("invalid URL: {e}")))?;
        Ok(Prometheus {
            client,
            url: url.to_string(),
            timeout,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn map_err(&self, query: &str, e: PromError) -> MetricsError {
        match e {
            PromError::Prometheus(p) => MetricsError::Query {
                query: query.to_string(),
                message: format!("{:?}: {}", p.error_type(), p.message()),
            },
            PromError::Client(c) => match c.inner() {
                Some(r) if r.is_timeout() => MetricsError::Timeout {
                    url: self.url.clone(),
                    query: query.to_string(),
                    timeout_secs: self.timeout.as_secs(),
                },
                Some(r) if r.is_connect() || r.is_request() => MetricsError::Unreachable {
                    url: self.url.clone(),
                    query: query.to_string(),
                    message: error_chain(r),
                },
                Some(r) => MetricsError::Unexpected {
                    query: query.to_string(),
                    message: error_chain(r),
                },
                None => MetricsError::Unexpected {
                    query: query.to_string(),
                    message: c.to_string(),
                },
            },
            other => MetricsError::Unexpected {
                query: query.to_string(),
                message: other.to_string(),
            },
        }
    }

    /// Prometheus' own evaluation timeout, slightly under the client's so that Prometheus
    /// answers with an error instead of the connection being cut.
    fn server_timeout_ms(&self) -> i64 {
        i64::try_from(self.timeout.as_millis().saturating_sub(250).max(1000)).unwrap_or(i64::MAX)
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}

fn labels(m: &std::collections::HashMap<String, String>) -> BTreeMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

#[async_trait::async_trait]
impl MetricsSource for Prometheus {
    async fn instant(
        &self,
        query: &str,
        at: Option<DateTime<Utc>>,
    ) -> Result<Vec<Sample>, MetricsError> {
        let mut q = self.client.query(query).timeout(self.server_timeout_ms());
        if let Some(t) = at {
            q = q.at(t.timestamp());
        }
        let res = q.post().await.map_err(|e| self.map_err(query, e))?;
        match res.data() {
            Data::Vector(v) => Ok(v
                .iter()
                .map(|s| Sample {
                    labels: labels(s.metric()),
                    value: s.sample().value(),
                })
                .collect()),
            Data::Scalar(s) => Ok(vec![Sample {
                labels: BTreeMap::new(),
                value: s.value(),
            }]),
            Data::Matrix(_) => Err(MetricsError::Unexpected {
                query: query.to_string(),
                message: "got a range vector; expected an instant vector or scalar".into(),
            }),
        }
    }

    async fn range(
        &self,
        query: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        step: Duration,
    ) -> Result<Vec<Series>, MetricsError> {
        let res = self
            .client
            .query_range(
                query,
                start.timestamp(),
                end.timestamp(),
                step.as_secs_f64(),
            )
            .timeout(self.server_timeout_ms())
            .post()
            .await
            .map_err(|e| self.map_err(query, e))?;
        match res.data() {
            Data::Matrix(m) => Ok(m
                .iter()
                .map(|r| Series {
                    labels: labels(r.metric()),
                    points: r
                        .samples()
                        .iter()
                        .map(|s| (s.timestamp(), s.value()))
                        .collect(),
                })
                .collect()),
            _ => Err(MetricsError::Unexpected {
                query: query.to_string(),
                message: "expected a range vector".into(),
            }),
        }
    }
}
