//! Deletion: with `Delete`, composed objects go first and the finalizer
//! only once they are gone; with `Orphan`, they are released and kept.

use kube::ResourceExt;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use tracing::{info, warn};

use super::apply::Applied;
use super::error::failed;
use super::observe::dynamic_api;
use super::{Error, Pass, status};
use crate::api::{DatabaseClaim, DeletionPolicy};
use crate::conditions::{self, Cond, ConditionType, ReadyReason, SyncedReason};
use crate::controller::context::Context;
use crate::controller::{collector, labels};

pub async fn cleanup(claim: &DatabaseClaim, ctx: &Context) -> Result<Action, Error> {
    let ns = claim.namespace().unwrap_or_default();
    let name = claim.name_any();
    let deleting = Cond::ready(false, ReadyReason::Deleting, "the claim is being deleted");
    let synced = claim
        .status
        .as_ref()
        .and_then(|s| conditions::find(&s.conditions, ConditionType::Synced))
        .map(|c| {
            Cond::synced(
                c.status == "True",
                SyncedReason::ReconcileSuccess,
                c.message.clone(),
            )
        })
        .unwrap_or_else(|| Cond::synced(true, SyncedReason::ReconcileSuccess, ""));
    let pass = Pass {
        applied: Some(Applied {
            resources: claim
                .status
                .as_ref()
                .map(|s| s.resources.clone())
                .unwrap_or_default(),
            ..Default::default()
        }),
        ..Default::default()
    };
    if let Err(e) = status::write(claim, ctx, pass, synced, deleting).await {
        warn!(error = %e, "could not mark the claim as deleting");
    }
    let mut remaining = 0;
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
                if obj.metadata.deletion_timestamp.is_none() {
                    let answer = api
                        .delete(&object_name, &DeleteParams::background())
                        .await
                        .map_err(failed("delete", &object))?;
                    info!(object = %object_name, "deleting composed object");
                    // An object without finalizers is gone with the answer:
                    // the finalizer can go in this same pass instead of a
                    // later one (one pass, no wait, no extra requests).
                    if answer.left().is_none_or(|o| o.finalizers().is_empty()) {
                        continue;
                    }
                }
                remaining += 1;
            }
            DeletionPolicy::Orphan => {
                let release = collector::release_patch();
                api.patch(
                    &object_name,
                    &PatchParams::default(),
                    &Patch::Merge(&release),
                )
                .await
                .map_err(failed("release", &object))?;
                info!(object = %object_name, "orphaned composed object");
            }
        }
    }
    if remaining > 0 {
        return Err(Error::WaitingForDeletion(remaining));
    }
    Ok(Action::await_change())
}
