//! The Alertmanager webhook receiver over real HTTP: slogate's own router (the daemon's
//! `/metrics` included) on a free loopback port, a `MemoryStore`, and the trigger channel.
//! Payloads are bodies captured from a real Alertmanager (tests/fixtures/alertmanager/).

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};
use slogate::adapters::git::SecretSource;
use slogate::adapters::state::MemoryStore;
use slogate::ports::state::{DecisionQuery, DecisionRecord, StateError, StateStore, Versioned};
use slogate::runtime::server::{self, AppState};
use slogate::runtime::webhook::{
    self, AlertStatus, AlertTrigger, Authenticator, SloIds, WebhookState,
};
use tokio::sync::mpsc;

const FIRING: &str = include_str!("fixtures/alertmanager/firing-sloth-id.json");
const RESOLVED: &str = include_str!("fixtures/alertmanager/resolved-sloth-id.json");
const MIXED: &str = include_str!("fixtures/alertmanager/firing-service-slo-and-unrelated.json");

const TOKEN: &str = "s3cret-token";
const PASSWORD: &str = "pa55:word";

struct Receiver {
    url: String,
    base: String,
    triggers: mpsc::Receiver<AlertTrigger>,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

/// Bearer token from a file, basic auth (`alertmanager`) from an environment variable.
fn authenticator(dir: &tempfile::TempDir, env_var: &str) -> Authenticator {
    let token_file = dir.path().join("token");
    let mut f = std::fs::File::create(&token_file).unwrap();
    writeln!(f, "{TOKEN}").unwrap();
    std::env::set_var(env_var, PASSWORD);
    Authenticator::bearer(SecretSource::File(token_file))
        .unwrap()
        .with_basic("alertmanager", SecretSource::Env(env_var.into()))
        .unwrap()
}

async fn start_with(store: Arc<dyn StateStore>, max_body: usize, env_var: &str) -> Receiver {
    let dir = tempfile::tempdir().unwrap();
    let auth = authenticator(&dir, env_var);
    let app = Arc::new(AppState::default());
    let (tx, rx) = mpsc::channel(64);
    let slos = SloIds::new([
        "checkout-availability".to_string(),
        "search-latency".to_string(),
    ]);
    let state = WebhookState::new(auth, store, Arc::new(slos), tx, app.metrics.webhook.clone())
        .with_max_body_bytes(max_body);
    let router = server::router_with(app, webhook::router(state));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    Receiver {
        url: format!("http://{addr}/webhook/alertmanager"),
        base: format!("http://{addr}"),
        triggers: rx,
        client: reqwest::Client::new(),
        _dir: dir,
    }
}

async fn start(env_var: &str) -> Receiver {
    start_with(Arc::new(MemoryStore::new()), 1024 * 1024, env_var).await
}

impl Receiver {
    fn post(&self, body: impl Into<reqwest::Body>) -> reqwest::RequestBuilder {
        self.client
            .post(&self.url)
            .header("content-type", "application/json")
            .body(body)
    }

    async fn send(&self, body: &str) -> (u16, Value) {
        let r = self
            .post(body.to_string())
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap())
    }

    async fn next_trigger(&mut self) -> AlertTrigger {
        tokio::time::timeout(Duration::from_secs(5), self.triggers.recv())
            .await
            .expect("a trigger within 5s")
            .expect("channel open")
    }

    fn no_more_triggers(&mut self) {
        assert!(
            matches!(
                self.triggers.try_recv(),
                Err(mpsc::error::TryRecvError::Empty)
            ),
            "no further trigger expected"
        );
    }

