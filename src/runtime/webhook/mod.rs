//! The Alertmanager webhook receiver: `POST /webhook/alertmanager`.
//!
//! A burn-rate alert makes slogate evaluate the alert's SLO (and run its guard) at once
//! instead of at the next scheduled cycle. A request goes through these steps, each with its
//! own answer:
//!
//! 1. **Authentication** ([`auth`]): bearer token and/or basic auth, compared in constant
//!    time. Without or with wrong credentials: `401` with a JSON body and
//!    `WWW-Authenticate`. A receiver without credentials is refused at start-up unless
//!    `webhook.allow_unauthenticated: true` says so explicitly.
//! 2. **Content type**: `application/json`, else `415`.
//! 3. **Size**: at most `webhook.max_body_bytes` (default 1 MiB), else `413`, checked on
//!    `Content-Length` and again while reading.
//! 4. **Shape** ([`payload`]): Alertmanager's version 4 payload; else `400` with
//!    `{"error": …, "field": "alerts[0].startsAt"}`.
//! 5. **Mapping** to a loaded SLO: label `sloth_id`, or `sloth_service` + `sloth_slo`
//!    (id `<service>-<slo>`, Sloth's). Alerts of no loaded SLO are logged and counted
//!    (`unknown`), not errors: one Alertmanager receiver often carries other alerts too.
//! 6. **Recording** ([`dedupe`]): each alert event (fingerprint, status, startsAt) is stored
//!    through the [`StateStore`] unless already there (`duplicate`), in one bounded document
//!    per SLO, one write per SLO and request. A store failure answers `500`, so Alertmanager
//!    retries; the events stored before the failure are then duplicates and are not
//!    triggered twice.
//! 7. **Trigger**: after its event is stored, each new alert is sent as an [`AlertTrigger`] on
//!    the daemon's channel. The answer, `200` with `{received, recorded, resolved,
//!    duplicates, unknown}`, is sent only once every alert of the request is stored and
//!    triggered.
//!
//! Steps 6 and 7 run in the SLO's writer task ([`dedupe::Batcher`]), which the request
//! hands its alerts to and then waits on: a client that hangs up cannot cancel the work
//! between "event stored" and "trigger sent", and the request itself needs no task of its
//! own.
//!
//! A trigger is a hint, not the record: if the queue stays full for [`TRIGGER_WAIT`] (the
//! guard is stuck; one wait for all the alerts written together) or is closed (shutdown),
//! the trigger is dropped and counted
//! (`slogate_webhook_triggers_dropped_total`). The alert stays recorded, and the SLO is
//! evaluated at the next scheduled cycle anyway.
//!
//! Metrics: `slogate_webhook_requests_total{code}`, `slogate_webhook_alerts_total{result}`
//! (`recorded`, `resolved`, `duplicate`, `unknown`),
//! `slogate_webhook_request_duration_seconds`, `slogate_webhook_triggers_dropped_total`.

pub mod auth;
pub mod config;
pub mod dedupe;
pub mod handoff;
pub mod labels;
pub mod payload;

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use tokio::sync::mpsc;

use super::logsafe::{self, Escaped};
use super::metrics::{AlertResult, CodeLabels, WebhookMetrics};
use crate::ports::state::StateStore;

pub use crate::ports::slo_index::SloIndex;

pub use auth::Authenticator;
pub use config::WebhookConfig;
pub use labels::Labels;
pub use payload::AlertStatus;

/// Where Alertmanager posts.
pub const PATH: &str = "/webhook/alertmanager";

/// How long a request waits for room in a full trigger queue before dropping the trigger.
pub const TRIGGER_WAIT: Duration = Duration::from_secs(2);

