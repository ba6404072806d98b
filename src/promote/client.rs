//! [`PromoteState`] over the daemon's HTTP API (the endpoints of [`super::api`]), for CI
//! jobs that do not share a state directory with the daemon.
//!
//! The requests go through the daemon-API client ([`DaemonApi`]): every request has a
//! timeout and a bearer token read from a file or an environment variable at each call.
//! Neither the token nor URL credentials appear in errors.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::StatusCode;
use serde::de::DeserializeOwned;

use super::approval::{Approval, ApprovalRequest, Change};
use super::state::{Approved, PromoteState, PromoteStateError};
use crate::adapters::daemon_api::{DaemonApi, DaemonApiError, Reply};
use crate::adapters::git::SecretSource;
use crate::guard::AppGuardState;
use crate::ports::state::DecisionRecord;

/// A client of the daemon's promote API.
#[derive(Debug, Clone)]
pub struct ApiClient {
    api: DaemonApi,
}

#[derive(serde::Deserialize)]
struct GuardAnswer {
    #[serde(default)]
    state: Option<AppGuardState>,
}

impl From<DaemonApiError> for PromoteStateError {
    fn from(e: DaemonApiError) -> Self {
        match e {
            DaemonApiError::Token(m) => PromoteStateError::Token(m),
            DaemonApiError::Status {
                url,
                status,
                message,
                ..
            } => PromoteStateError::Status {
                url,
                status,
                message,
            },
            DaemonApiError::Transport { url, message, .. } => {
                PromoteStateError::Transport { url, message }
            }
            DaemonApiError::Decode { url, source, .. } => PromoteStateError::Transport {
                url,
                message: format!("unexpected answer: {source}"),
            },
            e @ (DaemonApiError::Url { .. }
            | DaemonApiError::UrlCredentials
            | DaemonApiError::Client(_)) => PromoteStateError::Invalid(e.to_string()),
        }
    }
}

impl ApiClient {
    /// `base` is the daemon's URL (`http://slogate.slogate.svc:8080`, a path prefix is
    /// kept). Errors name what is wrong with it.
    pub fn new(base: &str, token: SecretSource, timeout: Duration) -> Result<Self, String> {
        let api = DaemonApi::new(base, timeout, timeout).map_err(|e| match e {
            DaemonApiError::UrlCredentials => {
                format!("{e}: pass the token with --slogate-token-file or --slogate-token-env")
            }
            e => e.to_string(),
        })?;
        Ok(ApiClient {
            api: api.with_token(token),
        })
    }

    /// The answer's JSON when its status is one of `ok`; `None` for a 404.
    fn answer<T: DeserializeOwned>(
        reply: &Reply,
        ok: &[StatusCode],
    ) -> Result<Option<T>, PromoteStateError> {
        if reply.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        Ok(Some(reply.json(ok)?))
    }

    /// The error for a 404 from an endpoint every daemon with the promote API has.
    fn no_endpoint(reply: &Reply, message: &str) -> PromoteStateError {
        PromoteStateError::Status {
            url: reply.url.to_string(),
            status: 404,
            message: message.into(),
        }
    }
}

#[async_trait]
impl PromoteState for ApiClient {
    async fn guard(&self, app: &str) -> Result<Option<AppGuardState>, PromoteStateError> {
        let reply = self
            .api
            .get(self.api.url(&["api", "v1", "guard", app]))
            .await?;
        match Self::answer::<GuardAnswer>(&reply, &[StatusCode::OK])? {
            Some(a) => Ok(a.state),
            None => Err(Self::no_endpoint(
                &reply,
                "no guard endpoint: is this a slogate daemon with the promote API?",
            )),
        }
    }

    async fn approval(&self, key: &str) -> Result<Option<Approval>, PromoteStateError> {
        let reply = self
            .api
            .get(self.api.url(&["api", "v1", "approvals", key]))
            .await?;
        Self::answer(&reply, &[StatusCode::OK])
    }

    async fn approve(
        &self,
        change: &Change,
        actor: &str,
        comment: Option<&str>,
    ) -> Result<Approved, PromoteStateError> {
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
        let reply = self
            .api
            .post(self.api.url(&["api", "v1", "approvals"]), &body, &[])
            .await?;
        let created = reply.status == StatusCode::CREATED;
        match Self::answer::<Approval>(&reply, &[StatusCode::OK, StatusCode::CREATED])? {
            Some(approval) => Ok(Approved { approval, created }),
            None => Err(Self::no_endpoint(
                &reply,
                "no approvals endpoint: is this a slogate daemon with the promote API?",
            )),
        }
    }

    async fn record(&self, record: &DecisionRecord) -> Result<(), PromoteStateError> {
        let reply = self
            .api
            .post(self.api.url(&["api", "v1", "promotions"]), record, &[])
            .await?;
        match Self::answer::<serde_json::Value>(&reply, &[StatusCode::CREATED, StatusCode::OK])? {
            Some(_) => Ok(()),
            None => Err(Self::no_endpoint(&reply, "no promotions endpoint")),
        }
    }

    async fn promote_records(
        &self,
        subject: &str,
    ) -> Result<Vec<DecisionRecord>, PromoteStateError> {
        let mut url = self.api.url(&["api", "v1", "decisions"]);
        url.query_pairs_mut()
            .append_pair("subject", subject)
            .append_pair("kind", "promote")
            .append_pair("limit", "100");
        let reply = self.api.get(url).await?;
        match Self::answer::<Vec<DecisionRecord>>(&reply, &[StatusCode::OK])? {
            Some(r) => Ok(r),
            None => Err(Self::no_endpoint(&reply, "no decisions endpoint")),
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
