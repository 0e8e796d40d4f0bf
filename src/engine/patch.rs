//! Patches: copying values between the claim and composed objects, with
//! Crossplane's patch-and-transform semantics and `Claim` in place of
//! `Composite`.
//!
//! - `FromClaimFieldPath` / `CombineFromClaim` read the claim (see
//!   [`claim_source`]) and write the desired composed object.
//! - `ToClaimFieldPath` / `CombineToClaim` read the *observed* composed object
//!   and write the claim's `status.outputs.<key>`, nothing else.
//!
//! A missing source skips the patch under the default `Optional` policy (for
//! a combine: any missing variable) and is an error under `Required`. A value
//! that is a whole map or list replaces the target, so a key removed from the
//! claim disappears from the composed object. A patch whose result is null
//! removes the target (Kubernetes does not keep nulls anyway).

use serde_json::{Map, Value};

use super::fieldpath::{AccessError, FieldPath, PathError, Segment};
use super::gofmt::{self, FmtError};
use super::transform::{self, TransformError};
use crate::api::DatabaseClaim;
use crate::api::composition::{CombineStrategy, FromFieldPathPolicy, Patch, PatchType};

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum PatchError {
    #[error("{field}: {error}")]
    BadPath { field: String, error: PathError },
    #[error("a {patch_type} patch needs \"{field}\"")]
    MissingField {
        patch_type: &'static str,
        field: &'static str,
    },
    #[error("combine needs at least one variable")]
    NoVariables,
    #[error(
        "combine strategy string needs \"string\" with \"fmt\", e.g. string: {{fmt: \"%s-%s\"}}"
    )]
    CombineNoString,
    #[error("{side} has no value at {path}, and the patch's policy.fromFieldPath is Required")]
    RequiredMissing { side: &'static str, path: String },
    #[error("cannot read {path} from {side}: {error}")]
    Read {
        side: &'static str,
        path: String,
        error: AccessError,
    },
    #[error("cannot write {path}: {error}")]
    Write { path: String, error: AccessError },
    #[error("{}{error}", transform_prefix(*.index, *.count))]
    Transform {
        index: usize,
        count: usize,
        error: TransformError,
    },
    #[error("combine format {fmt:?}: {error}")]
    Combine { fmt: String, error: FmtError },
    #[error(
        "generate.length {0} is out of range: use {min} to {max} characters",
        min = super::generate::MIN_LENGTH,
        max = super::generate::MAX_LENGTH
    )]
    GenerateLength(i64),
    #[error("a Generate patch reads nothing: remove fromFieldPath, combine and transforms")]
    GenerateReads,
    #[error(
        "{patch_type} may only write status.outputs.<key> of the claim, not {path} \
         (dbclaim never writes a claim's spec or metadata)"
    )]
    ToClaimTarget {
        patch_type: &'static str,
        path: String,
    },
}

fn transform_prefix(index: usize, count: usize) -> String {
    // With a single transform its type already says which one failed.
    if count > 1 {
        format!("transform {index}: ")
    } else {
        String::new()
    }
}

pub fn type_name(t: PatchType) -> &'static str {
    match t {
        PatchType::FromClaimFieldPath => "FromClaimFieldPath",
        PatchType::ToClaimFieldPath => "ToClaimFieldPath",
        PatchType::CombineFromClaim => "CombineFromClaim",
        PatchType::CombineToClaim => "CombineToClaim",
        PatchType::Generate => "Generate",
    }
}

/// Whether the patch writes the claim (reads the observed composed object).
pub fn is_to_claim(p: &Patch) -> bool {
    matches!(
        p.type_,
        PatchType::ToClaimFieldPath | PatchType::CombineToClaim
    )
}

fn is_combine(p: &Patch) -> bool {
    matches!(
        p.type_,
        PatchType::CombineFromClaim | PatchType::CombineToClaim
    )
}