/// "Evaluate this SLO now": sent once per new alert event, after it is recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlertTrigger {
    /// The loaded SLO the alert maps to (Sloth id `<service>-<slo>`).
    pub slo_id: String,
    pub status: AlertStatus,
    /// Alertmanager's fingerprint of the alert's label set (or the same hash computed).
    pub fingerprint: String,
    pub alertname: Option<String>,
    /// `sloth_severity` (`page`/`ticket`), else `severity`.
    pub severity: Option<String>,
    pub starts_at: DateTime<Utc>,
}

/// A shared, replaceable set of SLO ids: the daemon replaces it after each spec reload.
#[derive(Debug, Clone, Default)]
pub struct SloIds(Arc<RwLock<HashSet<String>>>);

impl SloIds {
    pub fn new<I: IntoIterator<Item = String>>(ids: I) -> Self {
        SloIds(Arc::new(RwLock::new(ids.into_iter().collect())))
    }

    /// Replace the whole set.
    pub fn replace<I: IntoIterator<Item = String>>(&self, ids: I) {
        let next: HashSet<String> = ids.into_iter().collect();
        // A poisoned lock only means a reader panicked; the set is replaced whole.
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = next;
    }
}

impl SloIndex for SloIds {
    fn contains(&self, id: &str) -> bool {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(id)
    }
}

/// The SLO an alert belongs to: `sloth_id`, else `<sloth_service>-<sloth_slo>`, when loaded.
pub fn slo_of(labels: &Labels, slos: &dyn SloIndex) -> Option<String> {
    if let Some(id) = labels.get("sloth_id") {
        if slos.contains(id) {
            return Some(id.to_string());
        }
    }
    if let (Some(service), Some(slo)) = (labels.get("sloth_service"), labels.get("sloth_slo")) {
        let id = format!("{service}-{slo}");
        if slos.contains(&id) {
            return Some(id);
        }
    }
    None
}

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("webhook configuration: {0}")]
    Config(String),
}

/// Everything the handler needs.
pub struct WebhookState {
    auth: Authenticator,
    store: Arc<dyn StateStore>,
    slos: Arc<dyn SloIndex>,
    metrics: WebhookMetrics,
    max_body_bytes: usize,
    dedupe_ttl: Duration,
    /// Group commit of the dedupe documents (one compare-and-swap per SLO for all the
    /// requests that arrive while the previous one is being written).
    dedupe: Arc<dedupe::Batcher>,
}

impl WebhookState {
    /// A receiver with the default limits (1 MiB bodies, 7 days of dedupe history).
    pub fn new(
        auth: Authenticator,
        store: Arc<dyn StateStore>,
        slos: Arc<dyn SloIndex>,
        triggers: mpsc::Sender<AlertTrigger>,
        metrics: WebhookMetrics,
    ) -> Self {
        let d = WebhookConfig::default();
        WebhookState {
            auth,
            store,
            slos,
            max_body_bytes: d.max_body_bytes,
            dedupe_ttl: d.dedupe_ttl.as_std(),
            dedupe: Arc::new(dedupe::Batcher::new(Arc::new(Deliver {
                triggers: triggers.clone(),
                metrics: metrics.clone(),
            }))),
            metrics,
        }
    }

    /// Build from the `webhook:` config: reads the secrets (errors if one is missing or
    /// no credentials are configured without `allow_unauthenticated`) and creates the
    /// trigger channel (capacity `webhook.queue`); the daemon consumes the receiver.
    pub fn from_config(
        cfg: &WebhookConfig,
        store: Arc<dyn StateStore>,
        slos: Arc<dyn SloIndex>,
        metrics: WebhookMetrics,
    ) -> Result<(Self, mpsc::Receiver<AlertTrigger>), WebhookError> {
        let auth = Authenticator::from_config(cfg).map_err(WebhookError::Config)?;
        let (tx, rx) = mpsc::channel(cfg.queue.max(1));
        let s = WebhookState::new(auth, store, slos, tx, metrics)
            .with_max_body_bytes(cfg.max_body_bytes)
            .with_dedupe_ttl(cfg.dedupe_ttl.as_std());
        Ok((s, rx))
    }

