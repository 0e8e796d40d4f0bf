//! `aws.dbclaim.io`: RDS instances and the config that reaches AWS.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{ConfigStatus, ManagedSpec, ManagedStatus};

/// An AWS RDS DB instance, reconciled through the RDS API.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "aws.dbclaim.io",
    version = "v1alpha1",
    kind = "RDSInstance",
    plural = "rdsinstances",
    status = "RDSInstanceStatus",
    category = "dbclaim",
    derive = "PartialEq",
    printcolumn(
        name = "READY",
        type_ = "string",
        json_path = ".status.conditions[?(@.type=='Ready')].status"
    ),
    printcolumn(
        name = "SYNCED",
        type_ = "string",
        json_path = ".status.conditions[?(@.type=='Synced')].status"
    ),
    printcolumn(
        name = "STATE",
        type_ = "string",
        json_path = ".status.atProvider.dbInstanceStatus"
    ),
    printcolumn(
        name = "AGE",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
// Another provider config is another account or region: an edit would make
// a second instance and leak the first (audit M3).
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "self.providerConfigRef == oldSelf.providerConfigRef",
    "message": "providerConfigRef is immutable: it would create a second instance elsewhere and leave this one behind"
}]))]
pub struct RDSInstanceSpec {
    #[serde(flatten)]
    pub managed: ManagedSpec,
    pub for_provider: RDSInstanceParameters,
}

// Rules that span fields. Transition rules (oldSelf) run on updates only:
// the fields AWS fixes at creation cannot change without a new instance;
// the rest refuse combinations AWS would refuse later, in words, at apply.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "has(self.region) == has(oldSelf.region) && (!has(self.region) || self.region == oldSelf.region)",
        "message": "region is immutable: it would create a second instance in the other region and leave this one behind"
    },
    {
        "rule": "self.engine == oldSelf.engine",
        "message": "engine is fixed when an RDS instance is created: a different engine needs a new instance (a new RDSInstance)"
    },
    {
        "rule": "has(self.dbName) == has(oldSelf.dbName) && (!has(self.dbName) || self.dbName == oldSelf.dbName)",
        "message": "dbName is fixed when an RDS instance is created: a different initial database needs a new instance (a new RDSInstance)"
    },
    {
        "rule": "(has(self.masterUsername) ? self.masterUsername : 'dbadmin') == (has(oldSelf.masterUsername) ? oldSelf.masterUsername : 'dbadmin')",
        "message": "masterUsername is fixed when an RDS instance is created: a different master user needs a new instance (a new RDSInstance)"
    },
    {
        "rule": "(has(self.storageEncrypted) ? self.storageEncrypted : true) == (has(oldSelf.storageEncrypted) ? oldSelf.storageEncrypted : true)",
        "message": "storageEncrypted is fixed when an RDS instance is created: changing encryption needs a new instance (a new RDSInstance, restored from a snapshot)"
    },
    {
        "rule": "has(self.kmsKeyId) == has(oldSelf.kmsKeyId) && (!has(self.kmsKeyId) || self.kmsKeyId == oldSelf.kmsKeyId)",
        "message": "kmsKeyId is fixed when an RDS instance is created: another KMS key needs a new instance (a new RDSInstance, restored from a snapshot)"
    },
    {
        "rule": "!has(self.iops) || !has(self.storageType) || self.storageType != 'gp2'",
        "message": "iops cannot be set with storageType gp2 (its IOPS follow the size): use gp3, io1 or io2, or remove iops"
    },
    {
        "rule": "!has(self.storageType) || !(self.storageType in ['io1', 'io2']) || has(self.iops)",
        "message": "storageType io1 and io2 need iops (provisioned IOPS)"
    },
    {
        "rule": "!has(self.storageThroughput) || (has(self.storageType) && self.storageType == 'gp3')",
        "message": "storageThroughput can be set only with storageType gp3"
    },
    {
        "rule": "!has(self.kmsKeyId) || !has(self.storageEncrypted) || self.storageEncrypted",
        "message": "kmsKeyId needs storageEncrypted: true (the key encrypts the storage)"
    },
    {
        "rule": "!has(self.maxAllocatedStorage) || self.maxAllocatedStorage >= self.allocatedStorage",
        "message": "maxAllocatedStorage (the storage autoscaling ceiling) cannot be below allocatedStorage"
    },
    {
        "rule": "!has(self.monitoringInterval) || self.monitoringInterval == 0 || has(self.monitoringRoleArn)",
        "message": "monitoringInterval above 0 (enhanced monitoring) needs monitoringRoleArn, the IAM role RDS publishes metrics with"
    },
    {
        "rule": "!has(self.performanceInsightsRetentionPeriod) || (has(self.enablePerformanceInsights) && self.enablePerformanceInsights)",
        "message": "performanceInsightsRetentionPeriod needs enablePerformanceInsights: true"
    }
]))]
pub struct RDSInstanceParameters {
    /// Region; the ProviderConfig's when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub region: Option<String>,
    #[schemars(length(max = 64))]
    pub db_instance_class: String,
    #[schemars(length(max = 64))]
    pub engine: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub engine_version: Option<String>,
    #[schemars(range(min = 1, max = 65536))]
    pub allocated_storage: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub db_name: Option<String>,
    #[serde(default = "default_master_username")]
    #[schemars(length(max = 63))]
    pub master_username: String,
    #[serde(default, rename = "multiAZ")]
    pub multi_az: bool,
    #[serde(default)]
    pub publicly_accessible: bool,
    #[serde(default = "default_true")]
    pub storage_encrypted: bool,
    #[serde(default)]
    pub deletion_protection: bool,
    #[serde(default = "default_true")]
    pub skip_final_snapshot: bool,
    #[serde(default = "default_backup_retention")]
    #[schemars(range(min = 0, max = 35))]
    pub backup_retention_period: i64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    #[serde(flatten)]
    pub settings: RDSSettings,
}

