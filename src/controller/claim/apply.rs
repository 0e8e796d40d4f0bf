//! Apply: server-side apply of what changed (an applied-hash annotation
//! skips what is unchanged), a re-render over the API server's answers,
//! and pruning of what the composition no longer declares.

use std::borrow::Cow;
use std::collections::BTreeMap;

use kube::ResourceExt;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::events::Event;
use serde_json::{Value, json};
use tracing::info;

use super::error::{ComposedError, failed};
use super::observe::{Observed, dynamic_api};
use super::select::Selected;
use super::{normal, render};
use crate::api::DatabaseClaim;
use crate::api::claim::ResourceStatus;
use crate::contract::{APPLIED_HASH_ANNOTATION, CLAIM_FIELD_MANAGER};
use crate::controller::cache;
use crate::controller::context::Context;
use crate::controller::labels;
use crate::engine::Rendered;
use crate::naming;

/// The composed objects as applied, for the Secret and the status.
#[derive(Default)]
pub struct Applied {
    pub resources: Vec<ResourceStatus>,
    pub outputs: BTreeMap<String, Value>,
    /// Connection details the composed objects publish, by key.
    pub connection: BTreeMap<String, Vec<u8>>,
    /// Why composed objects are not ready, in words.
    pub not_ready: Vec<String>,
    /// `Synced=False` messages of composed objects: the provider's trouble.
    pub provider_errors: Vec<String>,
}

/// `events` receives one event per object created.
pub async fn apply(
    claim: &DatabaseClaim,
    selected: &Selected,
    mut observed: Observed,
    desired: Rendered,
    ctx: &Context,
    events: &mut Vec<Event>,
) -> Result<Applied, ComposedError> {
    let ns = claim.namespace().unwrap_or_default();
    let mut applied = false;
    for r in &desired.resources {
        let Some(kind) = observed.kinds.get(&r.name) else {
            continue;
        };
        let current = observed
            .objects
            .get(&r.name)
            .and_then(|o| o.object.as_ref());
        let object_name = object_name(&r.object);
        let object = with_applied_hash(r.object.clone());
        if !needs_apply(&object, current) {
            continue;
        }
        let object = with_provider_finalizer(object);
        let created = current.is_none();
        let params = PatchParams::apply(CLAIM_FIELD_MANAGER).force();
        let result = dynamic_api(ctx, kind, &ns)
            .patch(&object_name, &params, &Patch::Apply(&object))
            .await
            .map_err(failed(
                "apply",
                format!("{} {object_name}", kind.resource.kind),
            ))?;
        applied = true;
        cache::remember(&ctx.written, &kind.resource.plural, &result);
        if let Some(o) = observed.objects.get_mut(&r.name) {
            o.object = serde_json::to_value(result).ok();
        }
        if created {
            info!(resource = %r.name, object = %object_name, "composed object created");
            let note = format!("created {} {object_name}", kind.resource.kind);
            events.push(normal("ResourceCreated", "CreateResource", note));
        }
    }
    // What the API server answered is the freshest observation: readiness
    // and connection details need not wait for the next pass.
    let rendered = match applied {
        true => render::render(claim, selected, &observed)?,
        false => desired,
    };
    let resources: Vec<ResourceStatus> = rendered
        .resources
        .iter()
        .filter_map(|r| {
            let kind = observed.kinds.get(&r.name)?;
            Some(ResourceStatus {
                name: r.name.clone(),
                api_version: kind.resource.api_version.clone(),
                kind: kind.resource.kind.clone(),
                resource_name: object_name(&r.object),
                ready: r.readiness.ready,
            })
        })
        .collect();
    prune(claim, ctx, &resources).await?;
    Ok(Applied {
        not_ready: rendered
            .resources
            .iter()
            .filter(|r| !r.readiness.ready)
            .map(|r| r.readiness.message.clone())
            .collect(),
        provider_errors: observed
            .objects
            .values()
            .filter_map(|o| o.object.as_ref())
            .filter_map(provider_error)
            .collect(),
        resources,
        outputs: rendered.outputs,
        connection: rendered.connection,
    })
}

