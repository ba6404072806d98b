//! Alertmanager's webhook payload, version 4, checked field by field.
//!
//! The shape, as Alertmanager (`notify/webhook`) sends it:
//!
//! ```json
//! { "version": "4", "groupKey": "…", "truncatedAlerts": 0, "status": "firing|resolved",
//!   "receiver": "…", "groupLabels": {…}, "commonLabels": {…}, "commonAnnotations": {…},
//!   "externalURL": "…",
//!   "alerts": [ { "status": "firing|resolved", "labels": {…}, "annotations": {…},
//!                 "startsAt": "RFC 3339", "endsAt": "RFC 3339", "generatorURL": "…",
//!                 "fingerprint": "hex" } ] }
//! ```
//!
//! The body is decoded into a `serde_json::Value` first and then walked, so that an error
//! names the exact field (`alerts[2].startsAt: expected an RFC 3339 time, found the number
//! 12`). Required: `version` (`"4"`), `alerts`, and per alert `status`, `labels` (strings)
//! and `startsAt`. Optional fields are checked when present; unknown fields are ignored, so
//! a newer Alertmanager that adds fields still gets through.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Firing or resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    Firing,
    Resolved,
}

impl AlertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Firing => "firing",
            AlertStatus::Resolved => "resolved",
        }
    }
}

/// The parts of a notification slogate uses.
#[derive(Debug, Clone, PartialEq)]
pub struct Payload {
    pub receiver: Option<String>,
    pub group_key: Option<String>,
    /// Alerts Alertmanager left out because of the receiver's `max_alerts`.
    pub truncated_alerts: u64,
    pub alerts: Vec<Alert>,
}

/// One alert.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub status: AlertStatus,
    pub labels: BTreeMap<String, String>,
    pub starts_at: DateTime<Utc>,
    /// `None` for Alertmanager's zero time (`0001-01-01T00:00:00Z`, a firing alert).
    pub ends_at: Option<DateTime<Utc>>,
    pub fingerprint: Option<String>,
}

/// What was wrong with a payload, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", if field.is_empty() { String::new() } else { format!("{field}: ") })]
pub struct PayloadError {
    /// Path of the offending field (`alerts[0].labels`), empty for the whole body.
    pub field: String,
    pub message: String,
}

fn err(field: impl Into<String>, message: impl Into<String>) -> PayloadError {
    PayloadError {
        field: field.into(),
        message: message.into(),
    }
}

/// A short description of a JSON value for error messages.
fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => {
            let short: String = s.chars().take(40).collect();
            let ellipsis = if short.len() < s.len() { "…" } else { "" };
            format!("the string {:?}{ellipsis}", short)
        }
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

fn expected(field: &str, what: &str, found: &Value) -> PayloadError {
    err(field, format!("expected {what}, found {}", describe(found)))
}

/// Decode and check a request body.
pub fn parse(body: &[u8]) -> Result<Payload, PayloadError> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| err("", format!("malformed JSON: {e}")))?;
    let Value::Object(top) = &v else {
        return Err(expected("", "a JSON object", &v));
    };
    match top.get("version") {
        None => return Err(err("version", "missing; expected \"4\"")),
        Some(Value::String(s)) if s == "4" => {}
        Some(other) => {
            return Err(expected(
                "version",
                "\"4\" (Alertmanager's webhook payload version 4)",
                other,
            ))
        }
    }
    opt_status(top, "status", "status")?;
    let receiver = opt_string(top, "receiver", "receiver")?;
    let group_key = opt_string(top, "groupKey", "groupKey")?;
    opt_string(top, "externalURL", "externalURL")?;
    for k in ["groupLabels", "commonLabels", "commonAnnotations"] {
        if let Some(v) = top.get(k) {
            string_map(v, k)?;
        }
    }
    let truncated_alerts = match top.get("truncatedAlerts") {
        None | Some(Value::Null) => 0,
        Some(v) => v
            .as_u64()
            .ok_or_else(|| expected("truncatedAlerts", "a non-negative integer", v))?,
    };
    let alerts = match top.get("alerts") {
        None => return Err(err("alerts", "missing; expected an array of alerts")),
        Some(Value::Array(a)) => a,
        Some(other) => return Err(expected("alerts", "an array of alerts", other)),
    };
    let alerts = alerts
        .iter()
        .enumerate()
        .map(|(i, a)| alert(a, &format!("alerts[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Payload {
        receiver,
        group_key,
        truncated_alerts,
        alerts,
    })
}

fn alert(v: &Value, path: &str) -> Result<Alert, PayloadError> {
    let Value::Object(a) = v else {
        return Err(expected(path, "an alert object", v));
    };
    let f = |k: &str| format!("{path}.{k}");
    let status = opt_status(a, "status", &f("status"))?
        .ok_or_else(|| err(f("status"), "missing; expected \"firing\" or \"resolved\""))?;
    let labels = match a.get("labels") {
        Some(v) => string_map(v, &f("labels"))?,
        None => return Err(err(f("labels"), "missing; expected an object of strings")),
    };
    if let Some(v) = a.get("annotations") {
        string_map(v, &f("annotations"))?;
    }
    let starts_at = match a.get("startsAt") {
        Some(v) => time(v, &f("startsAt"))?,
        None => return Err(err(f("startsAt"), "missing; expected an RFC 3339 time")),
    };
    let ends_at = match a.get("endsAt") {
        None | Some(Value::Null) => None,
        Some(v) => Some(time(v, &f("endsAt"))?).filter(|t| t.timestamp() > 0),
    };
    opt_string(a, "generatorURL", &f("generatorURL"))?;
    let fingerprint = opt_string(a, "fingerprint", &f("fingerprint"))?.filter(|s| !s.is_empty());
    Ok(Alert {
        status,
        labels,
        starts_at,
        ends_at,
        fingerprint,
    })
}

