//! The [`SyncTrigger`] port on Argo CD's REST API.
//!
//! Request (Argo CD `ApplicationService.Sync`, gRPC-gateway REST mapping):
//!
//! ```text
//! POST {server}/api/v1/applications/{name}/sync[?appNamespace={ns}]
//! Authorization: Bearer <token>
//! Content-Type: application/json
//!
//! {"name": "checkout-prod", "prune": false, "dryRun": false,
//!  "revision": "<sha>",                  (only with pin_revision: true)
//!  "appNamespace": "team-a",             (apps outside argocd's namespace)
//!  "project": "payments",                (optional)
//!  "syncOptions": {"items": ["ApplyOutOfSyncOnly=true"]}}   (optional)
//! ```
//!
//! The body is `ApplicationSyncRequest` (fields `name`, `revision`, `dryRun`, `prune`,
//! `strategy`, `resources`, `manifests`, `infos`, `retryStrategy`, `syncOptions`,
//! `appNamespace`, `project`); slogate sets the ones above. `appNamespace` goes in the body
//! and in the query, which both Argo CD versions with and without apps-in-any-namespace
//! read. Argo CD answers `200` with the Application.
//!
//! **Revision pinning is off by default**: Argo CD refuses to sync an application with
//! automated sync to a revision other than its target revision ("Cannot sync to …:
//! auto-sync currently set to …"), and the revert commit is the head of the watched branch
//! anyway. Turn `pin_revision` on for apps with manual sync only.
//!
//! The token (an Argo CD account or project token) is read from its file or variable at
//! each request, is marked sensitive in the request, and never appears in an error: the
//! server's error message is included (truncated), with any occurrence of the token
//! replaced by `***`. TLS is rustls with the webpki roots, plus the certificates of
//! `ca_file` (a PEM bundle) for a private CA. Every request has a timeout (default 30s).
//! There are no retries here: a failed sync is reported, and the GitOps controller still
//! applies the revert at its next poll.

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{HeaderValue, AUTHORIZATION};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::adapters::git::SecretSource;
use crate::adapters::http;
use crate::ports::sync::{SyncError, SyncTrigger};
use crate::ports::BoxError;
use crate::slo::PromDuration;

/// The `argocd:` config section: how to reach the Argo CD API server.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArgoCdConfig {
    /// Base URL of argocd-server (`https://argocd-server.argocd`, with the `--rootpath` if
    /// one is set).
    pub server: String,
    /// The API token in a file. Exactly one of `token_file` and `token_env`.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    #[serde(default)]
    pub token_env: Option<String>,
    /// PEM bundle of extra CA certificates trusted for the server.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Per-request timeout.
    #[serde(default = "default_timeout")]
    pub timeout: PromDuration,
}

fn default_timeout() -> PromDuration {
    PromDuration::from_secs(30)
}

/// Which application to sync, and how.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArgoCdApp {
    /// The Application's name.
    pub name: String,
    /// The Application's namespace, for apps outside Argo CD's own namespace.
    #[serde(default)]
    pub app_namespace: Option<String>,
    /// The Application's project (Argo CD checks it when given).
    #[serde(default)]
    pub project: Option<String>,
    /// Delete resources no longer in Git.
    #[serde(default)]
    pub prune: bool,
    /// Ask for the exact revert commit (apps without automated sync only, see the module
    /// doc).
    #[serde(default)]
    pub pin_revision: bool,
    /// Per-sync options (`ApplyOutOfSyncOnly=true`, `ServerSideApply=true`…).
    #[serde(default)]
    pub sync_options: Vec<String>,
}

impl ArgoCdConfig {
    pub fn new(server: impl Into<String>, token: SecretSource) -> Self {
        let (token_file, token_env) = match token {
            SecretSource::File(f) => (Some(f), None),
            SecretSource::Env(e) => (None, Some(e)),
        };
        ArgoCdConfig {
            server: server.into(),
            token_file,
            token_env,
            ca_file: None,
            timeout: default_timeout(),
        }
    }

    pub fn token_source(&self) -> Result<SecretSource, String> {
        match (&self.token_file, &self.token_env) {
            (Some(f), None) => Ok(SecretSource::File(f.clone())),
            (None, Some(e)) => Ok(SecretSource::Env(e.clone())),
            (None, None) => Err("argocd: expected token_file or token_env, found neither".into()),
            (Some(_), Some(_)) => {
                Err("argocd: expected one of token_file or token_env, found both".into())
            }
        }
    }

