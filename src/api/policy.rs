//! `ClaimPolicy`: guardrails a platform team sets on claims.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::claim::{Engine, Size};
use super::common::{ConfigStatus, DrillType};

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "dbclaim.io",
    version = "v1alpha1",
    kind = "ClaimPolicy",
    status = "ConfigStatus",
    category = "dbclaim",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct ClaimPolicySpec {
    /// The namespaces this policy governs; every namespace when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_engines: Option<Vec<Engine>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_sizes: Option<Vec<Size>>,
    /// Largest storageGB of one claim.
    #[serde(
        default,
        rename = "maxStorageGB",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 1))]
    pub max_storage_gb: Option<i64>,
    /// Largest storageGB summed over a namespace's claims.
    #[serde(
        default,
        rename = "maxTotalStorageGB",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 1))]
    pub max_total_storage_gb: Option<i64>,
    /// Compositions claims may use, by label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_compositions: Option<LabelSelector>,
    /// Default composition per engine, instead of the annotated default.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub default_compositions: BTreeMap<Engine, String>,
    /// Limits on claim parameters, by parameter name; parameters not listed
    /// are free, and a claim that leaves one unset gets the composition's
    /// default.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 64))]
    pub parameters: BTreeMap<String, ParameterLimit>,
    /// Claims here rotate their credentials at least this often (days); a
    /// claim's own `spec.credentials.rotationDays` may be shorter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3650))]
    pub credential_rotation_days: Option<i64>,
    /// Drill types claims here may run (`dbclaim.io/drill`); none when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_drills: Option<Vec<DrillType>>,
}

/// What values a claim parameter may take.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ParameterLimit {
    /// The values allowed, compared as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), inner(length(max = 1024)))]
    pub allowed: Option<Vec<String>>,
    /// Smallest value; the parameter must then be a whole number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<i64>,
    /// Largest value; the parameter must then be a whole number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<i64>,
}
