//! The `Database` controller: fetch → validate → build desired → apply →
//! write status, with deletion behind a finalizer.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{self, finalizer};
use kube::{Api, Resource, ResourceExt};
use tracing::Instrument;

use super::config::{self, ResolveError, Resolved};
use super::plan::{self, Desired, Step};
use super::server::{self, ServerError, SyncReport};
use super::{Context, DATABASE_ANNOTATION, DATABASE_LABEL, FINALIZER, MANAGER};
use crate::api::common::DeletionPolicy;
use crate::api::postgres::{Database, DatabaseObservation, DatabaseStatus};
use crate::conditions::{self, Cond, ConditionType, ReadyReason, SyncedReason};
use crate::provider::password;

/// How often a healthy Database is compared with the server again.
const RESYNC: Duration = Duration::from_secs(300);
/// Limit for the PostgreSQL part of one reconcile.
const SERVER_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ResolveError),
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error("{0}")]
    Invalid(String),
    #[error(
        "database \"{database}\" on ProviderConfig \"{config}\" is already managed by Database \"{other}\": choose another databaseName"
    )]
    NameTaken {
        database: String,
        config: String,
        other: String,
    },
    #[error(
        "Secret \"{namespace}/{name}\" {owner}: set spec.writeConnectionSecretToRef to another Secret, or delete that one"
    )]
    SecretTaken {
        namespace: String,
        name: String,
        owner: String,
    },
    #[error("cannot {action} Secret \"{namespace}/{name}\": {source}")]
    Secret {
        action: &'static str,
        namespace: String,
        name: String,
        source: kube::Error,
    },
    #[error("talking to PostgreSQL took longer than {}s", SERVER_TIMEOUT.as_secs())]
    Timeout,
    #[error("cannot write the status: {0}")]
    Status(#[source] kube::Error),
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<finalizer::Error<Error>>),
}

impl Error {
    /// The Synced reason this error reports.
    pub fn reason(&self) -> SyncedReason {
        match self {
            Error::Config(_) | Error::Server(_) | Error::Timeout => SyncedReason::ProviderError,
            _ => SyncedReason::ReconcileError,
        }
    }

    /// Whether the server could not be reached at all (so nothing is known
    /// about the database), rather than a step failing on it.
    pub fn unreachable(&self) -> bool {
        matches!(
            self,
            Error::Config(_)
                | Error::Timeout
                | Error::Server(
                    ServerError::Unreachable { .. }
                        | ServerError::Timeout { .. }
                        | ServerError::Login { .. }
                        | ServerError::Tls(_)
                )
        )
    }
}

pub fn error_policy(db: Arc<Database>, _error: &Error, ctx: Arc<Context>) -> Action {
    Action::requeue(ctx.backoff.next(&backoff_key(&db)))
}

fn backoff_key(db: &Database) -> String {
    format!("Database/{}", db.name_any())
}

pub async fn reconcile(db: Arc<Database>, ctx: Arc<Context>) -> Result<Action, Error> {
    let name = db.name_any();
    let span = tracing::info_span!("reconcile", kind = "Database", name = %name, database = %db.spec.for_provider.database_name);
    async move {
        let started = std::time::Instant::now();
        let key = backoff_key(&db);
        let api: Api<Database> = Api::all(ctx.client.clone());
        let result = finalizer(&api, FINALIZER, db, |event| async {
            match event {
                finalizer::Event::Apply(db) => apply(&db, &ctx).await,
                finalizer::Event::Cleanup(db) => cleanup(&db, &ctx).await,
            }
        })
        .await;
        let result = match result {
            Ok(action) => {
                ctx.backoff.reset(&key);
                Ok(action)
            }
            Err(finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e)) => Err(e),
            // The object this reconcile saw was stale (the finalizer was
            // already added, or the object already gone): the watch brings
            // the current one.
            Err(
                finalizer::Error::AddFinalizer(kube::Error::Api(s))
                | finalizer::Error::RemoveFinalizer(kube::Error::Api(s)),
            ) if matches!(s.code, 404 | 409 | 422) => {
                tracing::debug!(code = s.code, "finalizer patch on a stale object");
                Ok(Action::await_change())
            }
            Err(e) => Err(Error::Finalizer(Box::new(e))),
        };
        ctx.metrics
            .reconciled("database", result.is_ok(), started.elapsed());
        result
    }
    .instrument(span)
    .await
}

