//! Checks of an RDSInstance spec that AWS would refuse but emulators such as
//! moto accept. Run before any call, so a bad spec is reported in words at
//! once instead of as a late API error (or, against moto, not at all).

use crate::api::aws::RDSInstanceParameters;

/// Engines dbclaim provisions.
pub const ENGINES: &[&str] = &["postgres", "mysql", "mariadb"];
/// The smallest general-purpose (gp2/gp3) storage RDS gives these engines.
pub const MIN_STORAGE_GIB: i64 = 20;
/// The largest storage of an RDS instance (64 TiB).
pub const MAX_STORAGE_GIB: i64 = 65_536;
/// RDS allows 50 tags per resource; dbclaim adds one of its own.
pub const MAX_USER_TAGS: usize = 49;

/// Every problem of `spec`, each a sentence naming the field and the fix.
pub fn problems(spec: &RDSInstanceParameters) -> Vec<String> {
    let mut out = Vec::new();
    let engine = spec.engine.as_str();
    if !ENGINES.contains(&engine) {
        out.push(format!(
            "spec.forProvider.engine \"{engine}\" is not supported: use postgres, mysql or mariadb"
        ));
    }
    if !valid_class(&spec.db_instance_class) {
        out.push(format!(
            "spec.forProvider.dbInstanceClass \"{}\" is not an RDS instance class: use a name like db.t3.micro",
            spec.db_instance_class
        ));
    }
    if spec.allocated_storage < MIN_STORAGE_GIB {
        out.push(format!(
            "spec.forProvider.allocatedStorage {} GiB is below the {MIN_STORAGE_GIB} GiB RDS requires for {engine}",
            spec.allocated_storage
        ));
    } else if spec.allocated_storage > MAX_STORAGE_GIB {
        out.push(format!(
            "spec.forProvider.allocatedStorage {} GiB is above the {MAX_STORAGE_GIB} GiB an RDS instance can have",
            spec.allocated_storage
        ));
    }
    if let Some(v) = &spec.engine_version
        && !valid_version(v)
    {
        out.push(format!(
            "spec.forProvider.engineVersion \"{v}\" is not a version: use numbers like \"16\", \"16.4\" or \"8.0.35\""
        ));
    }
    if let Some(name) = &spec.db_name
        && let Some(why) = db_name_problem(engine, name)
    {
        out.push(format!("spec.forProvider.dbName \"{name}\": {why}"));
    }
    if let Some(why) = username_problem(engine, &spec.master_username) {
        out.push(format!(
            "spec.forProvider.masterUsername \"{}\": {why}",
            spec.master_username
        ));
    }
    if !(0..=35).contains(&spec.backup_retention_period) {
        out.push(format!(
            "spec.forProvider.backupRetentionPeriod {} is outside 0 to 35 days",
            spec.backup_retention_period
        ));
    }
    if let Some(days) = spec.settings.performance_insights_retention_period
        && !valid_insights_retention(days)
    {
        out.push(format!(
            "spec.forProvider.performanceInsightsRetentionPeriod {days} is not one RDS offers: use 7, a multiple of 31 up to 713 (months), or 731"
        ));
    }
    if spec.tags.len() > MAX_USER_TAGS {
        out.push(format!(
            "spec.forProvider.tags has {} tags; RDS allows {MAX_USER_TAGS} besides dbclaim's own",
            spec.tags.len()
        ));
    }
    for (k, v) in &spec.tags {
        if let Some(why) = tag_problem(k, v) {
            out.push(format!("spec.forProvider.tags \"{k}\": {why}"));
        }
    }
    out
}

/// Performance Insights keeps 7 days, whole months (31 days each) up to 23,
/// or 731 days.
pub fn valid_insights_retention(days: i64) -> bool {
    days == 7 || days == 731 || (days % 31 == 0 && (31..=713).contains(&days))
}