    pub fn with_max_body_bytes(mut self, n: usize) -> Self {
        self.max_body_bytes = n;
        self
    }

    pub fn with_dedupe_ttl(mut self, ttl: Duration) -> Self {
        self.dedupe_ttl = ttl;
        self
    }
}

/// `POST /webhook/alertmanager`, to merge into the daemon's router.
pub fn router(state: WebhookState) -> Router {
    Router::new()
        .route(PATH, post(receive).fallback(method_not_allowed))
        .with_state(Arc::new(state))
}

/// Counts of one request, the 200 answer's body.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Summary {
    /// Alerts in the payload.
    pub received: usize,
    /// New firing events, stored and triggered.
    pub recorded: usize,
    /// New resolved events, stored and triggered.
    pub resolved: usize,
    /// Events stored before (Alertmanager repeats and retries).
    pub duplicates: usize,
    /// Alerts of no loaded SLO.
    pub unknown: usize,
}

async fn receive(State(s): State<Arc<WebhookState>>, req: Request) -> Response {
    let start = Instant::now();
    // The request taken whole: axum's `HeaderMap` extractor would copy the headers.
    let (parts, body) = req.into_parts();
    let resp = handle(&s, &parts.headers, body).await;
    s.metrics
        .requests
        .get_or_create(&CodeLabels {
            code: resp.status().as_u16(),
        })
        .inc();
    s.metrics.duration.observe(start.elapsed().as_secs_f64());
    resp
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

async fn method_not_allowed() -> Response {
    let mut r = error(
        StatusCode::METHOD_NOT_ALLOWED,
        "use POST with an Alertmanager webhook payload",
    );
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("POST"));
    r
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(v) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mime = v.split(';').next().unwrap_or("").trim();
    mime.eq_ignore_ascii_case("application/json")
}

async fn handle(s: &WebhookState, headers: &HeaderMap, body: Body) -> Response {
    if let Err(why) = s.auth.check(headers) {
        tracing::warn!(reason = why.message(), "webhook request refused");
        let mut r = error(StatusCode::UNAUTHORIZED, why.message());
        for c in s.auth.challenges() {
            r.headers_mut()
                .append(header::WWW_AUTHENTICATE, HeaderValue::from_static(c));
        }
        return r;
    }
    if !is_json(headers) {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "expected Content-Type: application/json",
        );
    }
    // Authenticated: now the body, capped (413 on Content-Length or while reading) and
    // within server.body_timeout (408).
    let bytes = match super::serve::read_body(headers, body, s.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => return error(e.status(), &crate::ports::error_chain(&e)),
    };
    let payload = match payload::parse(&bytes) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(
                field = %Escaped(&e.field),
                "webhook payload rejected: {}",
                Escaped(&e.to_string())
            );
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({ "error": e.to_string(), "field": e.field })),
            )
                .into_response();
        }
    };
    if payload.truncated_alerts > 0 {
        tracing::warn!(
            truncated = payload.truncated_alerts,
            group_key = %logsafe::opt(payload.group_key.as_deref()),
            "Alertmanager truncated the alert group (max_alerts); the missing alerts' SLOs are evaluated on schedule"
        );
    }
    let mut summary = Summary {
        received: payload.alerts.len(),
        ..Summary::default()
    };
    // The alerts of each SLO, in the order the SLOs first appear: recorded per SLO in one
    // compare-and-swap of its bounded dedupe document.
    let mut by_slo: Vec<(String, Vec<payload::Alert>)> = Vec::new();
    for alert in payload.alerts {
        let Some(slo_id) = slo_of(&alert.labels, s.slos.as_ref()) else {
            // Label values are the sender's: escaped, so that they cannot forge log lines.
            let label = |k: &str| logsafe::opt(alert.labels.get(k));
            tracing::info!(
                alertname = %label("alertname"),
                sloth_id = %label("sloth_id"),
                sloth_service = %label("sloth_service"),
                sloth_slo = %label("sloth_slo"),
                "alert maps to no loaded SLO; ignored"
            );
            summary.count(AlertResult::Unknown);
            s.metrics.alert(AlertResult::Unknown);
            continue;
        };
        match by_slo.iter_mut().find(|(id, _)| *id == slo_id) {
            Some((_, v)) => v.push(alert),
            None => by_slo.push((slo_id, vec![alert])),
        }
    }
    // Every SLO's alerts are handed to its writer before any answer is awaited: from then
    // on the writer task records and triggers them even if this request is cancelled (the
    // client hangs up), so a stored event never misses its trigger.
    let tickets: Vec<_> = by_slo
        .into_iter()
        .map(|(slo_id, alerts)| {
            let statuses: Vec<AlertStatus> = alerts.iter().map(|a| a.status).collect();
            let ticket = s.dedupe.submit(&s.store, &slo_id, alerts, s.dedupe_ttl);
            (slo_id, statuses, ticket)
        })
        .collect();
    for (slo_id, statuses, ticket) in tickets {
        let answers = match ticket.answer().await {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(slo = %slo_id, "cannot record alert: {e}");
                return error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "cannot record the alert; retry later",
                );
            }
        };
        for (status, answer) in statuses.into_iter().zip(answers) {
            summary.count(result_of(answer, status));
        }
    }
    summary.into_response()
}

