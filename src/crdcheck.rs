//! `dbclaim validate --crds DIR`: a composition checked against the CRDs of
//! the kinds it composes, offline. Pure: the CRDs come in as parsed YAML.
//!
//! Checked, for each composed resource whose kind a CRD in DIR defines:
//! the base object's fields exist in the CRD's OpenAPI schema, with the
//! right type and an allowed enum value; the required fields of every
//! object the base sets are in the base or written by a patch; every patch
//! target path exists, and what the patch writes (as far as the claim's
//! schema and the transforms tell) has the target's type and enum; the
//! composed object's fields that ToClaimFieldPath patches and connection
//! details read exist. Kinds of the built-in API groups (`v1`, `apps/v1`,
//! ...) are not checked; any other kind without a CRD is a problem.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::api::CompositionSpec;
use crate::api::composition::{ComposedTemplate, PatchType};
use crate::engine::fieldpath::{FieldPath, Segment};
use crate::engine::{self, PatchOutput};

/// The schemas of the CRDs found, by (apiVersion, kind).
#[derive(Debug, Default)]
pub struct Schemas {
    by_kind: BTreeMap<(String, String), Value>,
}

impl Schemas {
    /// Adds every version of every CustomResourceDefinition in `docs`;
    /// other documents are ignored.
    pub fn add_documents(&mut self, docs: &[Value]) -> usize {
        let mut added = 0;
        for doc in docs {
            if doc.get("kind").and_then(Value::as_str) != Some("CustomResourceDefinition") {
                continue;
            }
            let spec = doc.get("spec");
            let group = spec
                .and_then(|s| s.get("group"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            let kind = spec
                .and_then(|s| s.pointer("/names/kind"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            let versions = spec
                .and_then(|s| s.get("versions"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for v in versions {
                let (Some(name), Some(schema)) = (
                    v.get("name").and_then(Value::as_str),
                    v.pointer("/schema/openAPIV3Schema"),
                ) else {
                    continue;
                };
                self.by_kind.insert(
                    (format!("{group}/{name}"), kind.to_string()),
                    schema.clone(),
                );
                added += 1;
            }
        }
        added
    }

    pub fn is_empty(&self) -> bool {
        self.by_kind.is_empty()
    }

    fn get(&self, api_version: &str, kind: &str) -> Option<&Value> {
        self.by_kind
            .get(&(api_version.to_string(), kind.to_string()))
    }
}

/// One finding: the resource, the patch index when a patch is at fault,
/// the path, and what is wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub resource: String,
    pub patch: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.patch {
            Some(i) => write!(
                f,
                "resource \"{}\", patch {i}: {}",
                self.resource, self.message
            ),
            None => write!(f, "resource \"{}\": {}", self.resource, self.message),
        }
    }
}

/// Built-in API groups have no CRD: `v1`, `apps/v1`, `batch/v1`, ... (a
/// group without a dot).
fn is_builtin(api_version: &str) -> bool {
    match api_version.split_once('/') {
        None => true,
        Some((group, _)) => !group.contains('.'),
    }
}

/// Checks every composed resource of `spec` against `schemas`.
pub fn check(spec: &CompositionSpec, schemas: &Schemas) -> Vec<Finding> {
    let outputs = engine::patch_outputs(spec);
    let mut found = Vec::new();
    for t in &spec.resources {
        check_resource(t, schemas, &outputs, &mut found);
    }
    found
}

fn check_resource(
    t: &ComposedTemplate,
    schemas: &Schemas,
    outputs: &BTreeMap<(String, usize), PatchOutput>,
    found: &mut Vec<Finding>,
) {
    let mut add = |patch: Option<usize>, message: String| {
        found.push(Finding {
            resource: t.name.clone(),
            patch,
            message,
        })
    };
    let api_version = t
        .base
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = t
        .base
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if is_builtin(api_version) {
        return;
    }
    let Some(schema) = schemas.get(api_version, kind) else {
        add(
            None,
            format!("no CRD defines {kind} in {api_version} (add its CRD to the --crds directory)"),
        );
        return;
    };
    let what = format!("{kind} {api_version}");

    // Where patches write: a required field a patch fills need not be in
    // the base.
    let mut written: Vec<Vec<Segment>> = Vec::new();
    for (i, p) in t.patches.iter().enumerate() {
        if matches!(
            p.type_,
            PatchType::ToClaimFieldPath | PatchType::CombineToClaim
        ) {
            // Reads the composed object: the source must exist.
            if let Some(Ok(path)) = p.from_field_path.as_deref().map(FieldPath::parse)
                && let Err(e) = resolve(schema, path.segments())
            {
                add(
                    Some(i),
                    format!("fromFieldPath {path}: {e} in the {what} CRD"),
                );
            }
            continue;
        }
        let text = match (&p.to_field_path, &p.from_field_path) {
            (Some(t), _) => t,
            (None, Some(f)) if p.type_ == PatchType::FromClaimFieldPath => f,
            _ => continue,
        };
        // A path that does not parse is `dbclaim validate`'s own finding.
        let Ok(path) = FieldPath::parse(text) else {
            continue;
        };
        written.push(path.segments().to_vec());
        match resolve(schema, path.segments()) {
            Err(e) => add(
                Some(i),
                format!("toFieldPath {path}: {e} in the {what} CRD"),
            ),
            Ok(node) => {
                if let Some(out) = outputs.get(&(t.name.clone(), i))
                    && let Some(e) = mismatch(node, out)
                {
                    add(Some(i), format!("toFieldPath {path}: {e}"));
                }
            }
        }
    }
    for d in &t.connection_details {
        if let Some(Ok(path)) = d.from_field_path.as_deref().map(FieldPath::parse)
            && let Err(e) = resolve(schema, path.segments())
        {
            add(
                None,
                format!(
                    "connection detail {:?}: fromFieldPath {path}: {e} in the {what} CRD",
                    d.name
                ),
            );
        }
    }

    let mut problems = Vec::new();
    walk(&t.base, schema, &mut Vec::new(), &written, &mut problems);
    for (path, e) in problems {
        let at = FieldPath::from_segments(path)
            .map(|p| format!("base {p}"))
            .unwrap_or_else(|| "base".to_string());
        add(None, format!("{at}: {e} in the {what} CRD"));
    }
}

/// The schema node at `path`, or why there is none. `metadata` is the
/// object's own: labels and annotations take any key.
fn resolve<'s>(schema: &'s Value, path: &[Segment]) -> Result<&'s Value, String> {
    static ANY_STRING: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    let any_string = ANY_STRING.get_or_init(|| serde_json::json!({"type": "string"}));
    let any = self::any();
    if let Some(Segment::Field(first)) = path.first()
        && first == "metadata"
    {
        return match &path[1..] {
            [Segment::Field(m), Segment::Field(_)] if m == "labels" || m == "annotations" => {
                Ok(any_string)
            }
            [Segment::Field(m)] if m == "labels" || m == "annotations" => Ok(any),
            _ => Err(format!(
                "{} is not a field a composition sets (metadata.labels.<key> and metadata.annotations.<key> are)",
                FieldPath::from_segments(path.to_vec())
                    .map(|p| p.to_string())
                    .unwrap_or_default()
            )),
        };
    }
    let mut node = schema;
    for (n, seg) in path.iter().enumerate() {
        if open(node) {
            return Ok(any);
        }
        let here = || {
            FieldPath::from_segments(path[..n].to_vec())
                .map(|p| p.to_string())
                .unwrap_or_else(|| "the object".to_string())
        };
        node = match seg {
            Segment::Field(k) => match child(node, k) {
                Some(c) => c,
                None => {
                    let known = known_fields(node);
                    let mut e = format!("field {k:?} does not exist");
                    if !known.is_empty() {
                        e.push_str(&format!(" ({} has: {})", here(), known.join(", ")));
                    }
                    return Err(e);
                }
            },
            Segment::Index(_) => match (type_of(node), node.get("items")) {
                (Some("array"), Some(items)) => items,
                _ => return Err(format!("{} is not an array", here())),
            },
        };
    }
    Ok(node)
}

/// A node that takes any fields.
fn open(node: &Value) -> bool {
    node.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true))
        && node.get("properties").is_none()
        && node.get("additionalProperties").is_none()
}

