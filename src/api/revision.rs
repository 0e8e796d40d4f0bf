//! `CompositionRevision`: an immutable copy of a Composition's spec, made by
//! the operator on every change, that claims render instead of the live
//! Composition (so an edit can be staged, previewed and rolled back).

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::composition::CompositionSpec;

#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "dbclaim.io",
    version = "v1alpha1",
    kind = "CompositionRevision",
    shortname = "dbcrev",
    category = "dbclaim",
    status = "RevisionStatus",
    derive = "PartialEq",
    printcolumn(
        name = "COMPOSITION",
        type_ = "string",
        json_path = ".metadata.labels.dbclaim\\.io/composition-name"
    ),
    printcolumn(name = "REVISION", type_ = "integer", json_path = ".spec.revision"),
    printcolumn(
        name = "AGE",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct CompositionRevisionSpec {
    /// 1, 2, 3, … per composition; the newest is the highest. Re-applying
    /// an earlier spec gives its revision a new, highest number.
    #[schemars(range(min = 1))]
    pub revision: i64,
    /// The composition's spec when this revision was made.
    #[serde(flatten)]
    pub composition: CompositionSpec,
}

/// Nothing is reported yet; the subresource is there because every dbclaim
/// kind has one (the contract).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
pub struct RevisionStatus {}

impl CompositionRevision {
    /// The composition this revision belongs to (its label).
    pub fn composition_name(&self) -> Option<&str> {
        self.metadata
            .labels
            .as_ref()?
            .get(crate::contract::LABEL_COMPOSITION_NAME)
            .map(String::as_str)
    }
}
