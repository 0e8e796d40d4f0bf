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

use crate::api::aws::{RDSInstanceParameters, RDSSettings};

/// The ownership mark: `<cluster-id>/<object uid>`.
pub use crate::contract::OWNER_MARK_TAG;
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
    pub settings: ObservedSettings,
    pub pending: Pending,
}

/// What DescribeDBInstances reported of the fields of [`RDSSettings`], and
/// what a reliability review reads (restorable time, certificate expiry).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObservedSettings {
    pub subnet_group: Option<String>,
    pub security_groups: Option<Vec<String>>,
    pub storage_type: Option<String>,
    pub iops: Option<i64>,
    pub storage_throughput: Option<i64>,
    pub max_allocated_storage: Option<i64>,
    pub kms_key_id: Option<String>,
    pub parameter_group: Option<String>,
    pub parameter_apply_status: Option<String>,
    pub backup_window: Option<String>,
    pub maintenance_window: Option<String>,
    pub auto_minor_version_upgrade: Option<bool>,
    pub iam_auth: Option<bool>,
    pub performance_insights: Option<bool>,
    pub performance_insights_retention: Option<i64>,
    pub monitoring_interval: Option<i64>,
    pub monitoring_role_arn: Option<String>,
    pub ca_certificate: Option<String>,
    pub ca_certificate_valid_till: Option<String>,
    pub copy_tags_to_snapshot: Option<bool>,
    pub latest_restorable_time: Option<String>,
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
    pub storage_type: Option<String>,
    pub iops: Option<i64>,
    pub storage_throughput: Option<i64>,
    pub port: Option<i64>,
    pub ca_certificate: Option<String>,
    pub subnet_group: Option<String>,
    pub iam_auth: Option<bool>,
}

impl Pending {
    pub fn is_empty(&self) -> bool {
        *self == Pending::default()
    }
}

impl Observed {
    /// The instance as it will be once its pending modifications apply.
    pub fn with_pending(&self) -> Observed {
        let mut o = self.clone();
        let p = &self.pending;
        overlay(&mut o.instance_class, &p.instance_class);
        overlay(&mut o.allocated_storage, &p.allocated_storage);
        overlay(&mut o.engine_version, &p.engine_version);
        overlay(&mut o.multi_az, &p.multi_az);
        overlay(&mut o.backup_retention_period, &p.backup_retention_period);
        overlay(&mut o.port, &p.port);
        let st = &mut o.settings;
        overlay(&mut st.storage_type, &p.storage_type);
        overlay(&mut st.iops, &p.iops);
        overlay(&mut st.storage_throughput, &p.storage_throughput);
        overlay(&mut st.ca_certificate, &p.ca_certificate);
        overlay(&mut st.subnet_group, &p.subnet_group);
        overlay(&mut st.iam_auth, &p.iam_auth);
        o
    }
}

fn overlay<T: Clone>(value: &mut Option<T>, pending: &Option<T>) {
    if pending.is_some() {
        value.clone_from(pending);
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
    pub settings: SettingsChange,
    /// ApplyImmediately: the spec's applyImmediately (not a change itself).
    pub apply_immediately: bool,
}

/// The [`RDSSettings`] fields of one ModifyDBInstance.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SettingsChange {
    pub subnet_group: Option<String>,
    pub security_groups: Option<Vec<String>>,
    pub port: Option<i64>,
    pub storage_type: Option<String>,
    pub iops: Option<i64>,
    pub storage_throughput: Option<i64>,
    pub max_allocated_storage: Option<i64>,
    pub parameter_group: Option<String>,
    pub backup_window: Option<String>,
    pub maintenance_window: Option<String>,
    pub auto_minor_version_upgrade: Option<bool>,
    pub iam_auth: Option<bool>,
    pub performance_insights: Option<bool>,
    pub performance_insights_retention: Option<i64>,
    pub monitoring_interval: Option<i64>,
    pub monitoring_role_arn: Option<String>,
    pub ca_certificate: Option<String>,
    pub copy_tags_to_snapshot: Option<bool>,
}

/// `name=value` of a change that is set, for events and logs.
fn put<T: std::fmt::Display>(parts: &mut Vec<String>, name: &str, v: &Option<T>) {
    if let Some(v) = v {
        parts.push(format!("{name}={v}"));
    }
}

