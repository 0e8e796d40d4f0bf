//! The `RDSInstance` controller: observe by the external name, create,
//! correct drift, delete; the connection Secret written before any call that
//! sends a password, so a crash never loses one.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{self, finalizer};
use kube::{Api, Resource, ResourceExt};
use tracing::Instrument;

use super::config::{self, ResolveError, secret_value};
use super::diff::{self, Modification, OWNER_TAG, Observed};
use super::errors::{self, ApiFailure, Class, Retry};
use super::rds::{CreateInput, Rds};
use super::status::{self, POLL_TRANSITIONAL, Phase};
use super::{
    Context, EXTERNAL_NAME, FINALIZER, GENERATED_NAME, INSTANCE_ANNOTATION, INSTANCE_LABEL,
    MANAGER, PASSWORD_PENDING, identifier, password, validate,
};
use crate::api::aws::{Endpoint, RDSInstance, RDSInstanceObservation, RDSInstanceStatus};
use crate::api::common::DeletionPolicy;
use crate::conditions::{self, Cond, ConditionType, ReadyReason, SyncedReason};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ResolveError),
    #[error("{0}")]
    Invalid(String),
    #[error("{message}")]
    Api {
        failure: ApiFailure,
        message: String,
    },
    #[error("{0}")]
    Conflict(String),
    #[error("cannot {action} Secret \"{namespace}/{name}\": {source}")]
    Secret {
        action: &'static str,
        namespace: String,
        name: String,
        source: kube::Error,
    },
    #[error(
        "Secret \"{namespace}/{name}\" belongs to RDSInstance \"{other}\": set spec.writeConnectionSecretToRef to another Secret"
    )]
    SecretTaken {
        namespace: String,
        name: String,
        other: String,
    },
    #[error("cannot set the annotation {EXTERNAL_NAME}: {0}")]
    Annotate(#[source] kube::Error),
    #[error("cannot write the status: {0}")]
    Status(#[source] kube::Error),
    /// Deletion in progress: not a failure, the finalizer waits.
    #[error("{0}")]
    Waiting(String),
    #[error("{0}")]
    DeletionProtected(String),
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<finalizer::Error<Error>>),
}

impl Error {
    fn api(failure: ApiFailure, rds: &Rds) -> Error {
        let message = errors::describe(&failure, rds.endpoint());
        Error::Api { failure, message }
    }

    pub fn retry(&self) -> Retry {
        match self {
            Error::Config(ResolveError::Kube { .. }) => Retry::Backoff,
            Error::Config(_)
            | Error::Invalid(_)
            | Error::Conflict(_)
            | Error::SecretTaken { .. }
            | Error::DeletionProtected(_) => Retry::Slow,
            Error::Api { failure, .. } => errors::retry(errors::classify(failure)),
            Error::Waiting(_) => Retry::Wait,
            Error::Secret { .. } | Error::Annotate(_) | Error::Status(_) | Error::Finalizer(_) => {
                Retry::Backoff
            }
        }
    }

    /// Expected waits, logged quietly.
    pub fn quiet(&self) -> bool {
        matches!(self, Error::Waiting(_))
    }

    /// The Synced reason this error reports.
    pub fn reason(&self) -> SyncedReason {
        match self {
            Error::Config(_) | Error::Api { .. } => SyncedReason::ProviderError,
            _ => SyncedReason::ReconcileError,
        }
    }
}

pub fn error_policy(obj: Arc<RDSInstance>, error: &Error, ctx: Arc<Context>) -> Action {
    match error.retry() {
        Retry::Backoff => Action::requeue(ctx.backoff.next(&backoff_key(&obj))),
        Retry::Wait => Action::requeue(POLL_TRANSITIONAL),
        Retry::Slow => Action::requeue(errors::SLOW_RETRY),
    }
}

fn backoff_key(obj: &RDSInstance) -> String {
    format!("RDSInstance/{}", obj.name_any())
}

pub async fn reconcile(obj: Arc<RDSInstance>, ctx: Arc<Context>) -> Result<Action, Error> {
    let name = obj.name_any();
    let started = Instant::now();
    let external = obj
        .annotations()
        .get(EXTERNAL_NAME)
        .cloned()
        .unwrap_or_default();
    let span = tracing::info_span!("reconcile", kind = "RDSInstance", name = %name, identifier = %external);
    async move {
        let key = backoff_key(&obj);
        let api: Api<RDSInstance> = Api::all(ctx.client.clone());
        let result = finalizer(&api, FINALIZER, obj, |event| async {
            match event {
                finalizer::Event::Apply(o) => apply(&o, &ctx).await,
                finalizer::Event::Cleanup(o) => cleanup(&o, &ctx).await,
            }
        })
        .await;
        let result = match result {
            Ok(action) => {
                ctx.backoff.reset(&key);
                Ok(action)
            }
            Err(finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e)) => Err(e),
            Err(e) => Err(Error::Finalizer(Box::new(e))),
        };
        let ok = match &result {
            Ok(_) => true,
            Err(e) => e.quiet(),
        };
        ctx.metrics.reconciled("rdsinstance", ok, started.elapsed());
        result
    }
    .instrument(span)
    .await
}

/// What a successful sync decided.
struct Synced {
    at_provider: RDSInstanceObservation,
    conds: [Cond; 2],
    requeue: Duration,
}

