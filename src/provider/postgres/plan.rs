//! What to change on the server, decided from what was observed: pure.

use super::sql::{self, Verifier};
use crate::contract::postgres::OWNER_COMMENT_PREFIX;
use crate::provider::managed::ownership::{self, Claim, Identity, Verdict};

/// The database a `Database` asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired {
    /// Both the database's and its owner role's name.
    pub name: String,
    pub connection_limit: i64,
    pub extensions: Vec<String>,
    /// Whose role and database these are: the mark written on them.
    pub owner: Identity,
    /// Why unmarked ones may be taken (adoption, upgrade evidence).
    pub claim: Claim,
}

impl Desired {
    /// The `COMMENT ON` text that marks role and database as this object's.
    pub fn comment(&self) -> String {
        format!("{OWNER_COMMENT_PREFIX}{}", self.owner.mark())
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoleState {
    pub can_login: bool,
    /// The admin holds the role's privileges (member with INHERIT), as it
    /// must to give it a database and to drop that database later.
    pub admin_has_privileges: bool,
    /// Attributes that forbid adoption (SUPERUSER, CREATEROLE, …).
    pub privileged: Vec<&'static str>,
    pub comment: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DatabaseState {
    pub connection_limit: i64,
    pub owner: String,
    /// PUBLIC may connect (or create temporary tables): another tenant could.
    pub public_access: bool,
    pub comment: Option<String>,
}

/// The mark in a comment, if the comment is a dbclaim mark.
fn mark(comment: Option<&String>) -> Option<&str> {
    comment.and_then(|c| c.strip_prefix(OWNER_COMMENT_PREFIX))
}

/// Whose the existing role and database are (None: absent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ownership {
    pub role: Option<Verdict>,
    pub database: Option<Verdict>,
}

impl Ownership {
    /// The first refusal, if any.
    pub fn refusal(&self) -> Option<&str> {
        [&self.role, &self.database]
            .into_iter()
            .flatten()
            .find_map(|v| match v {
                Verdict::NotOurs(m) => Some(m.as_str()),
                _ => None,
            })
    }
}

/// Decides about the role and database of `desired.name` as observed. A
/// database without a mark but owned by our role is ours: CREATE DATABASE
/// cannot share a transaction with its COMMENT, so a crash between them
/// leaves exactly that.
pub fn ownership(desired: &Desired, observed: &Observed) -> Ownership {
    let name = &desired.name;
    let how = format!(
        "to adopt it, set the annotation {} to \"{name}\" on the Database by hand; otherwise choose another databaseName",
        crate::contract::EXTERNAL_NAME_ANNOTATION
    );
    let decide = |what: &str, mark: Option<&str>, privileged: &[&str]| {
        let what = format!("{what} \"{name}\"");
        ownership::decide(&desired.owner, &what, mark, desired.claim, privileged, &how)
    };
    let role = observed.role.as_ref();
    let role = role.map(|r| decide("role", mark(r.comment.as_ref()), &r.privileged));
    let database = observed.database.as_ref().map(|d| {
        let m = mark(d.comment.as_ref());
        if m.is_none() && d.owner == *name && role.as_ref().is_some_and(Verdict::is_ours) {
            return Verdict::Take(Claim::Upgrade);
        }
        decide("database", m, &[])
    });
    Ownership { role, database }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    pub role: Option<RoleState>,
    pub database: Option<DatabaseState>,
    pub admin_is_superuser: bool,
}

/// One change on the server, in the order [`plan`] lists them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// With its mark, in one transaction.
    CreateRole,
    /// Marks an adopted (or upgraded) role, before any other change to it.
    MarkRole,
    EnableLogin,
    GrantRoleToAdmin,
    CreateDatabase {
        connection_limit: i64,
    },
    MarkDatabase,
    SetOwner {
        from: String,
    },
    SetConnectionLimit {
        from: i64,
        to: i64,
    },
    RevokePublicAccess,
}

/// The steps that bring the server from `observed` to `desired`; none when
/// they agree, so a reconcile at rest changes nothing. Refused (the message)
/// when role or database exists and is not ours: nothing is changed then.
pub fn plan(desired: &Desired, observed: &Observed) -> Result<Vec<Step>, String> {
    let owned = ownership(desired, observed);
    if let Some(why) = owned.refusal() {
        return Err(why.to_string());
    }
    let mut steps = Vec::new();
    match &observed.role {
        None => {
            steps.push(Step::CreateRole);
            if !observed.admin_is_superuser {
                steps.push(Step::GrantRoleToAdmin);
            }
        }
        Some(role) => {
            if matches!(owned.role, Some(Verdict::Take(_))) {
                steps.push(Step::MarkRole);
            }
            if !role.can_login {
                steps.push(Step::EnableLogin);
            }
            if !role.admin_has_privileges && !observed.admin_is_superuser {
                steps.push(Step::GrantRoleToAdmin);
            }
        }
    }
    match &observed.database {
        None => {
            steps.push(Step::CreateDatabase {
                connection_limit: desired.connection_limit,
            });
            steps.push(Step::MarkDatabase);
            steps.push(Step::RevokePublicAccess);
        }
        Some(db) => {
            if matches!(owned.database, Some(Verdict::Take(_))) {
                steps.push(Step::MarkDatabase);
            }
            if db.owner != desired.name {
                steps.push(Step::SetOwner {
                    from: db.owner.clone(),
                });
            }
            if db.connection_limit != desired.connection_limit {
                steps.push(Step::SetConnectionLimit {
                    from: db.connection_limit,
                    to: desired.connection_limit,
                });
            }
            if db.public_access {
                steps.push(Step::RevokePublicAccess);
            }
        }
    }
    Ok(steps)
}

impl Step {
    /// Whether the statement carries the password (and so needs a verifier).
    pub fn needs_password(&self) -> bool {
        matches!(self, Step::CreateRole)
    }

