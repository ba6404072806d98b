//! [`Notifier`] adapters: Slack incoming webhooks ([`slack`]), a generic JSON webhook
//! ([`webhook`]) and PagerDuty's Events API v2 ([`pagerduty`]), with the `notifications:`
//! config section and [`build_notifiers`].
//!
//! # Delivery
//!
//! Each notification is one HTTP POST, retried by [`deliver`]:
//! - every attempt has a timeout (`timeout`, default 10s, connect included);
//! - transport errors (refused, reset, timed out), `429` and `5xx` are retried, up to
//!   `max_attempts` attempts in all (default 5), waiting `base_delay · 2^(n-1)` (default
//!   500ms, capped at `max_delay`, default 30s) scaled by a random factor in [0.5, 1]
//!   ("equal jitter", so that replicas do not retry in lockstep);
//! - a `429` with `Retry-After` (seconds or an HTTP date) waits that long instead; when it
//!   asks for more than `max_delay`, delivery stops there, since an earlier retry would only
//!   be refused again;
//! - any other status (`400`, `403`, `404`…) is final at once: the request or the URL is
//!   wrong and repeating it cannot help.
//!
//! The result is the port's [`NotifyError`], and callers go on whatever it is: a failing
//! notifier never blocks or undoes a revert (`runtime::effects::notify_all` delivers to
//! all notifiers concurrently).
//!
//! # Secrets
//!
//! A webhook URL is a secret: Slack's carries its token in the path. It is read from
//! `url_file` or `url_env` (or, discouraged, `url`), again at each delivery so a rotated
//! Secret is picked up, and it never appears in a log line or an error: reqwest errors are
//! stripped of their URL before they are formatted, and configuration errors name the
//! source (`url_env SLACK_URL`), never the value.

pub mod pagerduty;
pub mod slack;
pub mod webhook;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rand::RngExt;
use serde::Deserialize;

use crate::adapters::git::{Secret, SecretSource};
use crate::adapters::http;
use crate::model::notify::{Notification, Severity};
use crate::ports::notify::{Notifier, NotifyError};
use crate::slo::PromDuration;

pub use pagerduty::PagerDutyNotifier;
pub use slack::SlackNotifier;
pub use webhook::WebhookNotifier;

/// Which kind of notifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifierKind {
    /// A Slack incoming webhook (`https://hooks.slack.com/services/…`).
    Slack,
    /// Any endpoint that takes the notification as JSON.
    Webhook,
    /// PagerDuty's Events API v2: incidents triggered and resolved.
    Pagerduty,
}

/// One entry of `notifications:`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifierConfig {
    #[serde(rename = "type")]
    pub kind: NotifierKind,
    /// Name used in logs and errors; default `<type>-<index>`.
    #[serde(default)]
    pub name: Option<String>,
    /// The URL in a file (a mounted Secret). Exactly one of `url_file`, `url_env`, `url`
    /// (`pagerduty`: at most one; default its public Events API v2 endpoint).
    #[serde(default)]
    pub url_file: Option<PathBuf>,
    /// The URL in an environment variable.
    #[serde(default)]
    pub url_env: Option<String>,
    /// The URL itself. Discouraged for Slack, whose URL is a credential.
    #[serde(default)]
    pub url: Option<String>,
    /// `webhook` only: a bearer token sent as `Authorization: Bearer …`.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    #[serde(default)]
    pub token_env: Option<String>,
    /// `pagerduty` only: the integration's routing key in a file. Exactly one of
    /// `routing_key_file`, `routing_key_env`.
    #[serde(default)]
    pub routing_key_file: Option<PathBuf>,
    #[serde(default)]
    pub routing_key_env: Option<String>,
    /// `webhook` only: extra request headers (not secrets: use the token for those).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Notifications below this severity are not sent.
    #[serde(default = "default_min_severity")]
    pub min_severity: Severity,
    /// Per-attempt timeout.
    #[serde(default = "default_timeout")]
    pub timeout: PromDuration,
    /// Attempts in all, the first included.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Wait before the first retry; doubles at each further retry.
    #[serde(default = "default_base_delay")]
    pub base_delay: PromDuration,
    /// Longest wait between attempts.
    #[serde(default = "default_max_delay")]
    pub max_delay: PromDuration,
}

fn default_min_severity() -> Severity {
    Severity::Info
}
fn default_timeout() -> PromDuration {
    PromDuration::from_secs(10)
}
fn default_max_attempts() -> u32 {
    5
}
fn default_base_delay() -> PromDuration {
    PromDuration::from_millis(500)
}
fn default_max_delay() -> PromDuration {
    PromDuration::from_secs(30)
}

