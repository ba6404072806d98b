//! A scripted Kubernetes API server for kube's tower-test mock client (the
//! `ApiServerVerifier` pattern of kube-rs/controller-rs).
//!
//! A test lists the exact requests it expects, in order, each with the response to give. The
//! verifier fails the test when a request differs in method, path with query string,
//! content-type or JSON body, when one is missing, when an extra one arrives, or when a request
//! is not covered by `slogate::adapters::kube::API_CALLS` (so the RBAC registry cannot fall
//! behind what the adapters do).
#![allow(dead_code)]

use std::time::Duration;

use http::{Request, Response};
use kube::client::Body;
use kube::Client;
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tower_test::mock::Handle;

pub const JSON: &str = "application/json";
pub const JSON_PATCH: &str = "application/json-patch+json";
pub const MERGE_PATCH: &str = "application/merge-patch+json";

/// One expected request and the response to it.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub method: &'static str,
    pub uri: String,
    pub content_type: Option<&'static str>,
    pub body: Option<Value>,
    pub status: u16,
    pub response: Value,
    /// A watch: `response` is an array of events, sent one JSON document per line.
    pub events: bool,
}

impl Exchange {
    pub fn get(uri: impl Into<String>) -> Self {
        Exchange {
            method: "GET",
            uri: uri.into(),
            content_type: None,
            body: None,
            status: 200,
            response: json!({}),
            events: false,
        }
    }

    pub fn patch(uri: impl Into<String>, content_type: &'static str, body: Value) -> Self {
        Exchange {
            method: "PATCH",
            uri: uri.into(),
            content_type: Some(content_type),
            body: Some(body),
            status: 200,
            response: json!({}),
            events: false,
        }
    }

    pub fn put(uri: impl Into<String>, body: Value) -> Self {
        Exchange {
            method: "PUT",
            uri: uri.into(),
            content_type: Some(JSON),
            body: Some(body),
            status: 200,
            response: json!({}),
            events: false,
        }
    }

    pub fn post(uri: impl Into<String>, body: Value) -> Self {
        Exchange {
            method: "POST",
            uri: uri.into(),
            content_type: Some(JSON),
            body: Some(body),
            status: 201,
            response: json!({}),
            events: false,
        }
    }

    pub fn delete(uri: impl Into<String>, body: Value) -> Self {
        Exchange {
            method: "DELETE",
            uri: uri.into(),
            content_type: Some(JSON),
            body: Some(body),
            status: 200,
            response: json!({}),
            events: false,
        }
    }

    /// Answer a watch with these events (`{"type": "ADDED", "object": …}`), one per line,
    /// then end it as the API server does at `timeoutSeconds`.
    pub fn respond_events(mut self, events: Vec<Value>) -> Self {
        self.status = 200;
        self.response = Value::Array(events);
        self.events = true;
        self
    }

    pub fn respond(mut self, status: u16, response: Value) -> Self {
        self.status = status;
        self.response = response;
        self
    }
}

/// A `metav1.Status` error body as the API server sends it.
pub fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code,
    })
}

/// 409 as the registry returns it for a stale resourceVersion.
pub fn conflict(resource: &str, name: &str) -> Value {
    status(
        409,
        "Conflict",
        &format!(
            "Operation cannot be fulfilled on {resource} \"{name}\": the object has been \
             modified; please apply your changes to the latest version and try again"
        ),
    )
}

pub fn not_found(resource: &str, name: &str) -> Value {
    status(404, "NotFound", &format!("{resource} \"{name}\" not found"))
}

/// What the verifier saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub method: String,
    pub uri: String,
}

/// A mock client and the task that serves `script` to it. Await the task (after dropping
/// everything that holds the client) to get what was seen; it re-raises assertion failures.
pub fn serve(script: Vec<Exchange>) -> (Client, JoinHandle<Vec<Seen>>) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    (client, tokio::spawn(verify(handle, script)))
}

