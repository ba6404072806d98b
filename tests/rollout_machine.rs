//! The rollout state machine (`slogate::rollout::decide`): table-driven tests over phases and
//! observations, restarts at every phase, approval deadlines both ways, limits at their exact
//! boundaries, new versions mid-rollout, manual weight changes, commands, crash safety, and
//! whole rollouts driven by a simulated runtime that applies the effects.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use slogate::model::traffic::{HeaderMatch, Weights};
use slogate::rollout::checks::{
    check_comparative, check_threshold, AnalysisWindow, ErrorCountSample, IntervalObservation,
};
use slogate::rollout::load::from_yaml_str;
use slogate::rollout::status::{AnalysisSummary, PausedFrom, PendingKind, Verdict};
use slogate::rollout::{
    analysis_window, decide, step_remaining, CommandAction, Decision, Effect, EffectCompletion,
    EffectOutcome, Observations, OperatorCommand, Phase, PhaseName, Rollout, RolloutStatus,
};

const BASE: &str = r#"
apiVersion: slogate.dev/v1alpha1
kind: Rollout
metadata: {name: checkout, namespace: shop}
spec:
  traffic:
    virtualService: {name: checkout, route: primary, subset: {host: checkout, stable: stable, canary: canary}}
  workloads: {stable: {name: checkout}, canary: {name: checkout-canary}}
  steps: [10, 50, 100]
  interval: 30s
  failureLimit: 2
  inconclusiveLimit: 3
  progressDeadline: 5m
  analysis:
    metrics:
      - {name: request-success-rate, min: 0.99}
  gitops: {app: checkout, path: apps/checkout}
"#;

fn rollout() -> Rollout {
    from_yaml_str(BASE).expect("BASE is valid")
}

