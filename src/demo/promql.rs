//! A small PromQL evaluator over in-memory counters, so the demo's simulated service can
//! answer slogate's real queries through the `MetricsSource` port without a Prometheus.
//!
//! Supported: selectors with `=`, `!=`, `=~`, `!~`; `rate(sel[d])`, `increase(sel[d])`;
//! `sum`, `sum by (…)` (prefix or suffix form); `histogram_quantile(φ, …)`; number literals;
//! `+ - * /` on vectors (matched on identical label sets) and scalars; parentheses.
//! Anything else is a [`QueryError`], never a panic. This is the subset slogate's SLO,
//! analysis and dashboard-free demo queries use; it is not a general PromQL engine.

use std::collections::BTreeMap;

use regex::Regex;

pub type Labels = BTreeMap<String, String>;

/// The data a query reads: counters sampled over time.
pub trait CounterStore {
    /// Series of `name`: labels and the counter value at `t` (seconds), interpolated.
    fn series(&self, name: &str) -> Vec<Labels>;
    fn value_at(&self, name: &str, labels: &Labels, t: f64) -> Option<f64>;
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("unsupported or invalid query at byte {pos}: {message}")]
pub struct QueryError {
    pub pos: usize,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Scalar(f64),
    Vector(Vec<(Labels, f64)>),
}

#[derive(Debug, Clone)]
enum Matcher {
    Eq(String, String),
    Ne(String, String),
    Re(String, Regex),
    Nre(String, Regex),
}

impl Matcher {
    fn matches(&self, l: &Labels) -> bool {
        let get = |k: &str| l.get(k).map(String::as_str).unwrap_or("");
        match self {
            Matcher::Eq(k, v) => get(k) == v,
            Matcher::Ne(k, v) => get(k) != v,
            Matcher::Re(k, r) => r.is_match(get(k)),
            Matcher::Nre(k, r) => !r.is_match(get(k)),
        }
    }
}

#[derive(Debug, Clone)]
enum Expr {
    Num(f64),
    Select {
        name: String,
        matchers: Vec<Matcher>,
    },
    Range {
        func: String,
        name: String,
        matchers: Vec<Matcher>,
        secs: f64,
    },
    Sum {
        by: Option<Vec<String>>,
        inner: Box<Expr>,
    },
    Quantile {
        q: f64,
        inner: Box<Expr>,
    },
    Bin {
        op: char,
        l: Box<Expr>,
        r: Box<Expr>,
    },
}

struct Parser<'a> {
    s: &'a str,
    pos: usize,
}

fn err<T>(pos: usize, message: impl Into<String>) -> Result<T, QueryError> {
    Err(QueryError {
        pos,
        message: message.into(),
    })
}

