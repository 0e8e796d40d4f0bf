//! Talking to PostgreSQL: connections, the admin-connection cache, and the
//! two operations a `Database` needs, [`sync_database`] and [`remove`].
//! SQL text comes from [`super::sql`], decisions from [`super::plan`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use sha2::{Digest, Sha256};
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

use super::plan::{self, DatabaseState, Desired, Observed, RoleState, Step};
use super::sql::{self, Verifier};
use super::tls::{MakeRustls, Verify};
use crate::api::postgres::SslMode;
use crate::provider::managed::ownership::{Claim, Verdict};

/// Limit for one TCP connect attempt.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Limit for connect + TLS + authentication.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Server-side limits of every session (audit L7): a statement waiting on a
/// lock gives up after `lock_timeout` instead of holding the shared admin
/// connection, and none outlives the provider's own 120 s limit.
const SESSION_OPTIONS: &str = "-c statement_timeout=60s -c lock_timeout=10s";

/// The ProviderConfig's `sslMode`, with the CAs the verify modes check
/// against.
#[derive(Clone, PartialEq, Eq)]
pub enum Tls {
    Disable,
    Prefer,
    Require,
    VerifyCa(Vec<CertificateDer<'static>>),
    VerifyFull(Vec<CertificateDer<'static>>),
}

impl Tls {
    pub fn mode(&self) -> SslMode {
        match self {
            Tls::Disable => SslMode::Disable,
            Tls::Prefer => SslMode::Prefer,
            Tls::Require => SslMode::Require,
            Tls::VerifyCa(_) => SslMode::VerifyCa,
            Tls::VerifyFull(_) => SslMode::VerifyFull,
        }
    }

    /// The connector for this mode: `require` and above never answer a
    /// clear-text or MD5 password request.
    fn connector(&self) -> Result<MakeRustls, ServerError> {
        let made = match self {
            Tls::Disable | Tls::Prefer => {
                return MakeRustls::new().map_err(|e| ServerError::Tls(e.to_string()));
            }
            Tls::Require => MakeRustls::with(Verify::EncryptOnly, true),
            Tls::VerifyCa(cas) => MakeRustls::with(Verify::Ca(cas.clone()), true),
            Tls::VerifyFull(cas) => MakeRustls::with(Verify::Full(cas.clone()), true),
        };
        made.map_err(|e| ServerError::Tls(e.to_string()))
    }

    fn cas(&self) -> &[CertificateDer<'static>] {
        match self {
            Tls::VerifyCa(cas) | Tls::VerifyFull(cas) => cas,
            Tls::Disable | Tls::Prefer | Tls::Require => &[],
        }
    }
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.mode().as_str())?;
        match self.cas().len() {
            0 => Ok(()),
            n => write!(f, " ({n} CA certificates)"),
        }
    }
}

/// Where and as whom to connect.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectParams {
    pub host: String,
    pub port: u16,
    pub tls: Tls,
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for ConnectParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectParams")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl ConnectParams {
    /// The same server, as another user.
    pub fn as_user(&self, user: &str, password: &str) -> Self {
        Self {
            user: user.to_string(),
            password: password.to_string(),
            ..self.clone()
        }
    }

    /// `host:port`, for messages.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// A hash of everything that makes a connection, password included, so a
    /// cache can tell a changed config or Secret without keeping a copy.
    fn fingerprint(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        let parts = [
            self.host.as_bytes(),
            &self.port.to_be_bytes(),
            self.user.as_bytes(),
            self.password.as_bytes(),
            self.tls.mode().as_str().as_bytes(),
        ];
        // A changed CA bundle is another connection: the cached one was
        // verified against the old CAs.
        let cas = self.tls.cas().iter().map(|c| c.as_ref());
        for part in parts.into_iter().chain(cas) {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part);
        }
        h.finalize().into()
    }
}