fn object_name(object: &Value) -> String {
    render::field(object, "/metadata/name").to_string()
}

/// Reasons on a `Ready=False` condition that say the provider tried and
/// failed, not that it is still working: Config Connector reports its
/// failures this way (it has no Synced condition).
const FAILURE_REASONS: &[&str] = &[
    "UpdateFailed",
    "DeleteFailed",
    "DependencyInvalid",
    "ManagementConflict",
];

/// A composed object's own failure, as `<Kind> <name>: <message>`: its
/// `Synced=False` (Crossplane-style providers), or a `Ready=False` whose
/// reason is a failure (Config Connector's `UpdateFailed`, ...).
fn provider_error(obj: &Value) -> Option<String> {
    let message = not_synced(obj)?;
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("object");
    let name = render::field(obj, "/metadata/name");
    Some(format!("{kind} {name}: {message}"))
}

/// CloudNativePG's phases that stop a Cluster until someone acts (its
/// controller's `RegisterPhase` on an error, v1.25 `api/v1/cluster_types.go`).
/// It has no failure condition: `Ready` is only `ClusterIsNotReady` then, and
/// the cause is in `status.phaseReason`.
const CNPG_FAILURE_PHASES: &[&str] = &[
    "Unable to create required cluster objects",
    "Cluster is unrecoverable and needs manual intervention",
    "Cluster has incomplete or invalid image catalog",
    "Cluster cannot proceed to reconciliation due to an unknown plugin being required",
    "Cluster cannot execute instance online upgrade due to missing architecture binary",
];

/// The message of a composed object's failure: its `Synced=False`
/// condition, a `Ready=False` with a failure reason, or a CloudNativePG
/// failure phase (`<phase>: <phaseReason>`).
pub fn not_synced(obj: &Value) -> Option<Cow<'_, str>> {
    if let Some(phase) = cnpg_failure(obj) {
        return Some(phase);
    }
    let conditions = obj.pointer("/status/conditions")?.as_array()?;
    let find = |t: &str| {
        conditions
            .iter()
            .find(|c| c.get("type").and_then(Value::as_str) == Some(t))
            .filter(|c| c.get("status").and_then(Value::as_str) == Some("False"))
    };
    let failed = find("Synced").or_else(|| {
        find("Ready").filter(|c| {
            c.get("reason")
                .and_then(Value::as_str)
                .is_some_and(|r| FAILURE_REASONS.contains(&r))
        })
    })?;
    Some(Cow::Borrowed(
        failed
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or_default(),
    ))
}

fn cnpg_failure(obj: &Value) -> Option<Cow<'_, str>> {
    let api_version = obj.get("apiVersion").and_then(Value::as_str)?;
    if !api_version.starts_with("postgresql.cnpg.io/") {
        return None;
    }
    let phase = obj.pointer("/status/phase").and_then(Value::as_str)?;
    if !CNPG_FAILURE_PHASES.contains(&phase) {
        return None;
    }
    Some(
        match obj
            .pointer("/status/phaseReason")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|r| !r.is_empty())
        {
            Some(reason) => Cow::Owned(format!("{phase}: {reason}")),
            None => Cow::Borrowed(phase),
        },
    )
}

#[cfg(test)]
mod provider_error_tests {
    use super::provider_error;
    use serde_json::json;

    fn obj(conditions: serde_json::Value) -> serde_json::Value {
        json!({"kind": "SQLInstance", "metadata": {"name": "i"}, "status": {"conditions": conditions}})
    }

