//! Path-aware access to untyped YAML values.
//!
//! Every spec format is read from a [`Value`] (see [`crate::model::yaml`]) by hand instead of through
//! `#[derive(Deserialize)]`: that way each problem is reported with its exact field path
//! (`slos[1].objective`), every problem of a document is reported (not just the first), unknown
//! fields become warnings, and no input can make the parser panic.

use std::collections::BTreeMap;
use std::path::Path;

use crate::model::yaml::{Mapping, Value};

use super::{Diagnostic, Severity};
use crate::slo::suggest::closest;

/// Collects the diagnostics of one YAML document.
pub(crate) struct DocCtx<'a> {
    pub file: &'a Path,
    pub doc: usize,
    pub diags: Vec<Diagnostic>,
}

impl<'a> DocCtx<'a> {
    pub fn new(file: &'a Path, doc: usize) -> Self {
        DocCtx {
            file,
            doc,
            diags: Vec::new(),
        }
    }

    fn push(&mut self, severity: Severity, field: &str, message: String) {
        self.diags.push(Diagnostic {
            severity,
            file: self.file.to_path_buf(),
            doc_index: Some(self.doc),
            field: field.to_string(),
            message,
        });
    }

    pub fn error(&mut self, field: &str, message: impl Into<String>) {
        self.push(Severity::Error, field, message.into());
    }

    pub fn warn(&mut self, field: &str, message: impl Into<String>) {
        self.push(Severity::Warning, field, message.into());
    }

    /// Number of errors so far; compare before and after parsing a part to know whether that
    /// part was valid.
    pub fn error_count(&self) -> usize {
        self.diags
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count()
    }
}

/// `a.b`, or `b` at the root.
pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// `a[3]`.
pub(crate) fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// A short human description of a value, for "found …" in messages.
pub(crate) fn describe(v: &Value) -> String {
    match v {
        Value::Null => "nothing (null)".to_string(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string {}", quote(s)),
        Value::Sequence(_) => "a list".to_string(),
        Value::Mapping(_) => "a mapping".to_string(),
    }
}

/// A value for "found …": strings quoted, other values described.
pub(crate) fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => quote(s),
        other => describe(other),
    }
}

/// Quote a user string for a message, shortened to a readable length.
pub(crate) fn quote(s: &str) -> String {
    const MAX: usize = 80;
    if s.chars().count() > MAX {
        let short: String = s.chars().take(MAX).collect();
        format!("{:?}…", short)
    } else {
        format!("{s:?}")
    }
}

/// A scalar as text the way Sloth's YAML library reads it into a string field: strings as
/// they are, numbers and booleans as written. `None` for null and for non-scalars.
pub(crate) fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A YAML mapping together with its field path.
pub(crate) struct Map<'v> {
    pub m: &'v Mapping,
    pub path: String,
}

impl<'v> Map<'v> {
    /// The document root, which must be a mapping.
    pub fn root(v: &'v Value) -> Option<Map<'v>> {
        match v {
            Value::Mapping(m) => Some(Map {
                m,
                path: String::new(),
            }),
            _ => None,
        }
    }

    /// A list item or other value that must be a mapping; anything else is an error.
    pub fn node(ctx: &mut DocCtx, v: &'v Value, path: &str) -> Option<Map<'v>> {
        match v {
            Value::Mapping(m) => Some(Map {
                m,
                path: path.to_string(),
            }),
            other => {
                ctx.error(
                    path,
                    format!("expected a mapping, found {}", describe(other)),
                );
                None
            }
        }
    }

    /// Field path of one key of this mapping.
    pub fn field(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// A key's value; null counts as absent.
    pub fn get(&self, key: &str) -> Option<&'v Value> {
        match self.m.get(key) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        }
    }

    pub fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Warn about keys that are neither in `known` nor in `ignored`; warn that `ignored`
    /// keys (known to the format but not used by slogate) have no effect.
    pub fn check_keys(&self, ctx: &mut DocCtx, known: &[&str], ignored: &[(&str, &str)]) {
        for (k, v) in self.m {
            let Some(key) = k.as_str() else {
                ctx.warn(
                    &self.path,
                    format!(
                        "unexpected key {} (keys must be strings); it is ignored",
                        describe(k)
                    ),
                );
                continue;
            };
            if known.contains(&key) {
                continue;
            }
            if let Some((_, why)) = ignored.iter().find(|(name, _)| *name == key) {
                if !v.is_null() {
                    ctx.warn(&self.field(key), format!("ignored: {why}"));
                }
                continue;
            }
            let hint = closest(key, known)
                .map(|s| format!(" (did you mean {s:?}?)"))
                .unwrap_or_default();
            ctx.warn(
                &self.field(key),
                format!(
                    "unknown field {key:?}{hint}; it is ignored. Known fields here: {}",
                    known.join(", ")
                ),
            );
        }
    }

    /// A nested mapping. Absent or null gives `None` silently; any other type is an error.
    pub fn map(&self, ctx: &mut DocCtx, key: &str) -> Option<Map<'v>> {
        let v = self.get(key)?;
        match v {
            Value::Mapping(m) => Some(Map {
                m,
                path: self.field(key),
            }),
            other => {
                ctx.error(
                    &self.field(key),
                    format!("expected a mapping, found {}", describe(other)),
                );
                None
            }
        }
    }