/// What went wrong talking to PostgreSQL. Messages are for people and never
/// hold a password.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot connect to PostgreSQL at {address}: {detail}")]
    Unreachable { address: String, detail: String },
    #[error("PostgreSQL at {address} did not answer within {}s", LOGIN_TIMEOUT.as_secs())]
    Timeout { address: String },
    #[error("PostgreSQL at {address} rejected the login of role \"{user}\": {detail}")]
    Login {
        address: String,
        user: String,
        detail: String,
        bad_password: bool,
    },
    #[error("cannot set up TLS: {0}")]
    Tls(String),
    /// Role or database exists and is not this Database's: left alone.
    #[error("{0}")]
    NotOurs(String),
    #[error("failed to {action}: {detail}")]
    Query {
        action: String,
        detail: String,
        connection_lost: bool,
    },
}

impl ServerError {
    pub(super) fn query(action: impl Into<String>, e: &tokio_postgres::Error) -> Self {
        ServerError::Query {
            action: action.into(),
            detail: describe(e),
            connection_lost: e.is_closed(),
        }
    }

    /// Whether a cached connection that produced this error should be dropped.
    pub fn connection_lost(&self) -> bool {
        match self {
            ServerError::Query {
                connection_lost, ..
            } => *connection_lost,
            ServerError::NotOurs(_) => false,
            _ => true,
        }
    }
}

/// The server's message (with its hint), or the chain of I/O causes.
fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return match db.hint() {
            Some(hint) => format!("{} (hint: {hint})", db.message()),
            None => db.message().to_string(),
        };
    }
    let mut parts = vec![e.to_string()];
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

/// Opens a connection to `dbname` and drives it on its own task.
pub async fn connect(params: &ConnectParams, dbname: &str) -> Result<Client, ServerError> {
    let mut config = tokio_postgres::Config::new();
    config
        .host(&params.host)
        .port(params.port)
        .user(&params.user)
        .password(&params.password)
        .dbname(dbname)
        .application_name("dbclaim")
        .options(SESSION_OPTIONS)
        .connect_timeout(CONNECT_TIMEOUT)
        .ssl_mode(match params.tls {
            Tls::Disable => tokio_postgres::config::SslMode::Disable,
            Tls::Prefer => tokio_postgres::config::SslMode::Prefer,
            Tls::Require | Tls::VerifyCa(_) | Tls::VerifyFull(_) => {
                tokio_postgres::config::SslMode::Require
            }
        });
    let tls = params.tls.connector()?;
    let address = params.address();
    let (client, connection) = tokio::time::timeout(LOGIN_TIMEOUT, config.connect(tls))
        .await
        .map_err(|_| ServerError::Timeout {
            address: address.clone(),
        })?
        .map_err(|e| match e.code() {
            Some(c)
                if *c == SqlState::INVALID_PASSWORD
                    || *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION =>
            {
                ServerError::Login {
                    address: address.clone(),
                    user: params.user.clone(),
                    detail: describe(&e),
                    bad_password: *c == SqlState::INVALID_PASSWORD,
                }
            }
            Some(_) => {
                ServerError::query(format!("connect to database \"{dbname}\" at {address}"), &e)
            }
            None => match untrusted_certificate(&e) {
                Some(problem) => ServerError::Tls(format!(
                    "the certificate of PostgreSQL at {address} is not accepted with sslMode {}: {problem}",
                    params.tls.mode().as_str()
                )),
                None => ServerError::Unreachable {
                    address: address.clone(),
                    detail: describe(&e),
                },
            },
        })?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %describe(&e), "postgres connection closed");
        }
    });
    Ok(client)
}

