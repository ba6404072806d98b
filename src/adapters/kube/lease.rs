//! Leader election on a `coordination.k8s.io/v1` Lease.
//!
//! # Protocol
//!
//! Every renew period each replica reads the Lease and [`decide`]s:
//! - no Lease: create it, holding it ([`Decision::Create`]);
//! - held by this identity (this replica, or a previous run of the same pod): renew it;
//! - released (no holder): acquire it;
//! - held by another replica: wait until the lease has gone unrenewed for a whole lease
//!   duration *as observed on this replica's clock*, then acquire it; a replica that was
//!   leading steps down at once.
//!
//! Every write is a PUT (create: POST) of the Lease as read, so it carries the read
//! `resourceVersion` and the API server rejects it with 409 Conflict when anyone wrote in
//! between: two candidates cannot both acquire.
//!
//! # Why a stalled leader stops before anyone else can start
//!
//! Clocks of different nodes are never compared. A candidate measures expiry from the moment
//! it *first saw* the current version of the Lease (`observed_at`), on its own monotonic
//! clock, like client-go. The leader counts its term from the moment it *sent* its last
//! successful renew (`sent`), and leads only until `sent + lease duration − safety margin`
//! ([`LeaderSignal::grant_until`]). The renew was stored after `sent`, and no candidate can
//! have observed it before it was stored, so `observed_at ≥ sent` and a candidate acquires no
//! earlier than `sent + lease duration`: the old leader stopped `safety margin` before. The
//! margin absorbs clock-rate differences and the time a write started just before the
//! deadline takes to land (see [`Leadership::leading_until`]).
//!
//! A renew that fails in any way (conflict, timeout, API error) steps down immediately; the
//! next round re-reads the Lease and renews again if it still names this replica. The
//! elector revokes leadership when the deadline passes while a call is still in flight, so
//! [`Leadership::changes`] is timely too; [`Leadership::is_leader`] needs no help, it
//! compares the deadline with the clock. On shutdown the leader steps down first, then
//! releases the Lease (no holder, duration 1s) so another replica takes over at once.
//!
//! [`Leadership::leading_until`]: crate::adapters::leader::Leadership::leading_until
//! [`Leadership::changes`]: crate::adapters::leader::Leadership::changes
//! [`Leadership::is_leader`]: crate::adapters::leader::Leadership::is_leader

use std::sync::Arc;
use std::time::Duration;

use ::kube::api::{Api, PostParams};
use ::kube::Client;
use async_trait::async_trait;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use tokio::sync::watch;
use tokio::time::Instant;

use super::{call, CallError, WallClock, FIELD_MANAGER};
use crate::adapters::leader::{leadership_channel, LeaderSignal, Leadership};
use crate::ports::leader::{LeaderElector, LeaderError};

/// Lease timing and identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseConfig {
    pub namespace: String,
    /// The Lease's name, e.g. `slogate`.
    pub name: String,
    /// This replica: its pod name.
    pub identity: String,
    /// How long a Lease stays valid without renewal (whole seconds; default 15s).
    pub lease_duration: Duration,
    /// How often the leader renews and candidates retry (default 5s).
    pub renew_period: Duration,
    /// How much earlier than the Lease's expiry the leader stops acting (default 3s).
    pub safety_margin: Duration,
    /// Bound on each Lease API call (default 3s).
    pub call_timeout: Duration,
}

impl LeaseConfig {
    /// The defaults: 15s lease, 5s renew period, 3s safety margin, 3s call timeout.
    pub fn new(
        namespace: impl Into<String>,
        name: impl Into<String>,
        identity: impl Into<String>,
    ) -> Self {
        LeaseConfig {
            namespace: namespace.into(),
            name: name.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_period: Duration::from_secs(5),
            safety_margin: Duration::from_secs(3),
            call_timeout: Duration::from_secs(3),
        }
    }

