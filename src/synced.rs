//! Waiting for a reflector store's first full list from many tasks.
//!
//! `Store::wait_until_ready` keeps a single waker: when several reconciles
//! wait on it at once, only the last one polled is woken and the others hang
//! for good (seen as a claim never reconciled after a restart). One task
//! waits per store and broadcasts through a `watch` channel, which wakes
//! every waiter. A Controller waits on its own store before running any
//! reconcile, so nothing else may wait on a Controller's store at all.

use kube::Resource;
use kube::runtime::reflector::Store;
use tokio::sync::watch;

#[derive(Clone, Debug)]
pub struct Synced(watch::Receiver<bool>);

impl Synced {
    /// Starts the one task that waits on `store`.
    pub fn watch<K>(store: Store<K>) -> Self
    where
        K: Resource + Clone + Send + Sync + 'static,
        K::DynamicType: Eq + std::hash::Hash + Clone + Send + Sync,
    {
        Self::when(async move { store.wait_until_ready().await.is_ok() })
    }

    /// Starts a task running `ready`; waiters are released when it yields true.
    pub fn when(ready: impl Future<Output = bool> + Send + 'static) -> Self {
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            if ready.await {
                let _ = tx.send(true);
            }
        });
        Self(rx)
    }

    /// Resolves once the store has seen its first full list (at once when
    /// it has); also when the store's writer is gone, so nothing waits forever.
    pub async fn wait(&self) {
        let mut rx = self.0.clone();
        let _ = rx.wait_for(|ready| *ready).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::runtime::reflector::store;
    use kube::runtime::watcher::Event;

    #[tokio::test]
    async fn every_waiter_is_woken() {
        let (reader, mut writer) = store::<ConfigMap>();
        let synced = Synced::watch(reader);
        let waiters: Vec<_> = (0..5)
            .map(|_| {
                let s = synced.clone();
                tokio::spawn(async move { s.wait().await })
            })
            .collect();
        tokio::task::yield_now().await;
        writer.apply_watcher_event(&Event::Init);
        writer.apply_watcher_event(&Event::InitDone);
        for w in waiters {
            tokio::time::timeout(std::time::Duration::from_secs(5), w)
                .await
                .unwrap_or_else(|_| panic!("a waiter was never woken"))
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }
}
