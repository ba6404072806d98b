//! The `Notifier` port: tell humans what slogate did. A failing notifier never blocks or
//! undoes an action: callers log the error and go on.

use async_trait::async_trait;

use crate::model::notify::Notification;

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