fn rollout_with(extra: &str) -> Rollout {
    let text = BASE.replace("  gitops:", &format!("{extra}\n  gitops:"));
    from_yaml_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn t(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap() + chrono::Duration::seconds(secs)
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn w(canary: u32) -> Weights {
    Weights::canary(canary)
}

/// Versions as observed: canary v2, stable v1, route at `weights`.
fn seen(weights: Option<Weights>) -> Observations {
    Observations {
        canary_version: Some("v2".into()),
        stable_version: Some("v1".into()),
        weights,
        ..Observations::default()
    }
}

#[derive(Clone, Copy, Debug)]
enum V {
    Pass,
    Fail,
    Inconclusive,
}

fn interval(window: AnalysisWindow, v: V) -> IntervalObservation {
    let values: &[f64] = match v {
        V::Pass => &[0.999],
        V::Fail => &[0.5],
        V::Inconclusive => &[],
    };
    IntervalObservation {
        window,
        checks: vec![check_threshold(
            "request-success-rate",
            Some(0.99),
            None,
            values,
        )],
        canary_requests: Some(1000.0),
        error_counts: None,
    }
}

fn win(start: i64, end: i64) -> AnalysisWindow {
    AnalysisWindow {
        start: t(start),
        end: t(end),
    }
}

fn cmd(id: &str, action: CommandAction) -> OperatorCommand {
    OperatorCommand {
        id: id.into(),
        action,
        actor: "alice".into(),
        reason: None,
    }
}

fn actions(d: &Decision) -> Vec<String> {
    d.effects
        .iter()
        .map(|e| match e {
            Effect::SetWeights {
                weights, expected, ..
            } => format!(
                "set-weights {}{}",
                weights.canary,
                expected
                    .map(|e| format!(" if {}", e.canary))
                    .unwrap_or_default()
            ),
            Effect::RevertCanary { version, .. } => format!("revert {version}"),
            Effect::CommitPromotion { version, .. } => format!("commit-promotion {version}"),
            Effect::Notify { severity, .. } => format!("notify {severity:?}"),
            Effect::RecordDecision { action, .. } => format!("record {action}"),
        })
        .collect()
}

fn pending_key(s: &RolloutStatus, kind: PendingKind) -> String {
    s.pending
        .iter()
        .find(|p| p.kind == kind)
        .map(|p| p.key.clone())
        .unwrap_or_else(|| panic!("no pending {kind:?} in {:#?}", s.pending))
}

fn done(key: &str, at: DateTime<Utc>, outcome: EffectOutcome) -> EffectCompletion {
    EffectCompletion {
        key: key.into(),
        at,
        outcome,
    }
}

/// A status in Progressing at `step` whose weights took effect at `since`.
fn progressing(step: u32, since: i64, canary_weight: u32) -> RolloutStatus {
    RolloutStatus {
        phase: Phase::Progressing {
            step,
            since: t(since),
            deadline: t(since + 300),
        },
        reason: "test".into(),
        attempt: 1,
        canary_version: Some("v2".into()),
        stable_version: Some("v1".into()),
        weights: Some(w(canary_weight)),
        seq: 10,
        ..RolloutStatus::default()
    }
}

/// The last judged interval ended at `end` (an inconclusive one).
fn judged(end: i64) -> AnalysisSummary {
    AnalysisSummary {
        window_end: t(end),
        verdict: Verdict::Inconclusive,
        reason: "no data".into(),
    }
}

// ---- start and steps -------------------------------------------------------------------

#[test]
fn a_new_canary_version_starts_at_step_0() {
    let r = rollout();
    let d = decide(&r, &RolloutStatus::default(), &seen(Some(w(0))), t(0));
    assert_eq!(
        d.next.phase,
        Phase::Progressing {
            step: 0,
            since: t(0),
            deadline: t(300)
        }
    );
    assert_eq!(
        actions(&d),
        ["set-weights 10", "record start", "notify Info"]
    );
    assert_eq!(d.next.attempt, 1);
    assert_eq!(d.next.canary_version.as_deref(), Some("v2"));
    let key = pending_key(&d.next, PendingKind::SetWeights);
    assert_eq!(key, "shop/checkout/1/1-set-weights");
    // No analysis while the weights are not confirmed.
    assert_eq!(analysis_window(&r, &d.next, t(100)), None);
    assert_eq!(d.requeue_after, secs(30));
}

#[test]
fn nothing_starts_without_a_distinct_canary_or_while_frozen() {
    let r = rollout();
    let same = Observations {
        canary_version: Some("v1".into()),
        stable_version: Some("v1".into()),
        ..Observations::default()
    };
    let d = decide(&r, &RolloutStatus::default(), &same, t(0));
    assert_eq!(d.next.phase, Phase::Pending);
    assert!(d.effects.is_empty());
    assert!(d.next.reason.contains("waiting for a canary version"));
    let unknown = Observations {
        canary_version: Some("v2".into()),
        ..Observations::default()
    };
    assert_eq!(
        decide(&r, &RolloutStatus::default(), &unknown, t(0))
            .next
            .phase,
        Phase::Pending
    );
    let frozen = Observations {
        freeze: Some("checkout-availability burned 96% of its budget".into()),
        ..seen(None)
    };
    let d = decide(&r, &RolloutStatus::default(), &frozen, t(0));
    assert_eq!(d.next.phase, Phase::Pending);
    assert_eq!(actions(&d), ["record hold"]);
    assert!(d.next.reason.contains("frozen"), "{}", d.next.reason);
    // Asked again: same state, nothing recorded twice.
    let again = decide(&r, &d.next, &frozen, t(30));
    assert!(again.effects.is_empty(), "{:?}", actions(&again));
    assert_eq!(again.next, d.next);
}

#[test]
fn the_interval_counts_from_the_weights_confirmation() {
    let r = rollout();
    let started = decide(&r, &RolloutStatus::default(), &seen(Some(w(0))), t(0)).next;
    let key = pending_key(&started, PendingKind::SetWeights);
    let obs = Observations {
        completions: vec![done(
            &key,
            t(4),
            EffectOutcome::WeightsSet { weights: w(10) },
        )],
        ..seen(Some(w(10)))
    };
    let d = decide(&r, &started, &obs, t(5));
    assert!(d.effects.is_empty(), "{:?}", actions(&d));
    assert_eq!(
        d.next.phase,
        Phase::Progressing {
            step: 0,
            since: t(4),
            deadline: t(300)
        }
    );
    assert_eq!(d.next.weights, Some(w(10)));
    assert!(d.next.pending.is_empty());
    assert_eq!(d.requeue_after, secs(29), "time left in the interval");
    assert_eq!(analysis_window(&r, &d.next, t(33)), None);
    assert_eq!(analysis_window(&r, &d.next, t(34)), Some(win(4, 34)));
}

#[test]
fn a_step_advances_only_after_a_full_passing_interval() {
    let r = rollout();
    let s = progressing(0, 0, 10);
    // Table: (window, verdict, now) -> (phase step, actions)
    let cases: [(AnalysisWindow, V, i64, u32, &[&str]); 5] = [
        // Window starting before the step: ignored.
        (win(-5, 25), V::Pass, 30, 0, &[]),
        // Shorter than an interval: ignored.
        (win(5, 30), V::Pass, 30, 0, &[]),
        // Ending in the future: ignored.
        (win(10, 40), V::Pass, 30, 0, &[]),
        // A full interval that passes: next step, guarded by the weights slogate set.
        (
            win(0, 30),
            V::Pass,
            30,
            1,
            &["set-weights 50 if 10", "record step"],
        ),
        // A late but full window: fine too.
        (
            win(100, 130),
            V::Pass,
            131,
            1,
            &["set-weights 50 if 10", "record step"],
        ),
    ];
    for (i, (window, v, now, step, want)) in cases.into_iter().enumerate() {
        let obs = Observations {
            analysis: Some(interval(window, v)),
            ..seen(Some(w(10)))
        };
        let d = decide(&r, &s, &obs, t(now));
        assert_eq!(d.next.phase.step(), Some(step), "case {i}");
        assert_eq!(actions(&d), want, "case {i}");
        if want.is_empty() {
            assert_eq!(d.notes.len(), 1, "case {i}: {:?}", d.notes);
            assert_eq!(d.next, s, "case {i}: an ignored window changes nothing");
        }
    }
}

#[test]
fn analysis_windows_never_overlap_the_last_judged_one() {
    let r = rollout();
    let s = progressing(0, 0, 10);
    let obs = Observations {
        analysis: Some(interval(win(0, 30), V::Inconclusive)),
        ..seen(Some(w(10)))
    };
    let d = decide(&r, &s, &obs, t(30));
    assert_eq!(d.next.inconclusive, 1);
    assert_eq!(d.requeue_after, secs(30));
    // The same window delivered again (a retry after a crash) is ignored.
    let again = decide(&r, &d.next, &obs, t(31));
    assert_eq!(again.next.inconclusive, 1);
    assert!(again.effects.is_empty());
    assert_eq!(analysis_window(&r, &d.next, t(59)), None);
    assert_eq!(analysis_window(&r, &d.next, t(60)), Some(win(30, 60)));
}

// ---- limits ------------------------------------------------------------------------------

#[test]
fn failure_limit_exact_boundary() {
    let r = rollout(); // failureLimit 2
    let mut s = progressing(0, 0, 10);
    for n in 1..=3u32 {
        let end = 30 * n as i64;
        let obs = Observations {
            analysis: Some(interval(win(end - 30, end), V::Fail)),
            ..seen(Some(w(10)))
        };
        let d = decide(&r, &s, &obs, t(end));
        assert_eq!(d.next.failures, n);
        if n <= 2 {
            assert_eq!(d.next.phase.name(), PhaseName::Progressing, "failure {n}");
            assert_eq!(actions(&d), ["record analysis"], "failure {n}");
            assert!(
                d.next.reason.contains(&format!("{n} of 2 failures")),
                "{}",
                d.next.reason
            );
        } else {
            assert_eq!(d.next.phase, Phase::Aborting { since: t(end) });
            assert_eq!(
                actions(&d),
                [
                    "set-weights 0",
                    "record abort",
                    "notify Critical",
                    "revert v2"
                ]
            );
            assert!(d
                .next
                .reason
                .contains("3 failed intervals, more than failureLimit 2"));
        }
        s = d.next;
    }
}

#[test]
fn inconclusive_never_promotes_and_has_its_own_limit() {
    let r = rollout(); // inconclusiveLimit 3
                       // At the last step (100%): inconclusive intervals never promote.
    let mut s = progressing(2, 0, 100);
    for n in 1..=4u32 {
        let end = 30 * n as i64;
        let obs = Observations {
            analysis: Some(interval(win(end - 30, end), V::Inconclusive)),
            ..seen(Some(w(100)))
        };
        let d = decide(&r, &s, &obs, t(end));
        assert_eq!(d.next.inconclusive, n);
        assert_eq!(d.next.failures, 0);
        assert!(
            !d.effects
                .iter()
                .any(|e| matches!(e, Effect::CommitPromotion { .. })),
            "inconclusive {n} must not promote"
        );
        let want = if n <= 3 {
            PhaseName::Progressing
        } else {
            PhaseName::Aborting
        };
        assert_eq!(d.next.phase.name(), want, "inconclusive {n}");
        s = d.next;
    }
    assert!(s
        .reason
        .contains("4 inconclusive intervals, more than inconclusiveLimit 3"));
}

#[test]
fn too_little_traffic_is_inconclusive() {
    let r = rollout_with("  minRequests: 100");
    let mut a = interval(win(0, 30), V::Pass);
    a.canary_requests = Some(12.0);
    let obs = Observations {
        analysis: Some(a),
        ..seen(Some(w(10)))
    };
    let d = decide(&r, &progressing(0, 0, 10), &obs, t(30));
    assert_eq!(d.next.phase.step(), Some(0));
    assert_eq!(d.next.inconclusive, 1);
    assert!(
        d.next.reason.contains("fewer than minRequests 100"),
        "{}",
        d.next.reason
    );
}

#[test]
fn progress_deadline_aborts_a_stuck_step() {
    let r = rollout(); // progressDeadline 5m
    let mut s = progressing(1, 0, 50);
    s.last_analysis = Some(judged(290));
    let d = decide(&r, &s, &seen(Some(w(50))), t(299));
    assert_eq!(d.next.phase.name(), PhaseName::Progressing);
    assert_eq!(d.requeue_after, secs(1), "wakes up at the deadline");
    let d = decide(&r, &s, &seen(Some(w(50))), t(300));
    assert_eq!(d.next.phase, Phase::Aborting { since: t(300) });
    assert!(d
        .next
        .reason
        .contains("step 2/3 (50%) did not complete within progressDeadline 5m"));
}

#[test]
fn a_decisive_sequential_failure_aborts_at_once() {
    let r = rollout_with("    errorCounts: {alpha: 0.02}");
    let mut a = interval(win(0, 30), V::Pass);
    a.error_counts = Some(ErrorCountSample {
        canary_errors: 60.0,
        canary_requests: 1000.0,
        stable_errors: 20.0,
        stable_requests: 9000.0,
    });
    let obs = Observations {
        analysis: Some(a),
        ..seen(Some(w(10)))
    };
    // One such interval is not enough (the test adds at most e^1.5 per interval)…
    let d = decide(&r, &progressing(0, 0, 10), &obs, t(30));
    assert_eq!(d.next.phase.name(), PhaseName::Progressing);
    assert_eq!(d.next.count_batches.len(), 1);
    // …after four earlier ones it aborts at once, before failureLimit.
    let mut s = progressing(0, 0, 10);
    s.count_batches = vec![d.next.count_batches[0]; 4];
    let d = decide(&r, &s, &obs, t(30));
    assert_eq!(d.next.phase.name(), PhaseName::Aborting);
    assert_eq!(d.next.failures, 1, "aborted before reaching failureLimit");
    assert!(d.next.p_value.unwrap() <= 0.02);
    assert_eq!(d.next.count_batches.len(), 5);
    assert_eq!(d.next.count_batches[4].requests, 10_000);
    assert!(d.next.reason.contains("error-counts"), "{}", d.next.reason);
}

#[test]
fn a_sequential_comparative_metric_keeps_its_history_and_aborts_when_it_rejects() {
    // Steps [10, 50, 100] hold one interval each: horizon 3, scale from the first 2.
    let r = rollout_with(
        "      - {name: latency, query: 'x{w=\"{{ workload }}\"}', compare: {direction: increase, sequential: {}}}",
    );
    let compare = r.spec.analysis.metrics[1].compare.clone().expect("compare");
    let observe = |canary: f64| {
        let mut a = interval(win(0, 30), V::Pass);
        a.checks.push(check_comparative(
            "latency",
            &compare,
            &[canary, canary + 1.0, canary + 2.0],
            &[100.0, 101.0, 102.0],
        ));
        Observations {
            analysis: Some(a),
            ..seen(Some(w(10)))
        }
    };
    // First interval: one difference kept, passing (no decision before the scale is known).
    let d = decide(&r, &progressing(0, 0, 10), &observe(101.0), t(30));
    assert_eq!(d.next.metric_differences.len(), 1);
    assert_eq!(d.next.metric_differences[0].metric, "latency");
    assert_eq!(d.next.metric_differences[0].differences, [1.0]);
    assert_ne!(d.next.phase.name(), PhaseName::Aborting);
    // With the scale from 1.0 and 1.2 (s ≈ 0.14), a third difference of 40 crosses the
    // boundary √3 · s · t₁(0.99) ≈ 7.8 on the running sum: abort at once, before failureLimit.
    let mut s = progressing(0, 0, 10);
    s.differences_mut("latency").extend([1.0, 1.2]);
    let d = decide(&r, &s, &observe(140.0), t(30));
    assert_eq!(
        d.next.phase.name(),
        PhaseName::Aborting,
        "{}",
        d.next.reason
    );
    assert_eq!(d.next.failures, 1, "aborted before reaching failureLimit");
    assert_eq!(d.next.metric_differences[0].differences, [1.0, 1.2, 40.0]);
    assert!(d.next.reason.contains("latency"), "{}", d.next.reason);
    // A small third difference keeps the sum under the boundary: the rollout goes on.
    let mut s = progressing(0, 0, 10);
    s.differences_mut("latency").extend([1.0, 1.2]);
    s.failures = 0;
    let d = decide(&r, &s, &observe(101.2), t(30));
    assert_ne!(
        d.next.phase.name(),
        PhaseName::Aborting,
        "{}",
        d.next.reason
    );
    // A new canary version starts a new history.
    let mut s = progressing(0, 0, 10);
    s.differences_mut("latency").extend([1.0, 1.2]);
    let obs = Observations {
        canary_version: Some("v3".into()),
        ..seen(Some(w(10)))
    };
    let d = decide(&r, &s, &obs, t(30));
    assert!(
        d.next.metric_differences.is_empty(),
        "{:?}",
        d.next.metric_differences
    );
}

// ---- approval ------------------------------------------------------------------------------

fn waiting(deadline: i64, held: bool) -> RolloutStatus {
    RolloutStatus {
        phase: Phase::WaitingForApproval {
            step: 1,
            since: t(0),
            deadline: t(deadline),
            held,
        },
        ..progressing(1, 0, 50)
    }
}

#[test]
fn passing_the_step_before_100_waits_for_approval() {
    let r = rollout_with("  approval: {deadline: 1h, onDeadline: abort}");
    let obs = Observations {
        analysis: Some(interval(win(0, 30), V::Pass)),
        ..seen(Some(w(50)))
    };
    let d = decide(&r, &progressing(1, 0, 50), &obs, t(30));
    assert_eq!(
        d.next.phase,
        Phase::WaitingForApproval {
            step: 1,
            since: t(30),
            deadline: t(30 + 3600),
            held: false
        }
    );
    assert_eq!(actions(&d), ["record wait-approval", "notify Info"]);
    // Analysis goes on while waiting; a pass does not move anything.
    let obs = Observations {
        analysis: Some(interval(win(30, 60), V::Pass)),
        ..seen(Some(w(50)))
    };
    let d2 = decide(&r, &d.next, &obs, t(60));
    assert_eq!(d2.next.phase.name(), PhaseName::WaitingForApproval);
    assert_eq!(actions(&d2), ["record analysis"]);
    // …and failures still count.
    let obs = Observations {
        analysis: Some(interval(win(60, 90), V::Fail)),
        ..seen(Some(w(50)))
    };
    assert_eq!(decide(&r, &d2.next, &obs, t(90)).next.failures, 1);
}

#[test]
fn approval_deadline_abort() {
    let r = rollout_with("  approval: {deadline: 10m, onDeadline: abort}");
    let mut s = waiting(600, false);
    s.last_analysis = Some(judged(590));
    let d = decide(&r, &s, &seen(Some(w(50))), t(599));
    assert_eq!(d.next.phase.name(), PhaseName::WaitingForApproval);
    assert_eq!(d.requeue_after, secs(1));
    let d = decide(&r, &s, &seen(Some(w(50))), t(600));
    assert_eq!(d.next.phase, Phase::Aborting { since: t(600) });
    assert_eq!(
        actions(&d),
        [
            "set-weights 0",
            "record abort",
            "notify Critical",
            "revert v2"
        ]
    );
    assert!(d.next.reason.contains("approval deadline"));
}

#[test]
fn approval_deadline_hold() {
    let r = rollout_with("  approval: {deadline: 10m, onDeadline: hold}");
    let s = waiting(600, false);
    let d = decide(&r, &s, &seen(Some(w(50))), t(600));
    assert_eq!(
        d.next.phase,
        Phase::WaitingForApproval {
            step: 1,
            since: t(0),
            deadline: t(600),
            held: true
        }
    );
    assert_eq!(actions(&d), ["record hold", "notify Warning"]);
    // Held: nothing more happens until an operator acts.
    let again = decide(&r, &d.next, &seen(Some(w(50))), t(5000));
    assert!(again.effects.is_empty(), "{:?}", actions(&again));
    assert_eq!(again.next.phase, d.next.phase);
    // Approval after the deadline still works.
    let obs = Observations {
        commands: vec![cmd("c1", CommandAction::Approve)],
        ..seen(Some(w(50)))
    };
    let d = decide(&r, &d.next, &obs, t(5001));
    assert_eq!(
        d.next.phase,
        Phase::Progressing {
            step: 2,
            since: t(5001),
            deadline: t(5301)
        }
    );
    assert_eq!(actions(&d), ["set-weights 100 if 50", "record approve"]);
}

// ---- commands ----------------------------------------------------------------------------

#[test]
fn commands_by_phase() {
    let r = rollout_with("  approval: {deadline: 10m}");
    let paused = |from| RolloutStatus {
        phase: Phase::Paused {
            from,
            step: Some(1),
            since: t(0),
        },
        ..progressing(1, 0, 50)
    };
    let promoting = RolloutStatus {
        phase: Phase::Promoting {
            since: t(0),
            deadline: t(300),
        },
        ..progressing(2, 0, 100)
    };
    let cases: Vec<(&str, RolloutStatus, CommandAction, Result<PhaseName, &str>)> = vec![
        (
            "approve/waiting",
            waiting(600, false),
            CommandAction::Approve,
            Ok(PhaseName::Progressing),
        ),
        (
            "approve/progressing",
            progressing(1, 0, 50),
            CommandAction::Approve,
            Err("not waiting for approval (phase Progressing)"),
        ),
        (
            "approve/pending",
            RolloutStatus::default(),
            CommandAction::Approve,
            Err("not waiting for approval (phase Pending)"),
        ),
        (
            "promote/progressing",
            progressing(0, 0, 10),
            CommandAction::Promote,
            Ok(PhaseName::Promoting),
        ),
        (
            "promote/paused",
            paused(PausedFrom::Progressing),
            CommandAction::Promote,
            Ok(PhaseName::Promoting),
        ),
        (
            "promote/promoting",
            promoting.clone(),
            CommandAction::Promote,
            Err("already under way"),
        ),
        (
            "promote/pending",
            RolloutStatus::default(),
            CommandAction::Promote,
            Err("no rollout to promote"),
        ),
        (
            "abort/progressing",
            progressing(1, 0, 50),
            CommandAction::Abort,
            Ok(PhaseName::Aborting),
        ),
        (
            "abort/waiting",
            waiting(600, false),
            CommandAction::Abort,
            Ok(PhaseName::Aborting),
        ),
        (
            "abort/paused",
            paused(PausedFrom::WaitingForApproval),
            CommandAction::Abort,
            Ok(PhaseName::Aborting),
        ),
        (
            "abort/promoting",
            promoting.clone(),
            CommandAction::Abort,
            Err("revert the promotion commit"),
        ),
        (
            "abort/paused-promoting",
            paused(PausedFrom::Promoting),
            CommandAction::Abort,
            Err("revert the promotion commit"),
        ),
        (
            "pause/progressing",
            progressing(1, 0, 50),
            CommandAction::Pause,
            Ok(PhaseName::Paused),
        ),
        (
            "pause/promoting",
            promoting.clone(),
            CommandAction::Pause,
            Ok(PhaseName::Paused),
        ),
        (
            "pause/paused",
            paused(PausedFrom::Progressing),
            CommandAction::Pause,
            Err("nothing to pause (phase Paused)"),
        ),
        (
            "resume/paused",
            paused(PausedFrom::Progressing),
            CommandAction::Resume,
            Ok(PhaseName::Progressing),
        ),
        (
            "resume/paused-waiting",
            paused(PausedFrom::WaitingForApproval),
            CommandAction::Resume,
            Ok(PhaseName::WaitingForApproval),
        ),
        (
            "resume/paused-promoting",
            paused(PausedFrom::Promoting),
            CommandAction::Resume,
            Ok(PhaseName::Promoting),
        ),
        (
            "resume/progressing",
            progressing(1, 0, 50),
            CommandAction::Resume,
            Err("not paused (phase Progressing)"),
        ),
    ];
    for (name, status, action, want) in cases {
        // No versions observed: only the command acts.
        let obs = Observations {
            commands: vec![cmd("c1", action)],
            weights: status.weights,
            ..Observations::default()
        };
        let d = decide(&r, &status, &obs, t(10));
        assert_eq!(d.next.handled_commands, ["c1"], "{name}");
        match want {
            Ok(phase) => {
                assert_eq!(d.next.phase.name(), phase, "{name}: {}", d.next.reason);
                assert!(d.rejected.is_empty(), "{name}");
                assert!(d.next.reason.contains("alice"), "{name}: {}", d.next.reason);
                let recorded = d.effects.iter().any(
                    |e| matches!(e, Effect::RecordDecision { actor: Some(a), .. } if a == "alice"),
                );
                assert!(recorded, "{name}: the actor is recorded");
            }
            Err(why) => {
                assert_eq!(d.next.phase, status.phase, "{name}");
                assert_eq!(d.rejected.len(), 1, "{name}");
                assert!(
                    d.rejected[0].reason.contains(why),
                    "{name}: {}",
                    d.rejected[0].reason
                );
                assert_eq!(actions(&d), ["record refuse"], "{name}");
            }
        }
    }
}

#[test]
fn a_command_is_handled_once() {
    let r = rollout();
    let obs = Observations {
        commands: vec![cmd("c7", CommandAction::Pause)],
        ..seen(Some(w(10)))
    };
    let d = decide(&r, &progressing(0, 0, 10), &obs, t(10));
    assert_eq!(d.next.phase.name(), PhaseName::Paused);
    // Delivered again (the runtime crashed before dropping it from its queue): ignored,
    // not rejected as "nothing to pause".
    let again = decide(&r, &d.next, &obs, t(11));
    assert!(again.rejected.is_empty());
    assert!(again.effects.is_empty());
    assert_eq!(again.next, d.next);
}

// ---- manual weights, new versions --------------------------------------------------------

#[test]
fn a_manual_weight_change_pauses_without_overwriting() {
    let r = rollout();
    let d = decide(&r, &progressing(1, 0, 50), &seen(Some(w(20))), t(10));
    assert_eq!(
        d.next.phase,
        Phase::Paused {
            from: PausedFrom::Progressing,
            step: Some(1),
            since: t(10)
        }
    );
    assert_eq!(actions(&d), ["record pause", "notify Warning"]);
    assert!(
        d.next
            .reason
            .contains("expected 50/50 stable/canary, found 80/20 stable/canary"),
        "{}",
        d.next.reason
    );
    assert_eq!(d.next.weights, Some(w(50)), "slogate's weights are kept");
    // Resume writes slogate's weights back, guarded by what the route holds now.
    let obs = Observations {
        commands: vec![cmd("r1", CommandAction::Resume)],
        ..seen(Some(w(20)))
    };
    let d = decide(&r, &d.next, &obs, t(20));
    assert_eq!(actions(&d), ["set-weights 50 if 20", "record resume"]);
    assert_eq!(d.next.phase.name(), PhaseName::Progressing);
}

#[test]
fn a_router_refusing_a_write_pauses_too() {
    let r = rollout();
    let s = decide(
        &r,
        &progressing(0, 0, 10),
        &Observations {
            analysis: Some(interval(win(0, 30), V::Pass)),
            ..seen(Some(w(10)))
        },
        t(30),
    )
    .next;
    let key = pending_key(&s, PendingKind::SetWeights);
    let obs = Observations {
        completions: vec![done(
            &key,
            t(31),
            EffectOutcome::ManualChange {
                found: w(33),
                header_match: None,
            },
        )],
        ..seen(Some(w(33)))
    };
    let d = decide(&r, &s, &obs, t(31));
    assert_eq!(d.next.phase.name(), PhaseName::Paused);
    assert!(d.next.pending.is_empty());
    assert!(!actions(&d).iter().any(|a| a.starts_with("set-weights")));
    // A "manual change" that is the target itself is an earlier attempt that landed.
    let obs = Observations {
        completions: vec![done(
            &key,
            t(31),
            EffectOutcome::ManualChange {
                found: w(50),
                header_match: None,
            },
        )],
        ..seen(Some(w(50)))
    };
    let d = decide(&r, &s, &obs, t(31));
    assert_eq!(d.next.phase.name(), PhaseName::Progressing);
    assert_eq!(d.next.weights, Some(w(50)));
}

#[test]
fn a_new_canary_version_mid_rollout_restarts_at_step_0() {
    let r = rollout();
    let mut s = progressing(1, 0, 50);
    s.failures = 2;
    s.inconclusive = 1;
    let phases = [
        s.clone(),
        waiting(600, false),
        RolloutStatus {
            phase: Phase::Paused {
                from: PausedFrom::Progressing,
                step: Some(1),
                since: t(0),
            },
            ..s.clone()
        },
    ];
    for s in phases {
        let obs = Observations {
            canary_version: Some("v3".into()),
            ..seen(Some(w(50)))
        };
        let d = decide(&r, &s, &obs, t(40));
        assert_eq!(
            d.next.phase,
            Phase::Progressing {
                step: 0,
                since: t(40),
                deadline: t(340)
            },
            "from {:?}",
            s.phase.name()
        );
        assert_eq!(d.next.attempt, 2);
        assert_eq!(d.next.canary_version.as_deref(), Some("v3"));
        assert_eq!((d.next.failures, d.next.inconclusive), (0, 0));
        assert_eq!(
            actions(&d),
            ["set-weights 10 if 50", "record restart", "notify Info"]
        );
        assert!(
            d.next.reason.contains("v3 replaced v2"),
            "{}",
            d.next.reason
        );
        assert_eq!(
            pending_key(&d.next, PendingKind::SetWeights),
            "shop/checkout/2/1-set-weights"
        );
    }
}

// ---- promotion, abort ---------------------------------------------------------------------

#[test]
fn promotion_commits_then_returns_traffic_to_stable() {
    let r = rollout();
    let obs = Observations {
        analysis: Some(interval(win(0, 30), V::Pass)),
        ..seen(Some(w(100)))
    };
    let d = decide(&r, &progressing(2, 0, 100), &obs, t(30));
    assert_eq!(
        d.next.phase,
        Phase::Promoting {
            since: t(30),
            deadline: t(330)
        }
    );
    assert_eq!(
        actions(&d),
        ["record promote", "notify Info", "commit-promotion v2"]
    );
    let key = pending_key(&d.next, PendingKind::CommitPromotion);
    // Committed; stable does not run it yet.
    let obs = Observations {
        completions: vec![done(
            &key,
            t(31),
            EffectOutcome::PromotionCommitted {
                sha: "abc123".into(),
            },
        )],
        ..seen(Some(w(100)))
    };
    let d = decide(&r, &d.next, &obs, t(31));
    assert_eq!(d.next.promotion_commit.as_deref(), Some("abc123"));
    assert_eq!(actions(&d), ["record promotion-committed"]);
    assert_eq!(d.next.phase.name(), PhaseName::Promoting);
    // Stable now runs v2: traffic back to stable.
    let mut obs = seen(Some(w(100)));
    obs.stable_version = Some("v2".into());
    let d = decide(&r, &d.next, &obs, t(60));
    assert_eq!(actions(&d), ["set-weights 0 if 100"]);
    let key = pending_key(&d.next, PendingKind::SetWeights);
    obs.completions = vec![done(
        &key,
        t(61),
        EffectOutcome::WeightsSet { weights: w(0) },
    )];
    obs.weights = Some(w(0));
    let d = decide(&r, &d.next, &obs, t(61));
    assert_eq!(d.next.phase, Phase::Succeeded { since: t(61) });
    assert_eq!(actions(&d), ["record promoted", "notify Info"]);
    // Succeeded and canary == stable: nothing starts again.
    obs.completions.clear();
    obs.canary_version = Some("v2".into());
    let again = decide(&r, &d.next, &obs, t(90));
    assert!(again.effects.is_empty());
    assert_eq!(again.next.phase.name(), PhaseName::Succeeded);
}

#[test]
fn a_promotion_that_does_not_land_is_held_not_aborted() {
    let r = rollout();
    let s = RolloutStatus {
        phase: Phase::Promoting {
            since: t(0),
            deadline: t(300),
        },
        promotion_commit: Some("abc".into()),
        ..progressing(2, 0, 100)
    };
    let d = decide(&r, &s, &seen(Some(w(100))), t(300));
    assert_eq!(
        d.next.phase,
        Phase::Paused {
            from: PausedFrom::Promoting,
            step: None,
            since: t(300)
        }
    );
    assert_eq!(actions(&d), ["record pause", "notify Critical"]);
    assert!(
        d.next.reason.contains("stable runs v1"),
        "{}",
        d.next.reason
    );
}

#[test]
fn abort_reverts_once_and_ends_failed() {
    let r = rollout();
    let obs = Observations {
        commands: vec![cmd("a1", CommandAction::Abort)],
        ..seen(Some(w(50)))
    };
    let d = decide(&r, &progressing(1, 0, 50), &obs, t(10));
    assert_eq!(
        actions(&d),
        [
            "set-weights 0",
            "record abort",
            "notify Critical",
            "revert v2"
        ]
    );
    let wk = pending_key(&d.next, PendingKind::SetWeights);
    let rk = pending_key(&d.next, PendingKind::RevertCanary);
    match d
        .effects
        .iter()
        .find(|e| matches!(e, Effect::RevertCanary { .. }))
    {
        Some(Effect::RevertCanary {
            app, path, reason, ..
        }) => {
            assert_eq!((app.as_str(), path.as_str()), ("checkout", "apps/checkout"));
            assert!(reason.contains("aborted by alice"));
        }
        other => panic!("{other:?}"),
    }
    // Weights done, revert not yet: still aborting, and the revert is not issued again
    // while its completion may still come… unless the runtime lost it (no completion).
    let obs = Observations {
        completions: vec![done(
            &wk,
            t(11),
            EffectOutcome::WeightsSet { weights: w(0) },
        )],
        ..seen(Some(w(0)))
    };
    let d2 = decide(&r, &d.next, &obs, t(11));
    assert_eq!(d2.next.phase.name(), PhaseName::Aborting);
    assert_eq!(actions(&d2), ["revert v2"], "re-issued with the same key");
    assert_eq!(d2.effects[0].key(), rk);
    let obs = Observations {
        completions: vec![done(
            &rk,
            t(12),
            EffectOutcome::Reverted {
                sha: Some("def456".into()),
                detail: "reverted 1 commit".into(),
            },
        )],
        ..seen(Some(w(0)))
    };
    let d3 = decide(&r, &d2.next, &obs, t(12));
    assert_eq!(d3.next.phase, Phase::Failed { since: t(12) });
    assert_eq!(d3.next.revert_commit.as_deref(), Some("def456"));
    assert!(d3.next.reason.contains("aborted by alice") && d3.next.reason.contains("def456"));
    assert_eq!(
        actions(&d3),
        ["record reverted", "record failed", "notify Warning"]
    );
    // Failed with the canary still on v2 (the revert is not synced yet): nothing restarts.
    let d4 = decide(&r, &d3.next, &seen(Some(w(0))), t(40));
    assert!(d4.effects.is_empty());
    assert_eq!(d4.next.phase.name(), PhaseName::Failed);
    // A new version later starts a new attempt.
    let mut obs = seen(Some(w(0)));
    obs.canary_version = Some("v3".into());
    let d5 = decide(&r, &d4.next, &obs, t(50));
    assert_eq!(d5.next.phase.name(), PhaseName::Progressing);
    assert_eq!(d5.next.attempt, 2);
}

#[test]
fn failed_effects_back_off_and_a_revert_gives_up() {
    let r = rollout();
    let obs = Observations {
        commands: vec![cmd("a1", CommandAction::Abort)],
        ..seen(Some(w(50)))
    };
    let mut s = decide(&r, &progressing(1, 0, 50), &obs, t(0)).next;
    let wk = pending_key(&s, PendingKind::SetWeights);
    let rk = pending_key(&s, PendingKind::RevertCanary);
    let obs = Observations {
        completions: vec![
            done(&wk, t(1), EffectOutcome::WeightsSet { weights: w(0) }),
            done(
                &rk,
                t(1),
                EffectOutcome::Failed {
                    error: "push rejected".into(),
                },
            ),
        ],
        ..seen(Some(w(0)))
    };
    let d = decide(&r, &s, &obs, t(1));
    assert_eq!(
        actions(&d),
        ["record retry"],
        "not re-issued before its back-off"
    );
    assert_eq!(d.requeue_after, secs(5));
    assert_eq!(d.next.pending[0].retry_at, Some(t(6)));
    let d = decide(&r, &d.next, &seen(Some(w(0))), t(6));
    assert_eq!(actions(&d), ["revert v2"]);
    assert_eq!(d.effects[0].key(), rk);
    s = d.next;
    // Four more failures: 10s, 20s, 40s back-offs, then it gives up.
    let mut now = 6;
    for attempt in 2..=5u32 {
        let obs = Observations {
            completions: vec![done(
                &rk,
                t(now),
                EffectOutcome::Failed {
                    error: "push rejected".into(),
                },
            )],
            ..seen(Some(w(0)))
        };
        let d = decide(&r, &s, &obs, t(now));
        if attempt < 5 {
            assert_eq!(d.next.phase.name(), PhaseName::Aborting);
            let backoff = 5 << (attempt - 1);
            // Woken up by the back-off, or by the 30s poll interval, whichever is first.
            assert_eq!(d.requeue_after, secs(backoff.min(30)), "attempt {attempt}");
            now += backoff as i64;
        } else {
            assert_eq!(d.next.phase.name(), PhaseName::Failed);
            assert!(d.next.reason.contains("revert the canary commit by hand"));
            assert!(actions(&d).contains(&"notify Critical".to_string()));
        }
        s = d.next;
    }
}

#[test]
fn freeze_holds_steps_but_not_failures() {
    let r = rollout();
    let frozen = |v| Observations {
        analysis: Some(interval(win(0, 30), v)),
        freeze: Some("budget".into()),
        ..seen(Some(w(10)))
    };
    let d = decide(&r, &progressing(0, 0, 10), &frozen(V::Pass), t(30));
    assert_eq!(d.next.phase.step(), Some(0));
    assert_eq!(actions(&d), ["record hold"]);
    assert!(d.next.reason.contains("frozen"));
    let d = decide(&r, &progressing(0, 0, 10), &frozen(V::Fail), t(30));
    assert_eq!(d.next.failures, 1);
}

// ---- restarts and crash safety ---------------------------------------------------------

/// One status per phase, as stored, with the observations a restarted runtime would make.
fn every_phase() -> Vec<(RolloutStatus, Observations, Duration)> {
    let aborting = RolloutStatus {
        phase: Phase::Aborting { since: t(0) },
        pending: decide(
            &rollout(),
            &progressing(1, 0, 50),
            &Observations {
                commands: vec![cmd("a", CommandAction::Abort)],
                ..seen(Some(w(50)))
            },
            t(0),
        )
        .next
        .pending,
        ..progressing(1, 0, 50)
    };
    let mut stable_v2 = seen(Some(w(0)));
    stable_v2.canary_version = Some("v2".into());
    stable_v2.stable_version = Some("v2".into());
    vec![
        (
            RolloutStatus {
                reason: "waiting for a canary version that differs from the stable version".into(),
                ..RolloutStatus::default()
            },
            Observations {
                canary_version: Some("v1".into()),
                ..seen(Some(w(0)))
            },
            secs(30),
        ),
        // 10s into a 30s interval: 20s left.
        (progressing(1, -10, 50), seen(Some(w(50))), secs(20)),
        (waiting(600, false), seen(Some(w(50))), secs(30)),
        (
            RolloutStatus {
                phase: Phase::Paused {
                    from: PausedFrom::Progressing,
                    step: Some(1),
                    since: t(-5),
                },
                ..progressing(1, -100, 50)
            },
            seen(Some(w(50))),
            secs(30),
        ),
        (
            RolloutStatus {
                phase: Phase::Promoting {
                    since: t(-10),
                    deadline: t(20),
                },
                promotion_commit: Some("abc".into()),
                ..progressing(2, -100, 100)
            },
            seen(Some(w(100))),
            secs(20),
        ),
        (
            RolloutStatus {
                phase: Phase::Succeeded { since: t(-50) },
                weights: Some(w(0)),
                ..progressing(2, -100, 0)
            },
            stable_v2,
            secs(30),
        ),
        (aborting, seen(Some(w(50))), secs(30)),
        (
            RolloutStatus {
                phase: Phase::Failed { since: t(-50) },
                weights: Some(w(0)),
                ..progressing(1, -100, 0)
            },
            seen(Some(w(0))),
            secs(30),
        ),
    ]
}

#[test]
fn a_restart_resumes_every_phase_where_it_was() {
    let r = rollout();
    let phases: Vec<PhaseName> = every_phase()
        .iter()
        .map(|(s, _, _)| s.phase.name())
        .collect();
    assert_eq!(phases, PhaseName::ALL, "one case per phase");
    for (status, obs, requeue) in every_phase() {
        let name = status.phase.name();
        let d = decide(&r, &status, &obs, t(0));
        assert_eq!(d.next.phase, status.phase, "{name}: same phase");
        assert_eq!(
            d.next.phase.step(),
            status.phase.step(),
            "{name}: same step"
        );
        assert_eq!(d.requeue_after, requeue, "{name}: requeue");
        // Only effects that were pending are issued, with their stored keys.
        for e in &d.effects {
            assert!(
                status.pending.iter().any(|p| p.key == e.key()),
                "{name}: unexpected new effect {e:?}"
            );
        }
        assert_eq!(d.effects.len(), status.pending.len(), "{name}");
        assert_eq!(d.next, status, "{name}: nothing changes on a plain restart");
    }
}

#[test]
fn a_crash_between_store_and_effects_reissues_the_same_keys() {
    let r = rollout();
    // Every transition that issues effects.
    let transitions: Vec<(RolloutStatus, Observations)> = vec![
        (RolloutStatus::default(), seen(Some(w(0)))),
        (
            progressing(0, 0, 10),
            Observations {
                analysis: Some(interval(win(0, 30), V::Pass)),
                ..seen(Some(w(10)))
            },
        ),
        (
            progressing(2, 0, 100),
            Observations {
                analysis: Some(interval(win(0, 30), V::Pass)),
                ..seen(Some(w(100)))
            },
        ),
        (
            progressing(1, 0, 50),
            Observations {
                commands: vec![cmd("x", CommandAction::Abort)],
                ..seen(Some(w(50)))
            },
        ),
    ];
    for (status, obs) in transitions {
        let first = decide(&r, &status, &obs, t(30));
        let outcome_keys: Vec<&str> = first
            .effects
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    Effect::SetWeights { .. }
                        | Effect::RevertCanary { .. }
                        | Effect::CommitPromotion { .. }
                )
            })
            .map(Effect::key)
            .collect();
        assert!(!outcome_keys.is_empty());
        // The runtime stored `first.next` and died before applying anything; after the
        // restart it observes the world unchanged (and the route as before).
        let again = decide(&r, &first.next, &seen(obs.weights), t(31));
        let again_keys: Vec<&str> = again.effects.iter().map(Effect::key).collect();
        assert_eq!(
            again_keys, outcome_keys,
            "same effects, same keys, nothing else"
        );
        assert_eq!(again.next.phase, first.next.phase);
    }
}

