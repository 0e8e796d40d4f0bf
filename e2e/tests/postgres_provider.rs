//! The `postgres.dbclaim.io` provider end to end: a real API server, a real
//! PostgreSQL, and the Database and ProviderConfig controllers running in
//! this process (`dbclaim::provider::postgres::run`).

use std::time::{Duration, Instant};

use dbclaim::api::postgres::{Database, ProviderConfig};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;

use crate::support::{self, Postgres, TestNamespace, kubectl_apply, kubectl_ok, unique_name};

const TIMEOUT: Duration = Duration::from_secs(60);

/// The provider's controllers on a task of this test; stopped on drop.
pub(crate) struct Provider(tokio::task::JoinHandle<()>);

impl Provider {
    pub(crate) async fn start(operator_namespace: &str) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(
                std::env::var("DBCLAIM_E2E_LOG").unwrap_or_else(|_| "info,kube=warn".into()),
            )
            .try_init();
        let client = support::kube_client().await;
        let config = dbclaim::provider::Config {
            operator_namespace: operator_namespace.to_string(),
            concurrency: 4,
            cluster_id: "e2e-postgres-provider".to_string(),
            // As `dbclaim run` shares it: a Secret absent from the metadata
            // watch is not read, one present is (the foreign one below).
            secrets: dbclaim::controller::cache::SharedSecrets {
                names: dbclaim::controller::claim::watches::secret_names(&client, None),
                handoff: Default::default(),
            },
        };
        Self(tokio::spawn(dbclaim::provider::postgres::run(
            client, config,
        )))
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Applies the two `postgres.dbclaim.io` CRDs (only these: this suite needs
/// no others) and waits until they are Established.
pub(crate) fn apply_postgres_crds() {
    static APPLIED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    APPLIED.get_or_init(|| {
        let dir = support::repo_root().join("crds");
        let files: Vec<String> = [
            "databases.postgres.dbclaim.io.yaml",
            "providerconfigs.postgres.dbclaim.io.yaml",
        ]
        .iter()
        .map(|f| dir.join(f).to_string_lossy().into_owned())
        .collect();
        let mut apply = vec![
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=dbclaim-e2e",
        ];
        let mut wait = vec!["wait", "--for=condition=Established", "--timeout=60s"];
        for f in &files {
            apply.extend(["-f", f.as_str()]);
            wait.extend(["-f", f.as_str()]);
        }
        kubectl_ok(apply);
        kubectl_ok(wait);
    });
}

/// A test's world: its own server, namespace (where connection Secrets go)
/// and ProviderConfig.
pub(crate) struct Setup {
    pub(crate) pg: Postgres,
    pub(crate) ns: TestNamespace,
    pub(crate) config: String,
    pub(crate) admin_secret: String,
    pub(crate) dbs: Api<Database>,
    pub(crate) configs: Api<ProviderConfig>,
    pub(crate) secrets: Api<Secret>,
}

impl Setup {
    async fn new(prefix: &str) -> Self {
        Self::with_server(prefix, Postgres::start()).await
    }

    pub(crate) async fn with_server(prefix: &str, pg: Postgres) -> Self {
        apply_postgres_crds();
        let client = support::kube_client().await;
        let ns = TestNamespace::new(prefix);
        Self {
            pg,
            config: unique_name(&format!("{prefix}-pc")),
            admin_secret: unique_name(&format!("{prefix}-admin")),
            dbs: Api::all(client.clone()),
            configs: Api::all(client.clone()),
            secrets: Api::namespaced(client, ns.name()),
            ns,
        }
    }

    pub(crate) fn apply_admin_secret(&self, password: &str) {
        kubectl_apply(&format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: {}, namespace: {}}}\nstringData: {{username: \"{}\", password: \"{}\"}}\n",
            self.admin_secret,
            self.ns.name(),
            self.pg.admin_user,
            password
        ));
    }

    fn apply_provider_config(&self) {
        kubectl_apply(&format!(
            "apiVersion: postgres.dbclaim.io/v1alpha1\nkind: ProviderConfig\nmetadata: {{name: {}}}\nspec:\n  host: \"{}\"\n  port: {}\n  sslMode: prefer\n  credentialsSecretRef: {{namespace: {}, name: {}}}\n",
            self.config,
            self.pg.host,
            self.pg.port,
            self.ns.name(),
            self.admin_secret
        ));
    }

    /// Applies a Database named `name` (cluster-scoped) with `spec_extra`
    /// lines under `spec:` besides providerConfigRef and forProvider.
    pub(crate) fn apply_database(
        &self,
        name: &str,
        database: &str,
        for_provider_extra: &str,
        spec_extra: &str,
    ) {
        kubectl_apply(&format!(
            "apiVersion: postgres.dbclaim.io/v1alpha1\nkind: Database\nmetadata: {{name: {name}}}\nspec:\n  providerConfigRef: {{name: {}}}\n  forProvider:\n    databaseName: {database}\n{for_provider_extra}{spec_extra}",
            self.config
        ));
    }

    async fn admin(&self) -> tokio_postgres::Client {
        connect(
            &self.pg.host,
            self.pg.port,
            &self.pg.admin_user,
            &self.pg.admin_password,
            "postgres",
        )
        .await
        .unwrap_or_else(|e| panic!("admin connect: {e}"))
    }

    async fn exists(&self, what: &str, name: &str) -> bool {
        let q = if what == "role" {
            "SELECT 1 FROM pg_roles WHERE rolname = $1"
        } else {
            "SELECT 1 FROM pg_database WHERE datname = $1"
        };
        self.admin()
            .await
            .query_opt(q, &[&name])
            .await
            .expect(q)
            .is_some()
    }

    pub(crate) async fn wait_db(
        &self,
        name: &str,
        what: &str,
        check: impl Fn(&Database) -> bool,
    ) -> Database {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let db = self.dbs.get_opt(name).await.expect("get Database");
            if let Some(d) = db.as_ref().filter(|d| check(d)) {
                return d.clone();
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {TIMEOUT:?} waiting for Database {name}: {what}; last status: {:#?}",
                db.and_then(|d| d.status)
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Deletes Database `name` and waits until its finalizer is done.
    pub(crate) async fn delete_database(&self, name: &str) {
        kubectl_ok([
            "delete",
            "databases.postgres.dbclaim.io",
            name,
            "--wait=false",
        ]);
        self.wait_gone(name).await;
    }

    pub(crate) async fn wait_gone(&self, name: &str) {
        let deadline = Instant::now() + TIMEOUT;
        while let Some(db) = self.dbs.get_opt(name).await.expect("get Database") {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for Database {name} to be deleted; status: {:#?}",
                db.status
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        // ProviderConfigs are cluster-scoped: do not leave one pointing at a
        // stopped server for the next test's controllers.
        let _ = support::kubectl([
            "delete",
            "providerconfigs.postgres.dbclaim.io",
            &self.config,
            "--ignore-not-found",
            "--wait=false",
        ]);
    }
}

async fn connect(
    host: &str,
    port: u16,
    user: &str,
    password: &str,
    dbname: &str,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::Config::new()
        .host(host)
        .port(port)
        .user(user)
        .password(password)
        .dbname(dbname)
        .connect(tokio_postgres::NoTls)
        .await?;
    tokio::spawn(conn);
    Ok(client)
}

pub(crate) fn condition(db: &Database, type_: &str) -> Option<Condition> {
    db.status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_).cloned())
}

fn is(db: &Database, type_: &str, status: &str) -> bool {
    condition(db, type_).is_some_and(|c| c.status == status)
}

pub(crate) fn ready(db: &Database) -> bool {
    is(db, "Ready", "True") && is(db, "Synced", "True")
}

fn secret_data(s: &Secret) -> std::collections::BTreeMap<String, String> {
    s.data
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8(v.0).expect("utf-8")))
        .collect()
}

/// Events on a Database as (reason, note, count); cluster-scoped objects'
/// events go to `default`.
async fn events_of(name: &str) -> Vec<(String, String, i32)> {
    let api: Api<Event> = Api::namespaced(support::kube_client().await, "default");
    api.list(&ListParams::default())
        .await
        .expect("list events")
        .items
        .into_iter()
        .filter(|e| {
            e.regarding.as_ref().is_some_and(|r| {
                r.kind.as_deref() == Some("Database") && r.name.as_deref() == Some(name)
            })
        })
        .map(|e| {
            let count = e.series.as_ref().map_or(1, |s| s.count);
            (
                e.reason.unwrap_or_default(),
                e.note.unwrap_or_default(),
                count,
            )
        })
        .collect()
}

pub(crate) fn db_name(name: &str) -> String {
    name.replace('-', "_")
}

#[tokio::test]
async fn database_lifecycle_create_connect_change_limit_quiet_at_rest_delete() {
    let _lock = support::exclusive().await;
    let s = Setup::new("pgp-life").await;
    s.apply_admin_secret(&s.pg.admin_password);
    s.apply_provider_config();
    let _provider = Provider::start(s.ns.name()).await;

    let name = unique_name("pgp-life-db");
    let database = db_name(&name);
    s.apply_database(
        &name,
        &database,
        "    connectionLimit: 5\n    extensions: [pgcrypto]\n",
        "",
    );
    let db = s.wait_db(&name, "Ready and Synced", ready).await;
    assert_eq!(
        condition(&db, "Ready").map(|c| c.reason).as_deref(),
        Some("Available")
    );
    assert_eq!(
        condition(&db, "Synced").map(|c| c.reason).as_deref(),
        Some("ReconcileSuccess")
    );
    let status = db.status.clone().expect("status");
    let at = status.at_provider.clone().expect("atProvider");
    assert_eq!(at.database_name.as_deref(), Some(database.as_str()));
    assert_eq!(at.role_name.as_deref(), Some(database.as_str()));
    assert_eq!(at.connection_limit, Some(5));
    assert_eq!(at.extensions, vec!["pgcrypto".to_string()]);
    assert_eq!(status.observed_generation, db.metadata.generation);
    assert!(
        db.finalizers()
            .iter()
            .any(|f| f == "postgres.dbclaim.io/finalizer")
    );

    // The ProviderConfig reports the connection.
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let pc = s.configs.get(&s.config).await.expect("ProviderConfig");
        let ok = pc.status.as_ref().is_some_and(|st| {
            st.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        });
        if ok {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "ProviderConfig not Ready: {:?}",
            pc.status
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // The connection Secret: default name, the operator namespace, all keys.
    let secret = s.secrets.get(&name).await.expect("connection Secret");
    let data = secret_data(&secret);
    assert_eq!(data["username"], database);
    assert_eq!(data["database"], database);
    assert_eq!(data["host"], s.pg.host);
    assert_eq!(data["endpoint"], s.pg.host);
    assert_eq!(data["port"], s.pg.port.to_string());
    let password = data["password"].clone();
    assert_eq!(password.len(), 32);
    assert!(password.chars().all(|c| c.is_ascii_alphanumeric()));
    assert_eq!(
        secret.labels().get("postgres.dbclaim.io/database"),
        Some(&name)
    );

    // The tenant connects with it, and owns its database.
    let tenant = connect(
        &data["host"],
        s.pg.port,
        &data["username"],
        &password,
        &data["database"],
    )
    .await
    .unwrap_or_else(|e| panic!("tenant connect: {e}"));
    tenant
        .batch_execute("CREATE TABLE notes (body text); INSERT INTO notes VALUES ('hello')")
        .await
        .expect("tenant writes");
    let body: String = tenant
        .query_one("SELECT body FROM notes", &[])
        .await
        .expect("tenant reads")
        .get(0);
    assert_eq!(body, "hello");
    tenant
        .query_one("SELECT digest('x', 'sha256')", &[])
        .await
        .expect("pgcrypto is installed");
    drop(tenant);

    // Events for what happened, the steps of a pass in one event; never
    // the password.
    let events = events_of(&name).await;
    let reasons: Vec<&str> = events.iter().map(|(r, _, _)| r.as_str()).collect();
    assert!(
        reasons.contains(&"ConnectionSecretWritten"),
        "no ConnectionSecretWritten event in {events:?}"
    );
    for wanted in [
        "wrote connection Secret",
        "create role",
        "create database",
        "created extension \"pgcrypto\"",
    ] {
        assert!(
            events.iter().any(|(_, note, _)| note.contains(wanted)),
            "no event says {wanted:?}: {events:?}"
        );
    }
    assert!(events.iter().all(|(_, note, _)| !note.contains(&password)));

    // Quiet at rest: a reconcile (triggered by an annotation) that finds
    // nothing to change writes neither status nor Secret.
    let annotated = s
        .dbs
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"e2e/poke": "1"}}})),
        )
        .await
        .expect("annotate");
    let secret_rv = secret.resource_version();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after = s.dbs.get(&name).await.expect("get");
    assert_eq!(
        after.resource_version(),
        annotated.resource_version(),
        "a reconcile with nothing to do wrote the Database: {:#?}",
        after.status
    );
    let secret_after = s.secrets.get(&name).await.expect("secret");
    assert_eq!(
        secret_after.resource_version(),
        secret_rv,
        "the Secret was rewritten at rest"
    );
    assert_eq!(
        secret_data(&secret_after)["password"],
        password,
        "the password changed"
    );

    // A new connection limit is applied.
    s.dbs
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"forProvider": {"connectionLimit": 10}}})),
        )
        .await
        .expect("patch limit");
    let db = s
        .wait_db(&name, "connectionLimit 10", |d| {
            d.status.as_ref().is_some_and(|st| {
                st.at_provider.as_ref().and_then(|a| a.connection_limit) == Some(10)
                    && st.observed_generation == d.metadata.generation
            })
        })
        .await;
    assert!(ready(&db));
    let limit: i32 = s
        .admin()
        .await
        .query_one(
            "SELECT datconnlimit FROM pg_database WHERE datname = $1",
            &[&database],
        )
        .await
        .expect("datconnlimit")
        .get(0);
    assert_eq!(limit, 10);

    // Deleting drops database and role (with a session still open) and the Secret.
    let _open = connect(&s.pg.host, s.pg.port, &database, &password, &database)
        .await
        .expect("tenant session");
    kubectl_ok([
        "delete",
        "databases.postgres.dbclaim.io",
        &name,
        "--wait=false",
    ]);
    s.wait_gone(&name).await;
    assert!(
        !s.exists("database", &database).await,
        "database {database} still exists"
    );
    assert!(
        !s.exists("role", &database).await,
        "role {database} still exists"
    );
    assert!(
        s.secrets
            .get_opt(&name)
            .await
            .expect("get secret")
            .is_none(),
        "the connection Secret should be deleted"
    );
}

