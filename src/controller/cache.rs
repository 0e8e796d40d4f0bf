//! Read caches over watches the operator runs anyway: the objects it
//! composed and the Secrets it writes. A reconcile reads them instead of
//! sending a GET per object per pass (issue 20: the API server's cost per
//! claim), and falls back to a GET where the cache cannot answer safely:
//!
//! - an object the cache does not hold: it may be new and not delivered
//!   yet, or exist without dbclaim's labels (a name collision the watch's
//!   label selector hides). A forced apply must not take over someone
//!   else's object, so absence is always confirmed by a read;
//! - an object older than what this operator last wrote to it (the watch
//!   lags a write of this pass or a recent one): see [`Written`].

use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use super::context::Recent;

/// How long a reconcile waits for a cache's first list before it reads
/// from the API server instead (once; a cache that missed it, or whose list
/// failed, is not waited for again until it syncs).
const SYNC_WAIT: Duration = Duration::from_secs(20);

/// A reflector's store and a ready flag many reconciles can wait on
/// (kube's `Store::wait_until_ready` wakes only its last waiter).
pub struct Cache<K: Resource + 'static>
where
    K::DynamicType: Hash + Eq,
{
    store: Option<Store<K>>,
    /// None while the first list runs; Some(true) once synced; Some(false)
    /// while the list fails (reconciles read from the API server meanwhile).
    ready: watch::Receiver<Option<bool>>,
    gave_up: Arc<AtomicBool>,
}

impl<K: Resource + 'static> Clone for Cache<K>
where
    K::DynamicType: Hash + Eq,
{
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            ready: self.ready.clone(),
            gave_up: self.gave_up.clone(),
        }
    }
}

impl<K> Cache<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Hash + Eq + Clone + Send + Sync,
{
    /// No cache: every lookup answers "ask the API server" (tests that
    /// script the API server's answers).
    pub fn none() -> Self {
        let (_, ready) = watch::channel(None);
        Self {
            store: None,
            ready,
            gave_up: Arc::new(AtomicBool::new(true)),
        }
    }

    /// Starts a watch of `api` (objects `config` selects) into a store;
    /// `touched` sees every object the watch delivers (to wake its claim)
    /// and returns false once nobody listens.
    pub fn spawn(
        api: Api<K>,
        config: watcher::Config,
        dyntype: K::DynamicType,
        touched: impl FnMut(&K) -> bool + Send + 'static,
    ) -> Self {
        Self::from_events(watcher(api, config), dyntype, touched)
    }

    /// The cache of what `events` (a watcher's) delivers. It keeps what
    /// reconciles compare, not managed fields or kubectl's last-applied copy.
    pub fn from_events(
        events: impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
        dyntype: K::DynamicType,
        mut touched: impl FnMut(&K) -> bool + Send + 'static,
    ) -> Self {
        let writer = reflector::store::Writer::new(dyntype);
        let store = writer.as_reader();
        let (ready_tx, ready) = watch::channel(None);
        tokio::spawn(async move {
            let events = events.default_backoff().modify(slim);
            let mut events = std::pin::pin!(reflector::reflector(writer, events));
            while let Some(event) = events.next().await {
                let Ok(event) = event else {
                    // The list failed (RBAC that forbids it, a kind gone):
                    // reconciles read from the API server at once instead
                    // of waiting for a list that may never come.
                    if *ready_tx.borrow() != Some(true) {
                        let _ = ready_tx.send(Some(false));
                    }
                    continue;
                };
                match event {
                    watcher::Event::InitDone => {
                        let _ = ready_tx.send(Some(true));
                    }
                    watcher::Event::Apply(o) | watcher::Event::Delete(o) => {
                        if !touched(&o) {
                            return;
                        }
                    }
                    // A re-list after a lost watch: wake what it brings
                    // back, as the watches before the caches did.
                    watcher::Event::InitApply(o) if *ready_tx.borrow() == Some(true) => {
                        if !touched(&o) {
                            return;
                        }
                    }
                    watcher::Event::Init | watcher::Event::InitApply(_) => {}
                }
            }
        });
        Self {
            store: Some(store),
            ready,
            gave_up: Arc::new(AtomicBool::new(false)),
        }
    }

