//! The `Notifier` port: tell humans what slogate did. A failing notifier never blocks or
//! undoes an action: callers log the error and go on.

use async_trait::async_trait;

pub use crate::model::notify::{Incident, IncidentAction, Notification, Severity};

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