/// What the receiver does once a group of alerts is stored, in the SLO's writer task:
/// counts each alert and sends a trigger per new event, before the requests are answered.
struct Deliver {
    triggers: mpsc::Sender<AlertTrigger>,
    metrics: WebhookMetrics,
}

impl IntoResponse for Summary {
    /// `200` with [`Summary::json`].
    fn into_response(self) -> Response {
        let mut r = Response::new(Body::from(self.json()));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        r
    }
}

#[async_trait::async_trait]
impl dedupe::AfterCommit for Deliver {
    async fn committed(&self, slo_id: &str, events: &[(&payload::Alert, dedupe::Recorded)]) {
        // One wait for the whole group: a full queue (a stuck guard) delays the group's
        // answers by at most TRIGGER_WAIT, not by TRIGGER_WAIT per alert.
        let deadline = tokio::time::Instant::now() + TRIGGER_WAIT;
        for (alert, answer) in events {
            let result = result_of(*answer, alert.status);
            self.metrics.alert(result);
            if result == AlertResult::Duplicate {
                continue;
            }
            let trigger = AlertTrigger {
                slo_id: slo_id.to_string(),
                status: alert.status,
                fingerprint: dedupe::fingerprint(alert),
                alertname: alert.labels.get("alertname").map(str::to_string),
                severity: dedupe::severity(&alert.labels).map(str::to_string),
                starts_at: alert.starts_at,
            };
            tracing::info!(
                slo = %trigger.slo_id,
                status = trigger.status.as_str(),
                fingerprint = %trigger.fingerprint,
                "alert recorded; evaluating the SLO now"
            );
            self.send(trigger, deadline).await;
        }
    }
}

impl Deliver {
    async fn send(&self, t: AlertTrigger, deadline: tokio::time::Instant) {
        let t = match self.triggers.try_send(t) {
            Ok(()) => return,
            Err(mpsc::error::TrySendError::Full(t)) => t,
            Err(mpsc::error::TrySendError::Closed(t)) => return self.dropped(&t.slo_id, "closed"),
        };
        let slo = t.slo_id.clone();
        match tokio::time::timeout_at(deadline, self.triggers.send(t)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => self.dropped(&slo, "closed"),
            Err(_) => self.dropped(&slo, "full"),
        }
    }

    fn dropped(&self, slo: &str, why: &str) {
        self.metrics.triggers_dropped.inc();
        tracing::warn!(%slo, "trigger queue {why}; the SLO is evaluated on schedule");
    }
}

