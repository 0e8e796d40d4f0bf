//! The custom resources users see, as fixed by the API contract.
//!
//! Types only: behaviour lives in the engine, the reconcilers and the providers.

// kube's `printcolumn(..., type_ = "string", ...)` repeats a key clippy reads as a duplicate attribute.
#![allow(clippy::duplicated_attributes)]

pub mod aws;
pub mod claim;
pub mod common;
pub mod composition;
pub mod policy;
pub mod postgres;
pub mod revision;

pub use claim::{DatabaseClaim, DatabaseClaimSpec, DatabaseClaimStatus, Engine, Size};
pub use common::{DeletionPolicy, NameRef};
pub use composition::{Composition, CompositionSpec};
pub use policy::{ClaimPolicy, ClaimPolicySpec};
pub use revision::{CompositionRevision, CompositionRevisionSpec};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// The category every dbclaim kind is listed under (`kubectl get dbclaim`).
pub const CATEGORY: &str = "dbclaim";

/// Every CRD dbclaim owns, in a stable order (the order `dbclaim crds` prints).
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        ClaimPolicy::crd(),
        Composition::crd(),
        CompositionRevision::crd(),
        DatabaseClaim::crd(),
        aws::ProviderConfig::crd(),
        aws::RDSInstance::crd(),
        postgres::Database::crd(),
        postgres::ProviderConfig::crd(),
    ]
}
