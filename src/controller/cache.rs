//! Read caches over watches the operator runs anyway: the objects it
//! composed and the Secrets it writes. A reconcile reads them instead of
//! sending a GET per object per pass (issue 20: the API server's cost per
//! claim), and falls back to a GET where the cache cannot answer safely:
//!
//! - an object the cache does not hold: it may be new and not delivered
//!   yet, or exist without dbclaim's labels (a name collision the watch's
//!   label selector hides). A forced apply must not take over someone
//!   else's object, so absence is confirmed by a read, except for core
//!   kinds (ConfigMaps, Secrets) whose metadata watch of every object
//!   ([`Names`]) lacks the name and that this operator has not written
//!   lately: those cannot hold a database;
//! - an object older than what this operator last wrote to it (the watch
//!   lags a write of this pass or a recent one): see [`Written`], and for
//!   Secrets the copy that write returned ([`Handoff`]).

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{broadcast, watch};

use super::context::Recent;

/// How long a reconcile waits for a cache's first list before it reads
/// from the API server instead (once; a cache that missed it, or whose list
/// failed, is not waited for again until it syncs).
const SYNC_WAIT: Duration = Duration::from_secs(20);

/// Cached objects by "namespace/name" (see [`key`]), each kept as its JSON
/// text: one allocation per object instead of a tree of maps and strings
/// (a ConfigMap's `serde_json::Value` tree held about 3.4 KiB against its
/// 1 KiB of JSON, a typed Secret 2 KiB), and no reflector key carrying the
/// kind's `ApiResource` and the object's uid and resourceVersion. A lookup
/// parses the one object it asks for (a GET's answer costs the same).
type Objects = HashMap<Box<str>, Box<str>>;

/// A watch's objects and a ready flag many reconciles can wait on
/// (kube's `Store::wait_until_ready` wakes only its last waiter).
pub struct Cache<K> {
    store: Option<Arc<RwLock<Objects>>>,
    synced: Synced,
    kind: PhantomData<fn() -> K>,
}

impl<K> Clone for Cache<K> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            synced: self.synced.clone(),
            kind: PhantomData,
        }
    }
}

impl<K> Cache<K>
where
    K: Resource + Clone + Serialize + DeserializeOwned + Debug + Send + Sync + 'static,
{
    /// No cache: every lookup answers "ask the API server" (tests that
    /// script the API server's answers).
    pub fn none() -> Self {
        Self {
            store: None,
            synced: Synced::never(),
            kind: PhantomData,
        }
    }

    /// Starts a watch of `api` (objects `config` selects) into a store;
    /// `touched` sees every object the watch delivers (to wake its claim)
    /// and returns false once nobody listens.
    pub fn spawn(
        api: Api<K>,
        config: watcher::Config,
        touched: impl FnMut(&K) -> bool + Send + 'static,
    ) -> Self {
        Self::from_events(watcher(api, config), touched)
    }

    /// The cache of what `events` (a watcher's) delivers. It keeps what
    /// reconciles compare, not managed fields or kubectl's last-applied copy.
    pub fn from_events(
        events: impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
        mut touched: impl FnMut(&K) -> bool + Send + 'static,
    ) -> Self {
        let store = Arc::new(RwLock::new(Objects::new()));
        let weak = Arc::downgrade(&store);
        let (ready_tx, synced) = Synced::new();
        tokio::spawn(async move {
            let mut events = std::pin::pin!(events.default_backoff().modify(slim));
            // A (re-)list fills this and replaces the store once complete,
            // as a reflector does: the old objects answer meanwhile.
            let mut listed = Objects::new();
            while let Some(event) = events.next().await {
                let Some(store) = weak.upgrade() else {
                    return;
                };
                let Ok(event) = event else {
                    list_failed(&ready_tx);
                    continue;
                };
                let listening = match event {
                    watcher::Event::Init => {
                        listed = Objects::new();
                        true
                    }
                    watcher::Event::InitApply(o) => {
                        if let Some((k, v)) = entry(&o) {
                            listed.insert(k, v);
                        }
                        // A re-list after a lost watch: wake what it brings
                        // back, as the watches before the caches did.
                        *ready_tx.borrow() != Some(true) || touched(&o)
                    }
                    watcher::Event::InitDone => {
                        listed.shrink_to_fit();
                        if let Ok(mut s) = store.write() {
                            *s = std::mem::take(&mut listed);
                        }
                        let _ = ready_tx.send(Some(true));
                        true
                    }
                    watcher::Event::Apply(o) => {
                        if let (Some((k, v)), Ok(mut s)) = (entry(&o), store.write()) {
                            s.insert(k, v);
                        }
                        touched(&o)
                    }
                    watcher::Event::Delete(o) => {
                        if let Ok(mut s) = store.write() {
                            s.remove(&*meta_key(&o));
                        }
                        touched(&o)
                    }
                };
                if !listening {
                    return;
                }
            }
        });
        Self {
            store: Some(store),
            synced,
            kind: PhantomData,
        }
    }

    /// A synced cache holding `objects`, as a watch would have filled it.
    #[cfg(test)]
    pub fn filled(objects: Vec<K>) -> Self {
        let store = objects.iter().filter_map(entry).collect();
        Self {
            store: Some(Arc::new(RwLock::new(store))),
            synced: Synced::now(),
            kind: PhantomData,
        }
    }

    /// `Some(object or None)` from a synced cache: `name`, in `namespace`
    /// for a namespaced kind; `None` when there is no synced cache to ask
    /// (the caller reads from the API server).
    pub async fn lookup(&self, namespace: Option<&str>, name: &str) -> Option<Option<K>> {
        let store = self.store.as_ref()?;
        if !self.synced.wait().await {
            return None;
        }
        let store = store.read().ok()?;
        let Some(text) = store.get(&*key(namespace, name)) else {
            return Some(None);
        };
        // It was serialized from a K: a copy that does not parse back is
        // not used (the caller reads the object instead).
        serde_json::from_str(text).ok().map(Some)
    }

    /// Whether the first list is in (for the operator's start-up gate).
    pub async fn synced(&self) {
        if self.store.is_none() {
            return;
        }
        self.synced.synced().await;
    }
}

