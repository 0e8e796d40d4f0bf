//! Retry timing: per-object exponential backoff with jitter, and the fixed
//! waits of [`super::Retry`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use rand::RngExt;

use super::Retry;

/// Backoff after transient failures: 5 s doubling up to 2 min, jittered.
const MIN: Duration = Duration::from_secs(5);
const MAX: Duration = Duration::from_secs(120);
/// How long a [`Retry::Wait`] failure or a deletion in progress waits.
pub const WAIT: Duration = Duration::from_secs(10);
/// How long a [`Retry::Slow`] failure waits before it is tried again.
pub const SLOW: Duration = Duration::from_secs(300);

/// Per-object failure counts, for a jittered delay that grows with each
/// transient failure in a row and resets on success.
#[derive(Default)]
pub struct Backoff {
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    /// Records a failure of `key`; returns how long to wait before retrying.
    pub fn next(&self, key: &str) -> Duration {
        let n = {
            let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
            let n = failures.entry(key.to_string()).or_insert(0);
            *n = n.saturating_add(1);
            *n
        };
        jitter(ceiling(n), rand::rng().random::<f64>())
    }

    pub fn reset(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }

    /// The requeue after a failure of class `retry`.
    pub fn delay(&self, key: &str, retry: Retry) -> Duration {
        match retry {
            Retry::Backoff => self.next(key),
            Retry::Wait => WAIT,
            Retry::Slow => SLOW,
        }
    }
}

/// The delay ceiling after `failures` failures in a row (1 → 5 s, 2 → 10 s,
/// …, at most 2 min).
pub fn ceiling(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(16);
    MIN.saturating_mul(1 << exp).min(MAX)
}

/// "Equal jitter": half the ceiling plus a random part of the other half,
/// so retries of many objects spread out but never come sooner than half.
/// `r` is uniform in [0, 1).
pub fn jitter(ceiling: Duration, r: f64) -> Duration {
    let half = ceiling / 2;
    half + half.mul_f64(r.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_caps_and_jitters() {
        assert_eq!(ceiling(1), Duration::from_secs(5));
        assert_eq!(ceiling(2), Duration::from_secs(10));
        assert_eq!(ceiling(4), Duration::from_secs(40));
        assert_eq!(ceiling(6), Duration::from_secs(120));
        assert_eq!(ceiling(u32::MAX), Duration::from_secs(120));
        let c = Duration::from_secs(10);
        assert_eq!(jitter(c, 0.0), Duration::from_secs(5));
        assert_eq!(jitter(c, 0.5), Duration::from_millis(7500));
        assert!(jitter(c, 0.999) < c);
        assert_eq!(jitter(c, 7.0), c, "clamped");
        let b = Backoff::default();
        for n in 1..=8 {
            let d = b.next("a");
            let ceiling = ceiling(n);
            assert!(d >= ceiling / 2 && d <= ceiling, "{n}: {d:?}");
        }
        b.reset("a");
        assert!(b.next("a") <= Duration::from_secs(5));
        // many objects failing at once do not retry in lockstep
        let delays: std::collections::HashSet<Duration> =
            (0..20).map(|i| b.next(&format!("k{i}"))).collect();
        assert!(delays.len() > 1);
    }
}
