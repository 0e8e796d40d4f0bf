//! Drift: the observed instance (with its pending modifications laid over
//! it) against the spec, as one ModifyDBInstance and tag changes.
//!
//! Rules that keep this loop-free:
//! - `PendingModifiedValues` count as done (RDS applies them later or in the
//!   maintenance window), so a pending change is never sent twice;
//! - an engine version that RDS raised (a minor upgrade, or the minor it
//!   chose for a major-only spec such as "16") is no drift;
//! - storage only grows, and by at least 10% (RDS refuses less);
//! - fields RDS cannot change after creation are reported, never sent.

use std::collections::BTreeMap;

use crate::api::aws::RDSInstanceParameters;

/// The tag dbclaim puts on every instance it creates: the name of the
/// RDSInstance object that manages it.
pub use crate::contract::aws::OWNER_TAG;

/// What DescribeDBInstances reported, in plain types.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    pub identifier: String,
    pub status: String,
    pub arn: Option<String>,
    pub address: Option<String>,
    pub port: Option<i64>,
    pub engine: Option<String>,
    pub engine_version: Option<String>,
    pub instance_class: Option<String>,
    pub allocated_storage: Option<i64>,
    pub db_name: Option<String>,
    pub master_username: Option<String>,
    pub multi_az: Option<bool>,
    pub publicly_accessible: Option<bool>,
    pub storage_encrypted: Option<bool>,
    pub deletion_protection: Option<bool>,
    pub backup_retention_period: Option<i64>,
    pub pending: Pending,
}

/// The `PendingModifiedValues` of an instance that dbclaim compares.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Pending {
    pub instance_class: Option<String>,
    pub allocated_storage: Option<i64>,
    pub engine_version: Option<String>,
    pub multi_az: Option<bool>,
    pub backup_retention_period: Option<i64>,
    pub master_user_password: bool,
}

impl Observed {
    /// The instance as it will be once its pending modifications apply.
    pub fn with_pending(&self) -> Observed {
        let mut o = self.clone();
        let p = &self.pending;
        if p.instance_class.is_some() {
            o.instance_class = p.instance_class.clone();
        }
        if p.allocated_storage.is_some() {
            o.allocated_storage = p.allocated_storage;
        }
        if p.engine_version.is_some() {
            o.engine_version = p.engine_version.clone();
        }
        if p.multi_az.is_some() {
            o.multi_az = p.multi_az;
        }
        if p.backup_retention_period.is_some() {
            o.backup_retention_period = p.backup_retention_period;
        }
        o
    }
}

/// One ModifyDBInstance: only the fields that differ are set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Modification {
    pub instance_class: Option<String>,
    pub allocated_storage: Option<i64>,
    pub engine_version: Option<String>,
    pub allow_major_version_upgrade: bool,
    pub multi_az: Option<bool>,
    pub publicly_accessible: Option<bool>,
    pub backup_retention_period: Option<i64>,
    pub deletion_protection: Option<bool>,
}

impl Modification {
    pub fn is_empty(&self) -> bool {
        *self
            == Modification {
                allow_major_version_upgrade: self.allow_major_version_upgrade,
                ..Default::default()
            }
    }

    /// The changed fields, for events and logs (no secrets in here).
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(v) = &self.instance_class {
            parts.push(format!("dbInstanceClass={v}"));
        }
        if let Some(v) = self.allocated_storage {
            parts.push(format!("allocatedStorage={v}"));
        }
        if let Some(v) = &self.engine_version {
            parts.push(format!("engineVersion={v}"));
        }
        if let Some(v) = self.multi_az {
            parts.push(format!("multiAZ={v}"));
        }
        if let Some(v) = self.publicly_accessible {
            parts.push(format!("publiclyAccessible={v}"));
        }
        if let Some(v) = self.backup_retention_period {
            parts.push(format!("backupRetentionPeriod={v}"));
        }
        if let Some(v) = self.deletion_protection {
            parts.push(format!("deletionProtection={v}"));
        }
        parts.join(", ")
    }

    /// Only the storage part: what may be sent while `storage-full`.
    pub fn storage_only(&self) -> Modification {
        Modification {
            allocated_storage: self.allocated_storage,
            ..Default::default()
        }
    }
}

/// The result of comparing spec and instance.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Drift {
    pub modify: Modification,
    /// Differences that cannot be corrected, in words (for Synced=False).
    pub refused: Vec<String>,
}

/// The smallest storage RDS accepts as an increase from `current` GiB.
pub fn min_increase(current: i64) -> i64 {
    // at least 10% more, rounded up
    current + (current + 9) / 10
}

