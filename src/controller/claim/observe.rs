//! Observe: the kind of every composed object, the object as it is, and
//! the connection Secret it writes.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, DynamicObject};
use serde_json::Value;

use super::error::{ObserveError, failed};
use super::select::Selected;
use crate::api::DatabaseClaim;
use crate::controller::context::Context;
use crate::controller::kinds::Kind;
use crate::controller::labels;
use crate::engine::{self, Scope};
use crate::naming;

/// What exists of the claim's composed objects, keyed by template name.
pub struct Observed {
    pub kinds: BTreeMap<String, Kind>,
    pub objects: BTreeMap<String, engine::Observed>,
}

pub async fn observe(
    claim: &DatabaseClaim,
    selected: &Selected,
    ctx: &Context,
) -> Result<Observed, ObserveError> {
    let ns = claim.namespace().unwrap_or_default();
    let name = claim.name_any();
    let composition = selected.name();
    let mut observed = Observed {
        kinds: BTreeMap::new(),
        objects: BTreeMap::new(),
    };
    for t in &selected.composition.spec.resources {
        let (api_version, kind_name) = base_kind(&t.base).ok_or_else(|| ObserveError::NoKind {
            composition: composition.clone(),
            resource: t.name.clone(),
        })?;
        let kind = resolve(ctx, &composition, &t.name, &api_version, &kind_name).await?;
        // A name recorded in the status is kept: objects made under an
        // earlier naming are found, never replaced.
        let recorded = claim.recorded_resource_name(&t.name);
        let object_name = naming::object_name(&ns, &name, &t.name, recorded);
        let current = dynamic_api(ctx, &kind, &ns)
            .get_opt(&object_name)
            .await
            .map_err(failed("observe", format!("{kind_name} {object_name}")))?;
        if let Some(obj) = &current
            && !labels::belongs_to(obj.labels(), &ns, &name)
        {
            return Err(ObserveError::Foreign {
                kind: kind_name,
                name: object_name,
            });
        }
        let connection = match &current {
            Some(obj) => managed_connection(ctx, obj, &ns).await?,
            None => BTreeMap::new(),
        };
        let object = current.map(|o| serde_json::to_value(o).unwrap_or(Value::Null));
        let seen = engine::Observed { object, connection };
        observed.objects.insert(t.name.clone(), seen);
        observed.kinds.insert(t.name.clone(), kind);
    }
    Ok(observed)
}

pub fn base_kind(base: &Value) -> Option<(String, String)> {
    let api_version = base.get("apiVersion")?.as_str()?.to_string();
    let kind = base.get("kind")?.as_str()?.to_string();
    Some((api_version, kind))
}

async fn resolve(
    ctx: &Context,
    composition: &str,
    resource: &str,
    api_version: &str,
    kind: &str,
) -> Result<Kind, ObserveError> {
    let not_served = |detail: String| ObserveError::NotServed {
        composition: composition.to_string(),
        resource: resource.to_string(),
        kind: kind.to_string(),
        api_version: api_version.to_string(),
        detail,
    };
    match ctx.kinds.resolve(api_version, kind).await {
        Ok(k) => Ok(k),
        Err(kube::Error::Api(e)) if e.code == 404 => Err(not_served(String::new())),
        Err(kube::Error::Discovery(e)) => Err(not_served(format!(" ({e})"))),
        Err(e) => Err(failed("discover", format!("kind {kind} ({api_version})"))(e).into()),
    }
}

pub fn dynamic_api(ctx: &Context, kind: &Kind, ns: &str) -> Api<DynamicObject> {
    match kind.scope {
        Scope::Namespaced => Api::namespaced_with(ctx.client.clone(), ns, &kind.resource),
        Scope::Cluster => Api::all_with(ctx.client.clone(), &kind.resource),
    }
}

/// The data of the Secret a composed object writes its connection details
/// to (`spec.writeConnectionSecretToRef`, defaulting to the object's name in
/// the operator's namespace). Only the operator's and the claim's own
/// namespaces are read, so a composition cannot pull another tenant's Secret.
async fn managed_connection(
    ctx: &Context,
    obj: &DynamicObject,
    claim_ns: &str,
) -> Result<BTreeMap<String, Vec<u8>>, ObserveError> {
    let reference = obj.data.pointer("/spec/writeConnectionSecretToRef");
    let is_managed = obj
        .types
        .as_ref()
        .is_some_and(|t| t.api_version.contains(".dbclaim.io/"));
    if reference.is_none() && !is_managed {
        return Ok(BTreeMap::new());
    }
    let name = reference
        .and_then(|r| r.get("name"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| obj.name_any());
    let ns = reference
        .and_then(|r| r.get("namespace"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| ctx.operator_namespace.clone());
    if ns != ctx.operator_namespace && ns != claim_ns {
        return Ok(BTreeMap::new());
    }
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let secret = secrets
        .get_opt(&name)
        .await
        .map_err(failed("read", format!("Secret {ns}/{name}")))?;
    Ok(secret
        .and_then(|s| s.data)
        .map(|d| d.into_iter().map(|(k, v)| (k, v.0)).collect())
        .unwrap_or_default())
}