impl NotifierConfig {
    /// A config with the defaults, for `kind` and a URL source.
    pub fn new(kind: NotifierKind, url: UrlSource) -> Self {
        let (url_file, url_env, url) = match url {
            UrlSource::Secret(SecretSource::File(p)) => (Some(p), None, None),
            UrlSource::Secret(SecretSource::Env(v)) => (None, Some(v), None),
            UrlSource::Inline(s) => (None, None, Some(s.expose().to_string())),
        };
        NotifierConfig {
            kind,
            name: None,
            url_file,
            url_env,
            url,
            token_file: None,
            token_env: None,
            routing_key_file: None,
            routing_key_env: None,
            headers: BTreeMap::new(),
            min_severity: default_min_severity(),
            timeout: default_timeout(),
            max_attempts: default_max_attempts(),
            base_delay: default_base_delay(),
            max_delay: default_max_delay(),
        }
    }

    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.max_attempts,
            base_delay: self.base_delay.as_std(),
            max_delay: self.max_delay.as_std(),
            timeout: self.timeout.as_std(),
        }
    }

    /// Where the URL comes from. `what` prefixes errors (`notifications[0]`).
    pub fn url_source(&self, what: &str) -> Result<UrlSource, String> {
        match (&self.url_file, &self.url_env, &self.url) {
            (Some(f), None, None) => Ok(UrlSource::Secret(SecretSource::File(f.clone()))),
            (None, Some(e), None) => Ok(UrlSource::Secret(SecretSource::Env(e.clone()))),
            (None, None, Some(u)) => Ok(UrlSource::Inline(Secret::new(u.clone()))),
            (None, None, None) if self.kind == NotifierKind::Pagerduty => Ok(UrlSource::Inline(
                Secret::new(pagerduty::DEFAULT_EVENTS_URL),
            )),
            (None, None, None) => Err(format!(
                "{what}: expected one of url_file, url_env or url, found none"
            )),
            _ => Err(format!(
                "{what}: expected one of url_file, url_env or url, found several"
            )),
        }
    }

    /// The bearer token source (`webhook` only).
    pub fn token_source(&self, what: &str) -> Result<Option<SecretSource>, String> {
        match (&self.token_file, &self.token_env) {
            (None, None) => Ok(None),
            (Some(f), None) => Ok(Some(SecretSource::File(f.clone()))),
            (None, Some(e)) => Ok(Some(SecretSource::Env(e.clone()))),
            (Some(_), Some(_)) => Err(format!(
                "{what}: expected one of token_file or token_env, found both"
            )),
        }
    }

    /// The routing key source (`pagerduty` only).
    pub fn routing_key_source(&self, what: &str) -> Result<Option<SecretSource>, String> {
        match (&self.routing_key_file, &self.routing_key_env) {
            (None, None) => Ok(None),
            (Some(f), None) => Ok(Some(SecretSource::File(f.clone()))),
            (None, Some(e)) => Ok(Some(SecretSource::Env(e.clone()))),
            (Some(_), Some(_)) => Err(format!(
                "{what}: expected one of routing_key_file or routing_key_env, found both"
            )),
        }
    }

    /// Static checks (the secrets are read by [`build_notifiers`]).
    pub fn check(&self, what: &str) -> Result<(), String> {
        self.url_source(what)?;
        self.token_source(what)?;
        let routing_key = self.routing_key_source(what)?;
        match (self.kind, routing_key) {
            (NotifierKind::Pagerduty, None) => {
                return Err(format!(
                    "{what}.routing_key_file: expected the PagerDuty integration's routing key (routing_key_file or routing_key_env) for type pagerduty, found none"
                ))
            }
            (NotifierKind::Pagerduty, Some(_)) => {
                if self.token_file.is_some() || self.token_env.is_some() || !self.headers.is_empty() {
                    return Err(format!(
                        "{what}: token_file, token_env and headers apply to type webhook only"
                    ));
                }
            }
            (_, Some(_)) => {
                return Err(format!(
                    "{what}: routing_key_file and routing_key_env apply to type pagerduty only"
                ))
            }
            (_, None) => {}
        }
        if self.kind == NotifierKind::Slack
            && (self.token_file.is_some() || self.token_env.is_some() || !self.headers.is_empty())
        {
            return Err(format!(
                "{what}: token_file, token_env and headers apply to type webhook only"
            ));
        }
        if self.max_attempts == 0 {
            return Err(format!("{what}.max_attempts: expected at least 1, found 0"));
        }
        if self.timeout.as_millis() < 100 {
            return Err(format!(
                "{what}.timeout: expected at least 100ms, found {}",
                self.timeout
            ));
        }
        if self.max_delay < self.base_delay {
            return Err(format!(
                "{what}.max_delay: expected at least base_delay ({}), found {}",
                self.base_delay, self.max_delay
            ));
        }
        Ok(())
    }
}