    async fn metrics(&self) -> String {
        self.client
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn refuses_missing_and_wrong_credentials_with_401() {
    let mut r = start("SLOGATE_TEST_WH_PW_401").await;
    let cases = [
        ("none", r.post(FIRING)),
        ("wrong bearer", r.post(FIRING).bearer_auth("s3cret-tokeN")),
        (
            "wrong basic password",
            r.post(FIRING).basic_auth("alertmanager", Some("nope")),
        ),
        (
            "wrong basic user",
            r.post(FIRING).basic_auth("admin", Some(PASSWORD)),
        ),
        (
            "other scheme",
            r.post(FIRING)
                .header("authorization", format!("Token {TOKEN}")),
        ),
    ];
    for (what, req) in cases {
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 401, "{what}");
        let challenges: Vec<_> = resp
            .headers()
            .get_all("www-authenticate")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect();
        assert!(
            challenges.iter().any(|c| c.starts_with("Bearer"))
                && challenges.iter().any(|c| c.starts_with("Basic")),
            "{what}: {challenges:?}"
        );
        let body: Value = resp.json().await.unwrap();
        assert!(body["error"].is_string(), "{what}: {body}");
        assert!(!body.to_string().contains(TOKEN));
    }
    r.no_more_triggers();
    assert!(r
        .metrics()
        .await
        .contains("slogate_webhook_requests_total{code=\"401\"} 5"));
}

#[tokio::test]
async fn accepts_bearer_and_basic_records_and_triggers() {
    let mut r = start("SLOGATE_TEST_WH_PW_OK").await;
    let resp = r.post(FIRING).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body,
        json!({"received": 1, "recorded": 1, "resolved": 0, "duplicates": 0, "unknown": 0})
    );
    let t = r.next_trigger().await;
    assert_eq!(
        t,
        AlertTrigger {
            slo_id: "checkout-availability".into(),
            status: AlertStatus::Firing,
            fingerprint: "bdef0648ce50a622".into(),
            alertname: Some("CheckoutAvailabilityHighErrorRate".into()),
            severity: Some("page".into()),
            starts_at: "2026-11-23T08:37:55Z".parse().unwrap(),
        }
    );

    // The resolution, authenticated with basic auth: recorded and triggered too.
    let resp = r
        .post(RESOLVED)
        .basic_auth("alertmanager", Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        (body["recorded"].as_u64(), body["resolved"].as_u64()),
        (Some(0), Some(1))
    );
    let t = r.next_trigger().await;
    assert_eq!(
        (t.slo_id.as_str(), t.status),
        ("checkout-availability", AlertStatus::Resolved)
    );
    r.no_more_triggers();
}

#[tokio::test]
async fn answers_200_only_after_the_alert_is_stored() {
    let store = Arc::new(MemoryStore::new());
    let mut r = start_with(store.clone(), 1024 * 1024, "SLOGATE_TEST_WH_PW_STORED").await;
    assert_eq!(r.send(FIRING).await.0, 200);
    // By the time the answer arrived, the record is in the store.
    let doc = store
        .get("webhook/slo-alerts/checkout-availability")
        .await
        .unwrap()
        .unwrap();
    let doc = slogate::runtime::webhook::dedupe::AlertDoc::from_value(doc.value).unwrap();
    assert_eq!(doc.slo_id, "checkout-availability");
    assert_eq!(doc.events[0].fingerprint, "bdef0648ce50a622");
    assert_eq!(
        doc.events[0].status,
        slogate::runtime::webhook::payload::AlertStatus::Firing
    );
    r.next_trigger().await;
}

#[tokio::test]
async fn maps_service_and_slo_and_counts_unknown_alerts() {
    let mut r = start("SLOGATE_TEST_WH_PW_MAP").await;
    let (status, body) = r.send(MIXED).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"received": 2, "recorded": 1, "resolved": 0, "duplicates": 0, "unknown": 1})
    );
    let t = r.next_trigger().await;
    assert_eq!(t.slo_id, "search-latency");
    assert_eq!(t.alertname.as_deref(), Some("SloErrorBudgetBurnRateHigh"));
    assert_eq!(t.severity.as_deref(), Some("warning"));
    r.no_more_triggers();
    let m = r.metrics().await;
    assert!(
        m.contains("slogate_webhook_alerts_total{result=\"unknown\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("slogate_webhook_alerts_total{result=\"recorded\"} 1"),
        "{m}"
    );
}

