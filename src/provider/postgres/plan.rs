//! What to change on the server, decided from what was observed: pure.

use super::sql::{self, Verifier};

/// The database a `Database` asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired {
    /// Both the database's and its owner role's name.
    pub name: String,
    pub connection_limit: i64,
    pub extensions: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleState {
    pub can_login: bool,
    /// The admin holds the role's privileges (member with INHERIT), as it
    /// must to give it a database and to drop that database later.
    pub admin_has_privileges: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatabaseState {
    pub connection_limit: i64,
    pub owner: String,
    /// PUBLIC may connect (or create temporary tables): another tenant could.
    pub public_access: bool,
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
    CreateRole,
    EnableLogin,
    GrantRoleToAdmin,
    CreateDatabase { connection_limit: i64 },
    SetOwner { from: String },
    SetConnectionLimit { from: i64, to: i64 },
    RevokePublicAccess,
}

/// The steps that bring the server from `observed` to `desired`; none when
/// they agree, so a reconcile at rest changes nothing.
pub fn plan(desired: &Desired, observed: &Observed) -> Vec<Step> {
    let mut steps = Vec::new();
    match &observed.role {
        None => {
            steps.push(Step::CreateRole);
            if !observed.admin_is_superuser {
                steps.push(Step::GrantRoleToAdmin);
            }
        }
        Some(role) => {
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
            steps.push(Step::RevokePublicAccess);
        }
        Some(db) => {
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
    steps
}

impl Step {
    /// Whether the statement carries the password (and so needs a verifier).
    pub fn needs_password(&self) -> bool {
        matches!(self, Step::CreateRole)
    }

    /// The statement for `name`; `password` is used by [`Step::CreateRole`] only.
    pub fn sql(&self, name: &str, password: Option<&Verifier>) -> String {
        match self {
            Step::CreateRole => match password {
                Some(p) => sql::create_role(name, p),
                // Never reached: the caller hashes the password for steps
                // that need it. A role without a password cannot log in.
                None => format!("CREATE ROLE {} LOGIN", sql::ident(name)),
            },
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

    fn desired(limit: i64) -> Desired {
        Desired {
            name: "orders".into(),
            connection_limit: limit,
            extensions: vec![],
        }
    }

    fn existing(limit: i64) -> Observed {
        Observed {
            role: Some(RoleState {
                can_login: true,
                admin_has_privileges: true,
            }),
            database: Some(DatabaseState {
                connection_limit: limit,
                owner: "orders".into(),
                public_access: false,
            }),
            admin_is_superuser: false,
        }
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
                Step::RevokePublicAccess
            ]
        );
        let sql: Vec<String> = steps.iter().map(|s| s.sql("orders", None)).collect();
        assert_eq!(sql[1], r#"GRANT "orders" TO CURRENT_USER"#);
        assert_eq!(
            sql[2],
            r#"CREATE DATABASE "orders" OWNER "orders" CONNECTION LIMIT 5"#
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
        observed.role = Some(RoleState {
            can_login: true,
            admin_has_privileges: false,
        });
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
        observed.role = Some(RoleState {
            can_login: false,
            admin_has_privileges: false,
        });
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
                s.sql("r", Some(&v)).contains("PASSWORD"),
                "{s:?}"
            );
            assert!(!s.describe("r").contains("SCRAM"));
        }
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
