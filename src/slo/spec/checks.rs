//! Validation rules shared by every format: Sloth's name rule, Prometheus label and alert
//! names, SLI query checks (parsed by a real PromQL parser, the `promql-parser` crate),
//! objectives and burn-rate feasibility.
//!
//! Names follow Sloth v0.16, which validates with Prometheus 3's UTF-8 rules: a label or
//! annotation name is any non-empty string (a label name other than `__name__`), and an
//! alert name is any non-empty string. Names outside the classic `[a-zA-Z_][a-zA-Z0-9_]*`
//! (alert names: `[a-zA-Z_:][a-zA-Z0-9_:]*`) get a warning, because Prometheus 2 refuses
//! a rule file with them.

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

fn window_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"\{\{ *\.window *\}\}").expect("static regex"))
}

pub(crate) fn is_valid_name(s: &str) -> bool {
    name_re().is_match(s)
}

pub(crate) use crate::slo::rules::{is_legacy_label_name, is_valid_label_name};

/// A classic (pre-UTF-8) Prometheus metric or alert name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub(crate) fn is_legacy_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// The warning for a name Prometheus 3 accepts and Prometheus 2 refuses.
fn utf8_name_warning(what: &str, name: &str, classic: &str) -> String {
    format!(
        "{what} {} is not a classic Prometheus name ({classic}): Sloth and Prometheus 3 accept it, Prometheus 2 refuses the rule file",
        quote(name)
    )
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

/// Check Prometheus label names and values as Sloth v0.16 does: a non-empty UTF-8 name other
/// than `__name__`, a non-empty value.
pub(crate) fn check_labels<'a>(
    ctx: &mut DocCtx,
    field: &str,
    labels: impl IntoIterator<Item = (&'a String, &'a String)>,
) {
    for (k, v) in labels {
        let f = join(field, k);
        if !is_valid_label_name(k) {
            ctx.error(
                &f,
                format!(
                    "invalid Prometheus label name {}: expected a non-empty name other than __name__",
                    quote(k)
                ),
            );
        } else if v.is_empty() {
            ctx.error(&f, "empty label value: expected a non-empty string");
        } else if !is_legacy_label_name(k) {
            ctx.warn(
                &f,
                utf8_name_warning("label name", k, "[a-zA-Z_][a-zA-Z0-9_]*"),
            );
        } else if RESERVED_LABELS.contains(&k.as_str()) {
            ctx.warn(
                &f,
                format!("label {k} is set by slogate on every generated rule; this value is overwritten"),
            );
        }
    }
}

/// Check annotation names and values as Sloth v0.16 does: a non-empty UTF-8 name, a
/// non-empty value.
pub(crate) fn check_annotations<'a>(
    ctx: &mut DocCtx,
    field: &str,
    annotations: impl IntoIterator<Item = (&'a String, &'a String)>,
) {
    for (k, v) in annotations {
        let f = join(field, k);
        if k.is_empty() {
            ctx.error(&f, "empty annotation name: expected a non-empty name");
        } else if v.is_empty() {
            ctx.error(&f, "empty annotation value: expected a non-empty string");
        } else if !is_legacy_label_name(k) {
            ctx.warn(
                &f,
                utf8_name_warning("annotation name", k, "[a-zA-Z_][a-zA-Z0-9_]*"),
            );
        }
    }
}

