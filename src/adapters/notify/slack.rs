//! Slack incoming webhooks.
//!
//! Request: `POST <incoming webhook URL>` with `Content-Type: application/json` and
//! ```json
//! { "text": ":rotating_light: [critical] checkout-availability: Rolled back 2 commits",
//!   "blocks": [
//!     { "type": "header",  "text": { "type": "plain_text", "text": "<title>" } },
//!     { "type": "section", "text": { "type": "mrkdwn", "text": "<text>" } },
//!     { "type": "section", "fields": [ { "type": "mrkdwn", "text": "*budget_consumed*\n0.963" }, … ] },
//!     { "type": "context", "elements": [ { "type": "mrkdwn", "text": "*critical* · <subject> · slogate" } ] } ] }
//! ```
//! `text` is the fallback Slack shows in notifications and to clients without blocks.
//! Slack's limits are respected by truncation (with `…`): header 150 characters, section
//! text 3000, a field 2000, 10 fields per section (further fields go to further sections),
//! 50 blocks. `&`, `<` and `>` are escaped in mrkdwn as Slack requires. Slack answers
//! `200 ok`; `400`/`403`/`404` (`invalid_payload`, `invalid_token`, `no_service`) are final.

use async_trait::async_trait;
use serde_json::{json, Value};

use super::{Endpoint, RetryPolicy, UrlSource};
use crate::model::notify::{Notification, Severity};
use crate::ports::notify::{Notifier, NotifyError};

#[derive(Debug)]
pub struct SlackNotifier(Endpoint);

impl SlackNotifier {
    pub fn new(
        name: impl Into<String>,
        url: UrlSource,
        policy: RetryPolicy,
        min_severity: Severity,
    ) -> Result<Self, NotifyError> {
        Endpoint::new(name, url, policy, min_severity).map(SlackNotifier)
    }
}

#[async_trait]
impl Notifier for SlackNotifier {
    async fn notify(&self, n: &Notification) -> Result<(), NotifyError> {
        let body = payload(n);
        self.0.post(n, |req| Ok(req.json(&body))).await
    }
}

/// The Slack message for a notification.
pub fn payload(n: &Notification) -> Value {
    let (emoji, sev) = match n.severity {
        Severity::Info => (":information_source:", "info"),
        Severity::Warning => (":warning:", "warning"),
        Severity::Critical => (":rotating_light:", "critical"),
    };
    let mut blocks = vec![json!({
        "type": "header",
        "text": { "type": "plain_text", "text": truncate(&n.title, 150), "emoji": true }
    })];
    if !n.text.trim().is_empty() {
        blocks.push(json!({
            "type": "section",
            "text": { "type": "mrkdwn", "text": truncate(&escape(&n.text), 3000) }
        }));
    }
    let fields: Vec<Value> = n
        .fields
        .iter()
        .map(|(k, v)| {
            json!({
                "type": "mrkdwn",
                "text": truncate(&format!("*{}*\n{}", escape(k), escape(v)), 2000)
            })
        })
        .collect();
    // Header, text and context take 3 of Slack's 50 blocks.
    for chunk in fields.chunks(10).take(47) {
        blocks.push(json!({ "type": "section", "fields": chunk }));
    }
    blocks.push(json!({
        "type": "context",
        "elements": [ { "type": "mrkdwn", "text": truncate(&format!("*{sev}* · {} · slogate", escape(&n.subject)), 3000) } ]
    }));
    json!({
        "text": truncate(&format!("{emoji} [{sev}] {}: {}", n.subject, n.title), 3000),
        "blocks": blocks,
    })
}

/// Slack's mrkdwn escaping: `&`, `<`, `>` only.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// At most `max` characters, the last one `…` when cut.
fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn message_shape_escaping_and_limits() {
        let mut fields = BTreeMap::new();
        for i in 0..12 {
            fields.insert(format!("k{i:02}"), format!("v<{i}>"));
        }
        let n = Notification {
            severity: Severity::Critical,
            subject: "checkout-availability".into(),
            title: "x".repeat(200),
            text: "a & b".into(),
            fields,
            incident: None,
        };
        let p = payload(&n);
        let blocks = p["blocks"].as_array().unwrap();
        assert_eq!(blocks[0]["type"], "header");
        assert_eq!(
            blocks[0]["text"]["text"].as_str().unwrap().chars().count(),
            150
        );
        assert_eq!(blocks[1]["text"]["text"], "a &amp; b");
        assert_eq!(blocks[2]["fields"].as_array().unwrap().len(), 10);
        assert_eq!(blocks[3]["fields"].as_array().unwrap().len(), 2);
        assert_eq!(blocks[2]["fields"][0]["text"], "*k00*\nv&lt;0&gt;");
        assert_eq!(blocks[4]["type"], "context");
        assert!(p["text"]
            .as_str()
            .unwrap()
            .starts_with(":rotating_light: [critical] checkout-availability: xxx"));
    }
}
