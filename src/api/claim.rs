//! `DatabaseClaim`: what an application developer asks for.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::common::{DeletionPolicy, DrillStatus, NameRef, any_map};

/// A database a developer claims in their namespace.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "dbclaim.io",
    version = "v1alpha1",
    kind = "DatabaseClaim",
    namespaced,
    status = "DatabaseClaimStatus",
    shortname = "dbc",
    category = "dbclaim",
    derive = "PartialEq",
    printcolumn(name = "ENGINE", type_ = "string", json_path = ".spec.engine"),
    printcolumn(name = "SIZE", type_ = "string", json_path = ".spec.size"),
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
        name = "COMPOSITION",
        type_ = "string",
        json_path = ".status.composition.name"
    ),
    printcolumn(
        name = "SECRET",
        type_ = "string",
        json_path = ".status.connectionSecretRef.name"
    ),
    printcolumn(
        name = "AGE",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "REVISION",
        type_ = "integer",
        json_path = ".status.compositionRevision.revision",
        priority = 1
    )
)]
#[x_kube(validation = Rule::new("!(has(self.compositionRef) && has(self.compositionSelector))").message("set compositionRef or compositionSelector, not both"))]
#[x_kube(validation = Rule::new("has(self.databaseName) == has(oldSelf.databaseName) && (!has(self.databaseName) || self.databaseName == oldSelf.databaseName)").message("databaseName is immutable: create a new claim for another database"))]
#[serde(rename_all = "camelCase")]
pub struct DatabaseClaimSpec {
    /// The database engine; immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("engine is immutable: create a new claim for another engine"))]
    pub engine: Engine,
    /// Major version; the composition's default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 32))]
    pub version: Option<String>,
    #[serde(default)]
    pub size: Size,
    /// Allocated storage in GB; may grow, never shrink.
    #[serde(default = "default_storage_gb", rename = "storageGB")]
    #[schemars(range(min = 1, max = 65536))]
    #[x_kube(validation = Rule::new("self >= oldSelf").message("storageGB may grow but never shrink"))]
    pub storage_gb: i64,
    /// The database's name; immutable; the claim name with `-` as `_` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-z_][a-z0-9_]{0,62}$"))]
    pub database_name: Option<String>,
    /// Free-form inputs for compositions: at most 64, names of at most 63
    /// characters, values of at most 1 KiB.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "bounded_parameters")]
    pub parameters: BTreeMap<String, String>,
    /// Pick exactly this composition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "bounded_name_ref")]
    pub composition_ref: Option<NameRef>,
    /// Pick a composition by its labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "bounded_label_selector")]
    pub composition_selector: Option<LabelSelector>,
    /// Where the connection Secret is written; `<claim name>-connection` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_connection_secret_to_ref: Option<ConnectionSecretRef>,
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// `Automatic`: render the composition's newest revision. `Manual`: stay
    /// on `status.compositionRevision` until `compositionRevisionRef` is set.
    #[serde(default)]
    pub composition_update_policy: UpdatePolicy,
    /// Render exactly this CompositionRevision (of the selected composition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "bounded_revision_ref")]
    pub composition_revision_ref: Option<NameRef>,
    /// Rotation of the database credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<CredentialsSpec>,
}

/// How a claim follows its composition's revisions.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum UpdatePolicy {
    #[default]
    Automatic,
    Manual,
}

/// The CompositionRevision a claim renders.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
pub struct RevisionRef {
    pub name: String,
    pub revision: i64,
}

/// How the claim's credentials rotate (see the README, "Credentials").
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsSpec {
    /// Rotate the password every this many days; a ClaimPolicy's
    /// `credentialRotationDays` may ask for more often. Never when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3650))]
    pub rotation_days: Option<i64>,
    /// How long the previous login keeps working after a rotation
    /// (shared PostgreSQL); default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 10080))]
    pub grace_minutes: Option<i64>,
}

/// The last rotation of the claim's credentials and the next one due.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsStatus {
    /// When the last rotation started; composed objects carry it in the
    /// annotation `dbclaim.io/rotate-credentials`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotated_at: Option<Time>,
    /// When the schedule rotates next; unset without a schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_rotation_at: Option<Time>,
    /// The value of the claim's annotation `dbclaim.io/rotate-credentials`
    /// last acted on: a new value rotates once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_request: Option<String>,
}

/// The claim's connection Secret: a name the API server accepts for a
/// Secret, checked here so a bad one is refused on apply, not by a silent
/// 422 when the database turns ready.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
pub struct ConnectionSecretRef {
    /// A DNS-1123 subdomain: lower-case alphanumerics, `-` and `.`, at most 253.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub name: String,
}

fn default_storage_gb() -> i64 {
    20
}

