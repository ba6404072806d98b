//! The daemon's HTTP endpoints for `slogate promote` and `slogate approve`.
//!
//! | method | path | answer |
//! | --- | --- | --- |
//! | `GET` | `/api/v1/guard/{app}` | 200 `{"app", "frozen", "state"}` (`state` is the guard's `guard/<app>` document, `null` when it has none) |
//! | `GET` | `/api/v1/approvals/{key}` | 200 the approval, 404 when there is none |
//! | `POST` | `/api/v1/approvals` | body [`ApprovalRequest`]: 201 the new approval, 200 the existing one for the same change |
//! | `POST` | `/api/v1/promotions` | body a `DecisionRecord` of kind `promote`: 201 `{"id"}` once it is in the decision log |
//!
//! Every endpoint needs `Authorization: Bearer <token>` (the scheme in any case; 401 otherwise, with
//! `WWW-Authenticate: Bearer`). The expected token is an [`ApiToken`] extension, read from
//! its file or environment variable at each request so a rotated token is picked up:
//! [`router_with_token`] adds it; a [`router`] merged without one answers 500 to every
//! request (it fails closed, never open). Errors are JSON `{"error": "..."}`; bodies are
//! capped at 64 KiB (413).

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde_json::json;

use super::approval::{self, ApprovalRequest};
use super::state::StoreState;
use crate::adapters::git::SecretSource;
use crate::ports::promote::{PromoteState, PromoteStateError};
use crate::ports::state::{validate_key, DecisionKind, DecisionRecord, StateStore};

/// Largest accepted request body.
pub const BODY_LIMIT: usize = 64 * 1024;

/// The bearer token the endpoints require.
#[derive(Clone, Debug)]
pub struct ApiToken(pub SecretSource);

/// The routes, behind bearer authentication. Add an [`ApiToken`] extension layer (or use
/// [`router_with_token`]); without one every request is refused with 500.
pub fn router(store: Arc<dyn StateStore>) -> Router {
    let state = StoreState::new(store, "api");
    Router::new()
        .route("/api/v1/guard/{app}", get(guard))
        .route("/api/v1/approvals/{key}", get(get_approval))
        .route("/api/v1/approvals", post(post_approval))
        .route("/api/v1/promotions", post(post_promotion))
        .with_state(state)
        .layer(middleware::from_fn(require_bearer))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
}

/// [`router`] with its token.
pub fn router_with_token(store: Arc<dyn StateStore>, token: SecretSource) -> Router {
    router(store).layer(Extension(ApiToken(token)))
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

fn state_error(e: PromoteStateError) -> Response {
    match e {
        PromoteStateError::Invalid(m) => error(StatusCode::BAD_REQUEST, m),
        other => {
            tracing::warn!(error = %other, "promote API: state store failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, other.to_string())
        }
    }
}

async fn require_bearer(req: Request, next: Next) -> Response {
    let Some(ApiToken(source)) = req.extensions().get::<ApiToken>().cloned() else {
        tracing::error!("promote API: no ApiToken configured; refusing every request");
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the API token is not configured on the server",
        );
    };
    let expected = match source.read() {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "promote API: cannot read the API token");
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the API token cannot be read on the server",
            );
        }
    };
    // The same check as every other endpoint (any case of `Bearer`, constant time).
    match crate::adapters::http_auth::bearer_matches(req.headers(), &expected) {
        true => next.run(req).await,
        false => {
            let mut r = error(StatusCode::UNAUTHORIZED, "a valid bearer token is required");
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            r
        }
    }
}

async fn guard(State(st): State<StoreState>, Path(app): Path<String>) -> Response {
    if app.contains('/') || validate_key(&app).is_err() {
        return error(
            StatusCode::BAD_REQUEST,
            format!("app `{app}`: expected a name of [A-Za-z0-9._-]"),
        );
    }
    match st.guard(&app).await {
        Ok(state) => Json(json!({
            "app": app,
            "frozen": state.as_ref().is_some_and(|s| s.frozen()),
            "state": state,
        }))
        .into_response(),
        Err(e) => state_error(e),
    }
}

async fn get_approval(State(st): State<StoreState>, Path(key): Path<String>) -> Response {
    if !approval::valid_key(&key) {
        return error(
            StatusCode::BAD_REQUEST,
            format!("key `{key}`: expected 64 lowercase hex digits"),
        );
    }
    match st.approval(&key).await {
        Ok(Some(a)) => Json(a).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no approval with key {key}")),
        Err(e) => state_error(e),
    }
}

async fn post_approval(
    State(st): State<StoreState>,
    body: Result<Json<ApprovalRequest>, JsonRejection>,
) -> Response {
    let req = match body {
        Ok(Json(r)) => r,
        Err(e) => return error(e.status(), format!("invalid approval: {}", e.body_text())),
    };
    let change = match req.change() {
        Ok(c) => c,
        Err(m) => return error(StatusCode::BAD_REQUEST, m),
    };
    match st
        .approve(&change, &req.actor, req.comment.as_deref())
        .await
    {
        Ok(a) => {
            let status = if a.created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            (status, Json(a.approval)).into_response()
        }
        Err(e) => state_error(e),
    }
}

