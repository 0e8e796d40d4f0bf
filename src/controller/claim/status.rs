//! Report: the pass's outcome as the claim's conditions and status, and
//! the events a person wants to see. Deciding is pure; one function writes.

use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};
use sha2::Digest;
use tracing::{debug, warn};

use super::apply::Applied;
use super::error::{PassError, failed, requeue};
use super::normal;
use super::secret::Published;
use super::{Error, Pass};
use crate::api::{DatabaseClaim, DatabaseClaimStatus, NameRef};
use crate::conditions::{self, Cond, ConditionType, ReadyReason, Reason, SyncedReason};
use crate::contract::CLAIM_FIELD_MANAGER;
use crate::controller::context::Context;
use crate::events;

/// Writes what the pass decided, a refusal of the API server included (on
/// a claim's first pass too); a transient API failure is returned instead
/// (it says nothing about the claim, and its status stays as it was).
pub async fn report(
    claim: &DatabaseClaim,
    ctx: &Context,
    pass: Pass,
    outcome: Result<(), PassError>,
) -> Result<Action, Error> {
    let provider_errors = pass.applied.as_ref().map(|a| a.provider_errors.join("; "));
    let (synced, after) = match outcome {
        Err(e) => match e.synced_reason() {
            Some(reason) => (Cond::synced(false, reason, e.to_string()), e.requeue()),
            None => return Err(Error::Pass(e)),
        },
        Ok(()) => match provider_errors.filter(|m| !m.is_empty()) {
            Some(m) => (
                Cond::synced(false, SyncedReason::ProviderError, m),
                Some(requeue::NOT_DONE),
            ),
            None => (Cond::synced(true, SyncedReason::ReconcileSuccess, ""), None),
        },
    };
    let old = claim.status.clone().unwrap_or_default();
    let ready = ready_condition(&old, &synced, &pass);
    let after = after.unwrap_or(match ready.status {
        true => requeue::READY,
        false => requeue::NOT_DONE,
    });
    // Wake for the scheduled rotation.
    let after = pass
        .rotation_due_in
        .map_or(after, |d| after.min(d + std::time::Duration::from_secs(1)));
    debug!(ready = ready.status, synced = synced.status, reason = synced.reason.as_str(), message = %ready.message, "claim reconciled");
    write(claim, ctx, pass, synced, ready).await?;
    Ok(Action::requeue(after))
}

/// Ready from what the pass found. When nothing could be (re)computed,
/// what was known about readiness stays.
pub fn ready_condition(old: &DatabaseClaimStatus, synced: &Cond, pass: &Pass) -> Cond {
    let computed = pass
        .applied
        .as_ref()
        .is_some_and(|a| !a.resources.is_empty());
    let provider_trouble = synced.reason == SyncedReason::ProviderError.into();
    if !synced.status && !provider_trouble && !computed {
        let Some(c) = conditions::find(&old.conditions, ConditionType::Ready) else {
            let message = format!("not provisioned: {}", synced.message);
            return Cond::ready(false, ReadyReason::Creating, message);
        };
        let reason = match conditions::reason_of(c) {
            Some(Reason::Ready(r @ (ReadyReason::Available | ReadyReason::Unavailable))) => r,
            _ => ReadyReason::Creating,
        };
        return Cond::ready(c.status == "True", reason, c.message.clone());
    }
    // Composed objects computed but no Secret published: its write failed
    // (a refusal, on Synced), so the claim gives nothing to connect with.
    let unpublished = (computed && pass.secret.is_none())
        .then_some("the connection secret, which could not be written (see Synced)");
    let not_ready: Vec<&str> = pass
        .applied
        .iter()
        .flat_map(|a| &a.not_ready)
        .chain(pass.secret.as_ref().and_then(|s| s.incomplete.as_ref()))
        .map(String::as_str)
        .chain(unpublished)
        .collect();
    if not_ready.is_empty() {
        return Cond::ready(true, ReadyReason::Available, "");
    }
    // Once available, a claim that is down stays Unavailable until it is
    // back (a failover drill, an outage), not Creating again.
    let was_available = conditions::find(&old.conditions, ConditionType::Ready).is_some_and(|c| {
        c.status == "True"
            || conditions::reason_of(c) == Some(Reason::Ready(ReadyReason::Unavailable))
    });
    let reason = match was_available {
        true => ReadyReason::Unavailable,
        false => ReadyReason::Creating,
    };
    Cond::ready(
        false,
        reason,
        format!("waiting for: {}", not_ready.join("; ")),
    )
}

/// The status a pass leaves: the conditions, and what it computed.
fn next_status(
    old: &DatabaseClaimStatus,
    generation: Option<i64>,
    pass: Pass,
    synced: &Cond,
    ready: &Cond,
) -> DatabaseClaimStatus {
    let mut new = old.clone();
    let now = Timestamp::now();
    conditions::set(&mut new.conditions, synced, generation, now);
    conditions::set(&mut new.conditions, ready, generation, now);
    for c in conditions::kstatus(synced, ready) {
        conditions::set(&mut new.conditions, &c, generation, now);
    }
    new.observed_generation = generation;
    let Applied {
        resources, outputs, ..
    } = pass.applied.unwrap_or_default();
    if !resources.is_empty() || synced.status {
        new.resources = resources;
        new.outputs = outputs;
    }
    if let Some(name) = pass.composition {
        new.composition = Some(NameRef { name });
    }
    if let Some(revision) = pass.revision {
        new.composition_revision = Some(revision);
    }
    if pass.credentials.is_some() {
        new.credentials = pass.credentials;
    }
    if let Some(drills) = pass.drills {
        new.drills = drills;
    }
    if let Some(Published { name: Some(s), .. }) = pass.secret {
        new.connection_secret_ref = Some(NameRef { name: s.clone() });
        new.binding = Some(NameRef { name: s });
    }
    new
}