/// Check an alerting block as Sloth v0.16 does: an enabled page or ticket alert needs a name
/// (any non-empty string), and labels/annotations must be valid.
/// `names` are the field names of (name, labels, annotations, page, ticket) in this format.
pub(crate) fn check_alerting(ctx: &mut DocCtx, field: &str, a: &Alerting, names: [&str; 5]) {
    let [name, labels, annotations, page, ticket] = names;
    let enabled: Vec<&str> = [(page, &a.page), (ticket, &a.ticket)]
        .into_iter()
        .filter(|(_, spec)| !spec.disable)
        .map(|(key, _)| key)
        .collect();
    if a.name.is_empty() {
        if !enabled.is_empty() {
            ctx.error(
                &join(field, name),
                format!(
                    "missing: an enabled alert needs a name ({} enabled); set {name}, or disable both alerts with {page}.disable and {ticket}.disable",
                    enabled.join(" and ")
                ),
            );
        }
    } else if !is_legacy_metric_name(&a.name) {
        ctx.warn(
            &join(field, name),
            utf8_name_warning("alert name", &a.name, "[a-zA-Z_:][a-zA-Z0-9_:]*"),
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

/// Check one SLI query as Sloth does: not empty, `{{.window}}` present, no other template,
/// and, with the window rendered as `1m`, a valid PromQL expression (parsed by the
/// `promql-parser` crate; the error names the position in the rendered query).
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
        return false;
    }
    if let Err(msg) = parse_promql(&expanded) {
        ctx.error(
            field,
            format!("not a valid PromQL expression (with {{{{.window}}}} as 1m): {msg}"),
        );
        ok = false;
    }
    ok
}

pub(crate) fn has_window(query: &str) -> bool {
    window_re().is_match(query)
}

/// promql-parser's parse, with a panic of the parser turned into an error. It panics on
/// some input: a number used as a duration that no `Duration` holds (`x[1e30]`, `offset
/// 1e30`, or `[2222…2]`, a prefix [`error_position`] tries) reaches `Duration::from_secs_f64`
/// (found by the `spec` fuzz target). Nothing is shared with the parse, so unwinding out of
/// it leaves no state behind.
fn promql_parse(expr: &str) -> Result<(), String> {
    if let Some(n) = unbounded_duration_number(expr) {
        return Err(format!(
            "the number {n} is used as a duration but no duration is that long"
        ));
    }
    match std::panic::catch_unwind(|| promql_parser::parser::parse(expr).map(drop)) {
        Ok(r) => r,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".into());
            Err(format!("the PromQL parser failed on it ({what})"))
        }
    }
}

/// A number in a duration's place (right after `[`, a subquery's `:` or `offset`, outside
/// string literals) that `Duration::from_secs_f64` cannot take: not finite, or 10¹⁸
/// seconds and more. promql-parser panics on those, so they are refused before it runs.
/// Durations with a unit (`5m`) are parsed by the crate without panicking.
fn unbounded_duration_number(expr: &str) -> Option<String> {
    let b = expr.as_bytes();
    let mut i = 0;
    // Whether the last token makes the next number a duration.
    let mut duration_place = false;
    while i < b.len() {
        let c = b[i];
        match c {
            b'"' | b'\'' | b'`' => {
                // A string literal: skip it (backslash escapes, except in raw strings).
                i += 1;
                while i < b.len() && b[i] != c {
                    i += if c != b'`' && b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
                duration_place = false;
            }
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'[' | b':' => {
                i += 1;
                duration_place = true;
            }
            b'0'..=b'9' | b'.' => {
                let start = i;
                while i < b.len()
                    && (b[i].is_ascii_alphanumeric()
                        || b[i] == b'.'
                        || b[i] == b'_'
                        || ((b[i] == b'+' || b[i] == b'-')
                            && matches!(b[i - 1], b'e' | b'E')
                            && !b[start..i].starts_with(b"0x")))
                {
                    i += 1;
                }
                let token = &expr[start..i];
                let value = token
                    .strip_prefix("0x")
                    .or_else(|| token.strip_prefix("0X"))
                    .map_or_else(
                        || token.parse::<f64>().ok(),
                        // Too many hex digits for a u128 is too long for a duration too.
                        |hex| {
                            (!hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit())).then(
                                || {
                                    u128::from_str_radix(hex, 16)
                                        .map_or(f64::INFINITY, |v| v as f64)
                                },
                            )
                        },
                    );
                if duration_place {
                    if let Some(v) = value {
                        if !v.is_finite() || v >= 1e18 {
                            return Some(token.to_string());
                        }
                    }
                }
                duration_place = false;
            }
            _ if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':')
                {
                    i += 1;
                }
                let word = &expr[start..i];
                if duration_place
                    && (word.eq_ignore_ascii_case("inf") || word.eq_ignore_ascii_case("nan"))
                {
                    return Some(word.to_string());
                }
                duration_place = word.eq_ignore_ascii_case("offset");
            }
            b'-' | b'+' if duration_place => i += 1,
            _ if c.is_ascii_whitespace() => i += 1,
            _ => {
                i += 1;
                duration_place = false;
            }
        }
    }
    None
}

