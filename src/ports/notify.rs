//! The `Notifier` port: tell humans what slogate did. A failing notifier never blocks or
//! undoes an action: callers log the error and go on.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

/// One message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    pub severity: Severity,
    /// What it is about (app, rollout, SLO id).
    pub subject: String,
    /// One line.
    pub title: String,
    /// A few lines of detail.
    pub text: String,
    /// Key facts shown as a table: budget consumed, commit shas, weights…
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotifyError {
    #[error("notifier `{notifier}`: HTTP {status} after {attempts} attempt(s)")]
    Http {
        notifier: String,
        status: u16,
        attempts: u32,
    },
    #[error("notifier `{notifier}`: {message} after {attempts} attempt(s)")]
    Transport {
        notifier: String,
        message: String,
        attempts: u32,
    },
    #[error("notifier configuration: {0}")]
    Config(String),
}

#[async_trait]
pub trait Notifier: Send + Sync {
    /// Deliver one notification (with the adapter's own retries).
    async fn notify(&self, n: &Notification) -> Result<(), NotifyError>;
}

/// Sends to several notifiers; returns every error (an empty list when all succeeded).
pub async fn notify_all(
    notifiers: &[std::sync::Arc<dyn Notifier>],
    n: &Notification,
) -> Vec<NotifyError> {
    let results = futures::future::join_all(notifiers.iter().map(|x| x.notify(n))).await;
    results.into_iter().filter_map(Result::err).collect()
}