    /// Static checks.
    pub fn check(&self) -> Result<(), String> {
        let u = url::Url::parse(&self.server)
            .map_err(|e| format!("argocd.server: expected an http(s) URL ({e})"))?;
        if !matches!(u.scheme(), "http" | "https") {
            return Err(format!(
                "argocd.server: expected an http(s) URL, found scheme `{}`",
                u.scheme()
            ));
        }
        if !u.username().is_empty() || u.password().is_some() {
            return Err("argocd.server: credentials belong in token_file/token_env".into());
        }
        self.token_source()?;
        if self.timeout.as_millis() < 100 {
            return Err(format!(
                "argocd.timeout: expected at least 100ms, found {}",
                self.timeout
            ));
        }
        Ok(())
    }
}

/// A connection to one Argo CD server; cheap to clone, one per daemon.
#[derive(Clone, Debug)]
pub struct ArgoCdClient {
    client: reqwest::Client,
    server: String,
    token: SecretSource,
}

impl ArgoCdClient {
    /// Check the config, load `ca_file`, and read the token once (a missing token is an
    /// error now, not at the first breach).
    pub fn new(cfg: &ArgoCdConfig) -> Result<Self, SyncError> {
        cfg.check().map_err(SyncError::Config)?;
        let token = cfg.token_source().map_err(SyncError::Config)?;
        token
            .read()
            .map_err(|e| SyncError::Config(format!("argocd token: {e}")))?;
        let t = cfg.timeout.as_std();
        let mut b = http::client_builder(t, t.min(Duration::from_secs(10)));
        if let Some(f) = &cfg.ca_file {
            let ca_file = |e: BoxError| SyncError::Setup {
                what: format!("argocd.ca_file {}", f.display()),
                source: e,
            };
            let pem = std::fs::read(f).map_err(|e| ca_file(e.into()))?;
            let certs =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ca_file(e.into()))?;
            if certs.is_empty() {
                return Err(SyncError::Config(format!(
                    "argocd.ca_file {}: no PEM certificate found",
                    f.display()
                )));
            }
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        let client = b.build().map_err(|e| SyncError::Setup {
            what: "argocd HTTP client".into(),
            source: e.into(),
        })?;
        Ok(ArgoCdClient {
            client,
            server: cfg.server.trim_end_matches('/').to_string(),
            token,
        })
    }

    /// The sync trigger of one application.
    pub fn app(&self, app: ArgoCdApp) -> Result<ArgoCdSync, SyncError> {
        if app.name.trim().is_empty() {
            return Err(SyncError::Config("argocd app name is empty".into()));
        }
        Ok(ArgoCdSync {
            api: self.clone(),
            app,
        })
    }
}

/// [`SyncTrigger`] for one Argo CD Application.
#[derive(Clone, Debug)]
pub struct ArgoCdSync {
    api: ArgoCdClient,
    app: ArgoCdApp,
}

impl ArgoCdSync {
    /// Shorthand for `ArgoCdClient::new(cfg)?.app(app)`.
    pub fn new(cfg: &ArgoCdConfig, app: ArgoCdApp) -> Result<Self, SyncError> {
        ArgoCdClient::new(cfg)?.app(app)
    }

    /// The `ApplicationSyncRequest` body.
    pub fn request_body(&self, revision: Option<&str>) -> Value {
        let a = &self.app;
        let mut body = json!({ "name": a.name, "prune": a.prune, "dryRun": false });
        if let (true, Some(r)) = (a.pin_revision, revision) {
            body["revision"] = json!(r);
        }
        if let Some(ns) = &a.app_namespace {
            body["appNamespace"] = json!(ns);
        }
        if let Some(p) = &a.project {
            body["project"] = json!(p);
        }
        if !a.sync_options.is_empty() {
            body["syncOptions"] = json!({ "items": a.sync_options });
        }
        body
    }

    fn url(&self) -> Result<url::Url, SyncError> {
        let mut u = url::Url::parse(&format!(
            "{}/api/v1/applications/{}/sync",
            self.api.server,
            http::encode_segment(&self.app.name)
        ))
        .map_err(|e| SyncError::Setup {
            what: "argocd URL".into(),
            source: e.into(),
        })?;
        if let Some(ns) = &self.app.app_namespace {
            u.query_pairs_mut().append_pair("appNamespace", ns);
        }
        Ok(u)
    }
}

