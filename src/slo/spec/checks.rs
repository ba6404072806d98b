//! Validation rules shared by every format: Sloth's name rule, Prometheus label and metric
//! names, SLI query checks, objectives and burn-rate feasibility.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use regex::Regex;

use super::yaml::{join, quote, DocCtx};
use crate::slo::duration::PromDuration;
use crate::slo::windows::AlertWindows;
use crate::slo::{Alerting, Slo};

/// Sloth's rule for service, SLO and id names: start and end with an alphanumeric, with only
/// alphanumerics, `-`, `_` and `.` in between (so at least two characters).
pub(crate) const NAME_RULE: &str =
    "a name that starts and ends with a letter or digit and contains only letters, digits, '-', '_' and '.' (at least 2 characters)";

fn name_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"^[A-Za-z0-9][-A-Za-z0-9_.]*[A-Za-z0-9]$").expect("static regex"))
}

fn label_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"^[a-zA-Z_][a-zA-Z0-9_]*$").expect("static regex"))
}

fn metric_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$").expect("static regex"))
}

fn window_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"\{\{ *\.window *\}\}").expect("static regex"))
}

pub(crate) fn is_valid_name(s: &str) -> bool {
    name_re().is_match(s)
}

pub(crate) fn is_valid_label_name(s: &str) -> bool {
    label_re().is_match(s) && s != "__name__"
}

pub(crate) fn is_valid_metric_name(s: &str) -> bool {
    metric_re().is_match(s)
}

/// Labels that slogate sets itself on every generated rule.
const RESERVED_LABELS: [&str; 5] = [
    "sloth_id",
    "sloth_service",
    "sloth_slo",
    "sloth_window",
    "sloth_severity",
];

/// Check a name against Sloth's rule (service, SLO name).
pub(crate) fn check_name(ctx: &mut DocCtx, field: &str, what: &str, value: &str) -> bool {
    if is_valid_name(value) {
        return true;
    }
    ctx.error(
        field,
        format!("invalid {what} {}: expected {NAME_RULE}", quote(value)),
    );
    false
}

/// Check Prometheus label names and values (Sloth: valid label name, not `__name__`, value
/// not empty).
pub(crate) fn check_labels(ctx: &mut DocCtx, field: &str, labels: &BTreeMap<String, String>) {
    for (k, v) in labels {
        let f = join(field, k);
        if !is_valid_label_name(k) {
            ctx.error(
                &f,
                format!(
                    "invalid Prometheus label name {}: expected [a-zA-Z_][a-zA-Z0-9_]* (and not __name__)",
                    quote(k)
                ),
            );
        } else if v.is_empty() {
            ctx.error(&f, "empty label value: expected a non-empty string");
        } else if RESERVED_LABELS.contains(&k.as_str()) {
            ctx.warn(
                &f,
                format!("label {k} is set by slogate on every generated rule; this value is overwritten"),
            );
        }
    }
}

/// Check annotation names (Prometheus label names) and values (not empty).
pub(crate) fn check_annotations(
    ctx: &mut DocCtx,
    field: &str,
    annotations: &BTreeMap<String, String>,
) {
    for (k, v) in annotations {
        let f = join(field, k);
        if !label_re().is_match(k) {
            ctx.error(
                &f,
                format!(
                    "invalid annotation name {}: expected [a-zA-Z_][a-zA-Z0-9_]*",
                    quote(k)
                ),
            );
        } else if v.is_empty() {
            ctx.error(&f, "empty annotation value: expected a non-empty string");
        }
    }
}

/// Check an alerting block: the alert name must be a valid Prometheus metric name, and
/// labels/annotations must be valid. Sloth requires a name while an alert is enabled;
/// slogate has a default name, so a missing one is only a warning.
/// `names` are the field names of (name, labels, annotations, page, ticket) in this format.
pub(crate) fn check_alerting(ctx: &mut DocCtx, field: &str, a: &Alerting, names: [&str; 5]) {
    let [name, labels, annotations, page, ticket] = names;
    let any_enabled = !a.page.disable || !a.ticket.disable;
    if a.name.is_empty() {
        if any_enabled {
            ctx.warn(
                &join(field, name),
                format!(
                    "missing: slogate names the alerts with its default name, but Sloth rejects an enabled page or ticket alert without a name; set {name} or disable both with {page}.disable and {ticket}.disable"
                ),
            );
        }
    } else if !is_valid_metric_name(&a.name) {
        ctx.error(
            &join(field, name),
            format!(
                "invalid alert name {}: expected a Prometheus metric name [a-zA-Z_:][a-zA-Z0-9_:]*",
                quote(&a.name)
            ),
        );
    }
    check_labels(ctx, &join(field, labels), &a.labels);
    check_annotations(ctx, &join(field, annotations), &a.annotations);
    for (key, spec) in [(page, &a.page), (ticket, &a.ticket)] {
        let f = join(field, key);
        check_labels(ctx, &join(&f, labels), &spec.labels);
        check_annotations(ctx, &join(&f, annotations), &spec.annotations);
    }
}

