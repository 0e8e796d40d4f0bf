//! When a claim's credentials rotate: pure. A rotation is due when the
//! claim's annotation `dbclaim.io/rotate-credentials` has a value not acted
//! on yet, or when the schedule (`spec.credentials.rotationDays`, or a
//! ClaimPolicy's `credentialRotationDays`, whichever is shorter) says so.
//!
//! Starting a rotation only sets `status.credentials.rotatedAt`: the claim
//! controller hands it to every composed object as the token in
//! `dbclaim.io/rotate-credentials`, and the providers (and `Generate`
//! patches) rotate when the token they see changes.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::api::ClaimPolicy;
use crate::api::claim::{CredentialsSpec, CredentialsStatus};

/// Grace period of the previous login when the claim sets none.
pub const DEFAULT_GRACE_MINUTES: i64 = 10;

/// Why a rotation starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Why {
    /// A new value of the annotation.
    Requested(String),
    /// The schedule: `days` since the last rotation (or the claim's creation).
    Scheduled { days: i64 },
    /// A `rotate-credentials` drill (`dbclaim.io/drill`), by id.
    Drill(String),
}

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Why::Requested(v) => write!(f, "requested by annotation (value {v:?})"),
            Why::Scheduled { days } => write!(f, "scheduled every {days} day(s)"),
            Why::Drill(id) => write!(f, "rotate-credentials drill {id}"),
        }
    }
}

/// What the claim's credentials need now.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// A rotation to start now, and why.
    pub rotate: Option<Why>,
    /// `status.credentials` as it should be (with the rotation started).
    pub status: Option<CredentialsStatus>,
    /// How long until the schedule is due, when it is not now.
    pub due_in: Option<Duration>,
}

/// The rotation period in days: the shortest of the claim's own and every
/// applicable policy's, with the policy that set it (None: the claim).
pub fn effective_days<'a>(
    spec: Option<&CredentialsSpec>,
    policies: impl IntoIterator<Item = &'a ClaimPolicy>,
) -> Option<i64> {
    let own = spec.and_then(|c| c.rotation_days);
    policies
        .into_iter()
        .filter_map(|p| p.spec.credential_rotation_days)
        .chain(own)
        .filter(|d| *d > 0)
        .min()
}

fn add_days(t: Timestamp, days: i64) -> Option<Timestamp> {
    t.checked_add(SignedDuration::from_hours(days.checked_mul(24)?))
        .ok()
}

/// Decides the rotation of a claim at `now`.
///
/// - `created`: the claim's creation time, the start of a schedule before
///   a first rotation.
/// - `ready`: whether the claim is Ready; a rotation waits for it (there is
///   nothing to rotate before the first credentials exist).
/// - `annotation`: the claim's `dbclaim.io/rotate-credentials`.
pub fn plan(
    now: Timestamp,
    created: Option<Timestamp>,
    ready: bool,
    annotation: Option<&str>,
    days: Option<i64>,
    old: Option<&CredentialsStatus>,
) -> Plan {
    // Kubernetes keeps times to the second: the token composed objects
    // carry must read the same before and after the status round trip.
    let now = Timestamp::from_second(now.as_second()).unwrap_or(now);
    let old_default = CredentialsStatus::default();
    let old_status = old.unwrap_or(&old_default);
    let last = old_status.rotated_at.as_ref().map(|t| t.0).or(created);
    let next = days.and_then(|d| add_days(last.unwrap_or(now), d));
    let requested = annotation
        .filter(|v| !v.is_empty())
        .filter(|v| old_status.last_request.as_deref() != Some(*v));
    let why = match (requested, days, next) {
        (Some(v), _, _) => Some(Why::Requested(v.to_string())),
        (None, Some(d), Some(n)) if now >= n => Some(Why::Scheduled { days: d }),
        _ => None,
    };
    let why = why.filter(|_| ready);
    let mut status = old_status.clone();
    let next = match &why {
        Some(w) => {
            // The time is the token composed objects rotate on: two
            // rotations within one second must still differ.
            let at = match &old_status.rotated_at {
                Some(t) if t.0 >= now => {
                    t.0.checked_add(SignedDuration::from_secs(1)).unwrap_or(now)
                }
                _ => now,
            };
            status.rotated_at = Some(Time(at));
            if let Why::Requested(v) = w {
                status.last_request = Some(v.clone());
            }
            days.and_then(|d| add_days(now, d))
        }
        None => next,
    };
    status.next_rotation_at = next.map(Time);
    let due_in = next
        .filter(|_| why.is_none())
        .and_then(|n| Duration::try_from(n.duration_since(now)).ok());
    Plan {
        rotate: why,
        status: (status != old_default).then_some(status),
        due_in,
    }
}

