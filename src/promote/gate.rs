//! The gates of `slogate promote` and the report it prints. Pure: the numbers come in
//! (budget reports, the guard's state, an approval), gates come out.
//!
//! Gates, in order:
//! 1. `input`: the flags, the overlays and the image resolve (a failure here is exit 2);
//! 2. `slo`: every selected SLO of the **source** environment has data, has not used its
//!    whole budget (`budget_consumed < 1`) and keeps `budget_remaining ≥ min`. No data is
//!    never a pass. The source overlay must run the version being promoted (its SLOs say
//!    nothing about another one);
//! 3. `freeze`: the target's guard app is not frozen (no open breach), unless overridden;
//! 4. `approval`: when required, an approval exists for this exact change.

use chrono::SecondsFormat;
use serde::Serialize;
use serde_json::{json, Value};

use super::approval::Approval;
use crate::guard::AppGuardState;
use crate::slo::budget::BudgetReport;

/// Tolerance of the `budget_remaining ≥ min` comparison (1 − 0.8 is 0.19999999999999996).
const EPSILON: f64 = 1e-9;

/// One gate's verdict, with the numbers it looked at.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Gate {
    pub name: String,
    pub passed: bool,
    /// One human sentence (or several joined by `; `).
    pub detail: String,
    pub numbers: Value,
}

impl Gate {
    fn new(name: &str, passed: bool, detail: impl Into<String>, numbers: Value) -> Self {
        Gate {
            name: name.into(),
            passed,
            detail: detail.into(),
            numbers,
        }
    }
}

/// What `promote` decided: the `-o json` document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PromoteReport {
    /// True only when a commit was pushed.
    pub promoted: bool,
    /// Why: the failed gates, the commit, "already at", or the input error.
    pub reason: String,
    pub gates: Vec<Gate>,
    /// The pushed commit (or the branch head when nothing had to change).
    pub commit: Option<String>,
    /// The image name.
    pub image: Option<String>,
    /// The target's tag (or digest) before.
    pub from_tag: Option<String>,
    /// The tag (or digest) promoted.
    pub to_tag: Option<String>,
    /// True when `--dry-run` kept it from committing.
    pub dry_run: bool,
}

impl PromoteReport {
    /// The failed gates as one sentence.
    pub fn failures(gates: &[Gate]) -> String {
        gates
            .iter()
            .filter(|g| !g.passed)
            .map(|g| format!("{}: {}", g.name, g.detail))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The text output: one line per gate, then the outcome.
    pub fn text(&self) -> String {
        let mut out = String::new();
        if let (Some(image), Some(to)) = (&self.image, &self.to_tag) {
            out.push_str(&format!(
                "promote {image}: {} -> {to}\n",
                self.from_tag.as_deref().unwrap_or("(none)")
            ));
        }
        for g in &self.gates {
            let mark = if !g.passed {
                "FAIL"
            } else if g.detail.starts_with("skipped") {
                "skip"
            } else {
                "pass"
            };
            out.push_str(&format!("  [{mark}] {}: {}\n", g.name, g.detail));
        }
        let verdict = if self.promoted {
            "promoted"
        } else if self.dry_run && self.gates.iter().all(|g| g.passed) {
            "dry run"
        } else if self.gates.iter().all(|g| g.passed) {
            "nothing to do"
        } else {
            "refused"
        };
        out.push_str(&format!("{verdict}: {}\n", self.reason));
        out
    }
}

fn pct(v: f64) -> String {
    format!("{:.1}%", v * 100.0)
}

/// Gate 1: the input resolved; `detail` says what was resolved.
pub fn input_ok(detail: impl Into<String>, numbers: Value) -> Gate {
    Gate::new("input", true, detail, numbers)
}

/// Gate 1 failed: bad input (the command exits 2).
pub fn input_failed(message: &str) -> Gate {
    Gate::new("input", false, message, json!({}))
}

/// Gate 2: the source environment's SLOs.
pub fn slo(reports: &[BudgetReport], min_remaining: f64) -> Gate {
    let mut problems = Vec::new();
    let mut fine = Vec::new();
    let mut per_slo = Vec::new();
    for r in reports {
        let verdict = match (r.no_data, r.budget_consumed, r.budget_remaining) {
            (false, Some(consumed), Some(remaining)) => {
                if consumed >= 1.0 {
                    Err(format!(
                        "{}: the error budget is exhausted ({} consumed)",
                        r.id,
                        pct(consumed)
                    ))
                } else if remaining + EPSILON < min_remaining {
                    Err(format!(
                        "{}: {} of the budget remains, below the minimum {}",
                        r.id,
                        pct(remaining),
                        pct(min_remaining)
                    ))
                } else {
                    Ok(format!(
                        "{}: {} of the budget remains (min {})",
                        r.id,
                        pct(remaining),
                        pct(min_remaining)
                    ))
                }
            }
            _ => Err(format!(
                "{}: no data in Prometheus for its {} period; no data is never a pass",
                r.id, r.period
            )),
        };
        per_slo.push(json!({
            "id": r.id,
            "objective": r.objective,
            "period": r.period,
            "budget_consumed": r.budget_consumed,
            "budget_remaining": r.budget_remaining,
            "no_data": r.no_data,
            "passed": verdict.is_ok(),
        }));
        match verdict {
            Ok(m) => fine.push(m),
            Err(m) => problems.push(m),
        }
    }
    let numbers = json!({ "min_budget_remaining": min_remaining, "slos": per_slo });
    if reports.is_empty() {
        return Gate::new("slo", false, "no SLO was evaluated", numbers);
    }
    if problems.is_empty() {
        Gate::new("slo", true, fine.join("; "), numbers)
    } else {
        Gate::new("slo", false, problems.join("; "), numbers)
    }
}

/// What the source overlay runs of the promoted image, for the `slo` gate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceVersion {
    /// The source overlay directory.
    pub overlay: String,
    pub image: String,
    /// Its tag or digest there; `None` when the overlay does not list the image.
    pub runs: Option<String>,
    /// The tag or digest being promoted.
    pub promoting: String,
}