/// What is wrong with the server's certificate, when that is why the TLS
/// handshake failed.
fn untrusted_certificate(e: &tokio_postgres::Error) -> Option<String> {
    let io = std::error::Error::source(e)?.downcast_ref::<std::io::Error>()?;
    match io.get_ref()?.downcast_ref::<rustls::Error>()? {
        rustls::Error::InvalidCertificate(problem) => Some(match problem {
            rustls::CertificateError::UnknownIssuer => {
                "it does not lead to a CA of ca.crt in caSecretRef (unknown issuer)".to_string()
            }
            rustls::CertificateError::NotValidForName
            | rustls::CertificateError::NotValidForNameContext { .. } => format!(
                "{problem}: connect to a host the certificate names, or use sslMode verify-ca"
            ),
            other => other.to_string(),
        }),
        _ => None,
    }
}

/// One admin connection per ProviderConfig, reused across reconciles and
/// replaced when the config or its Secret changes or the connection breaks.
#[derive(Default)]
pub struct Pool {
    slots: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<Cached>>>>>,
}

struct Cached {
    fingerprint: [u8; 32],
    client: Arc<Client>,
}

impl Pool {
    /// The admin connection for the ProviderConfig `key`. Connects for one
    /// config at a time, so a slow server does not hold up the others.
    pub async fn admin(
        &self,
        key: &str,
        params: &ConnectParams,
    ) -> Result<Arc<Client>, ServerError> {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            slots.entry(key.to_string()).or_default().clone()
        };
        let mut slot = slot.lock().await;
        let fingerprint = params.fingerprint();
        if let Some(cached) = slot.as_ref()
            && cached.fingerprint == fingerprint
            && !cached.client.is_closed()
        {
            return Ok(cached.client.clone());
        }
        *slot = None;
        let client = Arc::new(connect(params, "postgres").await?);
        tracing::debug!(provider_config = key, address = %params.address(), "connected as admin");
        *slot = Some(Cached {
            fingerprint,
            client: client.clone(),
        });
        Ok(client)
    }

    /// `result` of a call on the connection of `key`, which is dropped if
    /// the call found it broken.
    pub async fn checked<T>(
        &self,
        key: &str,
        result: Result<T, ServerError>,
    ) -> Result<T, ServerError> {
        if result.as_ref().is_err_and(ServerError::connection_lost) {
            self.forget(key).await;
        }
        result
    }

    /// Drops the cached connection of `key` (after an error on it).
    pub async fn forget(&self, key: &str) {
        let slot = self
            .slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned();
        if let Some(slot) = slot {
            *slot.lock().await = None;
        }
    }
}

/// The admin role's attributes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminPrivileges {
    pub superuser: bool,
    pub create_role: bool,
    pub create_db: bool,
}

impl AdminPrivileges {
    /// Why this admin cannot manage databases, if it cannot.
    pub fn missing(&self, user: &str) -> Option<String> {
        if self.superuser || (self.create_role && self.create_db) {
            return None;
        }
        let mut lacks = Vec::new();
        if !self.create_role {
            lacks.push("CREATEROLE");
        }
        if !self.create_db {
            lacks.push("CREATEDB");
        }
        Some(format!(
            "admin role \"{user}\" lacks {}: run ALTER ROLE \"{user}\" {} as a superuser, or use another admin",
            lacks.join(" and "),
            lacks.join(" ")
        ))
    }
}

pub async fn admin_privileges(admin: &Client) -> Result<AdminPrivileges, ServerError> {
    let row = admin
        .query_one(sql::query::ADMIN, &[])
        .await
        .map_err(|e| ServerError::query("read the admin role's attributes", &e))?;
    Ok(AdminPrivileges {
        superuser: row.get(0),
        create_role: row.get(1),
        create_db: row.get(2),
    })
}