    /// This pod's name, from `POD_NAME` (set it from the downward API's `metadata.name`) or
    /// else `HOSTNAME` (a pod's hostname is its name unless `spec.hostname` overrides it).
    pub fn identity_from_env() -> Result<String, LeaderError> {
        ["POD_NAME", "HOSTNAME"]
            .iter()
            .find_map(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()))
            .ok_or_else(|| {
                LeaderError::Config(
                    "no identity for leader election: set POD_NAME (downward API metadata.name)"
                        .into(),
                )
            })
    }

    /// Leadership granted by a write sent at `sent` lasts until this instant.
    pub fn leading_until(&self, sent: Instant) -> Instant {
        sent + self.lease_duration.saturating_sub(self.safety_margin)
    }

    /// Check that a leader can renew (read + write, each up to `call_timeout`) before its
    /// term ends, and that the lease duration is whole seconds.
    pub fn validate(&self) -> Result<(), LeaderError> {
        let bad = |m: String| Err(LeaderError::Config(m));
        if self.identity.trim().is_empty() {
            return bad("identity is empty".into());
        }
        if self.name.is_empty() || self.namespace.is_empty() {
            return bad("lease name and namespace must be set".into());
        }
        if self.lease_duration.subsec_nanos() != 0 || self.lease_duration.as_secs() == 0 {
            return bad(format!(
                "lease duration {:?}: expected a whole number of seconds ≥ 1",
                self.lease_duration
            ));
        }
        if self.lease_duration.as_secs() > i32::MAX as u64 {
            return bad(format!(
                "lease duration {:?} is too long",
                self.lease_duration
            ));
        }
        if self.safety_margin.is_zero() || self.safety_margin >= self.lease_duration {
            return bad(format!(
                "safety margin {:?}: expected more than 0 and less than the lease duration {:?}",
                self.safety_margin, self.lease_duration
            ));
        }
        let term = self.lease_duration - self.safety_margin;
        let renew = self.renew_period + self.call_timeout * 2;
        if self.renew_period.is_zero() || self.call_timeout.is_zero() || renew >= term {
            return bad(format!(
                "renew period {:?} + 2 × call timeout {:?} must be positive and less than lease \
                 duration − safety margin ({term:?}), or the leader would lapse between renewals",
                self.renew_period, self.call_timeout
            ));
        }
        Ok(())
    }
}

/// A Lease as read, reduced to what [`decide`] needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRecord {
    /// `None` (or empty) when released.
    pub holder: Option<String>,
    /// `spec.leaseDurationSeconds` as the holder wrote it.
    pub duration: Option<Duration>,
    pub resource_version: String,
}

impl LeaseRecord {
    pub fn from_lease(lease: &Lease) -> Self {
        let spec = lease.spec.as_ref();
        LeaseRecord {
            holder: spec
                .and_then(|s| s.holder_identity.clone())
                .filter(|h| !h.is_empty()),
            duration: spec
                .and_then(|s| s.lease_duration_seconds)
                .and_then(|s| u64::try_from(s).ok())
                .map(Duration::from_secs),
            resource_version: lease.metadata.resource_version.clone().unwrap_or_default(),
        }
    }
}

/// When this replica first saw a version of the Lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub resource_version: String,
    pub at: Instant,
}

/// Track when the current version of the Lease was first seen: the expiry clock of a
/// candidate restarts whenever the Lease changes.
pub fn observe(
    prev: Option<Observed>,
    record: Option<&LeaseRecord>,
    now: Instant,
) -> Option<Observed> {
    let record = record?;
    match prev {
        Some(p) if p.resource_version == record.resource_version => Some(p),
        _ => Some(Observed {
            resource_version: record.resource_version.clone(),
            at: now,
        }),
    }
}

/// What to do after reading the Lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// There is no Lease: create it, holding it.
    Create,
    /// Take the Lease over (released, or expired as observed here).
    Acquire,
    /// This identity holds the Lease: renew it.
    Renew,
    /// Another replica holds a valid Lease; it expires (as observed here) at `until`.
    Wait { until: Instant },
    /// This replica was leading but the Lease says otherwise: stop acting now.
    StepDown,
}

