//! Daemon configuration: a YAML (or TOML) file plus `SLOGATE_…` environment variables,
//! through the `config` crate. Nested keys use a double underscore in the environment:
//! `SLOGATE_PROMETHEUS__URL`, `SLOGATE_EVALUATION__INTERVAL`, `SLOGATE_SERVER__LISTEN`.
//! Environment variables win over the file. Every key has a default except
//! `prometheus.url`; the README's configuration reference lists them all.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::slo::PromDuration;

/// The whole daemon configuration.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct Config {
    pub prometheus: PrometheusConfig,
    pub slos: SlosConfig,
    pub evaluation: EvaluationConfig,
    pub server: ServerConfig,
    /// `POST /webhook/alertmanager` (off unless `webhook.enabled`).
    pub webhook: super::webhook::WebhookConfig,
    /// Slack / generic webhook notifiers.
    pub notifications: Vec<crate::adapters::notify::NotifierConfig>,
    /// The Argo CD API server, for sync requests after a revert.
    pub argocd: Option<crate::adapters::argocd::ArgoCdConfig>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PrometheusConfig {
    /// Base URL of the Prometheus HTTP API. Required.
    pub url: String,
    /// Timeout of every query.
    pub timeout: PromDuration,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SlosConfig {
    /// Files or directories of SLO specs (directories: their `*.yml`/`*.yaml` files).
    pub paths: Vec<PathBuf>,
    /// How often the spec files are checked for changes.
    pub reload_interval: PromDuration,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct EvaluationConfig {
    /// Time between evaluation cycles.
    pub interval: PromDuration,
    /// Random spread of the interval, as a fraction (0.1 = ±10%).
    pub jitter: f64,
    /// Default SLO period for SLOs that declare none (30d or 28d without a catalog).
    pub period: Option<PromDuration>,
    /// A custom Sloth `AlertWindows` catalog file.
    pub windows_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address of the HTTP server (`/healthz`, `/readyz`, `/metrics`, `/api/v1/…`).
    pub listen: SocketAddr,
}

impl Default for PrometheusConfig {
    fn default() -> Self {
        PrometheusConfig {
            url: String::new(),
            timeout: PromDuration::from_secs(30),
        }
    }
}

impl Default for SlosConfig {
    fn default() -> Self {
        SlosConfig {
            paths: vec![PathBuf::from("/etc/slogate/slos")],
            reload_interval: PromDuration::from_secs(10),
        }
    }
}

impl Default for EvaluationConfig {
    fn default() -> Self {
        EvaluationConfig {
            interval: PromDuration::from_mins(5),
            jitter: 0.1,
            period: None,
            windows_file: None,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
}

/// Top-level keys a config file may have (environment variables that are not config, such
/// as `SLOGATE_LOG`, are ignored rather than rejected).
const TOP_LEVEL_KEYS: [&str; 7] = [
    "prometheus",
    "slos",
    "evaluation",
    "server",
    "webhook",
    "notifications",
    "argocd",
];

impl Config {
    /// Load the file and overlay `SLOGATE_*` environment variables.
    pub fn load(file: &Path) -> Result<Config, ConfigError> {
        Self::load_with_env(file, None)
    }

    /// Like [`Config::load`], with the environment given explicitly (for tests).
    pub fn load_with_env(
        file: &Path,
        env: Option<std::collections::HashMap<String, String>>,
    ) -> Result<Config, ConfigError> {
        let name = file.display().to_string();
        let invalid = |message: String| ConfigError::Invalid {
            file: name.clone(),
            message,
        };
        let text =
            std::fs::read_to_string(file).map_err(|e| invalid(format!("cannot read: {e}")))?;
        check_top_level_keys(&text).map_err(invalid)?;
        let format = match file.extension().and_then(|e| e.to_str()) {
            Some("toml") => config::FileFormat::Toml,
            _ => config::FileFormat::Yaml,
        };
        let mut envsrc = config::Environment::with_prefix("SLOGATE")
            .prefix_separator("_")
            .separator("__")
            .try_parsing(true);
        if env.is_some() {
            envsrc = envsrc.source(env);
        }
        let cfg: Config = config::Config::builder()
            .add_source(config::File::from_str(&text, format))
            .add_source(envsrc)
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| invalid(e.to_string()))?;
        cfg.check().map_err(invalid)?;
        Ok(cfg)
    }

    fn check(&self) -> Result<(), String> {
        if self.prometheus.url.is_empty() {
            return Err(
                "prometheus.url: expected the Prometheus base URL (or SLOGATE_PROMETHEUS__URL), found nothing"
                    .into(),
            );
        }
        if self.slos.paths.is_empty() {
            return Err("slos.paths: expected at least one file or directory".into());
        }
        if self.evaluation.interval.as_millis() < 1000 {
            return Err(format!(
                "evaluation.interval: expected at least 1s, found {}",
                self.evaluation.interval
            ));
        }
        if self.slos.reload_interval.as_millis() < 100 {
            return Err(format!(
                "slos.reload_interval: expected at least 100ms, found {}",
                self.slos.reload_interval
            ));
        }
        if !(0.0..=0.5).contains(&self.evaluation.jitter) {
            return Err(format!(
                "evaluation.jitter: expected a fraction between 0 and 0.5, found {}",
                self.evaluation.jitter
            ));
        }
        if self.prometheus.timeout.as_millis() < 100 {
            return Err(format!(
                "prometheus.timeout: expected at least 100ms, found {}",
                self.prometheus.timeout
            ));
        }
        self.webhook.check()?;
        crate::adapters::notify::check_all(&self.notifications)?;
        if let Some(a) = &self.argocd {
            a.check()?;
        }
        Ok(())
    }
}

fn check_top_level_keys(text: &str) -> Result<(), String> {
    // TOML or empty files are checked by deserialisation only.
    let Ok(serde_yaml::Value::Mapping(m)) = serde_yaml::from_str::<serde_yaml::Value>(text) else {
        return Ok(());
    };
    for k in m.keys() {
        let k = k.as_str().unwrap_or("<non-string key>");
        if !TOP_LEVEL_KEYS.contains(&k) {
            return Err(format!(
                "{k}: unknown key; expected one of {}",
                TOP_LEVEL_KEYS.join(", ")
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
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

    #[test]
    fn defaults_apply() {
        let c = load("prometheus:\n  url: http://p:9090\n", &[]).unwrap();
        assert_eq!(c.evaluation.interval.to_string(), "5m");
        assert_eq!(c.evaluation.jitter, 0.1);
        assert_eq!(c.prometheus.timeout.to_string(), "30s");
        assert_eq!(c.slos.reload_interval.to_string(), "10s");
        assert_eq!(c.server.listen.to_string(), "0.0.0.0:8080");
        assert_eq!(c.slos.paths, vec![PathBuf::from("/etc/slogate/slos")]);
    }

    #[test]
    fn environment_overrides_file() {
        let c = load(
            "prometheus:\n  url: http://p:9090\nevaluation:\n  interval: 5m\n",
            &[
                ("SLOGATE_EVALUATION__INTERVAL", "1m"),
                ("SLOGATE_PROMETHEUS__URL", "http://other:9090"),
                ("SLOGATE_SERVER__LISTEN", "127.0.0.1:9999"),
                // Not configuration: ignored, not rejected.
                ("SLOGATE_LOG", "debug"),
            ],
        )
        .unwrap();
        assert_eq!(c.evaluation.interval.to_string(), "1m");
        assert_eq!(c.prometheus.url, "http://other:9090");
        assert_eq!(c.server.listen.port(), 9999);
    }

    #[test]
    fn errors_name_the_file_and_field() {
        let e = load("evaluation:\n  interval: 5m\n", &[]).unwrap_err();
        assert!(
            e.contains("slogate.yaml") && e.contains("prometheus.url"),
            "{e}"
        );
        let e = load("prometheus:\n  url: x\nevaluation:\n  intervall: 5m\n", &[]).unwrap_err();
        assert!(e.contains("intervall"), "{e}");
        let e = load(
            "prometheus:\n  url: x\nevaluation:\n  interval: soon\n",
            &[],
        )
        .unwrap_err();
        assert!(e.contains("soon") && e.contains("duration"), "{e}");
        let e = load("prometheus:\n  url: x\nevalutaion: {}\n", &[]).unwrap_err();
        assert!(
            e.contains("evalutaion") && e.contains("expected one of"),
            "{e}"
        );
        let e = load("prometheus:\n  url: x\nevaluation:\n  jitter: 2\n", &[]).unwrap_err();
        assert!(e.contains("evaluation.jitter"), "{e}");
    }
}

#[cfg(test)]
mod shipped_config {
    use super::*;

    /// `deploy/config/slogate.yaml` is what users copy: it must load, and it documents the
    /// defaults, so its values must equal them.
    #[test]
    fn the_shipped_example_config_loads_and_states_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/config/slogate.yaml");
        let c = Config::load_with_env(&path, Some(Default::default())).unwrap();
        let d = Config::default();
        assert_eq!(c.prometheus.timeout, d.prometheus.timeout);
        assert_eq!(c.slos, d.slos);
        assert_eq!(c.evaluation.interval, d.evaluation.interval);
        assert_eq!(c.evaluation.jitter, d.evaluation.jitter);
        assert_eq!(c.evaluation.period, Some(PromDuration::from_days(30)));
        assert_eq!(c.server, d.server);
    }
}