async fn apply(obj: &RDSInstance, ctx: &Context) -> Result<Action, Error> {
    let old = obj.status.clone().unwrap_or_default();
    let generation = obj.meta().generation;
    match sync(obj, ctx, &old).await {
        Ok(s) => {
            let new = next_status(
                &old,
                generation,
                Some(s.at_provider),
                &s.conds,
                Timestamp::now(),
            );
            write_status(obj, ctx, &old, &new).await?;
            announce_transitions(obj, ctx, &old, &new).await;
            Ok(Action::requeue(s.requeue))
        }
        Err(e) => {
            let conds = failure_conditions(&old, &e);
            let new = next_status(&old, generation, None, &conds, Timestamp::now());
            if let Err(status_err) = write_status(obj, ctx, &old, &new).await {
                tracing::warn!(error = %status_err, "cannot report the failure in status");
            }
            if synced_transitioned(&old, &new) {
                ctx.event(obj, EventType::Warning, e.reason().as_str(), e.to_string())
                    .await;
            }
            Err(e)
        }
    }
}

/// validate → external name → ProviderConfig → describe → create or correct.
async fn sync(obj: &RDSInstance, ctx: &Context, old: &RDSInstanceStatus) -> Result<Synced, Error> {
    let spec = &obj.spec.for_provider;
    let problems = validate::problems(spec);
    if !problems.is_empty() {
        return Err(Error::Invalid(format!(
            "the spec cannot be provisioned: {}",
            problems.join("; ")
        )));
    }
    let (id, generated) = ensure_external_name(obj, ctx).await?;
    let rds = config::client(
        ctx,
        &obj.spec.provider_config_ref.name,
        spec.region.as_deref(),
    )
    .await?;
    match rds.describe(&id).await.map_err(|f| Error::api(f, &rds))? {
        None => create(obj, ctx, &rds, &id, old).await,
        Some(o) => correct(obj, ctx, &rds, &id, generated.as_deref(), o, old).await,
    }
}

/// The identifier from the annotation, and the one dbclaim derived (when
/// it did: the annotation on `obj` may predate this reconcile's patch); the
/// identifier is derived from the name and persisted first when missing, so
/// it is on the object before any create.
async fn ensure_external_name(
    obj: &RDSInstance,
    ctx: &Context,
) -> Result<(String, Option<String>), Error> {
    if let Some(id) = obj.annotations().get(EXTERNAL_NAME) {
        let generated = obj.annotations().get(GENERATED_NAME).cloned();
        return match identifier::problem(id) {
            Some(why) => Err(Error::Invalid(format!(
                "annotation {EXTERNAL_NAME}: {why}; RDS identifiers have 1 to 63 letters, digits and single hyphens, a letter first"
            ))),
            None => Ok((id.clone(), generated)),
        };
    }
    let id = identifier::derive(&obj.name_any());
    let patch = serde_json::json!({
        "metadata": {"annotations": {EXTERNAL_NAME: id, GENERATED_NAME: id}}
    });
    let api: Api<RDSInstance> = Api::all(ctx.client.clone());
    let params = PatchParams {
        field_manager: Some(MANAGER.to_string()),
        ..Default::default()
    };
    api.patch(&obj.name_any(), &params, &Patch::Merge(&patch))
        .await
        .map_err(Error::Annotate)?;
    tracing::info!(identifier = %id, "external name set");
    Ok((id.clone(), Some(id)))
}

/// Who an existing instance belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ownership {
    /// Tagged with this object's name: created (or adopted) by it.
    Ours,
    /// Untagged, and named by a person through the annotation.
    Adopt,
    /// Someone else's: the message says what to do.
    Conflict(String),
}

pub fn ownership(
    object: &str,
    id: &str,
    generated: Option<&str>,
    owner_tag: Option<&str>,
) -> Ownership {
    match owner_tag {
        Some(o) if o == object => Ownership::Ours,
        Some(other) => Ownership::Conflict(format!(
            "DB instance \"{id}\" is managed by RDSInstance \"{other}\" (tag {OWNER_TAG}): give this object another identifier with the annotation {EXTERNAL_NAME}"
        )),
        None if generated.is_some_and(|g| g.eq_ignore_ascii_case(id)) => {
            Ownership::Conflict(format!(
                "a DB instance named \"{id}\" already exists and dbclaim did not create it: to adopt it, remove the annotation {GENERATED_NAME} (keep {EXTERNAL_NAME}: {id}); otherwise set {EXTERNAL_NAME} to another identifier"
            ))
        }
        None => Ownership::Adopt,
    }
}

fn was_available(old: &RDSInstanceStatus) -> bool {
    conditions::find(&old.conditions, ConditionType::Ready).is_some_and(|c| {
        c.reason == ReadyReason::Available.as_str() || c.reason == ReadyReason::Unavailable.as_str()
    })
}

