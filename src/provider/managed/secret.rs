//! The connection Secret of a managed resource: where it goes, whose it is,
//! what it holds, and when it needs a write. Every Secret the scaffold
//! writes names its object in `M::SECRET_ANNOTATION` from the first write on.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, ResourceExt};

use super::{Connection, Managed};
use crate::contract::OWNER_UID_ANNOTATION;
use crate::provider::password;

/// Keys a provider wrote before and may not know on a later pass (the host
/// of an instance being re-created): kept rather than dropped.
const KEEP: [&str; 3] = ["host", "endpoint", "port"];

/// The claim labels copied to the Secret, so `kubectl get secret -l` finds
/// it from the claim.
const CLAIM_LABELS: [&str; 2] = [
    crate::contract::LABEL_CLAIM_NAME,
    crate::contract::LABEL_CLAIM_NAMESPACE,
];

/// Where the connection Secret goes: (namespace, name).
pub fn target<M: Managed>(obj: &M, operator_namespace: &str) -> (String, String) {
    match &obj.managed().write_connection_secret_to_ref {
        Some(r) => (
            r.namespace
                .clone()
                .unwrap_or_else(|| operator_namespace.to_string()),
            r.name.clone(),
        ),
        None => (operator_namespace.to_string(), obj.name_any()),
    }
}

/// Why an existing Secret is not `obj`'s to write, if it is not: one
/// dbclaim did not write (audit M8) or another object's.
pub fn foreign<M: Managed>(existing: &Secret, obj: &M) -> Option<String> {
    match existing.annotations().get(M::SECRET_ANNOTATION) {
        Some(owner) if *owner == obj.name_any() => None,
        Some(owner) => Some(format!("belongs to {} \"{owner}\"", M::kind(&()))),
        None => Some("exists and was not written by dbclaim".to_string()),
    }
}

/// Whether `existing` (written for an object of `obj`'s name) was written
/// for `obj` itself: its UID mark is `obj`'s, or missing (written by a
/// dbclaim before UID marks; the next write adds it).
pub fn same_uid<M: Managed>(existing: &Secret, obj: &M) -> bool {
    match existing.annotations().get(OWNER_UID_ANNOTATION) {
        Some(uid) => obj.meta().uid.as_ref() == Some(uid),
        None => true,
    }
}

/// Whether `existing` is `obj`'s (so it may be deleted with it).
pub fn ours<M: Managed>(existing: &Secret, obj: &M) -> bool {
    existing.annotations().get(M::SECRET_ANNOTATION) == Some(&obj.name_any())
        && same_uid(existing, obj)
}

/// A non-blank UTF-8 value of a Secret (from `data`, or `stringData` as sent).
pub fn value(secret: &Secret, key: &str) -> Option<String> {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .and_then(|v| String::from_utf8(v.0.clone()).ok())
        .or_else(|| {
            secret
                .string_data
                .as_ref()
                .and_then(|d| d.get(key))
                .cloned()
        })
        .filter(|v| !v.trim().is_empty())
}

/// Whether `existing` carries the pending-reset mark of `M`.
pub fn pending<M: Managed>(existing: &Secret) -> bool {
    M::PASSWORD_PENDING.is_some_and(|m| existing.annotations().get(m).is_some_and(|v| v == "true"))
}

/// The password to use and whether the resource may not have it yet: the
/// stored one, else a new one. A Secret written for another UID (an object
/// deleted and re-created under the same name) is no password source.
pub fn password<M: Managed>(obj: &M, existing: Option<&Secret>) -> (String, bool) {
    let existing = existing.filter(|s| same_uid(s, obj));
    let stored = existing.and_then(|s| value(s, "password"));
    let reset_due = stored.is_none() || existing.is_some_and(pending::<M>);
    (stored.unwrap_or_else(password::generate), reset_due)
}

