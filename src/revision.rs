//! Composition revisions, pure: naming, numbering, retention, and which
//! revision a claim renders. The controllers at the edges read the caches
//! and carry out what these functions decide.

use std::collections::BTreeSet;

use kube::ResourceExt;
use serde_json::Value;
use sha2::Digest;

use crate::api::claim::{RevisionRef, UpdatePolicy};
use crate::api::{CompositionRevision, CompositionSpec, DatabaseClaim};

/// Of the revisions no claim uses, this many of the newest are kept.
pub const KEEP: usize = 20;

/// Hex digits of the spec hash in a revision's name.
const HASH_LEN: usize = 7;
/// The longest object name the API server accepts (a DNS subdomain).
const MAX_NAME: usize = 253;

/// A short hash of a composition spec: equal specs (whatever their key
/// order or the defaults left out) hash alike.
pub fn spec_hash(spec: &CompositionSpec) -> String {
    let value = serde_json::to_value(spec).unwrap_or(Value::Null);
    let digest = sha2::Sha256::digest(canonical(&value).as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    hex[..HASH_LEN].to_string()
}

/// JSON with object keys sorted at every level.
fn canonical(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::from(k.as_str()), canonical(&map[k])))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(canonical).collect();
            format!("[{}]", items.join(","))
        }
        other => other.to_string(),
    }
}

/// `<composition>-<short hash of the spec>`, the composition's part cut so
/// the name stays a valid object name.
pub fn name(composition: &str, spec: &CompositionSpec) -> String {
    let hash = spec_hash(spec);
    let room = MAX_NAME - HASH_LEN - 1;
    let mut prefix: &str = composition;
    if prefix.len() > room {
        prefix = &prefix[..room];
    }
    let prefix = prefix.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    format!("{prefix}-{hash}")
}

/// A revision as far as numbering and retention care.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Known {
    pub name: String,
    pub revision: i64,
}

impl From<&CompositionRevision> for Known {
    fn from(r: &CompositionRevision) -> Self {
        Known {
            name: r.name_any(),
            revision: r.spec.revision,
        }
    }
}

/// What a composition's current spec asks of its revisions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// The newest revision already holds the spec.
    Current,
    /// A spec never seen: a new revision numbered after the newest.
    Create { name: String, revision: i64 },
    /// An earlier spec applied again: its revision becomes the newest.
    Promote { name: String, revision: i64 },
}

/// The step that makes the revision of `spec` the newest of `known` (the
/// composition's revisions).
pub fn plan(composition: &str, spec: &CompositionSpec, known: &[Known]) -> Step {
    let name = name(composition, spec);
    let newest = known.iter().map(|k| k.revision).max().unwrap_or(0);
    match known.iter().find(|k| k.name == name) {
        None => Step::Create {
            name,
            revision: newest + 1,
        },
        // Two revisions may share the top number while a promotion is in
        // flight; the spec's own must be the only one there.
        Some(k)
            if k.revision == newest
                && known.iter().filter(|o| o.revision == newest).count() == 1 =>
        {
            Step::Current
        }
        Some(_) => Step::Promote {
            name,
            revision: newest + 1,
        },
    }
}

/// The revisions to delete: of those not `in_use`, all but the newest
/// `keep`. The newest revision of all is never among them.
pub fn retire(known: &[Known], in_use: &BTreeSet<String>, keep: usize) -> Vec<String> {
    let mut idle: Vec<&Known> = known.iter().filter(|k| !in_use.contains(&k.name)).collect();
    idle.sort_by(|a, b| {
        b.revision
            .cmp(&a.revision)
            .then_with(|| a.name.cmp(&b.name))
    });
    let newest = known.iter().map(|k| k.revision).max();
    idle.into_iter()
        .skip(keep)
        .filter(|k| Some(k.revision) != newest)
        .map(|k| k.name.clone())
        .collect()
}