/// What a successful sync did, for status and events.
struct Synced {
    report: SyncReport,
    secret: SecretOutcome,
}

async fn apply(db: &Database, ctx: &Context) -> Result<Action, Error> {
    let outcome = sync(db, ctx).await;
    let old = db.status.clone().unwrap_or_default();
    let generation = db.meta().generation;
    let name = &db.spec.for_provider.database_name;
    let new = match &outcome {
        Ok(s) => {
            let observed = DatabaseObservation {
                database_name: Some(name.clone()),
                role_name: Some(name.clone()),
                connection_limit: Some(s.report.connection_limit),
                extensions: s.report.extensions.clone(),
            };
            next_status(
                &old,
                generation,
                Some(observed),
                &success_conditions(name),
                Timestamp::now(),
            )
        }
        Err(e) => next_status(
            &old,
            generation,
            None,
            &failure_conditions(&old, name, e),
            Timestamp::now(),
        ),
    };
    write_status(db, ctx, &old, &new).await?;
    match outcome {
        Ok(s) => {
            announce(db, ctx, &s).await;
            Ok(super::resync(RESYNC))
        }
        Err(e) => {
            if synced_transitioned(&old, &new) {
                ctx.event(db, EventType::Warning, e.reason().as_str(), e.to_string())
                    .await;
            }
            Err(e)
        }
    }
}

/// fetch → validate → build desired → apply.
async fn sync(db: &Database, ctx: &Context) -> Result<Synced, Error> {
    let resolved = config::resolve(ctx, &db.spec.provider_config_ref.name).await?;
    let desired = desired(db);
    if let Some(why) = plan::forbidden_name(&desired.name, &resolved.params.user) {
        return Err(Error::Invalid(why));
    }
    if let Some(e) = name_taken(db, ctx).await {
        return Err(e);
    }
    // The Secret first: a crash after this point finds the password there.
    let secret = ensure_connection_secret(db, ctx, &resolved).await?;
    let uid = db.uid().unwrap_or_default();
    let known_good = {
        let verified = ctx.verified.lock().unwrap_or_else(|e| e.into_inner());
        secret.resource_version.is_some() && verified.get(&uid) == secret.resource_version.as_ref()
    };
    let (params, password) = (&resolved.params, &secret.password);
    let report = with_admin(ctx, &resolved, "SyncDatabase", |admin| async move {
        server::sync_database(&admin, params, &desired, password, known_good).await
    })
    .await?;
    if report.password_verified
        && let Some(rv) = &secret.resource_version
    {
        ctx.verified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(uid, rv.clone());
    }
    Ok(Synced { report, secret })
}

/// Runs `op` on the cached admin connection of `resolved`, within
/// [`SERVER_TIMEOUT`], dropping the connection if it broke; counted as
/// `operation` in `dbclaim_provider_requests_total`.
async fn with_admin<T, F, Fut>(
    ctx: &Context,
    resolved: &Resolved,
    operation: &str,
    op: F,
) -> Result<T, Error>
where
    F: FnOnce(Arc<tokio_postgres::Client>) -> Fut,
    Fut: Future<Output = Result<T, ServerError>>,
{
    let run = async {
        let admin = ctx.pool.admin(&resolved.name, &resolved.params).await?;
        op(admin).await
    };
    let result = tokio::time::timeout(SERVER_TIMEOUT, run).await;
    let ok = matches!(result, Ok(Ok(_)));
    ctx.metrics.provider_request("postgres", operation, ok);
    match result {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => {
            if e.connection_lost() {
                ctx.pool.forget(&resolved.name).await;
            }
            Err(e.into())
        }
        Err(_) => {
            ctx.pool.forget(&resolved.name).await;
            Err(Error::Timeout)
        }
    }
}