async fn create(
    obj: &RDSInstance,
    ctx: &Context,
    rds: &Rds,
    id: &str,
    old: &RDSInstanceStatus,
) -> Result<Synced, Error> {
    let spec = &obj.spec.for_provider;
    let target = secret_target(obj, &ctx.config.operator_namespace);
    let existing = read_secret(obj, ctx, &target).await?;
    let password = existing
        .as_ref()
        .and_then(|s| secret_value(s, "password"))
        .unwrap_or_else(password::generate);
    if let Some(why) = password::problem(&spec.engine, &password) {
        return Err(Error::Invalid(format!(
            "{why}: delete the key password from Secret {}/{} to have dbclaim generate one",
            target.0, target.1
        )));
    }
    // The password is stored before it is sent: a crash after the create
    // call finds it here.
    write_secret(obj, ctx, &target, existing.as_ref(), &password, None, false).await?;

    let seen_before = old
        .at_provider
        .as_ref()
        .and_then(|a| a.db_instance_identifier.as_deref())
        .is_some_and(|seen| seen.eq_ignore_ascii_case(id));
    if seen_before {
        ctx.event(
            obj,
            EventType::Warning,
            "InstanceMissing",
            format!("DB instance {id} no longer exists in AWS; creating it again"),
        )
        .await;
    }
    let tags = diff::desired_tags(spec, &obj.name_any());
    let created = rds
        .create(CreateInput {
            identifier: id,
            spec,
            password: &password,
            tags: &tags,
        })
        .await
        .map_err(|f| {
            if errors::classify(&f) == Class::AlreadyExists {
                let message = format!(
                    "CreateDBInstance: a DB instance named \"{id}\" already exists although DescribeDBInstances did not find it; looking again"
                );
                Error::Api { failure: f, message }
            } else {
                Error::api(f, rds)
            }
        })?;
    tracing::info!(identifier = %id, status = %created.status, "DB instance created");
    ctx.event(
        obj,
        EventType::Normal,
        "CreatedInstance",
        format!(
            "created DB instance {id}: {} {}, {}, {} GiB",
            spec.engine,
            spec.engine_version
                .as_deref()
                .unwrap_or("(default version)"),
            spec.db_instance_class,
            spec.allocated_storage
        ),
    )
    .await;
    let assessment = status::assess(&created.status, false);
    if created.address.is_some() {
        let existing = read_secret(obj, ctx, &target).await?;
        write_secret(
            obj,
            ctx,
            &target,
            existing.as_ref(),
            &password,
            Some(&created),
            false,
        )
        .await?;
    }
    Ok(Synced {
        at_provider: observation(&created),
        conds: [
            Cond::ready(
                assessment.ready,
                if assessment.ready {
                    ReadyReason::Available
                } else {
                    ReadyReason::Creating
                },
                assessment.message,
            ),
            Cond::synced(true, SyncedReason::ReconcileSuccess, ""),
        ],
        requeue: POLL_TRANSITIONAL,
    })
}

/// An existing instance: ownership, password, drift, tags, Secret.
async fn correct(
    obj: &RDSInstance,
    ctx: &Context,
    rds: &Rds,
    id: &str,
    generated: Option<&str>,
    observed: Observed,
    old: &RDSInstanceStatus,
) -> Result<Synced, Error> {
    let spec = &obj.spec.for_provider;
    let name = obj.name_any();
    let arn = observed.arn.clone();
    let current_tags = match &arn {
        Some(a) => rds.list_tags(a).await.map_err(|f| Error::api(f, rds))?,
        None => BTreeMap::new(),
    };
    match ownership(
        &name,
        id,
        generated,
        current_tags.get(OWNER_TAG).map(String::as_str),
    ) {
        Ownership::Conflict(m) => return Err(Error::Conflict(m)),
        Ownership::Adopt => {
            ctx.event(
                obj,
                EventType::Normal,
                "AdoptedInstance",
                format!(
                    "adopting the existing DB instance {id} named by annotation {EXTERNAL_NAME}"
                ),
            )
            .await;
        }
        Ownership::Ours => {}
    }

    let assessment = status::assess(&observed.status, was_available(old));
    if assessment.phase == Phase::Deleting {
        // Deleted outside dbclaim; it is created again once gone.
        return Ok(Synced {
            at_provider: observation(&observed),
            conds: [
                Cond::ready(
                    false,
                    ReadyReason::Deleting,
                    format!("{} outside dbclaim", assessment.message),
                ),
                Cond::synced(true, SyncedReason::ReconcileSuccess, ""),
            ],
            requeue: assessment.poll,
        });
    }

    // The password: kept from the Secret; a Secret without one (lost, or an
    // adopted instance) gets a new one, stored before the reset is sent.
    let target = secret_target(obj, &ctx.config.operator_namespace);
    let existing = read_secret(obj, ctx, &target).await?;
    let stored = existing.as_ref().and_then(|s| secret_value(s, "password"));
    let mut reset_due = stored.is_none()
        || existing.as_ref().is_some_and(|s| {
            s.annotations()
                .get(PASSWORD_PENDING)
                .is_some_and(|v| v == "true")
        });
    let password = stored.unwrap_or_else(password::generate);
    if reset_due {
        if let Some(why) = password::problem(&spec.engine, &password) {
            return Err(Error::Invalid(format!(
                "{why}: delete the key password from Secret {}/{} to have dbclaim generate one",
                target.0, target.1
            )));
        }
        write_secret(
            obj,
            ctx,
            &target,
            existing.as_ref(),
            &password,
            Some(&observed),
            true,
        )
        .await?;
    }

    let drift = diff::diff(spec, &observed);
    let mut latest = observed.clone();
    let mut modified = false;
    let mut waiting: Option<String> = None;
    let plan: Option<Modification> = if assessment.can_modify {
        (!drift.modify.is_empty() || reset_due).then(|| drift.modify.clone())
    } else if assessment.can_grow_storage && drift.modify.allocated_storage.is_some() {
        Some(drift.modify.storage_only())
    } else {
        None
    };
    if plan.is_none() && (!drift.modify.is_empty() || reset_due) {
        let mut what = drift.modify.describe();
        if reset_due {
            if !what.is_empty() {
                what.push_str(", ");
            }
            what.push_str("master password reset");
        }
        waiting = Some(format!(
            "waiting to apply {what} until the instance is available"
        ));
    }
    if let Some(m) = plan {
        let send_password = reset_due && assessment.can_modify;
        let result = rds
            .modify(id, &m, send_password.then_some(password.as_str()))
            .await;
        match result {
            Ok(after) => {
                modified = true;
                if let Some(after) = after {
                    latest = after;
                }
                let mut what = m.describe();
                if !what.is_empty() {
                    tracing::info!(identifier = %id, changes = %what, "DB instance modified");
                    ctx.event(
                        obj,
                        EventType::Normal,
                        "UpdatedInstance",
                        format!("modified DB instance {id}: {what}"),
                    )
                    .await;
                }
                if send_password {
                    reset_due = false;
                    what = format!(
                        "reset the master password of DB instance {id} to the one in Secret {}/{}",
                        target.0, target.1
                    );
                    ctx.event(obj, EventType::Normal, "PasswordReset", what)
                        .await;
                }
            }
            Err(f) if errors::classify(&f) == Class::InvalidState => {
                waiting = Some(format!(
                    "RDS reports the instance busy ({}); retrying",
                    f.code.as_deref().unwrap_or("InvalidDBInstanceState")
                ));
            }
            Err(f) => return Err(Error::api(f, rds)),
        }
    }

    if let Some(arn) = &arn {
        let changes = diff::tag_changes(&diff::desired_tags(spec, &name), &current_tags);
        if !changes.add.is_empty() {
            rds.add_tags(arn, &changes.add)
                .await
                .map_err(|f| Error::api(f, rds))?;
        }
        if !changes.remove.is_empty() {
            rds.remove_tags(arn, &changes.remove)
                .await
                .map_err(|f| Error::api(f, rds))?;
        }
        if !changes.is_empty() {
            let keys: Vec<&str> = changes
                .add
                .keys()
                .map(String::as_str)
                .chain(changes.remove.iter().map(String::as_str))
                .collect();
            ctx.event(
                obj,
                EventType::Normal,
                "UpdatedTags",
                format!("updated tags of DB instance {id}: {}", keys.join(", ")),
            )
            .await;
        }
    }

    let existing = read_secret(obj, ctx, &target).await?;
    write_secret(
        obj,
        ctx,
        &target,
        existing.as_ref(),
        &password,
        Some(&latest),
        reset_due,
    )
    .await?;

    let mut ready_message = assessment.message.clone();
    if let Some(w) = &waiting {
        ready_message = format!("{ready_message}; {w}");
    }
    let synced = if drift.refused.is_empty() {
        Cond::synced(true, SyncedReason::ReconcileSuccess, "")
    } else {
        Cond::synced(
            false,
            SyncedReason::ReconcileError,
            drift.refused.join("; "),
        )
    };
    let requeue = if modified || waiting.is_some() {
        assessment.poll.min(POLL_TRANSITIONAL)
    } else {
        assessment.poll
    };
    Ok(Synced {
        at_provider: observation(&latest),
        conds: [
            Cond::ready(assessment.ready, assessment.reason, ready_message),
            synced,
        ],
        requeue,
    })
}