impl<'a> Parser<'a> {
    fn ws(&mut self) {
        while let Some(c) = self.s[self.pos..].chars().next() {
            if c.is_whitespace() {
                self.pos += c.len_utf8();
            } else {
                break;
            }
        }
    }
    fn peek(&mut self) -> Option<char> {
        self.ws();
        self.s[self.pos..].chars().next()
    }
    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }
    fn expect(&mut self, c: char) -> Result<(), QueryError> {
        if self.eat(c) {
            Ok(())
        } else {
            err(self.pos, format!("expected `{c}`"))
        }
    }
    fn ident(&mut self) -> Option<String> {
        self.ws();
        let rest = &self.s[self.pos..];
        let n = rest
            .char_indices()
            .take_while(|(i, c)| {
                c.is_ascii_alphabetic() || *c == '_' || *c == ':' || (*i > 0 && c.is_ascii_digit())
            })
            .count();
        if n == 0 {
            return None;
        }
        let id = rest[..n].to_string();
        self.pos += n;
        Some(id)
    }
    fn string(&mut self) -> Result<String, QueryError> {
        self.ws();
        let q = match self.peek() {
            Some(c @ ('"' | '\'')) => c,
            _ => return err(self.pos, "expected a quoted string"),
        };
        self.pos += 1;
        let mut out = String::new();
        let mut chars = self.s[self.pos..].chars();
        while let Some(c) = chars.next() {
            self.pos += c.len_utf8();
            match c {
                '\\' => {
                    if let Some(n) = chars.next() {
                        self.pos += n.len_utf8();
                        out.push(n);
                    }
                }
                c if c == q => return Ok(out),
                c => out.push(c),
            }
        }
        err(self.pos, "unterminated string")
    }
    fn number(&mut self) -> Option<f64> {
        self.ws();
        let rest = &self.s[self.pos..];
        let n = rest
            .char_indices()
            .take_while(|(_, c)| c.is_ascii_digit() || *c == '.' || *c == 'e' || *c == 'E')
            .count();
        let v = rest[..n].parse().ok()?;
        self.pos += n;
        Some(v)
    }
    fn duration(&mut self) -> Result<f64, QueryError> {
        self.ws();
        let start = self.pos;
        let rest = &self.s[self.pos..];
        let n = rest.find(']').unwrap_or(rest.len());
        let text = rest[..n].trim();
        self.pos += n;
        text.parse::<crate::slo::PromDuration>()
            .map(|d| d.as_secs_f64())
            .map_err(|e| QueryError {
                pos: start,
                message: format!("range `{text}`: {e}"),
            })
    }
    fn matchers(&mut self) -> Result<Vec<Matcher>, QueryError> {
        let mut out = Vec::new();
        if !self.eat('{') {
            return Ok(out);
        }
        loop {
            if self.eat('}') {
                return Ok(out);
            }
            let Some(k) = self.ident() else {
                return err(self.pos, "expected a label name");
            };
            self.ws();
            let rest = &self.s[self.pos..];
            let op = ["=~", "!~", "!=", "="]
                .into_iter()
                .find(|o| rest.starts_with(o));
            let Some(op) = op else {
                return err(self.pos, "expected =, !=, =~ or !~");
            };
            self.pos += op.len();
            let at = self.pos;
            let v = self.string()?;
            let re = |v: &str| {
                Regex::new(&format!("^(?:{v})$")).map_err(|e| QueryError {
                    pos: at,
                    message: e.to_string(),
                })
            };
            out.push(match op {
                "=" => Matcher::Eq(k, v),
                "!=" => Matcher::Ne(k, v),
                "=~" => Matcher::Re(k, re(&v)?),
                _ => Matcher::Nre(k, re(&v)?),
            });
            if !self.eat(',') {
                self.expect('}')?;
                return Ok(out);
            }
        }
    }
    fn labels_list(&mut self) -> Result<Vec<String>, QueryError> {
        self.expect('(')?;
        let mut out = Vec::new();
        loop {
            if self.eat(')') {
                return Ok(out);
            }
            match self.ident() {
                Some(l) => out.push(l),
                None => return err(self.pos, "expected a label name"),
            }
            if !self.eat(',') {
                self.expect(')')?;
                return Ok(out);
            }
        }
    }
    fn expr(&mut self) -> Result<Expr, QueryError> {
        let mut l = self.term()?;
        while let Some(op @ ('+' | '-')) = self.peek() {
            self.pos += 1;
            let r = self.term()?;
            l = Expr::Bin {
                op,
                l: Box::new(l),
                r: Box::new(r),
            };
        }
        Ok(l)
    }
    fn term(&mut self) -> Result<Expr, QueryError> {
        let mut l = self.factor()?;
        while let Some(op @ ('*' | '/')) = self.peek() {
            self.pos += 1;
            let r = self.factor()?;
            l = Expr::Bin {
                op,
                l: Box::new(l),
                r: Box::new(r),
            };
        }
        Ok(l)
    }
    fn factor(&mut self) -> Result<Expr, QueryError> {
        if self.eat('(') {
            let e = self.expr()?;
            self.expect(')')?;
            return Ok(e);
        }
        if let Some(n) = self.number() {
            return Ok(Expr::Num(n));
        }
        let at = self.pos;
        let Some(id) = self.ident() else {
            return err(self.pos, "expected an expression");
        };
        match id.as_str() {
            "sum" => {
                self.ws();
                let mut by = None;
                if self.s[self.pos..].starts_with("by") {
                    self.pos += 2;
                    by = Some(self.labels_list()?);
                }
                self.expect('(')?;
                let inner = self.expr()?;
                self.expect(')')?;
                self.ws();
                if by.is_none() && self.s[self.pos..].starts_with("by") {
                    self.pos += 2;
                    by = Some(self.labels_list()?);
                }
                Ok(Expr::Sum {
                    by,
                    inner: Box::new(inner),
                })
            }
            "rate" | "increase" => {
                self.expect('(')?;
                let Some(name) = self.ident() else {
                    return err(self.pos, "expected a metric name");
                };
                let matchers = self.matchers()?;
                self.expect('[')?;
                let secs = self.duration()?;
                self.expect(']')?;
                self.expect(')')?;
                Ok(Expr::Range {
                    func: id,
                    name,
                    matchers,
                    secs,
                })
            }
            "histogram_quantile" => {
                self.expect('(')?;
                let Some(q) = self.number() else {
                    return err(self.pos, "expected a quantile");
                };
                self.expect(',')?;
                let inner = self.expr()?;
                self.expect(')')?;
                Ok(Expr::Quantile {
                    q,
                    inner: Box::new(inner),
                })
            }
            _ if self.peek() == Some('(') => err(
                at,
                format!("function `{id}` is not supported by the demo's evaluator"),
            ),
            _ => {
                let matchers = self.matchers()?;
                Ok(Expr::Select { name: id, matchers })
            }
        }
    }
}

