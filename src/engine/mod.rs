//! The composition engine: pure functions from a claim, a composition and
//! what was last observed to the desired composed objects. No I/O, no
//! panics on any input: every failure is a typed [`EngineError`] whose text
//! names the resource and the patch, check or detail, for the claim's
//! `Synced=False, CompositionInvalid` condition.
//!
//! - [`render`]: the desired objects, their readiness, the claim's outputs
//!   and the connection details.
//! - [`connection_secret`]: the claim's connection Secret from those details.
//! - [`validate`]: static checks of a composition for `dbclaim validate`.
//! - [`builtin_scope`]: kind scopes for rendering offline.
//!
//! Semantics are Crossplane's patch-and-transform with `Claim` in place of
//! `Composite`. Deliberate differences, each commented where it is made:
//!
//! - `policy.fromFieldPath: Required` with a missing source is an error
//!   (Crossplane silently holds back a not-yet-created resource instead).
//! - `string.fmt` and combine formats refuse wrong arity or types with an
//!   error instead of printing Go's `%!d(string=x)` markers ([`gofmt`]).
//! - `Join` joins properly with multi-character separators; `NonEmpty` also
//!   fails on an empty string, list or map; math overflow is an error.
//! - A patch whose result is null removes the target instead of writing null.
//! - ToClaim outputs are computed before the FromClaim patches, so a FromClaim
//!   patch can read `status.outputs.*` in the same render.
//! - A connection key with an empty value counts as missing for the claim's
//!   Secret; a claim without a namespace renders as in `default`.
//! - `Generate` patches (not in Crossplane) fill a field with a CSPRNG
//!   value kept across renders ([`generate`]), and `fromConnectionSecretKey`
//!   on a composed `v1 Secret` reads that Secret's own keys.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::api::{CompositionSpec, DatabaseClaim};

pub mod connection;
mod error;
pub mod fieldpath;
pub mod generate;
pub mod gofmt;
pub mod patch;
pub mod quantity;
pub mod readiness;
mod render;
mod scope;
pub mod transform;
mod validate;
mod value;

#[cfg(test)]
mod render_tests;

pub use connection::{ConnectionSecret, REQUIRED_KEYS, connection_secret, secret_type};
pub use error::{EngineError, ResourceError};
pub use fieldpath::FieldPath;
pub use generate::Generator;
pub use render::render;
pub use scope::builtin_scope;
pub use validate::{PatchOutput, Problem, patch_outputs, validate};

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
    /// Values of `Generate` patches: random in the cluster, placeholders
    /// offline.
    pub generator: Generator,
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
    /// The Secret of the object's namespace its controller writes for it,
    /// from the template's `connectionSecret` (`<object name><nameSuffix>`).
    pub connection_secret: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rendered {
    pub resources: Vec<ComposedResource>,
    /// `status.outputs` of the claim, from ToClaimFieldPath/CombineToClaim patches.
    pub outputs: BTreeMap<String, Value>,
    /// Connection details published by the composed resources, by key.
    pub connection: BTreeMap<String, Vec<u8>>,
}
