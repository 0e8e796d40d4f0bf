//! Composed kinds: their API resource and scope from discovery (cached),
//! and one metadata watch per kind that wakes the claims owning an object.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use futures::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kube::core::PartialObjectMeta;
use kube::discovery::{Scope as KubeScope, pinned_kind};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use tokio::sync::mpsc;

use crate::api::DatabaseClaim;
use crate::engine::Scope;

use super::labels;

#[derive(Clone, Debug)]
pub struct Kind {
    pub resource: ApiResource,
    pub scope: Scope,
}

/// Resolves kinds through discovery and starts a watch for each new one.
pub struct Kinds {
    client: Client,
    cache: Mutex<HashMap<(String, String), Kind>>,
    watched: Mutex<HashSet<(String, String)>>,
    wake: mpsc::UnboundedSender<ObjectRef<DatabaseClaim>>,
}

impl Kinds {
    pub fn new(client: Client, wake: mpsc::UnboundedSender<ObjectRef<DatabaseClaim>>) -> Self {
        Self {
            client,
            cache: Mutex::default(),
            watched: Mutex::default(),
            wake,
        }
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

    /// Starts, once per kind, a metadata-only watch of objects dbclaim
    /// composed, mapping each change to the claim named in its labels.
    fn ensure_watch(&self, key: (String, String), kind: &Kind) {
        let fresh = self
            .watched
            .lock()
            .map(|mut w| w.insert(key))
            .unwrap_or(false);
        if !fresh {
            return;
        }
        // Metadata only: dbclaim needs the labels, not the objects, in memory.
        let api: Api<PartialObjectMeta<DynamicObject>> =
            Api::all_with(self.client.clone(), &kind.resource);
        let wake = self.wake.clone();
        let config = watcher::Config::default().labels(labels::CLAIM_NAME);
        tokio::spawn(async move {
            let mut events =
                std::pin::pin!(watcher(api, config).default_backoff().touched_objects());
            while let Some(event) = events.next().await {
                let Ok(obj) = event else { continue };
                if let Some(claim) = labels::claim_of(obj.labels())
                    && wake.send(claim).is_err()
                {
                    return;
                }
            }
        });
    }
}

#[cfg(test)]
impl Kinds {
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
            wake,
        }
    }
}