    /// A watch of every object of `api` (no label selector), metadata
    /// only: which names exist, for telling "absent" from "not dbclaim's"
    /// without a GET. Names, labels and owners, so it stays small.
    pub fn names(
        api: Api<PartialObjectMeta<K>>,
        dyntype: K::DynamicType,
    ) -> Cache<PartialObjectMeta<K>>
    where
        PartialObjectMeta<K>:
            Resource<DynamicType = K::DynamicType> + Clone + DeserializeOwned + Debug,
    {
        Cache::spawn(api, watcher::Config::default(), dyntype, |_| true)
    }

    /// A synced cache holding `objects`, as a watch would have filled it.
    #[cfg(test)]
    pub fn filled(objects: Vec<K>, dyntype: K::DynamicType) -> Self {
        let mut writer = reflector::store::Writer::new(dyntype);
        for o in objects {
            writer.apply_watcher_event(&watcher::Event::Apply(o));
        }
        let (_, ready) = watch::channel(Some(true));
        Self {
            store: Some(writer.as_reader()),
            ready,
            gave_up: Arc::new(AtomicBool::new(false)),
        }
    }

    /// `Some(object or None)` from a synced cache; `None` when there is no
    /// synced cache to ask (the caller reads from the API server).
    pub async fn lookup(&self, key: &ObjectRef<K>) -> Option<Option<Arc<K>>> {
        let store = self.store.as_ref()?;
        let state = *self.ready.borrow();
        match state {
            Some(true) => {}
            Some(false) => return None,
            None => {
                if self.gave_up.load(Ordering::Relaxed) {
                    return None;
                }
                let mut ready = self.ready.clone();
                let waited = tokio::time::timeout(SYNC_WAIT, ready.wait_for(Option::is_some)).await;
                let timed_out = waited.is_err();
                let synced = matches!(&waited, Ok(Ok(r)) if **r == Some(true));
                drop(waited);
                if timed_out {
                    self.gave_up.store(true, Ordering::Relaxed);
                }
                if !synced {
                    return None;
                }
            }
        }
        Some(store.get(key))
    }

    /// Whether the first list is in (for the operator's start-up gate).
    pub async fn synced(&self) {
        if self.store.is_none() {
            return;
        }
        let mut ready = self.ready.clone();
        let _ = ready.wait_for(|r| *r == Some(true)).await;
    }
}

/// What no reconcile reads: managed fields (about half of an object as the
/// API server sends it) and kubectl's last-applied copy.
pub fn slim<K: Resource>(obj: &mut K) {
    obj.managed_fields_mut().clear();
    obj.annotations_mut()
        .remove("kubectl.kubernetes.io/last-applied-configuration");
}

/// The resourceVersion this operator last got back from a write of an
/// object, by "resource/namespace/name": a cached copy older than that
/// lags the watch and is not used.
pub type Written = Recent<String>;

/// The key of [`Written`].
pub fn written_key(resource: &str, namespace: &str, name: &str) -> String {
    format!("{resource}/{namespace}/{name}")
}

/// Whether a cached object with `cached` resourceVersion may be used,
/// knowing this operator wrote `written` lately. resourceVersions are
/// opaque to clients in general; the API server's are etcd revisions
/// (integers that only grow), and anything else is treated as stale.
pub fn fresh(cached: Option<&str>, written: Option<&str>) -> bool {
    let Some(written) = written else {
        return true;
    };
    match (
        cached.and_then(|c| c.parse::<u64>().ok()),
        written.parse::<u64>().ok(),
    ) {
        (Some(c), Some(w)) => c >= w,
        _ => false,
    }
}

/// Remembers the resourceVersion of an object this operator wrote.
pub fn remember<K: Resource>(written: &Written, resource: &str, obj: &K) {
    if let Some(rv) = obj.meta().resource_version.as_deref() {
        let ns = obj.meta().namespace.as_deref().unwrap_or_default();
        let name = obj.meta().name.as_deref().unwrap_or_default();
        written.insert(&written_key(resource, ns, name), rv.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_older_than_a_write_is_stale() {
        assert!(fresh(Some("10"), None));
        assert!(fresh(None, None));
        assert!(fresh(Some("12"), Some("12")));
        assert!(fresh(Some("13"), Some("12")));
        assert!(!fresh(Some("11"), Some("12")));
        assert!(!fresh(None, Some("12")));
        assert!(!fresh(Some("x"), Some("12")));
    }
}