fn child<'s>(node: &'s Value, key: &str) -> Option<&'s Value> {
    if let Some(c) = node.get("properties").and_then(|p| p.get(key)) {
        return Some(c);
    }
    match node.get("additionalProperties") {
        Some(c @ Value::Object(_)) => Some(c),
        Some(Value::Bool(true)) => Some(any()),
        _ => None,
    }
}

/// A schema node that takes anything.
fn any() -> &'static Value {
    static ANY: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    ANY.get_or_init(|| serde_json::json!({"x-kubernetes-preserve-unknown-fields": true}))
}

fn known_fields(node: &Value) -> Vec<String> {
    node.get("properties")
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

fn type_of(node: &Value) -> Option<&str> {
    node.get("type").and_then(Value::as_str)
}

fn int_or_string(node: &Value) -> bool {
    node.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true))
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Whether a value of JSON type `have` fits a node of schema type `want`.
fn fits(have: &str, node: &Value) -> bool {
    if int_or_string(node) {
        return matches!(have, "integer" | "string");
    }
    match type_of(node) {
        None => true,
        Some("number") => matches!(have, "number" | "integer"),
        Some(want) => want == have,
    }
}

fn enum_values(node: &Value) -> Option<&Vec<Value>> {
    node.get("enum").and_then(Value::as_array)
}