/// Check every entry of `notifications:`; errors name the entry.
pub fn check_all(cfgs: &[NotifierConfig]) -> Result<(), String> {
    for (i, c) in cfgs.iter().enumerate() {
        c.check(&format!("notifications[{i}]"))?;
    }
    Ok(())
}

/// Build every configured notifier. Reads each URL once to check it (an http(s) URL), so a
/// missing Secret stops the daemon at start-up rather than at the first breach.
pub fn build_notifiers(cfgs: &[NotifierConfig]) -> Result<Vec<Arc<dyn Notifier>>, NotifyError> {
    cfgs.iter()
        .enumerate()
        .map(|(i, c)| {
            let what = format!("notifications[{i}]");
            c.check(&what).map_err(NotifyError::Config)?;
            let name = c
                .name
                .clone()
                .unwrap_or_else(|| format!("{}-{i}", kind_name(c.kind)));
            let url = c.url_source(&what).map_err(NotifyError::Config)?;
            url.read_checked()
                .map_err(|e| NotifyError::Config(format!("{what} ({name}): {e}")))?;
            let n: Arc<dyn Notifier> = match c.kind {
                NotifierKind::Slack => Arc::new(SlackNotifier::new(
                    name,
                    url,
                    c.retry_policy(),
                    c.min_severity,
                )?),
                NotifierKind::Pagerduty => {
                    let key = c
                        .routing_key_source(&what)
                        .map_err(NotifyError::Config)?
                        .ok_or_else(|| {
                            NotifyError::Config(format!("{what} ({name}): no routing key"))
                        })?;
                    key.read().map_err(|e| {
                        NotifyError::Config(format!("{what} ({name}): routing key: {e}"))
                    })?;
                    Arc::new(PagerDutyNotifier::new(
                        name,
                        url,
                        key,
                        c.retry_policy(),
                        c.min_severity,
                    )?)
                }
                NotifierKind::Webhook => {
                    let token = c.token_source(&what).map_err(NotifyError::Config)?;
                    if let Some(t) = &token {
                        t.read().map_err(|e| {
                            NotifyError::Config(format!("{what} ({name}): token: {e}"))
                        })?;
                    }
                    Arc::new(
                        WebhookNotifier::new(name, url, c.retry_policy(), c.min_severity)?
                            .with_token(token)
                            .with_headers(&c.headers)?,
                    )
                }
            };
            Ok(n)
        })
        .collect()
}

fn kind_name(k: NotifierKind) -> &'static str {
    match k {
        NotifierKind::Slack => "slack",
        NotifierKind::Webhook => "webhook",
        NotifierKind::Pagerduty => "pagerduty",
    }
}

/// Where a webhook URL comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum UrlSource {
    /// Read from a file or an environment variable at each delivery.
    Secret(SecretSource),
    /// Given in the config (`Debug` prints `***`).
    Inline(Secret),
}

impl UrlSource {
    /// Read and parse the URL. Errors never contain the URL.
    pub fn read_checked(&self) -> Result<url::Url, String> {
        let raw = match self {
            UrlSource::Secret(s) => s.read().map_err(|e| e.to_string())?,
            UrlSource::Inline(s) => s.clone(),
        };
        let u = url::Url::parse(raw.expose().trim())
            .map_err(|e| format!("the URL does not parse ({e})"))?;
        if u.scheme() != "https" && u.scheme() != "http" {
            return Err(format!(
                "expected an http(s) URL, found scheme `{}`",
                u.scheme()
            ));
        }
        Ok(u)
    }
}

/// Retry settings of one notifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all (at least 1).
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// Per-attempt timeout, connect included.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: default_max_attempts(),
            base_delay: default_base_delay().as_std(),
            max_delay: default_max_delay().as_std(),
            timeout: default_timeout().as_std(),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt `attempt` (1-based): exponential, capped, jittered.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
            .min(self.max_delay);
        exp.mul_f64(rand::rng().random_range(0.5..=1.0))
    }
}

/// The HTTP client of a notifier: per-request timeout (connect included), slogate's user
/// agent, rustls.
fn http_client(name: &str, policy: &RetryPolicy) -> Result<reqwest::Client, NotifyError> {
    http::client_builder(policy.timeout, policy.timeout)
        .build()
        .map_err(|e| NotifyError::Config(format!("{name}: HTTP client: {}", e.without_url())))
}

