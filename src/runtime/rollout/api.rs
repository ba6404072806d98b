//! The rollout endpoints of the JSON API, merged into the daemon's server:
//!
//! - `GET /api/v1/rollouts`: every rollout this daemon runs, with its status, then the ones
//!   it refuses for reaching beyond their namespace (their status has `Admitted=False`);
//! - `GET /api/v1/rollouts/{ns}/{name}`: one rollout (running or refused);
//! - `POST /api/v1/rollouts/{ns}/{name}/{promote|abort|pause|resume|approve}`: an operator's
//!   command. Bearer authentication ([`crate::runtime::server::authorize`], which also names
//!   the actor from `X-Slogate-Actor`); optional body `{"reason": "…"}`. The command is
//!   stored, then applied by a reconcile run at once when this replica leads. Answers:
//!   `200` applied (with the status), `409` refused by the state machine (`error` says
//!   why), `202` queued (not the leader: the leader applies it at its next reconcile),
//!   `401`/`403` unauthenticated (checked before the body is read), `400` bad body, `413` a
//!   body over 16 KiB, `404` unknown rollout or action.
//!
//! Handlers are thin: they parse, call [`RolloutController::submit`], and encode.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::commands::{self, CommandOutcome, CommandResult, QueuedCommand};
use super::controller::{RolloutController, RolloutError};
use crate::ports::state::{StateError, StateStore};
use crate::rollout::RolloutStatus;
use crate::runtime::server::{authorize_then_read, AppState, WRITE_BODY_LIMIT};

/// The rollout controllers of this daemon, by `namespace/name`. The supervisor
/// ([`super::supervisor`]) adds and removes them as Rollouts come and go; the API reads it.
/// It also names the Rollouts refused for reaching beyond their namespace, with the store
/// of their status, so that the API shows their `Admitted=False` condition.
#[derive(Default)]
pub struct RolloutRegistry {
    controllers: RwLock<BTreeMap<String, Arc<RolloutController>>>,
    refused: RwLock<BTreeMap<String, Arc<dyn StateStore>>>,
}

impl std::fmt::Debug for RolloutRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RolloutRegistry")
            .field("controllers", &*self.read())
            .field("refused", &self.refused_keys())
            .finish()
    }
}

impl RolloutRegistry {
    pub fn new(controllers: impl IntoIterator<Item = Arc<RolloutController>>) -> Self {
        RolloutRegistry {
            controllers: RwLock::new(controllers.into_iter().map(|c| (c.key(), c)).collect()),
            refused: RwLock::default(),
        }
    }

    // The map is only ever replaced whole by insert/remove, so a writer that panicked left
    // it consistent: a poisoned lock is recovered rather than propagated.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<RolloutController>>> {
        self.controllers
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Arc<RolloutController>>> {
        self.controllers
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<RolloutController>> {
        self.read().get(&format!("{namespace}/{name}")).cloned()
    }

    /// Every controller, ordered by `namespace/name`.
    pub fn all(&self) -> Vec<Arc<RolloutController>> {
        self.read().values().cloned().collect()
    }

    /// Add or replace the controller of `c.key()`.
    pub fn insert(&self, c: Arc<RolloutController>) {
        self.write().insert(c.key(), c);
    }

    /// Remove the controller of `namespace/name`.
    pub fn remove(&self, key: &str) -> Option<Arc<RolloutController>> {
        self.write().remove(key)
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// The refused Rollouts not running (by `namespace/name`) and the store of their
    /// status: replaces the previous set.
    pub fn set_refused(&self, refused: BTreeMap<String, Arc<dyn StateStore>>) {
        *self
            .refused
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = refused;
    }

    /// The store holding the status of a refused Rollout that does not run.
    pub fn refused(&self, namespace: &str, name: &str) -> Option<Arc<dyn StateStore>> {
        self.refused
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&format!("{namespace}/{name}"))
            .cloned()
    }

    /// The refused Rollouts that do not run, ordered by `namespace/name`.
    pub fn refused_keys(&self) -> Vec<String> {
        self.refused
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .keys()
            .cloned()
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }
}

/// A rollout as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutView {
    pub namespace: String,
    pub name: String,
    pub status: RolloutStatus,
    /// Commands waiting for the leader.
    #[serde(default)]
    pub pending_commands: Vec<QueuedCommand>,
    /// Outcomes of the most recent commands.
    #[serde(default)]
    pub command_results: Vec<CommandResult>,
}

/// Read a rollout's view from a state store (the daemon's, or a state directory's).
pub async fn view(
    store: &dyn StateStore,
    namespace: &str,
    name: &str,
) -> Result<RolloutView, StateError> {
    let (status, _) = commands::read_status(store, namespace, name).await?;
    let (queue, _) = commands::read_queue(store, namespace, name).await?;
    Ok(RolloutView {
        namespace: namespace.to_string(),
        name: name.to_string(),
        status,
        pending_commands: queue.pending,
        command_results: queue.results,
    })
}

