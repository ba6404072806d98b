//! The leadership handle behind the leader-election port ([`crate::ports::leader`]).
//!
//! The runtime holds a [`Leadership`] handle and asks [`Leadership::is_leader`] right before
//! every write. The answer is time-bound: an elector grants leadership *until* an instant on
//! the local monotonic clock (the last successful renew plus the lease duration minus a
//! safety margin), so a replica whose elector task is stalled or cut off from the API server
//! stops acting on its own, before another replica can take the expired lease over.
//! [`Leadership::changes`] notifies of grants and step-downs (to start or stop work); it may
//! lag behind the deadline by one request timeout, so `is_leader` is the authority.
//!
//! Electors: the Kubernetes Lease elector in `crate::adapters::kube::lease`, and
//! [`AlwaysLeader`] here for local runs without a cluster.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::ports::leader::{LeaderElector, LeaderError};

/// `until` value meaning "not leader".
const NOT_LEADER: u64 = 0;
/// `until` value meaning "leader with no deadline" ([`AlwaysLeader`]).
const FOREVER: u64 = u64::MAX;

#[derive(Debug)]
struct Shared {
    /// Origin of the `until` encoding.
    base: Instant,
    /// 0: not leader; `u64::MAX`: leader for good; otherwise leader while
    /// `now - base < until - 1` nanoseconds.
    until: AtomicU64,
}

impl Shared {
    fn encode(&self, deadline: Instant) -> u64 {
        let nanos = deadline.saturating_duration_since(self.base).as_nanos();
        // +1 keeps 0 free for NOT_LEADER; a deadline 584 years out saturates to FOREVER-1.
        u64::try_from(nanos).unwrap_or(FOREVER - 2).min(FOREVER - 2) + 1
    }

    fn is_leader_at(&self, now: Instant) -> bool {
        match self.until.load(Ordering::Acquire) {
            NOT_LEADER => false,
            FOREVER => true,
            until => {
                let elapsed = now.saturating_duration_since(self.base).as_nanos();
                elapsed < u128::from(until - 1)
            }
        }
    }

    fn deadline(&self) -> Option<Instant> {
        match self.until.load(Ordering::Acquire) {
            NOT_LEADER | FOREVER => None,
            until => Some(self.base + std::time::Duration::from_nanos(until - 1)),
        }
    }
}

/// What the runtime holds: cheap to clone, cheap to query.
#[derive(Debug, Clone)]
pub struct Leadership {
    shared: Arc<Shared>,
    rx: watch::Receiver<bool>,
}

impl Leadership {
    /// Whether this replica may act now. Synchronous and lock-free; false as soon as the
    /// granted deadline has passed, even if the elector has not noticed yet.
    pub fn is_leader(&self) -> bool {
        self.shared.is_leader_at(Instant::now())
    }

    /// The instant leadership ends unless renewed (`None` when not leader or when it never
    /// ends). A write that cannot finish before it should not start.
    pub fn leading_until(&self) -> Option<Instant> {
        if self.is_leader() {
            self.shared.deadline()
        } else {
            None
        }
    }

    /// A receiver of grant (`true`) and step-down (`false`) notifications.
    pub fn changes(&self) -> watch::Receiver<bool> {
        self.rx.clone()
    }
}

/// The elector's side of a [`Leadership`] handle.
#[derive(Debug)]
pub struct LeaderSignal {
    shared: Arc<Shared>,
    tx: watch::Sender<bool>,
}

impl LeaderSignal {
    /// Lead until `deadline` (monotonic). Replaces any earlier deadline.
    pub fn grant_until(&self, deadline: Instant) {
        let until = self.shared.encode(deadline);
        self.shared.until.store(until, Ordering::Release);
        self.tx.send_if_modified(|v| !std::mem::replace(v, true));
    }

    /// Lead for good (no cluster, one replica).
    pub fn grant_forever(&self) {
        self.shared.until.store(FOREVER, Ordering::Release);
        self.tx.send_if_modified(|v| !std::mem::replace(v, true));
    }

    /// Stop leading now.
    pub fn revoke(&self) {
        self.shared.until.store(NOT_LEADER, Ordering::Release);
        self.tx.send_if_modified(|v| std::mem::replace(v, false));
    }

    /// The current deadline, `None` when not leading or leading for good.
    pub fn deadline(&self) -> Option<Instant> {
        self.shared.deadline()
    }

    /// Whether the grant is still valid at `now`.
    pub fn is_leader_at(&self, now: Instant) -> bool {
        self.shared.is_leader_at(now)
    }
}

/// A new signal/handle pair; the handle starts as "not leader".
pub fn leadership_channel() -> (LeaderSignal, Leadership) {
    let (tx, rx) = watch::channel(false);
    let shared = Arc::new(Shared {
        base: Instant::now(),
        until: AtomicU64::new(NOT_LEADER),
    });
    (
        LeaderSignal {
            shared: shared.clone(),
            tx,
        },
        Leadership { shared, rx },
    )
}

/// Always the leader: local runs, the demo, one-shot CLI commands.
#[derive(Debug)]
pub struct AlwaysLeader {
    signal: LeaderSignal,
    leadership: Leadership,
}

impl AlwaysLeader {
    pub fn new() -> Self {
        let (signal, leadership) = leadership_channel();
        signal.grant_forever();
        AlwaysLeader { signal, leadership }
    }

    /// The handle the runtime consults before acting.
    pub fn leadership(&self) -> Leadership {
        self.leadership.clone()
    }
}

impl Default for AlwaysLeader {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl LeaderElector for AlwaysLeader {
    async fn run(&self, mut stop: watch::Receiver<bool>) -> Result<(), LeaderError> {
        while !*stop.borrow_and_update() {
            if stop.changed().await.is_err() {
                break;
            }
        }
        self.signal.revoke();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn grant_expires_on_the_monotonic_clock_without_a_revoke() {
        let (signal, leadership) = leadership_channel();
        assert!(!leadership.is_leader());
        signal.grant_until(Instant::now() + Duration::from_secs(10));
        assert!(leadership.is_leader());
        assert!(*leadership.changes().borrow());
        tokio::time::advance(Duration::from_millis(9_999)).await;
        assert!(leadership.is_leader());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(!leadership.is_leader(), "deadline is exclusive");
        assert_eq!(leadership.leading_until(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn revoke_notifies_and_stops_at_once() {
        let (signal, leadership) = leadership_channel();
        let mut changes = leadership.changes();
        signal.grant_until(Instant::now() + Duration::from_secs(10));
        changes.changed().await.unwrap();
        assert!(*changes.borrow_and_update());
        // A renewal that only moves the deadline is not a change.
        signal.grant_until(Instant::now() + Duration::from_secs(20));
        assert!(!changes.has_changed().unwrap());
        signal.revoke();
        assert!(!leadership.is_leader());
        changes.changed().await.unwrap();
        assert!(!*changes.borrow());
    }

    #[tokio::test]
    async fn always_leader_leads_until_stopped() {
        let elector = AlwaysLeader::new();
        let leadership = elector.leadership();
        assert!(leadership.is_leader());
        assert_eq!(leadership.leading_until(), None);
        let (stop_tx, stop_rx) = watch::channel(false);
        let run = tokio::spawn(async move { elector.run(stop_rx).await });
        stop_tx.send(true).unwrap();
        run.await.unwrap().unwrap();
        assert!(!leadership.is_leader());
    }
}