#[tokio::test]
async fn orphan_keeps_database_role_and_secret() {
    let _lock = support::exclusive().await;
    let s = Setup::new("pgp-orphan").await;
    s.apply_admin_secret(&s.pg.admin_password);
    s.apply_provider_config();
    let _provider = Provider::start(s.ns.name()).await;

    let name = unique_name("pgp-orphan-db");
    let database = db_name(&name);
    let secret_name = format!("{name}-conn");
    s.apply_database(
        &name,
        &database,
        "",
        &format!(
            "  deletionPolicy: Orphan\n  writeConnectionSecretToRef: {{name: {secret_name}, namespace: {}}}\n",
            s.ns.name()
        ),
    );
    s.wait_db(&name, "Ready and Synced", ready).await;
    let secret = s
        .secrets
        .get(&secret_name)
        .await
        .expect("connection Secret at the given ref");
    let data = secret_data(&secret);

    kubectl_ok([
        "delete",
        "databases.postgres.dbclaim.io",
        &name,
        "--wait=false",
    ]);
    s.wait_gone(&name).await;
    assert!(
        s.exists("database", &database).await,
        "Orphan dropped the database"
    );
    assert!(s.exists("role", &database).await, "Orphan dropped the role");
    assert!(
        s.secrets
            .get_opt(&secret_name)
            .await
            .expect("get")
            .is_some(),
        "Orphan deleted the Secret"
    );
    connect(
        &s.pg.host,
        s.pg.port,
        &data["username"],
        &data["password"],
        &data["database"],
    )
    .await
    .unwrap_or_else(|e| panic!("the orphaned database still takes its credentials: {e}"));

    // A Secret someone else made is never taken over.
    let foreign = unique_name("pgp-foreign");
    kubectl_apply(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {foreign}, namespace: {}}}\nstringData: {{password: mine}}\n",
        s.ns.name()
    ));
    let name2 = unique_name("pgp-orphan-db2");
    s.apply_database(
        &name2,
        &db_name(&name2),
        "",
        &format!(
            "  writeConnectionSecretToRef: {{name: {foreign}, namespace: {}}}\n",
            s.ns.name()
        ),
    );
    let db = s
        .wait_db(&name2, "Synced=False for a foreign Secret", |d| {
            is(d, "Synced", "False")
        })
        .await;
    let synced = condition(&db, "Synced").expect("Synced");
    assert_eq!(synced.reason, "ReconcileError");
    assert!(
        synced
            .message
            .contains("exists and was not written by dbclaim"),
        "{}",
        synced.message
    );
    let untouched = s.secrets.get(&foreign).await.expect("foreign Secret");
    assert_eq!(
        secret_data(&untouched),
        [("password".to_string(), "mine".to_string())].into()
    );
    assert!(!s.exists("database", &db_name(&name2)).await);
    kubectl_ok([
        "delete",
        "databases.postgres.dbclaim.io",
        &name2,
        "--wait=false",
    ]);
    s.wait_gone(&name2).await;
    assert!(
        s.secrets.get_opt(&foreign).await.expect("get").is_some(),
        "deleted a foreign Secret"
    );
}