#[async_trait]
impl SyncTrigger for ArgoCdSync {
    async fn request_sync(&self, revision: Option<&str>) -> Result<(), SyncError> {
        let app = self.app.name.clone();
        let token = self
            .api
            .token
            .read()
            .map_err(|e| SyncError::Config(format!("argocd token: {e}")))?;
        let mut auth = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
            .map_err(|_| SyncError::Config("argocd token is not a valid header value".into()))?;
        auth.set_sensitive(true);
        let resp = self
            .api
            .client
            .post(self.url()?)
            .header(AUTHORIZATION, auth)
            .json(&self.request_body(revision))
            .send()
            .await
            .map_err(|e| SyncError::Transport {
                app: app.clone(),
                message: redact(&http::describe_error(e), token.expose()),
            })?;
        let status = resp.status();
        if status.is_success() {
            tracing::info!(app = %app, revision = revision.unwrap_or(""), "Argo CD sync requested");
            return Ok(());
        }
        let text = resp.text().await.unwrap_or_default();
        Err(SyncError::Http {
            app,
            status: status.as_u16(),
            body: redact(&error_message(&text), token.expose()),
        })
    }
}

/// Argo CD's error message (`{"error": …, "code": …, "message": …}`), else the raw body,
/// at most 300 characters.
fn error_message(body: &str) -> String {
    let msg = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| {
            v.get("message")
                .or_else(|| v.get("error"))
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_else(|| body.trim().to_string());
    let mut out: String = msg.chars().take(300).collect();
    if out.len() < msg.len() {
        out.push('…');
    }
    out
}

fn redact(s: &str, token: &str) -> String {
    if token.is_empty() {
        s.to_string()
    } else {
        s.replace(token, "***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_follows_application_sync_request() {
        std::env::set_var("SLOGATE_TEST_ARGOCD_UNIT_TOKEN", "t");
        let cfg = ArgoCdConfig::new(
            "https://argocd.example.com/",
            SecretSource::Env("SLOGATE_TEST_ARGOCD_UNIT_TOKEN".into()),
        );
        let mut app = ArgoCdApp {
            name: "checkout-prod".into(),
            ..Default::default()
        };
        let s = ArgoCdSync::new(&cfg, app.clone()).unwrap();
        assert_eq!(
            s.request_body(Some("abc")),
            json!({"name": "checkout-prod", "prune": false, "dryRun": false})
        );
        app.pin_revision = true;
        app.prune = true;
        app.app_namespace = Some("team a".into());
        app.project = Some("payments".into());
        app.sync_options = vec!["ApplyOutOfSyncOnly=true".into()];
        let s = ArgoCdSync::new(&cfg, app).unwrap();
        assert_eq!(
            s.request_body(Some("abc")),
            json!({"name": "checkout-prod", "prune": true, "dryRun": false, "revision": "abc",
                   "appNamespace": "team a", "project": "payments",
                   "syncOptions": {"items": ["ApplyOutOfSyncOnly=true"]}})
        );
        assert_eq!(
            s.url().unwrap().as_str(),
            "https://argocd.example.com/api/v1/applications/checkout-prod/sync?appNamespace=team+a"
        );
    }

    #[test]
    fn config_errors() {
        let mut c = ArgoCdConfig::new("ftp://x", SecretSource::Env("X".into()));
        assert!(c.check().unwrap_err().contains("scheme `ftp`"));
        c.server = "https://u:p@argocd".into();
        assert!(c.check().unwrap_err().contains("token_file"));
        c.server = "https://argocd".into();
        c.token_file = Some("/t".into());
        assert!(c.check().unwrap_err().contains("found both"));
    }

    #[test]
    fn error_messages_are_extracted_and_bounded() {
        assert_eq!(
            error_message(
                r#"{"error":"e","code":5,"message":"applications.argoproj.io \"x\" not found"}"#
            ),
            "applications.argoproj.io \"x\" not found"
        );
        assert_eq!(error_message("  oops \n"), "oops");
        assert_eq!(error_message(&"y".repeat(1000)).chars().count(), 301);
        assert_eq!(redact("token abc here", "abc"), "token *** here");
    }
}