/// A `rotate-credentials` drill: a rotation now, as a request would start
/// one; the annotation's last value acted on stays as it was (the drill is
/// recorded in `status.drills`).
pub fn drill(
    now: Timestamp,
    created: Option<Timestamp>,
    id: &str,
    days: Option<i64>,
    old: Option<&CredentialsStatus>,
) -> Plan {
    let mut p = plan(now, created, true, Some(&format!("drill/{id}")), days, old);
    p.rotate = Some(Why::Drill(id.to_string()));
    if let Some(s) = p.status.as_mut() {
        s.last_request = old.and_then(|o| o.last_request.clone());
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::policy::ClaimPolicySpec;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap_or_default()
    }

    const DAY: i64 = 86_400;

    fn policy(days: Option<i64>) -> ClaimPolicy {
        ClaimPolicy::new(
            "p",
            ClaimPolicySpec {
                credential_rotation_days: days,
                ..Default::default()
            },
        )
    }

    #[test]
    fn the_stricter_of_claim_and_policies_wins() {
        let spec = |d| CredentialsSpec {
            rotation_days: d,
            grace_minutes: None,
        };
        assert_eq!(effective_days(None, []), None);
        assert_eq!(effective_days(Some(&spec(Some(30))), []), Some(30));
        let p90 = policy(Some(90));
        let p7 = policy(Some(7));
        let none = policy(None);
        assert_eq!(effective_days(Some(&spec(Some(30))), [&p90]), Some(30));
        assert_eq!(effective_days(Some(&spec(Some(30))), [&p90, &p7]), Some(7));
        assert_eq!(effective_days(None, [&none, &p90]), Some(90));
        assert_eq!(effective_days(Some(&spec(None)), [&none]), None);
    }

    #[test]
    fn nothing_to_do_without_schedule_or_request() {
        let p = plan(t(1000), Some(t(0)), true, None, None, None);
        assert_eq!(
            p,
            Plan {
                rotate: None,
                status: None,
                due_in: None
            }
        );
        // An empty annotation asks nothing.
        let p = plan(t(1000), Some(t(0)), true, Some(""), None, None);
        assert_eq!(p.rotate, None);
    }

    #[test]
    fn the_schedule_counts_from_creation_then_from_the_last_rotation() {
        // Created at 0, every 30 days: due at day 30.
        let p = plan(t(10 * DAY), Some(t(0)), true, None, Some(30), None);
        assert_eq!(p.rotate, None);
        let status = p.status.clone().unwrap_or_default();
        assert_eq!(status.next_rotation_at, Some(Time(t(30 * DAY))));
        assert_eq!(status.rotated_at, None);
        assert_eq!(p.due_in, Some(Duration::from_secs(20 * DAY as u64)));

        let p = plan(t(30 * DAY), Some(t(0)), true, None, Some(30), Some(&status));
        assert_eq!(p.rotate, Some(Why::Scheduled { days: 30 }));
        let status = p.status.unwrap_or_default();
        assert_eq!(status.rotated_at, Some(Time(t(30 * DAY))));
        assert_eq!(status.next_rotation_at, Some(Time(t(60 * DAY))));

        // Once rotated, the next is counted from then: not due again at day 31.
        let p = plan(t(31 * DAY), Some(t(0)), true, None, Some(30), Some(&status));
        assert_eq!(p.rotate, None);
        assert_eq!(p.status, Some(status.clone()));

        // A policy that shortens the period brings the next time forward.
        let p = plan(t(31 * DAY), Some(t(0)), true, None, Some(7), Some(&status));
        assert_eq!(
            p.status.and_then(|s| s.next_rotation_at),
            Some(Time(t(37 * DAY)))
        );
    }

    #[test]
    fn a_new_annotation_value_rotates_once() {
        let p = plan(t(100), Some(t(0)), true, Some("game-day-1"), None, None);
        assert_eq!(p.rotate, Some(Why::Requested("game-day-1".into())));
        let status = p.status.unwrap_or_default();
        assert_eq!(status.last_request.as_deref(), Some("game-day-1"));
        assert_eq!(status.rotated_at, Some(Time(t(100))));
        assert_eq!(status.next_rotation_at, None);
        // The same value again: nothing.
        let p = plan(
            t(200),
            Some(t(0)),
            true,
            Some("game-day-1"),
            None,
            Some(&status),
        );
        assert_eq!(p.rotate, None);
        assert_eq!(p.status.as_ref(), Some(&status));
        // Within the same second as the last one: still a new token.
        let again = plan(t(100), Some(t(0)), true, Some("other"), None, Some(&status));
        assert_eq!(again.status.and_then(|s| s.rotated_at), Some(Time(t(101))));
        // A new one: once more.
        let p = plan(
            t(300),
            Some(t(0)),
            true,
            Some("game-day-2"),
            None,
            Some(&status),
        );
        assert_eq!(p.rotate, Some(Why::Requested("game-day-2".into())));
        // With a schedule, the next time counts from the requested rotation.
        let p = plan(
            t(300),
            Some(t(0)),
            true,
            Some("game-day-3"),
            Some(1),
            Some(&status),
        );
        assert_eq!(
            p.status.and_then(|s| s.next_rotation_at),
            Some(Time(t(300 + DAY)))
        );
    }

    #[test]
    fn a_drill_rotates_without_taking_the_annotations_place() {
        let before = CredentialsStatus {
            last_request: Some("x".into()),
            ..Default::default()
        };
        let p = drill(t(100), Some(t(0)), "gd1", None, Some(&before));
        assert_eq!(p.rotate, Some(Why::Drill("gd1".into())));
        let status = p.status.unwrap_or_default();
        assert_eq!(status.rotated_at, Some(Time(t(100))));
        assert_eq!(status.last_request.as_deref(), Some("x"));
        // The annotation's value, acted on before, does not rotate again.
        let again = plan(t(101), Some(t(0)), true, Some("x"), None, Some(&status));
        assert_eq!(again.rotate, None);
    }

    #[test]
    fn a_claim_not_ready_waits() {
        let p = plan(t(100), Some(t(0)), false, Some("x"), None, None);
        assert_eq!(p.rotate, None);
        assert_eq!(p.status, None);
        let p = plan(t(40 * DAY), Some(t(0)), false, None, Some(30), None);
        assert_eq!(p.rotate, None);
        assert_eq!(p.due_in, None, "overdue: the next pass decides");
    }
}