/// The source's SLOs vouch only for the version the source runs: promoting another one
/// (an explicit `--image NAME=TAG` that differs from the source overlay's) fails the `slo`
/// gate. A source overlay that does not list the image is noted, not failed.
pub fn with_source_version(mut g: Gate, v: &SourceVersion) -> Gate {
    if let Value::Object(m) = &mut g.numbers {
        m.insert(
            "source".into(),
            json!({ "overlay": v.overlay, "runs": v.runs, "promoting": v.promoting }),
        );
    }
    match &v.runs {
        Some(runs) if *runs != v.promoting => {
            let problem = format!(
                "{} runs {} at {runs}, not {}: its SLOs say nothing about {}",
                v.overlay, v.image, v.promoting, v.promoting
            );
            g.detail = if g.passed {
                problem
            } else {
                format!("{problem}; {}", g.detail)
            };
            g.passed = false;
        }
        Some(_) => {}
        None => g.detail.push_str(&format!(
            " ({} does not list {}: the version it runs was not compared)",
            v.overlay, v.image
        )),
    }
    g
}

/// Gate 2 could not be evaluated (Prometheus unreachable): a failure, never a pass.
pub fn slo_unavailable(message: &str, min_remaining: f64) -> Gate {
    Gate::new(
        "slo",
        false,
        format!("the SLOs could not be evaluated: {message}"),
        json!({ "min_budget_remaining": min_remaining }),
    )
}

/// Gate 2 turned off with `--no-slo-check`.
pub fn slo_skipped() -> Gate {
    Gate::new("slo", true, "skipped: --no-slo-check", json!({}))
}

