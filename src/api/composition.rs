//! `Composition`: how a platform team turns a claim into provider resources.
//!
//! The patch, transform and readiness shapes follow Crossplane's
//! patch-and-transform (flat structs with a `type` discriminator), with
//! `Claim` in place of `Composite`, so compositions move over unchanged.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::claim::Engine;
use super::common::{ConfigStatus, any_map, any_object, any_value};

#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "dbclaim.io",
    version = "v1alpha1",
    kind = "Composition",
    status = "ConfigStatus",
    shortname = "dbcomp",
    category = "dbclaim",
    derive = "PartialEq",
    printcolumn(name = "ENGINES", type_ = "string", json_path = ".spec.engines"),
    printcolumn(
        name = "AGE",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct CompositionSpec {
    /// The engines this composition serves.
    #[schemars(length(min = 1))]
    pub engines: Vec<Engine>,
    /// The objects composed for each claim.
    /// Keyed by `name`, so the API server itself refuses duplicates.
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub resources: Vec<ComposedTemplate>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComposedTemplate {
    /// Unique within the composition; part of the composed object's name.
    #[schemars(regex(pattern = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"))]
    pub name: String,
    /// Any Kubernetes object: the starting point patches write into.
    #[schemars(schema_with = "any_object")]
    pub base: serde_json::Value,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub patches: Vec<Patch>,
    /// Default: the object's `Ready` condition is True.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub readiness_checks: Vec<ReadinessCheck>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connection_details: Vec<ConnectionDetail>,
    /// The Secret `fromConnectionSecretKey` reads when the object's
    /// controller writes its credentials to a Secret of its own naming
    /// (CloudNativePG's `<cluster>-app`) instead of
    /// `spec.writeConnectionSecretToRef`. Namespaced objects only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_secret: Option<ConnectionSecretName>,
}

/// The name of the Secret a composed object's controller writes for it:
/// the object's name plus `nameSuffix`, in the object's namespace (the
/// claim's), read only when the object owns it. A composition cannot name
/// any other Secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionSecretName {
    /// Appended to the composed object's name, e.g. `-app`.
    #[schemars(regex(pattern = r"^[-.a-z0-9]{1,63}$"))]
    pub name_suffix: String,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum PatchType {
    #[default]
    FromClaimFieldPath,
    ToClaimFieldPath,
    CombineFromClaim,
    CombineToClaim,
    /// Fills `toFieldPath` with a value from a CSPRNG once per composed
    /// object; later renders keep the observed value until a rotation.
    Generate,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Patch {
    #[serde(default, rename = "type")]
    pub type_: PatchType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_field_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_field_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub combine: Option<Combine>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transforms: Vec<Transform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<PatchPolicy>,
    /// What a `Generate` patch generates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate: Option<GenerateSpec>,
}

/// A generated value: `{type: Password, length: 32}`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GenerateSpec {
    #[serde(default, rename = "type")]
    pub type_: GenerateType,
    /// Characters; default 32.
    #[serde(default = "default_generate_length")]
    #[schemars(range(min = 8, max = 256))]
    pub length: i64,
}

fn default_generate_length() -> i64 {
    32
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum GenerateType {
    /// Letters and digits (`[A-Za-z0-9]`): no escaping needed in a URI,
    /// a shell or a connection string.
    #[default]
    Password,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PatchPolicy {
    #[serde(default)]
    pub from_field_path: FromFieldPathPolicy,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum FromFieldPathPolicy {
    #[default]
    Optional,
    Required,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Combine {
    pub variables: Vec<CombineVariable>,
    #[serde(default)]
    pub strategy: CombineStrategy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub string: Option<StringCombine>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CombineVariable {
    pub from_field_path: String,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CombineStrategy {
    #[default]
    String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct StringCombine {
    pub fmt: String,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TransformType {
    Map,
    Match,
    String,
    Math,
    Convert,
}

/// One step of a patch's transform chain; `type` says which field applies.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Transform {
    #[serde(rename = "type")]
    pub type_: TransformType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_map_opt")]
    pub map: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    pub match_: Option<MatchTransform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub string: Option<StringTransform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub math: Option<MathTransform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub convert: Option<ConvertTransform>,
}

fn any_map_opt(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
    any_map(g)
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MatchTransform {
    #[serde(default)]
    pub patterns: Vec<MatchPattern>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_value")]
    pub fallback_value: Option<serde_json::Value>,
    #[serde(default)]
    pub fallback_to: MatchFallbackTo,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum MatchFallbackTo {
    #[default]
    Value,
    Input,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MatchPatternType {
    Literal,
    Regexp,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MatchPattern {
    #[serde(rename = "type")]
    pub type_: MatchPatternType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub literal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regexp: Option<String>,
    #[schemars(schema_with = "any_value")]
    pub result: serde_json::Value,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum StringTransformType {
    #[default]
    Format,
    Convert,
    TrimPrefix,
    TrimSuffix,
    Regexp,
    Join,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum StringConversion {
    ToUpper,
    ToLower,
    ToBase64,
    FromBase64,
    ToSha256,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StringTransform {
    #[serde(default, rename = "type")]
    pub type_: StringTransformType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fmt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub convert: Option<StringConversion>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trim: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regexp: Option<StringRegexp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join: Option<StringJoin>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StringRegexp {
    #[serde(rename = "match")]
    pub match_: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<i64>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct StringJoin {
    #[serde(default)]
    pub separator: String,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum MathTransformType {
    #[default]
    Multiply,
    ClampMin,
    ClampMax,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MathTransform {
    #[serde(default, rename = "type")]
    pub type_: MathTransformType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multiply: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clamp_min: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clamp_max: Option<i64>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ConvertToType {
    String,
    Int,
    Int64,
    Float64,
    Bool,
    Object,
    Array,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ConvertFormat {
    None,
    Quantity,
    Json,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConvertTransform {
    pub to_type: ConvertToType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<ConvertFormat>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ReadinessCheckType {
    MatchCondition,
    MatchString,
    MatchInteger,
    MatchTrue,
    MatchFalse,
    NonEmpty,
    None,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadinessCheck {
    #[serde(rename = "type")]
    pub type_: ReadinessCheckType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_string: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_integer: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_condition: Option<MatchConditionCheck>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct MatchConditionCheck {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ConnectionDetailType {
    FromConnectionSecretKey,
    FromFieldPath,
    FromValue,
}

/// One key of the claim's connection Secret. `type` is inferred from which
/// source field is set, as in Crossplane.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionDetail {
    #[schemars(regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub name: String,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<ConnectionDetailType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_connection_secret_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_field_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}