/// Whether a cache's first list is in, for many reconciles to wait on
/// (kube's `Store::wait_until_ready` wakes only its last waiter).
#[derive(Clone)]
struct Synced {
    /// None while the first list runs; Some(true) once synced; Some(false)
    /// while the list fails (reconciles read from the API server meanwhile).
    ready: watch::Receiver<Option<bool>>,
    gave_up: Arc<AtomicBool>,
}

impl Synced {
    fn new() -> (watch::Sender<Option<bool>>, Self) {
        let (tx, ready) = watch::channel(None);
        let synced = Self {
            ready,
            gave_up: Arc::new(AtomicBool::new(false)),
        };
        (tx, synced)
    }

    /// Never synced: every lookup goes to the API server.
    fn never() -> Self {
        let (_, ready) = watch::channel(None);
        Self {
            ready,
            gave_up: Arc::new(AtomicBool::new(true)),
        }
    }

    #[cfg(test)]
    fn now() -> Self {
        let (_, ready) = watch::channel(Some(true));
        Self {
            ready,
            gave_up: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Whether the cache may answer: synced, or synced after waiting for
    /// its first list (once; see [`SYNC_WAIT`]).
    async fn wait(&self) -> bool {
        let state = *self.ready.borrow();
        match state {
            Some(ready) => ready,
            None => {
                if self.gave_up.load(Ordering::Relaxed) {
                    return false;
                }
                let mut ready = self.ready.clone();
                let waited = tokio::time::timeout(SYNC_WAIT, ready.wait_for(Option::is_some)).await;
                let timed_out = waited.is_err();
                let synced = matches!(&waited, Ok(Ok(r)) if **r == Some(true));
                drop(waited);
                if timed_out {
                    self.gave_up.store(true, Ordering::Relaxed);
                }
                synced
            }
        }
    }

    async fn synced(&self) {
        let mut ready = self.ready.clone();
        let _ = ready.wait_for(|r| *r == Some(true)).await;
    }
}

/// The list failed (RBAC that forbids it, a kind gone): reconciles read
/// from the API server at once instead of waiting for a list that may
/// never come.
fn list_failed(ready: &watch::Sender<Option<bool>>) {
    if *ready.borrow() != Some(true) {
        let _ = ready.send(Some(false));
    }
}

/// Which objects of a kind exist, any labels: for telling "absent" from
/// "not dbclaim's" without a GET. A metadata-only watch of every object,
/// keeping only each object's namespace and name: a store of their
/// metadata (labels, annotations, owners, and a reflector's key per
/// object) held several times what reconciles ask of it.
#[derive(Clone)]
pub struct Names {
    set: Option<Arc<RwLock<HashSet<Box<str>>>>>,
    synced: Synced,
    /// The one namespace watched, if not all: names elsewhere are unknown.
    scope: Option<Box<str>>,
    /// The key of every object the watch touches, for whoever else would
    /// watch the same kind's metadata (each metadata watch costs the API
    /// server a conversion and an encoding per event).
    touched: Option<broadcast::Sender<Box<str>>>,
}

/// What a subscriber to [`Names::subscribe`] receives.
#[derive(Debug, PartialEq, Eq)]
pub enum Touched {
    /// The object "namespace/name" (or "name") was listed, changed or deleted.
    Object(Box<str>),
    /// The subscriber fell behind: any object may have changed.
    Missed,
}

impl Touched {
    /// `obj` touched.
    pub fn of<K: Resource>(obj: &K) -> Self {
        Touched::Object(meta_key(obj))
    }

    /// The object's namespace (none for a cluster-scoped kind) and name;
    /// `None` after [`Touched::Missed`].
    pub fn object(&self) -> Option<(Option<&str>, &str)> {
        match self {
            Touched::Object(key) => Some(match key.split_once('/') {
                Some((ns, name)) => (Some(ns), name),
                None => (None, key),
            }),
            Touched::Missed => None,
        }
    }
}

/// Touched keys a slow subscriber may fall behind by before it is told it
/// missed some ([`Touched::Missed`]).
const TOUCHED_BUFFER: usize = 1024;

impl Default for Names {
    fn default() -> Self {
        Self::none()
    }
}

impl Names {
    /// No cache: every lookup answers "ask the API server".
    pub fn none() -> Self {
        Self {
            set: None,
            synced: Synced::never(),
            scope: None,
            touched: None,
        }
    }

    /// Starts the watch of every object of `api` (metadata-only requests:
    /// kube sends them for `PartialObjectMeta`).
    pub fn spawn<K>(api: Api<PartialObjectMeta<K>>) -> Self
    where
        K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
        PartialObjectMeta<K>: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        Self::from_events(watcher(api, list_config()).default_backoff())
    }

    /// The names of what `events` (a watcher's) delivers.
    fn from_events<K: Resource + Send + 'static>(
        events: impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
    ) -> Self {
        let set = Arc::new(RwLock::new(HashSet::new()));
        let (ready_tx, synced) = Synced::new();
        let weak = Arc::downgrade(&set);
        let (touched, _) = broadcast::channel(TOUCHED_BUFFER);
        let tell = touched.clone();
        tokio::spawn(async move {
            let mut events = std::pin::pin!(events);
            // A (re-)list fills this and replaces the set once complete, as
            // a reflector does: the old set answers meanwhile.
            let mut listed = HashSet::new();
            while let Some(event) = events.next().await {
                let Some(set) = weak.upgrade() else {
                    return;
                };
                let Ok(event) = event else {
                    list_failed(&ready_tx);
                    continue;
                };
                // No subscriber is no error: send's Err only says so.
                let told = |key: &str| {
                    let _ = tell.send(key.into());
                };
                match event {
                    watcher::Event::Init => listed = HashSet::new(),
                    watcher::Event::InitApply(o) => {
                        let key = meta_key(&o);
                        told(&key);
                        listed.insert(key);
                    }
                    watcher::Event::InitDone => {
                        if let Ok(mut s) = set.write() {
                            *s = std::mem::take(&mut listed);
                        }
                        let _ = ready_tx.send(Some(true));
                    }
                    watcher::Event::Apply(o) => {
                        let key = meta_key(&o);
                        told(&key);
                        if let Ok(mut s) = set.write() {
                            s.insert(key);
                        }
                    }
                    watcher::Event::Delete(o) => {
                        let key = meta_key(&o);
                        told(&key);
                        if let Ok(mut s) = set.write() {
                            s.remove(&*key);
                        }
                    }
                }
            }
        });
        Self {
            set: Some(set),
            synced,
            scope: None,
            touched: Some(touched),
        }
    }