/// The role and database named `name` as the server has them.
pub async fn observe(admin: &Client, name: &str) -> Result<Observed, ServerError> {
    let admin_is_superuser = admin_privileges(admin).await?.superuser;
    let role = admin
        .query_opt(sql::query::ROLE, &[&name])
        .await
        .map_err(|e| ServerError::query(format!("look up role \"{name}\""), &e))?
        .map(|r| RoleState {
            can_login: r.get(0),
            admin_has_privileges: r.get(1),
            privileged: [
                (r.get::<_, bool>(2), "SUPERUSER"),
                (r.get(3), "CREATEROLE"),
                (r.get(4), "REPLICATION"),
                (r.get(5), "BYPASSRLS"),
            ]
            .into_iter()
            .filter_map(|(has, name)| has.then_some(name))
            .collect(),
            comment: r.get(6),
        });
    let database = admin
        .query_opt(sql::query::DATABASE, &[&name])
        .await
        .map_err(|e| ServerError::query(format!("look up database \"{name}\""), &e))?
        .map(|r| DatabaseState {
            connection_limit: r.get(0),
            owner: r.get(1),
            public_access: r.get(2),
            comment: r.get(3),
        });
    Ok(Observed {
        role,
        database,
        admin_is_superuser,
    })
}

/// What [`sync_database`] did and found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Changes made, in order.
    pub steps: Vec<Step>,
    /// The role's password was reset to the Secret's.
    pub password_reset: bool,
    /// The Secret's password is known to work (the role was created with it,
    /// a login with it succeeded, or it was just set).
    pub password_verified: bool,
    pub extensions_created: Vec<String>,
    /// Listed extensions that are installed.
    pub extensions: Vec<String>,
    pub connection_limit: i64,
}

/// Brings role and database `desired.name` to the desired state: creates
/// what is missing, corrects drift, installs listed extensions, and makes
/// sure the role logs in with `password`. Idempotent; changes nothing when
/// all is in place. Unless `password_known_good`, it checks the password by
/// logging in as the role, and resets it only when that login is refused.
pub async fn sync_database(
    admin: &Client,
    params: &ConnectParams,
    desired: &Desired,
    password: &str,
    password_known_good: bool,
) -> Result<SyncReport, ServerError> {
    sync_database_as(
        admin,
        params,
        desired,
        &desired.name,
        password,
        password_known_good,
    )
    .await
}

/// [`sync_database`] for a database whose connection Secret names `login`
/// (one of its two logins after a rotation): the password is checked, and
/// reset if refused, on that login.
pub async fn sync_database_as(
    admin: &Client,
    params: &ConnectParams,
    desired: &Desired,
    login: &str,
    password: &str,
    password_known_good: bool,
) -> Result<SyncReport, ServerError> {
    let name = desired.name.as_str();
    let mut report = SyncReport {
        password_verified: password_known_good,
        ..SyncReport::default()
    };
    // Another reconcile may create the same role or database at the same
    // time: the loser observes again and plans the rest.
    let mut attempts = 0;
    'plan: loop {
        attempts += 1;
        let observed = observe(admin, name).await?;
        let steps = plan::plan(desired, &observed).map_err(ServerError::NotOurs)?;
        let verifier = steps
            .iter()
            .any(Step::needs_password)
            .then(|| Verifier::scram(password));
        let comment = desired.comment();
        for step in steps {
            match admin
                .batch_execute(&step.sql(name, &comment, verifier.as_ref()))
                .await
            {
                Ok(()) => {
                    tracing::info!(step = %step.describe(name), "changed");
                    if step == Step::CreateRole {
                        report.password_verified = true;
                    }
                    report.steps.push(step);
                }
                Err(e) if attempts < 3 && lost_race(&e) => continue 'plan,
                Err(e) => return Err(ServerError::query(step.describe(name), &e)),
            }
        }
        break;
    }

    // The Secret's login: the role itself, or after a rotation one of its
    // two logins (see `logins`).
    if !report.password_verified {
        match connect(&params.as_user(login, password), name).await {
            Ok(_) => report.password_verified = true,
            Err(ServerError::Login {
                bad_password: true, ..
            }) => {
                let statement = sql::alter_role_password(login, &Verifier::scram(password));
                admin.batch_execute(&statement).await.map_err(|e| {
                    ServerError::query(format!("set the password of role \"{login}\""), &e)
                })?;
                tracing::info!(role = login, "password reset to the connection Secret's");
                report.password_reset = true;
                report.password_verified = true;
            }
            // Not a password problem (pg_hba, network): nothing to fix here;
            // checked again on the next reconcile.
            Err(e) => {
                tracing::warn!(role = login, error = %e, "could not check the role's password")
            }
        }
    }

    if !desired.extensions.is_empty() {
        let db = connect(params, name).await?;
        let installed = installed_extensions(&db, name).await?;
        for ext in plan::missing_extensions(&desired.extensions, &installed) {
            db.batch_execute(&sql::create_extension(&ext, name))
                .await
                .map_err(|e| {
                    ServerError::query(
                        format!("create extension \"{ext}\" in database \"{name}\""),
                        &e,
                    )
                })?;
            tracing::info!(extension = %ext, database = name, "extension created");
            report.extensions_created.push(ext);
        }
        let installed = if report.extensions_created.is_empty() {
            installed
        } else {
            installed_extensions(&db, name).await?
        };
        report.extensions = plan::listed_and_installed(&desired.extensions, &installed);
    }

    report.connection_limit = match observe(admin, name).await?.database {
        Some(db) => db.connection_limit,
        None => desired.connection_limit,
    };
    Ok(report)
}