/// What goes to `status.atProvider`.
pub fn observation(o: &Observed) -> RDSInstanceObservation {
    RDSInstanceObservation {
        db_instance_identifier: Some(o.identifier.clone()),
        db_instance_status: Some(o.status.clone()),
        endpoint: (o.address.is_some() || o.port.is_some()).then(|| Endpoint {
            address: o.address.clone(),
            port: o.port,
        }),
        arn: o.arn.clone(),
        engine_version: o.engine_version.clone(),
        allocated_storage: o.allocated_storage,
    }
}

/// Where the connection Secret goes: (namespace, name).
pub fn secret_target(obj: &RDSInstance, operator_namespace: &str) -> (String, String) {
    match &obj.spec.write_connection_secret_to_ref {
        Some(r) => (
            r.namespace
                .clone()
                .unwrap_or_else(|| operator_namespace.to_string()),
            r.name.clone(),
        ),
        None => (operator_namespace.to_string(), obj.name_any()),
    }
}

/// Reads the connection Secret; one that another RDSInstance wrote is refused.
async fn read_secret(
    obj: &RDSInstance,
    ctx: &Context,
    (namespace, name): &(String, String),
) -> Result<Option<Secret>, Error> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let existing = api.get_opt(name).await.map_err(|source| Error::Secret {
        action: "read",
        namespace: namespace.clone(),
        name: name.clone(),
        source,
    })?;
    if let Some(other) = existing
        .as_ref()
        .and_then(|s| s.annotations().get(INSTANCE_ANNOTATION))
        && *other != obj.name_any()
    {
        return Err(Error::SecretTaken {
            namespace: namespace.clone(),
            name: name.clone(),
            other: other.clone(),
        });
    }
    Ok(existing)
}

/// The database a client connects to: the spec's, else the engine's default.
pub fn database_name(obj: &RDSInstance) -> String {
    let p = &obj.spec.for_provider;
    match &p.db_name {
        Some(n) => n.clone(),
        None if p.engine == "postgres" => "postgres".to_string(),
        None => String::new(),
    }
}

