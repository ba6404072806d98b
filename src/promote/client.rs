//! [`PromoteState`] over the daemon's HTTP API (the endpoints of [`super::api`]), for CI
//! jobs that do not share a state directory with the daemon.
//!
//! Every request has a timeout and a bearer token read from a file or an environment
//! variable at each call. Neither the token nor URL credentials appear in errors.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::StatusCode;
use serde::de::DeserializeOwned;

use super::approval::{Approval, ApprovalRequest, Change};
use super::state::{Approved, PromoteState, PromoteStateError};
use crate::adapters::git::{redact_url_userinfo, SecretSource};
use crate::guard::AppGuardState;
use crate::ports::state::DecisionRecord;

/// A client of the daemon's promote API.
#[derive(Debug, Clone)]
pub struct ApiClient {
    base: url::Url,
    token: SecretSource,
    http: reqwest::Client,
}

#[derive(serde::Deserialize)]
struct GuardAnswer {
    #[serde(default)]
    state: Option<AppGuardState>,
}

impl ApiClient {
    /// `base` is the daemon's URL (`http://slogate.slogate.svc:8080`, a path prefix is
    /// kept). Errors name what is wrong with it.
    pub fn new(base: &str, token: SecretSource, timeout: Duration) -> Result<Self, String> {
        let base = url::Url::parse(base.trim()).map_err(|e| {
            format!(
                "`{}`: {e}: expected an http(s) URL",
                redact_url_userinfo(base)
            )
        })?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(format!(
                "`{}`: expected an http(s) URL such as http://slogate:8080",
                redact_url_userinfo(base.as_str())
            ));
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err("the URL carries credentials: pass the token with --slogate-token-file or --slogate-token-env".into());
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(ApiClient { base, token, http })
    }

    fn url(&self, segments: &[&str]) -> url::Url {
        let mut u = self.base.clone();
        if let Ok(mut p) = u.path_segments_mut() {
            p.pop_if_empty();
            p.extend(segments);
        }
        u
    }

    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        url: &url::Url,
    ) -> Result<reqwest::Response, PromoteStateError> {
        let token = self
            .token
            .read()
            .map_err(|e| PromoteStateError::Token(e.to_string()))?;
        req.bearer_auth(token.expose())
            .send()
            .await
            .map_err(|e| PromoteStateError::Transport {
                url: url.to_string(),
                message: if e.is_timeout() {
                    "timed out".into()
                } else {
                    // reqwest errors carry the URL, which holds no secret here.
                    e.without_url().to_string()
                },
            })
    }

    async fn answer<T: DeserializeOwned>(
        url: &url::Url,
        resp: reqwest::Response,
        ok: &[StatusCode],
    ) -> Result<Option<T>, PromoteStateError> {
        let status = resp.status();
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let text = resp
            .text()
            .await
            .map_err(|e| PromoteStateError::Transport {
                url: url.to_string(),
                message: e.without_url().to_string(),
            })?;
        if !ok.contains(&status) {
            let message = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_string))
                .unwrap_or_else(|| text.chars().take(300).collect());
            return Err(PromoteStateError::Status {
                url: url.to_string(),
                status: status.as_u16(),
                message,
            });
        }
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| PromoteStateError::Transport {
                url: url.to_string(),
                message: format!("unexpected answer: {e}"),
            })
    }
}

#[async_trait]
impl PromoteState for ApiClient {
    async fn guard(&self, app: &str) -> Result<Option<AppGuardState>, PromoteStateError> {
        let url = self.url(&["api", "v1", "guard", app]);
        let resp = self.send(self.http.get(url.clone()), &url).await?;
        match Self::answer::<GuardAnswer>(&url, resp, &[StatusCode::OK]).await? {
            Some(a) => Ok(a.state),
            None => Err(PromoteStateError::Status {
                url: url.to_string(),
                status: 404,
                message: "no guard endpoint: is this a slogate daemon with the promote API?".into(),
            }),
        }
    }

    async fn approval(&self, key: &str) -> Result<Option<Approval>, PromoteStateError> {
        let url = self.url(&["api", "v1", "approvals", key]);
        let resp = self.send(self.http.get(url.clone()), &url).await?;
        Self::answer(&url, resp, &[StatusCode::OK]).await
    }