#[test]
fn status_round_trips_through_json_for_every_phase() {
    for (status, _, _) in every_phase() {
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(json["phase"], status.phase.name().as_str());
        let back: RolloutStatus = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back, status);
        // And the CRD's status schema accepts it.
        let yaml: slogate::model::yaml::Value = slogate::model::yaml::to_value(&json).unwrap();
        let mut problems = Vec::new();
        slogate::rollout::schema::check(
            &slogate::rollout::schema::status_schema(),
            &yaml,
            "status",
            &mut problems,
        );
        assert!(
            problems.is_empty(),
            "{:?}: {problems:?}",
            status.phase.name()
        );
    }
}

// ---- whole rollouts through a simulated runtime --------------------------------------------

/// Applies effects the way the runtime does and feeds completions back.
struct Sim {
    r: Rollout,
    status: RolloutStatus,
    now: i64,
    route: Weights,
    header: Option<HeaderMatch>,
    canary: String,
    stable: String,
    reverts: Vec<String>,
    promotions: Vec<String>,
    records: Vec<String>,
    weight_history: Vec<u32>,
}

impl Sim {
    fn new(r: Rollout) -> Self {
        Sim {
            r,
            status: RolloutStatus::default(),
            now: 0,
            route: w(0),
            header: None,
            canary: "v2".into(),
            stable: "v1".into(),
            reverts: Vec::new(),
            promotions: Vec::new(),
            records: Vec::new(),
            weight_history: Vec::new(),
        }
    }