#[tokio::test]
async fn deduplicates_across_requests_and_restarts() {
    let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
    let mut r = start_with(store.clone(), 1024 * 1024, "SLOGATE_TEST_WH_PW_DEDUPE").await;
    let (_, first) = r.send(FIRING).await;
    let (_, second) = r.send(FIRING).await;
    assert_eq!(first["recorded"], 1);
    assert_eq!(second["recorded"], 0);
    assert_eq!(second["duplicates"], 1);
    r.next_trigger().await;
    // Concurrent retries of the same notification: none of them triggers again.
    let (a, b, c) = tokio::join!(r.send(FIRING), r.send(FIRING), r.send(FIRING));
    for (status, body) in [a, b, c] {
        assert_eq!((status, body["duplicates"].as_u64()), (200, Some(1)));
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    r.no_more_triggers();
    let m = r.metrics().await;
    assert!(
        m.contains("slogate_webhook_alerts_total{result=\"duplicate\"} 4"),
        "{m}"
    );

    // A restarted receiver on the same store still knows the alert.
    let mut restarted = start_with(store, 1024 * 1024, "SLOGATE_TEST_WH_PW_DEDUPE2").await;
    let (_, again) = restarted.send(FIRING).await;
    assert_eq!(again["duplicates"], 1);
    tokio::time::sleep(Duration::from_millis(50)).await;
    restarted.no_more_triggers();
    // The resolution is a different event.
    let (_, resolved) = restarted.send(RESOLVED).await;
    assert_eq!(resolved["resolved"], 1);
    assert_eq!(restarted.next_trigger().await.status, AlertStatus::Resolved);
}

/// POST `body` with `Transfer-Encoding: chunked` (no Content-Length) over a plain socket;
/// returns the status and the response text.
async fn raw_chunked_post(base: &str, body: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!(
        "POST /webhook/alertmanager HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    for chunk in body.as_bytes().chunks(512) {
        req.push_str(&format!(
            "{:x}\r\n{}\r\n",
            chunk.len(),
            std::str::from_utf8(chunk).unwrap()
        ));
    }
    req.push_str("0\r\n\r\n");
    // The server may answer and close before reading everything.
    let _ = s.write_all(req.as_bytes()).await;
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

#[tokio::test]
async fn caps_the_body_with_413() {
    let mut r = start_with(Arc::new(MemoryStore::new()), 2048, "SLOGATE_TEST_WH_PW_413").await;
    // Within the cap: fine.
    assert_eq!(r.send(FIRING).await.0, 200);
    r.next_trigger().await;
    // Declared length over the cap.
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(4096));
    let resp = r.post(big.clone()).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 413);
    let body: Value = resp.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("2048"), "{body}");
    // Chunked, without Content-Length: caught while reading.
    let (status, body) = raw_chunked_post(&r.base, &big).await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("\"error\""), "{body}");
    // Authentication comes first: an unauthenticated oversized body is a 401, not read.
    let resp = r.post("x".repeat(64 * 1024)).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
}

#[tokio::test]
async fn rejects_malformed_payloads_with_400_naming_the_field() {
    let mut r = start("SLOGATE_TEST_WH_PW_400").await;
    let (status, body) = r.send("{\"version\": \"4\", \"alerts\": [").await;
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().contains("malformed JSON"),
        "{body}"
    );

    let mut wrong: Value = serde_json::from_str(FIRING).unwrap();
    wrong["alerts"][0]["startsAt"] = json!(12);
    let (status, body) = r.send(&wrong.to_string()).await;
    assert_eq!(status, 400);
    assert_eq!(body["field"], "alerts[0].startsAt");
    assert!(
        body["error"].as_str().unwrap().contains("RFC 3339"),
        "{body}"
    );

    let mut v3: Value = serde_json::from_str(FIRING).unwrap();
    v3["version"] = json!("3");
    let (status, body) = r.send(&v3.to_string()).await;
    assert_eq!((status, body["field"].as_str()), (400, Some("version")));

    // Wrong content type.
    let resp = r
        .client
        .post(&r.url)
        .header("content-type", "text/plain")
        .bearer_auth(TOKEN)
        .body(FIRING)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 415);
    assert!(resp.json::<Value>().await.unwrap()["error"].is_string());

    // Not POST.
    let resp = r.client.get(&r.url).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 405);
    assert_eq!(resp.headers()["allow"], "POST");

    r.no_more_triggers();
}