    #[test]
    fn synced_false_and_failure_reasons_on_ready_are_provider_errors() {
        let synced = obj(json!([{"type": "Synced", "status": "False", "message": "quota"}]));
        assert_eq!(
            provider_error(&synced).as_deref(),
            Some("SQLInstance i: quota")
        );
        let kcc = obj(
            json!([{"type": "Ready", "status": "False", "reason": "UpdateFailed",
            "message": "Update call failed: googleapi: Error 403"}]),
        );
        assert_eq!(
            provider_error(&kcc).as_deref(),
            Some("SQLInstance i: Update call failed: googleapi: Error 403")
        );
        // Still working, or fine: not an error.
        let updating = obj(json!([{"type": "Ready", "status": "False", "reason": "Updating"}]));
        assert_eq!(provider_error(&updating), None);
        let ready = obj(json!([{"type": "Ready", "status": "True", "reason": "UpToDate"}]));
        assert_eq!(provider_error(&ready), None);
    }

    #[test]
    fn cloudnative_pg_failure_phases_are_provider_errors() {
        let cluster = |phase: &str, reason: &str| {
            json!({"apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster",
                "metadata": {"name": "c"},
                "status": {"phase": phase, "phaseReason": reason, "conditions": [
                    {"type": "Ready", "status": "False", "reason": "ClusterIsNotReady",
                     "message": "Cluster Is Not Ready"}]}})
        };
        assert_eq!(
            provider_error(&cluster(
                "Unable to create required cluster objects",
                "exceeded quota: compute-resources"
            ))
            .as_deref(),
            Some(
                "Cluster c: Unable to create required cluster objects: exceeded quota: compute-resources"
            )
        );
        assert_eq!(
            provider_error(&cluster(
                "Cluster is unrecoverable and needs manual intervention",
                ""
            ))
            .as_deref(),
            Some("Cluster c: Cluster is unrecoverable and needs manual intervention")
        );
        // Still working, or healthy: not an error.
        assert_eq!(provider_error(&cluster("Setting up primary", "")), None);
        assert_eq!(
            provider_error(&cluster("Cluster in healthy state", "")),
            None
        );
        // The same words from another group are not CloudNativePG's.
        let mut other = cluster("Unable to create required cluster objects", "x");
        other["apiVersion"] = json!("example.org/v1");
        assert_eq!(provider_error(&other), None);
    }
}

/// Deletes composed objects the status lists and this pass did not apply
/// (the composition no longer declares them). `status.resources` is the
/// record of what is ours; the labels confirm it.
async fn prune(
    claim: &DatabaseClaim,
    ctx: &Context,
    current: &[ResourceStatus],
) -> Result<(), ComposedError> {
    let Some(status) = &claim.status else {
        return Ok(());
    };
    let ns = claim.namespace().unwrap_or_default();
    for old in &status.resources {
        let still = current.iter().any(|r| {
            r.api_version == old.api_version
                && r.kind == old.kind
                && r.resource_name == old.resource_name
        });
        if still {
            continue;
        }
        let Ok(kind) = ctx.kinds.resolve(&old.api_version, &old.kind).await else {
            continue;
        };
        let object = format!("{} {}", old.kind, old.resource_name);
        let api = dynamic_api(ctx, &kind, &ns);
        if let Some(obj) = api
            .get_opt(&old.resource_name)
            .await
            .map_err(failed("read", &object))?
            && labels::belongs_to(obj.labels(), &ns, &claim.name_any())
            && obj.metadata.deletion_timestamp.is_none()
        {
            api.delete(&old.resource_name, &DeleteParams::background())
                .await
                .map_err(failed("prune", object))?;
            info!(object = %old.resource_name, "removed composed object the composition no longer declares");
        }
    }
    Ok(())
}

fn with_applied_hash(mut object: Value) -> Value {
    let hash = naming::short_hash(&object.to_string());
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        let annotations = meta.entry("annotations").or_insert_with(|| json!({}));
        if let Some(a) = annotations.as_object_mut() {
            a.insert(APPLIED_HASH_ANNOTATION.to_string(), Value::String(hash));
        }
    }
    object
}