    fn obs(&self) -> Observations {
        Observations {
            canary_version: Some(self.canary.clone()),
            stable_version: Some(self.stable.clone()),
            weights: Some(self.route),
            header_match: self.header.clone(),
            ..Observations::default()
        }
    }

    /// One tick: run the analysis if due, decide, store, apply, decide again with the
    /// completions until nothing is left to do.
    fn tick(&mut self, verdict: V) -> Duration {
        let mut obs = self.obs();
        if let Some(window) = analysis_window(&self.r, &self.status, t(self.now)) {
            obs.analysis = Some(interval(window, verdict));
        }
        for _ in 0..10 {
            let d = decide(&self.r, &self.status, &obs, t(self.now));
            self.status = d.next.clone();
            if d.effects.is_empty() {
                return d.requeue_after;
            }
            let mut completions = Vec::new();
            for e in d.effects {
                match e {
                    Effect::SetWeights {
                        key,
                        weights,
                        expected,
                        header_match,
                        expected_header_match,
                    } => {
                        let holds_expected = expected.is_none_or(|x| {
                            x == self.route && expected_header_match == self.header
                        });
                        let holds_target = weights == self.route && header_match == self.header;
                        let outcome = if holds_expected || holds_target {
                            self.route = weights;
                            self.header = header_match;
                            self.weight_history.push(weights.canary);
                            EffectOutcome::WeightsSet { weights }
                        } else {
                            EffectOutcome::ManualChange {
                                found: self.route,
                                header_match: self.header.clone(),
                            }
                        };
                        completions.push(done(&key, t(self.now), outcome));
                    }
                    Effect::RevertCanary { key, version, .. } => {
                        self.reverts.push(version);
                        completions.push(done(
                            &key,
                            t(self.now),
                            EffectOutcome::Reverted {
                                sha: Some("r1".into()),
                                detail: "ok".into(),
                            },
                        ));
                    }
                    Effect::CommitPromotion { key, version, .. } => {
                        self.promotions.push(version);
                        completions.push(done(
                            &key,
                            t(self.now),
                            EffectOutcome::PromotionCommitted { sha: "p1".into() },
                        ));
                    }
                    Effect::RecordDecision { action, .. } => self.records.push(action),
                    Effect::Notify { .. } => {}
                }
            }
            obs = Observations {
                completions,
                ..self.obs()
            };
        }
        panic!("decide did not settle");
    }

