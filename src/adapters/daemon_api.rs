//! The one client of a running daemon's HTTP API (`/api/v1/…`), used by
//! `slogate decisions --url`, `slogate rollout … --url` and, for `promote` and `approve`
//! with `--slogate-url`, by [`crate::adapters::promote_api::ApiClient`].
//!
//! - The base URL must be http(s) without credentials; a path prefix is kept
//!   (`http://gw/slogate` → `http://gw/slogate/api/v1/…`), and path segments are
//!   percent-encoded.
//! - Every request has a timeout (and a connect timeout), both chosen by the caller.
//! - A bearer token, when given, is read from its file or variable at each request, so a
//!   rotated Secret is picked up. Neither the token nor URL credentials appear in errors.
//! - An answer is returned whatever its status ([`Reply`]): callers decide what a status
//!   means (a 404 is "not found" for one and an input error for another). [`Reply::json`]
//!   decodes a success and turns any other status into [`DaemonApiError::Status`] with the
//!   daemon's `{"error": …}` message.

use std::time::Duration;

use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::adapters::git::{redact_url_userinfo, SecretSource};
use crate::adapters::http;

/// At most this many characters of an answer that is not the daemon's JSON error go into
/// an error message.
const MAX_MESSAGE: usize = 300;

/// Why a call to the daemon's API failed.
#[derive(Debug, thiserror::Error)]
pub enum DaemonApiError {
    /// The base URL does not parse or is not http(s); `url` has its credentials removed.
    #[error("`{url}`: {reason}")]
    Url { url: String, reason: String },
    /// The base URL carries a user name or password.
    #[error("the URL carries credentials")]
    UrlCredentials,
    /// The HTTP client could not be built (TLS set-up).
    #[error("cannot build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    /// The bearer token could not be read; names its source, never its value.
    #[error("token: {0}")]
    Token(String),
    /// The request could not be made or got no answer in time.
    #[error("{method} {url}: {message}")]
    Transport {
        method: &'static str,
        url: String,
        message: String,
    },
    /// The daemon answered with an error status.
    #[error("{method} {url}: HTTP {status}: {message}")]
    Status {
        method: &'static str,
        url: String,
        status: u16,
        message: String,
    },
    /// A success whose body is not what was expected.
    #[error("{method} {url}: unexpected answer: {source}")]
    Decode {
        method: &'static str,
        url: String,
        #[source]
        source: serde_json::Error,
    },
}

/// A client of one daemon.
#[derive(Debug, Clone)]
pub struct DaemonApi {
    base: url::Url,
    token: Option<SecretSource>,
    http: reqwest::Client,
}

/// An answer of the daemon, whatever its status.
#[derive(Debug)]
pub struct Reply {
    pub method: &'static str,
    pub url: url::Url,
    pub status: StatusCode,
    pub body: String,
}

