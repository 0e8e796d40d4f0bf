//! The labels that tie composed objects and Secrets to their claim.

use std::collections::BTreeMap;

use kube::runtime::reflector::ObjectRef;

use crate::api::DatabaseClaim;
use crate::naming::label_value;

pub const CLAIM_NAME: &str = "dbclaim.io/claim-name";
pub const CLAIM_NAMESPACE: &str = "dbclaim.io/claim-namespace";
pub const COMPOSITION: &str = "dbclaim.io/composition";
pub const RESOURCE: &str = "dbclaim.io/resource";
pub const DELETION_POLICY: &str = crate::engine::LABEL_DELETION_POLICY;
pub const CLAIM_UID: &str = crate::engine::LABEL_CLAIM_UID;

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