/// The connection Secret as this controller applies it: username, password,
/// database always; host, port and endpoint once RDS reports them.
pub fn connection_secret(
    obj: &RDSInstance,
    (namespace, name): &(String, String),
    password: &str,
    observed: Option<&Observed>,
    password_pending: bool,
) -> Secret {
    let p = &obj.spec.for_provider;
    let mut data: BTreeMap<String, ByteString> = BTreeMap::new();
    let mut put = |k: &str, v: &str| {
        data.insert(k.to_string(), ByteString(v.as_bytes().to_vec()));
    };
    put("username", &p.master_username);
    put("password", password);
    put("database", &database_name(obj));
    if let Some(o) = observed {
        if let Some(address) = &o.address {
            put("host", address);
            put("endpoint", address);
        }
        if let Some(port) = o.port {
            put("port", &port.to_string());
        }
    }
    let mut labels = BTreeMap::from([
        (
            "app.kubernetes.io/managed-by".to_string(),
            "dbclaim".to_string(),
        ),
        (
            INSTANCE_LABEL.to_string(),
            crate::naming::label_value(&obj.name_any()),
        ),
    ]);
    for key in ["dbclaim.io/claim-name", "dbclaim.io/claim-namespace"] {
        if let Some(v) = obj.labels().get(key) {
            labels.insert(key.to_string(), v.clone());
        }
    }
    let mut annotations = BTreeMap::from([(INSTANCE_ANNOTATION.to_string(), obj.name_any())]);
    if password_pending {
        annotations.insert(PASSWORD_PENDING.to_string(), "true".to_string());
    }
    Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace.clone()),
            labels: Some(labels),
            annotations: Some(annotations),
            ..Default::default()
        },
        data: Some(data),
        type_: Some("Opaque".to_string()),
        ..Default::default()
    }
}

/// Whether `existing` already holds every key, label and annotation of
/// `desired`, and no pending-reset mark that `desired` dropped.
pub fn secret_up_to_date(existing: &Secret, desired: &Secret) -> bool {
    fn contains<V: PartialEq>(
        have: Option<&BTreeMap<String, V>>,
        want: Option<&BTreeMap<String, V>>,
    ) -> bool {
        want.into_iter()
            .flatten()
            .all(|(k, v)| have.and_then(|h| h.get(k)) == Some(v))
    }
    let pending = |s: &Secret| s.annotations().contains_key(PASSWORD_PENDING);
    contains(existing.data.as_ref(), desired.data.as_ref())
        && contains(
            existing.metadata.labels.as_ref(),
            desired.metadata.labels.as_ref(),
        )
        && contains(
            existing.metadata.annotations.as_ref(),
            desired.metadata.annotations.as_ref(),
        )
        && pending(existing) == pending(desired)
}

/// Applies the connection Secret unless it is up to date.
async fn write_secret(
    obj: &RDSInstance,
    ctx: &Context,
    target: &(String, String),
    existing: Option<&Secret>,
    password: &str,
    observed: Option<&Observed>,
    password_pending: bool,
) -> Result<(), Error> {
    let mut desired = connection_secret(obj, target, password, observed, password_pending);
    // Keys dbclaim wrote before and does not know now (host before a
    // re-creation) are kept rather than dropped.
    if let (Some(have), Some(want)) = (
        existing.and_then(|s| s.data.as_ref()),
        desired.data.as_mut(),
    ) {
        for key in ["host", "endpoint", "port"] {
            if !want.contains_key(key)
                && let Some(v) = have.get(key)
            {
                want.insert(key.to_string(), v.clone());
            }
        }
    }
    if existing.is_some_and(|e| secret_up_to_date(e, &desired)) {
        return Ok(());
    }
    let (namespace, name) = target;
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    api.patch(
        name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&desired),
    )
    .await
    .map_err(|source| Error::Secret {
        action: "write",
        namespace: namespace.clone(),
        name: name.clone(),
        source,
    })?;
    tracing::info!(secret = %format!("{namespace}/{name}"), "connection secret written");
    if existing.is_none() {
        ctx.event(
            obj,
            EventType::Normal,
            "ConnectionSecretWritten",
            format!("wrote connection Secret {namespace}/{name}"),
        )
        .await;
    }
    Ok(())
}

async fn delete_secret(obj: &RDSInstance, ctx: &Context) -> Result<(), Error> {
    let (namespace, name) = secret_target(obj, &ctx.config.operator_namespace);
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let err = |action, source| Error::Secret {
        action,
        namespace: namespace.clone(),
        name: name.clone(),
        source,
    };
    let existing = api.get_opt(&name).await.map_err(|e| err("read", e))?;
    if existing.is_some_and(|s| s.annotations().get(INSTANCE_ANNOTATION) == Some(&obj.name_any())) {
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {
                tracing::info!(secret = %format!("{namespace}/{name}"), "connection secret deleted")
            }
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(err("delete", e)),
        }
    }
    Ok(())
}