    fn run(&mut self, verdict: impl Fn(u32) -> V, max_ticks: usize) {
        for _ in 0..max_ticks {
            let step = self.status.phase.step().unwrap_or(0);
            let wait = self.tick(verdict(step));
            if matches!(
                self.status.phase.name(),
                PhaseName::Succeeded | PhaseName::Failed
            ) {
                return;
            }
            // Argo CD syncs a promotion a little later.
            if let Some(v) = self.promotions.last() {
                self.stable = v.clone();
            }
            self.now += wait.as_secs().max(1) as i64;
        }
    }
}

#[test]
fn a_healthy_canary_goes_through_every_step_and_is_promoted() {
    let r = from_yaml_str(&BASE.replace("  steps: [10, 50, 100]\n", "")).unwrap();
    let mut sim = Sim::new(r);
    sim.run(|_| V::Pass, 100);
    assert_eq!(
        sim.status.phase.name(),
        PhaseName::Succeeded,
        "{}",
        sim.status.reason
    );
    assert_eq!(sim.weight_history, [10, 25, 50, 75, 100, 0]);
    assert_eq!(sim.promotions, ["v2"]);
    assert!(sim.reverts.is_empty());
    // Every step lasted a full interval (5 × 30s, no early step), then one more interval
    // for Argo CD to sync the promotion.
    assert_eq!(sim.now, 180, "{:?}", sim.records);
    assert_eq!(
        sim.records.iter().filter(|a| *a == "step").count(),
        4,
        "{:?}",
        sim.records
    );
}