/// Compares the spec with the instance (pending values laid over it).
pub fn diff(spec: &RDSInstanceParameters, observed: &Observed) -> Drift {
    let o = observed.with_pending();
    let mut d = Drift::default();

    if o.instance_class
        .as_deref()
        .is_some_and(|v| v != spec.db_instance_class)
    {
        d.modify.instance_class = Some(spec.db_instance_class.clone());
    }

    if let Some(current) = o.allocated_storage {
        let want = spec.allocated_storage;
        if want > current {
            let min = min_increase(current);
            if want >= min {
                d.modify.allocated_storage = Some(want);
            } else {
                d.refused.push(format!(
                    "allocatedStorage {want} GiB is less than the 10% increase RDS requires from {current} GiB: ask for at least {min} GiB"
                ));
            }
        } else if want < current {
            d.refused.push(format!(
                "allocatedStorage {want} GiB is less than the instance's {current} GiB: RDS storage cannot shrink; set it to {current} or more"
            ));
        }
    }

    if let (Some(want), Some(have)) = (&spec.engine_version, &o.engine_version) {
        match compare_versions(want, have) {
            VersionOrder::Satisfied => {}
            VersionOrder::Upgrade { major } => {
                d.modify.engine_version = Some(want.clone());
                d.modify.allow_major_version_upgrade = major;
            }
            VersionOrder::Downgrade => d.refused.push(format!(
                "engineVersion {want} is older than the instance's {have}: RDS cannot downgrade an engine"
            )),
        }
    }

    // A field the API did not report is left alone: sending it on every
    // reconcile would be a modify loop.
    if o.multi_az.is_some_and(|v| v != spec.multi_az) {
        d.modify.multi_az = Some(spec.multi_az);
    }
    if o.publicly_accessible
        .is_some_and(|v| v != spec.publicly_accessible)
    {
        d.modify.publicly_accessible = Some(spec.publicly_accessible);
    }
    if o.backup_retention_period
        .is_some_and(|v| v != spec.backup_retention_period)
    {
        d.modify.backup_retention_period = Some(spec.backup_retention_period);
    }
    if o.deletion_protection
        .is_some_and(|v| v != spec.deletion_protection)
    {
        d.modify.deletion_protection = Some(spec.deletion_protection);
    }

    // Fixed at creation.
    if let Some(have) = &o.engine
        && *have != spec.engine
    {
        d.refused.push(format!(
            "engine {} differs from the instance's {have}: the engine cannot change; create a new instance",
            spec.engine
        ));
    }
    if let Some(have) = o.storage_encrypted
        && have != spec.storage_encrypted
    {
        d.refused.push(format!(
            "storageEncrypted {} differs from the instance's {have}: encryption is fixed when an instance is created",
            spec.storage_encrypted
        ));
    }
    if let (Some(want), Some(have)) = (&spec.db_name, &o.db_name)
        && want != have
    {
        d.refused.push(format!(
            "dbName {want} differs from the instance's {have}: the initial database cannot be renamed"
        ));
    }
    if let Some(have) = &o.master_username
        && *have != spec.master_username
    {
        d.refused.push(format!(
            "masterUsername {} differs from the instance's {have}: the master user cannot be renamed",
            spec.master_username
        ));
    }
    d
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VersionOrder {
    /// The instance runs the wanted version or a later one in its line.
    Satisfied,
    /// The spec asks for a later version; `major` when the major changes.
    Upgrade { major: bool },
    /// The spec asks for an older version.
    Downgrade,
}

/// Compares a wanted engine version with the running one, component by
/// component as numbers. A wanted version that is a prefix of the running
/// one ("16" of "16.4", "8.0" of "8.0.35") is satisfied, and so is any
/// running version above the wanted one in the same major line (RDS's
/// automatic minor upgrades). Non-numeric parts compare as text.
pub fn compare_versions(want: &str, have: &str) -> VersionOrder {
    let w: Vec<&str> = want.split('.').collect();
    let h: Vec<&str> = have.split('.').collect();
    // PostgreSQL ≥ 10 has one major component; MySQL/MariaDB have two.
    let major_len = if w
        .first()
        .and_then(|m| m.parse::<u64>().ok())
        .is_some_and(|m| m >= 10)
    {
        1
    } else {
        2
    };
    for (i, (a, b)) in w.iter().zip(h.iter()).enumerate() {
        let ord = match (a.parse::<u64>(), b.parse::<u64>()) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            _ => a.cmp(b),
        };
        match ord {
            std::cmp::Ordering::Equal => continue,
            std::cmp::Ordering::Greater => {
                return VersionOrder::Upgrade {
                    major: i < major_len,
                };
            }
            std::cmp::Ordering::Less => {
                return if i < major_len {
                    VersionOrder::Downgrade
                } else {
                    // A later minor than asked: RDS upgraded it.
                    VersionOrder::Satisfied
                };
            }
        }
    }
    // Equal on the common prefix; a shorter wanted version is a prefix.
    VersionOrder::Satisfied
}