    /// Every object the watch touches from now on (listed, changed or
    /// deleted), as the watch sees it; `None` when there is no watch or it
    /// covers one namespace only (a subscriber then watches for itself).
    pub fn subscribe(&self) -> Option<impl futures::Stream<Item = Touched> + Send + 'static> {
        if self.scope.is_some() {
            return None;
        }
        let rx = self.touched.as_ref()?.subscribe();
        Some(futures::stream::unfold(rx, |mut rx| async move {
            let touched = match rx.recv().await {
                Ok(key) => Touched::Object(key),
                Err(broadcast::error::RecvError::Lagged(_)) => Touched::Missed,
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            Some((touched, rx))
        }))
    }

    /// Says the watch covers `namespace` only (`None`: all), so a name
    /// asked for elsewhere is unknown rather than absent.
    pub fn within(mut self, namespace: Option<&str>) -> Self {
        self.scope = namespace.map(Into::into);
        self
    }

    /// A synced cache of the objects named (namespace, name).
    #[cfg(test)]
    pub fn filled<'a>(objects: impl IntoIterator<Item = (Option<&'a str>, &'a str)>) -> Self {
        let set = objects.into_iter().map(|(ns, n)| key(ns, n)).collect();
        Self {
            set: Some(Arc::new(RwLock::new(set))),
            synced: Synced::now(),
            scope: None,
            touched: None,
        }
    }

    /// Whether `name` (in `namespace`, for a namespaced kind) exists;
    /// `None` when there is no synced cache to ask.
    pub async fn exists(&self, namespace: Option<&str>, name: &str) -> Option<bool> {
        if self.scope.is_some() && namespace != self.scope.as_deref() {
            return None;
        }
        let set = self.set.as_ref()?;
        if !self.synced.wait().await {
            return None;
        }
        let set = set.read().ok()?;
        Some(set.contains(&*key(namespace, name)))
    }
}

