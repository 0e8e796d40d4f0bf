//! The `Database` verbs on the shared managed reconciler: observe resolves
//! the ProviderConfig and checks the name; create and update are one
//! idempotent sync on the server (fetch → plan → apply, see [`server`]);
//! delete drops database and role.

use std::sync::Arc;
use std::time::Duration;

use kube::ResourceExt;

use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::Postgres;
use super::config::{ResolveError, Resolved};
use super::logins::{self, Logins, Step as Step2};
use super::plan::{self, Desired, Step};
use super::rotate;
use super::server::{self, ServerError};
use crate::api::common::DrillType;
use crate::api::postgres::{Database, DatabaseObservation};
use crate::conditions::{Cond, ReadyReason, SyncedReason};
use crate::contract::{
    CREDENTIALS_GRACE_ANNOTATION, EXTERNAL_NAME_ANNOTATION, ROTATE_CREDENTIALS_ANNOTATION,
};
use crate::provider::managed::ownership::{Claim, Identity, set_by_person};
use crate::provider::managed::secret;
use crate::provider::managed::{
    Connection, Credentials, Deletion, DrillStep, Events, External, Observation, ProviderError,
    Retry, Synced,
};
use crate::rotation::DEFAULT_GRACE_MINUTES;
use k8s_openapi::api::core::v1::Secret;

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
    #[error("talking to PostgreSQL took longer than {}s", SERVER_TIMEOUT.as_secs())]
    Timeout,
    /// Role or database exists and is not this Database's.
    #[error("{0}")]
    NotOurs(String),
    #[error("cannot record the password rotation in Secret {secret}: {source}")]
    RotationSecret {
        secret: String,
        #[source]
        source: kube::Error,
    },
}

impl Error {
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

impl ProviderError for Error {
    fn reason(&self) -> SyncedReason {
        match self {
            Error::Server(ServerError::NotOurs(_)) => SyncedReason::ReconcileError,
            Error::Config(_) | Error::Server(_) | Error::Timeout => SyncedReason::ProviderError,
            Error::Invalid(_)
            | Error::NameTaken { .. }
            | Error::NotOurs(_)
            | Error::RotationSecret { .. } => SyncedReason::ReconcileError,
        }
    }

    /// Every failure backs off (a name taken frees up without an event on
    /// this object), but what is not ours waits for a person.
    fn retry(&self) -> Retry {
        match self {
            Error::NotOurs(_) | Error::Server(ServerError::NotOurs(_)) => Retry::Slow,
            _ => Retry::Backoff,
        }
    }

    fn keeps_ready(&self) -> bool {
        !self.unreachable()
    }
}

impl External<Database> for Postgres {
    type Error = Error;
    type Seen = (Resolved, Claim);
    const CREATION_EVENTS: &'static [&'static str] =
        &["CreatedRole", "CreatedDatabase", "CreatedExtension"];

    /// ProviderConfig, name checks, and whose role and database of that
    /// name are (before the Secret step: nothing is written for a refused
    /// object, and a password left by an earlier object stays).
    async fn observe(
        &self,
        db: &Database,
        _events: &mut Events,
    ) -> Result<Observation<(Resolved, Claim)>, Error> {
        let resolved = self
            .resolve(&db.spec.managed.provider_config_ref.name)
            .await?;
        if let Some(why) =
            plan::forbidden_name(&db.spec.for_provider.database_name, &resolved.params.user)
        {
            return Err(Error::Invalid(why));
        }
        if let Some(e) = self.name_taken(db) {
            return Err(e);
        }
        let claim = self.ownership(db, &resolved).await?;
        let exists = db
            .status
            .as_ref()
            .and_then(|s| s.at_provider.as_ref())
            .is_some_and(|a| a.database_name.is_some());
        Ok(Observation {
            exists,
            connection: connection(db, &resolved),
            seen: (resolved, claim),
        })
    }

