//! `render`: a claim, a composition and what was observed → the desired
//! composed objects, the claim's outputs and the connection details.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::error::{EngineError, ResourceError};
use super::generate;
use super::patch::{self, apply_from_claim, apply_to_claim, claim_source};
use super::readiness;
use super::scope::is_core_secret;
use super::value::kind_of;
use super::{ComposedResource, RenderRequest, Rendered, Scope, connection};
use crate::api::DeletionPolicy;
use crate::api::composition::{ComposedTemplate, PatchType};
use crate::contract::{
    CREDENTIALS_GRACE_ANNOTATION, LABEL_CLAIM_NAME, LABEL_CLAIM_NAMESPACE, LABEL_CLAIM_UID,
    LABEL_COMPOSITION, LABEL_DELETION_POLICY, LABEL_RESOURCE, ROTATE_CREDENTIALS_ANNOTATION,
};
use crate::naming;

/// The namespace of a claim that has none set, as kubectl would use.
const DEFAULT_NAMESPACE: &str = "default";

pub fn render(req: &RenderRequest<'_>) -> Result<Rendered, EngineError> {
    let claim = req.claim;
    let claim_name = claim
        .metadata
        .name
        .as_deref()
        .filter(|n| !n.is_empty())
        .ok_or(EngineError::ClaimWithoutName)?;
    let namespace = claim
        .metadata
        .namespace
        .as_deref()
        .filter(|n| !n.is_empty())
        .unwrap_or(DEFAULT_NAMESPACE);
    let templates = &req.composition.resources;

    let mut seen = BTreeSet::new();
    for t in templates {
        if !seen.insert(t.name.as_str()) {
            return Err(EngineError::DuplicateResource(t.name.clone()));
        }
    }

    // Outputs first: they depend only on observed objects, and feeding them
    // into the claim source lets a FromClaim patch use an output in the same
    // render (Crossplane needs another reconcile for that).
    let mut outputs_doc = json!({"status": {"outputs": {}}});
    for t in templates {
        let observed = req.observed.get(&t.name).and_then(|o| o.object.as_ref());
        for (index, p) in t.patches.iter().enumerate() {
            apply_to_claim(p, observed, &mut outputs_doc)
                .map_err(|error| patch_error(t, index, error))?;
        }
    }
    let outputs: BTreeMap<String, Value> = match outputs_doc.pointer("/status/outputs") {
        Some(Value::Object(m)) => m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        _ => BTreeMap::new(),
    };

    let mut source = claim_source(claim, namespace);
    // The composed objects' names, so one object can reference another
    // (Config Connector's instanceRef, a SQLUser's password Secret): the
    // names carry a hash that no patch could compute.
    let names: Map<String, Value> = templates
        .iter()
        .map(|t| {
            let name = naming::object_name(
                namespace,
                claim_name,
                &t.name,
                claim.recorded_resource_name(&t.name),
            );
            (t.name.clone(), Value::String(name))
        })
        .collect();
    if let Some(Value::Object(meta)) = source.get_mut("metadata") {
        meta.insert("resourceNames".into(), Value::Object(names));
    }
    if !outputs.is_empty() {
        let target = &mut source["status"];
        if !target.is_object() {
            *target = Value::Object(Map::new());
        }
        let outs = &mut target["outputs"];
        if !outs.is_object() {
            *outs = Value::Object(Map::new());
        }
        if let Value::Object(m) = outs {
            m.extend(outputs.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
    }

    let ctx = Ctx {
        req,
        claim_name,
        namespace,
        token: generate::claim_token(claim),
    };
    let mut rendered = Rendered {
        outputs,
        ..Rendered::default()
    };
    for t in templates {
        let (object, scope) = compose(&ctx, t, &source)?;
        let observed = req.observed.get(&t.name);
        let what = format!(
            "{} {}",
            object
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or("object"),
            naming::object_name(
                namespace,
                claim_name,
                &t.name,
                claim.recorded_resource_name(&t.name)
            )
        );
        let readiness = readiness::evaluate(
            &what,
            &t.readiness_checks,
            observed.and_then(|o| o.object.as_ref()),
        )
        .map_err(|(index, error)| EngineError::ReadinessCheck {
            resource: t.name.clone(),
            index,
            check_type: t
                .readiness_checks
                .get(index)
                .map(|c| readiness::type_name(c.type_))
                .unwrap_or("?"),
            error,
        })?;
        let details =
            connection::extract(&t.connection_details, observed).map_err(|(name, error)| {
                EngineError::ConnectionDetail {
                    resource: t.name.clone(),
                    name,
                    error,
                }
            })?;
        // Later resources override earlier ones for the same key.
        rendered.connection.extend(details);
        let connection_secret =
            own_secret(t, &object, scope).map_err(|error| EngineError::Resource {
                resource: t.name.clone(),
                error,
            })?;
        rendered.resources.push(ComposedResource {
            name: t.name.clone(),
            object,
            scope,
            readiness,
            connection_secret,
        });
    }
    Ok(rendered)
}

/// The Secret a template's `connectionSecret` names: the composed object's
/// name plus the suffix, which only a namespaced object can have (the
/// Secret is read in the object's namespace, the claim's).
fn own_secret(
    t: &ComposedTemplate,
    object: &Value,
    scope: Scope,
) -> Result<Option<String>, ResourceError> {
    let Some(spec) = &t.connection_secret else {
        return Ok(None);
    };
    let text = |pointer: &str| {
        object
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or("")
    };
    if scope == Scope::Cluster {
        return Err(ResourceError::ConnectionSecretClusterScoped {
            kind: text("/kind").to_string(),
        });
    }
    let name = format!("{}{}", text("/metadata/name"), spec.name_suffix);
    if !naming::is_dns_subdomain(&name) {
        return Err(ResourceError::ConnectionSecretName { name });
    }
    Ok(Some(name))
}

fn claim_uid<'a>(ctx: &Ctx<'a>) -> Option<&'a str> {
    ctx.req
        .claim
        .metadata
        .uid
        .as_deref()
        .filter(|u| !u.is_empty())
}

