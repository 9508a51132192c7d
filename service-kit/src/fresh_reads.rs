//! Identical reads that arrive together, answered by one query that starts
//! after all of them arrived.
//!
//! Dashboards poll `GetJob` and `GetStatus` for the same few organisations
//! and sources. Under load every call used to hold a pooled connection for
//! its own copy of the same queries, and callers queued for connections
//! (200 clients: GetJob p99 about a second, RELIABILITY.md). [`FreshReads`]
//! runs at most one read per key at a time. Callers that arrive while a read
//! of their key is running wait for the next read, which starts as soon as
//! the running one ends and answers all of them.
//!
//! So every answer comes from a read that *started after its caller
//! arrived*: as fresh as a read of its own, and a caller that has just
//! written (RunNow, then GetJob) sees its write. That is why this is not a
//! plain "single flight", which lets a caller join a read already running
//! and so can answer with the state from before the caller's own write.
//! The database sees at most one read per key at a time, however many
//! callers there are.

use futures::FutureExt;
use futures::future::BoxFuture;
use std::collections::HashMap;
use std::hash::Hash;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::oneshot;

/// The read of one key, shared by everyone waiting for it.
pub type Read<K, V> = Arc<dyn Fn(K) -> BoxFuture<'static, V> + Send + Sync>;