/// What every notifier shares: its name (in logs and errors), where its URL comes from,
/// the HTTP client, the retry policy and the lowest severity it sends. A notifier adds
/// only its payload and headers ([`Endpoint::post`]).
pub struct Endpoint {
    name: String,
    url: UrlSource,
    client: reqwest::Client,
    policy: RetryPolicy,
    min_severity: Severity,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("name", &self.name)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    pub fn new(
        name: impl Into<String>,
        url: UrlSource,
        policy: RetryPolicy,
        min_severity: Severity,
    ) -> Result<Self, NotifyError> {
        let name = name.into();
        Ok(Endpoint {
            client: http_client(&name, &policy)?,
            name,
            url,
            policy,
            min_severity,
        })
    }

    /// The notifier's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Deliver `n` with [`deliver`], unless it is below the notifier's severity. `build`
    /// completes each attempt's `POST` to the URL (read again for each attempt) with the
    /// body and headers.
    pub async fn post<F>(&self, n: &Notification, mut build: F) -> Result<(), NotifyError>
    where
        F: FnMut(reqwest::RequestBuilder) -> Result<reqwest::RequestBuilder, NotifyError>,
    {
        if n.severity < self.min_severity {
            return Ok(());
        }
        deliver(&self.name, &self.policy, || {
            let url = self
                .url
                .read_checked()
                .map_err(|e| NotifyError::Config(format!("{}: {e}", self.name)))?;
            build(self.client.post(url))
        })
        .await
    }
}

