//! The DatabaseClaim reconcile: select → observe → render (pure) → apply →
//! connection Secret → status. Deletion goes through the finalizer.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};
use sha2::Digest;
use tracing::{debug, info, instrument, warn};

use crate::api::claim::ResourceStatus;
use crate::api::{Composition, DatabaseClaim, DatabaseClaimStatus, DeletionPolicy, NameRef};
use crate::conditions::{self, Cond, ConditionType, ReadyReason, SyncedReason};
use crate::engine::{self, Observed, Scope};
use crate::events;
use crate::naming;

use super::context::Context;
use super::kinds::Kind;
use super::labels;

pub const FINALIZER: &str = "dbclaim.io/finalizer";
pub const PAUSED_ANNOTATION: &str = "dbclaim.io/paused";
pub const FIELD_MANAGER: &str = "dbclaim";
/// Hash of what dbclaim last applied, so an unchanged object is not re-sent.
pub const APPLIED_HASH_ANNOTATION: &str = "dbclaim.io/applied-hash";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API error: {0}")]
    Kube(#[from] kube::Error),
    #[error("waiting for {0} composed object(s) to be deleted")]
    WaitingForDeletion(usize),
    #[error("{0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
}

/// A problem reported on the claim as `Synced=False` rather than retried blindly.
#[derive(Debug)]
struct Stop {
    reason: SyncedReason,
    message: String,
}

impl Stop {
    fn new(reason: SyncedReason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }
}

/// What one pass decided, before it becomes the claim's status.
#[derive(Default)]
struct Progress {
    composition: Option<String>,
    resources: Vec<ResourceStatus>,
    outputs: BTreeMap<String, Value>,
    secret: Option<String>,
    not_ready: Vec<String>,
    /// `Synced=False` messages of composed objects: the provider's trouble.
    provider_errors: Vec<String>,
    events: Vec<Event>,
}

/// A composed object's own `Synced=False`, as `<Kind> <name>: <message>`.
fn provider_error(obj: &Value) -> Option<String> {
    let conditions = obj.pointer("/status/conditions")?.as_array()?;
    let synced = conditions
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some("Synced"))?;
    if synced.get("status").and_then(Value::as_str) != Some("False") {
        return None;
    }
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("object");
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let message = synced
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or_default();
    Some(format!("{kind} {name}: {message}"))
}

fn is_paused(claim: &DatabaseClaim) -> bool {
    claim
        .annotations()
        .get(PAUSED_ANNOTATION)
        .is_some_and(|v| v == "true")
}