/// Evaluate `query` at time `t` (seconds).
pub fn eval(query: &str, store: &dyn CounterStore, t: f64) -> Result<Value, QueryError> {
    let mut p = Parser { s: query, pos: 0 };
    let e = p.expr()?;
    if p.peek().is_some() {
        return err(p.pos, "unexpected trailing input");
    }
    Ok(eval_expr(&e, store, t))
}

fn eval_expr(e: &Expr, store: &dyn CounterStore, t: f64) -> Value {
    match e {
        Expr::Num(n) => Value::Scalar(*n),
        Expr::Select { name, matchers } => Value::Vector(
            store
                .series(name)
                .into_iter()
                .filter(|l| matchers.iter().all(|m| m.matches(l)))
                .filter_map(|l| store.value_at(name, &l, t).map(|v| (l, v)))
                .collect(),
        ),
        Expr::Range {
            func,
            name,
            matchers,
            secs,
        } => Value::Vector(
            store
                .series(name)
                .into_iter()
                .filter(|l| matchers.iter().all(|m| m.matches(l)))
                .filter_map(|l| {
                    let now = store.value_at(name, &l, t)?;
                    let then = store.value_at(name, &l, t - secs)?;
                    let inc = (now - then).max(0.0);
                    Some((l, if func == "rate" { inc / secs } else { inc }))
                })
                .collect(),
        ),
        Expr::Sum { by, inner } => {
            let Value::Vector(v) = eval_expr(inner, store, t) else {
                return eval_expr(inner, store, t);
            };
            let mut groups: BTreeMap<Labels, f64> = BTreeMap::new();
            for (l, x) in v {
                let key: Labels = match by {
                    Some(by) => l.into_iter().filter(|(k, _)| by.contains(k)).collect(),
                    None => Labels::new(),
                };
                *groups.entry(key).or_insert(0.0) += x;
            }
            Value::Vector(groups.into_iter().collect())
        }
        Expr::Quantile { q, inner } => {
            let Value::Vector(v) = eval_expr(inner, store, t) else {
                return Value::Vector(Vec::new());
            };
            let mut groups: BTreeMap<Labels, Vec<(f64, f64)>> = BTreeMap::new();
            for (mut l, x) in v {
                let Some(le) = l.remove("le") else { continue };
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().unwrap_or(f64::NAN)
                };
                groups.entry(l).or_default().push((le, x));
            }
            Value::Vector(
                groups
                    .into_iter()
                    .map(|(l, mut b)| {
                        b.sort_by(|a, c| a.0.total_cmp(&c.0));
                        (l, bucket_quantile(*q, &b))
                    })
                    .collect(),
            )
        }
        Expr::Bin { op, l, r } => binary(*op, eval_expr(l, store, t), eval_expr(r, store, t)),
    }
}

fn apply(op: char, a: f64, b: f64) -> f64 {
    match op {
        '+' => a + b,
        '-' => a - b,
        '*' => a * b,
        _ => a / b,
    }
}

