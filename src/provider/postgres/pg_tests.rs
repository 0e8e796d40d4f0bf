//! The SQL layer against a real PostgreSQL, started with `e2e/postgres up`
//! (initdb + pg_ctl on a free loopback port; admin CREATEROLE CREATEDB, no
//! superuser, like a managed cloud database). Nothing is skipped: without
//! the helper or the server binaries this fails, saying why.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use tokio_postgres::Client;

use super::plan::{Desired, Step};
use super::server::{self, ConnectParams, Pool, ServerError, Tls};
use super::sql;
use crate::provider::managed::ownership::{Claim, Identity};

/// A server for this test, stopped and deleted on drop (also when a test panics).
struct TestServer {
    helper: PathBuf,
    state: tempfile::TempDir,
    exports: BTreeMap<String, String>,
}

impl TestServer {
    fn up() -> Self {
        let helper = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("e2e/postgres");
        assert!(
            helper.is_file(),
            "PostgreSQL helper {} is missing",
            helper.display()
        );
        let state = tempfile::Builder::new()
            .prefix("dbclaim-pg-unit-")
            .tempdir()
            .expect("temp dir");
        let out = Command::new(&helper)
            .args(["up", "--state"])
            .arg(state.path().join("s"))
            .output()
            .expect("cannot run e2e/postgres");
        assert!(
            out.status.success(),
            "e2e/postgres up failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let exports = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix("export "))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Self {
            helper,
            state,
            exports,
        }
    }

    fn get(&self, key: &str) -> String {
        self.exports
            .get(key)
            .unwrap_or_else(|| panic!("e2e/postgres printed no {key}: {:?}", self.exports))
            .clone()
    }

    fn admin(&self) -> ConnectParams {
        ConnectParams {
            host: self.get("PGHOST"),
            port: self.get("PGPORT").parse().expect("PGPORT"),
            tls: Tls::Prefer,
            user: self.get("DBCLAIM_PG_ADMIN_USER"),
            password: self.get("DBCLAIM_PG_ADMIN_PASSWORD"),
        }
    }