/// The `(namespace, name)` of every rollout with a stored status.
pub async fn stored_rollouts(store: &dyn StateStore) -> Result<Vec<(String, String)>, StateError> {
    Ok(store
        .list("rollout/")
        .await?
        .into_iter()
        .filter_map(|k| {
            let mut parts = k.strip_prefix("rollout/")?.splitn(2, '/');
            Some((parts.next()?.to_string(), parts.next()?.to_string()))
        })
        .collect())
}

#[derive(Clone)]
struct ApiState {
    app: Arc<AppState>,
    registry: Arc<RolloutRegistry>,
}

/// The rollout routes; merge them into the server's router
/// ([`crate::runtime::server::router_with`]).
pub fn router(app: Arc<AppState>, registry: Arc<RolloutRegistry>) -> Router {
    Router::new()
        .route("/api/v1/rollouts", get(list))
        .route("/api/v1/rollouts/{ns}/{name}", get(show))
        .route("/api/v1/rollouts/{ns}/{name}/{action}", post(control))
        .with_state(ApiState { app, registry })
}

fn json_error(status: StatusCode, message: &str) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

async fn list(State(s): State<ApiState>) -> Response {
    let mut out = Vec::new();
    for c in s.registry.all() {
        let r = c.rollout();
        match view(c.store().as_ref(), r.namespace(), &r.metadata.name).await {
            Ok(v) => out.push(v),
            Err(e) => return json_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        }
    }
    // Refused Rollouts, with the condition that says why they do not run.
    for key in s.registry.refused_keys() {
        let Some((ns, name)) = key.split_once('/') else {
            continue;
        };
        let Some(store) = s.registry.refused(ns, name) else {
            continue;
        };
        match view(store.as_ref(), ns, name).await {
            Ok(v) => out.push(v),
            Err(e) => return json_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        }
    }
    Json(out).into_response()
}

async fn show(State(s): State<ApiState>, Path((ns, name)): Path<(String, String)>) -> Response {
    let store = match (s.registry.get(&ns, &name), s.registry.refused(&ns, &name)) {
        (Some(c), _) => c.store().clone(),
        (None, Some(store)) => store,
        (None, None) => {
            return json_error(
                StatusCode::NOT_FOUND,
                &format!("unknown rollout {ns}/{name}"),
            )
        }
    };
    match view(store.as_ref(), &ns, &name).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => json_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// Body of a control request (optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ControlBody {
    #[serde(default)]
    reason: Option<String>,
}

async fn control(
    State(s): State<ApiState>,
    Path((ns, name, action)): Path<(String, String, String)>,
    headers: axum::http::HeaderMap,
    body: axum::body::Body,
) -> Response {
    // Authentication first: the body of an unauthenticated request is never read.
    let (actor, body) = match authorize_then_read(&s.app, &headers, body, WRITE_BODY_LIMIT).await {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let Some(action) = commands::parse_action(&action) else {
        return json_error(
            StatusCode::NOT_FOUND,
            &format!(
                "unknown action `{action}`: expected promote, abort, pause, resume or approve"
            ),
        );
    };
    let body: ControlBody = if body.iter().all(u8::is_ascii_whitespace) {
        ControlBody::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(b) => b,
            Err(e) => {
                return json_error(
                    StatusCode::BAD_REQUEST,
                    &format!("body: {e}; expected nothing or {{\"reason\": \"…\"}}"),
                )
            }
        }
    };
    let Some(c) = s.registry.get(&ns, &name) else {
        return json_error(
            StatusCode::NOT_FOUND,
            &format!("unknown rollout {ns}/{name}"),
        );
    };
    match c
        .submit(action, &actor, body.reason, "api", chrono::Utc::now())
        .await
    {
        Ok(r) => {
            let code = match r.outcome {
                CommandOutcome::Applied => StatusCode::OK,
                CommandOutcome::Rejected => StatusCode::CONFLICT,
                CommandOutcome::Queued => StatusCode::ACCEPTED,
            };
            let mut v = serde_json::to_value(&r).unwrap_or_default();
            if let Some(o) = v.as_object_mut() {
                o.insert("rollout".into(), format!("{ns}/{name}").into());
                if r.outcome == CommandOutcome::Rejected {
                    o.insert("error".into(), r.reason.clone().into());
                }
                if let Ok((status, _)) = c.status().await {
                    o.insert(
                        "status".into(),
                        serde_json::to_value(status).unwrap_or_default(),
                    );
                }
            }
            (code, Json(v)).into_response()
        }
        Err(e @ RolloutError::Conflict { .. }) => {
            json_error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string())
        }
        Err(e) => json_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}
