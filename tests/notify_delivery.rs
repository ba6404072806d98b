//! Slack, generic webhook and PagerDuty notifiers against wiremock: request shapes, retries with
//! backoff, `Retry-After`, giving up, no retry on 4xx, timeouts, and `notify_all` going on
//! when one notifier fails. Webhook URLs are secrets: no error may contain them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use slogate::adapters::git::{Secret, SecretSource};
use slogate::adapters::notify::{
    build_notifiers, NotifierConfig, NotifierKind, PagerDutyNotifier, RetryPolicy, SlackNotifier,
    UrlSource, WebhookNotifier,
};
use slogate::model::notify::{Incident, Notification, Severity};
use slogate::ports::notify::{Notifier, NotifyError};
use slogate::runtime::effects::notify_all;
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SLACK_PATH: &str = "/services/T0001/B0001/XXXXSECRETXXXX";

fn notification() -> Notification {
    Notification {
        severity: Severity::Critical,
        subject: "checkout-availability".into(),
        title: "Rolled back 1 commit of apps/checkout/overlays/prod".into(),
        text: "Error budget 96.3% consumed (emergency ≥ 95%).".into(),
        fields: BTreeMap::from([
            ("budget_consumed".to_string(), "0.963".to_string()),
            ("reverted".to_string(), "1a2b3c4".to_string()),
        ]),
        incident: None,
    }
}

fn fast(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_secs(2),
        timeout: Duration::from_secs(2),
    }
}

fn inline(url: String) -> UrlSource {
    UrlSource::Inline(Secret::new(url))
}

async fn slack(server: &MockServer, policy: RetryPolicy) -> SlackNotifier {
    SlackNotifier::new(
        "slack-test",
        inline(format!("{}{SLACK_PATH}", server.uri())),
        policy,
        Severity::Info,
    )
    .unwrap()
}

fn assert_no_secret(e: &NotifyError) {
    let s = format!("{e} {e:?}");
    assert!(!s.contains("XXXXSECRETXXXX"), "secret leaked: {s}");
}

#[tokio::test]
async fn slack_posts_text_and_blocks() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(SLACK_PATH))
        .and(header("content-type", "application/json"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .expect(1)
        .mount(&server)
        .await;
    // The URL from a file, as from a mounted Secret.
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("slack-url");
    std::fs::write(&f, format!("{}{SLACK_PATH}\n", server.uri())).unwrap();
    let n = SlackNotifier::new(
        "slack",
        UrlSource::Secret(SecretSource::File(f)),
        fast(3),
        Severity::Info,
    )
    .unwrap();
    n.notify(&notification()).await.unwrap();

    let reqs = server.received_requests().await.unwrap();
    let body: Value = serde_json::from_slice(&reqs[0].body).unwrap();
    assert_eq!(
        body["text"],
        ":rotating_light: [critical] checkout-availability: Rolled back 1 commit of apps/checkout/overlays/prod"
    );
    let blocks = body["blocks"].as_array().unwrap();
    let types: Vec<&str> = blocks.iter().map(|b| b["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["header", "section", "section", "context"]);
    assert_eq!(blocks[0]["text"]["type"], "plain_text");
    assert_eq!(
        blocks[1]["text"],
        json!({"type": "mrkdwn", "text": "Error budget 96.3% consumed (emergency ≥ 95%)."})
    );
    assert_eq!(
        blocks[2]["fields"],
        json!([
            {"type": "mrkdwn", "text": "*budget_consumed*\n0.963"},
            {"type": "mrkdwn", "text": "*reverted*\n1a2b3c4"}
        ])
    );
}

#[tokio::test]
async fn webhook_posts_the_notification_with_token_and_headers() {
    let server = MockServer::start().await;
    let n = notification();
    Mock::given(method("POST"))
        .and(path("/hooks/slogate"))
        .and(header("authorization", "Bearer hook-token-1"))
        .and(header("x-team", "sre"))
        .and(body_json(serde_json::to_value(&n).unwrap()))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    std::env::set_var("SLOGATE_TEST_NOTIFY_HOOK_TOKEN", "hook-token-1");
    let w = WebhookNotifier::new(
        "hook",
        inline(format!("{}/hooks/slogate", server.uri())),
        fast(3),
        Severity::Info,
    )
    .unwrap()
    .with_token(Some(SecretSource::Env(
        "SLOGATE_TEST_NOTIFY_HOOK_TOKEN".into(),
    )))
    .with_headers(&BTreeMap::from([("X-Team".to_string(), "sre".to_string())]))
    .unwrap();
    w.notify(&n).await.unwrap();
    let reqs = server.received_requests().await.unwrap();
    let ua = reqs[0].headers.get("user-agent").unwrap().to_str().unwrap();
    assert!(ua.starts_with("slogate/"), "{ua}");
    // The body is exactly the port's Notification.
    let body: Value = serde_json::from_slice(&reqs[0].body).unwrap();
    assert_eq!(body["severity"], "critical");
    assert_eq!(body["fields"]["reverted"], "1a2b3c4");
}

#[tokio::test]
async fn retries_5xx_then_succeeds() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    slack(&server, fast(5))
        .await
        .notify(&notification())
        .await
        .unwrap();
    assert_eq!(server.received_requests().await.unwrap().len(), 3);
}

#[tokio::test]
async fn honours_retry_after_on_429() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "1"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let start = Instant::now();
    slack(&server, fast(3))
        .await
        .notify(&notification())
        .await
        .unwrap();
    let waited = start.elapsed();
    // The backoff alone would be ≤ 20ms; Retry-After asked for 1s.
    assert!(waited >= Duration::from_millis(950), "{waited:?}");
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn gives_up_at_once_when_retry_after_exceeds_max_delay() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "3600"))
        .mount(&server)
        .await;
    let e = slack(&server, fast(5))
        .await
        .notify(&notification())
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            NotifyError::Http {
                status: 429,
                attempts: 1,
                ..
            }
        ),
        "{e:?}"
    );
    assert_no_secret(&e);
}