/// Gate 3: the target's freeze. `lookup` is the guard state read (or why it could not be).
pub fn freeze(
    app: Option<&str>,
    lookup: Option<Result<Option<AppGuardState>, String>>,
    override_reason: Option<&str>,
) -> Gate {
    let (Some(app), Some(lookup)) = (app, lookup) else {
        return Gate::new("freeze", true, "skipped: no --app given", json!({}));
    };
    let state = match lookup {
        Ok(s) => s,
        Err(e) => {
            return Gate::new(
                "freeze",
                false,
                format!("cannot read the guard state of {app}: {e}"),
                json!({ "app": app }),
            )
        }
    };
    let Some(state) = state else {
        return Gate::new(
            "freeze",
            true,
            format!("{app} is not frozen (the guard has no state for it)"),
            json!({ "app": app, "frozen": false }),
        );
    };
    match &state.breach {
        None => Gate::new(
            "freeze",
            true,
            format!("{app} is not frozen"),
            json!({ "app": app, "frozen": false }),
        ),
        Some(b) => {
            let numbers = json!({
                "app": app,
                "frozen": true,
                "breach": b.id,
                "slo": b.slo,
                "level": b.level,
                "budget_consumed": b.budget_consumed,
                "since": b.since,
                "override": override_reason,
            });
            let what = format!(
                "{app} is frozen: breach {} of SLO {} ({}, {} of the budget consumed) since {}",
                b.id,
                b.slo,
                b.level.as_str(),
                pct(b.budget_consumed),
                b.since.to_rfc3339_opts(SecondsFormat::Secs, true)
            );
            match override_reason {
                Some(r) => Gate::new("freeze", true, format!("{what}; overridden: {r}"), numbers),
                None => Gate::new("freeze", false, what, numbers),
            }
        }
    }
}

