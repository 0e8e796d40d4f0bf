//! Composed kinds: their API resource and scope from discovery (cached),
//! and one watch per kind that wakes the claims owning an object and
//! caches the objects, so a pass reads them without a GET.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kube::discovery::{Scope as KubeScope, pinned_kind};
use kube::runtime::reflector::ObjectRef;
use kube::{Client, ResourceExt};
use tokio::sync::mpsc;

use crate::api::DatabaseClaim;
use crate::engine::Scope;

use super::cache::{Cache, Names, list_config};
use super::labels;

#[derive(Clone, Debug)]
pub struct Kind {
    pub resource: ApiResource,
    pub scope: Scope,
}

/// (apiVersion, kind).
type KindKey = (String, String);

/// Resolves kinds through discovery and starts a watch for each new one.
pub struct Kinds {
    client: Client,
    cache: Mutex<HashMap<(String, String), Kind>>,
    watched: Mutex<HashSet<(String, String)>>,
    caches: Mutex<HashMap<KindKey, Cache<DynamicObject>>>,
    /// Every object of the kind: which names exist (core kinds only, see
    /// `ensure_watch`).
    names: Mutex<HashMap<KindKey, Names>>,
    wake: mpsc::UnboundedSender<ObjectRef<DatabaseClaim>>,
}

impl Kinds {
    pub fn new(client: Client, wake: mpsc::UnboundedSender<ObjectRef<DatabaseClaim>>) -> Self {
        Self {
            client,
            cache: Mutex::default(),
            watched: Mutex::default(),
            caches: Mutex::default(),
            names: Mutex::default(),
            wake,
        }
    }

    /// The composed object `name` of `kind` from the kind's cache:
    /// `Some(None)` when the synced cache does not hold it; `None` when
    /// there is no synced cache (read it from the API server).
    pub async fn cached(
        &self,
        kind: &Kind,
        namespace: &str,
        name: &str,
    ) -> Option<Option<DynamicObject>> {
        let key = (
            kind.resource.api_version.clone(),
            kind.resource.kind.clone(),
        );
        let cache = self.caches.lock().ok()?.get(&key).cloned()?;
        let namespace = (kind.scope == Scope::Namespaced).then_some(namespace);
        cache.lookup(namespace, name).await
    }

    /// Whether an object `name` of `kind` exists, any labels, from the
    /// kind's name cache; `None` when there is no synced cache.
    pub async fn exists(&self, kind: &Kind, namespace: &str, name: &str) -> Option<bool> {
        let key = (
            kind.resource.api_version.clone(),
            kind.resource.kind.clone(),
        );
        let names = self.names.lock().ok()?.get(&key).cloned()?;
        let namespace = (kind.scope == Scope::Namespaced).then_some(namespace);
        names.exists(namespace, name).await
    }

    /// The kind's resource and scope; a kind the server does not serve is an
    /// error (its CRD may not be installed yet, so misses are not cached).
    pub async fn resolve(&self, api_version: &str, kind: &str) -> Result<Kind, kube::Error> {
        let key = (api_version.to_string(), kind.to_string());
        if let Some(k) = self.cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
            return Ok(k);
        }
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let (resource, caps) = pinned_kind(&self.client, &gvk).await?;
        let scope = match caps.scope {
            KubeScope::Cluster => Scope::Cluster,
            KubeScope::Namespaced => Scope::Namespaced,
        };
        let found = Kind { resource, scope };
        if let Ok(mut c) = self.cache.lock() {
            c.insert(key.clone(), found.clone());
        }
        self.ensure_watch(key, &found);
        Ok(found)
    }

    /// Starts, once per kind, a watch of the objects dbclaim composed
    /// (its label selects them) into a cache, mapping each change to the
    /// claim named in its labels. Full objects, not metadata: readiness
    /// and connection details need their status, and the cache replaces a
    /// GET per object per pass (`make bench`: 2 GETs per claim fewer at
    /// creation, none on a restart).
    fn ensure_watch(&self, key: (String, String), kind: &Kind) {
        let fresh = self
            .watched
            .lock()
            .map(|mut w| w.insert(key.clone()))
            .unwrap_or(false);
        if !fresh {
            return;
        }
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &kind.resource);
        // Names of every object, for "surely absent": only core kinds are
        // trusted absent from it (claim/observe.rs `absent`), so another
        // kind's (possibly many objects of a busy CRD) would cost memory
        // and a watch for nothing.
        if kind.resource.group.is_empty() {
            let names =
                Names::spawn::<DynamicObject>(Api::all_with(self.client.clone(), &kind.resource));
            if let Ok(mut n) = self.names.lock() {
                n.insert(key.clone(), names);
            }
        }
        let wake = self.wake.clone();
        let config = list_config().labels(labels::CLAIM_NAME);
        let cache = Cache::spawn(
            api,
            config,
            move |obj: &DynamicObject| match labels::claim_of(obj.labels()) {
                Some(claim) => wake.send(claim).is_ok(),
                None => true,
            },
        );
        if let Ok(mut c) = self.caches.lock() {
            c.insert(key, cache);
        }
    }
}

#[cfg(test)]
impl Kinds {
    /// `objects` of `kind` in its caches, as its watches would hold them,
    /// and `others` (without the claim labels) in its metadata cache only.
    pub fn with_cached(
        self,
        kind: &Kind,
        objects: Vec<DynamicObject>,
        others: Vec<DynamicObject>,
    ) -> Self {
        let key = (
            kind.resource.api_version.clone(),
            kind.resource.kind.clone(),
        );
        let names = Names::filled(objects.iter().chain(&others).map(|o| {
            let ns = (kind.scope == Scope::Namespaced)
                .then_some(o.metadata.namespace.as_deref())
                .flatten();
            (ns, o.metadata.name.as_deref().unwrap_or_default())
        }));
        if let Ok(mut n) = self.names.lock() {
            n.insert(key.clone(), names);
        }
        if let Ok(mut c) = self.caches.lock() {
            c.insert(key, Cache::filled(objects));
        }
        self
    }

    /// Kinds already resolved and watched: a reconcile test's mock API
    /// server then sees the reconcile's own requests, not discovery or the
    /// watch that `resolve` starts for a new kind.
    pub fn preloaded(client: Client, kinds: impl IntoIterator<Item = Kind>) -> Self {
        let (wake, _) = mpsc::unbounded_channel();
        let cache: HashMap<(String, String), Kind> = kinds
            .into_iter()
            .map(|k| {
                let key = (k.resource.api_version.clone(), k.resource.kind.clone());
                (key, k)
            })
            .collect();
        let watched = cache.keys().cloned().collect();
        Self {
            client,
            cache: Mutex::new(cache),
            watched: Mutex::new(watched),
            caches: Mutex::default(),
            names: Mutex::default(),
            wake,
        }
    }
}