    /// The statement for `name`, `comment` being its mark; `password` is
    /// used by [`Step::CreateRole`] only.
    pub fn sql(&self, name: &str, comment: &str, password: Option<&Verifier>) -> String {
        match self {
            // One simple query: one implicit transaction, so the role never
            // exists without its mark.
            Step::CreateRole => format!(
                "{}; {}",
                match password {
                    Some(p) => sql::create_role(name, p),
                    // Never reached: the caller hashes the password for steps
                    // that need it. A role without a password cannot log in.
                    None => format!("CREATE ROLE {} LOGIN", sql::ident(name)),
                },
                sql::comment_on_role(name, comment)
            ),
            Step::MarkRole => sql::comment_on_role(name, comment),
            Step::MarkDatabase => sql::comment_on_database(name, comment),
            Step::EnableLogin => sql::alter_role_login(name),
            Step::GrantRoleToAdmin => sql::grant_role_to_admin(name),
            Step::CreateDatabase { connection_limit } => {
                sql::create_database(name, name, *connection_limit)
            }
            Step::SetOwner { .. } => sql::alter_database_owner(name, name),
            Step::SetConnectionLimit { to, .. } => sql::alter_database_connection_limit(name, *to),
            Step::RevokePublicAccess => sql::revoke_connect_from_public(name),
        }
    }