/// Parse a PromQL expression; the error is the parser's message, one line, with the column
/// where the expression stops being valid PromQL.
pub(crate) fn parse_promql(expr: &str) -> Result<(), String> {
    // Fast path: the expression's shape (see `shape`) parses exactly when the expression
    // does, and shapes repeat across SLOs (the same query for another service or SLO), so
    // each valid shape is parsed once per process. Only a failure needs the original parse
    // (for the parser's own message).
    if let Some(shape) = shape(expr) {
        if valid_shapes().contains(&shape) {
            return Ok(());
        }
        if promql_parse(&shape).is_ok() {
            valid_shapes().insert(shape);
            return Ok(());
        }
    }
    let Err(e) = promql_parse(expr) else {
        return Ok(());
    };
    let message = e.split_whitespace().collect::<Vec<_>>().join(" ");
    let at = error_position(expr);
    let near: String = expr[at..].chars().take(30).collect();
    let column = expr[..at].chars().count() + 1;
    Err(if near.trim().is_empty() {
        format!("{message}: the expression ends too early (column {column})")
    } else {
        format!(
            "{message} at column {column}, near {}",
            quote(near.trim_end())
        )
    })
}

/// The shapes known to parse, for [`parse_promql`]: a memo of a pure function (the parse
/// verdict of a text), bounded, shared by the loader's threads.
struct ValidShapes(std::sync::Mutex<std::collections::HashSet<String>>);

impl ValidShapes {
    fn set(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
        // A panic while holding the lock cannot leave the set half-changed (insert and
        // clear complete or do nothing): the set is still a set of valid shapes.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
    fn contains(&self, shape: &str) -> bool {
        self.set().contains(shape)
    }
    fn insert(&self, shape: String) {
        let mut set = self.set();
        if set.len() >= 16_384 && !set.contains(&shape) {
            set.clear();
        }
        set.insert(shape);
    }
}

fn valid_shapes() -> &'static ValidShapes {
    static SHAPES: OnceLock<ValidShapes> = OnceLock::new();
    SHAPES.get_or_init(|| ValidShapes(Default::default()))
}

/// Which matcher operator a string follows.
#[derive(Clone, Copy)]
enum Op {
    /// `=~` or `!~`.
    Regex,
    /// `=` or `!=`.
    Equal,
}