impl SettingsChange {
    /// `name=value` of each change, for events and logs.
    fn describe(&self, p: &mut Vec<String>) {
        put(p, "dbSubnetGroupName", &self.subnet_group);
        let groups = self.security_groups.as_ref().map(|g| g.join(","));
        put(p, "vpcSecurityGroupIds", &groups);
        put(p, "port", &self.port);
        put(p, "storageType", &self.storage_type);
        put(p, "iops", &self.iops);
        put(p, "storageThroughput", &self.storage_throughput);
        put(p, "maxAllocatedStorage", &self.max_allocated_storage);
        put(p, "dbParameterGroupName", &self.parameter_group);
        put(p, "preferredBackupWindow", &self.backup_window);
        put(p, "preferredMaintenanceWindow", &self.maintenance_window);
        put(
            p,
            "autoMinorVersionUpgrade",
            &self.auto_minor_version_upgrade,
        );
        put(p, "enableIAMDatabaseAuthentication", &self.iam_auth);
        put(p, "enablePerformanceInsights", &self.performance_insights);
        put(
            p,
            "performanceInsightsRetentionPeriod",
            &self.performance_insights_retention,
        );
        put(p, "monitoringInterval", &self.monitoring_interval);
        put(p, "monitoringRoleArn", &self.monitoring_role_arn);
        put(p, "caCertificateIdentifier", &self.ca_certificate);
        put(p, "copyTagsToSnapshot", &self.copy_tags_to_snapshot);
    }
}

impl Modification {
    pub fn is_empty(&self) -> bool {
        *self
            == Modification {
                allow_major_version_upgrade: self.allow_major_version_upgrade,
                apply_immediately: self.apply_immediately,
                ..Default::default()
            }
    }

    /// The changed fields, for events and logs (no secrets in here).
    pub fn describe(&self) -> String {
        let p = &mut Vec::new();
        put(p, "dbInstanceClass", &self.instance_class);
        put(p, "allocatedStorage", &self.allocated_storage);
        put(p, "engineVersion", &self.engine_version);
        put(p, "multiAZ", &self.multi_az);
        put(p, "publiclyAccessible", &self.publicly_accessible);
        put(p, "backupRetentionPeriod", &self.backup_retention_period);
        put(p, "deletionProtection", &self.deletion_protection);
        self.settings.describe(p);
        p.join(", ")
    }