pub fn desired(db: &Database) -> Desired {
    let p = &db.spec.for_provider;
    Desired {
        name: p.database_name.clone(),
        connection_limit: p.connection_limit,
        extensions: p.extensions.clone(),
    }
}

/// Another Database that manages the same database on the same server and
/// came first (older, then lower name) wins; this one must not touch it.
async fn name_taken(db: &Database, ctx: &Context) -> Option<Error> {
    // No wait for the store: the controller runs no reconcile before its
    // store has the first full list (and a second waiter on that store
    // would steal the controller's wake-up: kube's wait_until_ready keeps
    // a single waker).
    let others = ctx.databases.state();
    let winner = first_claimant(db, others.iter().map(|d| d.as_ref()))?;
    Some(Error::NameTaken {
        database: db.spec.for_provider.database_name.clone(),
        config: db.spec.provider_config_ref.name.clone(),
        other: winner,
    })
}

/// The name of the Database that claimed `db`'s database before it, if any.
pub fn first_claimant<'a>(
    db: &Database,
    all: impl Iterator<Item = &'a Database>,
) -> Option<String> {
    let rank = |d: &Database| {
        (
            d.meta().creation_timestamp.clone().map(|t| t.0),
            d.name_any(),
        )
    };
    let mine = rank(db);
    all.filter(|d| d.name_any() != db.name_any())
        .filter(|d| d.meta().deletion_timestamp.is_none())
        .filter(|d| d.spec.provider_config_ref.name == db.spec.provider_config_ref.name)
        .filter(|d| d.spec.for_provider.database_name == db.spec.for_provider.database_name)
        .filter(|d| rank(d) < mine)
        .min_by_key(|d| rank(d))
        .map(|d| d.name_any())
}

/// Where the connection Secret goes.
pub fn secret_target(db: &Database, operator_namespace: &str) -> (String, String) {
    match &db.spec.write_connection_secret_to_ref {
        Some(r) => (
            r.namespace
                .clone()
                .unwrap_or_else(|| operator_namespace.to_string()),
            r.name.clone(),
        ),
        None => (operator_namespace.to_string(), db.name_any()),
    }
}

struct SecretOutcome {
    namespace: String,
    name: String,
    password: String,
    resource_version: Option<String>,
    written: bool,
}

/// Reads the connection Secret; keeps its password or generates one; writes
/// the Secret (server-side apply) only when a key or label differs.
async fn ensure_connection_secret(
    db: &Database,
    ctx: &Context,
    resolved: &Resolved,
) -> Result<SecretOutcome, Error> {
    let (namespace, name) = secret_target(db, &ctx.config.operator_namespace);
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let err = |action, source| Error::Secret {
        action,
        namespace: namespace.clone(),
        name: name.clone(),
        source,
    };
    let existing = api.get_opt(&name).await.map_err(|e| err("read", e))?;
    if let Some(owner) = existing
        .as_ref()
        .and_then(|s| foreign_secret(s, &db.name_any()))
    {
        return Err(Error::SecretTaken {
            namespace,
            name,
            owner,
        });
    }
    let password = existing
        .as_ref()
        .and_then(|s| config::secret_value(s, "password"))
        .unwrap_or_else(password::generate);
    let desired = connection_secret(db, &namespace, &name, resolved, &password);
    if let Some(existing) = existing.as_ref()
        && secret_up_to_date(existing, &desired)
    {
        let resource_version = existing.resource_version();
        return Ok(SecretOutcome {
            namespace,
            name,
            password,
            resource_version,
            written: false,
        });
    }
    let written = api
        .patch(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&desired),
        )
        .await
        .map_err(|e| err("write", e))?;
    tracing::info!(secret = %format!("{namespace}/{name}"), "connection secret written");
    Ok(SecretOutcome {
        namespace,
        name,
        password,
        resource_version: written.resource_version(),
        written: true,
    })
}

/// Why an existing Secret is not this Database's to write, if it is not:
/// every Secret this controller writes names its Database in an annotation
/// from the first write on, so one without it was made by someone else and
/// is never taken over.
pub fn foreign_secret(existing: &Secret, database: &str) -> Option<String> {
    match existing.annotations().get(DATABASE_ANNOTATION) {
        Some(owner) if owner == database => None,
        Some(owner) => Some(format!("belongs to Database \"{owner}\"")),
        None => Some("exists and was not written by dbclaim".to_string()),
    }
}

