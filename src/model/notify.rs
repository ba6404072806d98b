//! A message for humans: what the guard and the rollouts decide to tell, and the
//! `Notifier` port delivers.

use std::collections::BTreeMap;

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
