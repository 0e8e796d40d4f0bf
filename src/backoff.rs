//! Retry timing after transient failures, one rule for every controller:
//! per-key exponential backoff with "equal jitter", reset on success.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use rand::RngExt;

/// Failure counts by key (an object's uid or name), for a delay that grows
/// with each transient failure in a row and resets on success.
pub struct Backoff {
    min: Duration,
    max: Duration,
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    /// `min` after the first failure, doubling up to `max`.
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max,
            failures: Mutex::default(),
        }
    }

    /// Records a failure of `key`; returns how long to wait before retrying.
    pub fn next(&self, key: &str) -> Duration {
        let n = {
            let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
            let n = failures.entry(key.to_string()).or_insert(0);
            *n = n.saturating_add(1);
            *n
        };
        jitter(ceiling(self.min, self.max, n), rand::rng().random::<f64>())
    }

    pub fn reset(&self, key: &str) {
        self.lock().remove(key);
    }

    /// Forgets the keys `keep` rejects (objects deleted while failing), when
    /// the map has grown: a power of two from 64 on, so the work stays linear.
    pub fn prune(&self, keep: impl Fn(&str) -> bool) {
        let mut failures = self.lock();
        if failures.len() >= 64 && failures.len().is_power_of_two() {
            failures.retain(|k, _| keep(k));
        }
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        self.failures.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The delay ceiling after `failures` failures in a row: `min`, doubling,
/// at most `max`.
pub fn ceiling(min: Duration, max: Duration, failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(20);
    min.saturating_mul(1 << exp).min(max)
}

/// "Equal jitter": half the ceiling plus a random part of the other half,
/// so retries of many objects that failed together (an API server restart)
/// spread out but never come sooner than half. `r` is uniform in [0, 1).
pub fn jitter(ceiling: Duration, r: f64) -> Duration {
    let half = ceiling / 2;
    half + half.mul_f64(r.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_caps_jitters_resets_and_prunes() {
        let s = Duration::from_secs;
        assert_eq!(ceiling(s(5), s(120), 1), s(5));
        assert_eq!(ceiling(s(5), s(120), 2), s(10));
        assert_eq!(ceiling(s(5), s(120), 4), s(40));
        assert_eq!(ceiling(s(5), s(120), 6), s(120));
        assert_eq!(ceiling(s(1), s(300), u32::MAX), s(300));
        let c = s(10);
        assert_eq!(jitter(c, 0.0), s(5));
        assert_eq!(jitter(c, 0.5), Duration::from_millis(7500));
        assert!(jitter(c, 0.999) < c);
        assert_eq!(jitter(c, 7.0), c, "clamped");
        let b = Backoff::new(s(5), s(120));
        for n in 1..=8 {
            let d = b.next("a");
            let ceiling = ceiling(s(5), s(120), n);
            assert!(d >= ceiling / 2 && d <= ceiling, "{n}: {d:?}");
        }
        b.reset("a");
        assert!(b.next("a") <= s(5));
        // Many objects failing at once do not retry in lockstep.
        let delays: std::collections::HashSet<Duration> =
            (0..20).map(|i| b.next(&format!("k{i}"))).collect();
        assert!(delays.len() > 1);
        // Pruning happens only once the map has grown, and keeps what `keep` says.
        b.prune(|_| false);
        assert_eq!(b.len(), 21);
        for i in 21..64 {
            b.next(&format!("k{i}"));
        }
        b.prune(|k| k == "a");
        assert_eq!(b.len(), 1);
    }
}