/// What a stored alert counts as, from its dedupe answer and its status.
fn result_of(answer: dedupe::Recorded, status: AlertStatus) -> AlertResult {
    match (answer, status) {
        (dedupe::Recorded::Duplicate, _) => AlertResult::Duplicate,
        (dedupe::Recorded::New, AlertStatus::Firing) => AlertResult::Recorded,
        (dedupe::Recorded::New, AlertStatus::Resolved) => AlertResult::Resolved,
    }
}

impl Summary {
    /// `serde_json::to_string(self)`, written directly: the answer of every request, and
    /// serde's writer through `Json` cost more than the rest of building the response.
    pub fn json(&self) -> String {
        let mut out = String::with_capacity(96);
        let mut digits = itoa::Buffer::new();
        for (i, (name, n)) in [
            ("received", self.received),
            ("recorded", self.recorded),
            ("resolved", self.resolved),
            ("duplicates", self.duplicates),
            ("unknown", self.unknown),
        ]
        .into_iter()
        .enumerate()
        {
            out.push_str(if i == 0 { "{\"" } else { ",\"" });
            out.push_str(name);
            out.push_str("\":");
            out.push_str(digits.format(n));
        }
        out.push('}');
        out
    }

    fn count(&mut self, result: AlertResult) {
        match result {
            AlertResult::Recorded => self.recorded += 1,
            AlertResult::Resolved => self.resolved += 1,
            AlertResult::Duplicate => self.duplicates += 1,
            AlertResult::Unknown => self.unknown += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_by_sloth_id_then_service_and_slo() {
        let slos = SloIds::new(["checkout-availability".to_string()]);
        let l = |pairs: &[(&str, &str)]| -> Labels { pairs.iter().copied().collect() };
        assert_eq!(
            slo_of(&l(&[("sloth_id", "checkout-availability")]), &slos).as_deref(),
            Some("checkout-availability")
        );
        assert_eq!(
            slo_of(
                &l(&[("sloth_service", "checkout"), ("sloth_slo", "availability")]),
                &slos
            )
            .as_deref(),
            Some("checkout-availability")
        );
        // A stale sloth_id falls back to service + slo.
        assert_eq!(
            slo_of(
                &l(&[
                    ("sloth_id", "old"),
                    ("sloth_service", "checkout"),
                    ("sloth_slo", "availability")
                ]),
                &slos
            )
            .as_deref(),
            Some("checkout-availability")
        );
        assert_eq!(slo_of(&l(&[("alertname", "X")]), &slos), None);
        slos.replace(Vec::new());
        assert_eq!(
            slo_of(&l(&[("sloth_id", "checkout-availability")]), &slos),
            None
        );
        let f = |id: &str| id == "a-b";
        assert_eq!(
            slo_of(&l(&[("sloth_service", "a"), ("sloth_slo", "b")]), &f).as_deref(),
            Some("a-b")
        );
    }

    #[test]
    fn the_answer_is_serdes() {
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            // Every length of number, up to usize::MAX.
            (seed >> (seed % 64)) as usize
        };
        for _ in 0..10_000 {
            let s = Summary {
                received: next(),
                recorded: next(),
                resolved: next(),
                duplicates: next(),
                unknown: next(),
            };
            assert_eq!(s.json(), serde_json::to_string(&s).unwrap());
        }
        let max = Summary {
            received: usize::MAX,
            ..Summary::default()
        };
        assert_eq!(max.json(), serde_json::to_string(&max).unwrap());
        let r = Summary::default().into_response();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
    }

    #[test]
    fn content_type_check() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::CONTENT_TYPE, HeaderValue::from_str(v).unwrap());
            m
        };
        assert!(is_json(&h("application/json")));
        assert!(is_json(&h("Application/JSON; charset=utf-8")));
        assert!(!is_json(&h("text/plain")));
        assert!(!is_json(&HeaderMap::new()));
    }
}