/// Most parameters a claim may carry; with [`MAX_PARAMETER_VALUE_LEN`] it
/// bounds what one claim costs the operator's memory (every claim is cached).
pub const MAX_PARAMETERS: usize = 64;
pub const MAX_PARAMETER_VALUE_LEN: usize = 1024;

// The schemas below bound every tenant-written field of a claim, so no
// tenant can exhaust the operator's memory (audit M4).

pub(super) fn bounded_parameters(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "Free-form inputs for compositions: at most 64, names of at most 63 characters, values of at most 1 KiB.",
        "type": "object",
        "maxProperties": MAX_PARAMETERS,
        "additionalProperties": { "type": "string", "maxLength": MAX_PARAMETER_VALUE_LEN },
        "x-kubernetes-validations": [{
            "rule": "self.all(k, k.matches('^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$'))",
            "message": "parameter names are 1 to 63 letters, digits, '_', '.' or '-', starting and ending with a letter or digit"
        }]
    })
}

pub(super) fn bounded_name_ref(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "Pick exactly this composition.",
        "type": "object",
        "nullable": true,
        "required": ["name"],
        "properties": { "name": { "type": "string", "minLength": 1, "maxLength": 253 } }
    })
}

pub(super) fn bounded_revision_ref(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "Render exactly this CompositionRevision (of the selected composition).",
        "type": "object",
        "nullable": true,
        "required": ["name"],
        "properties": { "name": { "type": "string", "minLength": 1, "maxLength": 253 } }
    })
}

pub(super) fn bounded_label_selector(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "Pick a composition by its labels.",
        "type": "object",
        "nullable": true,
        "properties": {
            "matchLabels": {
                "type": "object",
                "maxProperties": 32,
                "additionalProperties": { "type": "string", "maxLength": 63 }
            },
            "matchExpressions": {
                "type": "array",
                "maxItems": 32,
                "items": {
                    "type": "object",
                    "required": ["key", "operator"],
                    "properties": {
                        "key": { "type": "string", "maxLength": 317 },
                        "operator": { "type": "string", "maxLength": 16 },
                        "values": {
                            "type": "array",
                            "maxItems": 32,
                            "items": { "type": "string", "maxLength": 63 }
                        }
                    }
                }
            }
        }
    })
}

#[derive(
    Serialize,
    Deserialize,
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    Postgres,
    Mysql,
}

impl Engine {
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Postgres => "postgres",
            Engine::Mysql => "mysql",
        }
    }

    /// The Service Binding `type` of this engine's connection Secret.
    pub fn binding_type(self) -> &'static str {
        match self {
            Engine::Postgres => "postgresql",
            Engine::Mysql => "mysql",
        }
    }
}

impl std::fmt::Display for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(
    Serialize,
    Deserialize,
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Size {
    #[default]
    Small,
    Medium,
    Large,
}

impl Size {
    pub fn as_str(self) -> &'static str {
        match self {
            Size::Small => "small",
            Size::Medium => "medium",
            Size::Large => "large",
        }
    }
}

impl std::fmt::Display for Size {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What dbclaim observed and did; the only part of a claim it writes.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseClaimStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub composition: Option<NameRef>,
    /// The CompositionRevision the claim renders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub composition_revision: Option<RevisionRef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<ResourceStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_secret_ref: Option<NameRef>,
    /// The Service Binding "Provisioned Service" duck type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binding: Option<NameRef>,
    /// Values written by ToClaimFieldPath patches.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "any_map")]
    pub outputs: BTreeMap<String, serde_json::Value>,
    /// Rotation of the credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<CredentialsStatus>,
    /// The newest drills (`dbclaim.io/drill`), oldest first, at most 10.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub drills: Vec<DrillStatus>,
}

/// One composed resource of a claim.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceStatus {
    pub name: String,
    pub api_version: String,
    pub kind: String,
    pub resource_name: String,
    pub ready: bool,
}

impl DatabaseClaimSpec {
    /// The name of the connection Secret in the claim's namespace.
    pub fn connection_secret_name(&self, claim_name: &str) -> String {
        match &self.write_connection_secret_to_ref {
            Some(r) if !r.name.is_empty() => r.name.clone(),
            _ => format!("{claim_name}-connection"),
        }
    }

    /// The database name: as set, or the claim name with `-` as `_`.
    pub fn effective_database_name(&self, claim_name: &str) -> String {
        match &self.database_name {
            Some(n) => n.clone(),
            None => claim_name.replace('-', "_"),
        }
    }
}

impl DatabaseClaim {
    /// The object name recorded in `status.resources` for the composed
    /// resource `resource`: the record that keeps objects made under an
    /// earlier naming at their names (see [`crate::naming::object_name`]).
    pub fn recorded_resource_name(&self, resource: &str) -> Option<&str> {
        self.status
            .as_ref()?
            .resources
            .iter()
            .find(|r| r.name == resource && !r.resource_name.is_empty())
            .map(|r| r.resource_name.as_str())
    }
}