/// The patch in a few words for messages: `spec.size → spec.forProvider.dbInstanceClass`,
/// `combine(metadata.namespace, metadata.name) → spec.forProvider.tags.name`.
pub fn summary(p: &Patch) -> String {
    let to = to_path_text(p).unwrap_or("?");
    if p.type_ == PatchType::Generate {
        format!("generate → {to}")
    } else if is_combine(p) {
        let vars: Vec<&str> = match &p.combine {
            Some(c) => c
                .variables
                .iter()
                .map(|v| v.from_field_path.as_str())
                .collect(),
            None => vec![],
        };
        format!("combine({}) → {to}", vars.join(", "))
    } else {
        format!("{} → {to}", p.from_field_path.as_deref().unwrap_or("?"))
    }
}

/// The target path as written: `toFieldPath`, defaulting to `fromFieldPath`
/// for single-source patches as Crossplane does.
fn to_path_text(p: &Patch) -> Option<&str> {
    match (&p.to_field_path, is_combine(p)) {
        (Some(t), _) => Some(t),
        (None, false) => p.from_field_path.as_deref(),
        (None, true) => None,
    }
}

fn parse(field: impl Into<String>, path: &str) -> Result<FieldPath, PatchError> {
    FieldPath::parse(path).map_err(|error| PatchError::BadPath {
        field: field.into(),
        error,
    })
}

fn to_path(p: &Patch) -> Result<FieldPath, PatchError> {
    let text = to_path_text(p).ok_or(PatchError::MissingField {
        patch_type: type_name(p.type_),
        field: "toFieldPath",
    })?;
    parse("toFieldPath", text)
}

/// The target of a ToClaim patch, checked to lie under `status.outputs.<key>`.
pub fn to_claim_target(p: &Patch) -> Result<FieldPath, PatchError> {
    let path = to_path(p)?;
    match path.segments() {
        [Segment::Field(s), Segment::Field(o), Segment::Field(_), ..]
            if s == "status" && o == "outputs" =>
        {
            Ok(path)
        }
        _ => Err(PatchError::ToClaimTarget {
            patch_type: type_name(p.type_),
            path: path.to_string(),
        }),
    }
}

/// Reads the patch's source from `from` and runs its transforms. `Ok(None)`
/// means "skip": an optional source is not there.
fn source(p: &Patch, from: &Value, side: &'static str) -> Result<Option<Value>, PatchError> {
    let required = p
        .policy
        .as_ref()
        .is_some_and(|pp| pp.from_field_path == FromFieldPathPolicy::Required);
    let read = |field: String, text: &str| -> Result<Option<Value>, PatchError> {
        let path = parse(field, text)?;
        match path.get(from) {
            Ok(Some(v)) => Ok(Some(v.clone())),
            Ok(None) if required => Err(PatchError::RequiredMissing {
                side,
                path: path.to_string(),
            }),
            Ok(None) => Ok(None),
            Err(error) => Err(PatchError::Read {
                side,
                path: path.to_string(),
                error,
            }),
        }
    };
    let value = if is_combine(p) {
        let c = p.combine.as_ref().ok_or(PatchError::MissingField {
            patch_type: type_name(p.type_),
            field: "combine",
        })?;
        if c.variables.is_empty() {
            return Err(PatchError::NoVariables);
        }
        let fmt = match c.strategy {
            CombineStrategy::String => &c.string.as_ref().ok_or(PatchError::CombineNoString)?.fmt,
        };
        let mut vars = Vec::with_capacity(c.variables.len());
        for (i, v) in c.variables.iter().enumerate() {
            // Any missing variable skips the whole combine, as in Crossplane:
            // a format expecting three values must not run with two.
            match read(format!("combine variable {i}"), &v.from_field_path)? {
                Some(v) => vars.push(v),
                None => return Ok(None),
            }
        }
        let text = gofmt::sprintf(fmt, &vars).map_err(|error| PatchError::Combine {
            fmt: fmt.clone(),
            error,
        })?;
        Value::String(text)
    } else {
        let text = p
            .from_field_path
            .as_deref()
            .ok_or(PatchError::MissingField {
                patch_type: type_name(p.type_),
                field: "fromFieldPath",
            })?;
        match read("fromFieldPath".into(), text)? {
            Some(v) => v,
            None => return Ok(None),
        }
    };
    let count = p.transforms.len();
    transform::apply_all(&p.transforms, value)
        .map(Some)
        .map_err(|(index, error)| PatchError::Transform {
            index,
            count,
            error,
        })
}