/// `db.<family>.<size>`, lower case.
pub fn valid_class(class: &str) -> bool {
    let mut parts = class.split('.');
    let ok = |p: Option<&str>| {
        p.is_some_and(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
    };
    parts.next() == Some("db") && ok(parts.next()) && ok(parts.next()) && parts.next().is_none()
}

/// One to three dot-separated components, each digits (the last may carry a
/// suffix such as `R2` for MariaDB builds).
pub fn valid_version(v: &str) -> bool {
    let parts: Vec<&str> = v.split('.').collect();
    !parts.is_empty()
        && parts.len() <= 4
        && parts[0].bytes().all(|b| b.is_ascii_digit())
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.starts_with(|c: char| c.is_ascii_digit())
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// The RDS rules of the initial database name.
pub fn db_name_problem(engine: &str, name: &str) -> Option<String> {
    let (max, reserved): (usize, &[&str]) = match engine {
        "postgres" => (63, &["postgres", "template0", "template1", "rdsadmin"]),
        _ => (
            64,
            &["mysql", "information_schema", "performance_schema", "sys"],
        ),
    };
    name_problem(name, max, reserved).map(|p| match p {
        NameProblem::Length => format!("must be 1 to {max} characters"),
        NameProblem::Reserved => format!("is reserved by {engine}: choose another name"),
        NameProblem::Other(why) => why.to_string(),
    })
}

/// The RDS rules of the master user name.
pub fn username_problem(engine: &str, name: &str) -> Option<String> {
    let (max, reserved): (usize, &[&str]) = match engine {
        "postgres" => (
            63,
            &["postgres", "rdsadmin", "rdsrepladmin", "rds_superuser"],
        ),
        _ => (16, &["rdsadmin", "rdsrepladmin", "root", "mysql.sys"]),
    };
    name_problem(name, max, reserved).map(|p| match p {
        NameProblem::Length => format!("must be 1 to {max} characters for {engine}"),
        NameProblem::Reserved => format!("is reserved on RDS for {engine}: choose another name"),
        NameProblem::Other(why) => why.to_string(),
    })
}

enum NameProblem {
    Length,
    Reserved,
    Other(&'static str),
}

/// The rules database and user names share: length, a letter first, word
/// characters, not one the engine reserves.
fn name_problem(name: &str, max: usize, reserved: &[&str]) -> Option<NameProblem> {
    if name.is_empty() || name.len() > max {
        Some(NameProblem::Length)
    } else if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        Some(NameProblem::Other("must start with a letter"))
    } else if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        Some(NameProblem::Other(
            "may contain only letters, digits and underscores",
        ))
    } else if reserved.contains(&name.to_ascii_lowercase().as_str()) {
        Some(NameProblem::Reserved)
    } else {
        None
    }
}

/// The RDS rules of a tag.
pub fn tag_problem(key: &str, value: &str) -> Option<String> {
    if key.is_empty() || key.chars().count() > 128 {
        return Some("a tag key must be 1 to 128 characters".into());
    }
    if key.to_ascii_lowercase().starts_with("aws:") {
        return Some("tag keys starting with aws: are reserved by AWS".into());
    }
    if key == super::diff::OWNER_TAG {
        return Some("this tag key is set by dbclaim itself".into());
    }
    if value.chars().count() > 256 {
        return Some("a tag value must be at most 256 characters".into());
    }
    let allowed = |c: char| c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(c);
    if !key.chars().all(allowed) || !value.chars().all(allowed) {
        return Some("tags may contain only letters, digits, spaces and _ . : / = + - @".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(engine: &str) -> RDSInstanceParameters {
        serde_json::from_value(serde_json::json!({
            "dbInstanceClass": "db.t3.micro",
            "engine": engine,
            "allocatedStorage": 20,
        }))
        .expect("spec")
    }

    #[test]
    fn a_plain_spec_passes() {
        for e in ENGINES {
            assert_eq!(problems(&spec(e)), Vec::<String>::new(), "{e}");
        }
    }

    #[test]
    fn what_moto_accepts_and_aws_refuses() {
        let mut s = spec("postgres");
        s.allocated_storage = 1;
        let p = problems(&s);
        assert_eq!(p.len(), 1);
        assert!(p[0].contains("below the 20 GiB"), "{p:?}");
        s.allocated_storage = 70_000;
        assert!(problems(&s)[0].contains("above"));

        let mut s = spec("oracle-ee");
        s.db_instance_class = "t3.micro".into();
        assert_eq!(problems(&s).len(), 2);
    }

    #[test]
    fn classes_and_versions() {
        assert!(valid_class("db.t3.micro"));
        assert!(valid_class("db.r6g.xlarge"));
        assert!(valid_class("db.m5d.24xlarge"));
        assert!(!valid_class("db.t3"));
        assert!(!valid_class("t3.micro"));
        assert!(!valid_class("db.T3.micro"));
        assert!(!valid_class("db.t3.micro.x"));
        for v in ["16", "16.4", "8.0", "8.0.35", "10.11.6", "15.4-R2"] {
            assert!(valid_version(v), "{v}");
        }
        for v in ["", "latest", "v16", "16.", ".4", "16..4"] {
            assert!(!valid_version(v), "{v}");
        }
    }

    #[test]
    fn names() {
        assert_eq!(db_name_problem("postgres", "orders"), None);
        assert_eq!(db_name_problem("mysql", "orders_2"), None);
        assert!(db_name_problem("postgres", "_orders").is_some());
        assert!(db_name_problem("postgres", "1orders").is_some());
        assert!(db_name_problem("postgres", "or-ders").is_some());
        assert!(db_name_problem("postgres", "postgres").is_some());
        assert!(db_name_problem("mysql", "mysql").is_some());
        assert!(db_name_problem("postgres", &"a".repeat(64)).is_some());
        assert_eq!(db_name_problem("mysql", &"a".repeat(64)), None);

        assert_eq!(username_problem("postgres", "dbadmin"), None);
        assert_eq!(username_problem("mysql", "dbadmin"), None);
        assert!(username_problem("mysql", &"a".repeat(17)).is_some());
        assert_eq!(username_problem("postgres", &"a".repeat(63)), None);
        assert!(username_problem("postgres", "postgres").is_some());
        assert!(username_problem("postgres", "rdsadmin").is_some());
        assert!(username_problem("mysql", "root").is_some());
        assert!(username_problem("mysql", "1admin").is_some());
        assert!(username_problem("mysql", "").is_some());

        let mut s = spec("postgres");
        s.master_username = "postgres".into();
        s.db_name = Some("9lives".into());
        let p = problems(&s);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p.iter().any(|m| m.contains("masterUsername")));
        assert!(p.iter().any(|m| m.contains("dbName")));
    }

    #[test]
    fn tags() {
        assert_eq!(tag_problem("team", "a"), None);
        assert_eq!(tag_problem("dbclaim.io/namespace", "team-a"), None);
        assert!(tag_problem("aws:x", "a").is_some());
        assert!(tag_problem("", "a").is_some());
        assert!(tag_problem(&"k".repeat(129), "a").is_some());
        assert!(tag_problem("k", &"v".repeat(257)).is_some());
        assert!(tag_problem("k", "a;b").is_some());
        assert!(tag_problem(super::super::diff::OWNER_TAG, "x").is_some());
        let mut s = spec("postgres");
        for i in 0..50 {
            s.tags.insert(format!("k{i}"), "v".into());
        }
        assert!(problems(&s).iter().any(|m| m.contains("50 tags")));
    }

    #[test]
    fn insights_retention() {
        for d in [7, 31, 62, 713, 731] {
            assert!(valid_insights_retention(d), "{d}");
        }
        for d in [0, 8, 30, 32, 744, 730] {
            assert!(!valid_insights_retention(d), "{d}");
        }
        let mut s = spec("postgres");
        s.settings.enable_performance_insights = Some(true);
        s.settings.performance_insights_retention_period = Some(14);
        assert!(problems(&s)[0].contains("performanceInsightsRetentionPeriod"));
    }

    #[test]
    fn backup_retention() {
        let mut s = spec("mysql");
        s.backup_retention_period = 36;
        assert!(problems(&s)[0].contains("0 to 35"));
    }
}
