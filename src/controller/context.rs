//! What every claim reconcile shares.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::core::PartialObjectMeta;
use kube::runtime::events::Reporter;
use kube::runtime::reflector::Store;

use crate::api::{ClaimPolicy, Composition, DatabaseClaim};
use crate::metrics::Metrics;

use super::kinds::Kinds;

pub struct Context {
    pub client: Client,
    pub compositions: Store<Composition>,
    pub policies: Store<ClaimPolicy>,
    /// The controller's claim cache, for policy totals.
    pub claims: Store<DatabaseClaim>,
    /// Namespace metadata, for the labels policies select by.
    pub namespaces: Store<PartialObjectMeta<Namespace>>,
    pub kinds: Kinds,
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
    /// Transient failures in a row, by claim uid.
    pub backoff: Backoff,
}

/// A claim's retry delay after transient API failures: jittered, doubling
/// with each failure in a row, reset by a pass that succeeds. Entries of
/// claims that are gone are pruned as the map grows.
#[derive(Default)]
pub struct Backoff(Mutex<HashMap<String, u32>>);

impl Backoff {
    /// Records a failure of claim `uid`; returns how long to wait.
    /// `live` gives the uids of the claims that exist, for pruning.
    pub fn next(&self, uid: &str, live: impl FnOnce() -> HashSet<String>) -> Duration {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= 64 && map.len().is_power_of_two() {
            let live = live();
            map.retain(|uid, _| live.contains(uid));
        }
        let n = map.entry(uid.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        backoff_delay(*n, rand::random::<f64>())
    }

    pub fn reset(&self, uid: &str) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(uid);
    }

    pub fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The delay after `failures` transient failures in a row: 1 s doubling
/// to 5 min, then ±50% by `r` in [0, 1), so claims that failed together
/// (an API server restart) do not retry in lockstep.
pub fn backoff_delay(failures: u32, r: f64) -> Duration {
    use crate::controller::claim::requeue::{BACKOFF_MAX, BACKOFF_MIN};
    let exp = failures.saturating_sub(1).min(20);
    let ceiling = BACKOFF_MIN.saturating_mul(1 << exp).min(BACKOFF_MAX);
    ceiling.mul_f64(0.5 + r.clamp(0.0, 1.0))
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

    #[test]
    fn backoff_doubles_caps_and_jitters() {
        let s = Duration::from_secs;
        assert_eq!(backoff_delay(1, 0.5), s(1));
        assert_eq!(backoff_delay(2, 0.5), s(2));
        assert_eq!(backoff_delay(5, 0.5), s(16));
        assert_eq!(backoff_delay(9, 0.5), s(256));
        assert_eq!(backoff_delay(10, 0.5), s(300));
        assert_eq!(backoff_delay(u32::MAX, 0.5), s(300));
        // ±50%.
        assert_eq!(backoff_delay(3, 0.0), s(2));
        assert_eq!(backoff_delay(3, 1.0), s(6));
        assert_eq!(backoff_delay(10, 0.0), s(150));
        assert_eq!(backoff_delay(10, 1.0), s(450));
    }

    #[test]
    fn backoff_grows_per_claim_resets_and_prunes() {
        let b = Backoff::default();
        let first = b.next("a", HashSet::new);
        assert!(first <= Duration::from_millis(1500), "{first:?}");
        for _ in 0..9 {
            b.next("a", HashSet::new);
        }
        assert!(b.next("a", HashSet::new) >= Duration::from_secs(150));
        assert!(b.next("b", HashSet::new) <= Duration::from_millis(1500));
        b.reset("a");
        assert!(b.next("a", HashSet::new) <= Duration::from_millis(1500));
        for i in 0..62 {
            b.next(&i.to_string(), HashSet::new);
        }
        assert_eq!(b.len(), 64);
        // Claims that are gone go when the map grows.
        b.next("z", || HashSet::from(["a".to_string()]));
        assert_eq!(b.len(), 2);
    }
}