/// A managed resource of dbclaim's own providers, applied with its
/// provider's finalizer: the provider would add it by a patch of its own
/// before its first pass (a write per claim, and a pass that does nothing
/// else). Sent on every apply, so this field manager never drops it; left
/// out of the hash and of the comparison, so an object whose finalizer the
/// provider added itself is not applied again for it.
fn with_provider_finalizer(mut object: Value) -> Value {
    let group = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .and_then(|v| v.split_once('/'))
        .map(|(g, _)| g);
    let finalizer = match (group, super::own_managed(&object)) {
        (Some("postgres.dbclaim.io"), true) => crate::contract::postgres::FINALIZER,
        (Some("aws.dbclaim.io"), true) => crate::contract::aws::FINALIZER,
        _ => return object,
    };
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("finalizers".to_string(), json!([finalizer]));
    }
    object
}

/// Whether the desired object must be sent: it is new, it changed since
/// the last apply, or someone else changed a field dbclaim sets.
fn needs_apply(desired: &Value, current: Option<&Value>) -> bool {
    match current {
        None => true,
        // A Secret's stringData is stored in data: compare it there.
        Some(current) => !is_subset(&crate::engine::generate::as_stored(desired), current),
    }
}

/// Whether every field of `want` is present and equal in `have`.
/// Numbers compare by value (the API server turns 20.0 into 20).
pub fn is_subset(want: &Value, have: &Value) -> bool {
    match (want, have) {
        (Value::Object(w), Value::Object(h)) => w
            .iter()
            .all(|(k, v)| h.get(k).is_some_and(|hv| is_subset(v, hv))),
        (Value::Array(w), Value::Array(h)) => {
            w.len() == h.len() && w.iter().zip(h).all(|(a, b)| is_subset(a, b))
        }
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (a, b) => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subset_ignores_fields_others_set_and_number_forms() {
        let want = json!({"spec": {"a": 20.0, "l": [1, {"x": "y"}]}, "metadata": {"name": "n"}});
        let have = json!({"spec": {"a": 20, "b": true, "l": [1, {"x": "y", "z": 1}]}, "metadata": {"name": "n", "uid": "u"}});
        assert!(is_subset(&want, &have));
        assert!(!is_subset(&json!({"spec": {"a": 21}}), &have));
        assert!(!is_subset(&json!({"spec": {"l": [1]}}), &have));
        assert!(!is_subset(&json!({"spec": {"c": 1}}), &have));
    }

    #[test]
    fn applied_hash_is_stable() {
        let a = with_applied_hash(json!({"metadata": {"name": "x"}, "spec": {"k": 1}}));
        let b = with_applied_hash(json!({"metadata": {"name": "x"}, "spec": {"k": 1}}));
        assert_eq!(a, b);
        assert!(
            a.pointer("/metadata/annotations/dbclaim.io~1applied-hash")
                .is_some()
        );
        assert!(needs_apply(&a, None));
        assert!(!needs_apply(&a, Some(&a)));
    }

    #[test]
    fn own_managed_resources_carry_their_providers_finalizer() {
        let db = json!({"apiVersion": "postgres.dbclaim.io/v1alpha1", "kind": "Database",
            "metadata": {"name": "d"}});
        assert_eq!(
            with_provider_finalizer(db)["metadata"]["finalizers"],
            json!(["postgres.dbclaim.io/finalizer"])
        );
        let rds = json!({"apiVersion": "aws.dbclaim.io/v1alpha1", "kind": "RDSInstance",
            "metadata": {"name": "r"}});
        assert_eq!(
            with_provider_finalizer(rds)["metadata"]["finalizers"],
            json!(["aws.dbclaim.io/finalizer"])
        );
        // Anyone else's kind is applied as rendered.
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
        assert_eq!(with_provider_finalizer(cm.clone()), cm);
    }
}