// What a deployment in a private VPC sets: placement, storage, encryption
// key, engine configuration, windows and observability. Every field is
// optional and AWS's default applies when unset; dbclaim corrects drift
// only in the fields set here, so values AWS chooses never loop.
// Flattened into forProvider (kept apart so the create and modify code of
// these fields stays in functions of its own).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RDSSettings {
    /// The DB subnet group (the VPC subnets) to place the instance in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub db_subnet_group_name: Option<String>,
    /// The VPC security groups of the instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 16),
        inner(regex(pattern = r"^sg-[0-9a-f]{1,32}$"))
    )]
    pub vpc_security_group_ids: Option<Vec<String>>,
    /// The port the database listens on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1150, max = 65535))]
    pub port: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_type: Option<StorageType>,
    /// Provisioned IOPS: gp3, io1 and io2 only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1000, max = 256000))]
    pub iops: Option<i64>,
    /// Storage throughput in MiB/s: gp3 only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 125, max = 16000))]
    pub storage_throughput: Option<i64>,
    /// The storage autoscaling ceiling in GiB; equal to allocatedStorage
    /// turns autoscaling off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65536))]
    pub max_allocated_storage: Option<i64>,
    /// The KMS key (id, alias or ARN) that encrypts the storage; with
    /// storageEncrypted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    pub kms_key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub db_parameter_group_name: Option<String>,
    /// The daily backup window, UTC, `hh24:mi-hh24:mi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-3]):[0-5][0-9]$"))]
    pub preferred_backup_window: Option<String>,
    /// The weekly maintenance window, UTC, `ddd:hh24:mi-ddd:hh24:mi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(
        pattern = r"^(mon|tue|wed|thu|fri|sat|sun):([01][0-9]|2[0-3]):[0-5][0-9]-(mon|tue|wed|thu|fri|sat|sun):([01][0-9]|2[0-3]):[0-5][0-9]$"
    ))]
    pub preferred_maintenance_window: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_minor_version_upgrade: Option<bool>,
    #[serde(
        default,
        rename = "enableIAMDatabaseAuthentication",
        skip_serializing_if = "Option::is_none"
    )]
    pub enable_iam_database_authentication: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_performance_insights: Option<bool>,
    /// Days: 7, a multiple of 31 up to 713, or 731.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 7, max = 731))]
    pub performance_insights_retention_period: Option<i64>,
    /// Enhanced monitoring every this many seconds (0: off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = [0, 1, 5, 10, 15, 30, 60]))]
    pub monitoring_interval: Option<i64>,
    /// The IAM role RDS publishes enhanced monitoring with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    pub monitoring_role_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub ca_certificate_identifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_tags_to_snapshot: Option<bool>,
    /// true: modifications are applied at once; false (AWS's default):
    /// those RDS defers wait for the maintenance window and show in
    /// status.atProvider.pendingModifiedValues meanwhile.
    #[serde(default)]
    pub apply_immediately: bool,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StorageType {
    Gp2,
    Gp3,
    Io1,
    Io2,
}