/// The connection Secret as this controller applies it.
pub fn connection_secret(
    db: &Database,
    namespace: &str,
    name: &str,
    resolved: &Resolved,
    password: &str,
) -> Secret {
    let database = &db.spec.for_provider.database_name;
    let host = &resolved.params.host;
    let entries = [
        ("username", database.as_str()),
        ("password", password),
        ("host", host.as_str()),
        ("endpoint", host.as_str()),
        ("port", &resolved.params.port.to_string()),
        ("database", database.as_str()),
    ];
    let data: BTreeMap<String, ByteString> = entries
        .iter()
        .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
        .collect();
    let mut labels = BTreeMap::from([
        (
            "app.kubernetes.io/managed-by".to_string(),
            "dbclaim".to_string(),
        ),
        (
            DATABASE_LABEL.to_string(),
            crate::naming::label_value(&db.name_any()),
        ),
    ]);
    // Keep the claim's trail, so `kubectl get secret -l` finds it from the claim.
    for key in ["dbclaim.io/claim-name", "dbclaim.io/claim-namespace"] {
        if let Some(v) = db.labels().get(key) {
            labels.insert(key.to_string(), v.clone());
        }
    }
    Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([(
                DATABASE_ANNOTATION.to_string(),
                db.name_any(),
            )])),
            ..Default::default()
        },
        data: Some(data),
        ..Default::default()
    }
}

/// Whether `existing` already holds every key, label and annotation of `desired`.
pub fn secret_up_to_date(existing: &Secret, desired: &Secret) -> bool {
    fn contains<V: PartialEq>(
        have: Option<&BTreeMap<String, V>>,
        want: Option<&BTreeMap<String, V>>,
    ) -> bool {
        want.into_iter()
            .flatten()
            .all(|(k, v)| have.and_then(|h| h.get(k)) == Some(v))
    }
    contains(existing.data.as_ref(), desired.data.as_ref())
        && contains(
            existing.metadata.labels.as_ref(),
            desired.metadata.labels.as_ref(),
        )
        && contains(
            existing.metadata.annotations.as_ref(),
            desired.metadata.annotations.as_ref(),
        )
}

/// Events for what this reconcile changed; nothing when nothing changed.
async fn announce(db: &Database, ctx: &Context, s: &Synced) {
    let name = &db.spec.for_provider.database_name;
    let (ns, secret) = (&s.secret.namespace, &s.secret.name);
    let normal = |reason: &str, note: String| super::event(EventType::Normal, reason, note);
    let mut events = Vec::new();
    for step in &s.report.steps {
        let reason = match step {
            Step::CreateRole => "CreatedRole",
            Step::CreateDatabase { .. } => "CreatedDatabase",
            Step::GrantRoleToAdmin => continue,
            _ => "UpdatedDatabase",
        };
        events.push(normal(reason, step.describe(name)));
    }
    if s.report.password_reset {
        let note =
            format!("reset the password of role \"{name}\" to the one in Secret {ns}/{secret}");
        events.push(normal("PasswordReset", note));
    }
    for ext in &s.report.extensions_created {
        let note = format!("created extension \"{ext}\" in database \"{name}\"");
        events.push(normal("CreatedExtension", note));
    }
    // Last, as the folded event's reason: what the Database is for. (The
    // Secret is written before the role, for crash safety.)
    if s.secret.written {
        let note = format!("wrote connection Secret {ns}/{secret}");
        events.push(normal("ConnectionSecretWritten", note));
    }
    ctx.publish(db, events).await;
}

