//! SQL text, built without I/O.
//!
//! DDL takes no bind parameters, so names and literals are quoted here:
//! identifiers in `"` with `"` doubled, literals in `'` with `'` doubled
//! (and, should one hold a backslash, in the `E'…'` form with backslashes
//! doubled, so the result is the same whatever `standard_conforming_strings`
//! says). Passwords reach the server only as SCRAM verifiers, never in clear.

/// `name` as an SQL identifier.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `value` as an SQL string literal.
pub fn literal(value: &str) -> String {
    let doubled = value.replace('\'', "''");
    if doubled.contains('\\') {
        format!("E'{}'", doubled.replace('\\', "\\\\"))
    } else {
        format!("'{doubled}'")
    }
}

/// A password as it may appear in DDL: a SCRAM-SHA-256 verifier, so the
/// clear text is neither sent in a statement nor kept in server logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Verifier(String);

impl Verifier {
    /// Hashes a clear-text password (random salt, 4096 iterations).
    pub fn scram(password: &str) -> Self {
        let verifier = postgres_protocol::password::scram_sha_256(password.as_bytes());
        Self(verifier)
    }
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Verifier(<redacted>)")
    }
}

pub fn create_role(role: &str, password: &Verifier) -> String {
    let (r, p) = (ident(role), literal(&password.0));
    format!("CREATE ROLE {r} LOGIN PASSWORD {p}")
}

/// The ownership mark on a role; run in the same transaction as its CREATE.
pub fn comment_on_role(role: &str, comment: &str) -> String {
    format!("COMMENT ON ROLE {} IS {}", ident(role), literal(comment))
}

pub fn comment_on_database(database: &str, comment: &str) -> String {
    let (d, c) = (ident(database), literal(comment));
    format!("COMMENT ON DATABASE {d} IS {c}")
}

pub fn alter_role_password(role: &str, password: &Verifier) -> String {
    let (r, p) = (ident(role), literal(&password.0));
    format!("ALTER ROLE {r} PASSWORD {p}")
}

pub fn alter_role_login(role: &str) -> String {
    format!("ALTER ROLE {} LOGIN", ident(role))
}

/// Makes the admin a member of `role`, so that an admin with CREATEROLE but
/// without SUPERUSER may give it databases, and later drop them.
pub fn grant_role_to_admin(role: &str) -> String {
    format!("GRANT {} TO CURRENT_USER", ident(role))
}

/// Must run outside a transaction block.
pub fn create_database(database: &str, owner: &str, connection_limit: i64) -> String {
    let (d, o) = (ident(database), ident(owner));
    format!("CREATE DATABASE {d} OWNER {o} CONNECTION LIMIT {connection_limit}")
}

pub fn alter_database_connection_limit(database: &str, connection_limit: i64) -> String {
    let d = ident(database);
    format!("ALTER DATABASE {d} CONNECTION LIMIT {connection_limit}")
}

pub fn alter_database_owner(database: &str, owner: &str) -> String {
    let (d, o) = (ident(database), ident(owner));
    format!("ALTER DATABASE {d} OWNER TO {o}")
}

/// Other tenants' roles may not connect to this database.
pub fn revoke_connect_from_public(database: &str) -> String {
    let d = ident(database);
    format!("REVOKE CONNECT, TEMPORARY ON DATABASE {d} FROM PUBLIC")
}

/// Runs inside the database the extension is for, as its owner `owner`
/// rather than as the admin (audit M6): the tenant owns the database and
/// its `public` schema and may have planted objects there, which an
/// extension script run with the admin's privileges could pick up. As the
/// owner, only trusted extensions install, with no more than the tenant's
/// own rights. One simple query: the role is reset even if it fails.
pub fn create_extension(extension: &str, owner: &str) -> String {
    let (o, e) = (ident(owner), ident(extension));
    format!("SET LOCAL ROLE {o}; CREATE EXTENSION IF NOT EXISTS {e}")
}

/// Ends the database's other sessions first (PostgreSQL 13+).
pub fn drop_database(database: &str) -> String {
    format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", ident(database))
}