/// Names and namespaces hold no '/', so "namespace/name" is unambiguous.
fn key(namespace: Option<&str>, name: &str) -> Box<str> {
    match namespace {
        Some(ns) => format!("{ns}/{name}").into_boxed_str(),
        None => name.into(),
    }
}

fn meta_key<K: Resource>(obj: &K) -> Box<str> {
    let meta = obj.meta();
    key(
        meta.namespace.as_deref(),
        meta.name.as_deref().unwrap_or_default(),
    )
}

/// Objects per page of a cache's list. Fewer than kube's 500: a page is
/// held twice while it is read (the response's text and the objects parsed
/// from it), and the caches list at once at start-up, which set the
/// operator's peak memory on a restart with many claims.
const LIST_PAGE: u32 = 100;

/// A cached object's key and JSON text; `None` if it does not serialize
/// (then it is not cached, and reconciles read it from the API server).
fn entry<K: Resource + Serialize>(obj: &K) -> Option<(Box<str>, Box<str>)> {
    let text = serde_json::to_string(obj).ok()?;
    Some((meta_key(obj), text.into_boxed_str()))
}

/// Whether the API server streams a watch's initial objects
/// (`sendInitialEvents`, the WatchList feature: on by default from
/// Kubernetes 1.32). Set once at start-up from the server's version.
static STREAMING_LISTS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// Records whether the caches' first lists may stream (see [`list_config`]).
pub fn set_streaming_lists(on: bool) {
    let _ = STREAMING_LISTS.set(on);
}

/// Whether a server of this version streams initial watch events by default.
pub fn streams_lists(major: &str, minor: &str) -> bool {
    // Minor versions may carry a suffix ("32+" on some managed clusters).
    let digits = |s: &str| {
        s.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse::<u32>()
            .ok()
    };
    matches!((digits(major), digits(minor)), (Some(1), Some(m)) if m >= 32)
        || digits(major).is_some_and(|m| m > 1)
}

/// The watcher settings of every cache: a streamed first list where the
/// server supports it (objects arrive one by one from its watch cache, no
/// page round trips, no page held twice), else pages of [`LIST_PAGE`].
pub fn list_config() -> watcher::Config {
    match STREAMING_LISTS.get() {
        Some(true) => watcher::Config::default().streaming_lists(),
        _ => watcher::Config::default().page_size(LIST_PAGE),
    }
}