impl DaemonApi {
    /// `base` is the daemon's URL (`http://slogate.slogate.svc:8080`). `timeout` bounds
    /// each request, the answer included; `connect_timeout` the connection.
    pub fn new(
        base: &str,
        timeout: Duration,
        connect_timeout: Duration,
    ) -> Result<Self, DaemonApiError> {
        let shown = || redact_url_userinfo(base.trim());
        let base = url::Url::parse(base.trim()).map_err(|e| DaemonApiError::Url {
            url: shown(),
            reason: format!("{e}: expected an http(s) URL"),
        })?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(DaemonApiError::Url {
                url: shown(),
                reason: "expected an http(s) URL such as http://slogate:8080".into(),
            });
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err(DaemonApiError::UrlCredentials);
        }
        let http = http::client_builder(timeout, connect_timeout)
            .build()
            .map_err(DaemonApiError::Client)?;
        Ok(DaemonApi {
            base,
            token: None,
            http,
        })
    }

    /// Send `Authorization: Bearer <token>` with every request.
    pub fn with_token(mut self, token: SecretSource) -> Self {
        self.token = Some(token);
        self
    }

    /// The URL of `segments` (each percent-encoded) under the base URL.
    pub fn url(&self, segments: &[&str]) -> url::Url {
        let mut u = self.base.clone();
        // `new` refused URLs that cannot be a base, the only case without segments.
        if let Ok(mut p) = u.path_segments_mut() {
            p.pop_if_empty();
            p.extend(segments);
        }
        u
    }

    /// `GET url`.
    pub async fn get(&self, url: url::Url) -> Result<Reply, DaemonApiError> {
        self.send("GET", self.http.get(url.clone()), url).await
    }

    /// `POST url` with `body` as JSON and the extra `headers`.
    pub async fn post<B: Serialize + ?Sized>(
        &self,
        url: url::Url,
        body: &B,
        headers: &[(&str, &str)],
    ) -> Result<Reply, DaemonApiError> {
        let mut req = self.http.post(url.clone()).json(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.send("POST", req, url).await
    }

    async fn send(
        &self,
        method: &'static str,
        mut req: reqwest::RequestBuilder,
        url: url::Url,
    ) -> Result<Reply, DaemonApiError> {
        if let Some(t) = &self.token {
            let t = t.read().map_err(|e| DaemonApiError::Token(e.to_string()))?;
            req = req.bearer_auth(t.expose());
        }
        let transport = |e: reqwest::Error| DaemonApiError::Transport {
            method,
            url: url.to_string(),
            message: if e.is_timeout() {
                "timed out".into()
            } else {
                http::describe_error(e)
            },
        };
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status();
        let body = resp.text().await.map_err(transport)?;
        Ok(Reply {
            method,
            url,
            status,
            body,
        })
    }
}

impl Reply {
    /// The daemon's message: the `error` field of its JSON answer, else the answer itself
    /// (trimmed, at most 300 characters).
    pub fn message(&self) -> String {
        serde_json::from_str::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or_else(|| self.body.trim().chars().take(MAX_MESSAGE).collect())
    }

    /// This answer as an error status.
    pub fn status_error(&self) -> DaemonApiError {
        DaemonApiError::Status {
            method: self.method,
            url: self.url.to_string(),
            status: self.status.as_u16(),
            message: self.message(),
        }
    }