pub fn drop_role(role: &str) -> String {
    format!("DROP ROLE IF EXISTS {}", ident(role))
}

/// A login of the group role `group` (two-login rotation): acts as the
/// group from login on (`SET ROLE`), so what it creates is the group's.
/// Run with its mark in one transaction.
pub fn create_login(login: &str, group: &str, password: &Verifier, comment: &str) -> String {
    format!(
        "BEGIN; CREATE ROLE {l} LOGIN PASSWORD {p} IN ROLE {g}; {c}; \
         ALTER ROLE {l} SET role = {gl}; COMMIT",
        l = ident(login),
        p = literal(&password.0),
        g = ident(group),
        c = comment_on_role(login, comment),
        gl = literal(group),
    )
}

/// An existing login of `group` made current again with a new password.
pub fn renew_login(login: &str, group: &str, password: &Verifier) -> String {
    format!(
        "BEGIN; ALTER ROLE {l} LOGIN PASSWORD {p}; GRANT {g} TO {l}; \
         ALTER ROLE {l} SET role = {gl}; COMMIT",
        l = ident(login),
        p = literal(&password.0),
        g = ident(group),
        gl = literal(group),
    )
}

/// Refuses a previous login. The group role itself (the login of a
/// database from before two logins) keeps LOGIN, which the sync restores
/// anyway, and loses its password instead.
pub fn disable_login(login: &str, group: &str) -> String {
    if login == group {
        format!("ALTER ROLE {} PASSWORD NULL", ident(login))
    } else {
        format!("ALTER ROLE {} NOLOGIN", ident(login))
    }
}

/// Queries with bind parameters (`$1` = a role or database name).
pub mod query {
    /// One row if the role exists: can it log in, do the admin's
    /// privileges include its own (needed to own and drop its database),
    /// the attributes that forbid adoption, and its comment (the mark).
    pub const ROLE: &str = "SELECT r.rolcanlogin, pg_has_role(current_user, r.oid, 'USAGE'), \
         r.rolsuper, r.rolcreaterole, r.rolreplication, r.rolbypassrls, \
         pg_catalog.shobj_description(r.oid, 'pg_authid') \
         FROM pg_catalog.pg_roles r WHERE r.rolname = $1";

    /// One row if the database exists: its connection limit, its owner, and
    /// whether PUBLIC may connect to it.
    pub const DATABASE: &str = "SELECT d.datconnlimit::int8, pg_catalog.pg_get_userbyid(d.datdba)::text, \
         EXISTS (SELECT 1 FROM pg_catalog.aclexplode(COALESCE(d.datacl, pg_catalog.acldefault('d', d.datdba))) a \
                 WHERE a.grantee = 0 AND a.privilege_type IN ('CONNECT', 'TEMPORARY')), \
         pg_catalog.shobj_description(d.oid, 'pg_database') \
         FROM pg_catalog.pg_database d WHERE d.datname = $1";

    /// The admin role's own attributes: superuser, createrole, createdb.
    pub const ADMIN: &str = "SELECT rolsuper, rolcreaterole, rolcreatedb \
         FROM pg_catalog.pg_roles WHERE rolname = current_user";

    /// Extensions installed in the current database (plpgsql comes with every one).
    pub const EXTENSIONS: &str =
        "SELECT extname::text FROM pg_catalog.pg_extension WHERE extname <> 'plpgsql' ORDER BY 1";

    /// Ends the sessions on database `$1` of the roles `$2` (a failover
    /// drill): another role's sessions, on this database or another, stay.
    pub const TERMINATE_ROLES: &str = "SELECT count(pg_catalog.pg_terminate_backend(pid)) \
         FROM pg_catalog.pg_stat_activity WHERE datname = $1 AND usename::text = ANY($2::text[]) \
         AND pid <> pg_catalog.pg_backend_pid()";