#[instrument(skip_all, fields(claim = %claim.name_any(), namespace = claim.namespace().unwrap_or_default()))]
pub async fn reconcile(claim: Arc<DatabaseClaim>, ctx: Arc<Context>) -> Result<Action, Error> {
    if is_paused(&claim) {
        return Ok(Action::await_change());
    }
    let deleting = claim.metadata.deletion_timestamp.is_some();
    let uid = claim.uid().unwrap_or_default();
    if deleting && ctx.finalized.contains(&uid) {
        // The cache still shows a claim whose finalizer this operator
        // removed: it is gone, and a second cleanup would only send
        // requests that fail.
        return Ok(Action::await_change());
    }
    let started = Instant::now();
    debug!("claim reconcile started");
    let ns = claim.namespace().unwrap_or_default();
    let api: Api<DatabaseClaim> = Api::namespaced(ctx.client.clone(), &ns);
    let result = finalizer(&api, FINALIZER, claim, |event| async {
        match event {
            Finalizer::Apply(claim) => apply(claim, &ctx).await,
            Finalizer::Cleanup(claim) => cleanup(claim, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    if deleting && result.is_ok() {
        ctx.finalized.insert(&uid, ());
        ctx.status_writes.remove(&uid);
    }
    ctx.metrics
        .reconciled("claim", result.is_ok(), started.elapsed());
    result
}

pub fn error_policy(_claim: Arc<DatabaseClaim>, error: &Error, _ctx: Arc<Context>) -> Action {
    match error {
        Error::WaitingForDeletion(_) => Action::requeue(Duration::from_secs(2)),
        Error::Finalizer(inner)
            if matches!(
                **inner,
                kube::runtime::finalizer::Error::CleanupFailed(Error::WaitingForDeletion(_))
            ) =>
        {
            Action::requeue(Duration::from_secs(2))
        }
        _ => {
            warn!(%error, "claim reconcile failed");
            Action::requeue(Duration::from_secs(10))
        }
    }
}

async fn apply(claim: Arc<DatabaseClaim>, ctx: &Context) -> Result<Action, Error> {
    // No wait for the composition cache here: `dbclaim run` starts no claim
    // reconcile before it has synced (the gate in controller/mod.rs).
    let mut progress = Progress::default();
    let outcome = provision(&claim, ctx, &mut progress).await;
    let (synced, requeue) = match outcome {
        Ok(()) if !progress.provider_errors.is_empty() => {
            let message = progress.provider_errors.join("; ");
            (
                Cond::synced(false, SyncedReason::ProviderError, message),
                Some(Duration::from_secs(30)),
            )
        }
        Ok(()) => (Cond::synced(true, SyncedReason::ReconcileSuccess, ""), None),
        Err(StopOr::Stop(stop)) => {
            let requeue = match stop.reason {
                SyncedReason::ProviderError | SyncedReason::ReconcileError => {
                    Duration::from_secs(30)
                }
                _ => Duration::from_secs(300),
            };
            (
                Cond::synced(false, stop.reason, stop.message),
                Some(requeue),
            )
        }
        Err(StopOr::Error(e)) => return Err(e),
    };
    let ready = ready_condition(&claim, &synced, &progress);
    let is_ready = ready.status;
    debug!(ready = is_ready, synced = synced.status, reason = synced.reason, message = %ready.message, "claim reconciled");
    write_status(&claim, ctx, progress, synced, ready).await?;
    Ok(match requeue {
        Some(after) => Action::requeue(after),
        // Watches on composed objects wake the claim; the poll is a safety net.
        None if is_ready => Action::requeue(Duration::from_secs(600)),
        None => Action::requeue(Duration::from_secs(30)),
    })
}

enum StopOr {
    Stop(Stop),
    Error(Error),
}

impl From<Stop> for StopOr {
    fn from(s: Stop) -> Self {
        StopOr::Stop(s)
    }
}

impl From<kube::Error> for StopOr {
    fn from(e: kube::Error) -> Self {
        StopOr::Error(Error::Kube(e))
    }
}

async fn provision(
    claim: &DatabaseClaim,
    ctx: &Context,
    progress: &mut Progress,
) -> Result<(), StopOr> {
    let ns = claim.namespace().unwrap_or_default();
    let name = claim.name_any();

    // Select.
    let compositions: Vec<Composition> = ctx
        .compositions
        .state()
        .iter()
        .map(|c| (**c).clone())
        .collect();
    let policies = ctx.policies.state();
    let policy = crate::policy::evaluate(claim, &policies, &namespace_labels(ctx, &ns).await?);
    let composition =
        crate::selection::select(claim, &compositions, policy.default_composition.as_deref())
            .map_err(|e| {
                let reason = match e {
                    crate::selection::SelectError::EngineNotServed { .. }
                    | crate::selection::SelectError::BadSelector(_) => {
                        SyncedReason::CompositionInvalid
                    }
                    _ => SyncedReason::CompositionNotFound,
                };
                Stop::new(reason, e.to_string())
            })?;
    let comp_name = composition.name_any();
    // CompositionSelected is published with the status that records it.
    progress.composition = Some(comp_name.clone());
    if !policies.is_empty() {
        // The claim cache, not a LIST per reconcile: a burst of N claims in
        // one namespace would otherwise read N² claims.
        let claims = ctx.claims.state();
        let in_namespace = claims
            .iter()
            .filter(|c| c.namespace().as_deref() == Some(ns.as_str()))
            .map(|c| c.as_ref());
        crate::policy::check(&policy, claim, composition, in_namespace)
            .map_err(|v| Stop::new(SyncedReason::PolicyViolation, v))?;
    }

    debug!(composition = %comp_name, "composition selected");
    // Observe what exists.
    let mut kinds = BTreeMap::new();
    let mut observed = BTreeMap::new();
    for t in &composition.spec.resources {
        let (api_version, kind_name) = base_kind(&t.base).ok_or_else(|| {
            Stop::new(
                SyncedReason::CompositionInvalid,
                format!(
                    "composition {comp_name}, resource {:?}: base needs apiVersion and kind",
                    t.name
                ),
            )
        })?;
        let kind = resolve(ctx, &comp_name, &t.name, &api_version, &kind_name).await?;
        let object_name =
            naming::object_name(&ns, &name, &t.name, claim.recorded_resource_name(&t.name));
        let api = dynamic_api(ctx, &kind, &ns);
        let current = api.get_opt(&object_name).await?;
        if let Some(obj) = &current
            && !labels::belongs_to(obj.labels(), &ns, &name)
        {
            return Err(Stop::new(
                    SyncedReason::ReconcileError,
                    format!("{kind_name} {object_name} already exists and does not belong to this claim: dbclaim will not take it over; remove it or rename the claim"),
                )
                .into());
        }
        let connection = match &current {
            Some(obj) => managed_connection(ctx, obj, &ns).await?,
            None => BTreeMap::new(),
        };
        let object = current.map(|o| serde_json::to_value(o).unwrap_or(Value::Null));
        observed.insert(t.name.clone(), Observed { object, connection });
        kinds.insert(t.name.clone(), kind);
    }

    let render = |observed: &BTreeMap<String, Observed>| {
        // The request borrows a closure that must not live across an await.
        let scope_of = |api_version: &str, kind: &str| {
            kinds
                .values()
                .find(|k| k.resource.api_version == api_version && k.resource.kind == kind)
                .map(|k| k.scope)
                .unwrap_or_else(|| engine::builtin_scope(api_version, kind))
        };
        let request = engine::RenderRequest {
            claim,
            composition_name: &comp_name,
            composition: &composition.spec,
            observed,
            scope: &scope_of,
        };
        engine::render(&request).map_err(|e| {
            Stop::new(
                SyncedReason::CompositionInvalid,
                format!("composition {comp_name}: {e}"),
            )
        })
    };
    debug!("observed composed objects");
    let mut rendered = render(&observed)?;

    // Apply what changed.
    let mut applied = false;
    for r in &rendered.resources {
        let Some(kind) = kinds.get(&r.name) else {
            continue;
        };
        let api = dynamic_api(ctx, kind, &ns);
        let current = observed.get(&r.name).and_then(|o| o.object.as_ref());
        let object_name = r
            .object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let desired = with_applied_hash(r.object.clone());
        if !needs_apply(&desired, current) {
            continue;
        }
        let created = current.is_none();
        let result = api
            .patch(
                &object_name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&desired),
            )
            .await?;
        applied = true;
        if let Some(o) = observed.get_mut(&r.name) {
            o.object = serde_json::to_value(result).ok();
        }
        if created {
            info!(resource = %r.name, object = %object_name, "composed object created");
            progress.events.push(normal(
                "ResourceCreated",
                "CreateResource",
                format!("created {} {object_name}", kind.resource.kind),
            ));
        }
    }
    // What the API server answered is the freshest observation: readiness
    // and connection details need not wait for the next pass.
    if applied {
        rendered = render(&observed)?;
    }
    progress.resources = rendered
        .resources
        .iter()
        .filter_map(|r| {
            let kind = kinds.get(&r.name)?;
            Some(ResourceStatus {
                name: r.name.clone(),
                api_version: kind.resource.api_version.clone(),
                kind: kind.resource.kind.clone(),
                resource_name: r
                    .object
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                ready: r.readiness.ready,
            })
        })
        .collect();
    progress.not_ready = rendered
        .resources
        .iter()
        .filter(|r| !r.readiness.ready)
        .map(|r| r.readiness.message.clone())
        .collect();
    progress.provider_errors = observed
        .values()
        .filter_map(|o| o.object.as_ref())
        .filter_map(provider_error)
        .collect();
    progress.outputs = rendered.outputs.clone();

    remove_stale(claim, ctx, &progress.resources).await?;

    debug!(applied, "composed objects applied");
    // The connection Secret, in the claim's namespace only.
    let secret_name = claim.spec.connection_secret_name(&name);
    let assembled = engine::connection_secret(claim.spec.engine, &comp_name, &rendered.connection);
    if assembled.missing.is_empty() {
        if write_secret(claim, ctx, &secret_name, &assembled).await? {
            progress.events.push(normal(
                "ConnectionSecretWritten",
                "WriteSecret",
                format!("connection secret {secret_name} written"),
            ));
        }
        progress.secret = Some(secret_name);
    } else {
        progress.not_ready.push(format!(
            "connection secret {secret_name} lacks {}",
            assembled.missing.join(", ")
        ));
        if secret_exists(ctx, &ns, &secret_name, claim).await? {
            progress.secret = Some(secret_name);
        }
    }
    Ok(())
}

fn previous_composition(claim: &DatabaseClaim) -> Option<&str> {
    claim
        .status
        .as_ref()?
        .composition
        .as_ref()
        .map(|r| r.name.as_str())
}

fn base_kind(base: &Value) -> Option<(String, String)> {
    let api_version = base.get("apiVersion")?.as_str()?.to_string();
    let kind = base.get("kind")?.as_str()?.to_string();
    Some((api_version, kind))
}

async fn resolve(
    ctx: &Context,
    comp: &str,
    resource: &str,
    api_version: &str,
    kind: &str,
) -> Result<Kind, StopOr> {
    match ctx.kinds.resolve(api_version, kind).await {
        Ok(k) => Ok(k),
        Err(kube::Error::Api(e)) if e.code == 404 => Err(Stop::new(
            SyncedReason::CompositionInvalid,
            format!("composition {comp}, resource {resource:?}: kind {kind} ({api_version}) is not served by the API server; install its CRD or fix the base"),
        )
        .into()),
        Err(kube::Error::Discovery(e)) => Err(Stop::new(
            SyncedReason::CompositionInvalid,
            format!("composition {comp}, resource {resource:?}: kind {kind} ({api_version}) is not served by the API server ({e}); install its CRD or fix the base"),
        )
        .into()),
        Err(e) => Err(e.into()),
    }
}

fn dynamic_api(ctx: &Context, kind: &Kind, ns: &str) -> Api<DynamicObject> {
    match kind.scope {
        Scope::Namespaced => Api::namespaced_with(ctx.client.clone(), ns, &kind.resource),
        Scope::Cluster => Api::all_with(ctx.client.clone(), &kind.resource),
    }
}

/// The data of the Secret a composed object writes its connection details
/// to (`spec.writeConnectionSecretToRef`, defaulting to the object's name in
/// the operator's namespace). Only the operator's and the claim's own
/// namespaces are read, so a composition cannot pull another tenant's Secret.
async fn managed_connection(
    ctx: &Context,
    obj: &DynamicObject,
    claim_ns: &str,
) -> Result<BTreeMap<String, Vec<u8>>, kube::Error> {
    let reference = obj.data.pointer("/spec/writeConnectionSecretToRef");
    let is_managed = obj
        .types
        .as_ref()
        .is_some_and(|t| t.api_version.contains(".dbclaim.io/"));
    if reference.is_none() && !is_managed {
        return Ok(BTreeMap::new());
    }
    let name = reference
        .and_then(|r| r.get("name"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| obj.name_any());
    let ns = reference
        .and_then(|r| r.get("namespace"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| ctx.operator_namespace.clone());
    if ns != ctx.operator_namespace && ns != claim_ns {
        return Ok(BTreeMap::new());
    }
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let secret = secrets.get_opt(&name).await?;
    Ok(secret
        .and_then(|s| s.data)
        .map(|d| d.into_iter().map(|(k, v)| (k, v.0)).collect())
        .unwrap_or_default())
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

/// Whether the desired object must be sent: it is new, it changed since
/// the last apply, or someone else changed a field dbclaim sets.
fn needs_apply(desired: &Value, current: Option<&Value>) -> bool {
    match current {
        None => true,
        Some(current) => !is_subset(desired, current),
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

/// Deletes composed objects the composition no longer declares.
async fn remove_stale(
    claim: &DatabaseClaim,
    ctx: &Context,
    current: &[ResourceStatus],
) -> Result<(), StopOr> {
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
        let api = dynamic_api(ctx, &kind, &ns);
        if let Some(obj) = api.get_opt(&old.resource_name).await?
            && labels::belongs_to(obj.labels(), &ns, &claim.name_any())
            && obj.metadata.deletion_timestamp.is_none()
        {
            api.delete(&old.resource_name, &DeleteParams::background())
                .await?;
            info!(object = %old.resource_name, "removed composed object the composition no longer declares");
        }
    }
    Ok(())
}

fn owner_reference(claim: &DatabaseClaim) -> Option<OwnerReference> {
    claim.controller_owner_ref(&())
}

/// Writes the claim's connection Secret when its content differs; true when
/// it wrote. A Secret of that name that this claim does not own is left alone.
async fn write_secret(
    claim: &DatabaseClaim,
    ctx: &Context,
    name: &str,
    assembled: &engine::ConnectionSecret,
) -> Result<bool, StopOr> {
    let ns = claim.namespace().unwrap_or_default();
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let existing = api.get_opt(name).await?;
    let data: BTreeMap<String, ByteString> = assembled
        .data
        .iter()
        .map(|(k, v)| (k.clone(), ByteString(v.clone())))
        .collect();
    let labels = labels::for_claim(&ns, &claim.name_any());
    if let Some(s) = &existing {
        if !owned_by(s, claim) {
            return Err(Stop::new(
                SyncedReason::ReconcileError,
                format!("Secret {name} already exists and is not owned by this claim: dbclaim will not overwrite it; delete it or set spec.writeConnectionSecretToRef to another name"),
            )
            .into());
        }
        let same_data = s.data.as_ref() == Some(&data);
        let same_type = s.type_.as_deref() == Some(assembled.secret_type);
        let same_labels = labels.iter().all(|(k, v)| s.labels().get(k) == Some(v));
        if same_data && same_type && same_labels {
            return Ok(false);
        }
    }
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(ns.clone()),
            labels: Some(labels),
            owner_references: owner_reference(claim).map(|o| vec![o]),
            ..Default::default()
        },
        type_: Some(assembled.secret_type.to_string()),
        data: Some(data),
        ..Default::default()
    };
    let mut value = serde_json::to_value(&secret)
        .map_err(|e| Stop::new(SyncedReason::ReconcileError, e.to_string()))?;
    value["apiVersion"] = json!("v1");
    value["kind"] = json!("Secret");
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&value),
    )
    .await?;
    Ok(true)
}

async fn secret_exists(
    ctx: &Context,
    ns: &str,
    name: &str,
    claim: &DatabaseClaim,
) -> Result<bool, kube::Error> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    Ok(api
        .get_opt(name)
        .await?
        .is_some_and(|s| owned_by(&s, claim)))
}

fn owned_by(secret: &Secret, claim: &DatabaseClaim) -> bool {
    let uid = claim.uid();
    secret
        .owner_references()
        .iter()
        .any(|o| Some(&o.uid) == uid.as_ref() && o.kind == "DatabaseClaim")
}

/// The labels policies select namespaces by, from the namespace cache. A
/// namespace the cache has not seen yet (created just before the claim,
/// its event still in flight) is read from the API server: guardrails must
/// not miss a claim because two watches raced.
async fn namespace_labels(
    ctx: &Context,
    ns: &str,
) -> Result<BTreeMap<String, String>, kube::Error> {
    if ctx.policies.state().is_empty() {
        return Ok(BTreeMap::new());
    }
    if let Some(n) = ctx.namespaces.get(&ObjectRef::new(ns)) {
        return Ok(n.labels().clone());
    }
    let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(ctx.client.clone());
    Ok(api
        .get_metadata_opt(ns)
        .await?
        .map(|n| n.labels().clone())
        .unwrap_or_default())
}

fn ready_condition(claim: &DatabaseClaim, synced: &Cond, progress: &Progress) -> Cond {
    let was_ready = claim
        .status
        .as_ref()
        .is_some_and(|s| conditions::is_true(&s.conditions, ConditionType::Ready));
    if !synced.status
        && synced.reason != SyncedReason::ProviderError.as_str()
        && progress.resources.is_empty()
    {
        // Nothing could be (re)computed: keep what was known about readiness.
        if let Some(c) = claim
            .status
            .as_ref()
            .and_then(|s| conditions::find(&s.conditions, ConditionType::Ready))
        {
            let reason = match c.reason.as_str() {
                "Available" => ReadyReason::Available,
                "Unavailable" => ReadyReason::Unavailable,
                _ => ReadyReason::Creating,
            };
            return Cond::ready(c.status == "True", reason, c.message.clone());
        }
        return Cond::ready(
            false,
            ReadyReason::Creating,
            format!("not provisioned: {}", synced.message),
        );
    }
    if progress.not_ready.is_empty() {
        return Cond::ready(true, ReadyReason::Available, "");
    }
    let reason = if was_ready {
        ReadyReason::Unavailable
    } else {
        ReadyReason::Creating
    };
    Cond::ready(
        false,
        reason,
        format!("waiting for: {}", progress.not_ready.join("; ")),
    )
}

async fn write_status(
    claim: &DatabaseClaim,
    ctx: &Context,
    progress: Progress,
    synced: Cond,
    ready: Cond,
) -> Result<(), Error> {
    let old = claim.status.clone().unwrap_or_default();
    let mut new = old.clone();
    let generation = claim.metadata.generation;
    let now = Timestamp::now();
    conditions::set(&mut new.conditions, &synced, generation, now);
    conditions::set(&mut new.conditions, &ready, generation, now);
    for c in conditions::kstatus(&synced, &ready) {
        conditions::set(&mut new.conditions, &c, generation, now);
    }
    new.observed_generation = generation;
    if !progress.resources.is_empty() || synced.status {
        new.resources = progress.resources;
        new.outputs = progress.outputs;
    }
    if let Some(c) = &progress.composition {
        new.composition = Some(NameRef { name: c.clone() });
    }
    if let Some(s) = &progress.secret {
        new.connection_secret_ref = Some(NameRef { name: s.clone() });
        new.binding = Some(NameRef { name: s.clone() });
    }
    let mut events = progress.events;
    // A pass can start before the watch brings the claim's last status
    // write into the cache. When the cache still shows the very status that
    // write replaced, and this pass would write the same again, the status
    // is current already: writing it, or announcing its transitions, again
    // would be a duplicate (a flap seen from outside).
    let uid = claim.uid().unwrap_or_default();
    let (old_key, new_key) = (status_key(&old), status_key(&new));
    let stale = ctx.status_writes.get(&uid) == Some((old_key, new_key)) && old_key != new_key;
    if !stale {
        if let Some(c) = &new.composition
            && new.composition != old.composition
        {
            events.insert(
                0,
                normal(
                    "CompositionSelected",
                    "SelectComposition",
                    format!("composition {} selected", c.name),
                ),
            );
        }
        events.extend(transition_events(&old, &synced, &ready));
    }
    if new != old && !stale {
        let ns = claim.namespace().unwrap_or_default();
        let api: Api<DatabaseClaim> = Api::namespaced(ctx.client.clone(), &ns);
        let patch =
            json!({"apiVersion": "dbclaim.io/v1alpha1", "kind": "DatabaseClaim", "status": new});
        api.patch_status(
            &claim.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
        ctx.status_writes.insert(&uid, (old_key, new_key));
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
fn status_key(status: &DatabaseClaimStatus) -> u64 {
    let mut value = serde_json::to_value(status).unwrap_or(Value::Null);
    if let Some(conditions) = value.get_mut("conditions").and_then(Value::as_array_mut) {
        for c in conditions.iter_mut().filter_map(Value::as_object_mut) {
            c.remove("lastTransitionTime");
        }
    }
    let digest = sha2::Sha256::digest(value.to_string().as_bytes());
    u64::from_be_bytes(digest[..8].try_into().unwrap_or_default())
}

/// Events for condition changes a person wants to see: errors when they
/// start or change, and readiness when it flips.
fn transition_events(old: &DatabaseClaimStatus, synced: &Cond, ready: &Cond) -> Vec<Event> {
    let mut out = Vec::new();
    let old_synced = conditions::find(&old.conditions, ConditionType::Synced);
    if !synced.status
        && old_synced.is_none_or(|c| c.reason != synced.reason || c.message != synced.message)
    {
        out.push(Event {
            type_: EventType::Warning,
            reason: synced.reason.to_string(),
            note: Some(events::truncate(&synced.message, 1000)),
            action: "Reconcile".into(),
            secondary: None,
        });
    }
    let was_ready = conditions::is_true(&old.conditions, ConditionType::Ready);
    if ready.status && !was_ready {
        out.push(normal(
            "Ready",
            "Reconcile",
            "the database is ready".to_string(),
        ));
    } else if !ready.status && was_ready && ready.reason != ReadyReason::Deleting.as_str() {
        // A deletion the user asked for is no incident: no warning for it.
        out.push(Event {
            type_: EventType::Warning,
            reason: "NotReady".into(),
            note: Some(events::truncate(&ready.message, 1000)),
            action: "Reconcile".into(),
            secondary: None,
        });
    }
    out
}

fn normal(reason: &str, action: &str, note: String) -> Event {
    Event {
        type_: EventType::Normal,
        reason: reason.into(),
        note: Some(note),
        action: action.into(),
        secondary: None,
    }
}

/// Deletion: with `Delete`, composed objects go first and the finalizer
/// only once they are gone; with `Orphan`, they are released and kept.
async fn cleanup(claim: Arc<DatabaseClaim>, ctx: &Context) -> Result<Action, Error> {
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
    let progress = Progress {
        resources: claim
            .status
            .as_ref()
            .map(|s| s.resources.clone())
            .unwrap_or_default(),
        ..Default::default()
    };
    if let Err(e) = write_status(&claim, ctx, progress, synced, deleting).await {
        warn!(error = %e, "could not mark the claim as deleting");
    }
    let mut remaining = 0;
    for (kind, object_name) in composed_objects(&claim, ctx).await {
        let api = dynamic_api(ctx, &kind, &ns);
        let Some(obj) = api.get_opt(&object_name).await? else {
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
                        .await?;
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
                let release = json!({"metadata": {
                    "ownerReferences": null,
                    "labels": {labels::CLAIM_NAME: null, labels::CLAIM_NAMESPACE: null, labels::COMPOSITION: null, labels::RESOURCE: null},
                }});
                api.patch(
                    &object_name,
                    &PatchParams::default(),
                    &Patch::Merge(&release),
                )
                .await?;
                info!(object = %object_name, "orphaned composed object");
            }
        }
    }
    if remaining > 0 {
        return Err(Error::WaitingForDeletion(remaining));
    }
    Ok(Action::await_change())
}

/// Every object the claim may have composed: those in its status, and those
/// its composition would name (a crash before the status write must not
/// leak an object).
async fn composed_objects(claim: &DatabaseClaim, ctx: &Context) -> Vec<(Kind, String)> {
    let ns = claim.namespace().unwrap_or_default();
    let mut wanted: Vec<(String, String, String)> = claim
        .status
        .as_ref()
        .map(|s| {
            s.resources
                .iter()
                .map(|r| {
                    (
                        r.api_version.clone(),
                        r.kind.clone(),
                        r.resource_name.clone(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    if let Some(comp) =
        previous_composition(claim).and_then(|n| ctx.compositions.get(&ObjectRef::new(n)))
    {
        for t in &comp.spec.resources {
            if let Some((api_version, kind)) = base_kind(&t.base) {
                wanted.push((
                    api_version,
                    kind,
                    naming::composed_name(&ns, &claim.name_any(), &t.name),
                ));
            }
        }
    }
    wanted.sort();
    wanted.dedup();
    let mut out = Vec::new();
    for (api_version, kind, object_name) in wanted {
        if let Ok(k) = ctx.kinds.resolve(&api_version, &kind).await {
            out.push((k, object_name));
        }
    }
    out
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
    fn status_key_ignores_transition_times_only() {
        let at = |t: &str, status: &str| -> DatabaseClaimStatus {
            serde_json::from_value(json!({"conditions": [{"type": "Ready", "status": status,
                "reason": "Available", "message": "", "lastTransitionTime": t}]}))
            .unwrap_or_default()
        };
        let a = at("2026-01-01T00:00:00Z", "True");
        let b = at("2026-01-01T00:00:09Z", "True");
        let c = at("2026-01-01T00:00:00Z", "False");
        assert_eq!(status_key(&a), status_key(&b));
        assert_ne!(status_key(&a), status_key(&c));
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
    }
}