/// The pure decision: the Lease as read (`None`: absent), this replica's identity, when that
/// version of the Lease was first observed here, the time now, whether this replica is
/// leading, and the lease duration to assume when the Lease names none.
pub fn decide(
    lease: Option<&LeaseRecord>,
    identity: &str,
    observed_at: Instant,
    now: Instant,
    leading: bool,
    default_duration: Duration,
) -> Decision {
    let Some(lease) = lease else {
        // Deleted under a leader: the protocol is broken; stop, then create next round.
        return if leading {
            Decision::StepDown
        } else {
            Decision::Create
        };
    };
    match lease.holder.as_deref() {
        Some(h) if h == identity => Decision::Renew,
        None => Decision::Acquire,
        Some(_) if leading => Decision::StepDown,
        Some(_) => {
            let until = observed_at + lease.duration.unwrap_or(default_duration);
            if now >= until {
                Decision::Acquire
            } else {
                Decision::Wait { until }
            }
        }
    }
}

/// What one round did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Acquired,
    Renewed,
    /// Held by someone else, valid until the instant (as observed here).
    Waiting {
        holder: String,
        until: Instant,
    },
    /// Stopped leading, with why.
    SteppedDown(Why),
    /// Not leading and could not act (lost a race, API error), with why.
    Failed(Why),
}

/// Why a round stepped down or could not act, printed as one line: what was being done
/// and the API call's error with its whole chain, as before.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Why {
    /// Composed here, with no underlying error (`the lease is held by slogate-1`).
    #[error("{0}")]
    Said(String),
    /// An API call failed: `what` was being done (`renewing the lease`), the call's error
    /// is the source.
    #[error("{what}: {}", super::error_chain(.source.as_ref()))]
    Call {
        what: &'static str,
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync>,
    },
}

impl Why {
    fn call(what: &'static str, e: CallError) -> Self {
        Why::Call {
            what,
            source: Arc::new(e),
        }
    }

    /// A write that lost the race (409): the protocol working, not a failure to report.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Why::Call { source, .. }
            if matches!(source.downcast_ref::<CallError>(), Some(CallError::Conflict(_))))
    }
}

/// Two reasons are the same when they read the same (the source compares by its text).
impl PartialEq for Why {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Why::Said(a), Why::Said(b)) => a == b,
            (Why::Call { what: a, .. }, Why::Call { what: b, .. }) => {
                a == b && self.to_string() == other.to_string()
            }
            _ => false,
        }
    }
}

impl Eq for Why {}

impl From<&str> for Why {
    fn from(s: &str) -> Self {
        Why::Said(s.to_string())
    }
}

impl From<String> for Why {
    fn from(s: String) -> Self {
        Why::Said(s)
    }
}

/// Leader election on a Lease: implements [`LeaderElector`].
pub struct LeaseElector {
    api: Api<Lease>,
    cfg: LeaseConfig,
    signal: LeaderSignal,
    leadership: Leadership,
    clock: WallClock,
    observed: tokio::sync::Mutex<Option<Observed>>,
}

impl std::fmt::Debug for LeaseElector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseElector")
            .field("cfg", &self.cfg)
            .finish()
    }
}

impl LeaseElector {
    /// The handle the runtime consults before acting.
    pub fn leadership(&self) -> Leadership {
        self.leadership.clone()
    }

    pub fn new(client: Client, cfg: LeaseConfig) -> Result<Self, LeaderError> {
        cfg.validate()?;
        let (signal, leadership) = leadership_channel();
        Ok(LeaseElector {
            api: Api::namespaced(client, &cfg.namespace),
            cfg,
            signal,
            leadership,
            clock: Arc::new(Timestamp::now),
            observed: tokio::sync::Mutex::new(None),
        })
    }

    /// Use another wall clock for the times written into the Lease (tests).
    pub fn with_clock(mut self, clock: WallClock) -> Self {
        self.clock = clock;
        self
    }

    pub fn config(&self) -> &LeaseConfig {
        &self.cfg
    }

    fn params() -> PostParams {
        PostParams {
            field_manager: Some(FIELD_MANAGER.to_string()),
            ..PostParams::default()
        }
    }

    fn duration_secs(&self) -> i32 {
        // validate() checked it fits.
        i32::try_from(self.cfg.lease_duration.as_secs()).unwrap_or(i32::MAX)
    }