    /// Role and database in place, with the Secret's password: one
    /// idempotent sync that creates what is missing and corrects drift (and
    /// is `update` too).
    async fn create(
        &self,
        db: &Database,
        (resolved, claim): (Resolved, Claim),
        creds: &Credentials,
        events: &mut Events,
    ) -> Result<Synced<DatabaseObservation>, Error> {
        let uid = db.uid().unwrap_or_default();
        let known_good = {
            let verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
            creds.secret_version.is_some() && verified.get(&uid) == creds.secret_version.as_ref()
        };
        let desired = desired(db, self.identity(db), claim);
        let name = &db.spec.for_provider.database_name;
        let (logins, pending_password) = rotate::read(creds.existing.as_ref(), name);
        let (params, password, login) = (&resolved.params, &creds.password, &logins.current);
        let d = &desired;
        let report = self
            .with_admin(&resolved, "SyncDatabase", |admin| async move {
                server::sync_database_as(&admin, params, d, login, password, known_good).await
            })
            .await?;
        if report.password_verified
            && let Some(rv) = &creds.secret_version
        {
            self.verified
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(uid, rv.clone());
        }
        let created = report
            .steps
            .iter()
            .any(|s| matches!(s, Step::CreateDatabase { .. }));
        for step in &report.steps {
            let Some(reason) = step_reason(step, created) else {
                continue;
            };
            events.normal(reason, step.describe(name));
        }
        if report.password_reset {
            let (ns, secret) = &creds.secret;
            events.normal(
                "PasswordReset",
                format!("reset the password of role \"{name}\" to the one in Secret {ns}/{secret}"),
            );
        }
        for ext in &report.extensions_created {
            events.normal(
                "CreatedExtension",
                format!("created extension \"{ext}\" in database \"{name}\""),
            );
        }
        let (connection, requeue) = self
            .rotate(
                db,
                &resolved,
                &desired,
                creds,
                logins,
                pending_password,
                events,
            )
            .await?;
        Ok(Synced {
            observation: DatabaseObservation {
                database_name: Some(name.clone()),
                role_name: Some(name.clone()),
                login: connection.get("username").cloned(),
                connection_limit: Some(report.connection_limit),
                extensions: report.extensions.clone(),
            },
            ready: Cond::ready(
                true,
                ReadyReason::Available,
                format!("database \"{name}\" is available"),
            ),
            synced: Cond::synced(true, SyncedReason::ReconcileSuccess, ""),
            requeue,
            connection,
            password_sent: report.password_verified,
        })
    }

    /// Drops database and role if they are this object's (marked), unless
    /// another Database owns the name; what is not ours stays.
    async fn delete(&self, db: &Database, events: &mut Events) -> Result<Deletion, Error> {
        self.forget(db);
        let name = db.spec.for_provider.database_name.clone();
        if self.name_taken(db).is_some() {
            return Ok(Deletion::Gone);
        }
        let resolved = self
            .resolve(&db.spec.managed.provider_config_ref.name)
            .await?;
        if plan::forbidden_name(&name, &resolved.params.user).is_none() {
            let d = desired(db, self.identity(db), Claim::None);
            let report = self
                .with_admin(&resolved, "DropDatabase", |admin| async move {
                    server::remove(&admin, &d).await
                })
                .await?;
            tracing::info!(?report, "database and role removed");
            if report.database_dropped || report.role_dropped {
                events.normal(
                    "DeletedDatabase",
                    format!("dropped database and role \"{name}\""),
                );
            }
            for why in &report.left {
                events.warning("NotDeleted", format!("not dropped: {why}"));
            }
        }
        Ok(Deletion::Gone)
    }