/// Deletion: `Delete` drops database and role and deletes the connection
/// Secret; `Orphan` leaves all three. Failing keeps the finalizer.
async fn cleanup(db: &Database, ctx: &Context) -> Result<Action, Error> {
    ctx.verified
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&db.uid().unwrap_or_default());
    if db.spec.deletion_policy == DeletionPolicy::Orphan {
        tracing::info!("deletionPolicy Orphan: leaving database, role and connection Secret");
        return Ok(Action::await_change());
    }
    let result = remove(db, ctx).await;
    if let Err(e) = &result {
        let old = db.status.clone().unwrap_or_default();
        let conds = [
            Cond::ready(
                false,
                ReadyReason::Deleting,
                "deleting the database: see the Synced condition",
            ),
            Cond::synced(
                false,
                e.reason(),
                format!(
                    "cannot delete: {e}; to keep the database instead, set spec.deletionPolicy to Orphan"
                ),
            ),
        ];
        let new = next_status(&old, db.meta().generation, None, &conds, Timestamp::now());
        write_status(db, ctx, &old, &new).await?;
        if synced_transitioned(&old, &new) {
            ctx.event(
                db,
                EventType::Warning,
                e.reason().as_str(),
                format!("cannot delete: {e}"),
            )
            .await;
        }
    }
    result.map(|()| Action::await_change())
}

async fn remove(db: &Database, ctx: &Context) -> Result<(), Error> {
    let name = db.spec.for_provider.database_name.clone();
    // Another Database owns it: only this one's own Secret goes.
    let taken = name_taken(db, ctx).await.is_some();
    if !taken {
        let resolved = config::resolve(ctx, &db.spec.provider_config_ref.name).await?;
        if plan::forbidden_name(&name, &resolved.params.user).is_none() {
            let n = name.clone();
            let report = with_admin(ctx, &resolved, "DropDatabase", |admin| async move {
                server::remove(&admin, &n).await
            })
            .await?;
            tracing::info!(?report, "database and role removed");
            if report.database_dropped || report.role_dropped {
                let note = format!("dropped database and role \"{name}\"");
                ctx.event(db, EventType::Normal, "DeletedDatabase", note)
                    .await;
            }
        }
    }
    let (namespace, secret) = secret_target(db, &ctx.config.operator_namespace);
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let err = |action, source| Error::Secret {
        action,
        namespace: namespace.clone(),
        name: secret.clone(),
        source,
    };
    let existing = api.get_opt(&secret).await.map_err(|e| err("read", e))?;
    if existing.is_some_and(|s| s.annotations().get(DATABASE_ANNOTATION) == Some(&db.name_any())) {
        match api.delete(&secret, &DeleteParams::default()).await {
            Ok(_) => {
                tracing::info!(secret = %format!("{namespace}/{secret}"), "connection secret deleted")
            }
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(err("delete", e)),
        }
    }
    Ok(())
}

