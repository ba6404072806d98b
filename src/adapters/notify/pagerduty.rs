//! PagerDuty Events API v2.
//!
//! Request: `POST <events URL>` (default [`DEFAULT_EVENTS_URL`]) with
//! `Content-Type: application/json`. A notification that opens or adds to an incident
//! ([`IncidentAction::Trigger`]: a guard breach and each of its reverts, a rollout's abort):
//! ```json
//! { "routing_key": "<integration key>", "event_action": "trigger",
//!   "dedup_key": "<breach id>",
//!   "payload": { "summary": "<title>", "source": "slogate", "severity": "critical",
//!                "component": "<subject>",
//!                "custom_details": { "text": "<text>", "<field>": "<value>", … } },
//!   "client": "slogate" }
//! ```
//! and one that ends it ([`IncidentAction::Resolve`]: the freeze ended):
//! ```json
//! { "routing_key": "<integration key>", "event_action": "resolve", "dedup_key": "<breach id>" }
//! ```
//! The `dedup_key` is the incident key, so every revert of one breach lands in one
//! PagerDuty alert and the unfreeze resolves it. PagerDuty answers `202`; `400` (invalid
//! event) is final, `429` and `5xx` are retried as for every notifier
//! ([`super::deliver`]). Limits: `summary` 1024 characters, `dedup_key` 255 (both cut).
//!
//! Notifications without an incident (a critical budget that does not roll back, a rollout
//! step) are not sent: PagerDuty pages people. `min_severity` applies to triggers; a
//! resolve is always sent, since it closes what a trigger opened.
//!
//! The routing key is a secret: read from its file or variable at each attempt, never
//! logged, never in an error.

use async_trait::async_trait;
use serde_json::{json, Map, Value};

use super::{Endpoint, RetryPolicy, UrlSource};
use crate::adapters::git::SecretSource;
use crate::model::notify::{Incident, IncidentAction, Notification, Severity};
use crate::ports::notify::{Notifier, NotifyError};

/// PagerDuty's public Events API v2 endpoint.
pub const DEFAULT_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

pub struct PagerDutyNotifier {
    endpoint: Endpoint,
    routing_key: SecretSource,
    min_severity: Severity,
}

impl std::fmt::Debug for PagerDutyNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PagerDutyNotifier")
            .field("endpoint", &self.endpoint)
            .field("routing_key", &self.routing_key)
            .finish_non_exhaustive()
    }
}

impl PagerDutyNotifier {
    pub fn new(
        name: impl Into<String>,
        url: UrlSource,
        routing_key: SecretSource,
        policy: RetryPolicy,
        min_severity: Severity,
    ) -> Result<Self, NotifyError> {
        Ok(PagerDutyNotifier {
            // The endpoint sends everything it is given: the severity filter is here, since
            // it applies to triggers only.
            endpoint: Endpoint::new(name, url, policy, Severity::Info)?,
            routing_key,
            min_severity,
        })
    }
}

#[async_trait]
impl Notifier for PagerDutyNotifier {
    async fn notify(&self, n: &Notification) -> Result<(), NotifyError> {
        let Some(incident) = &n.incident else {
            return Ok(());
        };
        if incident.action == IncidentAction::Trigger && n.severity < self.min_severity {
            return Ok(());
        }
        let name = self.endpoint.name().to_string();
        self.endpoint
            .post(n, |req| {
                let key = self
                    .routing_key
                    .read()
                    .map_err(|e| NotifyError::Config(format!("{name}: routing key: {e}")))?;
                Ok(req.json(&event(n, incident, key.expose())))
            })
            .await
    }
}

/// The Events API v2 event for a notification about `incident`.
pub fn event(n: &Notification, incident: &Incident, routing_key: &str) -> Value {
    let dedup_key = cut(&incident.key, 255);
    match incident.action {
        IncidentAction::Resolve => json!({
            "routing_key": routing_key,
            "event_action": "resolve",
            "dedup_key": dedup_key,
        }),
        IncidentAction::Trigger => {
            let mut details = Map::new();
            if !n.text.trim().is_empty() {
                details.insert("text".into(), json!(n.text));
            }
            for (k, v) in &n.fields {
                details.insert(k.clone(), json!(v));
            }
            json!({
                "routing_key": routing_key,
                "event_action": "trigger",
                "dedup_key": dedup_key,
                "payload": {
                    "summary": cut(&n.title, 1024),
                    "source": "slogate",
                    "severity": match n.severity {
                        Severity::Info => "info",
                        Severity::Warning => "warning",
                        Severity::Critical => "critical",
                    },
                    "component": n.subject,
                    "custom_details": details,
                },
                "client": "slogate",
            })
        }
    }
}

/// At most `max` characters.
fn cut(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn n(incident: Option<Incident>) -> Notification {
        Notification {
            severity: Severity::Critical,
            subject: "checkout".into(),
            title: "checkout: rollback reverted".into(),
            text: "SLO checkout-availability consumed 96.3%".into(),
            fields: BTreeMap::from([("breach".to_string(), "b-1".to_string())]),
            incident,
        }
    }

    #[test]
    fn trigger_and_resolve_events() {
        let t = Incident::trigger("checkout/checkout-availability/emergency/20261123T083755Z");
        assert_eq!(
            event(&n(Some(t.clone())), &t, "R0UT1NGKEY"),
            json!({
                "routing_key": "R0UT1NGKEY",
                "event_action": "trigger",
                "dedup_key": "checkout/checkout-availability/emergency/20261123T083755Z",
                "payload": {
                    "summary": "checkout: rollback reverted",
                    "source": "slogate",
                    "severity": "critical",
                    "component": "checkout",
                    "custom_details": {
                        "text": "SLO checkout-availability consumed 96.3%",
                        "breach": "b-1"
                    }
                },
                "client": "slogate"
            })
        );
        let r = Incident::resolve("k");
        assert_eq!(
            event(&n(Some(r.clone())), &r, "R"),
            json!({"routing_key": "R", "event_action": "resolve", "dedup_key": "k"})
        );
        let long = Incident::trigger("x".repeat(300));
        let mut m = n(Some(long.clone()));
        m.title = "t".repeat(2000);
        let e = event(&m, &long, "R");
        assert_eq!(e["dedup_key"].as_str().unwrap().len(), 255);
        assert_eq!(e["payload"]["summary"].as_str().unwrap().len(), 1024);
    }
}
