//! Configuration of the git adapter, and credentials.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ports::gitops::GitOpsError;

/// Where a secret comes from. The secret is read at each use (so a rotated file is picked
/// up), never stored in the config, never logged.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretSource {
    /// A file holding the secret (trailing whitespace and newline are trimmed).
    File(PathBuf),
    /// An environment variable of the slogate process holding the secret.
    Env(String),
}

impl fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The source is not secret, only its content is.
        match self {
            SecretSource::File(p) => write!(f, "File({})", p.display()),
            SecretSource::Env(v) => write!(f, "Env({v})"),
        }
    }
}

impl SecretSource {
    /// Read the secret. Errors name the source, never the content.
    pub fn read(&self) -> Result<Secret, GitOpsError> {
        let raw = match self {
            SecretSource::File(p) => std::fs::read_to_string(p).map_err(|e| {
                GitOpsError::Credentials(format!("cannot read secret file {}: {e}", p.display()))
            })?,
            SecretSource::Env(v) => std::env::var(v).map_err(|_| {
                GitOpsError::Credentials(format!("environment variable {v} is not set"))
            })?,
        };
        let s = raw.trim_end_matches(['\n', '\r', ' ', '\t']).to_string();
        if s.is_empty() {
            return Err(GitOpsError::Credentials(format!(
                "secret from {self:?} is empty"
            )));
        }
        if s.contains(['\n', '\r']) {
            return Err(GitOpsError::Credentials(format!(
                "secret from {self:?} spans several lines"
            )));
        }
        Ok(Secret(s))
    }
}

/// A secret value. `Debug` and `Display` print `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret itself: only for handing it to a child process or an HTTP header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// How to authenticate to the remote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Auth {
    /// No credentials (file paths, `file://`, `git://`, public https, or ssh with the
    /// process's own ssh configuration).
    #[default]
    None,
    /// An https token (GitHub, GitLab, Gitea personal/deploy/app tokens), sent as the
    /// password of HTTP basic auth through a git credential helper.
    Token {
        token: SecretSource,
        /// Username sent with the token. Default `x-access-token` (GitHub accepts it;
        /// GitLab and Gitea accept any non-empty username with a token, `oauth2` is usual).
        #[serde(default)]
        username: Option<String>,
    },
    /// https basic auth.
    Basic {
        username: String,
        password: SecretSource,
    },
    /// ssh with a private key file.
    SshKey {
        key_file: PathBuf,
        /// known_hosts to check the server key against (`StrictHostKeyChecking=yes` always);
        /// default: ssh's own (`~/.ssh/known_hosts`).
        #[serde(default)]
        known_hosts_file: Option<PathBuf>,
    },
}

/// Where a revert goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum RevertMode {
    /// Push the revert commit to the branch.
    #[default]
    Push,
    /// Push a `slogate/revert-<breach>` branch and open a pull/merge request.
    PullRequest,
}

/// Configuration of [`crate::adapters::git::GitCli`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepoConfig {
    /// Remote: a local path, `file://`, `git://`, `http(s)://` or `ssh://` (or scp-like
    /// `user@host:path`). Must not carry a password: use `auth`.
    pub url: String,
    /// Branch Argo CD / Flux watches.
    pub branch: String,
    /// Local clone owned by slogate. Any local change in it is discarded at the start of
    /// each operation.
    pub workdir: PathBuf,
    #[serde(default)]
    pub auth: Auth,
    pub author_name: String,
    pub author_email: String,
    /// How many times a rejected (non-fast-forward) push is redone on the new head.
    #[serde(default = "default_push_retries")]
    pub push_retries: u32,
    /// Limit for each git invocation; the process is killed after it.
    #[serde(default = "default_timeout", with = "duration_secs")]
    pub timeout: Duration,
    #[serde(default)]
    pub mode: RevertMode,
    /// How many recent commits are scanned when no known-good commit bounds the search
    /// (idempotence check, `commits_touching(path, None)`).
    #[serde(default = "default_history_limit")]
    pub history_limit: usize,
    /// The ssh program (default `ssh`).
    #[serde(default)]
    pub ssh_program: Option<PathBuf>,
    /// Extra git configuration (`http.proxy`, `http.sslCAInfo`…), passed through the
    /// environment. Global and system git configuration is ignored.
    #[serde(default)]
    pub extra_git_config: Vec<(String, String)>,
}