async fn post_promotion(
    State(st): State<StoreState>,
    body: Result<Json<DecisionRecord>, JsonRejection>,
) -> Response {
    let rec = match body {
        Ok(Json(r)) => r,
        Err(e) => {
            return error(
                e.status(),
                format!("invalid decision record: {}", e.body_text()),
            )
        }
    };
    if rec.kind != DecisionKind::Promote {
        return error(
            StatusCode::BAD_REQUEST,
            "kind: expected \"promote\" (this endpoint only logs promote decisions)",
        );
    }
    if !matches!(rec.action.as_str(), "promote" | "refuse" | "none") {
        return error(
            StatusCode::BAD_REQUEST,
            format!("action `{}`: expected promote, refuse or none", rec.action),
        );
    }
    match st.record(&rec).await {
        Ok(()) => (StatusCode::CREATED, Json(json!({ "id": rec.id }))).into_response(),
        Err(e) => state_error(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::state::MemoryStore;
    use crate::guard::state::{key as guard_key, AppGuardState, Breach};
    use crate::slo::budget::Action;

    async fn serve(app: Router) -> (String, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let h = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (format!("http://{addr}"), h)
    }

    fn http() -> reqwest::Client {
        reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .unwrap()
    }

    #[tokio::test]
    async fn endpoints_auth_and_errors() {
        // The token comes from an environment variable only this test sets.
        std::env::set_var("SLOGATE_TEST_PROMOTE_API_TOKEN", "tok-123");
        let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
        let frozen = AppGuardState {
            breach: Some(Breach {
                id: "b-9".into(),
                slo: "checkout-availability".into(),
                level: Action::Critical,
                budget_consumed: 0.85,
                since: chrono::Utc::now(),
                base: None,
                reverts: vec![],
            }),
            ..Default::default()
        };
        store
            .put(
                &guard_key("checkout"),
                serde_json::to_value(&frozen).unwrap(),
                None,
            )
            .await
            .unwrap();
        let (base, h) = serve(router_with_token(
            store.clone(),
            SecretSource::Env("SLOGATE_TEST_PROMOTE_API_TOKEN".into()),
        ))
        .await;
        let c = http();
        let get = |p: &str| c.get(format!("{base}{p}")).bearer_auth("tok-123");

        // 401 without or with a wrong token, with the challenge header.
        let r = c
            .get(format!("{base}/api/v1/guard/checkout"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
        let r = c
            .get(format!("{base}/api/v1/guard/checkout"))
            .bearer_auth("tok-12")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);

        let v: serde_json::Value = get("/api/v1/guard/checkout")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(v["frozen"], true);
        assert_eq!(v["state"]["breach"]["id"], "b-9");
        let v: serde_json::Value = get("/api/v1/guard/cart")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(v, json!({"app": "cart", "frozen": false, "state": null}));
        assert_eq!(
            get("/api/v1/guard/a%20b").send().await.unwrap().status(),
            400
        );

        assert_eq!(
            get("/api/v1/approvals/xyz").send().await.unwrap().status(),
            400
        );
        assert_eq!(
            get(&format!("/api/v1/approvals/{}", "a".repeat(64)))
                .send()
                .await
                .unwrap()
                .status(),
            404
        );

        let post = |p: &str| c.post(format!("{base}{p}")).bearer_auth("tok-123");
        let body = json!({"repo": "/srv/gitops.git", "target": "overlays/prod", "image": "checkout=v2", "actor": "alice"});
        let r = post("/api/v1/approvals").json(&body).send().await.unwrap();
        assert_eq!(r.status(), 201);
        let a: serde_json::Value = r.json().await.unwrap();
        let key = a["key"].as_str().unwrap().to_string();
        let r = post("/api/v1/approvals").json(&body).send().await.unwrap();
        assert_eq!(
            r.status(),
            200,
            "the same change again: the existing approval"
        );
        let got: serde_json::Value = get(&format!("/api/v1/approvals/{key}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(got["actor"], "alice");
        assert_eq!(got["tag"], "v2");

        // Bad bodies: 400 naming the field, JSON errors, 413 past the limit.
        let r = post("/api/v1/approvals")
            .json(
                &json!({"repo": "r", "target": "overlays/prod", "image": "checkout", "actor": "a"}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        let e: serde_json::Value = r.json().await.unwrap();
        assert!(e["error"].as_str().unwrap().starts_with("image:"), "{e}");
        let r = post("/api/v1/approvals")
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        assert!(r.json::<serde_json::Value>().await.unwrap()["error"].is_string());
        let r = post("/api/v1/approvals")
            .header("content-type", "application/json")
            .body(format!("{{\"repo\": \"{}\"}}", "x".repeat(BODY_LIMIT)))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 413);
        let rec = DecisionRecord::new(
            chrono::Utc::now(),
            DecisionKind::Guard,
            "x",
            "cli",
            "promote",
            "r",
        );
        let r = post("/api/v1/promotions").json(&rec).send().await.unwrap();
        assert_eq!(r.status(), 400, "only promote records");
        h.abort();

        // Merged without a token: fails closed.
        let (base, h) = serve(router(store)).await;
        let r = c
            .get(format!("{base}/api/v1/guard/checkout"))
            .bearer_auth("anything")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 500);
        h.abort();
    }
}

#[cfg(test)]
mod client_tests {
    use std::sync::Arc;
    use std::time::Duration;

    use crate::adapters::git::SecretSource;
    use crate::adapters::promote_api::ApiClient;
    use crate::adapters::state::MemoryStore;
    use crate::model::approval::{Change, ImageRef};
    use crate::ports::promote::{PromoteState, PromoteStateError};
    use crate::ports::state::{DecisionKind, DecisionQuery, DecisionRecord, StateStore};

    /// The daemon-API client (`adapters::promote_api`) against the real router on a loopback port.
    #[tokio::test]
    async fn client_and_router_agree() {
        let dir = tempfile::tempdir().unwrap();
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, "s3cret\n").unwrap();
        let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
        let app = super::router_with_token(store.clone(), SecretSource::File(token_file.clone()));
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