fn opt_string(
    m: &Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<String>, PayloadError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(expected(path, "a string", other)),
    }
}

fn opt_status(
    m: &Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<AlertStatus>, PayloadError> {
    match m.get(key) {
        None => Ok(None),
        Some(Value::String(s)) if s == "firing" => Ok(Some(AlertStatus::Firing)),
        Some(Value::String(s)) if s == "resolved" => Ok(Some(AlertStatus::Resolved)),
        Some(other) => Err(expected(path, "\"firing\" or \"resolved\"", other)),
    }
}

fn string_map(v: &Value, path: &str) -> Result<BTreeMap<String, String>, PayloadError> {
    let Value::Object(m) = v else {
        return Err(expected(path, "an object of strings", v));
    };
    m.iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k.clone(), s.clone())),
            other => Err(expected(&format!("{path}.{k}"), "a string", other)),
        })
        .collect()
}

fn time(v: &Value, path: &str) -> Result<DateTime<Utc>, PayloadError> {
    let Value::String(s) = v else {
        return Err(expected(path, "an RFC 3339 time", v));
    };
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| expected(path, "an RFC 3339 time", v))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIRING: &str = include_str!("../../../tests/fixtures/alertmanager/firing-sloth-id.json");
    const RESOLVED: &str =
        include_str!("../../../tests/fixtures/alertmanager/resolved-sloth-id.json");
    const MIXED: &str =
        include_str!("../../../tests/fixtures/alertmanager/firing-service-slo-and-unrelated.json");

    #[test]
    fn parses_captured_alertmanager_payloads() {
        let p = parse(FIRING.as_bytes()).unwrap();
        assert_eq!(p.receiver.as_deref(), Some("slogate"));
        assert_eq!(p.truncated_alerts, 0);
        assert_eq!(p.alerts.len(), 1);
        let a = &p.alerts[0];
        assert_eq!(a.status, AlertStatus::Firing);
        assert_eq!(a.labels["sloth_id"], "checkout-availability");
        assert_eq!(a.fingerprint.as_deref(), Some("bdef0648ce50a622"));
        assert_eq!(a.ends_at, None, "the zero time means not ended");

        let r = parse(RESOLVED.as_bytes()).unwrap();
        assert_eq!(r.alerts[0].status, AlertStatus::Resolved);
        assert_eq!(r.alerts[0].starts_at, a.starts_at);
        assert!(r.alerts[0].ends_at.is_some());

        assert_eq!(parse(MIXED.as_bytes()).unwrap().alerts.len(), 2);
    }

    fn with(mutate: impl FnOnce(&mut Value)) -> Result<Payload, PayloadError> {
        let mut v: Value = serde_json::from_str(FIRING).unwrap();
        mutate(&mut v);
        parse(serde_json::to_string(&v).unwrap().as_bytes())
    }

    #[test]
    fn errors_name_the_field() {
        let e = parse(b"{not json").unwrap_err();
        assert!(
            e.field.is_empty() && e.message.contains("malformed JSON"),
            "{e}"
        );
        assert_eq!(
            parse(b"[]").unwrap_err().message,
            "expected a JSON object, found an array"
        );
        type Mutation = Box<dyn FnOnce(&mut Value)>;
        let cases: Vec<(Mutation, &str, &str)> = vec![
            (Box::new(|v| v["version"] = "3".into()), "version", "\"3\""),
            (Box::new(|v| v["version"] = 4.into()), "version", "number 4"),
            (
                Box::new(|v| drop(v.as_object_mut().unwrap().remove("version"))),
                "version",
                "missing",
            ),
            (Box::new(|v| v["alerts"] = "x".into()), "alerts", "array"),
            (
                Box::new(|v| v["alerts"][0]["startsAt"] = 12.into()),
                "alerts[0].startsAt",
                "number 12",
            ),
            (
                Box::new(|v| v["alerts"][0]["startsAt"] = "yesterday".into()),
                "alerts[0].startsAt",
                "RFC 3339",
            ),
            (
                Box::new(|v| v["alerts"][0]["status"] = "pending".into()),
                "alerts[0].status",
                "\"pending\"",
            ),
            (
                Box::new(|v| v["alerts"][0]["labels"]["sloth_id"] = 1.into()),
                "alerts[0].labels.sloth_id",
                "a string",
            ),
            (
                Box::new(|v| drop(v["alerts"][0].as_object_mut().unwrap().remove("labels"))),
                "alerts[0].labels",
                "missing",
            ),
            (
                Box::new(|v| v["alerts"][0]["fingerprint"] = true.into()),
                "alerts[0].fingerprint",
                "boolean",
            ),
            (
                Box::new(|v| v["truncatedAlerts"] = (-1).into()),
                "truncatedAlerts",
                "non-negative",
            ),
            (
                Box::new(|v| v["commonLabels"] = Value::Array(vec![])),
                "commonLabels",
                "object",
            ),
        ];
        for (m, field, needle) in cases {
            let e = with(m).unwrap_err();
            assert_eq!(e.field, field, "{e}");
            assert!(e.to_string().contains(needle), "{e}");
            assert!(e.to_string().starts_with(field), "{e}");
        }
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let p = with(|v| v["somethingNew"] = Value::Bool(true)).unwrap();
        assert_eq!(p.alerts.len(), 1);
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = "[".repeat(100_000);
        assert!(parse(deep.as_bytes()).is_err());
        let deep = format!(
            "{{\"version\":\"4\",\"alerts\":[{{\"labels\":{}}}]}}",
            "[".repeat(5000)
        );
        assert!(parse(deep.as_bytes()).is_err());
    }
}