fn default_push_retries() -> u32 {
    3
}
fn default_timeout() -> Duration {
    Duration::from_secs(120)
}
fn default_history_limit() -> usize {
    500
}

mod duration_secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        if !(secs.is_finite() && secs > 0.0) {
            return Err(serde::de::Error::custom(
                "timeout must be a positive number of seconds",
            ));
        }
        Ok(Duration::from_secs_f64(secs))
    }
}

impl RepoConfig {
    /// A config with defaults for everything but the essentials.
    pub fn new(
        url: impl Into<String>,
        branch: impl Into<String>,
        workdir: impl Into<PathBuf>,
    ) -> Self {
        Self {
            url: url.into(),
            branch: branch.into(),
            workdir: workdir.into(),
            auth: Auth::None,
            author_name: "slogate".into(),
            author_email: "slogate@localhost".into(),
            push_retries: default_push_retries(),
            timeout: default_timeout(),
            mode: RevertMode::Push,
            history_limit: default_history_limit(),
            ssh_program: None,
            extra_git_config: Vec::new(),
        }
    }

    /// Check the config. The error never repeats a password found in the URL.
    pub fn validate(&self) -> Result<(), GitOpsError> {
        let err = |m: String| Err(GitOpsError::Config(m));
        if self.url.trim().is_empty() {
            return err("url is empty".into());
        }
        if let Ok(u) = url::Url::parse(&self.url) {
            if u.password().is_some() || (!u.username().is_empty() && is_http(u.scheme())) {
                return err(format!(
                    "url {} carries credentials: put them in `auth` instead",
                    crate::adapters::git::runner::redact_url_userinfo(&self.url)
                ));
            }
        }
        if !valid_branch_name(&self.branch) {
            return err(format!(
                "branch `{}` is not a valid branch name",
                self.branch
            ));
        }
        if self.author_name.trim().is_empty() || self.author_email.trim().is_empty() {
            return err("author name and email must be set".into());
        }
        if self.history_limit == 0 {
            return err("history_limit must be at least 1".into());
        }
        for (k, _) in &self.extra_git_config {
            if k.trim().is_empty() || k.contains(['\n', '=']) {
                return err(format!("extra_git_config key `{k}` is invalid"));
            }
        }
        match &self.auth {
            Auth::Token { .. } | Auth::Basic { .. } => {
                if !is_http(&self.scheme()) {
                    return err("token/basic auth needs an http(s) url".into());
                }
            }
            Auth::SshKey { .. } => {
                if self.scheme() != "ssh" {
                    return err("ssh key auth needs an ssh url (ssh:// or user@host:path)".into());
                }
            }
            Auth::None => {}
        }
        Ok(())
    }

    /// `https`, `http`, `ssh`, `git`, `file`.
    pub fn scheme(&self) -> String {
        match url::Url::parse(&self.url) {
            Ok(u) if u.scheme().len() > 1 => u.scheme().to_ascii_lowercase(),
            _ => {
                if is_scp_like(&self.url) {
                    "ssh".into()
                } else {
                    "file".into()
                }
            }
        }
    }

    /// `scheme://host[:port]` of an http(s) url, used to scope the credential helper.
    pub(crate) fn http_origin(&self) -> Option<String> {
        let u = url::Url::parse(&self.url).ok()?;
        if !is_http(u.scheme()) {
            return None;
        }
        let host = u.host_str()?;
        Some(match u.port() {
            Some(p) => format!("{}://{}:{}", u.scheme(), host, p),
            None => format!("{}://{}", u.scheme(), host),
        })
    }
}

fn is_http(scheme: &str) -> bool {
    scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")
}

/// `user@host:path` or `host:path` (git's scp-like ssh syntax), not a Windows drive.
fn is_scp_like(s: &str) -> bool {
    match s.split_once(':') {
        Some((host, _)) => !host.is_empty() && !host.contains('/') && host.len() > 1,
        None => false,
    }
}

/// A conservative check of git's ref-name rules for branch names.
pub(crate) fn valid_branch_name(b: &str) -> bool {
    !b.is_empty()
        && !b.starts_with(['-', '/', '.'])
        && !b.ends_with(['/', '.'])
        && !b.ends_with(".lock")
        && !b.contains("..")
        && !b.contains("//")
        && !b.contains("@{")
        && b.chars().all(|c| {
            !c.is_control() && !matches!(c, ' ' | '~' | '^' | ':' | '?' | '*' | '[' | '\\')
        })
}
