//! Retry timing of managed resources: the shared jittered backoff for
//! transient failures, and the fixed waits of [`super::Retry`].

use std::time::Duration;

use super::Retry;
use crate::backoff::Backoff;

/// Backoff after transient failures: 5 s doubling up to 2 min, jittered.
pub const MIN: Duration = Duration::from_secs(5);
pub const MAX: Duration = Duration::from_secs(120);
/// How long a [`Retry::Wait`] failure or a deletion in progress waits.
pub const WAIT: Duration = Duration::from_secs(10);
/// How long a [`Retry::Slow`] failure waits before it is tried again.
pub const SLOW: Duration = Duration::from_secs(300);

/// The backoff of a managed-resource controller.
pub fn backoff() -> Backoff {
    Backoff::new(MIN, MAX)
}

/// The requeue of `key` after a failure of class `retry`.
pub fn delay(backoff: &Backoff, key: &str, retry: Retry) -> Duration {
    match retry {
        Retry::Backoff => backoff.next(key),
        Retry::Wait => WAIT,
        Retry::Slow => SLOW,
    }
}
