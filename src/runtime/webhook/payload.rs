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

pub use super::labels::Labels;

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
    pub labels: Labels,
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
///
/// A well-formed payload, the common case, is decoded straight into typed fields
/// ([`fast`]), without building a JSON tree first (the tree was a fifth of the receiver's
/// work under a flood). The typed decoder accepts a subset of what the field-by-field walk
/// accepts, with the same result; anything it refuses goes through the walk, which gives
/// the error with its field (or the payload, for what only the walk accepts).
pub fn parse(body: &[u8]) -> Result<Payload, PayloadError> {
    if let Some(p) = fast::parse(body) {
        return Ok(p);
    }
    walk(body)
}

/// The field-by-field walk over a JSON tree: the reference [`parse`] keeps, and the source
/// of every error.
pub fn walk(body: &[u8]) -> Result<Payload, PayloadError> {
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
        Some(v) => string_map(v, &f("labels"))?.into_iter().collect(),
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

/// The typed decoder of [`parse`]: `None` for anything it does not take exactly as
/// [`walk`] would. It is stricter where serde is looser than the walk: objects only (a
/// derived struct would also take an array of its fields), `null` refused where the walk
/// refuses it (a `status`, a label map), duplicate fields refused (the walk keeps the last),
/// and unknown fields refused: serde skips an unknown field's value without checking it
/// (invalid UTF-8, a lone surrogate or `1e400` in it), where the walk's JSON tree refuses
/// the body. Alertmanager sends no other fields, so its payloads all take this path.
pub mod fast {
    use std::borrow::Cow;
    use std::fmt;
    use std::marker::PhantomData;

    use chrono::{DateTime, Utc};
    use serde::de::{self, Deserializer, MapAccess, Visitor};
    use serde::Deserialize;

    use super::{Alert, AlertStatus, Labels, Payload};

    /// A field that may be absent, but is checked as a `T` when present (`null` included).
    struct Present<T>(Option<T>);

    impl<T> Default for Present<T> {
        fn default() -> Self {
            Present(None)
        }
    }

    impl<'de, T: Deserialize<'de>> Deserialize<'de> for Present<T> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            T::deserialize(d).map(|t| Present(Some(t)))
        }
    }

    /// A `T` read from a JSON object only, never from an array of its fields.
    struct ObjectOnly<T>(T);

    impl<'de, T: Deserialize<'de>> Deserialize<'de> for ObjectOnly<T> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V<T>(PhantomData<T>);
            impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
                type Value = ObjectOnly<T>;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("an object")
                }
                fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                    T::deserialize(de::value::MapAccessDeserializer::new(map)).map(ObjectOnly)
                }
            }
            d.deserialize_map(V(PhantomData))
        }
    }

    /// A JSON string, checked and not kept.
    struct AnyString;

    impl<'de> Deserialize<'de> for AnyString {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl Visitor<'_> for V {
                type Value = AnyString;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("a string")
                }
                fn visit_str<E: de::Error>(self, _: &str) -> Result<AnyString, E> {
                    Ok(AnyString)
                }
            }
            d.deserialize_str(V)
        }
    }

    /// An object of strings, checked and not kept.
    struct StringMap;

    impl<'de> Deserialize<'de> for StringMap {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = StringMap;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("an object of strings")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StringMap, A::Error> {
                    // Keys read as strings, so they are checked as the tree checks them.
                    while map.next_entry::<AnyString, AnyString>()?.is_some() {}
                    Ok(StringMap)
                }
            }
            d.deserialize_map(V)
        }
    }

    // Strings only read here are borrowed from the body when they hold no escape.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Top<'a> {
        #[serde(borrow)]
        version: Cow<'a, str>,
        #[serde(default, rename = "status")]
        _status: Present<AlertStatus>,
        #[serde(default)]
        receiver: Option<String>,
        #[serde(default, rename = "groupKey")]
        group_key: Option<String>,
        #[serde(default, rename = "externalURL")]
        _external_url: Option<AnyString>,
        #[serde(default, rename = "groupLabels")]
        _group_labels: Present<StringMap>,
        #[serde(default, rename = "commonLabels")]
        _common_labels: Present<StringMap>,
        #[serde(default, rename = "commonAnnotations")]
        _common_annotations: Present<StringMap>,
        #[serde(default, rename = "truncatedAlerts")]
        truncated_alerts: Option<u64>,
        #[serde(borrow)]
        alerts: Vec<ObjectOnly<FastAlert<'a>>>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct FastAlert<'a> {
        status: AlertStatus,
        labels: Labels,
        #[serde(default, rename = "annotations")]
        _annotations: Present<StringMap>,
        #[serde(borrow, rename = "startsAt")]
        starts_at: Cow<'a, str>,
        #[serde(default, borrow, rename = "endsAt")]
        ends_at: Option<Cow<'a, str>>,
        #[serde(default, rename = "generatorURL")]
        _generator_url: Option<AnyString>,
        #[serde(default)]
        fingerprint: Option<String>,
    }

    fn time(s: &str) -> Option<DateTime<Utc>> {
        DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The payload, when the typed decoder takes it (see the module).
    pub fn parse(body: &[u8]) -> Option<Payload> {
        // One UTF-8 check of the whole body instead of one per string (the tree refuses
        // invalid UTF-8 anywhere in a body too: inside a string or outside, where it is
        // a syntax error).
        let text = std::str::from_utf8(body).ok()?;
        let ObjectOnly(top) = serde_json::from_str::<ObjectOnly<Top>>(text).ok()?;
        if top.version != "4" {
            return None;
        }
        let alerts = top
            .alerts
            .into_iter()
            .map(|ObjectOnly(a)| {
                let ends_at = match &a.ends_at {
                    None => None,
                    Some(s) => Some(time(s)?).filter(|t| t.timestamp() > 0),
                };
                Some(Alert {
                    status: a.status,
                    labels: a.labels,
                    starts_at: time(&a.starts_at)?,
                    ends_at,
                    fingerprint: a.fingerprint.filter(|s| !s.is_empty()),
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Payload {
            receiver: top.receiver,
            group_key: top.group_key,
            truncated_alerts: top.truncated_alerts.unwrap_or(0),
            alerts,
        })
    }
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
        assert_eq!(a.labels.get("sloth_id"), Some("checkout-availability"));
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

    /// The typed decoder takes a payload only as the walk does: for every body, either it
    /// declines or the walk gives the same payload, and `parse` always answers as the walk.
    fn same_as_the_walk(body: &[u8]) -> bool {
        let walked = walk(body);
        assert_eq!(parse(body), walked, "{}", String::from_utf8_lossy(body));
        match fast::parse(body) {
            None => false,
            Some(p) => {
                assert_eq!(Ok(p), walked, "{}", String::from_utf8_lossy(body));
                true
            }
        }
    }

    #[test]
    fn the_typed_decoder_takes_only_what_the_walk_takes_and_gives_the_same() {
        for f in [FIRING, RESOLVED, MIXED] {
            assert!(
                same_as_the_walk(f.as_bytes()),
                "the fixtures take the fast path"
            );
        }
        let raw: &[&str] = &[
            r#"{"version":"4","alerts":[]}"#,
            r#"["4",null,null,null,null,null,null,null,0,[]]"#,
            r#"{"version":"4","alerts":[["firing",{"a":"b"},null,"2026-11-23T08:37:55Z"]]}"#,
            r#"{"version":"4","version":"4","alerts":[]}"#,
            r#"{"version":"4","alerts":[],"alerts":"x"}"#,
            r#"{"version":"4","status":null,"alerts":[]}"#,
            r#"{"version":"4","groupLabels":null,"alerts":[]}"#,
            r#"{"version":"4","truncatedAlerts":null,"alerts":[]}"#,
            r#"{"version":"4","truncatedAlerts":1.0,"alerts":[]}"#,
            r#"{"version":"4","truncatedAlerts":1e2,"alerts":[]}"#,
            r#"{"version":"4","truncatedAlerts":-0,"alerts":[]}"#,
            r#"{"version":"4","externalURL":null,"receiver":null,"alerts":[]}"#,
            r#"{"version":"4","unknown":{"deep":[[[[{}]]]]},"alerts":[]}"#,
            r#"{"version":"4","alerts":[{"status":"firing","labels":{"a":"b","a":"c"},"startsAt":"2026-11-23T08:37:55Z"}]}"#,
            r#"{"version":"4","alerts":[{"status":"firing","labels":{},"startsAt":"2026-11-23T08:37:55+02:00","endsAt":"0001-01-01T00:00:00Z","fingerprint":""}]}"#,
            r#"{"version":"4","alerts":[{"status":"firing","labels":{},"startsAt":"2026-11-23T08:37:55Z","endsAt":null,"generatorURL":null,"annotations":{}}]}"#,
            r#"{"version":"4","alerts":[{"status":"firing","labels":{},"startsAt":"2026-11-23T08:37:55Z","annotations":null}]}"#,
            r#"{"version":"4","alerts":[{"status":"firing","labels":{},"startsAt":"2026-11-23T08:37:55Z","status":"resolved"}]}"#,
            r#"{"version":"4","alerts":[{"status":"firing","labels":{"\u00e9":"\"x\""},"startsAt":"2026-11-23T08:37:55Z"}]}"#,
            r#"{"version":"4","alerts":[null]}"#,
            r#"{"version":"4","alerts":[{"status":"firing","labels":{},"startsAt":"2026-13-23T08:37:55Z"}]}"#,
            r#" {"version":"4","alerts":[]} "#,
            r#"{"version":"4","alerts":[]} x"#,
        ];
        for body in raw {
            same_as_the_walk(body.as_bytes());
        }
        // Found by the payload fuzz target: an unknown field's value was skipped unchecked
        // (here invalid UTF-8 in `commonLab%ls`), so the fast path took a body the walk
        // refuses. The same for a lone surrogate and an infinite number, and in a map key.
        let unchecked: &[&[u8]] = &[
            b"{\"version\":\"4\",\"commonLab%ls\":{\"a\":\"Checko\xff\xff\xff\xffailability\"},\"alerts\":[]}",
            br#"{"version":"4","unknown":"\ud800","alerts":[]}"#,
            br#"{"version":"4","unknown":1e400,"alerts":[]}"#,
            br#"{"version":"4","alerts":[{"status":"firing","labels":{},"startsAt":"2026-11-23T08:37:55Z","x":"\udc00"}]}"#,
            br#"{"version":"4","commonLabels":{"\ud800":"a"},"alerts":[]}"#,
            b"{\"version\":\"4\",\"commonAnnotations\":{\"\xff\":\"a\"},\"alerts\":[]}",
        ];
        let found: &[u8] =
            include_bytes!("../../../tests/fixtures/fuzz/payload-unknown-field-invalid-utf8.json");
        for body in unchecked.iter().chain([&found]) {
            assert!(!same_as_the_walk(body), "{}", String::from_utf8_lossy(body));
            assert!(walk(body).is_err(), "{}", String::from_utf8_lossy(body));
        }
    }

    /// The same over random edits of the captured payloads: any field of the tree replaced
    /// by a value of another kind, removed, or joined by an unknown one (seeded, 20,000).
    #[test]
    fn random_edits_decode_the_same_both_ways() {
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let values = [
            Value::Null,
            Value::Bool(true),
            serde_json::json!(0),
            serde_json::json!(-1),
            serde_json::json!(1.5),
            serde_json::json!(""),
            serde_json::json!("4"),
            serde_json::json!("firing"),
            serde_json::json!("resolved"),
            serde_json::json!("2026-11-23T08:37:55Z"),
            serde_json::json!("0001-01-01T00:00:00Z"),
            serde_json::json!([]),
            serde_json::json!({}),
            serde_json::json!({"a": "b"}),
            serde_json::json!(["firing", {}, null, "2026-11-23T08:37:55Z"]),
        ];
        fn paths(v: &Value, at: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
            out.push(at.clone());
            match v {
                Value::Object(m) => {
                    for (k, c) in m {
                        at.push(k.clone());
                        paths(c, at, out);
                        at.pop();
                    }
                }
                Value::Array(a) => {
                    for (i, c) in a.iter().enumerate() {
                        at.push(i.to_string());
                        paths(c, at, out);
                        at.pop();
                    }
                }
                _ => {}
            }
        }
        let (mut fast_taken, mut total) = (0, 0);
        for base in [FIRING, RESOLVED, MIXED] {
            let base: Value = serde_json::from_str(base).unwrap();
            let mut all = Vec::new();
            paths(&base, &mut Vec::new(), &mut all);
            for _ in 0..20_000 / 3 {
                let mut v = base.clone();
                for _ in 0..1 + next(2) {
                    let path = &all[next(all.len())];
                    let Some((last, parent)) = path.split_last() else {
                        v = values[next(values.len())].clone();
                        continue;
                    };
                    let Some(p) = parent.iter().try_fold(&mut v, |v, k| match v {
                        Value::Object(m) => m.get_mut(k),
                        Value::Array(a) => k.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
                        _ => None,
                    }) else {
                        continue;
                    };
                    match (p, next(3)) {
                        (Value::Object(m), 0) => drop(m.remove(last)),
                        (Value::Object(m), 1) => drop(m.insert(format!("{last}x"), Value::Null)),
                        (Value::Object(m), _) => {
                            drop(m.insert(last.clone(), values[next(values.len())].clone()))
                        }
                        (Value::Array(a), _) => {
                            if let Some(x) = last.parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
                                *x = values[next(values.len())].clone();
                            }
                        }
                        _ => {}
                    }
                }
                total += 1;
                if same_as_the_walk(v.to_string().as_bytes()) {
                    fast_taken += 1;
                }
            }
        }
        // Both kinds of edit are exercised: some still take the fast path, some do not.
        assert!(
            fast_taken > total / 20 && fast_taken < total,
            "{fast_taken} of {total}"
        );
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
