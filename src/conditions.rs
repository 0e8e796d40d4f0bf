//! Typed conditions: the `Ready` and `Synced` vocabulary of the contract,
//! and the one function that merges a new condition into a status.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConditionType {
    Ready,
    Synced,
    /// kstatus's "abnormal-true" conditions, so Flux and other kstatus
    /// readers see a provisioning claim as in progress and a claim that
    /// cannot go on without a person's change as failed.
    Reconciling,
    Stalled,
}

impl ConditionType {
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionType::Ready => "Ready",
            ConditionType::Synced => "Synced",
            ConditionType::Reconciling => "Reconciling",
            ConditionType::Stalled => "Stalled",
        }
    }
}

/// Reasons of the `Ready` condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadyReason {
    Creating,
    Available,
    Unavailable,
    Deleting,
}

/// Reasons of the `Synced` condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncedReason {
    ReconcileSuccess,
    ReconcileError,
    CompositionNotFound,
    CompositionInvalid,
    PolicyViolation,
    ProviderError,
    /// A `compositionRef` move that would delete composed objects.
    ReplacementBlocked,
}

/// Every reason a dbclaim condition can carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    Ready(ReadyReason),
    Synced(SyncedReason),
    /// A kstatus condition that is off.
    Idle,
}

const READY_REASONS: [ReadyReason; 4] = [
    ReadyReason::Creating,
    ReadyReason::Available,
    ReadyReason::Unavailable,
    ReadyReason::Deleting,
];
const SYNCED_REASONS: [SyncedReason; 7] = [
    SyncedReason::ReconcileSuccess,
    SyncedReason::ReconcileError,
    SyncedReason::CompositionNotFound,
    SyncedReason::CompositionInvalid,
    SyncedReason::PolicyViolation,
    SyncedReason::ProviderError,
    SyncedReason::ReplacementBlocked,
];

impl ReadyReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ReadyReason::Creating => "Creating",
            ReadyReason::Available => "Available",
            ReadyReason::Unavailable => "Unavailable",
            ReadyReason::Deleting => "Deleting",
        }
    }
}

impl SyncedReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncedReason::ReconcileSuccess => "ReconcileSuccess",
            SyncedReason::ReconcileError => "ReconcileError",
            SyncedReason::CompositionNotFound => "CompositionNotFound",
            SyncedReason::CompositionInvalid => "CompositionInvalid",
            SyncedReason::PolicyViolation => "PolicyViolation",
            SyncedReason::ProviderError => "ProviderError",
            SyncedReason::ReplacementBlocked => "ReplacementBlocked",
        }
    }
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Ready(r) => r.as_str(),
            Reason::Synced(r) => r.as_str(),
            Reason::Idle => "Idle",
        }
    }
}

impl From<ReadyReason> for Reason {
    fn from(r: ReadyReason) -> Self {
        Reason::Ready(r)
    }
}

impl From<SyncedReason> for Reason {
    fn from(r: SyncedReason) -> Self {
        Reason::Synced(r)
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown condition reason {0:?}")]
pub struct UnknownReason(String);

/// The one parser of stored reasons (no two names are alike across types).
impl std::str::FromStr for Reason {
    type Err = UnknownReason;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ready = READY_REASONS.into_iter().map(Reason::Ready);
        let synced = SYNCED_REASONS.into_iter().map(Reason::Synced);
        ready
            .chain(synced)
            .chain([Reason::Idle])
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownReason(s.to_string()))
    }
}

/// A condition as a reconcile decides it, before time and generation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cond {
    pub type_: ConditionType,
    pub status: bool,
    pub reason: Reason,
    pub message: String,
}

impl Cond {
    pub fn ready(status: bool, reason: ReadyReason, message: impl Into<String>) -> Self {
        Self::new(ConditionType::Ready, status, reason.into(), message)
    }

    pub fn synced(status: bool, reason: SyncedReason, message: impl Into<String>) -> Self {
        Self::new(ConditionType::Synced, status, reason.into(), message)
    }

    fn new(type_: ConditionType, status: bool, reason: Reason, message: impl Into<String>) -> Self {
        Self {
            type_,
            status,
            reason,
            message: message.into(),
        }
    }
}

/// The typed reason of a stored condition; `None` when unknown to dbclaim.
pub fn reason_of(c: &Condition) -> Option<Reason> {
    c.reason.parse().ok()
}

/// The `Ready` reason of a stored condition, if it is one.
pub fn ready_reason_of(c: &Condition) -> Option<ReadyReason> {
    match reason_of(c)? {
        Reason::Ready(r) => Some(r),
        _ => None,
    }
}

/// Merges `new` into `conditions`. The transition time moves only when the
/// status flips, so a reconcile that decides the same thing again leaves
/// the list equal (and writes nothing).
pub fn set(conditions: &mut Vec<Condition>, new: &Cond, generation: Option<i64>, now: Timestamp) {
    let status = if new.status { "True" } else { "False" }.to_string();
    let existing = conditions
        .iter_mut()
        .find(|c| c.type_ == new.type_.as_str());
    match existing {
        Some(c) => {
            if c.status != status {
                c.last_transition_time = Time(now);
            }
            c.status = status;
            c.reason = new.reason.as_str().to_string();
            c.message = new.message.clone();
            c.observed_generation = generation;
        }
        None => conditions.push(Condition {
            type_: new.type_.as_str().to_string(),
            status,
            reason: new.reason.as_str().to_string(),
            message: new.message.clone(),
            observed_generation: generation,
            last_transition_time: Time(now),
        }),
    }
}

