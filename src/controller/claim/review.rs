//! What a status write means for reliability reviews: a claim's first
//! Ready (time to Ready) and its transitions to Synced=False. Pure: the
//! caller feeds the metrics.

use k8s_openapi::jiff::Timestamp;

use crate::api::DatabaseClaimStatus;
use crate::conditions::{self, ConditionType, ReadyReason, Reason};

/// The review signals of one status change.
#[derive(Debug, Default, PartialEq)]
pub struct Signals {
    /// The `composition` label: the recorded composition, empty before one is.
    pub composition: String,
    /// Seconds from creation to this first Ready.
    pub first_ready: Option<f64>,
    /// The Synced reason this change turned to (False).
    pub failure: Option<String>,
}

/// Signals of the change `old` → `new` of a claim created at `created`.
/// First Ready: Ready turns True from a claim that never was Available
/// (no Ready yet, or `Creating`); a claim back from `Unavailable` is a
/// recovery, not a first Ready.
pub fn signals(
    old: &DatabaseClaimStatus,
    new: &DatabaseClaimStatus,
    created: Option<Timestamp>,
    now: Timestamp,
) -> Signals {
    let composition = new
        .composition
        .as_ref()
        .map(|c| c.name.clone())
        .unwrap_or_default();
    let old_ready = conditions::find(&old.conditions, ConditionType::Ready);
    let never_ready = old_ready.is_none_or(|c| {
        c.status != "True" && conditions::reason_of(c) == Some(Reason::Ready(ReadyReason::Creating))
    });
    let first_ready = (never_ready && conditions::is_true(&new.conditions, ConditionType::Ready))
        .then(|| created.map(|c| now.duration_since(c).as_secs_f64().max(0.0)))
        .flatten();
    let old_synced = conditions::find(&old.conditions, ConditionType::Synced);
    let failure = conditions::find(&new.conditions, ConditionType::Synced)
        .filter(|s| s.status == "False")
        .filter(|s| old_synced.is_none_or(|o| o.status != "False" || o.reason != s.reason))
        .map(|s| s.reason.clone());
    Signals {
        composition,
        first_ready,
        failure,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::NameRef;
    use crate::conditions::{Cond, SyncedReason};

    fn status(ready: Option<Cond>, synced: Option<Cond>) -> DatabaseClaimStatus {
        let mut s = DatabaseClaimStatus {
            composition: Some(NameRef {
                name: "shared-postgres".into(),
            }),
            ..Default::default()
        };
        let now = Timestamp::now();
        for c in ready.iter().chain(synced.iter()) {
            conditions::set(&mut s.conditions, c, None, now);
        }
        s
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap_or(Timestamp::UNIX_EPOCH)
    }

    #[test]
    fn first_ready_measures_from_creation() {
        let creating = Cond::ready(false, ReadyReason::Creating, "waiting");
        let ok = Cond::synced(true, SyncedReason::ReconcileSuccess, "");
        let old = status(Some(creating), Some(ok.clone()));
        let new = status(
            Some(Cond::ready(true, ReadyReason::Available, "")),
            Some(ok.clone()),
        );
        let s = signals(
            &old,
            &new,
            Some(ts("2026-01-01T00:00:00Z")),
            ts("2026-01-01T00:01:30Z"),
        );
        assert_eq!(s.first_ready, Some(90.0));
        assert_eq!(s.composition, "shared-postgres");
        assert_eq!(s.failure, None);
        // From no status at all, too.
        let s = signals(
            &DatabaseClaimStatus::default(),
            &new,
            Some(ts("2026-01-01T00:00:00Z")),
            ts("2026-01-01T00:00:02Z"),
        );
        assert_eq!(s.first_ready, Some(2.0));
    }

    #[test]
    fn recovery_and_steady_ready_are_not_first_ready() {
        let ok = Cond::synced(true, SyncedReason::ReconcileSuccess, "");
        let ready = status(
            Some(Cond::ready(true, ReadyReason::Available, "")),
            Some(ok.clone()),
        );
        let unavailable = status(
            Some(Cond::ready(false, ReadyReason::Unavailable, "reboot")),
            Some(ok),
        );
        let t = Some(ts("2026-01-01T00:00:00Z"));
        let now = ts("2026-01-01T01:00:00Z");
        assert_eq!(signals(&unavailable, &ready, t, now).first_ready, None);
        assert_eq!(signals(&ready, &ready, t, now).first_ready, None);
    }

    #[test]
    fn failures_count_transitions_to_synced_false() {
        let creating = Some(Cond::ready(false, ReadyReason::Creating, ""));
        let ok = status(
            creating.clone(),
            Some(Cond::synced(true, SyncedReason::ReconcileSuccess, "")),
        );
        let refused = status(
            creating.clone(),
            Some(Cond::synced(
                false,
                SyncedReason::PolicyViolation,
                "too big",
            )),
        );
        let refused_again = status(
            creating.clone(),
            Some(Cond::synced(
                false,
                SyncedReason::PolicyViolation,
                "other words",
            )),
        );
        let invalid = status(
            creating,
            Some(Cond::synced(false, SyncedReason::CompositionInvalid, "bad")),
        );
        let now = Timestamp::now();
        assert_eq!(
            signals(&ok, &refused, None, now).failure.as_deref(),
            Some("PolicyViolation")
        );
        assert_eq!(
            signals(&DatabaseClaimStatus::default(), &refused, None, now)
                .failure
                .as_deref(),
            Some("PolicyViolation")
        );
        // A new message under the same reason is the same failure.
        assert_eq!(signals(&refused, &refused_again, None, now).failure, None);
        assert_eq!(
            signals(&refused, &invalid, None, now).failure.as_deref(),
            Some("CompositionInvalid")
        );
        assert_eq!(signals(&refused, &ok, None, now).failure, None);
    }
}