fn show_enum(values: &[Value]) -> String {
    values
        .iter()
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// What is wrong with writing `out` at `node`, if anything.
fn mismatch(node: &Value, out: &PatchOutput) -> Option<String> {
    if let Some(have) = out.json
        && !fits(have, node)
    {
        let want = if int_or_string(node) {
            "integer or string"
        } else {
            type_of(node).unwrap_or("any")
        };
        return Some(format!(
            "the CRD wants {want}, the patch writes {have} (add a convert transform)"
        ));
    }
    if let (Some(allowed), Some(values)) = (enum_values(node), &out.values) {
        let bad: Vec<&Value> = values.iter().filter(|v| !allowed.contains(v)).collect();
        if !bad.is_empty() {
            return Some(format!(
                "{} not allowed by the CRD (allowed: {})",
                show_enum(&bad.into_iter().cloned().collect::<Vec<_>>()),
                show_enum(allowed)
            ));
        }
    }
    None
}

/// Checks `value` against `node` recursively: unknown fields, types,
/// enums, and required fields (present in the base, or written by a patch
/// into or below them).
fn walk(
    value: &Value,
    node: &Value,
    path: &mut Vec<Segment>,
    written: &[Vec<Segment>],
    problems: &mut Vec<(Vec<Segment>, String)>,
) {
    // apiVersion, kind and metadata are the API server's and dbclaim's.
    if path.len() == 1
        && matches!(&path[0], Segment::Field(f) if f == "apiVersion" || f == "kind" || f == "metadata")
    {
        return;
    }
    if open(node) {
        return;
    }
    let have = json_type(value);
    let null_ok = have == "null" && node.get("nullable") == Some(&Value::Bool(true));
    if !(fits(have, node) || null_ok) {
        let want = type_of(node).unwrap_or("any");
        problems.push((path.clone(), format!("is {have}, the CRD wants {want}")));
        return;
    }
    if let Some(allowed) = enum_values(node)
        && !allowed.contains(value)
    {
        problems.push((
            path.clone(),
            format!("{value} is not allowed (allowed: {})", show_enum(allowed)),
        ));
    }
    match value {
        Value::Object(m) => {
            if let Some(required) = node.get("required").and_then(Value::as_array) {
                for r in required.iter().filter_map(Value::as_str) {
                    if m.contains_key(r) {
                        continue;
                    }
                    let mut want = path.clone();
                    want.push(Segment::Field(r.to_string()));
                    if written.iter().any(|w| w.starts_with(&want)) {
                        continue;
                    }
                    problems.push((
                        want,
                        "is required and neither the base nor a patch sets it".to_string(),
                    ));
                }
            }
            for (k, v) in m {
                path.push(Segment::Field(k.clone()));
                let top =
                    path.len() == 1 && matches!(k.as_str(), "apiVersion" | "kind" | "metadata");
                match child(node, k) {
                    Some(c) => walk(v, c, path, written, problems),
                    None if top => {}
                    None => {
                        let known = known_fields(node);
                        let mut e = "does not exist".to_string();
                        if !known.is_empty() {
                            e.push_str(&format!(" (known fields here: {})", known.join(", ")));
                        }
                        problems.push((path.clone(), e));
                    }
                }
                path.pop();
            }
        }
        Value::Array(items) => {
            if let Some(item_node) = node.get("items") {
                for (i, v) in items.iter().enumerate() {
                    path.push(Segment::Index(i));
                    walk(v, item_node, path, written, problems);
                    path.pop();
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests;
