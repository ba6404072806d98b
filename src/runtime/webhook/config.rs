//! The `webhook:` section of the daemon configuration.
//!
//! ```yaml
//! webhook:
//!   enabled: true
//!   auth:
//!     bearer:
//!       token_file: /etc/slogate/webhook/token     # or token_env: SLOGATE_WEBHOOK_TOKEN
//!     basic:                                       # either or both
//!       username: alertmanager
//!       password_env: SLOGATE_WEBHOOK_PASSWORD     # or password_file: …
//!   max_body_bytes: 1048576
//!   dedupe_ttl: 7d
//!   queue: 1024
//! ```
//!
//! Secrets are named by file or environment variable, never written in the config.

use std::path::PathBuf;

use serde::Deserialize;

use crate::adapters::git::SecretSource;
use crate::slo::PromDuration;

/// Configuration of `POST /webhook/alertmanager`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    /// Mount the receiver. Off by default: an enabled receiver needs credentials.
    pub enabled: bool,
    /// Accept requests without credentials. Only for a receiver that nothing but Alertmanager
    /// can reach (a NetworkPolicy, a sidecar): with it anyone who can reach the port can make
    /// slogate re-evaluate (never act beyond what the guard would decide anyway).
    pub allow_unauthenticated: bool,
    /// `auth:` with everything commented out (YAML null) means no credentials.
    #[serde(deserialize_with = "null_as_default")]
    pub auth: WebhookAuthConfig,
    /// Largest request body accepted; larger requests get 413.
    pub max_body_bytes: usize,
    /// How long an alert's (fingerprint, status, startsAt) is remembered for deduplication.
    /// Must exceed Alertmanager's `repeat_interval` (default 4h) to drop its repeats.
    pub dedupe_ttl: PromDuration,
    /// Capacity of the queue of evaluation triggers between the receiver and the guard.
    pub queue: usize,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            enabled: false,
            allow_unauthenticated: false,
            auth: WebhookAuthConfig::default(),
            max_body_bytes: 1024 * 1024,
            dedupe_ttl: PromDuration::from_days(7),
            queue: 1024,
        }
    }
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Accepted credentials. When both are set, either is accepted.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookAuthConfig {
    /// `Authorization: Bearer <token>` (Alertmanager: `http_config.authorization`).
    pub bearer: Option<BearerAuthConfig>,
    /// `Authorization: Basic …` (Alertmanager: `http_config.basic_auth`).
    pub basic: Option<BasicAuthConfig>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BearerAuthConfig {
    pub token_file: Option<PathBuf>,
    pub token_env: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BasicAuthConfig {
    pub username: String,
    pub password_file: Option<PathBuf>,
    pub password_env: Option<String>,
}

/// Exactly one of a `*_file` / `*_env` pair, as a [`SecretSource`]. `what` names the pair
/// in errors (`webhook.auth.bearer.token`).
pub(crate) fn secret_source(
    what: &str,
    file: &Option<PathBuf>,
    env: &Option<String>,
) -> Result<SecretSource, String> {
    match (file, env) {
        (Some(f), None) => Ok(SecretSource::File(f.clone())),
        (None, Some(e)) if !e.trim().is_empty() => Ok(SecretSource::Env(e.clone())),
        (None, Some(_)) => Err(format!(
            "{what}_env: expected a variable name, found nothing"
        )),
        (None, None) => Err(format!(
            "{what}: expected {what}_file or {what}_env, found neither"
        )),
        (Some(_), Some(_)) => Err(format!(
            "{what}: expected one of {what}_file or {what}_env, found both"
        )),
    }
}

impl BearerAuthConfig {
    pub fn source(&self) -> Result<SecretSource, String> {
        secret_source(
            "webhook.auth.bearer.token",
            &self.token_file,
            &self.token_env,
        )
    }
}

impl BasicAuthConfig {
    pub fn source(&self) -> Result<SecretSource, String> {
        secret_source(
            "webhook.auth.basic.password",
            &self.password_file,
            &self.password_env,
        )
    }
}

impl WebhookConfig {
    /// Static checks (the secrets themselves are read when the receiver is built).
    pub fn check(&self) -> Result<(), String> {
        if !self.enabled {
            return Ok(());
        }
        if let Some(b) = &self.auth.bearer {
            b.source()?;
        }
        if let Some(b) = &self.auth.basic {
            if b.username.is_empty() || b.username.contains(':') {
                return Err(
                    "webhook.auth.basic.username: expected a non-empty name without `:`".into(),
                );
            }
            b.source()?;
        }
        if self.auth.bearer.is_none() && self.auth.basic.is_none() && !self.allow_unauthenticated {
            return Err(
                "webhook.auth: the receiver is enabled without credentials; configure \
                 webhook.auth.bearer or webhook.auth.basic, or set \
                 webhook.allow_unauthenticated: true"
                    .into(),
            );
        }
        if self.max_body_bytes < 1024 {
            return Err(format!(
                "webhook.max_body_bytes: expected at least 1024, found {}",
                self.max_body_bytes
            ));
        }
        if self.dedupe_ttl.as_millis() < 60_000 {
            return Err(format!(
                "webhook.dedupe_ttl: expected at least 1m, found {}",
                self.dedupe_ttl
            ));
        }
        if self.queue == 0 {
            return Err("webhook.queue: expected at least 1, found 0".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enabled() -> WebhookConfig {
        WebhookConfig {
            enabled: true,
            ..Default::default()
        }
    }

    #[test]
    fn disabled_needs_nothing() {
        assert_eq!(WebhookConfig::default().check(), Ok(()));
    }

    #[test]
    fn enabled_without_credentials_is_refused_unless_allowed() {
        let e = enabled().check().unwrap_err();
        assert!(e.contains("allow_unauthenticated"), "{e}");
        let c = WebhookConfig {
            allow_unauthenticated: true,
            ..enabled()
        };
        assert_eq!(c.check(), Ok(()));
    }

    #[test]
    fn secret_pairs_need_exactly_one_source() {
        let mut c = enabled();
        c.auth.bearer = Some(BearerAuthConfig::default());
        assert!(c.check().unwrap_err().contains("token_file or"));
        c.auth.bearer = Some(BearerAuthConfig {
            token_file: Some("/x".into()),
            token_env: Some("X".into()),
        });
        assert!(c.check().unwrap_err().contains("found both"));
        c.auth.bearer = Some(BearerAuthConfig {
            token_file: None,
            token_env: Some("X".into()),
        });
        assert_eq!(c.check(), Ok(()));
        c.auth.basic = Some(BasicAuthConfig {
            username: "a:b".into(),
            password_env: Some("P".into()),
            password_file: None,
        });
        assert!(c.check().unwrap_err().contains("username"));
    }

    use crate::runtime::config::Config;
    use std::collections::HashMap;

    fn load(text: &str, env: &[(&str, &str)]) -> Result<Config, String> {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("slogate.yaml");
        std::fs::write(&f, text).unwrap();
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::load_with_env(&f, Some(env)).map_err(|e| e.to_string())
    }

    /// The sections load through the `config` crate (file + environment), as the daemon
    /// loads them.
    #[test]
    fn full_sections_load_through_the_daemon_config() {
        let c = load(
            "prometheus:\n  url: http://p:9090\n\
             webhook:\n  enabled: true\n  auth:\n    basic:\n      username: am\n      password_file: /run/pw\n  max_body_bytes: 65536\n  dedupe_ttl: 1d\n\
             notifications:\n  - type: slack\n    url_file: /run/slack\n    min_severity: critical\n\
             \x20 - type: webhook\n    url_env: HOOK\n    headers: {X-Team: sre}\n    max_attempts: 2\n\
             argocd:\n  server: https://argocd\n  token_env: ARGOCD_TOKEN\n",
            &[("SLOGATE_WEBHOOK__AUTH__BEARER__TOKEN_ENV", "WEBHOOK_TOKEN")],
        )
        .unwrap();
        assert!(c.webhook.enabled);
        assert_eq!(c.webhook.max_body_bytes, 65536);
        assert_eq!(c.webhook.dedupe_ttl, PromDuration::from_days(1));
        assert_eq!(c.webhook.auth.basic.as_ref().unwrap().username, "am");
        assert_eq!(
            c.webhook.auth.bearer.as_ref().unwrap().token_env.as_deref(),
            Some("WEBHOOK_TOKEN")
        );
        assert_eq!(c.notifications.len(), 2);
        assert_eq!(
            c.notifications[0].min_severity,
            crate::model::notify::Severity::Critical
        );
        assert_eq!(c.notifications[1].headers["X-Team"], "sre");
        assert_eq!(c.notifications[1].max_attempts, 2);
        assert_eq!(c.argocd.unwrap().token_env.as_deref(), Some("ARGOCD_TOKEN"));
    }

    #[test]
    fn section_errors_name_the_field() {
        let base = "prometheus:\n  url: http://p:9090\n";
        let e = load(&format!("{base}webhook:\n  enabled: true\n"), &[]).unwrap_err();
        assert!(
            e.contains("webhook.auth") && e.contains("allow_unauthenticated"),
            "{e}"
        );
        let e = load(&format!("{base}webhook:\n  enabeld: true\n"), &[]).unwrap_err();
        assert!(e.contains("enabeld"), "{e}");
        let e = load(&format!("{base}notifications:\n  - type: slack\n"), &[]).unwrap_err();
        assert!(
            e.contains("notifications[0]") && e.contains("url_file"),
            "{e}"
        );
        let e = load(
            &format!("{base}notifications:\n  - type: teams\n    url: x\n"),
            &[],
        )
        .unwrap_err();
        assert!(e.contains("teams"), "{e}");
        let e = load(
            &format!("{base}argocd:\n  server: argocd\n  token_env: T\n"),
            &[],
        )
        .unwrap_err();
        assert!(e.contains("argocd.server"), "{e}");
    }

    /// `deploy/config/slogate.yaml` documents these sections with their defaults.
    #[test]
    fn the_shipped_config_states_the_defaults() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/config/slogate.yaml");
        // In a pod, as deploy/ runs it (outside one, its leader election is refused).
        let c = Config::load_in(&path, Some(Default::default()), true).unwrap();
        assert_eq!(c.webhook, WebhookConfig::default());
        assert!(c.notifications.is_empty());
        assert_eq!(c.argocd, None);
    }
}