/// Deletion: `Orphan` leaves instance and Secret; `Delete` deletes the
/// instance (with a final snapshot unless skipped), waits until RDS no longer
/// knows it, then deletes the Secret. Until then the finalizer stays.
async fn cleanup(obj: &RDSInstance, ctx: &Context) -> Result<Action, Error> {
    let id = obj.annotations().get(EXTERNAL_NAME).cloned();
    if obj.spec.deletion_policy == DeletionPolicy::Orphan {
        if let Some(id) = &id {
            ctx.event(
                obj,
                EventType::Normal,
                "OrphanedInstance",
                format!(
                    "deletionPolicy Orphan: leaving DB instance {id} and its connection Secret"
                ),
            )
            .await;
        }
        return Ok(Action::await_change());
    }
    let result = remove(obj, ctx, id.as_deref()).await;
    if let Err(e) = &result {
        let old = obj.status.clone().unwrap_or_default();
        let conds = match e {
            Error::Waiting(m) => [
                Cond::ready(false, ReadyReason::Deleting, m.clone()),
                Cond::synced(true, SyncedReason::ReconcileSuccess, ""),
            ],
            e => [
                Cond::ready(
                    false,
                    ReadyReason::Deleting,
                    "cannot delete the DB instance: see the Synced condition",
                ),
                Cond::synced(
                    false,
                    e.reason(),
                    format!(
                        "cannot delete: {e}; to keep the instance instead, set spec.deletionPolicy to Orphan"
                    ),
                ),
            ],
        };
        let new = next_status(&old, obj.meta().generation, None, &conds, Timestamp::now());
        if let Err(status_err) = write_status(obj, ctx, &old, &new).await {
            tracing::warn!(error = %status_err, "cannot report the deletion in status");
        }
        if !e.quiet() && synced_transitioned(&old, &new) {
            ctx.event(
                obj,
                EventType::Warning,
                "CannotDelete",
                format!("cannot delete: {e}"),
            )
            .await;
        }
    }
    result
}

async fn remove(obj: &RDSInstance, ctx: &Context, id: Option<&str>) -> Result<Action, Error> {
    // No identifier (or an invalid one): nothing was ever created.
    let Some(id) = id.filter(|i| identifier::is_valid(i)) else {
        delete_secret(obj, ctx).await?;
        return Ok(Action::await_change());
    };
    let spec = &obj.spec.for_provider;
    let rds = config::client(
        ctx,
        &obj.spec.provider_config_ref.name,
        spec.region.as_deref(),
    )
    .await?;
    let Some(o) = rds.describe(id).await.map_err(|f| Error::api(f, &rds))? else {
        ctx.event(
            obj,
            EventType::Normal,
            "DeletedInstance",
            format!("DB instance {id} is gone"),
        )
        .await;
        delete_secret(obj, ctx).await?;
        return Ok(Action::await_change());
    };
    let tags = match &o.arn {
        Some(arn) => rds.list_tags(arn).await.map_err(|f| Error::api(f, &rds))?,
        None => BTreeMap::new(),
    };
    let generated = obj.annotations().get(GENERATED_NAME).map(String::as_str);
    if let Ownership::Conflict(why) = ownership(
        &obj.name_any(),
        id,
        generated,
        tags.get(OWNER_TAG).map(String::as_str),
    ) {
        ctx.event(
            obj,
            EventType::Warning,
            "NotDeleted",
            format!("not deleting DB instance {id}, which this object does not manage: {why}"),
        )
        .await;
        delete_secret(obj, ctx).await?;
        return Ok(Action::await_change());
    }
    let a = status::assess(&o.status, true);
    if a.phase == Phase::Deleting {
        return Err(Error::Waiting(format!(
            "DB instance {id} is {}; waiting until it is gone",
            o.status
        )));
    }
    if o.deletion_protection == Some(true) {
        if !spec.deletion_protection && a.can_modify {
            let m = Modification {
                deletion_protection: Some(false),
                ..Default::default()
            };
            rds.modify(id, &m, None)
                .await
                .map_err(|f| Error::api(f, &rds))?;
            ctx.event(
                obj,
                EventType::Normal,
                "UpdatedInstance",
                format!("turned off deletion protection of DB instance {id} to delete it"),
            )
            .await;
            return Err(Error::Waiting(format!(
                "turning off deletion protection of DB instance {id} before deleting it"
            )));
        }
        return Err(Error::DeletionProtected(format!(
            "DB instance {id} has deletion protection on, so dbclaim does not delete it: set spec.forProvider.deletionProtection to false to delete it"
        )));
    }
    let snapshot = if spec.skip_final_snapshot {
        None
    } else if a.final_snapshot_possible {
        Some(final_snapshot_name(id))
    } else {
        ctx.event(
            obj,
            EventType::Warning,
            "FinalSnapshotSkipped",
            format!("deleting DB instance {id} without a final snapshot: RDS cannot take one while it is {}", o.status),
        )
        .await;
        None
    };
    match rds.delete(id, snapshot.as_deref()).await {
        Ok(()) => {
            let note = match &snapshot {
                Some(s) => format!("deleting DB instance {id}, final snapshot {s}"),
                None => format!("deleting DB instance {id} without a final snapshot"),
            };
            tracing::info!(identifier = %id, snapshot = ?snapshot, "DB instance deletion requested");
            ctx.event(obj, EventType::Normal, "DeletingInstance", note)
                .await;
            Err(Error::Waiting(format!(
                "DB instance {id} is being deleted; waiting until it is gone"
            )))
        }
        Err(f) => match errors::classify(&f) {
            Class::NotFound => {
                delete_secret(obj, ctx).await?;
                Ok(Action::await_change())
            }
            Class::InvalidState => Err(Error::Waiting(format!(
                "DB instance {id} is {}; deleting it once RDS allows",
                o.status
            ))),
            _ => Err(Error::api(f, &rds)),
        },
    }
}

/// The final snapshot of `<identifier>`: `<identifier>-final`.
pub fn final_snapshot_name(id: &str) -> String {
    format!("{id}-final")
}

