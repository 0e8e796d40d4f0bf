//! Deletion: with `Delete`, composed objects go first and the finalizer
//! only once they are gone (the claim says what each one waits for); with
//! `Orphan`, they are released and kept. The connection Secret goes last.

use kube::ResourceExt;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use serde_json::Value;
use tracing::{info, warn};

use super::apply::{self, Applied};
use super::error::failed;
use super::observe::dynamic_api;
use super::{Error, Pass, secret, status};
use crate::api::{DatabaseClaim, DatabaseClaimStatus, DeletionPolicy};
use crate::conditions::{self, Cond, ConditionType, ReadyReason, Reason, SyncedReason};
use crate::controller::context::Context;
use crate::controller::{collector, labels};

pub async fn cleanup(claim: &DatabaseClaim, ctx: &Context) -> Result<Action, Error> {
    let ns = claim.namespace().unwrap_or_default();
    let name = claim.name_any();
    let mut waiting = Vec::new();
    // Found by their labels, not by the status alone: a claim deleted
    // before its first status write still finds what it made, and a kind
    // discovery cannot resolve is a retry, never "nothing there".
    for (kind, object_name) in collector::composed_for_claim(ctx, claim).await? {
        let api = dynamic_api(ctx, &kind, &ns);
        let object = format!("{} {object_name}", kind.resource.kind);
        let Some(obj) = api
            .get_opt(&object_name)
            .await
            .map_err(failed("read", &object))?
        else {
            continue;
        };
        if !labels::belongs_to(obj.labels(), &ns, &name) {
            continue;
        }
        match claim.spec.deletion_policy {
            DeletionPolicy::Delete => {
                let mut obj = obj;
                if obj.metadata.deletion_timestamp.is_none() {
                    let answer = api
                        .delete(&object_name, &DeleteParams::background())
                        .await
                        .map_err(failed("delete", &object))?;
                    info!(object = %object_name, "deleting composed object");
                    // An object without finalizers is gone with the answer:
                    // the finalizer can go in this same pass instead of a
                    // later one (one pass, no wait, no extra requests).
                    match answer.left() {
                        Some(o) if !o.finalizers().is_empty() => obj = o,
                        _ => continue,
                    }
                }
                let value = serde_json::to_value(&obj).unwrap_or_default();
                waiting.push(waits_for(&kind.resource.kind, &object_name, &value));
            }
            DeletionPolicy::Orphan => {
                let release = Patch::Merge(collector::release_patch());
                api.patch(&object_name, &PatchParams::default(), &release)
                    .await
                    .map_err(failed("release", &object))?;
                info!(object = %object_name, "orphaned composed object");
            }
        }
    }
    if !waiting.is_empty() {
        let old = claim.status.clone().unwrap_or_default();
        let (synced, ready) = deleting_conditions(&old, &waiting);
        let pass = Pass {
            applied: Some(Applied {
                resources: old.resources.clone(),
                ..Default::default()
            }),
            ..Default::default()
        };
        if let Err(e) = status::write(claim, ctx, pass, synced, ready).await {
            warn!(error = %e, "could not mark the claim as deleting");
        }
        return Err(Error::WaitingForDeletion(waiting.len()));
    }
    secret::delete_all(claim, ctx).await?;
    Ok(Action::await_change())
}

/// What deleting a composed object waits for, as `<Kind> <name>: <why>`:
/// the object's own `Synced=False` message when it has one (a provider
/// that cannot delete: deletion protection, an unreachable server), else
/// its finalizers.
pub fn waits_for(kind: &str, name: &str, obj: &Value) -> String {
    if let Some(message) = apply::not_synced(obj).filter(|m| !m.is_empty()) {
        return format!("{kind} {name}: {message}");
    }
    let finalizers: Vec<&str> = obj
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    match finalizers.as_slice() {
        [] => format!("{kind} {name}: being deleted"),
        f => format!("{kind} {name}: waiting for finalizer {}", f.join(", ")),
    }
}

/// The conditions while deletion waits: Ready names what it waits for;
/// Synced stays as it was, its reason included.
pub fn deleting_conditions(old: &DatabaseClaimStatus, waiting: &[String]) -> (Cond, Cond) {
    let synced = match conditions::find(&old.conditions, ConditionType::Synced) {
        Some(c) => {
            let status = c.status == "True";
            let reason = match conditions::reason_of(c) {
                Some(Reason::Synced(r)) => r,
                _ if status => SyncedReason::ReconcileSuccess,
                _ => SyncedReason::ReconcileError,
            };
            Cond::synced(status, reason, c.message.clone())
        }
        None => Cond::synced(true, SyncedReason::ReconcileSuccess, ""),
    };
    let message = format!(
        "the claim is being deleted; waiting for {}",
        waiting.join("; ")
    );
    (synced, Cond::ready(false, ReadyReason::Deleting, message))
}
