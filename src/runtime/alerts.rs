//! Alert intake: Alertmanager triggers from the webhook become guard requests for the
//! evaluation loop ([`super::slo_loop`]); on a follower, with a shared state store, they are
//! handed to the leader instead ([`super::webhook::handoff`]), and the leader takes them.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::slo_loop::GuardRequest;
use super::webhook::{handoff, AlertStatus, AlertTrigger};
use crate::adapters::leader::Leadership;
use crate::guard::decide::Trigger;
use crate::ports::state::StateStore;

/// Alertmanager triggers become guard requests (firing alerts only: a resolved alert
/// changes nothing the schedule would not see). On a follower, with a shared `handoff`
/// store, they are handed to the leader instead ([`handoff`]).
pub fn forward_alerts(
    mut triggers: mpsc::Receiver<AlertTrigger>,
    out: mpsc::Sender<GuardRequest>,
    leadership: Leadership,
    handoff: Option<Arc<dyn StateStore>>,
) {
    tokio::spawn(async move {
        while let Some(t) = triggers.recv().await {
            if t.status != AlertStatus::Firing {
                continue;
            }
            if let Some(store) = handoff.as_ref().filter(|_| !leadership.is_leader()) {
                let alertname = t.alertname.clone();
                match handoff::push(
                    store.as_ref(),
                    &t.slo_id,
                    alertname,
                    &t.fingerprint,
                    chrono::Utc::now(),
                )
                .await
                {
                    Ok(seq) => {
                        tracing::info!(slo = %t.slo_id, seq, "alert handed to the leader");
                    }
                    Err(e) => {
                        tracing::error!(slo = %t.slo_id, "cannot hand the alert to the leader, which acts at its next evaluation: {e}");
                    }
                }
                continue;
            }
            let req = GuardRequest {
                slo_id: t.slo_id,
                trigger: Trigger::Alert {
                    alertname: t.alertname.unwrap_or_default(),
                    fingerprint: t.fingerprint,
                },
            };
            if out.send(req).await.is_err() {
                break;
            }
        }
    });
}

/// On the leader, every [`handoff::POLL`]: the alerts followers handed over,
/// each sent once to the scheduler as a guard request. A replica that becomes leader takes
/// those received within `window` (the evaluation interval) and skips older ones.
pub fn take_handoffs(
    store: Arc<dyn StateStore>,
    leadership: Leadership,
    out: mpsc::Sender<GuardRequest>,
    window: Duration,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut cursor = handoff::Cursor::default();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(handoff::POLL) => {}
                _ = stop.changed() => break,
            }
            if !leadership.is_leader() {
                cursor.reset();
                continue;
            }
            let entries = match handoff::read(store.as_ref()).await {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!("cannot read the alerts handed over by followers: {e}");
                    continue;
                }
            };
            for h in cursor.take(&entries, chrono::Utc::now(), window) {
                tracing::info!(slo = %h.slo_id, seq = h.seq, "alert handed over by a follower");
                let req = GuardRequest {
                    slo_id: h.slo_id,
                    trigger: Trigger::Alert {
                        alertname: h.alertname.unwrap_or_default(),
                        fingerprint: h.fingerprint,
                    },
                };
                if out.send(req).await.is_err() {
                    return;
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::leader::leadership_channel;
    use crate::adapters::state::MemoryStore;

    fn trigger(slo: &str) -> AlertTrigger {
        AlertTrigger {
            slo_id: slo.into(),
            status: AlertStatus::Firing,
            fingerprint: "4e1a2b3c4d5e6f70".into(),
            alertname: Some("SlothErrorBudgetBurn".into()),
            severity: Some("page".into()),
            starts_at: chrono::Utc::now(),
        }
    }

    /// A follower hands a firing alert to the leader through the shared store instead of
    /// running the guard itself; the leader's poller turns it into one guard request. Then
    /// the follower becomes leader and acts on its own alerts directly.
    #[tokio::test(start_paused = true)]
    async fn a_follower_hands_alerts_to_the_leader() {
        let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
        let (follower_signal, follower) = leadership_channel();
        let (leader_signal, leader) = leadership_channel();
        leader_signal.grant_forever();

        let (trig_tx, trig_rx) = tokio::sync::mpsc::channel(8);
        let (follower_out, mut follower_in) = tokio::sync::mpsc::channel(8);
        forward_alerts(trig_rx, follower_out, follower.clone(), Some(store.clone()));
        let (leader_out, mut leader_in) = tokio::sync::mpsc::channel(8);
        let (_stop_tx, stop_rx) = watch::channel(false);
        let poller = take_handoffs(
            store.clone(),
            leader,
            leader_out,
            Duration::from_secs(60),
            stop_rx,
        );

        trig_tx
            .send(trigger("checkout-availability"))
            .await
            .unwrap();
        let req = tokio::time::timeout(Duration::from_secs(30), leader_in.recv())
            .await
            .expect("the leader never got the alert")
            .unwrap();
        assert_eq!(req.slo_id, "checkout-availability");
        assert_eq!(
            req.trigger,
            Trigger::Alert {
                alertname: "SlothErrorBudgetBurn".into(),
                fingerprint: "4e1a2b3c4d5e6f70".into(),
            }
        );
        assert!(follower_in.try_recv().is_err(), "the follower acted itself");
        // Taken once: later polls send nothing more.
        tokio::time::sleep(handoff::POLL * 5).await;
        assert!(leader_in.try_recv().is_err());

        // The follower now leads: its alerts go straight to its own scheduler.
        follower_signal.grant_forever();
        trig_tx.send(trigger("search-latency")).await.unwrap();
        let req = tokio::time::timeout(Duration::from_secs(30), follower_in.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(req.slo_id, "search-latency");
        assert_eq!(handoff::read(store.as_ref()).await.unwrap().len(), 1);
        poller.abort();
    }
}
