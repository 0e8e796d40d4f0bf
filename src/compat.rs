//! `dbclaim crds --check-compat DIR`: can today's CRDs replace those of an
//! earlier release (`DIR`) without breaking what was written for it?
//! Every served version must still be served with a schema that accepts at
//! least what the old one accepted, and every version objects may be stored
//! in must still be served. Pure: CRDs in, one line per break out.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;

/// Every break of `new` against `old`, one human-readable line each, in the
/// order of the old CRDs' names, versions and schema paths.
pub fn breaks(old: &[CustomResourceDefinition], new: &[CustomResourceDefinition]) -> Vec<String> {
    let new_by_name: BTreeMap<&str, &CustomResourceDefinition> = new
        .iter()
        .filter_map(|c| c.metadata.name.as_deref().map(|n| (n, c)))
        .collect();
    let mut old_sorted: Vec<&CustomResourceDefinition> = old.iter().collect();
    old_sorted.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let mut out = Vec::new();
    for old_crd in old_sorted {
        let name = old_crd.metadata.name.as_deref().unwrap_or("?");
        let Some(new_crd) = new_by_name.get(name) else {
            out.push(format!("{name}: CRD removed"));
            continue;
        };
        let served = |c: &CustomResourceDefinition| -> BTreeSet<String> {
            c.spec
                .versions
                .iter()
                .filter(|v| v.served)
                .map(|v| v.name.clone())
                .collect()
        };
        let new_served = served(new_crd);
        for v in old_crd.spec.versions.iter().filter(|v| v.served) {
            if !new_served.contains(&v.name) {
                out.push(format!("{name}: served version {} removed", v.name));
            }
        }
        // Objects may be stored in the old storage version and in every
        // version the old CRD still recorded in status.storedVersions.
        let mut stored: BTreeSet<String> = old_crd
            .spec
            .versions
            .iter()
            .filter(|v| v.storage)
            .map(|v| v.name.clone())
            .collect();
        if let Some(s) = old_crd
            .status
            .as_ref()
            .and_then(|s| s.stored_versions.clone())
        {
            stored.extend(s);
        }
        for v in stored {
            if !new_served.contains(&v) {
                out.push(format!(
                    "{name}: stored version {v} is no longer served (objects stored in it cannot be read)"
                ));
            }
        }
        for old_v in old_crd.spec.versions.iter().filter(|v| v.served) {
            let Some(new_v) = new_crd.spec.versions.iter().find(|v| v.name == old_v.name) else {
                continue;
            };
            let schema = |v: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinitionVersion| {
                v.schema
                    .as_ref()
                    .and_then(|s| s.open_api_v3_schema.as_ref())
                    .and_then(|s| serde_json::to_value(s).ok())
                    .unwrap_or(Value::Null)
            };
            let mut lines = Vec::new();
            compare(&schema(old_v), &schema(new_v), "", &mut lines);
            out.extend(
                lines
                    .into_iter()
                    .map(|l| format!("{name} {}: {l}", old_v.name)),
            );
        }
    }
    out
}

fn path_or_root(path: &str) -> &str {
    if path.is_empty() { "." } else { path }
}

fn strings(v: Option<&Value>) -> BTreeSet<String> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().map(|x| x.to_string()).collect())
        .unwrap_or_default()
}

fn number(v: Option<&Value>) -> Option<f64> {
    v.and_then(Value::as_f64)
}