/// Gate 4: the approval of this exact change.
pub fn approval(
    required: bool,
    key: &str,
    lookup: Option<Result<Option<Approval>, String>>,
) -> Gate {
    if !required {
        return Gate::new(
            "approval",
            true,
            "skipped: not required",
            json!({ "key": key }),
        );
    }
    match lookup {
        None => Gate::new(
            "approval",
            false,
            "required, but there is no state to read approvals from",
            json!({ "key": key }),
        ),
        Some(Err(e)) => Gate::new(
            "approval",
            false,
            format!("cannot read approvals: {e}"),
            json!({ "key": key }),
        ),
        Some(Ok(None)) => Gate::new(
            "approval",
            false,
            format!(
                "no approval recorded for this change (key {key}); record one with `slogate \
                 approve` for this repo, target and image"
            ),
            json!({ "key": key, "approved": false }),
        ),
        Some(Ok(Some(a))) => Gate::new(
            "approval",
            true,
            format!(
                "approved by {} at {}",
                a.actor,
                a.at.to_rfc3339_opts(SecondsFormat::Secs, true)
            ),
            json!({ "key": key, "approved": true, "actor": a.actor, "at": a.at }),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::state::Breach;
    use crate::slo::budget::{Action, Source};
    use chrono::{TimeZone, Utc};

    fn report(id: &str, consumed: Option<f64>) -> BudgetReport {
        BudgetReport {
            id: id.into(),
            service: "checkout".into(),
            slo: id.into(),
            objective: 0.999,
            period: "30d".into(),
            error_ratio: consumed.map(|c| c * 0.001),
            budget_consumed: consumed,
            budget_remaining: consumed.map(|c| 1.0 - c),
            burn_rates: Default::default(),
            action: Action::None,
            no_data: consumed.is_none(),
            source: Source::Raw,
        }
    }

    #[test]
    fn slo_gate_passes_only_with_data_and_enough_budget() {
        let g = slo(&[report("a", Some(0.5))], 0.2);
        assert!(g.passed, "{g:?}");
        assert!(g.detail.contains("50.0% of the budget remains (min 20.0%)"));
        assert_eq!(g.numbers["slos"][0]["budget_remaining"], 0.5);
        let g = slo(&[report("a", Some(0.5))], 0.6);
        assert!(!g.passed);
        assert!(
            g.detail
                .contains("a: 50.0% of the budget remains, below the minimum 60.0%"),
            "{}",
            g.detail
        );
        // Exactly at the minimum passes despite floating point.
        assert!(slo(&[report("a", Some(0.8))], 0.2).passed);
        let g = slo(&[report("a", Some(1.0))], 0.0);
        assert!(!g.passed && g.detail.contains("exhausted"), "{}", g.detail);
        let g = slo(&[report("a", Some(0.1)), report("ghost", None)], 0.0);
        assert!(!g.passed);
        assert!(g.detail.contains("ghost: no data") && g.detail.contains("never a pass"));
        assert!(
            !g.detail.contains("a: 90.0%"),
            "only the problems are the detail"
        );
        assert_eq!(g.numbers["slos"][1]["no_data"], true);
        assert!(!slo(&[], 0.0).passed);
        assert!(!slo_unavailable("connection refused", 0.2).passed);
    }

    #[test]
    fn the_source_must_run_the_promoted_version() {
        let v = |runs: Option<&str>| SourceVersion {
            overlay: "overlays/staging".into(),
            image: "checkout".into(),
            runs: runs.map(str::to_string),
            promoting: "v2".into(),
        };
        let ok = slo(&[report("a", Some(0.5))], 0.2);
        assert!(with_source_version(ok.clone(), &v(Some("v2"))).passed);
        let g = with_source_version(ok.clone(), &v(Some("v1")));
        assert!(!g.passed);
        assert!(
            g.detail.starts_with(
                "overlays/staging runs checkout at v1, not v2: its SLOs say nothing about v2"
            ),
            "{}",
            g.detail
        );
        assert_eq!(g.numbers["source"]["runs"], "v1");
        let g = with_source_version(ok, &v(None));
        assert!(
            g.passed && g.detail.contains("does not list checkout"),
            "{}",
            g.detail
        );
        let bad = slo(&[report("a", Some(0.9))], 0.2);
        let g = with_source_version(bad, &v(Some("v1")));
        assert!(!g.passed && g.detail.contains("; a: 10.0%"), "{}", g.detail);
    }

    #[test]
    fn freeze_gate_reads_the_breach() {
        let mut s = AppGuardState::default();
        assert!(freeze(Some("checkout"), Some(Ok(Some(s.clone()))), None).passed);
        assert!(freeze(Some("checkout"), Some(Ok(None)), None).passed);
        s.breach = Some(Breach {
            id: "b-1".into(),
            slo: "checkout-availability".into(),
            level: Action::Emergency,
            budget_consumed: 0.963,
            since: Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap(),
            base: None,
            reverts: vec![],
        });
        let g = freeze(Some("checkout"), Some(Ok(Some(s.clone()))), None);
        assert!(!g.passed);
        assert!(
            g.detail.contains(
                "checkout is frozen: breach b-1 of SLO checkout-availability (emergency, 96.3%"
            ),
            "{}",
            g.detail
        );
        assert_eq!(g.numbers["budget_consumed"], 0.963);
        let g = freeze(
            Some("checkout"),
            Some(Ok(Some(s))),
            Some("hotfix for INC-7"),
        );
        assert!(g.passed && g.detail.contains("overridden: hotfix for INC-7"));
        assert!(!freeze(Some("checkout"), Some(Err("HTTP 401".into())), None).passed);
        assert!(freeze(None, None, None).detail.starts_with("skipped"));
    }

    #[test]
    fn approval_gate() {
        assert!(approval(false, "k", None).passed);
        assert!(!approval(true, "k", Some(Ok(None))).passed);
        assert!(!approval(true, "k", None).passed);
        assert!(!approval(true, "k", Some(Err("down".into()))).passed);
        let a = Approval {
            key: "k".into(),
            repo: "r".into(),
            target: "t".into(),
            image: "i".into(),
            tag: Some("v2".into()),
            digest: None,
            actor: "alice".into(),
            at: Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap(),
            comment: None,
        };
        let g = approval(true, "k", Some(Ok(Some(a))));
        assert!(g.passed && g.detail.contains("approved by alice"));
        assert_eq!(g.numbers["actor"], "alice");
    }

    #[test]
    fn report_text_and_failures() {
        let gates = vec![
            input_ok("resolved", json!({})),
            slo(&[report("a", Some(0.9))], 0.2),
            freeze(None, None, None),
        ];
        assert_eq!(
            PromoteReport::failures(&gates),
            "slo: a: 10.0% of the budget remains, below the minimum 20.0%"
        );
        let r = PromoteReport {
            promoted: false,
            reason: PromoteReport::failures(&gates),
            gates,
            commit: None,
            image: Some("checkout".into()),
            from_tag: Some("v1".into()),
            to_tag: Some("v2".into()),
            dry_run: false,
        };
        let t = r.text();
        assert!(t.starts_with("promote checkout: v1 -> v2\n"), "{t}");
        assert!(t.contains("  [FAIL] slo: a: 10.0%"), "{t}");
        assert!(t.contains("  [skip] freeze: skipped"), "{t}");
        assert!(
            t.ends_with("refused: slo: a: 10.0% of the budget remains, below the minimum 20.0%\n"),
            "{t}"
        );
    }
}