    /// The bootstrap superuser over the unix socket (trust).
    fn superuser(&self) -> ConnectParams {
        ConnectParams {
            host: self.get("DBCLAIM_PG_SOCKET_DIR"),
            user: "postgres".into(),
            password: String::new(),
            tls: Tls::Disable,
            ..self.admin()
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = Command::new(&self.helper)
            .args(["down", "--state"])
            .arg(self.state.path().join("s"))
            .output();
    }
}

/// What a Database of UID `uid-<name>` in cluster `test` asks for.
fn desired(name: &str, limit: i64, extensions: &[&str]) -> Desired {
    Desired {
        name: name.into(),
        connection_limit: limit,
        extensions: extensions.iter().map(|e| e.to_string()).collect(),
        owner: Identity {
            cluster: "test".into(),
            uid: format!("uid-{name}"),
        },
        claim: Claim::None,
    }
}

fn removal(name: &str) -> Desired {
    desired(name, -1, &[])
}

async fn exists(admin: &Client, what: &str, name: &str) -> bool {
    let q = match what {
        "role" => "SELECT 1 FROM pg_roles WHERE rolname = $1",
        _ => "SELECT 1 FROM pg_database WHERE datname = $1",
    };
    admin.query_opt(q, &[&name]).await.expect(q).is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_layer_against_real_postgres() {
    let pg = TestServer::up();
    let params = pg.admin();
    let pool = Pool::default();
    let admin = pool
        .admin("default", &params)
        .await
        .expect("admin connects");

    // The pool hands out the same connection while nothing changes.
    let again = pool.admin("default", &params).await.expect("cached");
    assert!(Arc::ptr_eq(&admin, &again));

    // Every session carries server-side limits (audit L7).
    for (setting, want) in [("lock_timeout", "10s"), ("statement_timeout", "1min")] {
        let v: String = value(&admin, &format!("SHOW {setting}")).await;
        assert_eq!(v, want, "{setting}");
    }

    let privileges = server::admin_privileges(&admin).await.expect("privileges");
    assert!(!privileges.superuser && privileges.create_role && privileges.create_db);
    assert_eq!(privileges.missing(&params.user), None);

    create_idempotently(&admin, &params).await;
    connection_limit(&admin, &params).await;
    extensions(&admin, &params).await;
    password_drift(&admin, &params).await;
    isolation(&admin, &params).await;
    drop_with_open_session(&admin, &params).await;
    orphan_and_adopt(&admin, &params).await;
    concurrent_creates(&admin, &params).await;
    odd_names(&admin, &params).await;
    superuser_admin(&pg).await;
    never_touches_what_it_did_not_create(&pg, &admin, &params).await;
    connection_errors(&pg, &pool).await;
    tls(&pg).await;
}

async fn create_idempotently(admin: &Client, params: &ConnectParams) {
    let d = desired("app_one", -1, &[]);
    let first = server::sync_database(admin, params, &d, "pw-one", false)
        .await
        .expect("first sync");
    assert_eq!(
        first.steps,
        vec![
            Step::CreateRole,
            Step::GrantRoleToAdmin,
            Step::CreateDatabase {
                connection_limit: -1
            },
            Step::MarkDatabase,
            Step::RevokePublicAccess
        ]
    );
    assert!(first.password_verified && !first.password_reset);
    for q in [
        "SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = 'app_one'",
        "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = 'app_one'",
    ] {
        let comment: Option<String> = value(admin, q).await;
        assert_eq!(
            comment.as_deref(),
            Some("dbclaim:owner=test/uid-app_one"),
            "{q}"
        );
    }
    assert_eq!(first.connection_limit, -1);

    // Second time: nothing to change; the password is checked by logging in.
    let second = server::sync_database(admin, params, &d, "pw-one", false)
        .await
        .expect("second sync");
    assert_eq!(second.steps, vec![]);
    assert!(second.password_verified && !second.password_reset);

    // The tenant logs in with the password and owns its database.
    let tenant = login(params, "app_one", "pw-one")
        .await
        .expect("tenant login");
    tenant
        .batch_execute("CREATE TABLE t (id int); INSERT INTO t VALUES (42)")
        .await
        .expect("tenant writes");
    let row = tenant
        .query_one("SELECT id FROM t", &[])
        .await
        .expect("read");
    assert_eq!(row.get::<_, i32>(0), 42);
}

async fn connection_limit(admin: &Client, params: &ConnectParams) {
    let d = desired("app_one", 3, &[]);
    let r = server::sync_database(admin, params, &d, "pw-one", true)
        .await
        .expect("limit");
    assert_eq!(r.steps, vec![Step::SetConnectionLimit { from: -1, to: 3 }]);
    assert_eq!(r.connection_limit, 3);
    let limit: i32 = value(
        admin,
        "SELECT datconnlimit FROM pg_database WHERE datname = 'app_one'",
    )
    .await;
    assert_eq!(limit, 3);
    let r = server::sync_database(admin, params, &d, "pw-one", true)
        .await
        .expect("again");
    assert_eq!(r.steps, vec![]);
    // Back to unlimited.
    let r = server::sync_database(admin, params, &desired("app_one", -1, &[]), "pw-one", true)
        .await
        .expect("unlimited");
    assert_eq!(r.connection_limit, -1);
}

async fn extensions(admin: &Client, params: &ConnectParams) {
    let d = desired("app_one", -1, &["pgcrypto", "citext"]);
    let r = server::sync_database(admin, params, &d, "pw-one", true)
        .await
        .expect("extensions");
    assert_eq!(r.extensions_created, vec!["pgcrypto", "citext"]);
    assert_eq!(r.extensions, vec!["citext", "pgcrypto"]);
    let r = server::sync_database(admin, params, &d, "pw-one", true)
        .await
        .expect("again");
    assert!(r.extensions_created.is_empty() && r.steps.is_empty());
    assert_eq!(r.extensions, vec!["citext", "pgcrypto"]);

    // The tenant can use them.
    let tenant = login(params, "app_one", "pw-one").await.expect("tenant");
    // Installed as the database's owner, not as the admin (audit M6).
    let owner: String = value(
        &tenant,
        "SELECT extowner::regrole::text FROM pg_extension WHERE extname = 'citext'",
    )
    .await;
    assert_eq!(owner, "app_one");
    tenant
        .query_one(
            "SELECT encode(digest('x', 'sha256'), 'hex'), 'A'::citext = 'a'",
            &[],
        )
        .await
        .expect("extension functions");

    // One that does not exist: a clear error naming it.
    let bad = desired("app_one", -1, &["no_such_extension"]);
    let err = server::sync_database(admin, params, &bad, "pw-one", true)
        .await
        .expect_err("unknown extension");
    let msg = err.to_string();
    assert!(
        msg.contains("create extension \"no_such_extension\" in database \"app_one\""),
        "{msg}"
    );
    assert!(!err.connection_lost(), "{err:?}");
}

async fn password_drift(admin: &Client, params: &ConnectParams) {
    let d = desired("app_one", -1, &[]);
    admin
        .batch_execute("ALTER ROLE app_one PASSWORD 'changed-by-hand'")
        .await
        .expect("drift");
    // Known good (same Secret version): no check, no change.
    let r = server::sync_database(admin, params, &d, "pw-one", true)
        .await
        .expect("known good");
    assert!(!r.password_reset);
    // First sync of a process: the login fails, the password is reset.
    let r = server::sync_database(admin, params, &d, "pw-one", false)
        .await
        .expect("reset");
    assert!(r.password_reset && r.password_verified);
    login(params, "app_one", "pw-one")
        .await
        .expect("login after reset");
    // A new password in the Secret is taken over.
    let r = server::sync_database(admin, params, &d, "pw-one-b", false)
        .await
        .expect("new secret");
    assert!(r.password_reset);
    login(params, "app_one", "pw-one-b")
        .await
        .expect("new password");
    let err = login(params, "app_one", "pw-one")
        .await
        .expect_err("old password");
    assert_bad_password(&err);
    let r = server::sync_database(admin, params, &d, "pw-one-b", false)
        .await
        .expect("quiet");
    assert!(!r.password_reset && r.steps.is_empty());
}

async fn isolation(admin: &Client, params: &ConnectParams) {
    server::sync_database(admin, params, &desired("app_two", -1, &[]), "pw-two", false)
        .await
        .expect("second tenant");
    let err = server::connect(&params.as_user("app_two", "pw-two"), "app_one")
        .await
        .expect_err("other tenant's database");
    assert!(err.to_string().contains("permission denied"), "{err}");
    login(params, "app_two", "pw-two")
        .await
        .expect("own database");
}

async fn drop_with_open_session(admin: &Client, params: &ConnectParams) {
    let tenant = login(params, "app_one", "pw-one-b")
        .await
        .expect("tenant session");
    tenant.query_one("SELECT 1", &[]).await.expect("alive");
    let r = server::remove(admin, &removal("app_one"))
        .await
        .expect("remove");
    assert!(r.database_dropped && r.role_dropped, "{r:?}");
    assert!(r.sessions_terminated >= 1, "{r:?}");
    assert!(!exists(admin, "database", "app_one").await);
    assert!(!exists(admin, "role", "app_one").await);
    assert!(tenant.query_one("SELECT 1", &[]).await.is_err());
    // Again: nothing left, no error.
    let r = server::remove(admin, &removal("app_one"))
        .await
        .expect("remove again");
    assert_eq!(r, server::RemoveReport::default());
}

/// Orphan leaves database and role alone; a later Database with the same
/// name (same Secret) adopts them without changes and keeps the data.
async fn orphan_and_adopt(admin: &Client, params: &ConnectParams) {
    let d = desired("app_two", -1, &[]);
    let tenant = login(params, "app_two", "pw-two").await.expect("tenant");
    tenant
        .batch_execute("CREATE TABLE kept (v text); INSERT INTO kept VALUES ('still here')")
        .await
        .expect("data");
    drop(tenant);
    // (An Orphan deletion runs no SQL.) A new process adopts it.
    let r = server::sync_database(admin, params, &d, "pw-two", false)
        .await
        .expect("adopt");
    assert_eq!(r.steps, vec![]);
    assert!(!r.password_reset && r.password_verified);
    let tenant = login(params, "app_two", "pw-two").await.expect("tenant");
    let v: String = value(&tenant, "SELECT v FROM kept").await;
    assert_eq!(v, "still here");
    server::remove(admin, &removal("app_two"))
        .await
        .expect("cleanup");
}

async fn concurrent_creates(admin: &Client, params: &ConnectParams) {
    let d = desired("app_race", 5, &[]);
    let second = server::connect(params, "postgres")
        .await
        .expect("second admin");
    let (a, b) = tokio::join!(
        server::sync_database(admin, params, &d, "pw-race", false),
        server::sync_database(&second, params, &d, "pw-race", false),
    );
    a.expect("first racer");
    b.expect("second racer");
    assert!(exists(admin, "database", "app_race").await);
    login(params, "app_race", "pw-race").await.expect("login");
    server::remove(admin, &removal("app_race"))
        .await
        .expect("cleanup");
}

async fn odd_names(admin: &Client, params: &ConnectParams) {
    // Allowed by the schema: hyphens.
    let d = desired("team-a-orders", -1, &["uuid-ossp"]);
    let r = server::sync_database(admin, params, &d, "pw'\"@ x", false)
        .await
        .expect("hyphenated");
    assert_eq!(r.extensions, vec!["uuid-ossp"]);
    server::connect(
        &params.as_user("team-a-orders", "pw'\"@ x"),
        "team-a-orders",
    )
    .await
    .expect("login");
    server::remove(admin, &removal("team-a-orders"))
        .await
        .expect("cleanup");

    // The quoting holds against the real parser for any name.
    let weird = "we\"ird 'na;me\\ --";
    let v = sql::Verifier::scram("x");
    admin
        .batch_execute(&sql::create_role(weird, &v))
        .await
        .expect("create weird");
    assert!(exists(admin, "role", weird).await);
    admin
        .batch_execute(&sql::drop_role(weird))
        .await
        .expect("drop weird");
    assert!(!exists(admin, "role", weird).await);
    let row = admin
        .query_one(&format!("SELECT {}::text", sql::literal(weird)), &[])
        .await
        .expect("literal");
    assert_eq!(row.get::<_, String>(0), weird);
}

async fn superuser_admin(pg: &TestServer) {
    let su = pg.superuser();
    let admin = server::connect(&su, "postgres").await.expect("superuser");
    let d = desired("app_su", -1, &[]);
    let r = server::sync_database(&admin, &pg.admin(), &d, "pw-su", false)
        .await
        .expect("as superuser");
    assert!(!r.steps.contains(&Step::GrantRoleToAdmin), "{:?}", r.steps);
    assert!(r.steps.contains(&Step::CreateRole));
    server::remove(&admin, &removal("app_su"))
        .await
        .expect("cleanup");
}

async fn comment(admin: &Client, what: &str, name: &str) -> Option<String> {
    let q = match what {
        "role" => "SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = $1",
        _ => "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1",
    };
    admin.query_one(q, &[&name]).await.expect(q).get(0)
}

async fn owner_of(admin: &Client, name: &str) -> String {
    admin
        .query_one(
            "SELECT pg_get_userbyid(datdba)::text FROM pg_database WHERE datname = $1",
            &[&name],
        )
        .await
        .expect("owner")
        .get(0)
}

/// Roles and databases dbclaim did not create (a DBA's, another object's,
/// another cluster's) are refused, unchanged and never dropped; adoption
/// marks first and never takes a privileged role; a crash between CREATE
/// DATABASE and its COMMENT leaves a database that is still recognised.
async fn never_touches_what_it_did_not_create(
    pg: &TestServer,
    admin: &Client,
    params: &ConnectParams,
) {
    let su = server::connect(&pg.superuser(), "postgres")
        .await
        .expect("superuser");
    // CREATE DATABASE cannot share a multi-statement string.
    for statement in [
        "CREATE ROLE dba_plain LOGIN PASSWORD 'dba-pw'",
        "CREATE ROLE dba_super SUPERUSER LOGIN PASSWORD 'dba-pw'",
        "CREATE DATABASE dba_plain OWNER postgres",
        "CREATE DATABASE dba_super OWNER postgres",
    ] {
        su.batch_execute(statement).await.expect(statement);
    }
    for name in ["dba_plain", "dba_super"] {
        let err = server::sync_database(admin, params, &desired(name, -1, &[]), "tenant-pw", false)
            .await
            .expect_err("not ours");
        assert!(
            matches!(&err, ServerError::NotOurs(m) if m.contains(&format!("role \"{name}\" exists and is not ours"))),
            "{err:?}"
        );
        let r = server::remove(admin, &removal(name)).await.expect("remove");
        assert!(!r.database_dropped && !r.role_dropped, "{r:?}");
        assert_eq!(r.left.len(), 2, "{r:?}");
        assert!(exists(admin, "role", name).await && exists(admin, "database", name).await);
        assert_eq!(
            owner_of(admin, name).await,
            "postgres",
            "ownership unchanged"
        );
        assert_eq!(comment(admin, "role", name).await, None);
        server::connect(&params.as_user(name, "dba-pw"), "postgres")
            .await
            .expect("the DBA's password still works");
    }
    // Adoption: the plain role is marked and gets the database; the
    // superuser is refused even so.
    let adopt = |name: &str| Desired {
        claim: Claim::Adopt,
        ..desired(name, -1, &[])
    };
    let err = server::sync_database(admin, params, &adopt("dba_super"), "tenant-pw", false)
        .await
        .expect_err("superuser");
    assert!(err.to_string().contains("SUPERUSER"), "{err}");
    server::connect(&params.as_user("dba_super", "dba-pw"), "postgres")
        .await
        .expect("superuser's password unchanged");
    // (An admin without SUPERUSER cannot give a database owned by the
    // bootstrap superuser away; a DBA hands it over first.)
    su.batch_execute("ALTER DATABASE dba_plain OWNER TO dbclaim_admin")
        .await
        .expect("hand over");
    let r = server::sync_database(admin, params, &adopt("dba_plain"), "tenant-pw", false)
        .await
        .expect("adopted");
    assert_eq!(r.steps.first(), Some(&Step::MarkRole), "{:?}", r.steps);
    let at = |step: &Step| r.steps.iter().position(|s| s == step);
    assert!(
        at(&Step::MarkDatabase)
            < at(&Step::SetOwner {
                from: "dbclaim_admin".into()
            }),
        "marked before any change: {:?}",
        r.steps
    );
    assert!(r.password_reset, "adoption takes the Secret's password");
    assert_eq!(owner_of(admin, "dba_plain").await, "dba_plain");
    let mark = Some("dbclaim:owner=test/uid-dba_plain".to_string());
    assert_eq!(comment(admin, "role", "dba_plain").await, mark);
    assert_eq!(comment(admin, "database", "dba_plain").await, mark);

    // The same name for another object (re-created: another UID) or for
    // another cluster: refused, and never dropped.
    for owner in [
        Identity {
            cluster: "test".into(),
            uid: "uid-new".into(),
        },
        Identity {
            cluster: "other".into(),
            uid: "uid-dba_plain".into(),
        },
    ] {
        let d = Desired {
            owner,
            ..desired("dba_plain", -1, &[])
        };
        let err = server::sync_database(admin, params, &d, "other-pw", false)
            .await
            .expect_err("another owner");
        assert!(matches!(err, ServerError::NotOurs(_)), "{err:?}");
        let r = server::remove(admin, &d).await.expect("remove");
        assert!(!r.database_dropped && !r.role_dropped, "{r:?}");
    }
    login(params, "dba_plain", "tenant-pw")
        .await
        .expect("password unchanged by the refused ones");
    let r = server::remove(admin, &removal("dba_plain"))
        .await
        .expect("ours");
    assert!(r.database_dropped && r.role_dropped, "{r:?}");

    // A crash after CREATE DATABASE, before its COMMENT: ours all the same.
    let d = desired("app_crash", -1, &[]);
    let v = sql::Verifier::scram("pw-crash");
    admin
        .batch_execute(&Step::CreateRole.sql("app_crash", &d.comment(), Some(&v)))
        .await
        .expect("role with mark");
    admin
        .batch_execute(&sql::grant_role_to_admin("app_crash"))
        .await
        .expect("grant");
    admin
        .batch_execute(&sql::create_database("app_crash", "app_crash", -1))
        .await
        .expect("database without mark");
    let r = server::sync_database(admin, params, &d, "pw-crash", false)
        .await
        .expect("recognised");
    assert_eq!(r.steps, vec![Step::MarkDatabase, Step::RevokePublicAccess]);
    assert_eq!(
        comment(admin, "database", "app_crash").await,
        Some(d.comment())
    );
    server::remove(admin, &removal("app_crash"))
        .await
        .expect("cleanup");
    for statement in ["DROP DATABASE dba_super", "DROP ROLE dba_super"] {
        su.batch_execute(statement).await.expect(statement);
    }
}

async fn connection_errors(pg: &TestServer, pool: &Pool) {
    let good = pg.admin();
    let bad = good.as_user(&good.user, "not-the-password");
    let err = pool
        .admin("default", &bad)
        .await
        .expect_err("wrong admin password");
    let msg = err.to_string();
    assert_bad_password(&err);
    assert!(
        msg.contains("rejected the login of role \"dbclaim_admin\""),
        "{msg}"
    );
    assert!(!msg.contains("not-the-password"), "{msg}");
    // The fixed Secret works again through the same pool key.
    pool.admin("default", &good).await.expect("recovered");

    // Nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let nowhere = ConnectParams {
        port,
        ..good.clone()
    };
    let err = server::connect(&nowhere, "postgres")
        .await
        .expect_err("refused");
    assert!(matches!(err, ServerError::Unreachable { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with(&format!("cannot connect to PostgreSQL at 127.0.0.1:{port}")),
        "{err}"
    );

    // sslMode require against a server without TLS: refused, plainly.
    let require = ConnectParams {
        tls: Tls::Require,
        ..good.clone()
    };
    let err = server::connect(&require, "postgres")
        .await
        .expect_err("no TLS on the server");
    assert!(err.to_string().contains("TLS"), "{err}");
    // disable works.
    let disable = ConnectParams {
        tls: Tls::Disable,
        ..good
    };
    server::connect(&disable, "postgres").await.expect("plain");
}

/// A session of `role` with `password` in its own database.
async fn login(params: &ConnectParams, role: &str, password: &str) -> Result<Client, ServerError> {
    server::connect(&params.as_user(role, password), role).await
}

/// The first column of the one row `sql` returns.
async fn value<T: for<'a> tokio_postgres::types::FromSql<'a>>(c: &Client, sql: &str) -> T {
    let row = c.query_one(sql, &[]).await;
    row.unwrap_or_else(|e| panic!("{sql}: {e}")).get(0)
}

fn assert_bad_password(err: &ServerError) {
    let bad_password = matches!(
        err,
        ServerError::Login {
            bad_password: true,
            ..
        }
    );
    assert!(bad_password, "{err:?}");
}

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tls")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn cas(name: &str) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    super::tls::ca_certificates(&fixture(name)).expect("CA fixture")
}

/// Turns TLS on (the fixture certificate for localhost and 127.0.0.1 from
/// a private CA, as the superuser over the socket) and checks every mode.
async fn tls(pg: &TestServer) {
    let dir = pg.get("DBCLAIM_PG_SOCKET_DIR");
    let (crt, key) = (format!("{dir}/server.crt"), format!("{dir}/server.key"));
    std::fs::write(&crt, fixture("server.crt")).expect("write server.crt");
    std::fs::write(&key, fixture("server.key")).expect("write server.key");
    // The server runs as `postgres` when the tests run as root.
    let owner = Command::new("stat")
        .args(["-c", "%U", &dir])
        .output()
        .expect("stat");
    let owner = String::from_utf8_lossy(&owner.stdout).trim().to_string();
    for f in [&crt, &key] {
        let ok = Command::new("chown")
            .arg(&owner)
            .arg(f)
            .status()
            .expect("chown");
        assert!(ok.success());
    }
    let ok = Command::new("chmod")
        .args(["600", &key])
        .status()
        .expect("chmod");
    assert!(ok.success());
    let su = server::connect(&pg.superuser(), "postgres")
        .await
        .expect("superuser");
    for statement in [
        format!("ALTER SYSTEM SET ssl_cert_file = {}", sql::literal(&crt)),
        format!("ALTER SYSTEM SET ssl_key_file = {}", sql::literal(&key)),
        "ALTER SYSTEM SET ssl = on".to_string(),
    ] {
        su.batch_execute(&statement).await.expect("enable ssl");
    }
    su.query_one("SELECT pg_reload_conf()", &[])
        .await
        .expect("reload");
    // The reload is asynchronous: wait until new sessions see it.
    for _ in 0..50 {
        let on: String = value(&su, "SHOW ssl").await;
        let fresh = server::connect(&pg.superuser(), "postgres")
            .await
            .expect("su");
        let on_fresh: String = value(&fresh, "SHOW ssl").await;
        if on == "on" && on_fresh == "on" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let tls_modes = [
        Tls::Require,
        Tls::Prefer,
        Tls::VerifyCa(cas("ca.crt")),
        Tls::VerifyFull(cas("ca.crt")),
    ];
    for mode in tls_modes {
        let params = ConnectParams {
            tls: mode.clone(),
            ..pg.admin()
        };
        let c = server::connect(&params, "postgres")
            .await
            .unwrap_or_else(|e| panic!("{mode:?} over TLS: {e}"));
        let ssl: bool = value(
            &c,
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        )
        .await;
        assert!(ssl, "{mode:?} did not encrypt");
    }

    // A certificate from another CA: refused before any password is sent,
    // saying why.
    for mode in [
        Tls::VerifyCa(cas("other-ca.crt")),
        Tls::VerifyFull(cas("other-ca.crt")),
    ] {
        let params = ConnectParams {
            tls: mode.clone(),
            ..pg.admin()
        };
        let err = server::connect(&params, "postgres")
            .await
            .expect_err("wrong CA");
        let msg = err.to_string();
        assert!(matches!(err, ServerError::Tls(_)), "{err:?}");
        assert!(
            msg.contains("is not accepted with sslMode verify-") && msg.contains("unknown issuer"),
            "{msg}"
        );
    }
    // The CA bundle is part of the pool key: another bundle, another
    // connection, verified against it.
    let pool = Pool::default();
    let full = ConnectParams {
        tls: Tls::VerifyFull(cas("ca.crt")),
        ..pg.admin()
    };
    let first = pool.admin("tls", &full).await.expect("verify-full");
    let same = pool.admin("tls", &full).await.expect("cached");
    assert!(Arc::ptr_eq(&first, &same));
    let mut both = cas("other-ca.crt");
    both.extend(cas("ca.crt"));
    let rotated = ConnectParams {
        tls: Tls::VerifyFull(both),
        ..pg.admin()
    };
    let second = pool.admin("tls", &rotated).await.expect("new bundle");
    assert!(!Arc::ptr_eq(&first, &second));
    let wrong = ConnectParams {
        tls: Tls::VerifyFull(cas("other-ca.crt")),
        ..pg.admin()
    };
    pool.admin("tls", &wrong)
        .await
        .expect_err("the cached connection is not reused for a bundle that fails");
}