/// Writes the status when it changed and publishes the pass's events.
pub async fn write(
    claim: &DatabaseClaim,
    ctx: &Context,
    mut pass: Pass,
    synced: Cond,
    ready: Cond,
) -> Result<(), Error> {
    let old = claim.status.clone().unwrap_or_default();
    let did = std::mem::take(&mut pass.events);
    let new = next_status(&old, claim.metadata.generation, pass, &synced, &ready);
    // A pass can start before the watch brings the claim's last status
    // write into the cache. When the cache still shows the very status that
    // write replaced, and this pass would write the same again, the status
    // is current already: writing it, or announcing its transitions, again
    // would be a duplicate (a flap seen from outside).
    let uid = claim.uid().unwrap_or_default();
    let (old_key, new_key) = (status_key(&old), status_key(&new));
    let stale = ctx.status_writes.get(&uid) == Some((old_key, new_key)) && old_key != new_key;
    let events = match stale {
        true => did,
        false => events_for(&old, &new, did),
    };
    if new != old && !stale {
        // Written in the version the operator speaks (the status is the
        // same in both): one in another costs two conversion webhook calls.
        let api: Api<DynamicObject> = Api::namespaced_with(
            ctx.client.clone(),
            &claim.namespace().unwrap_or_default(),
            &ctx.claim_resource,
        );
        let api_version = &ctx.claim_resource.api_version;
        let patch = json!({"apiVersion": api_version, "kind": "DatabaseClaim", "status": new});
        let params = PatchParams::apply(CLAIM_FIELD_MANAGER).force();
        api.patch_status(&claim.name_any(), &params, &Patch::Apply(&patch))
            .await
            .map_err(failed(
                "write the status of",
                format!("DatabaseClaim {}", claim.name_any()),
            ))?;
        ctx.status_writes.insert(&uid, (old_key, new_key));
        if new.drills != old.drills {
            ctx.drills.insert(&uid, new.drills.clone());
        }
        let created = claim.metadata.creation_timestamp.as_ref().map(|t| t.0);
        let signals = super::review::signals(&old, &new, created, Timestamp::now());
        if let Some(seconds) = signals.first_ready
            && !ctx.counted_ready.contains(&uid)
        {
            ctx.metrics.claim_first_ready(&signals.composition, seconds);
            ctx.counted_ready.insert(&uid, ());
        }
        match &signals.failure {
            Some(reason) if ctx.counted_failures.get(&uid).as_ref() != Some(reason) => {
                ctx.metrics.claim_failed(&signals.composition, reason);
                ctx.counted_failures.insert(&uid, reason.clone());
            }
            Some(_) => {}
            // Synced again: the next failure is a new one.
            None if synced.status => ctx.counted_failures.remove(&uid),
            None => {}
        }
    } else if old_key == new_key {
        // The cache shows what was written: nothing in flight.
        ctx.status_writes.remove(&uid);
    }
    let reference = claim.object_ref(&());
    let recorder = Recorder::new(ctx.client.clone(), ctx.reporter.clone());
    for event in events::fold_pass(events) {
        if let Err(e) = recorder.publish(&event, &reference).await {
            warn!(error = %e, "could not publish event");
        }
    }
    Ok(())
}

/// A status as far as a pass decides it: a pass that recomputes an
/// unchanged status from a stale cache stamps new transition times.
pub fn status_key(status: &DatabaseClaimStatus) -> u64 {
    let mut value = serde_json::to_value(status).unwrap_or(Value::Null);
    if let Some(conditions) = value.get_mut("conditions").and_then(Value::as_array_mut) {
        for c in conditions.iter_mut().filter_map(Value::as_object_mut) {
            c.remove("lastTransitionTime");
        }
    }
    let digest = sha2::Sha256::digest(value.to_string().as_bytes());
    u64::from_be_bytes(digest[..8].try_into().unwrap_or_default())
}

/// The events of a pass, in order: the composition it selected, what it
/// `did`, then the condition changes a person wants to see: errors when
/// they start or change, readiness when it flips.
pub fn events_for(
    old: &DatabaseClaimStatus,
    new: &DatabaseClaimStatus,
    did: Vec<Event>,
) -> Vec<Event> {
    let mut out = Vec::new();
    if let Some(c) = &new.composition
        && new.composition != old.composition
    {
        let note = format!("composition {} selected", c.name);
        out.push(normal("CompositionSelected", "SelectComposition", note));
    }
    out.extend(did);
    let warning = |reason: &str, message: &str| {
        let note = events::truncate(message, 1000);
        events::event(EventType::Warning, reason, "Reconcile", note)
    };
    let old_synced = conditions::find(&old.conditions, ConditionType::Synced);
    if let Some(s) = conditions::find(&new.conditions, ConditionType::Synced)
        && s.status == "False"
        && old_synced.is_none_or(|o| {
            conditions::reason_of(o) != conditions::reason_of(s) || o.message != s.message
        })
    {
        out.push(warning(&s.reason, &s.message));
    }
    let was_ready = conditions::is_true(&old.conditions, ConditionType::Ready);
    let ready = conditions::find(&new.conditions, ConditionType::Ready);
    let is_ready = ready.is_some_and(|r| r.status == "True");
    if is_ready && !was_ready {
        out.push(normal(
            "Ready",
            "Reconcile",
            "the database is ready".to_string(),
        ));
    } else if let Some(r) = ready
        && !is_ready
        && was_ready
        // A deletion the user asked for is no incident: no warning for it.
        && conditions::reason_of(r) != Some(ReadyReason::Deleting.into())
    {
        out.push(warning("NotReady", &r.message));
    }
    out
}
