//! Coalescing of alert triggers: however many alerts arrive, each key (an SLO) has at most
//! one evaluation waiting.
//!
//! Without it every alert queued a full evaluation and guard run: 500 alerts made over a
//! thousand Prometheus queries, and during a 2,000-alert flood a real alert waited behind
//! more than a thousand queued triggers. Here a trigger for a key that is already waiting is
//! folded into the waiting one (the first one's details are kept) and counted; the consumer
//! takes everything waiting at once ([`Coalescer::take_all`]) and serves it with one
//! evaluation per SLO and one guard run per app. A trigger that arrives while its key is
//! being served waits for the next round, so nothing that arrived after an evaluation
//! started is lost.
//!
//! Memory is bounded by the number of distinct keys, which are loaded SLO ids.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::Mutex;

use prometheus_client::metrics::counter::Counter;
use tokio::sync::{mpsc, Notify};

/// Triggers waiting, at most one per key, in the order their keys first arrived.
pub struct Coalescer<K, V> {
    state: Mutex<Pending<K, V>>,
    ready: Notify,
    /// Triggers folded into one already waiting.
    coalesced: Counter,
}

struct Pending<K, V> {
    order: VecDeque<K>,
    values: HashMap<K, V>,
}

impl<K: Hash + Eq + Clone, V> Coalescer<K, V> {
    pub fn new(coalesced: Counter) -> Self {
        Coalescer {
            state: Mutex::new(Pending {
                order: VecDeque::new(),
                values: HashMap::new(),
            }),
            ready: Notify::new(),
            coalesced,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending<K, V>> {
        // Each critical section inserts or drains whole: a poisoned lock holds a consistent
        // state.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Add a trigger. `false`: one for `key` was already waiting, and this one is folded
    /// into it.
    pub fn push(&self, key: K, value: V) -> bool {
        let mut p = self.lock();
        if p.values.contains_key(&key) {
            drop(p);
            self.coalesced.inc();
            return false;
        }
        p.order.push_back(key.clone());
        p.values.insert(key, value);
        drop(p);
        self.ready.notify_one();
        true
    }

    /// Everything waiting, oldest key first; nothing is waiting afterwards.
    pub fn take_all(&self) -> Vec<(K, V)> {
        let mut p = self.lock();
        let Pending { order, values } = &mut *p;
        order
            .drain(..)
            .filter_map(|k| values.remove(&k).map(|v| (k, v)))
            .collect()
    }

    /// Number of keys waiting.
    pub fn len(&self) -> usize {
        self.lock().order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Resolves once something is waiting (at once if something already is). Cancel-safe:
    /// the waiting set, not the wake-up, is what counts.
    pub async fn ready(&self) {
        loop {
            let notified = self.ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if !self.is_empty() {
                return;
            }
            notified.await;
        }
    }
}

/// Move every trigger of `rx` into `into`, keyed by `key`, until the channel closes. The
/// channel is drained as fast as triggers come, so its senders never wait on a slow
/// consumer.
pub fn collect<K, V>(
    mut rx: mpsc::Receiver<V>,
    into: std::sync::Arc<Coalescer<K, V>>,
    key: impl Fn(&V) -> K + Send + 'static,
) -> tokio::task::JoinHandle<()>
where
    K: Hash + Eq + Clone + Send + 'static,
    V: Send + 'static,
{
    tokio::spawn(async move {
        while let Some(v) = rx.recv().await {
            into.push(key(&v), v);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A flood for one SLO leaves one trigger waiting for it, and a real alert for another
    /// SLO that arrives after the flood is served in the same round, not behind it.
    #[tokio::test]
    async fn a_flood_leaves_one_waiting_trigger_per_key() {
        let c = Arc::new(Coalescer::new(Counter::default()));
        let (tx, rx) = mpsc::channel(16);
        let task = collect(rx, c.clone(), |v: &(String, u32)| v.0.clone());
        for i in 0..2000 {
            tx.send(("checkout-availability".to_string(), i))
                .await
                .unwrap();
        }
        tx.send(("search-latency".to_string(), 0)).await.unwrap();
        drop(tx);
        task.await.unwrap();
        c.ready().await;
        let batch = c.take_all();
        let keys: Vec<&str> = batch.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["checkout-availability", "search-latency"]);
        assert_eq!(batch[0].1 .1, 0, "the first trigger's details are kept");
        assert_eq!(c.coalesced.get(), 1999);
        assert!(c.is_empty());
    }

    /// A trigger arriving while its key is served waits for the next round.
    #[tokio::test(start_paused = true)]
    async fn a_trigger_during_an_evaluation_waits_for_the_next_round() {
        let c = Coalescer::new(Counter::default());
        assert!(c.push("a", 1));
        let first = c.take_all();
        assert_eq!(first, vec![("a", 1)]);
        // Being served now; a new alert for it arrives.
        assert!(c.push("a", 2));
        assert!(!c.push("a", 3));
        tokio::time::timeout(std::time::Duration::from_secs(5), c.ready())
            .await
            .expect("ready while something waits");
        assert_eq!(c.take_all(), vec![("a", 2)]);
        // Nothing waits: ready() does not resolve.
        let waited = tokio::time::timeout(std::time::Duration::from_millis(50), c.ready()).await;
        assert!(waited.is_err());
    }
}