/// The error of a statement that lost a race with the same statement.
fn lost_race(e: &tokio_postgres::Error) -> bool {
    [
        SqlState::DUPLICATE_OBJECT,
        SqlState::DUPLICATE_DATABASE,
        SqlState::UNIQUE_VIOLATION,
    ]
    .iter()
    .any(|c| e.code() == Some(c))
}

async fn installed_extensions(db: &Client, name: &str) -> Result<Vec<String>, ServerError> {
    Ok(db
        .query(sql::query::EXTENSIONS, &[])
        .await
        .map_err(|e| ServerError::query(format!("list extensions in database \"{name}\""), &e))?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// What [`remove`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RemoveReport {
    pub sessions_terminated: i64,
    pub database_dropped: bool,
    pub role_dropped: bool,
    /// Why what exists was left: it is not this Database's.
    pub left: Vec<String>,
}

/// Drops database and role `desired.name` if they are ours (marked for
/// `desired.owner`; a database owned by our role counts), ending the
/// database's sessions first. Idempotent. Never adopts: `desired.claim` is
/// ignored.
pub async fn remove(admin: &Client, desired: &Desired) -> Result<RemoveReport, ServerError> {
    let name = desired.name.as_str();
    let observed = observe(admin, name).await?;
    let owned = plan::ownership(
        &Desired {
            claim: Claim::None,
            ..desired.clone()
        },
        &observed,
    );
    let mut report = RemoveReport::default();
    let ours = |v: &Option<Verdict>, report: &mut RemoveReport| match v {
        Some(Verdict::NotOurs(why)) => {
            report.left.push(why.clone());
            false
        }
        Some(_) => true,
        None => false,
    };
    let drop_database = ours(&owned.database, &mut report);
    let drop_role = ours(&owned.role, &mut report);
    // The logins of the group (two-login rotation) that are ours.
    let mut logins = Vec::new();
    for login in super::logins::login_names(name) {
        if login_is_ours(admin, &login, &desired.comment()).await? == Some(true) {
            logins.push(login);
        }
    }
    if drop_database && !observed.admin_is_superuser {
        // Ending a login's sessions takes its privileges too.
        for login in &logins {
            admin
                .batch_execute(&sql::grant_role_to_admin(login))
                .await
                .map_err(|e| {
                    ServerError::query(format!("grant role \"{login}\" to the admin role"), &e)
                })?;
        }
    }
    if drop_database {
        // The admin may end the role's sessions only with the role's privileges.
        if let Some(role) = &observed.role
            && !role.admin_has_privileges
            && !observed.admin_is_superuser
        {
            admin
                .batch_execute(&sql::grant_role_to_admin(name))
                .await
                .map_err(|e| {
                    ServerError::query(format!("grant role \"{name}\" to the admin role"), &e)
                })?;
        }
        let row = admin
            .query_one(sql::query::TERMINATE, &[&name])
            .await
            .map_err(|e| {
                ServerError::query(format!("end the sessions on database \"{name}\""), &e)
            })?;
        report.sessions_terminated = row.get(0);
        admin
            .batch_execute(&sql::drop_database(name))
            .await
            .map_err(|e| ServerError::query(format!("drop database \"{name}\""), &e))?;
        report.database_dropped = true;
    }
    // The logins of the group go first (their membership with it).
    for login in logins.iter().filter(|_| drop_role) {
        admin
            .batch_execute(&sql::drop_role(login))
            .await
            .map_err(|e| ServerError::query(format!("drop role \"{login}\""), &e))?;
    }
    if drop_role {
        admin
            .batch_execute(&sql::drop_role(name))
            .await
            .map_err(|e| ServerError::query(format!("drop role \"{name}\""), &e))?;
        report.role_dropped = true;
    }
    Ok(report)
}

/// Whether the role `login` carries `comment` (our mark); None if absent.
async fn login_is_ours(
    admin: &Client,
    login: &str,
    comment: &str,
) -> Result<Option<bool>, ServerError> {
    let row = admin
        .query_opt(sql::query::ROLE, &[&login])
        .await
        .map_err(|e| ServerError::query(format!("look up role \"{login}\""), &e))?;
    Ok(row.map(|r| r.get::<_, Option<String>>(6).as_deref() == Some(comment)))
}

/// Makes `login` a login of the group role `desired.name` with `password`:
/// created with our mark, or (if it is ours) given LOGIN and the password
/// again. Idempotent, so a rotation cut short repeats it.
pub async fn ensure_login(
    admin: &Client,
    desired: &Desired,
    login: &str,
    password: &str,
) -> Result<(), ServerError> {
    let comment = desired.comment();
    let verifier = Verifier::scram(password);
    let statement = match login_is_ours(admin, login, &comment).await? {
        None => sql::create_login(login, &desired.name, &verifier, &comment),
        Some(true) => sql::renew_login(login, &desired.name, &verifier),
        Some(false) => {
            return Err(ServerError::NotOurs(format!(
                "role \"{login}\" exists and is not ours: dbclaim needs it as the second login of \"{}\" to rotate its password; drop or rename it",
                desired.name
            )));
        }
    };
    admin
        .batch_execute(&statement)
        .await
        .map_err(|e| ServerError::query(format!("set up login role \"{login}\""), &e))
}

/// Terminates the sessions on database `desired.name` of its group role
/// and of those of its logins that carry our mark (a failover drill);
/// returns how many, and the roles. Sessions of any other role stay.
pub async fn terminate_sessions(
    admin: &Client,
    desired: &Desired,
) -> Result<(i64, Vec<String>), ServerError> {
    let comment = desired.comment();
    let mut roles = vec![desired.name.clone()];
    for login in super::logins::login_names(&desired.name) {
        if login_is_ours(admin, &login, &comment).await? == Some(true) {
            roles.push(login);
        }
    }
    let row = admin
        .query_one(sql::query::TERMINATE_ROLES, &[&desired.name, &roles])
        .await
        .map_err(|e| {
            ServerError::query(format!("end the sessions of role \"{}\"", desired.name), &e)
        })?;
    Ok((row.get(0), roles))
}

/// Refuses the previous login `login` of `desired.name` (if it is ours).
pub async fn disable_login(
    admin: &Client,
    desired: &Desired,
    login: &str,
) -> Result<(), ServerError> {
    let ours = login == desired.name
        || login_is_ours(admin, login, &desired.comment()).await? == Some(true);
    if !ours {
        return Ok(());
    }
    admin
        .batch_execute(&sql::disable_login(login, &desired.name))
        .await
        .map_err(|e| ServerError::query(format!("disable login role \"{login}\""), &e))
}