struct Ctx<'a> {
    req: &'a RenderRequest<'a>,
    claim_name: &'a str,
    namespace: &'a str,
    /// The claim's rotation token, set on every composed object.
    token: Option<String>,
}

fn patch_error(t: &ComposedTemplate, index: usize, error: patch::PatchError) -> EngineError {
    EngineError::Patch {
        resource: t.name.clone(),
        index,
        summary: t.patches.get(index).map(patch::summary).unwrap_or_default(),
        error: Box::new(error),
    }
}

/// One desired object: base, FromClaim patches in order, then what dbclaim
/// forces (name, labels, namespace and owner for namespaced kinds).
fn compose(
    ctx: &Ctx<'_>,
    t: &ComposedTemplate,
    source: &Value,
) -> Result<(Value, Scope), EngineError> {
    let resource_err = |error| EngineError::Resource {
        resource: t.name.clone(),
        error,
    };
    if !t.base.is_object() {
        return Err(resource_err(ResourceError::BaseNotObject {
            found: kind_of(&t.base),
        }));
    }
    let mut obj = t.base.clone();
    let observed = ctx
        .req
        .observed
        .get(&t.name)
        .and_then(|o| o.object.as_ref());
    // A rotation is due for this object when the claim's token is not the
    // one it carries (applied together with the values, so a crash between
    // the two cannot happen).
    let rotate = observed.is_some_and(|o| generate::object_token(o) != ctx.token.as_deref());
    for (index, p) in t.patches.iter().enumerate() {
        let result = match p.type_ {
            PatchType::Generate => {
                generate::apply(p, observed, rotate, ctx.req.generator, &mut obj)
            }
            _ => apply_from_claim(p, source, &mut obj),
        };
        result.map_err(|error| patch_error(t, index, error))?;
    }
    let scope = finalize(ctx, t, &mut obj).map_err(resource_err)?;
    Ok((obj, scope))
}

fn type_field<'v>(
    obj: &'v Value,
    field: &'static str,
    example: &'static str,
) -> Result<&'v str, ResourceError> {
    match obj.get(field) {
        None | Some(Value::Null) => Err(ResourceError::MissingTypeField { field, example }),
        Some(Value::String(s)) if s.is_empty() => {
            Err(ResourceError::MissingTypeField { field, example })
        }
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(ResourceError::TypeFieldNotString {
            field,
            found: kind_of(other),
        }),
    }
}