    fn step_down(&self, why: Why) -> Outcome {
        if self.signal.deadline().is_some() {
            tracing::warn!(identity = %self.cfg.identity, %why, "stepping down");
        }
        self.signal.revoke();
        Outcome::SteppedDown(why)
    }

    /// Await `fut`, revoking leadership if the current term ends before it completes.
    async fn guarded<T>(&self, fut: impl std::future::Future<Output = T>) -> T {
        tokio::pin!(fut);
        if let Some(deadline) = self.signal.deadline() {
            tokio::select! {
                out = &mut fut => return out,
                _ = tokio::time::sleep_until(deadline) => {
                    tracing::warn!(identity = %self.cfg.identity, "lease term ended during a call; stepping down");
                    self.signal.revoke();
                }
            }
        }
        fut.await
    }

    /// One round: read the Lease, decide, write. Public for tests; [`LeaderElector::run`]
    /// calls it every renew period.
    pub async fn round(&self) -> Outcome {
        let timeout = self.cfg.call_timeout;
        if self.signal.deadline().is_some() && !self.signal.is_leader_at(Instant::now()) {
            // The term ran out since the last round (a stalled task): say so.
            self.step_down("the lease term ended without a renewal".into());
        }
        let leading = self.signal.deadline().is_some();
        let read = self
            .guarded(call(timeout, self.api.get(&self.cfg.name)))
            .await;
        let lease = match read {
            Ok(lease) => Some(lease),
            Err(CallError::NotFound) => None,
            Err(e) if leading => return self.step_down(Why::call("reading the lease", e)),
            Err(e) => return Outcome::Failed(Why::call("reading the lease", e)),
        };
        let now = Instant::now();
        let record = lease.as_ref().map(LeaseRecord::from_lease);
        let observed = {
            let mut guard = self.observed.lock().await;
            *guard = observe(guard.take(), record.as_ref(), now);
            guard.as_ref().map_or(now, |o| o.at)
        };
        let leading = self.signal.is_leader_at(now);
        match decide(
            record.as_ref(),
            &self.cfg.identity,
            observed,
            now,
            leading,
            self.cfg.lease_duration,
        ) {
            Decision::Create => self.create().await,
            Decision::Acquire => match lease {
                Some(lease) => self.write(lease, true).await,
                None => Outcome::Failed("no lease to acquire".into()),
            },
            Decision::Renew => match lease {
                Some(lease) => self.write(lease, false).await,
                None => Outcome::Failed("no lease to renew".into()),
            },
            Decision::StepDown => self.step_down(match record.and_then(|r| r.holder) {
                Some(h) => format!("the lease is held by {h}").into(),
                None => "the lease is gone".into(),
            }),
            Decision::Wait { until } => {
                if leading {
                    // decide() never waits while leading; keep the invariant explicit.
                    self.signal.revoke();
                }
                Outcome::Waiting {
                    holder: record.and_then(|r| r.holder).unwrap_or_default(),
                    until,
                }
            }
        }
    }

