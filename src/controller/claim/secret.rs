//! Publish: the claim's connection Secret, in the claim's namespace only,
//! once the composed objects have published every key it needs.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::events::Event;
use kube::{Resource, ResourceExt};
use tracing::{info, warn};

use super::apply::Applied;
use super::error::{ApiError, SecretError, failed};
use super::normal;
use super::select::Selected;
use crate::api::DatabaseClaim;
use crate::contract::CLAIM_FIELD_MANAGER;
use crate::controller::cache::{self, written_key};
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
    let existing = match cached(claim, &name, ctx).await {
        Some(s) => Some(s),
        None if super::observe::secret_absent(
            ctx,
            &claim.namespace().unwrap_or_default(),
            &name,
        )
        .await =>
        {
            None
        }
        None => api
            .get_opt(&name)
            .await
            .map_err(failed("read", format!("Secret {name}")))?,
    };
    // First written once every composed object is ready: a provider may
    // publish its details before the database they name exists, and a
    // Secret is what workloads wait for. Written in the pass that turns the
    // claim Ready, it costs no status write of its own. An existing one is
    // kept current whatever the objects say.
    let first_early = existing.is_none() && !applied.not_ready.is_empty();
    if !assembled.missing.is_empty() || first_early {
        let incomplete = match assembled.missing.is_empty() {
            true => {
                format!("connection secret {name}, written once the composed objects are ready")
            }
            false => format!(
                "connection secret {name} lacks {}",
                assembled.missing.join(", ")
            ),
        };
        return Ok(Published {
            name: existing
                .filter(|s| owned_by(s, claim))
                .map(|_| name.clone()),
            incomplete: Some(incomplete),
        });
    }
    if write(claim, &api, &name, existing.as_ref(), &assembled, ctx).await? {
        let note = format!("connection secret {name} written");
        events.push(normal("ConnectionSecretWritten", "WriteSecret", note));
    }
    // `writeConnectionSecretToRef.name` changed: the Secret under the old
    // name holds live credentials nobody asked for any more. It goes once
    // the new one is complete, so a reader can move over.
    if let Some(old) = recorded(claim).filter(|old| *old != name)
        && delete_owned(claim, &api, old).await?
    {
        let note = format!("connection secret {old} deleted: the claim now writes {name}");
        events.push(normal("ConnectionSecretDeleted", "DeleteSecret", note));
    }
    Ok(Published {
        name: Some(name),
        incomplete: None,
    })
}

/// The claim's connection Secret from the Secret cache (or as this
/// process last wrote it, until the cache has that), when it holds it and
/// it is not older than this operator's last write. A Secret that cache
/// lacks is absent only when the metadata cache of all Secrets lacks it
/// too: one without the claim's labels may be someone else's, which a
/// forced apply must not take over, so it is read.
async fn cached(claim: &DatabaseClaim, name: &str, ctx: &Context) -> Option<Secret> {
    let ns = claim.namespace().unwrap_or_default();
    let cached = ctx.secrets.lookup(Some(&ns), name).await.flatten();
    let secret = ctx.shared_secrets.handoff.newer(&ns, name, cached)?;
    let written = ctx.written.get(&written_key("secrets", &ns, name));
    cache::fresh(secret.resource_version().as_deref(), written.as_deref()).then_some(secret)
}

/// Writes the claim's connection Secret when its content differs; true when
/// it wrote. A Secret of that name that this claim does not own is left alone.
async fn write(
    claim: &DatabaseClaim,
    api: &Api<Secret>,
    name: &str,
    existing: Option<&Secret>,
    assembled: &ConnectionSecret,
    ctx: &Context,
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
    let params = PatchParams::apply(CLAIM_FIELD_MANAGER).force();
    let written = api
        .patch(name, &params, &Patch::Apply(&secret))
        .await
        .map_err(failed("write", format!("Secret {name}")))?;
    cache::remember(&ctx.written, "secrets", &written);
    ctx.shared_secrets.handoff.keep(&written);
    Ok(true)
}

/// Deletes the Secret `name` when this claim owns it (the uid as a
/// precondition, so a Secret re-created meanwhile by someone else stays);
/// true when it deleted.
pub async fn delete_owned(
    claim: &DatabaseClaim,
    api: &Api<Secret>,
    name: &str,
) -> Result<bool, ApiError> {
    let object = format!("Secret {name}");
    let Some(secret) = api
        .get_metadata_opt(name)
        .await
        .map_err(failed("read", &object))?
    else {
        return Ok(false);
    };
    if !owned_by(&secret, claim) {
        return Ok(false);
    }
    let params = DeleteParams {
        preconditions: secret.uid().map(|uid| Preconditions {
            uid: Some(uid),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api.delete(name, &params).await {
        Ok(_) => Ok(true),
        // Gone meanwhile (the garbage collector), or replaced.
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(false),
        // RBAC without `delete` on Secrets: the owner reference is the
        // backstop, and a deletion must not hang on it.
        Err(kube::Error::Api(e)) if e.code == 403 => {
            warn!(secret = %name, error = %e.message, "cannot delete the connection secret; the garbage collector will, through its owner reference");
            Ok(false)
        }
        Err(e) => Err(failed("delete", object)(e)),
    }
}

/// The claim's connection Secrets, by every name it wrote one under,
/// deleted when cleanup finishes: the garbage collector may take minutes.
pub async fn delete_all(claim: &DatabaseClaim, ctx: &Context) -> Result<(), ApiError> {
    let api: Api<Secret> =
        Api::namespaced(ctx.client.clone(), &claim.namespace().unwrap_or_default());
    let current = claim.spec.connection_secret_name(&claim.name_any());
    let recorded = recorded(claim).filter(|r| *r != current);
    for name in std::iter::once(current.as_str()).chain(recorded) {
        if delete_owned(claim, &api, name).await? {
            info!(secret = %name, "deleted the connection secret");
        }
    }
    Ok(())
}

/// The name of the Secret the claim's status records.
fn recorded(claim: &DatabaseClaim) -> Option<&str> {
    let status = claim.status.as_ref()?;
    status
        .connection_secret_ref
        .as_ref()
        .map(|r| r.name.as_str())
}

fn owned_by(secret: &impl ResourceExt, claim: &DatabaseClaim) -> bool {
    let uid = claim.uid();
    secret
        .owner_references()
        .iter()
        .any(|o| Some(&o.uid) == uid.as_ref() && o.kind == "DatabaseClaim")
}
