//! Observe: the kind of every composed object and the object as it is;
//! then, once a render has said where, the connection Secret it writes.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, DynamicObject};
use serde_json::Value;

use super::error::{ComposedError, failed};
use super::select::Selected;
use crate::api::DatabaseClaim;
use crate::contract;
use crate::controller::cache::{self, written_key};
use crate::controller::context::Context;
use crate::controller::kinds::Kind;
use crate::controller::labels;
use crate::engine::{self, Rendered, Scope};
use crate::naming;

/// What exists of the claim's composed objects, keyed by template name.
pub struct Observed {
    pub kinds: BTreeMap<String, Kind>,
    pub objects: BTreeMap<String, engine::Observed>,
    /// Connection details (or their absence) came from the Secret cache.
    pub from_cache: bool,
}

pub async fn observe(
    claim: &DatabaseClaim,
    selected: &Selected,
    ctx: &Context,
) -> Result<Observed, ComposedError> {
    let ns = claim.namespace().unwrap_or_default();
    let name = claim.name_any();
    let composition = selected.name();
    let mut observed = Observed {
        kinds: BTreeMap::new(),
        objects: BTreeMap::new(),
        from_cache: false,
    };
    for t in &selected.composition.spec.resources {
        let (api_version, kind_name) = base_kind(&t.base).ok_or_else(|| ComposedError::NoKind {
            composition: composition.clone(),
            resource: t.name.clone(),
        })?;
        let kind = resolve(ctx, &composition, &t.name, &api_version, &kind_name).await?;
        // A name recorded in the status is kept: objects made under an
        // earlier naming are found, never replaced.
        let recorded = claim.recorded_resource_name(&t.name);
        let object_name = naming::object_name(&ns, &name, &t.name, recorded);
        let current = match cached(ctx, &kind, &ns, &object_name).await {
            Some(obj) => Some(obj),
            None if absent(ctx, &kind, &ns, &object_name).await => None,
            None => dynamic_api(ctx, &kind, &ns)
                .get_opt(&object_name)
                .await
                .map_err(failed("observe", format!("{kind_name} {object_name}")))?,
        };
        if let Some(obj) = &current
            && !labels::belongs_to(obj.labels(), &ns, &name)
        {
            return Err(ComposedError::Foreign {
                kind: kind_name,
                name: object_name,
            });
        }
        let object = current.map(|o| serde_json::to_value(o).unwrap_or(Value::Null));
        // Connection details come later, from what the render names.
        let seen = engine::Observed {
            object,
            connection: BTreeMap::new(),
        };
        observed.objects.insert(t.name.clone(), seen);
        observed.kinds.insert(t.name.clone(), kind);
    }
    Ok(observed)
}

/// A composed object from the kind's cache (objects with dbclaim's
/// labels), when the cache holds it and it is not older than this
/// operator's last write of it.
async fn cached(ctx: &Context, kind: &Kind, ns: &str, name: &str) -> Option<DynamicObject> {
    let obj = ctx.kinds.cached(kind, ns, name).await.flatten()?;
    let written = ctx.written.get(&written_key_of(kind, ns, name));
    if !cache::fresh(obj.resource_version().as_deref(), written.as_deref()) {
        return None;
    }
    let mut obj = obj;
    // Items of a list (the watch's first one) come without apiVersion and
    // kind; a GET has them, and the comparison with what is applied needs
    // them.
    obj.types = Some(kube::api::TypeMeta {
        api_version: kind.resource.api_version.clone(),
        kind: kind.resource.kind.clone(),
    });
    Some(obj)
}

/// Whether the object surely does not exist: the kind's metadata cache of
/// all its objects (any labels, so someone else's object of that name is
/// seen) lacks it, and this operator has not written it lately (the watch
/// may not show that yet). Anything else is read from the API server.
/// Trusted for core kinds (ConfigMaps, Secrets, ...) only: a kind of
/// another group can hold a database (dbclaim's managed resources, a cloud
/// operator's), and taking over someone else's object of that name would
/// let a claim delete or re-password their database, so it is read before
/// its first apply: the window for such an object to appear unseen stays
/// one round trip, not the watch's lag.
async fn absent(ctx: &Context, kind: &Kind, ns: &str, name: &str) -> bool {
    kind.resource.group.is_empty()
        && ctx.kinds.exists(kind, ns, name).await == Some(false)
        && ctx.written.get(&written_key_of(kind, ns, name)).is_none()
}

/// Whether a Secret surely does not exist (see [`absent`]).
pub async fn secret_absent(ctx: &Context, ns: &str, name: &str) -> bool {
    ctx.shared_secrets.names.exists(Some(ns), name).await == Some(false)
        && ctx.written.get(&written_key("secrets", ns, name)).is_none()
}