#[tokio::test]
async fn provider_errors_are_reported_and_fixing_the_admin_secret_recovers() {
    let _lock = support::exclusive().await;
    let s = Setup::new("pgp-err").await;
    let _provider = Provider::start(s.ns.name()).await;

    // No ProviderConfig yet: a message that says what to create.
    let name = unique_name("pgp-err-db");
    let database = db_name(&name);
    s.apply_database(&name, &database, "", "");
    let db = s
        .wait_db(&name, "Synced=False for the missing ProviderConfig", |d| {
            condition(d, "Synced")
                .is_some_and(|c| c.status == "False" && c.message.contains("not found"))
        })
        .await;
    let synced = condition(&db, "Synced").expect("Synced");
    assert_eq!(synced.reason, "ProviderError");
    assert!(
        synced.message.starts_with(&format!(
            "ProviderConfig \"{}\" not found: create",
            s.config
        )),
        "{}",
        synced.message
    );
    assert_eq!(
        condition(&db, "Ready").map(|c| c.reason).as_deref(),
        Some("Creating")
    );

    // A wrong admin password: the login is refused, plainly, without the password.
    let wrong = "definitely-not-the-admin-password";
    s.apply_admin_secret(wrong);
    s.apply_provider_config();
    let db = s
        .wait_db(&name, "Synced=False for the refused login", |d| {
            condition(d, "Synced")
                .is_some_and(|c| c.status == "False" && c.message.contains("rejected the login"))
        })
        .await;
    let synced = condition(&db, "Synced").expect("Synced");
    assert_eq!(synced.reason, "ProviderError");
    assert!(
        synced.message.contains(&format!(
            "rejected the login of role \"{}\"",
            s.pg.admin_user
        )),
        "{}",
        synced.message
    );
    assert!(
        !synced.message.contains(wrong),
        "the message shows the password"
    );
    let pc = s.configs.get(&s.config).await.expect("ProviderConfig");
    let pc_synced = pc
        .status
        .as_ref()
        .and_then(|st| st.conditions.iter().find(|c| c.type_ == "Synced").cloned());
    assert!(
        pc_synced
            .as_ref()
            .is_some_and(|c| c.status == "False" && !c.message.contains(wrong)),
        "{pc_synced:?}"
    );
    let events = events_of(&name).await;
    assert!(
        events.iter().any(|(r, _, _)| r == "ProviderError"),
        "{events:?}"
    );
    assert!(events.iter().all(|(_, n, _)| !n.contains(wrong)));
    // Not re-announced on every retry: one event per distinct message.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let again = events_of(&name).await;
    let login_events = again
        .iter()
        .filter(|(_, n, _)| n.contains("rejected the login"))
        .count();
    assert_eq!(login_events, 1, "{again:?}");

    // Fixing the Secret recovers without waiting out the backoff.
    let fixed_at = Instant::now();
    s.apply_admin_secret(&s.pg.admin_password);
    s.wait_db(&name, "Ready after fixing the admin Secret", ready)
        .await;
    assert!(
        fixed_at.elapsed() < Duration::from_secs(30),
        "recovery took {:?}",
        fixed_at.elapsed()
    );
    assert!(s.exists("database", &database).await);

    // A healthy ProviderConfig's next check is 10 minutes away: only the
    // watch of its credentials Secret can tell it the Secret changed.
    let pc_synced = || async {
        s.configs
            .get(&s.config)
            .await
            .ok()
            .and_then(|pc| pc.status)
            .and_then(|st| st.conditions.into_iter().find(|c| c.type_ == "Synced"))
            .map(|c| c.status)
    };
    let healthy = "the ProviderConfig Synced=True";
    support::wait_for(Duration::from_secs(30), healthy, || async {
        pc_synced().await.as_deref() == Some("True")
    })
    .await;
    s.apply_admin_secret(wrong);
    support::wait_for(
        Duration::from_secs(30),
        "the ProviderConfig to see its changed Secret",
        || async { pc_synced().await.as_deref() == Some("False") },
    )
    .await;
    s.apply_admin_secret(&s.pg.admin_password);
    support::wait_for(Duration::from_secs(30), healthy, || async {
        pc_synced().await.as_deref() == Some("True")
    })
    .await;

    kubectl_ok([
        "delete",
        "databases.postgres.dbclaim.io",
        &name,
        "--wait=false",
    ]);
    s.wait_gone(&name).await;
    assert!(!s.exists("database", &database).await);
}
