//! What every claim reconcile shares.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kube::Client;
use kube::runtime::events::Reporter;
use kube::runtime::reflector::Store;

use crate::api::{ClaimPolicy, Composition};
use crate::metrics::Metrics;

use super::kinds::Kinds;

pub struct Context {
    pub client: Client,
    pub compositions: Store<Composition>,
    pub policies: Store<ClaimPolicy>,
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
}

/// Claim uids whose finalizer was removed, remembered for a minute: long
/// enough for the watch to deliver the deletion, so a reconcile queued
/// from an older event does not clean up a claim that is already gone.
#[derive(Default)]
pub struct Finalized(Mutex<HashMap<String, Instant>>);

const FINALIZED_TTL: Duration = Duration::from_secs(60);

impl Finalized {
    pub fn insert(&self, uid: String) {
        if uid.is_empty() {
            return;
        }
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        // Expired entries go now and then, not on every insert: a mass
        // deletion stays linear.
        if map.len() >= 64 && map.len().is_power_of_two() {
            map.retain(|_, at| now.duration_since(*at) < FINALIZED_TTL);
        }
        map.insert(uid, now);
    }

    pub fn contains(&self, uid: &str) -> bool {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(uid).is_some_and(|at| at.elapsed() < FINALIZED_TTL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finalized_remembers_uids() {
        let f = Finalized::default();
        assert!(!f.contains("a"));
        f.insert("a".into());
        f.insert(String::new());
        assert!(f.contains("a"));
        assert!(!f.contains(""));
    }
}
