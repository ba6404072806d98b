//! Alertmanager's webhook payload through `runtime::webhook::payload::parse`, the decoder
//! of the webhook route. Must not panic on any body.
//!
//! Invariants: the typed fast path (`payload::fast`) either declines a body or decodes it
//! exactly as the field-by-field walk (`payload::walk`) does, and `parse` answers as the
//! walk; a payload that parses, written back as an Alertmanager v4 body (the fields slogate
//! keeps) and parsed again, is the same payload.
#![no_main]

use chrono::SecondsFormat;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};
use slogate::runtime::webhook::payload::{self, Payload};

/// The body Alertmanager would send for `p`.
fn body(p: &Payload) -> Value {
    let alerts: Vec<Value> = p
        .alerts
        .iter()
        .map(|a| {
            let mut v = json!({
                "status": a.status.as_str(),
                "labels": a.labels,
                "startsAt": a.starts_at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
                // Alertmanager's zero time for an alert that has not ended.
                "endsAt": a.ends_at.map_or_else(
                    || "0001-01-01T00:00:00Z".to_string(),
                    |t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true),
                ),
            });
            if let Some(f) = &a.fingerprint {
                v["fingerprint"] = json!(f);
            }
            v
        })
        .collect();
    let mut v = json!({
        "version": "4",
        "truncatedAlerts": p.truncated_alerts,
        "alerts": alerts,
    });
    if let Some(r) = &p.receiver {
        v["receiver"] = json!(r);
    }
    if let Some(g) = &p.group_key {
        v["groupKey"] = json!(g);
    }
    v
}

fuzz_target!(|data: &[u8]| {
    let walked = payload::walk(data);
    if let Some(fast) = payload::fast::parse(data) {
        assert_eq!(Ok(fast), walked, "the fast path decoded a body differently");
    }
    assert_eq!(payload::parse(data), walked, "parse differs from the walk");
    let Ok(p) = walked else {
        return;
    };
    let again = serde_json::to_vec(&body(&p)).expect("JSON values serialise");
    match payload::parse(&again) {
        Ok(q) => assert_eq!(q, p, "the payload changed through its JSON"),
        Err(e) => panic!(
            "a parsed payload written back does not parse: {e}\n{}",
            String::from_utf8_lossy(&again)
        ),
    }
});
