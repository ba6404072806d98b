//! The daemon's HTTP server (axum): `/healthz`, `/readyz`, `/metrics` and the JSON API.
//! Handlers are thin: they read shared state and encode it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use super::guard::GuardRuntime;
use super::metrics::Metrics;
use crate::adapters::git::Secret;
use crate::ports::state::{DecisionKind, DecisionQuery, StateStore};
use crate::slo::budget::BudgetReport;

/// State shared by the scheduler (writer) and the HTTP handlers (readers).
#[derive(Default)]
pub struct AppState {
    pub metrics: Metrics,
    /// Set after the first evaluation cycle that reached Prometheus.
    pub ready: AtomicBool,
    /// The latest report of every SLO (shared with the cycle that made them, not copied).
    pub reports: RwLock<Arc<Vec<BudgetReport>>>,
    /// Durable state and the decision log.
    pub store: Option<Arc<dyn StateStore>>,
    /// The guard, when apps are guarded.
    pub guard: Option<Arc<GuardRuntime>>,
    /// Bearer token of the write endpoints; none: they answer 403.
    pub api_token: Option<Secret>,
}

pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub fn router(state: Arc<AppState>) -> Router {
    router_with(state, Router::new())
}

/// [`router`] plus `extra` routes (the webhook receiver, see
/// [`crate::runtime::webhook::router`]), which keep their own state.
pub fn router_with(state: Arc<AppState>, extra: Router) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/slos", get(slos))
        .route("/api/v1/decisions", get(decisions))
        .route(
            "/api/v1/guard/{app}/override",
            axum::routing::post(override_freeze),
        )
        .with_state(state)
        .merge(extra)
        .fallback(not_found)
}

fn json_error(status: StatusCode, message: &str) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(s): State<Arc<AppState>>) -> Response {
    if s.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: no evaluation has reached Prometheus yet",
        )
    }
}

async fn metrics(State(s): State<Arc<AppState>>) -> Response {
    match s.metrics.encode() {
        Ok(body) => ([(header::CONTENT_TYPE, OPENMETRICS)], body).into_response(),
        Err(_) => json_error(StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics"),
    }
}

async fn slos(State(s): State<Arc<AppState>>) -> Response {
    // A poisoned lock means a writer panicked mid-update; the vector itself is still whole.
    let reports = s.reports.read().unwrap_or_else(|p| p.into_inner()).clone();
    Json(&reports[..]).into_response()
}

/// Query string of `GET /api/v1/decisions`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionParams {
    subject: Option<String>,
    kind: Option<DecisionKind>,
    since: Option<chrono::DateTime<chrono::Utc>>,
    limit: Option<usize>,
}

async fn decisions(
    State(s): State<Arc<AppState>>,
    q: Result<axum::extract::Query<DecisionParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let q = match q {
        Ok(axum::extract::Query(q)) => q,
        Err(e) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                &format!("query string: {}; expected subject, kind (guard|rollout|promote|operator|known_good), since (RFC 3339) and limit", e.body_text()),
            )
        }
    };
    let Some(store) = &s.store else {
        return Json(Vec::<()>::new()).into_response();
    };
    let query = DecisionQuery {
        subject: q.subject,
        kind: q.kind,
        since: q.since,
        limit: Some(q.limit.unwrap_or(100).min(10_000)),
    };
    match store.decisions(&query).await {
        Ok(d) => Json(d).into_response(),
        Err(e) => json_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// Largest body of the write endpoints of this router and the rollout controls
/// (`{"reason": "…"}`).
pub const WRITE_BODY_LIMIT: usize = 16 * 1024;

/// Check `Authorization: Bearer <api.token>` (any case of `Bearer`, constant-time; see
/// [`crate::adapters::http_auth`]). Reads headers only: call it before reading the body.
/// `Err` is the response.
pub fn authorize(s: &AppState, headers: &axum::http::HeaderMap) -> Result<String, Box<Response>> {
    let Some(token) = &s.api_token else {
        return Err(Box::new(json_error(
            StatusCode::FORBIDDEN,
            "write endpoints are disabled: configure api.token",
        )));
    };
    if !crate::adapters::http_auth::bearer_matches(headers, token) {
        let mut r = json_error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            axum::http::HeaderValue::from_static("Bearer"),
        );
        return Err(Box::new(r));
    }
    Ok(headers
        .get("x-slogate-actor")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 100)
        .unwrap_or("api")
        .to_string())
}

/// [`authorize`], then the body (at most `limit` bytes). The body is not read at all when
/// the request is not authenticated. `Err` is the response.
pub async fn authorize_then_read(
    s: &AppState,
    headers: &axum::http::HeaderMap,
    body: axum::body::Body,
    limit: usize,
) -> Result<(String, axum::body::Bytes), Box<Response>> {
    let actor = authorize(s, headers)?;
    match super::serve::read_body(headers, body, limit).await {
        Ok(b) => Ok((actor, b)),
        Err(e) => Err(Box::new(json_error(
            e.status(),
            &crate::ports::error_chain(&e),
        ))),
    }
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideBody {
    reason: String,
}

async fn override_freeze(
    State(s): State<Arc<AppState>>,
    axum::extract::Path(app): axum::extract::Path<String>,
    headers: axum::http::HeaderMap,
    body: axum::body::Body,
) -> Response {
    let (actor, bytes) = match authorize_then_read(&s, &headers, body, WRITE_BODY_LIMIT).await {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let body: OverrideBody = match serde_json::from_slice(&bytes) {
        Ok(b) => b,
        Err(e) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                &format!("body: {e}; expected {{\"reason\": \"…\"}}"),
            )
        }
    };
    if body.reason.trim().is_empty() {
        return json_error(
            StatusCode::BAD_REQUEST,
            "reason: expected a non-empty reason",
        );
    }
    let Some(g) = &s.guard else {
        return json_error(StatusCode::NOT_FOUND, "no guarded apps are configured");
    };
    match g
        .override_freeze(&app, body.reason.trim(), &actor, chrono::Utc::now())
        .await
    {
        Ok(true) => Json(serde_json::json!({"app": app, "override": "recorded"})).into_response(),
        Ok(false) => json_error(StatusCode::CONFLICT, &format!("app `{app}` is not frozen")),
        Err(super::guard::GuardError::UnknownApp(a)) => {
            json_error(StatusCode::NOT_FOUND, &format!("unknown guarded app `{a}`"))
        }
        Err(e) => json_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

async fn not_found() -> Response {
    json_error(StatusCode::NOT_FOUND, "no such endpoint")
}