    async fn create(&self) -> Outcome {
        let now = MicroTime((self.clock)());
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(self.cfg.name.clone()),
                namespace: Some(self.cfg.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(self.cfg.identity.clone()),
                lease_duration_seconds: Some(self.duration_secs()),
                acquire_time: Some(now.clone()),
                renew_time: Some(now),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        let sent = Instant::now();
        match call(
            self.cfg.call_timeout,
            self.api.create(&Self::params(), &lease),
        )
        .await
        {
            Ok(_) => {
                self.signal.grant_until(self.cfg.leading_until(sent));
                tracing::info!(identity = %self.cfg.identity, "created the lease; leading");
                Outcome::Created
            }
            Err(e) => Outcome::Failed(Why::call("creating the lease", e)),
        }
    }

    /// PUT the Lease as read, now held by this identity (acquire) or renewed.
    async fn write(&self, mut lease: Lease, acquire: bool) -> Outcome {
        let now = MicroTime((self.clock)());
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if acquire {
            let changed = spec.holder_identity.as_deref() != Some(self.cfg.identity.as_str());
            spec.holder_identity = Some(self.cfg.identity.clone());
            spec.acquire_time = Some(now.clone());
            if changed {
                spec.lease_transitions =
                    Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
            }
        }
        spec.lease_duration_seconds = Some(self.duration_secs());
        spec.renew_time = Some(now);
        let sent = Instant::now();
        let result = self
            .guarded(call(
                self.cfg.call_timeout,
                self.api.replace(&self.cfg.name, &Self::params(), &lease),
            ))
            .await;
        match (result, acquire) {
            (Ok(_), _) => {
                self.signal.grant_until(self.cfg.leading_until(sent));
                if acquire {
                    tracing::info!(identity = %self.cfg.identity, "acquired the lease; leading");
                    Outcome::Acquired
                } else {
                    Outcome::Renewed
                }
            }
            (Err(e), false) => self.step_down(Why::call("renewing the lease", e)),
            (Err(e), true) => {
                self.signal.revoke();
                Outcome::Failed(Why::call("acquiring the lease", e))
            }
        }
    }

    /// Release the Lease if this replica holds it (after stepping down).
    pub async fn release(&self) -> Result<(), LeaderError> {
        self.signal.revoke();
        let timeout = self.cfg.call_timeout;
        let mut lease = match call(timeout, self.api.get(&self.cfg.name)).await {
            Ok(lease) => lease,
            Err(CallError::NotFound) => return Ok(()),
            Err(e) => {
                return Err(LeaderError::Kube {
                    what: "reading the lease",
                    source: Box::new(e),
                })
            }
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.cfg.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime((self.clock)()));
        call(
            timeout,
            self.api.replace(&self.cfg.name, &Self::params(), &lease),
        )
        .await
        .map(|_| tracing::info!(identity = %self.cfg.identity, "released the lease"))
        .map_err(|e| LeaderError::Kube {
            what: "releasing the lease",
            source: Box::new(e),
        })
    }
}

#[async_trait]
impl LeaderElector for LeaseElector {
    async fn run(&self, mut stop: watch::Receiver<bool>) -> Result<(), LeaderError> {
        // The last failure warned about: a replica that cannot take part (TLS, RBAC) says
        // why once, and again only when the reason changes.
        let mut warned: Option<Why> = None;
        while !*stop.borrow_and_update() {
            let started = Instant::now();
            let outcome = self.round().await;
            tracing::debug!(identity = %self.cfg.identity, ?outcome, "lease round");
            match &outcome {
                // A lost race (409) is the protocol working, not a failure to report.
                Outcome::Failed(why) if warned.as_ref() != Some(why) && !why.is_conflict() => {
                    tracing::warn!(identity = %self.cfg.identity, error = %why, "cannot take part in leader election; retrying");
                    warned = Some(why.clone());
                }
                Outcome::Failed(_) => {}
                _ => warned = None,
            }
            let next = match outcome {
                Outcome::Waiting { until, .. } => (started + self.cfg.renew_period).min(until),
                _ => started + self.cfg.renew_period,
            };
            tokio::select! {
                _ = tokio::time::sleep_until(next) => {}
                changed = stop.changed() => if changed.is_err() { break },
            }
        }
        let was_leading = self.signal.deadline().is_some();
        self.signal.revoke();
        if was_leading {
            self.release().await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Duration = Duration::from_secs(15);

    fn rec(holder: Option<&str>, rv: &str) -> LeaseRecord {
        LeaseRecord {
            holder: holder.map(str::to_string),
            duration: Some(D),
            resource_version: rv.into(),
        }
    }

    #[test]
    fn decision_table() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let me = "slogate-0";
        // (lease, observed_at, now, leading) => decision
        let cases: Vec<(Option<LeaseRecord>, Instant, Instant, bool, Decision)> = vec![
            (None, t0, t0, false, Decision::Create),
            (None, t0, t0, true, Decision::StepDown),
            (Some(rec(Some(me), "1")), t0, t0, true, Decision::Renew),
            // A previous run of this pod held it: take it back at once.
            (Some(rec(Some(me), "1")), t0, t0, false, Decision::Renew),
            (Some(rec(None, "1")), t0, t0, false, Decision::Acquire),
            (
                Some(rec(Some("slogate-1"), "1")),
                t0,
                t0,
                false,
                Decision::Wait { until: t0 + D },
            ),
            (
                Some(rec(Some("slogate-1"), "1")),
                t0,
                t0 + s(14),
                false,
                Decision::Wait { until: t0 + D },
            ),
            (
                Some(rec(Some("slogate-1"), "1")),
                t0,
                t0 + D,
                false,
                Decision::Acquire,
            ),
            (
                Some(rec(Some("slogate-1"), "1")),
                t0,
                t0 + s(1),
                true,
                Decision::StepDown,
            ),
        ];
        for (i, (lease, observed, now, leading, want)) in cases.into_iter().enumerate() {
            assert_eq!(
                decide(lease.as_ref(), me, observed, now, leading, D),
                want,
                "case {i}"
            );
        }
        // The holder's own duration wins over the default.
        let short = LeaseRecord {
            duration: Some(s(2)),
            ..rec(Some("slogate-1"), "1")
        };
        assert_eq!(
            decide(Some(&short), me, t0, t0 + s(2), false, D),
            Decision::Acquire
        );
        let unset = LeaseRecord {
            duration: None,
            ..rec(Some("slogate-1"), "1")
        };
        assert_eq!(
            decide(Some(&unset), me, t0, t0, false, D),
            Decision::Wait { until: t0 + D }
        );
    }

    #[test]
    fn observation_restarts_when_the_lease_changes() {
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(10);
        let o = observe(None, Some(&rec(Some("a"), "1")), t0);
        assert_eq!(o.as_ref().map(|o| o.at), Some(t0));
        let same = observe(o.clone(), Some(&rec(Some("a"), "1")), later);
        assert_eq!(same.as_ref().map(|o| o.at), Some(t0));
        let renewed = observe(same, Some(&rec(Some("a"), "2")), later);
        assert_eq!(renewed.as_ref().map(|o| o.at), Some(later));
        assert_eq!(observe(renewed, None, later), None);
    }

    /// The safety rule, end to end over the pure parts: the old leader's term (counted from
    /// when it sent its renew) ends before any candidate (counting from when it saw that
    /// renew, which is no earlier) may acquire.
    #[test]
    fn leader_stops_before_a_candidate_may_acquire() {
        let cfg = LeaseConfig::new("ns", "slogate", "slogate-0");
        cfg.validate().unwrap();
        let sent = Instant::now();
        for delay_ms in [0u64, 1, 500, 2_999, 10_000] {
            let seen = sent + Duration::from_millis(delay_ms);
            let until = cfg.leading_until(sent);
            let Decision::Wait { until: acquire_at } = decide(
                Some(&rec(Some("slogate-0"), "9")),
                "slogate-1",
                seen,
                seen,
                false,
                D,
            ) else {
                panic!("candidate must wait");
            };
            assert!(
                until + cfg.safety_margin <= acquire_at,
                "delay {delay_ms}ms"
            );
            assert_eq!(
                decide(
                    Some(&rec(Some("slogate-0"), "9")),
                    "slogate-1",
                    seen,
                    acquire_at,
                    false,
                    D
                ),
                Decision::Acquire
            );
        }
    }

    #[test]
    fn config_validation() {
        let ok = LeaseConfig::new("ns", "slogate", "pod-0");
        let valid = ok.validate();
        assert!(matches!(valid, Ok(())), "{valid:?}");
        let bad = LeaseConfig {
            renew_period: Duration::from_secs(7),
            ..ok.clone()
        };
        assert!(
            matches!(bad.validate(), Err(LeaderError::Config(m)) if m.contains("renew period"))
        );
        let bad = LeaseConfig {
            lease_duration: Duration::from_millis(15_500),
            ..ok.clone()
        };
        assert!(bad.validate().is_err());
        let bad = LeaseConfig {
            safety_margin: Duration::ZERO,
            ..ok.clone()
        };
        assert!(bad.validate().is_err());
        let bad = LeaseConfig {
            identity: " ".into(),
            ..ok
        };
        assert!(bad.validate().is_err());
    }
}