/// Writes `new` with server-side apply, unless it equals `old`.
async fn write_status(
    obj: &RDSInstance,
    ctx: &Context,
    old: &RDSInstanceStatus,
    new: &RDSInstanceStatus,
) -> Result<(), Error> {
    if old == new {
        return Ok(());
    }
    let api: Api<RDSInstance> = Api::all(ctx.client.clone());
    let patch = serde_json::json!({
        "apiVersion": RDSInstance::api_version(&()),
        "kind": RDSInstance::kind(&()),
        "status": new,
    });
    api.patch_status(
        &obj.name_any(),
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(Error::Status)?;
    Ok(())
}

/// Events when Ready turns True or False (not on every requeue).
async fn announce_transitions(
    obj: &RDSInstance,
    ctx: &Context,
    old: &RDSInstanceStatus,
    new: &RDSInstanceStatus,
) {
    let ready = |s: &RDSInstanceStatus| {
        conditions::find(&s.conditions, ConditionType::Ready)
            .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
    };
    let (before, after) = (ready(old), ready(new));
    if before.as_ref().map(|b| (&b.0, &b.1)) == after.as_ref().map(|a| (&a.0, &a.1)) {
        return;
    }
    if let Some((status, reason, message)) = after {
        let type_ = if status == "True" || reason == ReadyReason::Creating.as_str() {
            EventType::Normal
        } else {
            EventType::Warning
        };
        ctx.event(obj, type_, &reason, message).await;
    }
    if synced_transitioned(old, new)
        && let Some(c) = conditions::find(&new.conditions, ConditionType::Synced)
        && c.status == "False"
    {
        ctx.event(obj, EventType::Warning, &c.reason, c.message.clone())
            .await;
    }
}

/// Ready after a failed sync: unchanged when known (an API outage says
/// nothing about the database); Creating when never decided.
pub fn failure_conditions(old: &RDSInstanceStatus, e: &Error) -> [Cond; 2] {
    let ready = match conditions::find(&old.conditions, ConditionType::Ready) {
        Some(c) => Cond {
            type_: ConditionType::Ready,
            status: c.status == "True",
            reason: ready_reason(&c.reason).as_str(),
            message: c.message.clone(),
        },
        None => Cond::ready(
            false,
            ReadyReason::Creating,
            "the DB instance is not created yet: see the Synced condition",
        ),
    };
    [ready, Cond::synced(false, e.reason(), e.to_string())]
}

fn ready_reason(s: &str) -> ReadyReason {
    match s {
        "Available" => ReadyReason::Available,
        "Creating" => ReadyReason::Creating,
        "Deleting" => ReadyReason::Deleting,
        _ => ReadyReason::Unavailable,
    }
}

/// `old` with conditions, atProvider (when given) and observedGeneration
/// set: equal to `old` when nothing changed.
pub fn next_status(
    old: &RDSInstanceStatus,
    generation: Option<i64>,
    at_provider: Option<RDSInstanceObservation>,
    conds: &[Cond],
    now: Timestamp,
) -> RDSInstanceStatus {
    let mut new = old.clone();
    for c in conds {
        conditions::set(&mut new.conditions, c, generation, now);
    }
    if let Some(a) = at_provider {
        new.at_provider = Some(a);
    }
    new.observed_generation = generation;
    new
}

/// Whether the Synced condition changed (status, reason or message).
pub fn synced_transitioned(old: &RDSInstanceStatus, new: &RDSInstanceStatus) -> bool {
    let pick = |s: &RDSInstanceStatus| {
        conditions::find(&s.conditions, ConditionType::Synced)
            .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
    };
    pick(old) != pick(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj() -> RDSInstance {
        let mut o = RDSInstance::new(
            "team-a-orders-instance",
            serde_json::from_value(serde_json::json!({
                "forProvider": {
                    "dbInstanceClass": "db.t3.micro",
                    "engine": "postgres",
                    "allocatedStorage": 20,
                    "dbName": "orders",
                }
            }))
            .expect("spec"),
        );
        o.metadata.labels = Some(BTreeMap::from([
            ("dbclaim.io/claim-name".to_string(), "orders".to_string()),
            (
                "dbclaim.io/claim-namespace".to_string(),
                "team-a".to_string(),
            ),
        ]));
        o
    }

    fn observed() -> Observed {
        Observed {
            identifier: "team-a-orders-instance".into(),
            status: "available".into(),
            address: Some("team-a-orders-instance.x.us-east-1.rds.amazonaws.com".into()),
            port: Some(5432),
            ..Default::default()
        }
    }

    #[test]
    fn ownership_rules() {
        let id = "db1";
        assert_eq!(ownership("obj", id, Some(id), Some("obj")), Ownership::Ours);
        assert_eq!(ownership("obj", id, None, Some("obj")), Ownership::Ours);
        assert!(
            matches!(ownership("obj", id, None, Some("other")), Ownership::Conflict(m) if m.contains("other"))
        );
        assert!(
            matches!(ownership("obj", id, Some(id), None), Ownership::Conflict(m) if m.contains(GENERATED_NAME))
        );
        assert!(matches!(
            ownership("obj", id, Some("DB1"), None),
            Ownership::Conflict(_)
        ));
        // a person named another identifier: adopt
        assert_eq!(ownership("obj", id, Some("obj"), None), Ownership::Adopt);
        assert_eq!(ownership("obj", id, None, None), Ownership::Adopt);
    }

    #[test]
    fn secret_content() {
        let o = obj();
        let target = (
            "dbclaim-system".to_string(),
            "team-a-orders-instance".to_string(),
        );
        let s = connection_secret(&o, &target, "pw", None, false);
        let data = s.data.clone().unwrap_or_default();
        let get = |k: &str| {
            data.get(k)
                .map(|v| String::from_utf8_lossy(&v.0).to_string())
        };
        assert_eq!(get("username").as_deref(), Some("dbadmin"));
        assert_eq!(get("password").as_deref(), Some("pw"));
        assert_eq!(get("database").as_deref(), Some("orders"));
        assert_eq!(get("host"), None, "no host before RDS reports one");
        let labels = s.metadata.labels.clone().unwrap_or_default();
        assert_eq!(
            labels.get("dbclaim.io/claim-name").map(String::as_str),
            Some("orders")
        );
        assert!(labels.contains_key(INSTANCE_LABEL));

        let full = connection_secret(&o, &target, "pw", Some(&observed()), false);
        let data = full.data.clone().unwrap_or_default();
        let get = |k: &str| {
            data.get(k)
                .map(|v| String::from_utf8_lossy(&v.0).to_string())
        };
        assert_eq!(
            get("host").as_deref(),
            Some("team-a-orders-instance.x.us-east-1.rds.amazonaws.com")
        );
        assert_eq!(get("endpoint"), get("host"));
        assert_eq!(get("port").as_deref(), Some("5432"));

        assert!(secret_up_to_date(&full, &full));
        assert!(secret_up_to_date(&full, &s), "a superset is up to date");
        assert!(!secret_up_to_date(&s, &full));
        let pending = connection_secret(&o, &target, "pw", Some(&observed()), true);
        assert!(!secret_up_to_date(&full, &pending));
        assert!(
            !secret_up_to_date(&pending, &full),
            "the pending mark must go"
        );
    }

    #[test]
    fn default_database() {
        let mut o = obj();
        o.spec.for_provider.db_name = None;
        assert_eq!(database_name(&o), "postgres");
        o.spec.for_provider.engine = "mysql".into();
        assert_eq!(database_name(&o), "");
    }

    #[test]
    fn secret_target_defaults_to_the_operator_namespace() {
        let mut o = obj();
        assert_eq!(
            secret_target(&o, "dbclaim-system"),
            (
                "dbclaim-system".to_string(),
                "team-a-orders-instance".to_string()
            )
        );
        o.spec.write_connection_secret_to_ref = Some(crate::api::common::SecretRef {
            name: "s".into(),
            namespace: None,
        });
        assert_eq!(secret_target(&o, "ns"), ("ns".to_string(), "s".to_string()));
    }

    #[test]
    fn status_is_stable_and_failures_keep_ready() {
        let t0 = Timestamp::from_second(1_000).unwrap_or(Timestamp::UNIX_EPOCH);
        let t1 = Timestamp::from_second(2_000).unwrap_or(Timestamp::UNIX_EPOCH);
        let conds = [
            Cond::ready(true, ReadyReason::Available, "the DB instance is available"),
            Cond::synced(true, SyncedReason::ReconcileSuccess, ""),
        ];
        let a = next_status(
            &RDSInstanceStatus::default(),
            Some(1),
            Some(observation(&observed())),
            &conds,
            t0,
        );
        let b = next_status(&a, Some(1), Some(observation(&observed())), &conds, t1);
        assert_eq!(a, b, "same decision, no write");

        let e = Error::Api {
            failure: ApiFailure {
                operation: "DescribeDBInstances",
                code: None,
                message: None,
                http_status: None,
                transport: Some(errors::Transport::Io("Connection refused".into())),
            },
            message: "cannot reach".into(),
        };
        let f = failure_conditions(&b, &e);
        assert!(f[0].status, "an API outage keeps Ready");
        assert_eq!(f[0].reason, "Available");
        assert_eq!(f[1].reason, "ProviderError");
        assert!(!f[1].status);
        let fresh =
            failure_conditions(&RDSInstanceStatus::default(), &Error::Invalid("bad".into()));
        assert_eq!(fresh[0].reason, "Creating");
        assert_eq!(fresh[1].reason, "ReconcileError");
        let c = next_status(&b, Some(1), None, &f, t1);
        assert!(synced_transitioned(&b, &c));
        assert_eq!(c.at_provider, b.at_provider, "observation kept");
    }

    #[test]
    fn retry_classes() {
        assert_eq!(Error::Waiting("x".into()).retry(), Retry::Wait);
        assert!(Error::Waiting("x".into()).quiet());
        assert_eq!(Error::Invalid("x".into()).retry(), Retry::Slow);
        assert_eq!(Error::Conflict("x".into()).retry(), Retry::Slow);
        assert_eq!(
            Error::Config(ResolveError::NotFound("d".into())).retry(),
            Retry::Slow
        );
        assert_eq!(
            Error::Config(ResolveError::NotFound("d".into())).reason(),
            SyncedReason::ProviderError
        );
        let throttled = Error::Api {
            failure: ApiFailure {
                operation: "DescribeDBInstances",
                code: Some("Throttling".into()),
                message: None,
                http_status: Some(400),
                transport: None,
            },
            message: String::new(),
        };
        assert_eq!(throttled.retry(), Retry::Backoff);
    }

    #[test]
    fn final_snapshot() {
        assert_eq!(final_snapshot_name("team-a-orders"), "team-a-orders-final");
        assert!(final_snapshot_name(&"a".repeat(63)).len() <= 255);
    }
}
