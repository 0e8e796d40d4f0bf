//! The engine's errors. Every one means the composition cannot be applied to
//! this claim (the controller reports `Synced=False, CompositionInvalid`), and
//! its text is what a platform engineer reads in the claim's condition: which
//! resource, which patch/check/detail, and what to change.

use super::connection::DetailError;
use super::patch::PatchError;
use super::readiness::CheckError;

/// Boxed parts keep the error small on the happy path's `Result`.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum EngineError {
    #[error("the claim has no metadata.name")]
    ClaimWithoutName,
    #[error(
        "resource names must be unique within a composition, but \"{0}\" appears more than once"
    )]
    DuplicateResource(String),
    #[error("resource \"{resource}\", patch {index} ({summary}): {error}")]
    Patch {
        resource: String,
        index: usize,
        summary: String,
        error: Box<PatchError>,
    },
    #[error("resource \"{resource}\", readiness check {index} ({check_type}): {error}")]
    ReadinessCheck {
        resource: String,
        index: usize,
        check_type: &'static str,
        error: CheckError,
    },
    #[error("resource \"{resource}\", connection detail \"{name}\": {error}")]
    ConnectionDetail {
        resource: String,
        name: String,
        error: DetailError,
    },
    #[error("resource \"{resource}\": {error}")]
    Resource {
        resource: String,
        error: ResourceError,
    },
}

impl EngineError {
    /// The composition resource (template) the error is about, if any.
    pub fn resource(&self) -> Option<&str> {
        match self {
            EngineError::ClaimWithoutName => None,
            EngineError::DuplicateResource(r) => Some(r),
            EngineError::Patch { resource, .. }
            | EngineError::ReadinessCheck { resource, .. }
            | EngineError::ConnectionDetail { resource, .. }
            | EngineError::Resource { resource, .. } => Some(resource),
        }
    }
}

/// A composed object that cannot be made into a valid, isolated object.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResourceError {
    #[error("base must be an object (a Kubernetes manifest), not {found}")]
    BaseNotObject { found: &'static str },
    #[error("the composed object has no {field}; set it in base (e.g. {example})")]
    MissingTypeField {
        field: &'static str,
        example: &'static str,
    },
    #[error("{field} must be a string, not {found}")]
    TypeFieldNotString {
        field: &'static str,
        found: &'static str,
    },
    #[error("{field} must be an object, not {found}")]
    NotAnObject {
        field: &'static str,
        found: &'static str,
    },
    #[error("label {key:?} must have a string value, not {found}")]
    LabelNotString { key: String, found: &'static str },
    #[error(
        "the composed {kind} is aimed at namespace {namespace:?}, but objects composed for a claim \
         may only live in the claim's namespace {claim_namespace:?}; remove metadata.namespace from \
         base and patches"
    )]
    NamespaceEscape {
        kind: String,
        namespace: String,
        claim_namespace: String,
    },
    #[error("metadata.namespace must be a string, not {found}")]
    NamespaceNotString { found: &'static str },
    #[error(
        "connectionSecret: {name:?} (the object's name and nameSuffix) is not a valid Secret name: \
         use lowercase letters, digits, '-' and '.', alphanumeric next to every '.' and at the end"
    )]
    ConnectionSecretName { name: String },
    #[error(
        "connectionSecret names a Secret in the object's namespace, but the composed {kind} is \
         cluster-scoped; use spec.writeConnectionSecretToRef"
    )]
    ConnectionSecretClusterScoped { kind: String },
}
