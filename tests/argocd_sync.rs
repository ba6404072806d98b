//! Argo CD sync requests against wiremock: the documented `POST
//! /api/v1/applications/{name}/sync` with a bearer token and an `ApplicationSyncRequest`
//! body, and errors mapped to `SyncError` without the token.

use std::time::Duration;

use serde_json::json;
use slogate::adapters::argocd::{ArgoCdApp, ArgoCdClient, ArgoCdConfig, ArgoCdSync};
use slogate::adapters::git::SecretSource;
use slogate::ports::sync::{SyncError, SyncTrigger};
use slogate::slo::PromDuration;
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN: &str = "argocd-api-token-0123456789";

fn config(server: &str, dir: &tempfile::TempDir) -> ArgoCdConfig {
    let f = dir.path().join("token");
    std::fs::write(&f, format!("{TOKEN}\n")).unwrap();
    ArgoCdConfig::new(server, SecretSource::File(f))
}

fn app(name: &str) -> ArgoCdApp {
    ArgoCdApp {
        name: name.into(),
        ..Default::default()
    }
}

fn assert_no_token(e: &SyncError) {
    let s = format!("{e} {e:?}");
    assert!(!s.contains(TOKEN), "token leaked: {s}");
}

#[tokio::test]
async fn posts_the_sync_request() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v1/applications/checkout-prod/sync"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(header("content-type", "application/json"))
        .and(body_json(
            json!({"name": "checkout-prod", "prune": false, "dryRun": false}),
        ))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"metadata": {"name": "checkout-prod"}})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let sync = ArgoCdSync::new(&config(&server.uri(), &dir), app("checkout-prod")).unwrap();
    // Without pin_revision the revision is not sent (auto-synced apps refuse one).
    sync.request_sync(Some("0123abcd")).await.unwrap();
}

#[tokio::test]
async fn sends_revision_namespace_project_and_options_when_configured() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/argocd/api/v1/applications/checkout-prod/sync"))
        .and(query_param("appNamespace", "payments"))
        .and(body_json(json!({
            "name": "checkout-prod", "prune": true, "dryRun": false, "revision": "0123abcd",
            "appNamespace": "payments", "project": "payments",
            "syncOptions": {"items": ["ApplyOutOfSyncOnly=true"]}
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .expect(1)
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    // Argo CD served under --rootpath /argocd.
    let client = ArgoCdClient::new(&config(&format!("{}/argocd/", server.uri()), &dir)).unwrap();
    let sync = client
        .app(ArgoCdApp {
            name: "checkout-prod".into(),
            app_namespace: Some("payments".into()),
            project: Some("payments".into()),
            prune: true,
            pin_revision: true,
            sync_options: vec!["ApplyOutOfSyncOnly=true".into()],
        })
        .unwrap();
    sync.request_sync(Some("0123abcd")).await.unwrap();
}

#[tokio::test]
async fn maps_http_errors_without_the_token() {
    let server = MockServer::start().await;
    let cases = [
        (
            "unauth",
            401,
            json!({"error": "invalid session: token is expired", "code": 16, "message": "invalid session: token is expired"}),
            "token is expired",
        ),
        (
            "missing",
            404,
            json!({"error": "x", "code": 5, "message": "applications.argoproj.io \"missing\" not found"}),
            "not found",
        ),
        (
            "broken",
            500,
            // A server that echoes the credentials it got.
            json!({"message": format!("internal error handling Bearer {TOKEN}")}),
            "internal error",
        ),
    ];
    for (name, status, body, _) in &cases {
        Mock::given(method("POST"))
            .and(path(format!("/api/v1/applications/{name}/sync")))
            .respond_with(ResponseTemplate::new(*status).set_body_json(body.clone()))
            .mount(&server)
            .await;
    }
    let dir = tempfile::tempdir().unwrap();
    let client = ArgoCdClient::new(&config(&server.uri(), &dir)).unwrap();
    for (name, status, _, needle) in cases {
        let e = client
            .app(app(name))
            .unwrap()
            .request_sync(None)
            .await
            .unwrap_err();
        match &e {
            SyncError::Http {
                app,
                status: s,
                body,
            } => {
                assert_eq!((app.as_str(), *s), (name, status));
                assert!(body.contains(needle), "{body}");
            }
            other => panic!("{other:?}"),
        }
        assert_no_token(&e);
    }
}

#[tokio::test]
async fn transport_errors_and_timeouts() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let sync =
        ArgoCdSync::new(&config(&format!("http://127.0.0.1:{port}"), &dir), app("a")).unwrap();
    let e = sync.request_sync(None).await.unwrap_err();
    assert!(matches!(e, SyncError::Transport { .. }), "{e:?}");
    assert_no_token(&e);

    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(5)))
        .mount(&server)
        .await;
    let mut cfg = config(&server.uri(), &dir);
    cfg.timeout = PromDuration::from_millis(300);
    let sync = ArgoCdSync::new(&cfg, app("a")).unwrap();
    // Without the timeout the delayed 200 would be a success: the error is the timeout.
    let e = sync.request_sync(None).await.unwrap_err();
    match e {
        SyncError::Transport { message, .. } => assert!(message.contains("timed out"), "{message}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn configuration_is_checked_up_front() {
    let dir = tempfile::tempdir().unwrap();
    // A private CA bundle loads; garbage and missing files are errors naming the file.
    let mut cfg = config("https://argocd.example.com", &dir);
    cfg.ca_file = Some(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/argocd/ca.pem").into());
    assert!(ArgoCdClient::new(&cfg).is_ok());
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    cfg.ca_file = Some(junk);
    let e = ArgoCdClient::new(&cfg).unwrap_err().to_string();
    assert!(e.contains("junk.pem"), "{e}");
    cfg.ca_file = Some(dir.path().join("absent.pem"));
    assert!(ArgoCdClient::new(&cfg)
        .unwrap_err()
        .to_string()
        .contains("absent.pem"));
    // The file's error is the source, and the message shows it after the file.
    let e = ArgoCdClient::new(&cfg).unwrap_err();
    let SyncError::Setup { what, source } = &e else {
        panic!("{e:?}");
    };
    let absent = dir.path().join("absent.pem");
    assert_eq!(what, &format!("argocd.ca_file {}", absent.display()));
    assert!(source.is::<std::io::Error>(), "{source:?}");
    assert_eq!(
        e.to_string(),
        format!(
            "sync configuration: argocd.ca_file {}: {source}",
            absent.display()
        )
    );

    // The token must be readable now, not at the first breach.
    let cfg = ArgoCdConfig::new(
        "https://argocd.example.com",
        SecretSource::Env("SLOGATE_TEST_ARGOCD_UNSET".into()),
    );
    let e = ArgoCdClient::new(&cfg).unwrap_err().to_string();
    assert!(e.contains("SLOGATE_TEST_ARGOCD_UNSET"), "{e}");

    // An empty application name.
    let client = ArgoCdClient::new(&config("https://argocd.example.com", &dir)).unwrap();
    assert!(matches!(client.app(app(" ")), Err(SyncError::Config(_))));
}
