//! A generic JSON webhook: `POST <url>` with the [`Notification`] itself as the body,
//!
//! ```json
//! { "severity": "critical", "subject": "checkout-availability",
//!   "title": "Rolled back 2 commits", "text": "…",
//!   "fields": { "budget_consumed": "0.963", "reverted": "1a2b3c4" } }
//! ```
//!
//! plus `"incident": {"key": "<breach id>", "action": "trigger" | "resolve"}` when the
//! notification opens, adds to or ends an incident (the field is absent otherwise).
//!
//! with `Content-Type: application/json`, `User-Agent: slogate/<version>`, the configured
//! extra headers, and `Authorization: Bearer <token>` when a token is configured (read from
//! its file or variable at each delivery). Any 2xx is success.

use std::collections::BTreeMap;

use async_trait::async_trait;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION};

use super::{Endpoint, RetryPolicy, UrlSource};
use crate::adapters::git::SecretSource;
use crate::model::notify::{Notification, Severity};
use crate::ports::notify::{Notifier, NotifyError};

pub struct WebhookNotifier {
    endpoint: Endpoint,
    token: Option<SecretSource>,
    headers: HeaderMap,
}

impl std::fmt::Debug for WebhookNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookNotifier")
            .field("endpoint", &self.endpoint)
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

impl WebhookNotifier {
    pub fn new(
        name: impl Into<String>,
        url: UrlSource,
        policy: RetryPolicy,
        min_severity: Severity,
    ) -> Result<Self, NotifyError> {
        Ok(WebhookNotifier {
            endpoint: Endpoint::new(name, url, policy, min_severity)?,
            token: None,
            headers: HeaderMap::new(),
        })
    }

    /// Send `Authorization: Bearer <token>`.
    pub fn with_token(mut self, token: Option<SecretSource>) -> Self {
        self.token = token;
        self
    }

    /// Send these headers with every request. Invalid names or values are a config error
    /// (naming the header, not its value).
    pub fn with_headers(mut self, headers: &BTreeMap<String, String>) -> Result<Self, NotifyError> {
        let name = self.endpoint.name();
        for (k, v) in headers {
            let header = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| NotifyError::Config(format!("{name}: invalid header name `{k}`")))?;
            let value = HeaderValue::from_str(v).map_err(|_| {
                NotifyError::Config(format!("{name}: invalid value for header `{k}`"))
            })?;
            self.headers.insert(header, value);
        }
        Ok(self)
    }

    /// The headers of one attempt: the configured ones and the token, read again.
    fn attempt_headers(&self) -> Result<HeaderMap, NotifyError> {
        let mut headers = self.headers.clone();
        if let Some(t) = &self.token {
            let name = self.endpoint.name();
            let t = t
                .read()
                .map_err(|e| NotifyError::Config(format!("{name}: token: {e}")))?;
            let mut v = HeaderValue::from_str(&format!("Bearer {}", t.expose())).map_err(|_| {
                NotifyError::Config(format!("{name}: the token is not a valid header value"))
            })?;
            v.set_sensitive(true);
            headers.insert(AUTHORIZATION, v);
        }
        Ok(headers)
    }
}

#[async_trait]
impl Notifier for WebhookNotifier {
    async fn notify(&self, n: &Notification) -> Result<(), NotifyError> {
        self.endpoint
            .post(n, |req| Ok(req.headers(self.attempt_headers()?).json(n)))
            .await
    }
}
