//! The labels that tie composed objects and Secrets to their claim.

use std::collections::BTreeMap;

use kube::runtime::reflector::ObjectRef;

use crate::api::DatabaseClaim;
use crate::naming::label_value;

pub use crate::contract::{
    LABEL_CLAIM_NAME as CLAIM_NAME, LABEL_CLAIM_NAMESPACE as CLAIM_NAMESPACE,
    LABEL_CLAIM_UID as CLAIM_UID, LABEL_COMPOSITION as COMPOSITION,
    LABEL_DELETION_POLICY as DELETION_POLICY, LABEL_RESOURCE as RESOURCE,
};

/// Every label dbclaim puts on a composed object: what releasing it removes.
pub const RELEASED: [&str; 6] = [
    CLAIM_NAME,
    CLAIM_NAMESPACE,
    COMPOSITION,
    RESOURCE,
    DELETION_POLICY,
    CLAIM_UID,
];

/// The claim an object's labels point at. Long claim names are hashed in
/// labels; such objects are matched back through the claim store instead.
pub fn claim_of(labels: &BTreeMap<String, String>) -> Option<ObjectRef<DatabaseClaim>> {
    let name = labels.get(CLAIM_NAME)?;
    let ns = labels.get(CLAIM_NAMESPACE)?;
    Some(ObjectRef::new(name).within(ns))
}

/// Whether `labels` say the object belongs to this claim.
pub fn belongs_to(labels: &BTreeMap<String, String>, namespace: &str, name: &str) -> bool {
    labels.get(CLAIM_NAMESPACE).map(String::as_str) == Some(label_value(namespace).as_str())
        && labels.get(CLAIM_NAME).map(String::as_str) == Some(label_value(name).as_str())
}

/// Labels of the claim's connection Secret.
pub fn for_claim(namespace: &str, name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (CLAIM_NAME.to_string(), label_value(name)),
        (CLAIM_NAMESPACE.to_string(), label_value(namespace)),
    ])
}
