//! Credentials: starts a rotation when one is due (see [`crate::rotation`]).
//! Starting one is a write of `status.credentials` before anything else of
//! the pass, so a crash after it still leads the next pass to the same
//! rotation (the token is on record), and a pass on a stale claim cache
//! does not start a second one.

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::EventType;
use serde_json::json;
use tracing::info;

use super::error::{PassError, failed};
use super::select::Selected;
use super::{Pass, drills, normal};
use crate::api::DatabaseClaim;
use crate::api::claim::CredentialsStatus;
use crate::api::common::{DrillResult, DrillStatus};
use crate::conditions::{self, ConditionType};
use crate::contract::ROTATE_CREDENTIALS_ANNOTATION;
use crate::controller::context::Context;
use crate::rotation;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// How long after a rotation started the claim polls for its Secret to
/// follow, and how often.
const FOLLOW_WINDOW_SECS: i64 = 15 * 60;
const FOLLOW_POLL: std::time::Duration = std::time::Duration::from_secs(5);

/// The claim as the rest of the pass sees it: with `status.credentials`
/// of a rotation started now (or recently, if the cache lags).
pub async fn prepare(
    claim: &DatabaseClaim,
    selected: &Selected,
    ctx: &Context,
    pass: &mut Pass,
) -> Result<DatabaseClaim, PassError> {
    let uid = claim.uid().unwrap_or_default();
    let cached = claim.status.as_ref().and_then(|s| s.credentials.clone());
    let old = newest(cached, ctx.rotations.get(&uid));
    let days = rotation::effective_days(
        claim.spec.credentials.as_ref(),
        selected.policy.policies.iter().map(|p| p.as_ref()),
    );
    let ready = claim
        .status
        .as_ref()
        .is_some_and(|s| conditions::is_true(&s.conditions, ConditionType::Ready));
    let created = claim.metadata.creation_timestamp.as_ref().map(|t| t.0);
    let drill = pass.drill_rotation.take();
    let plan = match &drill {
        // Only a Ready claim starts a drill.
        Some((r, _)) => rotation::drill(Timestamp::now(), created, &r.id, days, old.as_ref()),
        None => rotation::plan(
            Timestamp::now(),
            created,
            ready,
            claim
                .annotations()
                .get(ROTATE_CREDENTIALS_ANNOTATION)
                .map(String::as_str),
            days,
            old.as_ref(),
        ),
    };
    pass.rotation_due_in = plan.due_in;
    // A provider's connection Secret does not wake its claim, and a
    // provider's switch need not change its object: while a rotation is
    // recent, look again soon so the claim's Secret follows within seconds.
    let started = plan
        .status
        .as_ref()
        .and_then(|s| s.rotated_at.as_ref())
        .map(|t| t.0);
    if let Some(t) = started
        && Timestamp::now().duration_since(t) < SignedDuration::from_secs(FOLLOW_WINDOW_SECS)
    {
        pass.rotation_due_in = Some(
            pass.rotation_due_in
                .map_or(FOLLOW_POLL, |d| d.min(FOLLOW_POLL)),
        );
    }
    let mut claim = claim.clone();
    let mut plan = plan;
    // What rotates: `Generate` values, and the passwords of dbclaim's own
    // providers (shared PostgreSQL, RDS). A rotation nothing would carry
    // out (another kind without a `Generate` patch) is acknowledged (the
    // request, the next scheduled time) and reported, never recorded as done.
    let unsupported = plan.rotate.is_some() && !generates(selected) && !rotates_database(selected);
    if unsupported && let Some(s) = plan.status.as_mut() {
        s.rotated_at = old.as_ref().and_then(|o| o.rotated_at.clone());
    }
    if let Some(why) = &plan.rotate {
        let api: Api<DatabaseClaim> =
            Api::namespaced(ctx.client.clone(), &claim.namespace().unwrap_or_default());
        // The drill's record goes with the rotation's: a crash after this
        // write does not start either again.
        if let Some((r, history)) = &drill {
            let record = drill_record(r, &plan, unsupported, selected);
            drills::finished_event(None, &record, &mut pass.events);
            pass.drills = Some(crate::drill::record(history, record));
        }
        // A merge patch: an apply of this one field would drop the rest of
        // the status this manager owns.
        let mut patch = json!({"status": {"credentials": plan.status}});
        if let Some(d) = &pass.drills {
            patch["status"]["drills"] = json!(d);
        }
        api.patch_status(
            &claim.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .map_err(|e| {
            PassError::Credentials(failed(
                "record a rotation on",
                format!("DatabaseClaim {}", claim.name_any()),
            )(e))
        })?;
        if let Some(s) = &plan.status {
            ctx.rotations.insert(&uid, s.clone());
        }
        if let Some(d) = &pass.drills {
            ctx.drills.insert(&uid, d.clone());
        }
        if unsupported {
            ctx.metrics.credential_rotation("composition", false);
            pass.events.push(crate::events::event(
                EventType::Warning,
                "RotationNotSupported",
                "RotateCredentials",
                format!(
                    "credentials not rotated ({why}): composition {} has no Generate patch and \
                     no shared PostgreSQL Database or RDSInstance, whose providers rotate; the credentials stay as they are",
                    selected.name()
                ),
            ));
        } else {
            info!(%why, "credentials rotation started");
            pass.events.push(normal(
                "RotatingCredentials",
                "RotateCredentials",
                format!("rotating the credentials: {why}"),
            ));
            pass.rotated = true;
        }
    }
    if let Some(status) = &plan.status {
        claim
            .status
            .get_or_insert_with(Default::default)
            .credentials = Some(status.clone());
    }
    pass.credentials = plan.status;
    Ok(claim)
}

/// The record of a `rotate-credentials` drill: done once the rotation is
/// handed to the providers (their connection Secrets follow within seconds).
fn drill_record(
    r: &crate::drill::Request,
    plan: &rotation::Plan,
    unsupported: bool,
    selected: &Selected,
) -> DrillStatus {
    let now = Some(Time(Timestamp::now()));
    let (result, message) = match unsupported {
        true => (
            DrillResult::Refused,
            format!(
                "nothing rotates: composition {} has no Generate patch and no shared PostgreSQL Database or RDSInstance",
                selected.name()
            ),
        ),
        false => (
            DrillResult::Succeeded,
            format!(
                "credentials rotation started (token {}): the providers switch to new credentials and the connection Secret follows",
                plan.status
                    .as_ref()
                    .and_then(|s| s.rotated_at.as_ref())
                    .map(|t| t.0.to_string())
                    .unwrap_or_default()
            ),
        ),
    };
    DrillStatus {
        type_: r.type_,
        id: r.id.clone(),
        started_at: now.clone(),
        finished_at: now,
        result,
        message,
    }
}

/// The later of what the cache shows and what this operator wrote.
fn newest(
    cached: Option<CredentialsStatus>,
    written: Option<CredentialsStatus>,
) -> Option<CredentialsStatus> {
    let at = |s: &Option<CredentialsStatus>| s.as_ref().and_then(|s| s.rotated_at.clone());
    match (at(&cached), at(&written)) {
        (_, None) => cached,
        (Some(c), Some(w)) if c.0 >= w.0 => cached,
        _ => written,
    }
}

/// Whether the composition generates values (so a rotation changes them).
pub fn generates(selected: &Selected) -> bool {
    let resources = &selected.composition.spec.resources;
    let mut patches = resources.iter().flat_map(|r| &r.patches);
    patches.any(|p| p.type_ == crate::api::composition::PatchType::Generate)
}

/// Whether the composition composes a managed resource whose provider
/// rotates its password: a shared PostgreSQL `Database`, an `RDSInstance`.
fn rotates_database(selected: &Selected) -> bool {
    let resources = &selected.composition.spec.resources;
    resources.iter().any(|r| super::own_managed(&r.base))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;

    fn at(s: i64) -> Option<CredentialsStatus> {
        Some(CredentialsStatus {
            rotated_at: Some(Time(Timestamp::from_second(s).unwrap_or_default())),
            ..Default::default()
        })
    }

    #[test]
    fn a_stale_cache_does_not_hide_a_rotation_started() {
        assert_eq!(newest(at(1), at(2)), at(2));
        assert_eq!(newest(at(3), at(2)), at(3));
        assert_eq!(newest(None, at(2)), at(2));
        assert_eq!(newest(at(1), None), at(1));
    }
}