    /// A few words for logs, events and error messages (never the password).
    pub fn describe(&self, name: &str) -> String {
        match self {
            Step::CreateRole => format!("create role \"{name}\""),
            Step::MarkRole => format!("mark role \"{name}\" as this Database's"),
            Step::MarkDatabase => format!("mark database \"{name}\" as this Database's"),
            Step::EnableLogin => format!("allow role \"{name}\" to log in"),
            Step::GrantRoleToAdmin => format!("grant role \"{name}\" to the admin role"),
            Step::CreateDatabase { connection_limit } => {
                format!("create database \"{name}\" (connection limit {connection_limit})")
            }
            Step::SetOwner { from } => {
                format!("change the owner of database \"{name}\" from \"{from}\" to \"{name}\"")
            }
            Step::SetConnectionLimit { from, to } => {
                format!("change the connection limit of database \"{name}\" from {from} to {to}")
            }
            Step::RevokePublicAccess => {
                format!("revoke CONNECT on database \"{name}\" from PUBLIC")
            }
        }
    }
}

/// Listed extensions not installed yet, in list order, each once.
pub fn missing_extensions(desired: &[String], installed: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for e in desired {
        if !installed.contains(e) && !out.contains(e) {
            out.push(e.clone());
        }
    }
    out
}

/// Listed extensions that are installed, sorted: what `atProvider` reports.
pub fn listed_and_installed(desired: &[String], installed: &[String]) -> Vec<String> {
    let mut out: Vec<String> = desired
        .iter()
        .filter(|e| installed.contains(e))
        .cloned()
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Why a `databaseName` may not be managed, if it may not.
pub fn forbidden_name(name: &str, admin_user: &str) -> Option<String> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if !valid {
        return Some(format!(
            "databaseName \"{name}\" is not valid: use 1 to 63 of a-z, 0-9, _ and -, starting with a letter or _"
        ));
    }
    if name == admin_user {
        return Some(format!(
            "databaseName \"{name}\" is the name of the ProviderConfig's admin role: choose another databaseName"
        ));
    }
    if matches!(name, "postgres" | "template0" | "template1") || name.starts_with("pg_") {
        return Some(format!(
            "databaseName \"{name}\" is reserved by PostgreSQL (postgres, template0, template1, pg_*): choose another databaseName"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    const MARK: &str = "dbclaim:owner=c1/u1";

    fn desired(limit: i64) -> Desired {
        Desired {
            name: "orders".into(),
            connection_limit: limit,
            extensions: vec![],
            owner: Identity {
                cluster: "c1".into(),
                uid: "u1".into(),
            },
            claim: Claim::None,
        }
    }

    fn existing(limit: i64) -> Observed {
        Observed {
            role: Some(RoleState {
                can_login: true,
                admin_has_privileges: true,
                privileged: vec![],
                comment: Some(MARK.into()),
            }),
            database: Some(DatabaseState {
                connection_limit: limit,
                owner: "orders".into(),
                public_access: false,
                comment: Some(MARK.into()),
            }),
            admin_is_superuser: false,
        }
    }

    fn plan(d: &Desired, o: &Observed) -> Vec<Step> {
        super::plan(d, o).expect("ours")
    }

    #[test]
    fn fresh_server_creates_everything_in_order() {
        let steps = plan(&desired(5), &Observed::default());
        assert_eq!(
            steps,
            vec![
                Step::CreateRole,
                Step::GrantRoleToAdmin,
                Step::CreateDatabase {
                    connection_limit: 5
                },
                Step::MarkDatabase,
                Step::RevokePublicAccess
            ]
        );
        let sql: Vec<String> = steps.iter().map(|s| s.sql("orders", MARK, None)).collect();
        assert_eq!(
            sql[0],
            r#"CREATE ROLE "orders" LOGIN; COMMENT ON ROLE "orders" IS 'dbclaim:owner=c1/u1'"#,
            "the mark in the same transaction"
        );
        assert_eq!(sql[1], r#"GRANT "orders" TO CURRENT_USER"#);
        assert_eq!(
            sql[2],
            r#"CREATE DATABASE "orders" OWNER "orders" CONNECTION LIMIT 5"#
        );
        assert_eq!(
            sql[3],
            r#"COMMENT ON DATABASE "orders" IS 'dbclaim:owner=c1/u1'"#
        );
    }

    #[test]
    fn superuser_needs_no_grant() {
        let observed = Observed {
            admin_is_superuser: true,
            ..Observed::default()
        };
        assert!(!plan(&desired(-1), &observed).contains(&Step::GrantRoleToAdmin));
        let mut observed = existing(-1);
        observed.admin_is_superuser = true;
        if let Some(r) = observed.role.as_mut() {
            r.admin_has_privileges = false;
        }
        assert_eq!(plan(&desired(-1), &observed), vec![]);
    }

    #[test]
    fn at_rest_nothing_to_do() {
        assert_eq!(plan(&desired(-1), &existing(-1)), vec![]);
    }

    #[test]
    fn drift_is_corrected() {
        assert_eq!(
            plan(&desired(10), &existing(-1)),
            vec![Step::SetConnectionLimit { from: -1, to: 10 }]
        );
        let mut observed = existing(10);
        if let Some(r) = observed.role.as_mut() {
            r.can_login = false;
            r.admin_has_privileges = false;
        }
        if let Some(db) = observed.database.as_mut() {
            db.public_access = true;
            db.owner = "someone".into();
        }
        assert_eq!(
            plan(&desired(10), &observed),
            vec![
                Step::EnableLogin,
                Step::GrantRoleToAdmin,
                Step::SetOwner {
                    from: "someone".into()
                },
                Step::RevokePublicAccess
            ]
        );
    }

    #[test]
    fn only_create_role_needs_the_password() {
        let v = Verifier::scram("pw");
        let all = [
            Step::CreateRole,
            Step::MarkRole,
            Step::MarkDatabase,
            Step::EnableLogin,
            Step::GrantRoleToAdmin,
            Step::CreateDatabase {
                connection_limit: 1,
            },
            Step::SetOwner { from: "x".into() },
            Step::SetConnectionLimit { from: 1, to: 2 },
            Step::RevokePublicAccess,
        ];
        for s in &all {
            assert_eq!(
                s.needs_password(),
                s.sql("r", MARK, Some(&v)).contains("PASSWORD"),
                "{s:?}"
            );
            assert!(!s.describe("r").contains("SCRAM"));
        }
    }

    fn refused(d: &Desired, o: &Observed, needle: &str) {
        match super::plan(d, o) {
            Err(m) => assert!(
                m.contains("exists and is not ours") && m.contains(needle),
                "{needle}: {m}"
            ),
            Ok(steps) => panic!("{needle}: planned {steps:?}"),
        }
    }

    fn unmarked(privileged: Vec<&'static str>) -> Observed {
        let mut o = existing(-1);
        if let Some(r) = o.role.as_mut() {
            r.comment = None;
            r.privileged = privileged;
        }
        if let Some(d) = o.database.as_mut() {
            d.comment = None;
            d.owner = "dba".into();
        }
        o
    }

    #[test]
    fn what_is_not_ours_is_never_changed() {
        let d = desired(-1);
        // A DBA's role and database of the computed name.
        refused(
            &d,
            &unmarked(vec![]),
            "role \"orders\" exists and is not ours: dbclaim did not create it; to adopt it, set the annotation dbclaim.io/external-name",
        );
        // Only the database (no role): refused too.
        let mut db_only = unmarked(vec![]);
        db_only.role = None;
        refused(&d, &db_only, "database \"orders\"");
        // Marked by another object of this cluster, or by another cluster.
        for (comment, needle) in [
            ("dbclaim:owner=c1/u0", "UID u0"),
            ("dbclaim:owner=c2/u1", "another cluster"),
        ] {
            let mut o = existing(-1);
            if let Some(r) = o.role.as_mut() {
                r.comment = Some(comment.into());
            }
            refused(&d, &o, needle);
        }
        // A comment that is no mark is no mark.
        let mut o = unmarked(vec![]);
        if let Some(r) = o.role.as_mut() {
            r.comment = Some("reporting, ask the DBA team".into());
        }
        refused(&d, &o, "did not create");
    }

    #[test]
    fn adoption_marks_first_and_never_takes_a_privileged_role() {
        let d = Desired {
            claim: Claim::Adopt,
            ..desired(-1)
        };
        assert_eq!(
            plan(&d, &unmarked(vec![])),
            vec![
                Step::MarkRole,
                Step::MarkDatabase,
                Step::SetOwner { from: "dba".into() }
            ]
        );
        for attr in ["SUPERUSER", "CREATEROLE", "REPLICATION", "BYPASSRLS"] {
            refused(&d, &unmarked(vec![attr]), attr);
        }
        // Upgrade evidence marks an old role; its database follows it.
        let d = Desired {
            claim: Claim::Upgrade,
            ..desired(-1)
        };
        let mut old = unmarked(vec![]);
        if let Some(db) = old.database.as_mut() {
            db.owner = "orders".into();
        }
        assert_eq!(plan(&d, &old), vec![Step::MarkRole, Step::MarkDatabase]);
        refused(&d, &unmarked(vec!["SUPERUSER"]), "SUPERUSER");
    }

    #[test]
    fn a_database_created_before_its_mark_is_ours() {
        // A crash between CREATE DATABASE and COMMENT ON DATABASE.
        let mut o = existing(-1);
        if let Some(db) = o.database.as_mut() {
            db.comment = None;
        }
        assert_eq!(plan(&desired(-1), &o), vec![Step::MarkDatabase]);
        // Owned by someone else and unmarked: not ours.
        if let Some(db) = o.database.as_mut() {
            db.owner = "dba".into();
        }
        refused(&desired(-1), &o, "database \"orders\"");
    }

    #[test]
    fn extensions() {
        let d = vec!["pgcrypto".to_string(), "citext".into(), "pgcrypto".into()];
        let installed = vec!["citext".to_string(), "hstore".into()];
        assert_eq!(
            missing_extensions(&d, &installed),
            vec!["pgcrypto".to_string()]
        );
        assert_eq!(
            listed_and_installed(&d, &installed),
            vec!["citext".to_string()]
        );
        assert_eq!(missing_extensions(&[], &installed), Vec::<String>::new());
    }

    #[test]
    fn names() {
        assert_eq!(forbidden_name("orders_1", "admin"), None);
        assert_eq!(forbidden_name("team-a-orders", "admin"), None);
        assert!(forbidden_name("-x", "admin").is_some());
        assert!(forbidden_name("admin", "admin").is_some_and(|m| m.contains("admin role")));
        assert!(forbidden_name("postgres", "admin").is_some());
        assert!(forbidden_name("pg_x", "admin").is_some());
        assert!(forbidden_name("1x", "admin").is_some());
        assert!(forbidden_name("a\"b", "admin").is_some());
        assert!(forbidden_name(&"a".repeat(64), "admin").is_some());
    }
}