    async fn approve(
        &self,
        change: &Change,
        actor: &str,
        comment: Option<&str>,
    ) -> Result<Approved, PromoteStateError> {
        let url = self.url(&["api", "v1", "approvals"]);
        let sep = match change.to {
            super::image::ImageRef::Tag(_) => '=',
            super::image::ImageRef::Digest(_) => '@',
        };
        let body = ApprovalRequest {
            repo: change.repo.clone(),
            target: change.target.clone(),
            image: format!("{}{sep}{}", change.image, change.to),
            actor: actor.to_string(),
            comment: comment.map(str::to_string),
        };
        let resp = self
            .send(self.http.post(url.clone()).json(&body), &url)
            .await?;
        let created = resp.status() == StatusCode::CREATED;
        match Self::answer::<Approval>(&url, resp, &[StatusCode::OK, StatusCode::CREATED]).await? {
            Some(approval) => Ok(Approved { approval, created }),
            None => Err(PromoteStateError::Status {
                url: url.to_string(),
                status: 404,
                message: "no approvals endpoint: is this a slogate daemon with the promote API?"
                    .into(),
            }),
        }
    }

    async fn record(&self, record: &DecisionRecord) -> Result<(), PromoteStateError> {
        let url = self.url(&["api", "v1", "promotions"]);
        let resp = self
            .send(self.http.post(url.clone()).json(record), &url)
            .await?;
        match Self::answer::<serde_json::Value>(&url, resp, &[StatusCode::CREATED, StatusCode::OK])
            .await?
        {
            Some(_) => Ok(()),
            None => Err(PromoteStateError::Status {
                url: url.to_string(),
                status: 404,
                message: "no promotions endpoint".into(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::state::MemoryStore;
    use crate::ports::state::{DecisionKind, DecisionQuery, StateStore};
    use crate::promote::image::ImageRef;
    use std::sync::Arc;

    /// The client against the real router on a loopback port.
    #[tokio::test]
    async fn client_and_router_agree() {
        let dir = tempfile::tempdir().unwrap();
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, "s3cret\n").unwrap();
        let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
        let app = super::super::api::router_with_token(
            store.clone(),
            SecretSource::File(token_file.clone()),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let base = format!("http://{addr}/");
        let client = ApiClient::new(
            &base,
            SecretSource::File(token_file.clone()),
            Duration::from_secs(5),
        )
        .unwrap();

        assert_eq!(client.guard("checkout").await.unwrap(), None);
        let change = Change::new(
            "/srv/gitops.git",
            "overlays/prod",
            "checkout",
            ImageRef::Tag("v2".into()),
        )
        .unwrap();
        assert_eq!(client.approval(&change.key()).await.unwrap(), None);
        let a = client.approve(&change, "alice", None).await.unwrap();
        assert!(a.created);
        assert_eq!(a.approval.key, change.key());
        let b = client.approve(&change, "bob", None).await.unwrap();
        assert!(!b.created);
        assert_eq!(b.approval.actor, "alice");
        assert_eq!(
            client.approval(&change.key()).await.unwrap().unwrap().actor,
            "alice"
        );

        let mut rec = DecisionRecord::new(
            chrono::Utc::now(),
            DecisionKind::Promote,
            "prod",
            "cli",
            "promote",
            "ok",
        );
        rec.commits = vec!["abc".into()];
        client.record(&rec).await.unwrap();
        let log = store.decisions(&DecisionQuery::default()).await.unwrap();
        assert_eq!(
            log.iter().map(|r| r.action.as_str()).collect::<Vec<_>>(),
            ["approve", "promote"]
        );
        assert_eq!(log[0].trigger, "api");

        // A wrong token is a 401 that names no secret.
        let wrong = dir.path().join("wrong");
        std::fs::write(&wrong, "nope").unwrap();
        let bad = ApiClient::new(&base, SecretSource::File(wrong), Duration::from_secs(5)).unwrap();
        let e = bad.guard("checkout").await.unwrap_err().to_string();
        assert!(
            e.contains("HTTP 401") && !e.contains("s3cret") && !e.contains("nope"),
            "{e}"
        );
        server.abort();

        // Nobody listening: a transport error, quickly.
        let gone = ApiClient::new(
            &base,
            SecretSource::File(token_file),
            Duration::from_secs(2),
        )
        .unwrap();
        assert!(matches!(
            gone.guard("x").await,
            Err(PromoteStateError::Transport { .. })
        ));
        assert!(ApiClient::new(
            "ftp://x",
            SecretSource::Env("T".into()),
            Duration::from_secs(1)
        )
        .is_err());
        assert!(ApiClient::new(
            "http://u:p@x",
            SecretSource::Env("T".into()),
            Duration::from_secs(1)
        )
        .is_err());
    }
}