#[tokio::test]
async fn never_crashes_on_mangled_input() {
    let mut r = start("SLOGATE_TEST_WH_PW_FUZZ").await;
    // Prefixes of a real payload, payloads with random bytes overwritten, and odd JSON: each
    // gets a JSON answer (400, or 200 where the damage left a valid payload), and the
    // server keeps answering.
    let bytes = FIRING.as_bytes();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut bodies: Vec<Vec<u8>> = (0..bytes.len())
        .step_by(7)
        .map(|n| bytes[..n].to_vec())
        .collect();
    for _ in 0..150 {
        let mut b = bytes.to_vec();
        for _ in 0..3 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let i = (seed as usize) % b.len();
            b[i] = (seed >> 32) as u8;
        }
        bodies.push(b);
    }
    for odd in [
        "null", "4", "\"4\"", "[]", "{}", "{\"version\":\"4\"}",
        "{\"version\":\"4\",\"alerts\":{}}",
        "{\"version\":\"4\",\"alerts\":[null]}",
        "{\"version\":\"4\",\"alerts\":[{\"status\":\"firing\",\"labels\":{},\"startsAt\":\"9999-99-99T00:00:00Z\"}]}",
        "{\"version\":\"4\",\"alerts\":[{\"status\":\"firing\",\"labels\":{},\"startsAt\":\"+262143-12-31T23:59:59Z\"}]}",
    ] {
        bodies.push(odd.as_bytes().to_vec());
    }
    for b in bodies {
        let resp = r.post(b.clone()).bearer_auth(TOKEN).send().await.unwrap();
        let status = resp.status().as_u16();
        assert!(
            status == 400 || status == 200,
            "{status} for {}",
            String::from_utf8_lossy(&b)
        );
        let _: Value = resp.json().await.unwrap();
    }
    // Still serving.
    assert_eq!(r.send(FIRING).await.0, 200);
    while r.triggers.try_recv().is_ok() {}
}

/// A store whose writes fail.
struct BrokenStore;

#[async_trait]
impl StateStore for BrokenStore {
    async fn get(&self, _: &str) -> Result<Option<Versioned>, StateError> {
        Ok(None)
    }
    async fn put(&self, _: &str, _: Value, _: Option<u64>) -> Result<u64, StateError> {
        Err(StateError::Io {
            path: "/var/lib/slogate".into(),
            source: std::io::Error::other("disk full"),
        })
    }
    async fn delete(&self, _: &str, _: u64) -> Result<(), StateError> {
        Err(StateError::Io {
            path: "/var/lib/slogate".into(),
            source: std::io::Error::other("read-only file system"),
        })
    }
    async fn list(&self, _: &str) -> Result<Vec<String>, StateError> {
        Ok(Vec::new())
    }
    async fn append_decision(&self, _: &DecisionRecord) -> Result<(), StateError> {
        Ok(())
    }
    async fn decisions(&self, _: &DecisionQuery) -> Result<Vec<DecisionRecord>, StateError> {
        Ok(Vec::new())
    }
}

#[tokio::test]
async fn a_store_failure_is_a_500_and_triggers_nothing() {
    let mut r = start_with(Arc::new(BrokenStore), 1024 * 1024, "SLOGATE_TEST_WH_PW_500").await;
    let (status, body) = r.send(FIRING).await;
    assert_eq!(status, 500, "{body}");
    assert!(body["error"].is_string());
    tokio::time::sleep(Duration::from_millis(50)).await;
    r.no_more_triggers();
}

