//! Render: the engine's pure render over what was observed.

use std::collections::BTreeMap;

use super::error::RenderError;
use super::observe::Observed;
use super::select::Selected;
use crate::api::DatabaseClaim;
use crate::controller::kinds::Kind;
use crate::engine::{self, Rendered};

pub fn render(
    claim: &DatabaseClaim,
    selected: &Selected,
    observed: &Observed,
) -> Result<Rendered, RenderError> {
    let kinds: &BTreeMap<String, Kind> = &observed.kinds;
    let scope_of = |api_version: &str, kind: &str| {
        kinds
            .values()
            .find(|k| k.resource.api_version == api_version && k.resource.kind == kind)
            .map(|k| k.scope)
            .unwrap_or_else(|| engine::builtin_scope(api_version, kind))
    };
    let composition = selected.name();
    let request = engine::RenderRequest {
        claim,
        composition_name: &composition,
        composition: &selected.composition.spec,
        observed: &observed.objects,
        scope: &scope_of,
    };
    engine::render(&request).map_err(|error| RenderError {
        composition,
        error: Box::new(error),
    })
}

/// (apiVersion, kind, name) of every rendered object.
pub fn keys(rendered: &Rendered) -> Vec<(&str, &str, &str)> {
    rendered
        .resources
        .iter()
        .map(|r| {
            let o = &r.object;
            (
                field(o, "/apiVersion"),
                field(o, "/kind"),
                field(o, "/metadata/name"),
            )
        })
        .collect()
}

pub fn field<'a>(object: &'a serde_json::Value, pointer: &str) -> &'a str {
    object
        .pointer(pointer)
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
}