    /// Only the storage part: what may be sent while `storage-full`, at once.
    pub fn storage_only(&self) -> Modification {
        Modification {
            allocated_storage: self.allocated_storage,
            // the ceiling goes with the size: it may not end below it
            settings: SettingsChange {
                max_allocated_storage: self.settings.max_allocated_storage,
                ..Default::default()
            },
            // a full instance cannot wait for the maintenance window
            apply_immediately: true,
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
        } else if want < current && !autoscaled(spec, &o, current) {
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
    let m = &mut d.modify;
    m.instance_class = changed(&Some(spec.db_instance_class.clone()), &o.instance_class);
    m.multi_az = changed(&Some(spec.multi_az), &o.multi_az);
    m.publicly_accessible = changed(&Some(spec.publicly_accessible), &o.publicly_accessible);
    let retention = Some(spec.backup_retention_period);
    m.backup_retention_period = changed(&retention, &o.backup_retention_period);
    m.deletion_protection = changed(&Some(spec.deletion_protection), &o.deletion_protection);

    // Fixed at creation.
    let r = &mut d.refused;
    let why = "the engine cannot change; create a new instance";
    fixed(r, "engine", Some(&spec.engine), o.engine.as_ref(), why);
    let why = "encryption is fixed when an instance is created";
    let (encrypted, user) = (Some(&spec.storage_encrypted), Some(&spec.master_username));
    fixed(
        r,
        "storageEncrypted",
        encrypted,
        o.storage_encrypted.as_ref(),
        why,
    );
    let why = "the initial database cannot be renamed";
    fixed(r, "dbName", spec.db_name.as_ref(), o.db_name.as_ref(), why);
    let why = "the master user cannot be renamed";
    fixed(r, "masterUsername", user, o.master_username.as_ref(), why);
    diff_settings(&spec.settings, &o, &mut d);
    d.modify.apply_immediately = spec.settings.apply_immediately;
    d
}

/// Storage above the spec's that autoscaling added (within the ceiling the
/// spec or the instance sets) is no drift.
fn autoscaled(spec: &RDSInstanceParameters, o: &Observed, current: i64) -> bool {
    spec.settings
        .max_allocated_storage
        .or(o.settings.max_allocated_storage)
        .is_some_and(|max| current <= max)
}

/// A refusal when the spec and the instance both give a value fixed at
/// creation and the two differ.
fn fixed<T: PartialEq + std::fmt::Display>(
    refused: &mut Vec<String>,
    name: &str,
    want: Option<&T>,
    have: Option<&T>,
    why: &str,
) {
    if let (Some(want), Some(have)) = (want, have)
        && want != have
    {
        refused.push(format!(
            "{name} {want} differs from the instance's {have}: {why}"
        ));
    }
}

/// `want` when the spec sets it and the instance reports another value: a
/// field the spec leaves unset, or AWS does not report, is never sent.
fn changed<T: PartialEq + Clone>(want: &Option<T>, have: &Option<T>) -> Option<T> {
    match (want, have) {
        (Some(w), Some(h)) if w != h => Some(w.clone()),
        _ => None,
    }
}

/// [`changed`] for names AWS stores in lower case (subnet and parameter
/// groups, windows).
fn changed_text(want: &Option<String>, have: &Option<String>) -> Option<String> {
    match (want, have) {
        (Some(w), Some(h)) if !w.eq_ignore_ascii_case(h) => Some(w.clone()),
        _ => None,
    }
}

/// The [`RDSSettings`] part of [`diff`]; `o` has its pending values laid
/// over it.
pub fn diff_settings(s: &RDSSettings, o: &Observed, d: &mut Drift) {
    let have = &o.settings;
    let c = &mut d.modify.settings;
    c.subnet_group = changed_text(&s.db_subnet_group_name, &have.subnet_group);
    c.security_groups = match (&s.vpc_security_group_ids, &have.security_groups) {
        (Some(want), Some(have)) if sorted(want) != sorted(have) => Some(want.clone()),
        _ => None,
    };
    c.port = changed(&s.port, &o.port);
    c.storage_type = changed(
        &s.storage_type.map(|t| t.as_str().to_string()),
        &have.storage_type,
    );
    c.iops = changed(&s.iops, &have.iops);
    c.storage_throughput = changed(&s.storage_throughput, &have.storage_throughput);
    if c.storage_type.is_some() {
        // RDS takes a new storage type with its IOPS and throughput.
        c.iops = c.iops.or(s.iops);
        c.storage_throughput = c.storage_throughput.or(s.storage_throughput);
    }
    // No MaxAllocatedStorage reported means autoscaling is off, which the
    // API spells as a ceiling equal to the allocated storage.
    let ceiling = have.max_allocated_storage.or(o.allocated_storage);
    c.max_allocated_storage = changed(&s.max_allocated_storage, &ceiling);
    c.parameter_group = changed_text(&s.db_parameter_group_name, &have.parameter_group);
    c.backup_window = changed_text(&s.preferred_backup_window, &have.backup_window);
    c.maintenance_window = changed_text(&s.preferred_maintenance_window, &have.maintenance_window);
    c.auto_minor_version_upgrade = changed(
        &s.auto_minor_version_upgrade,
        &have.auto_minor_version_upgrade,
    );
    c.iam_auth = changed(&s.enable_iam_database_authentication, &have.iam_auth);
    c.performance_insights = changed(&s.enable_performance_insights, &have.performance_insights);
    c.performance_insights_retention = changed(
        &s.performance_insights_retention_period,
        &have.performance_insights_retention,
    );
    c.monitoring_interval = changed(&s.monitoring_interval, &have.monitoring_interval);
    c.monitoring_role_arn = changed(&s.monitoring_role_arn, &have.monitoring_role_arn);
    if c.monitoring_interval.is_some_and(|i| i > 0) {
        // RDS wants the role with any interval above 0.
        c.monitoring_role_arn = c
            .monitoring_role_arn
            .take()
            .or(s.monitoring_role_arn.clone());
    }
    c.ca_certificate = changed(&s.ca_certificate_identifier, &have.ca_certificate);
    c.copy_tags_to_snapshot = changed(&s.copy_tags_to_snapshot, &have.copy_tags_to_snapshot);

    // Fixed at creation. A key id or alias cannot be compared with the ARN
    // RDS reports, so only two key ARNs are.
    let arn = |k: &Option<String>| k.clone().filter(|k| k.starts_with("arn:"));
    let why = "the KMS key is fixed when an instance is created; create a new instance (restore a snapshot with the new key)";
    let (want, have) = (arn(&s.kms_key_id), arn(&have.kms_key_id));
    fixed(
        &mut d.refused,
        "kmsKeyId",
        want.as_ref(),
        have.as_ref(),
        why,
    );
}

fn sorted(v: &[String]) -> Vec<&str> {
    let mut out: Vec<&str> = v.iter().map(String::as_str).collect();
    out.sort_unstable();
    out.dedup();
    out
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

/// The tags an instance of `object_name` should carry: the spec's, the
/// object's name and the ownership mark (`<cluster-id>/<uid>`).
pub fn desired_tags(
    spec: &RDSInstanceParameters,
    object_name: &str,
    mark: &str,
) -> BTreeMap<String, String> {
    let mut tags = spec.tags.clone();
    tags.insert(OWNER_TAG.to_string(), object_name.to_string());
    tags.insert(OWNER_MARK_TAG.to_string(), mark.to_string());
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
            settings: ObservedSettings::default(),
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
                ..Default::default()
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
                apply_immediately: true,
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
            ..Default::default()
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

    fn aws_defaults() -> Observed {
        // What AWS fills in when the spec leaves the settings unset.
        let mut o = observed();
        o.settings = ObservedSettings {
            subnet_group: Some("default".into()),
            security_groups: Some(vec!["sg-0default".into()]),
            storage_type: Some("gp2".into()),
            iops: None,
            storage_throughput: None,
            max_allocated_storage: None,
            kms_key_id: Some("arn:aws:kms:us-east-1:123456789012:key/aws-rds".into()),
            parameter_group: Some("default.postgres16".into()),
            parameter_apply_status: Some("in-sync".into()),
            backup_window: Some("07:12-07:42".into()),
            maintenance_window: Some("wed:06:38-wed:07:08".into()),
            auto_minor_version_upgrade: Some(true),
            iam_auth: Some(false),
            performance_insights: Some(false),
            performance_insights_retention: None,
            monitoring_interval: Some(0),
            monitoring_role_arn: None,
            ca_certificate: Some("rds-ca-rsa2048-g1".into()),
            ca_certificate_valid_till: Some("2061-05-21T22:23:47Z".into()),
            copy_tags_to_snapshot: Some(false),
            latest_restorable_time: Some("2026-12-06T03:00:00Z".into()),
        };
        o
    }

    fn production() -> RDSInstanceParameters {
        let mut s = spec();
        s.settings = serde_json::from_value(serde_json::json!({
            "dbSubnetGroupName": "platform-private",
            "vpcSecurityGroupIds": ["sg-0abc", "sg-0def"],
            "port": 5433,
            "storageType": "gp3",
            "iops": 3000,
            "storageThroughput": 125,
            "maxAllocatedStorage": 200,
            "dbParameterGroupName": "pg16-platform",
            "preferredBackupWindow": "03:00-04:00",
            "preferredMaintenanceWindow": "sun:04:30-sun:05:30",
            "autoMinorVersionUpgrade": false,
            "enableIAMDatabaseAuthentication": true,
            "enablePerformanceInsights": true,
            "performanceInsightsRetentionPeriod": 31,
            "monitoringInterval": 60,
            "monitoringRoleArn": "arn:aws:iam::123456789012:role/rds-monitoring",
            "caCertificateIdentifier": "rds-ca-ecc384-g1",
            "copyTagsToSnapshot": true,
            "applyImmediately": true,
        }))
        .expect("settings");
        s
    }

    #[test]
    fn values_aws_chose_for_unset_settings_are_no_drift() {
        let d = diff(&spec(), &aws_defaults());
        assert!(d.modify.is_empty(), "{d:?}");
        assert!(d.refused.is_empty(), "{d:?}");
    }

    #[test]
    fn every_modifiable_setting_is_corrected() {
        let d = diff(&production(), &aws_defaults());
        assert!(d.refused.is_empty(), "{d:?}");
        assert!(d.modify.apply_immediately);
        assert_eq!(
            d.modify.settings,
            SettingsChange {
                subnet_group: Some("platform-private".into()),
                security_groups: Some(vec!["sg-0abc".into(), "sg-0def".into()]),
                port: Some(5433),
                storage_type: Some("gp3".into()),
                iops: Some(3000),
                storage_throughput: Some(125),
                max_allocated_storage: Some(200),
                parameter_group: Some("pg16-platform".into()),
                backup_window: Some("03:00-04:00".into()),
                maintenance_window: Some("sun:04:30-sun:05:30".into()),
                auto_minor_version_upgrade: Some(false),
                iam_auth: Some(true),
                performance_insights: Some(true),
                performance_insights_retention: None, // AWS reported none
                monitoring_interval: Some(60),
                monitoring_role_arn: Some("arn:aws:iam::123456789012:role/rds-monitoring".into()),
                ca_certificate: Some("rds-ca-ecc384-g1".into()),
                copy_tags_to_snapshot: Some(true),
            }
        );
        let text = d.modify.describe();
        assert!(
            text.contains("storageType=gp3")
                && text.contains("vpcSecurityGroupIds=sg-0abc,sg-0def"),
            "{text}"
        );
        // applyImmediately is a flag, not a change
        let mut s = spec();
        s.settings.apply_immediately = true;
        let d = diff(&s, &aws_defaults());
        assert!(d.modify.is_empty() && d.modify.apply_immediately, "{d:?}");
    }

    #[test]
    fn settings_in_sync_need_nothing() {
        let s = production();
        let mut o = aws_defaults();
        o.port = Some(5433);
        o.settings = ObservedSettings {
            // RDS stores names in lower case and lists groups in its order
            subnet_group: Some("Platform-Private".into()),
            security_groups: Some(vec!["sg-0def".into(), "sg-0abc".into()]),
            storage_type: Some("gp3".into()),
            iops: Some(3000),
            storage_throughput: Some(125),
            max_allocated_storage: Some(200),
            parameter_group: Some("PG16-platform".into()),
            backup_window: Some("03:00-04:00".into()),
            maintenance_window: Some("SUN:04:30-SUN:05:30".into()),
            auto_minor_version_upgrade: Some(false),
            iam_auth: Some(true),
            performance_insights: Some(true),
            performance_insights_retention: Some(31),
            monitoring_interval: Some(60),
            monitoring_role_arn: Some("arn:aws:iam::123456789012:role/rds-monitoring".into()),
            ca_certificate: Some("rds-ca-ecc384-g1".into()),
            copy_tags_to_snapshot: Some(true),
            ..o.settings
        };
        let d = diff(&s, &o);
        assert!(d.modify.is_empty(), "{d:?}");
        assert!(d.refused.is_empty(), "{d:?}");
    }

    #[test]
    fn pending_settings_count_as_done() {
        let mut s = spec();
        s.settings.storage_type = Some(crate::api::aws::StorageType::Gp3);
        s.settings.ca_certificate_identifier = Some("rds-ca-ecc384-g1".into());
        s.settings.port = Some(5433);
        s.settings.db_subnet_group_name = Some("platform-private".into());
        s.settings.enable_iam_database_authentication = Some(true);
        let mut o = aws_defaults();
        o.pending = Pending {
            storage_type: Some("gp3".into()),
            ca_certificate: Some("rds-ca-ecc384-g1".into()),
            port: Some(5433),
            subnet_group: Some("platform-private".into()),
            iam_auth: Some(true),
            ..Default::default()
        };
        let d = diff(&s, &o);
        assert!(d.modify.is_empty(), "{d:?}");
        assert!(!o.pending.is_empty());
        assert!(Pending::default().is_empty());
    }

    #[test]
    fn a_new_storage_type_carries_its_iops_and_throughput() {
        let mut s = spec();
        s.settings.storage_type = Some(crate::api::aws::StorageType::Gp3);
        s.settings.iops = Some(3000);
        s.settings.storage_throughput = Some(125);
        let mut o = aws_defaults();
        // gp2 reports the IOPS its size gives
        o.settings.iops = Some(3000);
        let c = diff(&s, &o).modify.settings;
        assert_eq!(c.storage_type.as_deref(), Some("gp3"));
        assert_eq!((c.iops, c.storage_throughput), (Some(3000), Some(125)));
        // and the monitoring role goes with an interval
        let mut s = spec();
        s.settings.monitoring_interval = Some(30);
        s.settings.monitoring_role_arn = Some("arn:aws:iam::1:role/m".into());
        let mut o = aws_defaults();
        o.settings.monitoring_role_arn = Some("arn:aws:iam::1:role/m".into());
        let c = diff(&s, &o).modify.settings;
        assert_eq!(c.monitoring_interval, Some(30));
        assert_eq!(
            c.monitoring_role_arn.as_deref(),
            Some("arn:aws:iam::1:role/m")
        );
    }

    #[test]
    fn storage_autoscaling() {
        let mut s = spec();
        s.settings.max_allocated_storage = Some(200);
        let mut o = aws_defaults();
        // no MaxAllocatedStorage reported: autoscaling is off
        assert_eq!(
            diff(&s, &o).modify.settings.max_allocated_storage,
            Some(200)
        );
        // autoscaling grew the storage above the spec's: no drift, no refusal
        o.settings.max_allocated_storage = Some(200);
        o.allocated_storage = Some(48);
        let d = diff(&s, &o);
        assert!(d.modify.is_empty() && d.refused.is_empty(), "{d:?}");
        // a ceiling equal to the size turns autoscaling off: nothing to send
        let mut s = spec();
        s.settings.max_allocated_storage = Some(20);
        let d = diff(&s, &aws_defaults());
        assert!(d.modify.is_empty(), "{d:?}");
        // growing storage while storage-full sends the ceiling along, at once
        let mut s = spec();
        s.allocated_storage = 100;
        s.settings.max_allocated_storage = Some(300);
        let m = diff(&s, &aws_defaults()).modify.storage_only();
        assert_eq!(m.allocated_storage, Some(100));
        assert_eq!(m.settings.max_allocated_storage, Some(300));
        assert!(m.apply_immediately);
    }

    #[test]
    fn a_different_kms_key_is_refused_not_sent() {
        let mut s = spec();
        s.settings.kms_key_id = Some("arn:aws:kms:us-east-1:123456789012:key/mine".into());
        let d = diff(&s, &aws_defaults());
        assert!(d.modify.is_empty(), "{d:?}");
        assert!(d.refused[0].contains("kmsKeyId"), "{d:?}");
        assert!(d.refused[0].contains("new instance"), "{d:?}");
        // an alias or key id cannot be compared with the ARN: no verdict
        s.settings.kms_key_id = Some("alias/platform".into());
        assert!(diff(&s, &aws_defaults()).refused.is_empty());
    }

    #[test]
    fn tags() {
        let desired = desired_tags(&spec(), "obj", "c/u");
        assert_eq!(desired.get(OWNER_TAG).map(String::as_str), Some("obj"));
        assert_eq!(desired.get(OWNER_MARK_TAG).map(String::as_str), Some("c/u"));
        let current = BTreeMap::from([
            ("team".to_string(), "b".to_string()),
            ("old".to_string(), "x".to_string()),
            ("aws:cloudformation:stack".to_string(), "s".to_string()),
        ]);
        let c = tag_changes(&desired, &current);
        assert_eq!(
            c.add,
            BTreeMap::from([
                (OWNER_MARK_TAG.to_string(), "c/u".to_string()),
                (OWNER_TAG.to_string(), "obj".to_string()),
                ("team".to_string(), "a".to_string()),
            ])
        );
        assert_eq!(c.remove, vec!["old".to_string()]);
        assert!(tag_changes(&desired, &desired).is_empty());
    }
}