#[tokio::test]
async fn exposes_receiver_metrics_on_the_daemon_endpoint() {
    let mut r = start("SLOGATE_TEST_WH_PW_METRICS").await;
    r.send(FIRING).await;
    r.send(FIRING).await;
    r.send(RESOLVED).await;
    r.post(FIRING).send().await.unwrap();
    r.send("nope").await;
    while r.triggers.try_recv().is_ok() {}
    let m = r.metrics().await;
    for line in [
        "# TYPE slogate_webhook_requests counter",
        "slogate_webhook_requests_total{code=\"200\"} 3",
        "slogate_webhook_requests_total{code=\"401\"} 1",
        "slogate_webhook_requests_total{code=\"400\"} 1",
        "slogate_webhook_alerts_total{result=\"recorded\"} 1",
        "slogate_webhook_alerts_total{result=\"duplicate\"} 1",
        "slogate_webhook_alerts_total{result=\"resolved\"} 1",
        "slogate_webhook_request_duration_seconds_count 5",
        "slogate_webhook_triggers_dropped_total 0",
    ] {
        assert!(m.contains(line), "missing `{line}` in\n{m}");
    }
}

/// A memory store whose writes take a while.
struct SlowWrites(MemoryStore, Duration);

#[async_trait]
impl StateStore for SlowWrites {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StateError> {
        self.0.get(key).await
    }
    async fn put(&self, key: &str, value: Value, expected: Option<u64>) -> Result<u64, StateError> {
        tokio::time::sleep(self.1).await;
        self.0.put(key, value, expected).await
    }
    async fn delete(&self, key: &str, expected: u64) -> Result<(), StateError> {
        self.0.delete(key, expected).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StateError> {
        self.0.list(prefix).await
    }
    async fn append_decision(&self, r: &DecisionRecord) -> Result<(), StateError> {
        self.0.append_decision(r).await
    }
    async fn decisions(&self, q: &DecisionQuery) -> Result<Vec<DecisionRecord>, StateError> {
        self.0.decisions(q).await
    }
}

/// Alertmanager gives up on a slow receiver (its own timeout) while the alert is being
/// written: the write completes, the trigger is sent, and the retry is a duplicate that
/// triggers nothing more.
#[tokio::test]
async fn a_client_that_hangs_up_mid_write_still_gets_its_alert_recorded_and_triggered() {
    let store: Arc<dyn StateStore> =
        Arc::new(SlowWrites(MemoryStore::new(), Duration::from_millis(400)));
    let mut r = start_with(store.clone(), 1024 * 1024, "SLOGATE_TEST_WH_PW_HANGUP").await;
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let gone = impatient
        .post(&r.url)
        .header("content-type", "application/json")
        .bearer_auth(TOKEN)
        .body(FIRING)
        .send()
        .await;
    assert!(gone.is_err(), "the client gave up first: {gone:?}");
    let t = r.next_trigger().await;
    assert_eq!(t.fingerprint, "bdef0648ce50a622");
    assert!(store
        .get("webhook/slo-alerts/checkout-availability")
        .await
        .unwrap()
        .is_some());
    let (status, retry) = r.send(FIRING).await;
    assert_eq!((status, retry["duplicates"].as_u64()), (200, Some(1)));
    tokio::time::sleep(Duration::from_millis(50)).await;
    r.no_more_triggers();
}

/// With the trigger queue full (a stuck guard), the alerts are still recorded and answered;
/// the triggers that find no room are dropped and counted, the rest are delivered.
#[tokio::test]
async fn a_full_trigger_queue_drops_and_counts_the_excess_triggers() {
    let mut r = start("SLOGATE_TEST_WH_PW_FULL").await;
    let mut body: Value = serde_json::from_str(FIRING).unwrap();
    let one = body["alerts"][0].clone();
    // The test receiver's queue holds 64 triggers and nothing consumes them meanwhile.
    let alerts: Vec<Value> = (0..70)
        .map(|i| {
            let mut a = one.clone();
            a["fingerprint"] = format!("{i:016x}").into();
            a
        })
        .collect();
    body["alerts"] = Value::Array(alerts);
    let (status, summary) = r.send(&body.to_string()).await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!(summary["recorded"], 70);
    let m = r.metrics().await;
    assert!(
        m.contains("slogate_webhook_triggers_dropped_total 6"),
        "{m}"
    );
    assert!(
        m.contains("slogate_webhook_alerts_total{result=\"recorded\"} 70"),
        "{m}"
    );
    let mut delivered = 0;
    while r.triggers.try_recv().is_ok() {
        delivered += 1;
    }
    assert_eq!(delivered, 64);
}
