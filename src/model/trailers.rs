//! Commit trailers: slogate's own and `Slogate-Override`, parsed and formatted. Pure text
//! handling, shared by the guard, the git adapter and `promote`.
//!
//! # Revert commit format
//!
//! A slogate revert is one commit whose message ends with a trailer block (git's trailer
//! syntax, one `Key: value` per line after a blank line). Keys are stable and parsed by
//! [`RevertTrailers::from_trailers`]:
//!
//! | key | count | meaning |
//! | --- | --- | --- |
//! | `Slogate-Breach` | 1 | idempotency key of the breach ([`RevertRequest::breach_id`](crate::model::commit::RevertRequest::breach_id)) |
//! | `Slogate-Reverts` | 1 per commit | full sha of a reverted commit, newest first |
//! | `Slogate-Reason` | 1 | why (single line) |
//! | `Slogate-SLO` | 0..1 | the SLO id |
//! | `Slogate-Budget-Consumed` | 0..1 | budget consumed as a ratio, 3 decimals (`0.963`) |
//! | `Slogate-App-Path` | 1 | the GitOps path that was reverted |
//! | `Slogate-Known-Good` | 0..1 | the known-good commit the revert goes back to |
//! | `Slogate-Unreverted` | 0..n | (pull-request mode only) a commit that conflicted and was left in place |
//!
//! `Slogate-Reverts` carries one sha per trailer (git's convention for repeated keys);
//! the parser also accepts several space- or comma-separated shas in one value, so a
//! hand-written trailer is understood too.
//!
//! A human can mark a commit with `Slogate-Override: <reason>`; [`override_reason`] finds it.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::commit::Sha;

pub const TRAILER_BREACH: &str = "Slogate-Breach";
pub const TRAILER_REVERTS: &str = "Slogate-Reverts";
pub const TRAILER_REASON: &str = "Slogate-Reason";
pub const TRAILER_SLO: &str = "Slogate-SLO";
pub const TRAILER_BUDGET: &str = "Slogate-Budget-Consumed";
pub const TRAILER_APP_PATH: &str = "Slogate-App-Path";
pub const TRAILER_KNOWN_GOOD: &str = "Slogate-Known-Good";
pub const TRAILER_UNREVERTED: &str = "Slogate-Unreverted";
pub const TRAILER_OVERRIDE: &str = "Slogate-Override";

/// One `Key: value` trailer of a commit message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trailer {
    pub key: String,
    pub value: String,
}

impl Trailer {
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            value: value.into(),
        }
    }
}

/// Whether `key` is a valid trailer key (letters, digits and `-`).
pub fn is_trailer_key(key: &str) -> bool {
    !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// Parse the trailer block of a commit message: the last paragraph, if every line of it is
/// `Key: value` (continuation lines starting with whitespace are folded into the value).
pub fn parse_trailers(message: &str) -> Vec<Trailer> {
    let trimmed = message.trim_end();
    let last = match trimmed.rfind("\n\n") {
        Some(i) => &trimmed[i + 2..],
        None => return Vec::new(), // a subject alone has no trailers
    };
    let mut out: Vec<Trailer> = Vec::new();
    for line in last.lines() {
        if line.starts_with([' ', '\t']) {
            match out.last_mut() {
                Some(t) => {
                    t.value.push(' ');
                    t.value.push_str(line.trim());
                    continue;
                }
                None => return Vec::new(),
            }
        }
        match line.split_once(':') {
            Some((k, v)) if is_trailer_key(k.trim_end()) => {
                out.push(Trailer::new(k.trim_end(), v.trim()));
            }
            _ => return Vec::new(),
        }
    }
    out
}

/// Parse git's `%(trailers:only,unfold)` output: one `Key: value` per line.
pub fn parse_trailer_lines(text: &str) -> Vec<Trailer> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            let k = k.trim();
            is_trailer_key(k).then(|| Trailer::new(k, v.trim()))
        })
        .collect()
}

/// Values of every trailer with `key` (case-insensitive, as git compares keys).
pub fn trailer_values<'a>(trailers: &'a [Trailer], key: &str) -> Vec<&'a str> {
    trailers
        .iter()
        .filter(|t| t.key.eq_ignore_ascii_case(key))
        .map(|t| t.value.as_str())
        .collect()
}