#[test]
fn a_failing_canary_aborts_and_is_reverted() {
    let mut sim = Sim::new(rollout());
    sim.run(|step| if step == 0 { V::Pass } else { V::Fail }, 100);
    assert_eq!(sim.status.phase.name(), PhaseName::Failed);
    assert_eq!(sim.weight_history, [10, 50, 0]);
    assert_eq!(sim.reverts, ["v2"]);
    assert!(sim.promotions.is_empty());
    assert_eq!(sim.status.failures, 3);
}

#[test]
fn a_canary_without_traffic_never_promotes() {
    let mut sim = Sim::new(rollout());
    sim.run(|_| V::Inconclusive, 100);
    assert_eq!(sim.status.phase.name(), PhaseName::Failed);
    assert_eq!(sim.weight_history, [10, 0]);
    assert!(sim.promotions.is_empty());
    assert_eq!(sim.status.inconclusive, 4);
}

#[test]
fn a_restart_mid_interval_never_takes_a_step_early() {
    let mut sim = Sim::new(rollout());
    sim.tick(V::Pass); // starts, weights confirmed at t=0
    assert_eq!(sim.status.phase.step(), Some(0));
    // The process restarts at t=17 with the stored status: no analysis is due yet.
    sim.now = 17;
    let wait = sim.tick(V::Pass);
    assert_eq!(wait, secs(13));
    assert_eq!(sim.status.phase.step(), Some(0));
    sim.now = 30;
    sim.tick(V::Pass);
    assert_eq!(sim.status.phase.step(), Some(1));
}