    /// The body as JSON when the status is one of `ok`, else [`Reply::status_error`].
    pub fn json<T: DeserializeOwned>(&self, ok: &[StatusCode]) -> Result<T, DaemonApiError> {
        if !ok.contains(&self.status) {
            return Err(self.status_error());
        }
        serde_json::from_str(&self.body).map_err(|source| DaemonApiError::Decode {
            method: self.method,
            url: self.url.to_string(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn base_urls_are_checked_and_prefixes_kept() {
        let api = DaemonApi::new("http://slogate:8080", SECOND, SECOND).unwrap();
        assert_eq!(
            api.url(&["api", "v1", "rollouts", "shop", "checkout"])
                .as_str(),
            "http://slogate:8080/api/v1/rollouts/shop/checkout"
        );
        for base in ["http://gw/slogate", "http://gw/slogate/"] {
            let api = DaemonApi::new(base, SECOND, SECOND).unwrap();
            assert_eq!(
                api.url(&["api", "v1", "decisions"]).as_str(),
                "http://gw/slogate/api/v1/decisions",
                "{base}"
            );
        }
        // A segment stays one segment.
        assert_eq!(
            api_url_of("http://x", &["approvals", "a/b"]),
            "http://x/approvals/a%2Fb"
        );

        let e = DaemonApi::new("ftp://x", SECOND, SECOND).unwrap_err();
        assert!(e.to_string().contains("expected an http(s) URL"), "{e}");
        let e = DaemonApi::new("not a url", SECOND, SECOND).unwrap_err();
        assert!(e.to_string().starts_with("`not a url`: "), "{e}");
        let e = DaemonApi::new("http://u:s3cret@x", SECOND, SECOND).unwrap_err();
        assert!(matches!(e, DaemonApiError::UrlCredentials));
        let e = DaemonApi::new("ftp://u:s3cret@x", SECOND, SECOND).unwrap_err();
        assert!(!e.to_string().contains("s3cret"), "{e}");
    }

    fn api_url_of(base: &str, segments: &[&str]) -> String {
        DaemonApi::new(base, SECOND, SECOND)
            .unwrap()
            .url(segments)
            .to_string()
    }

    /// A loopback server answering like the daemon does, and echoing what it received.
    async fn serve() -> (String, tokio::task::JoinHandle<()>) {
        use axum::http::{HeaderMap, StatusCode as S};
        use axum::routing::{get, post};
        use axum::Json;
        let echo = |headers: HeaderMap, body: String| async move {
            let h = |k: &str| {
                headers
                    .get(k)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string()
            };
            Json(serde_json::json!({
                "authorization": h("authorization"),
                "actor": h("x-slogate-actor"),
                "agent": h("user-agent"),
                "body": body,
            }))
        };
        let app = axum::Router::new()
            .route("/api/v1/echo", post(echo))
            .route(
                "/api/v1/down",
                get(|| async {
                    (
                        S::INTERNAL_SERVER_ERROR,
                        Json(serde_json::json!({"error": "the store is down"})),
                    )
                }),
            )
            .route(
                "/plain",
                get(|| async { (S::BAD_GATEWAY, format!("  {}  ", "x".repeat(1000))) }),
            )
            .route("/garbled", get(|| async { "{" }))
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    "late"
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        (format!("http://{addr}"), server)
    }

    #[tokio::test]
    async fn token_headers_body_and_errors() {
        let (base, server) = serve().await;
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "tok-1\n").unwrap();
        let api = DaemonApi::new(&base, SECOND * 5, SECOND * 5)
            .unwrap()
            .with_token(SecretSource::File(token.clone()));

        let r = api
            .post(
                api.url(&["api", "v1", "echo"]),
                &serde_json::json!({"reason": "r"}),
                &[("x-slogate-actor", "carol")],
            )
            .await
            .unwrap();
        assert_eq!(r.status, StatusCode::OK);
        let v: serde_json::Value = r.json(&[StatusCode::OK]).unwrap();
        assert_eq!(v["authorization"], "Bearer tok-1");
        assert_eq!(v["actor"], "carol");
        assert_eq!(v["agent"], http::USER_AGENT);
        assert_eq!(v["body"], r#"{"reason":"r"}"#);
        // A status that is not one of the expected ones is an error, whatever the body.
        assert!(matches!(
            r.json::<serde_json::Value>(&[StatusCode::CREATED]),
            Err(DaemonApiError::Status { status: 200, .. })
        ));

        let mut url = api.url(&["api", "v1", "down"]);
        url.query_pairs_mut().append_pair("limit", "3");
        let r = api.get(url).await.unwrap();
        let e = r.json::<serde_json::Value>(&[StatusCode::OK]).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("GET {base}/api/v1/down?limit=3: HTTP 500: the store is down")
        );

        let r = api.get(api.url(&["plain"])).await.unwrap();
        assert_eq!(r.status, StatusCode::BAD_GATEWAY);
        assert_eq!(r.message(), "x".repeat(300));

        let r = api.get(api.url(&["garbled"])).await.unwrap();
        let e = r.json::<serde_json::Value>(&[StatusCode::OK]).unwrap_err();
        assert!(matches!(e, DaemonApiError::Decode { .. }), "{e}");
        assert!(e.to_string().contains("unexpected answer"), "{e}");

        // The token is read at each request: a missing file is an error naming the file.
        std::fs::remove_file(&token).unwrap();
        let e = api.get(api.url(&["plain"])).await.unwrap_err();
        assert!(matches!(e, DaemonApiError::Token(_)), "{e}");
        assert!(e.to_string().contains(&token.display().to_string()), "{e}");
        server.abort();
    }

    #[tokio::test]
    async fn requests_time_out_and_refusals_are_transport_errors() {
        let (base, server) = serve().await;
        let api = DaemonApi::new(&base, Duration::from_millis(200), SECOND).unwrap();
        let e = api.get(api.url(&["slow"])).await.unwrap_err();
        match e {
            DaemonApiError::Transport { message, .. } => assert_eq!(message, "timed out"),
            other => panic!("expected a transport error, got {other:?}"),
        }
        server.abort();
        let _ = server.await;
        let e = api.get(api.url(&["plain"])).await.unwrap_err();
        assert!(matches!(e, DaemonApiError::Transport { .. }), "{e}");
    }
}