/// `expr` with its matchers' values reduced to what the parser's verdict depends on, or
/// `None` when this scanner cannot vouch for the lexer's reading (an unterminated string,
/// an operator the lexer would read otherwise). Inside braces:
/// - every regex matcher (`=~"…"`, `!~"…"`) whose regex is valid becomes an equality
///   matcher (`="…"`, `!="…"`) whose value is `""` when that regex matches the empty string
///   and `"x"` otherwise;
/// - every equality matcher's non-empty value becomes `"x"`.
///
/// Why: promql-parser compiles every matcher's regex while parsing, and compiling even
/// `"5.."` (a Unicode `.`) costs far more than parsing the rest: 10,000 SLOs with a
/// `code=~"5.."` matcher spent about 70% of spec loading there. Real specs repeat a few
/// regexes, so each distinct one is compiled once per process (as promql-parser does,
/// anchored `^(?:…)$`), and the same query for another service or SLO has the same shape,
/// which [`parse_promql`] parses once. Validity and "matches the empty string" are all the
/// parser uses a matcher's value for (the empty-matcher rule; its grammar takes the four
/// operators alike; a value is never otherwise inspected), and `=""`/`!=""` match the
/// empty string exactly when `=~`/`!~` of such a regex do, and `="x"`/`!="x"` exactly when
/// `="v"`/`!="v"` of any non-empty `v` do, so the shape parses exactly when the original
/// does. Values with a backslash or a line break, regexes the `regex` crate refuses as
/// written, strings after a comment, and strings outside braces are kept as written.
fn shape(expr: &str) -> Option<String> {
    static CACHE: OnceLock<std::sync::Mutex<std::collections::HashMap<String, Option<bool>>>> =
        OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let matches_empty = |value: &str| -> Option<bool> {
        let mut cache = cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(known) = cache.get(value) {
            return *known;
        }
        let verdict = Regex::new(&format!("^(?:{value})$"))
            .ok()
            .map(|re| re.is_match(""));
        if cache.len() >= 4096 {
            cache.clear();
        }
        cache.insert(value.to_string(), verdict);
        verdict
    };
    let bytes = expr.as_bytes();
    let mut out = String::with_capacity(expr.len());
    let mut copied = 0; // bytes of `expr` already in `out`
    let mut i = 0;
    let mut quote: Option<u8> = None;
    // Where the matcher operator before the next string starts, while only blanks follow.
    let mut op: Option<(usize, Op)> = None;
    let mut braces = 0usize;
    while i < bytes.len() {
        let c = bytes[i];
        if let Some(q) = quote {
            // promql-parser's lexer reads escapes in all three kinds of quotes.
            if c == b'\\' {
                i += 2;
                continue;
            }
            if c == q {
                quote = None;
            }
            i += 1;
            continue;
        }
        if let (b'"' | b'\'' | b'`', Some((at, kind))) = (c, op) {
            op = None;
            let start = i + 1;
            let end = expr[start..].find(c as char).map(|k| start + k);
            let Some(end) = end else {
                return None; // unterminated: the parser reports it
            };
            let value = &expr[start..end];
            // A backslash or a line break makes the value's own spelling matter (the parser
            // refuses a line break in a quoted string, and unknown escapes).
            if !value.contains(['\\', '\n', '\r']) {
                match kind {
                    Op::Regex => {
                        if let Some(empty) = matches_empty(value) {
                            out.push_str(&expr[copied..at]);
                            out.push_str(if bytes[at] == b'=' { "=" } else { "!=" });
                            out.push_str(&expr[at + 2..start]);
                            out.push_str(if empty { "" } else { "x" });
                            copied = end;
                        }
                    }
                    Op::Equal if !value.is_empty() => {
                        out.push_str(&expr[copied..start]);
                        out.push('x');
                        copied = end;
                    }
                    Op::Equal => {}
                }
            }
            i = end + 1;
            continue;
        }
        // An operator right after one of these is lexed otherwise (`==`, `<=`, `=~=`...).
        let glued = i > 0 && matches!(bytes[i - 1], b'=' | b'!' | b'<' | b'>' | b'~');
        match c {
            b'#' => {
                // A comment runs to the end of the line.
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                op = None;
                continue;
            }
            b'=' | b'!' if bytes.get(i + 1) == Some(&b'~') => {
                if braces == 0 || glued {
                    return None; // not lexed as a matcher operator: the parser judges it
                }
                op = Some((i, Op::Regex));
                i += 2;
                continue;
            }
            b'=' | b'!' if braces > 0 && (c == b'=' || bytes.get(i + 1) == Some(&b'=')) => {
                let len = if c == b'=' { 1 } else { 2 };
                if glued || matches!(bytes.get(i + len), Some(b'=' | b'~')) {
                    return None; // `==`, `!==`, `=!=`...: the parser judges it
                }
                op = Some((i, Op::Equal));
                i += len;
                continue;
            }
            b'"' | b'\'' | b'`' => quote = Some(c),
            b'{' => {
                braces += 1;
                op = None;
            }
            b'}' => {
                braces = braces.saturating_sub(1);
                op = None;
            }
            c if c.is_ascii_whitespace() => {}
            _ => op = None,
        }
        i += 1;
    }
    out.push_str(&expr[copied..]);
    Some(out)
}

/// Where a PromQL expression stops being valid: the end of its longest prefix that parses
/// once its open brackets and string are closed, then past blanks. promql-parser reports no
/// position of its own (its parse errors are one fixed message), so this finds it.
fn error_position(expr: &str) -> usize {
    let valid_end = expr
        .char_indices()
        .map(|(i, _)| i)
        .chain([expr.len()])
        .rev()
        .find(|&k| {
            let prefix = &expr[..k];
            let completed = format!("{prefix}{}", closers(prefix));
            !prefix.trim().is_empty() && promql_parse(&completed).is_ok()
        })
        .unwrap_or(0);
    let rest = &expr[valid_end..];
    valid_end + (rest.len() - rest.trim_start().len())
}

