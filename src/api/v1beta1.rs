//! `dbclaim.io/v1beta1` `DatabaseClaim`: the storage version. It differs from
//! `v1alpha1` in one field, `storage` (a quantity in whole GiB) in place of
//! `storageGB`; the status and every other field and rule are the same.
//! [`crate::conversion`] converts between the two, losslessly.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::claim::{
    ConnectionSecretRef, CredentialsSpec, DatabaseClaimStatus, Engine, Size, UpdatePolicy,
    bounded_label_selector, bounded_name_ref, bounded_parameters, bounded_revision_ref,
};
use super::common::{DeletionPolicy, NameRef};

/// A database a developer claims in their namespace.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "dbclaim.io",
    version = "v1beta1",
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
    /// Allocated storage, a quantity in whole GiB from 1Gi to 64Ti (as a
    /// PersistentVolumeClaim's `resources.requests.storage`); may grow,
    /// never shrink.
    #[serde(default = "default_storage")]
    #[schemars(schema_with = "storage_schema")]
    pub storage: Quantity,
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

fn default_storage() -> Quantity {
    Quantity("20Gi".into())
}

/// A string quantity (no integer form, so CEL always sees a string), checked
/// by CEL's quantity library: whole GiB, 1Gi..64Ti, never shrinking. Each
/// rule first checks `isQuantity`, so a malformed value gets one message.
fn storage_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "Allocated storage, a quantity in whole GiB from 1Gi to 64Ti (as a PersistentVolumeClaim's resources.requests.storage); may grow, never shrink.",
        "type": "string",
        "default": "20Gi",
        "maxLength": 32,
        "x-kubernetes-validations": [
            {
                "rule": "isQuantity(self)",
                "message": "storage must be a quantity in whole GiB, e.g. 50Gi"
            },
            {
                "rule": "!isQuantity(self) || (quantity(self).compareTo(quantity('1Gi')) >= 0 && quantity(self).compareTo(quantity('64Ti')) <= 0)",
                "message": "storage must be from 1Gi to 64Ti"
            },
            {
                "rule": "!isQuantity(self) || quantity(self).compareTo(quantity('64Ti')) > 0 || (quantity(self).isInteger() && quantity(self).asInteger() % 1073741824 == 0)",
                "message": "storage must be whole GiB, e.g. 50Gi"
            },
            {
                "rule": "!isQuantity(self) || !isQuantity(oldSelf) || quantity(self).compareTo(quantity(oldSelf)) >= 0",
                "message": "storage may grow but never shrink"
            }
        ]
    })
}