/// The revisions claims use: the ones they render and the ones they pin.
pub fn in_use<'a>(claims: impl IntoIterator<Item = &'a DatabaseClaim>) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for claim in claims {
        if let Some(r) = &claim.spec.composition_revision_ref {
            names.insert(r.name.clone());
        }
        if let Some(r) = claim
            .status
            .as_ref()
            .and_then(|s| s.composition_revision.as_ref())
        {
            names.insert(r.name.clone());
        }
    }
    names
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChooseError {
    #[error(
        "composition revision {name:?} (spec.compositionRevisionRef) is not a revision of composition {composition:?}: pick one from `kubectl get dbcrev -l dbclaim.io/composition-name={composition}`"
    )]
    RefNotFound { name: String, composition: String },
    #[error(
        "composition revision {name:?}, which this Manual claim uses, does not exist: its objects and data are kept as they are; set spec.compositionRevisionRef to a revision of composition {composition:?}, or switch spec.compositionUpdatePolicy to Automatic"
    )]
    RecordedGone { name: String, composition: String },
}

/// The revision of `composition` that `claim` renders, from that
/// composition's `revisions`: the pinned one, a Manual claim's recorded
/// one, else the newest. `None` while the composition has no revision yet
/// (the claim then renders the live spec, which its first revision copies).
pub fn choose<'a>(
    claim: &DatabaseClaim,
    composition: &str,
    revisions: &[&'a CompositionRevision],
) -> Result<Option<&'a CompositionRevision>, ChooseError> {
    let ours = |name: &str| {
        revisions
            .iter()
            .copied()
            .find(|r| r.name_any() == name && r.composition_name() == Some(composition))
    };
    if let Some(pin) = &claim.spec.composition_revision_ref {
        return ours(&pin.name)
            .map(Some)
            .ok_or_else(|| ChooseError::RefNotFound {
                name: pin.name.clone(),
                composition: composition.to_string(),
            });
    }
    if claim.spec.composition_update_policy == UpdatePolicy::Manual
        && let Some(recorded) = recorded(claim, composition)
    {
        return ours(&recorded.name)
            .map(Some)
            .ok_or_else(|| ChooseError::RecordedGone {
                name: recorded.name.clone(),
                composition: composition.to_string(),
            });
    }
    Ok(revisions
        .iter()
        .copied()
        .filter(|r| r.composition_name() == Some(composition))
        .max_by(|a, b| {
            a.spec
                .revision
                .cmp(&b.spec.revision)
                .then_with(|| b.name_any().cmp(&a.name_any()))
        }))
}

/// The revision the claim recorded, if it was one of `composition`'s.
fn recorded<'a>(claim: &'a DatabaseClaim, composition: &str) -> Option<&'a RevisionRef> {
    let status = claim.status.as_ref()?;
    let same = status
        .composition
        .as_ref()
        .is_some_and(|c| c.name == composition);
    status.composition_revision.as_ref().filter(|_| same)
}

/// A revision of `composition` holding `spec`, numbered `revision`, owned
/// by the composition (`uid`) so it goes when the composition goes.
pub fn build(
    composition: &str,
    uid: Option<&str>,
    spec: &CompositionSpec,
    revision: i64,
) -> CompositionRevision {
    let mut r = CompositionRevision::new(
        &name(composition, spec),
        crate::api::CompositionRevisionSpec {
            revision,
            composition: spec.clone(),
        },
    );
    r.metadata.labels = Some(
        [(
            crate::contract::LABEL_COMPOSITION_NAME.to_string(),
            composition.to_string(),
        )]
        .into(),
    );
    if let Some(uid) = uid {
        r.metadata.owner_references = Some(vec![
            k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                api_version: "dbclaim.io/v1alpha1".into(),
                kind: "Composition".into(),
                name: composition.into(),
                uid: uid.into(),
                controller: Some(true),
                // No blockOwnerDeletion: it would need update on
                // compositions/finalizers, and nothing waits on revisions.
                block_owner_deletion: None,
            },
        ]);
    }
    r
}

#[cfg(test)]
mod tests;
