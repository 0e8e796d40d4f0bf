//! One read from the API server shared by every pass that asked for it
//! before it was sent. Each pass still sees what the API server held after
//! it asked (what a read of its own would give), without a request per
//! pass: in a burst of new claims, each needs the ClaimPolicies as they are
//! now, and one LIST answers all the passes that asked while the previous
//! one was in flight.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};

/// A read's outcome as its waiters share it: `None` when it failed (each
/// waiter then reads on its own, for an error of its own to report).
type Read<T> = Shared<BoxFuture<'static, Option<Arc<T>>>>;

struct Batch<T> {
    /// Set just before the request goes out: a pass that finds it unset may
    /// still join.
    sent: Arc<AtomicBool>,
    read: Read<T>,
}

pub struct SharedRead<T> {
    /// The newest read: sent, or waiting for the one before it to finish.
    newest: Mutex<Option<Batch<T>>>,
}

impl<T> Default for SharedRead<T> {
    fn default() -> Self {
        Self {
            newest: Mutex::new(None),
        }
    }
}

impl<T: Send + Sync + 'static> SharedRead<T> {
    /// What `fetch` returns when sent after this call: the newest read if
    /// it has not gone out yet, else a new one that goes out when the
    /// newest has finished (one in flight at a time, so the passes that
    /// ask meanwhile share the next). A failed shared read is retried once
    /// by each waiter on its own, whose error is returned.
    pub async fn read<F, Fut, E>(&self, fetch: F) -> Result<Arc<T>, E>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        let read = {
            let mut newest = self.newest.lock().unwrap_or_else(PoisonError::into_inner);
            match newest.as_ref() {
                Some(b) if !b.sent.load(Ordering::SeqCst) => b.read.clone(),
                _ => {
                    let before = newest.as_ref().map(|b| b.read.clone());
                    let sent = Arc::new(AtomicBool::new(false));
                    let flag = sent.clone();
                    // Built now, sent when first polled after `before`.
                    let request = fetch();
                    let read = async move {
                        if let Some(before) = before {
                            before.await;
                        }
                        flag.store(true, Ordering::SeqCst);
                        request.await.ok().map(Arc::new)
                    }
                    .boxed()
                    .shared();
                    *newest = Some(Batch {
                        sent,
                        read: read.clone(),
                    });
                    read
                }
            }
        };
        match read.await {
            Some(v) => Ok(v),
            None => fetch().await.map(Arc::new),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use tokio::sync::Semaphore;

    /// A fetch that counts its requests, returns the count at the time it
    /// was sent, and waits for a permit before answering.
    fn counting(
        sent: Arc<AtomicUsize>,
        gate: Arc<Semaphore>,
        fail: bool,
    ) -> impl Fn() -> BoxFuture<'static, Result<usize, String>> {
        move || {
            let (sent, gate) = (sent.clone(), gate.clone());
            async move {
                let n = sent.fetch_add(1, Ordering::SeqCst) + 1;
                let _permit = gate.acquire().await.map_err(|e| e.to_string())?;
                match fail {
                    true => Err(format!("failed read {n}")),
                    false => Ok(n),
                }
            }
            .boxed()
        }
    }

    #[tokio::test]
    async fn passes_that_ask_while_a_read_is_in_flight_share_the_next() {
        let shared = Arc::new(SharedRead::<usize>::default());
        let sent = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(Semaphore::new(0));
        let fetch = counting(sent.clone(), gate.clone(), false);
        let first = tokio::spawn({
            let (shared, fetch) = (shared.clone(), counting(sent.clone(), gate.clone(), false));
            async move { shared.read(fetch).await }
        });
        // The first read is out and held.
        while sent.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        let later: Vec<_> = (0..5)
            .map(|_| {
                let shared = shared.clone();
                let fetch = counting(sent.clone(), gate.clone(), false);
                tokio::spawn(async move { shared.read(fetch).await })
            })
            .collect();
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        // None of them may use the read that went out before they asked.
        assert_eq!(sent.load(Ordering::SeqCst), 1);
        gate.add_permits(10);
        assert_eq!(*first.await.unwrap().unwrap(), 1);
        for l in later {
            assert_eq!(
                *l.await.unwrap().unwrap(),
                2,
                "one read sent after they asked"
            );
        }
        assert_eq!(sent.load(Ordering::SeqCst), 2);
        // Asked after everything finished: a read of its own.
        assert_eq!(*shared.read(&fetch).await.unwrap(), 3);
    }

    #[tokio::test]
    async fn a_failed_shared_read_is_retried_by_each_waiter_for_its_own_error() {
        let shared = SharedRead::<usize>::default();
        let sent = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(Semaphore::new(10));
        let fetch = counting(sent.clone(), gate, true);
        let err = shared.read(&fetch).await.unwrap_err();
        assert_eq!(err, "failed read 2");
        assert_eq!(sent.load(Ordering::SeqCst), 2);
    }
}