fn write(path: &FieldPath, target: &mut Value, value: Value) -> Result<(), PatchError> {
    if value.is_null() {
        path.remove(target);
        return Ok(());
    }
    path.set(target, value).map_err(|error| PatchError::Write {
        path: path.to_string(),
        error,
    })
}

/// Applies a FromClaim or CombineFromClaim patch from the claim source to the
/// desired composed object. Other patch types are left alone.
pub fn apply_from_claim(p: &Patch, claim: &Value, target: &mut Value) -> Result<(), PatchError> {
    if is_to_claim(p) || p.type_ == PatchType::Generate {
        return Ok(());
    }
    // Check the target before reading, so a bad toFieldPath is reported even
    // while the source is missing.
    let to = to_path(p)?;
    match source(p, claim, "the claim")? {
        Some(v) => write(&to, target, v),
        None => Ok(()),
    }
}

/// Applies a ToClaim or CombineToClaim patch from the observed composed
/// object into `outputs_doc`, a document shaped like a claim
/// (`{"status": {"outputs": …}}`). An object not observed yet skips the patch;
/// the target is checked either way.
pub fn apply_to_claim(
    p: &Patch,
    observed: Option<&Value>,
    outputs_doc: &mut Value,
) -> Result<(), PatchError> {
    if !is_to_claim(p) {
        return Ok(());
    }
    let to = to_claim_target(p)?;
    let Some(observed) = observed else {
        return Ok(());
    };
    match source(p, observed, "the composed object")? {
        Some(v) => write(&to, outputs_doc, v),
        None => Ok(()),
    }
}

/// The claim as patches see it: the claim's JSON with defaults resolved
/// (`spec.databaseName` is the effective name), the identifying metadata
/// (name, namespace, labels, annotations, uid) and the status.
pub fn claim_source(claim: &DatabaseClaim, namespace: &str) -> Value {
    let mut spec = serde_json::to_value(&claim.spec).unwrap_or_else(|_| Value::Object(Map::new()));
    let name = claim.metadata.name.clone().unwrap_or_default();
    if let Value::Object(m) = &mut spec {
        m.insert(
            "databaseName".into(),
            Value::String(claim.spec.effective_database_name(&name)),
        );
    }
    let mut meta = Map::new();
    meta.insert("name".into(), Value::String(name));
    meta.insert("namespace".into(), Value::String(namespace.to_string()));
    let md = &claim.metadata;
    if let Some(l) = &md.labels {
        meta.insert("labels".into(), serde_json::to_value(l).unwrap_or_default());
    }
    if let Some(a) = &md.annotations {
        meta.insert(
            "annotations".into(),
            serde_json::to_value(a).unwrap_or_default(),
        );
    }
    if let Some(u) = &md.uid {
        meta.insert("uid".into(), Value::String(u.clone()));
    }
    let mut obj = Map::new();
    obj.insert(
        "apiVersion".into(),
        Value::String("dbclaim.io/v1alpha1".into()),
    );
    obj.insert("kind".into(), Value::String("DatabaseClaim".into()));
    obj.insert("metadata".into(), Value::Object(meta));
    obj.insert("spec".into(), spec);
    if let Some(status) = &claim.status {
        obj.insert(
            "status".into(),
            serde_json::to_value(status).unwrap_or_default(),
        );
    }
    Value::Object(obj)
}

#[cfg(test)]
mod tests;