/// What no reconcile reads: managed fields (about half of an object as the
/// API server sends it) and kubectl's last-applied copy.
pub fn slim<K: Resource>(obj: &mut K) {
    obj.meta_mut().managed_fields = None;
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

/// Connection Secrets this process wrote lately (the providers' and the
/// claims'), whole, by "namespace/name". A provider writes its Secret
/// before its object turns Ready, and that Secret's watch event may reach
/// a cache after the Ready that wakes the claim; a claim's next pass may
/// come before its own Secret's event. The copy the write returned is as
/// current as a cached one at its resourceVersion, so no one reads it
/// again. Entries go once a cache has caught up, else after a minute
/// ([`Recent`]).
#[derive(Clone, Default)]
pub struct Handoff(Arc<Recent<Arc<Secret>>>);

impl Handoff {
    /// Keeps `secret` as a write returned it.
    pub fn keep(&self, secret: &Secret) {
        let mut secret = secret.clone();
        slim(&mut secret);
        let key = meta_key(&secret);
        self.0.insert(&key, Arc::new(secret));
    }

    /// The newer of `cached` (the claim controller's Secret cache's copy of
    /// `namespace/name`) and the one handed over; the handed one is dropped
    /// once that cache has it (a copy no claim asks for goes with age).
    pub fn newer(&self, namespace: &str, name: &str, cached: Option<Secret>) -> Option<Secret> {
        self.pick(namespace, name, cached, true)
    }

    /// [`Handoff::newer`] for another cache: one that caught up says
    /// nothing of the claims' cache, so the handed copy stays.
    pub fn peek_newer(
        &self,
        namespace: &str,
        name: &str,
        cached: Option<Secret>,
    ) -> Option<Secret> {
        self.pick(namespace, name, cached, false)
    }

    fn pick(&self, ns: &str, name: &str, cached: Option<Secret>, drop: bool) -> Option<Secret> {
        let key = key(Some(ns), name);
        let Some(handed) = self.0.get(&key) else {
            return cached;
        };
        let cached_rv = cached.as_ref().and_then(|s| s.resource_version());
        if fresh(cached_rv.as_deref(), handed.resource_version().as_deref()) {
            if drop {
                self.0.remove(&key);
            }
            return cached;
        }
        Some((*handed).clone())
    }
}

/// What the claim controller and the providers of one process share about
/// Secrets: the names of all of them the operator may see (a metadata
/// watch), and the connection Secrets as they were written lately.
#[derive(Clone, Default)]
pub struct SharedSecrets {
    pub names: Names,
    pub handoff: Handoff,
}

impl Debug for SharedSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedSecrets").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_stream_from_kubernetes_1_32() {
        assert!(streams_lists("1", "32"));
        assert!(streams_lists("1", "37"));
        assert!(streams_lists("1", "33+"));
        assert!(streams_lists("2", "0"));
        assert!(!streams_lists("1", "31"));
        assert!(!streams_lists("1", "29+"));
        assert!(!streams_lists("1", ""));
        assert!(!streams_lists("", "40"));
    }

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

    #[tokio::test]
    async fn names_of_one_namespace_know_nothing_of_another() {
        let names = Names::filled([(Some("team-a"), "a")]).within(Some("team-a"));
        assert_eq!(names.exists(Some("team-a"), "a").await, Some(true));
        assert_eq!(names.exists(Some("team-a"), "b").await, Some(false));
        assert_eq!(names.exists(Some("dbclaim-system"), "b").await, None);
        let all = Names::filled([(Some("team-a"), "a")]);
        assert_eq!(all.exists(Some("dbclaim-system"), "b").await, Some(false));
    }

    fn written_secret(rv: &str, password: &str) -> Secret {
        let mut s = Secret::default();
        s.metadata.namespace = Some("ops".into());
        s.metadata.name = Some("db".into());
        s.metadata.resource_version = Some(rv.into());
        s.metadata.managed_fields = Some(vec![Default::default()]);
        s.string_data = Some([("password".to_string(), password.to_string())].into());
        s
    }

    #[test]
    fn a_handed_over_secret_stands_in_until_the_cache_has_it() {
        let handoff = Handoff::default();
        assert_eq!(handoff.newer("ops", "db", None), None);
        handoff.keep(&written_secret("12", "new"));
        // Not cached yet, or cached older: the write's copy, slimmed.
        let got = handoff.newer("ops", "db", None).unwrap();
        assert_eq!(got.metadata.resource_version.as_deref(), Some("12"));
        assert_eq!(got.metadata.managed_fields, None);
        let got = handoff.newer("ops", "db", Some(written_secret("11", "old")));
        assert_eq!(
            got.unwrap().metadata.resource_version.as_deref(),
            Some("12")
        );
        assert_eq!(handoff.newer("ops", "other", None), None);
        // Another cache caught up: its copy, the handed one stays.
        let got = handoff.peek_newer("ops", "db", Some(written_secret("13", "newer")));
        assert_eq!(
            got.unwrap().metadata.resource_version.as_deref(),
            Some("13")
        );
        assert!(handoff.newer("ops", "db", None).is_some());
        // The claims' cache caught up: its copy, and the handed one is dropped.
        let got = handoff.newer("ops", "db", Some(written_secret("13", "newer")));
        assert_eq!(
            got.unwrap().metadata.resource_version.as_deref(),
            Some("13")
        );
        assert_eq!(handoff.newer("ops", "db", None), None);
    }

    fn secret(ns: &str, name: &str) -> PartialObjectMeta<k8s_openapi::api::core::v1::Secret> {
        let mut s = PartialObjectMeta::default();
        s.metadata.namespace = Some(ns.into());
        s.metadata.name = Some(name.into());
        s
    }

    fn composed(ns: Option<&str>, name: &str, ready: bool) -> kube::api::DynamicObject {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": name,
                "namespace": ns,
                "uid": format!("uid-{name}"),
                "resourceVersion": "7",
                "labels": {"dbclaim.io/claim-name": "c"},
                "managedFields": [{"manager": "dbclaim", "operation": "Apply"}],
                "annotations": {
                    "kubectl.kubernetes.io/last-applied-configuration": "{}",
                    "kept": "yes",
                },
            },
            "data": {"host": "db", "port": "5432"},
            "status": {"conditions": [{"type": "Ready", "status": ready.to_string()}]},
        }))
        .unwrap_or_else(|e| panic!("test object: {e}"))
    }

    #[tokio::test]
    async fn a_cache_answers_what_reconciles_read_from_its_compact_copies() {
        let (tx, rx) = futures::channel::mpsc::unbounded();
        let woken = Arc::new(RwLock::new(Vec::<String>::new()));
        let seen = woken.clone();
        let cache = Cache::from_events(rx, move |o: &kube::api::DynamicObject| {
            if let Ok(mut w) = seen.write() {
                w.push(o.name_any());
            }
            true
        });
        let send = |e| tx.unbounded_send(Ok(e)).ok();
        send(watcher::Event::Init);
        send(watcher::Event::InitApply(composed(Some("a"), "one", false)));
        send(watcher::Event::InitApply(composed(None, "cluster", true)));
        send(watcher::Event::InitDone);
        let got = cache.lookup(Some("a"), "one").await.flatten();
        let got = got.unwrap_or_else(|| panic!("cached"));
        // Every field a readiness check or connection detail may name is
        // there as the API server sent it; managed fields and kubectl's
        // copy are not.
        let mut want = composed(Some("a"), "one", false);
        slim(&mut want);
        assert_eq!(
            serde_json::to_value(&got).ok(),
            serde_json::to_value(&want).ok()
        );
        assert!(got.metadata.managed_fields.is_none());
        assert_eq!(
            got.annotations().get("kept").map(String::as_str),
            Some("yes")
        );
        assert_eq!(
            got.data.pointer("/status/conditions/0/status"),
            Some(&"false".into())
        );
        assert!(cache.lookup(None, "cluster").await.flatten().is_some());
        assert!(cache.lookup(Some("a"), "cluster").await == Some(None));
        assert!(cache.lookup(Some("b"), "one").await == Some(None));
        // The first list wakes nobody; later changes do.
        send(watcher::Event::Apply(composed(Some("a"), "one", true)));
        send(watcher::Event::Delete(composed(None, "cluster", true)));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let ready = cache.lookup(Some("a"), "one").await.flatten();
        assert_eq!(
            ready.and_then(|o| o.data.pointer("/status/conditions/0/status").cloned()),
            Some("true".into())
        );
        assert!(cache.lookup(None, "cluster").await == Some(None));
        // A re-list replaces the objects only once complete, and wakes
        // what it brings back.
        send(watcher::Event::Init);
        send(watcher::Event::InitApply(composed(Some("a"), "two", true)));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(cache.lookup(Some("a"), "one").await.flatten().is_some());
        send(watcher::Event::InitDone);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(cache.lookup(Some("a"), "one").await == Some(None));
        assert!(cache.lookup(Some("a"), "two").await.flatten().is_some());
        let woken = woken.read().map(|w| w.clone()).unwrap_or_default();
        assert_eq!(woken, ["one", "cluster", "two"]);
        let none = Cache::<kube::api::DynamicObject>::none();
        assert!(none.lookup(Some("a"), "two").await.is_none());
    }

    #[tokio::test]
    async fn a_cached_secret_keeps_its_data_owners_and_labels() {
        use k8s_openapi::api::core::v1::Secret;
        let secret: Secret = serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": "conn", "namespace": "a", "resourceVersion": "12",
                "labels": {"dbclaim.io/claim-name": "c"},
                "ownerReferences": [{"apiVersion": "dbclaim.io/v1beta1", "kind": "DatabaseClaim",
                    "name": "c", "uid": "u1", "controller": true}],
            },
            "type": "Opaque",
            "data": {"password": "c2VjcmV0", "empty": ""},
        }))
        .unwrap_or_else(|e| panic!("test secret: {e}"));
        let cache = Cache::filled(vec![secret.clone()]);
        let got = cache.lookup(Some("a"), "conn").await.flatten();
        assert_eq!(got.as_ref(), Some(&secret));
    }

    #[tokio::test]
    async fn names_follow_the_watch_and_answer_once_listed() {
        let (tx, rx) = futures::channel::mpsc::unbounded();
        let names = Names::from_events(rx);
        let send = |e| tx.unbounded_send(Ok(e)).ok();
        send(watcher::Event::Init);
        send(watcher::Event::InitApply(secret("a", "one")));
        send(watcher::Event::InitDone);
        assert_eq!(names.exists(Some("a"), "one").await, Some(true));
        assert_eq!(names.exists(Some("b"), "one").await, Some(false));
        assert_eq!(names.exists(None, "one").await, Some(false));
        send(watcher::Event::Apply(secret("a", "two")));
        send(watcher::Event::Delete(secret("a", "one")));
        // A re-list replaces the set only once complete.
        send(watcher::Event::Init);
        send(watcher::Event::InitApply(secret("a", "three")));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(names.exists(Some("a"), "two").await, Some(true));
        assert_eq!(names.exists(Some("a"), "one").await, Some(false));
        send(watcher::Event::InitDone);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(names.exists(Some("a"), "two").await, Some(false));
        assert_eq!(names.exists(Some("a"), "three").await, Some(true));
        assert_eq!(Names::none().exists(Some("a"), "three").await, None);
    }

    #[tokio::test]
    async fn subscribers_hear_what_the_names_watch_touches() {
        let (tx, rx) = futures::channel::mpsc::unbounded();
        let names = Names::from_events(rx);
        let mut touched = Box::pin(names.subscribe().unwrap());
        let send = |e| tx.unbounded_send(Ok(e)).ok();
        send(watcher::Event::Init);
        send(watcher::Event::InitApply(secret("a", "one")));
        send(watcher::Event::InitDone);
        send(watcher::Event::Apply(secret("a", "two")));
        send(watcher::Event::Delete(secret("a", "one")));
        let mut heard = vec![];
        for _ in 0..3 {
            let t = touched.next().await.unwrap();
            let (ns, name) = t.object().unwrap();
            heard.push(format!("{}/{name}", ns.unwrap()));
        }
        assert_eq!(heard, ["a/one", "a/two", "a/one"]);
        // A subscriber that falls behind is told it missed some.
        for i in 0..=TOUCHED_BUFFER {
            send(watcher::Event::Apply(secret("a", &format!("n{i}"))));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(touched.next().await, Some(Touched::Missed));
        assert_eq!(Touched::Missed.object(), None);
        // A watch of one namespace is no one else's: they watch for themselves.
        assert!(names.within(Some("a")).subscribe().is_none());
        assert!(Names::none().subscribe().is_none());
    }
}