fn written_key_of(kind: &Kind, ns: &str, name: &str) -> String {
    let ns = if kind.scope == Scope::Namespaced {
        ns
    } else {
        ""
    };
    written_key(&kind.resource.plural, ns, name)
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
) -> Result<Kind, ComposedError> {
    let not_served = |detail: String| ComposedError::NotServed {
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

/// Reads the connection Secret of every composed object that exists, from
/// where the rendered object (never the observed one, which a tenant may
/// have edited) names it; true when any details were read, so the caller
/// renders again with them.
/// With `fresh`, every Secret is read from the API server, not the cache.
pub async fn connections(
    claim: &DatabaseClaim,
    desired: &Rendered,
    observed: &mut Observed,
    ctx: &Context,
    fresh: bool,
) -> Result<bool, ComposedError> {
    let claim_ns = claim.namespace().unwrap_or_default();
    let mut read = false;
    for r in &desired.resources {
        let Some(seen) = observed.objects.get_mut(&r.name) else {
            continue;
        };
        if seen.object.is_none() {
            continue;
        }
        let Some(source) = connection_source(
            &r.object,
            r.scope,
            r.connection_secret.as_deref(),
            &claim_ns,
            &ctx.operator_namespace,
        ) else {
            continue;
        };
        // From the Secret cache when it holds the Secret (providers copy
        // the claim's labels onto theirs); read when it does not: a Secret
        // written before those labels, or one the cache has not seen yet.
        // A provider of this process may have written it after the cache's
        // last event: then its copy of that write is newer.
        let cached = match fresh {
            true => None,
            false => {
                let (ns, name) = (&source.namespace, &source.name);
                let cached = ctx.secrets.lookup(Some(ns), name).await.flatten();
                ctx.shared_secrets.handoff.newer(ns, name, cached)
            }
        };
        let secret = match cached {
            Some(s) => {
                observed.from_cache = true;
                Some(s)
            }
            None if !fresh && secret_absent(ctx, &source.namespace, &source.name).await => {
                observed.from_cache = true;
                None
            }
            None => {
                let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &source.namespace);
                let object = format!("Secret {}/{}", source.namespace, source.name);
                secrets
                    .get_opt(&source.name)
                    .await
                    .map_err(failed("read", object))?
            }
        };
        let Some(secret) = secret.filter(|s| source.may_read(s.annotations())) else {
            continue;
        };
        // A Secret named after the object is read only once the object's
        // controller made it (it owns it): not one that merely has the name.
        if r.connection_secret.is_some() && !owned_by(&secret, seen.object.as_ref()) {
            continue;
        }
        let data: BTreeMap<String, Vec<u8>> = secret
            .data
            .map(|d| d.into_iter().map(|(k, v)| (k, v.0)).collect())
            .unwrap_or_default();
        read |= !data.is_empty();
        seen.connection = data;
    }
    Ok(read)
}

/// Whether `secret` has an owner reference to the observed `object` (same uid).
pub fn owned_by(secret: &Secret, object: Option<&Value>) -> bool {
    let Some(uid) = object
        .and_then(|o| o.pointer("/metadata/uid"))
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
    else {
        return false;
    };
    secret.owner_references().iter().any(|r| r.uid == uid)
}

/// Where a composed object's connection details may be read from.
#[derive(Debug, PartialEq, Eq)]
pub struct SecretSource {
    pub namespace: String,
    pub name: String,
    /// For a cluster-scoped object: the ownership annotation (key, value)
    /// the Secret must carry, naming that object.
    pub owner: Option<(&'static str, String)>,
}

impl SecretSource {
    pub fn may_read(&self, annotations: &BTreeMap<String, String>) -> bool {
        match &self.owner {
            None => true,
            Some((key, object)) => annotations.get(*key) == Some(object),
        }
    }
}

/// The Secret a rendered composed object writes its connection details to
/// (`own_secret`, the template's `connectionSecret`, else
/// `spec.writeConnectionSecretToRef`, by default the object's name), if
/// dbclaim may read it (contract: "Never crosses a tenant boundary"):
/// - a namespaced object: only in its own namespace, the claim's;
/// - a cluster-scoped object: only a dbclaim managed resource's, in the
///   operator's or the claim's namespace (default: the operator's), and
///   only a Secret whose provider ownership annotation names that object.
pub fn connection_source(
    rendered: &Value,
    scope: Scope,
    own_secret: Option<&str>,
    claim_ns: &str,
    operator_ns: &str,
) -> Option<SecretSource> {
    let own_ns = || {
        rendered
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or(claim_ns)
    };
    // A Secret the object's controller names after it (CloudNativePG's
    // `<cluster>-app`): read in the object's own namespace, the claim's.
    if let Some(name) = own_secret {
        return (scope == Scope::Namespaced && own_ns() == claim_ns).then(|| SecretSource {
            namespace: claim_ns.to_string(),
            name: name.to_string(),
            owner: None,
        });
    }
    let reference = rendered.pointer("/spec/writeConnectionSecretToRef");
    let object_name = rendered.pointer("/metadata/name")?.as_str()?;
    let api_version = rendered.get("apiVersion")?.as_str()?;
    let kind = rendered.get("kind")?.as_str()?;
    let annotation = owner_annotation(api_version, kind);
    if reference.is_none() && annotation.is_none() {
        return None;
    }
    let field = |f: &str| reference.and_then(|r| r.get(f)).and_then(Value::as_str);
    let name = field("name").unwrap_or(object_name).to_string();
    match scope {
        Scope::Namespaced => {
            let own = own_ns();
            let namespace = field("namespace").unwrap_or(own);
            (namespace == own && own == claim_ns).then(|| SecretSource {
                namespace: namespace.to_string(),
                name,
                owner: None,
            })
        }
        Scope::Cluster => {
            let namespace = field("namespace").unwrap_or(operator_ns);
            if namespace != operator_ns && namespace != claim_ns {
                return None;
            }
            Some(SecretSource {
                namespace: namespace.to_string(),
                name,
                owner: Some((annotation?, object_name.to_string())),
            })
        }
    }
}

/// The annotation a dbclaim provider puts on the connection Secrets it
/// writes, naming their object; `None` for kinds dbclaim does not manage.
fn owner_annotation(api_version: &str, kind: &str) -> Option<&'static str> {
    let group = api_version.split_once('/').map(|(g, _)| g)?;
    match (group, kind) {
        ("aws.dbclaim.io", "RDSInstance") => Some(contract::aws::INSTANCE_ANNOTATION),
        ("postgres.dbclaim.io", "Database") => Some(contract::postgres::DATABASE_ANNOTATION),
        _ => None,
    }
}
