//! `postgres.dbclaim.io`: databases on an existing, shared PostgreSQL server.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{ConfigStatus, ManagedSpec, ManagedStatus, NamespacedRef};

/// A database and its owner role on a shared server.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "postgres.dbclaim.io",
    version = "v1alpha1",
    kind = "Database",
    status = "DatabaseStatus",
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
        name = "DATABASE",
        type_ = "string",
        json_path = ".spec.forProvider.databaseName"
    ),
    printcolumn(
        name = "AGE",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
// Another provider config is another server: an edit would make a second,
// empty database and leave this one behind (audit M3).
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "self.providerConfigRef == oldSelf.providerConfigRef",
    "message": "providerConfigRef is immutable: it would create a second database elsewhere and leave this one behind"
}]))]
pub struct DatabaseSpec {
    #[serde(flatten)]
    pub managed: ManagedSpec,
    pub for_provider: DatabaseParameters,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseParameters {
    /// Also the owner role's name. Hyphens are allowed (identifiers are
    /// quoted) so compositions can prefix the claim's namespace.
    #[schemars(regex(pattern = r"^[a-z_][a-z0-9_-]{0,62}$"))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("databaseName is immutable"))]
    pub database_name: String,
    /// Most concurrent connections; -1 (the default) for no limit.
    #[serde(default = "default_connection_limit")]
    #[schemars(range(min = -1))]
    pub connection_limit: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extensions: Vec<String>,
}

fn default_connection_limit() -> i64 {
    -1
}

pub type DatabaseStatus = ManagedStatus<DatabaseObservation>;

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseObservation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_limit: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extensions: Vec<String>,
}

/// How dbclaim reaches a shared PostgreSQL server as an admin.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "postgres.dbclaim.io",
    version = "v1alpha1",
    kind = "ProviderConfig",
    status = "ConfigStatus",
    category = "dbclaim",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct ProviderConfigSpec {
    pub host: String,
    #[serde(default = "default_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i64,
    #[serde(default)]
    pub ssl_mode: SslMode,
    /// A Secret with the keys `username` and `password` of an admin role.
    pub credentials_secret_ref: NamespacedRef,
}

fn default_port() -> i64 {
    5432
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SslMode {
    Disable,
    #[default]
    Prefer,
    Require,
}
