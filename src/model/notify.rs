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
    /// The incident this message opens, updates or resolves, for incident tools
    /// (PagerDuty). `None`: a message only. Chat and webhook notifiers show the message
    /// either way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<Incident>,
}

/// An incident: a guard breach (its key is the breach id, for every revert made during it)
/// or a rollout's revert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    /// Stable for the life of the incident: PagerDuty's `dedup_key`.
    pub key: String,
    pub action: IncidentAction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IncidentAction {
    /// Open the incident, or add to it when it is open.
    Trigger,
    /// It is over (the freeze ended).
    Resolve,
}

impl Incident {
    pub fn trigger(key: impl Into<String>) -> Self {
        Incident {
            key: key.into(),
            action: IncidentAction::Trigger,
        }
    }
    pub fn resolve(key: impl Into<String>) -> Self {
        Incident {
            key: key.into(),
            action: IncidentAction::Resolve,
        }
    }
}