impl StorageType {
    pub fn as_str(self) -> &'static str {
        match self {
            StorageType::Gp2 => "gp2",
            StorageType::Gp3 => "gp3",
            StorageType::Io1 => "io1",
            StorageType::Io2 => "io2",
        }
    }
}

fn default_master_username() -> String {
    "dbadmin".to_string()
}

fn default_true() -> bool {
    true
}

fn default_backup_retention() -> i64 {
    7
}

pub type RDSInstanceStatus = ManagedStatus<RDSInstanceObservation>;

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RDSInstanceObservation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db_instance_identifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db_instance_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<Endpoint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocated_storage: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_allocated_storage: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iops: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_throughput: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db_instance_class: Option<String>,
    #[serde(default, rename = "multiAZ", skip_serializing_if = "Option::is_none")]
    pub multi_az: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_encrypted: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_protection: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db_subnet_group_name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vpc_security_group_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db_parameter_group_name: Option<String>,
    /// in-sync, applying or pending-reboot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameter_apply_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_backup_window: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_maintenance_window: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_retention_period: Option<i64>,
    /// The latest time the instance can be restored to (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_restorable_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificate_identifier: Option<String>,
    /// When the instance's CA certificate expires (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificate_valid_till: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub performance_insights_enabled: Option<bool>,
    /// What RDS will apply later (the maintenance window, or as soon as
    /// it can); absent when nothing is pending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_modified_values: Option<PendingModifiedValues>,
}

/// The modifications RDS has accepted and not yet applied.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PendingModifiedValues {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db_instance_class: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocated_storage: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_version: Option<String>,
    #[serde(default, rename = "multiAZ", skip_serializing_if = "Option::is_none")]
    pub multi_az: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_retention_period: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iops: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_throughput: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificate_identifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db_subnet_group_name: Option<String>,
    #[serde(
        default,
        rename = "iamDatabaseAuthenticationEnabled",
        skip_serializing_if = "Option::is_none"
    )]
    pub iam_database_authentication_enabled: Option<bool>,
    /// A master password change is pending (never the password itself).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub master_user_password: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct Endpoint {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
}

/// How dbclaim reaches AWS.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "aws.dbclaim.io",
    version = "v1alpha1",
    kind = "ProviderConfig",
    status = "ConfigStatus",
    category = "dbclaim",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct ProviderConfigSpec {
    pub credentials: AwsCredentials,
    pub region: String,
    /// An endpoint URL instead of AWS's, for emulators and VPC endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsCredentials {
    pub source: CredentialsSource,
    /// A Secret key holding an AWS shared-credentials profile; with `source: Secret`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeyRef>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum CredentialsSource {
    Secret,
    Environment,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct SecretKeyRef {
    pub namespace: String,
    pub name: String,
    pub key: String,
}