/// The connection Secret as the scaffold applies it: `connection` plus the
/// password, the kept keys of `existing`, labels and ownership annotation.
pub fn desired<M: Managed>(
    obj: &M,
    (namespace, name): &(String, String),
    existing: Option<&Secret>,
    password: &str,
    connection: &Connection,
    pending: bool,
) -> Secret {
    let mut data: BTreeMap<String, ByteString> = connection
        .iter()
        .map(|(k, v)| (k.clone(), ByteString(v.as_bytes().to_vec())))
        .collect();
    data.insert(
        "password".to_string(),
        ByteString(password.as_bytes().to_vec()),
    );
    if let Some(have) = existing.and_then(|s| s.data.as_ref()) {
        for key in KEEP {
            if !data.contains_key(key)
                && let Some(v) = have.get(key)
            {
                data.insert(key.to_string(), v.clone());
            }
        }
    }
    let mut labels = BTreeMap::from([
        (
            "app.kubernetes.io/managed-by".to_string(),
            "dbclaim".to_string(),
        ),
        (
            M::SECRET_LABEL.to_string(),
            crate::naming::label_value(&obj.name_any()),
        ),
    ]);
    for key in CLAIM_LABELS {
        if let Some(v) = obj.labels().get(key) {
            labels.insert(key.to_string(), v.clone());
        }
    }
    let mut annotations = BTreeMap::from([(M::SECRET_ANNOTATION.to_string(), obj.name_any())]);
    if let Some(uid) = &obj.meta().uid {
        annotations.insert(OWNER_UID_ANNOTATION.to_string(), uid.clone());
    }
    if let Some(mark) = M::PASSWORD_PENDING.filter(|_| pending) {
        annotations.insert(mark.to_string(), "true".to_string());
    }
    Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace.clone()),
            labels: Some(labels),
            annotations: Some(annotations),
            ..Default::default()
        },
        data: Some(data),
        type_: Some("Opaque".to_string()),
        ..Default::default()
    }
}

/// Whether `existing` already holds every key, label and annotation of
/// `desired` (extra ones allowed), and no pending mark `desired` dropped.
pub fn up_to_date<M: Managed>(existing: &Secret, desired: &Secret) -> bool {
    fn contains<V: PartialEq>(
        have: Option<&BTreeMap<String, V>>,
        want: Option<&BTreeMap<String, V>>,
    ) -> bool {
        want.into_iter()
            .flatten()
            .all(|(k, v)| have.and_then(|h| h.get(k)) == Some(v))
    }
    contains(existing.data.as_ref(), desired.data.as_ref())
        && contains(
            existing.metadata.labels.as_ref(),
            desired.metadata.labels.as_ref(),
        )
        && contains(
            existing.metadata.annotations.as_ref(),
            desired.metadata.annotations.as_ref(),
        )
        && pending::<M>(existing) == pending::<M>(desired)
}

/// Why a Secret call failed: the action, for the message, and the error.
pub type Failure = (&'static str, kube::Error);

impl super::reconcile::SecretStore for kube::Client {
    async fn read(&self, (namespace, name): &(String, String)) -> Result<Option<Secret>, Failure> {
        Api::<Secret>::namespaced(self.clone(), namespace)
            .get_opt(name)
            .await
            .map_err(|e| ("read", e))
    }

    async fn apply(&self, desired: &Secret, manager: &str) -> Result<Secret, Failure> {
        Api::<Secret>::namespaced(self.clone(), &desired.namespace().unwrap_or_default())
            .patch(
                &desired.name_any(),
                &PatchParams::apply(manager).force(),
                &Patch::Apply(desired),
            )
            .await
            .map_err(|e| ("write", e))
    }
}

/// Deletes the Secret at `target` if it is `obj`'s.
pub async fn delete<M: Managed>(
    client: &kube::Client,
    obj: &M,
    target: &(String, String),
) -> Result<(), Failure> {
    let Some(existing) = super::reconcile::SecretStore::read(client, target).await? else {
        return Ok(());
    };
    if !ours(&existing, obj) {
        return Ok(());
    }
    let (namespace, name) = target;
    match Api::<Secret>::namespaced(client.clone(), namespace)
        .delete(name, &DeleteParams::default())
        .await
    {
        Ok(_) => {
            tracing::info!(secret = %format!("{namespace}/{name}"), "connection secret deleted");
            Ok(())
        }
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(("delete", e)),
    }
}
