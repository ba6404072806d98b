//! The daemon's HTTP server (axum): `/healthz`, `/readyz`, `/metrics` and the JSON API.
//! Handlers are thin: they read shared state and encode it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use super::metrics::Metrics;
use crate::slo::budget::BudgetReport;

/// State shared by the scheduler (writer) and the HTTP handlers (readers).
#[derive(Default)]
pub struct AppState {
    pub metrics: Metrics,
    /// Set after the first evaluation cycle that reached Prometheus.
    pub ready: AtomicBool,
    /// The latest report of every SLO.
    pub reports: RwLock<Vec<BudgetReport>>,
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
    Json(reports).into_response()
}

async fn not_found() -> Response {
    json_error(StatusCode::NOT_FOUND, "no such endpoint")
}
