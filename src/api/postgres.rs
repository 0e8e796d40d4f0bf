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
    /// The login the connection Secret names: the role itself, or after a
    /// password rotation one of its two logins `<role>_1`, `<role>_2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login: Option<String>,
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
// A verify mode without CAs could check nothing; a CA with another mode would
// look like a check that is not made.
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!(has(self.sslMode) && self.sslMode in ['verify-ca', 'verify-full']) || has(self.caSecretRef)",
        "message": "sslMode verify-ca and verify-full need caSecretRef: a Secret whose key ca.crt holds the CA certificates (PEM) the server's certificate must lead to"
    },
    {
        "rule": "!has(self.caSecretRef) || (has(self.sslMode) && self.sslMode in ['verify-ca', 'verify-full'])",
        "message": "caSecretRef is read only with sslMode verify-ca or verify-full: with disable, prefer and require the server's certificate is not checked"
    }
]))]
pub struct ProviderConfigSpec {
    pub host: String,
    #[serde(default = "default_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i64,
    #[serde(default)]
    pub ssl_mode: SslMode,
    /// For `verify-ca` and `verify-full`: a Secret whose key `ca.crt` holds
    /// the CA certificates (PEM) the server's certificate must lead to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<NamespacedRef>,
    /// A Secret with the keys `username` and `password` of an admin role.
    pub credentials_secret_ref: NamespacedRef,
}

fn default_port() -> i64 {
    5432
}

/// libpq's modes. With `require` and above the admin password never
/// travels in clear text (a clear-text or MD5 password request ends the
/// connection) and SCRAM binds the login to the TLS session where the
/// server offers it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    // No TLS: the admin password and all data travel unencrypted
    // (reported on the ProviderConfig's status).
    Disable,
    // TLS when the server offers it, plain otherwise; no certificate check.
    #[default]
    Prefer,
    // TLS, any certificate.
    Require,
    // TLS, a certificate that leads to a CA of `caSecretRef`.
    VerifyCa,
    // `verify-ca`, and the certificate names `host`.
    VerifyFull,
}

impl SslMode {
    /// The name a ProviderConfig spells.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}
