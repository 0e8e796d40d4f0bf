//! Status of managed resources: the next status (equal to the old one when
//! nothing changed, so nothing is written), the conditions after a failure
//! or during deletion, the transitions that deserve an event, and the write.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use serde::Serialize;

use super::{Managed, ProviderError};
use crate::api::common::ManagedStatus;
use crate::conditions::{self, Cond, ConditionType, ReadyReason, SyncedReason};

/// `old` with conditions, atProvider (when given) and observedGeneration
/// set: equal to `old` when nothing changed.
pub fn next<O: Clone>(
    old: &ManagedStatus<O>,
    generation: Option<i64>,
    at_provider: Option<O>,
    conds: &[Cond],
    now: Timestamp,
) -> ManagedStatus<O> {
    let mut new = old.clone();
    set_all(&mut new.conditions, conds, generation, now);
    if let Some(a) = at_provider {
        new.at_provider = Some(a);
    }
    new.observed_generation = generation;
    new
}

/// Merges `conds` into `conditions` (see `conditions::set`).
pub fn set_all(
    conditions: &mut Vec<Condition>,
    conds: &[Cond],
    generation: Option<i64>,
    now: Timestamp,
) {
    for c in conds {
        conditions::set(conditions, c, generation, now);
    }
}

/// The (status, reason, message) of a condition, if set.
fn pick(conds: &[Condition], type_: ConditionType) -> Option<(String, String, String)> {
    conditions::find(conds, type_).map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Whether the Synced condition changed (status, reason or message): the
/// moment for a warning event, which is not repeated on every retry.
pub fn synced_transitioned<O>(old: &ManagedStatus<O>, new: &ManagedStatus<O>) -> bool {
    synced_changed(&old.conditions, &new.conditions)
}

pub fn synced_changed(old: &[Condition], new: &[Condition]) -> bool {
    pick(old, ConditionType::Synced) != pick(new, ConditionType::Synced)
}

/// The event when Ready changes status or reason (not on every requeue):
/// Normal when it turns True or is Creating, else a Warning.
pub fn ready_event<O>(
    old: &ManagedStatus<O>,
    new: &ManagedStatus<O>,
) -> Option<(EventType, String, String)> {
    let before = pick(&old.conditions, ConditionType::Ready);
    let (status, reason, message) = pick(&new.conditions, ConditionType::Ready)?;
    if before.is_some_and(|b| b.0 == status && b.1 == reason) {
        return None;
    }
    let type_ = if status == "True" || reason == ReadyReason::Creating.as_str() {
        EventType::Normal
    } else {
        EventType::Warning
    };
    Some((type_, reason, message))
}

/// The Synced=False event of a pass that succeeded with a refusal (drift
/// that cannot be applied), once per new message.
pub fn synced_event<O>(old: &ManagedStatus<O>, new: &ManagedStatus<O>) -> Option<(String, String)> {
    let c = conditions::find(&new.conditions, ConditionType::Synced)?;
    (synced_transitioned(old, new) && c.status == "False")
        .then(|| (c.reason.clone(), c.message.clone()))
}

/// Ready and Synced after a failed pass. Ready: `Creating` when never
/// decided or still creating; unchanged when the failure says nothing about
/// the resource; `Unavailable` when it cannot be reached.
pub fn failure<O, E: ProviderError>(old: &ManagedStatus<O>, what: &str, e: &E) -> [Cond; 2] {
    let synced = Cond::synced(false, e.reason(), e.to_string());
    let ready = match conditions::find(&old.conditions, ConditionType::Ready) {
        None => Cond::ready(
            false,
            ReadyReason::Creating,
            format!("{what} is not created yet: see the Synced condition"),
        ),
        Some(c)
            if e.keeps_ready() || conditions::ready_reason_of(c) == Some(ReadyReason::Creating) =>
        {
            Cond {
                type_: ConditionType::Ready,
                status: c.status == "True",
                // An unknown stored reason reads as Unavailable: the resource's
                // state is not known to be good.
                reason: conditions::ready_reason_of(c)
                    .unwrap_or(ReadyReason::Unavailable)
                    .into(),
                message: c.message.clone(),
            }
        }
        Some(_) => Cond::ready(
            false,
            ReadyReason::Unavailable,
            "cannot reach the server: see the Synced condition",
        ),
    };
    [ready, synced]
}

/// Ready and Synced while deleting: waiting, or failing with `error`.
pub fn deleting(what: &str, waiting: Result<&str, (SyncedReason, String)>) -> [Cond; 2] {
    match waiting {
        Ok(message) => [
            Cond::ready(false, ReadyReason::Deleting, message),
            Cond::synced(true, SyncedReason::ReconcileSuccess, ""),
        ],
        Err((reason, error)) => [
            Cond::ready(
                false,
                ReadyReason::Deleting,
                format!("cannot delete {what}: see the Synced condition"),
            ),
            Cond::synced(
                false,
                reason,
                format!(
                    "cannot delete: {error}; to keep {what} instead, set spec.deletionPolicy to Orphan"
                ),
            ),
        ],
    }
}

/// Writes `status` of a cluster-scoped object with server-side apply;
/// the object's resourceVersion after the write.
pub async fn write<K, S>(
    client: &kube::Client,
    obj: &K,
    manager: &str,
    status: &S,
) -> Result<Option<String>, kube::Error>
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    S: Serialize,
{
    let api: Api<K> = Api::all(client.clone());
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    let written = api
        .patch_status(
            &obj.name_any(),
            &PatchParams::apply(manager).force(),
            &Patch::Apply(&patch),
        )
        .await?;
    Ok(written.meta().resource_version.clone())
}

/// The status of `obj`, empty when it has none yet.
pub fn current<M: Managed>(obj: &M) -> ManagedStatus<M::Observation> {
    obj.status().cloned().unwrap_or_default()
}