/// What [`check_query`] should require of the `{{.window}}` placeholder.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum WindowRule {
    /// The query must contain `{{.window}}` (error otherwise).
    Required,
    /// Only warn when it is missing (the caller checks the combined query).
    Warn,
}

/// Check one SLI query: not empty, `{{.window}}` present, no other template, balanced
/// brackets. This is a light syntax check, not a full PromQL parser.
pub(crate) fn check_query(ctx: &mut DocCtx, field: &str, query: &str, window: WindowRule) -> bool {
    if query.trim().is_empty() {
        ctx.error(field, "empty query: expected a PromQL expression");
        return false;
    }
    let mut ok = true;
    if !has_window(query) {
        let msg = "the query does not use the {{.window}} placeholder: Sloth (and slogate) render it once per alert window, e.g. rate(http_requests_total[{{.window}}])";
        match window {
            WindowRule::Required => {
                ctx.error(field, msg);
                ok = false;
            }
            WindowRule::Warn => ctx.warn(field, msg),
        }
    }
    let expanded = window_re().replace_all(query, "1m");
    if let Some(pos) = expanded.find("{{") {
        let snippet: String = expanded[pos..].chars().take(30).collect();
        ctx.error(
            field,
            format!(
                "unsupported template {}: the only template variable is {{{{.window}}}}",
                quote(&snippet)
            ),
        );
        ok = false;
    }
    if let Err(msg) = check_brackets(&expanded) {
        ctx.error(field, format!("not a valid PromQL expression: {msg}"));
        ok = false;
    }
    ok
}

pub(crate) fn has_window(query: &str) -> bool {
    window_re().is_match(query)
}

/// Brackets balance outside string literals and comments.
fn check_brackets(q: &str) -> Result<(), String> {
    let mut stack: Vec<char> = Vec::new();
    let mut chars = q.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' | '`' => {
                let quote_char = c;
                let mut closed = false;
                while let Some(d) = chars.next() {
                    if d == '\\' && quote_char != '`' {
                        chars.next();
                    } else if d == quote_char {
                        closed = true;
                        break;
                    }
                }
                if !closed {
                    return Err(format!(
                        "unterminated string literal starting with {quote_char}"
                    ));
                }
            }
            '#' => {
                for d in chars.by_ref() {
                    if d == '\n' {
                        break;
                    }
                }
            }
            '(' | '[' | '{' => stack.push(c),
            ')' | ']' | '}' => {
                let open = match c {
                    ')' => '(',
                    ']' => '[',
                    _ => '{',
                };
                match stack.pop() {
                    Some(o) if o == open => {}
                    Some(o) => return Err(format!("{c:?} closes {o:?}")),
                    None => return Err(format!("unmatched {c:?}")),
                }
            }
            _ => {}
        }
    }
    match stack.last() {
        Some(o) => Err(format!("unclosed {o:?}")),
        None => Ok(()),
    }
}

/// Objective as a percentage must be in (0, 100].
pub(crate) fn check_objective_percent(ctx: &mut DocCtx, field: &str, objective: f64) -> bool {
    if objective.is_finite() && objective > 0.0 && objective <= 100.0 {
        if objective == 100.0 {
            ctx.warn(
                field,
                "objective 100% leaves no error budget: any error consumes all of it",
            );
        }
        return true;
    }
    ctx.error(
        field,
        format!(
            "objective {}: expected a percentage in (0, 100], e.g. 99.9",
            fmt_num(objective)
        ),
    );
    false
}

