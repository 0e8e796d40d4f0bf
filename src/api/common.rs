//! Shapes shared by several kinds.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A reference to a cluster-scoped object or a Secret in a known namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct NameRef {
    pub name: String,
}

/// A reference to an object in a given namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct NamespacedRef {
    pub name: String,
    pub namespace: String,
}

/// A reference to a Secret: the namespace defaults to the operator's own.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct SecretRef {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// What happens to the external resource when its object is deleted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    #[default]
    Delete,
    Orphan,
}

/// The `providerConfigRef` of a managed resource, `default` unless set.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct ProviderConfigRef {
    #[serde(default = "default_provider_config")]
    pub name: String,
}

impl Default for ProviderConfigRef {
    fn default() -> Self {
        Self {
            name: default_provider_config(),
        }
    }
}

pub fn default_provider_config() -> String {
    "default".to_string()
}

// The spec fields every managed resource has (Crossplane's ResourceSpec),
// flattened into each kind's spec. No doc comment: the schema would carry it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManagedSpec {
    #[serde(default)]
    pub provider_config_ref: ProviderConfigRef,
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_connection_secret_to_ref: Option<SecretRef>,
}

// The status every managed resource carries, around its kind's observation.
// No doc comment: it would become the CRD's status description.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManagedStatus<O> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_provider: Option<O>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The last drill run on the external resource (`dbclaim.io/drill`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drill: Option<DrillStatus>,
}

impl<O> Default for ManagedStatus<O> {
    fn default() -> Self {
        Self {
            at_provider: None,
            conditions: Vec::new(),
            observed_generation: None,
            drill: None,
        }
    }
}

/// A game-day drill (annotation `dbclaim.io/drill: <type>/<id>`).
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum DrillType {
    // No doc comments on variants: they would make the schema a oneOf.
    // failover: RDS Multi-AZ, a reboot with forced failover; shared
    // PostgreSQL, the claim's sessions terminated.
    Failover,
    // rotate-credentials: the claim's credential rotation, once.
    RotateCredentials,
}

impl DrillType {
    pub const ALL: [DrillType; 2] = [DrillType::Failover, DrillType::RotateCredentials];

    pub fn as_str(self) -> &'static str {
        match self {
            DrillType::Failover => "failover",
            DrillType::RotateCredentials => "rotate-credentials",
        }
    }
}

impl std::fmt::Display for DrillType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a drill stands.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DrillResult {
    // Pending: recorded, nothing sent yet. Running: sent, waiting for the
    // database to be available again. Refused: not run, nothing it could
    // act on (a single-AZ instance, ...).
    #[default]
    Pending,
    Running,
    Succeeded,
    Failed,
    Refused,
}

impl DrillResult {
    pub fn finished(self) -> bool {
        matches!(
            self,
            DrillResult::Succeeded | DrillResult::Failed | DrillResult::Refused
        )
    }
}

/// One drill: what ran, when, and how it ended.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DrillStatus {
    #[serde(rename = "type")]
    pub type_: DrillType,
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
    pub result: DrillResult,
    #[serde(default)]
    pub message: String,
}

/// The status every provider config carries.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Schema for a value of any shape, kept as the user wrote it.
pub fn any_value(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({ "x-kubernetes-preserve-unknown-fields": true })
}

/// Schema for an object of any shape, kept as the user wrote it.
pub fn any_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({ "type": "object", "x-kubernetes-preserve-unknown-fields": true })
}

/// Schema for a map of strings to values of any shape.
pub fn any_map(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "additionalProperties": { "x-kubernetes-preserve-unknown-fields": true }
    })
}