    /// Ends every other session on database `$1`.
    pub const TERMINATE: &str = "SELECT count(pg_catalog.pg_terminate_backend(pid)) \
         FROM pg_catalog.pg_stat_activity WHERE datname = $1 AND pid <> pg_catalog.pg_backend_pid()";
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn identifiers_double_quotes() {
        assert_eq!(ident("orders"), r#""orders""#);
        assert_eq!(ident(r#"a"b"#), r#""a""b""#);
        assert_eq!(ident(r#"""#), r#""""""#);
        assert_eq!(
            ident("Mixed Case; DROP TABLE x; --"),
            r#""Mixed Case; DROP TABLE x; --""#
        );
        assert_eq!(ident("uuid-ossp"), r#""uuid-ossp""#);
        assert_eq!(ident("ünï"), "\"ünï\"");
    }

    #[test]
    fn literals_double_single_quotes() {
        assert_eq!(literal("abc"), "'abc'");
        assert_eq!(literal("it's"), "'it''s'");
        assert_eq!(literal("'; DROP ROLE x; --"), "'''; DROP ROLE x; --'");
        assert_eq!(literal(r"a\b'c"), r"E'a\\b''c'");
        assert_eq!(literal(""), "''");
    }

    #[test]
    fn ddl_quotes_every_name() {
        let v = Verifier("SCRAM-SHA-256$4096:c2FsdA==$a:b".into());
        assert_eq!(
            create_role("orders", &v),
            r#"CREATE ROLE "orders" LOGIN PASSWORD 'SCRAM-SHA-256$4096:c2FsdA==$a:b'"#
        );
        assert_eq!(
            alter_role_password(r#"x"y"#, &v),
            r#"ALTER ROLE "x""y" PASSWORD 'SCRAM-SHA-256$4096:c2FsdA==$a:b'"#
        );
        assert_eq!(alter_role_login("o"), r#"ALTER ROLE "o" LOGIN"#);
        assert_eq!(grant_role_to_admin("o"), r#"GRANT "o" TO CURRENT_USER"#);
        assert_eq!(
            create_database("o", "o", -1),
            r#"CREATE DATABASE "o" OWNER "o" CONNECTION LIMIT -1"#
        );
        assert_eq!(
            create_database(r#"d""#, "r", 5),
            r#"CREATE DATABASE "d""" OWNER "r" CONNECTION LIMIT 5"#
        );
        assert_eq!(
            alter_database_connection_limit("o", 10),
            r#"ALTER DATABASE "o" CONNECTION LIMIT 10"#
        );
        assert_eq!(
            alter_database_owner("o", "p"),
            r#"ALTER DATABASE "o" OWNER TO "p""#
        );
        assert_eq!(
            revoke_connect_from_public("o"),
            r#"REVOKE CONNECT, TEMPORARY ON DATABASE "o" FROM PUBLIC"#
        );
        assert_eq!(
            create_extension("uuid-ossp", "o"),
            r#"SET LOCAL ROLE "o"; CREATE EXTENSION IF NOT EXISTS "uuid-ossp""#
        );
        assert_eq!(
            drop_database("o"),
            r#"DROP DATABASE IF EXISTS "o" WITH (FORCE)"#
        );
        assert_eq!(drop_role("o"), r#"DROP ROLE IF EXISTS "o""#);
        assert_eq!(
            comment_on_role("o", "dbclaim:owner=c/u'x"),
            r#"COMMENT ON ROLE "o" IS 'dbclaim:owner=c/u''x'"#
        );
        assert_eq!(
            comment_on_database("o", "m"),
            r#"COMMENT ON DATABASE "o" IS 'm'"#
        );
    }

    #[test]
    fn verifier_hides_the_password() {
        let v = Verifier::scram("hunter2");
        assert!(v.0.starts_with("SCRAM-SHA-256$4096:"));
        assert!(!v.0.contains("hunter2"));
        assert_eq!(format!("{v:?}"), "Verifier(<redacted>)");
        assert!(!create_role("r", &v).contains("hunter2"));
        // A fresh salt each time.
        assert_ne!(Verifier::scram("hunter2"), v);
    }
}