/// Objective as an OpenSLO ratio must be in (0, 1].
pub(crate) fn check_target_ratio(ctx: &mut DocCtx, field: &str, target: f64) -> bool {
    if target.is_finite() && target > 0.0 && target <= 1.0 {
        if target == 1.0 {
            ctx.warn(
                field,
                "target 1 leaves no error budget: any error consumes all of it",
            );
        }
        return true;
    }
    let hint = if target > 1.0 && target <= 100.0 {
        " (targetPercent takes a percentage)"
    } else {
        ""
    };
    ctx.error(
        field,
        format!(
            "target {}: expected a ratio in (0, 1], e.g. 0.999{hint}",
            fmt_num(target)
        ),
    );
    false
}

/// Convert a ratio to a percentage without float noise (0.999 → 99.9, not 99.89999…).
pub(crate) fn ratio_to_percent(r: f64) -> f64 {
    ((r * 100.0) * 1e9).round() / 1e9
}

/// Warn about enabled burn-rate alerts that can never fire because factor × (1 − objective)
/// exceeds 1 (an error ratio cannot exceed 1). Uses Sloth's default window pairs at the SLO's
/// period (30d when the spec has none).
pub(crate) fn check_burn_rates(ctx: &mut DocCtx, objective_field: &str, slo: &Slo) {
    let period = slo.period.unwrap_or(PromDuration::from_days(30));
    let budget = slo.error_budget_ratio();
    if budget <= 0.0 {
        return;
    }
    let pairs = AlertWindows::default_30d().pairs();
    let names = ["page", "page", "ticket", "ticket"];
    let speeds = ["quick", "slow", "quick", "slow"];
    for (i, pair) in pairs.iter().enumerate() {
        let enabled = if names[i] == "page" {
            !slo.alerting.page.disable
        } else {
            !slo.alerting.ticket.disable
        };
        if !enabled {
            continue;
        }
        let factor = pair.burn_rate_factor(period);
        let threshold = factor * budget;
        if threshold > 1.0 {
            ctx.warn(
                objective_field,
                format!(
                    "the {} alert's {} window pair ({}/{}, burn rate {}×) can never fire: with objective {}% over {} it needs an error ratio above {} × {} = {}, and an error ratio is at most 1; raise the objective or disable that alert",
                    names[i],
                    speeds[i],
                    pair.short_window,
                    pair.long_window,
                    fmt_num(factor),
                    fmt_num(slo.objective_percent),
                    period,
                    fmt_num(factor),
                    fmt_num(budget),
                    fmt_num(threshold),
                ),
            );
        }
    }
}

/// A float for messages: at most 6 decimals, trailing zeros trimmed.
pub(crate) fn fmt_num(x: f64) -> String {
    if !x.is_finite() {
        return x.to_string();
    }
    let s = format!("{x:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sloth_name_rule() {
        for ok in ["myservice", "a1", "k8s-apiserver", "x.y_z-0", "A9"] {
            assert!(is_valid_name(ok), "{ok}");
        }
        for bad in ["", "a", "-a", "a-", "a b", "a/b", "ñandú", "a_"] {
            assert!(!is_valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn label_and_metric_names() {
        assert!(is_valid_label_name("routing_key"));
        assert!(!is_valid_label_name("__name__"));
        assert!(!is_valid_label_name("1abc"));
        assert!(!is_valid_label_name("app.kubernetes.io/name"));
        assert!(is_valid_metric_name("MyServiceHighErrorRate"));
        assert!(is_valid_metric_name("a:b"));
        assert!(!is_valid_metric_name("My-Alert"));
    }

    #[test]
    fn bracket_check() {
        assert!(check_brackets(r#"sum(rate(x{code=~"(5..|429)"}[1m]))"#).is_ok());
        assert!(check_brackets(r#"sum(rate(x{a="}"}[1m]))"#).is_ok());
        assert!(check_brackets("sum(rate(x[1m])").is_err());
        assert!(check_brackets("sum(rate(x[1m)))").is_err());
        assert!(check_brackets("x{a=\"b}").is_err());
        assert!(check_brackets("sum(x) # comment (").is_ok());
    }

    #[test]
    fn numbers_for_messages() {
        assert_eq!(fmt_num(14.4), "14.4");
        assert_eq!(fmt_num(14.4 * (1.0 - 0.9)), "1.44");
        assert_eq!(fmt_num(100.0), "100");
        assert_eq!(ratio_to_percent(0.999), 99.9);
        assert_eq!(ratio_to_percent(0.99), 99.0);
        assert_eq!(ratio_to_percent(0.9999), 99.99);
    }
}