#[tokio::test]
async fn gives_up_after_max_attempts() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&server)
        .await;
    let e = slack(&server, fast(3))
        .await
        .notify(&notification())
        .await
        .unwrap_err();
    assert_eq!(
        e,
        NotifyError::Http {
            notifier: "slack-test".into(),
            status: 500,
            attempts: 3
        }
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 3);
    assert_no_secret(&e);
}

#[tokio::test]
async fn does_not_retry_other_4xx() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_string("invalid_payload"))
        .mount(&server)
        .await;
    let e = slack(&server, fast(5))
        .await
        .notify(&notification())
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            NotifyError::Http {
                status: 400,
                attempts: 1,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn retries_transport_errors_and_times_out_without_leaking_the_url() {
    // Nothing listens on this port.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let n = SlackNotifier::new(
        "slack-down",
        inline(format!("http://127.0.0.1:{port}{SLACK_PATH}")),
        fast(3),
        Severity::Info,
    )
    .unwrap();
    let e = n.notify(&notification()).await.unwrap_err();
    assert!(
        matches!(e, NotifyError::Transport { attempts: 3, .. }),
        "{e:?}"
    );
    assert_no_secret(&e);

    // A server slower than the per-attempt timeout.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3)))
        .mount(&server)
        .await;
    let policy = RetryPolicy {
        timeout: Duration::from_millis(200),
        ..fast(2)
    };
    // Without the timeout the delayed 200 would be a delivery: the error is the timeout.
    let e = slack(&server, policy)
        .await
        .notify(&notification())
        .await
        .unwrap_err();
    match &e {
        NotifyError::Transport {
            message, attempts, ..
        } => {
            assert_eq!(*attempts, 2);
            assert!(message.contains("timed out"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_no_secret(&e);
}

#[tokio::test]
async fn a_failing_notifier_does_not_hold_up_the_others() {
    let bad = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(502))
        .mount(&bad)
        .await;
    let good = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&good)
        .await;
    let slow_policy = RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(300),
        max_delay: Duration::from_secs(2),
        timeout: Duration::from_secs(2),
    };
    let notifiers: Vec<Arc<dyn Notifier>> = vec![
        Arc::new(slack(&bad, slow_policy).await),
        Arc::new(
            WebhookNotifier::new(
                "good",
                inline(format!("{}/h", good.uri())),
                fast(1),
                Severity::Info,
            )
            .unwrap(),
        ),
    ];
    let task = tokio::spawn(async move { notify_all(&notifiers, &notification()).await });
    // The good notifier has delivered while the bad one is still retrying: when the good one
    // has its request the bad one has had fewer than its 4 attempts (one after the other,
    // the good one would only be called after all 4).
    loop {
        let bad_attempts = bad.received_requests().await.unwrap().len();
        if !good.received_requests().await.unwrap().is_empty() {
            assert!(bad_attempts < 4, "good notifier held up by the bad one");
            break;
        }
        assert!(
            !task.is_finished(),
            "notify_all ended before the good delivery"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let errors = task.await.unwrap();
    assert_eq!(errors.len(), 1);
    assert!(
        matches!(
            &errors[0],
            NotifyError::Http {
                status: 502,
                attempts: 4,
                ..
            }
        ),
        "{errors:?}"
    );
    assert_eq!(bad.received_requests().await.unwrap().len(), 4);
    assert_eq!(good.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn built_from_config_with_severity_filter() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(SLACK_PATH))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/generic"))
        .and(header("authorization", "Bearer t0k"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    std::env::set_var(
        "SLOGATE_TEST_NOTIFY_CFG_SLACK",
        format!("{}{SLACK_PATH}", server.uri()),
    );
    std::env::set_var("SLOGATE_TEST_NOTIFY_CFG_TOKEN", "t0k");
    let yaml = format!(
        "- type: slack\n  url_env: SLOGATE_TEST_NOTIFY_CFG_SLACK\n  min_severity: warning\n\
         - type: webhook\n  name: generic\n  url: {}/generic\n  token_env: SLOGATE_TEST_NOTIFY_CFG_TOKEN\n  base_delay: 10ms\n",
        server.uri()
    );
    let cfgs: Vec<NotifierConfig> = slogate::model::yaml::from_str(&yaml).unwrap();
    assert_eq!(cfgs[0].kind, NotifierKind::Slack);
    let notifiers = build_notifiers(&cfgs).unwrap();
    assert_eq!(notifiers.len(), 2);

    let mut info = notification();
    info.severity = Severity::Info;
    assert!(notify_all(&notifiers, &info).await.is_empty());
    let reqs = server.received_requests().await.unwrap();
    assert_eq!(reqs.len(), 1, "the Slack notifier filters out info");
    assert_eq!(reqs[0].url.path(), "/generic");

    assert!(notify_all(&notifiers, &notification()).await.is_empty());
    assert_eq!(server.received_requests().await.unwrap().len(), 3);
}

// ---------------------------------------------------------------------------------------
// PagerDuty Events API v2

const ROUTING_KEY: &str = "R0UT1NGKEYSECRET0123456789abcdef";
const BREACH: &str = "checkout/checkout-availability/emergency/20261123T083755Z";

fn routing_key_file(dir: &std::path::Path) -> SecretSource {
    let f = dir.join("pd-routing-key");
    std::fs::write(&f, format!("{ROUTING_KEY}\n")).unwrap();
    SecretSource::File(f)
}

fn pagerduty(
    server: &MockServer,
    key: SecretSource,
    policy: RetryPolicy,
    min: Severity,
) -> PagerDutyNotifier {
    PagerDutyNotifier::new(
        "pagerduty-test",
        inline(format!("{}/v2/enqueue", server.uri())),
        key,
        policy,
        min,
    )
    .unwrap()
}

fn accepted() -> ResponseTemplate {
    ResponseTemplate::new(202).set_body_json(json!({
        "status": "success", "message": "Event processed", "dedup_key": BREACH
    }))
}

#[tokio::test]
async fn pagerduty_triggers_and_resolves_by_breach_id() {
    let server = MockServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    Mock::given(method("POST"))
        .and(path("/v2/enqueue"))
        .and(header("content-type", "application/json"))
        .and(body_json(json!({
            "routing_key": ROUTING_KEY,
            "event_action": "trigger",
            "dedup_key": BREACH,
            "payload": {
                "summary": "Rolled back 1 commit of apps/checkout/overlays/prod",
                "source": "slogate",
                "severity": "critical",
                "component": "checkout-availability",
                "custom_details": {
                    "text": "Error budget 96.3% consumed (emergency ≥ 95%).",
                    "budget_consumed": "0.963",
                    "reverted": "1a2b3c4"
                }
            },
            "client": "slogate"
        })))
        .respond_with(accepted())
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v2/enqueue"))
        .and(body_json(json!({
            "routing_key": ROUTING_KEY,
            "event_action": "resolve",
            "dedup_key": BREACH,
        })))
        .respond_with(accepted())
        .expect(1)
        .mount(&server)
        .await;
    // Triggers below `critical` are not sent; a resolve always is.
    let pd = pagerduty(
        &server,
        routing_key_file(dir.path()),
        fast(3),
        Severity::Critical,
    );
    let mut trigger = notification();
    trigger.incident = Some(Incident::trigger(BREACH));
    pd.notify(&trigger).await.unwrap();
    let mut warning = trigger.clone();
    warning.severity = Severity::Warning;
    pd.notify(&warning).await.unwrap();
    // A message that is no incident pages nobody.
    pd.notify(&notification()).await.unwrap();
    let resolve = Notification {
        severity: Severity::Info,
        subject: "checkout".into(),
        title: "checkout: unfrozen".into(),
        text: "below the rollback threshold".into(),
        fields: BTreeMap::new(),
        incident: Some(Incident::resolve(BREACH)),
    };
    pd.notify(&resolve).await.unwrap();
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn pagerduty_retries_429_and_5xx_and_stops_at_400_without_leaking_the_key() {
    let server = MockServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "0"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(accepted())
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "status": "invalid event", "message": "Event object is invalid",
            "errors": [format!("routing_key {ROUTING_KEY} is invalid")]
        })))
        .mount(&server)
        .await;
    let pd = pagerduty(
        &server,
        routing_key_file(dir.path()),
        fast(5),
        Severity::Info,
    );
    let mut n = notification();
    n.incident = Some(Incident::trigger(BREACH));
    pd.notify(&n).await.unwrap();
    assert_eq!(server.received_requests().await.unwrap().len(), 3);
    let err = pd.notify(&n).await.unwrap_err();
    assert!(
        matches!(
            err,
            NotifyError::Http {
                status: 400,
                attempts: 1,
                ..
            }
        ),
        "{err:?}"
    );
    let shown = format!("{err} {err:?} {pd:?}");
    assert!(!shown.contains(ROUTING_KEY), "{shown}");
    assert_eq!(server.received_requests().await.unwrap().len(), 4);
}

#[tokio::test]
async fn pagerduty_from_config_defaults_to_the_public_endpoint_and_needs_a_routing_key() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("key");
    std::fs::write(&f, ROUTING_KEY).unwrap();
    let cfg: NotifierConfig = serde_json::from_value(json!({
        "type": "pagerduty", "routing_key_file": f, "min_severity": "critical"
    }))
    .unwrap();
    assert_eq!(cfg.kind, NotifierKind::Pagerduty);
    match cfg.url_source("notifications[0]").unwrap() {
        UrlSource::Inline(u) => assert_eq!(u.expose(), "https://events.pagerduty.com/v2/enqueue"),
        other => panic!("{other:?}"),
    }
    assert_eq!(build_notifiers(&[cfg]).unwrap().len(), 1);

    let none: NotifierConfig = serde_json::from_value(json!({"type": "pagerduty"})).unwrap();
    let err = build_notifiers(&[none]).err().unwrap().to_string();
    assert!(
        err.contains(
            "notifications[0].routing_key_file: expected the PagerDuty integration's routing key"
        ),
        "{err}"
    );
    let missing: NotifierConfig = serde_json::from_value(json!({
        "type": "pagerduty", "routing_key_env": "SLOGATE_TEST_NO_SUCH_PD_KEY"
    }))
    .unwrap();
    let err = build_notifiers(&[missing]).err().unwrap().to_string();
    assert!(
        err.contains("routing key") && err.contains("SLOGATE_TEST_NO_SUCH_PD_KEY"),
        "{err}"
    );
    let slack_with_key: NotifierConfig = serde_json::from_value(json!({
        "type": "slack", "url": "https://hooks.example/x", "routing_key_env": "K"
    }))
    .unwrap();
    let err = build_notifiers(&[slack_with_key])
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("apply to type pagerduty only"), "{err}");
}