/// kstatus's `Reconciling` and `Stalled`, derived from `Synced` and `Ready`:
/// stalled when only a person's change helps (a policy violation, an
/// invalid composition), reconciling while not ready otherwise.
pub fn kstatus(synced: &Cond, ready: &Cond) -> [Cond; 2] {
    let stalled = !synced.status
        && matches!(
            synced.reason,
            Reason::Synced(SyncedReason::PolicyViolation | SyncedReason::CompositionInvalid)
        );
    let reconciling = !ready.status && !stalled;
    let with = |type_, on: bool, why: &Cond| Cond {
        type_,
        status: on,
        reason: if on { why.reason } else { Reason::Idle },
        message: if on {
            why.message.clone()
        } else {
            String::new()
        },
    };
    [
        with(ConditionType::Reconciling, reconciling, ready),
        with(ConditionType::Stalled, stalled, synced),
    ]
}

/// The condition of a type in a list, if any.
pub fn find(conditions: &[Condition], type_: ConditionType) -> Option<&Condition> {
    conditions.iter().find(|c| c.type_ == type_.as_str())
}

/// Whether the list holds a condition of this type with status True.
pub fn is_true(conditions: &[Condition], type_: ConditionType) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kstatus_conditions_follow_synced_and_ready() {
        let ok = Cond::synced(true, SyncedReason::ReconcileSuccess, "");
        let creating = Cond::ready(false, ReadyReason::Creating, "waiting for x");
        let ready = Cond::ready(true, ReadyReason::Available, "");
        let [r, s] = kstatus(&ok, &creating);
        assert!(
            r.status
                && r.reason == ReadyReason::Creating.into()
                && r.message == "waiting for x"
                && !s.status
        );
        let [r, s] = kstatus(&ok, &ready);
        assert!(!r.status && !s.status && r.reason == Reason::Idle);
        let bad = Cond::synced(false, SyncedReason::PolicyViolation, "too big");
        let [r, s] = kstatus(&bad, &creating);
        assert!(
            !r.status
                && s.status
                && s.reason == SyncedReason::PolicyViolation.into()
                && s.message == "too big"
        );
        let invalid = Cond::synced(false, SyncedReason::CompositionInvalid, "bad");
        assert!(kstatus(&invalid, &ready)[1].status);
        let missing = Cond::synced(false, SyncedReason::CompositionNotFound, "later");
        let [r, s] = kstatus(&missing, &creating);
        assert!(
            r.status && !s.status,
            "a missing composition may still arrive"
        );
    }

    #[test]
    fn reasons_parse_back_from_their_names() {
        let all = READY_REASONS
            .into_iter()
            .map(Reason::Ready)
            .chain(SYNCED_REASONS.into_iter().map(Reason::Synced))
            .chain([Reason::Idle]);
        for r in all {
            assert_eq!(r.as_str().parse::<Reason>(), Ok(r));
        }
        assert_eq!(
            "Ready".parse::<Reason>(),
            Err(UnknownReason("Ready".into()))
        );
        let c = Cond::synced(false, SyncedReason::PolicyViolation, "x");
        assert_eq!(c.reason, SyncedReason::PolicyViolation.into());
    }

    #[test]
    fn same_decision_changes_nothing() {
        let t0 = Timestamp::from_second(1_000).unwrap_or(Timestamp::UNIX_EPOCH);
        let t1 = Timestamp::from_second(2_000).unwrap_or(Timestamp::UNIX_EPOCH);
        let mut list = Vec::new();
        let c = Cond::ready(false, ReadyReason::Creating, "waiting for instance");
        set(&mut list, &c, Some(1), t0);
        let before = list.clone();
        set(&mut list, &c, Some(1), t1);
        assert_eq!(list, before);
    }

    #[test]
    fn transition_time_moves_only_on_a_flip() {
        let t0 = Timestamp::from_second(1_000).unwrap_or(Timestamp::UNIX_EPOCH);
        let t1 = Timestamp::from_second(2_000).unwrap_or(Timestamp::UNIX_EPOCH);
        let t2 = Timestamp::from_second(3_000).unwrap_or(Timestamp::UNIX_EPOCH);
        let mut list = Vec::new();
        set(
            &mut list,
            &Cond::ready(false, ReadyReason::Creating, "a"),
            Some(1),
            t0,
        );
        set(
            &mut list,
            &Cond::ready(false, ReadyReason::Unavailable, "b"),
            Some(2),
            t1,
        );
        assert_eq!(list[0].last_transition_time, Time(t0));
        assert_eq!(list[0].reason, "Unavailable");
        assert_eq!(list[0].observed_generation, Some(2));
        set(
            &mut list,
            &Cond::ready(true, ReadyReason::Available, ""),
            Some(2),
            t2,
        );
        assert_eq!(list[0].last_transition_time, Time(t2));
        assert!(is_true(&list, ConditionType::Ready));
        assert!(!is_true(&list, ConditionType::Synced));
    }
}
