//! Watches of the benchmark itself: when each claim is first seen Ready,
//! and which objects of a kind still exist.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dbclaim::api::DatabaseClaim;
use futures::StreamExt;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;

use crate::{Result, err};

/// What the claim watch saw, by claim name.
#[derive(Default)]
pub struct ClaimState {
    /// When Ready=True was first seen.
    pub ready: HashMap<String, Instant>,
    /// Synced=True with its composed resources listed in status.
    pub provisioned: HashSet<String>,
    pub present: HashSet<String>,
    /// When Synced=True was first seen with each composition revision
    /// number (the status names the revision once its objects are applied).
    pub synced_revision: HashMap<(String, i64), Instant>,
}

fn condition_true(claim: &DatabaseClaim, type_: &str) -> bool {
    claim.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == type_ && c.status == "True")
    })
}

/// A watch task; aborted when dropped.
pub struct Watch<T> {
    pub state: Arc<Mutex<T>>,
    task: tokio::task::JoinHandle<()>,
}

impl<T> Drop for Watch<T> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl<T> Watch<T> {
    pub fn with<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        let guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&guard)
    }

    /// Polls `done` every 20 ms; an error after `timeout`.
    pub async fn wait(
        &self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&T) -> bool,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.with(&done) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(err(format!(
                    "timed out after {timeout:?} waiting for {what}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The claims of the bench namespace as they change. In the CRD's storage
/// version when the plane has v1beta1 (the operator's own reading of it),
/// so that the bench's watch costs the API server no conversion webhook call
/// that would count against the operator under test.
pub fn claims(cluster: &crate::env::Cluster) -> Watch<ClaimState> {
    let events = match cluster.stored_v1beta1 {
        true => dbclaim::controller::claim::watches::stored_claims(
            &cluster.client,
            Some(crate::env::NAMESPACE),
        )
        .boxed(),
        false => watcher(
            Api::<DatabaseClaim>::namespaced(cluster.client.clone(), crate::env::NAMESPACE),
            watcher::Config::default(),
        )
        .boxed(),
    };
    let state = Arc::new(Mutex::new(ClaimState::default()));
    let s = state.clone();
    let task = tokio::spawn(async move {
        let mut events = std::pin::pin!(events.default_backoff());
        while let Some(event) = events.next().await {
            let now = Instant::now();
            let Ok(event) = event else { continue };
            let mut st = s.lock().unwrap_or_else(|e| e.into_inner());
            match event {
                Event::Apply(c) | Event::InitApply(c) => {
                    let name = c.name_any();
                    if condition_true(&c, "Ready") {
                        st.ready.entry(name.clone()).or_insert(now);
                    }
                    if condition_true(&c, "Synced")
                        && c.status.as_ref().is_some_and(|s| !s.resources.is_empty())
                    {
                        st.provisioned.insert(name.clone());
                        if let Some(r) = c
                            .status
                            .as_ref()
                            .and_then(|s| s.composition_revision.as_ref())
                        {
                            st.synced_revision
                                .entry((name.clone(), r.revision))
                                .or_insert(now);
                        }
                    }
                    st.present.insert(name);
                }
                Event::Delete(c) => {
                    st.present.remove(&c.name_any());
                }
                Event::Init | Event::InitDone => {}
            }
        }
    });
    Watch { state, task }
}

use kube::runtime::watcher::watcher;

/// The names of the objects of a kind that exist (a metadata-only watch).
#[derive(Default)]
pub struct Names {
    pub names: HashSet<String>,
    pub synced: bool,
}

pub fn names<K>(api: Api<PartialObjectMeta<K>>, config: watcher::Config) -> Watch<Names>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
{
    let state = Arc::new(Mutex::new(Names::default()));
    let s = state.clone();
    let task = tokio::spawn(async move {
        let mut events = std::pin::pin!(watcher(api, config).default_backoff());
        let mut fresh: Option<HashSet<String>> = None;
        while let Some(event) = events.next().await {
            let Ok(event) = event else { continue };
            let mut st = s.lock().unwrap_or_else(|e| e.into_inner());
            match event {
                Event::Init => fresh = Some(HashSet::new()),
                Event::InitApply(o) => {
                    if let Some(f) = fresh.as_mut() {
                        f.insert(o.name_any());
                    }
                }
                Event::InitDone => {
                    st.names = fresh.take().unwrap_or_default();
                    st.synced = true;
                }
                Event::Apply(o) => {
                    st.names.insert(o.name_any());
                }
                Event::Delete(o) => {
                    st.names.remove(&o.name_any());
                }
            }
        }
    });
    Watch { state, task }
}
