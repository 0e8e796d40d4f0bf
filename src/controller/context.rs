//! What every claim reconcile shares.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::Client;
use kube::core::PartialObjectMeta;
use kube::runtime::events::Reporter;
use kube::runtime::reflector::Store;

use crate::api::{ClaimPolicy, Composition, CompositionRevision, DatabaseClaim};
use crate::metrics::Metrics;

use super::cache::{Cache, SharedSecrets, Written};
use super::kinds::Kinds;

pub struct Context {
    pub client: Client,
    /// The DatabaseClaim version this operator reads and writes: the
    /// storage version when the CRD serves it (`watches::claim_resource`).
    pub claim_resource: kube::core::ApiResource,
    pub compositions: Store<Composition>,
    /// What claims render: the compositions' revisions.
    pub revisions: Store<CompositionRevision>,
    pub policies: Store<ClaimPolicy>,
    /// The ClaimPolicies as the API server holds them, for a spec not yet
    /// judged: one LIST shared by the passes that ask at the same time.
    pub fresh_policies: super::shared_read::SharedRead<Vec<std::sync::Arc<ClaimPolicy>>>,
    /// The controller's claim cache, for policy totals.
    pub claims: Store<DatabaseClaim>,
    /// Namespace metadata, for the labels policies select by.
    pub namespaces: Store<PartialObjectMeta<Namespace>>,
    pub kinds: Kinds,
    /// The claims' connection Secrets (those labelled with a claim).
    pub secrets: Cache<Secret>,
    /// Every Secret in the claims' namespaces (which exist), and the
    /// providers' connection Secrets as they wrote them.
    pub shared_secrets: SharedSecrets,
    /// resourceVersions of this operator's recent writes, so a cached
    /// copy that lags one is not used.
    pub written: Written,
    /// Events are published through a Recorder made per reconcile pass:
    /// the claim controller publishes only on transitions, and a shared
    /// Recorder's series cache would keep every event for six minutes
    /// (about 17 MiB per 1,000 new claims, in a table that never shrinks).
    pub reporter: Reporter,
    /// Where managed resources' connection Secrets live by default.
    pub operator_namespace: String,
    pub metrics: Metrics,
    /// Claims (by uid) whose finalizer this operator removed.
    pub finalized: Finalized,
    /// Status writes the claim cache may not show yet.
    pub status_writes: StatusWrites,
    /// `status.credentials` of rotations started, which the claim cache may
    /// not show yet (so a pass on a stale claim does not rotate twice).
    pub rotations: Recent<crate::api::claim::CredentialsStatus>,
    /// Review signals counted lately, by claim uid: a pass on a stale cache
    /// sees the same transition again and must not count it twice. The
    /// Synced=False reason last counted ...
    pub counted_failures: Recent<String>,
    /// ... and whether the first Ready was.
    pub counted_ready: Recent<()>,
    /// `status.drills` written lately, which the claim cache may not show
    /// yet (so a pass on a stale claim does not start a drill twice).
    pub drills: Recent<Vec<crate::api::common::DrillStatus>>,
    /// Transient failures in a row, by claim uid.
    pub backoff: crate::backoff::Backoff,
}

/// Claim uids whose finalizer was removed, remembered for a minute: long
/// enough for the watch to deliver the deletion, so a reconcile queued
/// from an older event does not clean up a claim that is already gone.
pub type Finalized = Recent<()>;

/// Status writes whose watch event may not have reached the claim cache
/// yet, by claim uid: (the status replaced, the status written), each as
/// [`status_key`](super::claim) hashes.
pub type StatusWrites = Recent<(u64, u64)>;

/// A small map whose entries expire after a minute: for what a claim's
/// cache may not show yet. Entries are few (in flight only) and expired
/// ones go now and then, so a burst stays linear.
pub struct Recent<V>(Mutex<HashMap<String, (Instant, V)>>);

impl<V> Default for Recent<V> {
    fn default() -> Self {
        Self(Mutex::default())
    }
}

const RECENT_TTL: Duration = Duration::from_secs(60);

impl<V: Clone> Recent<V> {
    pub fn insert(&self, uid: &str, value: V) {
        if uid.is_empty() {
            return;
        }
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if map.len() >= 64 && map.len().is_power_of_two() {
            map.retain(|_, (at, _)| now.duration_since(*at) < RECENT_TTL);
        }
        map.insert(uid.to_string(), (now, value));
    }

    pub fn get(&self, uid: &str) -> Option<V> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(uid)
            .filter(|(at, _)| at.elapsed() < RECENT_TTL)
            .map(|(_, v)| v.clone())
    }

    pub fn contains(&self, uid: &str) -> bool {
        self.get(uid).is_some()
    }

    pub fn remove(&self, uid: &str) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_remembers_uids() {
        let f = Finalized::default();
        assert!(!f.contains("a"));
        f.insert("a", ());
        f.insert("", ());
        assert!(f.contains("a"));
        assert!(!f.contains(""));
        f.remove("a");
        assert!(!f.contains("a"));
        let w = StatusWrites::default();
        w.insert("u", (1, 2));
        assert_eq!(w.get("u"), Some((1, 2)));
    }
}