    /// A nested list. Absent or null gives `None` silently; any other type is an error.
    pub fn seq(&self, ctx: &mut DocCtx, key: &str) -> Option<(&'v [Value], String)> {
        let v = self.get(key)?;
        match v {
            Value::Sequence(s) => Some((s.as_slice(), self.field(key))),
            other => {
                ctx.error(
                    &self.field(key),
                    format!("expected a list, found {}", describe(other)),
                );
                None
            }
        }
    }

    /// An optional string field; numbers and booleans are read as their text (as Sloth does).
    pub fn opt_str(&self, ctx: &mut DocCtx, key: &str) -> Option<String> {
        let v = self.get(key)?;
        match scalar_text(v) {
            Some(s) => Some(s),
            None => {
                ctx.error(
                    &self.field(key),
                    format!("expected a string, found {}", describe(v)),
                );
                None
            }
        }
    }

    /// A required string field; missing, null or empty is an error naming `what`.
    pub fn req_str(&self, ctx: &mut DocCtx, key: &str, what: &str) -> Option<String> {
        if !self.has(key) {
            ctx.error(&self.field(key), format!("missing: expected {what}"));
            return None;
        }
        let s = self.opt_str(ctx, key)?;
        if s.trim().is_empty() {
            ctx.error(&self.field(key), format!("empty: expected {what}"));
            return None;
        }
        Some(s)
    }

    /// An optional number. Strings are an error, even when they look like numbers.
    pub fn opt_f64(&self, ctx: &mut DocCtx, key: &str) -> Option<f64> {
        let v = self.get(key)?;
        match v {
            Value::Number(n) => match n.as_f64() {
                Some(f) => Some(f),
                None => {
                    ctx.error(&self.field(key), format!("expected a number, found {n}"));
                    None
                }
            },
            Value::String(s) if s.trim().parse::<f64>().is_ok() => {
                ctx.error(
                    &self.field(key),
                    format!(
                        "expected a number, found the string {}; remove the quotes",
                        quote(s)
                    ),
                );
                None
            }
            other => {
                ctx.error(
                    &self.field(key),
                    format!("expected a number, found {}", describe(other)),
                );
                None
            }
        }
    }

    /// An optional boolean; absent is `default`.
    pub fn opt_bool(&self, ctx: &mut DocCtx, key: &str, default: bool) -> bool {
        match self.get(key) {
            None => default,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                ctx.error(
                    &self.field(key),
                    format!("expected true or false, found {}", describe(other)),
                );
                default
            }
        }
    }

    /// A string-to-string mapping (labels, annotations). Scalar values are read as text;
    /// other values and non-string keys are errors.
    pub fn string_map(&self, ctx: &mut DocCtx, key: &str) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let Some(m) = self.map(ctx, key) else {
            return out;
        };
        for (k, v) in m.m {
            let Some(name) = scalar_text(k) else {
                ctx.error(
                    &m.path,
                    format!("expected string keys, found {}", describe(k)),
                );
                continue;
            };
            let field = m.field(&name);
            match v {
                Value::Null => {
                    out.insert(name, String::new());
                }
                other => match scalar_text(other) {
                    Some(s) => {
                        out.insert(name, s);
                    }
                    None => ctx.error(
                        &field,
                        format!("expected a string value, found {}", describe(other)),
                    ),
                },
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_values() {
        assert_eq!(describe(&Value::Null), "nothing (null)");
        assert_eq!(describe(&Value::String("x".into())), "the string \"x\"");
        let long = "a".repeat(200);
        assert!(quote(&long).ends_with('…'));
    }
}