/// Tag changes: what to add or overwrite, and which keys to remove. Keys
/// starting with `aws:` belong to AWS and are never touched.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TagChanges {
    pub add: BTreeMap<String, String>,
    pub remove: Vec<String>,
}

impl TagChanges {
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty()
    }
}

/// The tags an instance of `object_name` should carry.
pub fn desired_tags(spec: &RDSInstanceParameters, object_name: &str) -> BTreeMap<String, String> {
    let mut tags = spec.tags.clone();
    tags.insert(OWNER_TAG.to_string(), object_name.to_string());
    tags
}

pub fn tag_changes(
    desired: &BTreeMap<String, String>,
    current: &BTreeMap<String, String>,
) -> TagChanges {
    TagChanges {
        add: desired
            .iter()
            .filter(|(k, v)| current.get(*k) != Some(*v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        remove: current
            .keys()
            .filter(|k| !desired.contains_key(*k) && !k.starts_with("aws:"))
            .cloned()
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> RDSInstanceParameters {
        serde_json::from_value(serde_json::json!({
            "region": "us-east-1",
            "dbInstanceClass": "db.t3.micro",
            "engine": "postgres",
            "engineVersion": "16",
            "allocatedStorage": 20,
            "dbName": "orders",
            "masterUsername": "dbadmin",
            "tags": {"team": "a"},
        }))
        .expect("spec")
    }

    fn observed() -> Observed {
        Observed {
            identifier: "orders".into(),
            status: "available".into(),
            arn: Some("arn:aws:rds:us-east-1:123456789012:db:orders".into()),
            address: Some("orders.abc.us-east-1.rds.amazonaws.com".into()),
            port: Some(5432),
            engine: Some("postgres".into()),
            engine_version: Some("16.4".into()),
            instance_class: Some("db.t3.micro".into()),
            allocated_storage: Some(20),
            db_name: Some("orders".into()),
            master_username: Some("dbadmin".into()),
            multi_az: Some(false),
            publicly_accessible: Some(false),
            storage_encrypted: Some(true),
            deletion_protection: Some(false),
            backup_retention_period: Some(7),
            pending: Pending::default(),
        }
    }

    #[test]
    fn in_sync_means_nothing_to_do() {
        let d = diff(&spec(), &observed());
        assert!(d.modify.is_empty(), "{d:?}");
        assert!(d.refused.is_empty(), "{d:?}");
    }

    #[test]
    fn every_mutable_field_is_corrected() {
        let mut s = spec();
        s.db_instance_class = "db.m6g.large".into();
        s.allocated_storage = 50;
        s.multi_az = true;
        s.publicly_accessible = true;
        s.backup_retention_period = 14;
        s.deletion_protection = true;
        let d = diff(&s, &observed());
        assert_eq!(
            d.modify,
            Modification {
                instance_class: Some("db.m6g.large".into()),
                allocated_storage: Some(50),
                engine_version: None,
                allow_major_version_upgrade: false,
                multi_az: Some(true),
                publicly_accessible: Some(true),
                backup_retention_period: Some(14),
                deletion_protection: Some(true),
            }
        );
        assert!(d.refused.is_empty());
        let text = d.modify.describe();
        assert!(
            text.contains("allocatedStorage=50") && text.contains("multiAZ=true"),
            "{text}"
        );
        assert_eq!(
            d.modify.storage_only(),
            Modification {
                allocated_storage: Some(50),
                ..Default::default()
            }
        );
    }

    #[test]
    fn pending_values_count_as_done() {
        let mut s = spec();
        s.db_instance_class = "db.m6g.large".into();
        s.allocated_storage = 50;
        s.multi_az = true;
        s.backup_retention_period = 14;
        s.engine_version = Some("16.6".into());
        let mut o = observed();
        o.pending = Pending {
            instance_class: Some("db.m6g.large".into()),
            allocated_storage: Some(50),
            engine_version: Some("16.6".into()),
            multi_az: Some(true),
            backup_retention_period: Some(14),
            master_user_password: false,
        };
        let d = diff(&s, &o);
        assert!(d.modify.is_empty(), "{d:?}");
        assert!(d.refused.is_empty(), "{d:?}");
        // and a pending value that is not what the spec wants is corrected
        s.allocated_storage = 100;
        assert_eq!(diff(&s, &o).modify.allocated_storage, Some(100));
    }

    #[test]
    fn storage_grows_by_ten_percent_and_never_shrinks() {
        assert_eq!(min_increase(20), 22);
        assert_eq!(min_increase(100), 110);
        assert_eq!(min_increase(21), 24); // 2.1 rounds up to 3
        assert_eq!(min_increase(1000), 1100);
        let mut s = spec();
        s.allocated_storage = 21;
        let d = diff(&s, &observed());
        assert_eq!(d.modify.allocated_storage, None);
        assert!(d.refused[0].contains("at least 22"), "{:?}", d.refused);
        s.allocated_storage = 22;
        assert_eq!(diff(&s, &observed()).modify.allocated_storage, Some(22));
        s.allocated_storage = 10;
        let d = diff(&s, &observed());
        assert_eq!(d.modify.allocated_storage, None);
        assert!(d.refused[0].contains("cannot shrink"), "{:?}", d.refused);
    }

    #[test]
    fn versions_chosen_by_rds_are_no_drift() {
        use VersionOrder::*;
        assert_eq!(compare_versions("16", "16.4"), Satisfied);
        assert_eq!(compare_versions("16.4", "16.4"), Satisfied);
        assert_eq!(
            compare_versions("16.2", "16.4"),
            Satisfied,
            "auto minor upgrade"
        );
        assert_eq!(compare_versions("16.6", "16.4"), Upgrade { major: false });
        assert_eq!(compare_versions("17", "16.4"), Upgrade { major: true });
        assert_eq!(compare_versions("15", "16.4"), Downgrade);
        assert_eq!(compare_versions("8.0", "8.0.35"), Satisfied);
        assert_eq!(
            compare_versions("8.0.36", "8.0.35"),
            Upgrade { major: false }
        );
        assert_eq!(compare_versions("8.0.30", "8.0.35"), Satisfied);
        assert_eq!(compare_versions("8.4", "8.0.35"), Upgrade { major: true });
        assert_eq!(compare_versions("5.7", "8.0.35"), Downgrade);
        assert_eq!(compare_versions("9.6.20", "9.6.22"), Satisfied);
        assert_eq!(compare_versions("10.0", "9.6.22"), Upgrade { major: true });

        let mut o = observed();
        o.engine_version = Some("16.8".into());
        assert!(diff(&spec(), &o).modify.is_empty());
        let mut s = spec();
        s.engine_version = Some("17".into());
        let d = diff(&s, &o);
        assert_eq!(d.modify.engine_version.as_deref(), Some("17"));
        assert!(d.modify.allow_major_version_upgrade);
        s.engine_version = Some("15".into());
        assert!(diff(&s, &o).refused[0].contains("cannot downgrade"));
        // no version in the spec: whatever RDS chose
        s.engine_version = None;
        assert!(diff(&s, &o).modify.is_empty());
    }

    #[test]
    fn fixed_fields_are_reported_not_sent() {
        let mut s = spec();
        s.storage_encrypted = false;
        s.db_name = Some("other".into());
        s.master_username = "root".into();
        s.engine = "mysql".into();
        let d = diff(&s, &observed());
        assert!(d.modify.is_empty(), "{d:?}");
        assert_eq!(d.refused.len(), 4, "{:?}", d.refused);
        // an instance without a DBName (postgres without dbName) is fine
        let mut o = observed();
        o.db_name = None;
        assert!(diff(&spec(), &o).refused.is_empty());
    }

    #[test]
    fn unreported_fields_are_left_alone() {
        let o = Observed {
            identifier: "x".into(),
            status: "available".into(),
            ..Default::default()
        };
        let d = diff(&spec(), &o);
        assert!(d.modify.is_empty(), "{d:?}");
        assert!(d.refused.is_empty(), "{d:?}");
    }

    #[test]
    fn tags() {
        let desired = desired_tags(&spec(), "obj");
        assert_eq!(desired.get(OWNER_TAG).map(String::as_str), Some("obj"));
        let current = BTreeMap::from([
            ("team".to_string(), "b".to_string()),
            ("old".to_string(), "x".to_string()),
            ("aws:cloudformation:stack".to_string(), "s".to_string()),
        ]);
        let c = tag_changes(&desired, &current);
        assert_eq!(
            c.add,
            BTreeMap::from([
                (OWNER_TAG.to_string(), "obj".to_string()),
                ("team".to_string(), "a".to_string()),
            ])
        );
        assert_eq!(c.remove, vec!["old".to_string()]);
        assert!(tag_changes(&desired, &desired).is_empty());
    }
}
