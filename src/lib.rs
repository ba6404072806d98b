//! slogate: error-budget aware progressive delivery.
//!
//! Layers, lowest first (ARCHITECTURE.md; the README's Layout table says what each module
//! may import, and `tests/layout.rs` holds the code to it):
//! - `model`: plain data shared by every layer (weights and routes, notifications, commits
//!   and trailers, approvals); it imports nothing else of the crate.
//! - `slo`, `analysis`, `rollout`, `guard`: the pure core. Plain data in, decisions (next
//!   state and effects) out; no I/O, no clock.
//! - `ports`: one trait per I/O port (metrics, traffic, GitOps, sync, notify, state, leader
//!   election, rollout and version sources, the loaded SLO ids, promote's state) with its
//!   error type; the data they speak is imported from `model`, never re-exported.
//! - `adapters`: the implementations of those ports (Prometheus, kube, git and forges,
//!   Argo CD, notifiers, state stores, files, promote's state over the daemon's API) and
//!   the leadership handle.
//! - `runtime`: the loops and services over the ports: configuration, the SLO evaluation
//!   loop, alert intake, the guard and rollout runtimes, the one effect executor (whose
//!   effects need the proof that the next state is stored), the state sweep, the HTTP
//!   server, self-metrics.
//! - `promote`: the promote use case (gates through Prometheus and the state, the
//!   kustomization edit, the commit and the decision record through the effect executor),
//!   approvals, its state on a state store and the daemon's API for them (axum handlers).
//!   Not pure.
//! - `daemon`: the composition root of `slogate run`.
//! - `demo`: the demo scenario; `cli`: the command-line front end (`main.rs` only sets the
//!   [`Allocator`] and calls `cli::main`).

/// The global allocator of the `slogate` binary, mimalloc: `main.rs` declares it and calls
/// [`tune_allocator`], and so do the benchmarks that run the daemon's code in-process, so
/// that they measure what the binary runs. Under the webhook receiver's load (requests
/// decoded on one worker thread, their alerts freed by the dedupe writer on another) glibc's
/// malloc cost a fifth of the receiver's throughput (README, Benchmarks).
pub use mimalloc::MiMalloc as Allocator;

/// `mi_option_purge_delay`'s place in `mi_option_e` (mimalloc 3, as libmimalloc-sys 0.1.49
/// builds it; its Rust binding does not name it). The test below fails if it moves.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Tune [`Allocator`] for memory. mimalloc is built to commit arena memory as it is used
/// (`.cargo/config.toml`: an option read when the first arena is made, before `main`), and
/// this gives freed memory back to the OS after 1 ms instead of 1 s. With mimalloc's
/// defaults, `slogate run --once` at 10,000 SLOs peaked at 110 MiB of RSS (glibc's malloc: 54
/// MiB) and `slogate rules` at 67 MiB; with both settings at 53 and 31 MiB, and without
/// either one at 73–76 and 47 MiB. Call it first in `main`, before any other thread starts.
pub fn tune_allocator() {
    // SAFETY: mi_option_set stores one value in mimalloc's option table (the option exists:
    // see the test), and no other thread runs yet to read the table meanwhile.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 1) }
}

#[cfg(test)]
mod allocator_tests {
    use super::*;

    /// `mi_option_arena_eager_commit`'s place, likewise.
    const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;

    /// mimalloc was built with `MI_DEFAULT_ARENA_EAGER_COMMIT=0` (a CFLAGS in the
    /// environment replaces .cargo/config.toml's, and the binary's RSS grows by half), and
    /// the option numbers are mimalloc 3's (its purge delay defaults to 1,000 ms).
    #[test]
    fn mimalloc_is_built_and_numbered_as_meant() {
        let env = |name: &str| std::env::var_os(name).is_some();
        // SAFETY: mi_option_get only reads mimalloc's option table.
        let (delay, eager) = unsafe {
            (
                libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY),
                libmimalloc_sys::mi_option_get(MI_OPTION_ARENA_EAGER_COMMIT),
            )
        };
        if !env("MIMALLOC_PURGE_DELAY") {
            assert_eq!(delay, 1000, "mimalloc's option numbers moved");
        }
        if !env("MIMALLOC_ARENA_EAGER_COMMIT") {
            assert_eq!(
                eager, 0,
                "mimalloc was built without -DMI_DEFAULT_ARENA_EAGER_COMMIT=0 (.cargo/config.toml)"
            );
        }
    }
}

pub mod adapters;
pub mod analysis;
pub mod cli;
pub mod daemon;
pub mod demo;
pub mod guard;
pub mod model;
pub mod ports;
pub mod promote;
pub mod rollout;
pub mod runtime;
pub mod slo;