// ---- steps that hold, header steps ---------------------------------------------------------

/// BASE with other steps and a progressDeadline of 10m (holds must fit in it).
fn rollout_steps(steps: &str, extra: &str) -> Rollout {
    let base = match extra.trim().strip_prefix("failureLimit: ") {
        Some(n) => BASE.replace("  failureLimit: 2\n", &format!("  failureLimit: {n}\n")),
        None => BASE.to_string(),
    };
    let extra = if extra.contains("failureLimit") {
        ""
    } else {
        extra
    };
    let text = base
        .replace("  steps: [10, 50, 100]\n", &format!("  steps: {steps}\n"))
        .replace("  progressDeadline: 5m\n", "  progressDeadline: 10m\n")
        .replace("  gitops:", &format!("{extra}\n  gitops:"));
    from_yaml_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn canary_header() -> HeaderMatch {
    serde_json::from_value(serde_json::json!({"headers": {"x-canary": "true"}})).unwrap()
}

/// Tick every interval (30s) from `sim.now` to `until`, with `verdict` for each tick's time.
fn tick_until(sim: &mut Sim, until: i64, verdict: impl Fn(i64) -> V) {
    while sim.now < until {
        sim.now += 30;
        let v = verdict(sim.now);
        sim.tick(v);
    }
}

#[test]
fn a_hold_passes_with_analysis_every_interval() {
    let r = rollout_steps("[{weight: 10, hold: 5m}, 100]", "");
    let mut sim = Sim::new(r.clone());
    sim.tick(V::Pass); // starts at t=0, weights confirmed at t=0
    assert_eq!(
        sim.status.phase,
        Phase::Progressing {
            step: 0,
            since: t(0),
            // progressDeadline (10m) beyond the hold (5m).
            deadline: t(900),
        }
    );
    for at in 1..10 {
        sim.now = at * 30;
        sim.tick(V::Pass);
        assert_eq!(
            sim.status.phase.step(),
            Some(0),
            "t={}: still holding",
            sim.now
        );
        assert_eq!(sim.status.passes, at as u32, "one analysis per interval");
        assert!(
            sim.status.reason.contains(&format!(
                "holding for {}",
                slogate::slo::PromDuration::from_secs((300 - at * 30) as u64)
            )),
            "t={}: {}",
            sim.now,
            sim.status.reason
        );
        assert_eq!(
            step_remaining(&r, &sim.status, t(sim.now)),
            Some(secs((300 - at * 30) as u64))
        );
    }
    assert_eq!(
        sim.weight_history,
        [10],
        "no step before the hold has passed"
    );
    sim.now = 300;
    sim.tick(V::Pass);
    assert_eq!(sim.status.phase.step(), Some(1), "{}", sim.status.reason);
    assert_eq!(sim.status.passes, 10);
    assert_eq!(sim.weight_history, [10, 100]);
    sim.run(|_| V::Pass, 20);
    assert_eq!(sim.status.phase.name(), PhaseName::Succeeded);
    assert_eq!(sim.weight_history, [10, 100, 0]);
}

#[test]
fn plain_steps_keep_lasting_one_interval_next_to_holds() {
    let r = rollout_steps("[10, {weight: 50, hold: 2m}, 100]", "");
    let mut sim = Sim::new(r);
    sim.tick(V::Pass);
    tick_until(&mut sim, 30, |_| V::Pass);
    assert_eq!(sim.weight_history, [10, 50], "the plain step lasted 30s");
    tick_until(&mut sim, 120, |_| V::Pass);
    assert_eq!(sim.status.phase.step(), Some(1), "50% holds 2m from t=30");
    tick_until(&mut sim, 150, |_| V::Pass);
    assert_eq!(sim.weight_history, [10, 50, 100]);
}

#[test]
fn a_failure_in_the_middle_of_a_hold_aborts() {
    // failureLimit 0: the first failed interval aborts, whatever the hold left.
    let r = rollout_steps("[{weight: 10, hold: 5m}, 100]", "  failureLimit: 0");
    let mut sim = Sim::new(r);
    sim.tick(V::Pass);
    tick_until(
        &mut sim,
        120,
        |now| if now < 120 { V::Pass } else { V::Fail },
    );
    assert_eq!(
        sim.status.phase.name(),
        PhaseName::Failed,
        "{}",
        sim.status.reason
    );
    assert!(
        sim.status.reason.contains("step 1/2 (10%)"),
        "{}",
        sim.status.reason
    );
    assert_eq!(sim.weight_history, [10, 0]);
    assert_eq!(sim.reverts, ["v2"]);

    // Within failureLimit a failed interval counts and the hold goes on; the step advances
    // with the first passing interval once the hold has passed.
    let r = rollout_steps("[{weight: 10, hold: 5m}, 100]", "  failureLimit: 1");
    let mut sim = Sim::new(r);
    sim.tick(V::Pass);
    tick_until(
        &mut sim,
        300,
        |now| if now == 120 { V::Fail } else { V::Pass },
    );
    assert_eq!(sim.status.failures, 1);
    assert_eq!(sim.weight_history, [10, 100]);
}

#[test]
fn a_restart_in_the_middle_of_a_hold_resumes_with_the_remaining_time() {
    let r = rollout_steps("[{weight: 10, hold: 5m}, 100]", "");
    let mut sim = Sim::new(r.clone());
    sim.tick(V::Pass);
    tick_until(&mut sim, 150, |_| V::Pass);
    // The process stops at t=150 and starts again at t=170 with the stored status (JSON,
    // as the state store and the status subresource hold it).
    let stored = serde_json::to_value(&sim.status).unwrap();
    let status: RolloutStatus = serde_json::from_value(stored).unwrap();
    assert_eq!(status, sim.status);
    assert_eq!(step_remaining(&r, &status, t(170)), Some(secs(130)));
    let mut restarted = Sim::new(r.clone());
    restarted.status = status;
    restarted.route = w(10);
    restarted.now = 170;
    // The next window is due at t=180 (a full interval after the last judged one).
    assert_eq!(analysis_window(&r, &restarted.status, t(170)), None);
    let wait = restarted.tick(V::Pass);
    assert_eq!(wait, secs(10));
    tick_until(&mut restarted, 270, |_| V::Pass);
    assert_eq!(
        restarted.status.phase.step(),
        Some(0),
        "the hold is not reset, nor cut short"
    );
    assert!(restarted.weight_history.is_empty());
    tick_until(&mut restarted, 300, |_| V::Pass);
    assert_eq!(
        restarted.status.phase.step(),
        Some(1),
        "{}",
        restarted.status.reason
    );
    assert_eq!(restarted.weight_history, [100]);
}

#[test]
fn a_hold_combined_with_the_approval_gate() {
    let r = rollout_steps(
        "[{weight: 10, hold: 2m}, 100]",
        "  approval: {deadline: 1h, onDeadline: abort}",
    );
    let mut sim = Sim::new(r.clone());
    sim.tick(V::Pass);
    tick_until(&mut sim, 90, |_| V::Pass);
    assert_eq!(sim.status.phase.name(), PhaseName::Progressing);
    // Approving during the hold is refused: the gate opens once the hold has passed.
    let obs = Observations {
        commands: vec![cmd("c1", CommandAction::Approve)],
        ..sim.obs()
    };
    let d = decide(&r, &sim.status, &obs, t(95));
    assert_eq!(d.rejected.len(), 1, "{:?}", d.rejected);
    assert!(d.rejected[0].reason.contains("not waiting for approval"));
    tick_until(&mut sim, 120, |_| V::Pass);
    assert_eq!(
        sim.status.phase.name(),
        PhaseName::WaitingForApproval,
        "{}",
        sim.status.reason
    );
    assert_eq!(sim.weight_history, [10]);
    let obs = Observations {
        commands: vec![cmd("c2", CommandAction::Approve)],
        ..sim.obs()
    };
    let d = decide(&r, &sim.status, &obs, t(125));
    assert!(d.rejected.is_empty(), "{:?}", d.rejected);
    assert_eq!(d.next.phase.step(), Some(1));
    assert!(actions(&d).contains(&"set-weights 100 if 10".to_string()));
}

#[test]
fn a_header_step_then_weighted_steps() {
    let r = rollout_steps(
        "[{match: {headers: {x-canary: \"true\"}}, hold: 1m}, {weight: 10, hold: 1m}, 100]",
        "",
    );
    let mut sim = Sim::new(r.clone());
    sim.tick(V::Pass);
    // Step 0: weight 0 to the canary plus the header route.
    assert_eq!(sim.route, w(0));
    assert_eq!(sim.header, Some(canary_header()));
    assert_eq!(sim.status.header_match, Some(canary_header()));
    assert!(
        sim.status
            .reason
            .contains("step 1/3 (header x-canary: \"true\")"),
        "{}",
        sim.status.reason
    );
    tick_until(&mut sim, 30, |_| V::Pass);
    assert_eq!(sim.status.phase.step(), Some(0), "held 1m");
    tick_until(&mut sim, 60, |_| V::Pass);
    // Step 1: 10% by weight, the header route removed in the same write.
    assert_eq!(sim.status.phase.step(), Some(1), "{}", sim.status.reason);
    assert_eq!((sim.route, sim.header.clone()), (w(10), None));
    assert_eq!(sim.status.header_match, None);
    sim.run(|_| V::Pass, 20);
    assert_eq!(sim.status.phase.name(), PhaseName::Succeeded);
    assert_eq!(sim.weight_history, [0, 10, 100, 0]);
}

#[test]
fn a_header_step_guards_its_header_route_like_weights() {
    let r = rollout_steps(
        "[{match: {headers: {x-canary: {prefix: beta-}}}, hold: 1m}, 100]",
        "",
    );
    let mut sim = Sim::new(r.clone());
    sim.tick(V::Pass);
    let header = sim.header.clone().expect("header route set");
    // The next write is guarded by the header route slogate set.
    tick_until(&mut sim, 60, |_| V::Pass);
    assert_eq!(sim.weight_history, [0, 100]);

    // Someone removes the header route by hand during the header step: paused, not rewritten.
    let mut sim = Sim::new(r.clone());
    sim.tick(V::Pass);
    sim.header = None;
    sim.now = 10;
    sim.tick(V::Pass);
    assert_eq!(sim.status.phase.name(), PhaseName::Paused);
    assert!(
        sim.status.reason.contains("header route to the canary"),
        "{}",
        sim.status.reason
    );
    assert_eq!(sim.header, None, "nothing rewritten");
    // Resume writes slogate's routing back, header route included.
    let obs = Observations {
        commands: vec![cmd("r1", CommandAction::Resume)],
        ..sim.obs()
    };
    let d = decide(&r, &sim.status, &obs, t(20));
    let set = d
        .effects
        .iter()
        .find_map(|e| e.routing())
        .expect("a routing write");
    assert_eq!(set.0.header_match, Some(header));
    assert_eq!(
        set.1.map(|e| e.header_match),
        Some(None),
        "guarded by what was seen"
    );

    // An abort during the header step removes the header route (unconditional write).
    let mut sim = Sim::new(r.clone());
    sim.tick(V::Pass);
    let obs = Observations {
        commands: vec![cmd("a1", CommandAction::Abort)],
        ..sim.obs()
    };
    let d = decide(&r, &sim.status, &obs, t(5));
    let set = d.effects.iter().find_map(|e| e.routing()).unwrap();
    assert_eq!(
        (set.0.weights, set.0.header_match, set.1),
        (w(0), None, None)
    );
}

#[test]
fn a_quiet_header_step_is_inconclusive_never_a_pass() {
    let r = rollout_steps(
        "[{match: {headers: {x-canary: \"true\"}}}, 100]",
        "  minRequests: 100",
    );
    let mut s = progressing(0, 0, 0);
    s.header_match = Some(canary_header());
    let quiet = IntervalObservation {
        canary_requests: Some(3.0),
        ..interval(win(0, 30), V::Pass)
    };
    let obs = Observations {
        analysis: Some(quiet),
        header_match: Some(canary_header()),
        ..seen(Some(w(0)))
    };
    let d = decide(&r, &s, &obs, t(30));
    assert_eq!(d.next.inconclusive, 1);
    assert_eq!(d.next.passes, 0);
    assert_eq!(d.next.phase.step(), Some(0));
    assert_eq!(
        d.next.last_analysis.map(|a| a.verdict),
        Some(Verdict::Inconclusive)
    );
}

#[test]
fn a_status_written_before_holds_and_header_steps_still_loads() {
    // As stored by an earlier slogate: no headerMatch anywhere, weights as plain numbers.
    let old = serde_json::json!({
        "phase": "Progressing", "step": 1, "since": "2026-03-01T12:00:00Z",
        "deadline": "2026-03-01T12:05:00Z", "reason": "step 2/3 (50%)", "attempt": 3,
        "canaryVersion": "v2", "stableVersion": "v1", "weights": {"stable": 50, "canary": 50},
        "passes": 2, "seq": 7,
        "pending": [{"key": "shop/checkout/3/7-set-weights", "kind": "setWeights",
                     "weights": {"stable": 0, "canary": 100}, "expected": {"stable": 50, "canary": 50},
                     "issuedAt": "2026-03-01T12:00:00Z"}]
    });
    let s: RolloutStatus = serde_json::from_value(old).unwrap();
    assert_eq!(s.header_match, None);
    assert_eq!(s.pending[0].header_match, None);
    let d = decide(&rollout(), &s, &seen(Some(w(50))), t(10));
    let set = d.effects.iter().find_map(|e| e.routing()).unwrap();
    assert_eq!(set.0, w(100).into());
    assert_eq!(set.1, Some(w(50).into()));
}
