//! Failpoints: named places at the effect boundaries of the guard, the rollout controller
//! and promote where a **debug build** can be made to kill itself with SIGKILL, for the
//! crash-injection test (`tests/crash_injection.rs`).
//!
//! `SLOGATE_FAILPOINTS=name[@N][,name[@N]…]`: the N-th time (the first without `@N`) the
//! process reaches failpoint `name`, it writes `slogate failpoint hit: <name>` to stderr
//! and sends itself SIGKILL: no destructor runs, nothing is flushed, exactly as when the
//! kernel or the kubelet kills it at that instant.
//!
//! Release builds ignore the variable: [`hit`] is compiled to nothing without
//! `debug_assertions`, so the check costs nothing and cannot be triggered in production.
//!
//! Hand-written rather than the `fail` crate: `fail` is compiled in only with a cargo
//! feature that every test build (and `scripts/test`) would have to turn on, and its
//! actions (panic, sleep, return) unwind or wait instead of dying; this registry is a few
//! lines, needs no feature and does the one thing the test needs (die at once).

/// Every failpoint, by name. `tests/crash_injection.rs` kills the binary at each one of
/// them (a failpoint it never reaches fails the test), so this list cannot rot.
pub const ALL: &[&str] = &[
    // The guard's state document (the decision, then each revert's outcome).
    GUARD_STATE_BEFORE,
    GUARD_STATE_AFTER,
    // The rollout controller's status (before its effects are applied).
    ROLLOUT_STATE_BEFORE,
    ROLLOUT_STATE_AFTER,
    // The effect executor (runtime::effects): every write to the world.
    SET_WEIGHTS_BEFORE,
    SET_WEIGHTS_AFTER,
    REVERT_BEFORE,
    REVERT_AFTER,
    COMMIT_EDIT_BEFORE,
    COMMIT_EDIT_AFTER,
    SYNC_BEFORE,
    SYNC_AFTER,
    NOTIFY_BEFORE,
    NOTIFY_AFTER,
    RECORD_BEFORE,
    RECORD_AFTER,
    // `slogate promote`'s decision record, `slogate approve`'s approval and its record.
    PROMOTE_RECORD_BEFORE,
    PROMOTE_RECORD_AFTER,
    APPROVAL_STATE_BEFORE,
    APPROVAL_STATE_AFTER,
    APPROVAL_RECORD_BEFORE,
    APPROVAL_RECORD_AFTER,
];

pub const GUARD_STATE_BEFORE: &str = "guard.state.before";
pub const GUARD_STATE_AFTER: &str = "guard.state.after";
pub const ROLLOUT_STATE_BEFORE: &str = "rollout.state.before";
pub const ROLLOUT_STATE_AFTER: &str = "rollout.state.after";
pub const SET_WEIGHTS_BEFORE: &str = "effect.set_weights.before";
pub const SET_WEIGHTS_AFTER: &str = "effect.set_weights.after";
pub const REVERT_BEFORE: &str = "effect.revert.before";
pub const REVERT_AFTER: &str = "effect.revert.after";
pub const COMMIT_EDIT_BEFORE: &str = "effect.commit_edit.before";
pub const COMMIT_EDIT_AFTER: &str = "effect.commit_edit.after";
pub const SYNC_BEFORE: &str = "effect.sync.before";
pub const SYNC_AFTER: &str = "effect.sync.after";
pub const NOTIFY_BEFORE: &str = "effect.notify.before";
pub const NOTIFY_AFTER: &str = "effect.notify.after";
pub const RECORD_BEFORE: &str = "effect.record.before";
pub const RECORD_AFTER: &str = "effect.record.after";
pub const PROMOTE_RECORD_BEFORE: &str = "promote.record.before";
pub const PROMOTE_RECORD_AFTER: &str = "promote.record.after";
pub const APPROVAL_STATE_BEFORE: &str = "approve.state.before";
pub const APPROVAL_STATE_AFTER: &str = "approve.state.after";
pub const APPROVAL_RECORD_BEFORE: &str = "approve.record.before";
pub const APPROVAL_RECORD_AFTER: &str = "approve.record.after";

/// The environment variable that arms failpoints (debug builds only).
pub const ENV: &str = "SLOGATE_FAILPOINTS";

/// The line written to stderr just before the process kills itself.
pub fn marker(name: &str) -> String {
    format!("slogate failpoint hit: {name}")
}

/// Failpoint `name` is reached: in a debug build with `name` armed in [`ENV`] (at this
/// hit), write the [`marker`] and SIGKILL this process. Otherwise nothing.
#[cfg(debug_assertions)]
pub fn hit(name: &str) {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};

    debug_assert!(ALL.contains(&name), "unlisted failpoint {name}");
    static ARMED: OnceLock<HashMap<String, u64>> = OnceLock::new();
    static HITS: OnceLock<Mutex<HashMap<String, u64>>> = OnceLock::new();
    let armed = ARMED.get_or_init(|| parse(&std::env::var(ENV).unwrap_or_default()));
    let Some(&nth) = armed.get(name) else {
        return;
    };
    // A poisoned lock still holds whole counters.
    let mut hits = HITS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let n = hits.entry(name.to_string()).or_insert(0);
    *n += 1;
    if *n == nth {
        // stderr is unbuffered: the line is written before the signal.
        eprintln!("{}", marker(name));
        // SAFETY: raise(3) with a valid signal number has no memory-safety precondition.
        unsafe {
            libc::raise(libc::SIGKILL);
        }
        // SIGKILL cannot be caught or ignored; never reached.
        loop {
            std::thread::park();
        }
    }
}

/// Release builds: no failpoints.
#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn hit(_name: &str) {}

/// `a@2,b` → {a: 2, b: 1}; unknown names are kept (they never fire) and a bad count
/// means the first hit.
#[cfg_attr(not(debug_assertions), allow(dead_code))]
fn parse(spec: &str) -> std::collections::HashMap<String, u64> {
    spec.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| match s.split_once('@') {
            Some((name, n)) => (name.to_string(), n.parse().unwrap_or(1).max(1)),
            None => (s.to_string(), 1),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_hit_counts() {
        let p = parse(" effect.revert.after , guard.state.before@3,x@0,");
        assert_eq!(p.len(), 3);
        assert_eq!(p["effect.revert.after"], 1);
        assert_eq!(p["guard.state.before"], 3);
        assert_eq!(p["x"], 1);
    }

    #[test]
    fn names_are_unique() {
        let mut names = ALL.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
    }

    #[test]
    fn an_unarmed_failpoint_does_nothing() {
        // SLOGATE_FAILPOINTS is not set for unit tests: reaching one returns.
        if std::env::var_os(ENV).is_none() {
            hit(REVERT_BEFORE);
        }
    }
}