/// Await the verifier, re-raising its panic with its own message.
pub async fn finish(verifier: JoinHandle<Vec<Seen>>) -> Vec<Seen> {
    match verifier.await {
        Ok(seen) => seen,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

async fn verify(
    mut handle: Handle<Request<Body>, Response<Body>>,
    script: Vec<Exchange>,
) -> Vec<Seen> {
    let mut seen = Vec::new();
    let total = script.len();
    for (i, want) in script.into_iter().enumerate() {
        let next = tokio::time::timeout(Duration::from_secs(30), handle.next_request()).await;
        let (request, send) = match next {
            Ok(Some(r)) => r,
            Ok(None) => panic!(
                "request {}/{total} never came (client dropped): expected {} {}",
                i + 1,
                want.method,
                want.uri
            ),
            Err(_) => panic!(
                "request {}/{total} never came (timeout): expected {} {}",
                i + 1,
                want.method,
                want.uri
            ),
        };
        let method = request.method().to_string();
        let uri = request.uri().to_string();
        let ctx = format!("request {}/{total} ({method} {uri})", i + 1);
        assert!(
            slogate::adapters::kube::covers(&method, &uri),
            "{ctx} is not covered by adapters::kube::API_CALLS"
        );
        assert_eq!(method, want.method, "{ctx}: method");
        assert_eq!(uri, want.uri, "{ctx}: path and query");
        let content_type = request
            .headers()
            .get(http::header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap_or("<not utf-8>").to_string());
        assert_eq!(
            content_type.as_deref(),
            want.content_type,
            "{ctx}: content-type"
        );
        let bytes = request
            .into_body()
            .collect_bytes()
            .await
            .expect("request body");
        match &want.body {
            None => assert!(bytes.is_empty(), "{ctx}: expected no body, got {bytes:?}"),
            Some(body) => {
                let got: Value = serde_json::from_slice(&bytes)
                    .unwrap_or_else(|e| panic!("{ctx}: body is not JSON ({e}): {bytes:?}"));
                assert_eq!(
                    &got,
                    body,
                    "{ctx}: body\n got: {}\nwant: {}",
                    serde_json::to_string_pretty(&got).unwrap_or_default(),
                    serde_json::to_string_pretty(body).unwrap_or_default()
                );
            }
        }
        seen.push(Seen { method, uri });
        let response = Response::builder()
            .status(want.status)
            .header(http::header::CONTENT_TYPE, JSON)
            .body(Body::from(if want.events {
                let lines: Vec<String> = want
                    .response
                    .as_array()
                    .expect("events are an array")
                    .iter()
                    .map(Value::to_string)
                    .collect();
                (lines.join("\n") + "\n").into_bytes()
            } else {
                serde_json::to_vec(&want.response).expect("response JSON")
            }))
            .expect("response");
        send.send_response(response);
    }
    // Nothing more may come. Returns None once every holder of the client is dropped.
    if let Ok(Some((request, _))) =
        tokio::time::timeout(Duration::from_secs(30), handle.next_request()).await
    {
        panic!(
            "unexpected request after the script's {total}: {} {}",
            request.method(),
            request.uri()
        );
    }
    seen
}

/// A decision-log record written through `outer` (a kube-backed store) is read back through
/// it and lands unchanged in `inner`, the per-pod store it delegates the log to.
pub async fn assert_decision_log_delegates(
    outer: &dyn slogate::ports::state::StateStore,
    inner: &dyn slogate::ports::state::StateStore,
    kind: slogate::ports::state::DecisionKind,
    subject: &str,
) {
    use chrono::TimeZone;
    use slogate::ports::state::{DecisionQuery, DecisionRecord};
    let t = chrono::Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
    let rec = DecisionRecord::new(t, kind, subject, "schedule", "step", "a decision");
    outer.append_decision(&rec).await.unwrap();
    assert_eq!(
        outer.decisions(&DecisionQuery::default()).await.unwrap(),
        vec![rec.clone()]
    );
    assert_eq!(
        inner.decisions(&DecisionQuery::default()).await.unwrap(),
        vec![rec]
    );
}