/// What closes the open string and brackets of a PromQL prefix.
fn closers(prefix: &str) -> String {
    let mut stack: Vec<char> = Vec::new();
    let mut quote_char: Option<char> = None;
    let mut chars = prefix.chars();
    while let Some(c) = chars.next() {
        match quote_char {
            Some(q) => {
                if c == '\\' && q != '`' {
                    chars.next();
                } else if c == q {
                    quote_char = None;
                }
            }
            None => match c {
                '"' | '\'' | '`' => quote_char = Some(c),
                '(' => stack.push(')'),
                '[' => stack.push(']'),
                '{' => stack.push('}'),
                ')' | ']' | '}' => {
                    stack.pop();
                }
                _ => {}
            },
        }
    }
    let mut out: String = quote_char.into_iter().collect();
    out.extend(stack.iter().rev());
    out
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
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};

    /// The fast path never changes the verdict: the rewritten expression parses exactly when
    /// the original does, across valid and invalid regexes, empty-matching regexes, strings,
    /// comments and function arguments.
    #[test]
    fn shapes_keep_the_parse_verdict() {
        let cases = [
            r#"sum(rate(http_requests_total{code=~"5..",job="a"}[1m]))"#,
            r#"{job=~".*"}"#,
            r#"{job=~".+"}"#,
            r#"{job=~""}"#,
            r#"{job!~"a|b"}"#,
            r#"{job=~".*", env!~".*"}"#,
            r#"x{a=~"("}"#,
            r#"x{a=~"[z-a]"}"#,
            r#"x{a=~'5..'}"#,
            r#"x{a=~`5..`}"#,
            r#"x{a =~ "5.." , b="c"}"#,
            r#"x{a=~"a\\.b"}"#,
            "x{a=~\"5..\"} # a comment with =~\" in it\n + y",
            r#"label_replace(x{a="=~\"q"}, "dst", "$1", "src", "(.*)")"#,
            r#"label_replace(x, "dst", "$1", "src", "(")"#,
            r#"x{a=~"5.."} bye (job)"#,
            r#"x{a=~"unterminated}"#,
            r#"x{a=~"a{bc}"}"#,
            r#"{__name__=~"http_.*", code=~"5.."}"#,
            r#"x{a==~"b"}"#,
            r#"x{a=!~"b"}"#,
            r#"x{a!!~"b"}"#,
            r#"x =~ "a""#,
            r#"x !~ "a""#,
            r#"x{a=~"5.."} == bool y{b!~".*"}"#,
            r#"x{a=~"5.."} >=~ y"#,
            r#"{a!~""}"#,
            r#"{a!~".*"}"#,
            r#"{a!~"x"}"#,
            r#"{a=~".*" or b=~"c"}"#,
            r#"{a=~".*" or b=~".*"}"#,
            r#"{a =~ ".*", b !~ "c"}"#,
            r#"x{__name__=~"y"}"#,
            r#"x{a=~ # comment
                "b"}"#,
            r#"x{a=~~"b"}"#,
            r#"x{a=~"b"=~"c"}"#,
            // Equality matchers: only a value's emptiness matters to the parser.
            r#"{a="b"}"#,
            r#"{a=""}"#,
            r#"{a!=""}"#,
            r#"{a!="b"}"#,
            r#"{a="", b!="c"}"#,
            r#"{a="" or b=""}"#,
            r#"{a="b" or c=""}"#,
            r#"x{__name__="y"}"#,
            r#"{__name__=""}"#,
            r#"{"a.b"="c"}"#,
            r#"{"x.y", a="b"}"#,
            r#"{"x.y"}"#,
            r#"x{a="b"="c"}"#,
            r#"x{a=="b"}"#,
            r#"x{a<="b"}"#,
            r#"x{a!=="b"}"#,
            r#"x{a=!="b"}"#,
            r#"x{a!=~"b"}"#,
            r#"x{a="b\q"}"#,
            r#"x{a="b\n"}"#,
            r#"x{a=`b\q`}"#,
            r#"x{a=`\`, b="q"}"#,
            r#"x{a="b
c"}"#,
            r#"x{a="b"} != "c""#,
            r#"x != "c""#,
            r#"label_replace(x{a="b"}, "d", "$1", "e", "(.*)")"#,
            r#"count_values("v", x{a="b"})"#,
            r#"x{a="b"} offset 5m"#,
            r#"x{a="unterminated}"#,
            "x{a=~\"b\nc\"}",
            "x{a=~'b\nc'}",
            "x{a=~`b\nc`}",
            "x{a='b\rc'}",
        ];
        for expr in cases {
            let original = promql_parser::parser::parse(expr).is_ok();
            if let Some(cheap) = shape(expr) {
                assert_eq!(
                    promql_parser::parser::parse(&cheap).is_ok(),
                    original,
                    "{expr} -> {cheap}"
                );
            }
            assert_eq!(parse_promql(expr).is_ok(), original, "{expr}");
        }
        // The parser sees equality matchers, so it compiles no regex.
        assert_eq!(
            shape(r#"sum(rate(x{code=~"5..",job="a", env!~"dev|test"}[1m]))"#).as_deref(),
            Some(r#"sum(rate(x{code="x",job="x", env!="x"}[1m]))"#)
        );
        assert_eq!(shape(r#"{a =~ ".*"}"#).as_deref(), Some(r#"{a = ""}"#));
        // Found by the `spec` fuzz target: promql-parser panics on a number used as a
        // duration that no Duration holds; here it is an error naming the parser's failure.
        for expr in [
            "rate(x[1e30])",
            "rate(x[99999999999999999999])",
            "rate(x[5m]) offset 1e30",
            "sum(rate(x{job=\"a\"}[2222222222222222222222222222222222222222222222222222222222222 5m]))",
        ] {
            let e = parse_promql(expr).unwrap_err();
            assert!(e.contains("column"), "{expr}: {e}");
        }
        assert!(parse_promql("rate(x[1e30])")
            .unwrap_err()
            .contains("the number 1e30 is used as a duration but no duration is that long"));
        for expr in [
            "rate(x[Inf])",
            "rate(x[nan])",
            "rate(x[5m]) offset 0xffffffffffffffffff",
            "rate(x[0xffffffffffffffffffffffffffffffffffffffff])",
            "x[5m:1e30]",
            "rate(x[5m]) offset -1e30",
        ] {
            assert!(unbounded_duration_number(expr).is_some(), "{expr}");
            assert!(parse_promql(expr).is_err(), "{expr}");
        }
        // Numbers elsewhere, and sane durations, are the parser's to judge.
        for expr in [
            "x > 1e30",
            "clamp_max(x, Inf)",
            "rate(x[300])",
            "rate(x[5m]) offset 1h",
            "x[5m:30s]",
            r#"x{a="[1e30]"}"#,
            "slo:sli_error:ratio_rate5m",
            "rate(x[22222222222222222222m])",
        ] {
            assert_eq!(unbounded_duration_number(expr), None, "{expr}");
        }
        // No panic reaches the caller whatever the parser does (a backstop).
        assert!(promql_parse("rate(x[5m])").is_ok());
        assert_eq!(
            shape(r#"x{a=~"5..", b!~".*"} # =~"no""#).as_deref(),
            Some(r#"x{a="x", b!=""} # =~"no""#)
        );
        // Equality values: only emptiness is kept; outside braces nothing changes.
        assert_eq!(
            shape(r#"x{a="5..", b!="", c!="y"}"#).as_deref(),
            Some(r#"x{a="x", b!="", c!="x"}"#)
        );
        assert_eq!(
            shape(r#"x{"a.b"="c"} != "d""#).as_deref(),
            Some(r#"x{"a.b"="x"} != "d""#)
        );
        assert_eq!(shape(r#"x{a="q\"r"}"#).as_deref(), Some(r#"x{a="q\"r"}"#));
        assert_eq!(shape(r#"x{a=="b"}"#), None);
    }

    /// The same property on 5,000 random expressions built from matcher pieces, operators
    /// next to each other, braces, strings and comments (a fixed-seed generator).
    #[test]
    fn shapes_keep_the_verdict_of_random_expressions() {
        const PIECES: &[&str] = &[
            "x",
            "{",
            "}",
            "a",
            "b",
            "=~",
            "!~",
            "=",
            "!=",
            "==",
            "!",
            "~",
            "<",
            ">=",
            "\"5..\"",
            "\".*\"",
            "\"\"",
            "\"(\"",
            "'x|y'",
            "`.+`",
            ",",
            " or ",
            " ",
            "(",
            ")",
            "sum",
            "rate",
            "[1m]",
            "# c\n",
            "__name__",
            "bool",
            ", ",
            "\"a.b\"",
            "\"q\\\\\"",
            "`\\`",
            "''",
            "\"l\nm\"",
        ];
        // Whole matchers, used both ways: as pieces, and to build well-formed selectors.
        const MATCHERS: &[&str] = &[
            "a=~\"5..\"",
            "b!~\".*\"",
            "a=~\"\"",
            "b=~'x|y'",
            "a!~\"\"",
            "c=\"d\"",
            "__name__=~\"x.*\"",
            "d =~ `.+`",
            "e!~\"(\"",
            "f=\"\"",
            "g!=\"h\"",
            "h!=\"\"",
            "\"i.j\"=\"k\"",
        ];
        let mut rng = StdRng::seed_from_u64(0x5eed);
        let mut next = |n: usize| rng.random_range(0..n);
        let (mut rewritten, mut valid) = (0, 0);
        for _ in 0..5_000 {
            let mut expr = String::new();
            if next(3) == 0 {
                // A well-formed selector of matchers (most of them valid).
                expr.push_str(["x{", "{", "sum(rate(x{"][next(3)]);
                for k in 0..1 + next(4) {
                    if k > 0 {
                        expr.push_str([", ", " or "][next(2)]);
                    }
                    expr.push_str(MATCHERS[next(MATCHERS.len())]);
                }
                expr.push('}');
                if expr.starts_with("sum") {
                    expr.push_str("[1m]))");
                }
            } else {
                // Random pieces, half of them inside a selector's braces.
                if next(2) == 0 {
                    expr.push_str("x{");
                }
                for _ in 0..1 + next(10) {
                    let k = next(PIECES.len() + MATCHERS.len());
                    expr.push_str(PIECES.get(k).unwrap_or_else(|| &MATCHERS[k - PIECES.len()]));
                }
                if next(2) == 0 {
                    expr.push('}');
                }
            }
            let original = promql_parse(&expr).is_ok();
            valid += usize::from(original);
            if let Some(cheap) = shape(&expr) {
                rewritten += 1;
                assert_eq!(promql_parse(&cheap).is_ok(), original, "{expr} -> {cheap}");
            }
        }
        assert!(
            rewritten > 1_500 && valid > 800,
            "{rewritten} rewritten, {valid} valid"
        );
    }

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
    fn label_and_alert_names() {
        // Sloth v0.16 (Prometheus 3): any non-empty UTF-8 label name but __name__.
        assert!(is_valid_label_name("routing_key"));
        assert!(is_valid_label_name("team-name"));
        assert!(is_valid_label_name("app.kubernetes.io/name"));
        assert!(is_valid_label_name("1abc"));
        assert!(!is_valid_label_name("__name__"));
        assert!(!is_valid_label_name(""));
        assert!(is_legacy_label_name("routing_key"));
        assert!(!is_legacy_label_name("team-name"));
        assert!(is_legacy_metric_name("MyServiceHighErrorRate"));
        assert!(is_legacy_metric_name("a:b"));
        assert!(!is_legacy_metric_name("Svc-High-Error-Rate"));
    }

    #[test]
    fn promql_is_parsed() {
        assert!(parse_promql(r#"sum(rate(x{code=~"(5..|429)"}[1m]))"#).is_ok());
        assert!(parse_promql(r#"sum(rate(x{a="}"}[1m])) by (job)"#).is_ok());
        assert!(parse_promql("sum(x) # comment (").is_ok());
        assert!(parse_promql("sum(rate(x[1m])").is_err());
        assert!(parse_promql("sum(rate(x[1m)))").is_err());
        assert!(parse_promql("sum(rate(x[1m])) bye (job)").is_err());
        assert!(parse_promql("sum_over_time(x == 0[1m])").is_err());
        let e = parse_promql("sum(rate(x[1m])) bye (job)").unwrap_err();
        assert!(e.contains("column 18, near \"bye (job)\""), "{e}");
        let e = parse_promql("sum(rate(x{a=\"b\"}[1m])").unwrap_err();
        assert!(e.contains("ends too early"), "{e}");
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
