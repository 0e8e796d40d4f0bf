//! The composition engine: pure functions from a claim, a composition and
//! what was last observed to the desired composed objects. No I/O.
//!
//! INTERFACE STUB — the engine's author replaces the bodies; the public
//! shapes below are what the CLI and the controller call.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::api::{CompositionSpec, DatabaseClaim};

/// Whether a kind's objects live in a namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Namespaced,
    Cluster,
}

/// What was last observed of one composed resource, keyed by its template name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    /// The object as read from the API server.
    pub object: Option<Value>,
    /// The data of the connection Secret the object writes, if any.
    pub connection: BTreeMap<String, Vec<u8>>,
}

pub struct RenderRequest<'a> {
    pub claim: &'a DatabaseClaim,
    pub composition_name: &'a str,
    pub composition: &'a CompositionSpec,
    /// Keyed by the template (resource) name.
    pub observed: &'a BTreeMap<String, Observed>,
    /// Scope of a kind, from discovery in the cluster or a table offline.
    pub scope: &'a dyn Fn(&str, &str) -> Scope,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Readiness {
    pub ready: bool,
    /// Why not ready, in words for a developer (empty when ready).
    pub message: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ComposedResource {
    /// The template name in the composition.
    pub name: String,
    /// The full desired object: apiVersion, kind, metadata (name, namespace
    /// for namespaced kinds, labels, owner reference for namespaced kinds).
    pub object: Value,
    pub scope: Scope,
    pub readiness: Readiness,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rendered {
    pub resources: Vec<ComposedResource>,
    /// `status.outputs` of the claim, from ToClaimFieldPath/CombineToClaim patches.
    pub outputs: BTreeMap<String, Value>,
    /// Connection details published by the composed resources, by key.
    pub connection: BTreeMap<String, Vec<u8>>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EngineError {
    #[error("composition is invalid: {0}")]
    Invalid(String),
}

pub fn render(_req: &RenderRequest<'_>) -> Result<Rendered, EngineError> {
    Err(EngineError::Invalid("engine not implemented yet".into()))
}

/// A problem `dbclaim validate` reports. (Stub until the engine lands.)
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    pub resource: String,
    pub patch: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.patch {
            Some(i) => write!(
                f,
                "resource {:?}, patch {i}: {}",
                self.resource, self.message
            ),
            None => write!(f, "resource {:?}: {}", self.resource, self.message),
        }
    }
}

pub fn validate(_spec: &CompositionSpec) -> Vec<Problem> {
    Vec::new()
}

pub fn builtin_scope(_api_version: &str, _kind: &str) -> Scope {
    Scope::Namespaced
}

/// The claim's connection Secret content. (Stub until the engine lands.)
pub struct ConnectionSecret {
    pub data: BTreeMap<String, Vec<u8>>,
    pub missing: Vec<&'static str>,
    pub secret_type: &'static str,
}

pub fn connection_secret(
    _engine: crate::api::Engine,
    _provider: &str,
    _details: &BTreeMap<String, Vec<u8>>,
) -> ConnectionSecret {
    ConnectionSecret {
        data: BTreeMap::new(),
        missing: vec!["host"],
        secret_type: "",
    }
}