    /// `failover` on a shared server: the database's sessions of its own
    /// roles end (what a failover does to clients), no other tenant's.
    async fn drill(
        &self,
        db: &Database,
        (resolved, claim): &(Resolved, Claim),
        drill: &crate::drill::Request,
        events: &mut Events,
    ) -> Result<DrillStep, Error> {
        let name = &db.spec.for_provider.database_name;
        if drill.type_ != DrillType::Failover {
            return Ok(DrillStep::Refused(format!(
                "a {} drill is not run on database \"{name}\"",
                drill.type_
            )));
        }
        let d = desired(db, self.identity(db), *claim);
        let d = &d;
        let (count, roles) = self
            .with_admin(resolved, "TerminateSessions", |admin| async move {
                server::terminate_sessions(&admin, d).await
            })
            .await?;
        let roles = roles
            .iter()
            .map(|r| format!("\"{r}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let message =
            format!("terminated {count} session(s) of role(s) {roles} on database \"{name}\"");
        tracing::info!(database = %name, count, "failover drill: sessions terminated");
        events.normal("TerminatedSessions", message.clone());
        Ok(DrillStep::Done(message))
    }

    /// The login the Secret names (the database's own for a new one):
    /// what `create` publishes unless a rotation switches it.
    fn connection_known(db: &Database, existing: Option<&Secret>) -> Connection {
        let (logins, _) = rotate::read(existing, &db.spec.for_provider.database_name);
        Connection::from([("username".to_string(), logins.current)])
    }

    fn describe(db: &Database) -> String {
        format!("database \"{}\"", db.spec.for_provider.database_name)
    }

    fn release(&self, db: &Database, _events: &mut Events) {
        self.forget(db);
    }
}

impl Postgres {
    /// The two-login rotation (see [`logins`]): the steps due now, each
    /// recorded in the Secret before the next. Returns the connection
    /// details to publish (the login, and the password after a switch) and
    /// when to look again.
    #[allow(clippy::too_many_arguments)]
    async fn rotate(
        &self,
        db: &Database,
        resolved: &Resolved,
        desired: &Desired,
        creds: &Credentials,
        mut logins: Logins,
        mut pending_password: Option<String>,
        events: &mut Events,
    ) -> Result<(Connection, Duration), Error> {
        let name = desired.name.clone();
        let want = db.annotations().get(ROTATE_CREDENTIALS_ANNOTATION).cloned();
        let grace = db
            .annotations()
            .get(CREDENTIALS_GRACE_ANNOTATION)
            .and_then(|g| g.parse::<i64>().ok())
            .filter(|g| *g >= 0)
            .unwrap_or(DEFAULT_GRACE_MINUTES);
        let grace = SignedDuration::from_mins(grace);
        let secret = format!("{}/{}", creds.secret.0, creds.secret.1);
        let record = |e| Error::RotationSecret {
            secret: secret.clone(),
            source: e,
        };
        let mut connection = Connection::new();
        let mut requeue = RESYNC;
        // What the Secret's password is after each write of this pass.
        let mut password_now = creds.password.clone();
        // At most one rotation and one disable per pass.
        for _ in 0..4 {
            let now = Timestamp::now();
            let step = logins::next(&name, &logins, want.as_deref(), now, grace);
            let next = logins::after(&logins, &step);
            match &step {
                Step2::Idle => break,
                Step2::WaitUntil(at) => {
                    let wait = Duration::try_from(at.duration_since(now)).unwrap_or_default();
                    requeue = requeue.min(wait + Duration::from_secs(1));
                    break;
                }
                Step2::Prepare { login, .. } => {
                    // Recorded before the server has it: a crash from here
                    // on finds it and finishes the same rotation.
                    let password = crate::provider::password::generate();
                    rotate::write(
                        &self.client,
                        &creds.secret,
                        &next,
                        Some(&password),
                        &password_now,
                    )
                    .await
                    .map_err(record)?;
                    tracing::info!(database = %name, login = %login, "password rotation prepared");
                    pending_password = Some(password);
                }
                Step2::SetPasswordAndSwitch {
                    login, retiring, ..
                } => {
                    let Some(password) = pending_password.take() else {
                        // The recorded password is gone (a hand edit): start over.
                        let reset = Logins {
                            pending: None,
                            ..logins.clone()
                        };
                        rotate::write(&self.client, &creds.secret, &reset, None, &password_now)
                            .await
                            .map_err(record)?;
                        logins = reset;
                        continue;
                    };
                    let (l, p) = (login.clone(), password.clone());
                    let result = self
                        .with_admin(resolved, "RotatePassword", |admin| async move {
                            server::ensure_login(&admin, desired, &l, &p).await
                        })
                        .await;
                    if let Err(e) = result {
                        self.metrics.credential_rotation("postgres", false);
                        return Err(e);
                    }
                    // username and password switch together, with the state.
                    rotate::write(&self.client, &creds.secret, &next, None, &password)
                        .await
                        .map_err(record)?;
                    password_now = password.clone();
                    self.metrics.credential_rotation("postgres", true);
                    events.normal(
                        "RotatedPassword",
                        format!(
                            "database \"{name}\" now logs in as \"{login}\" with a new password; \
                             \"{}\" is refused after {} minute(s)",
                            retiring.login,
                            grace.as_mins()
                        ),
                    );
                    connection.insert("password".to_string(), password);
                }
                Step2::Disable { login } => {
                    let l = login.clone();
                    self.with_admin(resolved, "DisableLogin", |admin| async move {
                        server::disable_login(&admin, desired, &l).await
                    })
                    .await?;
                    rotate::write(&self.client, &creds.secret, &next, None, &password_now)
                        .await
                        .map_err(record)?;
                    events.normal(
                        "DisabledLogin",
                        format!("the previous login \"{login}\" of database \"{name}\" is refused from now on"),
                    );
                }
            }
            logins = next;
        }
        connection.insert("username".to_string(), logins.current.clone());
        Ok((connection, requeue))
    }

    /// Runs `op` on the cached admin connection of `resolved`, within
    /// [`SERVER_TIMEOUT`], dropping the connection if it broke; counted as
    /// `operation` in `dbclaim_provider_requests_total`.
    async fn with_admin<T, F, Fut>(
        &self,
        resolved: &Resolved,
        operation: &str,
        op: F,
    ) -> Result<T, Error>
    where
        F: FnOnce(Arc<tokio_postgres::Client>) -> Fut,
        Fut: Future<Output = Result<T, ServerError>>,
    {
        let run = async {
            let admin = self.pool.admin(&resolved.name, &resolved.params).await?;
            op(admin).await
        };
        let result = tokio::time::timeout(SERVER_TIMEOUT, run).await;
        let ok = matches!(result, Ok(Ok(_)));
        self.metrics.provider_request("postgres", operation, ok);
        match result {
            Ok(r) => Ok(self.pool.checked(&resolved.name, r).await?),
            Err(_) => {
                self.pool.forget(&resolved.name).await;
                Err(Error::Timeout)
            }
        }
    }

    /// Another Database that manages the same database on the same server
    /// and came first (older, then lower name) wins; this one must not touch it.
    fn name_taken(&self, db: &Database) -> Option<Error> {
        // No wait for the store: the controller runs no reconcile before its
        // store has the first full list (and a second waiter on that store
        // would steal the controller's wake-up: kube's wait_until_ready keeps
        // a single waker).
        let others = self.databases.state();
        let winner = first_claimant(db, others.iter().map(|d| d.as_ref()))?;
        Some(Error::NameTaken {
            database: db.spec.for_provider.database_name.clone(),
            config: db.spec.managed.provider_config_ref.name.clone(),
            other: winner,
        })
    }

    fn identity(&self, db: &Database) -> Identity {
        Identity::of(&self.cluster_id, db)
    }

    /// Whose the role and database of `db`'s name are, and why they may be
    /// taken (the claim the sync then acts on); an error when not ours.
    ///
    /// Upgrade from a dbclaim before marks: an unmarked role counts as this
    /// object's only when the password in this object's own connection
    /// Secret (annotated for it, and for its UID or written before UID
    /// marks) logs in as that role: only whoever holds that role's password
    /// could have written it, and dbclaim generated it. A DBA's role (no such
    /// Secret, or a password that does not log in) stays refused.
    async fn ownership(&self, db: &Database, resolved: &Resolved) -> Result<Claim, Error> {
        let claim = adoption(db).map_err(Error::Invalid)?;
        let name = db.spec.for_provider.database_name.clone();
        let n = name.clone();
        let observed = self
            .with_admin(resolved, "ObserveDatabase", |admin| async move {
                server::observe(&admin, &n).await
            })
            .await?;
        let first = desired(db, self.identity(db), claim);
        let Some(why) = plan::ownership(&first, &observed)
            .refusal()
            .map(str::to_string)
        else {
            return Ok(claim);
        };
        if claim == Claim::None && self.secret_logs_in(db, resolved).await {
            let upgraded = desired(db, self.identity(db), Claim::Upgrade);
            return match plan::ownership(&upgraded, &observed).refusal() {
                None => Ok(Claim::Upgrade),
                Some(why) => Err(Error::NotOurs(why.to_string())),
            };
        }
        Err(Error::NotOurs(why))
    }

    /// Whether the password in `db`'s own connection Secret logs in as its role.
    async fn secret_logs_in(&self, db: &Database, resolved: &Resolved) -> bool {
        let (ns, name) = secret::target(db, &self.operator_namespace);
        let Ok(Some(s)) = kube::Api::<Secret>::namespaced(self.client.clone(), &ns)
            .get_opt(&name)
            .await
        else {
            return false;
        };
        let Some(password) = secret::ours(&s, db)
            .then(|| secret::value(&s, "password"))
            .flatten()
        else {
            return false;
        };
        let role = &db.spec.for_provider.database_name;
        server::connect(&resolved.params.as_user(role, &password), role)
            .await
            .is_ok()
    }

    fn forget(&self, db: &Database) {
        self.verified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&db.uid().unwrap_or_default());
    }
}

/// The event reason of a step, `None` for one not worth an event.
/// Marking a database made in the same pass as this object's and revoking
/// its public access are part of making it, not an update of one that was
/// there: so a claim's creation posts only creation events here, which
/// the claim's own events make redundant (`managed::reconcile::routine`).
pub fn step_reason(step: &Step, created: bool) -> Option<&'static str> {
    Some(match step {
        Step::CreateRole => "CreatedRole",
        Step::CreateDatabase { .. } => "CreatedDatabase",
        Step::MarkDatabase | Step::RevokePublicAccess if created => "CreatedDatabase",
        Step::GrantRoleToAdmin => return None,
        _ => "UpdatedDatabase",
    })
}

