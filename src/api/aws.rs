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

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.region) == has(oldSelf.region) && (!has(self.region) || self.region == oldSelf.region)",
    "message": "region is immutable: it would create a second instance in the other region and leave this one behind"
}]))]
pub struct RDSInstanceParameters {
    /// Region; the ProviderConfig's when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub db_instance_class: String,
    pub engine: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_version: Option<String>,
    #[schemars(range(min = 1, max = 65536))]
    pub allocated_storage: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db_name: Option<String>,
    #[serde(default = "default_master_username")]
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