/// Schema `new` must accept everything `old` accepts.
fn compare(old: &Value, new: &Value, path: &str, out: &mut Vec<String>) {
    let p = path_or_root(path);
    let (Some(o), Some(n)) = (old.as_object(), new.as_object()) else {
        return;
    };
    let preserves = |m: &serde_json::Map<String, Value>| {
        m.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true))
    };
    // An int-or-string field accepts more than either type alone.
    let int_or_string = |m: &serde_json::Map<String, Value>| {
        m.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true))
    };
    match (o.get("type"), n.get("type")) {
        (Some(a), Some(b)) if a != b && !int_or_string(n) => {
            out.push(format!("{p}: type changed from {a} to {b}"));
            return;
        }
        (None, Some(b)) if !int_or_string(o) && !preserves(o) => {
            out.push(format!("{p}: type {b} now required (was any)"));
        }
        _ => {}
    }
    if int_or_string(o) && !int_or_string(n) {
        out.push(format!("{p}: no longer accepts both integers and strings"));
    }
    // Enum: every old value still accepted.
    if let Some(new_enum) = n.get("enum") {
        let new_values = strings(Some(new_enum));
        let old_values = strings(o.get("enum"));
        if o.get("enum").is_none() {
            out.push(format!(
                "{p}: enum added (narrowed to {})",
                join(&new_values)
            ));
        } else {
            let lost: BTreeSet<_> = old_values.difference(&new_values).cloned().collect();
            if !lost.is_empty() {
                out.push(format!(
                    "{p}: enum narrowed: no longer accepts {}",
                    join(&lost)
                ));
            }
        }
    }
    if let Some(np) = n.get("pattern")
        && o.get("pattern") != Some(np)
    {
        out.push(format!(
            "{p}: pattern changed to {np} (was {})",
            o.get("pattern")
                .map(Value::to_string)
                .unwrap_or_else(|| "none".into())
        ));
    }
    if let Some(nf) = n.get("format")
        && o.get("format") != Some(nf)
        && n.get("type") == Some(&Value::String("string".into()))
    {
        out.push(format!("{p}: format {nf} added"));
    }
    // Lower bounds may only go down, upper bounds only up.
    for key in ["minimum", "minLength", "minItems", "minProperties"] {
        if let Some(nv) = number(n.get(key))
            && number(o.get(key)).is_none_or(|ov| nv > ov)
        {
            out.push(format!(
                "{p}: {key} raised to {nv} (was {})",
                show(o.get(key))
            ));
        }
    }
    for key in ["maximum", "maxLength", "maxItems", "maxProperties"] {
        if let Some(nv) = number(n.get(key))
            && number(o.get(key)).is_none_or(|ov| nv < ov)
        {
            out.push(format!(
                "{p}: {key} lowered to {nv} (was {})",
                show(o.get(key))
            ));
        }
    }
    for key in ["exclusiveMinimum", "exclusiveMaximum"] {
        if n.get(key) == Some(&Value::Bool(true)) && o.get(key) != Some(&Value::Bool(true)) {
            out.push(format!("{p}: {key} added"));
        }
    }
    if o.get("nullable") == Some(&Value::Bool(true))
        && n.get("nullable") != Some(&Value::Bool(true))
    {
        out.push(format!("{p}: no longer nullable"));
    }
    let old_required = strings(o.get("required"));
    for r in strings(n.get("required")).difference(&old_required) {
        out.push(format!("{p}: new required field {}", r.trim_matches('"')));
    }
    let old_rules = rules(o);
    for rule in rules(n).difference(&old_rules) {
        out.push(format!("{p}: new validation rule {rule}"));
    }
    // Fields.
    let empty = serde_json::Map::new();
    let old_props = o
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let new_props = n
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let open = preserves(n)
        || n.get("additionalProperties")
            .is_some_and(|a| a != &Value::Bool(false));
    for (key, old_field) in old_props {
        let child = format!("{path}.{key}");
        match new_props.get(key) {
            Some(new_field) => compare(old_field, new_field, &child, out),
            None if open => {}
            None => out.push(format!("{child}: field removed")),
        }
    }
    if preserves(o) && !preserves(n) && new_props.is_empty() {
        out.push(format!("{p}: no longer preserves unknown fields"));
    }
    if let (Some(oi), Some(ni)) = (o.get("items"), n.get("items")) {
        compare(oi, ni, &format!("{path}[]"), out);
    }
    if let (Some(oa), Some(na)) = (o.get("additionalProperties"), n.get("additionalProperties")) {
        compare(oa, na, &format!("{path}.*"), out);
    }
}

fn rules(m: &serde_json::Map<String, Value>) -> BTreeSet<String> {
    m.get("x-kubernetes-validations")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|r| r.get("rule"))
                .map(Value::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn join(values: &BTreeSet<String>) -> String {
    values.iter().cloned().collect::<Vec<_>>().join(", ")
}

fn show(v: Option<&Value>) -> String {
    v.map(Value::to_string).unwrap_or_else(|| "none".into())
}

#[cfg(test)]
mod tests;
