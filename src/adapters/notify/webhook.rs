//! A generic JSON webhook: `POST <url>` with the [`Notification`] itself as the body,
//!
//! ```json
//! { "severity": "critical", "subject": "checkout-availability",
//!   "title": "Rolled back 2 commits", "text": "…",
//!   "fields": { "budget_consumed": "0.963", "reverted": "1a2b3c4" } }
//! ```
//!
//! with `Content-Type: application/json`, `User-Agent: slogate/<version>`, the configured
//! extra headers, and `Authorization: Bearer <token>` when a token is configured (read from
//! its file or variable at each delivery). Any 2xx is success.

use std::collections::BTreeMap;

use async_trait::async_trait;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION};

use super::{deliver, http_client, RetryPolicy, UrlSource};
use crate::adapters::git::SecretSource;
use crate::ports::notify::{Notification, Notifier, NotifyError, Severity};

pub struct WebhookNotifier {
    name: String,
    url: UrlSource,
    token: Option<SecretSource>,
    headers: HeaderMap,
    client: reqwest::Client,
    policy: RetryPolicy,
    min_severity: Severity,
}

impl std::fmt::Debug for WebhookNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookNotifier")
            .field("name", &self.name)
            .field("url", &self.url)
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
        let name = name.into();
        Ok(WebhookNotifier {
            client: http_client(&name, &policy)?,
            name,
            url,
            token: None,
            headers: HeaderMap::new(),
            policy,
            min_severity,
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
        for (k, v) in headers {
            let name = HeaderName::from_bytes(k.as_bytes()).map_err(|_| {
                NotifyError::Config(format!("{}: invalid header name `{k}`", self.name))
            })?;
            let value = HeaderValue::from_str(v).map_err(|_| {
                NotifyError::Config(format!("{}: invalid value for header `{k}`", self.name))
            })?;
            self.headers.insert(name, value);
        }
        Ok(self)
    }
}

#[async_trait]
impl Notifier for WebhookNotifier {
    async fn notify(&self, n: &Notification) -> Result<(), NotifyError> {
        if n.severity < self.min_severity {
            return Ok(());
        }
        deliver(&self.name, &self.policy, || {
            let url = self
                .url
                .read_checked()
                .map_err(|e| NotifyError::Config(format!("{}: {e}", self.name)))?;
            let mut headers = self.headers.clone();
            if let Some(t) = &self.token {
                let t = t
                    .read()
                    .map_err(|e| NotifyError::Config(format!("{}: token: {e}", self.name)))?;
                let mut v =
                    HeaderValue::from_str(&format!("Bearer {}", t.expose())).map_err(|_| {
                        NotifyError::Config(format!(
                            "{}: the token is not a valid header value",
                            self.name
                        ))
                    })?;
                v.set_sensitive(true);
                headers.insert(AUTHORIZATION, v);
            }
            Ok(self.client.post(url).headers(headers).json(n))
        })
        .await
    }
}