/// Writes `new` with server-side apply, unless it equals `old`.
async fn write_status(
    db: &Database,
    ctx: &Context,
    old: &DatabaseStatus,
    new: &DatabaseStatus,
) -> Result<(), Error> {
    if old == new {
        return Ok(());
    }
    let api: Api<Database> = Api::all(ctx.client.clone());
    let patch = serde_json::json!({
        "apiVersion": Database::api_version(&()),
        "kind": Database::kind(&()),
        "status": new,
    });
    api.patch_status(
        &db.name_any(),
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(Error::Status)?;
    Ok(())
}

pub fn success_conditions(name: &str) -> [Cond; 2] {
    [
        Cond::ready(
            true,
            ReadyReason::Available,
            format!("database \"{name}\" is available"),
        ),
        Cond::synced(true, SyncedReason::ReconcileSuccess, ""),
    ]
}

/// Ready after a failed sync: a database seen before stays Available when a
/// step failed on a reachable server, is Unavailable when the server cannot
/// be reached; one never created is still Creating.
pub fn failure_conditions(old: &DatabaseStatus, name: &str, e: &Error) -> [Cond; 2] {
    let existed = old
        .at_provider
        .as_ref()
        .is_some_and(|a| a.database_name.is_some());
    let ready = match (existed, e.unreachable()) {
        (true, false) => Cond::ready(
            true,
            ReadyReason::Available,
            format!("database \"{name}\" is available"),
        ),
        (true, true) => Cond::ready(
            false,
            ReadyReason::Unavailable,
            "cannot reach the server: see the Synced condition",
        ),
        (false, _) => Cond::ready(
            false,
            ReadyReason::Creating,
            format!("database \"{name}\" is not created yet: see the Synced condition"),
        ),
    };
    [ready, Cond::synced(false, e.reason(), e.to_string())]
}

/// `old` with conditions, atProvider (when given) and observedGeneration
/// set: equal to `old` when nothing changed.
pub fn next_status(
    old: &DatabaseStatus,
    generation: Option<i64>,
    at_provider: Option<DatabaseObservation>,
    conds: &[Cond],
    now: Timestamp,
) -> DatabaseStatus {
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

/// Whether the Synced condition changed (status, reason or message): the
/// moment for a warning event, which is not repeated on every retry.
pub fn synced_transitioned(old: &DatabaseStatus, new: &DatabaseStatus) -> bool {
    let pick = |s: &DatabaseStatus| {
        conditions::find(&s.conditions, ConditionType::Synced)
            .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
    };
    pick(old) != pick(new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::common::SecretRef;
    use crate::api::postgres::{DatabaseParameters, DatabaseSpec, SslMode};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use pretty_assertions::assert_eq;

    fn database(name: &str, database_name: &str, created: i64) -> Database {
        let mut db = Database::new(
            name,
            DatabaseSpec {
                provider_config_ref: Default::default(),
                deletion_policy: DeletionPolicy::Delete,
                for_provider: DatabaseParameters {
                    database_name: database_name.into(),
                    connection_limit: -1,
                    extensions: vec![],
                },
                write_connection_secret_to_ref: None,
            },
        );
        db.metadata.creation_timestamp = Some(Time(
            Timestamp::from_second(created).unwrap_or(Timestamp::UNIX_EPOCH),
        ));
        db
    }

    fn resolved() -> Resolved {
        Resolved {
            name: "default".into(),
            params: server::ConnectParams {
                host: "pg.example".into(),
                port: 5432,
                ssl_mode: SslMode::Prefer,
                user: "admin".into(),
                password: "admin-pw".into(),
            },
        }
    }

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    #[test]
    fn the_first_claimant_keeps_a_database_name() {
        let a = database("a", "orders", 100);
        let b = database("b", "orders", 200);
        let c = database("c", "other", 50);
        let all = [a.clone(), b.clone(), c.clone()];
        assert_eq!(first_claimant(&a, all.iter()), None);
        assert_eq!(first_claimant(&b, all.iter()).as_deref(), Some("a"));
        assert_eq!(first_claimant(&c, all.iter()), None);
        // Same second: the name decides, the same way every time.
        let a2 = database("a2", "orders", 100);
        assert_eq!(
            first_claimant(&a2, [a.clone(), a2.clone()].iter()).as_deref(),
            Some("a")
        );
        // Another server is another namespace of names.
        let mut d = database("d", "orders", 300);
        d.spec.provider_config_ref.name = "elsewhere".into();
        assert_eq!(first_claimant(&d, all.iter()), None);
    }

    #[test]
    fn connection_secret_target_and_content() {
        let mut db = database("team-a-orders", "orders", 1);
        assert_eq!(
            secret_target(&db, "dbclaim-system"),
            ("dbclaim-system".into(), "team-a-orders".into())
        );
        db.spec.write_connection_secret_to_ref = Some(SecretRef {
            name: "conn".into(),
            namespace: None,
        });
        assert_eq!(
            secret_target(&db, "dbclaim-system"),
            ("dbclaim-system".into(), "conn".into())
        );
        db.spec.write_connection_secret_to_ref = Some(SecretRef {
            name: "conn".into(),
            namespace: Some("x".into()),
        });
        assert_eq!(
            secret_target(&db, "dbclaim-system"),
            ("x".into(), "conn".into())
        );

        let s = connection_secret(&db, "x", "conn", &resolved(), "pw");
        let data: BTreeMap<String, String> = s
            .data
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8(v.0).unwrap_or_default()))
            .collect();
        let want: BTreeMap<String, String> = [
            ("database", "orders"),
            ("endpoint", "pg.example"),
            ("host", "pg.example"),
            ("password", "pw"),
            ("port", "5432"),
            ("username", "orders"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(data, want);
        assert_eq!(foreign_secret(&s, "team-a-orders"), None);
        assert!(foreign_secret(&s, "other").is_some_and(|m| m.contains("team-a-orders")));
        assert!(foreign_secret(&Secret::default(), "team-a-orders").is_some());

        // Up to date when every key, label and annotation is there, extra keys allowed.
        let mut existing = s.clone();
        assert!(secret_up_to_date(&existing, &s));
        existing
            .data
            .get_or_insert_default()
            .insert("extra".into(), ByteString(b"1".to_vec()));
        assert!(secret_up_to_date(&existing, &s));
        existing
            .data
            .get_or_insert_default()
            .insert("host".into(), ByteString(b"moved".to_vec()));
        assert!(!secret_up_to_date(&existing, &s));
        let mut unlabelled = s.clone();
        unlabelled.metadata.labels = None;
        assert!(!secret_up_to_date(&unlabelled, &s));
    }

    #[test]
    fn status_written_only_when_something_changed() {
        let observed = DatabaseObservation {
            database_name: Some("orders".into()),
            role_name: Some("orders".into()),
            connection_limit: Some(-1),
            extensions: vec![],
        };
        let first = next_status(
            &DatabaseStatus::default(),
            Some(1),
            Some(observed.clone()),
            &success_conditions("orders"),
            t(10),
        );
        assert_eq!(first.observed_generation, Some(1));
        assert!(conditions::is_true(&first.conditions, ConditionType::Ready));
        let again = next_status(
            &first,
            Some(1),
            Some(observed.clone()),
            &success_conditions("orders"),
            t(20),
        );
        assert_eq!(again, first);
        assert!(!synced_transitioned(&first, &again));
        let changed = DatabaseObservation {
            connection_limit: Some(5),
            ..observed
        };
        assert_ne!(
            next_status(
                &first,
                Some(2),
                Some(changed),
                &success_conditions("orders"),
                t(20)
            ),
            first
        );
    }

    #[test]
    fn ready_after_a_failure() {
        let never = DatabaseStatus::default();
        let unreachable = Error::Server(ServerError::Unreachable {
            address: "h:1".into(),
            detail: "refused".into(),
        });
        let step_failed = Error::Server(ServerError::Query {
            action: "create extension \"x\"".into(),
            detail: "no such extension".into(),
            connection_lost: false,
        });
        let [ready, synced] = failure_conditions(&never, "orders", &unreachable);
        assert_eq!((ready.status, ready.reason), (false, "Creating"));
        assert_eq!((synced.status, synced.reason), (false, "ProviderError"));
        assert!(
            synced
                .message
                .starts_with("cannot connect to PostgreSQL at h:1")
        );

        let existed = DatabaseStatus {
            at_provider: Some(DatabaseObservation {
                database_name: Some("orders".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let [ready, _] = failure_conditions(&existed, "orders", &unreachable);
        assert_eq!((ready.status, ready.reason), (false, "Unavailable"));
        let [ready, synced] = failure_conditions(&existed, "orders", &step_failed);
        assert_eq!((ready.status, ready.reason), (true, "Available"));
        assert_eq!(
            synced.message,
            "failed to create extension \"x\": no such extension"
        );

        let invalid = Error::Invalid("bad".into());
        assert_eq!(
            failure_conditions(&never, "orders", &invalid)[1].reason,
            "ReconcileError"
        );

        // A new message is a transition (one event); the same one is not.
        let a = next_status(
            &never,
            Some(1),
            None,
            &failure_conditions(&never, "orders", &unreachable),
            t(1),
        );
        let b = next_status(
            &a,
            Some(1),
            None,
            &failure_conditions(&a, "orders", &unreachable),
            t(2),
        );
        assert!(synced_transitioned(&never, &a));
        assert!(!synced_transitioned(&a, &b));
        assert_eq!(a, b);
        let c = next_status(
            &b,
            Some(1),
            None,
            &failure_conditions(&b, "orders", &invalid),
            t(3),
        );
        assert!(synced_transitioned(&b, &c));
    }
}
