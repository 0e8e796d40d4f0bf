//! Publish: the claim's connection Secret, in the claim's namespace only,
//! once the composed objects have published every key it needs.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::Event;
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::apply::Applied;
use super::error::{SecretError, failed};
use super::normal;
use super::select::Selected;
use crate::api::DatabaseClaim;
use crate::contract::CLAIM_FIELD_MANAGER;
use crate::controller::context::Context;
use crate::controller::labels;
use crate::engine::{self, ConnectionSecret};

/// The connection Secret as this pass left it.
pub struct Published {
    /// The Secret, once it exists.
    pub name: Option<String>,
    /// Why it is not complete, in words (a reason the claim is not ready).
    pub incomplete: Option<String>,
}

/// `events` receives an event when the Secret was written.
pub async fn publish(
    claim: &DatabaseClaim,
    selected: &Selected,
    applied: &Applied,
    ctx: &Context,
    events: &mut Vec<Event>,
) -> Result<Published, SecretError> {
    let name = claim.spec.connection_secret_name(&claim.name_any());
    let assembled =
        engine::connection_secret(claim.spec.engine, &selected.name(), &applied.connection);
    let api: Api<Secret> =
        Api::namespaced(ctx.client.clone(), &claim.namespace().unwrap_or_default());
    let existing = api
        .get_opt(&name)
        .await
        .map_err(failed("read", format!("Secret {name}")))?;
    if !assembled.missing.is_empty() {
        let missing = assembled.missing.join(", ");
        return Ok(Published {
            name: existing
                .filter(|s| owned_by(s, claim))
                .map(|_| name.clone()),
            incomplete: Some(format!("connection secret {name} lacks {missing}")),
        });
    }
    if write(claim, &api, &name, existing.as_ref(), &assembled).await? {
        let note = format!("connection secret {name} written");
        events.push(normal("ConnectionSecretWritten", "WriteSecret", note));
    }
    Ok(Published {
        name: Some(name),
        incomplete: None,
    })
}

/// Writes the claim's connection Secret when its content differs; true when
/// it wrote. A Secret of that name that this claim does not own is left alone.
async fn write(
    claim: &DatabaseClaim,
    api: &Api<Secret>,
    name: &str,
    existing: Option<&Secret>,
    assembled: &ConnectionSecret,
) -> Result<bool, SecretError> {
    let ns = claim.namespace().unwrap_or_default();
    let data: BTreeMap<String, ByteString> = assembled
        .data
        .iter()
        .map(|(k, v)| (k.clone(), ByteString(v.clone())))
        .collect();
    let labels = labels::for_claim(&ns, &claim.name_any());
    if let Some(s) = existing {
        if !owned_by(s, claim) {
            return Err(SecretError::Foreign(name.to_string()));
        }
        let same_data = s.data.as_ref() == Some(&data);
        let same_type = s.type_.as_deref() == Some(assembled.secret_type);
        let same_labels = labels.iter().all(|(k, v)| s.labels().get(k) == Some(v));
        if same_data && same_type && same_labels {
            return Ok(false);
        }
    }
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(ns),
            labels: Some(labels),
            owner_references: claim.controller_owner_ref(&()).map(|o| vec![o]),
            ..Default::default()
        },
        type_: Some(assembled.secret_type.to_string()),
        data: Some(data),
        ..Default::default()
    };
    let mut value = serde_json::to_value(&secret).map_err(SecretError::Encode)?;
    value["apiVersion"] = json!("v1");
    value["kind"] = json!("Secret");
    let params = PatchParams::apply(CLAIM_FIELD_MANAGER).force();
    api.patch(name, &params, &Patch::Apply(&value))
        .await
        .map_err(failed("write", format!("Secret {name}")))?;
    Ok(true)
}

fn owned_by(secret: &Secret, claim: &DatabaseClaim) -> bool {
    let uid = claim.uid();
    secret
        .owner_references()
        .iter()
        .any(|o| Some(&o.uid) == uid.as_ref() && o.kind == "DatabaseClaim")
}