/// Shas named by `Slogate-Reverts` trailers, in order. Accepts one sha per trailer and
/// several shas per trailer separated by spaces or commas.
pub fn reverted_shas(trailers: &[Trailer]) -> Vec<Sha> {
    trailer_values(trailers, TRAILER_REVERTS)
        .into_iter()
        .flat_map(|v| v.split([' ', ',', '\t']))
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// True when these trailers belong to a slogate revert commit.
pub fn is_slogate_revert(trailers: &[Trailer]) -> bool {
    trailers.iter().any(|t| {
        t.key.eq_ignore_ascii_case(TRAILER_REVERTS) || t.key.eq_ignore_ascii_case(TRAILER_BREACH)
    })
}

/// The reason of a `Slogate-Override` trailer, if present (the first one).
pub fn override_reason(trailers: &[Trailer]) -> Option<String> {
    trailer_values(trailers, TRAILER_OVERRIDE)
        .first()
        .map(|s| s.to_string())
}

/// The trailers of a slogate revert, parsed.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RevertTrailers {
    pub breach_id: Option<String>,
    pub reverts: Vec<Sha>,
    pub reason: Option<String>,
    pub slo_id: Option<String>,
    pub budget_consumed: Option<f64>,
    pub app_path: Option<String>,
    pub known_good: Option<Sha>,
    pub unreverted: Vec<Sha>,
}

impl RevertTrailers {
    pub fn from_trailers(trailers: &[Trailer]) -> Self {
        let first = |k: &str| trailer_values(trailers, k).first().map(|s| s.to_string());
        Self {
            breach_id: first(TRAILER_BREACH),
            reverts: reverted_shas(trailers),
            reason: first(TRAILER_REASON),
            slo_id: first(TRAILER_SLO),
            budget_consumed: first(TRAILER_BUDGET).and_then(|s| s.parse().ok()),
            app_path: first(TRAILER_APP_PATH),
            known_good: first(TRAILER_KNOWN_GOOD),
            unreverted: trailer_values(trailers, TRAILER_UNREVERTED)
                .into_iter()
                .flat_map(|v| v.split([' ', ',']))
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
        }
    }

    /// Parse the trailers of a whole commit message.
    pub fn from_message(message: &str) -> Self {
        Self::from_trailers(&parse_trailers(message))
    }
}

/// Fold a value into one trailer-safe line.
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Format trailers as the block that ends a commit message (no leading blank line).
pub fn format_trailers(trailers: &[Trailer]) -> String {
    let mut out = String::new();
    for t in trailers {
        out.push_str(&t.key);
        out.push_str(": ");
        out.push_str(&one_line(&t.value));
        out.push('\n');
    }
    out
}

impl fmt::Display for Trailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_trailer_block_and_revert_fields() {
        let msg = "slogate: revert apps/x\n\nbody text\n\n- abc subject\n\n\
                   Slogate-Breach: b-1\nSlogate-Reverts: aaa\nSlogate-Reverts: bbb ccc\n\
                   Slogate-Reason: burn\nSlogate-SLO: checkout-availability\n\
                   Slogate-Budget-Consumed: 0.963\nSlogate-App-Path: apps/x\n";
        let t = RevertTrailers::from_message(msg);
        assert_eq!(t.breach_id.as_deref(), Some("b-1"));
        assert_eq!(t.reverts, vec!["aaa", "bbb", "ccc"]);
        assert_eq!(t.slo_id.as_deref(), Some("checkout-availability"));
        assert_eq!(t.budget_consumed, Some(0.963));
        assert_eq!(t.app_path.as_deref(), Some("apps/x"));
        assert!(is_slogate_revert(&parse_trailers(msg)));
    }

    #[test]
    fn body_that_is_not_a_trailer_block_yields_nothing() {
        assert!(parse_trailers("subject only").is_empty());
        assert!(parse_trailers("subject\n\nplain prose here\nSlogate-Reverts: x").is_empty());
        assert!(parse_trailers("Slogate-Reverts: x").is_empty());
    }

    #[test]
    fn override_is_detected_case_insensitively() {
        let t = parse_trailers("fix\n\nslogate-override: known flaky canary\n");
        assert_eq!(override_reason(&t).as_deref(), Some("known flaky canary"));
        assert!(!is_slogate_revert(&t));
    }

    #[test]
    fn format_folds_newlines() {
        let s = format_trailers(&[Trailer::new("Slogate-Reason", "a\nb  c")]);
        assert_eq!(s, "Slogate-Reason: a b c\n");
    }
}