pub fn desired(db: &Database, owner: Identity, claim: Claim) -> Desired {
    let p = &db.spec.for_provider;
    Desired {
        name: p.database_name.clone(),
        connection_limit: p.connection_limit,
        extensions: p.extensions.clone(),
        owner,
        claim,
    }
}

/// What the annotation `dbclaim.io/external-name` asks of `db`: adoption
/// when a person set it to the databaseName; a value naming anything else is
/// refused (the role and database always carry the databaseName).
pub fn adoption(db: &Database) -> Result<Claim, String> {
    let Some(name) = db.annotations().get(EXTERNAL_NAME_ANNOTATION) else {
        return Ok(Claim::None);
    };
    if !set_by_person(&db.metadata, EXTERNAL_NAME_ANNOTATION) {
        return Ok(Claim::None);
    }
    let want = &db.spec.for_provider.database_name;
    if name != want {
        return Err(format!(
            "annotation {EXTERNAL_NAME_ANNOTATION} is \"{name}\" but spec.forProvider.databaseName is \"{want}\": to adopt a role and database, set the annotation to the databaseName"
        ));
    }
    Ok(Claim::Adopt)
}

/// The connection details of `db` on the server of `resolved`.
pub fn connection(db: &Database, resolved: &Resolved) -> Connection {
    let database = &db.spec.for_provider.database_name;
    let host = &resolved.params.host;
    // The username is the update's to say: the login the Secret names
    // (see `logins`), kept meanwhile.
    [
        ("host", host.clone()),
        ("endpoint", host.clone()),
        ("port", resolved.params.port.to_string()),
        ("database", database.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// The name of the Database that claimed `db`'s database before it, if any.
pub fn first_claimant<'a>(
    db: &Database,
    all: impl Iterator<Item = &'a Database>,
) -> Option<String> {
    use kube::Resource;
    let rank = |d: &Database| {
        (
            d.meta().creation_timestamp.clone().map(|t| t.0),
            d.name_any(),
        )
    };
    let mine = rank(db);
    all.filter(|d| d.name_any() != db.name_any())
        .filter(|d| d.meta().deletion_timestamp.is_none())
        .filter(|d| {
            d.spec.managed.provider_config_ref.name == db.spec.managed.provider_config_ref.name
        })
        .filter(|d| d.spec.for_provider.database_name == db.spec.for_provider.database_name)
        .filter(|d| rank(d) < mine)
        .min_by_key(|d| rank(d))
        .map(|d| d.name_any())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_made_in_the_pass_gets_creation_events_only() {
        let made = [
            Step::CreateRole,
            Step::CreateDatabase {
                connection_limit: 20,
            },
            Step::MarkDatabase,
            Step::RevokePublicAccess,
        ];
        for step in &made {
            let reason = step_reason(step, true);
            assert!(
                reason.is_some_and(|r| <Postgres as External<Database>>::CREATION_EVENTS.contains(&r)),
                "{step:?}: {reason:?}"
            );
        }
        assert_eq!(step_reason(&Step::GrantRoleToAdmin, true), None);
        // Adopting or fixing a database that was there is an update.
        assert_eq!(
            step_reason(&Step::MarkDatabase, false),
            Some("UpdatedDatabase")
        );
        assert_eq!(
            step_reason(&Step::RevokePublicAccess, false),
            Some("UpdatedDatabase")
        );
        assert_eq!(
            step_reason(&Step::SetConnectionLimit { from: 20, to: 5 }, true),
            Some("UpdatedDatabase")
        );
    }
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;

    fn database(name: &str, database_name: &str, created: i64) -> Database {
        let mut db = Database::new(
            name,
            serde_json::from_value(serde_json::json!({
                "forProvider": {"databaseName": database_name}
            }))
            .expect("spec"),
        );
        db.metadata.creation_timestamp = Some(Time(
            Timestamp::from_second(created).unwrap_or(Timestamp::UNIX_EPOCH),
        ));
        db
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
        d.spec.managed.provider_config_ref.name = "elsewhere".into();
        assert_eq!(first_claimant(&d, all.iter()), None);
    }

    #[test]
    fn connection_details_and_errors() {
        let resolved = Resolved {
            name: "default".into(),
            params: server::ConnectParams {
                host: "pg.example".into(),
                port: 5432,
                tls: server::Tls::Prefer,
                user: "admin".into(),
                password: "admin-pw".into(),
            },
        };
        let c = connection(&database("team-a-orders", "orders", 1), &resolved);
        let want: Connection = [
            ("database", "orders"),
            ("endpoint", "pg.example"),
            ("host", "pg.example"),
            ("port", "5432"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(c, want);

        let unreachable = Error::Server(ServerError::Unreachable {
            address: "h:1".into(),
            detail: "refused".into(),
        });
        assert!(!unreachable.keeps_ready());
        assert_eq!(unreachable.reason(), SyncedReason::ProviderError);
        let step_failed = Error::Server(ServerError::Query {
            action: "create extension \"x\"".into(),
            detail: "no such extension".into(),
            connection_lost: false,
        });
        assert!(step_failed.keeps_ready());
        assert_eq!(
            step_failed.to_string(),
            "failed to create extension \"x\": no such extension"
        );
        assert_eq!(
            Error::Invalid("bad".into()).reason(),
            SyncedReason::ReconcileError
        );
    }
}