/// Forces the metadata dbclaim owns. Runs after the patches, so neither base
/// nor patch can rename the object, drop its labels or move it to another
/// namespace.
fn finalize(ctx: &Ctx<'_>, t: &ComposedTemplate, obj: &mut Value) -> Result<Scope, ResourceError> {
    let api_version =
        type_field(obj, "apiVersion", "apiVersion: aws.dbclaim.io/v1alpha1")?.to_string();
    let kind = type_field(obj, "kind", "kind: RDSInstance")?.to_string();
    // A Secret holds credentials: it stays in the claim's namespace even if
    // the scope source were wrong about it.
    let scope = if is_core_secret(&api_version, &kind) {
        Scope::Namespaced
    } else {
        (ctx.req.scope)(&api_version, &kind)
    };

    let Value::Object(root) = obj else {
        return Err(ResourceError::BaseNotObject {
            found: kind_of(obj),
        });
    };
    let meta = root
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if meta.is_null() {
        *meta = Value::Object(Map::new());
    }
    let Value::Object(meta) = meta else {
        return Err(ResourceError::NotAnObject {
            field: "metadata",
            found: kind_of(meta),
        });
    };

    meta.insert(
        "name".into(),
        Value::String(naming::object_name(
            ctx.namespace,
            ctx.claim_name,
            &t.name,
            ctx.req.claim.recorded_resource_name(&t.name),
        )),
    );

    let labels = meta
        .entry("labels")
        .or_insert_with(|| Value::Object(Map::new()));
    if labels.is_null() {
        *labels = Value::Object(Map::new());
    }
    let Value::Object(labels) = labels else {
        return Err(ResourceError::NotAnObject {
            field: "metadata.labels",
            found: kind_of(labels),
        });
    };
    if let Some((key, v)) = labels.iter().find(|(_, v)| !v.is_string()) {
        return Err(ResourceError::LabelNotString {
            key: key.clone(),
            found: kind_of(v),
        });
    }
    for (key, value) in [
        (LABEL_CLAIM_NAME, ctx.claim_name),
        (LABEL_CLAIM_NAMESPACE, ctx.namespace),
        (LABEL_COMPOSITION, ctx.req.composition_name),
        (LABEL_RESOURCE, t.name.as_str()),
    ] {
        labels.insert(key.into(), Value::String(naming::label_value(value)));
    }
    let policy = match ctx.req.claim.spec.deletion_policy {
        DeletionPolicy::Delete => "Delete",
        DeletionPolicy::Orphan => "Orphan",
    };
    labels.insert(LABEL_DELETION_POLICY.into(), Value::String(policy.into()));
    // Offline renders have no UID; a base or patch cannot forge one either.
    labels.remove(LABEL_CLAIM_UID);
    if let Some(uid) = claim_uid(ctx) {
        labels.insert(
            LABEL_CLAIM_UID.into(),
            Value::String(naming::label_value(uid)),
        );
    }

    annotate_credentials(ctx, meta)?;

    // Owner references are dbclaim's to set: one to the claim for namespaced
    // objects, none for cluster-scoped ones (Kubernetes forbids a namespaced
    // owner there).
    meta.remove("ownerReferences");
    match scope {
        Scope::Namespaced => {
            match meta.get("namespace") {
                None | Some(Value::Null) => {}
                Some(Value::String(ns)) if ns.is_empty() || ns == ctx.namespace => {}
                Some(Value::String(ns)) => {
                    return Err(ResourceError::NamespaceEscape {
                        kind,
                        namespace: ns.clone(),
                        claim_namespace: ctx.namespace.to_string(),
                    });
                }
                Some(other) => {
                    return Err(ResourceError::NamespaceNotString {
                        found: kind_of(other),
                    });
                }
            }
            meta.insert("namespace".into(), Value::String(ctx.namespace.to_string()));
            if let Some(uid) = claim_uid(ctx) {
                meta.insert(
                    "ownerReferences".into(),
                    json!([{
                        "apiVersion": "dbclaim.io/v1alpha1",
                        "kind": "DatabaseClaim",
                        "name": ctx.claim_name,
                        "uid": uid,
                        "controller": true,
                        "blockOwnerDeletion": true,
                    }]),
                );
            }
        }
        Scope::Cluster => {
            meta.remove("namespace");
        }
    }
    Ok(scope)
}

/// The claim's rotation token and grace period, for providers and
/// `Generate` patches: only when the claim has them, so objects of claims
/// that never rotate are rendered as before.
fn annotate_credentials(ctx: &Ctx<'_>, meta: &mut Map<String, Value>) -> Result<(), ResourceError> {
    let grace = ctx
        .req
        .claim
        .spec
        .credentials
        .as_ref()
        .and_then(|c| c.grace_minutes);
    if ctx.token.is_none() && grace.is_none() {
        return Ok(());
    }
    let annotations = meta
        .entry("annotations")
        .or_insert_with(|| Value::Object(Map::new()));
    if annotations.is_null() {
        *annotations = Value::Object(Map::new());
    }
    let Value::Object(annotations) = annotations else {
        return Err(ResourceError::NotAnObject {
            field: "metadata.annotations",
            found: kind_of(annotations),
        });
    };
    if let Some(token) = &ctx.token {
        annotations.insert(
            ROTATE_CREDENTIALS_ANNOTATION.into(),
            Value::String(token.clone()),
        );
    }
    if let Some(grace) = grace {
        annotations.insert(
            CREDENTIALS_GRACE_ANNOTATION.into(),
            Value::String(grace.to_string()),
        );
    }
    Ok(())
}
