//! `ClaimPolicy`: guardrails a platform team sets on claims.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::claim::{Engine, Size};
use super::common::ConfigStatus;

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
}