/// `Retry-After` as a duration: delay-seconds or an HTTP date (RFC 9110 §10.2.3).
pub fn parse_retry_after(v: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let t = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    Some(
        (t.with_timezone(&chrono::Utc) - now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

/// Send with retries. `request` builds a fresh request for each attempt (the URL and
/// token are read again, so a rotation between attempts is picked up).
pub async fn deliver<F>(name: &str, policy: &RetryPolicy, mut request: F) -> Result<(), NotifyError>
where
    F: FnMut() -> Result<reqwest::RequestBuilder, NotifyError>,
{
    let max = policy.max_attempts.max(1);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let (err, wait) = match request()?.send().await {
            Ok(resp) if resp.status().is_success() => return Ok(()),
            Ok(resp) => {
                let status = resp.status();
                let err = NotifyError::Http {
                    notifier: name.to_string(),
                    status: status.as_u16(),
                    attempts: attempt,
                };
                if status.as_u16() == 429 {
                    let after = resp
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| parse_retry_after(v, chrono::Utc::now()));
                    match after {
                        Some(d) if d > policy.max_delay => {
                            tracing::warn!(notifier = name, retry_after = ?d, "rate limited for longer than max_delay; giving up");
                            return Err(err);
                        }
                        Some(d) => (err, d),
                        None => (err, policy.backoff(attempt)),
                    }
                } else if status.is_server_error() {
                    (err, policy.backoff(attempt))
                } else {
                    tracing::warn!(
                        notifier = name,
                        status = status.as_u16(),
                        "notification refused; not retried"
                    );
                    return Err(err);
                }
            }
            Err(e) => (
                NotifyError::Transport {
                    notifier: name.to_string(),
                    message: http::describe_error(e),
                    attempts: attempt,
                },
                policy.backoff(attempt),
            ),
        };
        if attempt >= max {
            tracing::warn!(
                notifier = name,
                attempts = attempt,
                "notification failed: {err}"
            );
            return Err(err);
        }
        tracing::debug!(notifier = name, attempt, wait = ?wait, "notification attempt failed, retrying: {err}");
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shared base of the notifiers against a loopback server: nothing is sent below
    /// the severity, the URL is read again at each delivery, the notifier's builder adds
    /// its headers, and a builder error stops the delivery before any request.
    #[tokio::test]
    async fn endpoint_filters_rereads_the_url_and_builds_each_request() {
        use axum::http::HeaderMap;
        use std::sync::Mutex;
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let record = |path: &'static str, seen: Arc<Mutex<Vec<String>>>| {
            move |headers: HeaderMap| async move {
                let k = headers
                    .get("x-k")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                seen.lock().unwrap().push(format!("{path} {k}"));
                "ok"
            }
        };
        let app = axum::Router::new()
            .route("/a", axum::routing::post(record("a", seen.clone())))
            .route("/b", axum::routing::post(record("b", seen.clone())));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move { axum::serve(listener, app).await });

        let dir = tempfile::tempdir().unwrap();
        let url_file = dir.path().join("url");
        std::fs::write(&url_file, format!("http://{addr}/a\n")).unwrap();
        let policy = RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        };
        let e = Endpoint::new(
            "test",
            UrlSource::Secret(SecretSource::File(url_file.clone())),
            policy,
            Severity::Warning,
        )
        .unwrap();
        let mut n = Notification {
            severity: Severity::Info,
            subject: "s".into(),
            title: "t".into(),
            text: String::new(),
            fields: BTreeMap::new(),
            incident: None,
        };
        let add_header = |req: reqwest::RequestBuilder| Ok(req.header("x-k", "v"));
        e.post(&n, add_header).await.unwrap();
        assert!(seen.lock().unwrap().is_empty(), "info is below warning");

        n.severity = Severity::Critical;
        e.post(&n, add_header).await.unwrap();
        std::fs::write(&url_file, format!("http://{addr}/b\n")).unwrap();
        e.post(&n, add_header).await.unwrap();
        assert_eq!(*seen.lock().unwrap(), ["a v", "b v"]);

        let refused = e
            .post(&n, |_| Err(NotifyError::Config("no token".into())))
            .await;
        assert!(matches!(refused, Err(NotifyError::Config(m)) if m == "no token"));
        assert_eq!(seen.lock().unwrap().len(), 2);
        assert_eq!(e.name(), "test");
        server.abort();
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let p = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
            timeout: Duration::from_secs(1),
        };
        for _ in 0..200 {
            let d1 = p.backoff(1);
            assert!(d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100));
            let d3 = p.backoff(3);
            assert!(d3 >= Duration::from_millis(200) && d3 <= Duration::from_millis(400));
            let d10 = p.backoff(10);
            assert!(d10 >= Duration::from_millis(500) && d10 <= Duration::from_millis(1000));
            assert!(p.backoff(u32::MAX) <= Duration::from_millis(1000));
        }
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = chrono::DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:05 GMT", now),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn config_checks_name_the_entry_and_never_the_url() {
        let secret = "https://hooks.slack.com/services/T000/B000/XXXXSECRET";
        let mut c =
            NotifierConfig::new(NotifierKind::Slack, UrlSource::Inline(Secret::new(secret)));
        assert_eq!(c.check("notifications[0]"), Ok(()));
        c.url_env = Some("X".into());
        let e = c.check("notifications[0]").unwrap_err();
        assert!(
            e.contains("notifications[0]") && e.contains("several"),
            "{e}"
        );
        assert!(!e.contains("SECRET"));
        c.url_env = None;
        c.token_env = Some("T".into());
        assert!(c.check("n").unwrap_err().contains("webhook only"));
        c.token_env = None;
        c.max_attempts = 0;
        assert!(c.check("n").unwrap_err().contains("max_attempts"));
        // Debug of the source never shows an inline URL.
        let src = c.url_source("n").unwrap();
        assert!(!format!("{src:?}").contains("SECRET"));
    }

    #[test]
    fn build_refuses_bad_urls_without_printing_them() {
        let mut c = NotifierConfig::new(
            NotifierKind::Webhook,
            UrlSource::Inline(Secret::new("ftp://user:SECRET@example.com/x")),
        );
        let e = build_notifiers(std::slice::from_ref(&c))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("scheme `ftp`") && !e.contains("SECRET"), "{e}");
        c.url = None;
        c.url_env = Some("SLOGATE_TEST_NOTIFY_UNSET_URL".into());
        let e = build_notifiers(&[c]).err().unwrap().to_string();
        assert!(e.contains("SLOGATE_TEST_NOTIFY_UNSET_URL"), "{e}");
    }

    #[test]
    fn yaml_shape() {
        let c: Vec<NotifierConfig> = crate::model::yaml::from_str(
            "- type: slack\n  url_env: SLACK_URL\n  min_severity: warning\n  max_attempts: 3\n  base_delay: 250ms\n\
             - type: webhook\n  name: pager\n  url: https://example.com/hook\n  token_file: /t\n  headers: {X-Team: sre}\n",
        )
        .unwrap();
        assert_eq!(c[0].kind, NotifierKind::Slack);
        assert_eq!(c[0].min_severity, Severity::Warning);
        assert_eq!(c[0].retry_policy().base_delay, Duration::from_millis(250));
        assert_eq!(c[1].headers["X-Team"], "sre");
        assert!(
            crate::model::yaml::from_str::<Vec<NotifierConfig>>("- type: slack\n  urll: x\n")
                .is_err()
        );
    }
}