fn binary(op: char, l: Value, r: Value) -> Value {
    match (l, r) {
        (Value::Scalar(a), Value::Scalar(b)) => Value::Scalar(apply(op, a, b)),
        (Value::Vector(v), Value::Scalar(b)) => {
            Value::Vector(v.into_iter().map(|(l, a)| (l, apply(op, a, b))).collect())
        }
        (Value::Scalar(a), Value::Vector(v)) => {
            Value::Vector(v.into_iter().map(|(l, b)| (l, apply(op, a, b))).collect())
        }
        (Value::Vector(a), Value::Vector(b)) => Value::Vector(
            a.into_iter()
                .filter_map(|(l, x)| {
                    b.iter()
                        .find(|(m, _)| *m == l)
                        .map(|(_, y)| (l, apply(op, x, *y)))
                })
                .collect(),
        ),
    }
}

/// Prometheus's histogram_quantile: linear interpolation inside the bucket.
fn bucket_quantile(q: f64, buckets: &[(f64, f64)]) -> f64 {
    let Some(&(_, total)) = buckets.last() else {
        return f64::NAN;
    };
    if total <= 0.0 || !(0.0..=1.0).contains(&q) {
        return f64::NAN;
    }
    let rank = q * total;
    let mut prev = (0.0, 0.0);
    for &(le, count) in buckets {
        if count >= rank {
            if le.is_infinite() {
                return prev.0;
            }
            let span = count - prev.1;
            let frac = if span > 0.0 {
                (rank - prev.1) / span
            } else {
                0.0
            };
            return prev.0 + (le - prev.0) * frac;
        }
        prev = (le, count);
    }
    prev.0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two counters growing linearly: ok at 9/s, errors at 1/s; a histogram.
    struct Lin;
    impl CounterStore for Lin {
        fn series(&self, name: &str) -> Vec<Labels> {
            let l = |pairs: &[(&str, &str)]| {
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            };
            match name {
                "req_total" => vec![
                    l(&[("code", "200"), ("v", "a")]),
                    l(&[("code", "500"), ("v", "a")]),
                ],
                "lat_bucket" => ["100", "200", "+Inf"]
                    .iter()
                    .map(|le| l(&[("le", le)]))
                    .collect(),
                _ => vec![],
            }
        }
        fn value_at(&self, name: &str, l: &Labels, t: f64) -> Option<f64> {
            let per_sec = match (
                name,
                l.get("code").map(String::as_str),
                l.get("le").map(String::as_str),
            ) {
                ("req_total", Some("200"), _) => 9.0,
                ("req_total", Some("500"), _) => 1.0,
                ("lat_bucket", _, Some("100")) => 5.0,
                ("lat_bucket", _, Some("200")) => 9.0,
                ("lat_bucket", _, _) => 10.0,
                _ => return None,
            };
            Some(per_sec * t.max(0.0))
        }
    }

    fn scalar(q: &str) -> f64 {
        match eval(q, &Lin, 1000.0).unwrap() {
            Value::Vector(v) if v.len() == 1 => v[0].1,
            other => panic!("{q}: {other:?}"),
        }
    }

    #[test]
    fn ratio_quantile_and_errors() {
        let q = "(sum(rate(req_total{code=~\"5..\", v=\"a\"}[5m])))\n/\n(sum(rate(req_total{v=\"a\"}[5m])))\n";
        assert!((scalar(q) - 0.1).abs() < 1e-12);
        assert!((scalar("sum(increase(req_total{code!=\"500\"}[1m]))") - 540.0).abs() < 1e-9);
        assert!(
            (scalar("1 - sum(rate(req_total{code=\"500\"}[1m])) / sum(rate(req_total[1m]))") - 0.9)
                .abs()
                < 1e-12
        );
        // p50: rank 5 of 10 is the top of the first bucket; p90: top of the second.
        assert!(
            (scalar("histogram_quantile(0.5, sum by (le) (rate(lat_bucket[1m])))") - 100.0).abs()
                < 1e-9
        );
        assert!(
            (scalar("histogram_quantile(0.9, sum(rate(lat_bucket[1m])) by (le))") - 200.0).abs()
                < 1e-9
        );
        assert_eq!(
            eval("sloth_slo_info", &Lin, 1.0).unwrap(),
            Value::Vector(vec![])
        );
        for bad in [
            "sum(",
            "rate(req_total[5x])",
            "absent(up)",
            "req_total{code=~\"(\"}",
            "1 +",
        ] {
            assert!(eval(bad, &Lin, 1.0).is_err(), "{bad}");
        }
    }
}