/// The read ended without an answer (it panicked); the panic is logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the {0} read failed unexpectedly; see the service log")]
pub struct ReadAborted(pub &'static str);

/// Callers waiting for the next read of each key. A key is present while a
/// read of it is running; its list holds those who came after that read
/// started.
type Waiting<K, V> = HashMap<K, Vec<oneshot::Sender<V>>>;

/// Concurrent identical reads collapsed into one read per key at a time.
/// Cheap to clone; clones share their waiting callers.
pub struct FreshReads<K, V> {
    name: &'static str,
    read: Read<K, V>,
    waiting: Arc<Mutex<Waiting<K, V>>>,
}

impl<K, V> Clone for FreshReads<K, V> {
    fn clone(&self) -> Self {
        Self {
            name: self.name,
            read: self.read.clone(),
            waiting: self.waiting.clone(),
        }
    }
}

impl<K, V> FreshReads<K, V>
where
    K: Eq + Hash + Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    /// `name` labels the metrics (`fresh_reads_callers_total`,
    /// `fresh_reads_queries_total`) and the log.
    pub fn new(name: &'static str, read: Read<K, V>) -> Self {
        Self {
            name,
            read,
            waiting: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The value of `key`, from a read that starts after this call.
    ///
    /// The read runs on its own task: a caller that goes away (a cancelled
    /// RPC) does not cancel the read the others are waiting for.
    pub async fn get(&self, key: K) -> Result<V, ReadAborted> {
        metrics::counter!("fresh_reads_callers_total", "read" => self.name).increment(1);
        let (tx, rx) = oneshot::channel();
        let start_now = {
            let mut waiting = lock(&self.waiting);
            match waiting.get_mut(&key) {
                Some(next) => {
                    next.push(tx);
                    None
                }
                None => {
                    waiting.insert(key.clone(), Vec::new());
                    Some(tx)
                }
            }
        };
        if let Some(first) = start_now {
            tokio::spawn(self.clone().serve(key, vec![first]));
        }
        rx.await.map_err(|_| ReadAborted(self.name))
    }

    /// Runs reads of `key` until no one is waiting: each read answers the
    /// callers that arrived before it started.
    async fn serve(self, key: K, mut batch: Vec<oneshot::Sender<V>>) {
        loop {
            // Callers that gave up need no read.
            batch.retain(|tx| !tx.is_closed());
            if !batch.is_empty() {
                metrics::counter!("fresh_reads_queries_total", "read" => self.name).increment(1);
                match AssertUnwindSafe((self.read)(key.clone()))
                    .catch_unwind()
                    .await
                {
                    Ok(value) => {
                        for tx in batch {
                            // A caller that went away meanwhile needs nothing.
                            let _ = tx.send(value.clone());
                        }
                    }
                    // Dropping the batch tells its callers the read aborted.
                    Err(_) => tracing::error!(read = self.name, "a shared read panicked"),
                }
            }
            let mut waiting = lock(&self.waiting);
            match waiting.get_mut(&key).map(std::mem::take) {
                Some(next) if !next.is_empty() => batch = next,
                _ => {
                    waiting.remove(&key);
                    return;
                }
            }
        }
    }
}

/// The lock is never held across an await or anything that can panic, so
/// a poisoned lock still holds consistent data.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;
    use tokio::sync::Semaphore;

    /// A read whose every call is counted and held until the test releases
    /// it; it answers `key * 1000 + the call's number`.
    struct Gate {
        calls: Arc<AtomicUsize>,
        open: Arc<Semaphore>,
        reads: FreshReads<u32, u64>,
    }

    fn gated() -> Gate {
        let calls = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(Semaphore::new(0));
        let (c, o) = (calls.clone(), open.clone());
        let reads = FreshReads::new(
            "test",
            Arc::new(move |key: u32| {
                let (c, o) = (c.clone(), o.clone());
                async move {
                    let n = c.fetch_add(1, Ordering::SeqCst) + 1;
                    o.acquire().await.expect("semaphore open").forget();
                    u64::from(key) * 1000 + n as u64
                }
                .boxed()
            }),
        );
        Gate { calls, open, reads }
    }

    async fn until(what: &str, f: impl Fn() -> bool) {
        for _ in 0..500 {
            if f() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        panic!("timed out waiting for {what}");
    }

    #[tokio::test]
    async fn callers_during_a_read_share_the_next_read_not_the_running_one() {
        let g = gated();
        let first = tokio::spawn({
            let r = g.reads.clone();
            async move { r.get(7).await }
        });
        until("the first read to start", || {
            g.calls.load(Ordering::SeqCst) == 1
        })
        .await;
        // Ten callers arrive while read 1 runs: none of them may get its
        // answer, which could predate their arrival.
        let later: Vec<_> = (0..10)
            .map(|_| {
                let r = g.reads.clone();
                tokio::spawn(async move { r.get(7).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(g.calls.load(Ordering::SeqCst), 1, "one read at a time");
        g.open.add_permits(1);
        assert_eq!(first.await.expect("joined"), Ok(7001));
        until("the second read to start", || {
            g.calls.load(Ordering::SeqCst) == 2
        })
        .await;
        g.open.add_permits(1);
        for h in later {
            assert_eq!(h.await.expect("joined"), Ok(7002));
        }
        assert_eq!(g.calls.load(Ordering::SeqCst), 2, "ten callers, one read");
        assert!(lock(&g.reads.waiting).is_empty(), "nothing left waiting");
    }

    #[tokio::test]
    async fn different_keys_read_at_the_same_time() {
        let g = gated();
        let handles: Vec<_> = [1u32, 2, 3]
            .into_iter()
            .map(|k| {
                let r = g.reads.clone();
                tokio::spawn(async move { r.get(k).await })
            })
            .collect();
        until("three reads to start", || {
            g.calls.load(Ordering::SeqCst) == 3
        })
        .await;
        g.open.add_permits(3);
        let mut got = Vec::new();
        for h in handles {
            got.push(h.await.expect("joined").expect("answered") / 1000);
        }
        assert_eq!(got, vec![1, 2, 3]);
    }

    #[tokio::test]
    async fn a_caller_that_goes_away_does_not_cancel_the_read_of_the_others() {
        let g = gated();
        let leaver = tokio::spawn({
            let r = g.reads.clone();
            async move { r.get(5).await }
        });
        until("the read to start", || g.calls.load(Ordering::SeqCst) == 1).await;
        let stayer = tokio::spawn({
            let r = g.reads.clone();
            async move { r.get(5).await }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        leaver.abort();
        g.open.add_permits(2);
        assert_eq!(stayer.await.expect("joined"), Ok(5002));
    }

    #[tokio::test]
    async fn a_read_with_no_one_left_waiting_is_skipped() {
        let g = gated();
        let first = tokio::spawn({
            let r = g.reads.clone();
            async move { r.get(9).await }
        });
        until("the read to start", || g.calls.load(Ordering::SeqCst) == 1).await;
        let gone = tokio::spawn({
            let r = g.reads.clone();
            async move { r.get(9).await }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        gone.abort();
        g.open.add_permits(1);
        assert_eq!(first.await.expect("joined"), Ok(9001));
        until("the key to be released", || {
            lock(&g.reads.waiting).is_empty()
        })
        .await;
        assert_eq!(g.calls.load(Ordering::SeqCst), 1, "no read for no one");
    }

    #[tokio::test]
    async fn a_panicking_read_aborts_its_callers_and_the_next_read_works() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let reads: FreshReads<u32, u32> = FreshReads::new(
            "flaky",
            Arc::new(move |key: u32| {
                let n = c.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n == 0 {
                        panic!("first read fails");
                    }
                    key + 1
                }
                .boxed()
            }),
        );
        assert_eq!(reads.get(1).await, Err(ReadAborted("flaky")));
        assert_eq!(reads.get(1).await, Ok(2));
        assert!(lock(&reads.waiting).is_empty());
    }
}
